"""``pdmctl import events`` and ``import failures``: a plant's logs into the store.

- Event log (time, machine, type, optional text / severity / operator) →
  ``operator_log``. Types are mapped onto the model's event channels
  (inspection, observation, lubrication, work_order, handover) where the
  name says so (``--type-map RAW=TYPE`` for the rest); other types are kept
  as given: stored and shown, but not model inputs.
- Failure log (time of failure, machine, optional mode / component / onset /
  repair end / text; the columns ``pdm.evaluate.failures`` reads too) → ``pdm_truth`` rows like the simulator's ground truth
  (kind = mode or "failure", is_failure true). Each failure's degradation
  period (``degradation`` before it) through its repair end is kept out of
  training; evaluation measures lead time against the failure time.

As with sensors, the whole file is validated before anything is written.
"""

from __future__ import annotations

import re
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pdm.features.grid import EVENT_TYPES
from pdm.io.importer import ImportResult, Progress
from pdm.io.tables import (
    NAT,
    ImportFileError,
    Problems,
    TimeSpec,
    columns_of,
    iter_chunks,
    looks_numeric,
    parse_times,
)
from pdm.store import Store
from pdm.store.schema import OPERATOR_LOG

TRUTH = "pdm_truth"
#: Words in a plant's event types → the model's event channels.
SYNONYMS = {
    "inspection": ("inspection", "inspect", "check", "checked", "patrol", "round"),
    "observation": ("observation", "observe", "note", "remark", "report", "alarm", "complaint", "noise"),
    "lubrication": ("lubrication", "lubricate", "lube", "grease", "greasing", "oil", "oiling"),
    "work_order": ("work_order", "workorder", "wo", "repair", "maintenance", "service", "replace", "replacement"),
    "handover": ("handover", "shift", "shift_handover", "shift_change"),
}
_LOOKUP = {w: t for t, words in SYNONYMS.items() for w in words}


def event_type(raw: str, type_map: dict[str, str]) -> str:
    """A plant's event type as one of EVENT_TYPES where it clearly is one, else as given."""
    if raw in type_map:
        return type_map[raw]
    norm = re.sub(r"[^a-z0-9]+", "_", raw.strip().lower()).strip("_")
    if norm in _LOOKUP:
        return _LOOKUP[norm]
    hits = {_LOOKUP[w] for w in norm.split("_") if w in _LOOKUP}  # "Inspection round", "Noise report"
    return hits.pop() if len(hits) == 1 else raw.strip()


@dataclass
class LogColumns:
    """Columns of an event or failure log; optional ones are used when present."""

    time: str = "time"
    machine: str = "machine"
    type: str = "type"  # events only
    text: str | None = None  # default: "text" when present
    severity: str | None = None  # events: default "severity" when present
    operator: str | None = None  # events: default "operator" when present
    mode: str | None = None  # failures: default "mode" when present
    component: str | None = None  # failures: default "component" when present
    end: str | None = None  # failures: repair end, default "end" when present
    onset: str | None = None  # failures: degradation start, default "onset" when present


_OPTIONS = {"time": "--time-col", "machine": "--machine-col", "type": "--type-col", "text": "--text-col",
            "severity": "--severity-col", "operator": "--operator-col", "mode": "--mode-col",
            "component": "--component-col", "end": "--end-col",
            "onset": "--onset-col"}


def _read(path: str | Path, cols: LogColumns, required: Sequence[str], optional: Sequence[str],
          spec: TimeSpec, problems: Problems, chunk_rows: int = 200_000) -> tuple[pd.DataFrame, dict[str, str]]:
    """The whole log as a frame with row numbers, ``ns`` and the columns found (role → column)."""
    if spec.problems():
        raise ImportFileError(path, spec.problems())
    header = columns_of(path)
    use = {r: getattr(cols, r) for r in required}
    missing = [f"column {c!r} not in the file (the {r} column; set it with {_OPTIONS[r]}); columns are: "
               f"{', '.join(header[:20])}" for r, c in use.items() if c not in header]
    for r in optional:
        given = getattr(cols, r)
        if given is not None and given not in header:
            missing.append(f"column {given!r} not in the file (given with {_OPTIONS[r]})")
        elif given is not None or r in header:
            use[r] = given or r
    if missing:
        raise ImportFileError(path, missing)
    parts = []
    for chunk in iter_chunks(path, list(dict.fromkeys(use.values())), chunk_rows):
        f = chunk.frame
        if chunk.first_row == 1 and spec.period is None and spec.epoch_unit is None and looks_numeric(f[use["time"]]):
            raise ImportFileError(path, [f"time column {use['time']!r} holds numbers: give --period and --origin "
                                         "(steps), or --epoch-unit (seconds since 1970)"])
        rows = np.arange(chunk.first_row, chunk.first_row + len(f), dtype=np.int64)
        ns = parse_times(f[use["time"]], spec)
        gone = f[use["time"]].isna().to_numpy()
        problems.add(f"missing time in column {use['time']!r}", rows[gone])
        bad = (ns == NAT) & ~gone
        problems.add(f"unparsable time in column {use['time']!r}", rows[bad], f[use["time"]].to_numpy()[bad])
        out = pd.DataFrame({"row": rows, "ns": ns})
        for role, c in use.items():
            if role != "time":
                out[role] = f[c].to_numpy(dtype=object)
        parts.append(out)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["row", "ns", *use])
    m = frame["machine"].map(lambda v: "" if pd.isna(v) else str(v).strip())
    problems.add(f"missing machine in column {use['machine']!r}", frame["row"][m == ""].to_numpy())
    frame["machine"] = m
    return frame, use


