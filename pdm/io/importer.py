"""``pdmctl import sensors``: a plant's sensor history from CSV or Parquet into the store.

Two layouts are read:

- long: one row per value — time, machine, sensor, value;
- wide: one row per time and machine, one column per sensor.

Each sensor goes to a destination ``MEASUREMENT[.FIELD]`` chosen by the first
matching ``PATTERN=DEST`` rule (shell patterns on the sensor name); sensors no
rule matches go to the generic measurement ``sensor`` (tag ``sensor`` = the
name, field ``value``), which the feature grid reads as channel
``sensor.<name>.value``. ``temperature`` stores field ``celsius``,
``vibration.<field>`` a vibration feature, ``process.<field>`` a process value
(no sensor tag; ``speed_rpm``, ``load_pct`` and ``running`` are the model's
operating context, ``current_a`` a sensor).

The whole file is validated before anything is written, so a malformed file
imports nothing. Writes are idempotent: re-running an import after a failed
write stores every point once.
"""

from __future__ import annotations

import fnmatch
import logging
import time as _time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

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
from pdm.store.batch import check_name
from pdm.store.errors import InvalidNameError
from pdm.store.schema import FIELD_TYPES, OPERATOR_LOG, PROCESS, TEMPERATURE, VIBRATION

log = logging.getLogger(__name__)

GENERIC = "sensor"
#: Measurements an import may not write sensor values into (outputs and logs have their own importers).
RESERVED_MEASUREMENTS = (OPERATOR_LOG, "pdm_truth", "pdm_score", "pdm_alarm", "pdm_rootcause")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Destination:
    """Where one sensor's values are stored."""

    measurement: str
    field: str
    sensor_tag: bool = True  # False for process values: the field names the sensor

    def __str__(self) -> str:
        return f"{self.measurement}.{self.field}"


def parse_destination(text: str) -> Destination:
    """``sensor``, ``temperature``, ``vibration.rms``, ``process.speed_rpm``, ``MEASUREMENT[.FIELD]``."""
    measurement, _, fld = text.strip().partition(".")
    check_name(measurement, "measurement")
    if measurement in RESERVED_MEASUREMENTS:
        raise InvalidNameError(f"measurement {measurement!r} is not for sensor values")
    if measurement == PROCESS:
        if not fld:
            raise InvalidNameError(f"process needs a field: one of {sorted(FIELD_TYPES[PROCESS])} (e.g. process.speed_rpm)")
        return Destination(PROCESS, check_name(fld, "field"), sensor_tag=False)
    if measurement == VIBRATION and not fld:
        raise InvalidNameError(f"vibration needs a field: one of {sorted(FIELD_TYPES[VIBRATION])} or band_*")
    default = "celsius" if measurement == TEMPERATURE else "value"
    return Destination(measurement, check_name(fld or default, "field"))


def parse_rules(rules: Sequence[str]) -> list[tuple[str, Destination]]:
    """``PATTERN=DEST`` texts → (pattern, destination), in order."""
    out = []
    for r in rules:
        pattern, sep, dest = r.partition("=")
        if not sep or not pattern.strip():
            raise InvalidNameError(f"--map {r!r}: write PATTERN=DEST, e.g. 'temp_*=temperature'")
        try:
            out.append((pattern.strip(), parse_destination(dest)))
        except InvalidNameError as exc:
            raise InvalidNameError(f"--map {r!r}: {exc}") from exc
    return out


@dataclass
class SensorColumns:
    """Column names of a sensor file (each maps to the CLI option in ``OPTIONS``)."""

    layout: str = "long"  # long | wide
    time: str = "time"
    machine: str | None = "machine"
    sensor: str = "sensor"
    value: str = "value"
    sensors: tuple[str, ...] | None = None  # wide: sensor columns (default: all but time and machine)
    machine_id: str | None = None  # the file holds one machine: its id (then no machine column)


