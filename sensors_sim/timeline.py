"""What happens to each machine, and when: faults and the things that are not faults.

The timeline is drawn once per machine from the seed, over a ten-year
horizon, so a 90-day backfill and a stream that continues it see the same
events. Every event is labelled as what it is (ground truth).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sensors_sim.config import FleetConfig, MachineSpec
from sensors_sim.machines import MACHINE_TYPES, VIBRATION_POINTS

NS_S = 10**9
NS_MIN = 60 * NS_S
NS_HOUR = 60 * NS_MIN
NS_DAY = 24 * NS_HOUR
HORIZON_DAYS = 3650

#: Onset-to-failure duration range per fault mode, days.
PROGRESSION_DAYS = {
    "bearing_wear": (5.0, 20.0),
    "lubrication_loss": (3.0, 10.0),
    "misalignment": (7.0, 21.0),
    "imbalance": (7.0, 21.0),
    "cooling_failure": (2.0, 6.0),
}

NUISANCE_KINDS = (
    "maintenance", "sensor_replaced", "dropout", "spike", "stuck",
    "clock_skew", "duplicates", "regime_change",
)


@dataclass(frozen=True)
class Event:
    """One labelled event on one machine.

    Faults: ``start`` = onset, ``end`` = failure, ``repair_end`` = back in
    service. Nuisance events: ``start``/``end`` bound the event; a permanent
    change (sensor replaced, maintenance shift) has ``end`` = its start plus
    its downtime. ``sensors`` are channel ids ``measurement.sensor.field``:
    for faults, the root cause (strongest first); for nuisances, what is touched.
    """

    machine: str
    kind: str
    start: int
    end: int
    is_failure: bool
    sensors: tuple[str, ...] = ()
    repair_end: int | None = None
    params: dict[str, Any] = field(default_factory=dict, compare=False)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def root_cause(mode: str, point: str, machine_type: str) -> tuple[str, ...]:
    """The channels that carry a fault's signature, strongest first."""
    third = [t for t in MACHINE_TYPES[machine_type].temperatures if t in ("oil", "casing")][0]
    return {
        "bearing_wear": (f"vibration.{point}.band_bpfo", f"vibration.{point}.kurtosis", "temperature.bearing.celsius"),
        # Lubrication loss reaches both radial points alike (the physics has no fault point for it).
        "lubrication_loss": ("vibration.de.band_hf", "vibration.nde.band_hf", "temperature.bearing.celsius"),
        "misalignment": ("vibration.axial.band_2x", "vibration.de.band_2x", "process.current_a"),
        "imbalance": ("vibration.de.band_1x", "vibration.nde.band_1x", "vibration.de.rms", "vibration.nde.rms"),
        "cooling_failure": ("temperature.winding.celsius", f"temperature.{third}.celsius"),
    }[mode]


def _fault(machine: MachineSpec, mode: str, failure: int, onset_days: float, repair_h: float,
           rng: np.random.Generator) -> Event:
    point = "de" if rng.random() < 0.6 else "nde"
    onset = failure - int(onset_days * NS_DAY)
    params = {
        "point": point,
        "growth": float(rng.uniform(3.0, 6.0)),  # exponential sharpness of the severity curve
        "temp_days": float(rng.uniform(1.0, 3.0)),  # bearing wear warms up only at the end
        "shift": float(rng.uniform(0.92, 1.12)),  # baseline after repair
    }
    return Event(machine.id, mode, onset, failure, True, root_cause(mode, point, machine.type),
                 failure + int(repair_h * NS_HOUR), params)


def machine_timeline(config: FleetConfig, index: int, machine: MachineSpec) -> list[Event]:
    """All events of one machine over the horizon, sorted by start."""
    seed = config.seed
    t0 = int(config.start.timestamp() * 1e9)
    horizon = t0 + HORIZON_DAYS * NS_DAY
    rng = _rng(seed, index, 1)
    events: list[Event] = []

    for spec in machine.faults:
        lo, hi = PROGRESSION_DAYS[spec.mode]
        onset_days = spec.onset_days or float(rng.uniform(lo, hi))
        repair_h = spec.repair_hours or float(rng.uniform(*config.faults.repair_hours))
        events.append(_fault(machine, spec.mode, int(spec.failure.timestamp() * 1e9), onset_days, repair_h, rng))
    busy = [(e.start, e.repair_end or e.end) for e in events]

    rate = config.faults.per_machine_year if machine.random_faults else 0.0
    cursor = t0 + int(rng.uniform(2, 10) * NS_DAY)
    while rate > 0:
        cursor += int(rng.exponential(365.0 / rate) * NS_DAY)
        mode = str(rng.choice(config.faults.modes))
        lo, hi = PROGRESSION_DAYS[mode]
        onset_days = float(rng.uniform(lo, hi))
        repair_h = float(rng.uniform(*config.faults.repair_hours))
        failure = cursor + int(onset_days * NS_DAY)
        if failure > horizon:
            break
        span = (cursor - NS_DAY, failure + int(repair_h * NS_HOUR) + NS_DAY)
        clash = [b for b in busy if b[0] < span[1] and span[0] < b[1]]
        if clash:
            cursor = max(b[1] for b in clash) + NS_DAY
            continue
        events.append(_fault(machine, mode, failure, onset_days, repair_h, rng))
        busy.append(span)
        cursor = span[1]

    events.extend(_nuisances(config, index, machine, t0, horizon, busy))
    return sorted((_whole_seconds(e) for e in events), key=lambda e: (e.start, e.kind))


