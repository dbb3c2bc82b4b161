"""Windows outside the operating envelope, scored against their excursion's own baseline (pdm.detect.excursion)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pdm.detect.excursion import (
    IDLE,
    INSIDE,
    OUT,
    RESET,
    VALUE_SPREAD_MIN,
    ExcursionBaseline,
    Fitted,
    theil_sen,
)
from pdm.detect.persist import read_baselines, read_excursion_baseline
from pdm.detect.rootcause import EXCURSION_CHANGE
from pdm.detect.score import score_machines
from pdm.model.directory import load
from pdm.store.schema import BASELINE, NEW_REGIME, OUTSIDE_ENVELOPE, ROOTCAUSE, SCORE, TEMPERATURE
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
    about_median = ExcursionBaseline(hours=8.0, min_windows=4, detrend=False)  # the baseline is a ramp
    got = about_median.apply(z, kind, _times(len(kind)), STRIDE)
    level, spread = about_median.fit(z[:4])
    assert level[0] == 3.0 and spread[0] == pytest.approx(6.0 / 1.349)
    assert got.z[8:12, 0] == pytest.approx((20.0 - level[0]) / spread[0])
    plain = ExcursionBaseline(hours=8.0, spread=False).apply(z, kind, _times(len(kind)), STRIDE)
    assert plain.z[8, 0] == pytest.approx(20.0 - level[0]) and plain.z[8, 0] > got.z[8, 0]
    # after the work order, a new excursion and a new baseline
    assert got.baseline[13:17].all() and got.scored[17:].all() and len(got.finished) == 2
    assert not ExcursionBaseline(enabled=False).apply(z, kind, _times(len(kind)), STRIDE).scored.any()


def test_a_baseline_rising_throughout_is_spread_about_its_trend_not_about_its_median():
    """A fault growing through an excursion's baseline: measured about the median, its rise would count as the
    extrapolation's noise and hide the growth after it (seed 2027's pump-016); about its line, only the window
    to window scatter does. A baseline without a trend is spread alike either way."""
    rng = np.random.default_rng(3)
    rule = ExcursionBaseline(hours=48.0)  # 24 windows at a 2 h stride
    kind = np.array([OUT] * 30)
    t = _times(30)
    noise = rng.normal(0.0, 1.5, 30)
    rising = np.c_[np.linspace(29.0, 43.0, 24).tolist() + [44.0, 45.0, 46.0, 47.0, 48.0, 49.0] + noise]
    got = rule.apply(rising, kind, t, STRIDE)
    flat = ExcursionBaseline(hours=48.0, detrend=False).apply(rising, kind, t, STRIDE)
    spread, flat_spread = got.finished[0]["spread"][0], flat.finished[0]["spread"][0]
    assert flat_spread > 4.0  # the ramp's 14 over 48 h, read as noise
    assert 1.0 <= spread < 2.5  # the noise's 1.5
    assert got.finished[0]["levels"] == flat.finished[0]["levels"]  # the level is the median either way
    assert (got.z[24:, 0] > 3.0 * flat.z[24:, 0]).all() and (got.z[24:, 0] > 5.0).all()
    # with no trend the two agree to the noise
    steady = np.c_[36.0 + noise]
    a = rule.fit(steady[:24], t[:24])[1][0]
    b = ExcursionBaseline(detrend=False).fit(steady[:24])[1][0]
    assert a == pytest.approx(b, rel=0.25)


def test_theil_sen_slopes_per_channel_ignore_an_outlier_and_unseen_windows():
    t = np.arange(10, dtype=float) * 2.0
    y = np.c_[3.0 * t + 1.0, 0.5 * t, np.full(10, np.nan), np.r_[1.0, [np.nan] * 9]]
    y[9, 1] = 100.0  # one outlying window
    y[4, 0] = np.nan
    slope = theil_sen(t, y)
    assert slope[0] == pytest.approx(3.0) and slope[1] == pytest.approx(0.5)
    assert np.isnan(slope[2]) and np.isnan(slope[3])  # fewer than two points


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


def test_scored_windows_carry_each_channels_change_since_the_baseline():
    """What the machine itself did, against the baseline's median and spread (root cause ranks by it)."""
    kind = np.array([INSIDE] + [OUT] * 7)
    z = np.zeros((len(kind), 2))
    levels = np.zeros((len(kind), 2))
    levels[1:5, 0] = [1.0, 1.2, 0.8, 1.0]  # median 1.0, quartiles 0.95 and 1.05: spread 0.1 / 1.349
    levels[1:5, 1] = 3.0  # steady: the smallest spread
    levels[5:, 0], levels[5:, 1] = 1.5, 3.0 + np.array([0.0, 0.01, 0.5])
    got = RULE.apply(z, kind, _times(len(kind)), STRIDE, levels=levels)
    assert np.flatnonzero(got.scored).tolist() == [5, 6, 7]
    assert got.change[5:, 0] == pytest.approx([0.5] * 3) and got.change[5:, 1] == pytest.approx([0.0, 0.01, 0.5])
    assert got.change_z[5, 0] == pytest.approx(0.5 / (0.1 / 1.349))
    assert got.change_z[7, 1] == pytest.approx(0.5 / VALUE_SPREAD_MIN)
    assert np.isnan(got.change[:5]).all()  # inside, settling and baseline windows: no change
    assert got.finished[0]["value_levels"] == pytest.approx([1.0, 3.0])
    # a baseline read back without the channels' levels gives none
    known = {int(_times(8)[1]): Fitted(np.zeros(2), np.ones(2))}
    old = RULE.apply(z[5:], kind[5:], _times(8)[5:], STRIDE, ongoing=int(_times(8)[1]), known=known,
                     levels=levels[5:])
    assert old.scored.all() and np.isnan(old.change).all()
    assert RULE.apply(z, kind, _times(len(kind)), STRIDE).change is None


