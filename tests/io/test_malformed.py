"""A malformed file fails with a message that says what and where, and imports nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from pdm.cli import main
from pdm.io import (
    ImportFileError,
    SensorColumns,
    TimeSpec,
    import_events,
    import_failures,
    import_sensors,
)


def good_rows(n: int = 50) -> list[dict]:
    t0 = pd.Timestamp("2024-05-01T00:00:00Z")
    return [{"time": (t0 + pd.Timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": "m1",
             "sensor": "s1", "value": str(float(i))} for i in range(n)]


def fails(store, path, **kw) -> str:
    with pytest.raises(ImportFileError) as exc:
        import_sensors(store, path, **kw)
    assert store.measurements() == []  # nothing partial
    return str(exc.value)


def test_a_missing_column_is_named_with_the_option_that_maps_it(store, tmp_path):
    pd.DataFrame(good_rows()).drop(columns="value").to_csv(tmp_path / "f.csv", index=False)
    msg = fails(store, tmp_path / "f.csv")
    assert "column 'value' not in the file" in msg and "--value-col" in msg and "nothing was written" in msg


def test_unparsable_times_are_reported_by_row_even_in_the_last_chunk(store, tmp_path):
    rows = good_rows(500)
    rows[480]["time"] = "yesterday"
    rows[497]["time"] = "2024-13-45T99:00:00Z"
    pd.DataFrame(rows).to_csv(tmp_path / "f.csv", index=False)
    msg = fails(store, tmp_path / "f.csv", chunk_rows=100)  # the first four chunks were fine
    assert "unparsable time in column 'time': 2 rows, e.g. row 481 ('yesterday'), row 498" in msg


def test_duplicate_keys_name_both_rows(store, tmp_path):
    rows = good_rows()
    rows[7] = dict(rows[3], value="99")
    pd.DataFrame(rows).to_csv(tmp_path / "f.csv", index=False)
    msg = fails(store, tmp_path / "f.csv", chunk_rows=5)
    assert "duplicate (time, machine, sensor)" in msg and "e.g. rows 4 and 8" in msg


def test_non_numeric_values_are_reported_with_their_text(embedded, tmp_path):
    rows = good_rows()
    rows[10]["value"] = "1,5"
    rows[11]["value"] = "n/a?"
    pd.DataFrame(rows).to_csv(tmp_path / "f.csv", index=False)
    msg = fails(embedded, tmp_path / "f.csv")
    assert "non-numeric value: 2 rows, e.g. row 11 ('1,5'), row 12 ('n/a?')" in msg


def test_a_wide_file_names_the_sensor_column_of_a_bad_cell(embedded, tmp_path):
    pd.DataFrame({"time": ["2024-01-01T00:00Z", "2024-01-01T00:10Z"], "machine": ["m", "m"],
                  "a": ["1", "2"], "b": ["3", "oops"]}).to_csv(tmp_path / "w.csv", index=False)
    assert "non-numeric value (column b)" in fails(embedded, tmp_path / "w.csv", columns=SensorColumns(layout="wide"))


def test_integer_times_without_a_period_ask_for_period_and_origin(embedded, tmp_path):
    pd.DataFrame({"time": [1, 2], "machine": ["m", "m"], "x": [1.0, 2.0]}).to_csv(tmp_path / "c.csv", index=False)
    msg = fails(embedded, tmp_path / "c.csv", columns=SensorColumns(layout="wide"))
    assert "--period" in msg and "--origin" in msg
    msg = fails(embedded, tmp_path / "c.csv", columns=SensorColumns(layout="wide"), time=TimeSpec(period="10s"))
    assert "--period needs --origin" in msg


def test_local_times_that_a_dst_change_repeats_are_refused_not_guessed(embedded, tmp_path):
    pd.DataFrame({"time": ["2024-10-27 01:30", "2024-10-27 02:30"], "machine": ["m", "m"], "x": [1.0, 2.0]}).to_csv(
        tmp_path / "dst.csv", index=False)
    msg = fails(embedded, tmp_path / "dst.csv", columns=SensorColumns(layout="wide"), time=TimeSpec(tz="Europe/Berlin"))
    assert "unparsable time in column 'time': 1 row, e.g. row 2 ('2024-10-27 02:30')" in msg


@pytest.mark.parametrize("name", ["data.xlsx", "data"])
def test_an_unknown_file_type_is_refused(embedded, tmp_path, name):
    (tmp_path / name).write_text("time,machine\n")
    assert "unknown file type" in fails(embedded, tmp_path / name)


def test_a_broken_parquet_file_is_refused(embedded, tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1 this is not parquet")
    assert "not a readable Parquet file" in fails(embedded, tmp_path / "x.parquet")


def test_a_bad_map_rule_is_refused(embedded, tmp_path):
    pd.DataFrame(good_rows()).to_csv(tmp_path / "f.csv", index=False)
    assert "process needs a field" in fails(embedded, tmp_path / "f.csv", rules=["s*=process"])
    assert "not for sensor values" in fails(embedded, tmp_path / "f.csv", rules=["s*=pdm_score.x"])


def test_malformed_logs_import_nothing(embedded, tmp_path):
    pd.DataFrame({"time": ["2024-01-01T00:00Z", "soon"], "machine": ["m", ""], "type": ["WO", "Inspection"]}).to_csv(
        tmp_path / "e.csv", index=False)
    with pytest.raises(ImportFileError) as exc:
        import_events(embedded, tmp_path / "e.csv")
    assert "row 2 ('soon')" in str(exc.value) and "missing machine in column 'machine'" in str(exc.value)
    pd.DataFrame({"when": ["2024-01-01T00:00Z"], "machine": ["m"]}).to_csv(tmp_path / "f.csv", index=False)
    with pytest.raises(ImportFileError, match="column 'time' not in the file .*--time-col"):
        import_failures(embedded, tmp_path / "f.csv")
    pd.DataFrame({"time": ["2024-01-02T00:00Z"], "machine": ["m"], "end": ["2024-01-01T00:00Z"]}).to_csv(
        tmp_path / "g.csv", index=False)
    with pytest.raises(ImportFileError, match="repair end before the failure"):
        import_failures(embedded, tmp_path / "g.csv")
    assert embedded.measurements() == []


def test_the_cli_exits_2_with_the_reasons_and_the_store_stays_empty(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    monkeypatch.setenv("PDM_STORE__PATH", str(tmp_path / "s.duckdb"))
    rows = good_rows()
    rows[5]["time"] = "not a time"
    pd.DataFrame(rows).to_csv(tmp_path / "f.csv", index=False)
    assert main(["import", "sensors", str(tmp_path / "f.csv")]) == 2
    err = capsys.readouterr().err
    assert "pdmctl import sensors:" in err and "row 6 ('not a time')" in err and "nothing was written" in err
    assert main(["store", "machines"]) == 0
    assert capsys.readouterr().out == ""


def test_a_repeated_row_of_a_wide_file_counts_once_and_shared_process_fields_are_named(embedded, tmp_path):
    rows = [["2024-01-01T00:00Z", "m", 1, 2], ["2024-01-01T00:10Z", "m", 1, 2], ["2024-01-01T00:00Z", "m", 3, 4]]
    pd.DataFrame(rows, columns=["time", "machine", "a", "b"]).to_csv(tmp_path / "w.csv", index=False)
    msg = fails(embedded, tmp_path / "w.csv", columns=SensorColumns(layout="wide"))
    assert "duplicate (time, machine): 1 row, e.g. rows 1 and 3" in msg
    pd.DataFrame(rows[:2], columns=["time", "machine", "a", "b"]).to_csv(tmp_path / "v.csv", index=False)
    msg = fails(embedded, tmp_path / "v.csv", columns=SensorColumns(layout="wide"), rules=["*=process.speed_rpm"])
    assert "several sensors are mapped to process.speed_rpm" in msg
