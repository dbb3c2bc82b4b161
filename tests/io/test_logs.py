"""Event logs land in operator_log, failure logs in pdm_truth, where training and evaluation find them."""

from __future__ import annotations

import pandas as pd
import pytest

from pdm.features.grid import align_machine
from pdm.features.windows import excluded_steps
from pdm.io import (
    ImportFileError,
    LogColumns,
    TimeSpec,
    failures_as_truth,
    import_events,
    import_failures,
)
from pdm.model.pipeline import read_labels


def test_event_types_map_onto_the_model_channels_and_unknown_ones_are_kept(store, tmp_path):
    pd.DataFrame({
        "when": ["2024-06-03 08:00", "2024-06-03 09:30", "2024-06-04 10:00", "2024-06-04 11:00", "2024-06-05 07:00"],
        "asset": ["p1", "p1", "p1", "p2", "p1"],
        "kind": ["Inspection round", "WO", "Lube", "Valve change", "Shift handover"],
        "note": ["walk-down", "WO-1 replace seal", None, "swapped", "all fine"],
        "severity": [0, 2, 1, 0, None],
    }).to_csv(tmp_path / "ev.csv", index=False)
    cols = LogColumns(time="when", machine="asset", type="kind", text="note")
    res = import_events(store, tmp_path / "ev.csv", cols, time=TimeSpec(tz="Europe/Berlin"))
    assert res.points == 5 and any("Valve change" in n for n in res.notes)
    log = store.read("operator_log", "p1")
    assert log["event_type"].tolist() == ["inspection", "work_order", "lubrication", "handover"]
    assert log["message"].tolist() == ["walk-down", "WO-1 replace seal", "", "all fine"]
    assert log["severity"].tolist() == [0, 2, 1, 0]
    assert log.index[0] == pd.Timestamp("2024-06-03T06:00:00Z")  # CEST = UTC+2
    assert store.read("operator_log", "p2")["event_type"].tolist() == ["Valve change"]
    grid = align_machine(store, "p1", "2024-06-03", "2024-06-06")
    assert grid.events.loc["2024-06-03 07:30+00:00", "work_order"] == 3.0  # severity 2 + 1
    assert grid.context["days_since_work_order"].iloc[-1] < 3


def test_duplicate_events_are_refused(embedded, tmp_path):
    pd.DataFrame({"time": ["2024-01-01T00:00Z"] * 2, "machine": ["m"] * 2, "type": ["WO", "work order"]}).to_csv(
        tmp_path / "e.csv", index=False)
    with pytest.raises(ImportFileError, match=r"duplicate \(time, machine, type, operator\): 1 row, e.g. rows 1 and 2"):
        import_events(embedded, tmp_path / "e.csv")
    assert embedded.measurements() == []


def test_a_failure_log_becomes_ground_truth_that_keeps_degradation_out_of_training(store, tmp_path):
    pd.DataFrame({"time": ["2024-03-20T12:00:00Z", "2024-03-25T00:00:00Z"], "machine": ["p1", "p2"],
                  "mode": ["bearing_wear", None], "component": ["DE bearing", None],
                  "end": ["2024-03-21T06:00:00Z", None]}).to_parquet(tmp_path / "f.parquet")
    res = import_failures(store, tmp_path / "f.parquet", degradation="5D", repair="12h")
    assert res.points == 2
    labels = read_labels(store).sort_values("machine").reset_index(drop=True)
    assert labels["kind"].tolist() == ["bearing_wear", "failure"]
    assert labels["is_failure"].tolist() == [True, True]
    assert labels["start"].tolist() == [pd.Timestamp("2024-03-15T12:00Z"), pd.Timestamp("2024-03-20T00:00Z")]
    assert list(pd.to_datetime(labels["end"], utc=True)) == [pd.Timestamp("2024-03-21T06:00Z"), pd.Timestamp("2024-03-25T12:00Z")]
    truth = store.read("pdm_truth", "p1")
    assert truth["failure_ns"].iloc[0] == pd.Timestamp("2024-03-20T12:00Z").value
    assert truth["detail"].iloc[0] == "component=DE bearing"
    grid_times = pd.date_range("2024-03-14", "2024-03-22", freq="1D", tz="UTC").as_unit("ns")  # as align_machine
    assert excluded_steps(grid_times, labels, "p1").tolist() == [False, False, True, True, True, True, True, True, False]


def test_failure_times_may_be_steps_and_an_onset_column_bounds_the_degradation(embedded, tmp_path):
    pd.DataFrame({"stamp": [100, 200], "unit": ["e1", "e2"], "onset": [40, None]}).to_csv(tmp_path / "f.csv", index=False)
    cols = LogColumns(time="stamp", machine="unit")
    truth = failures_as_truth(tmp_path / "f.csv", cols, time=TimeSpec(period="1h", origin="2024-01-01T00:00Z"),
                              degradation="2D")
    assert truth["failure"].tolist() == [pd.Timestamp("2024-01-05T04:00Z"), pd.Timestamp("2024-01-09T08:00Z")]
    assert truth["start"].tolist() == [pd.Timestamp("2024-01-02T16:00Z"), pd.Timestamp("2024-01-07T08:00Z")]
    pd.DataFrame({"stamp": [100], "unit": ["e1"], "onset": [140]}).to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(ImportFileError, match=r"onset after the failure: 1 row, e.g. row 1 \('140'\)"):
        import_failures(embedded, tmp_path / "g.csv", cols, time=TimeSpec(period="1h", origin="2024-01-01T00:00Z"))
    assert embedded.measurements() == []


def test_the_imported_failure_log_is_also_a_failure_file_for_evaluate(tmp_path):
    from pdm.evaluate.failures import read_failure_log

    pd.DataFrame({"time": ["2024-03-20T12:00:00Z"], "machine": ["p1"], "mode": ["bearing_wear"],
                  "component": ["DE bearing"], "end": ["2024-03-21T06:00:00Z"]}).to_csv(tmp_path / "f.csv", index=False)
    ours = failures_as_truth(tmp_path / "f.csv")
    theirs, _ = read_failure_log(tmp_path / "f.csv")
    assert theirs["failure"].tolist() == ours["failure"].tolist()
    assert theirs["repair_end"].tolist() == ours["end"].tolist()
