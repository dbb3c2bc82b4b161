"""A machine that runs outside its operating envelope for long: scored against that excursion's own baseline.

A window at a speed or load the model never saw in training is not scored
(:class:`pdm.detect.stages.OperatingEnvelope`): the model's errors there say
more about the extrapolation than about wear (scored like any other window,
they raised 0.4-0.8 false alarms per machine-month on the held-back fleets,
against 0.1-0.2). But a product run at 0.4x load for ten days leaves the
machine unwatched for ten days, and a fault that grows through it is seen
only at its end (on seed 4242, comp-005's lubrication loss: 45 of its 68
windows from onset to failure were outside; on seed 2027, pump-016's
imbalance: 83 of 141).

So, as an analyst takes a new baseline after a change of duty:

- An *excursion* runs from the first window outside the envelope to the
  next window scored inside it or re-baselined after a work order
  (:mod:`pdm.detect.rebaseline`); windows in which the machine did not run
  do not end it.
- Windows that began before its first window ended hold the change of duty
  itself (and the temperatures settling after it): not scored, and in no
  baseline (``settle``). The next ``hours`` of windows in which the
  machine ran (at the model's stride, at least ``min_windows``) are its
  baseline: not scored either. Each channel's new level is the median of its z-scores over them
  where that is above 0 (only up: the extrapolation's bias), and, with
  ``spread``, its z-scores are also divided by their spread over them (IQR
  / 1.349) where that is above 1 (a model extrapolating is noisier as well
  as biased). With ``detrend`` that spread is taken about the baseline's
  trend (each channel's Theil-Sen line over the windows' times), not about
  its median: the scatter from window to window is the extrapolation's
  noise, a steady rise through the baseline is not (a fault growing there,
  as on seed 2027's pump-016, whose bearing bands' z-scores rose from 29 to
  43 over its 48 h baseline: measured about the median, that rise became a
  spread of 5 and hid the next days' growth; about its line, the spread
  is the noise's).
- The excursion's later windows are scored against those levels (state
  ``new_regime`` in ``pdm_score``): a fault that grows during the run rises
  above its own baseline; a fault already there when the run began is in
  the baseline, so only its growth counts.

Root cause inside an excursion compares the window with what the machine
did in the excursion's baseline, not with the model's errors: a model
extrapolating imputes every channel from the others (on seed 2027 a
growing 1x tone at 0.4x load made the winding temperature's error the
largest, and a cooling failure's errors fell below their baseline level
while the bearing bands' rose). With ``levels`` (each window's mean of each
channel over the steps that count, in the scaler's units) the baseline also
keeps each channel's median level and spread (IQR / 1.349, at least
:data:`VALUE_SPREAD_MIN`); the excursion's scored windows get their
``change`` (level - baseline median, scaler units) and ``change_z``
(change / spread), which :func:`pdm.detect.rootcause.explain` ranks by.

A finished baseline is kept in ``pdm_baseline`` (kind ``excursion``, at the
excursion's first window), so later runs (the DAG scores every few minutes)
read its levels instead of scoring its windows again.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

#: What a window is to this stage (:meth:`ExcursionBaseline.apply`).
INSIDE, RESET, OUT, IDLE = 0, 1, 2, 3
#: ``kind`` tag of an excursion's baseline in ``pdm_baseline`` (a work order's new baseline has none).
EXCURSION = "excursion"
#: Smallest spread of a channel's level over an excursion's baseline, in the scaler's units (its healthy
#: IQR): a channel steady to the noise there would otherwise turn any small change into a large one.
#: On the held-back fleets' excursion alarms 0.02-0.1 ranked alike; at 0.2 and above the crest factor (a
#: narrow healthy range) outranked the band that moved it.
VALUE_SPREAD_MIN = 0.05


class Fitted(NamedTuple):
    """An excursion's baseline: per channel, its z-scores' level and spread, and (when the windows' channel
    levels were given) the channels' own median level and spread there."""

    levels: np.ndarray
    spread: np.ndarray
    value_levels: np.ndarray | None = None
    value_spread: np.ndarray | None = None


@dataclass
class Excursions:
    """What :meth:`ExcursionBaseline.apply` gives."""

    z: np.ndarray  # (n, C): the input, re-levelled where ``scored``
    scored: np.ndarray  # (n,) bool: outside windows scored against their excursion's baseline
    baseline: np.ndarray  # (n,) bool: outside windows in an excursion's baseline (not scored)
    finished: list[dict[str, Any]] = field(default_factory=list)  # baselines complete in these windows
    change: np.ndarray | None = None  # (n, C) with levels: scored windows' level - the baseline's median (else NaN)
    change_z: np.ndarray | None = None  # (n, C) change / the baseline's spread of the level


