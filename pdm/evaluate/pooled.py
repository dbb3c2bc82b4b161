"""Several ``pdmctl benchmark sim`` results pooled: one comparison over every fleet's failures.

One simulated fleet holds 12-15 failures in its scored period, so one
failure moves a detector's recall by 7-8 points and "ahead of every
baseline" on one fleet is mostly luck. :func:`pool` adds the fleets up as if
they were one plant: the failures and machine-months are summed, so are
the failures caught and the false alarms (at the default threshold and at
each factor of the threshold sweep, which is the same for every fleet), and
recall and false alarms per machine-month are taken from the sums. The
result has the shape of a single run's document, so the single run's tables
and verdicts (:mod:`pdm.evaluate.bench_sim`) read it.

:func:`paired` compares TSHAE with each baseline failure by failure (the
same failures, the same stages): how many each caught >= 72 h ahead that the
other did not, and the two-sided exact sign (McNemar) test's p-value of that
split, which says whether the difference between the two is more than the
luck of which failures came.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.evaluate.severity import SEVERITY_NOTE, notify_section, pooled_severity, severity_table
from pdm.evaluate.ttf import TTF_NOTE, pooled_ttf, ttf_table

#: Per-failure rows of a run caught >= 72 h ahead, by the first alarm in effect / by an alarm raised after onset.
LEAD_KEYS = {"recall_72h": "lead_h", "recall_72h_after_onset": "lead_after_onset_h"}


def _caught72(row: dict[str, Any], key: str) -> bool:
    lead = row.get(LEAD_KEYS[key])
    return lead is not None and float(lead) >= 72.0


def _check(doc: dict[str, Any], name: str) -> None:
    """A run's per-failure rows must give back its own counts (else the file is not what this reads)."""
    for k, r in doc["results"].items():
        m, rows = r["metrics"], r.get("per_failure") or []
        if len(rows) != m["failures"]:
            raise ValueError(f"{name}: {k} has {len(rows)} per-failure rows for {m['failures']} failures")
        for key in LEAD_KEYS:
            if m.get(key) is None:
                continue
            n = sum(_caught72(row, key) for row in rows)
            if n != round(m[key] * m["failures"]):
                raise ValueError(f"{name}: {k}'s per-failure rows give {n} caught for {key}, "
                                 f"its metrics {m[key] * m['failures']:.0f}")


