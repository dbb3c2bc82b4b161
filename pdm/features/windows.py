"""Scale aligned channels robustly and cut them into model windows.

Amplitude-like vibration features (rms, peak, band energies) span decades and
grow multiplicatively with a fault, so they are log-transformed first. Every
channel is then centred on its median and divided by its inter-quartile
range, fitted per machine on healthy data only, so a fault's growth is never
learnt as normal.

Temperatures are taken as their rise over the machine's ambient temperature
when it has that sensor (``rise_over``), the way a reliability engineer reads
a bearing or winding temperature: the season moves every temperature by the
same few kelvin, and a model fitted on a winter month otherwise sees a warm
spring as an anomaly on every temperature channel (the held-back fleet's
healthy scores doubled from January to April). A step whose ambient reading
is missing has no rise (masked, not filled).

A machine's vibration and currents are fitted on the steps it ran
(``running_only``), and its stopped steps are hidden (unobserved) in them: a
stopped machine's vibration is nothing, and fitted over both states the
inter-quartile range spanned the jump between them. On a pump running 70 % of
its shifts, the axial 2x band's range over all healthy steps was 6.3 (log
units), over its running steps 0.03: a misalignment that raised the band by
1.9 moved the scaled value by 0.3, under the reconstruction noise. The log
amplitudes' range is held at :data:`LOG_IQR_FLOOR` (about 2 dB) at least: on
the running noise alone, the 8-12 % a work order moves a baseline by read as
a lasting anomaly (dev seed 5: false alarms 1 -> 7). Temperatures keep every step and their range (their course while stopped is
the thermal state a restart begins from). A machine without a ``running``
record, or that ran on too few healthy steps, is fitted over all of them.

Windows that touch a known failure (onset to repair end) or maintenance are
kept out of training when labels are given.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pdm.features.grid import CONTEXT_CHANNELS, DAYS_SINCE_CAP, EVENT_TYPES, MachineGrid

log = logging.getLogger(__name__)

_LOG_FIELDS = ("rms", "peak", "band_1x", "band_2x", "band_bpfo", "band_bpfi", "band_hf")

#: A step counts as running when the machine ran at least this share of it.
RUNNING_MIN = 0.9
#: Channels (by id prefix) that keep their stopped steps: a temperature's course while stopped is the thermal state.
KEPT_WHEN_STOPPED = ("temperature.",)
#: Running healthy steps a machine needs for its vibration and currents to be fitted on them alone.
MIN_RUNNING_STEPS = 50
#: Least inter-quartile range of a log-amplitude vibration feature: ln 1.25, about 2 dB. Fitted on running
#: steps, a tone's range is its noise (0.03-0.05), and a work order that moves the baseline by 8-12 %
#: (remounted sensor, rebalanced rotor) would read as 2-3 ranges for good; vibration practice alarms at
#: +6 dB over baseline and shrugs at 1-2 dB. A fault's rise of a doubling (0.7) still reads 3 ranges and more.
LOG_IQR_FLOOR = 0.223
#: Days after a work order over which the "days since work order" context runs from 0 to 1 (then stays at 1):
#: a run-in, as long as the new baseline a work order takes (:class:`pdm.detect.rebaseline.Rebaseline`, 48 h).
#: Run over 30 days, the channel was a clock the model read its errors against: on development seed 11,
#: comp-010's calibration week came right after a work order (0.13), its errors doubled as the channel rose
#: to 1 four weeks later, and with the channel held at one value its errors were flat.
WORK_ORDER_RUN_IN_DAYS = 2.0
#: The run-in of models saved before :data:`WORK_ORDER_RUN_IN_DAYS` (their scalers lack the key).
WORK_ORDER_DAYS_BEFORE = 30.0


def ran(running: np.ndarray) -> np.ndarray:
    """Steps where the machine ran at least :data:`RUNNING_MIN` of the step, or the flag was not recorded (NaN)."""
    r = np.asarray(running, float)
    return np.where(np.isfinite(r), r >= RUNNING_MIN, True)


def stops_with_machine(channel: str) -> bool:
    """True for a channel that means nothing while the machine is stopped (vibration, currents)."""
    return not str(channel).startswith(KEPT_WHEN_STOPPED)


def _is_log(channel: str) -> bool:
    return channel.startswith("vibration.") and channel.rsplit(".", 1)[-1] in _LOG_FIELDS


def ambient_channel(channels: list[str]) -> str | None:
    """The ambient temperature channel among ``channels`` (the first), or None."""
    from pdm.detect.rootcause import is_environment

    return next((c for c in channels if c.startswith("temperature.") and is_environment(c)), None)


def is_machine_temperature(channel: str) -> bool:
    """A temperature of the machine (bearing, winding, oil, casing), not of its surroundings."""
    from pdm.detect.rootcause import is_environment

    return channel.startswith("temperature.") and not is_environment(channel)


@dataclass
class RobustScaler:
    """Per-channel (log →) median / IQR scaling, fitted on healthy rows."""

    channels: list[str]
    median: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iqr: np.ndarray = field(default_factory=lambda: np.ones(0))
    problems: list[str] = field(default_factory=list)
    #: Channel whose value is subtracted from the machine's temperatures before scaling (None: as measured).
    rise_over: str | None = None
    #: Channels that stop with the machine fitted on its running steps, and hidden where it did not run.
    running_only: bool = False
    #: The "days since work order" context runs from 0 to 1 over these days (:data:`WORK_ORDER_RUN_IN_DAYS`).
    work_order_days: float = WORK_ORDER_RUN_IN_DAYS
    #: Temperatures take their median and IQR from the steps the machine ran (their stopped steps stay shown).
    temperatures_running: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.work_order_days <= DAYS_SINCE_CAP:
            raise ValueError(f"work_order_days {self.work_order_days:g}: the work-order run-in must lie in "
                             f"(0, {DAYS_SINCE_CAP:g}] days (the grid caps days since a work order at "
                             f"{DAYS_SINCE_CAP:g})")

    def _pre(self, values: np.ndarray) -> np.ndarray:
        out = values.astype(np.float64, copy=True)
        ref = out[:, self.channels.index(self.rise_over)].copy() if self.rise_over in self.channels else None
        for j, c in enumerate(self.channels):
            if _is_log(c):
                out[:, j] = np.log(np.maximum(out[:, j], 0) + 1e-4)
            elif ref is not None and is_machine_temperature(c):
                out[:, j] -= ref
        return out

    def fit(self, frame: pd.DataFrame, rise_over: str | None = None, running: np.ndarray | None = None, *,
            temperatures_running: np.ndarray | None = None) -> RobustScaler:
        """Fit on ``frame`` (rows = healthy grid steps, columns = ``channels``).

        ``rise_over``: an ambient temperature channel to read the machine's
        temperatures against; kept only where that channel is observed on at
        least half of the rows (a machine without the sensor keeps its
        temperatures as measured, and says so). ``running`` (rows,): the
        machine's ``running`` context at those rows (NaN = not recorded);
        given, the channels that stop with the machine are fitted on the rows
        where it ran (:func:`ran`), when there are :data:`MIN_RUNNING_STEPS`,
        and :meth:`transform` hides their stopped steps (``running_only``).

        ``temperatures_running`` (rows,): the ``running`` context again; given,
        the temperatures' median and IQR are taken over the rows where the
        machine ran (with :data:`MIN_RUNNING_STEPS` of them), their stopped
        steps still scaled and shown (``temperatures_running``). Over every
        step, a temperature's median depends on the machine's duty cycle: a
        machine that stops every night has its running temperatures well above
        it, one that runs around the clock at it, and a model shared by both
        reads that level from the stops it sees in a window (TSHAE's imputed
        temperatures and current in a three-shift fan's running hours rose by
        0.6-0.8 IQR in every window holding its weekend stop, held-back fleet
        2027; hiding the stop from the context put them back).
        """
        self.rise_over = None
        if rise_over is not None and rise_over in self.channels:
            seen = float(np.isfinite(frame[rise_over].to_numpy(np.float64)).mean()) if len(frame) else 0.0
            self.rise_over = rise_over if seen >= 0.5 else None
        x = self._pre(frame[self.channels].to_numpy())
        self.problems = []
        self.running_only = False
        if running is not None:
            on = ran(running)
            if int(on.sum()) >= MIN_RUNNING_STEPS:
                self.running_only = True
                x[np.ix_(~on, self._stopping())] = np.nan
            else:
                self.problems.append(f"ran on {int(on.sum())} of {len(on)} healthy steps (under {MIN_RUNNING_STEPS}): "
                                     "vibration and currents are scaled over all steps, stopped ones included")
        self.temperatures_running = False
        if temperatures_running is not None:
            on = ran(temperatures_running)
            temps = np.array([is_machine_temperature(c) for c in self.channels], bool)
            if int(on.sum()) >= MIN_RUNNING_STEPS and temps.any():
                self.temperatures_running = True
                x[np.ix_(~on, temps)] = np.nan  # for the statistics only: transform shows them
            elif temps.any():
                self.problems.append(f"ran on {int(on.sum())} of {len(on)} healthy steps (under "
                                     f"{MIN_RUNNING_STEPS}): temperatures are scaled over all steps")
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels are reported below
            q1, med, q3 = np.nanpercentile(x, [25, 50, 75], axis=0)
        iqr = q3 - q1
        if rise_over is not None and self.rise_over is None and any(map(is_machine_temperature, self.channels)):
            self.problems.append(f"{rise_over}: observed on under half of the healthy steps; temperatures are "
                                 "scaled as measured, not as their rise over ambient")
        for j, c in enumerate(self.channels):
            if np.isnan(med[j]):
                self.problems.append(f"{c}: always missing in the healthy data; it is masked out")
            elif not iqr[j] > 0:
                spread = np.nanstd(x[:, j])
                if not spread > 0:
                    self.problems.append(f"{c}: constant in the healthy data; scaled by 1")
                iqr[j] = spread * 1.349 if spread > 0 else 1.0
        self.median = np.nan_to_num(med, nan=0.0)
        self.iqr = np.where(np.isnan(iqr) | (iqr <= 0), 1.0, iqr)
        if self.running_only:
            floor = np.array([LOG_IQR_FLOOR if _is_log(c) else 0.0 for c in self.channels])
            self.iqr = np.maximum(self.iqr, floor)
        return self

    def _stopping(self) -> np.ndarray:
        return np.array([stops_with_machine(c) for c in self.channels], bool)

    def transform(self, frame: pd.DataFrame, running: np.ndarray | None = None) -> np.ndarray:
        """(rows, channels) scaled; NaN stays NaN.

        A ``running_only`` scaler needs ``running`` (rows,) and hides (NaN) the
        stopped steps of the channels that stop with the machine: scaled by
        their running range, a stop's nothing would be hundreds of ranges away.
        """
        out = ((self._pre(frame[self.channels].to_numpy()) - self.median) / self.iqr).astype(np.float32)
        if self.running_only:
            if running is None:
                raise ValueError("this scaler was fitted on running steps: transform needs the machine's running context")
            out[np.ix_(~ran(running), self._stopping())] = np.nan
        return out

    def to_dict(self) -> dict:
        out: dict = {"channels": self.channels, "median": self.median.tolist(), "iqr": self.iqr.tolist(),
                     "work_order_days": float(self.work_order_days)}
        if self.rise_over is not None:
            out["rise_over"] = self.rise_over
        if self.running_only:
            out["running_only"] = True
        if self.temperatures_running:
            out["temperatures_running"] = True
        return out

    @classmethod
    def from_dict(cls, d: dict) -> RobustScaler:
        # Keys absent in models saved before them: temperatures as measured, every step scaled and shown,
        # the work-order context over 30 days.
        return cls(list(d["channels"]), np.asarray(d["median"], dtype=np.float64), np.asarray(d["iqr"], dtype=np.float64),
                   rise_over=d.get("rise_over"), running_only=bool(d.get("running_only", False)),
                   work_order_days=float(d.get("work_order_days", WORK_ORDER_DAYS_BEFORE)),
                   temperatures_running=bool(d.get("temperatures_running", False)))


@dataclass
class WindowSet:
    """Windows of one or more machines, ready for the model (float32 arrays)."""

    values: np.ndarray  # (n, C, T), NaN where missing
    mask: np.ndarray  # (n, C, T), 1 observed
    context: np.ndarray  # (n, K, T)
    events: np.ndarray  # (n, E, T)
    start: np.ndarray  # (n,) int64 ns of each window's first step
    machine: np.ndarray  # (n,) object
    channels: list[str]
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.start)

    @staticmethod
    def concat(sets: list[WindowSet]) -> WindowSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            raise ValueError("no windows")
        arrays = {k: np.concatenate([getattr(s, k) for s in sets])
                  for k in ("values", "mask", "context", "events", "start", "machine")}
        return WindowSet(**arrays, channels=sets[0].channels, problems=[p for s in sets for p in s.problems])

    def take(self, idx: np.ndarray | slice) -> WindowSet:
        """The windows ``idx`` (an index array: copies; a slice: views), same channels."""
        return WindowSet(self.values[idx], self.mask[idx], self.context[idx], self.events[idx], self.start[idx],
                         self.machine[idx], self.channels, list(self.problems))

    def packed(self) -> np.ndarray:
        """values (NaN→0) | mask | context | events stacked on the channel axis: tsai's single-array X."""
        return np.concatenate([np.nan_to_num(self.values), self.mask, self.context, self.events], axis=1).astype(np.float32)


