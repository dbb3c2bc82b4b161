"""The store contract: every back end behaves the same on every case here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdm.store import InvalidNameError, Point, PointsRejectedError, Store

T0 = pd.Timestamp("2024-03-01T00:00:00Z")


def vib_frame(machines=("m1", "m2"), n=6, step="10min", start=T0) -> pd.DataFrame:
    """A small vibration frame: n points per machine, two sensors' worth of fields."""
    rows = []
    for j, m in enumerate(machines):
        for i in range(n):
            rows.append(
                {
                    "time": start + pd.Timedelta(step) * i,
                    "plant": "p1",
                    "line": "L1",
                    "machine": m,
                    "sensor": "de",
                    "rms": 1.0 + i / 10 + j,
                    "peak": 3.0 + i + j * 0.5,
                }
            )
    return pd.DataFrame(rows).set_index("time")


TAGS = ["plant", "line", "machine", "sensor"]


def write_vib(store: Store, frame: pd.DataFrame | None = None):
    frame = vib_frame() if frame is None else frame
    return store.write(frame, "vibration", TAGS)


# ------------------------------------------------------------------ round trip
def test_a_frame_written_reads_back_with_utc_nanosecond_index_and_tag_columns(store: Store):
    frame = vib_frame()
    result = write_vib(store, frame)
    assert result.written == len(frame) and result.rejected == []

    got = store.read("vibration", ["m1", "m2"], T0, T0 + pd.Timedelta("1D"))

    assert isinstance(got.index, pd.DatetimeIndex)
    assert str(got.index.tz) == "UTC" and got.index.unit == "ns" and got.index.name == "time"
    assert list(got.columns) == ["line", "machine", "plant", "sensor", "peak", "rms"]
    assert got["rms"].dtype == np.float64
    expected = frame.sort_values(["time", "machine"], kind="stable")
    np.testing.assert_array_equal(got.index.asi8, expected.index.as_unit("ns").asi8)
    assert got["machine"].tolist() == expected["machine"].tolist()
    np.testing.assert_array_equal(got["rms"].to_numpy(), expected["rms"].to_numpy())


def test_reading_one_machine_returns_only_that_machine(store: Store):
    write_vib(store)
    got = store.read("vibration", "m2", T0, T0 + pd.Timedelta("1D"))
    assert set(got["machine"]) == {"m2"} and len(got) == 6


def test_the_time_range_is_start_inclusive_stop_exclusive(store: Store):
    write_vib(store)
    got = store.read("vibration", "m1", T0 + pd.Timedelta("10min"), T0 + pd.Timedelta("30min"))
    assert list(got.index) == [T0 + pd.Timedelta("10min"), T0 + pd.Timedelta("20min")]


def test_integer_boolean_and_string_fields_keep_their_types(store: Store):
    t = [T0 + pd.Timedelta(seconds=i) for i in range(3)]
    store.write(
        [
            Point("process", {"machine": "m1"}, {"speed_rpm": 1480.5, "running": True}, t[0]),
            Point("process", {"machine": "m1"}, {"speed_rpm": 0.0, "running": False}, t[1]),
            Point("operator_log", {"machine": "m1", "event_type": "inspection"},
                  {"message": "all fine", "severity": 2}, t[2]),
        ]
    )
    proc = store.read("process", "m1")
    assert proc["running"].dtype == "boolean" and proc["running"].tolist() == [True, False]
    log = store.read("operator_log", "m1")
    assert log["severity"].dtype == "Int64" and log["severity"].tolist() == [2]
    assert log["message"].tolist() == ["all fine"]


def test_several_measurements_at_once_come_with_a_measurement_column(store: Store):
    write_vib(store)
    store.write([Point("temperature", {"machine": "m1", "sensor": "bearing"}, {"celsius": 41.5}, T0)])
    got = store.read(["vibration", "temperature"], "m1")
    assert got.columns[0] == "measurement"
    assert set(got["measurement"]) == {"vibration", "temperature"}
    assert got.index.is_monotonic_increasing


