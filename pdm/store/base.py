"""The store contract that every back end fulfils.

The public methods live here once; a back end fills the ``_``-prefixed hooks.
Everything a back end receives has been validated: names are safe
(:func:`pdm.store.batch.check_name`), times are int64 nanoseconds, and
``write`` batches are typed and free of duplicate keys.

Read results are DataFrames with a UTC nanosecond ``DatetimeIndex`` named
``time``; tag columns (sorted, "" where a point has no such tag), then field
columns (sorted): floats as ``float64``, integers as ``Int64``, booleans as
``boolean``, strings as ``object``. Rows are ordered by time, then by tags.
When several measurements are read at once a ``measurement`` column comes
first.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, TypeAlias

import numpy as np
import pandas as pd

from pdm.store import batch as _batch
from pdm.store.batch import Batch, Point, check_name, to_ns
from pdm.store.errors import PointsRejectedError, RejectedPoint
from pdm.store.schema import MACHINE_TAG, FieldType

log = logging.getLogger(__name__)

Aggregate = Literal["mean", "max", "min", "last"]
AGGREGATES: tuple[str, ...] = ("mean", "max", "min", "last")
TimeLike: TypeAlias = pd.Timestamp | datetime | str | int

#: Default rows per chunk for streamed reads.
CHUNK_ROWS = 100_000


@dataclass
class WriteResult:
    """What a write did: points stored, and those rejected as malformed."""

    written: int = 0
    rejected: list[RejectedPoint] = field(default_factory=list)


@dataclass(frozen=True)
class ReadQuery:
    """A validated read, as handed to back ends.

    ``start`` is inclusive, ``stop`` exclusive, both int64 ns. ``every_ns`` is
    the downsampling interval (None = raw points); buckets are aligned to the
    epoch and labelled by their start, as InfluxDB does.
    """

    measurement: str
    machines: tuple[str, ...] | None
    start: int
    stop: int
    fields: tuple[str, ...] | None
    every_ns: int | None
    agg: str
    chunk_rows: int


class Store(abc.ABC):
    """One interface over the embedded DuckDB file, InfluxDB 1.x and 2.x."""

    backend: ClassVar[str]

    # ------------------------------------------------------------------ write
    def write(
        self,
        data: pd.DataFrame | Iterable[Point | Mapping[str, Any]],
        measurement: str | None = None,
        tag_columns: Sequence[str] = (),
        field_columns: Sequence[str] | None = None,
        *,
        time_column: str | None = None,
        strict: bool = True,
    ) -> WriteResult:
        """Write points, or a DataFrame of one measurement.

        Writing the same (measurement, tags, time) again merges into the stored
        point, field by field, so re-runs store each point once.

        Parameters
        ----------
        data
            ``Point`` objects / mappings with measurement, tags, fields, time;
            or a DataFrame (then ``measurement`` and ``tag_columns`` are
            needed; time is its DatetimeIndex or ``time_column``).
        strict
            When True (default) malformed points raise ``PointsRejectedError``
            after every good point has been written; when False they are only
            returned in the result.

        Raises
        ------
        PointsRejectedError, InvalidNameError, StoreUnavailableError, AuthenticationError
        """
        if isinstance(data, pd.DataFrame):
            if measurement is None:
                raise ValueError("writing a DataFrame needs measurement=")
            known = self._known_field_types(measurement)
            one, rejected = _batch.from_frame(
                data, measurement, list(tag_columns), field_columns, known, time_column
            )
            batches = [one] if one is not None else []
        else:
            points = list(data)
            measurements = {
                (p.measurement if isinstance(p, Point) else p.get("measurement")) for p in points
            }
            known_all = {
                m: self._known_field_types(m)
                for m in measurements
                if isinstance(m, str) and _is_safe(m)
            }
            batches, rejected = _batch.from_points(points, known_all)
        written = 0
        for b in batches:
            rejected.extend(self._write_batch(b))
            written = sum(len(b.frame) for b in batches)
        written -= sum(1 for r in rejected if r.reason.startswith("server:"))
        rejected.sort(key=lambda r: r.index)
        for r in rejected:
            log.warning("rejected point %s", r)
        result = WriteResult(written=max(written, 0), rejected=rejected)
        if rejected and strict:
            raise PointsRejectedError(rejected, result.written)
        return result

    # ------------------------------------------------------------------- read
    def read(
        self,
        measurements: str | Sequence[str],
        machines: str | Sequence[str] | None = None,
        start: TimeLike | None = None,
        stop: TimeLike | None = None,
        *,
        fields: Sequence[str] | None = None,
        every: str | pd.Timedelta | None = None,
        agg: Aggregate = "mean",
    ) -> pd.DataFrame:
        """Read ``[start, stop)`` of measurements for machines into one DataFrame.

        ``every`` (e.g. ``"1h"``) downsamples on the server: one row per
        series and interval with the ``agg`` of each numeric field.
        """
        names = [measurements] if isinstance(measurements, str) else list(measurements)
        frames = []
        for m in names:
            parts = list(self.iter_read(m, machines, start, stop, fields=fields, every=every, agg=agg))
            tags = sorted({t for p in parts for t in p.attrs.get("tags", ())})
            frame = _concat(parts, tags)
            frame = _sort(frame, tags)
            if len(names) > 1:
                frame.insert(0, "measurement", m)
            frames.append(frame)
        if len(frames) == 1:
            return frames[0]
        out = pd.concat(frames)
        return out.sort_index(kind="stable")

    def iter_read(
        self,
        measurement: str,
        machines: str | Sequence[str] | None = None,
        start: TimeLike | None = None,
        stop: TimeLike | None = None,
        *,
        fields: Sequence[str] | None = None,
        every: str | pd.Timedelta | None = None,
        agg: Aggregate = "mean",
        chunk_rows: int = CHUNK_ROWS,
    ) -> Iterator[pd.DataFrame]:
        """Stream a read in chunks of about ``chunk_rows`` rows (memory stays bounded).

        Chunks follow the back end's natural order; always yields at least one
        (possibly empty) frame with the full column layout.
        """
        q = self._query(measurement, machines, start, stop, fields, every, agg, chunk_rows)
        ftypes = self._known_field_types(q.measurement)
        yielded = False
        for raw, tag_keys in self._iter_read(q):
            if raw.empty:
                continue
            yielded = True
            yield finalize(raw, tag_keys, ftypes, q)
        if not yielded:
            yield finalize(pd.DataFrame({"time": np.empty(0, np.int64)}), [], ftypes, q)

    def _query(
        self,
        measurement: str,
        machines: str | Sequence[str] | None,
        start: TimeLike | None,
        stop: TimeLike | None,
        fields: Sequence[str] | None,
        every: str | pd.Timedelta | None,
        agg: str,
        chunk_rows: int,
    ) -> ReadQuery:
        check_name(measurement, "measurement")
        if isinstance(machines, str):
            machines = [machines]
        mach = None if machines is None else tuple(str(m) for m in machines)
        if fields is not None:
            fields = tuple(check_name(f, "field") for f in fields)
        lo = _time_arg(start, "start", default=_batch._MIN_NS)
        hi = _time_arg(stop, "stop", default=_batch._MAX_NS)
        if hi <= lo:
            raise ValueError(f"stop ({stop}) must be after start ({start})")
        every_ns = None
        if every is not None:
            every_ns = int(pd.Timedelta(every).value)
            if every_ns <= 0:
                raise ValueError(f"every must be positive, got {every!r}")
            if agg not in AGGREGATES:
                raise ValueError(f"agg must be one of {AGGREGATES}, got {agg!r}")
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        return ReadQuery(measurement, mach, lo, hi, fields, every_ns, agg, chunk_rows)

    # ------------------------------------------------------------ catalogue
    def machines(self, measurements: Sequence[str] | None = None) -> list[str]:
        """Sorted machine ids that have points in any of ``measurements`` (default: all)."""
        if measurements is not None:
            measurements = [check_name(m, "measurement") for m in measurements]
        return sorted(set(self._tag_values(MACHINE_TAG, measurements)))

    def sensors(self, machines: str | Sequence[str] | None = None) -> pd.DataFrame:
        """One row per (machine, measurement, sensor, field) that has data.

        ``sensor`` is "" for measurements without a sensor tag (process values).
        """
        if isinstance(machines, str):
            machines = [machines]
        rows = self._sensors(None if machines is None else tuple(machines))
        out = pd.DataFrame(rows, columns=["machine", "measurement", "sensor", "field"])
        return out.drop_duplicates().sort_values(list(out.columns)).reset_index(drop=True)

    def measurements(self) -> list[str]:
        """Sorted names of the measurements that hold data."""
        return sorted(self._measurements())

    # ----------------------------------------------------------------- delete
    def delete(
        self,
        measurements: str | Sequence[str],
        start: TimeLike,
        stop: TimeLike,
        machines: str | Sequence[str] | None = None,
    ) -> None:
        """Delete points in ``[start, stop)`` (for re-runs); all machines unless given."""
        names = [measurements] if isinstance(measurements, str) else list(measurements)
        if isinstance(machines, str):
            machines = [machines]
        for m in names:
            q = self._query(m, machines, start, stop, None, None, "mean", CHUNK_ROWS)
            self._delete(q)

    # ---------------------------------------------------------------- health
    def ping(self) -> None:
        """Raise StoreUnavailableError / AuthenticationError unless the store answers."""
        self._ping()

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- hooks
    @abc.abstractmethod
    def _write_batch(self, batch: Batch) -> list[RejectedPoint]:
        """Store one validated batch; return points the server refused ("server: ..." reasons)."""

    @abc.abstractmethod
    def _iter_read(self, q: ReadQuery) -> Iterator[tuple[pd.DataFrame, list[str]]]:
        """Yield (raw frame, its tag keys): an int64-ns or datetime ``time`` column, tags, fields.

        With ``q.every_ns`` the frames hold one row per series and bucket,
        fields named as stored (not ``mean_x``), ``time`` = bucket start.
        """

    @abc.abstractmethod
    def _tag_values(self, key: str, measurements: Sequence[str] | None) -> Iterable[str]:
        """Distinct values of tag ``key``."""

    @abc.abstractmethod
    def _sensors(self, machines: tuple[str, ...] | None) -> Iterable[tuple[str, str, str, str]]:
        """(machine, measurement, sensor, field) tuples that have data."""

    @abc.abstractmethod
    def _measurements(self) -> Iterable[str]:
        """Measurement names that hold data."""

    @abc.abstractmethod
    def _delete(self, q: ReadQuery) -> None:
        """Delete q.measurement in [q.start, q.stop) for q.machines (None = all)."""

    @abc.abstractmethod
    def _ping(self) -> None: ...

    def _known_field_types(self, measurement: str) -> dict[str, FieldType]:
        """Field types already stored for ``measurement`` (back ends may cache)."""
        return {}


def _is_safe(name: str) -> bool:
    try:
        check_name(name, "measurement")
    except ValueError:
        return False
    return True


def _time_arg(value: TimeLike | None, what: str, default: int) -> int:
    if value is None:
        return default
    ns = to_ns(np.array([value], dtype=object))[0]
    if ns == np.iinfo(np.int64).min:
        raise ValueError(f"{what} is not a valid time: {value!r}")
    return int(ns)


def finalize(
    raw: pd.DataFrame, tag_keys: Sequence[str], ftypes: Mapping[str, FieldType], q: ReadQuery
) -> pd.DataFrame:
    """Bring a back end's raw frame into the documented layout and dtypes.

    The result carries its tag keys in ``frame.attrs["tags"]``.
    """
    frame = raw.copy()
    if "time" in frame.columns:
        t = frame.pop("time")
        if pd.api.types.is_integer_dtype(t):
            idx = pd.DatetimeIndex(pd.to_datetime(t.to_numpy(np.int64), unit="ns", utc=True))
        else:
            idx = pd.DatetimeIndex(pd.to_datetime(t, utc=True))
    else:
        idx = pd.DatetimeIndex(frame.index)
        idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    idx = idx.as_unit("ns")
    idx.name = "time"
    frame.index = idx
    tags = sorted(c for c in tag_keys if c in frame.columns)
    field_names = [c for c in frame.columns if c not in tags]
    if q.fields is not None:
        field_names = [f for f in q.fields if f in frame.columns]
    field_names = sorted(field_names)
    for t in tags:
        col = frame[t].astype(object)
        frame[t] = col.where(col.notna(), "").astype(str).astype(object)
    for f in field_names:
        ftype = ftypes.get(f)
        if q.every_ns is not None and ftype in ("integer", "boolean") and q.agg == "mean":
            ftype = "float"
        if ftype is None:
            ftype = _infer_read_type(frame[f])
        frame[f] = _batch.cast_field(frame[f], ftype)
    out = frame[[*tags, *field_names]]
    out.attrs["tags"] = tags
    return out


def _infer_read_type(col: pd.Series) -> FieldType:
    if pd.api.types.is_bool_dtype(col):
        return "boolean"
    if pd.api.types.is_integer_dtype(col):
        return "integer"
    if pd.api.types.is_numeric_dtype(col):
        return "float"
    non_null = col.dropna()
    if len(non_null) and all(isinstance(v, bool) for v in non_null):
        return "boolean"
    if len(non_null) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in non_null):
        return "float"
    return "string"


def _concat(parts: list[pd.DataFrame], tags: list[str]) -> pd.DataFrame:
    if len(parts) == 1:
        frame = parts[0]
    else:
        frame = pd.concat(parts)
        for t in tags:
            frame[t] = frame[t].where(frame[t].notna(), "")
        fields = sorted(c for c in frame.columns if c not in tags)
        frame = frame[[*tags, *fields]]
    frame.attrs["tags"] = tags
    return frame


def _sort(frame: pd.DataFrame, tags: list[str]) -> pd.DataFrame:
    """Order rows by time, then by tags (stable, so back ends agree exactly)."""
    if frame.empty:
        return frame
    keys = pd.DataFrame({"__time": frame.index.asi8, **{t: frame[t].to_numpy() for t in tags}})
    order = keys.sort_values(["__time", *tags], kind="stable").index.to_numpy()
    out = frame.iloc[order]
    out.attrs["tags"] = tags
    return out
