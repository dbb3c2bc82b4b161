"""InfluxDB 1.x back end: line protocol over ``/write``, InfluxQL over ``/query``.

Writes go out in chunks of ``batch_lines`` lines (re-sending a chunk after a
transient error is idempotent: InfluxDB merges points by series and time).
The database is created on first use when the server says it is missing.
Reads stream the server's chunked JSON answer (``chunked=true``), so memory
stays bounded by ``chunk_rows``. Machine ids reach InfluxQL only as bound
parameters (``$m0``), never spliced into the query text.

Credentials travel as HTTP basic auth (never in URLs), so error messages and
logs, which name the URL, cannot leak them.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests

from pdm.store import lineprotocol
from pdm.store.base import ReadQuery, Store
from pdm.store.batch import Batch
from pdm.store.errors import (
    ConfigurationError,
    QueryError,
    RejectedPoint,
    StoreError,
    StoreUnavailableError,
)
from pdm.store.http import request_with_retry, server_message
from pdm.store.schema import MACHINE_TAG, SENSOR_TAG, FieldType

log = logging.getLogger(__name__)

_AGG_FUNCS = {"mean": "mean", "max": "max", "min": "min", "last": "last"}
_TYPE_NAMES: dict[str, FieldType] = {
    "float": "float",
    "integer": "integer",
    "unsigned": "integer",
    "boolean": "boolean",
    "string": "string",
}
_CONFLICT_RE = re.compile(
    r'input field "(?P<field>(?:[^"\\]|\\.)*)" on measurement "(?P<meas>(?:[^"\\]|\\.)*)" '
    r"is type (?P<got>\w+), already exists as type (?P<have>\w+)"
)
_DROPPED_RE = re.compile(r"dropped=(\d+)")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


class WriteRefusedError(StoreError):
    """The server refused a write for a reason that is not about single points."""


def quote_ident(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _secret(value: Any) -> str:
    if value is None:
        return ""
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value)


class InfluxDB1Store(Store):
    """A database (and retention policy) on an InfluxDB 1.x server."""

    backend = "influxdb1"

    def __init__(
        self,
        url: str = "http://127.0.0.1:8086",
        *,
        database: str = "pdm",
        retention_policy: str = "",
        username: str = "",
        password: Any = "",
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        batch_lines: int = 10_000,
        verify_ssl: bool = True,
        write_concurrency: int = 2,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"store.url: not an http(s) URL: {parts.scheme}://{parts.hostname or ''}")
        if parts.username or parts.password:
            raise ConfigurationError("store.url must not contain credentials; use username/password")
        if not database:
            raise ConfigurationError("store.database must not be empty")
        if batch_lines < 1:
            raise ConfigurationError("store.batch_lines must be >= 1")
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.username = username
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.batch_lines = batch_lines
        self.write_concurrency = max(1, int(write_concurrency))
        self._verify_ssl = verify_ssl
        self._auth = (username, _secret(password)) if username else None
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._timeout = (min(timeout_s, 10.0), timeout_s)
        self._types: dict[str, dict[str, FieldType]] = {}
        self._types_lock = threading.Lock()
        self._from = (
            f"{quote_ident(retention_policy)}." if retention_policy else ""
        )  # prefix of every measurement in FROM

    def __repr__(self) -> str:
        return f"InfluxDB1Store({self.url!r}, database={self.database!r})"

    # ================================================================ HTTP
    @property
    def _session(self) -> requests.Session:
        """This thread's HTTP session (requests sessions are not shared across threads)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.verify = self._verify_ssl
            session.headers["Accept"] = "application/json"
            # InfluxDB's gzip costs more server CPU than it saves on any LAN:
            # reads are 2x faster uncompressed (measured on loopback).
            session.headers["Accept-Encoding"] = "identity"
            if self._auth is not None:
                session.auth = self._auth
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _post(self, path: str, what: str, **kwargs: Any) -> requests.Response:
        url = f"{self.url}{path}"
        kwargs.setdefault("timeout", self._timeout)
        return request_with_retry(
            lambda: self._session.post(url, **kwargs),
            url,
            retries=self.retries,
            backoff_s=self.backoff_s,
            what=what,
        )

    def _influxql(
        self, q: str, params: dict[str, str] | None = None, *, db: bool = True, missing_db_ok: bool = True
    ) -> list[dict[str, Any]]:
        """Run InfluxQL (not streamed) and return its series; [] when the database is missing."""
        data: dict[str, str] = {"q": q, "epoch": "ns"}
        if db:
            data["db"] = self.database
            if self.retention_policy:
                data["rp"] = self.retention_policy
        if params:
            data["params"] = json.dumps(params)
        resp = self._post("/query", "query", data=data)
        if resp.status_code != 200:
            raise QueryError(f"query to {self.url}/query failed: HTTP {resp.status_code}: {server_message(resp)}")
        body = resp.json()
        if "error" in body:
            raise QueryError(f"query to {self.url}/query failed: {body['error']}")
        series: list[dict[str, Any]] = []
        for result in body.get("results", []):
            err = result.get("error")
            if err:
                if missing_db_ok and err.startswith("database not found"):
                    return []
                raise QueryError(f"query to {self.url}/query failed: {err}")
            series.extend(result.get("series", []))
        return series

    def _ensure_database(self) -> None:
        """CREATE DATABASE (idempotent); called when a write finds it missing."""
        self._influxql(f"CREATE DATABASE {quote_ident(self.database)}", db=False, missing_db_ok=False)

    # =============================================================== write
    def _write_batch(self, batch: Batch) -> list[RejectedPoint]:
        n = len(batch.frame)
        if n == 0:
            return []
        size = self.batch_lines
        offsets = range(0, n, size)
        rejected: list[RejectedPoint] = []
        # Tag sets are rendered once for the whole batch, not once per chunk.
        heads = lineprotocol.line_heads(batch) if len(offsets) > 1 else None
        if len(offsets) == 1 or self.write_concurrency == 1:
            for start in offsets:
                rejected.extend(self._write_lines(batch, start, _encode_slice(batch, start, size, heads)))
        else:
            # Each worker encodes a chunk, then posts it: one encodes while the
            # other waits for the server, and the server ingests two at once.
            def job(start: int) -> list[RejectedPoint]:
                return self._write_lines(batch, start, _encode_slice(batch, start, size, heads))

            window = self.write_concurrency + 1  # chunks encoded or in flight, at most
            pool = self._writer_pool()
            pending: deque[Future[list[RejectedPoint]]] = deque()
            try:
                for start in offsets:
                    if len(pending) >= window:
                        rejected.extend(pending.popleft().result())
                    pending.append(pool.submit(job, start))
                while pending:
                    rejected.extend(pending.popleft().result())
            finally:
                for f in pending:
                    f.cancel()
                for f in pending:
                    if not f.cancelled():
                        f.exception()  # let chunks already in flight finish
        self._remember_types(batch, rejected)
        return rejected

    def _writer_pool(self) -> ThreadPoolExecutor:
        with self._sessions_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.write_concurrency, thread_name_prefix="pdm-influxdb1-write")
            return self._pool

    def _write_lines(self, batch: Batch, start: int, lines: list[str]) -> list[RejectedPoint]:
        """POST one chunk; return the points the server refused."""
        body = "\n".join(lines).encode("utf-8")
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        for _ in range(3):
            resp = self._post("/write", "write", params=params, data=body)
            status = resp.status_code
            if status == 204:
                return []
            message = _error_text(resp)
            if status == 404 and "database not found" in message:
                log.info("database %r not found on %s: creating it", self.database, self.url)
                self._ensure_database()
                continue
            if status == 413 and len(lines) > 1:
                half = len(lines) // 2
                return self._write_lines(batch, start, lines[:half]) + self._write_lines(
                    batch, start + half, lines[half:]
                )
            if status == 400:
                return self._refused_points(batch, start, lines, message)
            if status == 500 and "retention policy not found" in message:
                raise ConfigurationError(
                    f"write to {self.url}/write: retention policy {self.retention_policy!r} "
                    f"not found in database {self.database!r}"
                )
            raise WriteRefusedError(f"write to {self.url}/write refused: HTTP {status}: {message}")
        raise WriteRefusedError(f"write to {self.url}/write: database {self.database!r} still missing")

    def _refused_points(self, batch: Batch, start: int, lines: list[str], message: str) -> list[RejectedPoint]:
        """Work out which lines of a chunk a 400 answer dropped."""
        frame = batch.frame.iloc[start : start + len(lines)]
        bad = np.zeros(len(lines), dtype=bool)
        why: list[str] = [""] * len(lines)

        def mark(mask: np.ndarray, reason: str) -> None:
            new = mask & ~bad
            for i in np.flatnonzero(new):
                why[i] = reason
            bad[:] |= mask

        # Field type conflicts: the server names one; SHOW FIELD KEYS tells the rest.
        conflicts: dict[str, str] = {}
        for m in _CONFLICT_RE.finditer(message):
            conflicts[m.group("field").replace('\\"', '"')] = m.group(0)
        if conflicts or "field type conflict" in message:
            stored = self._fetch_field_types(batch.measurement, all_types=True)
            for f, ftype in batch.field_types.items():
                have = stored.get(f, set())
                if f not in conflicts and have and have != {ftype}:
                    conflicts[f] = f"field {f!r} is {ftype}, already stored as {'/'.join(sorted(have))}"
            with self._types_lock:
                self._types.pop(batch.measurement, None)
            for f, reason in conflicts.items():
                if f in frame.columns:
                    mark(frame[f].notna().to_numpy(), f"server: field type conflict: {reason}")
        if "beyond retention policy" in message:
            cutoff = self._retention_cutoff()
            if cutoff is not None:
                mark(frame["time"].to_numpy(np.int64) < cutoff, "server: point beyond retention policy")
        if "unable to parse" in message:
            for i, line in enumerate(lines):
                if f"unable to parse '{line}'" in message:
                    mark(np.arange(len(lines)) == i, f"server: unable to parse: {_after(message, line)}")
        dropped = _DROPPED_RE.search(message)
        n_bad = int(bad.sum())
        if n_bad == 0:
            raise WriteRefusedError(f"write to {self.url}/write refused: HTTP 400: {message[:500]}")
        if dropped and "unable to parse" not in message and int(dropped.group(1)) != n_bad:
            log.warning(
                "server dropped %s point(s) of a chunk, %d identified: %s", dropped.group(1), n_bad, message[:300]
            )
        out = []
        for i in np.flatnonzero(bad).tolist():
            out.append(RejectedPoint(int(batch.rows[start + i]), _shorten(lines[i]), why[i]))
        return out

    def _retention_cutoff(self) -> int | None:
        """Oldest time the write's retention policy keeps (ns), None when forever."""
        for s in self._influxql(f"SHOW RETENTION POLICIES ON {quote_ident(self.database)}", db=False):
            cols = s["columns"]
            for row in s.get("values") or []:
                rec = dict(zip(cols, row, strict=False))
                chosen = rec["name"] == self.retention_policy if self.retention_policy else rec.get("default")
                if chosen:
                    dur = _parse_duration(str(rec.get("duration", "0s")))
                    return None if dur == 0 else time.time_ns() - dur
        return None

    # ========================================================= field types
    def _known_field_types(self, measurement: str) -> dict[str, FieldType]:
        """Stored field types (cached per measurement; the same dict object is refreshed in place)."""
        with self._types_lock:
            cached = self._types.get(measurement)
        if cached:
            return cached
        fresh = {f: sorted(t)[0] for f, t in self._fetch_field_types(measurement, all_types=True).items()}
        with self._types_lock:
            cached = self._types.setdefault(measurement, {})
            cached.update(fresh)  # type: ignore[arg-type]
        return cached

    def _fetch_field_types(self, measurement: str, *, all_types: bool = False) -> dict[str, set[FieldType]]:
        out: dict[str, set[FieldType]] = {}
        for s in self._influxql(f"SHOW FIELD KEYS FROM {self._from}{quote_ident(measurement)}"):
            for name, ftype in s.get("values") or []:
                out.setdefault(name, set()).add(_TYPE_NAMES.get(ftype, "string"))
        return out

    def _refresh_types(self, measurement: str) -> dict[str, FieldType]:
        fresh = {f: sorted(t)[0] for f, t in self._fetch_field_types(measurement).items()}
        with self._types_lock:
            cached = self._types.setdefault(measurement, {})
            cached.update(fresh)  # type: ignore[arg-type]
        return cached

    def _remember_types(self, batch: Batch, rejected: list[RejectedPoint]) -> None:
        with self._types_lock:
            if any(r.reason.startswith("server: field type conflict") for r in rejected):
                self._types.pop(batch.measurement, None)
                return
            cached = self._types.setdefault(batch.measurement, {})
            for f, t in batch.field_types.items():
                if f in batch.frame.columns and batch.frame[f].notna().any():
                    cached.setdefault(f, t)

    # ================================================================ read
    def _where(self, q: ReadQuery) -> tuple[str, dict[str, str]]:
        """``time ... AND (machine = $m0 OR ...)`` and its bound parameters (q.machines non-empty)."""
        cond = f"time >= {q.start} AND time < {q.stop}"
        params: dict[str, str] = {}
        if q.machines:
            ors = []
            for i, m in enumerate(q.machines):
                params[f"m{i}"] = m
                ors.append(f"{quote_ident(MACHINE_TAG)} = $m{i}")
            cond += " AND (" + " OR ".join(ors) + ")"
        return cond, params

    def _select(self, q: ReadQuery, ftypes: dict[str, FieldType]) -> str | None:
        where, _ = self._where(q)
        source = f"{self._from}{quote_ident(q.measurement)}"
        if q.every_ns is None:
            cols = "*" if q.fields is None else ", ".join(quote_ident(f) for f in q.fields)
            return f"SELECT {cols} FROM {source} WHERE {where} GROUP BY *"
        names = list(ftypes) if q.fields is None else [f for f in q.fields if f in ftypes]
        numeric = sorted(f for f in names if ftypes.get(f) in ("float", "integer"))
        if not numeric:
            return None
        func = _AGG_FUNCS[q.agg]
        cols = ", ".join(f"{func}({quote_ident(f)}) AS {quote_ident(f)}" for f in numeric)
        return f"SELECT {cols} FROM {source} WHERE {where} GROUP BY time({q.every_ns}ns), * fill(none)"

    def _iter_read(self, q: ReadQuery) -> Iterator[tuple[pd.DataFrame, list[str]]]:
        ftypes = self._known_field_types(q.measurement)
        if not ftypes or (q.machines is not None and not q.machines):
            return  # no such measurement, or no machine asked for
        if q.every_ns is not None and q.fields is not None and any(f not in ftypes for f in q.fields):
            ftypes = self._refresh_types(q.measurement)
        select = self._select(q, ftypes)
        if select is None:
            return
        _, params = self._where(q)
        data = {
            "q": select,
            "db": self.database,
            "epoch": "ns",
            "chunked": "true",
            "chunk_size": str(q.chunk_rows),
        }
        if self.retention_policy:
            data["rp"] = self.retention_policy
        if params:
            data["params"] = json.dumps(params)
        url = f"{self.url}/query"
        resp = request_with_retry(
            lambda: self._session.post(url, data=data, timeout=self._timeout, stream=True),
            url,
            retries=self.retries,
            backoff_s=self.backoff_s,
            what="query",
        )
        with resp:
            if resp.status_code != 200:
                raise QueryError(f"query to {url} failed: HTTP {resp.status_code}: {server_message(resp)}")
            acc = _Accumulator(q.chunk_rows, _read_types(ftypes, q))
            try:
                for line in _stream_lines(resp):
                    try:
                        error, series_list = _decode_line(line)
                    except ValueError as exc:
                        raise QueryError(f"query to {url}: unreadable answer ({exc})") from None
                    if error:
                        if error.startswith("database not found"):
                            return
                        raise QueryError(f"query to {url} failed: {error}")
                    for tags, columns, values in series_list:
                        if acc.unknown(columns):
                            acc.ftypes = _read_types(self._refresh_types(q.measurement), q)
                        yield from acc.add(tags, columns, values)
            except requests.RequestException as exc:
                raise StoreUnavailableError(
                    f"query to {url} broke off while streaming: {type(exc).__name__}"
                ) from None
            yield from acc.flush()

    # =========================================================== catalogue
    def _tag_values(self, key: str, measurements: Sequence[str] | None) -> Iterable[str]:
        q = "SHOW TAG VALUES"
        if measurements is not None:
            if not measurements:
                return []
            q += " FROM " + ", ".join(f"{self._from}{quote_ident(m)}" for m in measurements)
        q += f" WITH KEY = {quote_ident(key)}"
        values: set[str] = set()
        for s in self._influxql(q):
            cols = s["columns"]
            vi = cols.index("value")
            values.update(row[vi] for row in s.get("values") or [])
        return values

    def _sensors(self, machines: tuple[str, ...] | None) -> Iterable[tuple[str, str, str, str]]:
        if machines is not None and not machines:
            return []
        q = "SHOW SERIES"
        params: dict[str, str] = {}
        if machines is not None:
            ors = []
            for i, m in enumerate(machines):
                params[f"m{i}"] = m
                ors.append(f"{quote_ident(MACHINE_TAG)} = $m{i}")
            q += " WHERE " + " OR ".join(ors)
        combos: set[tuple[str, str, str]] = set()
        for s in self._influxql(q, params):
            for (key,) in s.get("values") or []:
                meas, tags = parse_series_key(key)
                machine = tags.get(MACHINE_TAG, "")
                if machines is not None and machine not in machines:
                    continue
                combos.add((machine, meas, tags.get(SENSOR_TAG, "")))
        if not combos:
            return []
        fields: dict[str, list[str]] = {}
        for s in self._influxql("SHOW FIELD KEYS"):
            fields[s.get("name", "")] = [row[0] for row in s.get("values") or []]
        return [
            (machine, meas, sensor, f)
            for machine, meas, sensor in combos
            for f in fields.get(meas, [])
        ]

    def _measurements(self) -> Iterable[str]:
        return [row[0] for s in self._influxql("SHOW MEASUREMENTS") for row in s.get("values") or []]

    # ============================================================== delete
    def _delete(self, q: ReadQuery) -> None:
        with self._types_lock:
            self._types.pop(q.measurement, None)
        if q.machines is not None and not q.machines:
            return
        where, params = self._where(q)
        # DELETE has no retention policy: it removes from every one of the database.
        self._influxql(f"DELETE FROM {quote_ident(q.measurement)} WHERE {where}", params)

    # ============================================================== health
    def _ping(self) -> None:
        url = f"{self.url}/ping"
        resp = request_with_retry(
            lambda: self._session.get(url, timeout=self._timeout), url,
            retries=self.retries, backoff_s=self.backoff_s, what="ping",
        )
        if resp.status_code not in (200, 204):
            raise StoreUnavailableError(f"ping to {url}: unexpected HTTP {resp.status_code}")
        # /ping needs no credentials; a cheap query checks them.
        self._influxql("SHOW DATABASES", db=False)

    def close(self) -> None:
        with self._sessions_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()


