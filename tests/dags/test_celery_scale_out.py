"""pdm_score under the CeleryExecutor: PostgreSQL metadata, Redis broker, two workers.

Starts its own Airflow api-server (the task-execution API the workers talk
to) and two Celery workers on a Redis database of its own, runs pdm_score with
``dag.test(use_executor=True)`` and shows from the mapped tasks' results that
both workers scored machine groups. Needs PostgreSQL at 127.0.0.1:5432 (trust
auth) and Redis at 127.0.0.1:6379, which this kind of machine runs; skipped
only when they are not reachable.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.dags.conftest import DAGS, ROOT, pipeline_env

pytestmark = [pytest.mark.influxdb1, pytest.mark.slow]

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def _reachable(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=2):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pg_database():
    if not _reachable(PG):
        pytest.skip(f"PostgreSQL not reachable at {PG[0]}:{PG[1]} (start it: pg_ctlcluster ... main start)")
    if not _reachable(REDIS):
        pytest.skip(f"Redis not reachable at {REDIS[0]}:{REDIS[1]} (start it: redis-server --daemonize yes ...)")
    import psycopg2

    name = "pdm_airflow_" + uuid.uuid4().hex[:8]
    conn = psycopg2.connect(host=PG[0], port=PG[1], user="postgres", dbname="postgres")
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture
def plant(tmp_path, influxdb1_url):
    """Four machines x 4 days in InfluxDB 1.x and a tiny production model."""
    from pdm.model.registry import promote
    from pdm.pipeline.retrain import full_retrain
    from pdm.pipeline.simulate import simulate_interval
    from pdm.settings import StoreSettings
    from pdm.store import open_store

    env = pipeline_env(tmp_path, influxdb1_url, "pdm_celery_" + uuid.uuid4().hex[:8])
    env["PDM_PIPELINE__MACHINE_GROUPS"] = "4"
    store = open_store(StoreSettings(backend="influxdb1", url=influxdb1_url, database=env["PDM_STORE__DATABASE"]))
    simulate_interval(store, "2024-01-01", "2024-01-05", config_path=env["PDM_PIPELINE__SIMULATE_CONFIG"])
    path = full_retrain(store, tmp_path / "models", "2024-01-01", "2024-01-05", window=72, stride=12,
                        d_model=32, layers=1, epochs=1)
    promote(tmp_path / "models", path.name, reason="test")
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    fh = open(log, "wb")
    return subprocess.Popen([sys.executable, "-m", "airflow", *args], cwd=ROOT, env=env, stdout=fh,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait_http(url: str, timeout_s: float) -> None:
    import urllib.request

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f}s")


def _clean_broker(db: int) -> None:
    """Remove what this test's Celery left in its Redis database (queues, bindings)."""
    import redis

    r = redis.Redis(host=REDIS[0], port=REDIS[1], db=db)
    for pattern in ("default", "_kombu.*", "unacked*", "celery*"):
        keys = list(r.scan_iter(pattern))
        if keys:
            r.delete(*keys)


DRIVER = f"""
import importlib.util, json
from airflow.models import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
spec = importlib.util.spec_from_file_location("pdm_score", {str(DAGS / "pdm_score.py")!r})
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
run = mod.pdm_score_dag.test(use_executor=True, run_conf={{"start": "2024-01-03T00:00:00Z", "stop": "2024-01-05T00:00:00Z"}})
with create_session() as s:
    tis = s.query(TaskInstance).filter_by(dag_id="pdm_score", run_id=run.run_id).all()
    xs = s.query(XComModel).filter_by(dag_id="pdm_score", run_id=run.run_id, task_id="score", key="return_value").all()
    out = {{"state": str(run.state), "tis": sorted((t.task_id, t.map_index, str(t.state)) for t in tis),
           "results": [x.value if isinstance(x.value, str) else json.dumps(x.value, default=str) for x in xs]}}
print("RESULT " + json.dumps(out, default=str))
"""


def test_mapped_score_tasks_run_on_both_celery_workers(tmp_path, pg_database, plant):
    home = tmp_path / "airflow"
    home.mkdir()
    port = _free_port()
    # A Redis database of its own for the broker (tasks go to the "default" queue).
    redis_db = 11
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(plant)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@{PG[0]}:{PG[1]}/{pg_database}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@{PG[0]}:{PG[1]}/{pg_database}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{redis_db}",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
        "AIRFLOW__CORE__FERNET_KEY": "",
        "PYTHONPATH": str(ROOT),
    })
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    procs = [_spawn(["api-server", "--port", str(port), "--host", "127.0.0.1"], env, tmp_path / "api.log")]
    for name in ("w1", "w2"):
        procs.append(_spawn(["celery", "worker", "-c", "1", "-H", f"{name}@%h", "--skip-serve-logs"],
                            {**env, "PDM_WORKER_NAME": name}, tmp_path / f"{name}.log"))
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/v2/version", 180)
        with open(tmp_path / "driver.log", "wb") as fh:
            try:
                subprocess.run([sys.executable, "-c", DRIVER], cwd=ROOT, env=env, stdout=fh,
                               stderr=subprocess.STDOUT, timeout=360)
            except subprocess.TimeoutExpired:
                pass
        text = (tmp_path / "driver.log").read_text(errors="replace")
        line = next((x for x in text.splitlines() if x.startswith("RESULT ")), None)
        logs = {p.name: p.read_text(errors="replace")[-1500:] for p in tmp_path.glob("*.log")}
        assert line, f"pdm_score under Celery did not finish: {logs}"
        out = json.loads(line[len("RESULT "):])
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        _clean_broker(redis_db)
    assert out["state"] == "success", out
    mapped = [t for t in out["tis"] if t[0] == "score"]
    assert len(mapped) >= 2 and all(t[2] == "success" for t in mapped), out["tis"]
    # Each mapped task's result (its XCom, as stored) names the worker that ran it.
    raw = out["results"]
    assert len(raw) == len(mapped)
    workers = {w for w in ("w1", "w2") for r in raw if f'"{w}"' in r}
    assert workers == {"w1", "w2"}, f"mapped tasks ran on {workers}: {raw}"
    machines = ["comp-1", "fan-1", "gbx-1", "pump-f"]
    assert all(sum(f'"{m}"' in r for r in raw) >= 1 for m in machines), raw
    # And the scores are in the store, for every machine.
    from pdm.settings import StoreSettings
    from pdm.store import open_store

    store = open_store(StoreSettings(backend="influxdb1", url=plant["PDM_STORE__URL"],
                                     database=plant["PDM_STORE__DATABASE"]))
    assert sorted(store.read("pdm_score")["machine"].unique()) == machines

