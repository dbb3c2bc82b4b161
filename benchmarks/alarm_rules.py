"""Alarm rules on the same scores: k of n alone against k of n with the CUSUM's raising path (no rerun).

Reads `pdmctl benchmark sim --series` runs (LABEL=FILE, each results JSON with its ``<stem>_series/`` beside
it), judges every detector's scores under each rule of :data:`pdm.evaluate.rules.RULES` at every threshold
factor of the harness's sweep, pools the fleets as one plant and writes ``benchmarks/results/<out>.json`` /
``.md`` / ``.png``: failures caught >= 72 h ahead by an alarm raised after the fault's onset, false alarms,
the best catches within each false-alarm budget, and the hours from a fault's onset to its first alarm.

    python benchmarks/alarm_rules.py --run 11=sim_product_dev11_cs.json --out alarm_rules_dev11
    python benchmarks/alarm_rules.py --run 2027=... --run 4242=... --run 9001=... --rule "+ CUSUM ref 0.5, h 3" \
        --out alarm_rules_heldback

The series are gitignored (hundreds of MB): regenerate them with the command in each results file's config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from pdm.evaluate.rules import (
        RULES,
        fleets_line,
        judge_runs,
        markdown,
        plot,
        verdict,
        write_study,
    )

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=FILE",
                    help="a results JSON of `pdmctl benchmark sim --series` (relative to --results, or a path)")
    ap.add_argument("--rule", action="append", default=None, metavar="NAME",
                    help=f"rules to judge (default: all); k of n is always one. Known: {', '.join(RULES)}")
    ap.add_argument("--plot-rule", action="append", default=None, metavar="NAME",
                    help="rules drawn in the plot (default: all if three or fewer, else k of n and the middle CUSUM)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", default="alarm_rules")
    args = ap.parse_args(argv)
    names = ["k of n"] + [r for r in (args.rule or list(RULES)) if r != "k of n"]
    unknown = [r for r in names if r not in RULES]
    if unknown:
        ap.error(f"unknown rule(s) {unknown}; known: {list(RULES)}")
    rules = {r: RULES[r] for r in names}
    try:
        doc = judge_runs(args.run, rules, args.results)
    except ValueError as exc:
        ap.error(str(exc))
    doc.update({"benchmark": "alarm_rules", "rules": rules})
    args.results.mkdir(parents=True, exist_ok=True)
    middle = [r for r in ("k of n", "+ CUSUM ref 0.5, h 3") if r in names]  # six curves, not thirty, by default
    plotted = plot(doc, args.results / f"{args.out}.png", args.plot_rule or (names if len(names) <= 3 else middle))
    fleets = fleets_line(doc)
    md = [f"# Alarm rules on the same scores ({doc['date']})", "",
          f"Runs of `pdmctl benchmark sim --series` judged again without a rerun (`benchmarks/alarm_rules.py`, "
          f"`pdm.evaluate.rules`): {fleets}. Each detector's calibrated scores and thresholds as run; the rule "
          "differs. Counts: failures caught >= 72 h ahead by an alarm raised after the fault's onset, at the "
          "default threshold (per fleet and pooled, with false alarms), and the most caught within each budget "
          "of false alarms per machine-month over the threshold sweep (its factor and false alarms). Hours from "
          "onset: from the fault's onset (or the start of scoring) to the first alarm raised after it, "
          "failures so caught; last columns: caught >= 72 h of the failures whose fault gave that long.", "",
          markdown(doc), "", *(f"- {line}" for line in verdict(doc)), ""]
    write_study(doc, args.results, args.out, md, plotted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