def theil_sen(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each column's Theil-Sen slope of ``y`` (n, C) on ``t`` (n,) (:func:`scipy.stats.theilslopes` over the
    column's finite points; NaN with fewer than two): the median of the slopes between every two points, so a
    few outlying windows do not tilt it."""
    from scipy.stats import theilslopes

    t, y = np.asarray(t, float), np.asarray(y, float).reshape(len(t), -1)
    out = np.full(y.shape[1], np.nan)
    for c in range(y.shape[1]):
        ok = np.isfinite(y[:, c])
        if np.unique(t[ok]).size >= 2:
            out[c] = theilslopes(y[ok, c], t[ok]).slope
    return out


@dataclass
class ExcursionBaseline:
    """Per-excursion channel levels (and spreads) for windows outside the operating envelope (module doc)."""

    hours: float = 48.0
    min_windows: int = 4
    spread: bool = True
    detrend: bool = True
    settle: bool = True
    enabled: bool = True

    def settled(self, start: int, window_ns: int) -> int:
        """The first window end (ns) of an excursion that began at ``start`` that may be in its baseline."""
        return start + window_ns if self.settle else start

    def need(self, stride_ns: int) -> int:
        """Windows in which the machine ran that a baseline takes at this stride."""
        return max(self.min_windows, int(np.ceil(self.hours * 3.6e12 / stride_ns)))

    def fit(self, z: np.ndarray, times: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(levels, spreads) per channel from a baseline's z-scores (n, C) at ``times`` (ns, ascending; None:
        evenly spaced); a channel never seen: 0 and 1. With ``detrend`` the spread is that of each channel's
        residuals about its :func:`theil_sen` line."""
        z = np.asarray(z, float)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # channels with no finite z
            level = np.nanmedian(z, axis=0)
            about = z
            if self.spread and self.detrend and len(z) > 1:
                t = (np.arange(len(z), dtype=float) if times is None
                     else (np.asarray(times, np.int64) - int(np.asarray(times)[0])) / 3.6e12)
                about = z - t[:, None] * np.nan_to_num(theil_sen(t, z))
            q75, q25 = np.nanpercentile(about, [75, 25], axis=0)
        level = np.where(np.isfinite(level), np.maximum(level, 0.0), 0.0)
        spread = np.ones_like(level)
        if self.spread:
            iqr = (q75 - q25) / 1.349
            spread = np.where(np.isfinite(iqr), np.maximum(iqr, 1.0), 1.0)
        return level, spread

    @staticmethod
    def fit_values(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(median, spread) per channel of a baseline's window levels (n, C); a channel never seen: NaN."""
        v = np.asarray(levels, float)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(v, axis=0)
            q75, q25 = np.nanpercentile(v, [75, 25], axis=0)
        return med, np.maximum(np.nan_to_num((q75 - q25) / 1.349), VALUE_SPREAD_MIN)

    def apply(self, z: np.ndarray, kind: np.ndarray, times: np.ndarray, stride_ns: int,
              ongoing: int | None = None, known: dict[int, Fitted] | None = None,
              window_ns: int = 0, levels: np.ndarray | None = None) -> Excursions:
        """Re-levelled z-scores of the ``OUT`` windows of ``kind`` (ascending ``times``, window ends in ns).

        ``ongoing``: the start (ns) of an excursion the windows begin in (it
        began before them; its earlier outside windows that a baseline still
        needs are among these windows, or its baseline is in ``known``).
        ``known``: excursion start → :class:`Fitted` baselines finished
        before these windows. ``window_ns``: the windows' length; with
        ``settle``, outside windows that began before the excursion's first
        window ended (they hold the change of duty itself, and the
        temperatures' settling after it) are in no baseline, and not scored.
        ``levels`` (n, C): the windows' channel levels (module doc): the
        baselines keep their median and spread, and scored windows get their
        ``change`` against them (NaN where a known baseline has none).
        """
        z = np.asarray(z, float)
        kind = np.asarray(kind)
        times = np.asarray(times, np.int64)
        known = known or {}
        out = Excursions(z.copy(), np.zeros(len(z), bool), np.zeros(len(z), bool))
        if levels is not None:
            levels = np.asarray(levels, float)
            out.change, out.change_z = np.full(levels.shape, np.nan), np.full(levels.shape, np.nan)
        if not self.enabled:
            return out
        need = self.need(stride_ns)
        start: int | None = ongoing
        members: list[int] = []
        fitted: Fitted | None = known.get(ongoing) if ongoing is not None else None
        for i, k in enumerate(kind):
            if k in (INSIDE, RESET):
                start, members, fitted = None, [], None
                continue
            if k != OUT:
                continue
            if start is None:
                start, members, fitted = int(times[i]), [], known.get(int(times[i]))
            if fitted is None:
                if int(times[i]) < self.settled(start, window_ns):  # began before the excursion: settling
                    out.baseline[i] = True
                    continue
                members.append(i)
                out.baseline[i] = True
                if len(members) == need:
                    fitted = Fitted(*self.fit(z[members], times[members]),
                                    *(self.fit_values(levels[members]) if levels is not None else (None, None)))
                    done = {"time": start, "levels": fitted.levels.tolist(), "spread": fitted.spread.tolist(),
                            "windows": need, "last_ns": int(times[i])}
                    if fitted.value_levels is not None and fitted.value_spread is not None:
                        done.update(value_levels=fitted.value_levels.tolist(),
                                    value_spread=fitted.value_spread.tolist())
                    out.finished.append(done)
                continue
            out.z[i] = (z[i] - fitted.levels) / fitted.spread
            out.scored[i] = True
            if out.change is not None and out.change_z is not None and levels is not None \
                    and fitted.value_levels is not None and fitted.value_spread is not None:
                out.change[i] = levels[i] - fitted.value_levels
                out.change_z[i] = out.change[i] / fitted.value_spread
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ExcursionBaseline:
        return cls(**(d or {}))


__all__ = ["EXCURSION", "IDLE", "INSIDE", "OUT", "RESET", "VALUE_SPREAD_MIN", "ExcursionBaseline", "Excursions",
           "Fitted", "theil_sen"]
