"""``pdmctl evaluate``: what scoring wrote to the store, measured against failures.

Reads the alarms (``pdm_alarm``) and their ranked channels (``pdm_rootcause``
ranks ``c01``, ``c02`` …) of one model version, the period each machine was
scored (``pdm_score``), and the failures (a failure-log file, else the store's
``pdm_truth``), and returns the event metrics of :mod:`pdm.evaluate.events`.

Where every failure has a known onset (the simulator's truth does; a
failure log may), each scored window also has a label (degrading or not), and
point-wise precision / recall / F1, false-alarm rate (FAR) and missed-alarm
rate (MAR) are given, with the point-adjusted F1 beside them (never alone:
point adjustment credits a whole degradation to one alarming window).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.detect.persist import reached_times
from pdm.detect.stages import SEVERITIES
from pdm.evaluate.events import HORIZON, EventMetrics, catching, event_metrics
from pdm.evaluate.failures import FAILURE_COLUMNS, read_failure_log, truth_from_store
from pdm.evaluate.severity import FALSE_CALL_H, notify_costs, notify_line, severity_evidence
from pdm.evaluate.ttf import ttf_evidence
from pdm.store import Store
from pdm.store.schema import ALARM, CONTINUED, NEW_REGIME, OUTSIDE_ENVELOPE, ROOTCAUSE, SCORE

log = logging.getLogger(__name__)

ALL = "all"


class EvaluationError(ValueError):
    """Nothing to evaluate (no scores for the version asked, …), with the reason."""


@dataclass
class Evaluation:
    """Event metrics plus what they were computed on."""

    events: EventMetrics
    pointwise: dict[str, Any] | None
    model_versions: list[str]
    machines: list[str]
    start: pd.Timestamp
    stop: pd.Timestamp
    failures_source: str
    failures_outside: int = 0
    notes: list[str] = field(default_factory=list)
    #: What the open alarms showed as time to failure, judged (pdm.evaluate.ttf); None for scores written before
    #: pdm_score carried it.
    ttf: dict[str, Any] | None = None
    #: The same for what the dashboard shows: the time left after past alarms as old (pdm.detect.leads), each
    #: window read from the failures before it only.
    ttf_history: dict[str, Any] | None = None
    #: What the metrics were computed from (for reports; not serialised).
    scores: pd.DataFrame | None = field(default=None, repr=False)
    alarms: pd.DataFrame | None = field(default=None, repr=False)
    failures: pd.DataFrame | None = field(default=None, repr=False)
    nuisances: pd.DataFrame | None = field(default=None, repr=False)
    #: Each severity level's episodes judged from when they reached it (pdm.evaluate.severity).
    severity: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        ev = self.events.to_dict()
        ev["per_failure"] = [{k: _plain(v) for k, v in row.items()} for row in ev["per_failure"]]
        return {
            "model_versions": self.model_versions, "machines": self.machines,
            "start": str(self.start), "stop": str(self.stop), "failures_source": self.failures_source,
            "failures_outside_scored_period": self.failures_outside,
            "events": {k: _plain(v) for k, v in ev.items()}, "pointwise": self.pointwise, "notes": self.notes,
            "time_to_failure": None if self.ttf is None else {k: v for k, v in self.ttf.items() if k != "rows"},
            "time_to_failure_from_history": None if self.ttf_history is None
            else {k: v for k, v in self.ttf_history.items() if k != "rows"},
            "severity": self.severity,
        }


def _plain(v: Any) -> Any:
    if v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _versions(arg: str | Sequence[str] | None) -> list[str] | None:
    """None = latest; [] = all; else the list asked."""
    if arg is None:
        return None
    items = [v.strip() for part in ([arg] if isinstance(arg, str) else arg) for v in str(part).split(",") if v.strip()]
    return [] if ALL in items else items


def read_scores(store: Store, model_version: str | Sequence[str] | None = None, machines: Sequence[str] | None = None,
                start: Any = None, stop: Any = None) -> tuple[pd.DataFrame, list[str]]:
    """Scored windows (time = window end; machine, model_version, score, threshold, ratio) and the versions used.

    ``model_version``: None = the version whose scores reach furthest (the
    one scoring now), ``"all"`` = every version, else one or a
    comma-separated list.
    """
    scores = store.read(SCORE, list(machines) if machines else None, start, stop)
    if scores.empty:
        raise EvaluationError("the store holds no scores (pdm_score) for the machines and period asked; run pdmctl score first")
    known = sorted(scores["model_version"].unique())
    asked = _versions(model_version)
    if asked is None:
        # The version that scored last (version ids of full and fine-tuned models sort differently).
        last = pd.Series(scores.index, index=scores.index).groupby(scores["model_version"].to_numpy()).max()
        use = [max(last.index, key=lambda v: (last[v], v))]
    elif not asked:
        use = known
    else:
        unknown = [v for v in asked if v not in known]
        if unknown:
            raise EvaluationError(f"no scores of model version(s) {', '.join(unknown)}; stored: {', '.join(known)}")
        use = asked
    return scores[scores["model_version"].isin(use)], use


def read_alarms(store: Store, versions: Sequence[str], machines: Sequence[str] | None = None,
                start: Any = None, stop: Any = None) -> pd.DataFrame:
    """Alarm episodes: machine, model_version, start, end, peak_ratio, severity, channels, rankings, reached.

    ``rankings``: the root cause's rankings of the episode, (time, channels
    ranked strongest first) in time order; ``channels`` the latest.
    """
    cols = ["machine", "model_version", "start", "end", "peak_ratio", "severity", "status", "channels",
            "rankings", "reached"]
    alarms = store.read(ALARM, list(machines) if machines else None, start, stop)
    if alarms.empty:
        return pd.DataFrame(columns=cols)
    alarms = alarms[alarms["model_version"].isin(list(versions))]
    if alarms.empty:
        return pd.DataFrame(columns=cols)
    end_ns = alarms["end_ns"].fillna(0).astype("int64").to_numpy()
    last_ns = alarms["last_ns"].fillna(0).astype("int64").to_numpy() if "last_ns" in alarms else np.zeros(len(alarms), "int64")
    start_ns = alarms.index.asi8
    stop_ns = np.where(end_ns > 0, end_ns, np.maximum(last_ns, start_ns))
    out = pd.DataFrame({
        "machine": alarms["machine"].to_numpy(), "model_version": alarms["model_version"].to_numpy(),
        "start": alarms.index, "end": pd.to_datetime(stop_ns, unit="ns", utc=True),
        "peak_ratio": alarms.get("peak_ratio", pd.Series(np.nan, index=alarms.index)).to_numpy(),
        "severity": alarms.get("severity", pd.Series("", index=alarms.index)).to_numpy(),
        "status": alarms.get("status", pd.Series("", index=alarms.index)).to_numpy(),
    })
    out["reached"] = [reached_times(row, t) for t, row in zip(start_ns, alarms.to_dict("records"), strict=True)]
    ranks = read_rootcauses(store, versions, machines, start, stop)
    rankings: dict[tuple[str, str, str], list[tuple[pd.Timestamp, list[str]]]] = {}
    if not ranks.empty:
        for (m, v, a, t), g in ranks.groupby(["machine", "model_version", "alarm", "ranked"], sort=True):
            rankings.setdefault((m, v, a), []).append((t, list(g.sort_values("rank")["channel"])))
    top = alarms.get("top_channel", pd.Series("", index=alarms.index)).fillna("").to_numpy()
    out["rankings"] = [rankings.get((m, v, str(s)), [])
                       for m, v, s in zip(out["machine"], out["model_version"], start_ns, strict=True)]
    out["channels"] = [r[-1][1] if r else ([t] if t else []) for r, t in zip(out["rankings"], top, strict=True)]
    return _one_per_episode(out).sort_values(["start", "machine"], kind="stable").reset_index(drop=True)


def _one_per_episode(out: pd.DataFrame) -> pd.DataFrame:
    """An episode that a newer model continued (same machine and start) as one row.

    The row is the successor's (status "continued" marks the others), lasting
    to the latest end, with the highest peak and severity, and the rankings of
    its root cause by every version, in time order (the latest as ``channels``).
    """
    key = out["machine"].astype(str) + "@" + out["start"].astype(str)
    if not key.duplicated().any():
        return out
    rows: list[pd.Series] = []
    for _, g in out.groupby(key, sort=False):
        if not (g["status"].astype(str) == CONTINUED).any():  # versions scored side by side: their own alarms
            rows.extend(r for _, r in g.iterrows())
            continue
        live = g[g["status"].astype(str) != CONTINUED]
        row = (live if len(live) else g).iloc[-1].copy()
        row["end"] = g["end"].max()
        row["peak_ratio"] = g["peak_ratio"].max()
        row["severity"] = max(g["severity"].astype(str), key=lambda v: SEVERITIES.index(v) if v in SEVERITIES else -1)
        row["reached"] = {lv: min(r[lv] for r in g["reached"] if lv in r) for lv in SEVERITIES
                          if any(lv in r for r in g["reached"])}
        merged = sorted((r for rs in g["rankings"] for r in rs), key=lambda r: r[0])
        row["rankings"] = merged
        row["channels"] = merged[-1][1] if merged else max(g["channels"], key=len)
        rows.append(row)
    return pd.DataFrame(rows, columns=out.columns)


def read_rootcauses(store: Store, versions: Sequence[str], machines: Sequence[str] | None = None,
                    start: Any = None, stop: Any = None) -> pd.DataFrame:
    """Channel rows of ``pdm_rootcause`` (ranks c01 …): machine, model_version, alarm, ranked, rank, channel, contribution,
    zscore, attention_change, follows (the band a channel follows in the ranking; empty on points written before it).

    ``alarm`` is the alarm's start (ns, as text), ``ranked`` the time of the
    ranking (an alarm is ranked when raised and again as its score grows).
    """
    rc = store.read(ROOTCAUSE, list(machines) if machines else None, start, stop)
    cols = ["machine", "model_version", "alarm", "ranked", "rank", "channel", "contribution", "zscore",
            "attention_change", "follows"]
    if rc.empty:
        return pd.DataFrame(columns=cols)
    rc = rc[rc["model_version"].isin(list(versions)) & rc["rank"].astype(str).str.match(r"^c\d+$")]
    rc = rc.rename_axis("ranked").reset_index()
    for c in cols:
        if c not in rc:
            rc[c] = np.nan
    return rc[cols]


def observed_periods(scores: pd.DataFrame) -> pd.DataFrame:
    """machine, start, end: first and last scored window of each machine."""
    t = pd.Series(scores.index, index=scores.index)
    g = t.groupby(scores["machine"].to_numpy())
    return pd.DataFrame({"machine": g.min().index, "start": g.min().to_numpy(), "end": g.max().to_numpy()})


def fault_windows(scores: pd.DataFrame, failure: Any) -> dict[str, int]:
    """Windows of the failure's machine from its fault's onset to the failure, and how many of them
    were not scored because the machine ran outside the model's operating envelope (pdm_score state
    ``outside_envelope``): a failure missed there was not missed by the model but never shown to it; and how
    many, outside it, were scored against their excursion's own baseline (``new_regime``).

    Empty when the failure has no onset or the scores have no state (written before it existed).
    """
    onset = failure["onset"] if "onset" in failure else None
    if onset is None or pd.isna(onset) or "state" not in scores:
        return {}
    t = scores.index.asi8
    mine = (scores["machine"].to_numpy() == failure["machine"]) & (t >= onset.value) & (t < failure["failure"].value)
    state = scores["state"].to_numpy()[mine]
    return {"fault_windows": int(mine.sum()), "fault_windows_outside_envelope": int((state == OUTSIDE_ENVELOPE).sum()),
            "fault_windows_new_regime": int((state == NEW_REGIME).sum())}


def window_labels(scores: pd.DataFrame, failures: pd.DataFrame) -> np.ndarray:
    """Per scored window: 1 degrading (onset ≤ t < failure), 0 healthy, -1 not judged (failure → repair end).

    Each positive window also gets its failure's number in the returned
    second column (for point adjustment); -1 where none.
    """
    t = scores.index.asi8
    mach = scores["machine"].to_numpy()
    label = np.zeros(len(t), dtype=np.int8)
    segment = np.full(len(t), -1, dtype=np.int64)
    for i, f in enumerate(failures.itertuples(index=False)):
        on_m = mach == f.machine
        degrading = on_m & (t >= f.onset.value) & (t < f.failure.value)
        label[degrading] = 1
        segment[degrading] = i
        end = f.repair_end if pd.notna(f.repair_end) else f.failure
        label[on_m & (t >= f.failure.value) & (t <= end.value)] = -1
    return np.stack([label, segment], axis=1)


def pointwise_metrics(scores: pd.DataFrame, alarms: pd.DataFrame, failures: pd.DataFrame) -> dict[str, Any]:
    """Point-wise and point-adjusted metrics of alarm state per scored window.

    A window is predicted degrading when it lies inside an alarm episode of
    its machine (start ≤ t ≤ end). Windows between failure and repair end
    are not judged.
    """
    lab = window_labels(scores, failures)
    label, segment = lab[:, 0], lab[:, 1]
    t = scores.index.asi8
    mach = scores["machine"].to_numpy()
    pred = np.zeros(len(t), dtype=bool)
    for a in alarms.itertuples(index=False):
        pred |= (mach == a.machine) & (t >= a.start.value) & (t <= a.end.value)
    judged = label >= 0
    y, p, seg = label[judged] == 1, pred[judged], segment[judged]

    def rates(pp: np.ndarray) -> dict[str, float | None]:
        tp, fp = int((pp & y).sum()), int((pp & ~y).sum())
        fn, tn = int((~pp & y).sum()), int((~pp & ~y).sum())
        prec = tp / (tp + fp) if tp + fp else None
        rec = tp / (tp + fn) if tp + fn else None
        f1 = 2 * prec * rec / (prec + rec) if prec and rec else (0.0 if prec is not None and rec is not None else None)
        return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": prec, "recall": rec, "f1": f1,
                "far": fp / (fp + tn) if fp + tn else None, "mar": fn / (fn + tp) if fn + tp else None}

    point = rates(p)
    adjusted = p.copy()
    for s in np.unique(seg[y]):
        inside = seg == s
        if (p & inside).any():
            adjusted |= inside
    pa = rates(adjusted)
    return {"windows": int(judged.sum()), "degrading_windows": int(y.sum()),
            "point": point, "point_adjusted": pa,
            "basis": "alarm state per scored window; degrading = fault onset <= window end < failure"}


def ttf_tracks(scores: pd.DataFrame, alarms: pd.DataFrame) -> list[tuple[str, np.ndarray, np.ndarray]] | None:
    """Per machine, its windows' times (ns) and what an open alarm showed there as time to failure (hours; NaN:
    no alarm open, or the point predates the field; inf: open without a rising trend), from ``pdm_score``'s
    ``ttf_hours`` and the episodes of ``alarms``; where two versions scored a window, the later-written
    row's. None when no score carries the field."""
    from pdm.detect.leads import episode_starts

    if "ttf_hours" not in scores or not scores["ttf_hours"].notna().any():
        return None
    out = []
    for m, g in scores.groupby("machine", sort=True):
        g = g.sort_index(kind="stable")
        g = g[~g.index.duplicated(keep="last")]
        t = g.index.asi8
        shown = pd.to_numeric(g["ttf_hours"], errors="coerce").to_numpy(float)
        mine = alarms[alarms["machine"] == m] if len(alarms) else alarms
        live = ~np.isnan(episode_starts(t, mine["start"], mine["end"]))  # the window that clears one showed it
        track = np.where(live & np.isfinite(shown), np.where(shown >= 0, shown, np.inf), np.nan)
        out.append((str(m), t, track))
    return out


