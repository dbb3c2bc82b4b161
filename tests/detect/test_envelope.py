"""The operating envelope: windows at a speed or load the model never saw get no score."""

from __future__ import annotations

import numpy as np

from pdm.detect.errors import _ranges, inside_envelope, operating_points
from pdm.detect.stages import AlarmRule, OperatingEnvelope
from pdm.features.grid import CONTEXT_CHANNELS
from pdm.features.windows import WindowSet


def _windows(load: list[float], running: list[float], t: int = 10) -> WindowSet:
    n, k = len(load), len(CONTEXT_CHANNELS)
    ctx = np.zeros((n, k, t), np.float32)
    ctx[:, CONTEXT_CHANNELS.index("load")] = np.asarray(load, np.float32)[:, None]
    ctx[:, CONTEXT_CHANNELS.index("speed")] = 0.9
    ctx[:, CONTEXT_CHANNELS.index("running")] = np.asarray(running, np.float32)[:, None]
    z = np.zeros((n, 1, t), np.float32)
    return WindowSet(values=z, mask=z + 1, context=ctx, events=np.zeros((n, 1, t), np.float32),
                     start=np.arange(n, dtype=np.int64), machine=np.array(["m"] * n, dtype=object), channels=["c"])


def test_envelope_is_the_trained_range_widened_by_the_margin():
    env = OperatingEnvelope(q=0.0, margin=0.1).fit({"speed": np.full(100, 0.9), "load": np.linspace(0.5, 0.9, 100)})
    assert np.allclose([env.lo[1], env.hi[1]], [0.46, 0.94])
    inside = env.apply({"speed": np.full(5, 0.9), "load": np.array([0.45, 0.47, 0.7, 0.93, 0.95])})
    assert inside.tolist() == [False, True, True, True, False]


def test_a_field_never_recorded_or_a_window_that_never_ran_constrains_nothing():
    env = OperatingEnvelope().fit({"speed": np.array([]), "load": np.linspace(0.5, 0.9, 100)})
    assert env.lo[0] is None
    assert env.apply({"speed": np.array([5.0, 0.1]), "load": np.array([np.nan, 0.7])}).tolist() == [True, True]
    again = OperatingEnvelope.from_dict(env.to_dict())
    assert again == env
    # Points with none of the envelope's fields: every window is inside, one flag per window.
    assert env.apply({"temperature": np.array([1.0, 2.0, 3.0])}).tolist() == [True, True, True]


def test_the_operating_point_is_the_median_over_running_steps_only():
    w = _windows(load=[0.7, 0.0], running=[1.0, 0.0])
    w.context[0, CONTEXT_CHANNELS.index("load"), :3] = 5.0  # a few odd steps do not move the median
    w.context[0, CONTEXT_CHANNELS.index("running"), 8:] = 0.0  # stopped steps do not count
    w.context[0, CONTEXT_CHANNELS.index("load"), 8:] = 0.0
    pts = operating_points(w, w.context[:, CONTEXT_CHANNELS.index("running")])
    assert np.isclose(pts["load"][0], 0.7) and np.isnan(pts["load"][1])


def test_windows_outside_neither_raise_nor_clear_an_alarm():
    # A new regime (load 1.35x) scores high for days: with it outside the envelope those windows are NaN,
    # which the alarm rule skips, so no episode opens.
    env = OperatingEnvelope(q=0.0).fit({"speed": np.full(50, 0.9), "load": np.linspace(0.6, 0.8, 50)})
    load = np.r_[np.full(10, 0.7), np.full(10, 1.05), np.full(10, 0.7)]
    scores = np.r_[np.full(10, 1.0), np.full(10, 9.0), np.full(10, 1.0)]
    inside = env.apply({"speed": np.full(30, 0.9), "load": load})
    times = np.arange(30, dtype=np.int64) * 3_600_000_000_000
    assert len(AlarmRule().apply(times, scores, 3.0)) == 1
    assert AlarmRule().apply(times, np.where(inside, scores, np.nan), 3.0) == []


