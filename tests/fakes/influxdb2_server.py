"""A local server that speaks InfluxDB 2.7's HTTP API at the wire level.

It is for tests of code that talks to InfluxDB 2.x through its HTTP API
(``influxdb-client`` or plain HTTP). It keeps points in memory and answers:

- ``POST /api/v2/write`` line protocol (a real parser: escaping, quoted strings,
  ``i``/``u`` integers, booleans, precision), InfluxDB merge semantics per
  (measurement, tag set, field, time), whole-batch 400 on a parse error,
  422 "partial write: field type conflict" like 2.7 does;
- ``POST /api/v2/query`` Flux, evaluated by a small interpreter for the
  subset real clients send (``from |> range |> filter |> pivot /
  aggregateWindow / group / last / keep / limit``, ``schema.tagValues``,
  ``schema.measurements``, ``schema.fieldKeys``, ``contains``, ``time``,
  ``duration``), taking ``extern`` option statements (influxdb-client's
  ``params=``) as variables; answers annotated CSV the way Flux's CSV encoder
  writes it (CRLF, ``#datatype/#group/#default``, a new header block when the
  schema changes, floats in Go's ``'f'`` format, RFC3339Nano times);
- ``POST /api/v2/delete`` with ``start``/``stop`` (both inclusive, as in 2.x)
  and a predicate (``_measurement="m" AND tag="v"``, influxql string escapes);
- ``GET /health``, ``GET /ping``.

Errors come as ``{"code": ..., "message": ...}`` JSON with 2.x's codes:
401 unauthorized, 404 for unknown org / bucket, 400 invalid.

Test controls: :meth:`FakeInfluxDB2.fail_next` (answer N requests with e.g.
503), :meth:`FakeInfluxDB2.drop_next` and :attr:`FakeInfluxDB2.down` (close
connections without an answer), :attr:`FakeInfluxDB2.requests` /
:attr:`FakeInfluxDB2.queries` (everything received, queries decoded into
Flux text and extern parameters).

>>> with FakeInfluxDB2(token="t0ken", org="pdm", bucket="pdm") as srv:
...     url = srv.url
"""

from __future__ import annotations

import calendar
import functools
import gzip
import json
import math
import re
import socket
import threading
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeInfluxDB2", "RecordedQuery", "RecordedRequest", "parse_line_protocol"]

MIN_NANO_TIME = -9223372036854775806
MAX_NANO_TIME = 9223372036854775806
_NS = 1_000_000_000

# ---------------------------------------------------------------------------
# errors


class _HTTPError(Exception):
    """An error answered as InfluxDB 2.x JSON."""

    STATUS = {
        "invalid": 400,
        "unauthorized": 401,
        "forbidden": 403,
        "not found": 404,
        "request too large": 413,
        "unprocessable entity": 422,
        "too many requests": 429,
        "internal error": 500,
        "unavailable": 503,
    }

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or self.STATUS.get(code, 500)


class FluxError(_HTTPError):
    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(code, message)


# ---------------------------------------------------------------------------
# time


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(text: str) -> int:
    """RFC3339 / RFC3339Nano text to int64 ns; ValueError when malformed."""
    m = _RFC3339_RE.match(text)
    if not m:
        raise ValueError(f"cannot parse {text!r} as RFC3339")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = int((m.group(7) or "0").ljust(9, "0"))
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    tz = m.group(8)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return secs * _NS + frac


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=1 << 16)
def format_rfc3339nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped."""
    secs, frac = divmod(int(ns), _NS)
    dt = _EPOCH + timedelta(seconds=secs)
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T"
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


class Time(int):
    """A Flux time value (ns since the epoch)."""


class Duration(int):
    """A Flux duration value (ns)."""


_ZERO = Duration(0)
_MINUS_30D = Duration(-30 * 86400 * 1_000_000_000)


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3600 * _NS,
    "d": 86400 * _NS,
    "w": 7 * 86400 * _NS,
}
_DURATION_PART_RE = re.compile(r"(\d+)(mo|ms|us|µs|ns|y|w|d|h|m|s)")


def parse_duration(text: str) -> int:
    neg = text.startswith("-")
    body = text[1:] if neg else text
    pos, total = 0, 0
    for m in _DURATION_PART_RE.finditer(body):
        if m.start() != pos:
            break
        unit = m.group(2)
        if unit not in _DURATION_UNITS:
            raise FluxError(f"calendar duration unit {unit!r} is not supported by this fake")
        total += int(m.group(1)) * _DURATION_UNITS[unit]
        pos = m.end()
    if pos != len(body) or not body:
        raise FluxError(f"invalid duration {text!r}")
    return -total if neg else total


# ---------------------------------------------------------------------------
# line protocol

_TYPE_NAMES = {float: "float", int: "integer", bool: "boolean", str: "string"}
_FLUX_TYPE = {
    "float": "double",
    "integer": "long",
    "unsigned": "unsignedLong",
    "boolean": "boolean",
    "string": "string",
}
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})
_FLOAT_RE = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INT_RE = re.compile(r"^-?\d+$")
_UINT_RE = re.compile(r"^\d+$")
_STRING_UNESCAPE_RE = re.compile(r'\\([\\"])')


class LineProtocolError(ValueError):
    pass


@dataclass
class ParsedPoint:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: dict[str, tuple[str, Any]]  # name -> (type, value)
    time: int


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split at ``sep`` not preceded by a backslash (InfluxDB's rule)."""
    if "\\" not in text:
        return text.split(sep)
    parts, start = [], 0
    for i, c in enumerate(text):
        if c == sep and (i == 0 or text[i - 1] != "\\"):
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _unescape_measurement(text: str) -> str:
    if "\\" not in text:
        return text
    return text.replace("\\,", ",").replace("\\ ", " ")


def _unescape_tag(text: str) -> str:
    if "\\" not in text:
        return text
    return text.replace("\\,", ",").replace("\\ ", " ").replace("\\=", "=")


def _bare_value(token: str) -> tuple[str, Any]:
    if token in _TRUE:
        return "boolean", True
    if token in _FALSE:
        return "boolean", False
    if token.endswith("i"):
        digits = token[:-1]
        if not _INT_RE.match(digits):
            raise LineProtocolError("invalid number")
        v = int(digits)
        if not -(2**63) <= v < 2**63:
            raise LineProtocolError(
                f'unable to parse integer {digits}: strconv.ParseInt: parsing "{digits}": value out of range'
            )
        return "integer", v
    if token.endswith("u"):
        digits = token[:-1]
        if not _UINT_RE.match(digits):
            raise LineProtocolError("invalid number")
        v = int(digits)
        if v >= 2**64:
            raise LineProtocolError(
                f'unable to parse unsigned {digits}: strconv.ParseUint: parsing "{digits}": value out of range'
            )
        return "unsigned", v
    if token[:1] in "tfTF":
        raise LineProtocolError("invalid boolean")
    if not _FLOAT_RE.match(token):
        raise LineProtocolError("invalid number")
    v = float(token)
    if math.isinf(v):
        raise LineProtocolError(
            f'unable to parse floating point number {token}: strconv.ParseFloat: parsing "{token}": value out of range'
        )
    return "float", v


def _key_end(line: str) -> int:
    """Index of the first space not preceded by a backslash (end of measurement+tags)."""
    i = line.find(" ")
    while i > 0 and line[i - 1] == "\\":
        i = line.find(" ", i + 1)
    return len(line) if i < 0 else i


def _parse_fields(line: str, i: int) -> tuple[dict[str, tuple[str, Any]], int]:
    """Parse ``k=v[,k=v...]`` from ``line[i:]``; return fields and the index after them."""
    n = len(line)
    fields: dict[str, tuple[str, Any]] = {}
    while True:
        k0 = i
        while i < n:
            c = line[i]
            if c == "\\" and i + 1 < n:
                i += 2
                continue
            if c == "=":
                break
            if c in " ,":
                raise LineProtocolError("missing field value")
            i += 1
        if i >= n:
            raise LineProtocolError("missing field value")
        key = line[k0:i]
        if not key:
            raise LineProtocolError("missing field key")
        i += 1
        if i >= n or line[i] in " ,":
            raise LineProtocolError("missing field value")
        if line[i] == '"':
            j = i + 1
            while j < n:
                c = line[j]
                if c == "\\" and j + 1 < n:
                    j += 2
                    continue
                if c == '"':
                    break
                j += 1
            if j >= n:
                raise LineProtocolError("unbalanced quotes")
            raw = line[i + 1 : j]
            value: tuple[str, Any] = ("string", _STRING_UNESCAPE_RE.sub(r"\1", raw) if "\\" in raw else raw)
            i = j + 1
            if i < n and line[i] not in " ,":
                raise LineProtocolError("invalid field format")
        else:
            j = i
            while j < n:
                c = line[j]
                if c == "\\" and j + 1 < n:
                    j += 2
                    continue
                if c in " ,":
                    break
                j += 1
            value = _bare_value(line[i:j])
            i = j
        fields[_unescape_tag(key)] = value
        if i < n and line[i] == ",":
            i += 1
            continue
        return fields, i


