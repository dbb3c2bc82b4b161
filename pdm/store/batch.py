"""Turn what callers hand to ``Store.write`` into clean, typed batches.

Every back end receives the same thing: per measurement, a DataFrame with an
``int64`` nanosecond ``time`` column, string tag columns ("" = tag absent) and
typed field columns (missing = NaN / <NA> / None), already validated and with
duplicate (tags, time) keys merged the way InfluxDB merges them: for each
field, the last non-missing value wins. Malformed points are collected as
:class:`RejectedPoint` and never reach a back end.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pdm.store.errors import InvalidNameError, RejectedPoint
from pdm.store.schema import FieldType, declared_type, is_safe_name

RESERVED = frozenset({"time", "measurement"})


@dataclass(frozen=True)
class Point:
    """One observation: a measurement, its tags, its fields and a time.

    ``time`` may be a ``pd.Timestamp``, ``datetime``, ISO string or an integer
    of nanoseconds since the epoch; naive times are taken as UTC.
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, Any]
    time: Any


@dataclass
class Batch:
    """Validated points of one measurement, ready for a back end."""

    measurement: str
    frame: pd.DataFrame  # columns: time (int64 ns), tags..., fields...
    tag_keys: list[str]
    field_types: dict[str, FieldType]
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """Original batch positions of the frame's rows (after merging duplicates)."""


def check_name(name: Any, what: str) -> str:
    """Return ``name`` when it is safe to use in a query, else raise InvalidNameError."""
    if not is_safe_name(name) or name in RESERVED:
        raise InvalidNameError(
            f"invalid {what} name {name!r}: use letters, digits, '_', '.', '-' "
            f"(starting with a letter or '_'), and not {sorted(RESERVED)}"
        )
    return name


def _short(values: Mapping[str, Any], limit: int = 120) -> str:
    text = ",".join(f"{k}={v!r}" for k, v in values.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_of(value: Any) -> FieldType | None:
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, numbers.Integral):
        return "integer"
    if isinstance(value, numbers.Real):
        return "float"
    if isinstance(value, str):
        return "string"
    return None


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _coerce(value: Any, ftype: FieldType) -> Any:
    """``value`` as ``ftype`` or raise ValueError with a reason."""
    vtype = _type_of(value)
    if ftype == "float":
        if vtype in ("float", "integer"):
            v = float(value)
            if math.isinf(v):
                raise ValueError("infinite value")
            return v
    elif ftype == "integer":
        if vtype == "integer":
            v = int(value)
            if not -(2**63) <= v < 2**63:
                raise ValueError("integer out of 64-bit range")
            return v
        if vtype == "float" and float(value).is_integer():
            return int(value)
    elif ftype == "boolean":
        if vtype == "boolean":
            return bool(value)
    elif ftype == "string":
        if vtype == "string":
            return value
    raise ValueError(f"expects {ftype}, got {type(value).__name__} {value!r}")


def to_ns(values: Any) -> np.ndarray:
    """Convert times to int64 ns since the epoch; unparsable ones become INT64_MIN (NaT)."""
    if isinstance(values, pd.DatetimeIndex | pd.Series) and pd.api.types.is_datetime64_any_dtype(
        values
    ):
        idx = pd.DatetimeIndex(values)
        idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        return np.asarray(idx.as_unit("ns").asi8, dtype=np.int64)
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    out = np.empty(len(arr), dtype=np.int64)
    for i, v in enumerate(arr):
        out[i] = _one_to_ns(v)
    return out


_NAT = np.iinfo(np.int64).min


def _one_to_ns(v: Any) -> int:
    if isinstance(v, bool | np.bool_) or _is_missing(v):
        return _NAT
    if isinstance(v, numbers.Integral):
        return int(v)
    try:
        ts = pd.Timestamp(v)
    except (ValueError, TypeError, OverflowError):
        return _NAT
    if ts is pd.NaT:
        return _NAT
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    try:
        return int(ts.as_unit("ns").value)
    except (OverflowError, ValueError):
        return _NAT


