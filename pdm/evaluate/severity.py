"""What each alarm severity is worth to the people it calls, measured against a failure log.

An alarm episode is graded as its score grows (:meth:`pdm.detect.stages.AlarmRule.severity`: watch,
warning, critical), and the grade decides who hears of it: notifications go out from ``critical`` by
default (``notify_severity``), the dashboard sorts by it. So each level is a detector of its own: the
episodes that reached it, each counted **from the window at which it reached it** (``Alarm.reached``),
since that is when the people called at that level hear of it. Judged as every alarm is
(:func:`pdm.evaluate.events.event_metrics`): failures caught and how far ahead (after the fault's onset
where the log gives it), false alarms per machine-month; and the level's plain claim, "a failure is
near": of the episodes that reached it, the share whose machine failed within 72 h of that moment and
within the horizon (14 days).

A level earns its place when it keeps most of the lead of the one below at clearly fewer false alarms;
one that every true and every false alarm reaches alike sorts nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pdm.detect.stages import SEVERITIES
from pdm.evaluate.events import HORIZON, event_metrics, failure_times

NEAR_H = 72.0


def at_level(alarms: pd.DataFrame, level: str) -> pd.DataFrame:
    """The episodes of ``alarms`` (machine, start, end, reached: {level: ns or time}) that reached ``level``,
    each starting when it did (machine, start, end)."""
    rows = []
    for a in alarms.itertuples(index=False):
        when = (a.reached or {}).get(level)
        if when is not None:
            rows.append({"machine": a.machine, "start": pd.Timestamp(when, tz="UTC") if isinstance(when, int | np.integer)
                         else pd.Timestamp(when), "end": a.end})
    return pd.DataFrame(rows, columns=["machine", "start", "end"])


def _near(alarms: pd.DataFrame, failures: pd.DataFrame, hours: float) -> int:
    """Episodes whose machine failed within ``hours`` after the episode's start (its level's time)."""
    if not len(alarms) or not len(failures):
        return 0
    by = failure_times(failures)
    n = 0
    for m, t in zip(alarms["machine"].astype(str), pd.to_datetime(alarms["start"], utc=True), strict=True):
        ft = by.get(m)
        if ft is None:
            continue
        j = int(np.searchsorted(ft, t.value, side="left"))
        n += bool(j < len(ft) and ft[j] - t.value <= hours * 3.6e12)
    return n


def severity_evidence(alarms: pd.DataFrame, failures: pd.DataFrame, observed: pd.DataFrame,
                      nuisances: pd.DataFrame | None = None, *, near_h: float = NEAR_H,
                      horizon: pd.Timedelta = HORIZON) -> dict[str, Any]:
    """Per severity level, the episodes that reached it judged from the moment they did (module docstring).

    ``alarms``: machine, start, end, reached (``Alarm.reached``: level -> ns). Returns ``levels`` (one dict per
    level: alarms, false_alarms, false_alarms_per_machine_month, caught, caught_72h, caught_72h_after_onset
    (None without onsets), failures, median_lead_h, near (failed within ``near_h``), precision_near,
    precision (true alarms / alarms)) and ``machine_months``, so that runs pool by adding counts
    (:func:`pooled_severity`).
    """
    levels = []
    months = None
    for level in SEVERITIES:
        al = at_level(alarms, level)
        m = event_metrics(failures, al, observed, nuisances, horizon=horizon)
        months = m.machine_months
        onsets = [p for p in m.per_failure if "onset" in p]
        after72 = sum(1 for p in onsets if (p.get("lead_after_onset_h") or -1.0) >= 72)
        near = _near(al, failures, near_h)
        levels.append({"level": level, "alarms": m.alarms, "true_alarms": m.true_alarms,
                       "false_alarms": m.false_alarms, "caught": m.caught,
                       "caught_72h": sum(1 for p in m.per_failure if (p.get("lead_h") or -1.0) >= 72),
                       "caught_72h_after_onset": after72 if onsets else None, "failures": m.failures,
                       "median_lead_h": m.median_lead_h, "near": near})
    return _summary(levels, months or 0.0, near_h)


def _summary(levels: list[dict[str, Any]], months: float, near_h: float) -> dict[str, Any]:
    out = []
    for lv in levels:
        n = lv["alarms"]
        out.append({**lv, "false_alarms_per_machine_month": lv["false_alarms"] / months if months else None,
                    "precision": lv["true_alarms"] / n if n else None, "precision_near": lv["near"] / n if n else None})
    return {"near_h": near_h, "machine_months": months, "levels": out}


def pooled_severity(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """:func:`severity_evidence` of several runs as one (counts added; medians of leads are not pooled)."""
    parts_: list[dict[str, Any]] = [p for p in parts if p and "levels" in p]
    if not parts_:
        return None
    keys = ("alarms", "true_alarms", "false_alarms", "caught", "caught_72h", "failures", "near")
    levels = []
    for i, level in enumerate(SEVERITIES):
        row: dict[str, Any] = {"level": level, **{k: sum(p["levels"][i][k] for p in parts_) for k in keys}}
        onset = [p["levels"][i]["caught_72h_after_onset"] for p in parts_]
        row["caught_72h_after_onset"] = None if any(v is None for v in onset) else sum(onset)
        row["median_lead_h"] = None
        levels.append(row)
    return _summary(levels, sum(p["machine_months"] for p in parts_), parts_[0]["near_h"])


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def severity_table(by_name: dict[str, dict[str, Any] | None]) -> str | None:
    """Markdown: per detector and level, catches (>= 72 h after onset where known), false alarms and the
    share of episodes followed by a failure within 72 h of reaching the level. None without any."""
    named = {n: s for n, s in by_name.items() if s}
    if not named:
        return None
    h = f"{next(iter(named.values()))['near_h']:g} h"
    lines = ["| Detector | level | episodes | caught >= 72 h (after onset) / failures | false alarms (/ machine-month) "
             f"| failed within {h} of reaching it | failed within the horizon |", "|---|---|---|---|---|---|---|"]
    for name, s in named.items():
        for lv in s["levels"]:
            onset = "" if lv["caught_72h_after_onset"] is None else f" ({lv['caught_72h_after_onset']})"
            fa = lv["false_alarms_per_machine_month"]
            lines.append(f"| {name} | {lv['level']} | {lv['alarms']} | {lv['caught_72h']}{onset} / {lv['failures']} | "
                         f"{lv['false_alarms']} ({'-' if fa is None else f'{fa:.2f}'}) | {lv['near']} "
                         f"({_pct(lv['precision_near'])}) | {lv['true_alarms']} ({_pct(lv['precision'])}) |")
    return "\n".join(lines)


SEVERITY_NOTE = ("Each level counts the alarm episodes that reached it, from the window at which they did (when "
                 "the people notified at that level hear of it): failures caught at least 72 h ahead (in "
                 "brackets: by an episode that reached the level after the fault's onset), false alarms, and the "
                 "episodes whose machine failed within 72 h of that moment and within the horizon "
                 "(pdm.evaluate.severity).")