def _parse_point(line: str, precision_ns: int, now_ns: int) -> ParsedPoint:
    if "\\" not in line and '"' not in line:
        # fast path: nothing escaped or quoted, spaces and commas are separators
        parts = line.split(" ")
        if len(parts) < 2 or not parts[1]:
            raise LineProtocolError("missing fields")
        key, field_text = parts[0], parts[1]
        rest = " ".join(parts[2:]).strip()
        fields = {}
        for piece in field_text.split(","):
            k, eq, v = piece.partition("=")
            if not eq or not v:
                raise LineProtocolError("missing field value")
            if not k:
                raise LineProtocolError("missing field key")
            fields[k] = _bare_value(v)
        key_parts = key.split(",")
    else:
        end = _key_end(line)
        key = line[:end]
        if end >= len(line) or not line[end + 1 :].strip():
            raise LineProtocolError("missing fields")
        fields, i = _parse_fields(line, end + 1)
        rest = line[i:].strip()
        key_parts = _split_unescaped(key, ",")
    if not key_parts[0]:
        raise LineProtocolError("missing measurement")
    measurement = _unescape_measurement(key_parts[0])
    tags: dict[str, str] = {}
    for pair in key_parts[1:]:
        kv = _split_unescaped(pair, "=")
        if len(kv) == 1:
            raise LineProtocolError("missing tag value")
        if len(kv) > 2:
            raise LineProtocolError("invalid tag format")
        k, v = kv
        if not k:
            raise LineProtocolError("missing tag key")
        if not v:
            raise LineProtocolError("missing tag value")
        k, v = _unescape_tag(k), _unescape_tag(v)
        if k in tags:
            raise LineProtocolError("duplicate tags")
        tags[k] = v
    if rest:
        if " " in rest or not _INT_RE.match(rest):
            raise LineProtocolError("bad timestamp")
        ts = int(rest) * precision_ns
    else:
        ts = now_ns - now_ns % precision_ns
    if not MIN_NANO_TIME <= ts <= MAX_NANO_TIME:
        raise LineProtocolError("time outside range")
    return ParsedPoint(measurement, tuple(sorted(tags.items())), fields, ts)


def _split_lines(body: str) -> Iterable[str]:
    """Lines of a write body; newlines inside quoted field strings do not end a line."""
    if '"' not in body:
        yield from body.split("\n")
        return
    # port of InfluxDB's scanLine
    i, n, start = 0, len(body), 0
    while start < n:
        quoted = in_fields = False
        equals = commas = 0
        i = start
        while i < n:
            c = body[i]
            if c == "\\" and i + 2 < n:
                i += 2
                continue
            if c == " ":
                in_fields = True
            if in_fields:
                if not quoted and c == "=":
                    i += 1
                    equals += 1
                    continue
                if not quoted and c == ",":
                    i += 1
                    commas += 1
                    continue
                if c == '"' and equals > commas:
                    i += 1
                    quoted = not quoted
                    continue
            if c == "\n" and not quoted:
                break
            i += 1
        yield body[start:i]
        start = i + 1


def parse_line_protocol(
    body: str, precision: str = "ns", now_ns: int | None = None
) -> tuple[list[ParsedPoint], list[str]]:
    """Parse a write body like InfluxDB 2.x: (points, "unable to parse '...': why" errors)."""
    precision_ns = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": _NS}[precision]
    now_ns = _time.time_ns() if now_ns is None else now_ns
    points, failed = [], []
    for raw in _split_lines(body):
        line = raw.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        if line.endswith("\r"):
            line = line[:-1]
            if not line.strip():
                continue
        try:
            points.append(_parse_point(line, precision_ns, now_ns))
        except LineProtocolError as exc:
            failed.append(f"unable to parse '{line}': {exc}")
    return points, failed


# ---------------------------------------------------------------------------
# storage


class _Bucket:
    def __init__(self, name: str, bucket_id: str) -> None:
        self.name = name
        self.id = bucket_id
        # (measurement, tags) -> field -> time -> value
        self.series: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, dict[int, Any]]] = {}
        self.field_types: dict[str, dict[str, str]] = {}

    def write(self, points: list[ParsedPoint]) -> tuple[int, str | None]:
        """Store points; return (dropped, first type-conflict message)."""
        dropped, first = 0, None
        for p in points:
            types = self.field_types.setdefault(p.measurement, {})
            conflict = None
            for name, (ftype, _) in p.fields.items():
                have = types.get(name)
                if have is not None and have != ftype:
                    conflict = (
                        f'field type conflict: input field "{name}" on measurement '
                        f'"{p.measurement}" is type {ftype}, already exists as type {have}'
                    )
                    break
            if conflict:
                dropped += 1
                first = first or conflict
                continue
            series = self.series.setdefault((p.measurement, p.tags), {})
            for name, (ftype, value) in p.fields.items():
                types.setdefault(name, ftype)
                series.setdefault(name, {})[p.time] = value
        for m in [m for m, t in self.field_types.items() if not t]:
            del self.field_types[m]
        return dropped, first

    def delete(self, start: int, stop: int, pred: Callable[[str, dict[str, str]], bool]) -> None:
        for key in list(self.series):
            measurement, tags = key
            if not pred(measurement, dict(tags)):
                continue
            fields = self.series[key]
            for name in list(fields):
                values = fields[name]
                for t in [t for t in values if start <= t <= stop]:
                    del values[t]
                if not values:
                    del fields[name]
            if not fields:
                del self.series[key]
        alive = {m for m, _ in self.series}
        for m in [m for m in self.field_types if m not in alive]:
            del self.field_types[m]


# ---------------------------------------------------------------------------
# annotated CSV (as flux/csv/result.go writes it)

_DT = "dateTime:RFC3339"