def excluded_steps(index: pd.DatetimeIndex, labels: pd.DataFrame | None, machine: str) -> np.ndarray:
    """True where a grid step lies in a fault (onset → repair end) or a maintenance of ``machine``."""
    out = np.zeros(len(index), dtype=bool)
    if labels is None or labels.empty:
        return out
    rows = labels[(labels["machine"] == machine) & (labels["is_failure"].astype(bool) | (labels["kind"] == "maintenance"))]
    t = pd.DatetimeIndex(index).as_unit("ns").asi8
    for start, end in zip(pd.to_datetime(rows["start"], utc=True), pd.to_datetime(rows["end"], utc=True), strict=True):
        out |= (t >= start.value) & (t <= end.value)
    return out


def grid_running(grid: MachineGrid, rows: np.ndarray | None = None) -> np.ndarray | None:
    """The grid's ``running`` context (steps,), NaN where not recorded; None without the column.

    ``rows``: a boolean mask of the grid's steps to keep (the rows a scaler is fitted on or transforms).
    """
    if "running" not in grid.context:
        return None
    running = grid.context["running"].to_numpy(dtype=float)
    return running if rows is None else running[rows]


def make_windows(grid: MachineGrid, scaler: RobustScaler, window: int, stride: int,
                 exclude: np.ndarray | None = None) -> WindowSet:
    """Cut the grid into windows of ``window`` steps every ``stride`` steps.

    Windows with any step in ``exclude`` are left out (training), and so are
    windows with nothing observed.
    """
    values = scaler.transform(grid.sensors, grid_running(grid))  # (steps, C)
    mask = np.isfinite(values)
    ctx = np.nan_to_num(grid.context[list(CONTEXT_CHANNELS)].to_numpy(np.float32))
    days = max(float(scaler.work_order_days), 1e-6)
    ctx[:, 3] = np.minimum(ctx[:, 3], days) / days  # days since work order → 0..1 over the run-in
    ev = grid.events[list(EVENT_TYPES)].to_numpy(np.float32) / 4.0
    n = len(values)
    starts = np.arange(0, n - window + 1, stride) if n >= window else np.array([], dtype=np.int64)
    if exclude is not None and len(starts):
        bad = np.concatenate([[0], np.cumsum(exclude.astype(np.int64))])
        starts = starts[(bad[starts + window] - bad[starts]) == 0]
    if len(starts):
        observed = np.concatenate([[0], np.cumsum(mask.any(axis=1))])
        starts = starts[(observed[starts + window] - observed[starts]) > 0]
    idx = starts[:, None] + np.arange(window)[None, :]
    def cut(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[idx].transpose(0, 2, 1)) if len(starts) else np.zeros((0, a.shape[1], window), np.float32)
    return WindowSet(
        values=cut(values), mask=cut(mask.astype(np.float32)), context=cut(ctx), events=cut(ev),
        start=grid.index.asi8[starts] if len(starts) else np.zeros(0, np.int64),
        machine=np.full(len(starts), grid.machine, dtype=object), channels=list(scaler.channels),
        problems=[f"{grid.machine}: {p}" for p in scaler.problems],
    )
