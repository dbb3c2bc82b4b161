"""Validate one data interval of the sensor measurements and record its data quality.

For ``[start, stop)`` every series (machine × sensor) of vibration,
temperature, process and operator-log is checked for

- schema: fields whose stored type differs from :data:`pdm.store.schema.FIELD_TYPES`,
  points without a machine tag;
- ranges: values outside the physical ranges in :data:`RANGES`;
- gaps: points missing against the series' own cadence (median spacing), the
  longest gap;
- duplicates: a point re-sent within half a cadence of the previous one
  (exact re-sends merge in the store and never show);
- late points: points of the *previous* interval that arrived after it was
  ingested (its stored count has grown since).

The figures go to ``pdm_quality`` (tags machine, source = the measurement; time = interval
start), one point per machine and measurement, so running the same interval
again overwrites them: ingest is idempotent per interval. The windows' inputs
are built with :func:`pdm.features.align_machine` and their coverage (share of
observed grid cells) is recorded too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pdm.store import Store
from pdm.store.schema import (
    FIELD_TYPES,
    OPERATOR_LOG,
    PROCESS,
    TEMPERATURE,
    VIBRATION,
    declared_type,
)

log = logging.getLogger(__name__)

QUALITY = "pdm_quality"
MEASUREMENTS = (VIBRATION, TEMPERATURE, PROCESS, OPERATOR_LOG)
#: Physical ranges (inclusive) of numeric fields; band energies share ``band_*``.
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    VIBRATION: {"rms": (0.0, 1e3), "peak": (0.0, 1e4), "kurtosis": (0.0, 1e3), "crest": (0.0, 1e3),
                "band_*": (0.0, 1e6)},
    TEMPERATURE: {"celsius": (-60.0, 400.0)},
    PROCESS: {"speed_rpm": (0.0, 60_000.0), "load_pct": (0.0, 200.0), "current_a": (0.0, 10_000.0)},
    OPERATOR_LOG: {"severity": (0.0, 10.0)},
}
_DTYPE_KIND = {"float": "f", "integer": "iu", "boolean": "b", "string": "OSU"}


@dataclass
class IngestReport:
    """What one interval held and what was wrong with it."""

    start: pd.Timestamp
    stop: pd.Timestamp
    points: int = 0
    machines: list[str] = field(default_factory=list)
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    problems: list[str] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return self.points > 0

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (what an Airflow task returns)."""
        q = self.quality
        return {"start": self.start.isoformat(), "stop": self.stop.isoformat(), "points": int(self.points),
                "machines": self.machines, "problems": self.problems[:50],
                "out_of_range": int(q["out_of_range"].sum()) if len(q) else 0,
                "duplicates": int(q["duplicates"].sum()) if len(q) else 0,
                "late_points": int(q["late_points"].sum()) if len(q) else 0,
                "worst_missing_fraction": float(q["missing_fraction"].max()) if len(q) else 1.0}


def _range_of(measurement: str, name: str) -> tuple[float, float] | None:
    ranges = RANGES.get(measurement, {})
    if name in ranges:
        return ranges[name]
    if name.startswith("band_"):
        return ranges.get("band_*")
    return None


def _series_figures(times: np.ndarray, span_ns: int) -> tuple[int, float, float, int]:
    """(expected points, missing fraction, longest gap s, near-duplicates) of one series' times."""
    t = np.sort(times)
    if len(t) < 2:
        return max(len(t), 1), 0.0 if len(t) else 1.0, span_ns / 1e9, 0
    d = np.diff(t)
    pos = d[d > 0]
    cadence = float(np.median(pos)) if len(pos) else float(span_ns)
    dups = int(np.sum(d < cadence / 2))
    expected = max(int(round(span_ns / cadence)), 1)
    kept = len(t) - dups
    missing = float(max(0.0, 1.0 - kept / expected))
    return expected, missing, float(d.max()) / 1e9, dups


def check_measurement(frame: pd.DataFrame, measurement: str, start: pd.Timestamp, stop: pd.Timestamp) -> tuple[pd.DataFrame, list[str]]:
    """Quality figures per machine of one measurement's frame; returns (table, problems)."""
    problems: list[str] = []
    if frame.empty:
        return pd.DataFrame(), problems
    tags = set(frame.attrs.get("tags", ())) | {"plant", "line", "machine", "sensor", "event_type", "operator"}
    fields = [c for c in frame.columns if c not in tags]
    for f in fields:
        want = declared_type(measurement, f)
        if want is None:
            if measurement in FIELD_TYPES:
                problems.append(f"{measurement}.{f}: field not in the schema")
            continue
        kind = frame[f].dtype.kind
        if kind not in _DTYPE_KIND[want] and not (want == "boolean" and str(frame[f].dtype) == "boolean"):
            problems.append(f"{measurement}.{f}: stored as {frame[f].dtype}, the schema says {want}")
    # Operator-log entries may belong to a line (a shift handover), not a machine.
    if measurement != OPERATOR_LOG and ("machine" not in frame.columns or (frame["machine"] == "").any()):
        n = int((frame["machine"] == "").sum()) if "machine" in frame.columns else len(frame)
        problems.append(f"{measurement}: {n} points without a machine tag")
    span = int(stop.value - start.value)
    rows = []
    for machine, part in frame[frame.get("machine", "") != ""].groupby("machine", sort=True):
        bad = 0
        for f in fields:
            rng = _range_of(measurement, f)
            if rng is None or not pd.api.types.is_numeric_dtype(part[f]) or pd.api.types.is_bool_dtype(part[f]):
                continue
            v = part[f].astype("float64").to_numpy()
            out = np.isfinite(v) & ((v < rng[0]) | (v > rng[1]))
            if out.any():
                bad += int(out.sum())
                problems.append(f"{machine} {measurement}.{f}: {int(out.sum())} values outside "
                                f"[{rng[0]:g}, {rng[1]:g}] (e.g. {v[out][0]:.4g})")
        expected = 0
        missing: list[float] = []
        longest = 0.0
        dups = 0
        sensor = part["sensor"] if "sensor" in part.columns else pd.Series("", index=part.index)
        if measurement != OPERATOR_LOG:  # log entries have no cadence
            for _, s in part.groupby(sensor.to_numpy()):
                e, m, g, d = _series_figures(s.index.asi8, span)
                expected += e
                missing.append(m)
                longest = max(longest, g)
                dups += d
        rows.append({"machine": machine, "measurement": measurement, "points": len(part),
                     "expected": expected or len(part), "missing_fraction": float(np.mean(missing)) if missing else 0.0,
                     "longest_gap_s": longest, "out_of_range": bad, "duplicates": dups})
    return pd.DataFrame(rows), problems