def _go_float(v: float) -> str:
    """``strconv.FormatFloat(v, 'f', -1, 64)``."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    r = repr(v)
    if "e" in r:
        import numpy as np

        return np.format_float_positional(v, unique=True, trim="-")
    return r[:-2] if r.endswith(".0") else r


@functools.lru_cache(maxsize=1 << 16)
def _go_csv_field(s: str) -> str:
    """Go encoding/csv quoting with UseCRLF=true."""
    if s == "":
        return s
    if s == "\\." or "," in s or '"' in s or "\r" in s or "\n" in s or s[0].isspace():
        return '"' + s.replace('"', '""').replace("\r", "").replace("\n", "\r\n") + '"'
    return s


def _formatter(ctype: str) -> Callable[[Any], str]:
    if ctype == "double":
        return lambda v: "" if v is None else _go_float(v)
    if ctype in ("long", "unsignedLong"):
        return lambda v: "" if v is None else str(int(v))
    if ctype == "boolean":
        return lambda v: "" if v is None else ("true" if v else "false")
    if ctype == _DT:
        return lambda v: "" if v is None else format_rfc3339nano(v)
    return lambda v: "" if v is None else _go_csv_field(str(v))


@dataclass
class FTable:
    cols: list[str]
    types: list[str]
    key: list[str]
    rows: list[list[Any]]

    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.cols)}

    def key_values(self) -> tuple[tuple[str, Any], ...]:
        idx = self.index()
        first = self.rows[0] if self.rows else [None] * len(self.cols)
        return tuple((c, first[idx[c]]) for c in self.key)


def encode_csv(tables: list[FTable], annotations: list[str], header: bool = True, result: str = "_result") -> str:
    out: list[str] = []
    write = out.append
    last_cols: list[tuple[str, str]] | None = None
    for table_id, tbl in enumerate(tables):
        cols = list(zip(tbl.cols, tbl.types, strict=True))
        empty = not tbl.rows
        if last_cols is None or cols != last_cols or empty:
            if last_cols is not None:
                write("\r\n")
            key_vals = dict(tbl.key_values()) if empty else {}
            for anno in annotations:
                if anno == "datatype":
                    write(",".join(["#datatype", "string", "long", *tbl.types]) + "\r\n")
                elif anno == "group":
                    write(",".join(["#group", "false", "false", *("true" if c in tbl.key else "false" for c in tbl.cols)]) + "\r\n")
                elif anno == "default":
                    defaults = [
                        _formatter(t)(key_vals.get(c)) if empty and c in key_vals else ""
                        for c, t in cols
                    ]
                    write(",".join(["#default", _go_csv_field(result), str(table_id) if empty else "", *defaults]) + "\r\n")
            if header:
                write(",".join(["", "result", "table", *(_go_csv_field(c) for c in tbl.cols)]) + "\r\n")
        prefix = f",{'' if 'default' in annotations else result},{table_id},"
        fmts = [_formatter(t) for t in tbl.types]
        for row in tbl.rows:
            write(prefix + ",".join([f(v) for f, v in zip(fmts, row, strict=True)]) + "\r\n")
        last_cols = cols
    write("\r\n")  # flux.DelimitedMultiResultEncoder's result delimiter
    return "".join(out)


# ---------------------------------------------------------------------------
# Flux: tokens, parser


_TOKEN_RE = re.compile(
    r"""
     (?P<ws>\s+|//[^\n]*)
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))
    |(?P<duration>(?:\d+(?:mo|ms|us|µs|ns|y|w|d|h|m|s))+(?![A-Za-z0-9_]))
    |(?P<float>\d+\.\d+)
    |(?P<int>\d+)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>\|>|=>|==|!=|<=|>=|=~|!~|[-+*/%<>=()\[\]{},:.])
    """,
    re.X | re.S,
)


@dataclass
class _Tok:
    kind: str
    text: str
    line: int
    col: int


def _tokenize(src: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(src):
        m = _TOKEN_RE.match(src, pos)
        if not m:
            line = src.count("\n", 0, pos) + 1
            col = pos - (src.rfind("\n", 0, pos) + 1) + 1
            raise FluxError(f"compilation failed: error @{line}:{col}-{line}:{col + 1}: invalid expression @{line}:{col}-{line}:{col + 1}: {src[pos]}")
        kind = m.lastgroup
        if kind != "ws":
            line = src.count("\n", 0, pos) + 1
            col = pos - (src.rfind("\n", 0, pos) + 1) + 1
            toks.append(_Tok(kind, m.group(), line, col))
        pos = m.end()
    toks.append(_Tok("eof", "", 0, 0))
    return toks


_STRING_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$"}


def _unquote_flux(text: str) -> str:
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            if nxt == "x":
                out.append(bytes([int(body[i + 2 : i + 4], 16)]).decode("latin-1"))
                i += 4
                continue
            if nxt not in _STRING_ESCAPES:
                raise FluxError(f"invalid escape sequence \\{nxt}")
            out.append(_STRING_ESCAPES[nxt])
            i += 2
            continue
        if c == "$" and body[i + 1 : i + 2] == "{":
            raise FluxError("string interpolation is not supported by this fake")
        out.append(c)
        i += 1
    return "".join(out)


class _Parser:
    CMP = {"==", "!=", "<", "<=", ">", ">=", "=~", "!~"}

    def __init__(self, src: str) -> None:
        self.toks = _tokenize(src)
        self.i = 0

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, text: str) -> bool:
        t = self.peek()
        if t.text == text and t.kind in ("op", "ident"):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> _Tok:
        t = self.next()
        if t.text != text:
            raise FluxError(f"compilation failed: error @{t.line}:{t.col}: expected {text}, got {t.text or 'EOF'}")
        return t

    def program(self) -> list[tuple]:
        stmts = []
        while self.peek().text == "import" and self.peek().kind == "ident":
            self.next()
            alias = None
            if self.peek().kind == "ident":
                alias = self.next().text
            path = self.next()
            if path.kind != "string":
                raise FluxError("compilation failed: expected import path")
            stmts.append(("import", _unquote_flux(path.text), alias))
        while self.peek().kind != "eof":
            stmts.append(self.statement())
        return stmts

    def statement(self) -> tuple:
        t = self.peek()
        if t.kind == "ident" and t.text == "option":
            self.next()
            name = self.next().text
            self.expect("=")
            return ("assign", name, self.expr())
        if t.kind == "ident" and self.peek(1).text == "=" and self.peek(1).kind == "op":
            self.next()
            self.next()
            return ("assign", t.text, self.expr())
        return ("expr", self.expr())

    def expr(self) -> tuple:
        return self.logical_or()

    def logical_or(self) -> tuple:
        items = [self.logical_and()]
        while self.peek().kind == "ident" and self.peek().text == "or":
            self.next()
            items.append(self.logical_and())
        return items[0] if len(items) == 1 else ("or", items)

    def logical_and(self) -> tuple:
        items = [self.unary_logical()]
        while self.peek().kind == "ident" and self.peek().text == "and":
            self.next()
            items.append(self.unary_logical())
        return items[0] if len(items) == 1 else ("and", items)

    def unary_logical(self) -> tuple:
        t = self.peek()
        if t.kind == "ident" and t.text == "not":
            self.next()
            return ("not", self.unary_logical())
        if t.kind == "ident" and t.text == "exists":
            self.next()
            return ("exists", self.unary_logical())
        return self.comparison()

    def comparison(self) -> tuple:
        left = self.additive()
        while self.peek().kind == "op" and self.peek().text in self.CMP:
            op = self.next().text
            left = ("binop", op, left, self.additive())
        return left

    def additive(self) -> tuple:
        left = self.multiplicative()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            op = self.next().text
            left = ("binop", op, left, self.multiplicative())
        return left

    def multiplicative(self) -> tuple:
        left = self.pipe()
        while self.peek().kind == "op" and self.peek().text in ("*", "/", "%"):
            op = self.next().text
            left = ("binop", op, left, self.pipe())
        return left

    def pipe(self) -> tuple:
        left = self.unary()
        while self.peek().kind == "op" and self.peek().text == "|>":
            tok = self.next()
            call = self.postfix()
            if call[0] != "call":
                raise FluxError(f"compilation failed: error @{tok.line}:{tok.col}: pipe destination must be a function call")
            left = ("pipe", left, call)
        return left

    def unary(self) -> tuple:
        if self.peek().kind == "op" and self.peek().text in ("-", "+"):
            op = self.next().text
            inner = self.unary()
            return ("neg", inner) if op == "-" else inner
        return self.postfix()

    def postfix(self) -> tuple:
        node = self.primary()
        while True:
            t = self.peek()
            if t.kind == "op" and t.text == ".":
                self.next()
                node = ("member", node, self.next().text)
            elif t.kind == "op" and t.text == "[":
                self.next()
                idx = self.expr()
                self.expect("]")
                node = ("index", node, idx)
            elif t.kind == "op" and t.text == "(":
                self.next()
                args = []
                while not self.accept(")"):
                    name = self.next()
                    if name.kind != "ident":
                        raise FluxError(f"compilation failed: error @{name.line}:{name.col}: expected argument name")
                    self.expect(":")
                    args.append((name.text, self.expr()))
                    if not self.accept(","):
                        self.expect(")")
                        break
                node = ("call", node, args)
            else:
                return node

    def _try_function(self) -> tuple | None:
        start = self.i
        self.next()  # (
        params = []
        while True:
            t = self.peek()
            if t.kind == "op" and t.text == ")":
                self.next()
                break
            if t.kind != "ident":
                self.i = start
                return None
            self.next()
            default = None
            if self.peek().text == "=" and self.peek().kind == "op":
                self.next()
                default = self.expr()
            params.append((t.text, default))
            if self.accept(","):
                continue
            if self.peek().text != ")":
                self.i = start
                return None
        if not (self.peek().kind == "op" and self.peek().text == "=>"):
            self.i = start
            return None
        self.next()
        return ("func", params, self.expr())

    def primary(self) -> tuple:
        t = self.peek()
        if t.kind == "string":
            self.next()
            return ("lit", _unquote_flux(t.text))
        if t.kind == "int":
            self.next()
            return ("lit", int(t.text))
        if t.kind == "float":
            self.next()
            return ("lit", float(t.text))
        if t.kind == "duration":
            self.next()
            return ("lit", Duration(parse_duration(t.text)))
        if t.kind == "datetime":
            self.next()
            return ("lit", Time(parse_rfc3339(t.text)))
        if t.kind == "ident":
            self.next()
            if t.text == "true":
                return ("lit", True)
            if t.text == "false":
                return ("lit", False)
            return ("ident", t.text, t.line, t.col)
        if t.kind == "op" and t.text == "(":
            fn = self._try_function()
            if fn is not None:
                return fn
            self.next()
            inner = self.expr()
            self.expect(")")
            return inner
        if t.kind == "op" and t.text == "[":
            self.next()
            items = []
            while not self.accept("]"):
                items.append(self.expr())
                if not self.accept(","):
                    self.expect("]")
                    break
            return ("array", items)
        if t.kind == "op" and t.text == "{":
            self.next()
            props = []
            while not self.accept("}"):
                key = self.next()
                name = _unquote_flux(key.text) if key.kind == "string" else key.text
                self.expect(":")
                props.append((name, self.expr()))
                if not self.accept(","):
                    self.expect("}")
                    break
            return ("object", props)
        raise FluxError(f"compilation failed: error @{t.line}:{t.col}: unexpected token {t.text or 'EOF'}")


# ---------------------------------------------------------------------------
# Flux: values and evaluation


@dataclass
class _From:
    bucket: _Bucket


@dataclass
class _Stream:
    tables: list[FTable]


@dataclass
class _Lambda:
    params: list[tuple[str, tuple | None]]
    body: tuple
    env: dict[str, Any]


@dataclass
class _Builtin:
    name: str
    fn: Callable[..., Any]


class _Interp:
    def __init__(self, server: FakeInfluxDB2, org: str, now_ns: int) -> None:
        self.server = server
        self.org = org
        self.now = now_ns

    # -- expression evaluation
    def eval(self, node: tuple, env: dict[str, Any]) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "ident":
            name = node[1]
            if name in env:
                return env[name]
            raise FluxError(f"compilation failed: error @{node[2]}:{node[3]}-{node[2]}:{node[3] + len(name)}: undefined identifier {name}")
        if kind == "member":
            obj = self.eval(node[1], env)
            if isinstance(obj, dict):
                return obj.get(node[2])
            raise FluxError(f"type error: cannot access member {node[2]!r}")
        if kind == "index":
            obj = self.eval(node[1], env)
            idx = self.eval(node[2], env)
            if isinstance(obj, dict):
                return obj.get(idx)
            if isinstance(obj, list):
                return obj[idx]
            raise FluxError("type error: cannot index")
        if kind == "array":
            return [self.eval(n, env) for n in node[1]]
        if kind == "object":
            return {k: self.eval(v, env) for k, v in node[1]}
        if kind == "func":
            return _Lambda(node[1], node[2], env)
        if kind == "and":
            return all(self.eval(n, env) is True for n in node[1])
        if kind == "or":
            return any(self.eval(n, env) is True for n in node[1])
        if kind == "not":
            v = self.eval(node[1], env)
            return None if v is None else not v
        if kind == "exists":
            return self.eval(node[1], env) is not None
        if kind == "neg":
            v = self.eval(node[1], env)
            if isinstance(v, Duration):
                return Duration(-v)
            return -v
        if kind == "binop":
            return self._binop(node[1], self.eval(node[2], env), self.eval(node[3], env))
        if kind == "call":
            fn = self.eval(node[1], env)
            args = {name: self.eval(v, env) for name, v in node[2]}
            return self.call(fn, args)
        if kind == "pipe":
            piped = self.eval(node[1], env)
            call = node[2]
            fn = self.eval(call[1], env)
            args = {name: self.eval(v, env) for name, v in call[2]}
            args["tables"] = piped
            return self.call(fn, args)
        raise FluxError(f"unsupported expression {kind}")

    @staticmethod
    def _binop(op: str, a: Any, b: Any) -> Any:
        if op in ("==", "!=", "<", "<=", ">", ">="):
            if a is None or b is None:
                return None
            if isinstance(a, str) != isinstance(b, str):
                raise FluxError(f"type error: cannot compare {type(a).__name__} with {type(b).__name__}")
            return {
                "==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b,
            }[op]
        if op in ("=~", "!~"):
            raise FluxError("regular expressions are not supported by this fake")
        if a is None or b is None:
            return None
        if op == "+":
            r = a + b
            return Time(r) if isinstance(a, Time) or isinstance(b, Time) else r
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b if isinstance(a, float) or isinstance(b, float) else a // b
        if op == "%":
            return a % b
        raise FluxError(f"unsupported operator {op}")

    def call(self, fn: Any, args: dict[str, Any]) -> Any:
        if isinstance(fn, _Builtin):
            try:
                return fn.fn(self, **args)
            except TypeError as exc:
                raise FluxError(f"error calling function {fn.name!r}: {exc}") from None
        if isinstance(fn, _Lambda):
            env = dict(fn.env)
            for name, default in fn.params:
                if name in args:
                    env[name] = args[name]
                elif default is not None:
                    env[name] = self.eval(default, fn.env)
                else:
                    raise FluxError(f"missing required argument {name}")
            return self.eval(fn.body, env)
        raise FluxError("type error: not a function")

    # -- program
    def run(self, src: str, params: dict[str, Any]) -> list[FTable]:
        stmts = _Parser(src).program()
        env: dict[str, Any] = dict(_UNIVERSE)
        env.update(params)
        results = []
        for st in stmts:
            if st[0] == "import":
                path, alias = st[1], st[2]
                if path != "influxdata/influxdb/schema":
                    raise FluxError(f'compilation failed: unknown import path: "{path}"')
                env[alias or "schema"] = dict(_SCHEMA)
            elif st[0] == "assign":
                env[st[1]] = self.eval(st[2], env)
            else:
                value = self.eval(st[1], env)
                if isinstance(value, _From):
                    raise FluxError(
                        f"cannot submit unbounded read to \"{value.bucket.name}\"; try bounding 'from' with a call to 'range'"
                    )
                if isinstance(value, _Stream):
                    results.append(value)
        if not results:
            raise FluxError(
                "error in query specification while starting program: this Flux script returns no streaming data. "
                'Consider adding a "yield" or invoking streaming functions directly, without performing an assignment'
            )
        if len(results) > 1:
            raise FluxError("this fake answers one result per query")
        return results[0].tables


def _tables(tables: Any, fn: str) -> list[FTable]:
    if isinstance(tables, _From):
        raise FluxError(
            f"cannot submit unbounded read to \"{tables.bucket.name}\"; try bounding 'from' with a call to 'range'"
        )
    if not isinstance(tables, _Stream):
        raise FluxError(f"{fn}: missing table stream")
    return tables.tables


def _record(tbl: FTable, row: list[Any]) -> dict[str, Any]:
    return {
        c: (Time(v) if t == _DT and v is not None else v)
        for c, t, v in zip(tbl.cols, tbl.types, row, strict=True)
    }


def _to_time(ip: _Interp, v: Any, what: str) -> int:
    if isinstance(v, Duration):
        return ip.now + v
    if isinstance(v, Time):
        return int(v)
    raise FluxError(f"{what}: expected time or duration, got {type(v).__name__}")


# -- sources and transformations -------------------------------------------------


def _f_from(ip: _Interp, bucket: str | None = None, bucketID: str | None = None, host: Any = None, org: Any = None, token: Any = None) -> _From:  # noqa: N803
    if host is not None or org is not None or token is not None:
        raise FluxError("from: host/org/token are not supported by this fake")
    b = ip.server._find_bucket(bucket if bucket is not None else bucketID, by_id=bucket is None)
    if b is None:
        raise FluxError(f'failed to initialize execute state: could not find bucket "{bucket or bucketID}"', code="not found")
    return _From(b)


def _f_range(ip: _Interp, tables: Any, start: Any, stop: Any = None) -> _Stream:
    if not isinstance(tables, _From):
        raise FluxError("range: this fake supports range() right after from()")
    lo = _to_time(ip, start, "range")
    hi = ip.now if stop is None else _to_time(ip, stop, "range")
    out = []
    b = tables.bucket
    for (measurement, tags), fields in sorted(b.series.items()):
        tag_keys = [k for k, _ in tags]
        tag_vals = [v for _, v in tags]
        for fname in sorted(fields):
            values = fields[fname]
            times = sorted(t for t in values if lo <= t < hi)
            if not times:
                continue
            ftype = _FLUX_TYPE[b.field_types[measurement][fname]]
            out.append(
                FTable(
                    cols=["_start", "_stop", "_time", "_value", "_field", "_measurement", *tag_keys],
                    types=[_DT, _DT, _DT, ftype, "string", "string", *["string"] * len(tag_keys)],
                    key=["_start", "_stop", "_field", "_measurement", *tag_keys],
                    rows=[[lo, hi, t, values[t], fname, measurement, *tag_vals] for t in times],
                )
            )
    return _Stream(out)


def _refs(node: tuple, param: str, acc: set[str]) -> bool:
    """Collect the ``r.x`` / ``r["x"]`` names of a function body into ``acc``.

    False when ``r`` is used in any other way (then the body must run per row).
    """
    kind = node[0]
    if kind == "lit":
        return True
    if kind == "ident":
        return node[1] != param
    if kind in ("member", "index") and node[1][0] == "ident" and node[1][1] == param:
        if kind == "member":
            acc.add(node[2])
            return True
        if node[2][0] == "lit":
            acc.add(node[2][1])
            return True
        return False
    if kind == "member":
        return _refs(node[1], param, acc)
    if kind == "index":
        return _refs(node[1], param, acc) and _refs(node[2], param, acc)
    if kind in ("array", "and", "or"):
        return all([_refs(n, param, acc) for n in node[1]])
    if kind == "object":
        return all([_refs(v, param, acc) for _, v in node[1]])
    if kind in ("not", "exists", "neg"):
        return _refs(node[1], param, acc)
    if kind == "binop":
        return _refs(node[2], param, acc) and _refs(node[3], param, acc)
    if kind == "call":
        return _refs(node[1], param, acc) and all([_refs(v, param, acc) for _, v in node[2]])
    if kind == "pipe":
        return _refs(node[1], param, acc) and _refs(node[2], param, acc)
    return False


def _f_filter(ip: _Interp, tables: Any, fn: Any, onEmpty: str = "drop") -> _Stream:  # noqa: N803
    tabs = _tables(tables, "filter")
    if not isinstance(fn, _Lambda) or len(fn.params) != 1:
        raise FluxError("filter: fn must be a function of one parameter")
    param = fn.params[0][0]
    refs: set[str] = set()
    simple = _refs(fn.body, param, refs)
    out = []
    for tbl in tabs:
        if not tbl.rows:
            continue
        cols = set(tbl.cols)
        if simple and all(r in tbl.key or r not in cols for r in refs):
            # the predicate only reads group-key columns: the same for every row
            keep = ip.call(fn, {param: _record(tbl, tbl.rows[0])}) is True
            rows = tbl.rows if keep else []
        else:
            rows = [row for row in tbl.rows if ip.call(fn, {param: _record(tbl, row)}) is True]
        if rows or onEmpty == "keep":
            out.append(FTable(tbl.cols, tbl.types, tbl.key, rows))
    return _Stream(out)


def _f_pivot(ip: _Interp, tables: Any, rowKey: list[str], columnKey: list[str], valueColumn: str) -> _Stream:  # noqa: N803
    tabs = _tables(tables, "pivot")
    builders: dict[tuple, dict[str, Any]] = {}
    for tbl in tabs:
        idx = tbl.index()
        for c in [*rowKey, *columnKey, valueColumn]:
            if c not in idx:
                raise FluxError(f'pivot: specified column does not exist in table: "{c}"')
        out_key = [c for c in tbl.key if c not in columnKey and c != valueColumn]
        keyvals = tuple((c, tbl.rows[0][idx[c]]) for c in out_key) if tbl.rows else ()
        b = builders.get(keyvals)
        if b is None:
            base = [c for c in tbl.cols if (c in out_key or c in rowKey)]
            b = builders[keyvals] = {
                "cols": base,
                "types": [tbl.types[idx[c]] for c in base],
                "key": out_key,
                "rows": {},
                "new": {},
            }
        vt = tbl.types[idx[valueColumn]]
        vi = idx[valueColumn]
        rk_idx = [idx[c] for c in rowKey]
        ck_idx = [idx[c] for c in columnKey]
        base_idx = [idx[c] for c in b["cols"]]
        rows, new = b["rows"], b["new"]
        for row in tbl.rows:
            rk = tuple(row[i] for i in rk_idx)
            name = "_".join(str(row[i]) for i in ck_idx)
            have = new.get(name)
            if have is None:
                new[name] = vt
            elif have != vt:
                raise FluxError(f'pivot: value columns for "{name}" have different types: {have} and {vt}')
            entry = rows.get(rk)
            if entry is None:
                entry = rows[rk] = ([row[i] for i in base_idx], {})
            entry[1][name] = row[vi]
    out = []
    for b in builders.values():
        names = sorted(b["new"])
        cols = [*b["cols"], *names]
        types = [*b["types"], *(b["new"][n] for n in names)]
        rows = [base + [vals.get(n) for n in names] for _, (base, vals) in sorted(b["rows"].items(), key=lambda kv: kv[0])]
        out.append(FTable(cols, types, b["key"], rows))
    return _Stream(out)


_AGGREGATES = {"mean", "sum", "count"}
_SELECTORS = {"last", "first", "max", "min"}


def _aggregate(fn: str, values: list[Any], vtype: str) -> tuple[Any, str]:
    vals = [v for v in values if v is not None]
    if fn == "count":
        return len(vals), "long"
    if vtype not in ("double", "long", "unsignedLong"):
        raise FluxError(f"unsupported input type for {fn} aggregate: {'float' if vtype == 'double' else vtype}")
    if fn == "mean":
        return (math.fsum(vals) / len(vals) if vals else None), "double"
    return (sum(vals) if vals else None), vtype


def _select(fn: str, rows: list[list[Any]], vi: int, vtype: str) -> list[Any] | None:
    cand = [r for r in rows if r[vi] is not None]
    if not cand:
        return None
    if fn == "last":
        return cand[-1]
    if fn == "first":
        return cand[0]
    if vtype not in ("double", "long", "unsignedLong"):
        raise FluxError(f"unsupported input type for {fn} aggregate: {vtype}")
    best = cand[0]
    for r in cand[1:]:
        if (r[vi] > best[vi]) if fn == "max" else (r[vi] < best[vi]):
            best = r
    return best


def _f_aggregate_window(
    ip: _Interp,
    tables: Any,
    every: Any,
    fn: Any,
    period: Any = None,
    offset: Any = _ZERO,
    column: str = "_value",
    timeSrc: str = "_stop",  # noqa: N803
    timeDst: str = "_time",  # noqa: N803
    createEmpty: bool = True,  # noqa: N803
    location: Any = None,
) -> _Stream:
    tabs = _tables(tables, "aggregateWindow")
    if not isinstance(every, Duration) or every <= 0:
        raise FluxError("aggregateWindow: every must be a positive duration")
    if period is not None and period != every:
        raise FluxError("aggregateWindow: period != every is not supported by this fake")
    if not isinstance(fn, _Builtin) or fn.name not in _AGGREGATES | _SELECTORS:
        raise FluxError("aggregateWindow: this fake supports fn: mean, sum, count, first, last, min, max")
    if timeSrc not in ("_start", "_stop"):
        raise FluxError("aggregateWindow: timeSrc must be _start or _stop")
    off = int(offset)
    out = []
    for tbl in tabs:
        if not tbl.rows:
            continue
        idx = tbl.index()
        for c in ("_start", "_stop", "_time", column):
            if c not in idx:
                raise FluxError(f'aggregateWindow: missing column "{c}"')
        lo, hi = tbl.rows[0][idx["_start"]], tbl.rows[0][idx["_stop"]]
        ti, vi = idx["_time"], idx[column]
        vtype = tbl.types[vi]
        windows: dict[int, list[list[Any]]] = {}
        for row in tbl.rows:
            t = row[ti]
            ws = t - (t - off) % every
            windows.setdefault(ws, []).append(row)
        if createEmpty:
            first = lo - (lo - off) % every
            ws = first
            while ws < hi:
                windows.setdefault(ws, [])
                ws += every
        if fn.name in _AGGREGATES:
            key_cols = [c for c in tbl.cols if c in tbl.key]
            cols = [*key_cols, column, timeDst]
            agg_type = None
            rows = []
            for ws in sorted(windows):
                value, agg_type = _aggregate(fn.name, [r[vi] for r in windows[ws]], vtype)
                ks, ke = max(ws, lo), min(ws + every, hi)
                base = windows[ws][0] if windows[ws] else tbl.rows[0]
                rows.append([*(base[idx[c]] for c in key_cols), value, ks if timeSrc == "_start" else ke])
            types = [*(tbl.types[idx[c]] for c in key_cols), agg_type or "double", _DT]
            out.append(FTable(cols, types, list(tbl.key), rows))
        else:
            cols, types = list(tbl.cols), list(tbl.types)
            if timeDst not in cols:
                cols.append(timeDst)
                types.append(_DT)
            di = cols.index(timeDst)
            rows = []
            for ws in sorted(windows):
                sel = _select(fn.name, windows[ws], vi, vtype)
                if sel is None:
                    continue
                row = list(sel) + ([None] if len(cols) > len(sel) else [])
                ks, ke = max(ws, lo), min(ws + every, hi)
                row[di] = ks if timeSrc == "_start" else ke
                rows.append(row)
            out.append(FTable(cols, types, list(tbl.key), rows))
    return _Stream([t for t in out if t.rows])


def _merge_into(builders: dict[tuple, dict[str, Any]], keyvals: tuple, key: list[str], tbl: FTable, rows: list[list[Any]]) -> None:
    b = builders.get(keyvals)
    if b is None:
        b = builders[keyvals] = {"cols": [], "types": {}, "key": key, "rows": []}
    for c, t in zip(tbl.cols, tbl.types, strict=True):
        have = b["types"].get(c)
        if have is None:
            b["cols"].append(c)
            b["types"][c] = t
        elif have != t:
            raise FluxError(f'schema collision detected: column "{c}" is both of type {have} and {t}')
    b["rows"].extend(dict(zip(tbl.cols, r, strict=True)) for r in rows)


def _built(builders: dict[tuple, dict[str, Any]]) -> list[FTable]:
    out = []
    for b in builders.values():
        cols = b["cols"]
        out.append(
            FTable(cols, [b["types"][c] for c in cols], b["key"], [[r.get(c) for c in cols] for r in b["rows"]])
        )
    return out


def _f_group(ip: _Interp, tables: Any, columns: list[str] | None = None, mode: str = "by") -> _Stream:
    tabs = _tables(tables, "group")
    if mode != "by":
        raise FluxError("group: this fake supports mode: \"by\"")
    columns = list(columns or [])
    builders: dict[tuple, dict[str, Any]] = {}
    for tbl in tabs:
        idx = tbl.index()
        key = [c for c in tbl.cols if c in columns]
        if all(c in tbl.key for c in key):
            keyvals = tuple((c, tbl.rows[0][idx[c]]) for c in key) if tbl.rows else ()
            _merge_into(builders, keyvals, key, tbl, tbl.rows)
        else:
            for row in tbl.rows:
                keyvals = tuple((c, row[idx[c]]) for c in key)
                _merge_into(builders, keyvals, key, tbl, [row])
    return _Stream(_built(builders))


def _selector_fn(name: str) -> Callable[..., Any]:
    def fn(ip: _Interp, tables: Any = None, column: str = "_value") -> _Stream:
        tabs = _tables(tables, name)
        out = []
        for tbl in tabs:
            idx = tbl.index()
            if column not in idx:
                raise FluxError(f'{name}: column "{column}" does not exist')
            sel = _select(name, tbl.rows, idx[column], tbl.types[idx[column]])
            if sel is not None:
                out.append(FTable(tbl.cols, tbl.types, tbl.key, [sel]))
        return _Stream(out)

    return fn


def _aggregate_fn(name: str) -> Callable[..., Any]:
    def fn(ip: _Interp, tables: Any = None, column: str = "_value") -> _Stream:
        tabs = _tables(tables, name)
        out = []
        for tbl in tabs:
            idx = tbl.index()
            if column not in idx:
                raise FluxError(f'{name}: column "{column}" does not exist')
            value, vtype = _aggregate(name, [r[idx[column]] for r in tbl.rows], tbl.types[idx[column]])
            key_cols = [c for c in tbl.cols if c in tbl.key]
            first = tbl.rows[0]
            out.append(
                FTable(
                    [*key_cols, column],
                    [*(tbl.types[idx[c]] for c in key_cols), vtype],
                    list(tbl.key),
                    [[*(first[idx[c]] for c in key_cols), value]],
                )
            )
        return _Stream(out)

    return fn


def _f_keep(ip: _Interp, tables: Any, columns: list[str] | None = None, fn: Any = None) -> _Stream:
    tabs = _tables(tables, "keep")
    if fn is not None:
        raise FluxError("keep: fn is not supported by this fake")
    wanted = set(columns or [])
    builders: dict[tuple, dict[str, Any]] = {}
    for tbl in tabs:
        keep_idx = [i for i, c in enumerate(tbl.cols) if c in wanted]
        proj = FTable(
            [tbl.cols[i] for i in keep_idx],
            [tbl.types[i] for i in keep_idx],
            [c for c in tbl.key if c in wanted],
            [[row[i] for i in keep_idx] for row in tbl.rows],
        )
        _merge_into(builders, proj.key_values(), proj.key, proj, proj.rows)
    return _Stream(_built(builders))


def _f_limit(ip: _Interp, tables: Any, n: int, offset: int = 0) -> _Stream:
    tabs = _tables(tables, "limit")
    return _Stream([FTable(t.cols, t.types, t.key, t.rows[offset : offset + n]) for t in tabs])


def _f_yield(ip: _Interp, tables: Any, name: str = "_result") -> _Stream:
    return _Stream(_tables(tables, "yield"))


def _f_time(ip: _Interp, v: Any) -> Time:
    if isinstance(v, Time):
        return v
    if isinstance(v, str):
        try:
            return Time(parse_rfc3339(v))
        except ValueError:
            raise FluxError(f"time: cannot parse {v!r}") from None
    if isinstance(v, int) and not isinstance(v, bool):
        return Time(v)
    raise FluxError(f"time: cannot convert {type(v).__name__}")


def _f_duration(ip: _Interp, v: Any) -> Duration:
    if isinstance(v, Duration):
        return v
    if isinstance(v, str):
        return Duration(parse_duration(v))
    if isinstance(v, int) and not isinstance(v, bool):
        return Duration(v)
    raise FluxError(f"duration: cannot convert {type(v).__name__}")


def _f_now(ip: _Interp) -> Time:
    return Time(ip.now)


def _f_contains(ip: _Interp, value: Any, set: list[Any]) -> bool:  # noqa: A002
    if not isinstance(set, list):
        raise FluxError("contains: set must be an array")
    return value is not None and value in set


def _tag_values(ip: _Interp, bucket: str, tag: str, predicate: Any, start: Any, stop: Any) -> _Stream:
    src = _f_from(ip, bucket=bucket)
    tabs = _f_range(ip, src, start=start, stop=stop)
    if predicate is not None:
        tabs = _f_filter(ip, tabs, fn=predicate)
    values = set()
    for tbl in tabs.tables:
        idx = tbl.index()
        if tag not in idx:
            continue
        i = idx[tag]
        values.update(row[i] for row in tbl.rows if row[i] is not None)
    if not values:
        return _Stream([])
    return _Stream([FTable(["_value"], ["string"], [], [[v] for v in sorted(values)])])


def _s_tag_values(ip: _Interp, bucket: str, tag: str, predicate: Any = None, start: Any = _MINUS_30D, stop: Any = None) -> _Stream:
    return _tag_values(ip, bucket, tag, predicate, start, stop)


def _s_measurements(ip: _Interp, bucket: str, start: Any = _MINUS_30D, stop: Any = None) -> _Stream:
    return _tag_values(ip, bucket, "_measurement", None, start, stop)


def _s_field_keys(ip: _Interp, bucket: str, predicate: Any = None, start: Any = _MINUS_30D, stop: Any = None) -> _Stream:
    return _tag_values(ip, bucket, "_field", predicate, start, stop)


_UNIVERSE: dict[str, Any] = {
    "from": _Builtin("from", _f_from),
    "range": _Builtin("range", _f_range),
    "filter": _Builtin("filter", _f_filter),
    "pivot": _Builtin("pivot", _f_pivot),
    "aggregateWindow": _Builtin("aggregateWindow", _f_aggregate_window),
    "group": _Builtin("group", _f_group),
    "keep": _Builtin("keep", _f_keep),
    "limit": _Builtin("limit", _f_limit),
    "yield": _Builtin("yield", _f_yield),
    "time": _Builtin("time", _f_time),
    "duration": _Builtin("duration", _f_duration),
    "now": _Builtin("now", _f_now),
    "contains": _Builtin("contains", _f_contains),
    **{n: _Builtin(n, _selector_fn(n)) for n in _SELECTORS},
    **{n: _Builtin(n, _aggregate_fn(n)) for n in _AGGREGATES},
}
_SCHEMA: dict[str, Any] = {
    "tagValues": _Builtin("tagValues", _s_tag_values),
    "measurements": _Builtin("measurements", _s_measurements),
    "fieldKeys": _Builtin("fieldKeys", _s_field_keys),
}


# ---------------------------------------------------------------------------
# extern (influxdb-client's params=) and delete predicates


def _decode_ast(node: dict[str, Any]) -> Any:
    t = node.get("type")
    if t == "StringLiteral":
        return str(node["value"])
    if t in ("IntegerLiteral", "UnsignedIntegerLiteral"):
        return int(node["value"])
    if t == "FloatLiteral":
        return float(node["value"])
    if t == "BooleanLiteral":
        return bool(node["value"])
    if t == "DateTimeLiteral":
        try:
            return Time(parse_rfc3339(node["value"]))
        except ValueError:
            raise FluxError(f"invalid extern: bad date time {node['value']!r}") from None
    if t == "DurationLiteral":
        total = 0
        for part in node.get("values") or []:
            unit = part["unit"]
            if unit not in _DURATION_UNITS:
                raise FluxError(f"invalid extern: duration unit {unit!r}")
            total += int(part["magnitude"]) * _DURATION_UNITS[unit]
        return Duration(total)
    if t == "ArrayExpression":
        return [_decode_ast(e) for e in node.get("elements") or []]
    if t == "ObjectExpression":
        out = {}
        for prop in node.get("properties") or []:
            key = prop["key"]
            out[key.get("name", key.get("value"))] = _decode_ast(prop["value"])
        return out
    if t == "UnaryExpression":
        v = _decode_ast(node["argument"])
        if node.get("operator") == "-":
            return Duration(-v) if isinstance(v, Duration) else -v
        if node.get("operator") == "not":
            return not v
    raise FluxError(f"invalid extern: unsupported node type {t!r}")


def decode_extern(extern: dict[str, Any] | None) -> dict[str, Any]:
    """Option statements of a query's ``extern`` file as {name: value}."""
    params: dict[str, Any] = {}
    if not extern:
        return params
    for stmt in extern.get("body") or []:
        assignment = stmt.get("assignment") if stmt.get("type") == "OptionStatement" else stmt
        if not assignment or assignment.get("type") != "VariableAssignment":
            continue  # e.g. profiler options (MemberAssignment)
        params[assignment["id"]["name"]] = _decode_ast(assignment["init"])
    return params


