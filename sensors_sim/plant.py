"""The simulated plant, one day at a time.

``PlantSimulator.day(d)`` returns the frames that the plant's gateways would
send on day ``d`` (process values and temperatures every minute, vibration
features from a burst per measurement point every ten minutes, operator log
entries), with the faults' signatures and the nuisances (gaps, spikes, stuck
sensors, clock skew, duplicates) applied. A day depends only on the config
and the day number, so any day can be regenerated identically: that is what
makes backfill and a resumed stream agree point for point.

For speed, a day is built as plain numpy columns (tags as integer codes) and
turned into DataFrames once at the end, with categorical tag columns.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from sensors_sim.config import FleetConfig, MachineSpec
from sensors_sim.logs import COLUMNS as LOG_COLUMNS
from sensors_sim.logs import SHIFT_STARTS_H, Entry, day_logs, handover_notes
from sensors_sim.machines import MACHINE_TYPES, VIBRATION_POINTS, MachineType
from sensors_sim.timeline import NS_DAY, NS_HOUR, NS_MIN, Event, fleet_timeline
from sensors_sim.vibration import FEATURES, Bursts, Gateway

WARMUP_NS = 8 * NS_HOUR  # thermal state at midnight comes from the previous 8 h
FAULT_MODES = ("bearing_wear", "lubrication_loss", "misalignment", "imbalance", "cooling_failure")
#: Vibration fields that scale with the signal (a new accelerometer's gain); kurtosis and crest do not.
SCALED_FEATURES = [c for c in FEATURES if c not in ("kurtosis", "crest")]
SENSOR_EVENTS = ("sensor_replaced", "spike", "stuck", "dropout")


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
    ev_start: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    ev_stop: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # end, or repair end
    ev_permanent: np.ndarray = field(default_factory=lambda: np.empty(0, bool))

    @property
    def id(self) -> str:
        return self.spec.id

    def tags(self) -> dict[str, str]:
        return {"plant": self.plant, "line": self.line, "machine": self.id}

    def index_events(self) -> None:
        """Arrays over the events, to find those near a day quickly (call after changing ``events``)."""
        self.ev_start = np.array([e.start for e in self.events], dtype=np.int64)
        self.ev_stop = np.array([max(e.end, e.repair_end or e.end) for e in self.events], dtype=np.int64)
        self.ev_permanent = np.array([e.kind == "sensor_replaced" for e in self.events], dtype=bool)

    def events_between(self, lo: int, hi: int, *, permanent: bool = False) -> list[Event]:
        """Events that overlap ``[lo, hi]`` (in timeline order); with ``permanent``, also
        replaced sensors from before ``lo`` (their change lasts)."""
        if len(self.ev_start) != len(self.events):
            self.index_events()
        near = (self.ev_start <= hi) & (self.ev_stop >= lo)
        if permanent:
            near |= self.ev_permanent & (self.ev_start <= hi)
        return [self.events[i] for i in np.flatnonzero(near)]


def _rng(seed: int, *key: int) -> np.random.Generator:
    # Offset keys: the warm-up reaches back to day -1 and seeds must be non-negative.
    return np.random.default_rng([seed, *(k + (1 << 20) for k in key)])


@dataclass
class _Table:
    """One measurement's rows as numpy columns: time, machine index, sensor code, fields."""

    time: np.ndarray
    machine: np.ndarray
    sensor: np.ndarray | None
    fields: dict[str, np.ndarray]

    @staticmethod
    def concat(parts: list[_Table]) -> _Table:
        first = parts[0]
        return _Table(
            np.concatenate([p.time for p in parts]),
            np.concatenate([p.machine for p in parts]),
            None if first.sensor is None else np.concatenate([p.sensor for p in parts]),  # type: ignore[misc]
            {k: np.concatenate([p.fields[k] for p in parts]) for k in first.fields},
        )

    def take(self, idx: np.ndarray) -> _Table:
        return _Table(self.time[idx], self.machine[idx], None if self.sensor is None else self.sensor[idx],
                      {k: v[idx] for k, v in self.fields.items()})

    def append(self, other: _Table) -> _Table:
        return _Table.concat([self, other])


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
            m = Machine(
                i, spec, MACHINE_TYPES[spec.type], plant, line, pattern, events,
                base_load=float(rng.uniform(55, 85)),
                phases=rng.uniform(0, 2 * np.pi, 4),
                point_gain={"de": 1.0, "nde": float(rng.uniform(0.7, 0.9)), "axial": float(rng.uniform(0.45, 0.6))},
                shift_times=np.array([t for t, _ in shifts], dtype=np.int64),
                shift_factors=np.cumprod([f for _, f in shifts]) if shifts else np.array([]),
            )
            m.index_events()
            self.machines.append(m)
        # Tag values as categories: rows carry integer codes until the frames are built.
        self._plants = list(dict.fromkeys(m.plant for m in self.machines))
        self._lines = list(dict.fromkeys(m.line for m in self.machines))
        self._plant_of = np.array([self._plants.index(m.plant) for m in self.machines], dtype=np.int32)
        self._line_of = np.array([self._lines.index(m.line) for m in self.machines], dtype=np.int32)
        self._temp_sensors = list(dict.fromkeys(s for m in self.machines for s in m.mtype.temperatures))
        self._sensors = {"temperature": self._temp_sensors, "vibration": list(VIBRATION_POINTS)}

    # ------------------------------------------------------------------ public
    def events(self) -> list[Event]:
        """Every labelled event of the fleet."""
        return [e for m in self.machines for e in m.events]

    def day(self, d: int) -> dict[str, pd.DataFrame]:
        """The frames of day ``d`` (0 = the config's start day), keyed by measurement.

        Re-sent (duplicate) points are appended to the measurements they belong to.
        """
        frames, resent = self.day_parts(d)
        for meas, extra in resent.items():
            frames[meas] = pd.concat([frames[meas], extra])
        return frames

    def day_parts(self, d: int) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
        """Day ``d`` as (the points as first sent, the points a gateway sent again).

        The second part holds the duplicates, late and newest first; ``day``
        appends them. Writers may send them as a second batch, as a gateway
        would, which spares the store merging duplicates inside one batch.
        """
        start = self.t0 + d * NS_DAY
        grid = np.arange(start - WARMUP_NS, start + NS_DAY, self.step, dtype=np.int64)
        keep = grid >= start
        times = grid[keep]
        cal = self._calendar(grid)
        process, temps, bursts, burst_rows = [], [], [], []
        logs: list[tuple[str, str, str, Entry]] = []
        running_at: dict[int, np.ndarray] = {}
        for m in self.machines:
            near = m.events_between(int(grid[0]), start + NS_DAY)
            state = self._operate(m, grid, d, cal, near)
            today = {k: v[keep] for k, v in state.items()}
            running_at[m.index] = today["running"]
            process.append(self._process(m, times, today))
            temps.append(self._temperatures(m, grid, state, d, keep, cal))
            b, rows = self._bursts(m, times, today)
            bursts.append(b)
            burst_rows.append(rows)
            logs += [(m.plant, m.line, m.id, e) for e in day_logs(self.config.seed, m, start, times,
                                                                   today["severity"], today["running"], d, near)]
        logs += self._handovers(running_at, start, d)
        feats = self.gateway.analyse(Bursts.concat(bursts), _rng(self.config.seed, 77, d))
        vib = _Table.concat(burst_rows)
        vib.fields = {k: feats[k] for k in FEATURES}
        tables = {"process": _Table.concat(process), "temperature": _Table.concat(temps), "vibration": vib}
        tables, resent = self._nuisances(tables, start, start + NS_DAY)
        frames = {k: self._frame(k, t) for k, t in tables.items()}
        frames["operator_log"] = self._log_frame(logs)
        return frames, {k: self._frame(k, t) for k, t in resent.items() if len(t.time)}

    # ------------------------------------------------------------------ frames
    def _frame(self, meas: str, t: _Table) -> pd.DataFrame:
        cols: dict[str, object] = {
            "plant": pd.Categorical.from_codes(self._plant_of[t.machine], self._plants),
            "line": pd.Categorical.from_codes(self._line_of[t.machine], self._lines),
            "machine": pd.Categorical.from_codes(t.machine, [m.id for m in self.machines]),
        }
        if t.sensor is not None:
            cols["sensor"] = pd.Categorical.from_codes(t.sensor, self._sensors[meas])
        cols.update(t.fields)
        index = pd.DatetimeIndex(pd.to_datetime(t.time, unit="ns", utc=True), name="time")
        return pd.DataFrame(cols, index=index)

    @staticmethod
    def _log_frame(logs: list[tuple[str, str, str, Entry]]) -> pd.DataFrame:
        """Operator log entries (plant, line, machine, entry): machines' in fleet order, then handovers."""
        index = pd.DatetimeIndex(pd.to_datetime(np.array([e[0] for *_, e in logs], dtype=np.int64), unit="ns",
                                                utc=True), name="time")
        data: dict[str, object] = {
            "plant": [r[0] for r in logs], "line": [r[1] for r in logs], "machine": [r[2] for r in logs],
            **{c: [e[j + 1] for *_, e in logs] for j, c in enumerate(LOG_COLUMNS)},
        }
        data["severity"] = np.array(data["severity"], dtype=np.int64)
        return pd.DataFrame(data, index=index)

    def _handovers(self, running_at: dict[int, np.ndarray], start: int, d: int) -> list[tuple[str, str, str, Entry]]:
        """Shift handover notes per line (machine tag ""), listing the machines standing still."""
        shift_rows = [int((h * NS_HOUR) // self.step) for h in SHIFT_STARTS_H]
        by_line: dict[tuple[str, str], list[Machine]] = {}
        for m in self.machines:
            by_line.setdefault((m.plant, m.line), []).append(m)
        out: list[tuple[str, str, str, Entry]] = []
        for i, (plant, line) in enumerate(sorted(by_line)):
            members = by_line[(plant, line)]
            stopped = [[m.id for m in members if not running_at[m.index][r]] for r in shift_rows]
            notes = handover_notes(self.config.seed, plant, line, i, [m.id for m in members], stopped, start, d)
            out += [(plant, line, "", e) for e in notes]
        return out

    # --------------------------------------------------------------- operation
    def _calendar(self, grid: np.ndarray) -> dict[str, np.ndarray]:
        """Hour of day, weekday and day of year over the grid (the same for every machine)."""
        ts = pd.DatetimeIndex(pd.to_datetime(grid, unit="ns", utc=True))
        return {"hour": ts.hour.to_numpy() + ts.minute.to_numpy() / 60, "dow": ts.dayofweek.to_numpy(),
                "doy": ts.dayofyear.to_numpy()}

    def _fault_state(self, m: Machine, grid: np.ndarray, events: list[Event]) -> dict[str, np.ndarray]:
        """Per-mode severity in [0, 1] over the grid, downtime, and the damaged point."""
        sev: dict[str, np.ndarray] = {mode: np.zeros(len(grid)) for mode in (*FAULT_MODES, "bearing_temp")}
        down = np.zeros(len(grid), dtype=bool)
        point = np.full(len(grid), -1, dtype=np.int8)  # index into VIBRATION_POINTS
        for e in events:
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
                point[live] = VIBRATION_POINTS.index(e.params["point"])
                down |= (grid >= e.end) & (grid < (e.repair_end or e.end))
            elif e.kind == "maintenance":
                down |= (grid >= e.start) & (grid < e.end)
        sev["down"] = down
        sev["point"] = point
        return sev

    def _scheduled(self, m: Machine, cal: dict[str, np.ndarray]) -> np.ndarray:
        hour, dow = cal["hour"], cal["dow"]
        weekday = dow < 5
        if m.shifts == "one":
            return weekday & (hour >= 6) & (hour < 14)
        if m.shifts == "two":
            return weekday & (hour >= 6) & (hour < 22)
        if m.shifts == "three":  # Monday 06:00 to Saturday 06:00
            return (weekday & ~((dow == 0) & (hour < 6))) | ((dow == 5) & (hour < 6))
        return np.ones(len(hour), dtype=bool)

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

    def _operate(self, m: Machine, grid: np.ndarray, d: int, cal: dict[str, np.ndarray],
                 events: list[Event]) -> dict[str, np.ndarray]:
        """Running flag, load, speed and current over the grid, with faults' effects."""
        faults = self._fault_state(m, grid, events)
        running = self._scheduled(m, cal) & ~self._short_stops(m, grid, d) & ~faults["down"]
        regime = np.ones(len(grid))
        for e in events:
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
                "severity": np.maximum.reduce([faults[k] for k in FAULT_MODES]),
                **{f"sev_{k}": v for k, v in faults.items() if k != "down"}}

    def _tag_codes(self, m: Machine, n: int) -> np.ndarray:
        return np.full(n, m.index, dtype=np.int32)

    def _process(self, m: Machine, times: np.ndarray, s: dict[str, np.ndarray]) -> _Table:
        rng = _rng(self.config.seed, m.index, int((times[0] - self.t0) // NS_DAY), 7)
        run = s["running"]
        speed = np.round(s["speed"] + run * rng.normal(0, 0.5, len(times)), 2)
        current = np.round(s["current"] + run * rng.normal(0, 0.15, len(times)), 3)
        return _Table(times, self._tag_codes(m, len(times)), None, {
            "speed_rpm": speed, "load_pct": np.round(s["load"], 2), "current_a": current, "running": run,
        })

    def _ambient(self, m: Machine, grid: np.ndarray, cal: dict[str, np.ndarray]) -> np.ndarray:
        days = (grid - self.t0) / NS_DAY
        plant_phase = zlib.crc32(m.plant.encode()) % 1000 / 1000 * 2 * np.pi  # one weather per site
        return (18 + 4 * np.sin(2 * np.pi * (cal["hour"] - 9) / 24)
                + 5 * np.sin(2 * np.pi * (cal["doy"] - 110) / 365)
                + 1.5 * np.sin(2 * np.pi * days / 3.3 + plant_phase))

    def _temperatures(self, m: Machine, grid: np.ndarray, s: dict[str, np.ndarray], d: int,
                      keep: np.ndarray, cal: dict[str, np.ndarray]) -> _Table:
        ambient = self._ambient(m, grid, cal)
        frac = s["load"] / 100
        run = s["running"].astype(float)
        rng = _rng(self.config.seed, m.index, d, 8)
        n = int(keep.sum())
        names = list(m.mtype.temperatures)
        values = []
        for name, th in m.mtype.temperatures.items():
            if name == "ambient":
                value = ambient
            else:
                heat = th.idle_rise + th.rise_full_load * (frac**2 if name == "winding" else frac)
                # A fault's extra heat (friction, blocked cooling) is independent of
                # load but needs the machine running: a stopped machine makes no
                # losses and cools down to ambient like a healthy one.
                if name == "bearing":
                    heat = heat + 30 * s["sev_bearing_temp"] + 22 * s["sev_lubrication_loss"] + 5 * s["sev_misalignment"]
                elif name == "winding":
                    heat = heat + 38 * s["sev_cooling_failure"]
                else:
                    heat = heat + 20 * s["sev_cooling_failure"]
                heat = run * heat
                alpha = min(1.0, self.step / (th.tau_min * NS_MIN))
                # First-order lag: y[n] = y[n-1] + alpha (x[n] - y[n-1]), started at steady state.
                lagged, _ = lfilter([alpha], [1, alpha - 1], heat, zi=[heat[0] * (1 - alpha)])
                value = ambient + lagged
            values.append(np.round(value[keep] + rng.normal(0, 0.12, n), 3))
        codes = np.repeat(np.array([self._temp_sensors.index(s) for s in names], dtype=np.int16), n)
        return _Table(np.tile(grid[keep], len(names)), self._tag_codes(m, n * len(names)), codes,
                      {"celsius": np.concatenate(values)})

    def _bursts(self, m: Machine, times: np.ndarray, s: dict[str, np.ndarray]) -> tuple[Bursts, _Table]:
        """Physical parameters of this day's bursts, and their rows (time, machine, point)."""
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
        parts = []
        n = len(idx)
        for j, p in enumerate(VIBRATION_POINTS):
            gain = m.point_gain[p]
            radial = p != "axial"
            at_fault = (fault_point == j).astype(float)
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
        points = np.repeat(np.arange(len(VIBRATION_POINTS), dtype=np.int16), n)
        return Bursts.concat(parts), _Table(np.tile(t, len(VIBRATION_POINTS)), self._tag_codes(m, 3 * n), points, {})

    # ---------------------------------------------------------------- nuisance
    def _nuisances(self, tables: dict[str, _Table], lo: int, hi: int) -> tuple[dict[str, _Table], dict[str, _Table]]:
        """Apply sensor replacements, spikes, stuck sensors, dropouts, clock skew and duplicates.

        Returns the tables as first sent and the re-sent rows (duplicates) per measurement.
        """
        resent = {k: t.take(np.empty(0, dtype=np.int64)) for k, t in tables.items()}
        for m in self.machines:
            # A replaced sensor's offset is permanent: it applies to every later day too.
            for e in m.events_between(lo, hi - 1, permanent=True):
                if e.start >= hi or (e.kind != "sensor_replaced" and e.end <= lo):
                    continue
                if e.kind in SENSOR_EVENTS:
                    self._sensor_event(tables, resent, m, e)
                elif e.kind == "clock_skew":
                    for meas in ("process", "temperature", "vibration"):
                        for t in (tables[meas], resent[meas]):
                            rows = (t.machine == m.index) & (t.time >= e.start) & (t.time < e.end)
                            t.time = np.where(rows, t.time + e.params["skew_s"] * 10**9, t.time)
                elif e.kind == "duplicates":
                    for meas in ("process", "temperature", "vibration"):
                        # Re-sent points, arriving late and in reverse order (points
                        # re-sent already go again when two re-sends overlap).
                        both = _Table.concat([tables[meas], resent[meas]])
                        rows = np.flatnonzero((both.machine == m.index) & (both.time >= e.start) & (both.time < e.end))
                        resent[meas] = resent[meas].append(both.take(rows[::-1]))
        return tables, resent

    def _sensor_event(self, tables: dict[str, _Table], resent: dict[str, _Table], m: Machine, e: Event) -> None:
        meas, sensor, _ = e.sensors[0].split(".")
        code = self._sensors[meas].index(sensor)
        cols = ["celsius"] if meas == "temperature" else SCALED_FEATURES
        # The same rows in the first and the re-sent data, as if it were one frame
        # with the re-sent rows at its end ("the first row" is the first sent one).
        t, r = tables[meas], resent[meas]
        sel = np.concatenate([(t.machine == m.index) & (t.sensor == code), (r.machine == m.index) & (r.sensor == code)])
        time = np.concatenate([t.time, r.time])
        split = len(t.time)

        def update(col: str, rows: np.ndarray, values: np.ndarray | float) -> None:
            both = np.concatenate([t.fields[col], r.fields[col]])
            both[rows] = values
            t.fields[col], r.fields[col] = both[:split], both[split:]

        def column(col: str) -> np.ndarray:
            return np.concatenate([t.fields[col], r.fields[col]])

        rows: np.ndarray
        if e.kind == "sensor_replaced":
            rows = np.flatnonzero(sel & (time >= e.start))
            if "offset" in e.params:
                update("celsius", rows, np.round(column("celsius")[rows] + e.params["offset"], 3))
            else:
                for c in SCALED_FEATURES:
                    update(c, rows, column(c)[rows] * e.params["gain"])
        elif e.kind == "spike":
            rows = np.flatnonzero(sel & (time >= e.start))[:1]
            if meas == "temperature":
                update("celsius", rows, column("celsius")[rows] + 6 * e.params["factor"])
            else:
                for c in ("rms", "peak"):
                    update(c, rows, column(c)[rows] * e.params["factor"])
        elif e.kind == "stuck":
            rows = np.flatnonzero(sel & (time >= e.start) & (time < e.end))
            if len(rows):
                before = np.flatnonzero(sel & (time <= e.start))
                src = before[-1] if len(before) else rows[0]
                for c in cols + (["kurtosis", "crest"] if meas == "vibration" else []):
                    update(c, rows, column(c)[src])
        else:  # dropout: the gateway sent nothing
            gone = sel & (time >= e.start) & (time < e.end)
            tables[meas] = t.take(np.flatnonzero(~gone[:split]))
            resent[meas] = r.take(np.flatnonzero(~gone[split:]))
