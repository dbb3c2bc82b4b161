"""The running gate: stopped steps and the warm-up after a start do not count in the errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from pdm.detect.errors import running_gate, window_errors


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