# ----------------------------------------------------------------- idempotence
def test_writing_the_same_points_twice_stores_them_once(store: Store):
    write_vib(store)
    write_vib(store)
    got = store.read("vibration")
    assert len(got) == len(vib_frame())


def test_a_rewrite_with_other_fields_merges_into_the_stored_point(store: Store):
    store.write([Point("vibration", {"machine": "m1", "sensor": "de"}, {"rms": 1.5}, T0)])
    store.write([Point("vibration", {"machine": "m1", "sensor": "de"}, {"kurtosis": 3.2}, T0)])
    got = store.read("vibration", "m1")
    assert len(got) == 1
    assert got["rms"].iloc[0] == 1.5 and got["kurtosis"].iloc[0] == 3.2


def test_out_of_order_and_duplicate_timestamps_read_back_ordered_last_write_wins(store: Store):
    times = [T0 + pd.Timedelta(minutes=m) for m in (5, 1, 3, 1)]
    frame = pd.DataFrame({"machine": "m1", "rms": [5.0, 1.0, 3.0, 1.25]}, index=pd.DatetimeIndex(times))
    result = store.write(frame, "vibration", ["machine"])
    assert result.rejected == []
    got = store.read("vibration", "m1")
    assert list(got.index) == sorted(set(times))
    assert got["rms"].tolist() == [1.25, 3.0, 5.0]


# ----------------------------------------------------------- missing and empty
def test_nan_fields_read_back_as_missing(store: Store):
    frame = pd.DataFrame(
        {"machine": "m1", "rms": [1.0, np.nan, 3.0], "peak": [np.nan, 2.0, 4.0]},
        index=pd.date_range(T0, periods=3, freq="1min"),
    )
    store.write(frame, "vibration", ["machine"])
    got = store.read("vibration", "m1")
    assert len(got) == 3
    assert np.isnan(got["rms"].iloc[1]) and np.isnan(got["peak"].iloc[0])
    assert got["rms"].iloc[2] == 3.0


def test_an_empty_frame_writes_nothing_and_an_empty_read_has_the_layout(store: Store):
    empty = vib_frame().iloc[:0]
    assert store.write(empty, "vibration", TAGS).written == 0
    got = store.read("vibration", "m1", T0, T0 + pd.Timedelta("1h"))
    assert got.empty and isinstance(got.index, pd.DatetimeIndex) and str(got.index.tz) == "UTC"


# -------------------------------------------------------------- awkward values
AWKWARD_TAGS = ["line 3, east", "a=b", "Küche ☕", "naïve, spaced = yes", "日本語"]


def test_tag_values_with_spaces_commas_equals_and_unicode_round_trip(store: Store):
    points = [
        Point("vibration", {"machine": f"m{i}", "line": v}, {"rms": float(i)}, T0)
        for i, v in enumerate(AWKWARD_TAGS)
    ]
    store.write(points)
    got = store.read("vibration")
    assert sorted(got["line"]) == sorted(AWKWARD_TAGS)
    assert sorted(store.machines(["vibration"])) == [f"m{i}" for i in range(len(AWKWARD_TAGS))]


def test_log_messages_with_quotes_backslashes_and_unicode_round_trip(store: Store):
    messages = ['pump "P-7" is hot to touch', "path C:\\logs\\x", "Lager läuft unrund ⚠", "a, b = c"]
    store.write(
        [
            Point("operator_log", {"machine": "m1", "operator": "Zoë O'Neil"}, {"message": m}, T0 + pd.Timedelta(seconds=i))
            for i, m in enumerate(messages)
        ]
    )
    got = store.read("operator_log", "m1")
    assert got["message"].tolist() == messages
    assert set(got["operator"]) == {"Zoë O'Neil"}


