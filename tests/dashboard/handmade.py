"""A tiny store written by hand, point by point, following pdm.store.schema (no simulator, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pdm.store import Store
from pdm.store.embedded import EmbeddedStore

T0 = pd.Timestamp("2024-03-01", tz="UTC")
DAYS = 3
MACHINES = {"m-alarm": "line-a", "m-warn": "line-a", "m-ok": "line-b"}
RATIO = {"m-alarm": 2.0, "m-warn": 0.9, "m-ok": 0.3}
ALARM_AT = T0 + pd.Timedelta("2D")
CHANNELS = ["temperature.bearing.celsius", "vibration.de.kurtosis", "vibration.de.rms"]


def build(path: Path) -> Store:
    store = EmbeddedStore(path)
    times = pd.date_range(T0, T0 + pd.Timedelta(f"{DAYS}D"), freq="10min", inclusive="left")
    for m, line in MACHINES.items():
        tags = {"plant": "p1", "line": line, "machine": m}
        n = len(times)
        proc = pd.DataFrame({**tags, "speed_rpm": 1500.0, "load_pct": 70.0, "current_a": 12.0, "running": True},
                            index=times)
        store.write(proc, "process", list(tags))
        for sensor in ("de", "nde"):
            vib = pd.DataFrame({**tags, "sensor": sensor, "rms": np.linspace(1, 2, n), "kurtosis": 3.0,
                                "peak": 4.0, "crest": 3.0}, index=times)
            store.write(vib, "vibration", [*tags, "sensor"])
        temp = pd.DataFrame({**tags, "sensor": "bearing", "celsius": 50.0}, index=times)
        store.write(temp, "temperature", [*tags, "sensor"])
        hourly = times[::6]
        ratio = np.full(len(hourly), 0.3)
        ratio[-len(hourly) // 3:] = RATIO[m]
        score = pd.DataFrame({"machine": m, "model_version": "v1", "score": ratio * 2.0, "threshold": 2.0,
                              "ratio": ratio}, index=hourly)
        store.write(score, "pdm_score", ["machine", "model_version"])
        store.write([{"measurement": "operator_log", "time": T0 + pd.Timedelta("1D"),
                      "tags": {**tags, "event_type": "inspection", "operator": "op-1"},
                      "fields": {"message": f"{m}: noisy bearing", "severity": 1}}])
    alarm_ns = int(ALARM_AT.value)
    store.write([{"measurement": "pdm_alarm", "time": ALARM_AT, "tags": {"machine": "m-alarm", "model_version": "v1"},
                  "fields": {"severity": "critical", "status": "open", "end_ns": 0, "last_ns": alarm_ns,
                             "peak_ratio": 2.0, "ttf_hours": 30.0, "top_channel": CHANNELS[0]}}])
    rc = [{"measurement": "pdm_rootcause", "time": ALARM_AT,
           "tags": {"machine": "m-alarm", "model_version": "v1", "alarm": str(alarm_ns), "rank": f"c{i:02d}"},
           "fields": {"kind": "channel", "channel": c, "contribution": 1.0 / i, "zscore": 5.0 / i,
                      "attention_change": 0.1 / i}} for i, c in enumerate(CHANNELS, 1)]
    rc.append({"measurement": "pdm_rootcause", "time": ALARM_AT,
               "tags": {"machine": "m-alarm", "model_version": "v1", "alarm": str(alarm_ns), "rank": "l01"},
               "fields": {"kind": "log", "event_type": "inspection", "message": "m-alarm: noisy bearing",
                          "log_ns": int((T0 + pd.Timedelta("1D")).value), "weight": 0.7}})
    eye = np.eye(3).tolist()
    maps = {"channels": CHANNELS, "spatial": eye, "baseline": (np.ones((3, 3)) / 3).tolist(),
            "diff": (np.eye(3) - 1 / 3).tolist(), "temporal": np.ones((3, 4)).tolist(),
            "token_times_ns": [alarm_ns - k * 3_600 * 10**9 for k in (3, 2, 1, 0)], "logs": []}
    rc.append({"measurement": "pdm_rootcause", "time": ALARM_AT,
               "tags": {"machine": "m-alarm", "model_version": "v1", "alarm": str(alarm_ns), "rank": "maps"},
               "fields": {"kind": "maps", "maps_json": json.dumps(maps)}})
    store.write(rc)
    truth = pd.DataFrame({"plant": "p1", "line": "line-a", "machine": "m-warn", "kind": "maintenance",
                          "is_failure": False, "end_ns": int((T0 + pd.Timedelta("26h")).value)},
                         index=pd.DatetimeIndex([T0 + pd.Timedelta("1D")]))
    store.write(truth, "pdm_truth", ["plant", "line", "machine", "kind"])
    return store
