"""Reconstruction errors per window and channel, counted only while the machine runs.

A stopped machine's vibration and currents drop to nothing and its
temperatures drift to ambient: that says nothing about wear, yet those steps
are the hardest to reconstruct and would dominate the errors (a trip would
alarm). Errors therefore count the steps where the machine ran at least
``RUNNING_MIN`` of the step (by the process ``running`` flag), and every step
where that flag was not recorded.

Nor do the first ``WARMUP`` hours after a start: temperatures climb from
ambient with time constants of up to an hour or two, and that transient,
seen once or twice a day on a two-shift machine, put the healthy score's
tail (and so the threshold) at the start-ups instead of at wear. A start is
a step where the machine runs after a step inside the same window where it
did not, so a window's gate depends on that window's data alone (scoring a
range in pieces or at once gives the same errors).

A window where the machine ran only briefly (the edge of a weekend stop) has
an error averaged over a handful of steps, mostly a run-down or a start:
its channels get no error (NaN; with none left the window has no score) unless at least
``MIN_COUNTED`` of the window's steps count.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from pdm.detect.stages import OperatingEnvelope
from pdm.features.grid import MachineGrid
from pdm.features.windows import KEPT_WHEN_STOPPED, RUNNING_MIN, WindowSet, ran, stops_with_machine

#: Hours after a start whose steps do not count (thermal warm-up).
WARMUP_HOURS = 3.0
#: Share of a window's steps that must count for its errors to be computed.
MIN_COUNTED = 0.25


def count_scaled(z: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Channel z-scores (n, C) of window means scaled as a full window's: ``z * sqrt(counted)``, ``counted`` (n,)
    each window's share of steps whose errors count (:func:`step_gate`'s mean).

    A window's error is the mean over its counted steps; over a third of the window (a weekend stop begins in
    it) that mean scatters about sqrt(3) times as far as over all of it, and the machine score (the top
    channels' mean) rises with the scatter alone: on the held-back fleets TSHAE's median score in windows
    holding a stop was 2.8x that of windows run throughout (Conv-AE 1.5x, PCA 3.6x), and its alarms were
    raised as weekends began. Scaled, every window's z has the scatter of a full one; a fault's shift in a
    part-window counts for less, as its evidence is less. NaN shares (unknown) count as full.
    """
    share = np.clip(np.nan_to_num(np.asarray(counted, float), nan=1.0), 0.0, 1.0)
    return np.asarray(z, float) * np.sqrt(share)[:, None]


def counted_share(running: np.ndarray, step: Any, last: int | None = None) -> np.ndarray:
    """(n,) each window's share of steps whose errors count (:func:`step_gate` of its ``running`` values (n, T)
    on a grid of ``step``, a pandas frequency string or Timedelta): what :func:`count_scaled` scales by.
    ``last``: of each window's last steps only (those that count, :func:`gated_step_errors`)."""
    gate = step_gate(np.asarray(running, float), step_hours(step))
    return (gate if last is None else gate[:, -last:]).mean(axis=1)


def step_hours(step: Any) -> float:
    """A grid step in hours, from a pandas frequency string, a Timedelta or nanoseconds (int)."""
    return float(pd.Timedelta(step).total_seconds() / 3600)


def grid_step_hours(grid: MachineGrid) -> float:
    """The step of ``grid``'s time index in hours (0.0 for a grid of fewer than two steps)."""
    return step_hours(grid.index[1] - grid.index[0]) if len(grid.index) > 1 else 0.0


def step_gate(running: np.ndarray, step_hours: float, warmup_hours: float = WARMUP_HOURS) -> np.ndarray:
    """(n, T) 1 where a step counts, from the windows' ``running`` values (NaN = not recorded).

    A step counts when the machine ran at least :data:`RUNNING_MIN` of it (or
    the flag was not recorded) and no start lies within ``warmup_hours``
    before it inside the same window.
    """
    ok = ran(running)
    warm_steps = int(round(warmup_hours / step_hours)) if step_hours > 0 else 0
    if warm_steps > 0 and ok.shape[1] > 1:
        starts = np.zeros_like(ok)
        starts[:, 1:] = ok[:, 1:] & ~ok[:, :-1]
        seen = np.cumsum(starts, axis=1)  # starts up to and including each step
        before = np.zeros_like(seen)
        before[:, warm_steps:] = seen[:, :-warm_steps]
        ok = ok & (seen - before == 0)  # no start within the last warm_steps steps
    return ok.astype(np.float32)


