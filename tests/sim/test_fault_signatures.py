"""Each fault leaves its signature before the failure, and none while the machine is healthy.

Checked statistically against the same machine's healthy days (before the
fault's onset), on the rows where the machine runs: medians, and a one-sided
Mann-Whitney U test that the late values are larger. Temperatures are compared
at equal load (see ``plantdata.rise_over_healthy``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from tests.sim.plantdata import FAULT_MACHINES, Plant, between, rise_over_healthy, ts

DAY = pd.Timedelta(days=1)


def windows(plant: Plant, machine: str) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    e = plant.failure(machine)
    return ts(e.start), ts(e.end), ts(e.repair_end)


def feature(plant: Plant, machine: str, point: str, name: str, lo, hi) -> pd.Series:
    v = between(plant.vibration(machine, point), lo, hi)
    return v.loc[v["running"].astype(bool), name]


def healthy_and_late(plant: Plant, mode: str, point: str, name: str, late_days: float = 3.0):
    """(healthy values, values in the last ``late_days`` before the failure) of one feature."""
    machine = FAULT_MACHINES[mode][0]
    onset, failure, _ = windows(plant, machine)
    healthy = feature(plant, machine, point, name, plant.config.start, onset)
    late = feature(plant, machine, point, name, failure - late_days * DAY, failure)
    return healthy, late


def clearly_above(late: pd.Series, healthy: pd.Series, factor: float) -> None:
    """The late values sit well above the healthy ones: a factor on the median, and not by chance."""
    assert len(healthy) > 200 and len(late) > 100
    ratio = late.median() / healthy.median()
    assert ratio >= factor, f"median only {ratio:.2f}x the healthy level (want >= {factor}x)"
    assert mannwhitneyu(late, healthy, alternative="greater").pvalue < 1e-9


def unchanged(late: pd.Series, healthy: pd.Series, tolerance: float = 0.1) -> None:
    ratio = late.median() / healthy.median()
    assert abs(ratio - 1) <= tolerance, f"moved by {ratio - 1:+.0%} (want within {tolerance:.0%})"


def steady_over_healthy_days(plant: Plant, machine: str, point: str, name: str, tolerance: float = 0.25) -> None:
    """No healthy day's median strays from the healthy median: the signature is absent then."""
    onset, _, _ = windows(plant, machine)
    healthy = feature(plant, machine, point, name, plant.config.start, onset)
    daily = healthy.groupby(healthy.index.floor("D")).median()
    assert (abs(daily / healthy.median() - 1) <= tolerance).all(), daily.to_dict()


def back_to_healthy_after_repair(plant: Plant, machine: str, point: str, name: str, tolerance: float = 0.2) -> None:
    """After the repair the level is the healthy one again, up to the small baseline shift of a repair."""
    onset, _, repaired = windows(plant, machine)
    healthy = feature(plant, machine, point, name, plant.config.start, onset)
    after = feature(plant, machine, point, name, repaired + pd.Timedelta(hours=2), repaired + 3 * DAY)
    assert len(after) > 100
    unchanged(after, healthy, tolerance)


def temperature_rise(plant: Plant, mode: str, sensor: str, deg: int) -> pd.Series:
    """Rise of ``sensor`` over what the healthy machine shows at the same load (K), steady rows."""
    machine = FAULT_MACHINES[mode][0]
    onset, _, _ = windows(plant, machine)
    temps = plant.temperatures(machine)
    return rise_over_healthy(temps, sensor, pd.Series(temps.index < onset, index=temps.index), deg)


# ------------------------------------------------------------------ bearing wear
def test_bearing_wear_raises_defect_band_energy_at_the_damaged_bearing(fault_plant):
    e = fault_plant.failure("pump-bw")
    point = e.params["point"]
    assert e.sensors[0] == f"vibration.{point}.band_bpfo", "the root cause names the damaged bearing's defect band"
    healthy, late = healthy_and_late(fault_plant, "bearing_wear", point, "band_bpfo")
    clearly_above(late, healthy, factor=10)
    steady_over_healthy_days(fault_plant, "pump-bw", point, "band_bpfo")
    back_to_healthy_after_repair(fault_plant, "pump-bw", point, "band_bpfo")


def test_bearing_wear_makes_the_signal_impulsive_kurtosis_rises(fault_plant):
    point = fault_plant.failure("pump-bw").params["point"]
    healthy, late = healthy_and_late(fault_plant, "bearing_wear", point, "kurtosis")
    clearly_above(late, healthy, factor=1.3)
    steady_over_healthy_days(fault_plant, "pump-bw", point, "kurtosis", tolerance=0.1)