def test_a_fine_tune_widens_the_envelope_and_never_narrows_it_a_recalibration_keeps_its_own():
    from pdm.model.pipeline import merge_calibration

    first = OperatingEnvelope(q=0.0, margin=0.0).fit({"speed": np.array([]), "load": np.array([0.5, 0.8])})
    recent = OperatingEnvelope(q=0.0, margin=0.0).fit({"speed": np.array([0.9, 1.0]), "load": np.array([0.7, 1.1])})
    before = {"m": {"envelope": first.to_dict(), "x": 1}, "k": {"x": 2}}
    merged = merge_calibration(before, {"m": {"envelope": recent.to_dict(), "x": 3}})
    env = OperatingEnvelope.from_dict(merged["m"]["envelope"])
    assert merged["m"]["x"] == 3 and merged["k"] == {"x": 2}
    assert env.lo == [0.9, 0.5] and env.hi == [1.0, 1.1]
    # A recalibration trains nothing: the envelope its calibration was given stays as it is.
    kept = merge_calibration(before, {"m": {"envelope": recent.to_dict(), "x": 3}}, widen=False)
    assert kept["m"]["envelope"] == recent.to_dict() and kept["k"] == {"x": 2}


def test_calibration_windows_outside_the_envelope_are_left_out_unless_too_few_remain():
    from pdm.model.pipeline import FeatureConfig, inside_calibration

    env = OperatingEnvelope.of_windows({"speed": np.full((50, 2), 0.9), "load": np.full((50, 2), 0.7)}, q=0.0)
    features = FeatureConfig(window=64, stride=16)  # calibration stride 4: a window length is 16 windows
    running = lambda w: w.context[:, CONTEXT_CHANNELS.index("running")]  # noqa: E731
    # The product change comes in the calibration's last 10 windows: they are left out (one that never ran stays).
    w = _windows(load=[0.7] * 20 + [1.05] * 10 + [0.0], running=[1.0] * 30 + [0.0])
    got, ran_in, outside, note = inside_calibration(env, w, running(w), features)
    assert outside == 10 and note == "" and len(got) == 21 and len(ran_in) == 21
    assert got.start.tolist() == [*range(20), 30]
    # All inside: unchanged.
    w = _windows(load=[0.7] * 20, running=[1.0] * 20)
    assert inside_calibration(env, w, running(w), features)[2:] == (0, "")
    # Too few left (10 < 16): calibrated on all of them, and the note says so.
    w = _windows(load=[0.7] * 10 + [1.05] * 20, running=[1.0] * 30)
    got, _, outside, note = inside_calibration(env, w, running(w), features)
    assert len(got) == 30 and outside == 0
    assert "20 of its 30 calibration windows ran outside" in note and "calibrated on all" in note


def _load_day(level: float, rng: np.random.Generator, n: int = 144) -> np.ndarray:
    """A day of 10-min load steps like the simulator's: a 6 h ripple, noise, a start's ramp every few hours."""
    t = np.arange(n)
    load = level * (1 + 0.08 * np.sin(2 * np.pi * t / 36)) + rng.normal(0, 0.01, n)
    load[::40] *= 0.14  # the first step after a start
    return load


def test_a_window_envelope_is_fitted_on_window_ranges_and_widened_by_margin_or_level():
    ranges = {"speed": np.full((50, 2), 0.9), "load": np.c_[np.linspace(0.60, 0.64, 50), np.linspace(0.76, 0.80, 50)]}
    env = OperatingEnvelope.of_windows(ranges, q=0.0)
    assert env.by == "window"
    # load: [0.60, 0.80], widened by max(10 % of 0.2, 5 % of 0.8) = 0.04; speed (no width): 5 % of 0.9
    assert np.allclose([env.lo[1], env.hi[1]], [0.56, 0.84])
    assert np.allclose([env.lo[0], env.hi[0]], [0.855, 0.945])
    again = OperatingEnvelope.from_dict(env.to_dict())
    assert again == env
    # A window is inside when its whole range is.
    inside = env.apply({"load": np.array([[0.57, 0.83], [0.55, 0.70], [0.70, 0.85], [np.nan, np.nan]])})
    assert inside.tolist() == [True, False, False, True]


