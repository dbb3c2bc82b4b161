"""Small simulated plants for the tests, and helpers to look at their data.

The fault plant has one machine per fault mode, all failing at the same time
on a line that runs around the clock, with no random faults and no nuisances,
so each signature can be compared with the same machine's healthy days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sensors_sim.config import FleetConfig, parse_config
from sensors_sim.plant import PlantSimulator
from sensors_sim.timeline import Event

START = pd.Timestamp("2024-01-01T00:00:00Z")
FAILURE = pd.Timestamp("2024-01-15T11:00:00Z")  # day 14, mid-morning
ONSET_DAYS = 8.0
REPAIR_HOURS = 30.0
FAULT_DAYS = 18  # two and a half days of service after the repair

#: Fault mode -> the machine that suffers it.
FAULT_MACHINES = {
    "bearing_wear": ("pump-bw", "centrifugal_pump"),
    "lubrication_loss": ("fan-lub", "fan"),
    "misalignment": ("gbx-mis", "gearbox"),
    "imbalance": ("fan-imb", "fan"),
    "cooling_failure": ("comp-cool", "compressor"),
}

NO_NUISANCE = {
    "maintenance_per_year": 0, "sensor_replaced_per_year": 0, "dropouts_per_month": 0,
    "spikes_per_month": 0, "stuck_per_year": 0, "clock_skew_per_year": 0,
    "duplicates_per_month": 0, "regime_changes_per_line_year": 0,
}

#: Frequent nuisances of every kind (clock skew and re-sent points cross midnights and restarts).
BUSY = {"maintenance_per_year": 20.0, "sensor_replaced_per_year": 20.0, "dropouts_per_month": 30.0,
        "spikes_per_month": 30.0, "stuck_per_year": 100.0, "clock_skew_per_year": 200.0,
        "duplicates_per_month": 40.0, "regime_changes_per_line_year": 20.0}


def busy_config(seed: int = 2):
    """Two machines (random faults on) of a two-shift line, busy with nuisances."""
    return fleet([{"id": "pump-1", "type": "centrifugal_pump"}, {"id": "fan-2", "type": "fan"}],
                 nuisance=BUSY, seed=seed, shifts="two")


def fleet(machines: list[dict[str, Any]], *, seed: int = 3, shifts: str = "continuous",
          nuisance: dict[str, float] | None = None, **top: Any) -> FleetConfig:
    """A one-plant, one-line fleet from machine entries (a parsed, validated config)."""
    data = {
        "seed": seed, "start": START.isoformat(),
        "nuisance": NO_NUISANCE if nuisance is None else nuisance,
        "plants": [{"name": "plant-t", "lines": [{"name": "line-t", "shifts": shifts, "machines": machines}]}],
        **top,
    }
    return parse_config(data, "test config")


def fault_config(seed: int = 3) -> FleetConfig:
    return fleet([
        {"id": mid, "type": mtype, "random_faults": False,
         "faults": [{"mode": mode, "failure": FAILURE.isoformat(), "onset_days": ONSET_DAYS,
                     "repair_hours": REPAIR_HOURS}]}
        for mode, (mid, mtype) in FAULT_MACHINES.items()
    ], seed=seed)


def generate(sim: PlantSimulator, days: range) -> dict[str, pd.DataFrame]:
    """Days of frames, concatenated per measurement."""
    per_day = [sim.day(d) for d in days]
    return {k: pd.concat([f[k] for f in per_day]) for k in per_day[0]}


@dataclass
class Plant:
    config: FleetConfig
    sim: PlantSimulator
    frames: dict[str, pd.DataFrame]

    def failure(self, machine: str) -> Event:
        (event,) = [e for e in self.sim.events() if e.machine == machine and e.is_failure]
        return event

    def process(self, machine: str) -> pd.DataFrame:
        p = self.frames["process"]
        return p[p["machine"] == machine].sort_index()

    def vibration(self, machine: str, point: str) -> pd.DataFrame:
        """One measurement point's features, with the machine's running flag and load."""
        v = self.frames["vibration"]
        v = v[(v["machine"] == machine) & (v["sensor"] == point)].sort_index()
        p = self.process(machine)[["running", "load_pct"]]
        return v.join(p, how="left")

    def temperatures(self, machine: str) -> pd.DataFrame:
        """Temperatures side by side (one column per sensor), with running, load and ``steady``.

        ``steady``: running for the last two hours without a stop, so the
        temperatures have settled to the load (thermal time constants <= 90 min).
        """
        t = self.frames["temperature"]
        wide = t[t["machine"] == machine].pivot_table(index=t.index.name or "time", columns="sensor",
                                                        values="celsius")
        p = self.process(machine)
        wide = wide.join(p[["running", "load_pct"]], how="inner")
        wide["steady"] = p["running"].astype(float).rolling(120, min_periods=120).min().reindex(wide.index) == 1
        return wide


def between(frame: pd.DataFrame, lo: Any, hi: Any) -> pd.DataFrame:
    """Rows with ``lo <= time < hi``."""
    return frame[(frame.index >= utc(lo)) & (frame.index < utc(hi))]


def utc(t: Any) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def ts(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, unit="ns", tz="UTC")


def rise_over_healthy(temps: pd.DataFrame, sensor: str, healthy: pd.Series, deg: int) -> pd.Series:
    """How far ``sensor`` sits above what the healthy machine shows at the same load (K).

    A polynomial of the rise over ambient against load is fitted on healthy
    steady rows; the result is, for every steady row, rise minus that fit.
    """
    rise = temps[sensor] - temps["ambient"]
    fit_rows = temps["steady"] & healthy
    coef = np.polyfit(temps.loc[fit_rows, "load_pct"], rise[fit_rows], deg)
    out = rise - np.polyval(coef, temps["load_pct"])
    return out[temps["steady"]]
