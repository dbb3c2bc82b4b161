"""A new healthy baseline after a work order: the machine after a repair is not the machine before it.

A repair puts in a new bearing, re-aligns a coupling or re-balances a rotor;
planned maintenance re-assembles the machine; a replaced sensor reads with
its own gain. Each moves the machine's healthy vibration and temperature
levels a little (a few per cent), and a model calibrated before it scores
the new normal as an anomaly for good: an alarm opened before a breakdown
then never closes, and the next fault of the same machine can raise no
alarm of its own (measured: dev seed 5's comp-015 scored 9-11 x its
threshold for the six weeks after its repair, so its second bearing failure
was missed).

So, as a vibration analyst takes a new baseline after maintenance:

- Windows that span a work order mix two machines: not scored.
- The first ``hours`` of windows (at the model's stride) in which the
  machine ran, starting after it, are the new baseline: not scored either (like windows in which the machine did not run they neither
  raise nor clear an alarm); the median of each channel's error over them
  becomes that channel's new healthy level if it is higher than the
  calibration's. The spread (IQR), the threshold and the model stay: only
  the level moves, and only up. A lower level is kept out: two days are a
  short sample (a calm spell of weather or load), and a work order is no
  reason to alarm more readily than the calibration did (measured on dev
  seed 5: taking lower levels too raised false alarms from 8 to 12).
- Later windows are scored against the new levels, until the next work order.
  With fewer than ``min_windows`` scored baseline windows (the machine hardly
  ran) the earlier levels stay.

Work orders after which the machine's calibration windows hold less than a
baseline's worth (``hours`` of windows in which it ran;
:meth:`Rebaseline.seen_until`, ``work_orders_seen_to`` in detect.json) count:
a recalibration or fine-tune that saw a baseline's worth of the new normal
already has it, but one whose data ended sooner after the work order (or in
which the machine hardly ran after it) calibrated the machine as it was before
(dev seed 5: comp-015's planned maintenance 16 h before the end of its
training data lifted its 2x bands by 8 %, the axial one to z 40 from the first
scored window on, one alarm for four weeks that hid the bearing fault under
it; with the order counted, TSHAE, Conv-AE and PCA each caught that fault
over 72 h after its onset, with one false alarm more for TSHAE and none for
the others). Model directories without ``work_orders_seen_to`` count orders
from ``hours`` of wall-clock time before the end of the machine's last
calibration window (:meth:`Rebaseline.counted_from`; ``calibration_to``: a
fault, repair or maintenance near the end of the training range is kept out
of the calibration, which then ends days before the range does). Its
baseline is then taken from the windows after it, as for a
later one, including those still in the calibration's range. Work orders are
operator log entries of type ``work_order`` (breakdowns, repairs, planned
maintenance, sensor replacements), whatever their text.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Window status from :meth:`Rebaseline.segments`.
SCORED, SPANS_WORK_ORDER, BASELINE = 0, 1, 2


@dataclass
class Rebased:
    """What :meth:`Rebaseline.apply` gives: z-scores (n, C), window status, baselines taken and finished."""

    z: np.ndarray
    status: np.ndarray  # SCORED / SPANS_WORK_ORDER / BASELINE per window
    taken: int  # baselines whose levels were taken (the machine ran long enough)
    finished: list[dict[str, Any]]  # baselines complete in these windows (for pdm_baseline)

    @property
    def unscored(self) -> np.ndarray:
        return self.status != SCORED


@dataclass
class Rebaseline:
    """Per-machine error levels re-fitted after each work order (see the module doc).

    The new baseline is the first ``hours`` worth of scored windows (at the
    model's stride; windows in which the machine did not run do not count)
    starting after the work order, looked for up to ``max_hours`` after it.
    """

    hours: float = 48.0
    max_hours: float = 168.0
    min_windows: int = 4
    event_type: str = "work_order"
    enabled: bool = True  # False: score against the calibration's levels throughout

    @property
    def span_ns(self) -> int:
        return int(self.max_hours * 3.6e12)

    def counted_from(self, calibrated_to: int) -> int:
        """The time (ns) from which work orders take a new baseline: ``hours`` before ``calibrated_to``,
        the end of the data the machine's calibration saw (0: unknown, every work order counts)."""
        return max(0, int(calibrated_to) - int(self.hours * 3.6e12)) if calibrated_to else 0

    def seen_until(self, calibration_starts: np.ndarray, stride_ns: int) -> int:
        """The last time (ns) at which a machine's calibration windows (their starts, at ``stride_ns``) after
        it hold a baseline's worth (``hours``, at least ``min_windows``): work orders from then on were not seen
        enough and take a new baseline; an earlier one's new normal is in the calibration already.

        Exact where :meth:`counted_from` (``hours`` of wall-clock time before the calibration's end) is not:
        a machine that hardly ran in its last days saw less of a work order than the clock says. With fewer
        windows than a baseline's worth in all, the first window's start (orders before it still count,
        as with :meth:`counted_from`, only those before the calibration began are taken as seen).
        """
        s = np.sort(np.asarray(calibration_starts, np.int64))
        if not len(s):
            return 0
        k = self.need(stride_ns)
        return int(s[-k]) if len(s) >= k else int(s[0])

    def need(self, stride_ns: int) -> int:
        """Windows a baseline takes at this stride."""
        return max(self.min_windows, int(np.ceil(self.hours * 3.6e12 / stride_ns)))

    def segments(self, starts: np.ndarray, ends: np.ndarray, orders: np.ndarray, scored: np.ndarray,
                 stride_ns: int, finished: Collection[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """(segment, status) per window (ascending starts).

        segment: the index of the last of ``orders`` (ascending) at or before
        the window's start (-1: none). status: :data:`SPANS_WORK_ORDER` when a
        work order lies inside the window; :data:`BASELINE` for the first
        ``hours / stride`` (at least ``min_windows``) ``scored`` windows of a
        segment that start within ``max_hours`` of its work order; else
        :data:`SCORED`. Segments in ``finished`` (their baseline was taken
        before these windows) have no baseline windows here.
        """
        starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
        orders = np.asarray(orders, np.int64)
        seg = np.searchsorted(orders, starts, side="right") - 1
        before_end = np.searchsorted(orders, ends, side="left") - 1  # last order strictly before the end
        status = np.full(len(starts), SCORED, np.int8)
        status[before_end > seg] = SPANS_WORK_ORDER
        need = self.need(stride_ns)
        for k in np.unique(seg[seg >= 0]):
            if int(k) in finished:
                continue
            cand = np.flatnonzero((seg == k) & (status == SCORED) & np.asarray(scored, bool)
                                  & (starts < orders[k] + self.span_ns))
            status[cand[:need]] = BASELINE
        return seg, status

    def levels(self, errors: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, bool]:
        """(per-channel level: the median error over the baseline windows ``errors`` (n, C) where it is
        above ``previous``, whether a baseline was taken).

        A channel observed in fewer than ``min_windows`` of them keeps its
        ``previous`` level; with fewer than ``min_windows`` windows in which
        any channel was observed, all do (the machine hardly ran).
        """
        previous = np.asarray(previous, float)
        errors = np.asarray(errors, float).reshape(-1, len(previous))
        seen = np.isfinite(errors)
        if int(seen.any(axis=1).sum()) < self.min_windows:
            return previous, False
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels keep the previous level
            med = np.nanmedian(np.where(seen, errors, np.nan), axis=0) if len(errors) else previous
        enough = seen.sum(axis=0) >= self.min_windows
        return np.where(enough & np.isfinite(med), np.maximum(med, previous), previous), True

    def apply(self, errors: np.ndarray, starts: np.ndarray, ends: np.ndarray, orders: np.ndarray,
              median: np.ndarray, iqr: np.ndarray, stride_ns: int,
              known: dict[int, tuple[np.ndarray, bool]] | None = None) -> Rebased:
        """Channel z-scores of windows (ascending ``starts``, errors (n, C)) against each segment's levels.

        ``orders``: the work orders (ns, ascending) from :meth:`counted_from` on;
        ``median``/``iqr``: the calibration's per-channel error level and
        spread; ``known``: segment index → (levels, taken) of baselines
        finished before these windows (their levels are used as they are).
        Every other segment's baseline is taken from its :data:`BASELINE`
        windows here.
        """
        known = known or {}
        errors = np.asarray(errors, float)
        median = np.asarray(median, float)
        seg, status = self.segments(starts, ends, orders, np.isfinite(errors).any(axis=1), stride_ns, finished=set(known))
        level = np.tile(median, (len(starts), 1))
        taken, finished = 0, []
        for k in np.unique(seg[seg >= 0]):
            base = (seg == k) & (status == BASELINE)  # none for a baseline finished before these windows
            if k in known:
                new, ok = known[k]
            else:
                new, ok = self.levels(errors[base], median)
                full = int(base.sum()) >= self.need(stride_ns) or int(orders[k]) + self.span_ns <= int(starts[-1])
                if full and base.any():
                    finished.append({"time": int(orders[k]), "levels": new.tolist(), "taken": ok,
                                     "windows": int(base.sum()), "last_ns": int(np.asarray(starts)[base][-1])})
            taken += ok
            level[(seg == k) & (status == SCORED)] = new
        return Rebased((errors - level) / np.asarray(iqr, float), status, taken, finished)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Rebaseline:
        return cls(**(d or {}))


__all__ = ["BASELINE", "SCORED", "SPANS_WORK_ORDER", "Rebased", "Rebaseline"]
