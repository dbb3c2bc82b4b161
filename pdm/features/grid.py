"""Align every sensor of a machine onto one time grid, with a mask instead of filling.

Vibration features arrive every ten minutes, temperatures and process values
every minute, operator-log entries whenever someone writes one. On a grid of
``step`` (default 10 min) each sensor channel takes the mean of its samples in
the step; a step without samples is missing (NaN, mask 0): nothing is
interpolated. Process values become context channels (speed relative to the
machine's maximum, load fraction, running fraction, days since the last work
order), log entries become event channels (severity + 1 per event type).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pdm.store import Store

log = logging.getLogger(__name__)

#: Measurements whose numeric fields are sensor channels; ``sensor`` holds imported
#: plant sensors (tag sensor, field value → channel ``sensor.<name>.value``).
SENSOR_MEASUREMENTS = ("vibration", "temperature", "sensor")
#: Process fields that are sensors (reconstructed); the others are context.
PROCESS_SENSORS = ("current_a",)
CONTEXT_CHANNELS = ("speed", "load", "running", "days_since_work_order")
EVENT_TYPES = ("inspection", "observation", "lubrication", "work_order", "handover")


def channel_id(measurement: str, sensor: str, field: str) -> str:
    """``vibration.de.rms``; ``process.current_a`` for measurements without a sensor tag."""
    return f"{measurement}.{sensor}.{field}" if sensor else f"{measurement}.{field}"


@dataclass
class MachineGrid:
    """One machine's data on a regular grid (all frames share the index)."""

    machine: str
    sensors: pd.DataFrame  # channel id → value (NaN = missing)
    context: pd.DataFrame  # CONTEXT_CHANNELS
    events: pd.DataFrame  # EVENT_TYPES, severity + 1 where an entry was logged
    log: pd.DataFrame  # the operator-log entries themselves (time, event_type, message, severity)
    speed_max: float = float("nan")  # rpm that context "speed" is relative to

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.sensors.index)

    def rows(self, lo: int, hi: int) -> MachineGrid:
        """The grid steps ``[lo, hi)`` (positions), every frame alike; the log and speed reference stay."""
        return MachineGrid(self.machine, self.sensors.iloc[lo:hi], self.context.iloc[lo:hi], self.events.iloc[lo:hi],
                           self.log, self.speed_max)


def _wide(frame: pd.DataFrame, measurement: str, step: str, grid: pd.DatetimeIndex) -> pd.DataFrame:
    """Long store frame → one column per channel, mean per grid step."""
    if frame.empty:
        return pd.DataFrame(index=grid)
    tags = set(frame.attrs.get("tags", ())) | {"plant", "line", "machine", "sensor"}
    fields = [c for c in frame.columns if c not in tags and pd.api.types.is_numeric_dtype(frame[c])]
    if measurement == "process":
        fields = [f for f in fields if f in PROCESS_SENSORS]
    sensor = frame["sensor"] if "sensor" in frame.columns else pd.Series("", index=frame.index)
    out = {}
    binned = frame.index.floor(step)
    for s in sorted(sensor.unique()):
        sel = (sensor == s).to_numpy()
        part = frame.loc[sel, fields].astype("float64")
        means = part.groupby(binned[sel]).mean()
        for f in fields:
            out[channel_id(measurement, s, f)] = means[f].reindex(grid)
    return pd.DataFrame(out, index=grid)


