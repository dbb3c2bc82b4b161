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


def encode(batch: Batch) -> list[str]:
    """One line per row of ``batch.frame``."""
    frame = batch.frame
    n = len(frame)
    if n == 0:
        return []
    head = pd.Series([_escape_one(batch.measurement)] * n, index=frame.index, dtype=object)
    for key in sorted(batch.tag_keys):
        vals = frame[key].astype(str)
        present = (vals != "").to_numpy()
        part = ("," + _escape_one(key) + "=") + escape_tag(vals)
        head = head.where(~present, head + part)
    body = pd.Series([""] * n, index=frame.index, dtype=object)
    for key, ftype in batch.field_types.items():
        rendered = _field_strings(frame[key], ftype)
        present = rendered.notna().to_numpy()
        piece = ("," + _escape_one(key) + "=") + rendered.where(present, "")
        body = body.where(~present, body + piece)
    times = frame["time"].astype("int64").astype(str)
    lines = head + " " + body.str.slice(1) + " " + times
    return lines.tolist()


def chunks(lines: list[str], size: int) -> Iterator[tuple[int, str]]:
    """(offset, newline-joined body) for consecutive slices of ``size`` lines."""
    for i in range(0, len(lines), size):
        yield i, "\n".join(lines[i : i + size])