# ---------------------------------------------------------------- bad points
def test_malformed_points_are_rejected_by_name_and_the_rest_is_written(store: Store):
    points = [
        Point("vibration", {"machine": "good-1"}, {"rms": 1.0}, T0),
        Point("vibration", {"machine": "no-fields"}, {}, T0),
        Point("vibration", {"machine": "text-in-rms"}, {"rms": "loud"}, T0),
        Point("vibration", {"machine": "bad-time"}, {"rms": 2.0}, "yesterday-ish"),
        Point("vibration", {"machine": "good-2"}, {"rms": 3.0}, T0),
    ]
    with pytest.raises(PointsRejectedError) as err:
        store.write(points)
    rejected = err.value.rejected
    assert [r.index for r in rejected] == [1, 2, 3]
    assert "no-fields" in rejected[0].point and "no fields" in rejected[0].reason
    assert "text-in-rms" in rejected[1].point and "rms" in rejected[1].reason
    assert "bad-time" in rejected[2].point and "timestamp" in rejected[2].reason
    assert err.value.written == 2
    assert "text-in-rms" in str(err.value)
    assert store.machines() == ["good-1", "good-2"]


def test_malformed_rows_of_a_frame_are_rejected_and_the_rest_is_written(store: Store):
    frame = pd.DataFrame(
        {
            "time": [T0, "not a time", T0 + pd.Timedelta("1min"), T0 + pd.Timedelta("2min")],
            "machine": ["m1", "m1", "m1", "m1"],
            "rms": [1.0, 2.0, "n/a", 4.0],
        }
    )
    result = store.write(frame, "vibration", ["machine"], strict=False)
    assert [r.index for r in result.rejected] == [1, 2]
    assert result.written == 2
    assert store.read("vibration", "m1")["rms"].tolist() == [1.0, 4.0]


def test_a_field_of_another_type_than_stored_is_rejected(store: Store):
    store.write([Point("custom", {"machine": "m1"}, {"level": 1.5}, T0)])
    with pytest.raises(PointsRejectedError) as err:
        store.write([Point("custom", {"machine": "m1"}, {"level": "high"}, T0 + pd.Timedelta("1s"))])
    assert "level" in str(err.value)
    assert len(store.read("custom")) == 1


# ----------------------------------------------------------------- injection
INJECTIONS = ["x' OR '1'='1", 'a") |> drop(columns: ["_value"]) //', "m1; DROP DATABASE pdm", "m1 -- comment", 'back\\slash"quote']


def test_machine_ids_that_look_like_query_syntax_match_only_themselves(store: Store):
    store.write([Point("vibration", {"machine": m}, {"rms": float(i)}, T0) for i, m in enumerate(INJECTIONS)])
    store.write([Point("vibration", {"machine": "m1"}, {"rms": 99.0}, T0)])
    for i, m in enumerate(INJECTIONS):
        got = store.read("vibration", m)
        assert got["machine"].tolist() == [m]
        assert got["rms"].tolist() == [float(i)]
    assert store.read("vibration", ["nobody"]).empty


@pytest.mark.parametrize("name", ['vib"ration', "vib'; DROP", "a |> b", "x -- y", "", "time"])
def test_measurement_names_that_could_inject_are_refused(store: Store, name: str):
    with pytest.raises(InvalidNameError):
        store.read(name)
    with pytest.raises(InvalidNameError):
        store.write(vib_frame(), name, TAGS)
    with pytest.raises(InvalidNameError):
        store.delete(name, T0, T0 + pd.Timedelta("1h"))


# ------------------------------------------------------------------ catalogue
def test_machines_and_sensors_are_listed(store: Store):
    write_vib(store)
    store.write([Point("temperature", {"machine": "m3", "sensor": "winding"}, {"celsius": 60.0}, T0)])
    store.write([Point("process", {"machine": "m3"}, {"load_pct": 80.0}, T0)])
    assert store.machines() == ["m1", "m2", "m3"]
    assert store.machines(["temperature"]) == ["m3"]
    sensors = store.sensors("m3")
    assert set(map(tuple, sensors.to_numpy().tolist())) == {
        ("m3", "temperature", "winding", "celsius"),
        ("m3", "process", "", "load_pct"),
    }
    assert set(store.measurements()) == {"vibration", "temperature", "process"}


