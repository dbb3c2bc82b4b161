"""Alarm rules judged on harness series without a rerun: k of n alone, and with the CUSUM's raising path.

A ``pdmctl benchmark sim --series`` run keeps every detector's calibrated machine score per window, the work
orders and the ground truth (:mod:`pdm.evaluate.bench_sim`). :func:`judge_run` applies each
:class:`pdm.detect.stages.AlarmRule` of ``rules`` to those scores at every threshold factor of the sweep and
keeps the operating curve (failures caught >= 72 h ahead by an alarm raised after the fault's onset, false
alarms) and, at the default threshold, each failure's lead and the hours from its onset to the first alarm
after it. :func:`pool` sums fleets as one plant (as :mod:`pdm.evaluate.pooled`), so that rules are compared
on the same scores at the same false-alarm budgets.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.detect.stages import AlarmRule
from pdm.evaluate.bench_sim import BUDGETS, SWEEP_FACTORS, at_budget, judge_series, read_series
from pdm.evaluate.pooled import WARNING_BANDS, _band

ONSET = "recall_72h_after_onset"

#: The rules compared by default: the product's k of n, and k of n with the CUSUM over 48 h of 2 h windows,
#: counting each window's score above ``ref`` x threshold (at most ``cap`` x), raising at ``h`` x threshold.
#: Also k of n with fewer windows: an alarm a window or two sooner, for a fault whose score stays up.
RULES: dict[str, dict[str, Any]] = {
    "k of n": {},
    **{f"+ CUSUM ref {r:g}, h {h:g}": {"cusum": True, "cusum_ref": r, "cusum_h": h}
       for r in (0.4, 0.5, 0.6) for h in (2.0, 3.0, 4.0)},
    **{f"{k} of {n}": {"k": k, "n": n} for k, n in ((2, 3), (2, 4), (3, 4))},
}


def _delay(row: dict[str, Any], split: pd.Timestamp | None) -> tuple[float, float | None]:
    """Hours the fault gave (onset, or the start of scoring if later, to failure) and the hours from then to the
    first alarm raised after onset (None: none)."""
    onset = pd.to_datetime(row["onset"], utc=True)
    start = max(onset, split) if split is not None else onset
    gave = max((pd.to_datetime(row["failure"], utc=True) - start) / pd.Timedelta("1h"), 0.0)
    lead = row.get("lead_after_onset_h")
    return gave, (None if lead is None else gave - float(lead))


def judge_run(results: Path, rules: dict[str, dict[str, Any]] | None = None,
              factors: tuple[float, ...] = SWEEP_FACTORS,
              progress: Callable[[str], None] | None = None,
              series_for: Callable[[Path, str, str], list[Any] | None] | None = None) -> dict[str, Any]:
    """Every detector of the run ``results`` (a results JSON; its series in ``<stem>_series/``) under every rule.

    ``series_for(folder, detector, rule name)``: the series judged under that rule (None: the detector is left
    out), for rules that are other stages rather than other alarm rules (``benchmarks/score_aggregation.py``);
    default: the run's own series for every rule.

    Returns ``{"file", "seed", "failures", "machine_months", "split", "detectors": {key: {"name", "rules":
    {rule: {"curve": [...], "per_failure": [...]}}}}}``.
    """
    import json

    results = Path(results)
    doc = json.loads(results.read_text())
    folder = results.with_name(f"{results.stem}_series")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no series beside {results.name} (rerun it with --series)")
    split = pd.to_datetime(doc["split"], utc=True) if doc.get("split") else None
    out: dict[str, Any] = {"file": results.name, "seed": doc["config"]["seed"], "split": str(split),
                           "failures": None, "machine_months": None, "detectors": {}}
    for key, r in doc["results"].items():
        if series_for is None and not (folder / f"{key}.parquet").exists():
            continue
        as_run = read_series(folder, key) if series_for is None else None
        per_rule: dict[str, Any] = {}
        for name, fields in (rules or RULES).items():
            series = as_run if series_for is None else series_for(folder, key, name)
            if series is None:
                break
            rule = AlarmRule(**fields)
            curve, rows = [], []
            for f in factors:
                m = judge_series(folder, series, f, rule)
                out["failures"], out["machine_months"] = m.failures, m.machine_months
                curve.append({"factor": f, "caught": int(round((m.recall_72h_after_onset or 0.0) * m.failures)),
                              "false_alarms": m.false_alarms})
                if f == 1.0:
                    rows = [{"machine": p["machine"], "failure": str(p["failure"]),
                             "lead_after_onset_h": p.get("lead_after_onset_h"), "gave_h": gave, "to_alarm_h": delay}
                            for p in m.per_failure if p.get("onset") is not None
                            for gave, delay in [_delay(p, split)]]
            per_rule[name] = {"fields": fields, "curve": curve, "per_failure": rows}
            if progress:
                d = next(p for p in curve if p["factor"] == 1.0) if 1.0 in factors else curve[0]
                progress(f"{results.stem} {r['name']} {name}: {d['caught']} caught >= 72 h after onset, "
                         f"{d['false_alarms']} false alarms")
        if len(per_rule) == len(rules or RULES):  # every rule judged (series_for gave none: left out)
            out["detectors"][key] = {"name": r["name"], "rules": per_rule}
    return out


def judge_runs(specs: list[str], rules: dict[str, dict[str, Any]], results: Path,
               series_for: Callable[[Path, str, str], list[Any] | None] | None = None) -> dict[str, Any]:
    """``LABEL=FILE`` runs (a results JSON, relative to ``results`` or a path) judged by :func:`judge_run` and
    pooled by :func:`pool`; the pooled document with the time it took. Raises ValueError for a spec without ``=``."""
    import time

    from pdm.evaluate.bench_sim import results_file

    runs = {}
    t0 = time.perf_counter()
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            raise ValueError(f"--run {spec!r}: LABEL=FILE")
        file = Path(path) if Path(path).exists() else results_file(path, results)
        runs[label] = judge_run(file, rules, progress=print, series_for=series_for)
    doc = pool(runs)
    doc.update({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds": round(time.perf_counter() - t0, 1)})
    return doc


def fleets_line(doc: dict[str, Any]) -> str:
    """The pooled runs in words: label, file, seed, failures, machine-months."""
    return ", ".join(f"`{k}` (`{v['file']}`, seed {v['seed']}, {v['failures']} failures, "
                     f"{v['machine_months']:.0f} machine-months)" for k, v in doc["fleets"].items())


def write_study(doc: dict[str, Any], results: Path, out: str, md: list[str], plotted: bool) -> None:
    """``<out>.json`` and ``<out>.md`` (``md``'s lines, the plot linked if drawn) into ``results``; the table printed."""
    import json

    results.mkdir(parents=True, exist_ok=True)
    (results / f"{out}.json").write_text(json.dumps(doc, indent=1, default=str))
    if plotted:
        md = [*md, f"![curves]({out}.png)", ""]
    (results / f"{out}.md").write_text("\n".join(md))
    print("\n".join(md))


def pool(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Fleets judged by :func:`judge_run` summed as one plant, per detector and rule: the default threshold's
    catches and false alarms, the pooled curve's best catches within each false-alarm budget, the hours from onset
    to alarm and the catches by the time the fault gave (:data:`pdm.evaluate.pooled.WARNING_BANDS`)."""
    if not runs:
        raise ValueError("pool: no runs")
    n = sum(int(r["failures"]) for r in runs.values())
    months = sum(float(r["machine_months"]) for r in runs.values())
    keys = [k for k in next(iter(runs.values()))["detectors"] if all(k in r["detectors"] for r in runs.values())]
    table: dict[str, Any] = {}
    for key in keys:
        first = next(iter(runs.values()))["detectors"][key]
        rows: dict[str, Any] = {}
        for rule in first["rules"]:
            fleets = {label: r["detectors"][key]["rules"][rule] for label, r in runs.items()}
            factors = [p["factor"] for p in next(iter(fleets.values()))["curve"]]
            curve = []
            for i, f in enumerate(factors):
                c = sum(v["curve"][i]["caught"] for v in fleets.values())
                fa = sum(v["curve"][i]["false_alarms"] for v in fleets.values())
                curve.append({"factor": f, "caught": c, ONSET: c / n if n else 0.0, "false_alarms": fa,
                              "false_alarms_per_machine_month": fa / months if months else 0.0})
            default = next((p for p in curve if p["factor"] == 1.0), curve[0])
            pf = [p for v in fleets.values() for p in v["per_failure"]]
            delays = [p["to_alarm_h"] for p in pf if p["to_alarm_h"] is not None]
            bands = {_band(lo, hi): [sum(1 for p in pf if lo <= p["gave_h"] < hi and (p["lead_after_onset_h"] or 0) >= 72),
                                     sum(1 for p in pf if lo <= p["gave_h"] < hi)] for lo, hi in WARNING_BANDS}
            budget = {}
            for b in BUDGETS:
                pt = at_budget(curve, b, key=ONSET)
                budget[str(b)] = None if pt is None else {"caught": pt["caught"], "factor": pt["factor"],
                                                          "false_alarms": pt["false_alarms"]}
            rows[rule] = {"fields": first["rules"][rule]["fields"], "curve": curve,
                          "per_fleet": {label: next((p for p in v["curve"] if p["factor"] == 1.0), v["curve"][0])
                                        for label, v in fleets.items()},
                          "caught": default["caught"], "false_alarms": default["false_alarms"],
                          "false_alarms_per_machine_month": default["false_alarms_per_machine_month"],
                          "budgets": budget, "to_alarm_h": _quartiles(delays), "bands": bands}
        table[key] = {"name": first["name"], "rules": rows}
    return {"fleets": {label: {"file": r["file"], "seed": r["seed"], "failures": r["failures"],
                               "machine_months": r["machine_months"]} for label, r in runs.items()},
            "failures": n, "machine_months": months, "detectors": table}


def _quartiles(x: list[float]) -> list[float] | None:
    return None if not x else [float(v) for v in np.percentile(np.asarray(x, float), [25, 50, 75])]


def markdown(doc: dict[str, Any]) -> str:
    """The pooled table: each detector under each rule at the default threshold and at the budgets."""
    labels = list(doc["fleets"])
    n = doc["failures"]
    head = (["detector", "rule"] + [f"{label} (of {doc['fleets'][label]['failures']})" for label in labels]
            + [f"pooled (of {n})", "false alarms / machine-month"]
            + [f"best within {b:g} FA/mm" for b in BUDGETS]
            + ["hours onset to alarm, median (quartiles)"] + [f"gave {_band(lo, hi)}" for lo, hi in WARNING_BANDS])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in doc["detectors"].values():
        for rule, r in d["rules"].items():
            q = r["to_alarm_h"]
            cells = [d["name"], rule]
            cells += [f"{r['per_fleet'][label]['caught']} at {r['per_fleet'][label]['false_alarms']}" for label in labels]
            cells += [f"{r['caught']} at {r['false_alarms']}", f"{r['false_alarms_per_machine_month']:.2f}"]
            for b in BUDGETS:
                p = r["budgets"][str(b)]
                cells.append("-" if p is None else f"{p['caught']} (x{p['factor']:g}, {p['false_alarms']} FA)")
            cells.append("-" if q is None else f"{q[1]:.0f} ({q[0]:.0f}-{q[2]:.0f})")
            cells += [f"{c}/{t}" for c, t in r["bands"].values()]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(doc: dict[str, Any], path: Path, rules: list[str] | None = None,
         title: str = "Alarm rules on the same scores") -> bool:
    """Pooled curves (caught >= 72 h after onset against false alarms per machine-month), one per detector and
    rule in ``rules`` (default: every rule); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for i, (key, d) in enumerate(doc["detectors"].items()):
        shown = [rule for rule in d["rules"] if rules is None or rule in rules]
        for j, rule in enumerate(shown):  # one colour per detector, one line style per rule
            r = d["rules"][rule]
            pts = sorted(r["curve"], key=lambda p: -p["factor"])
            ax.plot([p["false_alarms_per_machine_month"] for p in pts], [p["caught"] for p in pts], marker="o", ms=3,
                    color=colours[i % len(colours)], lw=2.2 if key == "tshae" else 1.2, ls=styles[j % len(styles)],
                    label=f"{d['name']}, {rule}")
            ax.plot([r["false_alarms_per_machine_month"]], [r["caught"]], "k*", ms=8)
    for b in BUDGETS:
        ax.axvline(b, color="0.8", lw=0.8, ls="--")
    ax.axhline(doc["failures"], color="0.6", lw=0.8)
    ax.set_xlim(0, 1.5)
    ax.set_ylim(0, doc["failures"] + 1)
    ax.set_xlabel("false alarms per machine-month")
    ax.set_ylabel(f"failures caught >= 72 h after onset (of {doc['failures']})")
    ax.set_title(f"{title}, threshold swept (* = default threshold)", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def verdict(doc: dict[str, Any], base: str = "k of n") -> list[str]:
    """Per detector, the rules that do better than ``base`` on the pooled curve: more failures caught at the
    default threshold with no more false alarms, or more within a false-alarm budget and fewer within none."""
    lines = []
    for d in doc["detectors"].values():
        ref = d["rules"].get(base)
        if ref is None:
            continue
        better = []
        for rule, r in d["rules"].items():
            if rule == base:
                continue
            default = r["caught"] > ref["caught"] and r["false_alarms"] <= ref["false_alarms"]
            diffs = [(r["budgets"][b] or {"caught": 0})["caught"] - (ref["budgets"][b] or {"caught": 0})["caught"]
                     for b in ref["budgets"]]
            if default or (max(diffs) > 0 and min(diffs) >= 0):
                better.append(rule)
        lines.append(f"{d['name']}: better than {base}: {', '.join(better) if better else 'none'} "
                     f"(of {len(d['rules']) - 1} rules)")
    return lines
