"""What earlier scoring runs left in the store, and writing a run's points.

:func:`read_history` gives the alarm rule the machine's recent scores and its
still open episode, so incremental runs continue episodes exactly;
:func:`write_run` writes ``pdm_score`` and replaces this model version's
``pdm_alarm`` / ``pdm_rootcause`` points that start in the scored range
(re-scoring overwrites, never duplicates; other versions' points are kept).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from pdm.detect.excursion import EXCURSION, Fitted
from pdm.detect.rootcause import rootcause_points
from pdm.detect.stages import SEVERITIES, AlarmRule
from pdm.store import Store
from pdm.store.schema import (
    ALARM,
    BASELINE,
    CLOSED_BY_WORK_ORDER,
    CONTINUED,
    FIELD_TYPES,
    NEW_REGIME,
    OUTSIDE_ENVELOPE,
    REBASELINE,
    ROOTCAUSE,
    SCORE,
    SCORED,
)

if TYPE_CHECKING:
    from pdm.detect.score import MachineScore

log = logging.getLogger(__name__)


class History(NamedTuple):
    """What an incremental run continues: earlier scores, a still open episode, earlier top channels."""

    times: np.ndarray  # ns of earlier scored windows, ascending
    scores: np.ndarray  # their scores on this version's scale
    open_at: int | None  # index (into times) where a still open episode started
    top: dict[int, str]  # alarm start ns -> top channel, of the version continued
    predecessor: str | None  # the model version whose history this run takes over (None: its own)


def read_history(store: Store, m: str, version: str, first_end: int, rule: AlarmRule, stride_ns: int,
                 threshold: float = float("nan")) -> History:
    """Earlier scores before ``first_end``, the index of a still open episode's start, top channels.

    The history is this version's own, unless another version scored the
    machine last before ``first_end`` and stopped there: a new production
    model (a retrain or a fine-tune) takes over from the previous one. Then
    the previous version's scores come back on this version's scale (their
    ratio to their threshold times ``threshold``) and its open episode
    continues, so a model switch neither closes and reopens an alarm nor
    raises it twice. A version that scores a range the other one also
    scored (a candidate compared side by side) keeps its own history.
    """
    need = rule.history(stride_ns)
    lo = first_end - 4 * need * stride_ns
    recent = store.read(SCORE, m, lo, first_end, fields=["score", "ratio"])  # every version's
    source = _history_source(store, m, version, recent, first_end, need * stride_ns)
    alarms = _mine(store.read(ALARM, m, stop=first_end), source)
    prev_top = {int(t.value): str(v) for t, v in alarms.get("top_channel", pd.Series(dtype=object)).items()}
    open_start: int | None = None
    if not alarms.empty:
        last = alarms.iloc[-1]
        end_ns = int(last["end_ns"]) if pd.notna(last.get("end_ns")) else 0
        handed = str(last.get("status", "")) == CONTINUED and str(last.get("continued_by", "")) == version
        if end_ns == 0 or end_ns >= first_end or handed:
            open_start = int(alarms.index[-1].value)
    wide = lo if open_start is None else min(lo, open_start - 4 * need * stride_ns)
    prior = _mine(recent if wide == lo else store.read(SCORE, m, wide, first_end, fields=["score", "ratio"]), source)
    t = prior.index.asi8.astype(np.int64)
    if not len(prior):
        s = np.zeros(0)
    elif source == version:
        s = prior["score"].to_numpy(float)
    else:
        s = prior["ratio"].to_numpy(float) * threshold
    open_at = None
    if open_start is not None:
        hit = np.nonzero(t == open_start)[0]
        if len(hit):
            open_at = int(hit[0])
        else:
            log.warning("%s: open alarm at %s has no stored score; its episode restarts", m,
                        pd.Timestamp(open_start, tz="UTC"))
    keep = max(0, (open_at if open_at is not None else len(t)) - need)
    if open_at is not None:
        open_at -= keep
    if source != version:
        log.info("%s: model %s continues the history of model %s%s", m, version, source,
                 "" if open_at is None else f" and its alarm open since {pd.Timestamp(open_start, tz='UTC')}")
    return History(t[keep:], s[keep:], open_at, prev_top, None if source == version else source)


def reached_times(row: Any, start_ns: int) -> dict[str, int]:
    """When a ``pdm_alarm`` point's episode reached each severity (``Alarm.reached``; ns): watch at its start,
    warning and critical from ``warning_ns`` / ``critical_ns`` (0: never reached). A point written before those
    fields reached every level up to its severity at its start, as far as anyone can tell."""
    got = {"watch": int(start_ns)}
    sev = str(row.get("severity") or "")
    for level in SEVERITIES[1:]:
        v = row.get(f"{level}_ns")
        if v is not None and pd.notna(v):
            if int(v) > 0:
                got[level] = int(v)
        elif sev in SEVERITIES and SEVERITIES.index(sev) >= SEVERITIES.index(level):
            got[level] = int(start_ns)
    return got


def without_handed_over(alarms: pd.DataFrame, start: str = "start") -> pd.DataFrame:
    """Alarm rows (a column ``start``, ``machine``, ``status``) less those a newer model continues.

    A continued episode then shows once, under the version that holds it now;
    a handed-over row whose successor is not among ``alarms`` stays.
    """
    if alarms.empty or "status" not in alarms:
        return alarms
    handed = alarms["status"].astype(str) == CONTINUED
    if not handed.any():
        return alarms
    key = alarms["machine"].astype(str) + "@" + alarms[start].astype(str)
    live = set(key[~handed])
    return alarms[~(handed & key.isin(live))]


def _history_source(store: Store, m: str, version: str, before: pd.DataFrame, first_end: int, ahead_ns: int) -> str:
    """The version whose history a run of ``version`` from ``first_end`` continues (see :func:`read_history`).

    ``before``: the machine's scores of every version shortly before ``first_end``.
    """
    if before.empty or "model_version" not in before:
        return version
    at_last = set(before.loc[before.index == before.index.max(), "model_version"].astype(str))
    if version in at_last:
        return version
    other = sorted(at_last)[-1]
    after = store.read(SCORE, m, first_end, first_end + max(ahead_ns, 1), fields=["score"])
    if not after.empty and (after.get("model_version") == other).any():
        return version  # the other version goes on scoring: a side-by-side comparison, not a successor
    return other


def hand_over(store: Store, m: str, predecessor: str, start_ns: int, version: str) -> int:
    """Mark ``predecessor``'s alarm starting at ``start_ns`` as continued by ``version`` (idempotent).

    Its point stays (the alarm history keeps which model raised it) but reads
    as closed at its last window, with ``status`` "continued" and
    ``continued_by``; readers show the episode once, under its successor.
    """
    old = store.read(ALARM, m, start_ns, start_ns + 1)
    old = _mine(old, predecessor)
    if old.empty:
        return 0
    row = old.iloc[-1]
    last_ns = int(row["last_ns"]) if pd.notna(row.get("last_ns")) else start_ns
    end_ns = int(row["end_ns"]) if pd.notna(row.get("end_ns")) and int(row["end_ns"]) > 0 else last_ns
    types = FIELD_TYPES[ALARM]  # a column with gaps reads back as float: write each field with its type
    fields = {k: (int(v) if types.get(k) == "integer" else v) for k, v in row.items()
              if k not in ("machine", "model_version") and pd.notna(v)}
    fields.update(status=CONTINUED, continued_by=version, end_ns=end_ns)
    return store.write([{"measurement": ALARM, "tags": {"machine": m, "model_version": predecessor},
                         "time": start_ns, "fields": fields}]).written


def _floats_json(values: Any) -> str:
    """Per-channel floats as a JSON list (null where not finite), as pdm_baseline keeps them."""
    import json

    return json.dumps([float(v) if np.isfinite(v) else None for v in values])


def _json_floats(text: Any) -> list[float]:
    """:func:`_floats_json`'s list back (NaN for null); ValueError/TypeError when unreadable."""
    import json

    return [float("nan") if v is None else float(v) for v in json.loads(str(text))]


