"""How well an open alarm's time to failure is estimated, several ways side by side on the same alarms.

Reads the series a `pdmctl benchmark sim --series` run wrote (``<stem>_series/<detector>.parquet`` with the
failures and work orders beside them: no rerun, seconds), raises the default alarm rule's episodes, and
judges what each estimator would have shown at every window with an open alarm
(:func:`pdm.evaluate.ttf.ttf_evidence`: the share of windows saying "72 h or less" that were followed by a
failure within 72 h, against the share over every open alarm's windows, and the error against the time that
remained):

- ``trend W to Rx``: :class:`~pdm.detect.stages.AlarmRule`'s log-score trend over the last W windows,
  extrapolated to R x threshold (the product's default: 24 windows, 6x);
- ``residual lead (fit on F)``: no trend at all, the median time that remained after an alarm of the same age
  in run F's alarms (:class:`pdm.detect.leads.LeadHistory`: each failure's earliest alarm raised within 14
  days before it and still open at it gives a lead time L; at an alarm of age a, the median of L - a over the leads longer than
  a, with at least 3 of them): the conditional residual life of a P-F interval, as a reliability engineer
  reads one from past failures. A run judged with its own leads is marked in-sample.

    python benchmarks/ttf_estimates.py --run dev11=sim_product_dev11_ttf.json --run 2027=... --fit dev11
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
#: (trend windows, failure ratio): the product's default first.
TRENDS = ((24, 6.0), (24, 3.0), (24, 12.0), (72, 6.0))

def open_starts(rule: Any, s: Any) -> np.ndarray:
    """Each window's open episode start (ns, as float), NaN where none: the windows ttf_track fills."""
    from pdm.detect.leads import episode_starts

    track = rule.ttf_track(s.times, s.scores, s.threshold, resets=s.resets)
    alarms = rule.apply(s.times, s.scores, s.threshold, resets=s.resets)
    starts = episode_starts(s.times, [a.start for a in alarms],
                            [a.end if a.end is not None else s.times[-1] for a in alarms])
    return np.where(np.isnan(track), np.nan, starts)


def judge(folder: Path, key: str, leads: dict[str, Any]) -> dict[str, Any]:
    """Every estimator's :func:`ttf_evidence` on one run's series (``leads``: fit name -> LeadHistory)."""
    from pdm.detect.stages import AlarmRule
    from pdm.evaluate.bench_sim import read_series
    from pdm.evaluate.ttf import ttf_evidence

    series = read_series(folder, key)
    failures = pd.read_parquet(folder / "failures.parquet")
    observed = pd.read_parquet(folder / "observed.parquet")
    out: dict[str, Any] = {}
    for w, r in TRENDS:
        rule = AlarmRule(trend_windows=w, failure_ratio=r)
        out[f"trend {w} w to {r:g}x"] = ttf_evidence(
            ((s.machine, s.times, rule.ttf_track(s.times, s.scores, s.threshold, resets=s.resets)) for s in series),
            failures, observed)
    rule = AlarmRule()
    starts = {s.machine: open_starts(rule, s) for s in series}
    for fit, history in leads.items():
        out[f"residual lead (fit on {fit})"] = ttf_evidence(
            ((s.machine, s.times, history.track(s.times, starts[s.machine])) for s in series), failures, observed)
    return out


def fit_leads(folder: Path, key: str) -> Any:
    """The :class:`~pdm.detect.leads.LeadHistory` of a run's alarms (default rule and thresholds) and failures."""
    from pdm.detect.leads import LeadHistory
    from pdm.detect.stages import AlarmRule
    from pdm.evaluate.bench_sim import _alarms, read_series

    alarms = _alarms(read_series(folder, key), 1.0, AlarmRule())
    return LeadHistory.from_events(alarms, pd.read_parquet(folder / "failures.parquet"))


