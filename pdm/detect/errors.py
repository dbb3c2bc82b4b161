"""Reconstruction errors per window and channel, counted only while the machine runs.

A stopped machine's vibration and currents drop to nothing and its
temperatures drift to ambient: that says nothing about wear, yet those steps
are the hardest to reconstruct and would dominate the errors (a trip would
alarm). Errors therefore count the steps where the machine ran at least
``RUNNING_MIN`` of the step (by the process ``running`` flag), and every step
where that flag was not recorded.
"""

from __future__ import annotations

import numpy as np

from pdm.features.grid import MachineGrid
from pdm.features.windows import WindowSet

RUNNING_MIN = 0.9


def running_gate(grid: MachineGrid, windows: WindowSet, window: int) -> np.ndarray:
    """(n, T) 1 where a window's step counts (running, or running unknown), else 0."""
    running = grid.context["running"].to_numpy(dtype=float)
    step_ok = np.where(np.isfinite(running), running >= RUNNING_MIN, True)
    pos = np.searchsorted(grid.index.asi8, windows.start)
    if len(pos) == 0:
        return np.zeros((0, window), np.float32)
    idx = pos[:, None] + np.arange(window)[None, :]
    return step_ok[idx].astype(np.float32)


def window_errors(windows: WindowSet, reconstruction: np.ndarray, gate: np.ndarray | None = None) -> np.ndarray:
    """Mean absolute error per window and channel over observed (and gated) steps: (n, C), NaN if none."""
    mask = windows.mask if gate is None else windows.mask * gate[:, None, :]
    err = np.abs(np.nan_to_num(windows.values) - reconstruction) * mask
    count = mask.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, err.sum(axis=2) / count, np.nan)


def grid_windows_errors(grid: MachineGrid, windows: WindowSet, reconstruction: np.ndarray,
                        window: int) -> np.ndarray:
    """:func:`window_errors` gated by :func:`running_gate` of ``grid``."""
    return window_errors(windows, reconstruction, running_gate(grid, windows, window))


__all__ = ["RUNNING_MIN", "grid_windows_errors", "running_gate", "window_errors"]
