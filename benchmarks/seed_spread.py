"""Several trainings of TSHAE and the baselines on one held-back fleet: the spread of a training's seed.

Reads `pdmctl benchmark sim` results files of one fleet (no rerun: a few seconds), each training named as
GROUP/LABEL=FILE:DETECTOR, and writes ``benchmarks/results/<out>.json`` / ``.md`` / ``.png``: every training's
failures caught >= 72 h after onset and false alarms, each group's least / median / most, and failure by
failure how many of a group's trainings caught it (:mod:`pdm.evaluate.spread`).

    python benchmarks/seed_spread.py                  # fleet 9001: TSHAE's four trainings, Conv-AE's six
    python benchmarks/seed_spread.py --training "TSHAE/seed 1=my_run.json:tshae" ... --out spread_mine
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
_R = "sim_product_heldback9001"
#: Fleet 9001 with the product stages, stops shown and count scaling: every training measured so (2026-12-06).
HELD_BACK_9001 = [
    f"TSHAE/harness seed 9001={_R}_harness_cs.json:tshae",
    f"TSHAE/harness seed 0={_R}_harness_cs_seed0.json:tshae",
    f"TSHAE/harness seed 1={_R}_harness_cs_seed1.json:tshae",
    f"TSHAE/product training seed 0={_R}_cs.json:tshae",
    f"Conv-AE/seed 9001={_R}_harness_cs.json:conv_ae",
    f"Conv-AE/seed 0={_R}_harness_cs_seed0.json:conv_ae",
    f"Conv-AE/seed 1={_R}_harness_cs_seed1.json:conv_ae",
    f"Conv-AE/seed 2={_R}_convae_seed2.json:conv_ae",
    f"Conv-AE/seed 3={_R}_convae_seed3.json:conv_ae",
    f"Conv-AE/seed 4={_R}_convae_seed4.json:conv_ae",
    f"TSHAE x2 (mean of errors)/seeds 9001+1={_R}_ens2.json:tshae",
    f"Conv-AE x2 (mean of errors)/seeds 9001+1={_R}_ens2.json:conv_ae",
    f"TSHAE x3 (mean of errors)/seeds 9001+1+0 (product training)={_R}_ens3.json:tshae",
    f"Conv-AE x3 (mean of errors)/seeds 9001+1+0={_R}_ens3.json:conv_ae",
]


def parse(spec: str) -> tuple[str, str, str, str]:
    """GROUP/LABEL=FILE:DETECTOR -> (group, label, file, detector)."""
    try:
        name, rest = spec.split("=", 1)
        group, label = name.split("/", 1)
        file, det = rest.rsplit(":", 1)
    except ValueError:
        raise ValueError(f"{spec!r}: write a training as GROUP/LABEL=FILE:DETECTOR") from None
    return group, label, file, det


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--training", action="append", default=[], metavar="GROUP/LABEL=FILE:DETECTOR",
                    help="one training: a harness results JSON (relative paths: under --results) and the detector's "
                         "key in it; repeat. Default: fleet 9001's trainings")
    ap.add_argument("--out", default="seed_spread_heldback9001", help="results file stem under --results")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from pdm.evaluate.bench_sim import results_file
    from pdm.evaluate.spread import markdown, plot, spread

    trainings, docs = [], {}
    try:
        for spec in args.training or HELD_BACK_9001:
            group, label, file, det = parse(spec)
            path = results_file(file, args.results)
            if path not in docs:
                docs[path] = json.loads(path.read_text())
            trainings.append({"group": group, "label": label, "run": docs[path], "detector": det, "file": str(file)})
        doc = spread(trainings)
    except (OSError, ValueError) as e:
        print(f"seed_spread: {e}", file=sys.stderr)
        return 2
    for r, t in zip(doc["trainings"], trainings, strict=True):
        r["file"] = t["file"]
    doc.update({"benchmark": "seed_spread", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    args.results.mkdir(parents=True, exist_ok=True)
    png = args.results / f"{args.out}.png"
    plotted = plot(doc, png)
    md = f"# Trainings side by side ({doc['date']})\n\n" + markdown(doc)
    if plotted:
        md += f"\n\n![each training's false alarms and catches]({png.name})"
    (args.results / f"{args.out}.json").write_text(json.dumps(doc, indent=1, default=str))
    (args.results / f"{args.out}.md").write_text(md + "\n")
    print(markdown(doc))
    print(f"wrote {args.results / (args.out + '.json')} and {args.results / (args.out + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