def read_baselines(store: Store, m: str, version: str, lo: int, hi: int) -> dict[int, dict[str, Any]]:
    """Finished new baselines of ``m`` under model ``version`` for work orders in ``[lo, hi)``, by work order ns."""
    out: dict[int, dict[str, Any]] = {}
    mine = _mine(store.read(BASELINE, m, lo, hi), version)
    if "kind" in mine:  # excursions' baselines (pdm.detect.excursion) have a kind; a work order's has none
        mine = mine[mine["kind"].isna() | (mine["kind"].astype(str) == "")]
    for t, row in mine.iterrows():
        try:
            levels = _json_floats(row["levels_json"])
        except (ValueError, TypeError):
            log.warning("%s: unreadable pdm_baseline point at %s; its windows are scored again", m, t)
            continue
        out[int(pd.Timestamp(t).value)] = {"levels": levels, "taken": bool(row["taken"]),
                                           "windows": int(row["windows"]), "last_ns": int(row["last_ns"])}
    return out


def write_baselines(store: Store, m: str, version: str, baselines: list[dict[str, Any]]) -> int:
    """Write finished baselines (dicts with time, levels, taken, windows, last_ns); the same key overwrites."""
    points = [{"measurement": BASELINE, "tags": {"machine": m, "model_version": version}, "time": int(b["time"]),
               "fields": {"levels_json": _floats_json(b["levels"]),
                          "taken": bool(b["taken"]), "windows": int(b["windows"]), "last_ns": int(b["last_ns"])}}
              for b in baselines]
    return store.write(points).written if points else 0


