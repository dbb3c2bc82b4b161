"""The running gate: stopped steps and the warm-up after a start do not count in the errors."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pdm.detect.errors import (
    gated_errors,
    grid_step_hours,
    hide_environment,
    hide_steps,
    running_gate,
    step_gate,
    step_hours,
    window_errors,
)
from pdm.features.windows import WindowSet


def _grid(running: list[float], step: str = "1h") -> SimpleNamespace:
    idx = pd.date_range("2024-01-01", periods=len(running), freq=step, tz="UTC", unit="ns")
    return SimpleNamespace(context=pd.DataFrame({"running": running}, index=idx), index=idx)


def _starts(grid: SimpleNamespace, *positions: int) -> SimpleNamespace:
    return SimpleNamespace(start=np.array([grid.index[p].value for p in positions], dtype=np.int64))


def test_stopped_steps_and_three_warm_up_hours_after_a_start_are_gated_out():
    grid = _grid([1] * 5 + [0] * 5 + [1] * 30)
    gate = running_gate(grid, _starts(grid, 0, 8), 10)
    assert gate[0].tolist() == [1] * 5 + [0] * 5
    # Steps 8, 9 stopped; the start at step 10 and the two hours after it warm up; then it counts.
    assert gate[1].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


def test_warm_up_follows_the_grid_step_and_can_be_switched_off():
    grid = _grid([0] * 6 + [1] * 42, step="10min")  # 3 h = 18 steps
    gate = running_gate(grid, _starts(grid, 0), 48)
    assert gate[0, :24].sum() == 0 and gate[0, 24:].all()
    off = running_gate(grid, _starts(grid, 0), 48, warmup_hours=0)
    assert off[0, :6].sum() == 0 and off[0, 6:].all()


def test_one_grid_step_in_hours_from_every_spelling_the_callers_hold():
    # Features hold a frequency string, the scorer nanoseconds, the harness a grid: one answer.
    assert step_hours("10min") == step_hours(pd.Timedelta(minutes=10)) == step_hours(600 * 10**9) == pytest.approx(1 / 6)
    assert grid_step_hours(_grid([1] * 4, step="10min")) == pytest.approx(1 / 6)
    assert grid_step_hours(_grid([1])) == 0.0  # one step: no warm-up can be placed
    assert step_gate(np.array([[0, 1, 1, 1]], float), grid_step_hours(_grid([1]))).tolist() == [[0, 1, 1, 1]]


def test_a_window_that_begins_running_has_no_start_so_pieces_and_whole_agree():
    grid = _grid([0] * 3 + [1] * 20)
    # The window from step 4 starts running: its gate depends on its own steps only.
    assert running_gate(grid, _starts(grid, 4), 10)[0].all()


def test_unknown_running_counts_and_gated_errors_ignore_the_warm_up():
    grid = _grid([np.nan] * 4 + [0, 1, 1, 1, 1, 1])
    gate = running_gate(grid, _starts(grid, 0), 10)
    assert gate[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    values = np.zeros((1, 1, 10), np.float32)
    values[0, 0, 5:8] = 50.0  # a start-up transient: ignored
    ws = SimpleNamespace(values=values, mask=np.ones_like(values))
    assert window_errors(ws, np.zeros_like(values), gate)[0, 0] == 0.0
    assert window_errors(ws, np.zeros_like(values))[0, 0] == 15.0


def test_a_channel_with_too_few_counted_steps_has_no_error():
    values = np.ones((1, 2, 8), np.float32)
    mask = np.ones_like(values)
    mask[0, 1, 2:] = 0  # channel 1 observed on 2 steps only
    ws = SimpleNamespace(values=values, mask=mask)
    err = window_errors(ws, np.zeros_like(values), min_count=3)
    assert err[0, 0] == 1.0 and np.isnan(err[0, 1])


def test_the_gate_from_window_context_equals_the_gate_from_the_grid():
    """Fleet scoring gates on each window's own ``running`` context: the same gate as from the grid."""
    rng = np.random.default_rng(3)
    running = np.repeat(rng.random(40) < 0.6, 6).astype(float)  # 10-min steps, stops of an hour or more
    grid = _grid(running.tolist(), step="10min")
    starts = _starts(grid, 0, 17, 100, 192)
    ctx = np.stack([running[p : p + 48] for p in (0, 17, 100, 192)])
    assert np.array_equal(step_gate(ctx, 1 / 6), running_gate(grid, starts, 48))


