"""InfluxDB 1.x goes away during pdm_ingest: the task fails after its retries with a clear
error; once the server is back a re-run completes, with nothing lost or duplicated."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from tests.dags.conftest import load_dag, open_store, pipeline_env

pytestmark = [pytest.mark.influxdb1, pytest.mark.slow]

DAY = pd.Timestamp("2024-01-02T00:00:00Z")  # ingests 2024-01-01 (@daily data interval)


@pytest.fixture
def server(tmp_path, airflow_db):
    if shutil.which("influxd") is None:
        pytest.skip("no influxd: run `make test`, which installs InfluxDB 1.x")
    from pdm.devtools.influxd import InfluxServer

    srv = InfluxServer(tmp_path / "influxd").start()
    env = pipeline_env(tmp_path, srv.url, "outage")
    env.update({"PDM_PIPELINE__RETRIES": "2", "PDM_PIPELINE__RETRY_DELAY_S": "1",
                "PDM_PIPELINE__MAX_RETRY_DELAY_S": "2", "PDM_STORE__RETRIES": "0", "PDM_STORE__TIMEOUT_S": "2"})
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        yield srv, env
    srv.stop()


def _tries(run) -> dict[str, tuple[str, int]]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as s:
        tis = s.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return {ti.task_id: (str(ti.state), ti.try_number) for ti in tis}


def _sensor_points(store) -> int:
    return sum(len(store.read(m)) for m in ("vibration", "temperature", "process", "operator_log"))


def test_ingest_fails_after_its_retries_and_a_rerun_after_restart_loses_and_duplicates_nothing(server):
    from pdm.pipeline.ingest import QUALITY, ingest_interval
    from pdm.pipeline.simulate import simulate_interval
    from pdm.store import StoreUnavailableError

    srv, env = server
    store = open_store()
    simulate_interval(store, "2024-01-01", "2024-01-02", config_path=env["PDM_PIPELINE__SIMULATE_CONFIG"])
    before = _sensor_points(store)
    assert before > 0

    srv.stop()
    with pytest.raises(StoreUnavailableError) as err:  # what the task's log shows
        ingest_interval(open_store(), DAY - pd.Timedelta("1D"), DAY)
    assert srv.url.split("//")[1] in str(err.value)
    failed = load_dag("pdm_ingest").test(logical_date=DAY)
    assert failed.state == "failed"
    assert _tries(failed)["validate"] == ("failed", 3)  # the first try and 2 retries
    assert _tries(failed)["announce"][0] == "upstream_failed"

    srv.start()  # same data directory and port
    store = open_store()
    assert _sensor_points(store) == before  # nothing lost
    for _ in range(2):  # a re-run, and the same interval cleared and run again
        ok = load_dag("pdm_ingest").test(logical_date=DAY)
        assert ok.state == "success"
        assert _tries(ok)["validate"] == ("success", 1)
    quality = store.read(QUALITY)
    assert len(quality) == 4 * 4  # machines x measurements, once each
    assert (quality.index == DAY - pd.Timedelta("1D")).all()
    assert _sensor_points(store) == before  # nothing duplicated
