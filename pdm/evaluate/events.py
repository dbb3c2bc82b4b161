"""Event metrics: what a reliability engineer asks of alarms.

A failure is *caught* when an alarm of the same machine is in effect
within ``horizon`` before it: the alarm started before the failure and
either started within the horizon or was still raised when the horizon
began (an episode that rose earlier and never cleared warned the plant all
along; counting it false and the failure missed would punish an alarm for
being early). Its lead time is the failure time minus that first alarm's
start; failures caught only by an alarm older than the horizon are counted
apart (``caught_early``) so that a reader can discount them. Where the failure log gives the fault's
onset (the simulator's truth does), the same is counted again with only the
alarms that started at or after it (``recall_72h_after_onset``,
``alarm_before_onset``): an alarm raised before the fault existed, and still
raised when it failed, warned of something else (a stuck alarm, an earlier
fault never cleared) and its "lead time" is no lead. An alarm that precedes no
failure within the horizon is a *false alarm*; it is attributed to the
labelled nuisance (maintenance, sensor replaced, dropout, spike, stuck
sensor, clock skew, duplicates, regime change) it overlaps, if any.

The root cause (ranked channels) is judged as the plant saw it when the
failure was ``ranking_lead`` (72 h, the lead the product promises) away:
the latest alarm in effect started by then (else the first), with its
ranking of that time (as raised, if raised later). An episode is ranked
again as its score grows (``rankings``); a ranking made in the last hours
before a failure would be of no use to plan the stop, and an alarm raised
and cleared before the fault began says nothing of it. The first alarm's
ranking as raised is judged too (``rootcause_top1_at_raise``).

Cost model for the downtime figure (stated, and configurable): a failure
caught at least ``planning_lead`` ahead becomes a planned stop that takes
``planned_fraction`` of the unplanned repair time; others stay unplanned.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

HORIZON = pd.Timedelta("14D")
PLANNING_LEAD = pd.Timedelta("24h")
RANKING_LEAD = pd.Timedelta("72h")
#: Share of a failure's repair time a planned stop takes (the downtime figure's cost model).
PLANNED_FRACTION = 0.5


@dataclass
class EventMetrics:
    failures: int
    caught: int
    caught_early: int  # caught only by an alarm that started before the horizon and was still raised in it
    recall: float
    recall_24h: float
    recall_72h: float
    alarms: int
    true_alarms: int
    precision: float
    false_alarms: int
    machine_months: float
    false_alarms_per_machine_month: float
    false_alarms_by_cause: dict[str, int]
    median_lead_h: float | None
    rootcause_top1: float | None
    rootcause_top3: float | None
    rootcause_top1_at_raise: float | None  # of the first alarm in effect, as it was raised
    unplanned_downtime_h: float
    downtime_turned_planned_h: float
    downtime_saved_h: float
    per_failure: list[dict[str, Any]] = field(default_factory=list)
    #: Counting only alarms that started at or after the fault's onset (None: the failures have no onsets).
    recall_72h_after_onset: float | None = None
    median_lead_after_onset_h: float | None = None
    #: Caught failures whose first alarm in effect started before the fault's onset.
    alarm_before_onset: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ts(x: Any) -> pd.Series:
    return pd.to_datetime(x, utc=True)


def overlapped_nuisance(nuisances: pd.DataFrame | None, machine: str, start: pd.Timestamp) -> pd.Series | None:
    """The first labelled nuisance of ``machine`` that an alarm starting at ``start`` is put down to (it started
    within a day of the nuisance's span), or None: a false alarm's cause in :func:`event_metrics`."""
    if nuisances is None or not len(nuisances):
        return None
    n = nuisances[nuisances["machine"] == machine]
    hit = n[(_ts(n["start"]) - pd.Timedelta("1D") <= start) & (_ts(n["end"]) + pd.Timedelta("1D") >= start)]
    return hit.iloc[0] if len(hit) else None


def in_effect(alarms: pd.DataFrame, machine: str, failure: pd.Timestamp, horizon: pd.Timedelta = HORIZON) -> np.ndarray:
    """(n,) True for the alarms of ``machine`` that warn of its failure at ``failure``.

    Started before the failure, and in effect within ``horizon`` before it:
    started inside the horizon, or ended (cleared, or last scored while still
    open: column ``end``) at or after its beginning. Without an ``end``
    column an alarm counts from its start only.
    """
    if not len(alarms):
        return np.zeros(0, dtype=bool)
    start = _ts(alarms["start"])
    sel = (alarms["machine"] == machine) & (start < failure)
    if "end" in alarms:
        end = _ts(alarms["end"])
        return (sel & ((start >= failure - horizon) | (end >= failure - horizon))).to_numpy()
    return (sel & (start >= failure - horizon)).to_numpy()


def failure_times(failures: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each machine's failure times (ns, ascending) from ``failures`` (machine, failure)."""
    if not len(failures):
        return {}
    when = pd.to_datetime(failures["failure"], utc=True).to_numpy("datetime64[ns]").astype(np.int64)
    machine = failures["machine"].astype(str).to_numpy()
    return {m: np.sort(when[machine == m]) for m in dict.fromkeys(machine)}


def catching(alarms: pd.DataFrame, failures: pd.DataFrame, horizon: pd.Timedelta = HORIZON) -> np.ndarray:
    """(n,) True for the alarms that warn of some failure of ``failures`` (machine, failure): :func:`in_effect`."""
    hit = np.zeros(len(alarms), dtype=bool)
    for f in failures.itertuples(index=False):
        hit |= in_effect(alarms, f.machine, f.failure, horizon)
    return hit


def event_metrics(
    failures: pd.DataFrame,
    alarms: pd.DataFrame,
    observed: pd.DataFrame,
    nuisances: pd.DataFrame | None = None,
    *,
    horizon: pd.Timedelta = HORIZON,
    planning_lead: pd.Timedelta = PLANNING_LEAD,
    planned_fraction: float = PLANNED_FRACTION,
    ranking_lead: pd.Timedelta = RANKING_LEAD,
) -> EventMetrics:
    """Event metrics of ``alarms`` against ``failures``.

    Parameters
    ----------
    failures
        machine, failure (time), optional repair_end, optional root_cause (";"-joined channels).
    alarms
        machine, start, optional end (cleared, or last scored while open; see :func:`in_effect`), optional
        channels (list or ";"-joined, ranked strongest first), optional rankings (list of (time, channels)
        in time order, the first made when the alarm was raised; without it, ``channels``). What is judged:
        :func:`judged_alarm` and :func:`judged_ranking` at ``failure - ranking_lead``.
    observed
        machine, start, end: the period each machine was scored (for machine-months).
    nuisances
        machine, kind, start, end of labelled non-failure events.
    """
    fails = failures.copy()
    fails["failure"] = _ts(fails["failure"])
    alarms = alarms.copy()
    alarms["start"] = _ts(alarms["start"]) if len(alarms) else pd.Series(dtype="datetime64[ns, UTC]")
    alarms["_used"] = False
    per_failure = []
    leads: list[float] = []
    top1: list[bool] = []
    top3: list[bool] = []
    top1_raise: list[bool] = []
    unplanned = planned_h = saved = 0.0
    early = 0
    onset_leads: list[float] = []
    n_onsets = before_onset = 0
    for _, f in fails.sort_values("failure").iterrows():
        sel = pd.Series(in_effect(alarms, f["machine"], f["failure"], horizon), index=alarms.index, dtype=bool)
        repair_h = 0.0
        if "repair_end" in f and pd.notna(f.get("repair_end")):
            repair_h = (pd.Timestamp(f["repair_end"]) - f["failure"]) / pd.Timedelta("1h")
        row: dict[str, Any] = {"machine": f["machine"], "failure": f["failure"], "caught": bool(sel.any())}
        onset = pd.Timestamp(f["onset"]) if "onset" in f and pd.notna(f.get("onset")) else None
        if onset is not None:
            if onset.tzinfo is None:
                onset = onset.tz_localize("UTC")
            n_onsets += 1
            after = sel & (alarms["start"] >= onset)
            row["onset"] = onset
            if after.any():
                lead_after = (f["failure"] - alarms.loc[after, "start"].min()) / pd.Timedelta("1h")
                onset_leads.append(lead_after)
                row["lead_after_onset_h"] = lead_after
            if sel.any() and alarms.loc[sel, "start"].min() < onset:
                row["alarm_before_onset"] = True
                before_onset += 1
        if sel.any():
            first = alarms[sel].sort_values("start").iloc[0]
            alarms.loc[sel, "_used"] = True
            lead = (f["failure"] - first["start"]) / pd.Timedelta("1h")
            leads.append(lead)
            row["lead_h"] = lead
            if first["start"] < f["failure"] - horizon:
                row["alarm_before_horizon"] = True
                early += 1
            truth = [c for c in str(f.get("root_cause") or "").split(";") if c]
            judged = judged_alarm(alarms[sel], f["failure"] - ranking_lead)
            if judged["start"] != first["start"]:
                row["rootcause_alarm_start"] = judged["start"]
            ranked, _, ranked_at = judged_ranking(judged, f["failure"] - ranking_lead)
            raised = judged_ranking(first, first["start"])[1]
            row["alarm_start"], row["ranked_channels"] = first["start"], ranked[:5]
            if ranked_at is not None:
                row["rootcause_ranked_at"] = ranked_at
            if truth and ranked:
                top1_raise.append(bool(raised) and raised[0] in truth)
                if ranked_at is not None:
                    row["rootcause_ranked_h"] = (f["failure"] - ranked_at) / pd.Timedelta("1h")
                top1.append(ranked[0] in truth)
                top3.append(any(c in truth for c in ranked[:3]))
                row["rootcause_rank"] = next((i + 1 for i, c in enumerate(ranked) if c in truth), None)
            if lead * pd.Timedelta("1h") >= planning_lead:
                planned_h += repair_h * planned_fraction
                saved += repair_h * (1 - planned_fraction)
            else:
                unplanned += repair_h
        else:
            unplanned += repair_h
        per_failure.append(row)

    false = alarms[~alarms["_used"]] if len(alarms) else alarms
    by_cause: dict[str, int] = {}
    for _, a in false.iterrows():
        hit = overlapped_nuisance(nuisances, a["machine"], a["start"])
        cause = "unexplained" if hit is None else str(hit["kind"])
        by_cause[cause] = by_cause.get(cause, 0) + 1
    months = float(((_ts(observed["end"]) - _ts(observed["start"])) / pd.Timedelta("30D")).sum())
    n_fail, n_alarm = len(fails), len(alarms)
    true_alarms = int(alarms["_used"].sum()) if n_alarm else 0
    return EventMetrics(
        failures=n_fail,
        caught=len(leads),
        caught_early=early,
        recall=len(leads) / n_fail if n_fail else float("nan"),
        recall_24h=sum(lead >= 24 for lead in leads) / n_fail if n_fail else float("nan"),
        recall_72h=sum(lead >= 72 for lead in leads) / n_fail if n_fail else float("nan"),
        alarms=n_alarm,
        true_alarms=true_alarms,
        precision=true_alarms / n_alarm if n_alarm else float("nan"),
        false_alarms=len(false),
        machine_months=months,
        false_alarms_per_machine_month=len(false) / months if months else float("nan"),
        false_alarms_by_cause=by_cause,
        median_lead_h=float(np.median(leads)) if leads else None,
        rootcause_top1=float(np.mean(top1)) if top1 else None,
        rootcause_top3=float(np.mean(top3)) if top3 else None,
        rootcause_top1_at_raise=float(np.mean(top1_raise)) if top1_raise else None,
        unplanned_downtime_h=unplanned,
        downtime_turned_planned_h=planned_h,
        downtime_saved_h=saved,
        per_failure=per_failure,
        recall_72h_after_onset=sum(lead >= 72 for lead in onset_leads) / n_onsets if n_onsets else None,
        median_lead_after_onset_h=float(np.median(onset_leads)) if onset_leads else None,
        alarm_before_onset=before_onset,
    )


def judged_alarm(alarms: pd.DataFrame, cut: pd.Timestamp) -> pd.Series:
    """Of the alarms in effect for one failure, the one whose root cause is judged.

    The one the plant was looking at at ``cut`` (72 h before the failure): the
    latest started by then; the first, if none had started by then. An alarm
    raised before the fault began and cleared (noise, or a sensor fault) is
    not judged in place of the fault's own alarm.
    """
    ordered = alarms.sort_values("start")
    started = ordered[_ts(ordered["start"]) <= cut]
    return started.iloc[-1] if len(started) else ordered.iloc[0]


def judged_ranking(alarm: pd.Series, cut: pd.Timestamp) -> tuple[list[str], list[str], pd.Timestamp | None]:
    """(channels judged, channels it was raised with, time of the judged ranking or None) of an alarm.

    The judged ranking is the latest made at or before ``max(start, cut)``.
    """
    rankings = alarm.get("rankings")
    if not isinstance(rankings, (list, tuple)) or not rankings:
        ranked = _channels(alarm.get("channels"))
        return ranked, ranked, None
    at = max(_ts(pd.Series([alarm["start"]])).iloc[0], cut)
    times = _ts(pd.Series([t for t, _ in rankings]))
    chosen = [i for i, t in enumerate(times) if t <= at]
    i = chosen[-1] if chosen else 0
    return _channels(rankings[i][1]), _channels(rankings[0][1]), times.iloc[i]


def _channels(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [c for c in value.split(";") if c]
    return list(value)


def lead_ceiling(per_failure: list[dict[str, Any]], scored_from: Any,
                 lead: pd.Timedelta = RANKING_LEAD) -> tuple[list[dict[str, Any]], int, int]:
    """(too soon, possible, caught): the failures with an onset that came less than ``lead`` after the later
    of their fault's onset and ``scored_from`` (each row with its ``hours``), how many others there were, and
    how many of those were caught at least ``lead`` ahead.

    The simulator's severity starts from zero at onset, so failure − max(onset, scoring start) bounds any lead.
    Failures without an onset are left out of all three.
    """
    start = pd.Timestamp(scored_from)
    short: list[dict[str, Any]] = []
    possible = caught = 0
    for r in per_failure:
        if not r.get("onset"):
            continue
        span = pd.Timestamp(r["failure"]) - max(pd.Timestamp(r["onset"]), start)
        if span < lead:
            short.append({**r, "hours": span / pd.Timedelta("1h")})
        else:
            possible += 1
            caught += int((r.get("lead_h") or -1) >= lead / pd.Timedelta("1h"))
    return short, possible, caught
