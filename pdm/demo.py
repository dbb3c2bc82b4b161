"""``make demo``: the main job on the embedded store, from nothing to results.

Simulate a small plant (three weeks by default; at seed 7 conv-004 loses its
lubrication and fails on day 18), train TSHAE on the healthy windows of the first two weeks,
score the whole period with the production model, evaluate the alarms
against the ground truth with event metrics, write an HTML report and tell the
user how to open the dashboard over the same data. One line per step.
"""

from __future__ import annotations

import logging
import time

import pandas as pd

from pdm.settings import Settings
from pdm.store import open_store
from pdm.store.summary import summarize

log = logging.getLogger(__name__)

STEPS = 7


def _step(i: int, text: str) -> None:
    print(f"[{i}/{STEPS}] {text}", flush=True)


def run_demo(settings: Settings, machines: int = 10, days: float = 21.0, seed: int = 7,
             train_days: float | None = None) -> None:
    """Simulate → train → score → evaluate → report; prints a line per step."""
    from sensors_sim.config import fleet_config
    from sensors_sim.run import backfill

    cfg = settings.store
    where = cfg.path if cfg.backend == "embedded" else cfg.url
    _step(1, f"store: {cfg.backend} at {where}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    labels = settings.data_dir / "labels.csv"
    train_days = train_days if train_days is not None else min(14.0, days * 2 / 3)
    with open_store(cfg) as store:
        store.ping()
        res = backfill(store, fleet_config(machines=machines, seed=seed), days, labels_path=labels)
        _step(2, f"simulated {machines} machines x {days:g} days: {res.points:,} values in {res.seconds:.1f}s; "
                 f"ground truth in {labels} and pdm_truth")
        t = time.perf_counter()
        summary = summarize(store)
        _step(3, f"read back in {time.perf_counter() - t:.1f}s:")
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
        from pdm.model.registry import promote
        from pdm.model.train import TrainConfig

        cut = pd.Timestamp(res.start) + pd.Timedelta(days=train_days)
        t = time.perf_counter()
        report = train_fleet(
            store, settings.pipeline.models_dir or settings.data_dir / "models", start=res.start, stop=cut,
            features=FeatureConfig(window=72, stride=6),
            model_overrides={"d_model": 32, "layers": 2}, train_cfg=TrainConfig(epochs=3, seed=seed),
        )
        met = report.metrics
        promote(report.path.parent, report.path.name, reason="demo")
        _step(4, f"trained TSHAE on the healthy windows of {len(report.machines)} machines up to {cut:%Y-%m-%d} "
                 f"({met['windows']} windows, {met['epochs_run']} epochs) in {time.perf_counter() - t:.1f}s: "
                 f"valid loss {met['valid_loss'][0]:.4f} -> {met['valid_loss'][-1]:.4f}; production model {report.path}")

        from pdm.detect.score import score_machines

        t = time.perf_counter()
        scored = score_machines(store, report.path.parent, start=res.start, stop=res.end, progress=False)
        alarmed = sorted(m for m, r in scored.machines.items() if r.alarms)
        _step(5, f"scored {sum(len(r.scores) for r in scored.machines.values()):,} windows in "
                 f"{time.perf_counter() - t:.1f}s: {sum(len(r.alarms) for r in scored.machines.values())} alarm "
                 f"episodes on {len(alarmed)} machines ({', '.join(alarmed) or 'none'}); written to pdm_score, "
                 f"pdm_alarm, pdm_rootcause")
        print(scored.text())

        from pdm.evaluate.report import write_report
        from pdm.evaluate.run import format_table

        out = settings.data_dir / "report.html"
        rep = write_report(store, out, start=cut, stop=res.end, model_version=scored.model_version, progress=False)
        _step(6, f"evaluated the alarms after {cut:%Y-%m-%d} against the ground truth (event metrics):")
        print(format_table(rep.evaluation))
        _step(7, f"report: {rep.html} (metrics: {rep.json})")
    dash = settings.dashboard
    print(f"[dashboard] the demo data in the plant-floor dashboard: run `pdmctl dashboard` "
          f"(or `.venv/bin/pdmctl dashboard`), then open http://{dash.host}:{dash.port}/")