def history_tracks(scores: pd.DataFrame, alarms: pd.DataFrame, failures: pd.DataFrame) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per machine, its windows' times (ns) and the time left that the plant's history showed at each window with
    an open alarm (:func:`pdm.detect.leads.causal_track`, from ``failures`` before the window)."""
    from pdm.detect.leads import causal_track, episode_starts, lead_times

    leads = lead_times(alarms, failures)
    out = []
    for m, g in scores.groupby("machine", sort=True):
        t = np.unique(g.index.asi8)
        mine = alarms[alarms["machine"] == m] if len(alarms) else alarms
        out.append((str(m), t, causal_track(t, episode_starts(t, mine["start"], mine["end"]), leads)))
    return out


def load_failures(store: Store, failures: str | Path | pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """(failures, nuisances, source) from a file, a frame, or the store's ``pdm_truth``."""
    _, truth_nuisances = truth_from_store(store)
    if failures is None:
        fails, nuis = truth_from_store(store)
        if fails.empty and nuis.empty:
            raise EvaluationError("no failure log given and the store holds no ground truth (pdm_truth); "
                                  "pass --failures FILE (CSV or Parquet: time, machine, optional mode, component)")
        return fails, nuis, "pdm_truth"
    if isinstance(failures, pd.DataFrame):
        frame = failures.copy()
        for c in FAILURE_COLUMNS:
            if c not in frame:
                frame[c] = pd.NaT if c in ("onset", "repair_end") else ""
        frame["failure"] = pd.to_datetime(frame["failure"], utc=True)
        return frame[FAILURE_COLUMNS], truth_nuisances if len(truth_nuisances) else None, "frame"
    fails, nuis = read_failure_log(failures)
    if nuis is None and len(truth_nuisances):
        nuis = truth_nuisances
    return fails, nuis, str(failures)


