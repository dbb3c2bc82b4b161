"""docker-compose.yml, Dockerfile and .env.example, checked by parsing (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"]
LONG_RUNNING = ["influxdb", "postgres", "redis", "dashboard", "simulator", *AIRFLOW]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def test_the_stack_has_every_service(compose):
    services = compose["services"]
    assert set(LONG_RUNNING) | {"airflow-init"} <= set(services)
    assert services["influxdb"]["image"] == "influxdb:2.7"
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["simulator"]["profiles"] == ["demo"]  # optional


def test_airflow_services_run_pdm_from_the_image_with_celery_postgres_and_redis(compose):
    services = compose["services"]
    commands = {s: services[s]["command"] for s in AIRFLOW}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                        "airflow-worker": "celery worker"}
    for s in [*AIRFLOW, "airflow-init"]:
        svc = services[s]
        assert svc["build"] == "." and "pdm-airflow" in svc["image"]
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "true"
        assert '"conn_type": "influxdb"' in env["AIRFLOW_CONN_INFLUXDB_DEFAULT"]
        assert env["PDM_STORE__BACKEND"] == "influxdb2" and env["PDM_DATA_DIR"] == "/data"
        assert "pdm-data:/data" in svc["volumes"]
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert str(services["airflow-worker"]["deploy"]["replicas"]).endswith(":-2}")
    for s in AIRFLOW[:-1]:
        assert services[s]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert "db migrate" in " ".join(services["airflow-init"]["command"])


def test_every_long_running_service_has_a_healthcheck(compose):
    for s in LONG_RUNNING:
        hc = compose["services"][s].get("healthcheck")
        assert hc and hc["test"][0] in ("CMD", "CMD-SHELL") and hc.get("retries", 0) >= 3, s


def test_named_volumes_are_declared(compose):
    declared = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0]
            if not src.startswith((".", "/")):
                assert src in declared, f"{name}: volume {src} is not declared"


def test_every_variable_the_compose_file_uses_is_in_env_example(compose, env_example):
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))  # $${X} is the container's own
    assert used, "no variables found"
    missing = sorted(used - set(env_example))
    assert not missing, f"not in .env.example: {missing}"
    # Secrets are required (no silent defaults) and only placeholders are committed.
    for secret in ("PDM_STORE__TOKEN", "AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
                   "INFLUXDB_ADMIN_PASSWORD"):
        assert f"${{{secret}:?" in text, secret
        assert env_example[secret].startswith("change-me"), secret


def test_influxdb_is_initialised_from_env(compose):
    env = compose["services"]["influxdb"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    for k in ("ORG", "BUCKET", "ADMIN_TOKEN"):
        assert "PDM_STORE__" in env[f"DOCKER_INFLUXDB_INIT_{k}"]


def test_the_dockerfile_installs_pdm_into_airflow_and_ships_the_dags():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.\d+-python3\.11$", text, re.M)
    assert "apache-airflow-providers-celery" in text and "apache-airflow-providers-influxdb" in text
    assert "/opt/pdm" in text and "COPY --chown=airflow:root dags /opt/airflow/dags" in text
    assert "download.pytorch.org/whl/cpu" in text  # no multi-GB CUDA wheels in the image
    for path in ("pdm", "sensors_sim", "dags", "pyproject.toml"):
        assert (ROOT / path).exists()
