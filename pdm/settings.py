"""All of pdm's configuration in one typed object.

Values come, highest priority first, from keyword arguments, ``PDM_*``
environment variables (``PDM_STORE__BACKEND=influxdb1``; nested settings use a
double underscore), a TOML file named by ``PDM_CONFIG`` (or passed as
``config_file``), then the defaults below. An invalid value stops with a
message naming the setting; secrets are ``SecretStr`` and print as ``**********``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class SettingsError(ValueError):
    """A setting has an invalid value; the message names it."""


class StoreSettings(BaseModel):
    """Where the time series live."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["embedded", "influxdb1", "influxdb2"] = "embedded"
    path: Path = Field(Path("pdm-data/pdm.duckdb"), description="DuckDB file (embedded)")
    url: str = Field("http://127.0.0.1:8086", description="InfluxDB base URL")
    # InfluxDB 1.x
    database: str = "pdm"
    retention_policy: str = ""
    username: str = ""
    password: SecretStr = SecretStr("")
    # InfluxDB 2.x
    org: str = ""
    bucket: str = "pdm"
    token: SecretStr = SecretStr("")
    # Behaviour
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0, le=20)
    backoff_s: float = Field(0.5, ge=0)
    batch_lines: int = Field(10_000, ge=1, le=1_000_000)
    verify_ssl: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if "@" in v.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError("must not contain credentials; use username/password or token")
        return v.rstrip("/")


class PipelineSettings(BaseModel):
    """What the Airflow DAGs (``dags/``) do and when; ``PDM_PIPELINE__*``."""

    model_config = ConfigDict(extra="forbid")

    models_dir: Path | None = Field(None, description="model versions; default <data_dir>/models")
    start_date: str = Field("2024-01-01", description="first data interval of the scheduled DAGs (UTC)")
    catchup: bool = False
    ingest_schedule: str = "@hourly"
    score_schedule: str = "*/15 * * * *"
    train_schedule: str = "@weekly"
    simulate_schedule: str = Field("", description="pdm_simulate's cron; empty: only when triggered")
    simulate_config: str = Field("", description="simulator fleet file; empty: the default plant")
    simulate_machines: int | None = Field(None, ge=1)
    machine_groups: int = Field(4, ge=1, le=256, description="pdm_score fans out over this many groups")
    retries: int = Field(3, ge=0, le=20)
    retry_delay_s: float = Field(60.0, ge=0)
    max_retry_delay_s: float = Field(3600.0, ge=0)
    task_timeout_min: float = Field(60.0, gt=0)
    # Ingest validation
    max_gap_fraction: float = Field(0.2, ge=0, le=1, description="warn above this share of missing points")
    # Training
    train_days: float = Field(28.0, gt=0, description="history a full retrain learns from")
    recent_days: float = Field(7.0, gt=0, description="recent data for the drift check and evaluation")
    window: int = Field(144, ge=64)
    stride: int = Field(12, ge=1)
    d_model: int = Field(64, ge=8)
    layers: int = Field(2, ge=1)
    epochs: int = Field(10, ge=1)
    finetune_epochs: int = Field(3, ge=1)
    # Drift: channel drifts when KS statistic > drift_ks and p < drift_alpha;
    # fleet retrains fully when the share of drifting channels > drift_share.
    drift_ks: float = Field(0.3, gt=0, le=1)
    drift_alpha: float = Field(0.01, gt=0, lt=1)
    drift_share: float = Field(0.25, ge=0, le=1)
    # Promotion: a candidate is not worse when its recall is at least the
    # production model's and its false alarms per machine-month at most
    # production's + promote_fa_tolerance.
    promote_fa_tolerance: float = Field(0.5, ge=0)
    # Notifications of new alarms of notify_severity or above: a log line, and a POST when set. "warning"
    # by default: on the held-back fleets it told as many failures >= 72 h ahead as every alarm with a fifth
    # fewer false alarms; "critical" (the score held at 1.5 x threshold for half a day) told fewer failures
    # at fewer false alarms (README, "Severity"; benchmarks/severity.py).
    webhook_url: SecretStr = SecretStr("")
    notify_severity: Literal["warning", "critical"] = "warning"


class DashboardSettings(BaseModel):
    """The plant-floor dashboard (``pdmctl dashboard``); ``PDM_DASHBOARD__*``."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 for every interface)")
    port: int = Field(8050, ge=1, le=65535)
    refresh_s: float = Field(30.0, ge=1, description="pages re-read the store this often")
    title: str = "pdm — plant floor"
    # Acknowledging alarms needs HTTP basic authentication when a password is set.
    ack_username: str = ""
    ack_password: SecretStr = SecretStr("")


class Settings(BaseSettings):
    """pdm's settings. Later parts (model, detect, dashboard) add their sections."""

    model_config = SettingsConfigDict(
        env_prefix="PDM_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    store: StoreSettings = Field(default_factory=lambda: StoreSettings())
    pipeline: PipelineSettings = Field(default_factory=lambda: PipelineSettings())
    dashboard: DashboardSettings = Field(default_factory=lambda: DashboardSettings())
    data_dir: Path = Path("pdm-data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by ``PDM_CONFIG`` (if any)."""

    path: Path | None = None

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = self.path or (Path(os.environ["PDM_CONFIG"]) if os.environ.get("PDM_CONFIG") else None)
        if path is None:
            return {}
        try:
            with open(path, "rb") as fh:
                return tomllib.load(fh)
        except FileNotFoundError:
            raise SettingsError(f"PDM_CONFIG: file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"PDM_CONFIG: {path} is not valid TOML: {exc}") from None


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; raise SettingsError naming every invalid setting.

    Parameters
    ----------
    config_file
        A TOML file; takes the place of ``PDM_CONFIG``.
    overrides
        Top-level values that win over the environment and the file.
    """
    _TomlSource.path = Path(config_file) if config_file else None
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            env = "PDM_" + "__".join(str(p).upper() for p in err["loc"])
            problems.append(f"{loc} ({env}): {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
    finally:
        _TomlSource.path = None