def test_bearing_wear_grows_roughly_exponentially_from_onset(fault_plant):
    onset, failure, _ = windows(fault_plant, "pump-bw")
    point = fault_plant.failure("pump-bw").params["point"]
    bpfo = feature(fault_plant, "pump-bw", point, "band_bpfo", onset, failure)
    thirds = [float(np.median(part)) for part in np.array_split(bpfo.to_numpy(), 3)]
    # Each third of the degradation is well above the one before, and the
    # last step is the biggest: accelerating growth, not a linear ramp.
    assert thirds[0] < thirds[1] < thirds[2]
    assert thirds[2] - thirds[1] > thirds[1] - thirds[0]


def test_bearing_temperature_rises_only_in_the_last_days_after_the_vibration(fault_plant):
    e = fault_plant.failure("pump-bw")
    onset, failure, _ = windows(fault_plant, "pump-bw")
    assert 1 <= e.params["temp_days"] <= 3
    rise = temperature_rise(fault_plant, "bearing_wear", "bearing", deg=1)
    early = between(rise, onset, failure - 3 * DAY)
    last_hours = between(rise, failure - pd.Timedelta(hours=12), failure)
    assert abs(early.median()) < 0.5, "no warming while the wear is still only in the vibration"
    assert last_hours.median() > 5
    # By the time the bearing is warm, the defect band has long been up.
    point = e.params["point"]
    healthy = feature(fault_plant, "pump-bw", point, "band_bpfo", fault_plant.config.start, onset)
    before_warming = feature(fault_plant, "pump-bw", point, "band_bpfo", failure - 4 * DAY, failure - 3 * DAY)
    assert before_warming.median() > 3 * healthy.median()


def test_bearing_wear_leaves_the_winding_alone(fault_plant):
    onset, failure, _ = windows(fault_plant, "pump-bw")
    rise = temperature_rise(fault_plant, "bearing_wear", "winding", deg=2)
    assert abs(between(rise, failure - 3 * DAY, failure).median()) < 0.5


# ------------------------------------------------------------- lubrication loss
def test_lubrication_loss_raises_high_frequency_noise_and_bearing_temperature(fault_plant):
    assert fault_plant.failure("fan-lub").sensors == ("vibration.de.band_hf", "vibration.nde.band_hf",
                                                      "temperature.bearing.celsius")
    for point in ("de", "nde"):  # both radial points carry it: both are in the ground truth
        healthy, late = healthy_and_late(fault_plant, "lubrication_loss", point, "band_hf")
        clearly_above(late, healthy, factor=3)
    steady_over_healthy_days(fault_plant, "fan-lub", "de", "band_hf")
    back_to_healthy_after_repair(fault_plant, "fan-lub", "de", "band_hf")
    onset, failure, _ = windows(fault_plant, "fan-lub")
    rise = temperature_rise(fault_plant, "lubrication_loss", "bearing", deg=1)
    assert abs(between(rise, fault_plant.config.start, onset).median()) < 0.3
    assert between(rise, failure - 3 * DAY, failure).median() > 5


# ----------------------------------------------------------------- misalignment
def test_misalignment_shows_at_twice_shaft_speed_strongest_in_the_axial_direction(fault_plant):
    assert fault_plant.failure("gbx-mis").sensors[0] == "vibration.axial.band_2x"
    healthy, late = healthy_and_late(fault_plant, "misalignment", "axial", "band_2x")
    clearly_above(late, healthy, factor=3)
    steady_over_healthy_days(fault_plant, "gbx-mis", "axial", "band_2x")
    back_to_healthy_after_repair(fault_plant, "gbx-mis", "axial", "band_2x")
    radial_healthy, radial_late = healthy_and_late(fault_plant, "misalignment", "de", "band_2x")
    assert late.median() / healthy.median() > 2 * radial_late.median() / radial_healthy.median()


def test_misalignment_does_not_touch_the_1x_band(fault_plant):
    unchanged(*healthy_and_late(fault_plant, "misalignment", "axial", "band_1x"))


def test_misalignment_draws_more_current_at_the_same_load(fault_plant):
    onset, failure, _ = windows(fault_plant, "gbx-mis")
    p = fault_plant.process("gbx-mis")
    p = p[p["running"].astype(bool)]
    healthy = between(p, fault_plant.config.start, onset)
    coef = np.polyfit(healthy["load_pct"], healthy["current_a"], 1)
    late = between(p, failure - DAY, failure)
    excess = (late["current_a"] / np.polyval(coef, late["load_pct"])).median()
    assert excess > 1.04


