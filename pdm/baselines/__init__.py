"""Baselines in the same harness as TSHAE: fit(healthy windows) → errors (n windows, C channels).

See :mod:`pdm.baselines.base` for the interface, :mod:`pdm.baselines.classic`
(PCA T² + Q, Isolation Forest) and :mod:`pdm.baselines.neural` (Conv-AE,
LSTM-AE, tsai TST with MVP, and the TSHAE adapter).
"""

from __future__ import annotations

from typing import Any

from pdm.baselines.base import Detector, calibrated_scores

#: Detector keys in benchmark order (TSHAE first).
DETECTORS = ("tshae", "pca", "iforest", "conv_ae", "lstm_ae", "tst_mvp")


def make_detector(key: str, seed: int = 0, **overrides: Any) -> Detector:
    """A fresh, unfitted detector by key (see :data:`DETECTORS`); ``overrides`` go to its constructor."""
    from pdm.baselines.classic import PCAT2Q, IForest
    from pdm.baselines.neural import LSTMAE, TSTMVP, ConvAE, TorchFit, TSHAEDetector

    if key == "tshae":
        return TSHAEDetector(seed=seed, **overrides)
    if key == "pca":
        return PCAT2Q(**overrides)
    if key == "iforest":
        return IForest(seed=seed, **overrides)
    if key in ("conv_ae", "lstm_ae"):
        fit = TorchFit(seed=seed, **{k: v for k, v in overrides.items() if k in TorchFit.__dataclass_fields__})
        rest = {k: v for k, v in overrides.items() if k not in TorchFit.__dataclass_fields__}
        return (ConvAE if key == "conv_ae" else LSTMAE)(fit_cfg=fit, **rest)
    if key == "tst_mvp":
        return TSTMVP(seed=seed, **overrides)
    raise ValueError(f"unknown detector {key!r}; choose from {', '.join(DETECTORS)}")


__all__ = ["DETECTORS", "Detector", "calibrated_scores", "make_detector"]