def _text(col: pd.Series | None, n: int) -> np.ndarray:
    if col is None:
        return np.full(n, "", dtype=object)
    return col.map(lambda v: "" if pd.isna(v) else str(v).strip()).to_numpy(dtype=object)


def _dupes(frame: pd.DataFrame, keys: list[str], problems: Problems, what: str) -> None:
    dup = frame.duplicated(keys, keep="first").to_numpy()
    if dup.any():
        first = frame[frame.duplicated(keys, keep=False).to_numpy() & ~dup].drop_duplicates(keys)
        firsts = frame[keys].merge(first[[*keys, "row"]], on=keys, how="left")["row"].to_numpy()
        rows = frame["row"].to_numpy()[dup]
        problems.add(f"duplicate {what}", rows, labels=[f"rows {a} and {b}" for a, b in zip(firsts[dup], rows, strict=True)])


def import_events(store: Store, path: str | Path, columns: LogColumns | None = None, *,
                  time: TimeSpec | None = None, type_map: dict[str, str] | None = None,
                  dry_run: bool = False, progress: Progress | None = None) -> ImportResult:
    """Validate the event log, then write it to ``operator_log``. Raises ImportFileError."""
    t0 = _time.perf_counter()
    cols, spec, problems = columns or LogColumns(), time or TimeSpec(), Problems()
    frame, use = _read(path, cols, ["time", "machine", "type"], ["text", "severity", "operator"], spec, problems)
    types = frame["type"].map(lambda v: "" if pd.isna(v) else str(v))
    problems.add(f"missing event type in column {use['type']!r}", frame["row"][types.str.strip() == ""].to_numpy())
    frame["event_type"] = types.map(lambda v: event_type(v, type_map or {}))
    sev = pd.Series(0, index=frame.index, dtype="int64")
    if "severity" in use:
        raw = frame["severity"]
        num = pd.to_numeric(raw, errors="coerce")
        bad = raw.notna().to_numpy() & ~(num.notna() & (num % 1 == 0)).to_numpy()
        problems.add(f"severity in column {use['severity']!r} is not a whole number", frame["row"].to_numpy()[bad],
                     raw.to_numpy()[bad])
        sev = num.where(~bad & num.notna(), 0).astype("int64")
    frame["operator"] = _text(frame.get("operator"), len(frame))
    frame["message"] = _text(frame.get("text"), len(frame))
    _dupes(frame, ["ns", "machine", "event_type", "operator"], problems, "(time, machine, type, operator)")
    if problems:
        raise ImportFileError(path, problems.messages())
    result = _result("events", path, frame, dry_run)
    unknown = sorted(set(frame["event_type"]) - set(EVENT_TYPES))
    if unknown:
        result.notes.append(f"event types kept as given (stored, but not model inputs; map them with --type-map): "
                            f"{', '.join(unknown[:10])}")
    if not dry_run and len(frame):
        out = pd.DataFrame({"machine": frame["machine"].to_numpy(), "event_type": frame["event_type"].to_numpy(),
                            "operator": frame["operator"].to_numpy(), "message": frame["message"].to_numpy(),
                            "severity": sev.to_numpy()},
                           index=pd.DatetimeIndex(pd.to_datetime(frame["ns"].to_numpy(np.int64), unit="ns", utc=True), name="time"))
        store.write(out, OPERATOR_LOG, ["machine", "event_type", "operator"])
        (progress or (lambda s: None))(f"wrote {len(out):,} events")
    result.seconds = _time.perf_counter() - t0
    return result


