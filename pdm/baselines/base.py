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


class MeanEnsemble:
    """Several fitted detectors of one kind read as one: the mean of their errors (a seed ensemble).

    Trainings of one model that differ only by their seed disagree on where they reconstruct badly (one TSHAE
    training on a held-back fleet alarmed on weekends, another of the same configuration did not); the mean
    of their errors keeps what they agree on and halves what one of them alone gets wrong. The members must
    read the same windows (their ``errors`` the same shape); the mean is taken per window and channel (per
    step, where every member has ``step_errors``), NaN where a member has none (the mask is the windows').
    Scoring costs the members' time added up.
    """

    def __init__(self, members: list[Detector], name: str | None = None) -> None:
        if len(members) < 2:
            raise ValueError(f"an ensemble needs two or more fitted detectors, got {len(members)}")
        self.members = list(members)
        first = getattr(members[0], "name", "detector")
        self.name = name or f"{first} x{len(members)} (mean of errors)"
        if all(hasattr(m, "step_errors") for m in self.members):
            self.step_errors = self._step_errors  # per-step readers (gating, trimming) take them when all have them

    def fit(self, windows: WindowSet) -> MeanEnsemble:
        for m in self.members:
            m.fit(windows)
        return self

    @staticmethod
    def _mean(parts: list[np.ndarray]) -> np.ndarray:
        shapes = {p.shape for p in parts}
        if len(shapes) != 1:
            raise ValueError(f"ensemble members gave errors of different shapes: {sorted(shapes)}")
        return np.mean(np.stack(parts), axis=0)  # NaN stays NaN: a member without the value leaves it unknown

    def errors(self, windows: WindowSet) -> np.ndarray:
        return self._mean([m.errors(windows) for m in self.members])

    def _step_errors(self, windows: WindowSet) -> np.ndarray:
        return self._mean([m.step_errors(windows) for m in self.members])  # type: ignore[attr-defined]
