"""Score machines with a trained model: pdm_score, pdm_alarm and pdm_rootcause in the store.

For each machine: align its data on the model's grid (one window of lookback
before ``start``), scale with the machine's own scaler, cut windows whose end
falls in ``[start, stop)`` on the epoch-aligned stride grid (so that every
run, however its range is cut, scores the same windows), reconstruct,
calibrate the per-channel errors into a machine score, compare with the
machine's POT threshold and run the alarm rule. Root causes are computed at
the window that raised each alarm.

Incremental runs (the DAG scores every 15 minutes) continue the alarm
episodes of earlier runs: the machine's recent ``pdm_score`` points and its
last ``pdm_alarm`` are read back, so that scoring a range in pieces gives the
same scores, alarms and root causes as scoring it at once.

A machine the model was not trained on is skipped with a message (its
scaler, calibration and threshold are per machine; a fleet fallback would
give thresholds that mean nothing for it). Fine-tune or retrain to add it.

Re-scoring a range overwrites: scores share measurement, tags and time;
alarm and root-cause points of the machine and model version whose alarm
starts in the range are deleted first (other versions' points are kept).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.detect.excursion import IDLE, INSIDE, OUT, RESET, ExcursionBaseline, Excursions
from pdm.detect.persist import (
    hand_over,
    ongoing_excursion,
    read_excursion_baseline,
    read_history,
    write_excursion_baselines,
    write_run,
)
from pdm.detect.rootcause import (
    EXCURSION_CHANGE,
    MODEL_ERRORS,
    RootCause,
    environment_mask,
    explain,
)
from pdm.detect.stages import Alarm, AlarmRule, ChannelCalibrator, OperatingEnvelope, POTThreshold
from pdm.store import Store
from pdm.store.schema import NEW_REGIME, NOT_RUNNING, OUTSIDE_ENVELOPE, REBASELINE, SCORED

log = logging.getLogger(__name__)

#: Operator-log entries this long before an alarm's window are listed in its root cause.
LOG_LEAD = pd.Timedelta("6h")
#: Windows with fewer steps observed (any sensor) than this share are not scored: mostly empty
#: windows (before the first data, across an outage) are unlike anything the model learnt.
MIN_OBSERVED = 0.5
#: Work orders this far back set the "days since work order" context (it is capped at 30 days).
WORK_ORDER_LOOKBACK = pd.Timedelta("31D")
#: An alarm's root cause is ranked at the window that raised it and again whenever the episode's
#: score reaches this factor times its score at the last ranking: a fault that grows under an
#: alarm raised by something else (or before the fault showed) gets the ranking of what it became.
RERANK_FACTOR = 1.25


@dataclass
class MachineScore:
    """What scoring one machine gave."""

    machine: str
    status: str = "ok"  # ok | alarm (an episode open at the end) | skipped | no data | no window
    message: str = ""
    threshold: float = float("nan")
    # score, threshold, ratio, state (see pdm.store.schema.SCORE_STATES) per window end
    scores: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["score", "threshold", "ratio", "state"]))
    alarms: list[Alarm] = field(default_factory=list)  # episodes active in the scored range
    rootcauses: dict[int, RootCause] = field(default_factory=dict)  # alarm start ns → its latest root cause
    rankings: list[RootCause] = field(default_factory=list)  # every ranking made in the range, in time order
    top_channels: dict[int, str] = field(default_factory=dict)  # alarm start ns → top channel
    outside: int = 0  # windows whose operating point lies outside the model's training envelope
    new_regime: int = 0  # of those, windows scored against their excursion's baseline (pdm.detect.excursion)

    @property
    def latest_score(self) -> float:
        """The newest window's score: NaN when that window was not scored (see :attr:`latest_state`)."""
        return float(self.scores["score"].iloc[-1]) if len(self.scores) else float("nan")

    @property
    def latest_state(self) -> str:
        """The newest window's state (pdm.store.schema.SCORE_STATES: scored, not_running, rebaseline, ...; "" without windows)."""
        return str(self.scores["state"].iloc[-1]) if len(self.scores) and "state" in self.scores else ""

    @property
    def last_scored(self) -> tuple[pd.Timestamp | None, float]:
        """The newest window that was scored and its score ((None, NaN) if none was): what the machine
        last showed, when the newest windows were not scored (a weekend stop, a new baseline)."""
        scored = self.scores["score"].dropna() if len(self.scores) else pd.Series(dtype=float)
        return (scored.index[-1], float(scored.iloc[-1])) if len(scored) else (None, float("nan"))

    @property
    def open_alarm(self) -> Alarm | None:
        return next((a for a in reversed(self.alarms) if a.end is None), None)


