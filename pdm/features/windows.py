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

Windows that touch a known failure (onset to repair end) or maintenance are
kept out of training when labels are given.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pdm.features.grid import CONTEXT_CHANNELS, EVENT_TYPES, MachineGrid

log = logging.getLogger(__name__)

_LOG_FIELDS = ("rms", "peak", "band_1x", "band_2x", "band_bpfo", "band_bpfi", "band_hf")


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

    def _pre(self, values: np.ndarray) -> np.ndarray:
        out = values.astype(np.float64, copy=True)
        ref = out[:, self.channels.index(self.rise_over)].copy() if self.rise_over in self.channels else None
        for j, c in enumerate(self.channels):
            if _is_log(c):
                out[:, j] = np.log(np.maximum(out[:, j], 0) + 1e-4)
            elif ref is not None and is_machine_temperature(c):
                out[:, j] -= ref
        return out

    def fit(self, frame: pd.DataFrame, rise_over: str | None = None) -> RobustScaler:
        """Fit on ``frame`` (rows = healthy grid steps, columns = ``channels``).

        ``rise_over``: an ambient temperature channel to read the machine's
        temperatures against; kept only where that channel is observed on at
        least half of the rows (a machine without the sensor keeps its
        temperatures as measured, and says so).
        """
        self.rise_over = None
        if rise_over is not None and rise_over in self.channels:
            seen = float(np.isfinite(frame[rise_over].to_numpy(np.float64)).mean()) if len(frame) else 0.0
            self.rise_over = rise_over if seen >= 0.5 else None
        x = self._pre(frame[self.channels].to_numpy())
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels are reported below
            q1, med, q3 = np.nanpercentile(x, [25, 50, 75], axis=0)
        iqr = q3 - q1
        self.problems = []
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
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, channels) scaled; NaN stays NaN."""
        return ((self._pre(frame[self.channels].to_numpy()) - self.median) / self.iqr).astype(np.float32)

    def to_dict(self) -> dict:
        out = {"channels": self.channels, "median": self.median.tolist(), "iqr": self.iqr.tolist()}
        if self.rise_over is not None:
            out["rise_over"] = self.rise_over
        return out

    @classmethod
    def from_dict(cls, d: dict) -> RobustScaler:
        return cls(list(d["channels"]), np.asarray(d["median"], dtype=np.float64), np.asarray(d["iqr"], dtype=np.float64),
                   rise_over=d.get("rise_over"))  # absent in models saved before it: temperatures as measured


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


def make_windows(grid: MachineGrid, scaler: RobustScaler, window: int, stride: int,
                 exclude: np.ndarray | None = None) -> WindowSet:
    """Cut the grid into windows of ``window`` steps every ``stride`` steps.

    Windows with any step in ``exclude`` are left out (training), and so are
    windows with nothing observed.
    """
    values = scaler.transform(grid.sensors)  # (steps, C)
    mask = np.isfinite(values)
    ctx = np.nan_to_num(grid.context[list(CONTEXT_CHANNELS)].to_numpy(np.float32))
    ctx[:, 3] = ctx[:, 3] / 30.0  # days since work order → 0..1
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