# InfluxDB's valid range (see its docs: 1677-09-21T00:12:43.145224194Z .. 2262-04-11T23:47:16.854775806Z)
_MIN_NS = -9223372036854775806
_MAX_NS = 9223372036854775806


def _tag_problem(key: str, value: str) -> str | None:
    if "\n" in value or "\r" in value:
        return f"tag {key!r} contains a newline"
    if value.endswith("\\"):
        return f"tag {key!r} ends with a backslash"
    return None


def from_points(
    points: Iterable[Point | Mapping[str, Any]],
    known_types: Mapping[str, Mapping[str, FieldType]],
) -> tuple[list[Batch], list[RejectedPoint]]:
    """Validate and group points by measurement. Bad points go to the rejected list."""
    rejected: list[RejectedPoint] = []
    rows: dict[str, list[tuple[int, int, dict[str, str], dict[str, Any]]]] = {}
    types: dict[str, dict[str, FieldType]] = {}
    for i, p in enumerate(points):
        if isinstance(p, Mapping):
            p = Point(p.get("measurement", ""), p.get("tags") or {}, p.get("fields") or {}, p.get("time"))
        shown = f"{p.measurement}[{_short(dict(p.tags), 60)}] {_short(dict(p.fields), 80)} @ {p.time!r}"
        try:
            meas = str(p.measurement)
            if not is_safe_name(meas) or meas in RESERVED:
                raise ValueError(f"invalid measurement name {meas!r}")
            ns = _one_to_ns(p.time)
            if ns == _NAT or not _MIN_NS <= ns <= _MAX_NS:
                raise ValueError(f"bad timestamp {p.time!r}")
            tags: dict[str, str] = {}
            for k, v in p.tags.items():
                if not is_safe_name(k) or k in RESERVED:
                    raise ValueError(f"invalid tag key {k!r}")
                if _is_missing(v) or v == "":
                    continue
                v = str(v)
                problem = _tag_problem(k, v)
                if problem:
                    raise ValueError(problem)
                tags[k] = v
            mtypes = types.setdefault(meas, dict(known_types.get(meas, {})))
            fields: dict[str, Any] = {}
            new_types: dict[str, FieldType] = {}
            for k, v in p.fields.items():
                if not is_safe_name(k) or k in RESERVED or k in p.tags:
                    raise ValueError(f"invalid field name {k!r}")
                if _is_missing(v):
                    continue
                ftype = mtypes.get(k) or declared_type(meas, k) or _type_of(v)
                if ftype is None:
                    raise ValueError(f"field {k!r} has unsupported type {type(v).__name__}")
                try:
                    fields[k] = _coerce(v, ftype)
                except ValueError as exc:
                    raise ValueError(f"field {k!r} {exc}") from None
                new_types[k] = ftype
            if not fields:
                raise ValueError("no fields")
        except ValueError as exc:
            rejected.append(RejectedPoint(i, shown, str(exc)))
            continue
        mtypes.update(new_types)
        rows.setdefault(meas, []).append((i, ns, tags, fields))

    batches = []
    for meas, items in rows.items():
        tag_keys = sorted({k for _, _, t, _ in items for k in t})
        ftypes = {k: types[meas][k] for k in sorted({k for *_, f in items for k in f})}
        data: dict[str, Any] = {"time": np.fromiter((ns for _, ns, _, _ in items), np.int64, len(items))}
        for k in tag_keys:
            data[k] = [t.get(k, "") for _, _, t, _ in items]
        for k, t in ftypes.items():
            values = [f.get(k) for *_, f in items]
            # Build each column in its own dtype: a list of ints with None would become float64.
            data[k] = pd.array(values, dtype=_PANDAS_DTYPE[t]) if t != "string" else values
        frame = _typed(pd.DataFrame(data), ftypes)
        positions = np.fromiter((i for i, *_ in items), np.int64, len(items))
        batches.append(_merge_duplicates(Batch(meas, frame, tag_keys, ftypes, positions)))
    return batches, rejected


_PANDAS_DTYPE = {"float": "Float64", "integer": "Int64", "boolean": "boolean"}


