"""A per-machine summary of what a store holds: the demo's and operators' first look."""

from __future__ import annotations

import pandas as pd

from pdm.store.base import Store


def summarize(store: Store, machines: list[str] | None = None) -> pd.DataFrame:
    """Points, first and last time per (machine, measurement), streamed in chunks.

    Returns a DataFrame indexed by (machine, measurement) with columns
    ``points``, ``first``, ``last``, ``fields``.
    """
    machines = machines or store.machines()
    rows = []
    for meas in store.measurements():
        for chunk in store.iter_read(meas, machines):
            if chunk.empty or "machine" not in chunk.columns:
                continue
            fields = [c for c in chunk.columns if c not in chunk.attrs.get("tags", ())]
            g = chunk.reset_index().groupby("machine")["time"]
            part = pd.DataFrame({"points": g.size(), "first": g.min(), "last": g.max()})
            part["measurement"] = meas
            part["fields"] = ",".join(fields)
            rows.append(part.reset_index())
    if not rows:
        return pd.DataFrame(columns=["points", "first", "last", "fields"])
    df = pd.concat(rows)
    out = df.groupby(["machine", "measurement"]).agg(
        points=("points", "sum"), first=("first", "min"), last=("last", "max"), fields=("fields", "first")
    )
    return out
