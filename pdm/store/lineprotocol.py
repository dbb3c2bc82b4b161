"""InfluxDB line protocol, encoded column-wise from a validated batch.

Escaping follows the InfluxDB docs: in measurement names commas and spaces;
in tag keys, tag values and field keys commas, equals signs and spaces; in
string field values double quotes and backslashes. Integers carry an ``i``
suffix, floats are written with ``repr`` (shortest exact round-trip).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from pdm.store.batch import Batch

try:  # a C encoder with shortest round-trip floats; only used where it matches repr()
    import msgspec as _msgspec
except ImportError:  # pragma: no cover - optional speed-up
    _msgspec = None  # type: ignore[assignment]


def escape_tag(values: pd.Series) -> pd.Series:
    """Escape tag keys/values (and field keys) for line protocol."""
    return (
        values.str.replace(",", r"\,", regex=False)
        .str.replace("=", r"\=", regex=False)
        .str.replace(" ", r"\ ", regex=False)
    )


def _escape_one(text: str) -> str:
    return text.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def _field_strings(col: pd.Series, ftype: str) -> pd.Series:
    """Field values rendered for line protocol; missing values become None."""
    present = col.notna().to_numpy()
    out = pd.Series(np.full(len(col), None, dtype=object), index=col.index)
    if not present.any():
        return out
    vals = col[present]
    if ftype == "float":
        rendered = [repr(float(v)) for v in vals.to_numpy(dtype="float64")]
    elif ftype == "integer":
        rendered = [f"{int(v)}i" for v in vals]
    elif ftype == "boolean":
        rendered = ["true" if bool(v) else "false" for v in vals]
    else:
        rendered = [
            '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in vals
        ]
    out[present] = rendered
    return out


def encode(batch: Batch, heads: np.ndarray | None = None) -> list[str]:
    """One line per row of ``batch.frame``.

    Vectorised where it pays: tag sets are escaped once per distinct
    combination, and rows are rendered with one ``%`` template per pattern of
    present fields (usually just one), so a row costs a single string format.
    ``heads``: the rows' ``measurement,tags`` prefixes if known already (from
    :func:`line_heads` of a bigger batch this one is a slice of).
    """
    frame = batch.frame
    n = len(frame)
    if n == 0:
        return []
    if heads is None:
        heads = line_heads(batch)
    times = frame["time"].astype("int64").to_numpy()
    specs: list[str] = []
    values: list[np.ndarray | list[str]] = []
    present: list[np.ndarray] = []
    for key, ftype in batch.field_types.items():
        spec, vals, mask = _field_values(frame[key], ftype)
        specs.append(_escape_one(key).replace("%", "%%") + "=" + spec)
        values.append(vals)
        present.append(mask)
    if not specs or all(m.all() for m in present):
        # Common case: every row has every field.
        template = "%s " + ",".join(specs) + " %s"
        return [template % row for row in zip(heads.tolist(), *(_as_list(v) for v in values), _int_strs(times), strict=True)]
    # Group rows by which fields they carry; render each group with its own template.
    packed = np.packbits(np.column_stack(present), axis=1)
    patterns, inverse = np.unique(packed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    out: list[str] = [""] * n
    for g, rows in enumerate(np.split(order, bounds)):
        which = np.flatnonzero(np.unpackbits(patterns[g])[: len(specs)]).tolist()
        template = "%s " + ",".join(specs[j] for j in which) + " %s"
        rendered = [
            template % row
            for row in zip(
                heads[rows].tolist(), *(_take(values[j], rows) for j in which), _int_strs(times[rows]), strict=True
            )
        ]
        for i, line in zip(rows.tolist(), rendered, strict=True):
            out[i] = line
    return out


def line_heads(batch: Batch) -> np.ndarray:
    """``measurement,tag=value,...`` per row, built once per distinct tag combination."""
    frame = batch.frame
    n = len(frame)
    measurement = _escape_one(batch.measurement)
    keys = sorted(batch.tag_keys)
    if not keys:
        return np.full(n, measurement, dtype=object)
    combined = np.zeros(n, dtype=np.int64)
    pieces: list[np.ndarray] = []
    codes_per_key: list[np.ndarray] = []
    for key in keys:
        vals = frame[key].astype(str)
        codes, uniques = pd.factorize(vals, use_na_sentinel=False)
        uniq = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
        prefix = "," + _escape_one(key) + "="
        rendered = [
            "" if v == "" else prefix + _escape_one(v) for v in uniq.tolist()
        ]
        pieces.append(np.array(rendered, dtype=object))
        codes_per_key.append(codes)
        combined, _ = pd.factorize(combined * len(uniques) + codes)
        combined = combined.astype(np.int64)
    _, first = np.unique(combined, return_index=True)
    uniq_heads = np.empty(len(first), dtype=object)
    for g, i in enumerate(first.tolist()):
        uniq_heads[g] = measurement + "".join(p[c[i]] for p, c in zip(pieces, codes_per_key, strict=True))
    # np.unique sorts the group ids, so group g is id g (ids are 0..k-1).
    return uniq_heads[combined]


def _field_values(col: pd.Series, ftype: str) -> tuple[str, np.ndarray | list[str], np.ndarray]:
    """(``%`` spec, values ready for it, present mask) of one field column."""
    present = col.notna().to_numpy()
    if ftype == "float":
        return "%s", _float_reprs(col.to_numpy(dtype="float64", na_value=np.nan), present), present
    if ftype == "integer":
        if present.all():
            try:
                return "%si", col.to_numpy(dtype="int64"), present
            except (TypeError, ValueError, OverflowError):
                pass
        vals = np.empty(len(col), dtype=object)
        vals[present] = [int(v) for v in col[present]]
        return "%si", vals, present
    if ftype == "boolean":
        # Rows without the value get "false" too: they are never rendered.
        return "%s", _BOOL_WORDS[col.to_numpy(dtype=bool, na_value=False).astype(np.intp)], present
    vals = np.empty(len(col), dtype=object)
    vals[present] = ['"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in col[present]]
    return "%s", vals, present


_BOOL_WORDS = np.array(["false", "true"], dtype=object)


def _as_list(values: np.ndarray | list[str]) -> list:
    return values if isinstance(values, list) else values.tolist()


def _take(values: np.ndarray | list[str], rows: np.ndarray) -> list:
    if isinstance(values, list):
        return [values[i] for i in rows.tolist()]
    return values[rows].tolist()


def _fast_json_matches_repr() -> bool:
    """Whether msgspec writes floats in [1e-4, 1e16) and ints exactly as repr()/str() do."""
    if _msgspec is None:
        return False
    probe = [0.0, -0.0, 1.0, -1.5, 0.1, 0.2 + 0.1, 1e-4, 0.00012345678901234567, 123.456,
             1e15, 9999999999999998.0, 2.0**52 + 0.5, 1 / 3, 2 / 3, 1e15 + 0.3, 5e-4, 4.35, 100.0]
    ints = [0, -1, 2**63 - 1, -(2**63), 1700000000000000000]
    try:
        floats_ok = _msgspec.json.encode(probe).decode("ascii")[1:-1].split(",") == list(map(repr, probe))
        ints_ok = _msgspec.json.encode(ints).decode("ascii")[1:-1].split(",") == list(map(str, ints))
    except Exception:  # pragma: no cover - defensive: any surprise disables the fast path
        return False
    return floats_ok and ints_ok


_FAST = _fast_json_matches_repr()


def _float_reprs(arr: np.ndarray, present: np.ndarray) -> list[str]:
    """``repr(float(v))`` of each value (entries where ``present`` is False are unspecified)."""
    vals = arr.tolist()
    if not _FAST or len(vals) < 32:
        return [repr(v) if p else "" for v, p in zip(vals, present.tolist(), strict=True)]
    out = _msgspec.json.encode(vals).decode("ascii")[1:-1].split(",")
    # repr() switches to exponent notation outside [1e-4, 1e16); NaN/inf are not JSON.
    mag = np.abs(arr)
    with np.errstate(invalid="ignore"):
        odd = present & ~(((mag >= 1e-4) & (mag < 1e16)) | (arr == 0))
    for i in np.flatnonzero(odd).tolist():
        out[i] = repr(vals[i])
    return out


def _int_strs(values: np.ndarray) -> list[str]:
    """``str(int(v))`` of each int64."""
    if not _FAST or len(values) < 32:
        return list(map(str, values.tolist()))
    return _msgspec.json.encode(values.tolist()).decode("ascii")[1:-1].split(",")


def chunks(lines: list[str], size: int) -> Iterator[tuple[int, str]]:
    """(offset, newline-joined body) for consecutive slices of ``size`` lines."""
    for i in range(0, len(lines), size):
        yield i, "\n".join(lines[i : i + size])