def ingest_interval(store: Store, start: Any, stop: Any, *, machines: list[str] | None = None,
                    max_gap_fraction: float = 0.2, step: str = "10min", write: bool = True) -> IngestReport:
    """Validate ``[start, stop)``, build the windows' inputs, write ``pdm_quality``.

    Raises :class:`pdm.store.StoreUnavailableError` when the store cannot be
    reached (the caller retries); bad data never raises, it is reported.
    """
    from pdm.features import align_machine

    t0, t1 = pd.to_datetime(start, utc=True), pd.to_datetime(stop, utc=True)
    if t1 <= t0:
        raise ValueError(f"empty interval: {t0} .. {t1}")
    report = IngestReport(t0, t1)
    tables = []
    for meas in MEASUREMENTS:
        frame = store.read(meas, machines, t0, t1)
        report.points += len(frame)
        table, problems = check_measurement(frame, meas, t0, t1)
        report.problems += problems
        if len(table):
            tables.append(table)
    quality = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=["machine", "measurement", "points", "expected", "missing_fraction", "longest_gap_s",
                 "out_of_range", "duplicates"])
    quality["late_points"] = _late_points(store, quality, t0, t1)
    report.machines = sorted(quality["machine"].unique().tolist()) if len(quality) else []
    coverage = {}
    for m in report.machines:
        grid = align_machine(store, m, t0, t1, step)
        observed = grid.sensors.notna().to_numpy()
        coverage[m] = float(observed.mean()) if observed.size else 0.0
    quality["coverage"] = quality["machine"].map(coverage).astype("float64")
    for row in quality.itertuples():
        if row.measurement != OPERATOR_LOG and row.missing_fraction > max_gap_fraction:
            report.problems.append(f"{row.machine} {row.measurement}: {row.missing_fraction:.0%} of points missing "
                                   f"(longest gap {row.longest_gap_s / 60:.0f} min)")
        if row.duplicates:
            report.problems.append(f"{row.machine} {row.measurement}: {row.duplicates} duplicate points")
        if row.late_points:
            report.problems.append(f"{row.machine} {row.measurement}: {row.late_points} late points "
                                   "arrived for the previous interval")
    report.quality = quality
    for p in report.problems:
        log.warning("ingest %s: %s", t0.isoformat(), p)
    if write and len(quality):
        frame = quality.copy()
        for c in ("points", "expected", "out_of_range", "duplicates", "late_points"):
            frame[c] = frame[c].astype("int64")
        frame.index = pd.DatetimeIndex([t0] * len(frame), name="time")
        frame = frame.rename(columns={"measurement": "source"})  # "measurement" is reserved as a tag key
        store.write(frame, QUALITY, ["machine", "source"])
    log.info("ingest %s..%s: %d points of %d machines, %d problems", t0, t1, report.points,
             len(report.machines), len(report.problems))
    return report


def _late_points(store: Store, quality: pd.DataFrame, t0: pd.Timestamp, t1: pd.Timestamp) -> pd.Series:
    """Points of the previous interval beyond the count recorded when it was ingested."""
    out = pd.Series(0, index=quality.index, dtype="int64")
    if quality.empty:
        return out
    prev0 = t0 - (t1 - t0)
    recorded = store.read(QUALITY, None, prev0, t0)
    if recorded.empty:
        return out
    recorded = recorded[recorded.index == prev0]
    for i, row in quality.iterrows():
        rec = recorded[(recorded["machine"] == row["machine"]) & (recorded["source"] == row["measurement"])]
        if rec.empty:
            continue
        now = len(store.read(row["measurement"], row["machine"], prev0, t0))
        out[i] = max(0, now - int(rec["points"].iloc[0]))
    return out


def quality_table(store: Store, start: Any = None, stop: Any = None) -> pd.DataFrame:
    """The recorded data-quality figures of ``[start, stop)`` (tag ``source`` names the measurement)."""
    return store.read(QUALITY, None, start, stop)
