"""What the DAG files share: settings, task defaults, the store, the data interval.

Only DAG files import this; it stays light (no torch, no pandas at import) so
that parsing the DAGs is quick. Everything configurable comes from pdm's
settings (``PDM_PIPELINE__*``, ``PDM_STORE__*`` or the ``PDM_CONFIG`` file),
so schedules, groups and thresholds change without editing a DAG file.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pdm.settings import Settings
    from pdm.store import Store

log = logging.getLogger(__name__)

#: Assets: new sensor data ingested (→ pdm_score), the data drifted (→ pdm_train).
SENSOR_DATA_URI = "pdm://store/sensor-data"
DRIFT_URI = "pdm://store/drift"
INFLUXDB_CONN_ID = "influxdb_default"


def settings() -> Settings:
    from pdm.settings import load_settings

    return load_settings()


def default_args(s: Settings | None = None) -> dict[str, Any]:
    """Retries with exponential backoff and a timeout for every task."""
    p = (s or settings()).pipeline
    return {
        "owner": "pdm",
        "retries": p.retries,
        "retry_delay": timedelta(seconds=p.retry_delay_s),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds=max(p.max_retry_delay_s, p.retry_delay_s)),
        "execution_timeout": timedelta(minutes=p.task_timeout_min),
    }


def start_date(s: Settings | None = None) -> datetime:
    raw = (s or settings()).pipeline.start_date
    d = datetime.fromisoformat(raw)
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d


def dag_kwargs(cron: str, assets: Any, params: dict[str, Any], s: Settings | None = None) -> dict[str, Any]:
    """The ``@dag`` arguments of pdm's scheduled DAGs: run on ``cron`` (UTC) or when ``assets`` update.

    One run at a time, no catch-up, created paused, :func:`default_args` for every task.
    """
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable

    s = s or settings()
    return {
        "schedule": AssetOrTimeSchedule(timetable=CronDataIntervalTimetable(cron, timezone="UTC"), assets=assets),
        "start_date": start_date(s), "catchup": False, "max_active_runs": 1, "default_args": default_args(s),
        "is_paused_upon_creation": True, "params": params, "tags": ["pdm"],
    }


def models_dir(s: Settings | None = None):
    s = s or settings()
    return s.pipeline.models_dir or (s.data_dir / "models")


def open_store(s: Settings | None = None) -> Store:
    """The store named by pdm's settings; InfluxDB 2.x takes its URL, org and token from
    Airflow's ``influxdb_default`` connection (the official provider's InfluxDBHook) when it exists."""
    from pdm.store import open_store as _open

    s = s or settings()
    store_settings = s.store
    if store_settings.backend == "influxdb2":
        conn = _influxdb_connection()
        if conn is not None:
            url, org, token = conn
            store_settings = store_settings.model_copy(update={"url": url, "org": org or store_settings.org,
                                                               "token": token or store_settings.token})
    return _open(store_settings)


def _influxdb_connection() -> tuple[str, str, Any] | None:
    from pydantic import SecretStr

    try:
        from airflow.providers.influxdb.hooks.influxdb import InfluxDBHook

        hook = InfluxDBHook(conn_id=INFLUXDB_CONN_ID)
        conn = hook.get_connection(INFLUXDB_CONN_ID)
    except Exception as exc:  # no such connection: pdm's own settings apply
        log.info("no Airflow connection %s (%s): using PDM_STORE__* settings", INFLUXDB_CONN_ID, type(exc).__name__)
        return None
    extras = conn.extra_dejson or {}
    token = extras.get("token") or conn.password or ""
    return hook.get_uri(conn), str(extras.get("org") or ""), SecretStr(str(token))  # type: ignore[arg-type]


def interval(context: dict[str, Any], fallback: timedelta) -> tuple[datetime, datetime]:
    """The run's data interval; asset-triggered and manual runs without one get ``fallback`` before run_after."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None or end <= start:
        end = end or context.get("logical_date") or context["dag_run"].run_after
        start = end - fallback
    return start, end
