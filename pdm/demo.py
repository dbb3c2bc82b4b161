"""``make demo``: the main job on the embedded store, from nothing to results.

Today: simulate a small plant, write it to the store, read it back and print
a summary. Later work extends it to train → score → evaluate → dashboard.
"""

from __future__ import annotations

import logging
import time

from pdm.settings import Settings
from pdm.store import open_store
from pdm.store.summary import summarize

log = logging.getLogger(__name__)


def run_demo(settings: Settings, machines: int = 10, days: float = 7.0, seed: int = 7) -> None:
    """Run every stage that exists, printing a line per step."""
    from sensors_sim.config import fleet_config
    from sensors_sim.run import backfill

    cfg = settings.store
    where = cfg.path if cfg.backend == "embedded" else cfg.url
    print(f"[1/4] store: {cfg.backend} at {where}")
    labels = settings.data_dir / "labels.csv"
    with open_store(cfg) as store:
        store.ping()
        res = backfill(store, fleet_config(machines=machines, seed=seed), days, labels_path=labels)
        print(f"[2/4] simulated {machines} machines x {days:g} days: {res.points:,} values in {res.seconds:.1f}s; "
              f"ground truth in {labels} and pdm_truth")
        t = time.perf_counter()
        summary = summarize(store)
        print(f"[3/4] read back in {time.perf_counter() - t:.1f}s:")
        per_measurement = summary.reset_index().groupby("measurement").agg(
            machines=("machine", "nunique"), points=("points", "sum"), first=("first", "min"), last=("last", "max")
        )
        print(per_measurement.to_string())
        truth = store.read("pdm_truth")
        if not truth.empty:
            kinds = truth.groupby(["kind", "is_failure"]).size().rename("events").reset_index()
            print("ground truth (pdm_truth):")
            print(kinds.to_string(index=False))
        from pdm.model.pipeline import FeatureConfig, train_fleet
        from pdm.model.train import TrainConfig

        t = time.perf_counter()
        report = train_fleet(
            store, settings.data_dir / "models", start=res.start, stop=res.end,
            features=FeatureConfig(window=72, stride=6),
            model_overrides={"d_model": 32, "layers": 2}, train_cfg=TrainConfig(epochs=3, seed=seed),
        )
        met = report.metrics
        print(f"[4/4] trained TSHAE on {len(report.machines)} machines ({met['windows']} healthy windows, "
              f"{met['epochs_run']} epochs) in {time.perf_counter() - t:.1f}s: valid loss "
              f"{met['valid_loss'][0]:.4f} -> {met['valid_loss'][-1]:.4f}; model directory {report.path}")
        from pdm.detect.score import score_machines
        from pdm.model.registry import promote

        promote(report.path.parent, report.path.name, reason="demo")
        t = time.perf_counter()
        scored = score_machines(store, report.path.parent, start=res.start, stop=res.end, progress=False)
        alarms = sum(len(r.alarms) for r in scored.machines.values())
        alarmed = sorted(m for m, r in scored.machines.items() if r.alarms)
        failures = truth[truth["is_failure"].fillna(False).astype(bool)] if not truth.empty else truth
        failed = sorted(set(failures["machine"])) if not failures.empty else []
        print(f"[score] production model {scored.model_version}: {sum(len(r.scores) for r in scored.machines.values())} "
              f"windows scored in {time.perf_counter() - t:.1f}s; {alarms} alarms on {len(alarmed)} machines "
              f"({', '.join(alarmed) or 'none'}); ground truth: {len(failures)} failures on {len(failed)} machines "
              f"({', '.join(failed) or 'none'})")
    dash = settings.dashboard
    print(f"[dashboard] the demo data in the plant-floor dashboard: run `pdmctl dashboard` "
          f"(or `.venv/bin/pdmctl dashboard`), then open http://{dash.host}:{dash.port}/")
