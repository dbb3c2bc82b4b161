"""simulate → ingest → train → score with dag.test() against a real InfluxDB 1.x."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.dags.conftest import FAILURE, FAULTY, MACHINES, SIM_START, SIM_STOP, load_dag, open_store

pytestmark = [pytest.mark.influxdb1, pytest.mark.slow]


def _ok(run) -> None:
    assert run.state == "success", f"{run.dag_id}: {run.state}"


def _counts(store) -> dict[str, int]:
    return {m: len(store.read(m)) for m in ("pdm_score", "pdm_alarm", "pdm_rootcause", "pdm_notified")}


@pytest.fixture(scope="module")
def pipeline(airflow_db, plant_env):
    """Run the four DAGs in order once; the tests below look at what they left."""
    out = {}
    import time
    t = time.perf_counter()
    out["simulate"] = load_dag("pdm_simulate").test(run_conf={"start": SIM_START, "stop": SIM_STOP})
    _ok(out["simulate"])
    out["t_simulate"] = time.perf_counter() - t
    out["ingest"] = load_dag("pdm_ingest").test(logical_date=pd.Timestamp("2024-01-08T00:00:00Z"))
    _ok(out["ingest"])
    out["t_ingest"] = time.perf_counter() - t
    out["train"] = load_dag("pdm_train").test(run_conf={"stop": SIM_STOP})
    _ok(out["train"])
    out["t_train"] = time.perf_counter() - t
    score = load_dag("pdm_score")
    conf = {"start": "2024-01-04T00:00:00Z", "stop": SIM_STOP}
    out["score"] = score.test(run_conf=conf)
    _ok(out["score"])
    out["t_score"] = time.perf_counter() - t
    with open("/tmp/dag_timings.txt", "w") as fh:
        fh.write(str({k: round(v, 1) for k, v in out.items() if k.startswith("t_")}))
    out["counts"] = _counts(open_store())
    out["score_dag"], out["score_conf"] = score, conf
    return out


def test_ingest_records_data_quality_for_every_machine_and_measurement(pipeline):
    q = open_store().read("pdm_quality")
    assert sorted(q["machine"].unique()) == MACHINES
    assert set(q["source"]) == {"vibration", "temperature", "process", "operator_log"}
    day = q[q.index == q.index.max()]
    assert (day.loc[day["source"] != "operator_log", "points"] > 0).all()
    assert (day["missing_fraction"] < 0.5).all()


def test_ingest_announces_new_data_as_an_asset_event(pipeline):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as s:
        events = (s.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                  .filter(AssetModel.uri == "pdm://store/sensor-data").all())
        assert len(events) == 1 and events[0].source_dag_id == "pdm_ingest"


def test_train_promotes_a_first_model(plant_env, pipeline):
    from pdm.model.registry import history, production_version

    models = f"{plant_env['PDM_DATA_DIR']}/models"
    assert production_version(models) is not None
    assert history(models)[-1]["reason"].startswith("retrain")


def test_scores_exist_for_every_machine_and_the_fault_raises_an_alarm(pipeline):
    store = open_store()
    scores = store.read("pdm_score")
    assert sorted(scores["machine"].unique()) == MACHINES
    assert scores.index.min() >= pd.Timestamp("2024-01-04", tz="UTC")
    alarms = store.read("pdm_alarm", FAULTY)
    failure = pd.Timestamp(FAILURE)
    before = alarms[(alarms.index < failure) & (alarms.index >= failure - pd.Timedelta("4D"))]
    assert len(before), f"no alarm for {FAULTY} before its failure; alarms: {alarms.index.tolist()}"
    assert pipeline["counts"]["pdm_rootcause"] > 0


def test_rescoring_the_same_interval_leaves_the_same_points(pipeline):
    again = pipeline["score_dag"].test(run_conf=pipeline["score_conf"])
    assert again.state == "success"
    assert _counts(open_store()) == pipeline["counts"]


def _xcom(run, task_id: str) -> str:
    """A task's result as stored (JSON text)."""
    import json

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as s:
        x = s.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id,
                                         key="return_value").one()
        return x.value if isinstance(x.value, str) else json.dumps(x.value, default=str)


def test_a_second_training_run_tests_drift_fine_tunes_and_keeps_every_version(plant_env, pipeline):
    from pdm.model.registry import history, production_version, versions

    models = f"{plant_env['PDM_DATA_DIR']}/models"
    first = production_version(models)
    run = load_dag("pdm_train").test(run_conf={"stop": SIM_STOP})
    _ok(run)
    drift = _xcom(run, "check_drift")
    assert "two-sample Kolmogorov-Smirnov" in drift
    assert '"finetune"' in drift and '"retrain"' not in drift, drift  # the same plant: no drift
    saved = json.loads((Path(models) / "drift.json").read_text())  # what the dashboard's model page shows
    assert saved["decision"] == "finetune" and saved["tested"] > 0 and "checked_at" in saved
    names = [v["version"] for v in versions(models)]
    tuned = [n for n in names if n.endswith("-finetune")]
    assert first in names and len(tuned) == 1  # the previous version stays for rollback
    now = production_version(models)
    if now == tuned[0]:
        assert history(models)[-1]["previous"] == first
        assert history(models)[-1]["reason"].startswith("finetune: not worse")
    else:
        assert now == first and "worse than production" in _xcom(run, "promote")


def test_the_drift_screen_of_ingest_sees_no_shift_on_a_healthy_day_but_the_fault_shifts_channels(plant_env, pipeline):
    from pdm.pipeline.drift import quick_shift

    models = f"{plant_env['PDM_DATA_DIR']}/models"
    healthy = quick_shift(open_store(), models, "2024-01-02", "2024-01-03")
    assert healthy["tested"] > 0 and healthy["share"] < 0.25
    before_failure = quick_shift(open_store(), models, "2024-01-09T00:00Z", "2024-01-09T12:00Z")
    assert any(s.startswith(f"{FAULTY}:") for s in before_failure["shifted"]), before_failure
