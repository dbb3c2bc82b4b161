"""Settings: environment, TOML file, validation that names the setting, no leaked secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pdm.settings import SettingsError, load_settings


def test_defaults_use_the_embedded_store(monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("PDM_"):
            monkeypatch.delenv(k)
    s = load_settings()
    assert s.store.backend == "embedded"
    assert s.store.path == Path("pdm-data/pdm.duckdb")


def test_environment_variables_configure_nested_settings(monkeypatch):
    monkeypatch.setenv("PDM_STORE__BACKEND", "influxdb2")
    monkeypatch.setenv("PDM_STORE__URL", "https://influx.plant.local:8086/")
    monkeypatch.setenv("PDM_STORE__TOKEN", "s3cr3t-token")
    s = load_settings()
    assert s.store.backend == "influxdb2"
    assert s.store.url == "https://influx.plant.local:8086"
    assert s.store.token.get_secret_value() == "s3cr3t-token"


def test_a_toml_file_is_read_and_the_environment_wins(monkeypatch, tmp_path):
    cfg = tmp_path / "pdm.toml"
    cfg.write_text('[store]\nbackend = "influxdb1"\ndatabase = "plant7"\nretries = 5\n')
    monkeypatch.setenv("PDM_CONFIG", str(cfg))
    monkeypatch.setenv("PDM_STORE__RETRIES", "2")
    s = load_settings()
    assert s.store.backend == "influxdb1" and s.store.database == "plant7"
    assert s.store.retries == 2


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("PDM_STORE__BACKEND", "mongodb", "store.backend"),
        ("PDM_STORE__RETRIES", "-1", "store.retries"),
        ("PDM_STORE__URL", "influx:8086", "store.url"),
        ("PDM_LOG_LEVEL", "LOUD", "log_level"),
    ],
)
def test_an_invalid_value_stops_with_a_message_naming_the_setting(monkeypatch, env, value, named):
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert named in str(err.value) and env in str(err.value)


def test_an_unknown_key_in_the_toml_file_is_refused(tmp_path):
    cfg = tmp_path / "pdm.toml"
    cfg.write_text("[store]\nbakend = 'embedded'\n")
    with pytest.raises(SettingsError, match="bakend"):
        load_settings(cfg)


def test_a_missing_or_broken_toml_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[store\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad)


def test_secrets_never_appear_in_repr_dumps_errors_or_logs(monkeypatch, caplog):
    monkeypatch.setenv("PDM_STORE__TOKEN", "tok-ABC123-secret")
    monkeypatch.setenv("PDM_STORE__PASSWORD", "pw-XYZ789-secret")
    s = load_settings()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("pdm").info("settings: %s / %r", s, s.store)
    texts = [repr(s), str(s), s.model_dump_json(), str(s.model_dump()), caplog.text]
    monkeypatch.setenv("PDM_STORE__RETRIES", "many")
    with pytest.raises(SettingsError) as err:
        load_settings()
    texts.append(str(err.value))
    for text in texts:
        assert "tok-ABC123-secret" not in text and "pw-XYZ789-secret" not in text


def test_credentials_in_the_url_are_refused(monkeypatch):
    monkeypatch.setenv("PDM_STORE__URL", "http://admin:hunter2@influx:8086")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "store.url" in str(err.value) and "hunter2" not in str(err.value)
