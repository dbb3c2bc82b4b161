"""What earlier scoring runs left in the store, and writing a run's points.

:func:`read_history` gives the alarm rule the machine's recent scores and its
still open episode, so incremental runs continue episodes exactly;
:func:`write_run` writes ``pdm_score`` and replaces this model version's
``pdm_alarm`` / ``pdm_rootcause`` points that start in the scored range
(re-scoring overwrites, never duplicates; other versions' points are kept).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pdm.detect.rootcause import rootcause_points
from pdm.detect.stages import AlarmRule
from pdm.store import Store
from pdm.store.schema import ALARM, BASELINE, ROOTCAUSE, SCORE

if TYPE_CHECKING:
    from pdm.detect.score import MachineScore

log = logging.getLogger(__name__)


def read_history(store: Store, m: str, version: str, first_end: int, rule: AlarmRule,
                 stride_ns: int) -> tuple[np.ndarray, np.ndarray, int | None, dict[int, str]]:
    """Earlier scores (times, scores) before ``first_end``, the index of a still open episode's start, top channels."""
    need = rule.history(stride_ns)
    alarms = _mine(store.read(ALARM, m, stop=first_end), version)
    prev_top = {int(t.value): str(v) for t, v in alarms.get("top_channel", pd.Series(dtype=object)).items()}
    open_start: int | None = None
    if not alarms.empty:
        last = alarms.iloc[-1]
        end_ns = int(last["end_ns"]) if pd.notna(last.get("end_ns")) else 0
        if end_ns == 0 or end_ns >= first_end:
            open_start = int(alarms.index[-1].value)
    lo = first_end - 4 * need * stride_ns
    if open_start is not None:
        lo = min(lo, open_start - 4 * need * stride_ns)
    prior = _mine(store.read(SCORE, m, lo, first_end, fields=["score"]), version)
    t = prior.index.asi8.astype(np.int64)
    s = prior["score"].to_numpy(float) if len(prior) else np.zeros(0)
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
    return t[keep:], s[keep:], open_at, prev_top


def read_baselines(store: Store, m: str, version: str, lo: int, hi: int) -> dict[int, dict[str, Any]]:
    """Finished new baselines of ``m`` under model ``version`` for work orders in ``[lo, hi)``, by work order ns."""
    import json

    out: dict[int, dict[str, Any]] = {}
    for t, row in _mine(store.read(BASELINE, m, lo, hi), version).iterrows():
        try:
            levels = [float("nan") if v is None else float(v) for v in json.loads(str(row["levels_json"]))]
        except (ValueError, TypeError):
            log.warning("%s: unreadable pdm_baseline point at %s; its windows are scored again", m, t)
            continue
        out[int(pd.Timestamp(t).value)] = {"levels": levels, "taken": bool(row["taken"]),
                                           "windows": int(row["windows"]), "last_ns": int(row["last_ns"])}
    return out


def write_baselines(store: Store, m: str, version: str, baselines: list[dict[str, Any]]) -> int:
    """Write finished baselines (dicts with time, levels, taken, windows, last_ns); the same key overwrites."""
    import json

    points = [{"measurement": BASELINE, "tags": {"machine": m, "model_version": version}, "time": int(b["time"]),
               "fields": {"levels_json": json.dumps([v if np.isfinite(v) else None for v in b["levels"]]),
                          "taken": bool(b["taken"]), "windows": int(b["windows"]), "last_ns": int(b["last_ns"])}}
              for b in baselines]
    return store.write(points).written if points else 0


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
                        "severity": a.severity, "status": "open" if a.end is None else "closed",
                        "end_ns": int(a.end or 0), "last_ns": int(a.end if a.end is not None else last_ns),
                        "peak_ratio": float(a.peak_ratio),
                        "ttf_hours": float(a.ttf_hours) if a.ttf_hours is not None else -1.0,
                        "top_channel": res.top_channels.get(int(a.start), "")}})
    return out


def write_run(store: Store, res: MachineScore, version: str, lo: int, hi: int) -> int:
    frame = res.scores.copy()
    frame["machine"], frame["model_version"] = res.machine, version
    n = store.write(frame, SCORE, ["machine", "model_version"], ["score", "threshold", "ratio"]).written
    # Episodes may shift when a range is re-scored: drop this version's alarms and root causes that
    # start in the range (keeping other versions' points), then write the current ones.
    for meas in (ALARM, ROOTCAUSE):
        old = store.read(meas, res.machine, lo, hi)
        if old.empty:
            continue
        others = old[old["model_version"] != version] if "model_version" in old else old
        store.delete(meas, lo, hi, res.machine)
        if len(others):
            store.write(_frame_points(others, meas))
    points = _alarm_points(res, version)
    for rc in res.rootcauses.values():
        points += rootcause_points(rc, res.machine, version)
    if points:
        n += store.write(points).written
    return n


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
