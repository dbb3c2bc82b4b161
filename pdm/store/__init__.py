"""Time-series store: one interface, three back ends chosen by configuration.

>>> from pdm.store import open_store
>>> store = open_store()            # embedded DuckDB unless PDM_STORE__BACKEND says otherwise

See :class:`pdm.store.base.Store` for the contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pdm.store.base import Store, WriteResult
from pdm.store.batch import Point
from pdm.store.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidNameError,
    PointsRejectedError,
    QueryError,
    RejectedPoint,
    StoreError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from pdm.settings import StoreSettings

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "InvalidNameError",
    "Point",
    "PointsRejectedError",
    "QueryError",
    "RejectedPoint",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "WriteResult",
    "open_store",
]


def open_store(settings: StoreSettings | None = None) -> Store:
    """Open the back end named by ``settings.backend`` (default: from the environment)."""
    if settings is None:
        from pdm.settings import load_settings

        settings = load_settings().store
    common: dict[str, Any] = dict(
        timeout_s=settings.timeout_s,
        retries=settings.retries,
        backoff_s=settings.backoff_s,
        batch_lines=settings.batch_lines,
        verify_ssl=settings.verify_ssl,
    )
    if settings.backend == "embedded":
        from pdm.store.embedded import EmbeddedStore

        return EmbeddedStore(settings.path)
    if settings.backend == "influxdb1":
        from pdm.store.influxdb1 import InfluxDB1Store

        return InfluxDB1Store(
            settings.url,
            database=settings.database,
            retention_policy=settings.retention_policy,
            username=settings.username,
            password=settings.password,
            **common,
        )
    if settings.backend == "influxdb2":
        from pdm.store.influxdb2 import InfluxDB2Store

        return InfluxDB2Store(
            settings.url, org=settings.org, bucket=settings.bucket, token=settings.token, **common
        )
    raise ConfigurationError(f"store.backend: unknown back end {settings.backend!r}")
