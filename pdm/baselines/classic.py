"""Classical baselines: PCA T² + Q and Isolation Forest (scikit-learn).

PCA T² + Q
    PCA is fitted on the healthy windows' time steps (rows = steps, columns =
    channels; a missing value is imputed with the channel's healthy mean, 0
    after robust scaling, and does not count in the error). Each step has
    Hotelling's T² (in the retained components, which explain
    ``variance`` of the healthy variance) and Q, the squared prediction
    error. Both split exactly into per-channel parts: Q_j = e_j² and the
    T² contribution c_j = x_j · Σ_k t_k p_kj / λ_k (Σ_j c_j = T²). A
    channel's error per step is Q_j / mean healthy Q + |c_j| / k (both
    statistics scaled to about 1 on healthy data), averaged over the
    window's observed steps.

Isolation Forest
    Fitted on per-window features: per channel the mean and the standard
    deviation over the window's observed steps. The forest gives one score
    per window (``-score_samples``: higher = more anomalous); it has no
    per-channel decomposition, so the per-channel error is approximated by
    occlusion: channel j's error = window score + max(0, window score −
    score with channel j's features replaced by their healthy median). Every
    channel therefore carries the window score (the calibrated machine score
    follows the forest), and the channel whose replacement lowers the score
    most ranks first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pdm.baselines.base import check_fit_windows
from pdm.detect.errors import masked_mean
from pdm.features import WindowSet


@dataclass
class PCAT2Q:
    """PCA Hotelling T² + Q (squared prediction error) per step, split per channel."""

    variance: float = 0.90
    name: str = "PCA T²+Q"
    mean_: np.ndarray = field(default_factory=lambda: np.zeros(0))
    components_: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    eigen_: np.ndarray = field(default_factory=lambda: np.zeros(0))
    q_scale_: float = 1.0

    @staticmethod
    def _rows(windows: WindowSet) -> tuple[np.ndarray, np.ndarray]:
        n, c, t = windows.values.shape
        x = windows.values.transpose(0, 2, 1).reshape(n * t, c).astype(np.float64)
        m = windows.mask.transpose(0, 2, 1).reshape(n * t, c) > 0
        return x, m

    def fit(self, windows: WindowSet) -> PCAT2Q:
        from sklearn.decomposition import PCA

        check_fit_windows(windows)
        x, m = self._rows(windows)
        x = x[m.any(axis=1)]
        mu = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
        mu = np.nan_to_num(mu)
        x = np.where(np.isfinite(x), x, mu)
        pca = PCA(n_components=self.variance, svd_solver="full").fit(x)
        self.mean_ = pca.mean_
        self.components_ = pca.components_  # (k, C)
        self.eigen_ = np.maximum(pca.explained_variance_, 1e-12)
        q, _ = self._parts(x)
        self.q_scale_ = float(max(q.sum(axis=1).mean(), 1e-12))
        return self

    def _parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xc = x - self.mean_
        t = xc @ self.components_.T  # (rows, k)
        e = xc - t @ self.components_
        q = e**2
        c = xc * ((t / self.eigen_) @ self.components_)  # Σ_j c_j = T²
        return q, c

    def step_errors(self, windows: WindowSet) -> np.ndarray:
        """(n, C, T) per-step channel errors, NaN where unobserved."""
        n, c, t = windows.values.shape
        x, m = self._rows(windows)
        x = np.where(np.isfinite(x) & m, x, self.mean_)
        q, contrib = self._parts(x)
        per = q / self.q_scale_ + np.abs(contrib) / len(self.eigen_)
        per = per.reshape(n, t, c).transpose(0, 2, 1)
        return np.where(windows.mask > 0, per, np.nan)

    def errors(self, windows: WindowSet) -> np.ndarray:
        return masked_mean(self.step_errors(windows), windows.mask)


def window_features(windows: WindowSet) -> np.ndarray:
    """(n, 2C): per-channel mean and standard deviation over observed steps (0 where unobserved)."""
    m = windows.mask > 0
    v = np.where(m, np.nan_to_num(windows.values), 0.0)
    count = np.maximum(m.sum(axis=2), 1)
    mean = v.sum(axis=2) / count
    var = (np.where(m, (v - mean[..., None]) ** 2, 0.0)).sum(axis=2) / count
    return np.concatenate([mean, np.sqrt(var)], axis=1)


@dataclass
class IForest:
    """Isolation Forest on window features; per-channel error by occlusion (see the module doc)."""

    n_estimators: int = 200
    seed: int = 0
    name: str = "Isolation Forest"
    model_: object = None
    median_: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, windows: WindowSet) -> IForest:
        from sklearn.ensemble import IsolationForest

        check_fit_windows(windows)
        f = window_features(windows)
        self.median_ = np.median(f, axis=0)
        self.model_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(f)
        return self

    def errors(self, windows: WindowSet) -> np.ndarray:
        f = window_features(windows)
        c = windows.values.shape[1]
        score = -self.model_.score_samples(f)  # type: ignore[attr-defined]
        out = np.empty((len(f), c))
        for j in range(c):
            g = f.copy()
            g[:, j] = self.median_[j]
            g[:, c + j] = self.median_[c + j]
            out[:, j] = score + np.maximum(score - (-self.model_.score_samples(g)), 0.0)  # type: ignore[attr-defined]
        observed = windows.mask.sum(axis=2) > 0
        return np.where(observed, out, np.nan)