def pool(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One document (the shape of :func:`pdm.evaluate.bench_sim.run_sim`'s) for the runs ``docs`` (name -> run).

    Only detectors every run has are pooled, in the first run's order; the sweeps must use the same factors.
    Each per-failure row gets ``fleet`` (its run's name).
    """
    if not docs:
        raise ValueError("nothing to pool")
    for name, d in docs.items():
        _check(d, name)
    first = next(iter(docs.values()))
    keys = [k for k in first["results"] if all(k in d["results"] for d in docs.values())]
    if not keys:
        raise ValueError("the runs have no detector in common")
    results: dict[str, Any] = {}
    for k in keys:
        runs = [d["results"][k] for d in docs.values()]
        rows = [dict(row, fleet=name) for name, d in docs.items() for row in d["results"][k]["per_failure"]]
        ms = [r["metrics"] for r in runs]
        n = sum(m["failures"] for m in ms)
        months = sum(m["machine_months"] for m in ms)
        fa = sum(m["false_alarms"] for m in ms)
        alarms = sum(m["alarms"] for m in ms)
        leads = [float(row["lead_h"]) for row in rows if row.get("lead_h") is not None]
        judged = [row.get("rootcause_rank") for row in rows if "rootcause_rank" in row]
        by_cause = dict(sum((Counter(m.get("false_alarms_by_cause", {})) for m in ms), Counter()))
        onset = all(m.get("recall_72h_after_onset") is not None for m in ms)
        metrics = {
            "failures": n, "caught": sum(m["caught"] for m in ms),
            "recall": sum(m["caught"] for m in ms) / n if n else float("nan"),
            "recall_72h": sum(_caught72(row, "recall_72h") for row in rows) / n if n else float("nan"),
            "recall_72h_after_onset": (sum(_caught72(row, "recall_72h_after_onset") for row in rows) / n
                                       if n and onset else None),
            "alarm_before_onset": sum(int(m.get("alarm_before_onset") or 0) for m in ms),
            "alarms": alarms, "true_alarms": sum(m["true_alarms"] for m in ms),
            "precision": sum(m["true_alarms"] for m in ms) / alarms if alarms else float("nan"),
            "false_alarms": fa, "machine_months": months,
            "false_alarms_per_machine_month": fa / months if months else float("nan"),
            "false_alarms_by_cause": by_cause,
            "median_lead_h": float(np.median(leads)) if leads else None,
            "rootcause_top1": float(np.mean([r == 1 for r in judged])) if judged else None,
            "rootcause_top3": float(np.mean([r is not None and r <= 3 for r in judged])) if judged else None,
        }
        results[k] = {"name": runs[0]["name"], "fit_seconds": "-", "metrics": metrics,
                      "sweep": _pooled_sweep(k, runs, n, months), "per_failure": rows,
                      "ttf": pooled_ttf([r.get("ttf") for r in runs]) if all(r.get("ttf") for r in runs) else None,
                      "severity": (pooled_severity([r.get("severity") for r in runs])
                                   if all(r.get("severity") for r in runs) else None)}
    return {"config": {name: d.get("config") for name, d in docs.items()},
            "failures": results[keys[0]]["metrics"]["failures"],
            "machines": sum(int(d["machines"]) for d in docs.values()),
            "fleets": {name: {"failures": d["failures"], "machines": d["machines"], "split": d.get("split"),
                              "end": d.get("end"), "seed": (d.get("config") or {}).get("seed"),
                              "false_alarms_per_machine_month": {
                                  k: d["results"][k]["metrics"]["false_alarms_per_machine_month"] for k in keys}}
                       for name, d in docs.items()},
            "results": results}


def _pooled_sweep(key: str, runs: list[dict[str, Any]], n: int, months: float) -> list[dict[str, Any]]:
    sweeps = [r.get("sweep") or [] for r in runs]
    if not all(sweeps):
        return []
    factors = [p["factor"] for p in sweeps[0]]
    if any([p["factor"] for p in s] != factors for s in sweeps):
        raise ValueError(f"{key}: the runs swept the threshold by different factors; they cannot be pooled")
    out = []
    for i, f in enumerate(factors):
        pts = [s[i] for s in sweeps]
        fa = sum(p["false_alarms"] for p in pts)
        c72 = sum(p["caught_72h"] for p in pts)
        onset = None if any(p.get("caught_72h_after_onset") is None for p in pts) else \
            sum(p["caught_72h_after_onset"] for p in pts)
        out.append({"factor": f, "recall_72h": c72 / n, "caught_72h": c72,
                    "recall_72h_after_onset": None if onset is None else onset / n,
                    "caught_72h_after_onset": onset, "false_alarms": fa,
                    "false_alarms_per_machine_month": fa / months if months else float("nan")})
    return out


def sign_test(only_a: int, only_b: int) -> float:
    """Two-sided exact sign test (McNemar's exact test) of ``only_a`` against ``only_b`` discordant pairs."""
    from scipy.stats import binomtest

    n = only_a + only_b
    return 1.0 if n == 0 else float(binomtest(only_a, n, 0.5).pvalue)


def _failure_id(row: dict[str, Any]) -> tuple[Any, str, str]:
    return row.get("fleet"), row["machine"], str(row["failure"])


def _label(ident: tuple[Any, str, str]) -> str:
    fleet, machine, failure = ident
    return f"{machine} {pd.Timestamp(failure):%Y-%m-%d}" + (f" ({fleet})" if fleet else "")


def paired(doc: dict[str, Any], key: str = "recall_72h_after_onset") -> list[dict[str, Any]]:
    """TSHAE against each baseline, failure by failure: caught >= 72 h by both, by one only, by neither."""
    res = doc["results"]
    if "tshae" not in res:
        return []
    ours = [_caught72(row, key) for row in res["tshae"]["per_failure"]]
    ident = [_failure_id(row) for row in res["tshae"]["per_failure"]]
    out = []
    for k, r in res.items():
        if k == "tshae":
            continue
        rows = r["per_failure"]
        if [_failure_id(row) for row in rows] != ident:
            raise ValueError(f"{k}: not the same failures as TSHAE's, in the same order")
        theirs = [_caught72(row, key) for row in rows]
        only_us = [_label(i) for i, a, b in zip(ident, ours, theirs, strict=True) if a and not b]
        only_them = [_label(i) for i, a, b in zip(ident, ours, theirs, strict=True) if b and not a]
        both = sum(a and b for a, b in zip(ours, theirs, strict=True))
        out.append({"baseline": k, "name": r["name"], "both": both, "tshae_only": len(only_us),
                    "baseline_only": len(only_them), "neither": len(ours) - both - len(only_us) - len(only_them),
                    "difference": len(only_us) - len(only_them), "p_value": sign_test(len(only_us), len(only_them)),
                    "tshae_only_failures": only_us, "baseline_only_failures": only_them})
    return out


def _names(failures: list[str], most: int = 6) -> str:
    if not failures:
        return "-"
    more = len(failures) - most
    return ", ".join(failures[:most]) + (f" and {more} more" if more > 0 else "")


def paired_table(doc: dict[str, Any], key: str = "recall_72h_after_onset") -> str | None:
    rows = paired(doc, key)
    if not rows:
        return None
    lines = ["| TSHAE vs | both | TSHAE only | baseline only | neither | difference | sign test p | "
             "caught by TSHAE only | caught by the baseline only |", "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['both']} | {r['tshae_only']} | {r['baseline_only']} | {r['neither']} | "
                     f"{r['difference']:+d} | {r['p_value']:.2f} | {_names(r['tshae_only_failures'])} | "
                     f"{_names(r['baseline_only_failures'])} |")
    return "\n".join(lines)


def fleet_table(doc: dict[str, Any], key: str = "recall_72h_after_onset") -> str:
    """Per fleet and detector: caught >= 72 h (``key``) of the failures, false alarms per machine-month."""
    res = doc["results"]
    names = list(doc["fleets"])
    lines = ["| Detector | " + " | ".join(names) + " | pooled |", "|---|" + "---|" * (len(names) + 1)]
    for k, r in res.items():
        cells = []
        for name in names:
            rows = [row for row in r["per_failure"] if row.get("fleet") == name]
            caught = sum(_caught72(row, key) for row in rows)
            fa = doc["fleets"][name]["false_alarms_per_machine_month"][k]
            cells.append(f"{caught}/{len(rows)} at {fa:.2f}")
        m = r["metrics"]
        pooled = sum(_caught72(row, key) for row in r["per_failure"])
        lines.append(f"| {r['name']} | " + " | ".join(cells)
                     + f" | {pooled}/{m['failures']} at {m['false_alarms_per_machine_month']:.2f} |")
    return "\n".join(lines)


#: Bands of the time a fault gave (failure - the later of its onset and the start of scoring), in hours.
WARNING_BANDS = ((0.0, 72.0), (72.0, 96.0), (96.0, float("inf")))


def _band(lo: float, hi: float) -> str:
    return f">= {lo:.0f} h" if hi == float("inf") else f"{lo:.0f}-{hi:.0f} h"


def response(doc: dict[str, Any]) -> dict[str, Any]:
    """How fast each detector answers a fault's onset, and what that leaves of the 72 h target.

    Per detector: the hours from a fault's onset (or the start of scoring, if later) to the first alarm raised
    after it (``delays``, failures caught after onset at any lead) and, per band of the time the fault gave
    before failing (:data:`WARNING_BANDS`), failures caught >= 72 h ahead by an alarm after onset of the
    failures in the band. A fault that gave 80 h is caught >= 72 h ahead only if its alarm came within 8 h.
    """
    out: dict[str, Any] = {}
    for k, r in doc["results"].items():
        delays: list[float] = []
        bands = {_band(lo, hi): [0, 0] for lo, hi in WARNING_BANDS}
        for row in r["per_failure"]:
            if row.get("onset") is None:
                continue
            split = doc["fleets"].get(row.get("fleet"), {}).get("split")
            onset = pd.to_datetime(row["onset"], utc=True)
            start = max(onset, pd.to_datetime(split, utc=True)) if split else onset
            gave = max((pd.to_datetime(row["failure"], utc=True) - start) / pd.Timedelta("1h"), 0.0)
            lead = row.get("lead_after_onset_h")
            if lead is not None:
                delays.append(gave - float(lead))
            band = next(_band(lo, hi) for lo, hi in WARNING_BANDS if lo <= gave < hi)
            bands[band][0] += _caught72(row, "recall_72h_after_onset")
            bands[band][1] += 1
        out[k] = {"name": r["name"], "delays": delays, "bands": bands}
    return out


def response_table(doc: dict[str, Any]) -> str | None:
    """:func:`response` as a table (None when no failure has an onset)."""
    got = response(doc)
    if not any(v["delays"] for v in got.values()):
        return None
    names = [_band(lo, hi) for lo, hi in WARNING_BANDS]
    lines = ["| Detector | hours from onset to alarm, median (quartiles) | "
             + " | ".join(f"caught >= 72 h, faults that gave {b}" for b in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for v in got.values():
        d = np.asarray(v["delays"], float)
        delay = f"{np.median(d):.0f} ({np.percentile(d, 25):.0f}-{np.percentile(d, 75):.0f})" if len(d) else "-"
        lines.append(f"| {v['name']} | {delay} | " + " | ".join(f"{v['bands'][b][0]}/{v['bands'][b][1]}" for b in names)
                     + " |")
    return "\n".join(lines)


def markdown(doc: dict[str, Any], stem: str, plotted: bool, date: str = "", machine: Any = None) -> str:
    """The pooled results file: per fleet, pooled at the default threshold, paired, at the same budgets."""
    from pdm.evaluate.bench_sim import (
        ONSET,
        budget_table,
        budget_verdict,
        cause_table,
        own_rate_verdict,
        table,
        verdict,
    )

    files = doc.get("runs") or {}
    fleets = "; ".join(f"`{name}` ({f'`{Path(files[name]).name}`, ' if name in files else ''}seed {f['seed']}, "
                       f"{f['machines']} machines, {f['failures']} failures scored from {f['split']} to {f['end']})"
                       for name, f in doc["fleets"].items())
    n = doc["failures"]
    out = [f"# Held-back fleets pooled ({date})" if date else "# Held-back fleets pooled", "",
           f"Runs of `pdmctl benchmark sim` pooled as one plant (pdm.evaluate.pooled): {fleets}. Failures, "
           "machine-months, catches and false alarms are summed (at the default threshold and at each factor of the "
           "threshold sweep); recall and false alarms per machine-month come from the sums.", "",
           *([f"Machine: {machine}", ""] if machine else []),
           "## Per fleet", "",
           "Failures caught >= 72 h ahead by an alarm raised after the fault's onset, of the fleet's failures, at the "
           "false alarms per machine-month of the default threshold:", "", fleet_table(doc), "",
           "## Pooled, default thresholds", "", table(doc), "",
           *([v, ""] if (v := verdict(doc)) else []), *([v, ""] if (v := verdict(doc, ONSET)) else []),
           *(["False alarms by what they overlapped:", "", ct, ""] if (ct := cause_table(doc)) else []),
           "## Failure by failure", "",
           "The same failures, the same stages: caught >= 72 h ahead by an alarm raised after the fault's onset by "
           "both, by one only, by neither. The sign test's p-value is the chance of a split at least this uneven "
           "between the two if either were as likely to catch a failure the other misses.", "",
           *([pt, ""] if (pt := paired_table(doc)) else []),
           "Counting any alarm in effect (also one raised before the onset):", "",
           *([pt, ""] if (pt := paired_table(doc, "recall_72h")) else []),
           *(["## How fast the alarms come", "",
              "Time from a fault's onset (or the start of scoring, if later) to the first alarm raised after it, for "
              "the failures so caught; and the failures caught >= 72 h ahead by such an alarm, by how long the fault "
              "ran before the failure. A fault that ran 80 h is caught >= 72 h ahead only by an alarm within 8 h "
              "of its onset.", "", rt, ""] if (rt := response_table(doc)) else []),
           *(["## At the same false-alarm budget (pooled sweeps)", "",
              "Every machine's threshold times the same factor in every fleet; per budget, the most failures caught "
              ">= 72 h ahead among the factors within it. The factor is chosen with the labels.", "", bt, "",
              *([bv, ""] if (bv := budget_verdict(doc)) else []), *([ov, ""] if (ov := own_rate_verdict(doc)) else []),
              *(["Alarms raised after the fault's onset only:", "", bto, "",
                 *([v, ""] if (v := budget_verdict(doc, ONSET)) else []),
                 *([v, ""] if (v := own_rate_verdict(doc, ONSET)) else [])] if (bto := budget_table(doc, ONSET)) else []),
              *([f"![pooled operating curves, alarms after onset]({stem}_curves.png)", ""] if plotted else [])]
             if (bt := budget_table(doc)) else []),
           *(["## Time to failure, as the open alarms estimated it", "",
              "What each window with an open alarm (default threshold) showed as its time to failure, against when "
              "the machine failed; every fleet's windows and failures together.", "", tt, "", TTF_NOTE, ""]
             if (tt := ttf_table({r["name"]: r.get("ttf") for r in doc["results"].values()})) else []),
           *(["## Severity levels, each from when an alarm reached it", "", st, "", SEVERITY_NOTE, ""]
             if (st := severity_table({r["name"]: r.get("severity") for r in doc["results"].values()})) else []),
           *notify_section({r["name"]: r.get("severity") for r in doc["results"].values()}),
           f"Note: {n} failures pooled; one failure moves recall by {1 / max(n, 1):.3f}."]
    return "\n".join(out)
