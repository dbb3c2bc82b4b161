"""Ingest validation and data-quality figures, on an embedded store with hand-made points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pdm.pipeline.ingest import QUALITY, ingest_interval
from pdm.store.embedded import EmbeddedStore

T0 = pd.Timestamp("2024-03-01T00:00:00Z")


@pytest.fixture
def store(tmp_path):
    return EmbeddedStore(tmp_path / "s.duckdb")


def _temps(machine: str, minutes: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    idx = pd.DatetimeIndex(T0 + pd.to_timedelta(minutes, unit="min"), name="time")
    return pd.DataFrame({"plant": "p", "line": "l", "machine": machine, "sensor": "bearing",
                         "celsius": values.astype(float)}, index=idx)


def test_a_clean_hour_has_no_problems_and_its_figures_are_stored(store):
    store.write(_temps("m1", np.arange(60), np.full(60, 40.0)), "temperature", ["plant", "line", "machine", "sensor"])
    r = ingest_interval(store, T0, T0 + pd.Timedelta("1h"))
    assert r.points == 60 and r.machines == ["m1"] and r.problems == []
    q = store.read(QUALITY)
    row = q[q["source"] == "temperature"].iloc[0]
    assert row["points"] == 60 and row["expected"] == 60 and row["missing_fraction"] == 0
    assert q.index[0] == T0


def test_gaps_out_of_range_values_and_near_duplicates_are_reported(store):
    minutes = np.r_[np.arange(0, 20), np.arange(40, 60), [41.1, 42.2]]  # 20-min gap, 2 re-sent points
    values = np.full(len(minutes), 40.0)
    values[5] = 999.0  # outside [-60, 400] °C
    store.write(_temps("m1", minutes, values), "temperature", ["plant", "line", "machine", "sensor"])
    r = ingest_interval(store, T0, T0 + pd.Timedelta("1h"), max_gap_fraction=0.1)
    q = r.quality.set_index("measurement").loc["temperature"]
    assert q["out_of_range"] == 1 and q["duplicates"] == 2
    assert q["missing_fraction"] == pytest.approx(20 / 60, abs=0.02)
    assert q["longest_gap_s"] == pytest.approx(21 * 60)
    text = " | ".join(r.problems)
    assert "outside" in text and "missing" in text and "duplicate" in text


def test_rerunning_an_interval_overwrites_its_figures(store):
    store.write(_temps("m1", np.arange(60), np.full(60, 40.0)), "temperature", ["plant", "line", "machine", "sensor"])
    for _ in range(2):
        ingest_interval(store, T0, T0 + pd.Timedelta("1h"))
    assert len(store.read(QUALITY)) == 1


def test_points_arriving_late_for_the_previous_interval_are_counted(store):
    tags = ["plant", "line", "machine", "sensor"]
    store.write(_temps("m1", np.arange(0, 50), np.full(50, 40.0)), "temperature", tags)
    ingest_interval(store, T0, T0 + pd.Timedelta("1h"))
    store.write(_temps("m1", np.arange(50, 60), np.full(10, 40.0)), "temperature", tags)  # late
    store.write(_temps("m1", np.arange(60, 120), np.full(60, 40.0)), "temperature", tags)
    r = ingest_interval(store, T0 + pd.Timedelta("1h"), T0 + pd.Timedelta("2h"))
    assert int(r.quality["late_points"].sum()) == 10
    assert any("late" in p for p in r.problems)


def test_an_empty_interval_has_no_data_and_writes_nothing(store):
    r = ingest_interval(store, T0, T0 + pd.Timedelta("1h"))
    assert not r.has_data and r.summary()["points"] == 0
    assert store.read(QUALITY).empty


def test_a_reversed_interval_is_refused(store):
    with pytest.raises(ValueError, match="empty interval"):
        ingest_interval(store, T0, T0)