def evaluate(store: Store, failures: str | Path | pd.DataFrame | None = None, *, start: Any = None, stop: Any = None,
             model_version: str | Sequence[str] | None = None, machines: Sequence[str] | None = None,
             horizon: pd.Timedelta = HORIZON, progress: Callable[[str], None] | None = None,
             false_call_h: float = FALSE_CALL_H, repair_h: float | None = None) -> Evaluation:
    """Event metrics (and point-wise ones where windows have labels) of the stored alarms.

    ``false_call_h`` / ``repair_h``: the costs by which the severity levels are priced as the level to notify
    from (:func:`pdm.evaluate.severity.notify_costs`; ``repair_h`` None: the failure log's median repair time).

    Failures are counted when they happen inside the period their machine was
    scored (after its first scored window, up to its last); the others are
    counted in ``failures_outside``. Alarms are read from ``horizon`` before
    ``start`` so that a failure early in the period can be caught.

    Raises
    ------
    EvaluationError, FailureLogError
    """
    say = progress or (lambda _msg: None)
    t0 = None if start is None else pd.to_datetime(start, utc=True)
    t1 = None if stop is None else pd.to_datetime(stop, utc=True)
    fails, nuis, source = load_failures(store, failures)
    say(f"failures: {len(fails)} from {source}")
    scores, versions = read_scores(store, model_version, machines, t0, t1)
    observed = observed_periods(scores)
    say(f"scores: {len(scores):,} windows of {len(observed)} machines, model version(s) {', '.join(versions)}")
    alarms = read_alarms(store, versions, list(observed["machine"]),
                         None if t0 is None else t0 - horizon, t1)
    say(f"alarms: {len(alarms)} episodes")
    period = observed.set_index("machine")
    if machines:
        fails = fails[fails["machine"].isin(list(machines))].reset_index(drop=True)
    unscored = sorted(set(fails["machine"]) - set(period.index))
    inside = np.array([m in period.index and period.at[m, "start"] < f <= period.at[m, "end"]
                       for m, f in zip(fails["machine"], fails["failure"], strict=True)], dtype=bool)
    outside = int((~inside).sum())
    counted = fails[inside].reset_index(drop=True)
    # False alarms are judged within the period; alarms before it only serve to catch early failures.
    judged_alarms = alarms if t0 is None else alarms[(alarms["start"] >= t0) | catching(alarms, counted, horizon)]
    ev = event_metrics(counted, judged_alarms.reset_index(drop=True), observed, nuis, horizon=horizon)
    for row in ev.per_failure:
        f = counted[(counted["machine"] == row["machine"]) & (counted["failure"] == row["failure"])].iloc[0]
        row["mode"], row["true_root_cause"] = f["mode"], f["root_cause"]
        row["onset"], row["repair_end"] = f["onset"], f["repair_end"]
        row.update(fault_windows(scores, f))
        if row.get("rootcause_ranked_at") is not None and "state" in scores:
            # scored inside the envelope (ranked by model errors) or in an excursion (by the change since its baseline)
            at = (scores.index == row["rootcause_ranked_at"]) & (scores["machine"].to_numpy() == row["machine"])
            if at.any():
                row["rootcause_window_state"] = str(scores["state"].to_numpy()[at][0])
    notes = []
    severity = severity_evidence(judged_alarms.reset_index(drop=True), counted, observed, nuis, horizon=horizon)
    severity["notify"] = notify_costs(severity, false_call_h=false_call_h, repair_h=repair_h)
    tracks = ttf_tracks(scores, judged_alarms)
    ttf = ttf_evidence(tracks, counted, observed, horizon=horizon) if tracks is not None else None
    from_history = ttf_evidence(history_tracks(scores, judged_alarms, fails), counted, observed, horizon=horizon) \
        if len(judged_alarms) else None
    point = None
    if len(counted) and counted["onset"].notna().all():
        point = pointwise_metrics(scores, alarms, counted)
    elif len(counted):
        notes.append("point-wise metrics left out: the failure log gives no onset for every failure, so windows have no labels")
    if outside:
        notes.append(f"{outside} failure(s) happened outside the scored period of their machine and are not counted"
                     + (f" (machines never scored: {', '.join(unscored[:10])})" if unscored else ""))
    return Evaluation(ev, point, versions, sorted(observed["machine"]),
                      t0 if t0 is not None else observed["start"].min(), t1 if t1 is not None else observed["end"].max(),
                      source, outside, notes, ttf, from_history, scores, alarms, counted, nuis, severity)


