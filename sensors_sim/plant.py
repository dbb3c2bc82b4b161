"""The simulated plant, one day at a time.

``PlantSimulator.day(d)`` returns the frames that the plant's gateways would
send on day ``d`` (process values and temperatures every minute, vibration
features from a burst per measurement point every ten minutes, operator log
entries), with the faults' signatures and the nuisances (gaps, spikes, stuck
sensors, clock skew, duplicates) applied. A day depends only on the config
and the day number, so any day can be regenerated identically: that is what
makes backfill and a resumed stream agree point for point.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from sensors_sim.config import FleetConfig, MachineSpec
from sensors_sim.logs import SHIFT_STARTS_H, day_logs, handover_notes
from sensors_sim.machines import MACHINE_TYPES, VIBRATION_POINTS, MachineType
from sensors_sim.timeline import NS_DAY, NS_HOUR, NS_MIN, Event, fleet_timeline
from sensors_sim.vibration import FEATURES, Bursts, Gateway

WARMUP_NS = 8 * NS_HOUR  # thermal state at midnight comes from the previous 8 h


@dataclass
class Machine:
    """A machine's static parameters and its event timeline."""

    index: int
    spec: MachineSpec
    mtype: MachineType
    plant: str
    line: str
    shifts: str
    events: list[Event]
    base_load: float
    phases: np.ndarray
    point_gain: dict[str, float]
    shift_times: np.ndarray  # times after which the vibration baseline changed
    shift_factors: np.ndarray  # cumulative baseline factor from each of those times

    @property
    def id(self) -> str:
        return self.spec.id

    def tags(self) -> dict[str, str]:
        return {"plant": self.plant, "line": self.line, "machine": self.id}


def _rng(seed: int, *key: int) -> np.random.Generator:
    # Offset keys: the warm-up reaches back to day -1 and seeds must be non-negative.
    return np.random.default_rng([seed, *(k + (1 << 20) for k in key)])


