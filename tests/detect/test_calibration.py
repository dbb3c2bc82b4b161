"""Calibration edge cases: channels never seen healthy, and overlap-free calibration windows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pdm.detect.stages import ChannelCalibrator
from pdm.features import RobustScaler, make_windows
from pdm.features.grid import EVENT_TYPES, MachineGrid
from pdm.features.windows import WindowSet, excluded_steps
from pdm.model.pipeline import FeatureConfig, split_calibration, split_sets


def test_a_channel_without_healthy_errors_cannot_raise_the_score_and_survives_json():
    healthy = np.column_stack([np.random.default_rng(0).normal(1.0, 0.1, 200), np.full(200, np.nan)])
    cal = ChannelCalibrator(top_k=1).fit(healthy)
    later = np.array([[1.0, 50.0], [3.0, 50.0]])  # channel 1 only now reports, channel 0 steps up
    assert cal.apply(later)[0] == 0.0 and cal.apply(later)[1] > 10
    back = ChannelCalibrator.from_dict(json.loads(json.dumps(cal.to_dict(), allow_nan=False)))
    assert np.array_equal(back.apply(later), cal.apply(later))


def _windows(n: int, stride_ns: int) -> WindowSet:
    z = np.zeros((n, 1, 8), np.float32)
    return WindowSet(z, z + 1, z, z, np.arange(n, dtype=np.int64) * stride_ns, np.full(n, "m", object), ["c"])


def test_calibration_takes_the_last_running_windows_and_training_none_that_overlap_them():
    feats = FeatureConfig(step="10min", window=72, stride=6)  # windows overlap 11 of 12 strides
    stride_ns = 6 * 600 * 10**9
    n = 200
    active = np.ones(n, bool)
    active[170:] = False  # the machine stood still at the end (a weekend)
    fit, cal, note = split_calibration(_windows(n, stride_ns), feats, active)
    assert note == ""
    assert len(cal) == 36 and cal.start.max() == 169 * stride_ns  # last running windows, 3 window lengths
    window_ns = 72 * 600 * 10**9
    gaps = np.abs(fit.start[:, None] - cal.start[None, :])
    assert (gaps >= window_ns).all() and len(fit) > 100
    assert (fit.start > cal.start.max()).any()  # the idle windows after calibration still train


def _grid(steps: int, stopped: slice, fault: slice) -> tuple[MachineGrid, pd.DataFrame]:
    idx = pd.date_range("2024-01-01", periods=steps, freq="10min", tz="UTC").as_unit("ns")
    rng = np.random.default_rng(1)
    sensors = pd.DataFrame({"c": rng.normal(0, 1, steps)}, index=idx)
    context = pd.DataFrame({"speed": 1.0, "load": 0.5, "running": 1.0, "days_since_work_order": 0.0}, index=idx)
    context.iloc[stopped, context.columns.get_loc("running")] = 0.0
    events = pd.DataFrame(0.0, index=idx, columns=list(EVENT_TYPES))
    labels = pd.DataFrame({"machine": ["m"], "kind": ["bearing_wear"], "is_failure": [True],
                           "start": [idx[fault.start]], "end": [idx[fault.stop - 1]]})
    return MachineGrid("m", sensors, context, events, pd.DataFrame()), labels


def test_dense_calibration_cuts_the_same_span_more_often_and_keeps_its_rules():
    feats = FeatureConfig(step="10min", window=24, stride=8)  # calibration every 2 steps
    assert feats.cal_stride() == 2 and FeatureConfig(stride=2).cal_stride() == 1
    assert FeatureConfig(stride=8, calibration_stride=16).cal_stride() == 8  # never sparser than training
    grid, labels = _grid(600, stopped=slice(300, 360), fault=slice(420, 450))
    scaler = RobustScaler(["c"]).fit(grid.sensors)
    sparse = make_windows(grid, scaler, 24, 8, exclude=excluded_steps(grid.index, labels, "m"))
    fits, cals, _ = split_sets({"m": grid}, {"m": sparse}, feats)
    fits_dense, dense_sets, _ = split_sets({"m": grid}, {"m": sparse}, feats, {"m": scaler}, labels)
    fit, cal, dense = fits["m"], cals["m"], dense_sets["m"]
    assert np.array_equal(fit.start, fits_dense["m"].start)  # training windows unchanged
    assert dense.start.min() == cal.start.min() and dense.start.max() == cal.start.max()
    assert len(dense) > 3 * len(cal)
    assert np.all(np.diff(np.sort(dense.start)) % (2 * 600 * 10**9) == 0)
    step_ns = 600 * 10**9
    t0 = grid.index.asi8[0]
    first, last = (dense.start - t0) // step_ns, (dense.start - t0) // step_ns + 23
    assert not np.any((last >= 420) & (first < 450))  # no window touches the labelled fault
    assert not np.any((first >= 300) & (last < 360))  # none lies wholly in the stop
    assert np.array_equal(dense.values[0, 0], scaler.transform(grid.sensors)[(dense.start[0] - t0) // step_ns:][:24, 0])


def test_a_machine_whose_calibration_windows_cannot_be_scored_is_skipped_not_fatal():
    from pdm.model.pipeline import calibrate
    from pdm.model.tshae import TSHAE, TSHAEConfig

    feats = FeatureConfig(step="10min", window=64, stride=16)
    grids, sets = {}, {}
    for m, stopped in (("runs", slice(0, 0)), ("idles", slice(0, 400))):
        grid, _ = _grid(400, stopped=stopped, fault=slice(0, 0))
        grid.machine = m
        if m == "idles":  # it runs 4 steps in every 64: the windows are active, but under MIN_COUNTED
            running = np.where(np.arange(400) % 64 < 4, 1.0, 0.0)
            grid.context["running"] = running
        scaler = RobustScaler(["c"]).fit(grid.sensors)
        grids[m], sets[m] = grid, make_windows(grid, scaler, 64, 16)
    torch_model = TSHAE(TSHAEConfig(channels=1, context_channels=4, event_channels=5, window=64, patch=8, d_model=16,
                                    heads=2, layers=1, attn_window=4, lsh_chunk=4))
    detect = calibrate(torch_model, sets, grids, feats)
    assert set(detect["machines"]) == {"runs"}
    assert "idles" in detect["skipped"] and "keeps its earlier calibration" in detect["skipped"]["idles"]
    from pdm.model.pipeline import merge_calibration

    before = {"idles": {"threshold": {"threshold": 4.0}}, "runs": {"threshold": {"threshold": 9.0}}}
    merged = merge_calibration(before, detect["machines"])
    assert merged["idles"] == before["idles"] and merged["runs"] is detect["machines"]["runs"]


def _healthy_calibration(trained, tmp_path):
    """``calibrated(running_at, **settings)``: the fixture's healthy machine calibrated with those feature
    settings, its ``running`` record replaced by ``running_at(grid index, the recorded running values)``."""
    import dataclasses

    from pdm.model.directory import load
    from pdm.model.pipeline import bundle_features, bundle_windows, calibrate
    from tests.detect.conftest import HEALTHY

    bundle = load(trained.model)
    feats = bundle_features(bundle)
    store = trained.fresh_store(tmp_path / "s.duckdb")
    grids, sets, _ = bundle_windows(store, bundle, trained.start, trained.stop, feats)
    store.close()
    grid = grids[HEALTHY]
    recorded = grid.context["running"].to_numpy(dtype=float).copy()

    def calibrated(running_at, **settings):
        grid.context["running"] = running_at(grid.index, recorded.copy())
        return calibrate(bundle.model, {HEALTHY: sets[HEALTHY]}, {HEALTHY: grid},
                         dataclasses.replace(feats, **settings), bundle.scalers)["machines"][HEALTHY]

    return calibrated


def _evening_stops(index, running):
    """The recorded running values, the line now stopping every evening."""
    running[index.hour >= 16] = 0.0
    return running


def test_count_scaling_calibrates_on_the_scaled_scores_of_windows_the_machine_stopped_in(trained, tmp_path):
    """With ``count_scaling`` the POT threshold is fitted on scores scaled by each window's counted share."""
    calibrated = _healthy_calibration(trained, tmp_path)
    got = {on: calibrated(_evening_stops, count_scaling=on) for on in (False, True)}
    plain, scaled = got[False]["calibration_scores"], got[True]["calibration_scores"]
    # every window's z shrinks by sqrt(its counted share) (<= 1; < 1 where the machine stopped): so do the scores
    assert scaled["max"] < plain["max"] and scaled["median"] < plain["median"]
    assert got[True]["calibrator"] == got[False]["calibrator"]  # the error levels and spreads are the same


