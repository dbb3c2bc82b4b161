"""How many running windows each kind of operating envelope leaves unscored, on a kept detection store.

The operating envelope (:class:`pdm.detect.stages.OperatingEnvelope`) takes
windows at an operating point the model never saw out of scoring. Tightening
it can cut false alarms simply by scoring less; this measures the cost. On
the store of a ``benchmarks/detection.py --keep DIR`` run, per machine: both
kinds fitted on the training range (kind "step": the running steps' 0.5-99.5 %
quantiles widened by a tenth, judged on each window's median; kind "window":
each window's 10-90 % range, judged on the same range) and applied to the
same scored windows (``--window`` steps every ``--stride``).

    PYTHONPATH=. python benchmarks/envelope_coverage.py --store DIR/plant.duckdb

Writes ``benchmarks/results/envelope_coverage.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def coverage(store_path: str, train_days: float, window: int, stride: int, step: str = "10min") -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from pdm.detect.errors import grid_operating_ranges, running_values, training_envelope
    from pdm.detect.stages import OperatingEnvelope
    from pdm.evaluate.replay import data_range
    from pdm.model.pipeline import build_grids
    from pdm.store.embedded import EmbeddedStore

    store = EmbeddedStore(store_path)
    start, stop = data_range(store)
    split = start + pd.Timedelta(days=train_days)
    machines = sorted(store.read("process", fields=["running"])["machine"].unique())
    grids, _ = build_grids(store, machines, start, stop, step)
    rows: list[dict[str, Any]] = []
    for m, g in sorted(grids.items()):
        k = int(np.searchsorted(g.index.asi8, split.value))
        train = g.rows(0, k)
        kinds = {"step": OperatingEnvelope().fit(running_values(train)), "window": training_envelope(train, window)}
        scored = g.rows(max(k - window, 0), len(g.index))  # windows ending after the split
        rng = grid_operating_ranges(scored, window, spread=kinds["window"].spread, stride=stride)
        med = {f: r[:, 0] for f, r in grid_operating_ranges(scored, window, spread=0.5, stride=stride).items()}
        running = np.isfinite(med["load"])
        rows.append({"machine": m, "running_windows": int(running.sum()),
                     "outside_step": int((~kinds["step"].apply(med) & running).sum()),
                     "outside_window": int((~kinds["window"].apply(rng) & running).sum()),
                     "load_step": [kinds["step"].lo[1], kinds["step"].hi[1]],
                     "load_window": [kinds["window"].lo[1], kinds["window"].hi[1]]})
    total = {k: sum(r[k] for r in rows) for k in ("running_windows", "outside_step", "outside_window")}
    return {"store": store_path, "train_days": train_days, "window": window, "stride": stride,
            "split": str(split), "machines": rows, "total": total}


def markdown(res: dict[str, Any]) -> str:
    t = res["total"]
    n = max(t["running_windows"], 1)
    lines = [f"# Operating envelope coverage — {res['store']}", "",
             f"Measured {res['date']} on {res['machine']}. Envelopes fitted on the first {res['train_days']:g} days "
             f"(to {res['split'][:16]}); windows of {res['window']} steps every {res['stride']} after that; a window "
             "counts when the machine ran in it. Kind \"step\": running steps' 0.5-99.5 % widened by a tenth, judged "
             "on the window's median (before 1f50f06); kind \"window\": each window's 10-90 % range, fitted and "
             "judged alike (the default since).", "",
             f"Outside, all machines: step {t['outside_step']} of {t['running_windows']} ({100 * t['outside_step'] / n:.1f} %), "
             f"window {t['outside_window']} ({100 * t['outside_window'] / n:.1f} %).", "",
             "| machine | running windows | outside (step) | outside (window) | load envelope (step) | load envelope (window) |",
             "|---|---:|---:|---:|---|---|"]
    for r in res["machines"]:
        f = lambda p: "n/a" if p[0] is None else f"{p[0]:.2f} .. {p[1]:.2f}"  # noqa: E731
        lines.append(f"| {r['machine']} | {r['running_windows']} | {r['outside_step']} | {r['outside_window']} | "
                     f"{f(r['load_step'])} | {f(r['load_window'])} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    import platform

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True, help="plant.duckdb of a benchmarks/detection.py --keep DIR run")
    ap.add_argument("--train-days", dest="train_days", type=float, default=30)
    ap.add_argument("--window", type=int, default=144)
    ap.add_argument("--stride", type=int, default=12)
    ap.add_argument("--out", default="envelope_coverage")
    args = ap.parse_args()
    if not Path(args.store).exists():
        raise SystemExit(f"--store {args.store}: no such file (run benchmarks/detection.py --keep DIR first)")
    res = coverage(args.store, args.train_days, args.window, args.stride)
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    res["machine"] = f"this machine ({platform.machine()})"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(res, indent=1, default=str))
    (RESULTS / f"{args.out}.md").write_text(markdown(res))
    print(markdown(res).split("\n\n")[2])
    print(f"written {RESULTS / args.out}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