def failures_as_truth(path: str | Path, columns: LogColumns | None = None, *, time: TimeSpec | None = None,
                     degradation: str = "7D", repair: str = "1D") -> pd.DataFrame:
    """A failure log as ground-truth rows (the simulator's label columns).

    Returns machine, plant, line, kind, is_failure, start (the onset column,
    else failure − ``degradation``), failure, end (the end column, else
    failure + ``repair``), root_cause, affected, detail. Raises ImportFileError.
    """
    cols, spec, problems = columns or LogColumns(), time or TimeSpec(), Problems()
    try:
        back, ahead = pd.Timedelta(degradation), pd.Timedelta(repair)
    except ValueError as exc:
        raise ImportFileError(path, [f"--degradation / --repair: {exc}"]) from exc
    if back < pd.Timedelta(0) or ahead < pd.Timedelta(0):
        raise ImportFileError(path, ["--degradation and --repair must not be negative"])
    frame, use = _read(path, cols, ["time", "machine"], ["mode", "component", "end", "onset", "text"], spec, problems)
    fail = frame["ns"].to_numpy()
    bounds = {"end": fail + ahead.value, "onset": fail - back.value}
    for role, what, wrong in (("end", "repair end", "before"), ("onset", "onset", "after")):
        if role not in use:
            continue
        given = frame[role]
        ns = parse_times(given, spec)
        bad = given.notna().to_numpy() & (ns == NAT)
        problems.add(f"unparsable {what} in column {use[role]!r}", frame["row"].to_numpy()[bad], given.to_numpy()[bad])
        odd = (ns != NAT) & (fail != NAT) & ((ns < fail) if role == "end" else (ns > fail))
        problems.add(f"{what} {wrong} the failure", frame["row"].to_numpy()[odd], given.to_numpy()[odd])
        bounds[role] = np.where(ns != NAT, ns, bounds[role])
    end = bounds["end"]
    kind = _text(frame.get("mode"), len(frame))
    frame["kind"] = np.where(kind == "", "failure", kind)
    _dupes(frame, ["ns", "machine"], problems, "(time, machine) failure")
    if problems:
        raise ImportFileError(path, problems.messages())
    comp, text = _text(frame.get("component"), len(frame)), _text(frame.get("text"), len(frame))
    detail = [";".join(p for p in (f"component={c}" if c else "", t) if p) for c, t in zip(comp, text, strict=True)]
    failure = pd.to_datetime(frame["ns"].to_numpy(np.int64), unit="ns", utc=True)
    out = pd.DataFrame({
        "machine": frame["machine"].to_numpy(), "plant": "", "line": "", "kind": frame["kind"].to_numpy(),
        "is_failure": True, "start": pd.to_datetime(bounds["onset"].astype(np.int64), unit="ns", utc=True),
        "failure": failure,
        "end": pd.to_datetime(end.astype(np.int64), unit="ns", utc=True), "root_cause": "", "affected": "",
        "detail": detail,
    })
    out.attrs["rows"] = len(frame)
    return out.sort_values(["start", "machine", "kind"], kind="stable").reset_index(drop=True)


def import_failures(store: Store, path: str | Path, columns: LogColumns | None = None, *,
                    time: TimeSpec | None = None, degradation: str = "7D", repair: str = "1D",
                    dry_run: bool = False, progress: Progress | None = None) -> ImportResult:
    """Validate the failure log, then write it to ``pdm_truth``. Raises ImportFileError."""
    t0 = _time.perf_counter()
    truth = failures_as_truth(path, columns, time=time, degradation=degradation, repair=repair)
    frame = pd.DataFrame({"machine": truth["machine"], "ns": pd.DatetimeIndex(truth["failure"]).asi8})
    result = _result("failures", path, frame, dry_run)
    result.rows = truth.attrs.get("rows", len(truth))
    if not dry_run and len(truth):
        write_truth(store, truth)
        (progress or (lambda s: None))(f"wrote {len(truth):,} failures")
    result.seconds = _time.perf_counter() - t0
    return result


def write_truth(store: Store, truth: pd.DataFrame) -> None:
    """Ground-truth rows into ``pdm_truth``, laid out as the simulator writes them (time = start)."""
    t = truth.reset_index(drop=True)
    frame = pd.DataFrame({
        "plant": t["plant"].to_numpy(), "line": t["line"].to_numpy(), "machine": t["machine"].to_numpy(),
        "kind": t["kind"].to_numpy(), "is_failure": t["is_failure"].astype(bool).to_numpy(),
        "failure_ns": pd.array(pd.DatetimeIndex(t["failure"]).asi8, dtype="Int64"),
        "end_ns": pd.DatetimeIndex(t["end"]).asi8, "root_cause": t["root_cause"].to_numpy(),
        "affected": t["affected"].to_numpy(), "detail": t["detail"].to_numpy(),
    }, index=pd.DatetimeIndex(t["start"], name="time"))
    store.write(frame, TRUTH, ["plant", "line", "machine", "kind"])


def _result(kind: str, path: str | Path, frame: pd.DataFrame, dry_run: bool) -> ImportResult:
    r = ImportResult(kind, str(path), rows=len(frame), points=len(frame), dry_run=dry_run,
                     machines=sorted(set(frame["machine"])))
    if len(frame):
        r.start = pd.Timestamp(int(frame["ns"].min()), unit="ns", tz="UTC")
        r.stop = pd.Timestamp(int(frame["ns"].max()), unit="ns", tz="UTC")
    return r