def _typed(frame: pd.DataFrame, ftypes: Mapping[str, FieldType]) -> pd.DataFrame:
    for k, t in ftypes.items():
        frame[k] = cast_field(frame[k], t)
    return frame


def cast_field(col: pd.Series, ftype: FieldType) -> pd.Series:
    """Cast an already valid column to the dtype pdm uses for ``ftype``."""
    if ftype == "float":
        return col.astype("float64")
    if ftype == "integer":
        if col.dtype == object:
            # Straight from Python ints: going through float64 would lose bits above 2**53.
            return pd.Series(pd.array(col.tolist(), dtype="Int64"), index=col.index)
        return col.astype("Int64")
    if ftype == "boolean":
        return col.astype("boolean")
    return col.astype(object).where(col.notna(), None)


def from_frame(
    frame: pd.DataFrame,
    measurement: str,
    tag_columns: Sequence[str],
    field_columns: Sequence[str] | None,
    known_types: Mapping[str, FieldType],
    time_column: str | None = None,
) -> tuple[Batch | None, list[RejectedPoint]]:
    """Validate a DataFrame of one measurement, vectorised where it matters.

    The time is the DatetimeIndex unless ``time_column`` (or a ``time``
    column) is given. Columns not named as tags are fields unless
    ``field_columns`` says which.
    """
    check_name(measurement, "measurement")
    for c in tag_columns:
        check_name(c, "tag key")
    if time_column is None and "time" in frame.columns:
        time_column = "time"
    if field_columns is None:
        field_columns = [c for c in frame.columns if c not in tag_columns and c != time_column]
    for c in field_columns:
        check_name(c, "field")
    missing = [c for c in [*tag_columns, *field_columns] if c not in frame.columns]
    if missing:
        raise KeyError(f"columns not in the frame: {missing}")
    n = len(frame)
    if n == 0:
        return None, []

    times = frame[time_column] if time_column else frame.index
    ns = to_ns(times if isinstance(times, pd.DatetimeIndex | pd.Series) else np.asarray(times))
    if isinstance(times, pd.Series) and not pd.api.types.is_datetime64_any_dtype(times):
        ns = to_ns(times.to_numpy(dtype=object))
    reasons: list[str | None] = [None] * n
    bad_time = (ns == _NAT) | (ns < _MIN_NS) | (ns > _MAX_NS)
    for i in np.flatnonzero(bad_time):
        reasons[i] = f"bad timestamp {times[i]!r}"

    out: dict[str, Any] = {"time": ns}
    for c in tag_columns:
        values, codes, uniques = _tag_strings(frame[c])
        out[c] = values
        # Checked once per distinct value: a tag column holds few of them.
        for code, value in enumerate(uniques.tolist()):
            problem = _tag_problem(c, value)
            if problem:
                for i in np.flatnonzero(codes == code):
                    reasons[i] = reasons[i] or problem

    ftypes: dict[str, FieldType] = {}
    for c in field_columns:
        col = frame[c]
        ftype = known_types.get(c) or declared_type(measurement, c) or _infer_type(col)
        if ftype is None:
            ftype = "float"  # all missing: nothing will be stored for it anyway
        ftypes[c] = ftype
        values, problems = _validate_column(col, ftype)
        out[c] = values
        for row, why in problems:
            reasons[row] = reasons[row] or f"field {c!r} {why}"

    result = pd.DataFrame(out)
    field_present = np.zeros(n, dtype=bool)
    for c in field_columns:
        field_present |= result[c].notna().to_numpy()
    for i in np.flatnonzero(~field_present):
        reasons[i] = reasons[i] or "no fields"

    bad = np.array([r is not None for r in reasons], dtype=bool)
    rejected = [
        RejectedPoint(int(i), _render_row(frame, int(i), times), str(reasons[i]))
        for i in np.flatnonzero(bad)
    ]
    keep = ~bad
    result = result.loc[keep].reset_index(drop=True)
    result = _typed(result, ftypes)
    if result.empty:
        return None, rejected
    # Drop tag columns that are absent everywhere, like InfluxDB does.
    tag_keys = sorted(c for c in tag_columns if (result[c] != "").any())
    result = result[["time", *tag_keys, *ftypes]]
    batch = Batch(measurement, result, tag_keys, ftypes, np.flatnonzero(keep))
    return _merge_duplicates(batch), rejected


