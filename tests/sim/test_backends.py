"""Every back end stores the same simulated data for the same seed.

InfluxDB 2.x here is the wire-level fake server of the store tests; the real
InfluxDB 1.x is in test_influxdb1.py.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from pdm.settings import StoreSettings
from pdm.store import open_store
from pdm.store.embedded import EmbeddedStore
from sensors_sim.run import TRUTH, backfill, data_digest, read_cursor, stream
from tests.fakes.influxdb2_server import FakeInfluxDB2
from tests.sim.plantdata import busy_config

DAYS = 0.75


@pytest.fixture(scope="module")
def embedded_digest(tmp_path_factory) -> str:
    store = EmbeddedStore(tmp_path_factory.mktemp("emb") / "s.duckdb")
    backfill(store, busy_config(), DAYS, progress=False)
    return data_digest(store)


@pytest.fixture
def influxdb2():
    with FakeInfluxDB2(token="t0ken", org="pdm", bucket="pdm") as server:
        store = open_store(StoreSettings(backend="influxdb2", url=server.url, org="pdm", bucket="pdm",
                                         token=SecretStr("t0ken"), retries=1, backoff_s=0.05, timeout_s=30))
        try:
            yield store
        finally:
            store.close()


def test_a_backfill_into_influxdb2_stores_what_the_embedded_store_stores(influxdb2, embedded_digest):
    res = backfill(influxdb2, busy_config(), DAYS, progress=False)
    assert res.points > 10_000
    assert len(influxdb2.read(TRUTH)) > 0
    assert data_digest(influxdb2) == embedded_digest


def test_a_stream_into_influxdb2_resumes_after_a_restart(influxdb2, embedded_digest):
    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

        def sleep(self, s: float) -> None:
            self.now += s

    for speed, ticks in ((27_000.0, 2), (18_900.0, 3)):  # 27,000 s, restarted, 37,800 s more = 0.75 day
        clock = Clock()
        stream(influxdb2, busy_config(), speed, max_ticks=ticks, clock=clock, sleep=clock.sleep)
    assert read_cursor(influxdb2) == int(busy_config().start.timestamp()) * 10**9 + 64_800 * 10**9
    assert data_digest(influxdb2) == embedded_digest