OPTIONS = {"time": "--time-col", "machine": "--machine-col", "sensor": "--sensor-col", "value": "--value-col",
           "sensors": "--sensors"}


@dataclass
class ImportResult:
    """What an import read and wrote."""

    kind: str
    path: str
    rows: int = 0
    points: int = 0
    skipped_missing: int = 0
    machines: list[str] = field(default_factory=list)
    series: dict[str, str] = field(default_factory=dict)  # sensor → destination
    start: pd.Timestamp | None = None
    stop: pd.Timestamp | None = None
    seconds: float = 0.0
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would write" if self.dry_run else "wrote"
        span = f", {self.start:%Y-%m-%d %H:%M} to {self.stop:%Y-%m-%d %H:%M} UTC" if self.start is not None else ""
        one, many = {"events": ("log entry", "log entries"), "failures": ("failure", "failures")}.get(
            self.kind, ("value", "values"))
        text = (f"{self.kind}: read {_count(self.rows, 'row')} of {self.path}; {verb} "
                f"{_count(self.points, one, many)} for {_count(len(self.machines), 'machine')}{span} "
                f"in {self.seconds:.1f}s")
        if self.skipped_missing:
            text += f"; {_count(self.skipped_missing, 'empty cell')} skipped"
        return text


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _cells(col: pd.Series) -> np.ndarray:
    """A value column as float64 when its type is numeric, else as objects to convert cell by cell."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_bool_dtype(col):
        return col.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    return col.to_numpy(dtype=object, na_value=None)


def _names(col: pd.Series) -> tuple[pd.Categorical, np.ndarray]:
    """Machine or sensor names as a categorical of stripped text (NaN where missing), and where missing."""
    cat = pd.Categorical(col)
    names = [str(c).strip() for c in cat.categories]
    codes = cat.codes.copy()
    blank = [i for i, c in enumerate(names) if c == ""]
    if blank:
        codes[np.isin(codes, blank)] = -1
    uniq = sorted(set(names) - {""})
    pos = {c: i for i, c in enumerate(uniq)}
    remap = np.array([pos.get(c, -1) for c in names] + [-1], dtype=np.int64)
    out = pd.Categorical.from_codes(remap[codes], categories=uniq)
    return out, np.asarray(out.codes < 0)


def _long_values(chunk: pd.DataFrame, first_row: int, cols: SensorColumns, spec: TimeSpec,
                 problems: Problems) -> tuple[pd.DataFrame, int]:
    """A chunk as rows of (row, ns, machine, sensor, value), bad cells reported and dropped; and its empty cells.

    Machine and sensor are categoricals: a chunk holds few distinct names, and
    hashing, mapping and checking them once per name keeps large files fast.
    """
    n = len(chunk)
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    ns = parse_times(chunk[cols.time], spec)
    missing_t = chunk[cols.time].isna().to_numpy()
    problems.add(f"missing time in column {cols.time!r}", rows[missing_t])
    bad_t = (ns == NAT) & ~missing_t
    problems.add(f"unparsable time in column {cols.time!r}", rows[bad_t], chunk[cols.time].to_numpy()[bad_t])
    if cols.machine_id is not None:
        machine = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[cols.machine_id])
    else:
        machine, gone = _names(chunk[cols.machine])
        problems.add(f"missing machine in column {cols.machine!r}", rows[gone])
    if cols.layout == "long":
        sensor, gone = _names(chunk[cols.sensor])
        problems.add(f"missing sensor in column {cols.sensor!r}", rows[gone])
        raw = _cells(chunk[cols.value])
        at = rows
    else:
        names = list(cols.sensors or ())
        k = len(names)
        machine = pd.Categorical.from_codes(np.tile(machine.codes, k), categories=machine.categories)
        sensor = pd.Categorical.from_codes(np.repeat(np.arange(k), n), categories=names)
        parts = [_cells(chunk[c]) for c in names]
        if any(p.dtype == object for p in parts):
            parts = [p.astype(object) for p in parts]
        raw = np.concatenate(parts) if parts else np.empty(0)
        ns, at = np.tile(ns, k), np.tile(rows, k)
    if raw.dtype == object:
        value = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        empty = np.asarray(pd.isna(raw))
        suspect = np.flatnonzero(np.isnan(value) & ~empty)
        if len(suspect):  # a blank cell is missing; any other text that is no number is an error
            empty[suspect[[str(v).strip() == "" for v in raw[suspect]]]] = True
    else:
        value, empty = raw, np.isnan(raw)
    bad_v = ~empty & ~np.isfinite(value)
    where = "" if cols.layout == "long" else " (column " + "/".join(sorted(set(np.asarray(sensor)[bad_v]))[:3]) + ")"
    problems.add(f"non-numeric value{where}", at[bad_v], raw[bad_v])
    for what, cat in (("machine", machine), ("sensor", sensor)):
        for name in cat.categories:
            if "\n" in str(name) or "\r" in str(name) or str(name).endswith("\\"):
                odd = np.asarray(cat == name)
                problems.add(f"{what} name with a line break or a trailing backslash", at[odd], np.asarray(cat)[odd])
    keep = (ns != NAT) & (machine.codes >= 0) & (sensor.codes >= 0)
    ok = keep & ~empty & np.isfinite(value)
    frame = pd.DataFrame({"row": at[ok], "ns": ns[ok], "machine": machine[ok], "sensor": sensor[ok], "value": value[ok]})
    return frame, int((empty & keep).sum())


class _Router:
    """Sensor name → destination, by the first matching rule (cached)."""

    def __init__(self, rules: list[tuple[str, Destination]]) -> None:
        self.rules = rules
        self.seen: dict[str, Destination] = {}

    def __call__(self, sensor: str) -> Destination:
        if sensor not in self.seen:
            hit = next((d for p, d in self.rules if fnmatch.fnmatchcase(sensor, p)), None)
            self.seen[sensor] = hit or Destination(GENERIC, "value")
        return self.seen[sensor]


def _keys(frame: pd.DataFrame, route: _Router) -> pd.DataFrame:
    """Destination key columns of each value: measurement, sensor tag, field."""
    dest = {s: route(s) for s in frame["sensor"].unique()}
    sensor = frame["sensor"]
    return pd.DataFrame({
        "ns": frame["ns"].to_numpy(), "machine": frame["machine"].to_numpy(),
        "measurement": sensor.map({s: d.measurement for s, d in dest.items()}).to_numpy(),
        "tag": sensor.map({s: s if d.sensor_tag else "" for s, d in dest.items()}).to_numpy(),
        "field": sensor.map({s: d.field for s, d in dest.items()}).to_numpy(),
    })


def _duplicate_hashes(hashes: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Key hashes that occur more than once, and how many values repeat an earlier key."""
    if not hashes:
        return np.zeros(0, np.uint64), 0
    h = np.sort(np.concatenate(hashes))
    same = h[1:] == h[:-1]
    return np.unique(h[1:][same]), int(same.sum())