def test_a_window_that_barely_ran_has_no_errors_at_all():
    values = np.ones((2, 3, 12), np.float32)
    ws = SimpleNamespace(values=values, mask=np.ones_like(values))
    gate = np.ones((2, 12), np.float32)
    gate[1, 2:] = 0  # ran 2 of 12 steps: under a quarter
    err = gated_errors(ws, np.zeros_like(values), gate)
    assert np.isfinite(err[0]).all() and np.isnan(err[1]).all()


@dataclasses.dataclass
class _W:
    values: np.ndarray
    mask: np.ndarray
    channels: list[str]


def test_stopped_steps_are_hidden_from_the_model_except_temperatures_and_unrecorded_ones():
    values = np.arange(36, dtype=np.float32).reshape(1, 3, 12)
    w = _W(values.copy(), np.ones_like(values), ["vibration.de.crest", "temperature.bearing.celsius", "process.current_a"])
    running = np.array([[1, 1, 1, 0, 0, 0.5, np.nan, np.nan, 1, 1, 0.95, 1]], float)
    hidden = hide_steps(w, running)
    stopped = [3, 4, 5]
    kept = [i for i in range(12) if i not in stopped]
    for c in (0, 2):  # vibration and process: hidden while stopped
        assert (hidden.mask[0, c, stopped] == 0).all() and np.isnan(hidden.values[0, c, stopped]).all()
        assert (hidden.mask[0, c, kept] == 1).all() and np.array_equal(hidden.values[0, c, kept], values[0, c, kept])
    assert hidden.mask[0, 1].all() and np.array_equal(hidden.values[0, 1], values[0, 1])  # the temperature stays
    assert w.mask.all() and np.isfinite(w.values).all()  # the input is not modified
    assert hide_steps(w, np.ones((1, 12))) is w


def test_the_ambient_temperature_is_hidden_from_the_model_where_temperatures_are_read_as_rises_over_it():
    values = np.arange(36, dtype=np.float32).reshape(1, 3, 12)
    channels = ["temperature.ambient.celsius", "temperature.bearing.celsius", "vibration.de.rms"]
    w = _W(values.copy(), np.ones_like(values), channels)
    hidden = hide_environment(w, "temperature.ambient.celsius")
    assert (hidden.mask[0, 0] == 0).all() and np.isnan(hidden.values[0, 0]).all()
    assert hidden.mask[0, 1:].all() and np.array_equal(hidden.values[0, 1:], values[0, 1:])  # the machine's stay
    assert w.mask.all() and np.isfinite(w.values).all()  # the input is not modified
    # Temperatures read as measured: the model needs the ambient one; and nothing to hide without it.
    assert hide_environment(w, None) is w
    assert hide_environment(_W(values[:, 1:].copy(), np.ones_like(values[:, 1:]), channels[1:]), channels[0]).mask.all()


def test_any_detectors_errors_are_gated_as_a_reconstructions_are():
    from pdm.detect.errors import gated_step_errors, gated_window_errors

    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 2, 8)).astype(np.float32)
    mask = np.ones_like(values)
    mask[1, 0, :6] = 0  # channel 0 of window 1: two observed steps left
    w = SimpleNamespace(values=np.where(mask > 0, values, np.nan), mask=mask)
    rec = rng.normal(size=values.shape).astype(np.float32)
    gate = np.ones((3, 8), np.float32)
    gate[2, :7] = 0  # window 2 barely ran: one counted step, under MIN_COUNTED (2 of 8)
    steps = np.where(mask > 0, np.abs(values - rec), np.nan)  # what a baseline's step_errors returns
    expect = gated_errors(w, rec, gate)
    assert np.allclose(gated_step_errors(steps, w, gate), expect, equal_nan=True)
    assert np.isfinite(expect[1, 0]) and np.isnan(expect[2]).all()
    # A window-level detector's errors are kept exactly where a reconstruction's would count.
    whole = np.full((3, 2), 5.0)
    assert (np.isfinite(gated_window_errors(whole, w, gate)) == np.isfinite(expect)).all()


