"""A new healthy baseline after a work order (pdm.detect.rebaseline): unit rules and scoring end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pdm.detect.rebaseline import BASELINE, SCORED, SPANS_WORK_ORDER, Rebaseline
from pdm.detect.score import score_machines
from pdm.model.directory import load
from pdm.store.schema import ALARM, SCORE
from sensors_sim.plant import SCALED_FEATURES
from tests.detect.conftest import HEALTHY

H = 3_600 * 10**9


def test_windows_spanning_a_work_order_are_not_scored_and_the_next_ones_are_the_baseline():
    rb = Rebaseline(hours=6, min_windows=2)
    starts = np.arange(0, 20) * 2 * H  # stride 2 h, windows 4 h long
    ends = starts + 4 * H
    scored = np.ones(20, bool)
    scored[6] = False  # the machine did not run in this one: it does not count towards the baseline
    seg, status = rb.segments(starts, ends, np.array([9 * H]), scored, 2 * H)
    assert seg.tolist() == [-1] * 5 + [0] * 15
    assert status[:3].tolist() == [SCORED] * 3  # before the work order
    assert status[3:5].tolist() == [SPANS_WORK_ORDER] * 2  # [6, 10) and [8, 12) h hold the 9 h work order
    assert status[5] == BASELINE and status[6] == SCORED  # 6 h at a 2 h stride: three scored windows
    assert status[7:9].tolist() == [BASELINE] * 2 and (status[9:] == SCORED).all()


def test_a_baseline_is_only_looked_for_up_to_max_hours_after_the_work_order():
    rb = Rebaseline(hours=6, max_hours=5, min_windows=2)
    starts = np.arange(0, 10) * 2 * H
    seg, status = rb.segments(starts, starts + H, np.array([0]), np.ones(10, bool), 2 * H)
    assert status.tolist() == [BASELINE] * 3 + [SCORED] * 7  # starts 0, 2, 4 h < 5 h
    # Each work order starts its own segment and baseline.
    seg, status = rb.segments(starts, starts + H, np.array([0, 11 * H]), np.ones(10, bool), 2 * H)
    assert seg.tolist() == [0] * 6 + [1] * 4
    # A baseline already taken (stored by an earlier run) marks no window of this range.
    _, done = rb.segments(starts, starts + H, np.array([0, 11 * H]), np.ones(10, bool), 2 * H, finished={0})
    assert (done[:6] == SCORED).all() and done[6:].tolist() == status[6:].tolist()
    assert status.tolist() == [BASELINE] * 3 + [SCORED] * 3 + [BASELINE] * 2 + [SCORED] * 2  # 12, 14 h < 16 h


def test_levels_are_per_channel_medians_and_too_few_windows_keep_the_earlier_ones():
    rb = Rebaseline(min_windows=3)
    previous = np.array([1.0, 2.0, 3.0])
    err = np.array([[5.0, 1.0, np.nan], [6.0, 1.5, np.nan], [7.0, 2.5, 9.0], [np.nan, np.nan, np.nan]])
    level, taken = rb.levels(err, previous)
    # channel 2's median 1.5 is below its level: kept (levels only rise); channel 3 seen once: kept
    assert taken and level.tolist() == [6.0, 2.0, 3.0]
    level, taken = rb.levels(err[:2], previous)
    assert not taken and level.tolist() == previous.tolist()
    assert Rebaseline.from_dict(rb.to_dict()) == rb and Rebaseline.from_dict(None) == Rebaseline()


def test_apply_scores_each_segment_against_its_own_baseline():
    rb = Rebaseline(hours=6, min_windows=2)
    starts = np.arange(0, 20) * 2 * H
    ends = starts + 4 * H
    err = np.where(starts[:, None] >= 9 * H, 3.0, 1.0) * np.array([1.0, 1.0])  # the repair lifts both channels' errors
    err[15, 0] = 9.0  # a fault after the new baseline
    got = rb.apply(err, starts, ends, np.array([9 * H]), np.array([1.0, 1.0]), np.array([0.5, 0.5]), 2 * H)
    assert got.status.tolist() == rb.segments(starts, ends, np.array([9 * H]), np.ones(20, bool), 2 * H)[1].tolist()
    assert got.unscored.tolist() == [False] * 3 + [True] * 5 + [False] * 12  # spanning, then 3 baseline windows
    assert (got.z[:3] == 0).all()  # before the work order: the calibration's levels
    assert (got.z[8:] == np.where(np.arange(8, 20)[:, None] == 15, [12.0, 0.0], 0.0)).all()  # (9 - 3) / 0.5
    assert got.taken == 1 and len(got.finished) == 1 and got.finished[0]["levels"] == [3.0, 3.0]
    # The same windows with the baseline known from an earlier run: same z, no baseline windows.
    again = rb.apply(err[8:], starts[8:], ends[8:], np.array([9 * H]), np.array([1.0, 1.0]), np.array([0.5, 0.5]),
                     2 * H, known={0: (np.array([3.0, 3.0]), True)})
    assert (again.z == got.z[8:]).all() and not again.unscored.any() and again.finished == []


WORK_ORDER = pd.Timestamp("2024-01-03T06:05:00Z")
GAIN = 1.4


def _stepped(trained, dest):
    """A store where the healthy fan reads GAIN x its vibration from WORK_ORDER on (no work order logged), and
    the model as if calibrated on data before it (the exact rule; and the wall-clock one of older directories)."""
    store = trained.fresh_store(dest)
    vib = store.read("vibration", HEALTHY, WORK_ORDER)
    tags = [c for c in vib.attrs["tags"] if c in vib.columns]
    vib[SCALED_FEATURES] = vib[SCALED_FEATURES] * GAIN
    store.write(vib, "vibration", tags, SCALED_FEATURES)
    bundle = load(trained.model)
    bundle.detect["machines"][HEALTHY]["work_orders_seen_to"] = trained.start.value
    bundle.metadata["data"]["stop"] = str(trained.start)
    return store, bundle


@pytest.fixture(scope="module")
def repaired(trained, tmp_path_factory):
    """The healthy fan reads GAIN x its vibration from WORK_ORDER on (a new bearing, say), and a model
    whose calibration ended before that."""
    store, bundle = _stepped(trained, tmp_path_factory.mktemp("rebase") / "s.duckdb")
    # Scored before the work order is logged, then with it.
    without = score_machines(store, bundle, [HEALTHY], start=trained.start, stop=trained.stop, progress=False,
                             write=False).machines[HEALTHY]
    store.write([{"measurement": "operator_log", "time": WORK_ORDER.value,
                  "tags": {"machine": HEALTHY, "event_type": "work_order"},
                  "fields": {"message": "replaced DE bearing", "severity": 1}}])
    return store, bundle, without


def test_after_a_work_order_the_machine_is_scored_against_its_new_baseline(repaired, trained):
    store, bundle, without = repaired
    after = without.scores[without.scores.index >= WORK_ORDER + pd.Timedelta("3D")]["ratio"]
    before = without.scores[without.scores.index < WORK_ORDER]["ratio"]
    assert after.median() > 2 * before.median() and without.alarms  # the new normal looks like a fault
    r = score_machines(store, bundle, [HEALTHY], start=trained.start, stop=trained.stop, progress=False,
                       write=False).machines[HEALTHY]
    s = r.scores["ratio"]
    window = pd.Timedelta("12h")  # 72 steps of 10 min
    assert s[s.index < WORK_ORDER].equals(before)  # nothing changes before it
    spans = s[(s.index > WORK_ORDER) & (s.index < WORK_ORDER + window)]
    assert len(spans) == 6 and spans.isna().all()
    base = s[(s.index >= WORK_ORDER + window) & (s.index < WORK_ORDER + window + pd.Timedelta("48h"))]
    assert len(base) == 24 and base.isna().all()  # 48 h of windows at the 2 h stride
    later = s[s.index >= WORK_ORDER + window + pd.Timedelta("48h")]
    assert len(later) > 10 and later.notna().all()
    assert later.median() < 0.5 * after.median() and later.median() < 1.0
    assert not [a for a in r.alarms if a.start > WORK_ORDER.value]
    assert "1 work order(s) since the calibration" in r.message and "30 window(s) not scored" in r.message


def test_seen_until_is_where_the_calibration_windows_after_a_time_hold_a_baselines_worth():
    """Counted in calibration windows, not on the clock: a machine stopped over its calibration's last days
    saw less of a work order than the wall-clock rule (``counted_from``) says."""
    rb = Rebaseline(hours=6, min_windows=2)
    step = H // 2  # calibration windows every 30 min: a baseline's worth is 12 of them
    starts = np.arange(0, 100 * H, step, dtype=np.int64)
    assert rb.seen_until(starts, step) == starts[-12]
    # the machine stood still for the last 20 h: the 12 windows before that
    ran = starts[starts < 80 * H]
    assert rb.seen_until(ran, step) == ran[-12] < rb.counted_from(int(starts[-1]) + step)
    assert rb.seen_until(starts[:5], step) == 0  # fewer than a baseline's worth: their first start
    assert rb.seen_until(np.zeros(0, np.int64), step) == 0
    assert rb.seen_until(starts[::-1], step) == starts[-12]  # order of the windows does not matter


def test_a_work_order_shortly_before_the_end_of_the_calibration_data_still_takes_a_new_baseline(repaired, trained):
    """Calibration data that held only 10 h of the machine after the work order held it as it was before
    (dev seed 5's comp-015: an alarm for four weeks): the order is re-baselined as one after the
    calibration; one whose calibration windows after it hold a baseline's worth is taken as in it.
    The same with model directories from before ``work_orders_seen_to`` (60 h of wall-clock time)."""
    from pdm.detect.score import orders_from

    store, bundle, _ = repaired
    rb = Rebaseline.from_dict(bundle.detect.get("rebaseline"))
    d = bundle.detect["machines"][HEALTHY]
    # as trained: a baseline's worth before its last window, or its first when it holds less (this short fleet)
    cal = load(trained.model).detect["machines"][HEALTHY]
    assert cal["calibration_from"] <= cal["work_orders_seen_to"] <= max(cal["calibration_from"],
                                                                       cal["calibration_to"] - rb.hours * H)
    assert orders_from(bundle, HEALTHY, rb) == d["work_orders_seen_to"] + 1
    assert rb.counted_from(WORK_ORDER.value + 10 * H) < WORK_ORDER.value < rb.counted_from(WORK_ORDER.value + 60 * H)
    assert rb.counted_from(0) == 0  # unknown calibration: every work order counts
    after = score_machines(store, bundle, [HEALTHY], start=trained.start, stop=trained.stop, progress=False,
                           write=False).machines[HEALTHY]
    stop, seen_to = bundle.metadata["data"]["stop"], d["work_orders_seen_to"]

    def score(**changes: object) -> object:
        try:
            for k, v in changes.items():
                if k == "stop":
                    bundle.metadata["data"]["stop"] = v
                elif v is None:
                    del d[k]
                else:
                    d[k] = v
            return score_machines(store, bundle, [HEALTHY], start=trained.start, stop=trained.stop, progress=False,
                                  write=False).machines[HEALTHY]
        finally:
            bundle.metadata["data"]["stop"] = stop
            d["work_orders_seen_to"] = seen_to

    runs = {"late": score(work_orders_seen_to=WORK_ORDER.value - 1),
            "seen": score(work_orders_seen_to=WORK_ORDER.value),
            "late_clock": score(work_orders_seen_to=None, stop=str(WORK_ORDER + pd.Timedelta("10h"))),
            "seen_clock": score(work_orders_seen_to=None, stop=str(WORK_ORDER + pd.Timedelta("60h")))}
    for late, seen in (("late", "seen"), ("late_clock", "seen_clock")):
        lr, sr = runs[late], runs[seen]
        assert lr.scores["ratio"].equals(after.scores["ratio"]) and "1 work order(s)" in lr.message
        assert lr.scores["ratio"].isna().sum() >= 30  # the windows spanning it and the new baseline's
        # Taken as in the calibration: no window left unscored for it, and the new normal alarms.
        s = sr.scores["ratio"]
        assert "work order(s) since" not in sr.message and s.isna().sum() <= lr.scores["ratio"].isna().sum() - 30
        assert s[s.index >= WORK_ORDER + pd.Timedelta("3D")].median() > 2 * s[s.index < WORK_ORDER].median() and sr.alarms


def test_scoring_across_a_new_baseline_in_two_runs_equals_scoring_at_once(repaired, trained):
    store, bundle, _ = repaired
    whole = score_machines(store, bundle, [HEALTHY], start=trained.start, stop=trained.stop, progress=False)
    at_once = store.read(SCORE, HEALTHY)
    store.delete(SCORE, trained.start, trained.stop, HEALTHY)
    store.delete(ALARM, trained.start, trained.stop, HEALTHY)
    mid = WORK_ORDER + pd.Timedelta("36h")  # inside the baseline: the second run scores its first half again
    score_machines(store, bundle, [HEALTHY], start=trained.start, stop=mid, progress=False)
    second = score_machines(store, bundle, [HEALTHY], start=mid, stop=trained.stop, progress=False)
    pieces = store.read(SCORE, HEALTHY)
    pd.testing.assert_index_equal(at_once.index, pieces.index)
    assert np.allclose(at_once["score"], pieces["score"], rtol=1e-5, atol=1e-6, equal_nan=True)
    assert second.machines[HEALTHY].scores["score"].notna().any()
    assert len(whole.machines[HEALTHY].scores) == len(at_once)


def test_a_finished_baseline_is_kept_in_the_store_and_later_runs_read_it(repaired, trained, tmp_path, monkeypatch):
    import pdm.detect.score as score_mod
    from pdm.detect.persist import read_baselines

    store, bundle, _ = repaired
    last_day = trained.stop - pd.Timedelta("1D")
    first = score_machines(store, bundle, [HEALTHY], start=trained.start, stop=last_day, progress=False)
    kept = read_baselines(store, HEALTHY, bundle.version, WORK_ORDER.value, WORK_ORDER.value + 1)
    assert list(kept) == [WORK_ORDER.value]
    b = kept[WORK_ORDER.value]
    assert b["taken"] and b["windows"] == 24 and len(b["levels"]) == len(bundle.scalers[HEALTHY].channels)
    assert first.machines[HEALTHY].scores["score"].notna().any()

    calls = []
    real = score_mod._window_errors
    monkeypatch.setattr(score_mod, "_window_errors", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    with_cache = score_machines(store, bundle, [HEALTHY], start=last_day, stop=trained.stop, progress=False,
                                write=False).machines[HEALTHY]
    assert len(calls) == 1  # only the range's windows: the baseline's levels came from the store
    store.delete("pdm_baseline", WORK_ORDER, WORK_ORDER + pd.Timedelta(1, "ns"), HEALTHY)
    again = score_machines(store, bundle, [HEALTHY], start=last_day, stop=trained.stop, progress=False,
                           write=False).machines[HEALTHY]
    assert len(calls) == 3  # without it, the baseline's windows were scored again, to the same result
    assert np.allclose(with_cache.scores["score"], again.scores["score"], rtol=1e-5, atol=1e-6, equal_nan=True)


def test_a_work_order_closes_the_alarm_open_before_it_in_the_store_and_across_runs(trained, tmp_path):
    """The fan's vibration steps up (no work order for it): an alarm. An inspection's work order a day into it
    closes it (status 'closed by work order', end at the order), and its new baseline takes the new level as
    normal, so no alarm is raised again. Scored in two runs, the first before the order, as at once."""
    from pdm.store.schema import CLOSED_BY_WORK_ORDER

    store, bundle = _stepped(trained, tmp_path / "s.duckdb")
    plain = score_machines(store, bundle, [HEALTHY], start=trained.start, stop=trained.stop, progress=False,
                           write=False).machines[HEALTHY].alarms
    raised = [a for a in plain if a.start > WORK_ORDER.value]
    assert raised and raised[0].end is None  # open to the end
    order = pd.Timestamp(raised[0].start, tz="UTC") + pd.Timedelta("25h")
    store.write([{"measurement": "operator_log", "time": order.value,
                  "tags": {"machine": HEALTHY, "event_type": "work_order"},
                  "fields": {"message": "inspected: bearing play within limits", "severity": 1}}])
    whole = score_machines(store, bundle, [HEALTHY], start=trained.start, stop=trained.stop, progress=False,
                           write=False).machines[HEALTHY].alarms
    closed = [a for a in whole if a.start == raised[0].start]
    assert closed and closed[0].end == order.value and closed[0].by_work_order
    assert not [a for a in whole if a.start > order.value]  # the new baseline holds the new level
    mid = order - pd.Timedelta("6h")
    first = score_machines(store, bundle, [HEALTHY], start=trained.start, stop=mid, progress=False)
    assert first.machines[HEALTHY].open_alarm  # the first run ends before the order: still open
    score_machines(store, bundle, [HEALTHY], start=mid, stop=trained.stop, progress=False)
    stored = store.read(ALARM, HEALTHY)
    row = stored.loc[pd.Timestamp(raised[0].start, tz="UTC")]
    assert row["status"] == CLOSED_BY_WORK_ORDER and int(row["end_ns"]) == order.value
    assert [(int(t.value), int(e)) for t, e in stored["end_ns"].items()] == [(a.start, a.end) for a in whole]
