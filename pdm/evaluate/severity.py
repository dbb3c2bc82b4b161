"""What each alarm severity is worth to the people it calls, measured against a failure log.

An alarm episode is graded as its score grows (:meth:`pdm.detect.stages.AlarmRule.severity`: watch,
warning, critical), and the grade decides who hears of it: notifications go out from ``warning`` by
default (``notify_severity``), the dashboard sorts by it. So each level is a detector of its own: the
episodes that reached it, each counted **from the window at which it reached it** (``Alarm.reached``),
since that is when the people called at that level hear of it. Judged as every alarm is
(:func:`pdm.evaluate.events.event_metrics`): failures caught and how far ahead (after the fault's onset
where the log gives it), false alarms per machine-month; and the level's plain claim, "a failure is
near": of the episodes that reached it, the share whose machine failed within 72 h of that moment and
within the horizon (14 days).

A level earns its place when it keeps most of the lead of the one below at clearly fewer false alarms;
one that every true and every false alarm reaches alike sorts nothing.

Which level to notify from is a plant's trade of calls against failures, so :func:`notify_costs` prices
it in hours of downtime: a failure told at least ``planning_lead`` (24 h, as the downtime figure of
:func:`~pdm.evaluate.events.event_metrics`) ahead, after its onset where the log gives one, becomes a
planned stop of ``planned_fraction`` of its repair time; any other failure costs its whole repair time; a
false call costs ``false_call_h`` (someone goes and looks, perhaps a stop to inspect). The repair time is
the failure log's median where it gives repair ends, else stated. Beside each level's total: the cost of
a false call above which it is cheaper than the level below (fewer calls are worth the failures they
miss), which holds whatever the plant's own figure is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pdm.detect.stages import SEVERITIES
from pdm.evaluate.events import (
    HORIZON,
    PLANNED_FRACTION,
    PLANNING_LEAD,
    event_metrics,
    failure_times,
)

NEAR_H = 72.0
#: Hours a false call costs by default (someone inspects, perhaps a short stop); a plant states its own.
FALSE_CALL_H = 2.0
#: Repair hours of a failure when the failure log gives no repair ends (pdmctl import's default repair, 1 day).
REPAIR_H = 24.0


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
                      horizon: pd.Timedelta = HORIZON, planning_lead: pd.Timedelta = PLANNING_LEAD) -> dict[str, Any]:
    """Per severity level, the episodes that reached it judged from the moment they did (module docstring).

    ``alarms``: machine, start, end, reached (``Alarm.reached``: level -> ns). Returns ``levels`` (one dict per
    level: alarms, false_alarms, false_alarms_per_machine_month, caught, caught_72h, caught_72h_after_onset
    (None without onsets), failures, median_lead_h, near (failed within ``near_h``), precision_near,
    precision (true alarms / alarms), planned (told >= ``planning_lead`` ahead: after the onset where the log
    gives onsets)), ``machine_months`` and ``repair_h`` (the log's median repair time, None without repair
    ends), so that runs pool by adding counts (:func:`pooled_severity`).
    """
    levels = []
    months = None
    plan_h = planning_lead / pd.Timedelta("1h")
    for level in SEVERITIES:
        al = at_level(alarms, level)
        m = event_metrics(failures, al, observed, nuisances, horizon=horizon)
        months = m.machine_months
        onsets = [p for p in m.per_failure if "onset" in p]
        after72 = sum(1 for p in onsets if (p.get("lead_after_onset_h") or -1.0) >= 72)
        near = _near(al, failures, near_h)
        lead_key = "lead_after_onset_h" if onsets else "lead_h"
        levels.append({"level": level, "alarms": m.alarms, "true_alarms": m.true_alarms,
                       "false_alarms": m.false_alarms, "caught": m.caught,
                       "caught_72h": sum(1 for p in m.per_failure if (p.get("lead_h") or -1.0) >= 72),
                       "caught_72h_after_onset": after72 if onsets else None, "failures": m.failures,
                       "median_lead_h": m.median_lead_h, "near": near,
                       "planned": sum(1 for p in m.per_failure if (p.get(lead_key) or -1.0) >= plan_h)})
    return _summary(levels, months or 0.0, near_h, repair_hours(failures), plan_h)


def repair_hours(failures: pd.DataFrame) -> float | None:
    """The median repair time (h) of ``failures`` (failure, repair_end); None where no repair end is known."""
    if not len(failures) or "repair_end" not in failures:
        return None
    h = ((pd.to_datetime(failures["repair_end"], utc=True) - pd.to_datetime(failures["failure"], utc=True))
         / pd.Timedelta("1h")).dropna()
    h = h[h > 0]
    return float(h.median()) if len(h) else None


def _summary(levels: list[dict[str, Any]], months: float, near_h: float, repair_h: float | None,
             planning_lead_h: float) -> dict[str, Any]:
    out = []
    for lv in levels:
        n = lv["alarms"]
        out.append({**lv, "false_alarms_per_machine_month": lv["false_alarms"] / months if months else None,
                    "precision": lv["true_alarms"] / n if n else None, "precision_near": lv["near"] / n if n else None})
    return {"near_h": near_h, "machine_months": months, "repair_h": repair_h, "planning_lead_h": planning_lead_h,
            "levels": out}


def notify_costs(evidence: dict[str, Any], *, false_call_h: float = FALSE_CALL_H, repair_h: float | None = None,
                 planned_fraction: float = PLANNED_FRACTION) -> dict[str, Any]:
    """What notifying from each level would have cost, in hours of downtime (module docstring).

    ``evidence``: :func:`severity_evidence` (or :func:`pooled_severity`). ``repair_h``: a failure's repair
    time (default: the evidence's, from the failure log, else :data:`REPAIR_H`). Returns ``levels`` (level,
    planned, unplanned, false_alarms, downtime_h, calls_h, cost_h, cost_per_machine_month_h,
    pays_above_false_call_h: the cost of a false call above which this level is cheaper than the one below;
    0 when it is cheaper at any cost, None when never, and for the first level), ``best`` (the cheapest
    level at ``false_call_h``; of equal costs, the one that calls fewer times) and the assumptions.
    """
    if false_call_h < 0 or not 0 <= planned_fraction <= 1:
        raise ValueError("false_call_h must be >= 0 and planned_fraction in [0, 1]")
    if not all("planned" in lv for lv in evidence["levels"]):
        raise ValueError("severity evidence without planned stops (written before they were counted): judge it again")
    rh = repair_h if repair_h is not None else evidence.get("repair_h") or REPAIR_H
    months = evidence.get("machine_months") or 0.0
    rows: list[dict[str, Any]] = []
    for lv in evidence["levels"]:
        planned = int(lv["planned"])
        unplanned = int(lv["failures"]) - planned
        downtime = unplanned * rh + planned * rh * planned_fraction
        calls = lv["false_alarms"] * false_call_h
        row = {"level": lv["level"], "planned": planned, "unplanned": unplanned, "false_alarms": lv["false_alarms"],
               "downtime_h": downtime, "calls_h": calls, "cost_h": downtime + calls,
               "cost_per_machine_month_h": (downtime + calls) / months if months else None,
               "pays_above_false_call_h": None}
        if rows:
            below = rows[-1]
            fewer = below["false_alarms"] - row["false_alarms"]  # false calls spared by notifying from here
            dearer = downtime - below["downtime_h"]  # downtime added: failures no longer planned
            if dearer <= 0 and fewer >= 0:
                row["pays_above_false_call_h"] = 0.0
            elif fewer > 0:
                row["pays_above_false_call_h"] = dearer / fewer
        rows.append(row)
    best = min(reversed(rows), key=lambda r: r["cost_h"])["level"] if rows else None
    return {"false_call_h": false_call_h, "repair_h": rh, "repair_from_log": repair_h is None and bool(evidence.get("repair_h")),
            "planned_fraction": planned_fraction, "planning_lead_h": evidence.get("planning_lead_h"),
            "machine_months": months, "levels": rows, "best": best}


def pooled_severity(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """:func:`severity_evidence` of several runs as one (counts added; medians of leads are not pooled)."""
    parts_: list[dict[str, Any]] = [p for p in parts if p and "levels" in p]
    if not parts_:
        return None
    keys = ("alarms", "true_alarms", "false_alarms", "caught", "caught_72h", "failures", "near", "planned")
    levels = []
    for i, level in enumerate(SEVERITIES):
        row: dict[str, Any] = {"level": level, **{k: sum(p["levels"][i][k] for p in parts_) for k in keys
                                                   if all(k in p["levels"][i] for p in parts_)}}  # planned: newer
        onset = [p["levels"][i]["caught_72h_after_onset"] for p in parts_]
        row["caught_72h_after_onset"] = None if any(v is None for v in onset) else sum(onset)
        row["median_lead_h"] = None
        levels.append(row)
    repairs = [p["repair_h"] for p in parts_ if p.get("repair_h")]
    return _summary(levels, sum(p["machine_months"] for p in parts_), parts_[0]["near_h"],
                    float(np.median(repairs)) if repairs else None,
                    parts_[0].get("planning_lead_h", PLANNING_LEAD / pd.Timedelta("1h")))


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


def _repair_source(costs: dict[str, Any]) -> str:
    return "the failure log's median" if costs["repair_from_log"] else "stated"


def _pays(h: float | None) -> str:
    return "never" if h is None else "always" if h == 0 else f"above {h:.1f} h"


def notify_line(costs: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for a metrics table: the cheapest level to notify from, and when each level pays."""
    rows = costs["levels"]
    if not rows:
        return []
    cheapest = (f"{costs['best']} (" + ", ".join(f"{r['level']} {r['cost_h']:.0f} h" for r in rows)
                + f"; a false call {costs['false_call_h']:g} h, a repair {costs['repair_h']:.1f} h ({_repair_source(costs)}), "
                f"a planned stop {100 * costs['planned_fraction']:.0f} % of it)")
    pays = ", ".join(f"{r['level']} {_pays(r['pays_above_false_call_h'])}" for r in rows[1:])
    return [("notify from (cheapest in downtime)", cheapest), ("  fewer calls pay when a call costs", pays)]