def test_a_trimmed_window_error_leaves_out_one_spike_but_not_a_lasting_change():
    from pdm.detect.errors import gated_step_errors, masked_mean

    steps = np.full((3, 1, 50), 0.2)
    steps[0, 0, 17] = 10.0  # one spiked reading
    steps[1, 0, 20:] = 1.0  # a change that lasts 30 steps
    steps[2, 0, 3] = 10.0  # a spike on a stopped step: not counted at all
    mask = np.ones_like(steps)
    gate = np.ones((3, 50))
    gate[2, :10] = 0
    w = SimpleNamespace(mask=mask)
    plain = gated_step_errors(steps, w, gate)
    trimmed = gated_step_errors(steps, w, gate, trim=0.02)  # one step of 50 (of 40 counted in window 2: none)
    assert plain[0, 0] == pytest.approx(0.2 + 9.8 / 50) and trimmed[0, 0] == pytest.approx(0.2)
    assert plain[1, 0] == pytest.approx((20 * 0.2 + 30) / 50)
    assert trimmed[1, 0] == pytest.approx((20 * 0.2 + 29) / 49)  # the lasting change keeps its level
    assert plain[2, 0] == pytest.approx(0.2) and trimmed[2, 0] == pytest.approx(0.2)
    # Only counted steps are trimmed, and the count shrinks with them: a masked-out outlier is not "the largest".
    m = np.ones((1, 1, 10))
    m[0, 0, 0] = 0
    x = np.arange(10.0).reshape(1, 1, 10)
    x[0, 0, 0] = 99.0
    assert masked_mean(x, m, trim=0.15)[0, 0] == pytest.approx(np.mean(np.arange(1, 9)))
    assert masked_mean(x, m, trim=0.0)[0, 0] == pytest.approx(np.mean(np.arange(1, 10)))
    # Too few counted steps still reads NaN, trimmed or not.
    gate_few = np.zeros((3, 50))
    gate_few[:, :5] = 1
    assert np.isnan(gated_step_errors(steps, w, gate_few, trim=0.02)).all()
    with pytest.raises(ValueError, match="trim"):
        masked_mean(x, m, trim=0.5)


def test_a_windows_last_steps_alone_count_when_asked_with_their_own_minimum():
    from pdm.detect.errors import gated_step_errors, last_steps

    steps = np.full((3, 1, 48), 0.2)
    steps[0, 0, 36:] = 2.0  # a fault in the last quarter of window 0: the whole window averages it with healthy steps
    steps[1, 0, :12] = 2.0  # the same change, long ago in window 1: not in its last quarter at all
    mask = np.ones_like(steps)
    gate = np.ones((3, 48))
    gate[2, :44] = 0  # window 2 ran its last 4 steps only: under a quarter of the whole, a third of the last 12
    w = SimpleNamespace(mask=mask)
    whole = gated_step_errors(steps, w, gate)
    recent = gated_step_errors(steps, w, gate, last=12)
    assert whole[0, 0] == pytest.approx((36 * 0.2 + 12 * 2.0) / 48) and recent[0, 0] == pytest.approx(2.0)
    assert whole[1, 0] == pytest.approx(whole[0, 0]) and recent[1, 0] == pytest.approx(0.2)
    assert np.isnan(whole[2, 0]) and recent[2, 0] == pytest.approx(0.2)  # MIN_COUNTED of the steps that can count
    assert np.array_equal(gated_step_errors(steps, w, gate, last=48), whole, equal_nan=True)
    assert last_steps(48, None) is None and last_steps(48, 12) == 12
    for bad in (0, 49):
        with pytest.raises(ValueError, match="1 to 48 steps"):
            last_steps(48, bad)


def test_count_scaling_gives_a_part_windows_mean_the_scatter_of_a_full_ones():
    """Means over a third of a window scatter sqrt(3) times as far; scaled by sqrt(share) they scatter alike."""
    from pdm.detect.errors import count_scaled

    rng = np.random.default_rng(5)
    steps = rng.normal(0.0, 1.0, (4000, 144))
    full, third = steps.mean(axis=1), steps[:, :48].mean(axis=1)
    z = np.c_[full, third].T.reshape(-1, 1)  # 8000 windows, one channel
    share = np.r_[np.ones(4000), np.full(4000, 48 / 144)]
    assert third.std() / full.std() == pytest.approx(np.sqrt(3), rel=0.05)
    scaled = count_scaled(z, share)[:, 0]
    assert scaled[4000:].std() / scaled[:4000].std() == pytest.approx(1.0, rel=0.05)
    assert np.array_equal(count_scaled(z[:3], np.array([1.0, np.nan, 1.0])), z[:3])  # full and unknown: as they were
    assert np.isnan(count_scaled(np.array([[np.nan, 2.0]]), np.array([0.25]))[0, 0])
    assert count_scaled(np.array([[np.nan, 2.0]]), np.array([0.25]))[0, 1] == 1.0


