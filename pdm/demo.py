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
    print(f"[1/3] store: {cfg.backend} at {where}")
    labels = settings.data_dir / "labels.csv"
    with open_store(cfg) as store:
        store.ping()
        res = backfill(store, fleet_config(machines=machines, seed=seed), days, labels_path=labels)
        print(f"[2/3] simulated {machines} machines x {days:g} days: {res.points:,} values in {res.seconds:.1f}s; "
              f"ground truth in {labels} and pdm_truth")
        t = time.perf_counter()
        summary = summarize(store)
        print(f"[3/3] read back in {time.perf_counter() - t:.1f}s:")
        per_measurement = summary.reset_index().groupby("measurement").agg(
            machines=("machine", "nunique"), points=("points", "sum"), first=("first", "min"), last=("last", "max")
        )
        print(per_measurement.to_string())
        truth = store.read("pdm_truth")
        if not truth.empty:
            kinds = truth.groupby(["kind", "is_failure"]).size().rename("events").reset_index()
            print("ground truth (pdm_truth):")
            print(kinds.to_string(index=False))
