"""Writing the simulated plant into a store: backfill, live stream, ground truth.

- :func:`backfill` writes history day by day as fast as it can (a progress
  bar per day); memory holds one day of the fleet at a time.
- :func:`stream` writes live points at real time × ``speed``. Its position
  (the simulated time written up to) is kept in the store itself
  (``pdm_sim_cursor``) and advanced only after the points are written, so a
  restart resumes without gaps, and re-written points merge (no duplicates).
- :func:`labels` is the ground truth: every fault and every nuisance event,
  written to a CSV/Parquet file and to the store's ``pdm_truth``, never mixed
  into the sensor measurements.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pdm.store import Store
from sensors_sim.config import FleetConfig
from sensors_sim.plant import PlantSimulator
from sensors_sim.timeline import NS_DAY

log = logging.getLogger(__name__)

TAGS = {
    "process": ["plant", "line", "machine"],
    "temperature": ["plant", "line", "machine", "sensor"],
    "vibration": ["plant", "line", "machine", "sensor"],
    "operator_log": ["plant", "line", "machine", "event_type", "operator"],
}
TRUTH = "pdm_truth"
CURSOR = "pdm_sim_cursor"


@dataclass
class RunResult:
    points: int
    seconds: float
    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def points_per_s(self) -> float:
        return self.points / max(self.seconds, 1e-9)


def write_frames(store: Store, frames: dict[str, pd.DataFrame]) -> int:
    """Write one batch of simulator frames; returns field values written."""
    n = 0
    for meas, frame in frames.items():
        if frame.empty:
            continue
        store.write(frame, meas, TAGS[meas])
        n += int(frame.drop(columns=TAGS[meas]).notna().to_numpy().sum())
    return n


def _clip(frames: dict[str, pd.DataFrame], lo: int, hi: int) -> dict[str, pd.DataFrame]:
    out = {}
    for k, f in frames.items():
        t = f.index.asi8
        out[k] = f[(t >= lo) & (t < hi)]
    return out


def backfill(store: Store, config: FleetConfig, days: float, *, labels_path: str | Path | None = None,
             progress: bool = True) -> RunResult:
    """Write ``days`` of the fleet's history starting at ``config.start``, then the ground truth."""
    sim = PlantSimulator(config)
    t0 = sim.t0
    end = t0 + int(days * NS_DAY)
    began = time.perf_counter()
    points = 0
    carry: dict[str, pd.DataFrame] | None = None
    with tqdm(total=math.ceil(days), desc="simulate", unit="day", disable=not progress) as bar:
        for d in range(math.ceil(days)):
            frames = sim.day(d)
            lo, hi = t0 + d * NS_DAY, min(t0 + (d + 1) * NS_DAY, end)
            # Clock-skewed points can spill past midnight: write them with the day they fall in.
            today = _clip(frames, lo, hi)
            if carry is not None:
                today = {k: pd.concat([v, _clip(carry, lo, hi)[k]]) for k, v in today.items()}
            carry = frames
            points += write_frames(store, today)
            bar.update(1)
            bar.set_postfix(points=f"{points:,}")
    truth = labels(sim, t0, end)
    points += write_truth(store, truth)
    if labels_path:
        save_labels(truth, labels_path)
    seconds = time.perf_counter() - began
    log.info("backfill: %d machines x %.1f days, %d values in %.1fs", len(sim.machines), days, points, seconds)
    return RunResult(points, seconds, pd.Timestamp(t0, unit="ns", tz="UTC"), pd.Timestamp(end, unit="ns", tz="UTC"))


def labels(sim: PlantSimulator, start: int, end: int) -> pd.DataFrame:
    """Ground truth of events overlapping ``[start, end)``, one row per event and machine."""
    rows = []
    place = {m.id: (m.plant, m.line) for m in sim.machines}
    for e in sim.events():
        stop = e.repair_end or e.end
        if stop < start or e.start >= end:
            continue
        plant, line = place[e.machine]
        rows.append({
            "machine": e.machine, "plant": plant, "line": line, "kind": e.kind,
            "is_failure": e.is_failure,
            "start": pd.Timestamp(e.start, unit="ns", tz="UTC"),
            "failure": pd.Timestamp(e.end, unit="ns", tz="UTC") if e.is_failure else pd.NaT,
            "end": pd.Timestamp(stop, unit="ns", tz="UTC"),
            "root_cause": ";".join(e.sensors) if e.is_failure else "",
            "affected": "" if e.is_failure else ";".join(e.sensors),
            "detail": ";".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in sorted(e.params.items())),
        })
    cols = ["machine", "plant", "line", "kind", "is_failure", "start", "failure", "end", "root_cause", "affected", "detail"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["start", "machine", "kind"], kind="stable").reset_index(drop=True)