def _report_duplicates(found: list[tuple[int, int]], what: str, hint: str, problems: Problems) -> None:
    """``found``: (key hash, row) of every value whose key occurs twice or more, in file order."""
    first: dict[int, int] = {}
    repeats: dict[int, str] = {}  # row → "rows A and B" (a wide row repeats once per sensor: count it once)
    for h, row in found:
        if h in first:
            repeats.setdefault(row, f"rows {first[h]} and {row}")
        else:
            first[h] = row
    rows = sorted(repeats)
    problems.add(f"duplicate {what}{hint}", np.array(rows, dtype=np.int64),
                 labels=list(dict.fromkeys(repeats[r] for r in rows))[:3])


def _columns(path: str | Path, cols: SensorColumns) -> SensorColumns:
    header = columns_of(path)
    need = {"time": cols.time}
    if cols.machine_id is None:
        if cols.machine is None:
            raise ImportFileError(path, ["no machine column: give --machine-col, or --machine-id when the file holds one machine"])
        need["machine"] = cols.machine
    if cols.layout == "long":
        need |= {"sensor": cols.sensor, "value": cols.value}
    elif cols.layout != "wide":
        raise ImportFileError(path, [f"unknown layout {cols.layout!r}: use long or wide"])
    problems = [f"column {name!r} not in the file (the {role} column; set it with {OPTIONS[role]}); "
                f"columns are: {', '.join(header[:20])}" for role, name in need.items() if name not in header]
    if cols.layout == "wide":
        fixed = {cols.time, cols.machine}
        sensors = list(cols.sensors) if cols.sensors else [c for c in header if c not in fixed]
        problems += [f"sensor column {s!r} not in the file (listed in --sensors)" for s in sensors if s not in header]
        if not sensors:
            problems.append("no sensor columns: a wide file needs one column per sensor besides time and machine")
        cols = SensorColumns(**{**cols.__dict__, "sensors": tuple(sensors)})
    if problems:
        raise ImportFileError(path, problems)
    return cols


