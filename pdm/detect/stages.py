"""Score → calibrate → threshold → alarm: small stages, each fit / apply / to_dict / from_dict.

- :class:`ChannelCalibrator` turns per-channel reconstruction errors into
  robust z-scores against the machine's healthy errors, and aggregates them
  into one machine score (mean of the ``top_k`` largest channel z-scores:
  a fault shows in few channels, and one noisy channel should not alarm).
  ``top_k`` is 2: a cooling failure shows in two temperatures only, and a
  third, unaffected channel in the mean diluted it by a third (on dev seed 5
  the two cooling failures were caught 54 and 65 h ahead with 3, 78 and 89 h
  with 2; seed 11 unchanged; 3 more false alarms over both seeds).
- :class:`POTThreshold` sets the machine's threshold by peaks over threshold
  (extreme value theory, as in SPOT): a generalised Pareto distribution fitted
  to the healthy scores' excesses over a high quantile gives the score
  exceeded with probability ``risk``. With too few healthy scores it falls
  back to a fixed quantile and says so.
- :class:`OperatingEnvelope` keeps windows at operating points (speed,
  load) the model never saw from being scored at all.
- :class:`AlarmRule` raises when ``k`` of the last ``n`` scores exceed the
  threshold, clears with hysteresis, grades severity and estimates the time
  to failure from the score's trend.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


#: Channels whose z-scores make the machine score (see the module doc).
TOP_K = 2


@dataclass
class ChannelCalibrator:
    """Per-channel robust z-scores of errors, and the machine score."""

    top_k: int = TOP_K
    median: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iqr: np.ndarray = field(default_factory=lambda: np.ones(0))
    #: Per-channel divisor of the z-scores (:meth:`fit_tail`); empty: none (every channel's z as it is).
    tail: np.ndarray = field(default_factory=lambda: np.ones(0))

    def fit(self, errors: np.ndarray, min_rel_spread: float = 0.0) -> ChannelCalibrator:
        """``errors`` (windows, channels) on healthy data; NaN = channel unobserved.

        ``min_rel_spread``: the IQR is at least this share of the median error
        (overlapping calibration windows can make it tiny, and every ordinary
        wobble a large z-score).
        """
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels: handled below
            q1, med, q3 = np.nanpercentile(errors, [25, 50, 75], axis=0)
        self.median = np.nan_to_num(med, nan=0.0)
        spread = np.maximum(q3 - q1, min_rel_spread * np.abs(self.median))
        self.iqr = np.where(np.isfinite(spread) & (spread > 1e-9), spread, 1e-3)
        # A channel never seen in healthy data has no scale: it cannot raise the score (z = 0).
        self.iqr = np.where(np.isnan(med), np.inf, self.iqr)
        return self

    def fit_tail(self, z: np.ndarray, quantile: float) -> ChannelCalibrator:
        """Divide each channel's z-scores by its healthy ``z``'s ``quantile`` from now on (:func:`tail_scale`)."""
        self.tail = tail_scale(z, quantile)
        return self

    @property
    def scale(self) -> np.ndarray:
        """Per-channel divisor of the errors' deviation from their median: the IQR, times the tail scale if fitted."""
        return self.iqr * self.tail if len(self.tail) else self.iqr

    def channel_scores(self, errors: np.ndarray) -> np.ndarray:
        """(windows, channels) z-scores, NaN where unobserved."""
        return (errors - self.median) / self.scale

    def apply(self, errors: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Machine score per window: mean of the top-k channel z-scores (≥ 0).

        NaN where no channel was observed (the machine did not run in the
        window): no information, which :class:`AlarmRule` skips rather than
        reading as healthy. ``exclude`` (C,) bool: channels that do not count
        (their z-scores remain for the root cause).
        """
        return self.score_z(self.channel_scores(errors), exclude)

    def score_z(self, zs: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """:meth:`apply` from channel z-scores already computed (for example against re-based levels)."""
        if exclude is not None and np.any(exclude):
            zs = np.where(np.asarray(exclude, bool)[None, :], np.nan, zs)
        seen = np.isfinite(zs).any(axis=1) if zs.ndim == 2 and zs.shape[1] else np.zeros(len(zs), bool)
        z = np.nan_to_num(zs, nan=-np.inf)
        k = min(self.top_k, z.shape[1])
        top = -np.sort(-z, axis=1)[:, :k]
        top = np.where(np.isfinite(top), top, 0.0)
        return np.where(seen, np.maximum(top.mean(axis=1), 0.0), np.nan)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"top_k": self.top_k, "median": self.median.tolist(),
                             "iqr": [float(v) if np.isfinite(v) else None for v in self.iqr]}  # None: uncalibrated
        if len(self.tail):
            d["tail"] = self.tail.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChannelCalibrator:
        iqr = np.asarray([np.inf if v is None else v for v in d["iqr"]], float)
        return cls(int(d["top_k"]), np.asarray(d["median"], float), iqr, np.asarray(d.get("tail", []), float))


def tail_scale(z: np.ndarray, quantile: float) -> np.ndarray:
    """Per channel, the ``quantile`` of its healthy z-scores ``z`` (windows, channels), at least 1.

    A channel whose healthy errors are heavy-tailed (a temperature imputed from the vibration scatters more than
    one reconstructed) reaches z-scores in healthy windows that every other channel's fault must then beat, since
    the POT threshold is fitted on the machine score those tails make. Divided by their own tail, every channel's
    healthy z-scores reach about 1 at ``quantile``; a channel with no healthy z-score keeps 1.
    """
    if not 0.5 <= quantile < 1:
        raise ValueError(f"tail quantile {quantile}: must lie in [0.5, 1)")
    z = np.asarray(z, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels: 1 below
        q = np.nanquantile(np.where(np.isfinite(z), z, np.nan), quantile, axis=0) if len(z) else np.full(z.shape[1], np.nan)
    return np.where(np.isfinite(q), np.maximum(q, 1.0), 1.0)


@dataclass
class POTThreshold:
    """Peaks-over-threshold threshold on healthy scores.

    Parameters
    ----------
    risk
        Probability that a healthy score exceeds the threshold (per window).
    level
        Quantile of the healthy scores above which excesses are modelled.
    min_scores
        Fewer healthy scores than this → fixed-quantile fallback.
    floor
        Lowest threshold allowed (0: none). Few, overlapping calibration
        windows can put the fit at ordinary variation; a machine score is a
        mean of robust z-scores, so a floor of e.g. 3 means "at least three
        inter-quartile ranges beyond the healthy median error".
    """

    risk: float = 1e-3
    level: float = 0.95
    min_scores: int = 100
    fallback_quantile: float = 0.995
    floor: float = 0.0
    threshold: float = math.inf
    method: str = "unfitted"
    gpd_shape: float = 0.0
    gpd_scale: float = 0.0
    note: str = ""

    def fit(self, scores: np.ndarray) -> POTThreshold:
        self._fit(scores)
        if self.threshold < self.floor:
            self.note = (self.note + "; " if self.note else "") + (
                f"fitted threshold {self.threshold:.3g} raised to the floor {self.floor:g}")
            self.threshold = float(self.floor)
        return self

    def _fit(self, scores: np.ndarray) -> POTThreshold:
        from scipy.stats import genpareto

        s = np.asarray(scores, float)
        s = s[np.isfinite(s)]
        if len(s) < self.min_scores:
            if len(s) == 0:
                raise ValueError("no healthy scores to set a threshold from")
            self.threshold = float(np.quantile(s, self.fallback_quantile))
            self.method = "quantile"
            self.note = (f"only {len(s)} healthy scores (< {self.min_scores}): threshold is their "
                         f"{self.fallback_quantile:.3f} quantile, not a POT fit")
            log.warning("%s", self.note)
            return self
        t = float(np.quantile(s, self.level))
        excess = s[s > t] - t
        if len(excess) < 10 or np.ptp(excess) == 0:
            self.threshold, self.method = float(s.max()), "max"
            self.note = "healthy scores have no tail to fit; threshold = their maximum"
            return self
        shape, _, scale = genpareto.fit(excess, floc=0.0)
        n, nt = len(s), len(excess)
        q = self.risk * n / nt
        if abs(shape) < 1e-6:
            z = t - scale * math.log(q)
        else:
            z = t + scale / shape * (q ** (-shape) - 1)
        self.threshold = float(max(z, t))
        self.method, self.gpd_shape, self.gpd_scale = "pot", float(shape), float(scale)
        self.note = ""
        return self

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """True where the score exceeds the threshold."""
        return np.asarray(scores, float) > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> POTThreshold:
        return cls(**d)


@dataclass
class OperatingEnvelope:
    """The operating points (speed, load) the model saw in training; windows outside it get no score.

    A model that infers vibration from load and temperatures from vibration
    has no idea what a load it never saw should look like: a new product at
    1.35× the usual load scored as a fault on every machine of the line. Such
    a window says nothing about wear either way, so, like a window in which
    the machine never ran, it neither raises nor clears an alarm (its score is
    NaN) until the model is retrained on the new regime.

    Two kinds (``by``):

    - ``"window"`` (:meth:`fit_ranges`, what calibration fits): a window's
      operating range is the [``spread``, 1 − ``spread``] quantile range of
      each field over its running steps
      (:func:`pdm.detect.errors.operating_ranges`), the statistic the
      envelope is fitted on and applied to alike. The envelope runs from the
      ``q`` quantile of the training windows' low ends to the 1 − ``q``
      quantile of their high ends, widened on each side by the larger of
      ``margin`` of its width and ``rel_margin`` of its level. A window is
      inside when its whole range is: a window holding a day at 0.75× the
      trained load, or straddling the step back from it, is not scored.
    - ``"step"`` (envelopes saved before the kind existed; :meth:`fit`): the
      [``q``, 1 − ``q``] quantile range of the running steps' values widened by
      ``margin`` of its width, applied to each window's median. A window
      straddling the start or the end of a product run (up to half of it at
      the new load) has an ordinary median, so it was scored: on the
      held-back fleet such windows raised most of the false alarms, and an
      alarm raised at a run's start stayed open through the run, whose
      windows were outside (they neither raise nor clear).

    A field without data (not recorded) constrains nothing.
    """

    fields: list[str] = field(default_factory=lambda: ["speed", "load"])
    q: float = 0.005
    margin: float = 0.1
    lo: list[float | None] = field(default_factory=list)
    hi: list[float | None] = field(default_factory=list)
    by: str = "step"
    spread: float = 0.1
    rel_margin: float = 0.0

    @classmethod
    def of_windows(cls, ranges: dict[str, np.ndarray], **kw: Any) -> OperatingEnvelope:
        """An envelope of kind ``"window"`` fitted on training windows' operating ranges (:meth:`fit_ranges`)."""
        kw = {"q": 0.005, "margin": 0.1, "rel_margin": 0.05, **kw}
        return cls(by="window", **kw).fit_ranges(ranges)

    def fit_ranges(self, ranges: dict[str, np.ndarray]) -> OperatingEnvelope:
        """Fit on windows' operating ranges: per field an (n, 2) array of each window's (low, high) end."""
        self.by, self.lo, self.hi = "window", [], []
        for f in self.fields:
            r = np.asarray(ranges.get(f, np.zeros((0, 2))), float).reshape(-1, 2)
            r = r[np.isfinite(r).all(axis=1)]
            if len(r) == 0:
                self.lo.append(None)
                self.hi.append(None)
                continue
            a, b = float(np.quantile(r[:, 0], self.q)), float(np.quantile(r[:, 1], 1 - self.q))
            pad = max(self.margin * max(b - a, 0.0), self.rel_margin * max(abs(a), abs(b)), 1e-6)
            self.lo.append(a - pad)
            self.hi.append(b + pad)
        return self

    def fit(self, values: dict[str, np.ndarray]) -> OperatingEnvelope:
        self.lo, self.hi = [], []
        for f in self.fields:
            v = np.asarray(values.get(f, []), float)
            v = v[np.isfinite(v)]
            if len(v) == 0:
                self.lo.append(None)
                self.hi.append(None)
                continue
            a, b = np.quantile(v, [self.q, 1 - self.q])
            pad = self.margin * max(b - a, 1e-6)
            self.lo.append(float(a - pad))
            self.hi.append(float(b + pad))
        return self

    def apply(self, points: dict[str, np.ndarray]) -> np.ndarray:
        """Per window (n,): True where every field's operating point lies inside (or is unknown).

        A point per window is (n,) (a median) or (n, 2) (a range, low and high end: both must lie inside).
        """
        inside: np.ndarray | None = None
        for f, a, b in zip(self.fields, self.lo, self.hi, strict=True):
            if f not in points:
                continue
            p = np.asarray(points[f], float)
            lo = -np.inf if a is None else a
            hi = np.inf if b is None else b
            if p.ndim == 2:
                ok = ~np.isfinite(p).all(axis=1) | ((p[:, 0] >= lo) & (p[:, 1] <= hi))
            else:
                ok = ~np.isfinite(p) | ((p >= lo) & (p <= hi))
            inside = ok if inside is None else inside & ok
        if inside is None:  # none of the fields given: nothing known to lie outside
            n = len(np.asarray(next(iter(points.values())))) if points else 0
            return np.ones(n, bool)
        return inside

    def union(self, other: OperatingEnvelope) -> OperatingEnvelope:
        """Both ranges together (a fine-tuned model knows its base model's range and the new one's).

        Envelopes of different kinds (``by``) do not add up: the result is this one.
        """
        if other.by != self.by:
            return OperatingEnvelope.from_dict(self.to_dict())
        def pick(a: float | None, b: float | None, f: Any) -> float | None:
            return a if b is None else b if a is None else f(a, b)

        theirs = dict(zip(other.fields, zip(other.lo, other.hi, strict=True), strict=True))
        lo, hi = [], []
        for f, a, b in zip(self.fields, self.lo, self.hi, strict=True):
            oa, ob = theirs.get(f, (None, None))
            lo.append(pick(a, oa, min))
            hi.append(pick(b, ob, max))
        return OperatingEnvelope(list(self.fields), self.q, self.margin, lo, hi, self.by, self.spread, self.rel_margin)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OperatingEnvelope:
        return cls(**d)


SEVERITIES = ("watch", "warning", "critical")


@dataclass
class Alarm:
    """One alarm episode of one machine."""

    start: int  # ns, first window that raised it
    end: int | None  # ns, window at which it cleared, or the work order that closed it (None = still open)
    severity: str  # the highest reached
    peak_ratio: float  # max score / threshold
    ttf_hours: float | None  # time to failure estimated at the last window of the episode
    by_work_order: bool = False  # ``end`` is a work order's time (:class:`AlarmRule`), not a clearing
    #: When the episode first reached each severity (ns, the window's time): ``{"watch": start, ...}``; an
    #: alarm is acted on at a level from then (notifications, :mod:`pdm.evaluate.severity`).
    reached: dict[str, int] = field(default_factory=dict)

    def reach(self, severity: str, t: int) -> None:
        """Grade the episode ``severity`` at window time ``t``: every level up to it not reached before, from ``t``."""
        self.severity = severity
        for level in SEVERITIES[: SEVERITIES.index(severity) + 1]:
            self.reached.setdefault(level, int(t))


@dataclass
class AlarmRule:
    """k of n above threshold raises; ``clear_n`` windows and ``clear_hours`` below ``hysteresis`` × threshold clear.

    Clearing needs both: ``clear_n`` scored windows in a row below the
    hysteresis level, and ``clear_hours`` since the last window at or above
    it, so an episode lasts as long in hours whatever the stride (6 windows
    are 12 h at a 2 h stride, 24 h at 4 h). Two days by default: a score
    that hovers about the threshold (a slow fault, drift) fell below the
    hysteresis for a day, cleared and raised the alarm again (a chattering
    alarm, each raise counted and notified anew); after two days quiet it is
    over.

    An episode also ends at a work order on its machine (``close_at_work_order``),
    as a maintenance system closes an alarm with the work order that answers it:
    the machine was repaired, serviced or had a sensor replaced, and
    :mod:`pdm.detect.rebaseline` takes its new levels. If the fault is still
    there, a new episode is raised from the windows after the order (k of n
    and the trend count only those), so an alarm raised for one failure does
    not stay open through its repair and pass for a warning of the next.

    Sustained evidence below the threshold (``cusum``, off by default): a
    slowly growing fault can hold its score at 0.6-0.9 × threshold for days
    before k of n windows cross it. With ``cusum`` on, an episode is also
    raised when the one-sided CUSUM of the score over the last
    ``cusum_windows`` scored windows reaches ``cusum_h``: the largest sum,
    over a run of recent windows ending at this one, of ``min(ratio,
    cusum_cap) - cusum_ref`` (Page's CUSUM with a finite memory, ratio =
    score / threshold; ``cusum_cap`` keeps one spike from raising alone).
    While that evidence holds the episode does not clear. A work order
    starts the evidence afresh, as it does k of n. The memory makes a
    continued run exact with :meth:`history` earlier windows.

    Severity by score / threshold: raised, watch; a peak ≥ ``warning_ratio``,
    warning; critical once the median ratio over the last ``sustain_windows``
    scored windows (since the last work order) reaches ``sustain_ratio``: the
    score has stayed up for half of them (12 windows: a day at the default
    2 h stride), as a growing fault's does and a burst of spikes, a dropout
    or a short upset's does not. Each episode keeps when it reached each
    level (``Alarm.reached``), the moment the people called at that level
    hear of it. Measured (:mod:`pdm.evaluate.severity`,
    ``benchmarks/severity.py``): graded by the peak (≥ ``critical_ratio``, or
    an estimated time to failure under ``critical_ttf_h``: the grading with
    ``sustain_windows=0``) nearly every episode became critical, false
    alarms as readily as true ones. Time to failure: the log-score trend over
    the last ``trend_windows`` windows extrapolated to ``failure_ratio`` ×
    threshold (measured to say little of when: :mod:`pdm.evaluate.ttf`).
    """

    k: int = 3
    n: int = 5
    clear_n: int = 6
    clear_hours: float = 48.0
    hysteresis: float = 0.8
    warning_ratio: float = 1.5
    critical_ratio: float = 3.0
    failure_ratio: float = 6.0
    critical_ttf_h: float | None = 72.0
    sustain_windows: int = 12
    sustain_ratio: float = 1.5
    trend_windows: int = 24
    close_at_work_order: bool = True
    cusum: bool = False
    cusum_ref: float = 0.5
    cusum_cap: float = 1.5
    cusum_h: float = 3.0
    cusum_windows: int = 24

    def __post_init__(self) -> None:
        if self.cusum and not (0 <= self.cusum_ref < self.cusum_cap and self.cusum_h > 0 and self.cusum_windows >= 1):
            raise ValueError("AlarmRule: the CUSUM needs 0 <= cusum_ref < cusum_cap, cusum_h > 0 and "
                             f"cusum_windows >= 1 (got ref {self.cusum_ref}, cap {self.cusum_cap}, h {self.cusum_h}, "
                             f"windows {self.cusum_windows})")

    def fit(self, *_: Any) -> AlarmRule:
        return self

    def history(self, stride_ns: int) -> int:
        """Earlier windows a continued run needs (k of n, trend, clearing, the CUSUM's memory, the held score) at this stride."""
        hours = int(math.ceil(self.clear_hours * 3.6e12 / stride_ns)) if stride_ns > 0 else 0
        return max(self.n, self.trend_windows, self.clear_n, hours + 1, self.cusum_windows if self.cusum else 0,
                   self.sustain_windows)

    def evidence(self, ratio: np.ndarray, lo: int, i: int) -> float:
        """The CUSUM at window ``i`` over windows ``lo`` .. ``i`` (ratios score / threshold, scored windows only)."""
        d = np.minimum(ratio[max(lo, i - self.cusum_windows + 1) : i + 1], self.cusum_cap) - self.cusum_ref
        if not len(d):
            return 0.0
        tail = np.cumsum(d[::-1])  # sums of the runs ending at i, shortest first
        return max(0.0, float(tail.max()))

    def ttf_hours(self, times: np.ndarray, ratio: np.ndarray) -> float | None:
        """Hours until the ratio reaches ``failure_ratio`` on its log-linear trend (None: not rising)."""
        ok = np.isfinite(ratio) & (ratio > 0)
        if ok.sum() < 3:
            return None
        t = times[ok] / 3.6e12
        y = np.log(ratio[ok])
        slope, intercept = np.polyfit(t - t[-1], y, 1)
        if slope <= 1e-6:
            return None
        now = intercept
        if now >= math.log(self.failure_ratio):
            return 0.0
        return float((math.log(self.failure_ratio) - now) / slope)

    def apply(self, times: np.ndarray, scores: np.ndarray, threshold: float, *, begin: int = 0,
              open_at: int | None = None, resets: np.ndarray | None = None,
              track: np.ndarray | None = None) -> list[Alarm]:
        """Alarm episodes over a machine's score series (times in ns, ascending).

        A NaN score (the machine did not run in the window) carries no
        information: it neither counts towards k of n nor towards clearing,
        so a weekend stop does not split one episode into two. k of n and
        ``clear_n`` count scored windows only.

        To continue a series scored earlier (incremental scoring), put the
        earlier scores first: they give the k-of-n and trend windows their
        history. ``begin`` is the index of the first new score, ``open_at``
        the index where an episode still open at ``begin`` started (None:
        none was open). Then only episodes active at or after ``begin`` are
        returned, exactly as a run over the whole series would return them,
        and the one open at ``begin`` however it ended (a work order between
        the two runs closed it).

        ``track`` (an array as long as ``scores``, filled with NaN by the caller): where an episode is open
        from ``begin`` on, the time to failure it shows there (hours; ``inf``: no rising trend), as
        :meth:`ttf_track` describes.

        ``resets``: times (ns) of the machine's work orders
        (``close_at_work_order``). An episode open at one ends there
        (``end`` is the order's time, not a window's); a window ending at
        the order's time is before it. Orders the series does not reach
        past still close an episode open before them.
        """
        times = np.asarray(times, np.int64)
        scores = np.asarray(scores, float)
        if begin >= len(scores) and begin > 0:
            return []
        cut = int(times[begin]) if begin > 0 else None
        held = int(times[open_at]) if open_at is not None else None
        r = np.sort(np.asarray(resets if resets is not None and self.close_at_work_order else [], np.int64))
        scored = np.isfinite(scores)
        shown = track
        if not scored.all():
            if open_at is not None and not scored[open_at]:
                raise ValueError("open_at must index a scored window (the one that raised the episode)")
            before = np.cumsum(scored) - scored  # scored windows before each index
            open_at = None if open_at is None else int(before[open_at])
            begin = int(before[begin]) if begin < len(scores) else int(scored.sum())
            times, scores = times[scored], scores[scored]
            shown = None if track is None else np.full(len(scores), np.nan)
        alarms = self._episodes(times, scores, threshold, begin, open_at, r, shown) if len(scores) else []
        if track is not None and shown is not track:  # the scored windows' part, put back in place
            track[scored] = shown
        if cut is not None:
            alarms = [a for a in alarms if a.end is None or a.end >= cut or a.start == held]
        return alarms

    def ttf_track(self, times: np.ndarray, scores: np.ndarray, threshold: float,
                  resets: np.ndarray | None = None) -> np.ndarray:
        """The time to failure (hours) that an open episode showed at each window of a whole series, as
        :meth:`apply` estimates it window by window (the dashboard's "time to failure" then).

        NaN where no episode was open or the window was not scored; ``inf`` where one was open without a
        rising trend ("no trend": the window that raises an episode has no estimate yet). Evaluated by
        :func:`pdm.evaluate.ttf.ttf_evidence`.
        """
        track = np.full(len(scores), np.nan)
        self.apply(times, scores, threshold, resets=resets, track=track)
        return track

    def _episodes(self, times: np.ndarray, scores: np.ndarray, threshold: float, begin: int,
                  open_at: int | None, resets: np.ndarray, track: np.ndarray | None = None) -> list[Alarm]:
        ratio = scores / threshold if threshold > 0 else np.zeros(len(scores))
        above = ratio > 1.0
        alarms: list[Alarm] = []
        current: Alarm | None = None
        below_run, last_high = 0, 0
        first = begin if open_at is None else min(open_at, begin)
        # Work orders before the first window looked at only restart the history (k of n, trend) after them.
        p = int(np.searchsorted(resets, times[first], side="left")) if first < len(times) else len(resets)
        floor = int(np.searchsorted(times, resets[p - 1], side="right")) if p else 0
        for i in range(first, len(ratio)):
            if p < len(resets) and resets[p] < times[i]:  # work order(s) since the last window
                if current is not None:
                    current.end, current.by_work_order = int(resets[p]), True
                    alarms.append(current)
                    current = None
                p = int(np.searchsorted(resets, times[i], side="left"))
                floor = i
            window = above[max(floor, i - self.n + 1) : i + 1]
            held_up = self.cusum and self.evidence(ratio, floor, i) >= self.cusum_h
            if current is None:
                if window.sum() >= self.k or held_up or i == open_at:
                    current = Alarm(int(times[i]), None, "watch", float(ratio[i]), None)
                    current.reach(self.severity(current.peak_ratio, None), int(times[i]))
                    below_run, last_high = 0, int(times[i])
                    if track is not None:
                        track[i] = np.inf
                continue
            current.peak_ratio = max(current.peak_ratio, float(ratio[i]))
            lo = max(floor, i - self.trend_windows + 1)
            current.ttf_hours = self.ttf_hours(times[lo : i + 1], ratio[lo : i + 1])
            if track is not None:
                track[i] = np.inf if current.ttf_hours is None else current.ttf_hours
            sustained = None
            if self.sustain_windows and i - floor + 1 >= self.sustain_windows:  # the last scored windows, since the last work order
                sustained = float(np.median(ratio[i - self.sustain_windows + 1 : i + 1]))
            current.reach(self.severity(current.peak_ratio, current.ttf_hours, current.severity, sustained), int(times[i]))
            below_run = below_run + 1 if ratio[i] < self.hysteresis and not held_up else 0
            if not below_run:
                last_high = int(times[i])
            if below_run >= self.clear_n and times[i] - last_high >= self.clear_hours * 3.6e12:
                current.end = int(times[i])
                alarms.append(current)
                current = None
        if current is not None:
            if p < len(resets):  # a work order after the last window answers it
                current.end, current.by_work_order = int(resets[p]), True
            alarms.append(current)
        return alarms

    def severity(self, peak_ratio: float, ttf: float | None, previous: str = "watch",
                 sustained: float | None = None) -> str:
        """The level an episode has reached (never lower than ``previous``); ``sustained``: the median ratio over
        the last ``sustain_windows`` scored windows, which grades critical in place of the peak and the trend
        when ``sustain_windows`` is set."""
        level = 0
        if peak_ratio >= self.warning_ratio:
            level = 1
        if self.sustain_windows:
            if sustained is not None and sustained >= self.sustain_ratio and level:
                level = 2
        else:
            soon = ttf is not None and self.critical_ttf_h is not None and ttf <= self.critical_ttf_h
            if peak_ratio >= self.critical_ratio or (soon and peak_ratio >= self.warning_ratio):
                level = 2
        return SEVERITIES[max(level, SEVERITIES.index(previous))]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlarmRule:
        return cls(**d)
