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


class Settings(BaseSettings):
    """pdm's settings. Later parts (model, detect, dashboard) add their sections."""

    model_config = SettingsConfigDict(
        env_prefix="PDM_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    store: StoreSettings = Field(default_factory=lambda: StoreSettings())
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
