"""The held-back fleets' `pdmctl benchmark sim` results pooled into one comparison.

Each held-back fleet (seeds 2027, 4242, 9001: 20 machines x 120 days, 90 scored
days, TSHAE's weights trained on that fleet's first 30 days and kept in
``benchmarks/models``) holds 12-15 failures, too few to tell TSHAE from a
baseline on one fleet (one failure is 7-8 points of recall). This reads the
results files the harness wrote for them (no rerun: a few seconds) and writes
``benchmarks/results/<out>.json`` / ``.md`` / ``_curves.png``: per fleet, pooled
at the default thresholds, failure by failure with a sign test, and at the
same false-alarm budgets over the pooled threshold sweeps
(:mod:`pdm.evaluate.pooled`).

    python benchmarks/pooled.py                      # the three held-back fleets
    python benchmarks/pooled.py --run 2027=sim_product_kept_runin_exc.json --run ...  --out pooled_mine
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: The latest harness run of each held-back fleet, with the product stages and TSHAE's kept weights.
HELD_BACK = {
    "2027": "sim_product_kept_runin_exc.json",
    "4242": "sim_product_heldback4242_exc.json",
    "9001": "sim_product_fresh9001_tshae.json",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[], metavar="NAME=FILE",
                    help="a harness results JSON (relative paths: under benchmarks/results); repeat. "
                         "Default: the three held-back fleets")
    ap.add_argument("--out", default="pooled_heldback", help="results file stem under --results")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from pdm.evaluate.bench_sim import ONSET, plot_sweeps, results_file
    from pdm.evaluate.pooled import markdown, paired_table, pool

    runs = dict(r.split("=", 1) for r in args.run) if args.run else HELD_BACK
    docs = {}
    for name, file in runs.items():
        path = results_file(file, args.results)
        try:
            docs[name] = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"pooled: cannot read {path}: {e}", file=sys.stderr)
            return 2
    try:
        doc = pool(docs)
    except ValueError as e:  # runs that cannot be added up (no per-failure rows, other sweeps)
        print(f"pooled: {e}", file=sys.stderr)
        return 2
    doc.update({"benchmark": "pooled", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "runs": {name: str(file) for name, file in runs.items()}})
    args.results.mkdir(parents=True, exist_ok=True)
    plotted = plot_sweeps(doc, args.results / f"{args.out}_curves.png", key=ONSET)
    md = markdown(doc, args.out, plotted, date=doc["date"])
    (args.results / f"{args.out}.json").write_text(json.dumps(doc, indent=1, default=str))
    (args.results / f"{args.out}.md").write_text(md + "\n")
    print(paired_table(doc) or "")
    print(f"wrote {args.results / (args.out + '.json')} and {args.results / (args.out + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
