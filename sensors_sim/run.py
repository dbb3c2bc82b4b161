"""Writing the simulated plant into a store: backfill, live stream, ground truth.

- :func:`backfill` writes history day by day as fast as it can (a progress
  bar per day): the next days are generated in a thread while the current
  day's measurements are written side by side; memory holds a few days of
  the fleet at a time, however many days are written.
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
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
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


Frames = dict[str, pd.DataFrame]


def write_frames(store: Store, frames: Frames, resent: Frames | None = None, *, writers: int = 1,
                 pool: ThreadPoolExecutor | None = None) -> int:
    """Write one batch of simulator frames; returns field values written.

    ``resent``: points a gateway sent again, written after the first ones of
    their measurement (as a second request, the way they arrive). With
    ``writers`` > 1 the measurements are written side by side, biggest first,
    on ``pool`` if given (reuse one across calls: back ends keep per-thread
    state such as HTTP sessions) or else on threads of this call.
    """
    resent = resent or {}
    jobs = [(meas, [f for f in (frame, resent.get(meas)) if f is not None and not f.empty])
            for meas, frame in frames.items()]
    jobs = sorted((j for j in jobs if j[1]), key=lambda j: -sum(len(f) for f in j[1]))

    def one(job: tuple[str, list[pd.DataFrame]]) -> int:
        meas, parts = job
        n = 0
        for frame in parts:
            store.write(frame, meas, TAGS[meas])
            n += int(frame.drop(columns=TAGS[meas]).notna().to_numpy().sum())
        return n

    if writers <= 1 or len(jobs) <= 1:
        return sum(one(j) for j in jobs)
    if pool is not None:
        return sum(pool.map(one, jobs))
    with ThreadPoolExecutor(min(writers, len(jobs)), thread_name_prefix="pdm-sim-write") as own:
        return sum(own.map(one, jobs))


def _clip(frames: Frames, lo: int, hi: int) -> Frames:
    out = {}
    for k, f in frames.items():
        t = f.index.asi8
        out[k] = f[(t >= lo) & (t < hi)]
    return out


def _with(frames: Frames, carry: Frames | None, lo: int, hi: int) -> Frames:
    """``frames`` within [lo, hi), plus what the day before (``carry``) has there.

    Clock-skewed points can spill past midnight: they are written with the
    day they fall in.
    """
    today = _clip(frames, lo, hi)
    if carry:
        spill = _clip(carry, lo, hi)
        today = {k: pd.concat([v, spill[k]]) if k in spill and len(spill[k]) else v for k, v in today.items()}
        today.update({k: v for k, v in spill.items() if k not in today and len(v)})
    return today


@contextmanager
def held_open(store: Store) -> Iterator[bool]:
    """Keep an embedded store's database open across a batch of writes; yields whether it does.

    The embedded store connects per operation, and DuckDB writes a checkpoint
    whenever the last connection to a file closes. While this holds one
    connection, the store's connections share the open database (DuckDB keeps
    one instance per file and process) and the checkpoint happens once, at
    the end: about a fifth off a backfill's write time. It also makes writes
    from several threads safe: connections opened and closed concurrently
    on a database nobody holds can race its start-up and shut-down in DuckDB
    ("pandas_scan does not exist"). Other processes get the file again in
    between batches. Other back ends, or a file locked by another process:
    yields False and holds nothing.
    """
    path = getattr(store, "path", None)
    if getattr(store, "backend", None) != "embedded" or path is None:
        yield False
        return
    import duckdb

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path))
    except (duckdb.Error, OSError):
        yield False  # the store's own lock handling takes over
        return
    try:
        yield True
    finally:
        con.close()


#: Back ends whose writes may run from several threads at once (embedded: while held open).
THREAD_SAFE_WRITES = ("embedded", "influxdb1")


_ARENAS_CAPPED = False


def cap_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (no-op elsewhere, or if MALLOC_ARENA_MAX is set).

    glibc gives threads their own heaps ("arenas", up to 8 per core), and
    each keeps the fragments of the big temporary arrays a day of data
    needs: with a generator and two writer threads a backfill's RSS climbed
    by ~150 MB over its first two weeks before levelling off. Two arenas
    keep it flat from the first days on, at no measurable cost in speed.
    Must run before those threads first allocate; returns whether it applied.
    """
    global _ARENAS_CAPPED
    if _ARENAS_CAPPED or os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return _ARENAS_CAPPED
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        _ARENAS_CAPPED = bool(libc.mallopt(-8, arenas))  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
    return _ARENAS_CAPPED


def backfill(store: Store, config: FleetConfig, days: float, *, labels_path: str | Path | None = None,
             progress: bool = True, writers: int = 2, prefetch: int = 2,
             on_day: Callable[[int, int], None] | None = None) -> RunResult:
    """Write ``days`` of the fleet's history starting at ``config.start``, then the ground truth.

    A thread generates up to ``prefetch`` days ahead (numpy and the FFTs
    release the GIL) while ``writers`` threads write the current day's
    measurements (back ends in ``THREAD_SAFE_WRITES``; others one at a time).
    ``on_day(d, points_so_far)`` is called after each day.
    """
    cap_malloc_arenas()
    sim = PlantSimulator(config)
    t0 = sim.t0
    end = t0 + int(days * NS_DAY)
    n_days = math.ceil(days)
    began = time.perf_counter()
    points = 0
    carry: tuple[Frames, Frames] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="pdm-sim-day") as gen, \
            ThreadPoolExecutor(max(writers, 1), thread_name_prefix="pdm-sim-write") as pool, \
            tqdm(total=n_days, desc="simulate", unit="day", disable=not progress) as bar:
        ahead: deque[Future[tuple[Frames, Frames]]] = deque()
        for d in range(n_days):
            while len(ahead) < max(prefetch, 1) and d + len(ahead) < n_days:
                ahead.append(gen.submit(sim.day_parts, d + len(ahead)))
            first, resent = ahead.popleft().result()
            lo, hi = t0 + d * NS_DAY, min(t0 + (d + 1) * NS_DAY, end)
            with held_open(store) as held:
                side_by_side = store.backend in THREAD_SAFE_WRITES and (held or store.backend != "embedded")
                points += write_frames(store, _with(first, carry and carry[0], lo, hi),
                                       _with(resent, carry and carry[1], lo, hi),
                                       writers=writers if side_by_side else 1, pool=pool)
            carry = (first, resent)
            bar.update(1)
            bar.set_postfix(points=f"{points:,}")
            if on_day is not None:
                on_day(d, points)
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
    Each event's ground truth goes to ``pdm_truth`` when the stream reaches
    its start (events under way when it (re)starts, at once).
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
    resumed = True
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
            truth = labels(sim, cursor, now)
            if not resumed:
                truth = truth[truth["start"] >= pd.Timestamp(cursor, unit="ns", tz="UTC")]
            with held_open(store):
                for d in range(max(first - 1, 0), last + 1):
                    written += write_frames(store, _clip(cache[d], cursor, now))
                write_truth(store, truth)
                # The cursor moves only once the points are in: a stream killed
                # before this line writes the same points again, which merge.
                store.write(pd.DataFrame({"until_ns": [now]}, index=pd.DatetimeIndex([pd.Timestamp(0, tz="UTC")])),
                            CURSOR)
            cursor = now
            resumed = False
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
