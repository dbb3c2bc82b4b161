"""Importing sensor files: long and wide, CSV and Parquet, timestamps and integer steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pdm.features.grid import align_machine
from pdm.io import SensorColumns, TimeSpec, import_sensors

T0 = pd.Timestamp("2024-03-01T00:00:00Z")


def long_frame(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        for m in ("m-1", "m-2"):
            for s in ("flow", "pressure"):
                rows.append((T0 + pd.Timedelta(minutes=10 * i), m, s, round(float(rng.normal(5, 1)), 4)))
    return pd.DataFrame(rows, columns=["ts", "asset", "tag", "reading"])


def write(frame: pd.DataFrame, path) -> None:
    if str(path).endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_long_file_reads_back_value_for_value(store, tmp_path, suffix):
    src = long_frame()
    if suffix == ".csv":
        src["ts"] = src["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    write(src, tmp_path / f"long{suffix}")
    cols = SensorColumns(time="ts", machine="asset", sensor="tag", value="reading")
    res = import_sensors(store, tmp_path / f"long{suffix}", cols, chunk_rows=37)
    assert res.points == len(src) and res.machines == ["m-1", "m-2"]
    back = store.read("sensor")
    assert len(back) == len(src)
    got = back.reset_index().set_index(["time", "machine", "sensor"])["value"].sort_index()
    want = src.assign(time=pd.to_datetime(src["ts"], utc=True)).set_index(["time", "asset", "tag"])["reading"]
    np.testing.assert_array_equal(got.to_numpy(), want.sort_index().to_numpy())
    assert got.index.get_level_values("time").min() == T0


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_wide_file_in_local_time_lands_in_utc_and_in_the_mapped_measurements(store, tmp_path, suffix):
    times = pd.date_range("2024-02-01 08:00", periods=24, freq="10min")  # naive: Berlin local time (UTC+1)
    src = pd.DataFrame({"time": list(times) * 2, "machine": ["a"] * 24 + ["b"] * 24,
                        "vib_de": np.linspace(1, 2, 48), "temp_oil": np.linspace(40, 50, 48),
                        "speed": np.full(48, 1450.0), "flow": np.linspace(100, 110, 48)})
    src.loc[3, "vib_de"] = np.nan  # an empty cell is missing, not an error
    write(src, tmp_path / f"wide{suffix}")
    res = import_sensors(store, tmp_path / f"wide{suffix}", SensorColumns(layout="wide"),
                         rules=["temp_*=temperature", "speed=process.speed_rpm", "vib_*=vibration.rms"],
                         time=TimeSpec(tz="Europe/Berlin"))
    assert res.series == {"flow": "sensor.value", "speed": "process.speed_rpm", "temp_oil": "temperature.celsius",
                          "vib_de": "vibration.rms"}
    assert res.points == 48 * 4 - 1 and res.skipped_missing == 1
    temp = store.read("temperature", "b")
    assert temp.index[0] == pd.Timestamp("2024-02-01T07:00:00Z")
    np.testing.assert_allclose(temp["celsius"].to_numpy(), src["temp_oil"].to_numpy()[24:])
    assert list(temp["sensor"].unique()) == ["temp_oil"]
    assert store.read("process", "a")["speed_rpm"].eq(1450.0).all()
    assert len(store.read("vibration", "a")) == 23
    grid = align_machine(store, "a", "2024-02-01T07:00Z", "2024-02-01T11:00Z")
    assert {"sensor.flow.value", "temperature.temp_oil.celsius", "vibration.vib_de.rms"} <= set(grid.sensors.columns)
    assert grid.context["speed"].dropna().eq(1.0).all()


def test_integer_steps_with_a_period_become_times_from_the_origin(embedded, tmp_path):
    src = pd.DataFrame({"cycle": [0, 1, 2, 3, 0, 1], "unit": ["e1"] * 4 + ["e2"] * 2,
                        "t24": [641.8, 642.1, 642.4, 642.9, 640.0, 640.5]})
    src.to_csv(tmp_path / "cycles.csv", index=False)
    cols = SensorColumns(layout="wide", time="cycle", machine="unit")
    import_sensors(embedded, tmp_path / "cycles.csv", cols, time=TimeSpec(period="10s", origin="2024-01-01"))
    back = embedded.read("sensor", "e1")
    assert list(back.index) == [pd.Timestamp("2024-01-01T00:00:00Z") + pd.Timedelta(seconds=10 * i) for i in range(4)]
    assert back["value"].tolist() == [641.8, 642.1, 642.4, 642.9]


def test_a_one_machine_file_takes_its_id_from_an_option_and_epoch_seconds(embedded, tmp_path):
    pd.DataFrame({"t": [1_700_000_000, 1_700_000_060], "rpm": [10.0, 11.0]}).to_parquet(tmp_path / "x.parquet")
    res = import_sensors(embedded, tmp_path / "x.parquet", SensorColumns(layout="wide", time="t", machine_id="press-7"),
                         time=TimeSpec(epoch_unit="s"))
    assert res.machines == ["press-7"]
    assert embedded.read("sensor", "press-7").index[1] == pd.Timestamp(1_700_000_060, unit="s", tz="UTC")


def test_a_dry_run_validates_and_writes_nothing(embedded, tmp_path):
    long_frame().to_csv(tmp_path / "l.csv", index=False)
    cols = SensorColumns(time="ts", machine="asset", sensor="tag", value="reading")
    res = import_sensors(embedded, tmp_path / "l.csv", cols, dry_run=True)
    assert res.points == 120 and embedded.measurements() == []


def test_importing_the_same_file_again_stores_every_value_once(store, tmp_path):
    long_frame(10).to_parquet(tmp_path / "l.parquet", index=False)
    cols = SensorColumns(time="ts", machine="asset", sensor="tag", value="reading")
    for _ in range(2):
        import_sensors(store, tmp_path / "l.parquet", cols, batch_rows=7)
    assert len(store.read("sensor")) == 40


def test_the_cli_reports_progress_and_where_each_sensor_went(tmp_path, monkeypatch, capsys):
    from pdm.cli import main

    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    monkeypatch.setenv("PDM_STORE__PATH", str(tmp_path / "s.duckdb"))
    long_frame(50).to_csv(tmp_path / "l.csv", index=False)
    argv = ["import", "sensors", str(tmp_path / "l.csv"), "--time-col", "ts", "--machine-col", "asset",
            "--sensor-col", "tag", "--value-col", "reading", "--map", "pres*=vibration.rms", "--chunk-rows", "50"]
    assert main([*argv, "--dry-run"]) == 0
    assert "would write 200 values for 2 machines" in capsys.readouterr().out
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "checked l.csv: 50 rows (" in err and "checked l.csv: 200 rows (100%)" in err and "wrote l.csv: 200 rows" in err
    assert "flow -> sensor.value" in out and "pressure -> vibration.rms" in out