def align_machine(store: Store, machine: str, start: pd.Timestamp | str, stop: pd.Timestamp | str,
                  step: str = "10min", channels: list[str] | None = None,
                  speed_max: float | None = None) -> MachineGrid:
    """Read ``[start, stop)`` of one machine from the store and align it.

    ``channels`` fixes the sensor channel set and order (a fleet model's);
    channels the machine lacks are all-missing. ``speed_max`` fixes the rpm
    that the speed context is relative to (default: the range's maximum; a
    scorer passes the training value so that short reads match long ones).
    Returns a :class:`MachineGrid`.
    """
    t0 = pd.Timestamp(start).tz_convert("UTC") if pd.Timestamp(start).tzinfo else pd.Timestamp(start, tz="UTC")
    t1 = pd.Timestamp(stop).tz_convert("UTC") if pd.Timestamp(stop).tzinfo else pd.Timestamp(stop, tz="UTC")
    # ns like the store's reads: a string start gives a µs range, whose asi8 would not compare with ns times.
    grid = pd.date_range(t0.floor(step), t1, freq=step, inclusive="left", tz="UTC").as_unit("ns")
    parts = [_wide(store.read(m, machine, t0, t1), m, step, grid) for m in SENSOR_MEASUREMENTS]
    process = store.read("process", machine, t0, t1)
    parts.append(_wide(process, "process", step, grid))
    sensors = pd.concat(parts, axis=1)
    sensors = sensors[sorted(sensors.columns)]
    if channels is not None:
        sensors = sensors.reindex(columns=channels)
    context, top = _context(process, grid, step, speed_max)
    logs = store.read("operator_log", machine, t0, t1)
    events, entries = _events(logs, grid, step)
    last_wo = entries.index[entries["event_type"] == "work_order"] if not entries.empty else pd.DatetimeIndex([])
    context["days_since_work_order"] = _days_since(grid, last_wo)
    return MachineGrid(machine, sensors, context, events, entries, top)


def _context(process: pd.DataFrame, grid: pd.DatetimeIndex, step: str,
             speed_max: float | None = None) -> tuple[pd.DataFrame, float]:
    ctx = pd.DataFrame(index=grid, columns=list(CONTEXT_CHANNELS), dtype="float64")
    if process.empty:
        return ctx, float(speed_max) if speed_max else float("nan")
    binned = process.index.floor(step)
    g = process.groupby(binned)
    top = process["speed_rpm"].max() if "speed_rpm" in process else np.nan
    if speed_max is not None and np.isfinite(speed_max) and speed_max > 0:
        top = speed_max
    if "speed_rpm" in process and top and top > 0:
        ctx["speed"] = (g["speed_rpm"].mean() / top).reindex(grid)
    if "load_pct" in process:
        ctx["load"] = (g["load_pct"].mean() / 100).reindex(grid)
    if "running" in process:
        ctx["running"] = g["running"].mean().astype("float64").reindex(grid)
    return ctx, float(top) if top is not None and pd.notna(top) else float("nan")


def _events(logs: pd.DataFrame, grid: pd.DatetimeIndex, step: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    events = pd.DataFrame(0.0, index=grid, columns=list(EVENT_TYPES))
    if logs.empty or "event_type" not in logs:
        return events, pd.DataFrame(columns=["event_type", "message", "severity"])
    entries = logs[["event_type", "message", "severity"]].copy()
    binned = logs.index.floor(step)
    for etype in EVENT_TYPES:
        sel = (logs["event_type"] == etype).to_numpy()
        if sel.any():
            sev = logs.loc[sel, "severity"].astype("float64").fillna(0) + 1
            events[etype] = sev.groupby(binned[sel]).max().reindex(grid).fillna(0.0)
    return events, entries


#: Days since a work order are capped here (and this when there was none): a run-in longer cannot be told.
DAYS_SINCE_CAP = 30.0


def _days_since(grid: pd.DatetimeIndex, marks: pd.DatetimeIndex) -> np.ndarray:
    """Days since the latest mark at or before each grid time (:data:`DAYS_SINCE_CAP` when none; capped at it)."""
    if len(marks) == 0:
        return np.full(len(grid), DAYS_SINCE_CAP)
    marks = np.sort(marks.asi8)
    pos = np.searchsorted(marks, grid.asi8, side="right") - 1
    days = np.where(pos >= 0, (grid.asi8 - marks[np.maximum(pos, 0)]) / 86_400e9, DAYS_SINCE_CAP)
    return np.minimum(days, DAYS_SINCE_CAP)
