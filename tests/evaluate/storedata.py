"""A store with hand-written scoring output and ground truth (no model, no training).

Two machines scored every 2 h from 2024-01-01 to 2024-03-01 by model
version ``v2`` (and, for January only, an older ``v1`` that must be ignored
unless asked for):

- m1 degrades from 2024-02-01, fails 2024-02-10 00:00 (repaired 2024-02-11);
  an alarm runs 2024-02-06 00:00 → 2024-02-10 00:00 (96 h ahead) whose root
  cause ranks vibration.de.band_bpfo first: caught, right channel.
- m2 has a maintenance on 2024-01-20 02:00–08:00 and an alarm 2024-01-20
  00:00 → 2024-01-21 00:00 (a false alarm, explained by the maintenance);
  it degrades from 2024-02-15 and fails 2024-02-20 00:00 without an alarm.

m1's alarm turned critical 48 h before its failure (``critical_ns``), m2's stayed a warning; ``v1``'s
alarm predates those fields. ``v2``'s windows carry the time to failure the open alarm showed (``ttf_hours``: m1's alarm the exact hours
left, m2's 30 h; -1 elsewhere); ``v1``'s predate the field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pdm.store.embedded import EmbeddedStore

T0, T1 = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC")
VERSION = "v2"
FAIL_M1, FAIL_M2 = pd.Timestamp("2024-02-10", tz="UTC"), pd.Timestamp("2024-02-20", tz="UTC")
ALARM_M1 = (pd.Timestamp("2024-02-06", tz="UTC"), pd.Timestamp("2024-02-10", tz="UTC"))
ALARM_M2 = (pd.Timestamp("2024-01-20", tz="UTC"), pd.Timestamp("2024-01-21", tz="UTC"))
CRITICAL_M1 = FAIL_M1 - pd.Timedelta("48h")  # m1's alarm turned critical 48 h before its failure
ROOT_M1 = ["vibration.de.band_bpfo", "temperature.bearing.celsius", "vibration.de.rms"]


def scores(machine: str, version: str, start: pd.Timestamp, stop: pd.Timestamp) -> pd.DataFrame:
    t = pd.date_range(start, stop, freq="2h", inclusive="left")
    ratio = np.full(len(t), 0.5)
    alarm = ALARM_M1 if machine == "m1" else ALARM_M2
    inside = (t >= alarm[0]) & (t <= alarm[1])
    ratio[inside] = 1.8
    frame = pd.DataFrame({"machine": machine, "model_version": version, "score": ratio * 4.0,
                          "threshold": 4.0, "ratio": ratio}, index=t)
    if version == VERSION:  # the time to failure the open alarm showed: m1's exactly what remained, m2's 30 h
        left = (FAIL_M1 - t) / pd.Timedelta("1h") if machine == "m1" else np.full(len(t), 30.0)
        frame["ttf_hours"] = np.where(inside, left, -1.0)
    return frame


def alarm_frame(machine: str, version: str, span: tuple[pd.Timestamp, pd.Timestamp], top: str,
                critical: pd.Timestamp | None = None) -> pd.DataFrame:
    """An alarm point; ``v2``'s say when they reached warning (at once) and critical (``critical``, or never)."""
    frame = pd.DataFrame({"machine": [machine], "model_version": [version], "severity": ["warning"],
                          "status": ["closed"], "end_ns": [span[1].value], "last_ns": [span[1].value],
                          "peak_ratio": [1.8], "ttf_hours": [-1.0], "top_channel": [top]}, index=[span[0]])
    if version == VERSION:
        frame["severity"] = "critical" if critical is not None else "warning"
        frame["warning_ns"], frame["critical_ns"] = span[0].value, 0 if critical is None else critical.value
    return frame


def write_store(path: Path, *, truth: bool = True) -> EmbeddedStore:
    store = EmbeddedStore(path)
    tags = ["machine", "model_version"]
    for m in ("m1", "m2"):
        store.write(scores(m, VERSION, T0, T1), "pdm_score", tags)
        store.write(scores(m, "v1", T0, pd.Timestamp("2024-02-01", tz="UTC")), "pdm_score", tags)
    store.write(alarm_frame("m1", VERSION, ALARM_M1, ROOT_M1[0], critical=CRITICAL_M1), "pdm_alarm", tags)
    store.write(alarm_frame("m2", VERSION, ALARM_M2, "vibration.de.rms"), "pdm_alarm", tags)
    store.write(alarm_frame("m2", "v1", ALARM_M2, "vibration.de.rms"), "pdm_alarm", tags)
    rc = pd.DataFrame({
        "machine": "m1", "model_version": VERSION, "alarm": str(ALARM_M1[0].value),
        "rank": ["c01", "c02", "c03", "l01"], "kind": ["channel"] * 3 + ["log"],
        "channel": ROOT_M1 + [""], "contribution": [0.6, 0.25, 0.1, np.nan], "zscore": [7.0, 3.0, 1.5, np.nan],
        "attention_change": [0.2, 0.1, 0.0, np.nan], "message": ["", "", "", "bearing noise"],
        "follows": [None, None, ROOT_M1[0], None],  # rms follows its band (pdm.detect.rootcause.explaining_band)
    }, index=[ALARM_M1[0]] * 4)
    store.write(rc, "pdm_rootcause", ["machine", "model_version", "alarm", "rank"])
    if truth:
        rows = pd.DataFrame({
            "plant": "p", "line": "l", "machine": ["m1", "m2", "m2"],
            "kind": ["bearing_wear", "maintenance", "cooling_failure"], "is_failure": [True, False, True],
            "failure_ns": pd.array([FAIL_M1.value, None, FAIL_M2.value], dtype="Int64"),
            "end_ns": [pd.Timestamp("2024-02-11", tz="UTC").value, pd.Timestamp("2024-01-20 08:00", tz="UTC").value,
                       pd.Timestamp("2024-02-21", tz="UTC").value],
            "root_cause": ["vibration.de.band_bpfo;vibration.de.kurtosis", "", "temperature.winding.celsius"],
            "affected": "", "detail": "",
        }, index=pd.DatetimeIndex(["2024-02-01", "2024-01-20 02:00", "2024-02-15"], tz="UTC"))
        store.write(rows, "pdm_truth", ["plant", "line", "machine", "kind"])
    return store
