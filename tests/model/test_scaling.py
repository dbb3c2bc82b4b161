"""Robust scaling of a machine's channels: temperatures as their rise over ambient, vibration on running steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pdm.features.windows import RobustScaler, ambient_channel

AMB, BRG, WND = "temperature.ambient.celsius", "temperature.bearing.celsius", "temperature.winding.celsius"
RMS = "vibration.de.rms"
CHANNELS = [AMB, BRG, WND, RMS]


def plant(n: int = 400, warmer: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A machine whose temperatures ride on the ambient one: winter (warmer=0) or a warmer season."""
    rng = np.random.default_rng(seed)
    load = rng.uniform(0.3, 1.0, n)
    amb = 12 + warmer + 3 * np.sin(np.arange(n) / 20) + rng.normal(0, 0.2, n)
    return pd.DataFrame({AMB: amb, BRG: amb + 25 * load + rng.normal(0, 0.5, n),
                         WND: amb + 40 * load + rng.normal(0, 0.5, n), RMS: 2 + load + rng.normal(0, 0.1, n)})


def test_the_ambient_channel_is_found_by_name():
    assert ambient_channel(CHANNELS) == AMB
    assert ambient_channel([BRG, RMS]) is None


def test_a_warmer_season_moves_the_machine_temperatures_only_when_read_as_measured():
    winter, spring = plant(), plant(warmer=5.0)
    rise = RobustScaler(CHANNELS).fit(winter, rise_over=ambient_channel(CHANNELS))
    raw = RobustScaler(CHANNELS).fit(winter)
    assert rise.rise_over == AMB and raw.rise_over is None
    for s, moved in ((rise, False), (raw, True)):
        shift = np.median(s.transform(spring) - s.transform(winter), axis=0)
        assert shift[0] > 0.5  # the ambient channel itself still shows the season
        assert (abs(shift[1]) > 0.3) == moved and (abs(shift[2]) > 0.3) == moved, (s.rise_over, shift)
        assert abs(shift[3]) < 1e-9  # vibration untouched
    # Rise over ambient is the machine's own heating: 0 at no load, so its median is what load makes.
    assert abs(rise.median[2] - np.median(plant()[WND] - plant()[AMB])) < 1e-9


def test_a_missing_ambient_reading_masks_the_rise_at_that_step_only():
    frame = plant()
    s = RobustScaler(CHANNELS).fit(frame, rise_over=AMB)
    frame.loc[[5, 6], AMB] = np.nan
    x = s.transform(frame)
    assert np.isnan(x[[5, 6], :3]).all()  # no ambient, no rise: masked, not filled
    assert np.isfinite(x[[5, 6], 3]).all() and np.isfinite(x[[4, 7]]).all()


def test_a_machine_without_an_ambient_reading_keeps_its_temperatures_as_measured_and_says_so():
    frame = plant()
    frame.loc[frame.index[:300], AMB] = np.nan  # observed on a quarter of the steps
    s = RobustScaler(CHANNELS).fit(frame, rise_over=AMB)
    assert s.rise_over is None
    assert any("rise over ambient" in p for p in s.problems)
    assert np.isfinite(s.transform(frame)[:, 1:]).all()


def test_the_choice_travels_with_the_scaler_and_older_scalers_read_as_measured():
    winter = plant()
    s = RobustScaler(CHANNELS).fit(winter, rise_over=AMB)
    back = RobustScaler.from_dict(s.to_dict())
    assert back.rise_over == AMB
    np.testing.assert_array_equal(back.transform(winter), s.transform(winter))
    old = RobustScaler(CHANNELS).fit(winter).to_dict()
    assert "rise_over" not in old and RobustScaler.from_dict(old).rise_over is None