class PlantSimulator:
    """Generates the plant's data day by day; see the module docstring."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.t0 = int(config.start.timestamp() * 1e9)
        rates = config.rates
        self.step = rates.process_interval_s * 10**9
        self.vib_every = rates.vibration_interval_s // rates.process_interval_s
        self.gateway = Gateway(rates.burst_rate_hz, rates.burst_samples, config.seed)
        timeline = fleet_timeline(config)
        placement = config.placement()
        self.machines: list[Machine] = []
        for i, spec in enumerate(config.machines()):
            rng = _rng(config.seed, i, 0)
            events = timeline[spec.id]
            shifts = [(e.repair_end, e.params["shift"]) for e in events if e.is_failure and e.repair_end]
            shifts += [(e.end, e.params["shift"]) for e in events if e.kind == "maintenance"]
            shifts.sort()
            plant, line, pattern = placement[spec.id]
            self.machines.append(
                Machine(
                    i, spec, MACHINE_TYPES[spec.type], plant, line, pattern, events,
                    base_load=float(rng.uniform(55, 85)),
                    phases=rng.uniform(0, 2 * np.pi, 4),
                    point_gain={"de": 1.0, "nde": float(rng.uniform(0.7, 0.9)), "axial": float(rng.uniform(0.45, 0.6))},
                    shift_times=np.array([t for t, _ in shifts], dtype=np.int64),
                    shift_factors=np.cumprod([f for _, f in shifts]) if shifts else np.array([]),
                )
            )

    # ------------------------------------------------------------------ public
    def events(self) -> list[Event]:
        """Every labelled event of the fleet."""
        return [e for m in self.machines for e in m.events]

    def day(self, d: int) -> dict[str, pd.DataFrame]:
        """The frames of day ``d`` (0 = the config's start day), keyed by measurement."""
        start = self.t0 + d * NS_DAY
        grid = np.arange(start - WARMUP_NS, start + NS_DAY, self.step, dtype=np.int64)
        keep = grid >= start
        process, temps, bursts, burst_rows, logs = [], [], [], [], []
        for m in self.machines:
            state = self._operate(m, grid, d)
            process.append(self._process_frame(m, grid[keep], {k: v[keep] for k, v in state.items()}))
            temps.append(self._temperatures(m, grid, state, d, keep))
            b, rows = self._bursts(m, grid[keep], {k: v[keep] for k, v in state.items()})
            bursts.append(b)
            burst_rows.append(rows)
            logs.append(day_logs(self.config.seed, m, start, grid[keep], state["severity"][keep], state["running"][keep], d))
        logs.extend(self._handovers(grid[keep], process, start, d))
        feats = self.gateway.analyse(Bursts.concat(bursts), _rng(self.config.seed, 77, d))
        vib = pd.concat(burst_rows, ignore_index=True)
        for k in FEATURES:
            vib[k] = feats[k]
        frames = {
            "process": pd.concat(process, ignore_index=True),
            "temperature": pd.concat(temps, ignore_index=True),
            "vibration": vib,
        }
        frames = self._nuisances(frames, start, start + NS_DAY)
        frames["operator_log"] = pd.concat(logs, ignore_index=True)
        for name, f in frames.items():
            f["time"] = pd.to_datetime(f["time"].to_numpy(np.int64), unit="ns", utc=True)
            frames[name] = f.set_index("time")
        return frames

    def _handovers(self, times: np.ndarray, process: list[pd.DataFrame], start: int, d: int) -> list[pd.DataFrame]:
        shift_rows = [int((h * NS_HOUR) // self.step) for h in SHIFT_STARTS_H]
        by_line: dict[tuple[str, str], list[tuple[str, pd.DataFrame]]] = {}
        for m, frame in zip(self.machines, process, strict=True):
            by_line.setdefault((m.plant, m.line), []).append((m.id, frame))
        out = []
        for i, ((plant, line), members) in enumerate(sorted(by_line.items())):
            stopped = [[mid for mid, f in members if not f["running"].iat[r]] for r in shift_rows]
            out.append(handover_notes(self.config.seed, plant, line, i, [mid for mid, _ in members], stopped, start, d))
        return out

    # --------------------------------------------------------------- operation
    def _fault_state(self, m: Machine, grid: np.ndarray) -> dict[str, np.ndarray]:
        """Per-mode severity in [0, 1] over the grid, and downtime."""
        sev = {mode: np.zeros(len(grid)) for mode in ("bearing_wear", "lubrication_loss", "misalignment",
                                                        "imbalance", "cooling_failure", "bearing_temp")}
        down = np.zeros(len(grid), dtype=bool)
        point = np.full(len(grid), "", dtype=object)
        for e in m.events:
            if e.start > grid[-1] or (e.repair_end or e.end) < grid[0]:
                continue
            if e.is_failure:
                live = (grid >= e.start) & (grid < e.end)
                u = (grid[live] - e.start) / (e.end - e.start)
                if e.kind == "bearing_wear":
                    g = e.params["growth"]
                    sev["bearing_wear"][live] = np.expm1(g * u) / np.expm1(g)
                    warm = e.params["temp_days"] * NS_DAY
                    sev["bearing_temp"][live] = np.clip((grid[live] - (e.end - warm)) / warm, 0, 1) ** 2
                elif e.kind == "lubrication_loss":
                    sev["lubrication_loss"][live] = u**1.5
                elif e.kind == "cooling_failure":
                    sev["cooling_failure"][live] = u**1.3
                else:
                    sev[e.kind][live] = u ** 1.2
                point[live] = e.params["point"]
                down |= (grid >= e.end) & (grid < (e.repair_end or e.end))
            elif e.kind == "maintenance":
                down |= (grid >= e.start) & (grid < e.end)
        sev["down"] = down  # type: ignore[assignment]
        sev["point"] = point  # type: ignore[assignment]
        return sev

    def _scheduled(self, m: Machine, grid: np.ndarray) -> np.ndarray:
        ts = pd.DatetimeIndex(pd.to_datetime(grid, unit="ns", utc=True))
        hour = ts.hour.to_numpy() + ts.minute.to_numpy() / 60
        dow = ts.dayofweek.to_numpy()
        weekday = dow < 5
        if m.shifts == "one":
            return weekday & (hour >= 6) & (hour < 14)
        if m.shifts == "two":
            return weekday & (hour >= 6) & (hour < 22)
        if m.shifts == "three":  # Monday 06:00 to Saturday 06:00
            return (weekday & ~((dow == 0) & (hour < 6))) | ((dow == 5) & (hour < 6))
        return np.ones(len(grid), dtype=bool)

    def _short_stops(self, m: Machine, grid: np.ndarray, d: int) -> np.ndarray:
        """Unplanned short stops (jams, upstream waits): ~0.5 a day, 10–60 min."""
        stop = np.zeros(len(grid), dtype=bool)
        for day in (d - 1, d):
            rng = _rng(self.config.seed, m.index, day, 5)
            day0 = self.t0 + day * NS_DAY
            for _ in range(rng.poisson(0.5)):
                t = day0 + int(rng.uniform(0, NS_DAY))
                stop |= (grid >= t) & (grid < t + int(rng.uniform(10, 60)) * NS_MIN)
        return stop

    def _operate(self, m: Machine, grid: np.ndarray, d: int) -> dict[str, np.ndarray]:
        """Running flag, load, speed and current over the grid, with faults' effects."""
        faults = self._fault_state(m, grid)
        running = self._scheduled(m, grid) & ~self._short_stops(m, grid, d) & ~faults["down"]
        regime = np.ones(len(grid))
        for e in m.events:
            if e.kind == "regime_change":
                regime[(grid >= e.start) & (grid < e.end)] = e.params["load_factor"]
        t_h = grid / NS_HOUR
        ph = m.phases
        wave = 1 + 0.08 * np.sin(2 * np.pi * t_h / 6 + ph[0]) + 0.04 * np.sin(2 * np.pi * t_h / 0.78 + ph[1])
        noise = np.concatenate([_rng(self.config.seed, m.index, day, 6).normal(0, 1.0, NS_DAY // self.step)
                                for day in (d - 1, d)])[-len(grid):]
        load = np.clip(m.base_load * regime * wave + noise, 5, 100)
        # After a start the load ramps up (≈5 min time constant).
        pos = np.arange(len(grid))
        last_stop = np.maximum.accumulate(np.where(running, -1, pos))
        since = pos - last_stop  # steps since the machine (re)started
        load = np.where(running, load * (1 - np.exp(-since * self.step / (5 * NS_MIN))), 0.0)
        mt = m.mtype
        if mt.variable_speed:
            speed = mt.speed_rpm * (0.45 + 0.55 * load / 100)
        else:
            speed = mt.speed_rpm * (1 - 0.013 * load / 100)
        speed = np.where(running, speed, 0.0)
        current = np.where(
            running,
            mt.rated_current_a * (0.25 + 0.75 * load / 100)
            * (1 + 0.08 * faults["misalignment"] + 0.04 * faults["bearing_wear"]),
            0.0,
        )
        return {"running": running, "load": load, "speed": speed, "current": current,
                "severity": np.maximum.reduce([faults[k] for k in ("bearing_wear", "lubrication_loss", "misalignment", "imbalance", "cooling_failure")]),
                **{f"sev_{k}": v for k, v in faults.items() if k not in ("down",)}}

    def _process_frame(self, m: Machine, times: np.ndarray, s: dict[str, np.ndarray]) -> pd.DataFrame:
        rng = _rng(self.config.seed, m.index, int((times[0] - self.t0) // NS_DAY), 7)
        run = s["running"]
        return pd.DataFrame({
            "time": times, **m.tags(),
            "speed_rpm": np.round(s["speed"] + run * rng.normal(0, 0.5, len(times)), 2),
            "load_pct": np.round(s["load"], 2),
            "current_a": np.round(s["current"] + run * rng.normal(0, 0.15, len(times)), 3),
            "running": run,
        })

    def _ambient(self, m: Machine, grid: np.ndarray) -> np.ndarray:
        days = (grid - self.t0) / NS_DAY
        ts = pd.DatetimeIndex(pd.to_datetime(grid, unit="ns", utc=True))
        hour = ts.hour.to_numpy() + ts.minute.to_numpy() / 60
        plant_phase = zlib.crc32(m.plant.encode()) % 1000 / 1000 * 2 * np.pi  # one weather per site
        return (18 + 4 * np.sin(2 * np.pi * (hour - 9) / 24)
                + 5 * np.sin(2 * np.pi * (ts.dayofyear.to_numpy() - 110) / 365)
                + 1.5 * np.sin(2 * np.pi * days / 3.3 + plant_phase))

    def _temperatures(self, m: Machine, grid: np.ndarray, s: dict[str, np.ndarray], d: int,
                      keep: np.ndarray) -> pd.DataFrame:
        ambient = self._ambient(m, grid)
        frac = s["load"] / 100
        run = s["running"].astype(float)
        rng = _rng(self.config.seed, m.index, d, 8)
        parts = []
        for name, th in m.mtype.temperatures.items():
            if name == "ambient":
                value = ambient
            else:
                heat = run * (th.idle_rise + th.rise_full_load * (frac**2 if name == "winding" else frac))
                if name == "bearing":
                    heat = heat + 30 * s["sev_bearing_temp"] + 22 * s["sev_lubrication_loss"] + 5 * s["sev_misalignment"]
                elif name == "winding":
                    heat = heat + 38 * s["sev_cooling_failure"]
                else:
                    heat = heat + 20 * s["sev_cooling_failure"]
                alpha = min(1.0, self.step / (th.tau_min * NS_MIN))
                # First-order lag: y[n] = y[n-1] + alpha (x[n] - y[n-1]), started at steady state.
                lagged, _ = lfilter([alpha], [1, alpha - 1], heat, zi=[heat[0] * (1 - alpha)])
                value = ambient + lagged
            value = value[keep] + rng.normal(0, 0.12, keep.sum())
            parts.append(pd.DataFrame({"time": grid[keep], **m.tags(), "sensor": name, "celsius": np.round(value, 3)}))
        return pd.concat(parts, ignore_index=True)

    def _bursts(self, m: Machine, times: np.ndarray, s: dict[str, np.ndarray]) -> tuple[Bursts, pd.DataFrame]:
        """Physical parameters of this day's bursts, and their rows (time, tags, point)."""
        idx = np.arange(0, len(times), self.vib_every)
        t = times[idx]
        mt = m.mtype
        run = s["running"][idx]
        frac = s["load"][idx] / 100
        shaft = s["speed"][idx] / 60
        k = np.searchsorted(m.shift_times, t, side="right")
        base = np.where(k > 0, m.shift_factors[np.maximum(k - 1, 0)] if len(m.shift_factors) else 1.0, 1.0)
        bw, lub = s["sev_bearing_wear"][idx], s["sev_lubrication_loss"][idx]
        mis, imb = s["sev_misalignment"][idx], s["sev_imbalance"][idx]
        fault_point = s["sev_point"][idx]
        parts, rows = [], []
        n = len(idx)
        for p in VIBRATION_POINTS:
            gain = m.point_gain[p]
            radial = p != "axial"
            at_fault = (fault_point == p).astype(float)
            impact = bw * (3.0 * at_fault + 0.8 * (1 - at_fault) * radial + 0.4 * (not radial)) + 0.6 * lub * radial
            parts.append(Bursts(
                shaft_hz=shaft * run,
                amp_1x=mt.amp_1x * gain * (0.5 + 0.5 * frac) * base * (1 + (3.5 if radial else 1.0) * imb),
                amp_2x=mt.amp_2x * gain * base * (1 + (0.8 if p == "de" else 0.5 if radial else 7.0) * mis)
                * (1.0 if radial else 1.3),
                amp_mesh=np.full(n, 0.12 * gain if mt.mesh_teeth else 0.0) * (0.5 + 0.5 * frac),
                mesh_order=np.full(n, float(mt.mesh_teeth)),
                amp_impact=impact,
                defect_order=np.full(n, mt.bpfo),
                bpfo_order=np.full(n, mt.bpfo),
                bpfi_order=np.full(n, mt.bpfi),
                resonance_hz=np.full(n, mt.resonance_hz),
                noise=mt.noise_g * gain * (0.3 + 0.7 * run),
                hf_noise=(0.01 + 0.45 * lub * radial + 0.1 * bw**2) * run,
            ))
            rows.append(pd.DataFrame({"time": t, **m.tags(), "sensor": p}))
        return Bursts.concat(parts), pd.concat(rows, ignore_index=True)

    # ---------------------------------------------------------------- nuisance
    def _nuisances(self, frames: dict[str, pd.DataFrame], lo: int, hi: int) -> dict[str, pd.DataFrame]:
        """Apply sensor replacements, spikes, stuck sensors, dropouts, clock skew and duplicates."""
        vib_cols = [c for c in FEATURES if c not in ("kurtosis", "crest")]
        for m in self.machines:
            for e in m.events:
                # A replaced sensor's offset is permanent: it applies to every later day too.
                permanent = e.kind == "sensor_replaced"
                if e.start >= hi or (not permanent and e.end <= lo):
                    continue
                if e.kind in ("sensor_replaced", "spike", "stuck", "dropout"):
                    meas, sensor, _ = e.sensors[0].split(".")
                    f = frames[meas]
                    sel = (f["machine"].to_numpy() == m.id) & (f["sensor"].to_numpy() == sensor)
                    t = f["time"].to_numpy()
                    cols = ["celsius"] if meas == "temperature" else vib_cols
                    if e.kind == "sensor_replaced":
                        rows = sel & (t >= e.start)
                        if "offset" in e.params:
                            f.loc[rows, "celsius"] = (f.loc[rows, "celsius"] + e.params["offset"]).round(3)
                        else:
                            f.loc[rows, vib_cols] = f.loc[rows, vib_cols] * e.params["gain"]
                    elif e.kind == "spike":
                        rows = np.flatnonzero(sel & (t >= e.start))[:1]
                        if meas == "temperature":
                            f.loc[f.index[rows], "celsius"] += 6 * e.params["factor"]
                        else:
                            f.loc[f.index[rows], ["rms", "peak"]] *= e.params["factor"]
                    elif e.kind == "stuck":
                        rows = np.flatnonzero(sel & (t >= e.start) & (t < e.end))
                        if len(rows):
                            first = np.flatnonzero(sel & (t <= e.start))
                            src = first[-1] if len(first) else rows[0]
                            for c in cols + (["kurtosis", "crest"] if meas == "vibration" else []):
                                f.loc[f.index[rows], c] = f.loc[f.index[src], c]
                    else:  # dropout: the gateway sent nothing
                        frames[meas] = f.loc[~(sel & (t >= e.start) & (t < e.end))].reset_index(drop=True)
                elif e.kind == "clock_skew":
                    for meas in ("process", "temperature", "vibration"):
                        f = frames[meas]
                        t = f["time"].to_numpy()
                        rows = (f["machine"].to_numpy() == m.id) & (t >= e.start) & (t < e.end)
                        f.loc[rows, "time"] = t[rows] + e.params["skew_s"] * 10**9
                elif e.kind == "duplicates":
                    for meas in ("process", "temperature", "vibration"):
                        f = frames[meas]
                        t = f["time"].to_numpy()
                        rows = (f["machine"].to_numpy() == m.id) & (t >= e.start) & (t < e.end)
                        # Re-sent points, arriving late and in reverse order.
                        frames[meas] = pd.concat([f, f.loc[rows].iloc[::-1]], ignore_index=True)
        return frames