# ---------------------------------------------------------------- downsample
def test_downsampling_happens_per_interval_with_mean_and_max(store: Store):
    frame = pd.DataFrame(
        {"machine": "m1", "rms": np.arange(12, dtype=float)},
        index=pd.date_range(T0, periods=12, freq="10min"),
    )
    store.write(frame, "vibration", ["machine"])
    mean = store.read("vibration", "m1", T0, T0 + pd.Timedelta("2h"), every="1h", agg="mean")
    assert list(mean.index) == [T0, T0 + pd.Timedelta("1h")]
    assert mean["rms"].tolist() == [2.5, 8.5]
    peak = store.read("vibration", "m1", T0, T0 + pd.Timedelta("2h"), every="1h", agg="max")
    assert peak["rms"].tolist() == [5.0, 11.0]


# -------------------------------------------------------------------- delete
def test_deleting_a_range_for_one_machine_leaves_the_rest(store: Store):
    write_vib(store)
    store.delete("vibration", T0, T0 + pd.Timedelta("30min"), machines="m1")
    m1 = store.read("vibration", "m1")
    assert list(m1.index) == [T0 + pd.Timedelta(minutes=m) for m in (30, 40, 50)]
    assert len(store.read("vibration", "m2")) == 6


def test_delete_then_rewrite_gives_the_same_data(store: Store):
    write_vib(store)
    before = store.read("vibration")
    store.delete("vibration", T0, T0 + pd.Timedelta("1D"))
    assert store.read("vibration").empty
    write_vib(store)
    pd.testing.assert_frame_equal(store.read("vibration"), before)


# ------------------------------------------------------------------ chunking
def test_a_large_read_streams_in_chunks_that_add_up(store: Store):
    frame = vib_frame(machines=("m1", "m2"), n=500, step="1min")
    write_vib(store, frame)
    chunks = list(store.iter_read("vibration", None, chunk_rows=150))
    assert len(chunks) >= 4
    assert all(len(c) <= 150 for c in chunks)
    assert sum(len(c) for c in chunks) == 1000
    whole = store.read("vibration")
    assert len(whole) == 1000 and whole.index.is_monotonic_increasing


# ------------------------------------------------------------------ property
tag_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() == s and s != "")
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(machine=tag_text, line=tag_text, values=st.lists(finite, min_size=1, max_size=5))
def test_any_tag_text_and_float_round_trips_exactly(store: Store, machine: str, line: str, values):
    times = pd.date_range(T0, periods=len(values), freq="1s")
    store.delete("prop", "1970-01-01", "2100-01-01")
    frame = pd.DataFrame({"machine": machine, "line": line, "v": values}, index=times)
    store.write(frame, "prop", ["machine", "line"])
    got = store.read("prop", machine)
    assert got["line"].tolist() == [line] * len(values)
    assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(got["v"], values, strict=True))


def test_large_integers_round_trip_without_losing_bits(store: Store):
    big = 2**60 + 1
    store.write([
        Point("counters", {"machine": "m1"}, {"cycles": big}, T0),
        Point("counters", {"machine": "m1"}, {"other": 1.5}, T0 + pd.Timedelta("1s")),
    ])
    got = store.read("counters", "m1")
    assert got["cycles"].iloc[0] == big


def test_downsampling_aggregates_numeric_fields_and_leaves_out_text_and_flags(store: Store):
    times = pd.date_range(T0, periods=6, freq="20min")
    frame = pd.DataFrame(
        {"machine": "m1", "load_pct": [10.0, 20, 30, 40, 50, 60], "cycles": [1, 2, 3, 4, 5, 6],
         "running": [True, False, True, True, True, True], "note": list("abcdef")},
        index=times,
    )
    store.write(frame, "process", ["machine"])
    got = store.read("process", "m1", T0, T0 + pd.Timedelta("2h"), every="1h", agg="mean")
    assert sorted(c for c in got.columns if c != "machine") == ["cycles", "load_pct"]
    assert got["load_pct"].tolist() == [20.0, 50.0]
    assert got["cycles"].tolist() == [2.0, 5.0]
