"""A first, healthy-plant generator: machines on shifts with load-following
vibration and thermally lagged temperatures, plus a few operator-log entries.

It has no faults yet; the full simulator with fault physics and ground truth
replaces it (issue #3). Deterministic: the same seed gives the same data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pdm.store import Point, Store
from pdm.store.schema import OPERATOR_LOG, PROCESS, TEMPERATURE, VIBRATION

log = logging.getLogger(__name__)


def machine_ids(n: int) -> list[str]:
    """Machine ids ``pump-001`` … in a stable order."""
    return [f"pump-{i + 1:03d}" for i in range(n)]


def _load_profile(minutes: pd.DatetimeIndex, rng: np.random.Generator) -> np.ndarray:
    """Load in %: two shifts on weekdays, idle at night and on weekends."""
    hour = minutes.hour.to_numpy()
    weekday = minutes.dayofweek.to_numpy() < 5
    on = weekday & (hour >= 6) & (hour < 22)
    base = np.where(on, 70.0 + 10 * np.sin(2 * np.pi * hour / 16), 0.0)
    return np.clip(base + rng.normal(0, 2, len(minutes)) * on, 0, 100)


def machine_frames(machine: str, start: pd.Timestamp, days: float, seed: int) -> dict[str, pd.DataFrame]:
    """One machine's process, temperature and vibration frames."""
    rng = np.random.default_rng([seed, int(machine.rsplit("-", 1)[1])])
    minutes = pd.date_range(start, periods=int(days * 1440), freq="1min", tz="UTC")
    load = _load_profile(minutes, rng)
    running = load > 0
    speed = np.where(running, 1480 + rng.normal(0, 3, len(minutes)), 0.0)
    ambient = 22 + 4 * np.sin(2 * np.pi * (minutes.hour.to_numpy() - 9) / 24)
    # Bearing temperature follows load through a first-order lag (~30 min).
    target = ambient + 0.35 * load
    bearing = np.empty(len(minutes))
    t = target[0]
    for i, x in enumerate(target):
        t += (x - t) / 30.0
        bearing[i] = t
    tags = {"plant": "plant-1", "line": "line-1" if int(machine[-3:]) % 2 else "line-2", "machine": machine}
    process = pd.DataFrame(
        {**tags, "speed_rpm": speed.round(2), "load_pct": load.round(2), "running": running}, index=minutes
    )
    temperature = pd.concat(
        [
            pd.DataFrame({**tags, "sensor": "bearing", "celsius": (bearing + rng.normal(0, 0.2, len(minutes))).round(3)}, index=minutes),
            pd.DataFrame({**tags, "sensor": "ambient", "celsius": (ambient + rng.normal(0, 0.1, len(minutes))).round(3)}, index=minutes),
        ]
    )
    bursts = minutes[::10]
    on = running[::10]
    vib = []
    for sensor, gain in (("de", 1.0), ("nde", 0.8)):
        rms = np.where(on, gain * (1.2 + 0.01 * load[::10]), 0.05) * rng.lognormal(0, 0.05, len(bursts))
        crest = 3.0 + rng.normal(0, 0.1, len(bursts))
        vib.append(
            pd.DataFrame(
                {**tags, "sensor": sensor, "rms": rms.round(4), "peak": (rms * crest).round(4),
                 "kurtosis": (3.0 + rng.normal(0, 0.15, len(bursts))).round(3), "crest": crest.round(3)},
                index=bursts,
            )
        )
    return {PROCESS: process, TEMPERATURE: temperature, VIBRATION: pd.concat(vib)}


def operator_log(machines: list[str], start: pd.Timestamp, days: float, seed: int) -> Iterator[Point]:
    """Daily inspections and shift handovers."""
    rng = np.random.default_rng(seed)
    for day in range(int(np.ceil(days))):
        for m in machines:
            t = start + pd.Timedelta(days=day, hours=8, minutes=int(rng.integers(0, 120)))
            yield Point(OPERATOR_LOG, {"machine": m, "event_type": "inspection", "operator": "op-" + str(rng.integers(1, 6))},
                        {"message": "routine inspection, no findings", "severity": 0}, t)


def backfill(store: Store, machines: int = 5, days: float = 2.0, seed: int = 7,
             start: str | pd.Timestamp = "2024-01-01T00:00:00Z") -> int:
    """Write ``days`` of history for ``machines`` machines; return the number of points."""
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0
    ids = machine_ids(machines)
    total = 0
    for m in tqdm(ids, desc="simulate", unit="machine"):
        for meas, frame in machine_frames(m, t0, days, seed).items():
            tags = [c for c in ("plant", "line", "machine", "sensor") if c in frame.columns]
            total += store.write(frame, meas, tags).written
    total += store.write(list(operator_log(ids, t0, days, seed))).written
    log.info("wrote %d points for %d machines over %.1f days", total, machines, days)
    return total
