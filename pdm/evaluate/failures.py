"""Failures and labelled nuisances: from a failure-log file or the store's ``pdm_truth``.

A failure log is what a plant keeps anyway (from its maintenance system):
one row per failure with when and which machine, optionally the failure
mode, the component, when the degradation began (``onset``), when the
repair ended and the channels at fault (``root_cause``, ";"-joined channel
ids such as ``vibration.de.band_bpfo``). CSV or Parquet. Times are ISO-8601;
times without a zone are taken as UTC.

The simulator's labels file (``pdmctl simulate backfill --labels``) is a
failure log too: its failure rows are read as failures, the others as
nuisances.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pdm.store import Store

TRUTH = "pdm_truth"
#: Accepted column names, first match wins.
ALIASES: dict[str, tuple[str, ...]] = {
    "machine": ("machine", "asset", "machine_id"),
    "failure": ("failure", "time", "failure_time", "timestamp"),
    "mode": ("mode", "kind", "failure_mode"),
    "component": ("component",),
    "onset": ("onset", "start", "degradation_start"),
    "repair_end": ("repair_end", "end", "repaired"),
    "root_cause": ("root_cause", "channels"),
}
FAILURE_COLUMNS = ["machine", "failure", "mode", "component", "onset", "repair_end", "root_cause"]
NUISANCE_COLUMNS = ["machine", "kind", "start", "end"]


class FailureLogError(ValueError):
    """A failure log that cannot be used, with the reason in words."""


def channel_name(name: str) -> str:
    """A channel id as the features name it (``process..current_a`` → ``process.current_a``)."""
    return re.sub(r"\.{2,}", ".", name.strip())


def _root_cause(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    return ";".join(channel_name(c) for c in str(value).split(";") if c.strip())


def _times(col: pd.Series, what: str, path: Path, *, required: bool) -> pd.Series:
    raw = col.copy()
    blank = raw.isna() | (raw.astype(str).str.strip() == "")
    try:
        out = pd.to_datetime(raw.where(~blank), utc=True, errors="coerce", format="mixed")
    except (TypeError, ValueError) as exc:
        raise FailureLogError(f"{path}: column {what!r} holds no times ({exc})") from None
    bad = out.isna() & ~blank
    if required:
        bad |= blank
    if bad.any():
        rows = [int(i) + 2 for i in raw.index[bad][:5]]  # +2: header line, 1-based
        sample = ", ".join(repr(str(v)) for v in raw[bad][:3])
        raise FailureLogError(
            f"{path}: column {what!r}: {int(bad.sum())} value(s) are not times (line(s) {rows}: {sample}); "
            "use ISO-8601 such as 2024-02-10T14:00:00Z"
        )
    return out


def read_failure_log(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read a failure log; returns (failures, nuisances or None).

    failures: machine, failure, mode, component, onset, repair_end, root_cause
    (absent optional columns are NaT / ""). nuisances only for a simulator
    labels file.

    Raises
    ------
    FailureLogError
        When the file is missing, unreadable, lacks the ``machine`` or time
        column, or holds values that are not times.
    """
    path = Path(path)
    if not path.is_file():
        raise FailureLogError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        else:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # noqa: BLE001 - any parser error is the file's fault; say which file
        raise FailureLogError(f"{path}: cannot be read as {'Parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'} "
                              f"({type(exc).__name__}: {exc})") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    labels_file = {"is_failure", "failure", "kind", "start"} <= set(raw.columns)
    nuisances = None
    if labels_file:
        flag = raw["is_failure"].astype(str).str.strip().str.lower().isin(["true", "1", "yes"])
        other = raw[~flag]
        nuisances = pd.DataFrame({
            "machine": other["machine"].astype(str).to_numpy(), "kind": other["kind"].astype(str).to_numpy(),
            "start": _times(other["start"], "start", path, required=True).to_numpy(),
            "end": _times(other["end"], "end", path, required=True).to_numpy(),
        })
        raw = raw[flag].drop(columns=["is_failure"])
    cols: dict[str, str] = {}
    for name, aliases in ALIASES.items():
        found = next((a for a in aliases if a in raw.columns and a not in cols.values()), None)
        if found is not None:
            cols[name] = found
    missing = [c for c in ("machine", "failure") if c not in cols]
    if missing:
        want = "; ".join(f"{c} (or {', '.join(ALIASES[c][1:])})" for c in missing)
        raise FailureLogError(f"{path}: missing column(s) {want}; found: {', '.join(raw.columns) or 'none'}")
    machine = raw[cols["machine"]].astype(str).str.strip()
    if (machine == "").any() or raw[cols["machine"]].isna().any():
        rows = [int(i) + 2 for i in raw.index[(machine == "") | raw[cols["machine"]].isna()][:5]]
        raise FailureLogError(f"{path}: empty machine on line(s) {rows}")
    out = pd.DataFrame({"machine": machine.to_numpy()})
    out["failure"] = _times(raw[cols["failure"]], cols["failure"], path, required=True).to_numpy()
    for c in ("onset", "repair_end"):
        out[c] = (_times(raw[cols[c]], cols[c], path, required=False).to_numpy() if c in cols
                  else pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]"))
    for c in ("mode", "component"):
        out[c] = raw[cols[c]].fillna("").astype(str).to_numpy() if c in cols else ""
    out["root_cause"] = [_root_cause(v) for v in raw[cols["root_cause"]]] if "root_cause" in cols else ""
    late = out["repair_end"].notna() & (out["repair_end"] < out["failure"])
    early = out["onset"].notna() & (out["onset"] > out["failure"])
    for bad, what in ((late, "repair_end before the failure"), (early, "onset after the failure")):
        if bad.any():
            rows = [int(i) + 2 for i in raw.index[bad.to_numpy()][:5]]
            raise FailureLogError(f"{path}: {what} on line(s) {rows}")
    return out[FAILURE_COLUMNS].sort_values(["failure", "machine"], kind="stable").reset_index(drop=True), nuisances


def truth_from_store(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(failures, nuisances) from ``pdm_truth``; empty frames when the store has none."""
    truth = store.read(TRUTH)
    fails = pd.DataFrame(columns=FAILURE_COLUMNS)
    nuis = pd.DataFrame(columns=NUISANCE_COLUMNS)
    if truth.empty:
        return fails, nuis
    flag = truth["is_failure"].fillna(False).astype(bool).to_numpy()
    end = pd.to_datetime(truth["end_ns"].astype("int64"), unit="ns", utc=True)
    f = truth[flag]
    if len(f):
        fails = pd.DataFrame({
            "machine": f["machine"].to_numpy(),
            "failure": pd.to_datetime(f["failure_ns"].astype("int64"), unit="ns", utc=True).to_numpy(),
            "mode": f["kind"].to_numpy(), "component": "",
            "onset": f.index.to_numpy(), "repair_end": end[flag].to_numpy(),
            "root_cause": [_root_cause(v) for v in f.get("root_cause", pd.Series("", index=f.index))],
        })
    n = truth[~flag]
    if len(n):
        nuis = pd.DataFrame({"machine": n["machine"].to_numpy(), "kind": n["kind"].to_numpy(),
                             "start": n.index.to_numpy(), "end": end[~flag].to_numpy()})
    return fails.sort_values(["failure", "machine"], kind="stable").reset_index(drop=True), nuis
