"""The repository keeps its promises: layout, packaging names, compose file, README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_the_top_level_layout_is_complete():
    for name in ["pdm", "dags", "dashboard", "sensors_sim", "tests", "benchmarks",
                 "docker-compose.yml", "pyproject.toml", "Makefile", ".ci/run", "README.md"]:
        assert (ROOT / name).exists(), name


def test_distribution_and_command_are_not_named_pdm():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] != "pdm"
    assert "pdm" not in project["scripts"] and "pdmctl" in project["scripts"]
    deps = " ".join(project["dependencies"])
    for pin in ["torch==2.14.1", "tsai==1.0.1", "fastai==2.8.7", "pyts==0.13.0", "apache-airflow==3.3.2",
                "apache-airflow-providers-influxdb", "influxdb-client", "duckdb", "dash", "plotly"]:
        assert pin in deps, pin
    extras = project["optional-dependencies"]
    assert any("dash[testing]" in d for d in extras["test"])
    assert any("hypothesis" in d for d in extras["test"])


def test_the_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    first = [line.split("#")[0].strip() for line in blocks[0].splitlines() if line.strip()]
    assert first == ["make demo", "make test"]


def test_the_compose_file_initialises_influxdb2_from_env_with_a_healthcheck():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    influx = compose["services"]["influxdb"]
    assert influx["image"].startswith("influxdb:2.7")
    env = influx["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    # Secrets come from .env, never written into the compose file.
    for key in ["DOCKER_INFLUXDB_INIT_PASSWORD", "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]:
        assert env[key].startswith("${") and ":?" in env[key]
    assert influx["healthcheck"]["test"]
    assert any(v.endswith(":/var/lib/influxdb2") for v in influx["volumes"])
    example = (ROOT / ".env.example").read_text()
    for var in re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()):
        assert var + "=" in example, var
