"""pdm_ingest: validate each data interval, record data quality, announce new data.

Idempotent per interval (catch-up and backfill re-run intervals freely): the
quality figures of an interval overwrite the same points. Emits the
``pdm://store/sensor-data`` Asset when the interval held data, and
``pdm://store/drift`` when the fleet's healthy values moved (pdm_train).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from pdm.pipeline import dagkit

_s = dagkit.settings()
SENSOR_DATA = Asset(name="pdm_sensor_data", uri=dagkit.SENSOR_DATA_URI)
DRIFT = Asset(name="pdm_drift", uri=dagkit.DRIFT_URI)


@dag(
    dag_id="pdm_ingest",
    schedule=CronDataIntervalTimetable(_s.pipeline.ingest_schedule, timezone="UTC"),
    start_date=dagkit.start_date(_s),
    catchup=_s.pipeline.catchup,
    max_active_runs=4,
    default_args=dagkit.default_args(_s),
    is_paused_upon_creation=True,
    tags=["pdm"],
    doc_md=__doc__,
)
def pdm_ingest():
    @task
    def validate() -> dict:
        from pdm.pipeline.ingest import ingest_interval

        s = dagkit.settings()
        start, stop = dagkit.interval(get_current_context(), timedelta(hours=1))
        report = ingest_interval(dagkit.open_store(s), start, stop, max_gap_fraction=s.pipeline.max_gap_fraction)
        return report.summary()

    @task(outlets=[SENSOR_DATA])
    def announce(summary: dict) -> dict:
        if not summary["points"]:
            raise AirflowSkipException(f"no data in {summary['start']} .. {summary['stop']}")
        return summary

    @task(outlets=[DRIFT])
    def watch_drift(summary: dict) -> dict:
        from pdm.pipeline.drift import quick_shift

        s = dagkit.settings()
        if not summary["points"]:
            raise AirflowSkipException("no data")
        shift = quick_shift(dagkit.open_store(s), dagkit.models_dir(s), summary["start"], summary["stop"])
        if shift["share"] <= s.pipeline.drift_share:
            raise AirflowSkipException(f"no drift: {shift['share']:.0%} of channels shifted")
        return shift

    summary = validate()
    announce(summary)
    watch_drift(summary)


pdm_ingest_dag = pdm_ingest()