def _fmt(v: Any, pct: bool = False, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "n/a"
    if pct:
        return f"{100 * v:.1f} %"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def metrics_rows(e: Evaluation) -> list[tuple[str, str]]:
    """(metric, value) rows of the readable table."""
    m = e.events
    rows = [
        ("failures (in scored period)", str(m.failures)),
        ("caught (alarm in effect in horizon)", str(m.caught)),
        ("  by an alarm older than the horizon", str(m.caught_early)),
        ("recall", _fmt(m.recall, True)),
        ("recall >= 24 h ahead", _fmt(m.recall_24h, True)),
        ("recall >= 72 h ahead", _fmt(m.recall_72h, True)),
        ("median lead time", "n/a" if m.median_lead_h is None else f"{m.median_lead_h:.1f} h"),
        *([("recall >= 72 h, alarm after onset", _fmt(m.recall_72h_after_onset, True)),
           ("  by an alarm older than the onset", str(m.alarm_before_onset))]
          if m.recall_72h_after_onset is not None else []),
        ("alarms", str(m.alarms)),
        ("precision (alarms before a failure)", _fmt(m.precision, True)),
        ("false alarms", str(m.false_alarms)),
        ("machine-months observed", _fmt(m.machine_months)),
        ("false alarms per machine-month", _fmt(m.false_alarms_per_machine_month)),
        ("false alarms by cause", ", ".join(f"{k} {v}" for k, v in sorted(m.false_alarms_by_cause.items())) or "none"),
        ("root cause top-1", _fmt(m.rootcause_top1, True)),
        ("root cause top-3", _fmt(m.rootcause_top3, True)),
        ("root cause top-1 as raised", _fmt(m.rootcause_top1_at_raise, True)),
        ("unplanned downtime", f"{m.unplanned_downtime_h:.1f} h"),
        ("downtime turned into planned stops", f"{m.downtime_turned_planned_h:.1f} h"),
        ("downtime saved", f"{m.downtime_saved_h:.1f} h"),
    ]
    for label, t in (("trend", e.ttf), ("history", e.ttf_history)):
        if t is None:
            continue
        w = f"{t['within_h']:g} h"
        lift = f", {t['lift']:.1f}x" if t["lift"] is not None else ""
        rows += [
            (f"time to failure <= {w} ({label})",
             f"{t['said_within_followed']} of {t['said_within']} windows followed by a failure within {w} "
             f"({_fmt(t['precision'], True)}; of every open alarm's windows: {_fmt(t['base_rate'], True)}{lift})"),
            (f"  failures told <= {w} ahead", f"{t['failures_said']} of {t['failures']} ({t['said_on_time']} within "
             f"{w}, {t['said_early']} earlier)"),
        ]
    for lv in (e.severity or {}).get("levels", [])[1:]:
        fa = lv["false_alarms_per_machine_month"]
        rows.append((f"{lv['level']}, counted from reaching it",
                     f"{lv['caught_72h']} of {lv['failures']} caught >= 72 h ahead, {lv['false_alarms']} false alarms "
                     f"({_fmt(fa)} / machine-month); {lv['near']} of {lv['alarms']} failed within "
                     f"{e.severity['near_h']:g} h"))  # type: ignore[index]
    if e.severity and e.severity.get("notify"):
        rows += notify_line(e.severity["notify"])
    if e.pointwise:
        p, pa = e.pointwise["point"], e.pointwise["point_adjusted"]
        rows += [
            ("point-wise F1 / FAR / MAR", f"{_fmt(p['f1'])} / {_fmt(p['far'], True)} / {_fmt(p['mar'], True)}"),
            ("point-adjusted F1 / FAR / MAR", f"{_fmt(pa['f1'])} / {_fmt(pa['far'], True)} / {_fmt(pa['mar'], True)}"),
            ("windows judged (degrading)", f"{e.pointwise['windows']:,} ({e.pointwise['degrading_windows']:,})"),
        ]
    return rows


def format_table(e: Evaluation) -> str:
    """The metrics as a plain-text table, with what they were computed on."""
    rows = metrics_rows(e)
    w = max(len(k) for k, _ in rows)
    head = (f"model version(s): {', '.join(e.model_versions)}\nmachines: {len(e.machines)}; "
            f"period {e.start:%Y-%m-%d %H:%M} to {e.stop:%Y-%m-%d %H:%M} UTC; failures from {e.failures_source}")
    lines = [head, "-" * (w + 24)] + [f"{k:<{w}}  {v}" for k, v in rows]
    per = [r for r in e.events.per_failure]
    if per:
        lines += ["", "per failure:"]
        for r in per:
            lead = f"lead {r['lead_h']:.1f} h" if r.get("lead_h") is not None else "missed"
            rank = f", root cause at rank {r['rootcause_rank']}" if r.get("rootcause_rank") else ""
            if r.get("rootcause_ranked_h") is not None and r.get("lead_h") is not None \
                    and r["rootcause_ranked_h"] < r["lead_h"]:
                rank += f" (ranked {r['rootcause_ranked_h']:.0f} h ahead, as the score grew)"
            if rank and r.get("rootcause_window_state") == NEW_REGIME:
                rank += ", in an excursion (by the change since its baseline)"
            lines.append(f"  {r['machine']:<12} {pd.Timestamp(r['failure']):%Y-%m-%d %H:%M}  {lead}{rank}")
    lines += [f"note: {n}" for n in e.notes]
    return "\n".join(lines)