def _cell(s: dict[str, Any]) -> str:
    p, b, lift = s["precision"], s["base_rate"], s["lift"]
    if p is None:
        return f"- (base {b:.0%})" if b is not None else "-"
    err = "-" if s["log2_error_median"] is None else f"{s['log2_error_median']:.1f}"
    return (f"{p:.0%} of {s['said_within']} (base {b:.0%}, {lift:.1f}x); err {err}, "
            f"{s['within_2x']:.0%} in 2x; told {s['said_on_time']}+{s['said_early']}/{s['failures']}")


def markdown(doc: dict[str, Any]) -> str:
    runs = list(doc["runs"])
    names = list(next(iter(doc["by_run"].values())))
    head = ["| estimator | " + " | ".join(runs) + " | held-back pooled |", "|---|" + "---|" * (len(runs) + 1)]
    rows = []
    for n in names:
        cells = []
        for r in runs:
            c = _cell(doc["by_run"][r][n])
            cells.append(c + (" (in-sample)" if n.endswith(f"(fit on {r})") else ""))
        pooled = doc["pooled"].get(n)
        rows.append(f"| {n} | " + " | ".join(cells) + f" | {_cell(pooled) if pooled else '-'} |")
    return "\n".join([
        f"# Time to failure: estimators on the same open alarms ({doc['date']})", "",
        f"Detector `{doc['detector']}`, the default alarm rule's episodes (default thresholds) on the series of "
        + ", ".join(f"`{r}` (`{Path(f).name}`)" for r, f in doc["runs"].items())
        + f"; held-back pooled: {', '.join(doc['held_back']) or 'none'} (runs not used to fit an estimator). "
        "Each cell: of the windows with an open alarm that said 72 h or less, the share followed by a failure "
        "of that machine within 72 h, and how many said so; base: the same share over every open alarm's "
        "windows (what saying 72 h of every alarm would score), lift = share / base; err: median "
        "|log2(estimate / time that remained)| where a failure followed within 14 days, and the share within a "
        "factor of 2; told: failures of which 72 h or less was said in the 14 days before them, within 72 h "
        "of the failure + earlier / all (pdm.evaluate.ttf, benchmarks/ttf_estimates.py).", "",
        *head, *rows, "",
        "Leads the residual-lead estimator was fitted with (hours from the earliest alarm open at the failure): "
        + "; ".join(f"{k}: {', '.join(f'{x:.0f}' for x in sorted(v))}" for k, v in doc["leads"].items()), ""])


def main(argv: list[str] | None = None) -> int:
    from pdm.evaluate.bench_sim import run_arguments, run_pairs, series_folders, write_results

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_arguments(ap, "ttf_estimates", RESULTS)
    ap.add_argument("--fit", action="append", default=[], metavar="NAME",
                    help="a run whose lead times fit the residual-lead estimator (repeat; not pooled)")
    args = ap.parse_args(argv)
    from pdm.evaluate.ttf import pooled_ttf

    try:
        runs = run_pairs(args.run)
        folders = series_folders(args.run, args.results, args.detector, ("--fit", args.fit))
    except ValueError as exc:
        print(f"ttf_estimates: {exc}", file=sys.stderr)
        return 2
    leads = {f: fit_leads(folders[f], args.detector) for f in args.fit}
    by_run = {}
    for name, folder in folders.items():
        print(f"ttf_estimates: judging {name}", file=sys.stderr, flush=True)
        by_run[name] = judge(folder, args.detector, leads)
    held = [r for r in runs if r not in args.fit]
    names = list(next(iter(by_run.values())))
    pooled = {n: pooled_ttf([by_run[r][n] for r in held]) for n in names} if held else {}
    doc = {"benchmark": "ttf_estimates", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "detector": args.detector, "runs": runs, "held_back": held, "leads": {k: list(v.leads_h) for k, v in leads.items()},
           "by_run": {r: {n: {k: v for k, v in s.items() if k != "rows"} for n, s in got.items()}
                      for r, got in by_run.items()},
           "pooled": {n: ({k: v for k, v in s.items() if k != "rows"} if s else None) for n, s in pooled.items()}}
    write_results(args.results, args.out, doc, markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