def _file_columns(cols: SensorColumns) -> list[str]:
    names = [cols.time] + ([cols.machine] if cols.machine_id is None and cols.machine else [])
    return names + ([cols.sensor, cols.value] if cols.layout == "long" else list(cols.sensors or ()))


def _chunks(path: str | Path, cols: SensorColumns, spec: TimeSpec, problems: Problems, chunk_rows: int,
            progress: Progress, stage: str) -> Iterator[tuple[pd.DataFrame, int, int]]:
    for chunk in iter_chunks(path, _file_columns(cols), chunk_rows):
        if chunk.first_row == 1 and spec.period is None and spec.epoch_unit is None and looks_numeric(chunk.frame[cols.time]):
            raise ImportFileError(path, [
                f"time column {cols.time!r} holds numbers ({chunk.frame[cols.time].dropna().iloc[0]!r}, ...): "
                "for steps (cycles) give --period (one step, e.g. 10s) and --origin (the time of step 0); "
                "for seconds since 1970 give --epoch-unit s"])
        values, empty = _long_values(chunk.frame, chunk.first_row, cols, spec, problems)
        last = chunk.first_row + len(chunk.frame) - 1
        pct = f" ({chunk.done:.0%})" if chunk.done is not None else ""
        progress(f"{stage} {Path(path).name}: {last:,} rows{pct}")
        yield values, len(chunk.frame), empty


