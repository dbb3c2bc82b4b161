"""The detector interface every baseline (and TSHAE) implements, and small shared helpers.

A detector is fitted on healthy :class:`~pdm.features.WindowSet` windows and
returns, for any windows, an error per window and channel, shape (n, C),
NaN where a channel had no observed value in the window. Larger = more
anomalous. The (n, C) errors then go through the same stages as TSHAE's:
:class:`~pdm.detect.stages.ChannelCalibrator` (robust z-score per channel
against the healthy errors, machine score = mean of the top-k channels),
:class:`~pdm.detect.stages.POTThreshold` and
:class:`~pdm.detect.stages.AlarmRule`; see :func:`calibrated_scores`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from pdm.detect.stages import TOP_K, ChannelCalibrator
from pdm.features import WindowSet


@runtime_checkable
class Detector(Protocol):
    """fit(healthy windows) → errors(windows) (n, C)."""

    name: str

    def fit(self, windows: WindowSet) -> Detector: ...

    def errors(self, windows: WindowSet) -> np.ndarray: ...


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch (pdm.model.train's seeding; torch imported only when called)."""
    from pdm.model.train import seed_everything

    seed_everything(seed)


def check_fit_windows(windows: WindowSet, minimum: int = 4) -> None:
    if len(windows) < minimum:
        raise ValueError(f"too few healthy windows to fit ({len(windows)}); need at least {minimum}")
    if windows.values.ndim != 3:
        raise ValueError(f"windows.values must be (n, C, T), got shape {windows.values.shape}")


def calibrated_scores(fit_errors: np.ndarray, errors: np.ndarray, top_k: int = TOP_K) -> tuple[ChannelCalibrator, np.ndarray, np.ndarray]:
    """Fit a :class:`ChannelCalibrator` on healthy errors; return it, healthy scores and scores."""
    cal = ChannelCalibrator(top_k=top_k).fit(fit_errors)
    return cal, cal.apply(fit_errors), cal.apply(errors)
