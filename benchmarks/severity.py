"""What each alarm severity is worth, several grading rules side by side on the same alarm episodes.

Reads the series a `pdmctl benchmark sim --series` run wrote (``<stem>_series/<detector>.parquet`` with the
failures and work orders beside them: no rerun, seconds), raises the default alarm rule's episodes (grading
never changes when an episode is raised or cleared, only its level), and judges each level as a detector of
its own, from the window at which an episode reached it (:func:`pdm.evaluate.severity.severity_evidence`):
failures caught >= 72 h ahead by an episode that reached the level after the fault's onset, false alarms per
machine-month, and the share of the level's episodes whose machine failed within 72 h of reaching it.

A level is worth its name when it keeps most of the catches at far fewer false alarms than the one below
(``watch``: every alarm). The held-back pooled evidence of each rule is also priced as the level to notify
from (:func:`pdm.evaluate.severity.notify_costs`: planned stops, unplanned failures and false calls in hours of
downtime; results written before ``planned`` was counted have no price).

    python benchmarks/severity.py --run dev11=sim_product_dev11_ttf.json --run 2027=... --dev dev11
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
#: Grading rules compared: name -> AlarmRule keyword arguments (the product's default first).
RULES: dict[str, dict[str, Any]] = {
    "peak 1.5 / 3 or trend <= 72 h (until 2026-12-07)": {"sustain_windows": 0, "critical_ttf_h": 72.0},
    "peak 1.5 / 3": {"sustain_windows": 0, "critical_ttf_h": None},
    "peak 2 / 5": {"sustain_windows": 0, "warning_ratio": 2.0, "critical_ratio": 5.0, "critical_ttf_h": None},
    "peak 3 / 10": {"sustain_windows": 0, "warning_ratio": 3.0, "critical_ratio": 10.0, "critical_ttf_h": None},
    "peak 1.5 / sustained: median of the last 12 windows >= 1.5 (the default since)": {
        "sustain_windows": 12, "sustain_ratio": 1.5},
}


def judge(folder: Path, key: str) -> dict[str, Any]:
    """Every grading rule's :func:`severity_evidence` on one run's series."""
    from pdm.detect.stages import AlarmRule
    from pdm.evaluate.bench_sim import read_series, severity_of

    series = read_series(folder, key)
    failures = pd.read_parquet(folder / "failures.parquet")
    observed = pd.read_parquet(folder / "observed.parquet")
    nuis = pd.read_parquet(folder / "nuisances.parquet")
    return {name: severity_of(series, failures, observed, nuis if len(nuis.columns) else None, AlarmRule(**kw))
            for name, kw in RULES.items()}


def _cell(lv: dict[str, Any]) -> str:
    c72 = lv["caught_72h_after_onset"] if lv["caught_72h_after_onset"] is not None else lv["caught_72h"]
    fa = lv["false_alarms_per_machine_month"]
    near = "-" if lv["precision_near"] is None else f"{lv['precision_near']:.0%}"
    return f"{c72}/{lv['failures']}; FA {lv['false_alarms']} ({'-' if fa is None else f'{fa:.2f}'}); <=72 h {near}"


def markdown(doc: dict[str, Any]) -> str:
    from pdm.evaluate.severity import notify_section

    runs = list(doc["runs"])
    head = ["| grading (warning / critical by score / threshold) | level | " + " | ".join(runs)
            + " | held-back pooled |", "|---|---|" + "---|" * (len(runs) + 1)]
    rows = []
    for k, name in enumerate(RULES):
        first = 0 if k == 0 else 1  # every rule raises the same episodes: watch (every alarm) once
        for i, level in enumerate(("watch", "warning", "critical")[first:], start=first):
            cells = [_cell(doc["by_run"][r][name]["levels"][i]) for r in runs]
            pooled = doc["pooled"].get(name)
            rows.append(f"| {name if i == first else ''} | {level} | " + " | ".join(cells)
                        + f" | {_cell(pooled['levels'][i]) if pooled else '-'} |")
    return "\n".join([
        f"# Severity: grading rules on the same alarm episodes ({doc['date']})", "",
        f"Detector `{doc['detector']}`, the default alarm rule's episodes (default thresholds) on the series of "
        + ", ".join(f"`{r}` (`{Path(f).name}`)" for r, f in doc["runs"].items())
        + f"; held-back pooled: {', '.join(doc['held_back']) or 'none'}. Each level counts the episodes that "
        "reached it from the window at which they did (when the people notified at that level hear of it). Each "
        "cell: failures caught >= 72 h ahead by an episode that reached the level after the fault's onset / "
        "failures; false alarms (per machine-month); of the level's episodes, the share whose machine failed "
        "within 72 h of reaching it (pdm.evaluate.severity, benchmarks/severity.py). `watch` is every alarm.", "",
        *head, *rows, "", *notify_section(doc["pooled"], what="grading, held-back pooled"),
        *([doc["note"], ""] if doc.get("note") else [])])


def main(argv: list[str] | None = None) -> int:
    from pdm.evaluate.bench_sim import run_arguments, run_pairs, series_folders, write_results

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_arguments(ap, "severity", RESULTS)
    ap.add_argument("--dev", action="append", default=[], metavar="NAME",
                    help="a development run (shown, not pooled with the held-back ones); repeat")
    ap.add_argument("--note", default="", help="a paragraph for the results file (how the runs were used)")
    args = ap.parse_args(argv)
    from pdm.evaluate.severity import pooled_severity

    try:
        runs = run_pairs(args.run)
        folders = series_folders(args.run, args.results, args.detector, ("--dev", args.dev))
    except ValueError as exc:
        print(f"severity: {exc}", file=sys.stderr)
        return 2
    by_run = {}
    for name, folder in folders.items():
        print(f"severity: judging {name}", file=sys.stderr, flush=True)
        by_run[name] = judge(folder, args.detector)
    held = [r for r in runs if r not in args.dev]
    pooled = {n: pooled_severity([by_run[r][n] for r in held]) for n in RULES} if held else {}
    doc = {"benchmark": "severity", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "detector": args.detector, "runs": runs, "held_back": held, "rules": RULES,
           "by_run": by_run, "pooled": pooled, "note": args.note}
    write_results(args.results, args.out, doc, markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