@pytest.mark.parametrize("cut", [3, 6, 9])
def test_in_pieces_as_at_once(cut):
    """A range that begins in an excursion continues it: its start, and the baseline if finished (else its
    windows again), as pdm's scorer gives them from pdm_score and pdm_baseline."""
    rng = np.random.default_rng(1)
    kind = np.array([INSIDE, OUT, OUT, IDLE, OUT, OUT, OUT, OUT, IDLE, OUT, OUT, OUT])
    z = rng.normal(2.0, 1.5, (len(kind), 3))
    lv = rng.normal(0.0, 1.0, (len(kind), 3))
    t = _times(len(kind))
    whole = RULE.apply(z, kind, t, STRIDE, levels=lv)
    first = RULE.apply(z[:cut], kind[:cut], t[:cut], STRIDE, levels=lv[:cut])
    start = int(t[1])
    if first.finished:  # the baseline is stored: the second piece reads it
        b = first.finished[0]
        known = {start: Fitted(*(np.asarray(b[k]) for k in ("levels", "spread", "value_levels", "value_spread")))}
        second = RULE.apply(z[cut:], kind[cut:], t[cut:], STRIDE, ongoing=start, known=known, levels=lv[cut:])
        rest = slice(None)
    else:  # not yet: the scorer scores its outside windows so far again, in front of the new ones
        again = np.flatnonzero(first.baseline)
        zz, kk, tt = np.concatenate([z[again], z[cut:]]), np.concatenate([kind[again], kind[cut:]]), \
            np.concatenate([t[again], t[cut:]])
        second = RULE.apply(zz, kk, tt, STRIDE, ongoing=start, levels=np.concatenate([lv[again], lv[cut:]]))
        rest = slice(len(again), None)
    assert np.array_equal(np.concatenate([first.scored, second.scored[rest]]), whole.scored)
    assert np.allclose(np.concatenate([first.z, second.z[rest]]), whole.z)
    assert np.allclose(np.concatenate([first.change_z, second.change_z[rest]]), whole.change_z, equal_nan=True)
    assert whole.scored.any() and np.isfinite(whole.change_z[whole.scored]).all()


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
    kept = read_excursion_baseline(at_once, HEALTHY, bundle.version, int(t0.value))
    assert kept is not None and kept.value_levels is not None and kept.value_spread is not None
    n_ch = len(bundle.scalers[HEALTHY].channels)
    assert len(kept.levels) == len(kept.spread) == len(kept.value_levels) == n_ch and (kept.spread >= 1).all()
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


def test_an_alarm_in_an_excursion_names_what_moved_since_its_baseline(trained, tmp_path):
    """Inside an excursion the model extrapolates (its errors mix every channel into every other): the root cause
    ranks each channel's change since the excursion's baseline, and says so; in pieces as at once."""
    bundle = load(trained.model)
    env = bundle.detect["machines"][HEALTHY]["envelope"]
    env["hi"][1] = env["lo"][1] + 1e-6  # every window outside, as above
    bundle.detect["excursion"] = {"hours": 8.0, "min_windows": 4}
    start, stop = trained.stop - pd.Timedelta("3D"), trained.stop
    hot_from = stop - pd.Timedelta("20h")  # the winding runs hot (blocked cooling) well after the baseline

    def heat(store):
        temp = store.read(TEMPERATURE, HEALTHY, hot_from, stop)
        temp = temp[temp["sensor"] == "winding"]
        assert len(temp) > 100
        store.write([{"measurement": TEMPERATURE, "time": t,
                      "tags": {k: row[k] for k in ("plant", "line", "machine", "sensor")},
                      "fields": {"celsius": float(row["celsius"]) + 15.0}} for t, row in temp.iterrows()])
        return store

    def top(store):
        rc = store.read(ROOTCAUSE)
        first = rc[rc["alarm"] == rc["alarm"].min()]
        maps = json.loads(first.loc[first["rank"] == "maps", "maps_json"].iloc[-1])
        return first.loc[first["rank"] == "c01", "channel"].iloc[0], maps["ranked_by"]

    at_once = heat(trained.fresh_store(tmp_path / "a.duckdb"))
    whole = score_machines(at_once, bundle, [HEALTHY], start=start, stop=stop, progress=False).machines[HEALTHY]
    assert whole.alarms and whole.alarms[0].start >= hot_from.value
    assert whole.scores.loc[pd.Timestamp(whole.alarms[0].start, tz="UTC"), "state"] == NEW_REGIME
    rc = whole.rootcauses[int(whole.alarms[0].start)]
    assert rc.maps["ranked_by"] == EXCURSION_CHANGE
    assert rc.top_channel == "temperature.winding.celsius" and rc.channels[0]["zscore"] > 10
    assert top(at_once) == ("temperature.winding.celsius", EXCURSION_CHANGE)
    pieces = heat(trained.fresh_store(tmp_path / "p.duckdb"))
    for a, b in [(start, hot_from - pd.Timedelta("2D")), (hot_from - pd.Timedelta("2D"), hot_from), (hot_from, stop)]:
        score_machines(pieces, bundle, [HEALTHY], start=a, stop=b, progress=False)
    assert top(pieces) == top(at_once)
    got, want = pieces.read(ROOTCAUSE), at_once.read(ROOTCAUSE)
    assert got["channel"].dropna().tolist() == want["channel"].dropna().tolist()
    assert np.allclose(got["zscore"].to_numpy(float), want["zscore"].to_numpy(float), equal_nan=True)