def test_stops_as_gaps_changes_what_calibration_shows_the_model_only_where_the_machine_stopped(trained, tmp_path):
    """With ``stops_as_gaps`` calibration scores the windows as the scorer will: a stop read as a gap."""
    calibrated = _healthy_calibration(trained, tmp_path)

    def never_stopped(index, running):  # nothing to show as a gap
        return np.ones_like(running)

    assert calibrated(never_stopped, stops_as_gaps=True)["calibrator"] == \
        calibrated(never_stopped, stops_as_gaps=False)["calibrator"]
    gaps, shown = calibrated(_evening_stops, stops_as_gaps=True), calibrated(_evening_stops, stops_as_gaps=False)
    assert gaps["calibrator"] != shown["calibrator"]  # the model saw other inputs, so the errors differ


def test_scored_hours_calibrates_on_each_windows_last_hours_and_a_whole_window_is_the_plain_mean(trained, tmp_path):
    """``scored_hours``: calibration's errors are each window's last hours only; the whole window's hours give
    back the plain calibration exactly, and a directory without the setting reads as every step."""
    from types import SimpleNamespace

    from pdm.model.pipeline import FeatureConfig, bundle_features

    calibrated = _healthy_calibration(trained, tmp_path)
    feats = bundle_features(SimpleNamespace(config={"features": {}}))
    assert feats.scored_hours is None and feats.last_steps() is None
    whole_hours = feats.window * pd.Timedelta(feats.step).total_seconds() / 3600

    def as_recorded(index, running):
        return running

    plain = calibrated(as_recorded, scored_hours=None)
    assert calibrated(as_recorded, scored_hours=whole_hours) == plain
    recent = calibrated(as_recorded, scored_hours=whole_hours / 3)
    assert recent["calibrator"] != plain["calibrator"]
    # a third of the window's steps: their means scatter more, so the healthy errors' spreads widen
    spread = {k: np.array([np.nan if v is None else v for v in c["calibrator"]["iqr"]], float)
              for k, c in (("recent", recent), ("plain", plain))}
    assert np.nanmedian(spread["recent"]) > np.nanmedian(spread["plain"])
    assert FeatureConfig(step="10min", window=144, scored_hours=8).last_steps() == 48 == FeatureConfig().last_steps()
    assert FeatureConfig(step="10min", window=144, scored_hours=100).last_steps() == 144
    with pytest.raises(ValueError, match="scored_hours"):
        FeatureConfig(scored_hours=0)


