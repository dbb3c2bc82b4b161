"""Things that are not failures: what each does to the data, and that it is labelled as what it is.

The data checks put one event on a machine of an otherwise quiet plant and
compare the day with the same day without it, so each effect is exact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pdm.store.embedded import EmbeddedStore
from sensors_sim.config import FAULT_MODES, fleet_config
from sensors_sim.plant import PlantSimulator
from sensors_sim.run import TAGS, labels, write_frames
from sensors_sim.timeline import NS_DAY, NS_HOUR, NS_MIN, NUISANCE_KINDS, Event, fleet_timeline
from tests.sim.plantdata import START, between, fleet, generate, ts

T0 = int(START.value)
DAY1 = T0 + NS_DAY  # events sit on day 1, generated on its own
MACHINE = "pump-1"


def quiet_plant() -> PlantSimulator:
    return PlantSimulator(fleet([
        {"id": MACHINE, "type": "centrifugal_pump", "random_faults": False},
        {"id": "fan-2", "type": "fan", "random_faults": False},
    ]))


def with_event(kind: str, start: int, end: int, sensor: str = "", **params) -> tuple[dict, dict]:
    """Day 1 without and with one nuisance event on pump-1."""
    clean = quiet_plant().day(1)
    sim = quiet_plant()
    event = Event(MACHINE, kind, start, end, False, (sensor,) if sensor else (), params=params)
    sim.machines[0].events.append(event)
    return clean, sim.day(1)


def rows(frame: pd.DataFrame, sensor: str | None = None, machine: str = MACHINE) -> pd.DataFrame:
    sel = frame["machine"] == machine
    if sensor is not None:
        sel &= frame["sensor"] == sensor
    return frame[sel]


def series_key(frame: pd.DataFrame, meas: str) -> pd.DataFrame:
    keys = [t for t in TAGS[meas] if t in frame.columns]
    return frame[keys].assign(time=frame.index.asi8)


# --------------------------------------------------------------- sensor faults
def test_a_dropout_leaves_a_gap_in_that_sensor_only():
    lo, hi = DAY1 + 3 * NS_HOUR, DAY1 + 5 * NS_HOUR
    clean, got = with_event("dropout", lo, hi, "temperature.bearing.celsius")
    gone = between(rows(got["temperature"], "bearing"), ts(lo), ts(hi))
    assert gone.empty
    assert len(rows(got["temperature"], "bearing")) == len(rows(clean["temperature"], "bearing")) - 120
    for sensor in ("winding", "casing", "ambient"):
        pd.testing.assert_frame_equal(rows(got["temperature"], sensor), rows(clean["temperature"], sensor))
    pd.testing.assert_frame_equal(rows(got["temperature"], machine="fan-2"), rows(clean["temperature"], machine="fan-2"))


def test_a_vibration_dropout_loses_the_whole_measurement_point():
    lo, hi = DAY1 + 10 * NS_HOUR, DAY1 + 11 * NS_HOUR
    clean, got = with_event("dropout", lo, hi, "vibration.nde.rms")
    assert between(rows(got["vibration"], "nde"), ts(lo), ts(hi)).empty
    assert len(between(rows(clean["vibration"], "nde"), ts(lo), ts(hi))) == 6
    pd.testing.assert_frame_equal(rows(got["vibration"], "de"), rows(clean["vibration"], "de"))


def test_a_spike_is_one_implausible_reading():
    at = DAY1 + 7 * NS_HOUR + 30 * NS_MIN
    clean, got = with_event("spike", at, at + NS_MIN, "temperature.winding.celsius", factor=5.0)
    diff = rows(got["temperature"], "winding")["celsius"] - rows(clean["temperature"], "winding")["celsius"]
    assert diff[ts(at)] == pytest.approx(30.0)
    assert (diff.drop(ts(at)) == 0).all()


def test_a_vibration_spike_multiplies_rms_and_peak_of_one_burst():
    at = DAY1 + 9 * NS_HOUR
    clean, got = with_event("spike", at, at + NS_MIN, "vibration.de.rms", factor=8.0)
    g, c = rows(got["vibration"], "de"), rows(clean["vibration"], "de")
    assert g.loc[ts(at), "rms"] == pytest.approx(8 * c.loc[ts(at), "rms"])
    assert g.loc[ts(at), "peak"] == pytest.approx(8 * c.loc[ts(at), "peak"])
    pd.testing.assert_frame_equal(g.drop(ts(at)), c.drop(ts(at)))


def test_a_stuck_sensor_repeats_its_last_value_then_recovers():
    lo, hi = DAY1 + 12 * NS_HOUR, DAY1 + 16 * NS_HOUR
    clean, got = with_event("stuck", lo, hi, "temperature.bearing.celsius")
    g = rows(got["temperature"], "bearing")["celsius"]
    c = rows(clean["temperature"], "bearing")["celsius"]
    stuck = between(g.to_frame(), ts(lo), ts(hi))["celsius"]
    assert stuck.nunique() == 1 and stuck.iloc[0] == c[ts(lo)]
    assert between(c.to_frame(), ts(lo), ts(hi))["celsius"].nunique() > 10, "the real value moved meanwhile"
    after = between(g.to_frame(), ts(hi), ts(DAY1 + NS_DAY))["celsius"]
    pd.testing.assert_series_equal(after, between(c.to_frame(), ts(hi), ts(DAY1 + NS_DAY))["celsius"])


def test_a_replaced_temperature_sensor_reads_with_an_offset_from_then_on_on_later_days_too():
    at = DAY1 - 6 * NS_HOUR  # replaced on day 0: day 1 is offset all day long
    clean, got = with_event("sensor_replaced", at, at + NS_HOUR, "temperature.ambient.celsius", offset=-2.2)
    diff = rows(got["temperature"], "ambient")["celsius"] - rows(clean["temperature"], "ambient")["celsius"]
    assert np.allclose(diff, -2.2, atol=1e-9)
    assert len(diff) == 1440


def test_a_replaced_accelerometer_has_another_gain():
    at = DAY1 + 14 * NS_HOUR
    clean, got = with_event("sensor_replaced", at, at + NS_HOUR, "vibration.axial.rms", gain=1.25)
    g, c = rows(got["vibration"], "axial"), rows(clean["vibration"], "axial")
    ratio = (g["band_1x"] / c["band_1x"]).dropna()
    assert np.allclose(ratio[ratio.index >= ts(at)], 1.25) and np.allclose(ratio[ratio.index < ts(at)], 1.0)
    pd.testing.assert_series_equal(g["kurtosis"], c["kurtosis"])  # shape statistics do not scale


def test_clock_skew_shifts_a_gateways_timestamps_not_its_values():
    lo, hi = DAY1 + 2 * NS_HOUR, DAY1 + 4 * NS_HOUR
    clean, got = with_event("clock_skew", lo, hi, skew_s=95)
    g, c = rows(got["process"]), rows(clean["process"])
    skewed = g[g.index.second != 0]
    assert len(skewed) == 120 and (skewed.index.second == 35).all()
    assert skewed.index[0] == ts(lo + 95 * 10**9) and skewed.index[-1] < ts(hi + 95 * 10**9)
    expected = between(c, ts(lo), ts(hi))
    np.testing.assert_array_equal(skewed["load_pct"].to_numpy(), expected["load_pct"].to_numpy())
    pd.testing.assert_frame_equal(rows(got["process"], machine="fan-2"), rows(clean["process"], machine="fan-2"))


def test_duplicates_are_in_the_raw_data_but_stored_once(tmp_path):
    lo, hi = DAY1 + 20 * NS_HOUR, DAY1 + 22 * NS_HOUR
    clean, got = with_event("duplicates", lo, hi)
    for meas in ("process", "temperature", "vibration"):
        keys = series_key(got[meas], meas)
        assert keys.duplicated().sum() == len(between(rows(clean[meas]), ts(lo), ts(hi))), meas
        assert not series_key(clean[meas], meas).duplicated().any()
    # Re-sent late and out of order: after the day's points, newest first.
    tail = rows(got["process"]).iloc[-120:]
    assert tail.index.is_monotonic_decreasing and tail.index[0] == ts(hi - NS_MIN)
    store = EmbeddedStore(tmp_path / "s.duckdb")
    write_frames(store, got)
    for meas in ("process", "temperature", "vibration"):
        stored = store.read(meas)
        assert len(stored) == len(clean[meas]), meas
        assert not series_key(stored, meas).duplicated().any()


# ------------------------------------------------- planned stops, new regimes
@pytest.fixture(scope="module")
def busy_plant():
    """A plant with frequent maintenance and regime changes (and nothing else), 12 days."""
    nuisance = {"maintenance_per_year": 120.0, "regime_changes_per_line_year": 80.0,
                "sensor_replaced_per_year": 0, "dropouts_per_month": 0, "spikes_per_month": 0,
                "stuck_per_year": 0, "clock_skew_per_year": 0, "duplicates_per_month": 0}
    sim = PlantSimulator(fleet([{"id": f"pump-{i}", "type": "centrifugal_pump", "random_faults": False}
                                for i in range(3)], nuisance=nuisance, seed=5))
    return sim, generate(sim, range(12))


def test_planned_maintenance_stops_the_machine_and_shifts_its_baseline_but_is_no_failure(busy_plant):
    sim, frames = busy_plant
    t_end = T0 + 12 * NS_DAY
    everything = sim.events()
    maint = [e for e in everything if e.kind == "maintenance" and T0 + 2 * NS_DAY < e.start and e.end < t_end - 2 * NS_DAY]
    assert maint, "the busy plant has maintenance in the generated span"
    for e in maint:
        assert not e.is_failure and e.repair_end is None

    def alone(e: Event) -> bool:
        return not any(x.machine == e.machine and x.kind == "maintenance" and x is not e
                       and x.start < e.end + 2 * NS_DAY and e.start - 2 * NS_DAY < x.end for x in everything)
    logs = frames["operator_log"]
    maint = [e for e in maint if alone(e)]
    assert maint, "some maintenance is two days away from the next one"
    for e in maint:
        p = between(rows(frames["process"], machine=e.machine), ts(e.start), ts(e.end))
        minutes = np.arange(T0, t_end, NS_MIN)
        assert not p["running"].any() and len(p) == ((minutes >= e.start) & (minutes < e.end)).sum()
        mine = logs[logs["machine"] == e.machine]
        assert mine.loc[mine.index == ts(e.start), "message"].str.startswith("planned maintenance").any()
        assert not mine["message"].str.contains("breakdown").any()
        # At equal load, the 1x level after differs from before by the maintenance's shift.
        v = rows(frames["vibration"], "de", machine=e.machine)
        v = v.join(rows(frames["process"], machine=e.machine)[["running", "load_pct"]])
        v = v[v["running"].astype(bool)]
        before = between(v, ts(e.start - 2 * NS_DAY), ts(e.start))
        after = between(v, ts(e.end + NS_HOUR), ts(e.end + 2 * NS_DAY))
        load = v["load_pct"].median()
        level = [np.polyval(np.polyfit(w["load_pct"], w["band_1x"], 1), load) for w in (before, after)]
        assert level[1] / level[0] == pytest.approx(e.params["shift"], rel=0.02)


def test_a_regime_change_moves_the_load_of_the_whole_line_for_days(busy_plant):
    sim, frames = busy_plant
    regimes = [e for e in sim.events() if e.kind == "regime_change" and e.machine == "pump-0"]
    assert all(a.end <= b.start for a, b in zip(regimes, regimes[1:], strict=False)), "one product at a time"
    starting = [e for e in regimes if T0 + 2 * NS_DAY < e.start < T0 + 10 * NS_DAY]
    assert starting, "the busy plant's line changes regime within the generated span"
    e = starting[0]
    assert not e.is_failure
    # Every machine of the line carries the same regime change, labelled as such.
    same = [x for x in sim.events() if x.kind == "regime_change" and x.start == e.start]
    assert sorted(x.machine for x in same) == ["pump-0", "pump-1", "pump-2"]
    p = rows(frames["process"], machine="pump-0")
    p = p[p["running"].astype(bool)]
    before = [x for x in regimes if x.end <= e.start]
    lo = max([T0, *(x.end for x in before)])  # back to the normal regime since
    inside = between(p, ts(e.start + NS_HOUR), ts(e.end))["load_pct"].median()
    outside = between(p, ts(lo + NS_HOUR), ts(e.start))["load_pct"].median()
    assert inside / outside == pytest.approx(e.params["load_factor"], rel=0.08)


# ------------------------------------------------------------------- labels
@pytest.fixture(scope="module")
def ten_years():
    """Every event of a 30-machine fleet over the ten-year horizon (no data generated)."""
    config = fleet_config(machines=30, seed=9)
    return config, [e for evs in fleet_timeline(config).values() for e in evs]


def test_nuisance_events_are_never_labelled_as_failures(ten_years):
    _, events = ten_years
    kinds = {e.kind for e in events}
    assert set(NUISANCE_KINDS) <= kinds, "every kind of nuisance occurs"
    for e in events:
        if e.kind in NUISANCE_KINDS:
            assert not e.is_failure and e.repair_end is None, e
        else:
            assert e.kind in FAULT_MODES and e.is_failure, e


def test_each_nuisance_names_what_it_touches(ten_years):
    _, events = ten_years
    for e in events:
        if e.kind in ("dropout", "spike", "stuck", "sensor_replaced"):
            (channel,) = e.sensors
            meas, sensor, field = channel.split(".")
            assert meas in ("temperature", "vibration") and sensor and field, e
        elif not e.is_failure:
            assert e.sensors == (), e


def test_failures_carry_onset_failure_repair_and_root_cause(ten_years):
    config, events = ten_years
    failures = [e for e in events if e.is_failure]
    assert {e.kind for e in failures} == set(FAULT_MODES)
    for e in failures:
        assert e.start < e.end < e.repair_end
        assert e.sensors, e
    # Faults of one machine never overlap, repairs included.
    for m in config.machines():
        spans = sorted((e.start, e.repair_end) for e in failures if e.machine == m.id)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))


def test_maintenance_is_never_planned_in_the_middle_of_a_fault(ten_years):
    _, events = ten_years
    faults = [e for e in events if e.is_failure]
    for e in events:
        if e.kind == "maintenance":
            assert not any(f.machine == e.machine and f.start < e.end and e.start < f.repair_end for f in faults)


def test_the_label_table_keeps_failures_and_nuisances_apart(ten_years):
    config, _ = ten_years
    sim = PlantSimulator(config)
    truth = labels(sim, sim.t0, sim.t0 + 365 * NS_DAY)
    fails, others = truth[truth["is_failure"]], truth[~truth["is_failure"]]
    assert set(fails["kind"]) <= set(FAULT_MODES) and set(others["kind"]) <= set(NUISANCE_KINDS)
    assert fails["failure"].notna().all() and (fails["root_cause"] != "").all() and (fails["affected"] == "").all()
    assert others["failure"].isna().all() and (others["root_cause"] == "").all()