def _whole_seconds(e: Event) -> Event:
    """Event times on whole seconds, as a work order or a maintenance log records them
    (and as a labels file written with microseconds keeps them exactly)."""
    def r(t: int) -> int:
        return (t + NS_S // 2) // NS_S * NS_S

    return replace(e, start=r(e.start), end=r(e.end), repair_end=None if e.repair_end is None else r(e.repair_end))


def _poisson_times(rng: np.random.Generator, per_day: float, t0: int, t1: int) -> list[int]:
    if per_day <= 0:
        return []
    n = rng.poisson(per_day * (t1 - t0) / NS_DAY)
    return sorted(int(t) for t in rng.integers(t0, t1, n))


def _nuisances(config: FleetConfig, index: int, machine: MachineSpec, t0: int, t1: int,
               busy: list[tuple[int, int]]) -> list[Event]:
    """Nuisance events of one machine. Maintenance avoids fault periods (it would mask them)."""
    nz = config.nuisance
    rng = _rng(config.seed, index, 2)
    temps = list(MACHINE_TYPES[machine.type].temperatures)
    sensors = [f"temperature.{t}.celsius" for t in temps] + [f"vibration.{p}.rms" for p in VIBRATION_POINTS]
    out: list[Event] = []

    def free(t: int, dur: int) -> bool:
        return not any(b0 - NS_DAY < t + dur and t < b1 + NS_DAY for b0, b1 in busy)

    for t in _poisson_times(rng, nz.maintenance_per_year / 365, t0 + 3 * NS_DAY, t1):
        dur = int(rng.uniform(4, 8) * NS_HOUR)
        if free(t, dur):
            out.append(Event(machine.id, "maintenance", t, t + dur, False, (),
                             params={"shift": float(rng.uniform(0.93, 1.08))}))
    for t in _poisson_times(rng, nz.sensor_replaced_per_year / 365, t0 + 3 * NS_DAY, t1):
        s = str(rng.choice(sensors))
        change = {"offset": float(rng.choice([-1, 1]) * rng.uniform(1.5, 3.0))} if s.startswith("temperature") \
            else {"gain": float(rng.uniform(0.75, 1.3))}
        out.append(Event(machine.id, "sensor_replaced", t, t + int(rng.uniform(0.5, 2) * NS_HOUR), False, (s,), params=change))
    for t in _poisson_times(rng, nz.dropouts_per_month / 30, t0, t1):
        s = str(rng.choice(sensors))
        out.append(Event(machine.id, "dropout", t, t + int(rng.uniform(10, 360) * NS_MIN), False, (s,)))
    for t in _poisson_times(rng, nz.spikes_per_month / 30, t0, t1):
        s = str(rng.choice(sensors))
        out.append(Event(machine.id, "spike", t, t + NS_MIN, False, (s,), params={"factor": float(rng.uniform(4, 12))}))
    for t in _poisson_times(rng, nz.stuck_per_year / 365, t0, t1):
        s = str(rng.choice(sensors))
        out.append(Event(machine.id, "stuck", t, t + int(rng.uniform(1, 12) * NS_HOUR), False, (s,)))
    for t in _poisson_times(rng, nz.clock_skew_per_year / 365, t0, t1):
        out.append(Event(machine.id, "clock_skew", t, t + int(rng.uniform(1, 7) * NS_DAY), False, (),
                         params={"skew_s": int(rng.integers(30, 300))}))
    for t in _poisson_times(rng, nz.duplicates_per_month / 30, t0, t1):
        out.append(Event(machine.id, "duplicates", t, t + int(rng.uniform(1, 6) * NS_HOUR), False, ()))
    return out


def line_regimes(config: FleetConfig, line_index: int, line: str) -> list[Event]:
    """Regime changes of a line (new product, new set point): load level changes for days."""
    rng = _rng(config.seed, 10_000 + line_index, 3)
    t0 = int(config.start.timestamp() * 1e9)
    horizon = t0 + HORIZON_DAYS * NS_DAY
    per_day = config.nuisance.regime_changes_per_line_year / 365
    out: list[Event] = []
    # A line makes one product at a time: a regime lasts until it ends, and the
    # next one starts (at the configured rate) after that, so they never overlap.
    t = t0 + 5 * NS_DAY
    while per_day > 0:
        t += int(rng.exponential(1 / per_day) * NS_DAY)
        if t >= horizon:
            break
        end = t + int(rng.uniform(3, 14) * NS_DAY)
        out.append(Event(f"line:{line}", "regime_change", t, end, False, (),
                         params={"load_factor": float(rng.choice([0.6, 0.75, 1.25, 1.35]))}))
        t = end
    return [_whole_seconds(e) for e in out]


def fleet_timeline(config: FleetConfig) -> dict[str, list[Event]]:
    """machine id → its events, regime changes of its line included (tagged with the machine)."""
    placement = config.placement()
    lines = sorted({(p, line) for p, line, _ in placement.values()})
    regimes = {pl: line_regimes(config, i, pl[1]) for i, pl in enumerate(lines)}
    out = {}
    for i, m in enumerate(config.machines()):
        plant, line, _ = placement[m.id]
        evs = machine_timeline(config, i, m)
        evs += [Event(m.id, e.kind, e.start, e.end, False, (), params=e.params) for e in regimes[(plant, line)]]
        out[m.id] = sorted(evs, key=lambda e: (e.start, e.kind))
    return out
