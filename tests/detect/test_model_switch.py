"""A new production model takes over a machine's alarm history: an open episode goes on, it is not raised twice."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from pdm.detect.score import score_machines
from pdm.evaluate.run import read_alarms
from pdm.model.directory import load
from pdm.pipeline.notify import Notifier, alarms_to_notify, notify_new_alarms
from pdm.store.schema import ALARM, CONTINUED
from tests.detect.conftest import FAILURE, FAULTY


def _successor(trained, scale: float = 1.0):
    """The trained model under a new version id (a fine-tune that changed nothing), thresholds times ``scale``."""
    bundle = load(trained.model)
    new = copy.copy(bundle)
    new.version = bundle.version + "-ft"
    new.detect = copy.deepcopy(bundle.detect)
    for det in new.detect["machines"].values():
        det["threshold"]["threshold"] *= scale
    return bundle, new


def _episodes(alarms: pd.DataFrame) -> list[tuple]:
    return [(r.machine, r.start, r.end, r.severity, round(float(r.peak_ratio), 6)) for r in alarms.itertuples()]


def test_a_model_switch_inside_an_episode_continues_it(trained, tmp_path):
    old, new = _successor(trained)
    whole = trained.fresh_store(tmp_path / "whole.duckdb")
    score_machines(whole, old, start=trained.start, stop=trained.stop, progress=False)
    expected = _episodes(read_alarms(whole, [old.version]))
    mid = FAILURE - pd.Timedelta("20h")  # inside the failing machine's episode
    store = trained.fresh_store(tmp_path / "s.duckdb")
    score_machines(store, old, start=trained.start, stop=mid, progress=False)
    open_before = store.read(ALARM, FAULTY)
    assert (open_before["end_ns"] == 0).sum() == 1  # the episode is open at the switch
    for _ in range(2):  # re-running the successor's range is idempotent
        report = score_machines(store, new, start=mid, stop=trained.stop, progress=False)
        raw = store.read(ALARM, FAULTY)
        handed = raw[raw["status"] == CONTINUED]
        assert len(handed) == 1 and handed["continued_by"].iloc[0] == new.version
        assert handed["model_version"].iloc[0] == old.version and handed["end_ns"].iloc[0] > 0
        taken = handed.index[0]
        mine = raw[(raw["model_version"] == new.version) & (raw.index == taken)]
        assert len(mine) == 1  # the successor holds the episode from its first window
        assert report.machines[FAULTY].alarms[0].start == taken.value
        # one episode per alarm, as if one model had scored the whole range
        assert _episodes(read_alarms(store, [old.version, new.version])) == expected
    # the root cause ranked when the alarm was raised stays with the episode
    merged = read_alarms(store, [old.version, new.version])
    row = merged[(merged["machine"] == FAULTY) & (merged["start"] == taken)].iloc[0]
    assert len(row["channels"]) >= 3 and row["channels"][0] == raw.loc[taken, "top_channel"].iloc[0]


def test_history_comes_back_on_the_new_models_scale(trained, tmp_path):
    """Scores of two versions are on different scales; the rule reads the old ones as ratios to their threshold."""
    old, new = _successor(trained, scale=1.5)
    mid = FAILURE - pd.Timedelta("20h")
    store = trained.fresh_store(tmp_path / "s.duckdb")
    score_machines(store, old, start=trained.start, stop=mid, progress=False)
    from pdm.detect.persist import read_history
    from pdm.detect.stages import AlarmRule

    stride_ns = int(pd.Timedelta("1h").value)  # only the history's span depends on it
    th = new.detect["machines"][FAULTY]["threshold"]["threshold"]
    hist = read_history(store, FAULTY, new.version, int(mid.value), AlarmRule(), stride_ns, th)
    assert hist.predecessor == old.version and hist.open_at is not None
    stored = store.read("pdm_score", FAULTY).loc[lambda d: d.index.isin(pd.to_datetime(hist.times, utc=True))]
    assert np.allclose(hist.scores, stored["ratio"].to_numpy() * th)
    own = read_history(store, FAULTY, old.version, int(mid.value), AlarmRule(), stride_ns, th)
    assert own.predecessor is None and np.allclose(own.scores, stored["score"].to_numpy())


def test_a_candidate_scored_side_by_side_takes_nothing_over(trained, tmp_path):
    old, new = _successor(trained)
    store = trained.fresh_store(tmp_path / "s.duckdb")
    score_machines(store, old, start=trained.start, stop=trained.stop, progress=False)
    before = store.read(ALARM)
    mid = FAILURE - pd.Timedelta("20h")
    score_machines(store, new, start=mid, stop=trained.stop, progress=False)  # the old one scored this range too
    after = store.read(ALARM)
    mine = after[after["model_version"] == old.version]
    pd.testing.assert_frame_equal(mine, before[mine.columns])
    assert (after["status"] != CONTINUED).all()
    assert len(read_alarms(store, [old.version, new.version])) == len(after)  # each version's alarms, none merged


def test_an_episode_is_notified_once_across_a_model_switch(trained, tmp_path):
    old, new = _successor(trained)
    mid = FAILURE - pd.Timedelta("20h")
    store = trained.fresh_store(tmp_path / "s.duckdb")
    score_machines(store, old, start=trained.start, stop=mid, progress=False)
    first = [a for a in alarms_to_notify(store, trained.start, mid, severity="warning") if a["machine"] == FAULTY]
    assert first and first[-1]["model_version"] == old.version
    a = first[-1]
    assert notify_new_alarms(store, trained.start, mid, Notifier(""), severity="warning") >= 1
    score_machines(store, new, start=mid, stop=trained.stop, progress=False)
    again = [x for x in alarms_to_notify(store, mid, trained.stop, severity="warning")
             if x["machine"] == FAULTY and x["start_ns"] == a["start_ns"]]
    assert again == []
