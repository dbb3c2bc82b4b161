"""pdm_simulate (optional, demos and tests): write the simulated plant into the store.

Each run writes its data interval (or ``start``/``stop`` from the run's
configuration) of the deterministic simulator: a re-run writes the same points,
which merge. Only runs when triggered unless ``PDM_PIPELINE__SIMULATE_SCHEDULE`` is set.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task

from pdm.pipeline import dagkit

_s = dagkit.settings()


@dag(
    dag_id="pdm_simulate",
    schedule=CronDataIntervalTimetable(_s.pipeline.simulate_schedule, timezone="UTC")
    if _s.pipeline.simulate_schedule else None,
    start_date=dagkit.start_date(_s),
    catchup=False,
    max_active_runs=1,
    default_args=dagkit.default_args(_s),
    is_paused_upon_creation=True,
    params={"start": None, "stop": None, "chunk": "1D"},
    tags=["pdm", "demo"],
    doc_md=__doc__,
)
def pdm_simulate():
    @task
    def chunks() -> list[dict]:
        import pandas as pd

        ctx = get_current_context()
        start, stop = dagkit.interval(ctx, timedelta(hours=1))
        t0 = pd.Timestamp(ctx["params"].get("start") or start)
        t1 = pd.Timestamp(ctx["params"].get("stop") or stop)
        edges = list(pd.date_range(t0, t1, freq=ctx["params"].get("chunk") or "1D")) + [t1]
        edges = sorted(set(edges))
        return [{"start": a.isoformat(), "stop": b.isoformat()} for a, b in zip(edges, edges[1:], strict=False) if b > a]

    @task
    def write(chunk: dict) -> int:
        from pdm.pipeline.simulate import simulate_interval

        s = dagkit.settings()
        return simulate_interval(dagkit.open_store(s), chunk["start"], chunk["stop"],
                                 config_path=s.pipeline.simulate_config or None,
                                 machines=s.pipeline.simulate_machines)

    write.expand(chunk=chunks())


pdm_simulate_dag = pdm_simulate()
