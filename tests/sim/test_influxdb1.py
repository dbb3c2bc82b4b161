"""End to end into the real InfluxDB 1.x: the same seed stores the same data as on the embedded store."""

from __future__ import annotations

import uuid

import pytest
import requests

from pdm.settings import StoreSettings
from pdm.store import open_store
from pdm.store.embedded import EmbeddedStore
from sensors_sim.run import TRUTH, backfill, data_digest, read_cursor, stream
from tests.sim.plantdata import busy_config

pytestmark = pytest.mark.influxdb1

DAYS = 1.25


def config():
    return busy_config(seed=2)


@pytest.fixture
def influx(influxdb1_url):
    db = f"sim_{uuid.uuid4().hex[:12]}"
    store = open_store(StoreSettings(backend="influxdb1", url=influxdb1_url, database=db,
                                     retries=1, backoff_s=0.05, timeout_s=30))
    try:
        yield store
    finally:
        store.close()
        requests.post(f"{influxdb1_url}/query", params={"q": f'DROP DATABASE "{db}"'}, timeout=10)


@pytest.fixture(scope="module")
def embedded_digest(tmp_path_factory) -> str:
    store = EmbeddedStore(tmp_path_factory.mktemp("emb") / "s.duckdb")
    backfill(store, config(), DAYS, progress=False)
    return data_digest(store)


def test_a_backfill_into_influxdb1_stores_what_the_embedded_store_stores(influx, embedded_digest, tmp_path):
    res = backfill(influx, config(), DAYS, labels_path=tmp_path / "labels.csv", progress=False)
    assert res.points > 30_000
    assert influx.machines() == sorted(m.id for m in config().machines())
    assert len(influx.read(TRUTH)) >= 5
    assert {"process", "temperature", "vibration", "operator_log", TRUTH} <= set(influx.measurements())
    # Same seed, byte-identical data on either back end (labels included).
    assert data_digest(influx) == embedded_digest


def test_a_stream_into_influxdb1_resumes_after_a_restart(influx, tmp_path):
    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

        def sleep(self, s: float) -> None:
            self.now += s

    for speed, ticks in ((7000.0, 3), (8000.0, 3)):  # 14,000 s, then restarted: 16,000 s more
        clock = Clock()
        stream(influx, config(), speed, max_ticks=ticks, clock=clock, sleep=clock.sleep)
    assert read_cursor(influx) == int(config().start.timestamp()) * 10**9 + 30_000 * 10**9
    reference = EmbeddedStore(tmp_path / "ref.duckdb")
    backfill(reference, config(), 30_000 / 86_400, progress=False)
    assert data_digest(influx) == data_digest(reference)
