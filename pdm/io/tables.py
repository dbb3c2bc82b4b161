"""Reading a plant's CSV and Parquet files in chunks, and its times as UTC nanoseconds.

Files are read twice by the importers (once to validate, once to write), so
memory stays bounded by the chunk size however large the file is. CSV cells
are read as text and converted here, so every bad cell can be reported with
its row number (1 = the first data row, after the header).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

#: File name endings → reader.
FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
NAT = np.iinfo(np.int64).min
# InfluxDB's representable range (pdm.store.batch refuses anything outside it).
_MIN_NS, _MAX_NS = -9223372036854775806, 9223372036854775806
_INTEGER_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")


class ImportFileError(ValueError):
    """A file that cannot be imported; ``problems`` lists every reason found."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        text = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.path}: not imported, nothing was written:\n{text}")


def file_format(path: str | Path) -> str:
    """``csv``, ``tsv`` or ``parquet`` from the file name (``.gz`` allowed for text)."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst", ".xz") and len(suffixes) > 1:
        kind = FORMATS.get(suffixes[-2])
        if kind in ("csv", "tsv"):
            return kind
    kind = FORMATS.get(suffixes[-1] if suffixes else "")
    if kind is None:
        raise ImportFileError(path, [f"unknown file type {p.suffix or '(none)'!r}: use .csv, .tsv (optionally "
                                     ".gz) or .parquet"])
    return kind


def columns_of(path: str | Path) -> list[str]:
    """The file's column names (reads the header / schema only)."""
    kind = file_format(path)
    if not Path(path).is_file():
        raise ImportFileError(path, ["no such file"])
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.ParquetFile(path).schema_arrow.names)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise ImportFileError(path, [f"not a readable Parquet file: {exc}"]) from exc
    try:
        head = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", nrows=0, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ImportFileError(path, [f"not a readable {kind.upper()} file: {exc}"]) from exc
    return [str(c) for c in head.columns]


@dataclass
class Chunk:
    frame: pd.DataFrame
    first_row: int  # 1-based number of the chunk's first data row
    done: float | None  # fraction of the file read so far, when known


def iter_chunks(path: str | Path, columns: list[str], chunk_rows: int) -> Iterator[Chunk]:
    """The file's ``columns`` in chunks of ``chunk_rows`` rows (CSV cells as text)."""
    kind = file_format(path)
    first = 1
    if kind == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        total = max(pf.metadata.num_rows, 1)
        for rb in pf.iter_batches(batch_size=chunk_rows, columns=columns):
            frame = rb.to_pandas()
            first += len(frame)
            yield Chunk(frame, first - len(frame), min((first - 1) / total, 1.0))
        return
    size = max(Path(path).stat().st_size, 1)
    compressed = Path(path).suffix.lower() in (".gz", ".bz2", ".zst", ".xz")
    with open(path, "rb") as fh:
        try:
            # A plain file is read through our handle so that its position gives the progress.
            reader = pd.read_csv(path if compressed else fh, sep="\t" if kind == "tsv" else ",", usecols=columns,
                                 dtype=object, chunksize=chunk_rows)  # object: no Arrow round trips
            for frame in reader:
                first += len(frame)
                yield Chunk(frame[columns], first - len(frame), None if compressed else fh.tell() / size)
        except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
            raise ImportFileError(path, [f"cannot read rows after row {first - 1}: {exc}"]) from exc


@dataclass(frozen=True)
class TimeSpec:
    """How a file's time column reads.

    Timestamps without an offset are local times in ``tz`` (default UTC).
    Integer steps (cycles) need ``period`` (one step's duration) and ``origin``
    (the time of step 0); numbers since the Unix epoch need ``epoch_unit``.
    """

    tz: str = "UTC"
    period: str | None = None
    origin: str | None = None
    epoch_unit: str | None = None
    format: str | None = None

    def problems(self) -> list[str]:
        out = []
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(f"--tz {self.tz!r} is not a time zone (use e.g. UTC, Europe/Berlin)")
        if self.period is not None:
            try:
                ok = pd.Timedelta(self.period) > pd.Timedelta(0)
            except ValueError:
                ok = False
            if not ok:
                out.append(f"--period {self.period!r} is not a positive duration (use e.g. 10s, 1min, 1h)")
            if self.origin is None:
                out.append("--period needs --origin: the time of step 0 (e.g. 2024-01-01T00:00:00Z)")
        if self.origin is not None:
            if self.period is None:
                out.append("--origin needs --period: the duration of one step")
            try:
                pd.Timestamp(self.origin)
            except ValueError:
                out.append(f"--origin {self.origin!r} is not a timestamp")
        if self.epoch_unit is not None:
            if self.epoch_unit not in ("s", "ms", "us", "ns"):
                out.append(f"--epoch-unit {self.epoch_unit!r}: use s, ms, us or ns")
            if self.period is not None:
                out.append("--epoch-unit and --period exclude each other")
        return out

    def origin_ns(self) -> int:
        ts = pd.Timestamp(self.origin)
        ts = ts.tz_localize(self.tz) if ts.tzinfo is None else ts
        return int(ts.tz_convert("UTC").as_unit("ns").value)


