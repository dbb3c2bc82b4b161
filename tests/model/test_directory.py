"""The model directory: save → load gives identical scores; damage is refused, clearly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pdm.features import RobustScaler
from pdm.model.directory import ModelBundle, ModelDirectoryError, load, save
from pdm.model.tshae import TSHAE, TSHAEConfig

CHANNELS = [f"temperature.s{i}.celsius" for i in range(4)]


def _bundle() -> ModelBundle:
    torch.manual_seed(0)
    cfg = TSHAEConfig(channels=4, context_channels=2, event_channels=1, window=64, patch=8, d_model=16, heads=2,
                      layers=1, attn_window=4, lsh_chunk=4, channel_names=CHANNELS)
    scaler = RobustScaler(CHANNELS).fit(pd.DataFrame(np.random.default_rng(0).normal(size=(50, 4)), columns=CHANNELS))
    return ModelBundle(TSHAE(cfg).eval(), {"m1": scaler}, {"m1": {"median": [0.1] * 4, "iqr": [0.05] * 4}},
                       {"model": cfg.to_dict(), "train": {}, "features": {}}, {"machines": ["m1"]})


def _scores(model: TSHAE) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 4, 64, generator=g)
    with torch.no_grad():
        return model(x, torch.ones_like(x), torch.randn(3, 2, 64, generator=g), torch.zeros(3, 1, 64)).reconstruction


def test_save_then_load_gives_identical_scores_and_metadata(tmp_path):
    bundle = _bundle()
    path = save(bundle, tmp_path)
    loaded = load(path)
    assert torch.equal(_scores(loaded.model), _scores(bundle.model))
    assert loaded.version == path.name
    assert loaded.scalers["m1"].channels == CHANNELS
    np.testing.assert_allclose(loaded.scalers["m1"].median, bundle.scalers["m1"].median)
    assert loaded.metadata["machines"] == ["m1"] and "torch" in loaded.metadata["libraries"]


def test_a_corrupted_weight_file_is_refused(tmp_path):
    path = save(_bundle(), tmp_path)
    raw = bytearray((path / "weights.safetensors").read_bytes())
    raw[-10] ^= 0xFF
    (path / "weights.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelDirectoryError, match="checksum"):
        load(path)


def test_a_truncated_weight_file_is_refused(tmp_path):
    path = save(_bundle(), tmp_path)
    raw = (path / "weights.safetensors").read_bytes()
    (path / "weights.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelDirectoryError, match="truncated"):
        load(path)


def test_weights_that_do_not_match_the_config_are_refused_even_with_a_valid_manifest(tmp_path):
    path = save(_bundle(), tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["d_model"] = 32
    (path / "config.json").write_text(json.dumps(cfg))
    manifest = json.loads((path / "manifest.json").read_text())
    from pdm.model.directory import _sha256

    manifest["files"]["config.json"] = {"sha256": _sha256(path / "config.json"), "bytes": (path / "config.json").stat().st_size}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelDirectoryError, match="do not match"):
        load(path)


def test_a_missing_manifest_or_file_or_an_unknown_format_is_refused(tmp_path):
    path = save(_bundle(), tmp_path)
    (path / "errors.json").unlink()
    with pytest.raises(ModelDirectoryError, match="errors.json is missing"):
        load(path)
    path2 = save(_bundle(), tmp_path)
    manifest = json.loads((path2 / "manifest.json").read_text())
    manifest["format"] = 99
    (path2 / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelDirectoryError, match="format"):
        load(path2)
    with pytest.raises(ModelDirectoryError, match="not a model directory"):
        load(tmp_path / "nope")


def test_pickled_weights_are_never_loaded(tmp_path):
    """A weights file that is a pickle (which could run code) is not safetensors: refused."""
    path = save(_bundle(), tmp_path)
    torch.save({"x": torch.zeros(1)}, path / "weights.safetensors")
    with pytest.raises(ModelDirectoryError):
        load(path)


def test_the_detection_calibration_travels_with_the_model_and_is_required(tmp_path):
    bundle = _bundle()
    bundle.detect = {"rule": {"k": 3}, "machines": {"m1": {"threshold": {"threshold": 2.5}, "speed_max": None}}}
    path = save(bundle, tmp_path)
    assert load(path).detect == bundle.detect
    (path / "detect.json").unlink()
    with pytest.raises(ModelDirectoryError, match="detect.json is missing"):
        load(path)


def test_a_directory_saved_with_multihead_attention_names_loads():
    """Kept models from before ChannelAttention store nn.MultiheadAttention's packed input projection."""
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "models" / "heldback-2027-rise"
    saved = load_file(str(path / "weights.safetensors"))
    assert "layers.0.spatial.in_proj_weight" in saved  # the old names, really
    loaded = load(path).model
    d = loaded.cfg.d_model
    assert torch.equal(loaded.layers[0].spatial.q_proj.weight, saved["layers.0.spatial.in_proj_weight"][:d])
    assert torch.equal(loaded.layers[1].cross.kv_proj.bias, saved["layers.1.cross.in_proj_bias"][d:])
    assert torch.equal(loaded.layers[1].cross.out_proj.weight, saved["layers.1.cross.out_proj.weight"])