@dataclass
class ScoreReport:
    """Per-machine results of :func:`score_machines`."""

    model_version: str
    model_path: Path | None
    machines: dict[str, MachineScore] = field(default_factory=dict)
    points_written: int = 0
    seconds: float = 0.0

    @property
    def skipped(self) -> dict[str, str]:
        return {m: r.message for m, r in self.machines.items() if r.status == "skipped"}

    def table(self) -> pd.DataFrame:
        """One row per machine: windows, the last window and its state, the last scored window and its
        score (a machine stopped for the weekend shows what it last showed, not NaN), threshold,
        status, alarms."""
        rows = []
        for m, r in self.machines.items():
            last = r.scores.index[-1] if len(r.scores) else pd.NaT
            when, score = r.last_scored
            rows.append({"machine": m, "windows": len(r.scores), "last_window": last, "state": r.latest_state,
                         "last_scored": pd.NaT if when is None else when, "score": score,
                         "threshold": r.threshold, "status": r.status, "alarms": len(r.alarms),
                         "severity": r.open_alarm.severity if r.open_alarm else "", "note": r.message})
        return pd.DataFrame(rows)

    def text(self, notes: bool = True) -> str:
        """:meth:`table` as printed by ``pdmctl score`` and the demo: times to the minute (UTC), scores to 3 places."""
        table = self.table()
        if table.empty:
            return ""
        for col in ("last_window", "last_scored"):
            table[col] = table[col].map(lambda t: "" if pd.isna(t) else f"{t:%Y-%m-%d %H:%M}")
        if not notes:
            table = table.drop(columns=["note"])
        return table.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def load_model(bundle_or_path: Any = None, version: str | None = None) -> Any:
    """A :class:`~pdm.model.directory.ModelBundle` from a bundle, a model directory or a models root.

    A models root (None: ``pipeline.models_dir`` or ``data_dir/models`` of the settings) gives ``version`` or
    else the production version. Raises ModelDirectoryError.
    """
    from pdm.model.directory import ModelBundle, ModelDirectoryError, load
    from pdm.model.registry import production_path

    if isinstance(bundle_or_path, ModelBundle):
        bundle = bundle_or_path
    else:
        if bundle_or_path is None:
            from pdm.settings import load_settings

            settings = load_settings()
            bundle_or_path = settings.pipeline.models_dir or settings.data_dir / "models"
        path = Path(bundle_or_path)
        if not (path / "manifest.json").exists():
            path = path / version if version else production_path(path)
        bundle = load(path)
    if not bundle.detect.get("machines"):
        raise ModelDirectoryError(f"{bundle.path}: no calibration in detect.json (a model from before "
                                  "calibration existed?): retrain it with `pdmctl train`")
    return bundle


