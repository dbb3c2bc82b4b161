"""Windows outside the operating envelope, scored against their excursion's own baseline (pdm.detect.excursion)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pdm.detect.excursion import IDLE, INSIDE, OUT, RESET, ExcursionBaseline
from pdm.detect.persist import read_baselines, read_excursion_baseline
from pdm.detect.score import score_machines
from pdm.model.directory import load
from pdm.store.schema import BASELINE, NEW_REGIME, OUTSIDE_ENVELOPE, SCORE
from tests.detect.conftest import HEALTHY

H = 3_600_000_000_000
STRIDE = 2 * H
RULE = ExcursionBaseline(hours=8.0, min_windows=4)  # 4 windows at a 2 h stride


def _times(n: int) -> np.ndarray:
    return (np.arange(n, dtype=np.int64) + 1) * STRIDE


def test_an_excursion_takes_its_first_running_windows_as_baseline_and_scores_the_rest_against_them():
    kind = np.array([INSIDE, INSIDE, OUT, IDLE, OUT, OUT, IDLE, OUT, OUT, OUT, INSIDE, OUT, OUT])
    z = np.zeros((len(kind), 2))
    z[kind == OUT] = [5.0, -2.0]  # the extrapolation's bias: one channel up, one down
    z[8:10, 0] = [5.0, 9.0]  # a fault grows after the baseline
    got = RULE.apply(z, kind, _times(len(kind)), STRIDE)
    assert RULE.need(STRIDE) == 4
    # the first four windows that ran outside (stopped ones do not count, nor end it) are the baseline
    assert np.flatnonzero(got.baseline).tolist() == [2, 4, 5, 7, 11, 12]
    assert np.flatnonzero(got.scored).tolist() == [8, 9]
    # level 5 on the first channel; the second's median is below 0, so it stays (only up); spread 1 (constant)
    assert got.z[8].tolist() == [0.0, -2.0] and got.z[9].tolist() == [4.0, -2.0]
    assert got.z[0].tolist() == z[0].tolist()  # inside windows untouched
    # one baseline finished (the second excursion, after the window inside, has only 2 windows)
    assert [b["time"] for b in got.finished] == [int(_times(13)[2])]
    assert got.finished[0]["levels"] == [5.0, 0.0] and got.finished[0]["last_ns"] == int(_times(13)[7])


def test_a_noisy_baseline_scales_its_channel_down_and_a_work_order_ends_the_excursion():
    kind = np.array([OUT] * 12 + [RESET] + [OUT] * 6)
    z = np.zeros((len(kind), 1))
    z[:8, 0] = [-3.0, 1.0, 5.0, 9.0, 0.0, 4.0, 2.0, 6.0]  # the baseline: median 3, quartiles 0 and 6
    z[8:12, 0] = 20.0
    got = RULE.apply(z, kind, _times(len(kind)), STRIDE)
    level, spread = RULE.fit(z[:4])
    assert level[0] == 3.0 and spread[0] == pytest.approx(6.0 / 1.349)
    assert got.z[8:12, 0] == pytest.approx((20.0 - level[0]) / spread[0])
    plain = ExcursionBaseline(hours=8.0, spread=False).apply(z, kind, _times(len(kind)), STRIDE)
    assert plain.z[8, 0] == pytest.approx(20.0 - level[0]) and plain.z[8, 0] > got.z[8, 0]
    # after the work order, a new excursion and a new baseline
    assert got.baseline[13:17].all() and got.scored[17:].all() and len(got.finished) == 2
    assert not ExcursionBaseline(enabled=False).apply(z, kind, _times(len(kind)), STRIDE).scored.any()


def test_windows_that_began_before_the_excursion_are_in_no_baseline():
    """They hold the change of duty itself (temperatures settling after a load step): no score, no level."""
    kind = np.array([INSIDE, INSIDE] + [OUT] * 10)
    z = np.ones((len(kind), 1))
    z[2:5, 0] = 40.0  # the transition
    t = _times(len(kind))
    got = RULE.apply(z, kind, t, STRIDE, window_ns=3 * STRIDE)  # windows three strides long
    assert np.flatnonzero(got.baseline).tolist() == [2, 3, 4, 5, 6, 7, 8]  # 3 settling, then 4 of baseline
    assert np.flatnonzero(got.scored).tolist() == [9, 10, 11] and got.z[9:, 0] == pytest.approx(0.0)
    assert got.finished[0]["time"] == int(t[2]) and got.finished[0]["levels"] == [1.0]
    unsettled = ExcursionBaseline(hours=8.0, settle=False).apply(z, kind, t, STRIDE, window_ns=3 * STRIDE)
    assert np.flatnonzero(unsettled.scored).tolist() == [6, 7, 8, 9, 10, 11] and unsettled.finished[0]["levels"] == [40.0]


@pytest.mark.parametrize("cut", [3, 6, 9])
def test_in_pieces_as_at_once(cut):
    """A range that begins in an excursion continues it: its start, and the baseline if finished (else its
    windows again), as pdm's scorer gives them from pdm_score and pdm_baseline."""
    rng = np.random.default_rng(1)
    kind = np.array([INSIDE, OUT, OUT, IDLE, OUT, OUT, OUT, OUT, IDLE, OUT, OUT, OUT])
    z = rng.normal(2.0, 1.5, (len(kind), 3))
    t = _times(len(kind))
    whole = RULE.apply(z, kind, t, STRIDE)
    first = RULE.apply(z[:cut], kind[:cut], t[:cut], STRIDE)
    start = int(t[1])
    if first.finished:  # the baseline is stored: the second piece reads it
        known = {start: (np.asarray(first.finished[0]["levels"]), np.asarray(first.finished[0]["spread"]))}
        second = RULE.apply(z[cut:], kind[cut:], t[cut:], STRIDE, ongoing=start, known=known)
        rest = slice(None)
    else:  # not yet: the scorer scores its outside windows so far again, in front of the new ones
        again = np.flatnonzero(first.baseline)
        zz, kk, tt = np.concatenate([z[again], z[cut:]]), np.concatenate([kind[again], kind[cut:]]), \
            np.concatenate([t[again], t[cut:]])
        second = RULE.apply(zz, kk, tt, STRIDE, ongoing=start)
        rest = slice(len(again), None)
    assert np.array_equal(np.concatenate([first.scored, second.scored[rest]]), whole.scored)
    assert np.allclose(np.concatenate([first.z, second.z[rest]]), whole.z)
    assert whole.scored.any()