def import_sensors(store: Store, path: str | Path, columns: SensorColumns | None = None, *,
                   rules: Sequence[str] = (), time: TimeSpec | None = None, dry_run: bool = False,
                   chunk_rows: int = 200_000, batch_rows: int = 100_000,
                   progress: Progress | None = None) -> ImportResult:
    """Validate the whole file, then write its values in batches.

    Raises
    ------
    ImportFileError
        Missing columns, unparsable times, non-numeric values, duplicate
        (time, machine, sensor) keys, unknown file type; nothing is written then.
    """
    t_start = _time.perf_counter()
    progress = progress or log.info
    spec = time or TimeSpec()
    if spec.problems():
        raise ImportFileError(path, spec.problems())
    cols = _columns(path, columns or SensorColumns())
    try:
        route = _Router(parse_rules(rules))
    except InvalidNameError as exc:
        raise ImportFileError(path, [str(exc)]) from exc
    problems = Problems()
    result = ImportResult("sensors", str(path), dry_run=dry_run)
    hashes: list[np.ndarray] = []  # 8 bytes per value: the only thing kept of the whole file
    machines: set[str] = set()
    lo, hi = None, None
    for values, n, empty in _chunks(path, cols, spec, problems, chunk_rows, progress, "checked"):
        result.rows += n
        result.skipped_missing += empty
        keys = _keys(values, route)
        hashes.append(pd.util.hash_pandas_object(keys, index=False).to_numpy())
        machines.update(values["machine"].unique())
        if len(values):
            lo = min(lo, values["ns"].min()) if lo is not None else values["ns"].min()
            hi = max(hi, values["ns"].max()) if hi is not None else values["ns"].max()
        result.points += len(values)
    dups, _ = _duplicate_hashes(hashes)
    del hashes
    if len(dups):  # rare: read once more for the rows that share a key
        found: list[tuple[int, int]] = []
        for values, _, _ in _chunks(path, cols, spec, Problems(), chunk_rows, progress, "looked for duplicates in"):
            h = pd.util.hash_pandas_object(_keys(values, route), index=False).to_numpy()
            hit = np.isin(h, dups)
            found += [(int(a), int(b)) for a, b in zip(h[hit], values["row"].to_numpy()[hit], strict=True)]
        shared = [d for d in {str(d) for d in route.seen.values()}
                  if sum(str(x) == d for x in route.seen.values()) > 1 and not any(
                      str(x) == d and x.sensor_tag for x in route.seen.values())]
        hint = f" (several sensors are mapped to {', '.join(sorted(shared))})" if shared else ""
        what = "(time, machine, sensor)" if cols.layout == "long" else "(time, machine)"
        _report_duplicates(found, what, hint, problems)
    if problems:
        raise ImportFileError(path, problems.messages())
    if result.points == 0:
        raise ImportFileError(path, ["no values in the file"])
    result.machines = sorted(machines)
    result.series = {s: str(d) for s, d in sorted(route.seen.items())}
    result.start, result.stop = pd.Timestamp(lo, unit="ns", tz="UTC"), pd.Timestamp(hi, unit="ns", tz="UTC")
    if not dry_run:
        written = 0
        pending: list[pd.DataFrame] = []
        for values, _, _ in _chunks(path, cols, spec, Problems(), chunk_rows, progress, "wrote"):
            pending.append(values)
            if sum(len(p) for p in pending) >= batch_rows:
                written += _write(store, _concat(pending), route)
                pending = []
        if pending:
            written += _write(store, _concat(pending), route)
        result.points = written
    result.seconds = _time.perf_counter() - t_start
    return result


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Chunks into one batch, machine and sensor staying categorical."""
    out = {c: np.concatenate([p[c].to_numpy() for p in parts]) for c in ("row", "ns", "value")}
    for c in ("machine", "sensor"):
        out[c] = union_categoricals([pd.Categorical(p[c]) for p in parts])
    return pd.DataFrame(out)


def _write(store: Store, values: pd.DataFrame, route: _Router) -> int:
    """One batch of validated values → one write per destination measurement."""
    keys = _keys(values, route)
    written = 0
    for measurement, idx in keys.groupby("measurement").groups.items():
        part = keys.loc[idx]
        vals = values["value"].to_numpy()[np.asarray(idx)]
        frame = pd.DataFrame({"machine": part["machine"].to_numpy()})
        tags = ["machine"]
        if (part["tag"] != "").any():
            frame["sensor"] = part["tag"].to_numpy()
            tags.append("sensor")
        for f in sorted(part["field"].unique()):
            sel = (part["field"] == f).to_numpy()
            col = np.where(sel, vals, np.nan)
            if FIELD_TYPES.get(str(measurement), {}).get(f) == "boolean":
                frame[f] = pd.array([None if not s else bool(v) for s, v in zip(sel, col, strict=True)], dtype="boolean")
            else:
                frame[f] = col
        frame.index = pd.DatetimeIndex(pd.to_datetime(part["ns"].to_numpy(np.int64), unit="ns", utc=True), name="time")
        store.write(frame, str(measurement), tags)
        written += len(part)
    return written