def notify_table(by_name: Mapping[str, dict[str, Any] | None], what: str = "Detector") -> str | None:
    """Markdown: per detector (or ``what``) and level, the notify costs (:func:`notify_costs`' results)."""
    named = {n: s for n, s in by_name.items() if s}
    if not named:
        return None
    lines = [f"| {what} | level | planned stops | unplanned failures | false calls | downtime h | calls h | total h "
             "| cheaper than the level below when a false call costs |", "|---|---|---|---|---|---|---|---|---|"]
    for name, costs in named.items():
        for r in costs["levels"]:
            best = " **(cheapest)**" if r["level"] == costs["best"] else ""
            pays = "-" if r is costs["levels"][0] else _pays(r["pays_above_false_call_h"])
            lines.append(f"| {name} | {r['level']}{best} | {r['planned']} | {r['unplanned']} | {r['false_alarms']} | "
                         f"{r['downtime_h']:.0f} | {r['calls_h']:.0f} | {r['cost_h']:.0f} | {pays} |")
    return "\n".join(lines)


def notify_section(by_name: Mapping[str, dict[str, Any] | None], false_call_h: float = FALSE_CALL_H,
                   what: str = "Detector") -> list[str]:
    """Markdown lines of a results file: each detector's (or ``what``'s) :func:`severity_evidence` priced as the
    level to notify from (:func:`notify_costs` at ``false_call_h``); none for evidence from before ``planned``
    was counted."""
    costs = {n: notify_costs(s, false_call_h=false_call_h) for n, s in by_name.items()
             if s and all("planned" in lv for lv in s["levels"])}
    table = notify_table(costs, what)
    if table is None:
        return []
    c = next(iter(costs.values()))
    return ["## Which level to notify from, priced in downtime", "", table, "",
            f"A failure told at least {c['planning_lead_h']:g} h ahead (after its onset) is a planned stop of "
            f"{100 * c['planned_fraction']:.0f} % of its repair time ({c['repair_h']:.1f} h, {_repair_source(c)}); any other costs the "
            f"whole repair; a false call {false_call_h:g} h. The last column holds whatever a plant's own cost of a "
            "call is (pdmctl evaluate --false-call-hours; pdm.evaluate.severity.notify_costs).", ""]
