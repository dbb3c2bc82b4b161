"""Root-cause ranking variants on a store kept by ``benchmarks/detection.py --keep DIR``.

For each simulated failure's first alarm (within 14 days before it), the rank of
its ground-truth root-cause channels under: the scorer's error z-scores (what pdm
ranks by today), the input's own robust deviation (median |scaled value| over the
window's second half), their normalised sum and their product. An analysis probe
for choosing the ranking, not a benchmark with targets:

    .venv/bin/python benchmarks/detection.py --quick --keep /tmp/det
    .venv/bin/python benchmarks/rootcause_probe.py /tmp/det
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd

import pdm.detect.score as scoring
from pdm.features import align_machine
from pdm.features.windows import grid_running
from pdm.model import registry
from pdm.model.directory import load
from pdm.store.embedded import EmbeddedStore


def main(root: str) -> None:
    store = EmbeddedStore(f"{root}/plant.duckdb")
    bundle = load(registry.production_path(f"{root}/models"))
    channels = list(bundle.model.cfg.channel_names)
    step = bundle.config["features"]["step"]
    window = int(bundle.config["features"]["window"])
    captured: list[dict[str, Any]] = []
    original = scoring.explain

    def spy(**kw: Any) -> Any:
        captured.append(kw)
        return original(**kw)

    scoring.explain = spy  # type: ignore[assignment]
    truth = store.read("pdm_truth")
    failures = truth[truth["is_failure"].fillna(False).astype(bool)]
    scores = store.read("pdm_score")
    lo, hi = scores.index.min(), scores.index.max() + pd.Timedelta(step)
    by_machine: dict[str, list[dict[str, Any]]] = {}
    for m in sorted(set(failures["machine"])):
        captured.clear()
        scoring.score_machines(store, bundle, [m], start=lo, stop=hi, write=False, progress=False)
        by_machine[m] = list(captured)

    def rank(values: np.ndarray, true: set[str]) -> int | None:
        for i, j in enumerate(np.argsort(-np.nan_to_num(values, nan=-np.inf))):
            if channels[j] in true:
                return i + 1
        return None

    rows = []
    for _, f in failures.iterrows():
        t = pd.Timestamp(int(f["failure_ns"]), tz="UTC")
        m = f["machine"]
        true = {c.strip() for c in str(f.get("root_cause") or "").replace(";", ",").split(",") if c.strip()}
        mine = [k for k in by_machine[m] if (t - pd.Timedelta("14D")).value <= k["alarm_ns"] < t.value]
        if not mine:
            print(m, f["kind"], "not caught")
            continue
        k = min(mine, key=lambda k: k["alarm_ns"])
        z = np.asarray(k["zscores"], float)
        ws0 = pd.Timestamp(k["window_start_ns"], tz="UTC")
        grid = align_machine(store, m, ws0, ws0 + pd.Timedelta(step) * window, step, channels=channels)
        x = bundle.scalers[m].transform(grid.sensors, grid_running(grid))
        with np.errstate(all="ignore"):
            dev = np.nan_to_num(np.abs(np.nanmedian(x[window // 2:], axis=0)))
        zc = np.where(np.isfinite(z), np.maximum(z, 0), 0)
        combined = zc / (zc.max() or 1) + dev / (dev.max() or 1)
        ranks = {"z": rank(z, true), "dev": rank(dev, true), "sum": rank(combined, true), "prod": rank(zc * dev, true)}
        rows.append(ranks)
        print(m, f["kind"], ranks, "top by deviation:", [channels[j] for j in np.argsort(-dev)[:3]])
    for name in ("z", "dev", "sum", "prod"):
        rk = [r[name] for r in rows]
        print(f"{name:>5}: top-1 {sum(1 for x in rk if x == 1)}, top-3 {sum(1 for x in rk if x and x <= 3)} of {len(rk)}")


if __name__ == "__main__":
    main(sys.argv[1])