def write_truth(store: Store, truth: pd.DataFrame) -> int:
    """Ground truth into ``pdm_truth`` (time = event start; times as ns fields)."""
    if truth.empty:
        return 0
    t = truth.reset_index(drop=True)
    frame = pd.DataFrame({
        "plant": t["plant"], "line": t["line"], "machine": t["machine"], "kind": t["kind"],
        "is_failure": t["is_failure"].astype(bool),
        "failure_ns": pd.array([None if pd.isna(x) else int(x.value) for x in t["failure"]], dtype="Int64"),
        "end_ns": t["end"].map(lambda x: int(x.value)).astype("int64"),
        "root_cause": t["root_cause"], "affected": t["affected"], "detail": t["detail"],
    })
    frame.index = pd.DatetimeIndex(t["start"])
    store.write(frame, TRUTH, ["plant", "line", "machine", "kind"])
    return int(frame.drop(columns=["plant", "line", "machine", "kind"]).notna().to_numpy().sum())


def save_labels(truth: pd.DataFrame, path: str | Path) -> Path:
    """Write the labels as CSV, or Parquet when the name ends in .parquet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        truth.to_parquet(path, index=False)
    else:
        truth.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return path


def read_cursor(store: Store) -> int | None:
    """The simulated time (ns) a stream has written up to, or None."""
    df = store.read(CURSOR, None)
    if df.empty:
        return None
    return int(df["until_ns"].max())


def stream(store: Store, config: FleetConfig, speed: float = 60.0, *, tick_s: float = 1.0,
           stop: threading.Event | None = None, max_ticks: int | None = None,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> int:
    """Write live points at real time × ``speed`` until ``stop`` is set (or ``max_ticks``).

    Starts at the stored cursor (or ``config.start``); returns field values written.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    sim = PlantSimulator(config)
    cursor = read_cursor(store)
    cursor = sim.t0 if cursor is None else cursor
    log.info("stream: resuming at %s, x%g", pd.Timestamp(cursor, unit="ns", tz="UTC"), speed)
    wall0, sim0 = clock(), cursor
    cache: dict[int, dict[str, pd.DataFrame]] = {}
    written = ticks = 0
    while not (stop and stop.is_set()) and (max_ticks is None or ticks < max_ticks):
        now = sim0 + int((clock() - wall0) * speed * 1e9)
        if now > cursor:
            first, last = (cursor - sim.t0) // NS_DAY, (now - sim.t0) // NS_DAY
            for d in range(max(first - 1, 0), last + 1):
                if d not in cache:
                    cache[d] = sim.day(d)
            for d in list(cache):
                if d < first - 1:
                    del cache[d]
            for d in range(max(first - 1, 0), last + 1):
                written += write_frames(store, _clip(cache[d], cursor, now))
            store.write(pd.DataFrame({"until_ns": [now]}, index=pd.DatetimeIndex([pd.Timestamp(0, tz="UTC")])), CURSOR)
            cursor = now
        ticks += 1
        if max_ticks is None or ticks < max_ticks:
            sleep(tick_s)
    return written


def data_digest(store: Store, measurements: tuple[str, ...] = ("process", "temperature", "vibration", "operator_log", TRUTH)) -> str:
    """SHA-256 over a canonical CSV rendering of what the store holds (for determinism checks)."""
    import hashlib

    h = hashlib.sha256()
    for meas in measurements:
        df = store.read(meas)
        h.update(meas.encode())
        h.update(df.to_csv(float_format="%.17g").encode())
    return h.hexdigest()


def frames_digest(frames: dict[str, pd.DataFrame]) -> str:
    """SHA-256 of generated frames, exactly as produced."""
    import hashlib

    h = hashlib.sha256()
    for k in sorted(frames):
        f = frames[k]
        h.update(k.encode())
        h.update(np.asarray(f.index.asi8).tobytes())
        h.update(pd.util.hash_pandas_object(f, index=False).to_numpy().tobytes())
    return h.hexdigest()
