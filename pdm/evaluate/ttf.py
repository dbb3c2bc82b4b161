"""How far an open alarm's estimated time to failure can be trusted, measured against a failure log.

An open alarm shows a time to failure (:meth:`pdm.detect.stages.AlarmRule.ttf_hours`: the log-score trend
over the last day extrapolated to ``failure_ratio`` x threshold); under ``critical_ttf_h`` (72 h) the
alarm is critical and the dashboard shows the hours, i.e. "failure likely within 72 h". Nothing in the
score knows how a fault ends, so this is a claim to check, window by window, as the plant saw it
(:meth:`~pdm.detect.stages.AlarmRule.ttf_track`):

- **calibration**: the windows with an open alarm grouped by what they said (under 24 h, 24-72 h,
  72 h - 7 d, over 7 d, no rising trend), each with the share followed by a failure of that machine
  within 72 h and the median time that actually remained;
- **the 72 h statement**: of the windows that said 72 h or less, the share followed by a failure within
  72 h (its precision), beside the *base rate*, the same share over every window with an open alarm (what
  saying "within 72 h" of every open alarm would score): the trend informs only where it beats that;
- **error**: |log2(estimate / time that remained)| where a failure followed within the horizon;
- **per failure**: when "within 72 h" was first said in the horizon (14 days) before it, and whether
  that was within 72 h of it (on time) or earlier.

A window whose 72 h reach past the end of what was observed, with no failure in them, is left out of the
72 h questions (censored): nobody knows whether that machine failed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from pdm.evaluate.events import HORIZON, failure_times

#: The statement judged: "failure likely within this many hours" (AlarmRule.critical_ttf_h's default).
WITHIN_H = 72.0
#: What an estimate said, by its hours: (from, to, label); "no trend" is apart.
BINS: tuple[tuple[float, float, str], ...] = ((0.0, 24.0, "under 24 h"), (24.0, 72.0, "24-72 h"),
                                              (72.0, 168.0, "72 h - 7 d"), (168.0, math.inf, "over 7 d"))
NO_TREND = "no trend"
_H = 3.6e12  # ns per hour


def _h(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 2)


def ttf_evidence(tracks: Iterable[tuple[str, np.ndarray, np.ndarray]], failures: pd.DataFrame,
                 observed: pd.DataFrame, *, within_h: float = WITHIN_H,
                 horizon: pd.Timedelta = HORIZON) -> dict[str, Any]:
    """The estimates of ``tracks`` (machine, window times in ns, :meth:`AlarmRule.ttf_track`'s hours) judged
    against ``failures`` (machine, failure) over ``observed`` (machine, end: where each machine's record ends).

    Returns the raw ``rows`` (per window with an open alarm: estimate in hours, None for no trend; hours to
    the machine's next failure, None if none came before its record ended; hours to that end) and
    ``per_failure`` (machine, failure, hours ahead that "within ``within_h``" was first said in the horizon
    before it, after the machine's previous failure, and the estimate then), with :func:`ttf_summary` of them, so that runs can be pooled by
    concatenating rows (:func:`ttf_summary` again).
    """
    ends = {str(m): pd.Timestamp(e).value for m, e in zip(observed["machine"], pd.to_datetime(observed["end"], utc=True),
                                                          strict=True)}
    fails = failure_times(failures)
    span = horizon.value
    rows: list[list[float | None]] = []
    per_failure: list[dict[str, Any]] = []
    for machine, times, track in tracks:
        times, track = np.asarray(times, np.int64), np.asarray(track, float)
        f = fails.get(machine, np.zeros(0, np.int64))
        end = ends.get(machine, int(times[-1]) if len(times) else 0)
        live = ~np.isnan(track)
        t, est = times[live], track[live]
        j = np.searchsorted(f, t, side="left")  # the next failure at or after the window's end
        nxt = np.where(j < len(f), f[np.minimum(j, len(f) - 1)], -1) if len(f) else np.full(len(t), -1)
        for ti, ei, ni in zip(t, est, nxt, strict=True):
            rows.append([_h(ei), _h((ni - ti) / _H) if ni >= 0 else None, _h((end - ti) / _H)])
        for k_f, ft in enumerate(f):
            near = (t < ft) & (t >= ft - span) & (est <= within_h)
            if k_f:  # what was said up to the machine's previous failure was said of that one
                near &= t > f[k_f - 1]
            k = int(np.argmax(near)) if near.any() else -1
            per_failure.append({"machine": machine, "failure": str(pd.Timestamp(int(ft), tz="UTC")),
                                "first_said_h": _h((ft - t[k]) / _H) if k >= 0 else None,
                                "estimate_h": _h(est[k]) if k >= 0 else None})
    return {**ttf_summary(rows, per_failure, within_h=within_h, horizon_h=horizon / pd.Timedelta("1h")),
            "rows": rows, "per_failure": per_failure}


def ttf_summary(rows: list[list[float | None]], per_failure: list[dict[str, Any]], *, within_h: float = WITHIN_H,
                horizon_h: float = HORIZON / pd.Timedelta("1h")) -> dict[str, Any]:
    """Calibration, the ``within_h`` statement's precision against the base rate, the error, and per failure
    (see the module's docstring) of :func:`ttf_evidence`'s rows."""
    est = np.array([math.inf if r[0] is None else r[0] for r in rows], float)
    left = np.array([math.nan if r[1] is None else r[1] for r in rows], float)
    to_end = np.array([r[2] for r in rows], float)
    yes = left <= within_h  # NaN compares False
    judged = yes | (to_end >= within_h)
    within_horizon = left <= horizon_h

    def share(k: int, n: int) -> float | None:
        return k / n if n else None

    bins = []
    for lo, hi, label in (*BINS, (math.inf, math.inf, NO_TREND)):
        sel = np.isinf(est) if label == NO_TREND else (est >= lo) & (est < hi)
        n, k = int((sel & judged).sum()), int((sel & yes).sum())
        rem = left[sel & within_horizon]
        bins.append({"said": label, "windows": n, "failure_within": k, "share": share(k, n),
                     "median_remaining_h": float(np.median(rem)) if len(rem) else None,
                     "windows_failure_in_horizon": len(rem)})
    said = judged & (est <= within_h)
    base = share(int(yes.sum()), int(judged.sum()))
    precision = share(int((said & yes).sum()), int(said.sum()))
    scored = np.isfinite(est) & within_horizon
    err = np.abs(np.log2(np.maximum(est[scored], 0.5) / np.maximum(left[scored], 0.5)))
    first = [r["first_said_h"] for r in per_failure if r.get("first_said_h") is not None]
    on_time = sum(1 for h in first if h <= within_h)
    return {"within_h": within_h, "horizon_h": horizon_h, "windows": int(judged.sum()),
            "windows_censored": int((~judged).sum()), "base_rate": base,
            "said_within": int(said.sum()), "said_within_followed": int((said & yes).sum()), "precision": precision,
            "lift": precision / base if precision is not None and base else None, "bins": bins,
            "estimates_judged": int(scored.sum()), "log2_error_median": float(np.median(err)) if len(err) else None,
            "within_2x": share(int((err <= 1.0).sum()), len(err)),
            "failures": len(per_failure), "failures_said": len(first), "said_on_time": on_time,
            "said_early": len(first) - on_time, "median_first_said_h": float(np.median(first)) if first else None}


def pooled_ttf(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """:func:`ttf_evidence`'s results of several runs as one (rows and failures concatenated); None if none."""
    parts = [p for p in parts if p and "rows" in p]
    if not parts:
        return None
    rows = [r for p in parts for r in p["rows"]]
    per_failure = [r for p in parts for r in p["per_failure"]]
    return {**ttf_summary(rows, per_failure, within_h=parts[0]["within_h"], horizon_h=parts[0]["horizon_h"]),
            "rows": rows, "per_failure": per_failure}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def ttf_table(by_name: dict[str, dict[str, Any]]) -> str | None:
    """Markdown: per detector, the calibration by what was said, the 72 h statement against the base rate,
    the error and the failures it was said of. None when no detector has estimates."""
    named = {n: s for n, s in by_name.items() if s}
    if not named:
        return None
    any_s = next(iter(named.values()))
    w = f"{any_s['within_h']:g} h"
    labels = [b[2] for b in BINS] + [NO_TREND]
    head = ["| Detector | " + " | ".join(f"said {lb}" for lb in labels) + f" | said <= {w}: precision (base rate, "
            f"lift) | log2 error, median (within 2x) | failures told <= {w} ahead (on time / earlier; median h "
            "ahead) |", "|---|" + "---|" * (len(labels) + 3)]
    lines = []
    for name, s in named.items():
        cells = []
        for b in s["bins"]:
            rem = b["median_remaining_h"]
            cells.append(f"{b['failure_within']}/{b['windows']} ({_pct(b['share'])}; "
                         f"{'-' if rem is None else f'{rem:.0f} h'})")
        lift = "-" if s["lift"] is None else f"{s['lift']:.1f}x"
        err = "-" if s["log2_error_median"] is None else f"{s['log2_error_median']:.2f} ({_pct(s['within_2x'])})"
        first = "-" if s["median_first_said_h"] is None else f"{s['median_first_said_h']:.0f}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_pct(s['precision'])} ({_pct(s['base_rate'])}, {lift}) | "
                     f"{err} | {s['failures_said']}/{s['failures']} ({s['said_on_time']} / {s['said_early']}; {first}) |")
    return "\n".join([*head, *lines])


TTF_NOTE = ("Each cell of 'said ...': windows with an open alarm whose estimate said so, followed by a failure "
            "of that machine within 72 h / all such windows (share; median time that actually remained where a "
            "failure followed within 14 days). Precision: the same share over the windows that said 72 h or "
            "less; base rate: over every window with an open alarm (what saying 72 h of every alarm would "
            "score); lift = precision / base rate. log2 error: |log2(estimate / time that remained)| over "
            "windows with an estimate and a failure within 14 days (1 = a factor of 2). Windows whose 72 h "
            "reach past the end of the record without a failure are left out (pdm.evaluate.ttf).")
