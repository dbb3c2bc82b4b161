"""Airflow for the DAG tests: a private AIRFLOW_HOME with SQLite, set before airflow is imported.

A tiny simulated plant (4 machines x 10 days, one bearing fault) in a real
InfluxDB 1.x, and pdm's settings for a tiny model (window 72, d_model 32,
2 epochs), all given to the DAGs through PDM_* variables as in production.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"

if "airflow" not in sys.modules:  # airflow reads its configuration once, at import
    _home = tempfile.mkdtemp(prefix="pdm-airflow-")
    os.environ["AIRFLOW_HOME"] = _home
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_home}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)

FLEET_TOML = """
seed = 11
start = 2024-01-01T00:00:00Z

[faults]
per_machine_year = 0.0

[nuisance]
maintenance_per_year = 0
sensor_replaced_per_year = 0
dropouts_per_month = 2
spikes_per_month = 2
stuck_per_year = 0
clock_skew_per_year = 0
duplicates_per_month = 4
regime_changes_per_line_year = 0

[[plants]]
name = "plant-t"

[[plants.lines]]
name = "line-t"
shifts = "continuous"

[[plants.lines.machines]]
id = "pump-f"
type = "centrifugal_pump"
random_faults = false

[[plants.lines.machines.faults]]
mode = "bearing_wear"
failure = 2024-01-09T12:00:00Z
onset_days = 4
repair_hours = 24

[[plants.lines.machines]]
id = "fan-1"
type = "fan"
random_faults = false

[[plants.lines.machines]]
id = "gbx-1"
type = "gearbox"
random_faults = false

[[plants.lines.machines]]
id = "comp-1"
type = "compressor"
random_faults = false
"""
MACHINES = ["comp-1", "fan-1", "gbx-1", "pump-f"]
FAULTY = "pump-f"
FAILURE = "2024-01-09T12:00:00Z"
SIM_START, SIM_STOP = "2024-01-01T00:00:00Z", "2024-01-11T00:00:00Z"


def pipeline_env(tmp: Path, url: str, database: str) -> dict[str, str]:
    """The PDM_* settings of a test plant."""
    (tmp / "fleet.toml").write_text(FLEET_TOML)
    return {
        "PDM_STORE__BACKEND": "influxdb1", "PDM_STORE__URL": url, "PDM_STORE__DATABASE": database,
        "PDM_STORE__RETRIES": "1", "PDM_STORE__BACKOFF_S": "0.1", "PDM_STORE__TIMEOUT_S": "10",
        "PDM_DATA_DIR": str(tmp), "PDM_PIPELINE__SIMULATE_CONFIG": str(tmp / "fleet.toml"),
        "PDM_PIPELINE__INGEST_SCHEDULE": "@daily", "PDM_PIPELINE__MACHINE_GROUPS": "2",
        "PDM_PIPELINE__TRAIN_DAYS": "10", "PDM_PIPELINE__RECENT_DAYS": "7",
        "PDM_PIPELINE__WINDOW": "72", "PDM_PIPELINE__STRIDE": "12", "PDM_PIPELINE__D_MODEL": "32",
        "PDM_PIPELINE__LAYERS": "1", "PDM_PIPELINE__EPOCHS": "2", "PDM_PIPELINE__FINETUNE_EPOCHS": "1",
        "PDM_PIPELINE__RETRIES": "0",
    }


def load_dag(name: str):
    """Import ``dags/<name>.py`` afresh (it reads the settings at import) and return its DAG."""
    from airflow.sdk import DAG

    spec = importlib.util.spec_from_file_location(f"_pdm_dag_{name}_{uuid.uuid4().hex[:6]}", DAGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = [v for v in vars(module).values() if isinstance(v, DAG)]
    assert len(dags) == 1, f"{name}.py defines {len(dags)} DAGs"
    return dags[0]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh metadata database (SQLite) for dag.test()."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture(scope="module")
def plant_env(tmp_path_factory: pytest.TempPathFactory, influxdb1_url: str) -> Iterator[dict[str, str]]:
    """Settings of a fresh plant in its own InfluxDB 1.x database, set in the environment."""
    tmp = tmp_path_factory.mktemp("plant")
    env = pipeline_env(tmp, influxdb1_url, "pdm_dags_" + uuid.uuid4().hex[:8])
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        yield env


def open_store():
    from pdm.store import open_store as _open

    return _open()
