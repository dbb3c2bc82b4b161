"""Time to failure from the plant's own history: how long past alarms ran before their failures.

The score's trend says little of whether a machine fails within 72 h and nothing of when (measured:
:mod:`pdm.evaluate.ttf`, ``benchmarks/ttf_estimates.py``); what the plant has seen gives hours. Each past
failure that an alarm warned of gives a lead time L (its earliest alarm raised within 14 days before it and
still open at it, to the failure: the P-F interval as the alarms saw it). An alarm open for a hours has
then left what past alarms had left at that age: the lead times longer than a, less a (the conditional
residual life of a reliability engineer), given as the median and quartiles over them, with how many they
are. With fewer than :data:`MIN_LEADS` such leads there is no estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Fewest past lead times an estimate rests on.
MIN_LEADS = 3
#: How long before a failure an alarm may have cleared and still count as the one that warned of it.
CLEARED_BEFORE = pd.Timedelta("24h")
#: How long before a failure its alarm may have been raised (as the event metrics' horizon).
HORIZON = pd.Timedelta("14D")


@dataclass(frozen=True)
class Left:
    """What remained after past alarms of an age: median and quartiles (hours), over ``n`` failures."""

    median_h: float
    low_h: float
    high_h: float
    n: int


@dataclass(frozen=True)
class LeadHistory:
    """Lead times (hours) of past failures, each from its earliest alarm open at it (:func:`lead_times`)."""

    leads_h: tuple[float, ...] = ()

    def left(self, age_h: float) -> Left | None:
        """What remained after the past alarms still open at ``age_h`` hours (None: fewer than MIN_LEADS)."""
        leads = np.asarray(self.leads_h, float)
        rest = leads[leads > age_h] - age_h
        if len(rest) < MIN_LEADS:
            return None
        q1, q2, q3 = np.quantile(rest, [0.25, 0.5, 0.75])
        return Left(float(q2), float(q1), float(q3), int(len(rest)))

    def left_at(self, start_ns: int, last_ns: int | None) -> Left | None:
        """:meth:`left` for an open alarm raised at ``start_ns`` and last scored at ``last_ns`` (its age)."""
        return self.left(max(0, (last_ns if last_ns else start_ns) - start_ns) / 3.6e12)

    def track(self, times: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Median hours left at each window (``starts``: its open alarm's start in ns, NaN where none): NaN where
        no alarm was open, inf where there is no estimate (as :meth:`pdm.detect.stages.AlarmRule.ttf_track`)."""
        out = np.full(len(times), np.nan)
        for i, (t, s) in enumerate(zip(np.asarray(times, np.int64), np.asarray(starts, float), strict=True)):
            if np.isnan(s):
                continue
            got = self.left((t - s) / 3.6e12)
            out[i] = got.median_h if got else np.inf
        return out

    @classmethod
    def from_events(cls, alarms: pd.DataFrame, failures: pd.DataFrame, horizon: pd.Timedelta = HORIZON) -> LeadHistory:
        """From ``alarms`` (machine, start, end: its last window while open) and ``failures`` (machine, failure):
        :func:`lead_times`."""
        return cls(tuple(sorted(lead for _, lead in lead_times(alarms, failures, horizon))))


    @classmethod
    def from_store(cls, store: Any, machines: list[str] | None = None, alarms: pd.DataFrame | None = None) -> LeadHistory:
        """From the store's failures (``pdm_truth`` rows with ``is_failure``: the simulator's, or an imported
        failure log) and every model version's alarms (``pdm_alarm``; one still open counts to its last scored
        window; ``alarms``: those points as already read for ``machines``). Empty when either is missing."""
        from pdm.evaluate.failures import truth_from_store

        fails, _ = truth_from_store(store)
        if machines:
            fails = fails[fails["machine"].isin(machines)]
        if not len(fails):
            return cls()
        a = store.read("pdm_alarm", machines) if alarms is None else alarms
        if a.empty:
            return cls()
        start = a.index.asi8
        zero = pd.Series(0, index=a.index)
        end = a.get("end_ns", zero).fillna(0).astype("int64").to_numpy()
        last = a.get("last_ns", zero).fillna(0).astype("int64").to_numpy()
        stop = np.where(end > 0, end, np.maximum(last, start))
        frame = pd.DataFrame({"machine": a["machine"].to_numpy(), "start": a.index,
                              "end": pd.to_datetime(stop, unit="ns", utc=True)})
        return cls.from_events(frame, fails)


def lead_times(alarms: pd.DataFrame, failures: pd.DataFrame, horizon: pd.Timedelta = HORIZON) -> list[tuple[int, float]]:
    """(failure time in ns, lead in hours) of each failure of ``failures`` (machine, failure) that an alarm of
    ``alarms`` (machine, start, end: its last window while open) warned of: its earliest alarm raised within
    ``horizon`` before it and still open at it (or cleared within :data:`CLEARED_BEFORE` of it). An alarm closed
    by an earlier repair warned of that one; failures no such alarm preceded give nothing."""
    out: list[tuple[int, float]] = []
    if not len(alarms):
        return out
    machine = alarms["machine"].astype(str).to_numpy()
    starts = pd.to_datetime(alarms["start"], utc=True)
    ends = pd.to_datetime(alarms["end"], utc=True)
    for f in failures.itertuples(index=False):
        when = pd.Timestamp(f.failure)
        hit = ((machine == str(f.machine)) & (starts < when) & (starts >= when - horizon)
               & (ends >= when - CLEARED_BEFORE)).to_numpy()
        if hit.any():
            out.append((int(when.value), float((when - starts[hit].min()) / pd.Timedelta("1h"))))
    return out


def episode_starts(times: np.ndarray, starts: Any, ends: Any) -> np.ndarray:
    """Each window's open episode start (ns, as float; NaN where none) from the episodes' ``starts`` and ``ends``
    (timestamps; the window that ends an episode is still in it); where two overlap, the first listed."""
    times = np.asarray(times, np.int64)
    out = np.full(len(times), np.nan)
    for a, b in zip(pd.to_datetime(starts, utc=True), pd.to_datetime(ends, utc=True), strict=True):
        inside = (times >= a.value) & (times <= b.value) & np.isnan(out)
        out[inside] = float(a.value)
    return out


def causal_track(times: np.ndarray, starts: np.ndarray, leads: list[tuple[int, float]]) -> np.ndarray:
    """As :meth:`LeadHistory.track`, each window read from the failures before it only (``leads``:
    :func:`lead_times`): what the plant's history could have said then."""
    out = np.full(len(times), np.nan)
    order = sorted(leads)
    when = np.array([w for w, _ in order], np.int64)
    for i, (t, s) in enumerate(zip(np.asarray(times, np.int64), np.asarray(starts, float), strict=True)):
        if np.isnan(s):
            continue
        k = int(np.searchsorted(when, t, side="left"))
        got = LeadHistory(tuple(lead for _, lead in order[:k])).left((t - s) / 3.6e12)
        out[i] = got.median_h if got else np.inf
    return out
