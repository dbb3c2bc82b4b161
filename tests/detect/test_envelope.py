"""The operating envelope: windows at a speed or load the model never saw get no score."""

from __future__ import annotations

import numpy as np

from pdm.detect.errors import operating_points
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


def test_a_recalibration_or_fine_tune_widens_the_envelope_and_never_narrows_it():
    from pdm.model.pipeline import merge_calibration

    first = OperatingEnvelope(q=0.0, margin=0.0).fit({"speed": np.array([]), "load": np.array([0.5, 0.8])})
    recent = OperatingEnvelope(q=0.0, margin=0.0).fit({"speed": np.array([0.9, 1.0]), "load": np.array([0.7, 1.1])})
    merged = merge_calibration({"m": {"envelope": first.to_dict(), "x": 1}, "k": {"x": 2}},
                               {"m": {"envelope": recent.to_dict(), "x": 3}})
    env = OperatingEnvelope.from_dict(merged["m"]["envelope"])
    assert merged["m"]["x"] == 3 and merged["k"] == {"x": 2}
    assert env.lo == [0.9, 0.5] and env.hi == [1.0, 1.1]
