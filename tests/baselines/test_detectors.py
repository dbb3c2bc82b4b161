"""Every detector: fit on healthy windows, larger error on an injected anomaly, in the right channel."""

from __future__ import annotations

import numpy as np
import pytest

from pdm.baselines import DETECTORS, calibrated_scores, make_detector
from pdm.detect.stages import POTThreshold
from pdm.features import WindowSet

C, T = 5, 64
FAST = {"tshae": {"epochs": 3}, "tst_mvp": {"epochs": 4}, "conv_ae": {"epochs": 15}, "lstm_ae": {"epochs": 15}}


def windows(n: int, seed: int, anomaly: int | None = None, missing: bool = False) -> WindowSet:
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    base = np.sin(2 * np.pi * t[None, None, :] / 16 + phase)
    gains = np.linspace(0.5, 1.5, C)[None, :, None]
    v = (base * gains + 0.1 * rng.standard_normal((n, C, T))).astype(np.float32)
    if anomaly is not None:
        v[:, anomaly, T // 4:] += 3.0  # a level shift in one channel, from a quarter of the window on
    mask = np.ones_like(v)
    if missing:
        v[:, 0, ::3] = np.nan
        mask[:, 0, ::3] = 0
    return WindowSet(values=v, mask=mask, context=np.zeros((n, 0, T), np.float32), events=np.zeros((n, 0, T), np.float32),
                     start=np.arange(n, dtype=np.int64), machine=np.full(n, "m", dtype=object),
                     channels=[f"c{i}" for i in range(C)])


@pytest.fixture(scope="module")
def fitted() -> dict:
    healthy = windows(160, 0, missing=True)
    return {k: make_detector(k, seed=0, **FAST.get(k, {})).fit(healthy) for k in DETECTORS}


@pytest.mark.parametrize("key", DETECTORS)
def test_anomalous_channel_has_larger_error_and_ranks_first(fitted: dict, key: str) -> None:
    det = fitted[key]
    fit_err = det.errors(windows(160, 0, missing=True))
    healthy = det.errors(windows(40, 1, missing=True))
    bad = det.errors(windows(40, 2, anomaly=3, missing=True))
    assert healthy.shape == bad.shape == (40, C)
    assert np.isfinite(healthy).all() and np.isfinite(bad).all()
    # Clearly above the healthy spread (Isolation Forest's scores live on a narrow 0..1 scale, so no ratio).
    assert np.nanmean(bad[:, 3]) > np.nanmean(healthy[:, 3]) + 3 * np.nanstd(healthy[:, 3])
    # Ranked first per window after the shared calibration stage, for most windows.
    cal, fit_scores, scores = calibrated_scores(fit_err, np.concatenate([healthy, bad]))
    z = cal.channel_scores(bad)
    assert np.mean(np.argmax(z, axis=1) == 3) >= 0.9
    # The same threshold stage applies; the anomalous windows score above the healthy ones.
    pot = POTThreshold(min_scores=50).fit(fit_scores)
    assert np.isfinite(pot.threshold) and np.mean(scores[:40] > pot.threshold) <= 0.2
    assert np.mean(scores[40:] > np.quantile(scores[:40], 0.95)) >= 0.9


def test_unobserved_channel_gives_nan_not_a_number() -> None:
    det = make_detector("pca").fit(windows(60, 0))
    w = windows(5, 3)
    w.values[:, 2] = np.nan
    w.mask[:, 2] = 0
    err = det.errors(w)
    assert np.isnan(err[:, 2]).all() and np.isfinite(np.delete(err, 2, axis=1)).all()


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("nope")
    with pytest.raises(ValueError, match="too few healthy windows"):
        make_detector("pca").fit(windows(2, 0))
    with pytest.raises(RuntimeError, match="fit"):
        make_detector("conv_ae").errors(windows(2, 0))


@pytest.mark.parametrize("key", [k for k in DETECTORS if k != "iforest"])
def test_step_errors_locate_the_anomaly_in_time(fitted: dict, key: str) -> None:
    det = fitted[key]
    w = windows(20, 4, anomaly=3, missing=True)
    e = det.step_errors(w)
    assert e.shape == w.values.shape
    assert np.array_equal(np.isnan(e), w.mask == 0)
    # The shifted part (second three quarters of channel 3) has larger errors than its unshifted first quarter.
    assert np.nanmean(e[:, 3, T // 4 + 4:]) > 2 * np.nanmean(e[:, 3, : T // 4 - 4])


@pytest.mark.parametrize("key", ["tshae", "conv_ae", "lstm_ae", "tst_mvp"])
def test_a_fit_without_a_bar_says_each_epoch(key: str, caplog: pytest.LogCaptureFixture) -> None:
    """Benchmarks fit for an hour into a log: one line per epoch, with its losses, shows where they are."""
    with caplog.at_level("INFO"):
        make_detector(key, seed=0, epochs=2).fit(windows(40, 0))
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert [ln.split("epoch ")[1].split(" ")[0] for ln in lines] == ["1/2", "2/2"], lines
    assert all("train loss" in ln and "valid loss" in ln for ln in lines), lines


def test_a_mean_ensemble_averages_its_members_errors(fitted: dict) -> None:
    from pdm.baselines.base import MeanEnsemble

    w = windows(20, 5, anomaly=2, missing=True)
    a, b = fitted["tshae"], fitted["conv_ae"]
    ens = MeanEnsemble([a, b])
    assert ens.name == "TSHAE x2 (mean of errors)"
    got = ens.step_errors(w)
    want = (a.step_errors(w) + b.step_errors(w)) / 2
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.array_equal(np.isnan(got), w.mask == 0)  # unobserved stays unknown
    np.testing.assert_allclose(ens.errors(w), (a.errors(w) + b.errors(w)) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="two or more"):
        MeanEnsemble([a])


def test_a_mean_ensemble_refuses_members_of_other_shapes() -> None:
    from pdm.baselines.base import MeanEnsemble

    class Fixed:
        name = "fixed"

        def __init__(self, c: int) -> None:
            self.c = c

        def errors(self, w: WindowSet) -> np.ndarray:
            return np.ones((len(w), self.c))

    with pytest.raises(ValueError, match="errors of different shapes"):
        MeanEnsemble([Fixed(C), Fixed(C - 1)]).errors(windows(3, 1))
    # Members without per-step errors: the ensemble has none either (readers fall back to per-window errors).
    assert not hasattr(MeanEnsemble([Fixed(C), Fixed(C)]), "step_errors")
    np.testing.assert_array_equal(MeanEnsemble([Fixed(C), Fixed(C)]).errors(windows(3, 1)), np.ones((3, C)))
