"""The InfluxDB 2.x back end, on the official ``influxdb-client``.

Writes go to ``/api/v2/write`` (precision ns) as line protocol from
:func:`pdm.store.lineprotocol.encode`, ``batch_lines`` lines per request.
Reads are Flux; every value that comes from a caller (bucket, measurement,
machine ids, fields, times, interval) travels as a query parameter
(influxdb-client's ``params=``, sent as ``option`` statements in the
request's ``extern``), never pasted into the Flux text. The annotated CSV
answer is streamed and parsed in bulk with pandas, ``chunk_rows`` rows at a
time, so memory stays bounded on large reads.

Errors: 401/403 raise AuthenticationError at once; connection errors, 5xx,
408 and 429 are retried with exponential backoff and then raise
StoreUnavailableError naming the URL (never the token); a write the server
refuses (400 parse error naming lines, 422 field type conflict) comes back as
RejectedPoint with a "server: ..." reason and the rest is written; other
rejections raise QueryError, an unknown org/bucket ConfigurationError.
"""

from __future__ import annotations

import http.client
import io
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, cast

import numpy as np
import pandas as pd
import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain import DateTimeLiteral, Duration, DurationLiteral
from influxdb_client.rest import ApiException
from influxdb_client.service import PingService
from pydantic import SecretStr

from pdm.store import lineprotocol
from pdm.store.base import AGGREGATES, ReadQuery, Store
from pdm.store.batch import _MAX_NS, _MIN_NS, Batch
from pdm.store.errors import (
    AuthenticationError,
    ConfigurationError,
    QueryError,
    RejectedPoint,
    StoreUnavailableError,
)
from pdm.store.http import TRANSIENT
from pdm.store.schema import MACHINE_TAG, SENSOR_TAG, FieldType

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Annotated-CSV datatypes -> pdm field types.
_FIELD_TYPES: dict[str, FieldType] = {
    "double": "float",
    "long": "integer",
    "unsignedLong": "integer",
    "boolean": "boolean",
    "string": "string",
}
#: InfluxDB's storage type names (as in "already exists as type float") -> pdm field types.
_STORAGE_TYPES: dict[str, FieldType] = {
    "float": "float",
    "integer": "integer",
    "unsigned": "integer",
    "boolean": "boolean",
    "string": "string",
}
_NS_PRECISION: Any = WritePrecision.NS
_FLUX_KEY_COLUMNS = frozenset({"_start", "_stop", "_measurement", "_field"})
_FLUX_VALUE_COLUMNS = frozenset({"_time", "_value", "_start", "_stop"})
_NET_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
_STREAM_BYTES = 1 << 20
_TYPE_CONFLICT_RE = re.compile(
    r'input field "(?P<field>[^"]+)" on measurement "(?P<measurement>[^"]+)" is type (?P<got>\w+), '
    r"already exists as type (?P<have>\w+)"
)


def rfc3339(ns: int) -> str:
    """int64 ns as RFC3339 with nanoseconds (what InfluxDB's APIs take)."""
    return str(np.datetime64(int(ns), "ns")) + "Z"


