"""pdm_score: score the fleet with the production model, one mapped task per machine group.

Runs every 15 minutes by default (``PDM_PIPELINE__SCORE_SCHEDULE``) and
whenever pdm_ingest announces new data. Scores, alarms and root causes go back
to the store; re-scoring an interval overwrites the same points. New alarms of
``PDM_PIPELINE__NOTIFY_SEVERITY`` are sent once each (a log line; a webhook
when ``PDM_PIPELINE__WEBHOOK_URL`` is set).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import (
    Asset,
    dag,
    get_current_context,
    task,
)

from pdm.pipeline import dagkit

_s = dagkit.settings()
SENSOR_DATA = Asset(name="pdm_sensor_data", uri=dagkit.SENSOR_DATA_URI)


@dag(dag_id="pdm_score", doc_md=__doc__,
     **dagkit.dag_kwargs(_s.pipeline.score_schedule, SENSOR_DATA, {"start": None, "stop": None}, _s))
def pdm_score():
    @task
    def plan() -> list[dict]:
        from pdm.model.registry import production_path
        from pdm.pipeline.scoring import machine_groups

        s = dagkit.settings()
        ctx = get_current_context()
        start, stop = dagkit.interval(ctx, timedelta(hours=1))
        start = ctx["params"].get("start") or start
        stop = ctx["params"].get("stop") or stop
        model = production_path(dagkit.models_dir(s))
        store = dagkit.open_store(s)
        from pdm.features.grid import SENSOR_MEASUREMENTS

        machines = store.machines(list(SENSOR_MEASUREMENTS))
        if not machines:
            raise ValueError("no machines with sensor data in the store")
        # Windows whose end falls in the interval are scored; scoring reads their history itself.
        return [{"machines": g, "model": str(model), "start": str(start), "stop": str(stop)}
                for g in machine_groups(machines, s.pipeline.machine_groups)]

    @task(map_index_template="{{ task.op_kwargs['group']['machines'][0] }}+")
    def score(group: dict) -> dict:
        import os
        import socket

        from pdm.pipeline.scoring import score_group

        s = dagkit.settings()
        out = score_group(dagkit.open_store(s), group["model"], group["machines"], group["start"], group["stop"])
        out["worker"] = os.environ.get("PDM_WORKER_NAME") or socket.gethostname()
        return out

    @task
    def notify(groups: list[dict], results: list[dict]) -> dict:
        from pdm.pipeline.notify import Notifier, notify_new_alarms

        s = dagkit.settings()
        if not groups:
            return {"sent": 0}
        notifier = Notifier(s.pipeline.webhook_url)
        sent = notify_new_alarms(dagkit.open_store(s), groups[0]["start"], groups[0]["stop"],
                                 notifier, s.pipeline.notify_severity)
        return {"sent": sent, "scores": sum(r["scores"] for r in results),
                "alarms": sum(r["alarms"] for r in results), "workers": sorted({r["worker"] for r in results})}

    groups = plan()
    results = score.expand(group=groups)
    notify(groups, results)


pdm_score_dag = pdm_score()