def _tag_strings(col: pd.Series) -> tuple[Any, np.ndarray, np.ndarray]:
    """Tag column as strings ("" = missing): (values, each row's code, the distinct strings).

    The string of every value is ``str(value)``; categoricals of strings and
    string columns are converted once per distinct value, not once per row.
    """
    if isinstance(col.dtype, pd.CategoricalDtype) and all(isinstance(v, str) for v in col.cat.categories):
        uniques = np.array([*col.cat.categories, ""], dtype=object)
        codes = col.cat.codes.to_numpy().astype(np.intp)
        codes[codes < 0] = len(uniques) - 1  # missing -> ""
    elif isinstance(col.dtype, pd.StringDtype):
        codes, found = pd.factorize(col.fillna(""), use_na_sentinel=False)
        uniques = np.asarray(found, dtype=object)
    else:
        vals = col.astype(object).where(col.notna(), "").astype(str).to_numpy(dtype=object)
        codes, found = pd.factorize(vals, use_na_sentinel=False)
        return vals, codes, np.asarray(found, dtype=object)
    # The dtype a frame built from the strings would get ("str", or object before pandas 3).
    return pd.Series(uniques).array.take(codes), codes, uniques


def _render_row(frame: pd.DataFrame, i: int, times: Any) -> str:
    row = frame.iloc[i].to_dict()
    t = times.iloc[i] if isinstance(times, pd.Series) else times[i]
    return f"{_short(row, 100)} @ {t!r}"


def _infer_type(col: pd.Series) -> FieldType | None:
    if pd.api.types.is_bool_dtype(col):
        return "boolean"
    if pd.api.types.is_integer_dtype(col):
        return "integer"
    if pd.api.types.is_float_dtype(col):
        return "float"
    for v in col:
        if not _is_missing(v):
            return _type_of(v)
    return None


def _validate_column(col: pd.Series, ftype: FieldType) -> tuple[Any, list[tuple[int, str]]]:
    """Values of ``col`` as ``ftype`` (bad ones missing) and the problems found."""
    if ftype == "float" and pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        arr = col.to_numpy(dtype="float64", na_value=np.nan)
        inf = np.isinf(arr)
        problems = [(int(i), "infinite value") for i in np.flatnonzero(inf)]
        if problems:
            arr = arr.copy()
            arr[inf] = np.nan
        return arr, problems
    if ftype == "integer" and pd.api.types.is_integer_dtype(col):
        return col.astype("Int64").to_numpy(dtype=object, na_value=None), []
    if ftype == "boolean" and pd.api.types.is_bool_dtype(col):
        return col.astype("boolean").to_numpy(dtype=object, na_value=None), []
    values = col.to_numpy(dtype=object)
    out = np.empty(len(values), dtype=object)
    problems = []
    for i, v in enumerate(values):
        if _is_missing(v):
            out[i] = None
            continue
        try:
            out[i] = _coerce(v, ftype)
        except ValueError as exc:
            out[i] = None
            problems.append((i, str(exc)))
    return out, problems


def _merge_duplicates(batch: Batch) -> Batch:
    """Merge rows with the same (tags, time): per field the last non-missing value wins."""
    keys = [*batch.tag_keys, "time"]
    frame = batch.frame
    dup = frame.duplicated(keys, keep=False)
    if not dup.any():
        return batch
    order = np.arange(len(frame))
    merged = frame.assign(_pos=order).groupby(keys, sort=False, dropna=False).last()
    merged = merged.reset_index()
    positions = batch.rows[merged.pop("_pos").to_numpy()]
    merged = _typed(merged[frame.columns], batch.field_types)
    return Batch(batch.measurement, merged, batch.tag_keys, batch.field_types, positions)
