"""Which store the DAGs open: InfluxDB 2.x through Airflow's influxdb_default connection
(the official provider's InfluxDBHook), the others through pdm's settings."""

from __future__ import annotations

import json


def test_influxdb2_takes_url_org_and_token_from_the_influxdb_default_connection(monkeypatch):
    from pdm.pipeline import dagkit

    monkeypatch.setenv("PDM_STORE__BACKEND", "influxdb2")
    monkeypatch.setenv("PDM_STORE__URL", "http://wrong-host:1")
    monkeypatch.setenv("PDM_STORE__BUCKET", "plant-bucket")
    monkeypatch.setenv("AIRFLOW_CONN_INFLUXDB_DEFAULT", json.dumps({
        "conn_type": "influxdb", "host": "influx.plant.local", "port": 8086, "schema": "http",
        "extra": {"token": "tok-from-airflow", "org": "acme"}}))
    store = dagkit.open_store()
    assert store.url == "http://influx.plant.local:8086"
    assert store.org == "acme" and store.bucket == "plant-bucket"
    assert store._token == "tok-from-airflow"


def test_without_the_connection_pdm_settings_apply(monkeypatch):
    from pdm.pipeline import dagkit

    monkeypatch.delenv("AIRFLOW_CONN_INFLUXDB_DEFAULT", raising=False)
    monkeypatch.setenv("PDM_STORE__BACKEND", "influxdb2")
    monkeypatch.setenv("PDM_STORE__URL", "http://127.0.0.1:18086")
    monkeypatch.setenv("PDM_STORE__TOKEN", "tok-from-settings")
    store = dagkit.open_store()
    assert store.url == "http://127.0.0.1:18086" and store._token == "tok-from-settings"


def test_influxdb1_and_embedded_come_from_settings(monkeypatch, tmp_path):
    from pdm.pipeline import dagkit

    monkeypatch.setenv("PDM_STORE__BACKEND", "influxdb1")
    monkeypatch.setenv("PDM_STORE__URL", "http://127.0.0.1:18087")
    assert dagkit.open_store().backend == "influxdb1"
    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    monkeypatch.setenv("PDM_STORE__PATH", str(tmp_path / "s.duckdb"))
    assert dagkit.open_store().backend == "embedded"
