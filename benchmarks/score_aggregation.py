"""Channel z-scores divided by their own calibration tail, against as they are: the same errors, no rerun.

Reads `pdmctl benchmark sim --series` runs (LABEL=FILE, each results JSON with its ``<stem>_series/`` beside
it holding ``<detector>_errors.npz``, every machine's errors as the product stages take them), puts every
detector's errors through the product stages again (:func:`pdm.evaluate.bench_sim.stage_series`) once as run
and once per tail quantile (:func:`pdm.detect.stages.tail_scale`: each channel's z-scores divided by their
calibration quantile, so that a channel whose healthy errors are heavy-tailed does not set the machine's
threshold for every other), judges each at every threshold factor of the harness's sweep, pools the fleets as
one plant and writes ``benchmarks/results/<out>.json`` / ``.md`` / ``.png`` (as ``benchmarks/alarm_rules.py``).

    python benchmarks/score_aggregation.py --run 2027=sim_product_heldback2027_errors.json \\
        --run 4242=sim_product_heldback4242_errors.json --run 9001=sim_product_heldback9001_errors.json \\
        --out score_aggregation_heldback

The series are gitignored (hundreds of MB): regenerate them with the command in each results file's config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))


def variant_name(q: float | None, count_scaling: bool, top_k: int | None = None) -> str:
    return (("count-scaled, " if count_scaling else "") + ("z as is" if q is None else f"tail q{q:g}")
            + (f", top {top_k}" if top_k is not None else ""))


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from pdm.evaluate.bench_sim import (
        machine_resets,
        read_series,
        read_stage_inputs,
        read_stages,
        stage_series,
    )
    from pdm.evaluate.rules import fleets_line, judge_runs, markdown, plot, verdict, write_study

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=FILE",
                    help="a results JSON of `pdmctl benchmark sim --series` (relative to --results, or a path)")
    ap.add_argument("--quantile", action="append", type=float, default=None,
                    help="tail quantiles to compare (default: 0.9, 0.95, 0.99)")
    ap.add_argument("--top-k", action="append", type=int, default=None, dest="top_k",
                    help="also the machine score as the mean of this many largest channel z-scores instead of "
                         "TOP_K (z as is; repeatable)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", default="score_aggregation")
    args = ap.parse_args(argv)
    quantiles = args.quantile or [0.9, 0.95, 0.99]
    variants = {variant_name(q, cs): (q, cs, None) for cs in (False, True) for q in (None, *quantiles)}
    variants |= {variant_name(None, cs, k): (None, cs, k) for cs in (False, True) for k in args.top_k or []}
    base = variant_name(None, False)
    checked: list[str] = []

    loaded: dict[tuple[Path, str], tuple[dict[str, Any], dict[str, Any], pd.DataFrame, list[Any]]] = {}

    def inputs(folder: Path, key: str) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame, list[Any]]:
        """A run's stages, config, work orders and one detector's errors, read once for all its variants."""
        if (folder, key) not in loaded:
            stages = read_stages(folder)
            if stages is None:
                raise SystemExit(f"{folder}: no stages.json (a series written before it): rerun with --series")
            config = json.loads(folder.with_name(folder.name.removesuffix("_series") + ".json").read_text())["config"]
            loaded[(folder, key)] = (stages, config, pd.read_parquet(folder / "work_orders.parquet"),
                                     read_stage_inputs(folder / f"{key}_errors.npz"))
        return loaded[(folder, key)]

    def series_for(folder: Path, key: str, name: str) -> list[Any] | None:
        if not (folder / f"{key}_errors.npz").exists():
            return None
        stages, config, orders, errors = inputs(folder, key)
        q, cs, k = variants[name]
        out = []
        for inp in errors:
            s = stage_series(inp, stages["window_ns"], stages["stride_ns"], cs, q, k)
            if s is None:
                continue
            s.resets = machine_resets(orders, inp.machine)
            out.append(s)
        # staged as the run was, the errors must give back the run's own scores, or nothing here means anything
        if q is None and k is None and cs == bool(config.get("count_scaling")):
            run = {s.machine: s for s in read_series(folder, key)}
            for s in out:
                r = run[s.machine]
                if not (np.allclose(r.scores, s.scores, equal_nan=True, rtol=1e-9) and r.threshold == s.threshold):
                    raise SystemExit(f"{folder.name} {key} {s.machine}: restaged scores differ from the run's")
            checked.append(f"{folder.name}/{key}")
        return out

    rules: dict[str, dict[str, Any]] = {name: {} for name in variants}  # one alarm rule, k of n: the stages differ
    try:
        doc = judge_runs(args.run, rules, args.results, series_for)
    except ValueError as exc:
        ap.error(str(exc))
    doc.update({"benchmark": "score_aggregation", "variants": variants, "restaged_as_run_checked": checked})
    args.results.mkdir(parents=True, exist_ok=True)
    middle = quantiles[len(quantiles) // 2]
    plotted = plot(doc, args.results / f"{args.out}.png", [base, variant_name(middle, False)],
                   title="Machine scores from the same errors")
    fleets = fleets_line(doc)
    md = [f"# Channel z-scores scaled by their calibration tail ({doc['date']})", "",
          f"Runs of `pdmctl benchmark sim --series` staged again from their errors without a rerun "
          f"(`benchmarks/score_aggregation.py`): {fleets}. Each detector's errors as run, put through the "
          "product stages again (the run's own setting checked: the same scores and thresholds); `z as is` is the "
          "product's default, `count-scaled` multiplies every window's z-scores by the square root of its counted "
          "share (FeatureConfig.count_scaling), `tail qQ` divides each channel's z-scores by their quantile Q over "
          "the machine's calibration windows (at least 1) before the machine score (`top k`: the machine score "
          "is the mean of the k largest channel z-scores instead of the product's 2), the POT threshold, the new "
          "baselines and the excursion stage. Counts: failures caught >= 72 h ahead by an alarm raised after the "
          "fault's onset, at the default threshold (per fleet and pooled, with false alarms), and the most caught within each budget of false alarms per "
          "machine-month over the threshold sweep (its factor and false alarms). Hours from onset: from the "
          "fault's onset (or the start of scoring) to the first alarm raised after it, failures so caught; last "
          "columns: caught >= 72 h of the failures whose fault gave that long.", "",
          markdown(doc).replace("| rule |", "| stages |"), "", *(f"- {line}" for line in verdict(doc, base)), ""]
    write_study(doc, args.results, args.out, md, plotted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
