"""recalibrate: a trained model's detection calibration refitted without retraining, as a new version."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pdm.model.directory import load
from pdm.model.pipeline import recalibrate
from tests.detect.conftest import FAULTY, HEALTHY


def test_recalibrating_with_the_same_scorer_reproduces_the_calibration_as_a_new_version(trained, tmp_path):
    store = trained.fresh_store(tmp_path / "s.duckdb")
    old = load(trained.model)
    path = recalibrate(store, old, tmp_path / "models")
    new = load(path)
    assert new.version != old.version and new.metadata["recalibrated"]["from_version"] == old.version
    for a, b in zip(old.model.state_dict().values(), new.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for m in (FAULTY, HEALTHY):
        o, n = old.detect["machines"][m], new.detect["machines"][m]
        assert n["calibration_from"] == o["calibration_from"] and n["calibration_windows"] == o["calibration_windows"]
        assert n["threshold"]["threshold"] == pytest.approx(o["threshold"]["threshold"], rel=1e-6)
        assert np.allclose(n["calibrator"]["median"], o["calibrator"]["median"], rtol=1e-5)


def test_a_range_too_short_for_any_machine_is_refused_and_writes_nothing(trained, tmp_path):
    store = trained.fresh_store(tmp_path / "s.duckdb")
    old = load(trained.model)
    with pytest.raises(ValueError, match="healthy windows in .* to recalibrate on"):
        recalibrate(store, old, tmp_path / "models", start=trained.start, stop=trained.start + pd.Timedelta("6h"))
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_recalibrating_on_its_own_range_refits_the_training_windows_envelope_another_range_keeps_the_saved_one(
        trained, tmp_path):
    """A recalibration trains nothing: on the model's own range its envelope is the training windows' again (an
    earlier, wider one is not joined in); on another range the weights know only the saved envelope."""
    store = trained.fresh_store(tmp_path / "s.duckdb")
    old = load(trained.model)
    trained_env = old.detect["machines"][HEALTHY]["envelope"]
    wide = {**trained_env, "hi": [None if h is None else 10 * h for h in trained_env["hi"]]}
    old.detect["machines"][HEALTHY]["envelope"] = wide
    own = load(recalibrate(store, old, tmp_path / "models"))
    got = own.detect["machines"][HEALTHY]["envelope"]
    assert got["lo"] == pytest.approx(trained_env["lo"]) and got["hi"] == pytest.approx(trained_env["hi"])
    later = load(recalibrate(store, old, tmp_path / "models", start=trained.start + pd.Timedelta("1D")))
    assert later.detect["machines"][HEALTHY]["envelope"] == wide
