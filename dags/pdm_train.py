"""pdm_train: drift check, full retrain or fine-tune, evaluate against production, promote.

Weekly by default (``PDM_PIPELINE__TRAIN_SCHEDULE``) and when pdm_ingest
announces drift. The drift test (two-sample Kolmogorov–Smirnov per machine and
channel, recent healthy data vs the model's training data; see
:mod:`pdm.pipeline.drift`) decides: drifted → full retrain, else the top
layers are fine-tuned. The candidate is promoted only when it is not worse
than production on the same recent data (event metrics); every version stays
on disk for rollback (``pdmctl``/``pdm.model.registry.rollback``).
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
DRIFT = Asset(name="pdm_drift", uri=dagkit.DRIFT_URI)


@dag(dag_id="pdm_train", doc_md=__doc__,
     **dagkit.dag_kwargs(_s.pipeline.train_schedule, DRIFT, {"stop": None}, _s))
def pdm_train():
    @task
    def check_drift() -> dict:
        import pandas as pd

        from pdm.model.directory import load
        from pdm.model.registry import production_version
        from pdm.pipeline.drift import fleet_drift, save_drift

        s = dagkit.settings()
        p = s.pipeline
        ctx = get_current_context()
        _, stop = dagkit.interval(ctx, timedelta(days=7))
        stop = pd.Timestamp(ctx["params"].get("stop") or stop)
        recent = stop - pd.Timedelta(days=p.recent_days)
        models = dagkit.models_dir(s)
        out = {"stop": stop.isoformat(), "recent_start": recent.isoformat(), "production": None}
        version = production_version(models)
        if version is None:
            return {**out, "decision": "retrain", "reason": "no production model yet"}
        report = fleet_drift(dagkit.open_store(s), load(models / version), recent, stop,
                             ks=p.drift_ks, alpha=p.drift_alpha, share=p.drift_share)
        result = {**out, **report.summary(), "production": str(models / version),
                  "reason": f"{report.share:.0%} of channel tests drifted (threshold {report.threshold:.0%})"}
        save_drift(models, {**result, "checked_at": pd.Timestamp.now(tz="UTC").isoformat()})
        return result

    @task
    def train_candidate(drift: dict) -> dict:
        import pandas as pd

        from pdm.pipeline.retrain import finetune_fleet, full_retrain

        s = dagkit.settings()
        p = s.pipeline
        store, models, stop = dagkit.open_store(s), dagkit.models_dir(s), pd.Timestamp(drift["stop"])
        if drift["decision"] == "retrain":
            path = full_retrain(store, models, stop - pd.Timedelta(days=p.train_days), stop, window=p.window,
                                stride=p.stride, d_model=p.d_model, layers=p.layers, epochs=p.epochs)
        else:
            path = finetune_fleet(store, drift["production"], models, drift["recent_start"], stop,
                                  epochs=p.finetune_epochs)
        return {**drift, "candidate": str(path)}

    @task
    def evaluate(c: dict) -> dict:
        from pdm.pipeline.retrain import evaluate_model

        s = dagkit.settings()
        store = dagkit.open_store(s)
        cand = evaluate_model(store, c["candidate"], c["recent_start"], c["stop"])
        prod = evaluate_model(store, c["production"], c["recent_start"], c["stop"]) if c["production"] else None
        return {**c, "candidate_metrics": cand, "production_metrics": prod}

    @task
    def promote(e: dict) -> dict:
        from pathlib import Path

        from pdm.model.registry import history
        from pdm.model.registry import promote as _promote
        from pdm.pipeline.retrain import decide_promotion

        s = dagkit.settings()
        models = dagkit.models_dir(s)
        ok, why = decide_promotion(e["candidate_metrics"], e["production_metrics"],
                                   fa_tolerance=s.pipeline.promote_fa_tolerance)
        version = Path(e["candidate"]).name
        promoted = [h["version"] for h in history(models)]
        if ok and (not promoted or promoted[-1] != version):  # a re-run promotes once
            _promote(models, version, reason=f"{e['decision']}: {why}", metrics=e["candidate_metrics"])
        return {"promoted": ok, "version": version, "reason": why, "decision": e["decision"]}

    promote(evaluate(train_candidate(check_drift())))


pdm_train_dag = pdm_train()
