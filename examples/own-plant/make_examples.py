"""Write the small example plant used in the README's "Your own plant's data".

Three pumps, 14 days every 30 minutes, local time (Europe/Berlin, no DST change
in the range), as a plant historian would export them:

- ``sensors.csv``: wide, one column per sensor;
- ``events.csv``: the maintenance / shift log with the plant's own type names;
- ``failures.csv``: one bearing failure of P-103 on day 12 (in UTC); its
  drive-end vibration and bearing temperature rise for five days before.

Run ``python examples/own-plant/make_examples.py`` to rewrite them (deterministic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
MACHINES = ("P-101", "P-102", "P-103")
START = pd.Timestamp("2025-02-03 00:00")
DAYS = 14
FAILURE = START + pd.Timedelta(days=12, hours=9, minutes=40)


def sensors(rng: np.random.Generator) -> pd.DataFrame:
    times = pd.date_range(START, periods=DAYS * 48, freq="30min")
    hours = (times - START) / pd.Timedelta(hours=1)
    frames = []
    for i, m in enumerate(MACHINES):
        shift = np.sin(2 * np.pi * hours.to_numpy() / 24 + i)  # daily demand cycle
        speed = 1480 + 15 * shift + rng.normal(0, 3, len(times))
        load = 70 + 12 * shift + rng.normal(0, 1.5, len(times))
        vib_de = 2.1 + 0.3 * (load - 70) / 12 + rng.normal(0, 0.08, len(times))
        vib_nde = 1.6 + 0.2 * (load - 70) / 12 + rng.normal(0, 0.07, len(times))
        t_bear = 48 + 0.15 * (load - 70) + rng.normal(0, 0.4, len(times))
        t_motor = 62 + 0.25 * (load - 70) + rng.normal(0, 0.5, len(times))
        flow = 118 + 1.1 * (load - 70) + rng.normal(0, 1.0, len(times))
        if m == "P-103":  # bearing damage: five days of growth, then failure and a stop until the repair
            age = ((times - (FAILURE - pd.Timedelta(days=5))) / pd.Timedelta(days=5)).to_numpy()
            grow = np.clip(age, 0, 1) ** 2
            vib_de = vib_de * (1 + 2.5 * grow)
            t_bear = t_bear + 9 * grow
            down = (times >= FAILURE) & (times < FAILURE + pd.Timedelta(hours=20))
            for arr in (speed, load, vib_de, vib_nde, t_bear, t_motor, flow):
                arr[down] = np.nan
            after = times >= FAILURE + pd.Timedelta(hours=20)
            vib_de[after] = 2.1 + rng.normal(0, 0.08, after.sum())
            t_bear[after] = 48 + rng.normal(0, 0.4, after.sum())
        gaps = rng.random(len(times)) < 0.01  # the historian drops a value now and then
        vib_nde[gaps] = np.nan
        frames.append(pd.DataFrame({
            "time": times.strftime("%Y-%m-%d %H:%M"), "machine": m,
            "vib_de_mm_s": vib_de.round(3), "vib_nde_mm_s": vib_nde.round(3),
            "temp_bearing_c": t_bear.round(2), "temp_motor_c": t_motor.round(2),
            "flow_m3h": flow.round(1), "speed_rpm": speed.round(0), "load_pct": load.round(1),
        }))
    return pd.concat(frames).sort_values(["time", "machine"], kind="stable")


def events() -> pd.DataFrame:
    rows = []
    for d in range(DAYS):
        day = START + pd.Timedelta(days=d)
        rows.append((day + pd.Timedelta(hours=6), "P-101", "Shift handover", "night shift: all pumps normal"))
        if d % 3 == 0:
            for m in MACHINES:
                rows.append((day + pd.Timedelta(hours=9, minutes=MACHINES.index(m) * 20), m, "Inspection round",
                             "walk-down, no findings"))
        if d == 4:
            rows.append((day + pd.Timedelta(hours=10), "P-102", "Lube", "greased both bearings"))
    rows.append((FAILURE - pd.Timedelta(days=2, hours=3), "P-103", "Noise report", "grinding noise at drive end"))
    rows.append((FAILURE - pd.Timedelta(hours=2), "P-103", "Alarm", "bearing temperature high (DCS)"))
    rows.append((FAILURE + pd.Timedelta(hours=1), "P-103", "WO", "WO-4711 replace DE bearing"))
    rows.append((START + pd.Timedelta(days=7, hours=14), "P-102", "Valve change", "discharge valve swapped"))
    out = pd.DataFrame(rows, columns=["time", "machine", "type", "text"]).sort_values("time", kind="stable")
    out["time"] = out["time"].dt.strftime("%Y-%m-%d %H:%M")
    return out


def failures() -> pd.DataFrame:
    # The maintenance system exports UTC with an explicit zone, as `pdmctl evaluate --failures` reads it too.
    utc = FAILURE.tz_localize("Europe/Berlin").tz_convert("UTC")
    return pd.DataFrame({
        "time": [utc.strftime("%Y-%m-%dT%H:%M:%SZ")], "machine": ["P-103"], "mode": ["bearing_wear"],
        "component": ["drive-end bearing"], "end": [(utc + pd.Timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M:%SZ")],
    })


def main() -> None:
    rng = np.random.default_rng(11)
    sensors(rng).to_csv(HERE / "sensors.csv", index=False)
    events().to_csv(HERE / "events.csv", index=False)
    failures().to_csv(HERE / "failures.csv", index=False)
    for name in ("sensors.csv", "events.csv", "failures.csv"):
        print(f"{name}: {(HERE / name).stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