_PRED_TOKEN_RE = re.compile(r'\s+|(?P<q>"(?:[^"\\\n]|\\.)*")|(?P<op>!=|=|\(|\))|(?P<w>[^\s=!()"]+)')
_INFLUXQL_ESCAPES = {"n": "\n", "\\": "\\", '"': '"', "'": "'"}


def _influxql_unquote(text: str) -> str:
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            nxt = body[i + 1]
            if nxt not in _INFLUXQL_ESCAPES:
                raise _HTTPError("invalid", "invalid request; error parsing predicate: bad escape")
            out.append(_INFLUXQL_ESCAPES[nxt])
            i += 2
            continue
        out.append(body[i])
        i += 1
    return "".join(out)


def parse_delete_predicate(text: str) -> Callable[[str, dict[str, str]], bool]:
    """``_measurement="m" AND tag="v"`` (AND/OR, =, !=, parentheses) as a series matcher."""
    if not text.strip():
        return lambda m, tags: True
    toks: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _PRED_TOKEN_RE.match(text, pos)
        if not m:
            raise _HTTPError("invalid", f"invalid request; error parsing predicate: bad token at position {pos}")
        if m.group("q"):
            toks.append(("ident", _influxql_unquote(m.group("q"))))
        elif m.group("op"):
            toks.append(("op", m.group("op")))
        elif m.group("w"):
            w = m.group("w")
            if w.upper() in ("AND", "OR"):
                toks.append(("logic", w.upper()))
            elif w.startswith("'"):
                raise _HTTPError("invalid", f"invalid request; error parsing predicate: bad tag value: {w!r}")
            else:
                toks.append(("ident", w))
        pos = m.end()
    toks.append(("eof", ""))
    i = 0

    def expr() -> Callable[[str, dict[str, str]], bool]:
        nonlocal i
        terms = [conj()]
        while toks[i] == ("logic", "OR"):
            i += 1
            terms.append(conj())
        return lambda m, t: any(f(m, t) for f in terms)

    def conj() -> Callable[[str, dict[str, str]], bool]:
        nonlocal i
        terms = [atom()]
        while toks[i] == ("logic", "AND"):
            i += 1
            terms.append(atom())
        return lambda m, t: all(f(m, t) for f in terms)

    def atom() -> Callable[[str, dict[str, str]], bool]:
        nonlocal i
        if toks[i] == ("op", "("):
            i += 1
            inner = expr()
            if toks[i] != ("op", ")"):
                raise _HTTPError("invalid", "invalid request; error parsing predicate: extra ( seen")
            i += 1
            return inner
        kind, key = toks[i]
        if kind != "ident":
            raise _HTTPError("invalid", f"invalid request; error parsing predicate: bad tag key {key!r}")
        op = toks[i + 1]
        val_kind, value = toks[i + 2]
        if op[0] != "op" or op[1] not in ("=", "!=") or val_kind != "ident":
            raise _HTTPError("invalid", "invalid request; error parsing predicate: bad tag rule")
        i += 3
        if key == "_field":
            raise _HTTPError("invalid", "invalid request; error parsing predicate: _field is not supported in delete predicates")
        eq = op[1] == "="
        if key == "_measurement":
            return lambda m, t: (m == value) == eq
        return lambda m, t: (t.get(key) == value) == eq

    fn = expr()
    if toks[i][0] != "eof":
        raise _HTTPError("invalid", "invalid request; error parsing predicate: extra ) seen")
    return fn


