"""The README's worked example: import the example plant, then train a model on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pdm.cli import main
from pdm.features.windows import excluded_steps
from pdm.model.directory import load
from pdm.model.pipeline import FeatureConfig, build_grids, read_labels, train_fleet
from pdm.model.train import TrainConfig
from pdm.settings import StoreSettings
from pdm.store import open_store

EXAMPLE = Path(__file__).parents[2] / "examples" / "own-plant"


def test_the_example_files_are_small_and_committed_next_to_their_generator():
    sizes = {p.name: p.stat().st_size for p in EXAMPLE.glob("*.csv")}
    assert set(sizes) == {"sensors.csv", "events.csv", "failures.csv"}
    assert sum(sizes.values()) < 200 * 1024


def test_imported_example_plant_trains_a_model_without_its_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    monkeypatch.setenv("PDM_STORE__PATH", str(tmp_path / "plant.duckdb"))
    tz = ["--tz", "Europe/Berlin"]
    assert main(["import", "sensors", str(EXAMPLE / "sensors.csv"), "--format", "wide", *tz,
                 "--map", "temp_*=temperature", "--map", "speed_rpm=process.speed_rpm",
                 "--map", "load_pct=process.load_pct"]) == 0
    assert main(["import", "events", str(EXAMPLE / "events.csv"), *tz]) == 0
    assert main(["import", "failures", str(EXAMPLE / "failures.csv")]) == 0
    out = capsys.readouterr().out
    assert "wrote 13,818 values for 3 machines" in out and "temp_bearing_c -> temperature.celsius" in out

    with open_store(StoreSettings(backend="embedded", path=tmp_path / "plant.duckdb")) as store:
        labels = read_labels(store)
        assert labels["machine"].tolist() == ["P-103"] and labels["kind"].tolist() == ["bearing_wear"]
        features = FeatureConfig(step="30min", window=72, stride=6)
        grids, channels = build_grids(store, ["P-101", "P-102", "P-103"], "2025-02-02T23:00Z", "2025-02-17T00:00Z",
                                      features.step)
        assert channels == ["sensor.flow_m3h.value", "sensor.vib_de_mm_s.value", "sensor.vib_nde_mm_s.value",
                            "temperature.temp_bearing_c.celsius", "temperature.temp_motor_c.celsius"]
        p103 = grids["P-103"]
        out_of_training = excluded_steps(p103.index, labels, "P-103")
        assert p103.index[out_of_training].min() == pd.Timestamp("2025-02-08T09:00Z")  # failure 15th 08:40 UTC - 7 days
        assert p103.events["work_order"].sum() > 0 and p103.context["speed"].notna().mean() > 0.9

        report = train_fleet(store, tmp_path / "models", features=features,
                             model_overrides={"d_model": 32, "layers": 1}, train_cfg=TrainConfig(epochs=1, batch_size=32))
    assert report.machines == ["P-101", "P-102", "P-103"]
    bundle = load(report.path)
    assert bundle.model.cfg.channel_names == channels
    assert bundle.metadata["data"]["start"].startswith("2025-02-02 23:00")
    assert np.isfinite(report.metrics["valid_loss"][-1])