def _predicate_string(value: str) -> str:
    """A delete-predicate string literal (influxql double-quoted, escapes for \\ and ")."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class _Block:
    """One annotated-CSV table header: column labels, datatypes and group flags."""

    labels: list[str]
    datatypes: list[str]
    groups: list[bool]
    is_error: bool = False


class InfluxDB2Store(Store):
    """Time series in an InfluxDB 2.x bucket.

    Parameters
    ----------
    url
        Base URL, e.g. ``http://influxdb:8086`` (without credentials).
    org, bucket
        Organisation (name or ID) and bucket name.
    token
        API token with read and write access to the bucket.
    timeout_s
        Connect and per-read socket timeout of each request.
    retries, backoff_s
        Retries of transient failures (connection errors, 5xx, 408, 429) and
        the first backoff (doubling, with jitter, at most 10 s).
    batch_lines
        Line-protocol lines per write request.
    """

    backend: ClassVar[str] = "influxdb2"

    def __init__(
        self,
        url: str,
        *,
        org: str = "",
        bucket: str = "pdm",
        token: SecretStr | str = "",
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        batch_lines: int = 10_000,
        verify_ssl: bool = True,
        max_backoff_s: float = 10.0,
    ) -> None:
        if not bucket:
            raise ConfigurationError("store.bucket: InfluxDB 2.x needs a bucket name")
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        # influxdb-client leaves the org parameter out when it is None
        self._org_param: Any = cast(Any, org or None)
        self._token = token.get_secret_value() if isinstance(token, SecretStr) else str(token or "")
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.batch_lines = int(batch_lines)
        timeout_ms = int(timeout_s * 1000)
        self._client = InfluxDBClient(
            url=self.url,
            token=self._token,
            org=self._org_param,
            timeout=(timeout_ms, timeout_ms),
            verify_ssl=verify_ssl,
            retries=False,
        )
        self._query_api = self._client.query_api()
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._delete_api = self._client.delete_api()
        self._types: dict[str, dict[str, FieldType]] = {}

    def __repr__(self) -> str:
        return f"InfluxDB2Store(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r})"

    # ------------------------------------------------------------ plumbing
    def _safe(self, text: Any) -> str:
        """``text`` as str with the token blanked out, just in case."""
        text = str(text)
        if self._token:
            text = text.replace(self._token, "***")
        return text

    @staticmethod
    def _message(exc: ApiException) -> str:
        msg = getattr(exc, "message", None) or exc.reason or ""
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        return str(msg)

    def _call(self, what: str, send: Callable[[], T]) -> T:
        """Run ``send`` with retries; map auth and transport failures to store errors.

        Other HTTP errors (4xx) are re-raised as ApiException for the caller.
        """
        attempt = 0
        while True:
            retry_after = None
            try:
                return send()
            except ApiException as exc:
                status = exc.status or 0
                message = self._safe(self._message(exc))
                if status in (401, 403):
                    raise AuthenticationError(
                        f"{what} to {self.url} refused: HTTP {status} {message} (check the token "
                        f"and its permissions on org {self.org!r}, bucket {self.bucket!r})"
                    ) from None
                if status == 0:  # TLS failure: retrying does not help
                    raise StoreUnavailableError(f"{what} to {self.url} failed: {message[:500]}") from None
                if status not in TRANSIENT:
                    raise
                reason = f"HTTP {status}: {message[:300]}"
                retry_after = _retry_after(exc)
            except _NET_ERRORS as exc:
                detail = self._safe(exc).split(": ", 1)[-1][:200]  # drop urllib3's object repr
                reason = f"{type(exc).__name__}: {detail}"
            if attempt >= self.retries:
                raise StoreUnavailableError(
                    f"{what} to {self.url} failed after {attempt + 1} attempt(s): {reason}"
                ) from None
            delay = min(self.max_backoff_s, self.backoff_s * (2**attempt)) * (0.5 + random.random() / 2)
            if retry_after is not None:
                delay = max(delay, min(retry_after, self.max_backoff_s))
            log.warning(
                "%s to %s failed (%s); retry %d/%d in %.2fs",
                what, self.url, reason, attempt + 1, self.retries, delay,
            )
            time.sleep(delay)
            attempt += 1

    def _rejected(self, what: str, exc: ApiException) -> Exception:
        status, message = exc.status, self._safe(self._message(exc))
        if status == 404:
            return ConfigurationError(
                f"{what} to {self.url}: {message} (check store.org {self.org!r} and store.bucket {self.bucket!r})"
            )
        return QueryError(f"{what} to {self.url} rejected: HTTP {status}: {message[:1000]}")

    # ----------------------------------------------------------------- query
    def _flux(self, query: str, params: dict[str, Any], what: str = "query") -> Any:
        """Open a Flux query; the raw streaming HTTP response (caller closes it)."""

        def send() -> Any:
            return self._query_api.query_raw(query, org=self._org_param, params=params)

        try:
            return self._call(what, send)
        except ApiException as exc:
            raise self._rejected(what, exc) from None

    def _frames(
        self, query: str, params: dict[str, Any], chunk_rows: int, what: str = "query"
    ) -> Iterator[tuple[_Block, pd.DataFrame]]:
        """Run a query and yield (table header, frame of at most ``chunk_rows`` rows)."""
        resp = self._flux(query, params, what)
        done = False
        try:
            yield from _parse_annotated_csv(self._stream(resp, what), chunk_rows)
            done = True
        finally:
            if done:
                resp.release_conn()
            else:
                resp.close()

    def _stream(self, resp: Any, what: str) -> Iterator[bytes]:
        try:
            yield from resp.stream(_STREAM_BYTES, decode_content=True)
        except _NET_ERRORS as exc:
            raise StoreUnavailableError(
                f"{what} to {self.url} broke off while reading the answer: {type(exc).__name__}"
            ) from None

    def _base_params(self, start: int, stop: int) -> dict[str, Any]:
        return {
            "p_bucket": self.bucket,
            "p_start": DateTimeLiteral("DateTimeLiteral", rfc3339(start)),
            "p_stop": DateTimeLiteral("DateTimeLiteral", rfc3339(stop)),
        }

    @staticmethod
    def _any_of(column: str, values: Sequence[str], prefix: str, params: dict[str, Any]) -> str:
        """``r.col == p_x0 or r.col == p_x1 ...`` with the values put into ``params``.

        Equality chains are pushed down to the storage engine; ``contains()`` is not.
        """
        terms = []
        for i, v in enumerate(values):
            name = f"{prefix}{i}"
            params[name] = str(v)
            terms.append(f"r.{column} == {name}")
        return " or ".join(terms)

    # ----------------------------------------------------------------- write
    def _write_batch(self, batch: Batch) -> list[RejectedPoint]:
        lines = lineprotocol.encode(batch)
        rejected: list[RejectedPoint] = []
        for offset in range(0, len(lines), self.batch_lines):
            chunk = lines[offset : offset + self.batch_lines]
            rows = list(range(offset, offset + len(chunk)))
            rejected.extend(self._write_lines(batch, chunk, rows))
        known = self._types.setdefault(batch.measurement, {})
        for name, ftype in batch.field_types.items():
            known.setdefault(name, ftype)
        return rejected

    def _write_lines(self, batch: Batch, lines: list[str], rows: list[int]) -> list[RejectedPoint]:
        """Send ``lines`` (``rows``: their rows in ``batch.frame``); report what the server refuses.

        InfluxDB 2.x refuses a whole request when a line does not parse: the
        lines it names are rejected and the others sent again.
        """
        pending = list(range(len(lines)))
        rejected: list[RejectedPoint] = []

        def reject(i: int, reason: str) -> None:
            point = int(batch.rows[rows[i]]) if len(batch.rows) else rows[i]
            rejected.append(RejectedPoint(point, _shorten(lines[i]), f"server: {reason}"))

        while pending:
            body = "\n".join(lines[i] for i in pending).encode("utf-8")

            def send(body: bytes = body) -> None:
                self._write_api.write(
                    bucket=self.bucket, org=self._org_param, record=body, write_precision=_NS_PRECISION
                )

            try:
                self._call("write", send)
                return rejected
            except ApiException as exc:
                status, message = exc.status, self._safe(self._message(exc))
                if status == 400:
                    named = _parse_errors(message, {lines[i] for i in pending})
                    bad = [i for i in pending if lines[i] in named]
                    if not bad:
                        raise QueryError(f"write to {self.url} rejected: HTTP 400: {message[:500]}") from None
                    for i in bad:
                        reject(i, named[lines[i]])
                    bad_set = set(bad)
                    pending = [i for i in pending if i not in bad_set]
                    continue
                if status == 422:
                    # partial write: the other points are stored, these were dropped
                    m = _TYPE_CONFLICT_RE.search(message)
                    if m is None or m["measurement"] != batch.measurement or m["field"] not in batch.frame:
                        raise QueryError(f"write to {self.url} partly refused: {message[:500]}") from None
                    have = _STORAGE_TYPES.get(m["have"])
                    if have is not None:
                        self._types.setdefault(batch.measurement, {})[m["field"]] = have
                    present = batch.frame[m["field"]].notna().to_numpy()
                    reason = message.split("partial write: ", 1)[-1]
                    for i in pending:
                        if present[rows[i]]:
                            reject(i, reason)
                    return rejected
                if status == 413 and len(pending) > 1:
                    half = len(pending) // 2
                    for part in (pending[:half], pending[half:]):
                        rejected += self._write_lines(batch, [lines[i] for i in part], [rows[i] for i in part])
                    return rejected
                raise self._rejected("write", exc) from None
        return rejected

    # ------------------------------------------------------------------ read
    def _known_field_types(self, measurement: str) -> dict[str, FieldType]:
        cached = self._types.get(measurement)
        if cached is not None:
            return dict(cached)
        params = self._base_params(_MIN_NS, _MAX_NS)
        params["p_measurement"] = measurement
        query = (
            "from(bucket: p_bucket)\n"
            "  |> range(start: p_start, stop: p_stop)\n"
            "  |> filter(fn: (r) => r._measurement == p_measurement)\n"
            '  |> group(columns: ["_field"])\n'
            "  |> last()\n"
            '  |> keep(columns: ["_field", "_value"])'
        )
        types: dict[str, FieldType] = {}
        for block, frame in self._frames(query, params, 100_000, "field type query"):
            if "_field" not in block.labels or "_value" not in block.labels:
                continue
            ftype = _FIELD_TYPES.get(block.datatypes[block.labels.index("_value")].split(":")[0])
            if ftype is None:
                continue
            for name in frame["_field"].dropna():
                types.setdefault(str(name), ftype)
        self._types[measurement] = types
        return dict(types)

    def _iter_read(self, q: ReadQuery) -> Iterator[tuple[pd.DataFrame, list[str]]]:
        if q.machines is not None and not q.machines:
            return
        start, stop = q.start, q.stop
        fields = list(q.fields) if q.fields is not None else None
        if q.every_ns is not None:
            # aggregate numeric fields only (mean/max/min of text make no sense)
            known = self._known_field_types(q.measurement)
            numeric = [f for f, t in sorted(known.items()) if t in ("float", "integer")]
            fields = numeric if fields is None else [f for f in fields if f in numeric]
            # keep windows away from int64 overflow at the ends of time
            every = q.every_ns
            start = max(start, -((-_MIN_NS) // every) * every)
            stop = min(stop, (_MAX_NS // every) * every)
            if stop <= start:
                return
        if fields is not None and not fields:
            return
        params = self._base_params(start, stop)
        params["p_measurement"] = q.measurement
        lines = [
            "from(bucket: p_bucket)",
            "  |> range(start: p_start, stop: p_stop)",
            "  |> filter(fn: (r) => r._measurement == p_measurement)",
        ]
        if q.machines is not None:
            lines.append(f"  |> filter(fn: (r) => {self._any_of(MACHINE_TAG, q.machines, 'p_machine', params)})")
        if fields is not None:
            lines.append(f"  |> filter(fn: (r) => {self._any_of('_field', fields, 'p_field', params)})")
        if q.every_ns is not None:
            if q.agg not in AGGREGATES:  # the one name in the text: a fixed choice, never caller data
                raise ValueError(f"agg must be one of {AGGREGATES}, got {q.agg!r}")
            params["p_every"] = DurationLiteral(
                "DurationLiteral", [Duration("Duration", magnitude=q.every_ns, unit="ns")]
            )
            lines.append(
                f'  |> aggregateWindow(every: p_every, fn: {q.agg}, createEmpty: false, timeSrc: "_start")'
            )
        lines.append('  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")')
        query = "\n".join(lines)

        for block, frame in self._frames(query, params, q.chunk_rows, "read"):
            if frame.empty or "_time" not in frame.columns:
                continue
            # after pivot the group key is _start, _stop, _measurement and the tags;
            # the other columns are _time and the fields
            labels = [c for c in block.labels if c in frame.columns]
            grouped = dict(zip(block.labels, block.groups, strict=True))
            tags = [c for c in labels if grouped[c] and c not in _FLUX_KEY_COLUMNS]
            values = [c for c in labels if not grouped[c] and c not in _FLUX_VALUE_COLUMNS]
            out = frame[["_time", *tags, *values]].rename(columns={"_time": "time"})
            if q.every_ns is not None:
                # Flux clips the first window to the range start: label every bucket
                # by its epoch-aligned start, as the contract says
                t = out["time"].to_numpy(np.int64)
                out["time"] = t - np.mod(t, q.every_ns)
            yield out, tags

    # ------------------------------------------------------------- catalogue
    def _tag_values(self, key: str, measurements: Sequence[str] | None) -> Iterable[str]:
        if measurements is not None and not measurements:
            return []
        params = self._base_params(_MIN_NS, _MAX_NS)
        params["p_tag"] = key
        pred = "true" if measurements is None else self._any_of("_measurement", measurements, "p_measurement", params)
        query = (
            'import "influxdata/influxdb/schema"\n'
            "schema.tagValues(bucket: p_bucket, tag: p_tag, "
            f"predicate: (r) => {pred}, start: p_start, stop: p_stop)"
        )
        return self._single_column(query, params, "_value", "tag values query")

    def _measurements(self) -> Iterable[str]:
        params = self._base_params(_MIN_NS, _MAX_NS)
        query = (
            'import "influxdata/influxdb/schema"\n'
            "schema.measurements(bucket: p_bucket, start: p_start, stop: p_stop)"
        )
        return self._single_column(query, params, "_value", "measurements query")

    def _single_column(self, query: str, params: dict[str, Any], column: str, what: str) -> list[str]:
        out: list[str] = []
        for _, frame in self._frames(query, params, 100_000, what):
            if column in frame.columns:
                out.extend(str(v) for v in frame[column].dropna() if str(v) != "")
        return sorted(set(out))

    def _sensors(self, machines: tuple[str, ...] | None) -> Iterable[tuple[str, str, str, str]]:
        if machines is not None and not machines:
            return []
        params = self._base_params(_MIN_NS, _MAX_NS)
        keys = ["_measurement", MACHINE_TAG, SENSOR_TAG, "_field"]
        cols = "[" + ", ".join(f'"{k}"' for k in keys) + "]"
        lines = ["from(bucket: p_bucket)", "  |> range(start: p_start, stop: p_stop)"]
        if machines is not None:
            lines.append(f"  |> filter(fn: (r) => {self._any_of(MACHINE_TAG, machines, 'p_machine', params)})")
        lines += [f"  |> group(columns: {cols})", "  |> last()", f"  |> keep(columns: {cols})"]
        rows: set[tuple[str, str, str, str]] = set()
        for _, frame in self._frames("\n".join(lines), params, 100_000, "sensors query"):
            if frame.empty:
                continue
            get = {k: (frame[k] if k in frame.columns else pd.Series([""] * len(frame))) for k in keys}
            for m, mach, sensor, fld in zip(*(get[k].tolist() for k in keys), strict=True):
                rows.add((_str(mach), _str(m), _str(sensor), _str(fld)))
        return sorted(rows)

    # ---------------------------------------------------------------- delete
    def _delete(self, q: ReadQuery) -> None:
        if q.machines is not None and not q.machines:
            return
        # /api/v2/delete takes both ends inclusive; ReadQuery's stop is exclusive
        start = max(q.start, _MIN_NS)
        stop = min(q.stop - 1, _MAX_NS)
        base = f"_measurement={_predicate_string(q.measurement)}"
        predicates = (
            [base]
            if q.machines is None
            else [f"{base} AND {MACHINE_TAG}={_predicate_string(m)}" for m in q.machines]
        )
        for predicate in predicates:

            def send(predicate: str = predicate) -> None:
                self._delete_api.delete(
                    rfc3339(start), rfc3339(stop), predicate, bucket=self.bucket, org=self._org_param
                )

            try:
                self._call("delete", send)
            except ApiException as exc:
                raise self._rejected("delete", exc) from None
        self._types.pop(q.measurement, None)

    # ---------------------------------------------------------------- health
    def _ping(self) -> None:
        self._call("ping", lambda: PingService(self._client.api_client).get_ping())
        # /ping answers without credentials: check token, org and bucket with a tiny query
        params = self._base_params(0, 1)
        query = "from(bucket: p_bucket) |> range(start: p_start, stop: p_stop) |> limit(n: 1)"
        for _ in self._frames(query, params, 1, "ping query"):
            pass

    def close(self) -> None:
        try:
            self._write_api.close()
        finally:
            self._client.close()


# ---------------------------------------------------------------------------
# helpers


def _str(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return ""
    return str(v)


def _shorten(line: str, limit: int = 160) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _parse_errors(message: str, sent: set[str]) -> dict[str, str]:
    """{line: reason} from 2.x's "unable to parse '<line>': <reason>" messages (one per line)."""
    named: dict[str, str] = {}
    marker = "unable to parse '"
    for piece in message.split("\n" + marker):
        if piece.startswith(marker):
            piece = piece[len(marker) :]
        cut = piece.find("': ")
        while cut >= 0:
            line = piece[:cut]
            if line in sent:
                named.setdefault(line, piece[cut + 3 :].strip())
                break
            cut = piece.find("': ", cut + 1)
    return named