def test_the_scorer_scores_a_long_excursion_against_its_own_baseline_in_pieces_as_at_once(trained, tmp_path):
    bundle = load(trained.model)
    env = bundle.detect["machines"][HEALTHY]["envelope"]
    env["hi"][1] = env["lo"][1] + 1e-6  # pretend it was trained at its lowest load only: every window is outside
    bundle.detect["excursion"] = {"hours": 8.0, "min_windows": 4}
    start, stop = trained.stop - pd.Timedelta("3D"), trained.stop
    at_once = trained.fresh_store(tmp_path / "a.duckdb")
    whole = score_machines(at_once, bundle, [HEALTHY], start=start, stop=stop, progress=False).machines[HEALTHY]
    states = whole.scores["state"]
    ran = states != "not_running"
    # windows that began before the excursion's first one ended settle; the next four are its baseline
    t0 = states[ran].index[0]
    window = pd.Timedelta(bundle.config["features"]["step"]) * int(bundle.config["features"]["window"])
    unscored = int((states[ran].index < t0 + window).sum()) + 4
    assert 4 < unscored < int(ran.sum())
    assert (states[ran].iloc[:unscored] == OUTSIDE_ENVELOPE).all()  # not scored
    assert (states[ran].iloc[unscored:] == NEW_REGIME).all()
    assert whole.scores.loc[states == NEW_REGIME, "score"].notna().all()
    assert whole.outside == int(ran.sum()) and whole.new_regime == int(ran.sum()) - unscored
    assert "scored against their excursion's own baseline" in whole.message
    # its baseline is kept (tagged as an excursion's), and a work order's new baseline is not mistaken for it
    levels, spread = read_excursion_baseline(at_once, HEALTHY, bundle.version, int(t0.value))
    assert len(levels) == len(spread) == len(bundle.scalers[HEALTHY].channels) and (spread >= 1).all()
    assert at_once.read(BASELINE)["kind"].tolist() == ["excursion"]
    assert read_baselines(at_once, HEALTHY, bundle.version, 0, stop.value) == {}
    # in pieces (the DAG's runs): cut while settling, inside the baseline (its windows so far scored again)
    # and after it (its levels read back)
    pieces = trained.fresh_store(tmp_path / "p.duckdb")
    cuts = [start, start + pd.Timedelta("5h"), t0 + window + pd.Timedelta("3h"), t0 + window + pd.Timedelta("1D"),
            stop]
    assert cuts == sorted(cuts)
    for a, b in zip(cuts, cuts[1:], strict=False):
        score_machines(pieces, bundle, [HEALTHY], start=a, stop=b, progress=False)
    got, want = pieces.read(SCORE), at_once.read(SCORE)
    assert got["state"].tolist() == want["state"].tolist()
    assert np.allclose(got["score"].to_numpy(float), want["score"].to_numpy(float), equal_nan=True)
    # switched off (detect.json "excursion": {"enabled": false}): outside windows are not scored at all
    bundle.detect["excursion"] = {"enabled": False}
    off = score_machines(trained.fresh_store(tmp_path / "o.duckdb"), bundle, [HEALTHY], start=start, stop=stop,
                         progress=False).machines[HEALTHY]
    assert off.scores["score"].isna().all() and off.new_regime == 0