def shifts(n: int = 600, seed: int = 1, noise: float = 0.2) -> tuple[pd.DataFrame, np.ndarray]:
    """A two-shift machine: vibration nothing while stopped (running 0), a brief run-down step (0.5) at each stop."""
    rng = np.random.default_rng(seed)
    running = np.where((np.arange(n) // 50) % 3 == 2, 0.0, 1.0)
    running[np.flatnonzero(np.diff(running) < 0) + 1] = 0.5
    frame = plant(n, seed=seed)
    frame[RMS] = np.where(running >= 0.9, np.exp(rng.normal(-2.0, noise, n)), 1e-6)
    return frame, running


def test_vibration_is_scaled_on_running_steps_and_hidden_where_the_machine_did_not_run():
    frame, running = shifts()
    on = running >= 0.9
    s = RobustScaler(CHANNELS).fit(frame, rise_over=AMB, running=running)
    all_steps = RobustScaler(CHANNELS).fit(frame, rise_over=AMB)
    assert s.running_only and not all_steps.running_only
    log_rms = np.log(frame[RMS].to_numpy()[on] + 1e-4)
    q1, q3 = np.percentile(log_rms, [25, 75])
    assert abs(s.iqr[3] - (q3 - q1)) < 1e-9  # the running range, ...
    assert all_steps.iqr[3] > 20 * s.iqr[3]  # ... not the jump between running and stopped
    x = s.transform(frame, running)
    assert np.isnan(x[~on, 3]).all() and np.isfinite(x[on, 3]).all()  # stopped and run-down steps hidden
    assert np.isfinite(x[:, :3]).all()  # temperatures keep every step
    # A rise of the running level by 4 sigma of its noise is ~3 ranges (IQR = 1.35 sigma) on the running scale,
    # under 0.2 on the scale over all steps.
    up = frame.copy()
    up.loc[on, RMS] = up.loc[on, RMS] * np.exp(0.8)
    assert np.nanmedian(s.transform(up, running)[on, 3] - x[on, 3]) > 2.5, "running scale"
    assert np.median(all_steps.transform(up)[on, 3] - all_steps.transform(frame)[on, 3]) < 0.2


def test_a_quiet_running_tone_is_scaled_by_about_2_db_at_least():
    from pdm.features.windows import LOG_IQR_FLOOR

    frame, running = shifts(noise=0.02)
    s = RobustScaler(CHANNELS).fit(frame, running=running)
    assert s.iqr[3] == LOG_IQR_FLOOR  # its running noise (IQR ~0.027) would make a 10 % baseline step 4 ranges
    assert s.iqr[1] != LOG_IQR_FLOOR  # temperatures are not log amplitudes: their own range
    later = frame.copy()
    later[RMS] = later[RMS] * 1.1  # a work order moved the baseline
    assert np.nanmedian(s.transform(later, running)[:, 3] - s.transform(frame, running)[:, 3]) < 0.5


def test_running_scaling_needs_running_steps_and_the_running_context():
    frame, running = shifts()
    few = np.where(np.arange(len(running)) < 20, 1.0, 0.0)
    s = RobustScaler(CHANNELS).fit(frame, running=few)
    assert not s.running_only and any("scaled over all steps" in p for p in s.problems)
    s = RobustScaler(CHANNELS).fit(frame, running=running)
    with pytest.raises(ValueError, match="running context"):
        s.transform(frame)
    # Not recorded (NaN) counts as running, as the error gate reads it: nothing hidden.
    unknown = np.full(len(running), np.nan)
    assert np.isfinite(RobustScaler(CHANNELS).fit(frame, running=unknown).transform(frame, unknown)).all()


def test_running_scaling_travels_with_the_scaler_and_older_scalers_show_every_step():
    frame, running = shifts()
    s = RobustScaler(CHANNELS).fit(frame, running=running)
    back = RobustScaler.from_dict(s.to_dict())
    assert back.running_only
    np.testing.assert_array_equal(back.transform(frame, running), s.transform(frame, running))
    old = RobustScaler(CHANNELS).fit(frame).to_dict()
    assert "running_only" not in old and not RobustScaler.from_dict(old).running_only


def test_days_since_a_work_order_run_from_0_to_1_over_the_run_in_and_older_scalers_over_30_days():
    """The context is a run-in after maintenance, not a clock: 1 from the run-in's end on (30 days for old models)."""
    from pdm.features.grid import CONTEXT_CHANNELS, EVENT_TYPES, MachineGrid
    from pdm.features.windows import WORK_ORDER_RUN_IN_DAYS, make_windows

    n = 24 * 40  # hourly steps, 40 days
    index = pd.date_range("2026-01-01", periods=n, freq="1h", tz="UTC")
    frame = plant(n).set_index(index)
    days = np.minimum(np.arange(n) / 24.0, 30.0)  # a work order at the first step
    context = pd.DataFrame({"speed": 1.0, "load": 0.5, "running": 1.0, "days_since_work_order": days}, index=index)
    grid = MachineGrid("m", frame, context[list(CONTEXT_CHANNELS)], pd.DataFrame(0.0, index=index, columns=list(EVENT_TYPES)),
                       pd.DataFrame())
    new = RobustScaler(CHANNELS).fit(frame)
    assert new.work_order_days == WORK_ORDER_RUN_IN_DAYS == 2.0
    old = RobustScaler.from_dict({k: v for k, v in new.to_dict().items() if k != "work_order_days"})
    assert old.work_order_days == 30.0 and RobustScaler.from_dict(new.to_dict()).work_order_days == 2.0
    for scaler, want in ((new, np.minimum(days / 2.0, 1.0)), (old, days / 30.0)):
        w = make_windows(grid, scaler, window=n, stride=n)
        np.testing.assert_allclose(w.context[0, 3], want, atol=1e-6)
    ctx = make_windows(grid, new, window=n, stride=n).context[0, 3]
    assert ctx[24] == pytest.approx(0.5) and (ctx[48:] == 1.0).all()  # a day in: half; after two days: done


def test_a_run_in_the_grid_cannot_tell_is_refused():
    from pdm.features.grid import DAYS_SINCE_CAP

    assert RobustScaler(["c"], work_order_days=DAYS_SINCE_CAP).work_order_days == DAYS_SINCE_CAP
    for bad in (DAYS_SINCE_CAP + 1, 0.0):
        with pytest.raises(ValueError, match="run-in must lie in"):
            RobustScaler(["c"], work_order_days=bad)


def duty(n: int, runs_every: int, seed: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    """A machine at the same running temperatures whatever its duty cycle: at ambient while stopped.

    ``runs_every``: it runs one step in that many (3: one shift a day; 1: around the clock).
    """
    rng = np.random.default_rng(seed)
    running = np.where(np.arange(n) % runs_every == 0, 1.0, 0.0)
    frame = pd.DataFrame({AMB: np.full(n, 15.0) + rng.normal(0, 0.2, n),
                          BRG: np.where(running > 0, 40.0, 20.0) + rng.normal(0, 0.5, n),
                          WND: np.where(running > 0, 60.0, 22.0) + rng.normal(0, 0.5, n),
                          RMS: np.exp(rng.normal(-2.0, 0.2, n))})
    return frame, running


def test_temperatures_scaled_on_running_steps_read_the_same_running_level_whatever_the_duty_cycle():
    """Scaled over every step, a machine that stops often has its running temperatures far above its median."""
    often, run_often = duty(900, 3)
    never, run_never = duty(900, 1)
    levels = {}
    for flag in (False, True):
        for name, (frame, running) in {"often": (often, run_often), "never": (never, run_never)}.items():
            s = RobustScaler(CHANNELS).fit(frame, rise_over=AMB, temperatures_running=running if flag else None)
            assert s.temperatures_running is flag
            x = s.transform(frame)
            assert np.isfinite(x[:, 1:3]).all()  # stopped steps are shown: the thermal state a restart begins from
            levels[flag, name] = np.median(x[running > 0, 1:3], axis=0)
            if flag and name == "often":
                assert (x[running == 0, 1:3] < -5).all()  # stopped: far below the running level
    np.testing.assert_allclose(levels[True, "often"], 0.0, atol=0.2)
    np.testing.assert_allclose(levels[True, "never"], 0.0, atol=0.2)
    assert (levels[False, "often"] > 0.9).all()  # the all-steps median lies among the stopped steps
    np.testing.assert_allclose(levels[False, "never"], 0.0, atol=0.2)


def test_temperature_running_scaling_travels_with_the_scaler_and_needs_running_steps():
    frame, running = duty(300, 3)
    s = RobustScaler(CHANNELS).fit(frame, rise_over=AMB, temperatures_running=running)
    back = RobustScaler.from_dict(s.to_dict())
    assert back.temperatures_running and not back.running_only  # vibration: its own option
    np.testing.assert_array_equal(back.transform(frame), s.transform(frame))
    old = RobustScaler(CHANNELS).fit(frame).to_dict()
    assert "temperatures_running" not in old and not RobustScaler.from_dict(old).temperatures_running
    few = RobustScaler(CHANNELS).fit(frame, temperatures_running=np.where(np.arange(300) < 10, 1.0, 0.0))
    assert not few.temperatures_running and any("temperatures are scaled over all steps" in p for p in few.problems)