def running_gate(grid: MachineGrid, windows: WindowSet, window: int,
                 warmup_hours: float = WARMUP_HOURS, *, running: np.ndarray | None = None) -> np.ndarray:
    """(n, T) :func:`step_gate` of the windows of ``grid`` (its ``running`` context).

    ``running``: the windows' :func:`window_running` values when the caller already cut them.
    """
    return step_gate(window_running(grid, windows, window) if running is None else running,
                     grid_step_hours(grid), warmup_hours)


def window_running(grid: MachineGrid, windows: WindowSet, window: int) -> np.ndarray:
    """(n, T) the grid's ``running`` values at each window's steps (NaN = not recorded)."""
    running = grid.context["running"].to_numpy(dtype=float)
    pos = np.searchsorted(grid.index.asi8, windows.start)
    return running[pos[:, None] + np.arange(window)[None, :]] if len(pos) else np.zeros((0, window))


def operating_points(windows: WindowSet, running: np.ndarray, fields: tuple[str, ...] = ("speed", "load")) -> dict[str, np.ndarray]:
    """Per window (n,), the median of each context field over the steps where the machine ran (NaN: it never ran)."""
    from pdm.features.grid import CONTEXT_CHANNELS

    counted = ran(running)
    out = {}
    for f in fields:
        v = windows.context[:, CONTEXT_CHANNELS.index(f)].astype(float)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: a window in which it never ran
            out[f] = np.nanmedian(np.where(counted, v, np.nan), axis=1) if len(v) else np.zeros(0)
    return out


def operating_ranges(windows: WindowSet, running: np.ndarray, fields: tuple[str, ...] | list[str] = ("speed", "load"),
                     spread: float = 0.1) -> dict[str, np.ndarray]:
    """Per window (n, 2), each context field's [``spread``, 1 − ``spread``] quantiles over the steps where the
    machine ran (NaN: it never ran): the window's operating range (:class:`OperatingEnvelope` of kind "window")."""
    from pdm.features.grid import CONTEXT_CHANNELS

    counted = ran(running)
    return {f: _ranges(np.where(counted, windows.context[:, CONTEXT_CHANNELS.index(f)].astype(float), np.nan), spread)
            for f in fields}


def grid_operating_ranges(grid: MachineGrid, window: int, fields: tuple[str, ...] | list[str] = ("speed", "load"),
                          spread: float = 0.1, stride: int = 1) -> dict[str, np.ndarray]:
    """:func:`operating_ranges` of every ``window``-step window of ``grid`` (every ``stride`` steps): what an
    envelope of the training range is fitted on."""
    counted = ran(grid.context["running"].to_numpy(dtype=float))
    out = {}
    for f in fields:
        v = np.where(counted, grid.context[f].to_numpy(dtype=float), np.nan)
        if len(v) < window:
            out[f] = np.zeros((0, 2))
            continue
        out[f] = _ranges(np.lib.stride_tricks.sliding_window_view(v, window)[::stride], spread)
    return out