def _ends(lo_ns: int, hi_ns: int, stride_ns: int) -> np.ndarray:
    """Window ends on the epoch-aligned stride grid in ``[lo, hi)``."""
    first = -(-lo_ns // stride_ns) * stride_ns
    last = (hi_ns - 1) // stride_ns * stride_ns
    return np.arange(first, last + 1, stride_ns, dtype=np.int64) if last >= first else np.zeros(0, np.int64)


def _ns(t: Any) -> int:
    ts = pd.Timestamp(t)
    return int((ts if ts.tzinfo else ts.tz_localize("UTC")).value)


def latest_data_ns(store: Store, machine: str, step_ns: int) -> int | None:
    """End (exclusive) of the last grid step with sensor data of ``machine`` (None: no data).

    Looks at every sensor measurement the model reads (vibration, temperature and
    imported ``sensor`` data), narrowing from 30-day to hourly to step buckets.
    """
    from pdm.features.grid import SENSOR_MEASUREMENTS

    def newest(meas: str, lo: int | None, hi: int | None, every: Any) -> int | None:
        frame = store.read(meas, machine, lo, hi, every=every, agg="max")
        return None if frame.empty else int(frame.index.max().value)

    best: int | None = None
    for meas in SENSOR_MEASUREMENTS:
        b = newest(meas, None, None, "30D")
        if b is None:
            continue
        h = newest(meas, b, b + 31 * 86_400 * 10**9, "1h")
        f = newest(meas, h, h + 3_600 * 10**9, pd.Timedelta(step_ns)) if h is not None else None
        if f is not None and (best is None or f > best):
            best = f
    return None if best is None else best + step_ns


def score_machines(store: Store, bundle_or_path: Any = None, machines: list[str] | None = None,
                   start: Any = None, stop: Any = None, *, write: bool = True, progress: bool = True,
                   version: str | None = None) -> ScoreReport:
    """Score ``machines`` (default: all the model knows) for windows ending in ``[start, stop)``.

    ``bundle_or_path``: a ModelBundle, a model directory, or a models root
    (then ``version`` or the production version; None: settings' models
    root). Without ``start`` and ``stop`` each machine's latest window is
    scored; without ``stop`` everything up to the machine's last data.
    ``write=False`` computes without writing (read-only on the store).

    Returns a :class:`ScoreReport`. Raises ModelDirectoryError (model),
    StoreError (store), ValueError (bad range). A machine the model was not
    trained on, or without data, is reported in the result, not raised.
    """
    began = time.perf_counter()
    bundle = load_model(bundle_or_path, version)
    feats = bundle.config["features"]
    step_ns = int(pd.Timedelta(feats["step"]).value)
    window, stride = int(feats["window"]), int(feats["stride"])
    known = sorted(bundle.scalers)
    machines = list(machines) if machines else known
    report = ScoreReport(bundle.version, bundle.path)
    lo = _ns(start) if start is not None else None
    hi = _ns(stop) if stop is not None else None
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError(f"stop ({stop}) must be after start ({start})")
    for i, m in enumerate(machines, 1):
        t = time.perf_counter()
        if m not in bundle.scalers:
            msg = (f"{m}: not in model {bundle.version} (trained on {', '.join(known)}); "
                   "fine-tune or retrain to score it")
            log.warning("%s", msg)
            report.machines[m] = MachineScore(m, "skipped", msg)
            continue
        res, written = _score_one(store, bundle, m, lo, hi, step_ns, window, stride, write)
        report.machines[m] = res
        report.points_written += written
        if progress:
            print(f"scored {m} ({i}/{len(machines)}): {len(res.scores)} windows, {len(res.alarms)} alarms, "
                  f"{res.status} in {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    report.seconds = time.perf_counter() - began
    return report


def _score_one(store: Store, bundle: Any, m: str, lo: int | None, hi: int | None, step_ns: int,
               window: int, stride: int, write: bool) -> tuple[MachineScore, int]:
    from pdm.detect.errors import inside_envelope, step_gate, step_hours, window_residuals
    from pdm.model.train import reconstruct

    det = bundle.detect["machines"].get(m)
    if det is None:
        return MachineScore(m, "skipped", f"{m}: model {bundle.version} has no calibration for it"), 0
    calib = ChannelCalibrator.from_dict(det["calibrator"])
    threshold = POTThreshold.from_dict(det["threshold"]).threshold
    rule = AlarmRule.from_dict(bundle.detect.get("rule") or {})
    stride_ns, window_ns = stride * step_ns, window * step_ns
    res = MachineScore(m, threshold=threshold)
    if lo is None or hi is None:
        last = latest_data_ns(store, m, step_ns)
        if last is None:
            res.status, res.message = "no data", f"{m}: no sensor data in the store"
            return res, 0
        if hi is None:
            hi = last + 1
        if lo is None:
            lo = hi - stride_ns  # exactly one window end in [lo, hi): the latest
    ends = _ends(lo, hi, stride_ns)
    if len(ends) == 0:
        res.status, res.message = "no window", f"{m}: no window ends in the range (stride {stride_ns // 60e9:g} min)"
        return res, 0
    channels = list(bundle.scalers[m].channels)
    # The operator log, read once: work orders for the context and re-baselining, entries for the root cause.
    log_from = min(calibrated_to(bundle, m), int(ends[0]) - window_ns) - WORK_ORDER_LOOKBACK.value
    log = store.read("operator_log", m, log_from, int(ends[-1]) + 1)
    got = _window_errors(store, bundle, m, ends, step_ns, window, stride, det, log)
    if got is None:
        res.status, res.message = "no data", f"{m}: no observed data in the windows"
        return res, 0
    ws, running, err = got
    w_end = ws.start + window_ns
    z, rebased = _rebaselined_z(store, bundle, m, calib, ws.start, w_end, err, step_ns, window, stride, det,
                                log, write=write)
    z = _count_scaled(bundle, z, running, step_ns)
    scores = calib.score_z(z, exclude=environment_mask(channels))
    state = np.where(np.isfinite(scores), SCORED, NOT_RUNNING).astype(object)
    exc: Excursions | None = None
    if rebased:
        state[rebased["unscored"] & np.isfinite(scores)] = REBASELINE
        scores = np.where(rebased["unscored"], np.nan, scores)
    if det.get("envelope"):  # an operating point the model never saw: no score (neither raises nor clears)
        inside = inside_envelope(OperatingEnvelope.from_dict(det["envelope"]), ws, running)
        outside = ~inside & np.isfinite(scores)
        res.outside = int(outside.sum())
        state[outside] = OUTSIDE_ENVELOPE
        kind = np.where(rebased["unscored"], RESET, IDLE) if rebased else np.full(len(scores), IDLE)
        kind = np.where(np.isfinite(scores), np.where(inside, INSIDE, OUT), kind)
        scores = np.where(inside, scores, np.nan)
        # ... until its excursion outside has a baseline of its own (pdm.detect.excursion)
        exc = _excursions(store, bundle, m, calib, z, kind, w_end, step_ns, window, stride, det, log, write=write,
                          windows=(ws, running))
        if exc is not None and exc.scored.any():
            z = exc.z
            scores[exc.scored] = calib.score_z(z[exc.scored], exclude=environment_mask(channels))
            state[exc.scored] = NEW_REGIME
            res.new_regime = int(exc.scored.sum())
    res.scores = pd.DataFrame({"score": scores, "threshold": threshold, "ratio": scores / threshold,
                               "state": state},
                              index=pd.DatetimeIndex(pd.to_datetime(w_end, utc=True), name="time"))
    # Continue episodes from earlier runs (of this version, or of the model it took over from).
    hist = read_history(store, m, bundle.version, int(w_end[0]), rule, stride_ns, threshold)
    times = np.concatenate([hist.times, w_end])
    allscores = np.concatenate([hist.scores, scores])
    resets = _alarm_resets(store, bundle, m, log, log_from, int(times[0]), int(ends[-1]) + 1) \
        if rule.close_at_work_order else None
    shown = np.full(len(times), np.nan)
    res.alarms = rule.apply(times, allscores, threshold, begin=len(hist.times), open_at=hist.open_at, resets=resets,
                            track=shown)
    # What an open alarm showed as time to failure at each window; -1 none (no open alarm, or no rising trend):
    # always written, so that re-scoring a range overwrites every window's value (pdm.evaluate.ttf judges them).
    shown = shown[len(hist.times):]
    res.scores["ttf_hours"] = np.where(np.isfinite(shown), shown, -1.0)
    prev_top = hist.top
    # Root causes at the windows that raised alarms in this range, and where an episode's score grew.
    ranked_at = _ranking_windows(res.alarms, times, allscores / threshold, begin=len(hist.times))
    if ranked_at:
        idx = np.array(sorted(ranked_at))
        sub = ws.take(idx)
        maps = reconstruct(bundle.model, sub, need_maps=True)
        # Which way each channel moved, over the steps its errors counted, in its own units (log for amplitudes).
        resid = window_residuals(sub, maps["reconstruction"], step_gate(running[idx], step_hours(step_ns)))
        resid = resid * bundle.scalers[m].iqr[None, :]
        baseline = np.asarray(det.get("baseline_spatial") or [], float)
        for j, k in enumerate(idx):
            ws_start = int(ws.start[k])
            logs = _between(log, ws_start - LOG_LEAD.value, ws_start + window_ns)
            zk, rk, against = z[k], resid[j], MODEL_ERRORS
            if state[k] == NEW_REGIME and exc is not None and exc.change is not None and exc.change_z is not None \
                    and np.isfinite(exc.change_z[k]).any():
                # A model extrapolating mixes every channel into every error: rank by what moved since the
                # excursion's baseline, which way in the channel's own units (pdm.detect.excursion).
                zk, rk, against = np.abs(exc.change_z[k]), exc.change[k] * bundle.scalers[m].iqr, EXCURSION_CHANGE
            rc = explain(
                alarm_ns=ranked_at[int(k)], channels=channels, zscores=zk, spatial=maps["spatial"][j],
                baseline=baseline if baseline.size else None, cross=maps["cross"][j],
                temporal=maps.get("temporal", [None] * len(idx))[j], window_start_ns=ws_start, step_ns=step_ns,
                window=window, patch=int(bundle.config["model"]["patch"]), log_entries=logs, residuals=rk)
            rc.maps["ranked_by"] = against
            res.rankings.append(rc)
            res.rootcauses[rc.alarm_ns] = rc
    for a in res.alarms:
        latest = res.rootcauses.get(int(a.start))
        res.top_channels[int(a.start)] = latest.top_channel if latest else prev_top.get(int(a.start), "")
    res.status = "alarm" if res.open_alarm else "ok"
    notes = []
    if res.outside:
        notes.append(f"{res.outside} window(s) at a speed or load outside what the model was trained on"
                     + (f": {res.new_regime} scored against their excursion's own baseline, the rest not scored"
                        if res.new_regime else ": not scored") + " (retrain on the new regime)")
    if rebased:
        notes.append(rebased["note"])
    if notes:
        res.message = f"{m}: " + "; ".join(notes)
    written = write_run(store, res, bundle.version, int(ends[0]), int(ends[-1]) + 1) if write else 0
    if write and hist.predecessor is not None and hist.open_at is not None:
        taken = int(hist.times[hist.open_at])
        if any(a.start == taken for a in res.alarms):
            written += hand_over(store, m, hist.predecessor, taken, bundle.version)
    return res, written


def _alarm_resets(store: Store, bundle: Any, m: str, log: pd.DataFrame, log_from: int, t0: int, t1: int) -> np.ndarray:
    """Machine ``m``'s work orders in ``[t0, t1)`` (ns): each closes an open alarm episode (:class:`AlarmRule`).

    From ``log`` (the operator log read from ``log_from``), and from the store
    for any earlier part of the history (an episode open for long, or
    continued from the model this one took over from).
    """
    from pdm.detect.rebaseline import Rebaseline

    kind = Rebaseline.from_dict(bundle.detect.get("rebaseline")).event_type
    got = work_orders(log, max(t0, log_from), t1, kind)
    if t0 < log_from:
        got = np.concatenate([work_orders(store.read("operator_log", m, t0, log_from), t0, log_from, kind), got])
    return got


def _ranking_windows(alarms: list[Alarm], times: np.ndarray, ratios: np.ndarray, begin: int,
                     factor: float = RERANK_FACTOR) -> dict[int, int]:
    """Windows (index into the scored range, which starts at ``times[begin]``) whose root cause is ranked → alarm start.

    An episode is ranked at the window that raised it, then at each window
    whose ratio reaches ``factor`` times the ratio at its last ranking. A
    function of the episode's scores alone, so an incremental run that
    continues an episode ranks at the same windows as one run over it all
    (the history holds the open episode from its start).
    """
    out: dict[int, int] = {}
    for a in alarms:
        first = int(np.searchsorted(times, a.start))
        if first >= len(times) or times[first] != a.start:
            continue
        stop = len(times) if a.end is None else int(np.searchsorted(times, a.end))
        last = ratios[first]
        for i in range(first, stop):
            if i > first and not (np.isfinite(ratios[i]) and ratios[i] >= factor * last):
                continue
            last = ratios[i]
            if i >= begin:
                out[i - begin] = int(a.start)
    return out


def _window_errors(store: Store, bundle: Any, m: str, ends: np.ndarray, step_ns: int, window: int, stride: int,
                   det: dict[str, Any], log: pd.DataFrame) -> tuple[Any, np.ndarray, np.ndarray] | None:
    """(windows, running (n, T), per-channel errors (n, C)) of the windows ending at ``ends``.

    ``log``: the machine's operator log from at least :data:`WORK_ORDER_LOOKBACK` before the first
    window. Windows mostly without data are dropped; None when none is left.
    """
    from pdm.detect.errors import (
        grid_windows_errors,
        hide_environment,
        hide_steps,
        step_hours,
        window_running,
    )
    from pdm.features import align_machine, make_windows
    from pdm.model.pipeline import bundle_features
    from pdm.model.train import reconstruct

    window_ns = window * step_ns
    t0, t1 = int(ends[0]) - window_ns, int(ends[-1])
    grid = align_machine(store, m, pd.Timestamp(t0, tz="UTC"), pd.Timestamp(t1, tz="UTC"), feats_step(bundle),
                         channels=list(bundle.scalers[m].channels), speed_max=det.get("speed_max"))
    _fix_work_orders(grid, log, t0, t1)
    ws = mostly_observed(make_windows(grid, bundle.scalers[m], window, stride))
    if len(ws) == 0:
        return None
    running = window_running(grid, ws, window)  # cut once: hiding, the gate and the operating point use it
    # As calibration saw them: stopped steps hidden, and the ambient channel where it was (directories
    # calibrated before hide_environment showed it to the model, and are scored so until recalibrated).
    hidden_env = bundle.scalers[m].rise_over if det.get("environment_hidden") else None
    feats = bundle_features(bundle)  # as calibration showed and computed them
    ws = hide_environment(hide_steps(ws, running, as_gaps=feats.stops_as_gaps, step_hours=step_hours(step_ns)), hidden_env)
    recon = reconstruct(bundle.model, ws)["reconstruction"]
    return ws, running, grid_windows_errors(grid, ws, recon, window, running=running, trim=feats.error_trim,
                                            last=feats.last_steps())


def _count_scaled(bundle: Any, z: np.ndarray, running: np.ndarray, step_ns: int) -> np.ndarray:
    """``z`` by :func:`pdm.detect.errors.count_scaled` where the model was calibrated so
    (``FeatureConfig.count_scaling``), else as it is."""
    from pdm.detect.errors import count_scaled, counted_share
    from pdm.model.pipeline import bundle_features

    feats = bundle_features(bundle)
    if not feats.count_scaling:
        return z
    return count_scaled(z, counted_share(running, pd.Timedelta(step_ns, unit="ns"), feats.last_steps()))


def mostly_observed(ws: Any) -> Any:
    """The windows of ``ws`` with at least :data:`MIN_OBSERVED` of their steps observed (any sensor): those scored."""
    return ws.take(np.nonzero(ws.mask.any(axis=1).mean(axis=1) >= MIN_OBSERVED)[0])


def calibrated_to(bundle: Any, m: str) -> int:
    """End (ns) of the data machine ``m``'s calibration saw (0: unknown).

    The end of its last calibration window where detect.json records it (a fault, repair or
    maintenance just before the end of the training range is kept out of the calibration, which
    then ends days earlier), within the range its calibration was taken from: its recalibration's,
    else the model's training data's.
    """
    meta = bundle.metadata or {}
    rec = meta.get("recalibrated") or {}
    stop = rec.get("stop") if m in (rec.get("machines") or ()) else (meta.get("data") or {}).get("stop")
    last = _calibration(bundle, m).get("calibration_to")
    ends = [v for v in (_ns(stop) if stop else None, last) if v]
    return int(min(ends)) if ends else 0


def orders_from(bundle: Any, m: str, rb: Any) -> int:
    """The time (ns) from which machine ``m``'s work orders take a new baseline (:mod:`pdm.detect.rebaseline`).

    Just after ``work_orders_seen_to`` where detect.json records it (its calibration windows after an
    earlier order hold a baseline's worth, :meth:`Rebaseline.seen_until`), else ``rb.hours`` of wall-clock
    time before :func:`calibrated_to` (model directories saved before it).
    """
    seen = _calibration(bundle, m).get("work_orders_seen_to")
    return int(seen) + 1 if seen else int(rb.counted_from(calibrated_to(bundle, m)))


def _calibration(bundle: Any, m: str) -> dict[str, Any]:
    """Machine ``m``'s entry in the bundle's detect.json (empty: none)."""
    return ((getattr(bundle, "detect", None) or {}).get("machines") or {}).get(m, {})


def _between(log: pd.DataFrame, after: int, until: int) -> pd.DataFrame:
    """The entries of ``log`` (time index) in ``[after, until)``, as ``Store.read`` would return them."""
    if log.empty:
        return log
    t = pd.DatetimeIndex(log.index).as_unit("ns").asi8
    return log[(t >= after) & (t < until)]


def work_orders(log: pd.DataFrame, after: int, until: int, event_type: str = "work_order") -> np.ndarray:
    """Times (ns, ascending) of the operator-log entries (``log``, one machine's) of ``event_type`` in ``[after, until)``."""
    if until <= after:
        return np.zeros(0, np.int64)
    logs = _between(log, after, until)
    if logs.empty or "event_type" not in logs:
        return np.zeros(0, np.int64)
    return np.sort(pd.DatetimeIndex(logs.index[logs["event_type"] == event_type]).as_unit("ns").asi8.astype(np.int64))


def _rebaselined_z(store: Store, bundle: Any, m: str, calib: ChannelCalibrator, starts: np.ndarray,
                   ends: np.ndarray, err: np.ndarray, step_ns: int, window: int, stride: int,
                   det: dict[str, Any], log: pd.DataFrame, write: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Channel z-scores of the windows, against the levels of the last work order's new baseline.

    Returns (z, info); info is empty without a work order after the
    calibration, else holds ``unscored`` (windows spanning a work order or in
    a new baseline) and a ``note``. See :mod:`pdm.detect.rebaseline`.

    A finished baseline is kept in ``pdm_baseline`` (per machine, model
    version and work order; ``write``), so that later runs (the DAG scores
    every few minutes) read its levels instead of scoring its windows again.
    """
    from pdm.detect.persist import read_baselines, write_baselines
    from pdm.detect.rebaseline import Rebaseline

    rb = Rebaseline.from_dict(bundle.detect.get("rebaseline"))
    window_ns, stride_ns = window * step_ns, stride * step_ns
    orders = work_orders(log, orders_from(bundle, m, rb), int(ends[-1]), rb.event_type) if rb.enabled \
        else np.zeros(0, np.int64)
    if not len(orders):
        return calib.channel_scores(err), {}
    n = len(starts)
    # The last work order before the range: its levels from the store when its baseline lies wholly
    # before the range, else its baseline windows that the range does not hold are scored again.
    k0 = int(np.searchsorted(orders, starts[0], side="right")) - 1
    known: dict[int, tuple[np.ndarray, bool]] = {}
    if k0 >= 0:
        hit = read_baselines(store, m, bundle.version, int(orders[k0]), int(orders[k0]) + 1).get(int(orders[k0]))
        if hit is not None and hit["last_ns"] < starts[0] and len(hit["levels"]) == len(calib.median):
            known[k0] = (np.asarray(hit["levels"], float), bool(hit["taken"]))
        else:
            prior = _ends(int(orders[k0]) + window_ns,
                          min(int(ends[0]), int(orders[k0]) + window_ns + rb.span_ns), stride_ns)
            got = _window_errors(store, bundle, m, prior, step_ns, window, stride, det, log) if len(prior) else None
            if got is not None:
                starts = np.concatenate([got[0].start, starts])
                ends = np.concatenate([got[0].start + window_ns, ends])
                err = np.concatenate([got[2], err])
    rebased = rb.apply(err, starts, ends, orders, calib.median, calib.scale, stride_ns, known)
    if write and rebased.finished:
        write_baselines(store, m, bundle.version, rebased.finished)
    unscored = rebased.unscored[-n:]
    last = pd.Timestamp(int(orders[-1]), tz="UTC")
    note = (f"{len(orders)} work order(s) since the calibration (or in its last {rb.hours:g} h), "
            f"the last {last:%Y-%m-%d %H:%M}: "
            f"{int(unscored.sum())} window(s) not scored while a new baseline was taken ({rebased.taken} taken)")
    return rebased.z[-n:], {"unscored": unscored, "note": note}


def _excursions(store: Store, bundle: Any, m: str, calib: ChannelCalibrator, z: np.ndarray, kind: np.ndarray,
                times: np.ndarray, step_ns: int, window: int, stride: int, det: dict[str, Any], log: pd.DataFrame,
                write: bool = False, windows: tuple[Any, np.ndarray] | None = None) -> Excursions | None:
    """The windows' :class:`ExcursionBaseline` (``kind`` per window: inside, outside, re-baselined or idle).

    A range that begins in an excursion continues it: its start comes from
    the machine's ``pdm_score`` states of this model version, its baseline
    from ``pdm_baseline`` when finished, else its outside windows so far are
    scored again (so is one written without the channels' levels, when
    ``windows``, the windows of ``z`` and their running values, are given:
    their :func:`pdm.detect.errors.window_levels` are taken, only where some
    window is outside). Finished baselines are written (``write``). A new model
    version (a retrain or fine-tune, with an envelope and errors of its own)
    takes a baseline of its own from its first windows outside.
    """
    from pdm.detect.errors import step_gate, step_hours, window_levels

    def levels_of(ws: Any, running: np.ndarray) -> np.ndarray:
        return window_levels(ws, step_gate(running, step_hours(step_ns)))

    exc = ExcursionBaseline.from_dict(bundle.detect.get("excursion"))
    if not exc.enabled or not (kind == OUT).any():
        return None
    levels = levels_of(*windows) if windows is not None else None
    stride_ns, window_ns = stride * step_ns, window * step_ns
    n = len(times)
    first = kind[kind != IDLE]
    ongoing, known = None, {}
    if first[0] == OUT:
        ongoing, before = ongoing_excursion(store, m, bundle.version, int(times[0]))
        if ongoing is not None:
            hit = read_excursion_baseline(store, m, bundle.version, ongoing)
            if hit is not None and len(hit.levels) == z.shape[1] and (levels is None or hit.value_levels is not None):
                known[ongoing] = hit
            elif len(before := before[before >= exc.settled(ongoing, window_ns)][: exc.need(stride_ns)]):
                got = _window_errors(store, bundle, m, before, step_ns, window, stride, det, log)
                if got is not None:
                    ws0 = got[0]
                    keep = np.isin(ws0.start + window_ns, before)
                    z0, _ = _rebaselined_z(store, bundle, m, calib, ws0.start, ws0.start + window_ns, got[2],
                                           step_ns, window, stride, det, log)
                    z0 = _count_scaled(bundle, z0, got[1], step_ns)
                    z = np.concatenate([z0[keep], z])
                    kind = np.concatenate([np.full(int(keep.sum()), OUT), kind])
                    times = np.concatenate([(ws0.start + window_ns)[keep], times])
                    if levels is not None:
                        levels = np.concatenate([levels_of(ws0, got[1])[keep], levels])
    out = exc.apply(z, kind, times, stride_ns, ongoing=ongoing, known=known, window_ns=window_ns, levels=levels)
    if write and out.finished:
        write_excursion_baselines(store, m, bundle.version, out.finished)
    return Excursions(out.z[-n:], out.scored[-n:], out.baseline[-n:], out.finished,
                      None if out.change is None else out.change[-n:],
                      None if out.change_z is None else out.change_z[-n:])


def feats_step(bundle: Any) -> str:
    return str(bundle.config["features"]["step"])


def _fix_work_orders(grid: Any, log: pd.DataFrame, t0: int, t1: int) -> None:
    """'Days since work order' from a month of log before the grid too, so any range gives the same context."""
    from pdm.features.grid import _days_since

    marks = work_orders(log, t0 - WORK_ORDER_LOOKBACK.value, t1)
    grid.context["days_since_work_order"] = _days_since(grid.index, pd.DatetimeIndex(pd.to_datetime(marks, utc=True)))