# ====================================================================== helpers
def _encode_slice(batch: Batch, start: int, size: int, heads: np.ndarray | None = None) -> list[str]:
    """Lines of rows ``start:start + size``; ``heads``: the whole batch's, from ``lineprotocol.line_heads``."""
    part = batch.frame.iloc[start : start + size]
    if start == 0 and len(part) == len(batch.frame):
        return lineprotocol.encode(batch, heads)
    sub = Batch(batch.measurement, part, batch.tag_keys, batch.field_types, batch.rows[start : start + size])
    return lineprotocol.encode(sub, None if heads is None else heads[start : start + size])


def _error_text(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)
    return str(body)


def _after(message: str, line: str) -> str:
    rest = message.split(f"unable to parse '{line}'", 1)[-1]
    return rest.lstrip(": ").split("\n", 1)[0][:200]


def _shorten(line: str, limit: int = 200) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _parse_duration(text: str) -> int:
    return int(sum(float(v) * _DURATION_NS[u] for v, u in _DURATION_RE.findall(text)))


def _unescape_key(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in ", =":
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """``meas,k=v,k2=v\\ 2`` (as SHOW SERIES prints it) → (measurement, tags)."""
    parts = _split_unescaped(key, ",")
    tags: dict[str, str] = {}
    for part in parts[1:]:
        kv = _split_unescaped(part, "=")
        k = kv[0]
        v = "=".join(kv[1:])
        tags[_unescape_key(k)] = _unescape_key(v)
    return _unescape_key(parts[0]), tags


def _read_types(ftypes: dict[str, FieldType], q: ReadQuery) -> dict[str, FieldType]:
    """Types of the columns a query answers with (a mean of integers is a float)."""
    if q.every_ns is not None and q.agg == "mean":
        return {f: ("float" if t in ("integer", "boolean") else t) for f, t in ftypes.items()}
    return ftypes


# --------------------------------------------------------------- decoding
# Fast path (when msgspec and pyarrow are importable): msgspec splits each
# chunk of the answer, leaving every series' ``values`` as raw JSON text; for
# series of numbers and booleans that text is a CSV table in disguise, which
# pyarrow parses (correctly rounded, no Python object per value). Anything
# else goes through json.loads. Both paths give identical columns.
try:
    import msgspec as _msgspec
    import pyarrow as _pa
    import pyarrow.csv as _pa_csv

    class _Series(_msgspec.Struct):
        columns: list[str] = []
        values: _msgspec.Raw = _msgspec.Raw(b"[]")
        tags: dict[str, str] = {}

    class _Result(_msgspec.Struct):
        series: list[_Series] = []
        error: str | None = None

    class _Answer(_msgspec.Struct):
        results: list[_Result] = []
        error: str | None = None

    _ANSWER = _msgspec.json.Decoder(_Answer)
    _ARROW_TYPES = {"float": _pa.float64(), "integer": _pa.int64(), "boolean": _pa.bool_()}
except ImportError:  # pragma: no cover - optional speed-up
    _msgspec = None  # type: ignore[assignment]

#: Series shorter than this are decoded with json: pyarrow's set-up costs more.
_ARROW_MIN_ROWS = 200

Values = list[list[Any]] | bytes


def _decode_line(line: bytes) -> tuple[str | None, list[tuple[dict[str, str], list[str], Values]]]:
    """(error, [(tags, columns, values)]) of one JSON answer (one chunk)."""
    out: list[tuple[dict[str, str], list[str], Values]] = []
    if _msgspec is not None:
        try:
            answer = _ANSWER.decode(line)
        except _msgspec.DecodeError:
            pass
        else:
            if answer.error:
                return answer.error, out
            for result in answer.results:
                if result.error:
                    return result.error, out
                for s in result.series:
                    out.append((s.tags, s.columns, bytes(s.values)))
            return None, out
    body = json.loads(line)
    if body.get("error"):
        return str(body["error"]), out
    for result in body.get("results", ()):
        if result.get("error"):
            return str(result["error"]), out
        for s in result.get("series", ()):
            out.append((s.get("tags") or {}, s["columns"], s.get("values") or []))
    return None, out


def _parse_values(columns: list[str], values: Values, ftypes: dict[str, FieldType]) -> tuple[int, dict[str, Any]]:
    """(rows, {column: typed array}) of one series piece."""
    if isinstance(values, bytes):
        parsed = _parse_arrow(columns, values, ftypes)
        if parsed is not None:
            return parsed
        values = json.loads(values) if values else []
    n = len(values)
    if n == 0:
        return 0, {}
    table = np.array(values, dtype=object)
    if table.ndim != 2 or table.shape[1] != len(columns):  # ragged rows: stay correct
        table = np.array([list(r) + [None] * (len(columns) - len(r)) for r in values], dtype=object)
    cols: dict[str, Any] = {}
    for j, c in enumerate(columns):
        cols[c] = table[:, j].astype(np.int64) if c == "time" else _column(table[:, j], ftypes.get(c))
    return n, cols


def _parse_arrow(columns: list[str], raw: bytes, ftypes: dict[str, FieldType]) -> tuple[int, dict[str, Any]] | None:
    if _msgspec is None or len(raw) < 4 or columns[:1] != ["time"]:
        return None
    types = [ftypes.get(c) for c in columns[1:]]
    if any(t not in _ARROW_TYPES for t in types):
        return None  # strings (or unknown): their JSON escapes are not CSV
    if raw.count(b"],[") + 1 < _ARROW_MIN_ROWS:
        return None
    body = raw.strip()[2:-2].replace(b"],[", b"\n")
    schema = {"time": _pa.int64(), **{c: _ARROW_TYPES[t] for c, t in zip(columns[1:], types, strict=True)}}  # type: ignore[index]
    try:
        table = _pa_csv.read_csv(
            _pa.py_buffer(body),
            read_options=_pa_csv.ReadOptions(column_names=columns, block_size=max(1 << 20, len(body) + 1)),
            parse_options=_pa_csv.ParseOptions(quote_char=False),
            convert_options=_pa_csv.ConvertOptions(
                column_types=schema, null_values=["null"], true_values=["true"], false_values=["false"]
            ),
        )
    except (_pa.ArrowInvalid, _pa.ArrowNotImplementedError):
        return None
    cols: dict[str, Any] = {}
    for c, t in zip(columns, ["time", *types], strict=True):
        arr = table.column(c).combine_chunks()
        if t == "time":
            if arr.null_count:
                return None
            cols[c] = arr.to_numpy()
        elif t == "float":
            cols[c] = arr.to_numpy(zero_copy_only=False)  # nulls -> NaN
        else:
            mask = arr.is_null().to_numpy(zero_copy_only=False)
            data = arr.fill_null(False if t == "boolean" else 0).to_numpy(zero_copy_only=False)
            if t == "integer":
                cols[c] = data.astype(np.int64) if not mask.any() else pd.arrays.IntegerArray(data.astype(np.int64), mask)
            else:
                cols[c] = pd.arrays.BooleanArray(data.astype(bool), mask)
    return table.num_rows, cols


class _Accumulator:
    """Gathers streamed series pieces into frames of at most ``limit`` rows."""

    def __init__(self, limit: int, ftypes: dict[str, FieldType]) -> None:
        self.limit = limit
        self.ftypes = ftypes
        self.pieces: list[tuple[dict[str, str], int, dict[str, Any]]] = []
        self.rows = 0

    def unknown(self, columns: list[str]) -> bool:
        return any(c not in self.ftypes for c in columns[1:])

    def add(self, tags: dict[str, str], columns: list[str], values: Values) -> Iterator[tuple[pd.DataFrame, list[str]]]:
        n, cols = _parse_values(columns, values, self.ftypes)
        if n == 0:
            return
        if self.rows and self.rows + n > self.limit:
            yield from self.flush()
        self.pieces.append((tags, n, cols))
        self.rows += n
        if self.rows >= self.limit:
            yield from self.flush()

    def flush(self) -> Iterator[tuple[pd.DataFrame, list[str]]]:
        if not self.rows:
            return
        pieces, self.pieces, self.rows = self.pieces, [], 0
        yield _frame(pieces, self.ftypes)


def _frame(
    pieces: list[tuple[dict[str, str], int, dict[str, Any]]], ftypes: dict[str, FieldType]
) -> tuple[pd.DataFrame, list[str]]:
    """One raw frame from series pieces: int64 time, tag columns, typed field columns."""
    tag_keys = sorted({k for tags, _, _ in pieces for k in tags})
    columns: list[str] = []
    for _, _, cols in pieces:
        for c in cols:
            if c not in columns:
                columns.append(c)
    counts = [n for _, n, _ in pieces]
    data: dict[str, Any] = {}
    for c in columns:
        parts = [cols[c] if c in cols else _missing(n, ftypes.get(c)) for _, n, cols in pieces]
        data[c] = parts[0] if len(parts) == 1 else _concat_arrays(parts)
    for k in tag_keys:
        data[k] = np.repeat(np.array([tags.get(k, "") for tags, _, _ in pieces], dtype=object), counts)
    return pd.DataFrame(data, copy=False), tag_keys


def _missing(n: int, ftype: FieldType | None) -> Any:
    return _column(np.full(n, None, dtype=object), ftype)


def _concat_arrays(parts: list[Any]) -> Any:
    if all(isinstance(p, np.ndarray) for p in parts) and len({p.dtype for p in parts}) == 1:
        return np.concatenate(parts)
    return pd.concat([pd.Series(p, copy=False) for p in parts], ignore_index=True).array


def _column(values: np.ndarray, ftype: FieldType | None) -> Any:
    """A typed column from an object array of JSON values (None = missing)."""
    try:
        if ftype == "float":
            return values.astype(np.float64)  # None -> NaN; ints -> floats
        if ftype == "integer":
            try:
                return values.astype(np.int64)
            except (TypeError, ValueError, OverflowError):
                return pd.array(values, dtype="Int64")
        if ftype == "boolean":
            return pd.array(values, dtype="boolean")
    except (TypeError, ValueError, OverflowError):
        pass  # not the type we expected (types differ between shards): leave it to finalize
    return values


_END = object()


def _stream_lines(resp: requests.Response, *, block: int = 1 << 18, max_blocks: int = 64) -> Iterator[bytes]:
    """Lines of a streamed answer, read ahead by a thread (at most ``max_blocks`` blocks).

    Reading the socket off the parsing thread lets the server produce the next
    chunk while this one is decoded.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max_blocks)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for data in resp.iter_content(chunk_size=block):
                if data and not put(data):
                    return
        except BaseException as exc:  # handed to the reader
            put(exc)
            return
        put(_END)

    thread = threading.Thread(target=pump, name="pdm-influxdb1-read", daemon=True)
    thread.start()
    pending: list[bytes] = []
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            if b"\n" not in item:
                pending.append(item)
                continue
            if pending:
                pending.append(item)
                item = b"".join(pending)
                pending = []
            lines = item.split(b"\n")
            rest = lines.pop()
            if rest:
                pending.append(rest)
            for line in lines:
                if line:
                    yield line
        tail = b"".join(pending).strip()
        if tail:
            yield tail
    finally:
        stop.set()
        resp.close()
        thread.join(5.0)