def training_envelope(grid: MachineGrid, window: int) -> OperatingEnvelope:
    """The operating envelope (kind "window") of a training range's grid, for ``window``-step windows."""
    return OperatingEnvelope.of_windows(grid_operating_ranges(grid, window, stride=max(1, window // 48)))


def _ranges(v: np.ndarray, spread: float) -> np.ndarray:
    if not len(v):
        return np.zeros((0, 2))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: a window in which it never ran
        return np.stack([np.nanquantile(v, spread, axis=1), np.nanquantile(v, 1 - spread, axis=1)], axis=1)


def inside_envelope(envelope: OperatingEnvelope, windows: WindowSet, running: np.ndarray) -> np.ndarray:
    """Per window (n,): True where it ran inside ``envelope``, judged by the statistic the envelope was fitted on
    (each window's operating range for kind "window", its median for kind "step")."""
    if envelope.by == "window":
        return envelope.apply(operating_ranges(windows, running, envelope.fields, envelope.spread))
    return envelope.apply(operating_points(windows, running, tuple(envelope.fields)))


def running_values(grid: MachineGrid, fields: tuple[str, ...] = ("speed", "load")) -> dict[str, np.ndarray]:
    """Each context field of ``grid`` at the steps where the machine ran (for :class:`OperatingEnvelope`.fit)."""
    counted = ran(grid.context["running"].to_numpy(dtype=float))
    return {f: grid.context[f].to_numpy(dtype=float)[counted] for f in fields}


def hide_stopped(grid: MachineGrid, windows: WindowSet, window: int) -> WindowSet:
    """A copy of ``windows`` whose stopped steps are unobserved (value NaN, mask 0) except in temperatures.

    The model's input when errors are scored: shown a stop's idle vibration
    (noise: crest factor and kurtosis of nothing), the reconstruction of the
    running steps beside it was pulled towards it (the window before a
    weekend stop scored 5-30× an ordinary one, and set thresholds); hidden,
    the model fills those steps from the context as it does any missing
    value. Temperatures stay: their course while stopped is the thermal state
    the restart begins from. Steps whose ``running`` flag was not recorded
    stay as they are.
    """
    return hide_steps(windows, window_running(grid, windows, window))


def hide_environment(windows: WindowSet, rise_over: str | None) -> WindowSet:
    """A copy of ``windows`` whose surroundings' channels (ambient temperature) are unobserved, when the
    machine's temperatures are read as their rise over it (``rise_over``, the scaler's; else unchanged).

    The model's input when errors are scored and calibrated. The weather is not the machine: its
    error is no part of the score (:func:`pdm.detect.rootcause.environment_mask`), and with
    temperatures read as rises the model needs nothing from it. Shown to the model, another season's
    ambient temperature (outside the month it was trained on) moved its reconstruction of the
    machine's vibration: measured on development seed 11, fan-017's windows beside its weekend
    stops in March scored 3-6x its January ones on the 1x/2x bands and kurtosis, and with the
    ambient channel unobserved they scored as in January (the January windows did not change).
    The model fills the channel as it fills any missing sensor (training hides channels at random).
    """
    from pdm.detect.rootcause import environment_mask

    if not rise_over:
        return windows
    env = environment_mask(list(windows.channels))
    if not env.any():
        return windows
    return _unobserved(windows, env[None, :, None])


def _unobserved(windows: WindowSet, where: np.ndarray) -> WindowSet:
    """A copy of ``windows`` whose values are NaN and unobserved (mask 0) where ``where`` (broadcast to (n, C, T))."""
    import dataclasses

    values = np.where(where, np.nan, windows.values).astype(np.float32)
    mask = np.where(where, 0.0, windows.mask).astype(np.float32)
    return dataclasses.replace(windows, values=values, mask=mask)


def hide_steps(windows: WindowSet, running: np.ndarray, *, as_gaps: bool = False,
               step_hours: float | None = None) -> WindowSet:
    """:func:`hide_stopped` from the windows' own ``running`` values (n, T) (NaN = not recorded).

    ``as_gaps``: a stop, and with ``step_hours`` (the grid's step) the warm-up after each start too, is
    shown as a gap in the record of a machine that ran on (:func:`stops_as_gaps`): the model sees the
    steps whose errors count and nothing else.
    """
    stopped = ~ran(running)
    if as_gaps:
        uncounted = stopped if step_hours is None else step_gate(np.asarray(running, float), step_hours) == 0
        return stops_as_gaps(windows, stopped, uncounted)
    hide = np.array([stops_with_machine(c) for c in windows.channels], bool)
    if not stopped.any() or not hide.any():
        return windows
    return _unobserved(windows, stopped[:, None, :] & hide[None, :, None])


#: Context fields that say whether and how a machine ran: :func:`stops_as_gaps` holds them over a stop.
OPERATING_FIELDS = ("speed", "load", "running")


def stops_as_gaps(windows: WindowSet, stopped: np.ndarray, hidden: np.ndarray | None = None) -> WindowSet:
    """A copy of ``windows`` in which each stopped step (``stopped``, (n, T)) reads as a gap in a running record.

    Every sensor channel is unobserved there, temperatures included (and at
    the steps ``hidden`` as well, (n, T), which default to the stopped ones:
    the scorer adds the warm-up after each start), and the operating context
    (:data:`OPERATING_FIELDS`) holds the last running step's values (a stop at
    the window's start: the first running step's). A window with no step left
    shown is returned as it was (it is not scored).

    Why: a fleet model reads a machine's duty cycle from the stops a window
    shows it. Temperatures are scaled over every step, so a machine that stops
    every night has its running temperatures well above its median and one that
    runs around the clock at it; shown a stop, the model expects the former's
    level even from the latter (README, "Stops in a window": a three-shift
    fan's imputed temperatures and current 0.6-0.8 IQR high over the running
    hours of every window holding its weekend stop, back to normal with the
    stop held out of the context). Only counted steps are scored (running, past
    the warm-up, :data:`WARMUP_HOURS`), so the others' values are never needed;
    shown a cold restart's warm-up with no stop before it, the model would
    read the cold machine as a running one gone wrong.
    """
    import dataclasses

    from pdm.features.grid import CONTEXT_CHANNELS

    stopped = np.asarray(stopped, bool)
    hidden = stopped if hidden is None else np.asarray(hidden, bool) | stopped
    if not hidden.any():
        return windows
    on = ~stopped
    some = np.asarray((~hidden).any(axis=1), bool)[:, None]
    steps = np.arange(stopped.shape[1])
    last = np.maximum.accumulate(np.where(on, steps, -1), axis=1)  # the latest running step so far
    first = np.argmax(on, axis=1)  # each window's first running step (0 where none: unused)
    src = np.where(last >= 0, last, first[:, None])
    rows = np.arange(len(stopped))[:, None]
    context = windows.context.copy()
    for f in OPERATING_FIELDS:
        if f in CONTEXT_CHANNELS and CONTEXT_CHANNELS.index(f) < context.shape[1]:
            k = CONTEXT_CHANNELS.index(f)
            context[:, k, :] = np.where(stopped & some, context[rows, k, src], context[:, k, :])
    gaps = _unobserved(windows, (hidden & some)[:, None, :])
    return dataclasses.replace(gaps, context=context)


def check_trim(share: float, name: str = "trim") -> float:
    """``share`` if it is a trim :func:`masked_mean` accepts (in [0, 0.5)), else a ValueError naming ``name``."""
    if not 0.0 <= share < 0.5:
        raise ValueError(f"{name} must be in [0, 0.5), got {share}")
    return share


def masked_mean(per_step: np.ndarray, mask: np.ndarray, min_count: int = 1, trim: float = 0.0) -> np.ndarray:
    """Mean of ``per_step`` (n, C, T) over the steps where ``mask`` is 1 → (n, C).

    NaN where fewer than ``min_count`` (at least 1) steps count. ``trim`` > 0
    leaves out the largest ``floor(trim * count)`` counted steps of each window
    and channel (an upper-trimmed mean): one outlying reading (a spike) then
    does not carry a window's error, while a change that lasts longer than
    the trimmed share still does. ``min_count`` is judged before trimming.
    """
    check_trim(trim)
    count = mask.sum(axis=2)
    values = np.nan_to_num(per_step) * mask
    total, kept = values.sum(axis=2), count
    if trim > 0:
        drop = np.floor(trim * count).astype(int)
        if drop.any():
            largest = -np.sort(np.where(mask > 0, -values, np.inf), axis=2)  # counted steps first, largest first
            ranks = np.arange(per_step.shape[2])
            total = total - np.where(ranks < drop[..., None], largest, 0.0).sum(axis=2)
            kept = count - drop
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= max(min_count, 1), total / np.maximum(kept, 1), np.nan)


def window_errors(windows: WindowSet, reconstruction: np.ndarray, gate: np.ndarray | None = None,
                  min_count: int = 1, trim: float = 0.0) -> np.ndarray:
    """Mean absolute error per window and channel over observed (and gated) steps: (n, C).

    NaN where fewer than ``min_count`` (at least 1) steps of the channel count; ``trim``: as in
    :func:`masked_mean`.
    """
    mask = windows.mask if gate is None else windows.mask * gate[:, None, :]
    return masked_mean(np.abs(np.nan_to_num(windows.values) - reconstruction), mask, min_count, trim)


def window_residuals(windows: WindowSet, reconstruction: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """Mean signed residual (value - reconstruction) per window and channel over the gated steps: (n, C).

    Which way each channel moved from what the model expected (scaled units;
    NaN as in :func:`gated_errors`): the root cause reads a falling crest
    factor beside a rising tone differently from a rising one beside impacts.
    """
    mask = windows.mask * gate[:, None, :]
    return masked_mean(np.nan_to_num(windows.values) - reconstruction, mask, min_count=_min_counted(gate))


def window_levels(windows: WindowSet, gate: np.ndarray) -> np.ndarray:
    """Mean value per window and channel over the gated steps (scaled units; NaN as in :func:`gated_errors`): (n, C).

    What the machine itself did, with no model: an excursion's root cause
    compares it with the excursion's baseline (:mod:`pdm.detect.excursion`).
    """
    return masked_mean(np.nan_to_num(windows.values), windows.mask * gate[:, None, :], min_count=_min_counted(gate))


def gated_errors(windows: WindowSet, reconstruction: np.ndarray, gate: np.ndarray, trim: float = 0.0,
                 last: int | None = None) -> np.ndarray:
    """:func:`window_errors` under ``gate``, NaN for channels with under :data:`MIN_COUNTED` of the steps;
    ``last``: as in :func:`gated_step_errors`, which computes it from the reconstruction's step errors."""
    return gated_step_errors(np.abs(np.nan_to_num(windows.values) - reconstruction), windows, gate, trim, last)


def gated_step_errors(step_errors: np.ndarray, windows: WindowSet, gate: np.ndarray, trim: float = 0.0,
                      last: int | None = None) -> np.ndarray:
    """:func:`gated_errors` from any detector's per-step errors (n, C, T) instead of a reconstruction.

    ``trim``: as in :func:`masked_mean`. ``last``: only each window's last ``last`` steps count (the model
    still reads the whole window), :data:`MIN_COUNTED` of them; None: every step.
    """
    mask = windows.mask
    if last is not None:
        step_errors, mask, gate = step_errors[..., -last:], mask[..., -last:], gate[:, -last:]
    return masked_mean(step_errors, mask * gate[:, None, :], _min_counted(gate), trim)


def last_steps(window: int, last: int | None) -> int | None:
    """``last`` checked against a ``window``-step window (None: every step): a count of its final steps."""
    if last is None:
        return None
    if not 1 <= int(last) <= window:
        raise ValueError(f"the scored part of a window must be 1 to {window} steps, got {last}")
    return int(last)


def gated_window_errors(errors: np.ndarray, windows: WindowSet, gate: np.ndarray) -> np.ndarray:
    """A detector's window errors (n, C) kept only where :func:`gated_errors` would count the channel.

    For detectors that score a window as a whole (no per-step error): NaN where
    fewer than :data:`MIN_COUNTED` of the channel's steps are observed and gated.
    """
    counted = (windows.mask * gate[:, None, :]).sum(axis=2)
    return np.where(counted >= max(_min_counted(gate), 1), errors, np.nan)


def _min_counted(gate: np.ndarray) -> int:
    """Steps of a window (n, T) ``gate`` that must count for a channel's error: :data:`MIN_COUNTED` of them."""
    return int(np.ceil(MIN_COUNTED * gate.shape[1])) if gate.ndim == 2 else 1


def grid_windows_errors(grid: MachineGrid, windows: WindowSet, reconstruction: np.ndarray,
                        window: int, *, running: np.ndarray | None = None, trim: float = 0.0,
                        last: int | None = None) -> np.ndarray:
    """:func:`gated_errors` with the :func:`running_gate` of ``grid`` (``running``: as there; ``trim``: as in
    :func:`masked_mean`; ``last``: as in :func:`gated_step_errors`)."""
    return gated_errors(windows, reconstruction, running_gate(grid, windows, window, running=running), trim, last)


__all__ = ["KEPT_WHEN_STOPPED", "MIN_COUNTED", "RUNNING_MIN", "WARMUP_HOURS", "check_trim", "count_scaled",
           "counted_share", "gated_errors", "gated_step_errors", "last_steps", "gated_window_errors", "grid_windows_errors",
           "grid_operating_ranges", "hide_environment", "hide_steps", "hide_stopped", "stops_as_gaps", "inside_envelope", "masked_mean",
           "operating_points", "operating_ranges", "ran", "running_gate", "running_values", "step_gate", "training_envelope", "window_errors", "window_levels", "window_residuals",
           "window_running"]