def test_a_day_at_three_quarters_load_or_straddling_the_step_back_is_outside_the_window_envelope():
    # The held-back fleet's finding: fitted on single steps (a start's ramp reaches far below the load) and
    # applied to a window's median, the old envelope scored days at 0.7x load, which raised false alarms.
    rng = np.random.default_rng(0)
    train = np.concatenate([_load_day(0.7, rng) for _ in range(30)])
    steps = OperatingEnvelope().fit({"load": train})
    windows = np.lib.stride_tricks.sliding_window_view(train, 144)[::12]
    env = OperatingEnvelope.of_windows({"load": _ranges(windows, 0.1)})
    low, normal = _load_day(0.7 * 0.75, rng), _load_day(0.7, rng)
    straddle = np.r_[low[:48], normal[48:]]  # 8 h still at the product's load, then back
    test = _windows([0.0] * 3, [1.0] * 3, t=144)
    for i, day in enumerate([normal, low, straddle]):
        test.context[i, CONTEXT_CHANNELS.index("load")] = day
    running = test.context[:, CONTEXT_CHANNELS.index("running")]
    assert inside_envelope(steps, test, running).tolist() == [True, True, True]  # the old kind let all in
    assert inside_envelope(env, test, running).tolist() == [True, False, False]
    assert env.apply({"load": _ranges(windows, 0.1)}).mean() > 0.99  # its own training windows are inside


def test_an_envelope_saved_before_the_kinds_reads_as_a_step_envelope_and_kinds_do_not_mix():
    old = {"fields": ["speed", "load"], "q": 0.005, "margin": 0.1, "lo": [None, 0.4], "hi": [None, 0.9]}
    env = OperatingEnvelope.from_dict(old)
    assert env.by == "step"
    w = _windows(load=[0.45, 0.95], running=[1.0, 1.0])
    w.context[0, CONTEXT_CHANNELS.index("load"), :3] = 0.1  # a window's odd steps: its median is judged
    assert inside_envelope(env, w, w.context[:, CONTEXT_CHANNELS.index("running")]).tolist() == [True, False]
    new = OperatingEnvelope.of_windows({"load": np.array([[0.6, 0.8]])}, q=0.0)
    assert new.union(env) == new and env.union(new) == env


def test_the_grid_ranges_are_those_of_the_windows_cut_from_it():
    import pandas as pd

    from pdm.detect.errors import grid_operating_ranges, operating_ranges
    from pdm.features.grid import MachineGrid

    rng = np.random.default_rng(1)
    n = 400
    idx = pd.date_range("2024-01-01", periods=n, freq="10min", tz="UTC")
    load = rng.uniform(0.5, 0.9, n)
    running = (rng.uniform(size=n) > 0.2).astype(float)
    ctx = pd.DataFrame({"speed": 0.9, "load": load, "running": running, "days_since_work_order": 1.0}, index=idx)
    g = MachineGrid("m", pd.DataFrame({"c": 0.0}, index=idx), ctx, pd.DataFrame(index=idx), pd.DataFrame())
    got = grid_operating_ranges(g, 50, stride=7)
    starts = np.arange(0, n - 50 + 1, 7)
    w = _windows([0.0] * len(starts), [1.0] * len(starts), t=50)
    for i, s in enumerate(starts):
        w.context[i, CONTEXT_CHANNELS.index("load")] = load[s:s + 50]
        w.context[i, CONTEXT_CHANNELS.index("running")] = running[s:s + 50]
    want = operating_ranges(w, w.context[:, CONTEXT_CHANNELS.index("running")])
    assert got["load"].shape == (len(starts), 2)
    assert np.allclose(got["load"], want["load"], atol=1e-6)  # the windows hold float32 loads
    assert np.all(got["load"][:, 0] < got["load"][:, 1])
