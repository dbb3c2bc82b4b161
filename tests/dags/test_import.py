"""The DAG files import cleanly and quickly, with the expected shape."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.dags.conftest import DAGS, ROOT

NAMES = ["pdm_ingest", "pdm_score", "pdm_simulate", "pdm_train"]


def _run(code: str, **env: str) -> str:
    import os

    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_dagbag_has_the_four_dags_and_no_import_errors():
    out = _run(f"""
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(DAGS)!r})
        print(sorted(bag.import_errors.items()))
        print(sorted(bag.dag_ids))
        for d in sorted(bag.dag_ids):
            dag = bag.dags[d]
            print(d, dag.is_paused_upon_creation, sorted(t.task_id for t in dag.tasks))
    """)
    lines = [line for line in out.strip().splitlines() if not line.startswith("20")]  # log lines
    assert lines[0] == "[]", lines[0]
    assert lines[1] == str(NAMES)
    assert all(" True " in line for line in lines[2:])  # new DAGs start paused
    assert "pdm_score True ['notify', 'plan', 'score']" in lines


def test_importing_all_dag_files_takes_under_two_seconds_and_loads_nothing_heavy():
    # airflow.sdk itself is imported first: the budget is for the DAG files' own work.
    out = _run(f"""
        import importlib.util, sys, time
        import airflow.sdk
        t = time.perf_counter()
        for n in {NAMES!r}:
            spec = importlib.util.spec_from_file_location(n, {str(DAGS)!r} + "/" + n + ".py")
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        print(time.perf_counter() - t)
        print(sorted(m for m in ("torch", "tsai", "fastai", "pdm.store.influxdb1", "sensors_sim") if m in sys.modules))
    """)
    seconds, heavy = out.strip().splitlines()[-2:]
    assert float(seconds) < 2.0, f"importing the DAG files took {seconds} s"
    assert heavy == "[]"


def test_schedules_groups_and_retries_come_from_settings_not_the_dag_files():
    out = _run(f"""
        import importlib.util
        for n in ("pdm_ingest", "pdm_score"):
            spec = importlib.util.spec_from_file_location(n, {str(DAGS)!r} + "/" + n + ".py")
            m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
            dag = getattr(m, n + "_dag")
            t = dag.tasks[0]
            print(n, getattr(dag.timetable, "timetable", dag.timetable).expression, t.retries, t.retry_exponential_backoff, t.execution_timeout)
    """, PDM_PIPELINE__INGEST_SCHEDULE="*/30 * * * *", PDM_PIPELINE__SCORE_SCHEDULE="*/5 * * * *",
        PDM_PIPELINE__RETRIES="7", PDM_PIPELINE__TASK_TIMEOUT_MIN="12")
    assert "pdm_ingest */30 * * * * 7" in out
    assert "*/5 * * * *" in out.splitlines()[1]
    assert out.count("0:12:00") == 2 and "True" in out