def read_excursion_baseline(store: Store, m: str, version: str, start: int) -> Fitted | None:
    """The finished baseline (:class:`pdm.detect.excursion.Fitted`) of ``m``'s excursion outside the envelope
    that began at ``start`` (ns) under model ``version`` (:mod:`pdm.detect.excursion`), or None. Its channel
    levels are None when it was written without them."""
    mine = _mine(store.read(BASELINE, m, start, start + 1), version)
    if "kind" not in mine:
        return None
    for t, row in mine[mine["kind"].astype(str) == EXCURSION].iterrows():
        try:
            levels = np.asarray(_json_floats(row["levels_json"]))
            spread = np.asarray(_json_floats(row["spread_json"]))
            values = [np.asarray(_json_floats(row[k])) if isinstance(row.get(k), str) else None
                      for k in ("value_levels_json", "value_spread_json")]
        except (ValueError, TypeError, KeyError):
            log.warning("%s: unreadable excursion baseline at %s; its windows are scored again", m, t)
            return None
        return Fitted(levels, spread, *values)
    return None


def write_excursion_baselines(store: Store, m: str, version: str, baselines: list[dict[str, Any]]) -> int:
    """Write excursions' finished baselines (dicts with time, levels, spread, windows, last_ns, and optionally
    value_levels, value_spread) to pdm_baseline, tagged kind=excursion; the same key overwrites."""
    points = [{"measurement": BASELINE, "tags": {"machine": m, "model_version": version, "kind": EXCURSION},
               "time": int(b["time"]),
               "fields": {"levels_json": _floats_json(b["levels"]), "spread_json": _floats_json(b["spread"]), "taken": True,
                          "windows": int(b["windows"]), "last_ns": int(b["last_ns"]),
                          **{f"{k}_json": _floats_json(b[k]) for k in ("value_levels", "value_spread") if k in b}}}
              for b in baselines]
    return store.write(points).written if points else 0


#: How far back (at most) :func:`ongoing_excursion` looks for the start of an excursion outside the envelope
#: (the machine's pdm_score states, read in growing spans from a week).
EXCURSION_LOOKBACK = pd.Timedelta("448D")


def ongoing_excursion(store: Store, m: str, version: str, first_end: int) -> tuple[int | None, np.ndarray]:
    """(start ns, the ends of its windows not scored so far) of the excursion outside the envelope that
    machine ``m`` was in just before ``first_end`` under model ``version`` (None: none), from its pdm_score
    states: the outside windows since the last window scored inside or re-baselined."""
    span = pd.Timedelta("7D")
    while True:
        got = _mine(store.read(SCORE, m, first_end - span.value, first_end, fields=["state"]), version)
        states = got["state"].astype(str).to_numpy() if "state" in got else np.zeros(0, str)
        bound = np.flatnonzero(np.isin(states, [SCORED, REBASELINE]))
        if len(bound) or span >= EXCURSION_LOOKBACK:
            break
        span = span * 4
    after = got.iloc[int(bound[-1]) + 1:] if len(bound) else got
    st = states[len(states) - len(after):]
    outside = np.isin(st, [OUTSIDE_ENVELOPE, NEW_REGIME])
    if not outside.any():
        return None, np.zeros(0, np.int64)
    t = after.index.asi8.astype(np.int64)
    return int(t[outside][0]), t[st == OUTSIDE_ENVELOPE]