def test_the_counted_share_follows_the_gate_and_the_scorer_scales_only_where_calibrated_so():
    from pdm.detect.errors import counted_share
    from pdm.detect.score import _count_scaled

    running = np.array([[1.0] * 12, [1.0] * 4 + [0.0] * 8, [0.0] * 4 + [1.0] * 8])
    share = counted_share(running, "1h")
    assert share.tolist() == pytest.approx([1.0, 4 / 12, 5 / 12])  # a start: 3 warm-up hours do not count
    z = np.full((3, 2), 4.0)
    bundle = SimpleNamespace(config={"features": {"step": "1h", "window": 12, "stride": 1}})  # older: unscaled
    assert np.array_equal(_count_scaled(bundle, z, running, 3_600_000_000_000), z)
    bundle.config["features"]["count_scaling"] = True
    got = _count_scaled(bundle, z, running, 3_600_000_000_000)
    assert got[:, 0] == pytest.approx(4.0 * np.sqrt(share))


def _context_windows(running: np.ndarray, speed: np.ndarray) -> WindowSet:
    from pdm.features.grid import CONTEXT_CHANNELS

    n, t = running.shape
    values = np.arange(n * 3 * t, dtype=np.float32).reshape(n, 3, t)
    context = np.zeros((n, len(CONTEXT_CHANNELS), t), np.float32)
    context[:, CONTEXT_CHANNELS.index("speed")] = speed
    context[:, CONTEXT_CHANNELS.index("load")] = np.where(running > 0, 0.8, 0.0)
    context[:, CONTEXT_CHANNELS.index("running")] = running
    context[:, CONTEXT_CHANNELS.index("days_since_work_order")] = 0.5
    return WindowSet(values, np.ones_like(values), context, np.zeros((n, 1, t), np.float32),
                     np.arange(n, dtype=np.int64), np.full(n, "m", object),
                     ["vibration.de.rms", "temperature.bearing.celsius", "process.current_a"])


def test_a_stop_shown_as_a_gap_reads_as_a_running_machine_whose_sensors_were_out():
    """``as_gaps``: the model gets what it would have got had the machine run on with every sensor out."""
    from pdm.features.grid import CONTEXT_CHANNELS

    running = np.array([[1, 1, 1, 0, 0, 0.5, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1], [0] * 8], float)
    speed = np.array([[0.9, 0.91, 0.92, 0, 0, 0.4, 0.95, 0.96], [0, 0, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8], [0] * 8])
    w = _context_windows(running, speed)
    got = hide_steps(w, running, as_gaps=True)
    # What a running machine with its sensors out at those steps would have given the model:
    held_speed = np.array([[0.9, 0.91, 0.92, 0.92, 0.92, 0.92, 0.95, 0.96], [0.7, 0.7, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8]])
    expect = _context_windows(np.ones((2, 8)), held_speed)
    out = np.zeros((2, 8), bool)
    out[0, 3:6] = out[1, :2] = True
    hidden = np.broadcast_to(out[:, None], (2, 3, 8))  # every channel, temperatures too
    assert np.array_equal(got.mask[:2] == 0, hidden) and np.array_equal(np.isnan(got.values[:2]), hidden)
    assert np.array_equal(got.values[:2][~hidden], w.values[:2][~hidden])  # running steps as they were
    assert np.allclose(got.context[:2], expect.context)  # speed, load, running held; days since work order kept
    # A window in which the machine never ran is left as it was (it is not scored); the input is not modified.
    assert np.array_equal(got.mask[2], w.mask[2]) and np.array_equal(got.context[2], w.context[2])
    assert w.mask.all() and w.context[0, CONTEXT_CHANNELS.index("running"), 3] == 0
    # With the grid's step, the warm-up after each start (3 h: three hourly steps) is a gap too; the context
    # is held over the stop only (the warm-up ran at its own speed).
    warm = hide_steps(w, running, as_gaps=True, step_hours=1.0)
    assert (warm.mask[0, 0] == 0).tolist() == [False] * 3 + [True] * 5
    assert (warm.mask[1, 0] == 0).tolist() == [True] * 5 + [False] * 3
    assert np.allclose(warm.context[:2], got.context[:2])
    # Unrecorded running (NaN) counts as running, as everywhere else.
    assert hide_steps(w.take(slice(0, 1)), np.full((1, 8), np.nan), as_gaps=True).mask.all()
