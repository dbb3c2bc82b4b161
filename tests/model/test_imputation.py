"""Scoring by imputation: each modality reconstructed with it hidden, never from itself."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pdm.features.windows import WindowSet
from pdm.model.train import PackedTSHAE, mean_spatial, reconstruct
from pdm.model.tshae import TSHAE, TSHAEConfig, impute_groups

NAMES = ["vibration.de.rms", "vibration.de.band_1x", "vibration.nde.rms", "temperature.bearing.celsius",
         "temperature.ambient.celsius", "process.current_a"]


def _model(scoring: str = "modality") -> TSHAE:
    torch.manual_seed(0)
    return TSHAE(TSHAEConfig(channels=6, context_channels=2, event_channels=3, window=64, patch=8, d_model=16,
                             heads=2, layers=1, attn_window=4, lsh_chunk=4, channel_names=NAMES, scoring=scoring))


def _windows(n: int = 5) -> WindowSet:
    rng = np.random.default_rng(0)
    return WindowSet(values=rng.normal(size=(n, 6, 64)).astype(np.float32), mask=np.ones((n, 6, 64), np.float32),
                     context=rng.normal(size=(n, 2, 64)).astype(np.float32), events=np.zeros((n, 3, 64), np.float32),
                     start=np.arange(n, dtype=np.int64), machine=np.array(["m"] * n, dtype=object), channels=NAMES)


def test_groups_are_vibration_and_the_other_sensors_with_the_ambient_never_hidden():
    assert impute_groups(NAMES) == [[0, 1, 2], [3, 5]]
    assert impute_groups(["vibration.de.rms", "temperature.ambient.celsius"]) == []  # nothing to impute from
    assert impute_groups(["Accelerometer1RMS", "Current", "Accelerometer2RMS", "Pressure"]) == [[0, 2], [1, 3]]
    assert TSHAEConfig(channels=6, window=64, channel_names=NAMES).groups == [[0, 1, 2], [3, 5]]  # the default
    assert TSHAEConfig(channels=6, window=64, channel_names=NAMES, scoring="reconstruct").groups == []
    assert TSHAEConfig(channels=6, window=64, channel_names=NAMES, scoring="vibration").groups == [[0, 1, 2]]
    assert TSHAEConfig(channels=2, window=64, channel_names=NAMES[3:5], scoring="vibration").groups == []
    with pytest.raises(ValueError, match="scoring"):
        TSHAEConfig(channels=6, window=64, channel_names=NAMES, scoring="other")


def test_a_channel_is_never_reconstructed_from_its_own_values():
    model, w = _model(), _windows()
    base = reconstruct(model, w)["reconstruction"]
    for group in impute_groups(NAMES):
        shifted = w.values.copy()
        shifted[:, group] += 50.0  # a level the other modality does not explain
        again = reconstruct(model, dataclasses.replace(w, values=shifted))["reconstruction"]
        np.testing.assert_allclose(again[:, group], base[:, group], atol=1e-4)
        others = [i for i in range(6) if i not in group and i != 4]
        assert not np.allclose(again[:, others], base[:, others], atol=1e-3)  # they see it


def test_each_groups_pass_on_its_own_thread_gives_the_stacked_reconstruction():
    from pdm.model.train import group_pool

    model, w = _model(), _windows()
    stacked = reconstruct(model, w, batch_size=2)["reconstruction"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        split = reconstruct(model, w, batch_size=2, group_threads=2)
        again = reconstruct(model, w, batch_size=1, group_threads=2, need_maps=True)
    finally:
        torch.set_num_threads(threads)
    assert np.allclose(split["reconstruction"], stacked, atol=1e-5)
    assert np.allclose(again["reconstruction"], stacked, atol=1e-5) and again["spatial"].shape[0] == len(w)
    assert group_pool(2) is group_pool(2)  # one pool per process and size, not one per call
    with torch.enable_grad():
        reconstruct(model, w, group_threads=2)
        assert torch.is_grad_enabled()


def test_plain_reconstruction_does_see_a_channels_own_values():
    model, w = _model("reconstruct"), _windows()
    base = reconstruct(model, w)["reconstruction"]
    shifted = w.values.copy()
    shifted[:, 0] += 50.0
    again = reconstruct(model, dataclasses.replace(w, values=shifted))["reconstruction"]
    assert not np.allclose(again[:, 0], base[:, 0], atol=1e-3)


def test_vibration_scoring_imputes_vibration_and_shows_the_rest_in_the_same_pass():
    model, w = _model("vibration"), _windows()
    base = reconstruct(model, w)["reconstruction"]
    shifted = w.values.copy()
    shifted[:, [0, 1, 2]] += 50.0
    again = reconstruct(model, dataclasses.replace(w, values=shifted))["reconstruction"]
    np.testing.assert_allclose(again, base, atol=1e-4)  # vibration hidden: nothing reads it
    shifted = w.values.copy()
    shifted[:, 3] += 50.0
    again = reconstruct(model, dataclasses.replace(w, values=shifted))["reconstruction"]
    assert not np.allclose(again[:, 3], base[:, 3], atol=1e-3)  # a temperature is seen by its own reconstruction
    # the same weights (one seed) scored by modality: the same vibration (that pass hides it alike), the
    # temperature imputed instead
    both = reconstruct(_model("modality"), w)["reconstruction"]
    np.testing.assert_allclose(both[:, [0, 1, 2]], base[:, [0, 1, 2]], atol=1e-5)
    assert not np.allclose(both[:, 3], base[:, 3], atol=1e-3)


def test_maps_come_with_the_imputed_reconstruction():
    out = reconstruct(_model(), _windows(), need_maps=True)
    assert out["reconstruction"].shape == (5, 6, 64) and out["spatial"].shape == (5, 6, 6)


def test_the_healthy_attention_baseline_is_the_mean_map_over_evenly_spread_windows():
    model, w = _model(), _windows(9)
    maps = reconstruct(model, w, need_maps=True)["spatial"]
    np.testing.assert_allclose(mean_spatial(model, w), maps.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean_spatial(model, w, limit=3, batch_size=2), maps[[0, 4, 8]].mean(axis=0),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no windows"):
        mean_spatial(model, w.take(np.arange(0)))


@pytest.mark.parametrize("scoring", ["modality", "vibration"])
def test_training_hides_whole_groups_in_about_the_asked_share_of_windows(scoring):
    model = _model(scoring)  # either imputing scoring trains both directions: the weights are the same kind
    net = PackedTSHAE(model, hide_frac=0.0, group_frac=0.5).train()
    seen: list[torch.Tensor] = []
    model.forward = lambda values, mask, *a, **k: seen.append(mask) or type("O", (), {"reconstruction": values})()  # type: ignore[method-assign]
    x = torch.cat([torch.randn(400, 6, 64), torch.ones(400, 6, 64), torch.zeros(400, 5, 64)], dim=1)
    net(x)
    per_channel = seen[0].mean(dim=2)  # (400, 6): 1 shown, 0 hidden, never partly
    assert set(per_channel.unique().tolist()) <= {0.0, 1.0}
    hidden = per_channel == 0
    assert not hidden[:, 4].any()  # the ambient is never hidden
    vib, rest = hidden[:, [0, 1, 2]].all(dim=1), hidden[:, [3, 5]].all(dim=1)
    assert not (vib & rest).any()
    assert (hidden.any(dim=1) == (vib | rest)).all()  # whole groups only
    assert 0.4 < (vib | rest).float().mean().item() < 0.6
    assert 0.15 < rest.float().mean().item() < 0.35


def test_an_unknown_scoring_is_refused_and_a_config_saved_without_it_loads_as_plain_reconstruction():
    with pytest.raises(ValueError, match="scoring"):
        TSHAEConfig(channels=6, window=64, scoring="magic")
    d = TSHAEConfig(channels=6, window=64).to_dict()
    d.pop("scoring")
    assert TSHAEConfig.from_dict(d).scoring == "reconstruct"