def _retry_after(exc: ApiException) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After")
    except AttributeError:
        return None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# annotated CSV, parsed in bulk


def _record_ends(buf: bytes | bytearray) -> np.ndarray:
    """Offsets of the newlines that end CSV records (newlines inside quotes do not)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    if newlines.size == 0:
        return newlines
    if not (arr == 34).any():
        return newlines
    quotes_before = np.cumsum(arr == 34)[newlines]
    return newlines[(quotes_before & 1) == 0]


def _split_csv_line(line: bytes) -> list[str]:
    import csv

    return next(csv.reader([line.decode("utf-8").rstrip("\r\n")]))


def _parse_annotated_csv(chunks: Iterable[bytes], chunk_rows: int) -> Iterator[tuple[_Block, pd.DataFrame]]:
    """Annotated CSV (as InfluxDB 2.x writes it) to (header, typed frame) pieces.

    Data rows are handed to pandas in bulk; each yielded frame has at most
    ``chunk_rows`` rows and columns named by the labels (``result``/``table``
    and the annotation column dropped). Empty values are missing (<NA>/NaN/None).
    """
    pending = bytearray()
    annotations: dict[str, list[str]] = {}
    block: _Block | None = None
    expect_header = False
    parts: list[pd.DataFrame] = []
    rows_in_parts = 0

    def flush(final: bool) -> Iterator[tuple[_Block, pd.DataFrame]]:
        nonlocal parts, rows_in_parts
        if not parts or block is None:
            return
        frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        parts, rows_in_parts = [], 0
        pos = 0
        while len(frame) - pos >= chunk_rows or (final and pos < len(frame)):
            yield block, frame.iloc[pos : pos + chunk_rows].reset_index(drop=True)
            pos += chunk_rows
        if pos < len(frame):
            rest = frame.iloc[pos:].reset_index(drop=True)
            parts, rows_in_parts = [rest], len(rest)

    def handle(region: bytes) -> Iterator[tuple[_Block, pd.DataFrame]]:
        nonlocal block, expect_header, annotations, rows_in_parts
        ends = _record_ends(region)
        starts = np.concatenate(([0], ends[:-1] + 1))
        arr = np.frombuffer(region, dtype=np.uint8)
        lengths = ends - starts
        first = arr[np.minimum(starts, len(arr) - 1)]
        special = np.flatnonzero((first == 35) | (lengths <= 1))
        pos = 0  # record index
        n = len(starts)
        for s in [*special.tolist(), n]:
            if s > pos:
                # records pos..s-1: header (if expected) then data rows
                if expect_header:
                    labels_line = region[starts[pos] : ends[pos]]
                    labels = _split_csv_line(labels_line)
                    block = _make_block(annotations, labels)
                    expect_header = False
                    annotations = {}
                    pos += 1
                if s > pos:
                    if block is None:
                        raise QueryError("unexpected CSV from the server: data before a header")
                    if block.is_error:
                        cells = _split_csv_line(region[starts[pos] : ends[pos]])
                        raise QueryError(f"query failed on the server: {cells[1] if len(cells) > 1 else cells}")
                    data = region[starts[pos] : ends[s - 1] + 1]
                    frame = _read_rows(data, block)
                    parts.append(frame)
                    rows_in_parts += len(frame)
                    if rows_in_parts >= chunk_rows:
                        yield from flush(False)
            if s >= n:
                break
            rec = region[starts[s] : ends[s]]
            if rec[:1] == b"#":
                if not annotations:
                    yield from flush(True)
                cells = _split_csv_line(rec)
                annotations[cells[0][1:]] = cells
                expect_header = True
            else:  # blank line: end of a table block / result
                yield from flush(True)
            pos = s + 1

    for chunk in chunks:
        if not chunk:
            continue
        pending += chunk
        ends = _record_ends(pending)
        if ends.size == 0:
            continue
        cut = int(ends[-1]) + 1
        region = bytes(pending[:cut])
        del pending[:cut]
        yield from handle(region)
    if pending.strip():
        yield from handle(bytes(pending) + b"\n")
    if block is not None and block.is_error:
        raise QueryError("query failed on the server (error table without a message)")
    yield from flush(True)


def _make_block(annotations: dict[str, list[str]], labels: list[str]) -> _Block:
    n = len(labels)
    if labels[1:2] == ["error"]:  # the table Flux writes when a query fails mid-stream
        return _Block(labels[1:], ["string"] * (n - 1), [True] * (n - 1), is_error=True)
    datatypes = annotations.get("datatype", ["#datatype", "string", "long", *["string"] * (n - 3)])
    groups = annotations.get("group", ["#group", "false", "false", *["false"] * (n - 3)])
    if len(datatypes) != n or len(groups) != n:
        raise QueryError("unexpected CSV from the server: annotation and header widths differ")
    return _Block(labels[3:], datatypes[3:], [g == "true" for g in groups[3:]])


def _read_rows(data: bytes, block: _Block) -> pd.DataFrame:
    """Data rows of one header block as a typed frame (bulk, via pandas)."""
    width = len(block.labels) + 3
    wanted = [i for i, c in enumerate(block.labels) if c not in ("_start", "_stop")]
    dtypes: dict[int, Any] = {}
    for i in wanted:
        kind = block.datatypes[i].split(":")[0]
        dtypes[i + 3] = {"double": "float64", "long": "Int64", "unsignedLong": "UInt64"}.get(kind, object)
    raw = pd.read_csv(
        io.BytesIO(data),
        header=None,
        names=list(range(width)),
        usecols=[i + 3 for i in wanted],
        dtype=dtypes,
        keep_default_na=False,
        na_values=[""],
        engine="c",
    )
    # every record ends in a newline; more newlines than records means some are inside values
    embedded_newlines = data.count(b"\n") > len(raw)
    out: dict[str, Any] = {}
    for i in wanted:
        label = block.labels[i]
        if label in out:
            continue
        col = raw[i + 3]
        kind = block.datatypes[i].split(":")[0]
        if kind == "dateTime":
            idx = pd.DatetimeIndex(pd.to_datetime(col, format="ISO8601", utc=True))
            out[label] = idx.as_unit("ns").asi8
        elif kind == "boolean":
            s = col.astype(object)
            mask = s.isna().to_numpy()
            vals = (s == "true").to_numpy(dtype=bool)
            out[label] = pd.arrays.BooleanArray(vals, mask)
        elif kind == "string":
            arr = col.to_numpy(dtype=object, copy=True)
            arr[pd.isna(arr)] = None
            if embedded_newlines and any(isinstance(v, str) and "\r\n" in v for v in arr):
                # the server's CSV writer turns "\n" inside a value into "\r\n"
                arr = np.array([v.replace("\r\n", "\n") if isinstance(v, str) else v for v in arr], dtype=object)
            out[label] = pd.Series(arr, dtype=object)
        else:
            out[label] = col.array
    return pd.DataFrame(out, index=pd.RangeIndex(len(raw)))
