"""Re-scoring a range on a real InfluxDB 1.x server overwrites; it never duplicates or loses points."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
import requests

from pdm.detect.score import score_machines
from pdm.settings import StoreSettings
from pdm.store import open_store
from pdm.store.schema import ALARM, ROOTCAUSE, SCORE
from sensors_sim.run import backfill
from tests.detect.conftest import DAYS, FAILURE, FAULTY, HEALTHY, fleet_config


@pytest.fixture
def influx(influxdb1_url):
    db = f"detect_{uuid.uuid4().hex[:12]}"
    store = open_store(StoreSettings(backend="influxdb1", url=influxdb1_url, database=db,
                                     retries=1, backoff_s=0.05, timeout_s=60))
    try:
        yield store
    finally:
        store.close()
        requests.post(f"{influxdb1_url}/query", params={"q": f'DROP DATABASE "{db}"'}, timeout=10)


def _counts(store) -> dict[str, int]:
    return {m: len(store.read(m)) for m in (SCORE, ALARM, ROOTCAUSE)}


def test_rescoring_the_same_range_leaves_the_same_points(trained, influx):
    backfill(influx, fleet_config(), DAYS, progress=False)
    start, stop = FAILURE - pd.Timedelta("2D"), FAILURE + pd.Timedelta("12h")
    # another model version's alarm in the same range must survive re-scoring
    influx.write([{"measurement": ALARM, "tags": {"machine": FAULTY, "model_version": "other"},
                   "fields": {"severity": "watch", "status": "closed", "end_ns": 1, "last_ns": 1,
                              "peak_ratio": 1.5, "ttf_hours": -1.0, "top_channel": "x"},
                   "time": FAILURE - pd.Timedelta("1D")}])
    first = score_machines(influx, trained.model, start=start, stop=stop, progress=False)
    counts = _counts(influx)
    assert counts[SCORE] == sum(len(r.scores) for r in first.machines.values()) == 2 * 30
    assert counts[ALARM] >= 2 and counts[ROOTCAUSE] >= 6  # ours (>= 1: 5 channels + maps) + the other version's alarm
    before = {m: influx.read(m) for m in (SCORE, ALARM, ROOTCAUSE)}
    second = score_machines(influx, trained.model, start=start, stop=stop, progress=False)
    assert _counts(influx) == counts
    assert second.points_written == first.points_written
    for m, frame in before.items():
        again = influx.read(m)
        pd.testing.assert_frame_equal(frame, again, check_exact=False, rtol=1e-9)
    alarms = influx.read(ALARM, FAULTY)
    assert "other" in set(alarms["model_version"])
    # when each episode reached its severity comes back as written (0: a level it never reached)
    ours = alarms[alarms["model_version"] == first.model_version]
    assert len(ours) == len(first.machines[FAULTY].alarms) >= 1
    for t, row in ours.iterrows():
        reached = next(a for a in first.machines[FAULTY].alarms if a.start == t.value).reached
        assert int(row["warning_ns"]) == reached.get("warning", 0) and int(row["critical_ns"]) == reached.get("critical", 0)
        assert (int(row["critical_ns"]) > 0) == (row["severity"] == "critical")
    assert set(influx.read(SCORE)["machine"]) == {FAULTY, HEALTHY}
    # without a range: each machine's latest window, the one ending with its last data
    latest = score_machines(influx, trained.model, [HEALTHY], write=False, progress=False)
    assert list(latest.machines[HEALTHY].scores.index) == [trained.stop]
    assert _counts(influx) == counts


def test_a_model_switch_continues_the_open_alarm_on_influxdb1(trained, influx):
    import copy

    from pdm.model.directory import load
    from pdm.store.schema import CONTINUED

    backfill(influx, fleet_config(), DAYS, progress=False)
    old = load(trained.model)
    new = copy.copy(old)
    new.version = old.version + "-ft"
    start, mid, stop = FAILURE - pd.Timedelta("3D"), FAILURE - pd.Timedelta("20h"), FAILURE + pd.Timedelta("12h")
    score_machines(influx, old, [FAULTY], start=start, stop=mid, progress=False)
    for _ in range(2):  # a retried task changes nothing
        score_machines(influx, new, [FAULTY], start=mid, stop=stop, progress=False)
        alarms = influx.read(ALARM, FAULTY)
        handed = alarms[alarms["status"] == CONTINUED]
        assert len(handed) == 1 and handed["continued_by"].iloc[0] == new.version
        assert handed["end_ns"].iloc[0] > 0
        mine = alarms[alarms["model_version"] == new.version]
        assert handed.index[0] in mine.index
