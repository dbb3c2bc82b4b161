"""Calibration edge cases: channels never seen healthy, and overlap-free calibration windows."""

from __future__ import annotations

import json

import numpy as np

from pdm.detect.stages import ChannelCalibrator
from pdm.features.windows import WindowSet
from pdm.model.pipeline import FeatureConfig, split_calibration


def test_a_channel_without_healthy_errors_cannot_raise_the_score_and_survives_json():
    healthy = np.column_stack([np.random.default_rng(0).normal(1.0, 0.1, 200), np.full(200, np.nan)])
    cal = ChannelCalibrator(top_k=1).fit(healthy)
    later = np.array([[1.0, 50.0], [3.0, 50.0]])  # channel 1 only now reports, channel 0 steps up
    assert cal.apply(later)[0] == 0.0 and cal.apply(later)[1] > 10
    back = ChannelCalibrator.from_dict(json.loads(json.dumps(cal.to_dict(), allow_nan=False)))
    assert np.array_equal(back.apply(later), cal.apply(later))


def _windows(n: int, stride_ns: int) -> WindowSet:
    z = np.zeros((n, 1, 8), np.float32)
    return WindowSet(z, z + 1, z, z, np.arange(n, dtype=np.int64) * stride_ns, np.full(n, "m", object), ["c"])


def test_calibration_takes_the_last_running_windows_and_training_none_that_overlap_them():
    feats = FeatureConfig(step="10min", window=72, stride=6)  # windows overlap 11 of 12 strides
    stride_ns = 6 * 600 * 10**9
    n = 200
    active = np.ones(n, bool)
    active[170:] = False  # the machine stood still at the end (a weekend)
    fit, cal, note = split_calibration(_windows(n, stride_ns), feats, active)
    assert note == ""
    assert len(cal) == 36 and cal.start.max() == 169 * stride_ns  # last running windows, 3 window lengths
    window_ns = 72 * 600 * 10**9
    gaps = np.abs(fit.start[:, None] - cal.start[None, :])
    assert (gaps >= window_ns).all() and len(fit) > 100
    assert (fit.start > cal.start.max()).any()  # the idle windows after calibration still train