def _mine(frame: pd.DataFrame, version: str) -> pd.DataFrame:
    if frame.empty or "model_version" not in frame:
        return frame.iloc[0:0]
    return frame[frame["model_version"] == version]


def _alarm_points(res: MachineScore, version: str) -> list[dict[str, Any]]:
    last_ns = int(res.scores.index[-1].value)
    out = []
    for a in res.alarms:
        out.append({"measurement": ALARM, "tags": {"machine": res.machine, "model_version": version},
                    "time": int(a.start), "fields": {
                        "severity": a.severity, "status": "open" if a.end is None else CLOSED_BY_WORK_ORDER if a.by_work_order else "closed",
                        "end_ns": int(a.end or 0), "last_ns": int(a.end if a.end is not None else last_ns),
                        "peak_ratio": float(a.peak_ratio),
                        "warning_ns": int(a.reached.get("warning", 0)), "critical_ns": int(a.reached.get("critical", 0)),
                        "ttf_hours": float(a.ttf_hours) if a.ttf_hours is not None else -1.0,
                        "top_channel": res.top_channels.get(int(a.start), "")}})
    return out


def write_run(store: Store, res: MachineScore, version: str, lo: int, hi: int) -> int:
    frame = res.scores.copy()
    frame["machine"], frame["model_version"] = res.machine, version
    fields = ["score", "threshold", "ratio", *(c for c in ("state", "ttf_hours") if c in frame)]
    n = store.write(frame, SCORE, ["machine", "model_version"], fields).written
    # Episodes may shift when a range is re-scored: drop this version's alarms and root causes that
    # start in the range (keeping other versions' points), then write the current ones.
    points = _alarm_points(res, version)
    for rc in res.rankings:
        points += rootcause_points(rc, res.machine, version)
    for meas in (ALARM, ROOTCAUSE):
        old = store.read(meas, res.machine, lo, hi)
        if old.empty or _overwritten(old, [p for p in points if p["measurement"] == meas]):
            continue
        others = old[old["model_version"] != version] if "model_version" in old else old
        store.delete(meas, lo, hi, res.machine)
        if len(others):
            store.write(_frame_points(others, meas))
    if points:
        n += store.write(points).written
    return n


def _overwritten(old: pd.DataFrame, points: list[dict[str, Any]]) -> bool:
    """True when every stored point of ``old`` has the key (time and tags) of one of ``points``.

    Writing the points then replaces them all, and the range need not be
    deleted first: a re-run of the same range writes the same keys. (Deleting
    anyway is not only slower: InfluxDB 1.6 was seen to drop another
    machine's points of the same measurement, written after an earlier
    delete in the range, on such a delete.)
    """
    tags = [t for t in old.attrs.get("tags", ()) if t in old]
    if not tags:
        return False
    new = {(int(pd.Timestamp(p["time"]).value), *(str(p["tags"].get(t, "")) for t in tags)) for p in points}
    times = old.index.asi8
    cols = [old[t].fillna("").astype(str).to_numpy() for t in tags]
    return all((int(t), *(c[i] for c in cols)) in new for i, t in enumerate(times))


def _frame_points(frame: pd.DataFrame, measurement: str) -> list[dict[str, Any]]:
    tags = list(frame.attrs.get("tags", ()))
    fields = [c for c in frame.columns if c not in tags and c != "measurement"]
    out = []
    for t, row in frame.iterrows():
        out.append({"measurement": measurement, "time": int(pd.Timestamp(t).value),
                    "tags": {k: row[k] for k in tags if isinstance(row[k], str) and row[k]},
                    "fields": {k: (int(row[k]) if isinstance(row[k], (np.integer,)) else row[k])
                               for k in fields if pd.notna(row[k])}})
    return out