def test_a_product_change_in_the_calibration_period_is_left_out_of_it_not_calibrated_as_normal(trained, tmp_path):
    """Fleet 8317's finding: a line's load stepped to 1.35x two days into its calibration period, which the
    weights never trained on. With the training windows' envelope (``fit_envelopes``) the windows after the change
    are outside it and left out of calibration; the whole range's envelope (``envelopes`` not given, as before)
    took the change in and calibrated on it as normal."""
    from pdm.detect.stages import OperatingEnvelope
    from pdm.model.directory import load
    from pdm.model.pipeline import (
        bundle_features,
        bundle_windows,
        calibrate,
        fit_envelopes,
        outside_note,
        read_labels,
    )
    from tests.detect.conftest import HEALTHY

    bundle = load(trained.model)
    feats = bundle_features(bundle)
    store = trained.fresh_store(tmp_path / "s.duckdb")
    grids, _, _ = bundle_windows(store, bundle, trained.start, trained.stop, feats)
    labels = read_labels(store)
    store.close()
    grid, scaler = grids[HEALTHY], bundle.scalers[HEALTHY]

    def split():
        sets = {HEALTHY: make_windows(grid, scaler, feats.window, feats.stride)}
        return split_sets({HEALTHY: grid}, sets, feats, bundle.scalers, labels)

    before = split()[1][HEALTHY]
    # the last sixth of the calibration windows' starts: the ones before them reaching into it are outside too
    change = int(np.sort(before.start)[len(before) * 5 // 6])
    grid.context.loc[grid.index.asi8 >= change, "load"] *= 1.35
    fit, cal, _ = split()
    assert len(cal[HEALTHY]) == len(before)  # the same windows, the later ones at the new load
    mended = calibrate(bundle.model, cal, {HEALTHY: grid}, feats, bundle.scalers,
                       envelopes=fit_envelopes({HEALTHY: grid}, fit, feats))["machines"][HEALTHY]
    whole = calibrate(bundle.model, cal, {HEALTHY: grid}, feats, bundle.scalers)["machines"][HEALTHY]
    assert whole["calibration_outside"] == 0 and whole["calibration_windows"] == len(before)
    assert mended["calibration_outside"] >= len(before) // 6
    assert mended["calibration_windows"] + mended["calibration_outside"] == len(before)
    window_ns = feats.window * pd.Timedelta(feats.step).value
    assert mended["calibration_to"] - window_ns < change  # every window it calibrated on began before the change
    new_load = grid.context["load"].to_numpy()[grid.index.asi8 >= change]
    assert OperatingEnvelope.from_dict(mended["envelope"]).hi[1] < np.quantile(new_load, 0.1)
    assert OperatingEnvelope.from_dict(whole["envelope"]).hi[1] > np.quantile(new_load, 0.9)
    assert "calibration_note" not in mended and mended["calibrator"] != whole["calibrator"]
    assert outside_note(mended).startswith(f"{mended['calibration_outside']} of its calibration windows ran outside")
    assert outside_note(whole) == ""
