"""benchmarks/severity.py on a hand-made run: gradings judged on the same episodes, from a series folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.severity import RULES, main
from pdm.evaluate.bench_sim import _Series, write_series, write_truth

H = 3_600_000_000_000
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _run(folder: Path) -> None:
    """m1: a fault that holds at 2 x threshold for five days before failing at window 100 (onset at 35);
    m2: a burst of spikes at 9 x (a false alarm that the peak grades critical and the sustained rule does not)."""
    times = T0.value + np.arange(150, dtype=np.int64) * 2 * H
    fault, spikes = np.full(150, 0.5), np.full(150, 0.5)
    fault[40:100] = 2.0
    spikes[30:35] = [9.0, 0.5, 9.0, 9.0, 0.5]
    series = [_Series(m, times, s, np.zeros((150, 1)), 1.0, ["a"]) for m, s in (("m1", fault), ("m2", spikes))]
    write_series(series, folder / "tshae.parquet")
    failures = pd.DataFrame({"machine": ["m1"], "failure": [pd.Timestamp(times[100], tz="UTC")],
                             "onset": [pd.Timestamp(times[35], tz="UTC")]})
    observed = pd.DataFrame({"machine": ["m1", "m2"], "start": [T0] * 2,
                             "end": [pd.Timestamp(times[-1], tz="UTC")] * 2})
    write_truth(failures, observed, None, folder)


def test_each_grading_is_judged_level_by_level(tmp_path: Path) -> None:
    _run(tmp_path / "run_series")
    (tmp_path / "run.json").write_text("{}")
    assert main(["--run", "a=run.json", "--results", str(tmp_path), "--out", "s", "--dev", "b"]) == 2  # no such run
    assert main(["--run", "a=nothing.json", "--results", str(tmp_path), "--out", "s"]) == 2  # no series
    assert main(["--run", "a", "--results", str(tmp_path), "--out", "s"]) == 2  # not NAME=FILE
    assert main(["--run", "a=run.json", "--results", str(tmp_path), "--out", "s", "--note", "hand-made"]) == 0
    doc = json.loads((tmp_path / "s.json").read_text())
    assert list(doc["by_run"]["a"]) == list(RULES) and doc["held_back"] == ["a"]
    peak = doc["pooled"]["peak 1.5 / 3 or trend <= 72 h (until 2026-12-07)"]["levels"]
    held = doc["pooled"]["peak 1.5 / sustained: median of the last 12 windows >= 1.5 (the default since)"]["levels"]
    assert (peak[0]["alarms"], peak[0]["false_alarms"], peak[0]["caught_72h_after_onset"]) == (2, 1, 1)
    assert (peak[2]["alarms"], peak[2]["false_alarms"]) == (2, 1)  # the spikes' peak made them critical
    assert (held[2]["alarms"], held[2]["false_alarms"], held[2]["caught_72h_after_onset"]) == (1, 0, 1)
    md = (tmp_path / "s.md").read_text()
    assert "| | critical | 1/1; FA 0 (" in md.replace("|  |", "| |") and md.rstrip().endswith("hand-made")
    # each rule's held-back evidence priced as the level to notify from: m1 told 130 h ahead by every level
    # (planned), m2's spikes one false call for watch and warning, and for critical only by the peak
    assert "## Which level to notify from, priced in downtime" in md
    assert "| peak 1.5 / 3 or trend <= 72 h (until 2026-12-07) | critical **(cheapest)** | 1 | 0 | 1 | 12 | 2 |" in md
    assert "the default since) | critical **(cheapest)** | 1 | 0 | 0 |" in md