# -------------------------------------------------------------------- imbalance
def test_imbalance_raises_the_1x_band_at_both_radial_points(fault_plant):
    assert fault_plant.failure("fan-imb").sensors[:2] == ("vibration.de.band_1x", "vibration.nde.band_1x")
    for point in ("de", "nde"):
        healthy, late = healthy_and_late(fault_plant, "imbalance", point, "band_1x")
        clearly_above(late, healthy, factor=2.5)
        steady_over_healthy_days(fault_plant, "fan-imb", point, "band_1x")
        back_to_healthy_after_repair(fault_plant, "fan-imb", point, "band_1x")


def test_imbalance_does_not_touch_the_2x_band_or_the_bearing_bands(fault_plant):
    unchanged(*healthy_and_late(fault_plant, "imbalance", "de", "band_2x"))
    unchanged(*healthy_and_late(fault_plant, "imbalance", "de", "band_bpfo"), tolerance=0.25)


# ------------------------------------------------------------- cooling failure
def test_cooling_failure_heats_the_winding_by_the_same_amount_at_every_load(fault_plant):
    assert fault_plant.failure("comp-cool").sensors[0] == "temperature.winding.celsius"
    onset, failure, _ = windows(fault_plant, "comp-cool")
    temps = fault_plant.temperatures("comp-cool")
    rise = temperature_rise(fault_plant, "cooling_failure", "winding", deg=2)
    assert abs(between(rise, fault_plant.config.start, onset).median()) < 0.3
    last = between(rise, failure - pd.Timedelta(hours=12), failure)
    load = temps.loc[last.index, "load_pct"]
    by_load = last.groupby(pd.qcut(load, 3, labels=["low", "mid", "high"]), observed=True).median()
    # Well above healthy at equal load, in every load tercile alike: the drift
    # does not follow load, as a blocked cooler's does not.
    assert (by_load > 20).all(), by_load.to_dict()
    assert by_load.max() - by_load.min() < 0.15 * by_load.mean(), by_load.to_dict()


def test_cooling_failure_drifts_with_time_not_with_load(fault_plant):
    onset, failure, _ = windows(fault_plant, "comp-cool")
    temps = fault_plant.temperatures("comp-cool")
    rise = between(temperature_rise(fault_plant, "cooling_failure", "winding", deg=2), onset, failure)
    hours = (rise.index - onset) / pd.Timedelta(hours=1)
    load = temps.loc[rise.index, "load_pct"]
    assert np.corrcoef(hours, rise)[0, 1] > 0.9
    assert abs(np.corrcoef(load, rise)[0, 1]) < 0.2


def test_cooling_failure_does_not_show_in_the_vibration(fault_plant):
    for name in ("rms", "band_1x", "band_bpfo", "band_hf"):
        unchanged(*healthy_and_late(fault_plant, "cooling_failure", "de", name), tolerance=0.15)


# ------------------------------------------------------- failure, repair, restart
@pytest.mark.parametrize("mode", list(FAULT_MACHINES))
def test_a_failure_stops_the_machine_until_the_repair_is_done(fault_plant, mode):
    machine = FAULT_MACHINES[mode][0]
    _, failure, repaired = windows(fault_plant, machine)
    p = fault_plant.process(machine)
    down = between(p, failure, repaired)
    assert len(down) == (repaired - failure) / pd.Timedelta(minutes=1)
    assert not down["running"].any()
    assert (down[["speed_rpm", "load_pct", "current_a"]] == 0).all().all()
    # The vibration sensors only see background noise while it stands.
    rms = fault_plant.vibration(machine, "de")["rms"]
    running_rms = between(rms, fault_plant.config.start, failure - 3 * DAY).median()
    assert between(rms, failure, repaired).max() < 0.3 * running_rms
    # Back in service after the repair (a continuous line: running unless a short stop).
    after = between(p, repaired, repaired + DAY)
    assert after["running"].mean() > 0.9
    assert after["speed_rpm"][after["running"].astype(bool)].min() > 0


def test_the_operator_log_records_the_breakdown_and_the_repair(fault_plant):
    logs = fault_plant.frames["operator_log"]
    for mode, (machine, _) in FAULT_MACHINES.items():
        _, failure, repaired = windows(fault_plant, machine)
        orders = logs[(logs["machine"] == machine) & (logs["event_type"] == "work_order")]
        assert orders.loc[orders.index == failure, "message"].str.contains("breakdown").any(), mode
        assert orders.loc[orders.index == repaired, "message"].str.contains("repair completed").any(), mode