# ---------------------------------------------------------------------------
# the server


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int | None = None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RecordedQuery:
    """A decoded /api/v2/query request: the Flux text and its extern parameters."""

    query: str
    params: dict[str, Any]
    dialect: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Rule:
    remaining: int
    path: str | None
    status: int | None  # None = drop the connection
    message: str
    retry_after: int | None
    code: str = "internal error"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-influxdb"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, True)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, False)  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802
        self.server.fake._handle(self)  # type: ignore[attr-defined]

    do_POST = do_GET
    do_DELETE = do_GET
    do_HEAD = do_GET

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""


class FakeInfluxDB2:
    """An in-memory InfluxDB 2.7 look-alike on ``127.0.0.1:<free port>``.

    Parameters
    ----------
    token, org, bucket
        The one valid API token (``Authorization: Token <token>``), the
        organisation name and its first bucket.
    """

    VERSION = "v2.7.11"

    def __init__(
        self,
        token: str = "t0ken",
        org: str = "pdm",
        bucket: str = "pdm",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.org = org
        self.org_id = "0a1b2c3d4e5f6071"
        self._buckets: dict[str, _Bucket] = {}
        self._next_id = 0x0B00C0FFEE000001
        self.create_bucket(bucket)
        self.requests: list[RecordedRequest] = []
        self.queries: list[RecordedQuery] = []
        self.down = False
        self.errors: list[Exception] = []
        self._rules: list[_Rule] = []
        self._lock = threading.RLock()
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # ----------------------------------------------------------- lifecycle
    def start(self) -> FakeInfluxDB2:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self._host, self._port), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-influxdb2", daemon=True
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop listening and cut every open connection (a later request fails to connect)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeInfluxDB2:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # --------------------------------------------------------- test controls
    def create_bucket(self, name: str) -> None:
        self._buckets[name] = _Bucket(name, f"{self._next_id:016x}")
        self._next_id += 1

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        path: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        code: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``path`` if given) with ``status``.

        The body is 2.x's error JSON; ``code`` defaults to the one 2.x uses for ``status``.
        """
        if code is None:
            code = next((c for c, st in _HTTPError.STATUS.items() if st == status), "internal error")
        with self._lock:
            self._rules.append(_Rule(count, path, status, message or "service unavailable", retry_after, code))

    def drop_next(self, count: int = 1, *, path: str | None = None) -> None:
        """Close the connection of the next ``count`` requests without answering."""
        with self._lock:
            self._rules.append(_Rule(count, path, None, "", None))

    def clear_failures(self) -> None:
        with self._lock:
            self._rules.clear()
            self.down = False

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.queries.clear()

    def points(self, measurement: str | None = None, bucket: str | None = None) -> list[dict[str, Any]]:
        """Stored points, one dict per (measurement, tags, time), sorted."""
        b = self._buckets[bucket or next(iter(self._buckets))]
        with self._lock:
            rows: dict[tuple, dict[str, Any]] = {}
            for (m, tags), fields in b.series.items():
                if measurement is not None and m != measurement:
                    continue
                for fname, values in fields.items():
                    for t, v in values.items():
                        rows.setdefault((m, tags, t), {})[fname] = v
        return [
            {"measurement": m, "tags": dict(tags), "fields": f, "time": t}
            for (m, tags, t), f in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1]))
        ]

    # --------------------------------------------------------------- routing
    def _find_bucket(self, name: str | None, by_id: bool = False) -> _Bucket | None:
        if name is None:
            return None
        if by_id:
            return next((b for b in self._buckets.values() if b.id == name), None)
        return self._buckets.get(name)

    def _take_rule(self, path: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and (rule.path is None or path.startswith(rule.path)):
                    rule.remaining -= 1
                    return rule
            self._rules = [r for r in self._rules if r.remaining > 0]
        return None

    def _handle(self, h: _Handler) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        body = h.read_body()
        rec = RecordedRequest(h.command, path, query, {k: v for k, v in h.headers.items()}, body)
        with self._lock:
            self.requests.append(rec)
        rule = self._take_rule(path)
        if self.down or (rule is not None and rule.status is None):
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if rule is not None:
            extra = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
            self._send_error(h, rec, _HTTPError(rule.code, rule.message, rule.status), extra)
            return
        try:
            if path == "/ping" and h.command in ("GET", "HEAD"):
                self._send(h, rec, 204)
            elif path == "/health" and h.command == "GET":
                body_out = json.dumps(
                    {
                        "name": "influxdb",
                        "message": "ready for queries and writes",
                        "status": "pass",
                        "checks": [],
                        "version": self.VERSION,
                        "commit": "fake",
                    }
                ).encode()
                self._send(h, rec, 200, body_out, "application/json; charset=utf-8")
            elif path in ("/api/v2/write", "/api/v2/query", "/api/v2/delete"):
                if h.command != "POST":
                    raise _HTTPError("method not allowed", "method not allowed", 405)
                self._authorize(h)
                handler = {
                    "/api/v2/write": self._write,
                    "/api/v2/query": self._query,
                    "/api/v2/delete": self._delete,
                }[path]
                handler(h, rec, query, body)
            else:
                raise _HTTPError("not found", "path not found")
        except _HTTPError as exc:
            self._send_error(h, rec, exc)
        except Exception as exc:  # a bug in the fake: answer, and keep it for the test to see
            with self._lock:
                self.errors.append(exc)
            self._send_error(h, rec, _HTTPError("internal error", f"fake server error: {exc!r}"))

    # ------------------------------------------------------------- responses
    def _headers(self, h: _Handler) -> None:
        h.send_header("X-Influxdb-Build", "OSS")
        h.send_header("X-Influxdb-Version", self.VERSION)
        h.send_header("Date", h.date_time_string())

    def _send(self, h: _Handler, rec: RecordedRequest, status: int, body: bytes = b"", ctype: str | None = None, extra: dict[str, str] | None = None) -> None:
        rec.status = status
        h.send_response_only(status)
        self._headers(h)
        if ctype:
            h.send_header("Content-Type", ctype)
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body and h.command != "HEAD":
            h.wfile.write(body)

    def _send_error(self, h: _Handler, rec: RecordedRequest, exc: _HTTPError, extra: dict[str, str] | None = None) -> None:
        body = json.dumps({"code": exc.code, "message": exc.message}).encode()
        headers = {"X-Platform-Error-Code": exc.code, **(extra or {})}
        self._send(h, rec, exc.status, body, "application/json; charset=utf-8", headers)

    def _send_stream(self, h: _Handler, rec: RecordedRequest, text: str, ctype: str) -> None:
        rec.status = 200
        h.send_response_only(200)
        self._headers(h)
        h.send_header("Content-Type", ctype)
        h.send_header("Vary", "Accept-Encoding")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        data = text.encode("utf-8")
        step = 64 * 1024
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        h.wfile.write(b"0\r\n\r\n")

    # --------------------------------------------------------------- the API
    def _authorize(self, h: _Handler) -> None:
        auth = h.headers.get("Authorization", "")
        scheme, _, credential = auth.partition(" ")
        if scheme not in ("Token", "Bearer") or credential != self.token:
            raise _HTTPError("unauthorized", "unauthorized access")

    def _org(self, query: dict[str, list[str]]) -> None:
        org = (query.get("org") or [""])[0]
        org_id = (query.get("orgID") or [""])[0]
        if org:
            if org != self.org and org != self.org_id:
                raise _HTTPError("not found", f'organization name "{org}" not found')
        elif org_id:
            if org_id != self.org_id:
                raise _HTTPError("not found", "organization not found")
        else:
            raise _HTTPError("invalid", "Please provide either orgID or org")

    def _bucket(self, query: dict[str, list[str]]) -> _Bucket:
        name = (query.get("bucket") or [""])[0]
        bucket_id = (query.get("bucketID") or [""])[0]
        b = self._find_bucket(name) if name else self._find_bucket(bucket_id, by_id=True)
        if b is None and name:
            b = self._find_bucket(name, by_id=True)
        if b is None:
            raise _HTTPError("not found", f'bucket "{name or bucket_id}" not found')
        return b

    def _write(self, h: _Handler, rec: RecordedRequest, query: dict[str, list[str]], body: bytes) -> None:
        precision = (query.get("precision") or ["ns"])[0] or "ns"
        if precision not in ("ns", "us", "ms", "s"):
            raise _HTTPError("invalid", "invalid precision; valid precision units are ns, us, ms, and s")
        if not (query.get("bucket") or query.get("bucketID")):
            raise _HTTPError("not found", "bucket not found")
        self._org(query)
        bucket = self._bucket(query)
        if h.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except OSError:
                raise _HTTPError("invalid", "gzipped HTTP body contains an invalid header") from None
        if not body:
            raise _HTTPError("invalid", "writing requires points")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _HTTPError("invalid", "unable to parse points: invalid UTF-8") from None
        points, failed = parse_line_protocol(text, precision)
        if failed:
            raise _HTTPError("invalid", "\n".join(failed))
        with self._lock:
            dropped, conflict = bucket.write(points)
        if dropped:
            raise _HTTPError(
                "unprocessable entity",
                f"failure writing points to database: partial write: {conflict} dropped={dropped}",
            )
        self._send(h, rec, 204)

    def _query(self, h: _Handler, rec: RecordedRequest, query: dict[str, list[str]], body: bytes) -> None:
        self._org(query)
        ctype = h.headers.get("Content-Type", "")
        dialect: dict[str, Any] = {}
        if ctype.startswith("application/vnd.flux"):
            flux, extern = body.decode("utf-8"), None
        else:
            try:
                req = json.loads(body or b"{}")
            except ValueError as exc:
                raise _HTTPError("invalid", f"failed to decode request body: {exc}") from None
            flux = req.get("query")
            extern = req.get("extern")
            dialect = req.get("dialect") or {}
            if req.get("type", "flux") != "flux":
                raise _HTTPError("invalid", f"unsupported query type {req.get('type')!r}")
            if not isinstance(flux, str) or not flux:
                raise _HTTPError("invalid", "query is required")
        params = decode_extern(extern)
        with self._lock:
            self.queries.append(RecordedQuery(flux, params, dialect))
        annotations = list(dialect.get("annotations") or [])
        for a in annotations:
            if a not in ("datatype", "group", "default"):
                raise _HTTPError("invalid", f"unknown annotation {a!r}")
        if dialect.get("delimiter", ",") != ",":
            raise _HTTPError("invalid", "this fake only writes ',' delimited CSV")
        header = dialect.get("header", True)
        with self._lock:
            tables = _Interp(self, self.org, _time.time_ns()).run(flux, params)
            text = encode_csv(tables, annotations, header=header is not False)
        self._send_stream(h, rec, text, "text/csv; charset=utf-8")

    def _delete(self, h: _Handler, rec: RecordedRequest, query: dict[str, list[str]], body: bytes) -> None:
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            raise _HTTPError("invalid", "invalid request; error parsing request json") from None
        try:
            start = parse_rfc3339(req.get("start", ""))
        except ValueError:
            raise _HTTPError(
                "invalid",
                "invalid RFC3339Nano for field start, please format your time with RFC3339Nano format, example: 2009-01-02T23:00:00Z",
            ) from None
        try:
            stop = parse_rfc3339(req.get("stop", ""))
        except ValueError:
            raise _HTTPError(
                "invalid",
                "invalid RFC3339Nano for field stop, please format your time with RFC3339Nano format, example: 2009-01-01T23:00:00Z",
            ) from None
        if start < MIN_NANO_TIME:
            raise _HTTPError("invalid", "invalid start time, start time must not be before 1677-09-21T00:12:43.145224194Z")
        if stop > MAX_NANO_TIME:
            raise _HTTPError("invalid", "invalid stop time, stop time must not be after 2262-04-11T23:47:16.854775806Z")
        pred = parse_delete_predicate(req.get("predicate") or "")
        self._org(query)
        bucket = self._bucket(query)
        with self._lock:
            bucket.delete(start, stop, pred)
        self._send(h, rec, 204)
