"""A tiny simulated fleet with one failing machine, a small model trained on it, shared by the scoring tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from pdm.model.pipeline import FeatureConfig, train_fleet
from pdm.model.train import TrainConfig
from pdm.store.embedded import EmbeddedStore
from sensors_sim.config import parse_config
from sensors_sim.run import backfill

START = pd.Timestamp("2024-01-01T00:00:00Z")
DAYS = 8
FAILURE = START + pd.Timedelta("7D")
ONSET_DAYS = 2.5
FAULTY, HEALTHY = "pump-f", "fan-h"


def fleet_config():
    """Two machines on a line that runs around the clock, no nuisances: a bearing wears out on pump-f."""
    nuisance = {k: 0 for k in ("maintenance_per_year", "sensor_replaced_per_year", "dropouts_per_month",
                               "spikes_per_month", "stuck_per_year", "clock_skew_per_year",
                               "duplicates_per_month", "regime_changes_per_line_year")}
    machines = [
        {"id": FAULTY, "type": "centrifugal_pump", "random_faults": False,
         "faults": [{"mode": "bearing_wear", "failure": FAILURE.isoformat(), "onset_days": ONSET_DAYS,
                     "repair_hours": 12.0}]},
        {"id": HEALTHY, "type": "fan", "random_faults": False},
    ]
    return parse_config({"seed": 5, "start": START.isoformat(), "nuisance": nuisance,
                         "plants": [{"name": "plant-t", "lines": [{"name": "line-t", "shifts": "continuous",
                                                                    "machines": machines}]}]}, "detect tests")


@dataclass
class Trained:
    store_path: Path  # embedded store with the simulated data only (copy it before writing)
    models: Path  # models root
    model: Path  # the trained model directory
    start: pd.Timestamp
    stop: pd.Timestamp

    def fresh_store(self, dest: Path) -> EmbeddedStore:
        shutil.copy(self.store_path, dest)
        return EmbeddedStore(dest)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    root = tmp_path_factory.mktemp("detect")
    store_path = root / "plant.duckdb"
    store = EmbeddedStore(store_path)
    res = backfill(store, fleet_config(), DAYS, progress=False)
    report = train_fleet(store, root / "models", start=res.start, stop=res.end,
                         features=FeatureConfig(window=72, stride=12),
                         model_overrides={"d_model": 32, "layers": 1}, train_cfg=TrainConfig(epochs=2, progress=False))
    store.close()
    return Trained(store_path, root / "models", report.path, pd.Timestamp(res.start), pd.Timestamp(res.end))