def looks_numeric(col: pd.Series) -> bool:
    """True when every present value of a time column is an integer (steps or epoch numbers)."""
    present = col.dropna().head(1000)  # a sample decides: the rest is checked value by value later
    if present.empty:
        return False
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return True
    return bool(present.astype(str).str.match(_INTEGER_TEXT).all())


def parse_times(col: pd.Series, spec: TimeSpec) -> np.ndarray:
    """Times as int64 ns UTC; ``NAT`` where a value is missing or cannot be read."""
    if spec.period is not None or spec.epoch_unit is not None:
        nums = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        out = np.full(len(nums), NAT, dtype=np.int64)
        if spec.period is not None:
            ok = np.isfinite(nums) & (np.floor(nums) == nums)
            step = int(pd.Timedelta(spec.period).value)
            with np.errstate(all="ignore"):
                ok &= np.abs(nums) * step < 9e18
            ns = spec.origin_ns() + nums[ok].astype(np.int64) * step
        else:
            factor = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[spec.epoch_unit or "s"]
            ok = np.isfinite(nums)
            with np.errstate(all="ignore"):
                ok &= np.abs(nums) * factor < 9e18
            ns = np.round(nums[ok] * factor).astype(np.int64)
        out[ok] = ns
        return _in_range(out)
    if pd.api.types.is_datetime64_any_dtype(col):
        return _in_range(_utc_ns(pd.DatetimeIndex(col), spec.tz))
    text = col.astype(object).where(col.notna(), None)
    out = _parse_text(text, spec.format, spec.tz)
    retry = (out == NAT) & text.notna().to_numpy()
    if retry.any() and spec.format is None:
        out[retry] = _parse_text(text[retry], "mixed", spec.tz)
    return _in_range(out)


def _parse_text(text: pd.Series, fmt: str | None, tz: str) -> np.ndarray:
    try:
        parsed = pd.to_datetime(text, errors="coerce", format=fmt)
    except (ValueError, TypeError):  # mixed offsets: read them as instants
        try:
            parsed = pd.to_datetime(text, errors="coerce", format=fmt, utc=True)
        except (ValueError, TypeError):
            return np.full(len(text), NAT, dtype=np.int64)
    if not pd.api.types.is_datetime64_any_dtype(parsed):
        return np.full(len(text), NAT, dtype=np.int64)
    return _utc_ns(pd.DatetimeIndex(parsed), tz)


def _utc_ns(idx: pd.DatetimeIndex, tz: str) -> np.ndarray:
    if idx.tz is None:
        # Local times that a DST change skips or repeats are unreadable, not guessed.
        idx = idx.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    return np.asarray(idx.tz_convert("UTC").as_unit("ns").asi8, dtype=np.int64)


def _in_range(ns: np.ndarray) -> np.ndarray:
    ns[(ns < _MIN_NS) | (ns > _MAX_NS)] = NAT
    return ns


class Problems:
    """Problems found while validating, each with its count and a few example rows."""

    def __init__(self, limit: int = 3) -> None:
        self.limit = limit
        self._found: dict[str, tuple[int, list[str]]] = {}
        self._notes: list[str] = []

    def note(self, text: str) -> None:
        if text not in self._notes:
            self._notes.append(text)

    def add(self, what: str, rows: np.ndarray, values: pd.Series | np.ndarray | None = None,
            labels: Sequence[str] | None = None) -> None:
        """Count ``rows`` under ``what``; show a few as "row N (value)", or as ``labels``."""
        rows = np.asarray(rows)
        if len(rows) == 0:
            return
        count, shown = self._found.get(what, (0, []))
        vals = None if values is None else np.asarray(values, dtype=object)
        for i in range(min(len(rows), self.limit - len(shown))):
            if labels is not None:
                shown.append(labels[i])
            else:
                shown.append(f"row {int(rows[i])}" + ("" if vals is None else f" ({vals[i]!r})"))
        self._found[what] = (count + len(rows), shown)

    def __bool__(self) -> bool:
        return bool(self._found or self._notes)

    def messages(self) -> list[str]:
        out = list(self._notes)
        for what, (count, shown) in self._found.items():
            more = f" and {count - len(shown):,} more" if count > len(shown) else ""
            out.append(f"{what}: {count:,} row{'s' if count > 1 else ''}, e.g. " + ", ".join(shown) + more)
        return out
