"""Operator log entries: inspections, lubrication, reports of noise or heat
whose probability rises with a fault's severity, work orders around
maintenance and repairs, and shift handover notes.

Each entry has free text plus ``event_type``, ``severity`` (0 info … 3
critical) and ``operator``; they go to the store's ``operator_log``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sensors_sim.timeline import NS_DAY, NS_HOUR, NS_MIN

if TYPE_CHECKING:
    from sensors_sim.plant import Machine
    from sensors_sim.timeline import Event

SHIFT_STARTS_H = (6, 14, 22)

FINDINGS = {
    "bearing_wear": ["unusual noise from {point} bearing, grinding sound", "rumble at {point} bearing housing",
                     "{point} bearing hot to touch"],
    "lubrication_loss": ["grease looks dry at drive end", "squealing from bearing, needs grease",
                         "bearing housing warm, lubricant low"],
    "misalignment": ["vibration felt on base frame near coupling", "coupling looks worn, axial play",
                     "noise from coupling guard"],
    "imbalance": ["machine shakes at speed, vibration felt on frame", "fan/impeller runs rough",
                  "strong vibration at running speed"],
    "cooling_failure": ["motor casing hot to touch", "cooling fan not turning freely, motor hot",
                        "smell of hot insulation near motor"],
}
FALSE_ALARMS = ["unusual noise reported, nothing found on inspection", "operator reports vibration, checked: normal",
                "hot to touch? checked with IR gun: within limits"]
REPAIRS = {
    "bearing_wear": "replaced {point} bearing", "lubrication_loss": "re-greased and replaced seals",
    "misalignment": "realigned coupling (laser)", "imbalance": "balanced rotor in place",
    "cooling_failure": "cleaned cooler and replaced motor fan",
}


def _operator(rng: np.random.Generator) -> str:
    return f"op-{int(rng.integers(1, 13)):02d}"


#: One log entry: time (ns), event_type, operator, message, severity.
Entry = tuple[int, str, str, str, int]
COLUMNS = ("event_type", "operator", "message", "severity")


def day_logs(seed: int, m: Machine, day_start: int, times: np.ndarray, severity: np.ndarray,
             running: np.ndarray, d: int, events: list[Event] | None = None) -> list[Entry]:
    """One machine's log entries on one day, in time order.

    ``events``: the machine's events near the day (all of them if None).
    """
    events = m.events if events is None else events
    rng = np.random.default_rng([seed, m.index, d, 9])
    rows: list[tuple[int, str, str, int]] = []  # time, event_type, message, severity
    day_end = day_start + NS_DAY
    step = times[1] - times[0] if len(times) > 1 else NS_MIN

    def at(t: int) -> int:
        return int(np.clip((t - times[0]) // step, 0, len(times) - 1))

    active = [e for e in events if e.is_failure and e.start < day_end and e.end > day_start]
    dow = pd.Timestamp(day_start, unit="ns").dayofweek

    # Morning inspection on weekdays.
    if dow < 5:
        t = day_start + int((8 + rng.uniform(0, 2)) * NS_HOUR)
        sev = severity[at(t)]
        if active and rng.random() < sev:
            e = active[0]
            text = str(rng.choice(FINDINGS[e.kind])).format(point=e.params["point"].upper())
            rows.append((t, "inspection", f"inspection: {text}", 2 if sev > 0.5 else 1))
        else:
            rows.append((t, "inspection", "routine inspection, no findings", 0))
    # Reports during shifts: likelier as a fault grows; now and then a false one.
    for h in SHIFT_STARTS_H:
        t = day_start + int((h + rng.uniform(0.5, 7.5)) * NS_HOUR)
        if not running[at(t)]:
            continue
        sev = severity[at(t)]
        if active and rng.random() < 0.4 * sev**2:
            e = active[0]
            text = str(rng.choice(FINDINGS[e.kind])).format(point=e.params["point"].upper())
            rows.append((t, "observation", text, 3 if sev > 0.8 else 2))
        elif rng.random() < 0.004:
            rows.append((t, "observation", str(rng.choice(FALSE_ALARMS)), 1))
    # Weekly lubrication round.
    if (d + m.index) % 7 == 0:
        t = day_start + int(10.5 * NS_HOUR + rng.uniform(0, 2) * NS_HOUR)
        rows.append((t, "lubrication", "greased DE and NDE bearings per schedule", 0))
    # Work orders.
    for e in events:
        if e.is_failure and day_start <= e.end < day_end:
            rows.append((e.end, "work_order", f"breakdown: {m.id} tripped and stopped ({e.kind.replace('_', ' ')})", 3))
        if e.is_failure and e.repair_end and day_start <= e.repair_end < day_end:
            text = REPAIRS[e.kind].format(point=e.params["point"].upper())
            rows.append((e.repair_end, "work_order", f"repair completed: {text}; back in service", 1))
        if e.kind == "maintenance" and day_start <= e.start < day_end:
            rows.append((e.start, "work_order", "planned maintenance: inspection, filters, fasteners", 1))
        if e.kind == "sensor_replaced" and day_start <= e.start < day_end:
            rows.append((e.start, "work_order", f"replaced sensor {e.sensors[0].rsplit('.', 1)[0]}", 1))
    rows.sort()
    return [(t, kind, _operator(rng), text, sev) for t, kind, text, sev in rows]


def handover_notes(seed: int, plant: str, line: str, line_index: int, machines: list[str],
                   stopped: list[list[str]], day_start: int, d: int) -> list[Entry]:
    """Shift handover notes of a line (no machine tag: they are about the line).

    ``stopped[i]`` lists the machines standing still at the i-th shift change.
    """
    rng = np.random.default_rng([seed, 20_000 + line_index, d, 10])
    rows = []
    for h, down in zip(SHIFT_STARTS_H, stopped, strict=True):
        down = sorted(down)
        text = f"shift handover {line}: {len(machines) - len(down)} of {len(machines)} machines running"
        if down:
            text += "; stopped: " + ", ".join(down)
        rows.append((day_start + h * NS_HOUR, text))
    return [(t, "handover", _operator(rng), text, 0) for t, text in rows]
