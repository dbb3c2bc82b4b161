"""``pdmctl train``: read the store, build healthy windows, train, write a model directory."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.features import RobustScaler, WindowSet, align_machine, make_windows
from pdm.features.grid import CONTEXT_CHANNELS, EVENT_TYPES, SENSOR_MEASUREMENTS, MachineGrid
from pdm.features.windows import ambient_channel, excluded_steps, grid_running
from pdm.model.directory import ModelBundle, save
from pdm.model.train import TrainConfig, mean_spatial, reconstruct, train
from pdm.model.tshae import TSHAEConfig
from pdm.store import Store

log = logging.getLogger(__name__)


@dataclass
class FeatureConfig:
    step: str = "10min"
    window: int = 144  # steps (1 day at 10 min)
    stride: int = 12
    min_windows: int = 8
    calibration_frac: float = 0.2  # last share of each machine's healthy windows kept out of training
    min_calibration: int = 4
    #: Steps between calibration windows (None: a quarter of ``stride``). Denser than the training windows:
    #: the same held-out days give ~4x the windows, so channel medians/spreads and the POT tail are
    #: estimated from more (if overlapping) samples.
    calibration_stride: int | None = None
    #: Machine temperatures as their rise over the ambient channel, where a machine has one
    #: (:class:`pdm.features.windows.RobustScaler`); False: as measured.
    temperature_rise: bool = True
    #: Vibration and currents scaled on the steps the machine ran, and hidden where it did not
    #: (:class:`pdm.features.windows.RobustScaler`); False (the default until its root cause is
    #: settled, see README): scaled over every step, stops included.
    running_scaling: bool = False
    #: Machine temperatures take their median and IQR from the steps the machine ran (stopped steps still
    #: shown), so that their running level does not depend on how often the machine stops
    #: (:class:`pdm.features.windows.RobustScaler`); False (the default): over every step. Measured on
    #: development seed 11 (README, "Stops in a window"): alone it was worse on every count; with
    #: ``running_scaling`` the stop effect went and root causes improved, but vibration spikes alarmed.
    temperatures_running: bool = False
    #: The ambient channel hidden from the model in training as well, where temperatures are read as rises
    #: over it (:func:`training_windows`); scoring and calibration always hide it there
    #: (:func:`pdm.detect.errors.hide_environment`). False: training shows it, as it did before this setting.
    train_hides_environment: bool = True
    #: Share of each window's largest step errors left out of its channel errors, in calibration and scoring
    #: alike (an upper-trimmed mean, :func:`pdm.detect.errors.masked_mean`): one spiked reading then does not
    #: carry a day's window. 0 (the default): the plain mean over the counted steps (directories written
    #: before this setting are scored so). Measured at 0.02 (README, "Stops in a window"): spike alarms gone,
    #: but on the held-back fleets one catch fewer and the alarms 11 h later after a fault's onset.
    error_trim: float = 0.0
    #: Every window's channel z-scores, in calibration and scoring alike, times the square root of its share
    #: of counted steps (:func:`pdm.detect.errors.count_scaled`): a window's mean error over a third of its
    #: steps (a stop begins in it) scatters sqrt(3) times as far as over all of them. Off (README, "Stops in
    #: a window"): on the held-back fleets' kept weights TSHAE's false alarms fell 41 -> 32 at one more catch,
    #: but on development seed 11 they rose 4 -> 16 (Saturday alarms: the model's weekend bias, not scatter,
    #: above thresholds that scaling lowered). Directories written before this setting are scored without it.
    count_scaling: bool = False
    #: In training, calibration and scoring alike, a stop inside a window, and the warm-up after a start, are
    #: shown to the model as a gap in the record of a machine that ran on (:func:`pdm.detect.errors.stops_as_gaps`:
    #: every sensor unobserved, speed, load and running held at the last running step's), so that the model
    #: cannot read a duty cycle from them (README, "Stops in a window"). False (the default): temperatures and the
    #: stop's context shown. Trained so, TSHAE's weekend bias went on every fleet, but pooled over the three
    #: held-back fleets with count scaling it caught 26 of 40 against 29 with stops shown (9001 lost three), and
    #: its false-alarm changes were within one training's seed spread: off. Directories written before this
    #: setting are scored without it.
    stops_as_gaps: bool = False
    #: Only each window's last this many hours count towards its channel errors, in calibration and scoring
    #: alike (the model still reads the whole window; :func:`pdm.detect.errors.gated_step_errors`), so that a
    #: fault that began hours ago is not averaged with a day of healthy steps. None: every step (directories
    #: written before this setting are scored so). Measured with the last 8 h on the three held-back fleets'
    #: kept weights (README, "Scoring a window's last hours"): TSHAE caught the same 28 of 40 failures >= 72 h
    #: after onset at 25 false alarms instead of 41, fewer on every fleet and on development seed 11.
    scored_hours: float | None = 8.0

    def __post_init__(self) -> None:
        if self.scored_hours is not None and not float(self.scored_hours) > 0:
            raise ValueError(f"scored_hours must be a positive number of hours, not {self.scored_hours}")

    def last_steps(self) -> int | None:
        """:attr:`scored_hours` in steps of :attr:`step` (at least 1, at most the window; None: every step)."""
        if self.scored_hours is None:
            return None
        hours = pd.Timedelta(self.step).total_seconds() / 3600
        return max(1, min(self.window, int(round(self.scored_hours / hours))))

    def cal_stride(self) -> int:
        """The calibration windows' stride in steps (at least 1, at most ``stride``)."""
        s = self.calibration_stride if self.calibration_stride is not None else self.stride // 4
        return max(1, min(int(s), self.stride))


@dataclass
class TrainReport:
    path: Path
    machines: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def read_labels(store: Store) -> pd.DataFrame:
    """Ground truth from ``pdm_truth`` as machine, kind, is_failure, start, end (empty if none)."""
    truth = store.read("pdm_truth")
    if truth.empty:
        return pd.DataFrame(columns=["machine", "kind", "is_failure", "start", "end"])
    return pd.DataFrame({
        "machine": truth["machine"].to_numpy(), "kind": truth["kind"].to_numpy(),
        "is_failure": truth["is_failure"].fillna(False).astype(bool).to_numpy(),
        "start": truth.index, "end": pd.to_datetime(truth["end_ns"].astype("int64"), unit="ns", utc=True).to_numpy(),
    })


def build_grids(store: Store, machines: list[str], start: Any, stop: Any, step: str) -> tuple[dict[str, MachineGrid], list[str]]:
    """Align every machine; the channel set is the union, in sorted order."""
    grids = {m: align_machine(store, m, start, stop, step) for m in machines}
    channels = sorted({c for g in grids.values() for c in g.sensors.columns})
    for g in grids.values():
        g.sensors = g.sensors.reindex(columns=channels)
    return grids, channels


def train_fleet(store: Store, models_dir: Path, *, machines: list[str] | None = None, start: Any = None,
                stop: Any = None, features: FeatureConfig | None = None, model_overrides: dict[str, Any] | None = None,
                train_cfg: TrainConfig | None = None) -> TrainReport:
    """Train one fleet model on the healthy windows of ``machines`` in ``[start, stop)``."""
    features = features or FeatureConfig()
    train_cfg = train_cfg or TrainConfig()
    machines = machines or store.machines(list(SENSOR_MEASUREMENTS))
    if not machines:
        raise ValueError("no machines with sensor data in the store")
    start = start if start is not None else store.read("process", machines[:1]).index.min()
    if pd.isna(start):  # an imported plant may have no process values: start at its first sensor value
        firsts = [store.read(m, machines[:1]).index.min() for m in SENSOR_MEASUREMENTS]
        start = min((t for t in firsts if not pd.isna(t)), default=None)
        if start is None:
            raise ValueError(f"no sensor data for {machines[0]} in the store")
    stop = stop if stop is not None else pd.Timestamp.now(tz="UTC")
    labels = read_labels(store)
    grids, channels = build_grids(store, machines, start, stop, features.step)
    report = TrainReport(Path(), [], {})
    scalers, sets = {}, {}
    rise_over = ambient_channel(channels) if features.temperature_rise else None  # the fleet's channels: once
    for m, g in grids.items():
        healthy = ~excluded_steps(g.index, labels, m)
        ran_at = grid_running(g, healthy) if features.running_scaling or features.temperatures_running else None
        scaler = RobustScaler(channels).fit(g.sensors[healthy], rise_over=rise_over,
                                            running=ran_at if features.running_scaling else None,
                                            temperatures_running=ran_at if features.temperatures_running else None)
        w = make_windows(g, scaler, features.window, features.stride, exclude=~healthy)
        if len(w) < features.min_windows:
            report.skipped[m] = f"only {len(w)} healthy windows (need {features.min_windows}); not trained on"
            log.warning("%s: %s", m, report.skipped[m])
            continue
        report.problems += w.problems
        scalers[m], sets[m] = scaler, w
    fit_sets, cal_sets, notes = split_sets(grids, sets, features, scalers, labels)
    report.problems += notes
    if not sets:
        raise ValueError("no machine has enough healthy windows: " + "; ".join(f"{k}: {v}" for k, v in report.skipped.items()))
    for p in report.problems:
        log.warning("%s", p)
    windows = training_windows(fit_sets, scalers, features)
    model_cfg = TSHAEConfig(channels=len(channels), context_channels=len(CONTEXT_CHANNELS),
                            event_channels=len(EVENT_TYPES), window=features.window,
                            channel_names=channels, **(model_overrides or {}))
    model, metrics = train(windows, model_cfg, train_cfg)
    # Healthy error statistics as scoring computes errors (what is hidden from the model, hidden here too).
    errors = {m: error_stats(scored_errors(model, grids[m], w, features, scalers[m].rise_over)[1])
              for m, w in sets.items()}
    detect = calibrate(model, cal_sets, {m: grids[m] for m in cal_sets}, features, scalers,
                       envelopes=fit_envelopes(grids, fit_sets, features))
    for m, d in detect["machines"].items():
        for note in (d["threshold"].get("note"), *calibration_notes(d)):
            if note:
                report.problems.append(f"{m}: {note}")
    report.problems += [f"{m}: {why}" for m, why in detect["skipped"].items()]
    bundle = ModelBundle(
        model, scalers, errors,
        {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "features": features.__dict__},
        {"data": {"start": str(pd.Timestamp(start)), "stop": str(pd.Timestamp(stop))}, "machines": sorted(sets),
         "skipped": report.skipped, "problems": report.problems, "metrics": metrics},
        detect=detect,
    )
    report.path = save(bundle, models_dir)
    report.machines, report.metrics = sorted(sets), metrics
    return report


def training_windows(fit_sets: dict[str, WindowSet], scalers: dict[str, RobustScaler],
                     features: FeatureConfig) -> WindowSet:
    """The machines' training windows as one set, shown to the model as the scorer will show them.

    With :attr:`FeatureConfig.train_hides_environment`, a machine whose scaler reads temperatures as rises
    over the ambient (``rise_over``) has that channel unobserved in training too, so the model never
    learns to lean on the weather it will not be shown when scoring. With
    :attr:`FeatureConfig.stops_as_gaps`, stops and warm-ups are gaps in a running record in training too
    (:func:`pdm.detect.errors.stops_as_gaps`, from each window's own ``running`` context): a model trained
    on windows that showed its stops meets windows mostly masked in every channel only when scored.
    """
    from pdm.detect.errors import hide_environment, hide_steps, step_hours

    step_h = step_hours(features.step)
    running = CONTEXT_CHANNELS.index("running")
    out = []
    for m, w in fit_sets.items():
        if features.stops_as_gaps:
            w = hide_steps(w, w.context[:, running], as_gaps=True, step_hours=step_h)
        if features.train_hides_environment:
            w = hide_environment(w, scalers[m].rise_over if m in scalers else None)
        out.append(w)
    return WindowSet.concat(out)


def scored_errors(model: Any, grid: MachineGrid, w: WindowSet, features: FeatureConfig,
                  rise_over: str | None, *, running: np.ndarray | None = None) -> tuple[WindowSet, np.ndarray]:
    """The windows as scoring shows them to the model (stopped steps and, where temperatures are read as
    rises, the ambient channel hidden) and their per-channel errors as scoring computes them (running steps
    only, :func:`pdm.detect.errors.grid_windows_errors`): (shown windows, (n, C) errors). ``running``: the
    windows' :func:`pdm.detect.errors.window_running` values when the caller already cut them."""
    from pdm.detect.errors import (
        grid_windows_errors,
        hide_environment,
        hide_steps,
        step_hours,
        window_running,
    )

    if running is None:  # cut once: hiding and the gate use it
        running = window_running(grid, w, features.window)
    w = hide_environment(hide_steps(w, running, as_gaps=features.stops_as_gaps,
                                    step_hours=step_hours(features.step)), rise_over)
    out = reconstruct(model, w)
    return w, grid_windows_errors(grid, w, out["reconstruction"], features.window, running=running,
                                  trim=features.error_trim, last=features.last_steps())


def error_stats(err: np.ndarray) -> dict[str, list[float]]:
    """Per-channel median and IQR of healthy errors (n, C); a channel never observed: 0 and 1e-3."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels: handled below
        q1, med, q3 = np.nanpercentile(err, [25, 50, 75], axis=0)
    return {"median": np.nan_to_num(med, nan=0.0).tolist(),
            "iqr": np.where(np.isfinite(q3 - q1) & (q3 - q1 > 0), q3 - q1, 1e-3).tolist()}


def split_sets(grids: dict[str, MachineGrid], sets: dict[str, WindowSet], features: FeatureConfig,
               scalers: dict[str, RobustScaler] | None = None, labels: pd.DataFrame | None = None,
               ) -> tuple[dict[str, WindowSet], dict[str, WindowSet], list[str]]:
    """Training and calibration windows of each machine, and notes.

    Calibration windows: the last ~20 % of each machine's healthy windows in
    which it ran, unseen in training (in-sample errors are too optimistic for
    thresholds); see :func:`split_calibration`. With the machines'
    ``scalers`` (and ``labels``, whose faults and maintenance stay out), the
    calibration span is cut again at :meth:`FeatureConfig.cal_stride`
    (:func:`dense_calibration`); the training windows do not change.
    """
    fit_sets, cal_sets, notes = {}, {}, []
    for m, w in sets.items():
        fit_sets[m], cal_sets[m], note = split_calibration(w, features, active_windows(grids[m], w, features))
        if note:
            notes.append(f"{m}: {note}")
        elif scalers is not None and m in scalers:
            cal_sets[m] = dense_calibration(grids[m], scalers[m], cal_sets[m], features, labels)
    return fit_sets, cal_sets, notes


def active_windows(grid: MachineGrid, w: WindowSet, features: FeatureConfig) -> np.ndarray:
    """(n,) True for the windows in which the machine ran (start-ups included)."""
    from pdm.detect.errors import running_gate

    return np.asarray(running_gate(grid, w, features.window).any(axis=1), dtype=bool)


def dense_calibration(grid: MachineGrid, scaler: RobustScaler, cal: WindowSet, features: FeatureConfig,
                      labels: pd.DataFrame | None = None) -> WindowSet:
    """The calibration windows' span cut every :meth:`FeatureConfig.cal_stride` steps.

    Same days, same rules (healthy steps only, the machine ran): only the
    windows between the first and the last calibration window's start are
    kept, so none of them overlaps a training window more than the sparse
    ones did. Returns ``cal`` unchanged when the stride is not denser.
    """
    stride = features.cal_stride()
    if stride >= features.stride or len(cal) == 0:
        return cal
    # Only the calibration span is cut (a long training range would give many times the windows), from a
    # step on the whole grid's stride phase, so the windows are those a cut of the whole grid would keep.
    pos = np.searchsorted(grid.index.asi8, [cal.start.min(), cal.start.max()])
    lo, hi = int(pos[0]) // stride * stride, int(pos[1]) + features.window
    span = grid.rows(lo, hi)
    dense = make_windows(span, scaler, features.window, stride, exclude=excluded_steps(span.index, labels, grid.machine))
    inside = (dense.start >= cal.start.min()) & (dense.start <= cal.start.max())
    dense = dense.take(np.nonzero(inside)[0])
    dense = dense.take(np.nonzero(active_windows(grid, dense, features))[0])
    return dense if len(dense) >= len(cal) else cal


def bundle_features(bundle: ModelBundle) -> FeatureConfig:
    """The feature settings a model was trained with."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(FeatureConfig)}
    stored = bundle.config.get("features", {})
    # Settings a directory predates are read as what it was trained and calibrated with, not today's defaults.
    return FeatureConfig(**{"error_trim": 0.0, "count_scaling": False, "stops_as_gaps": False, "scored_hours": None,
                            **{k: v for k, v in stored.items() if k in known}})


def bundle_windows(store: Store, bundle: ModelBundle, start: Any, stop: Any, features: FeatureConfig,
                   min_windows: int = 1) -> tuple[dict[str, MachineGrid], dict[str, WindowSet], dict[str, int]]:
    """Each machine of a trained model in ``[start, stop)``: its grid and its healthy windows.

    Grids on the model's channels and with its speed maxima, windows scaled
    by its scalers, labelled faults and maintenance left out. Machines with
    fewer than ``min_windows`` windows are left out and returned with their
    count (third item).
    """
    labels = read_labels(store)
    channels = list(bundle.model.cfg.channel_names)
    grids, sets, short = {}, {}, {}
    for m, scaler in sorted(bundle.scalers.items()):
        known_max = bundle.detect.get("machines", {}).get(m, {}).get("speed_max")
        grid = align_machine(store, m, start, stop, features.step, channels=channels, speed_max=known_max)
        healthy = ~excluded_steps(grid.index, labels, m)
        w = make_windows(grid, scaler, features.window, features.stride, exclude=~healthy)
        if len(w) < max(min_windows, 1):
            short[m] = len(w)
            continue
        grids[m], sets[m] = grid, w
    return grids, sets, short


def recalibrate(store: Store, bundle: ModelBundle, models_dir: str | Path, *, start: Any = None,
                stop: Any = None) -> Path:
    """Refit a trained model's detection calibration without retraining; saves it as a new version.

    The per-machine error calibrators, thresholds and healthy attention
    baselines are fitted again with the current scoring code on the
    calibration windows of ``[start, stop)`` (default: the model's training
    range, whose split into training and calibration windows is then the
    one training made). Machines without enough healthy windows there keep
    their calibration. For a changed scorer (errors, thresholds) or a new
    healthy period; the weights and scalers are unchanged.
    """
    import dataclasses

    data = bundle.metadata.get("data", {})
    start = pd.Timestamp(start if start is not None else data["start"])
    stop = pd.Timestamp(stop if stop is not None else data["stop"])
    features = bundle_features(bundle)
    grids, sets, short = bundle_windows(store, bundle, start, stop, features, features.min_windows)
    for m, n in short.items():
        log.warning("%s: only %d healthy windows in %s .. %s; keeps its calibration", m, n, start, stop)
    if not sets:
        raise ValueError(f"no machine has {features.min_windows} healthy windows in {start} .. {stop} to recalibrate on")
    fit_sets, cal_sets, notes = split_sets(grids, sets, features, bundle.scalers, read_labels(store))
    for note in notes:
        log.warning("%s", note)
    before = bundle.detect.get("machines", {})
    # The envelope the weights trained in: on their own range, its training windows' (as training fitted it);
    # on another range, the one saved with them (the weights never saw this range's operating points).
    envelopes, saved = fit_envelopes(grids, fit_sets, features), saved_envelopes(before)
    if (start, stop) != (pd.Timestamp(data["start"]), pd.Timestamp(data["stop"])):
        envelopes.update(saved)
    elif bundle.metadata.get("kind") == "finetune":  # its weights also know its base model's range
        envelopes = joined_envelopes(envelopes, saved)
    detect = calibrate(bundle.model, cal_sets, grids, features, bundle.scalers, envelopes=envelopes)
    for m, d in detect["machines"].items():
        for note in calibration_notes(d):
            log.warning("%s: %s", m, note)
    machines = merge_calibration(before, detect["machines"], widen=False)
    meta = {**bundle.metadata, "recalibrated": {"from_version": bundle.version, "start": str(start),
                                                 "stop": str(stop), "machines": sorted(cal_sets)}}
    return save(dataclasses.replace(bundle, detect={**detect, "machines": machines}, metadata=meta, path=None,
                                    version=""), models_dir)


def merge_calibration(before: dict[str, Any], new: dict[str, Any], *, widen: bool = True) -> dict[str, Any]:
    """Per machine the new calibration, else the earlier; with ``widen``, operating envelopes are joined.

    A fine-tuned model still knows the range its base model was trained on,
    so a fine-tune on a recent period widens the envelope and never narrows
    it. A recalibration (``widen=False``) trains nothing: its envelope is the
    one its weights trained in (:func:`recalibrate`), not joined with the
    earlier calibration's.
    """
    from pdm.detect.stages import OperatingEnvelope

    out = {**before, **new}
    for m, d in new.items() if widen else ():
        old = (before.get(m) or {}).get("envelope")
        if old and d.get("envelope"):
            joined = OperatingEnvelope.from_dict(d["envelope"]).union(OperatingEnvelope.from_dict(old))
            out[m] = {**d, "envelope": joined.to_dict()}
    return out


def split_calibration(w: WindowSet, features: FeatureConfig,
                      active: np.ndarray | None = None) -> tuple[WindowSet, WindowSet, str]:
    """(training, calibration, note).

    Calibration: the last ``calibration_frac`` of the ``active`` windows (the
    machine ran in them, start-ups included, as scoring sees them; a stopped
    machine has no error to calibrate), at least ``min_calibration`` and three window lengths of
    them. Training: every window that overlaps none of them. Too few active
    windows → training on all windows and calibrating on the active ones
    (in-sample), and the note says so.
    """
    n = len(w)
    active = np.ones(n, bool) if active is None else np.asarray(active, bool)
    acts = np.nonzero(active)[0]
    acts = acts[np.argsort(w.start[acts], kind="stable")]
    # Overlapping windows are far from independent: calibration should span at least three
    # window lengths of time, else its error spread says little.
    span = 3 * -(-features.window // max(features.stride, 1))
    n_cal = max(features.min_calibration, span, int(round(len(acts) * features.calibration_frac)))
    if len(acts) - n_cal < max(4, n_cal):
        cal_all = acts if len(acts) else np.arange(n)
        return w, w.take(np.sort(cal_all)), (
            f"only {len(acts)} healthy windows with the machine running: calibrated on training "
            "windows (in-sample; thresholds may be too low)")
    cal = np.sort(acts[len(acts) - n_cal:])
    window_ns = features.window * pd.Timedelta(features.step).value
    cal_starts = np.sort(w.start[cal])
    pos = np.searchsorted(cal_starts, w.start)
    after = cal_starts[np.minimum(pos, len(cal_starts) - 1)]
    before = cal_starts[np.maximum(pos - 1, 0)]
    overlaps = (np.abs(after - w.start) < window_ns) | (np.abs(w.start - before) < window_ns)
    fit = np.nonzero(~overlaps)[0]
    if len(fit) < 4:
        fit = np.setdiff1d(np.arange(n), cal)
    return w.take(fit), w.take(cal), ""


#: Lowest machine-score threshold (see :class:`pdm.detect.stages.POTThreshold`).
THRESHOLD_FLOOR = 3.0
#: A channel's error spread is at least this share of its median error.
MIN_REL_SPREAD = 0.1


def calibrate(model: Any, cal_sets: dict[str, WindowSet], grids: dict[str, MachineGrid],
              features: FeatureConfig, scalers: dict[str, RobustScaler] | None = None,
              envelopes: dict[str, Any] | None = None) -> dict[str, Any]:
    """detect.json: per machine the error calibrator, POT threshold, healthy spatial-attention baseline
    and the operating envelope the weights trained in.

    ``envelopes`` (per machine an :class:`pdm.detect.stages.OperatingEnvelope`): that envelope, from
    :func:`fit_envelopes` (the training windows'); a machine without one gets the envelope of its whole
    grid. Only the calibration windows inside it are calibrated on (:func:`inside_calibration`): a
    regime the model never trained on, calibrated as normal, would raise that channel's error scale
    and leave it deaf afterwards; scoring treats such windows as excursions instead.

    Errors are those scoring computes (:func:`pdm.detect.errors.grid_windows_errors`: running steps only;
    with the machines' ``scalers``, the ambient channel hidden where temperatures are read as rises,
    :func:`pdm.detect.errors.hide_environment`).
    """
    from pdm.detect.errors import count_scaled, counted_share, training_envelope, window_running
    from pdm.detect.rebaseline import Rebaseline
    from pdm.detect.rootcause import environment_mask
    from pdm.detect.stages import AlarmRule, ChannelCalibrator, POTThreshold

    machines: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    step_ns = pd.Timedelta(features.step).value
    for m, w in cal_sets.items():
        rise_over = scalers[m].rise_over if scalers and m in scalers else None
        running = window_running(grids[m], w, features.window)  # cut once: errors and the counted share
        env = (envelopes or {}).get(m) or training_envelope(grids[m], features.window)
        w, running, outside, note = inside_calibration(env, w, running, features)
        w, err = scored_errors(model, grids[m], w, features, rise_over, running=running)
        calib = ChannelCalibrator().fit(err, min_rel_spread=MIN_REL_SPREAD)
        z = calib.channel_scores(err)
        if features.count_scaling:
            z = count_scaled(z, counted_share(running, features.step, features.last_steps()))
        scores = calib.score_z(z, exclude=environment_mask(list(w.channels)))
        scored = scores[np.isfinite(scores)]
        if not len(scored):  # it ran in these windows, but too briefly for any to be scored
            skipped[m] = (f"none of its {len(w)} calibration windows has enough running steps to score: "
                          "not calibrated (a recalibration or fine-tune keeps its earlier calibration)")
            log.warning("%s: %s", m, skipped[m])
            continue
        threshold = POTThreshold(min_scores=100, floor=THRESHOLD_FLOOR).fit(scores)
        machines[m] = {
            "calibrator": calib.to_dict(), "threshold": threshold.to_dict(),
            "baseline_spatial": mean_spatial(model, w).round(6).tolist(),
            "speed_max": _finite_or_none(grids[m].speed_max),
            "envelope": env.to_dict(),
            "calibration_windows": len(w),
            # calibration windows left out as outside that envelope (a regime the weights never trained in)
            "calibration_outside": outside,
            **({"calibration_note": note} if note else {}),
            # the ambient channel hidden from the model (hide_environment): scoring hides it as well
            "environment_hidden": bool(rise_over),
            "calibration_from": int(w.start.min()), "calibration_to": calibration_end(w, features),
            # work orders after this time were seen for less than a baseline's worth: they take a new one
            "work_orders_seen_to": Rebaseline().seen_until(w.start, features.cal_stride() * step_ns),
            "calibration_scores": {
                "median": float(np.median(scored)), "max": float(np.max(scored))},
        }
    return {"calibration": {"frac": features.calibration_frac, "min": features.min_calibration,
                            "stride": features.cal_stride()},
            "rule": AlarmRule().to_dict(), "machines": machines, "skipped": skipped}


def fit_envelopes(grids: dict[str, MachineGrid], fit_sets: dict[str, WindowSet],
                  features: FeatureConfig) -> dict[str, Any]:
    """Per machine the operating envelope (kind "window") of the windows the weights trained on.

    Not of the whole training range: its calibration windows come last and
    were never trained on, so a product change in them (8317's line 1 ran at
    1.35x load from two days into its calibration) would otherwise count as
    known operation and be calibrated as normal.
    """
    from pdm.detect.errors import operating_ranges, window_running
    from pdm.detect.stages import OperatingEnvelope

    return {m: OperatingEnvelope.of_windows(operating_ranges(w, window_running(grids[m], w, features.window)))
            for m, w in fit_sets.items() if m in grids}


def saved_envelopes(machines: dict[str, Any]) -> dict[str, Any]:
    """The operating envelopes a detect.json's ``machines`` hold (machines without one are left out)."""
    from pdm.detect.stages import OperatingEnvelope

    return {m: OperatingEnvelope.from_dict(d["envelope"]) for m, d in machines.items() if d.get("envelope")}


def joined_envelopes(envelopes: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    """Each machine's envelope joined with its ``saved`` one, where it has one: what a fine-tune's weights know
    (its own windows' and its base model's)."""
    return {m: e.union(saved[m]) if m in saved else e for m, e in envelopes.items()}


def calibration_notes(machine: dict[str, Any]) -> list[str]:
    """What a machine's detect.json entry says of its calibration windows (kept all though few were inside the
    envelope; windows left out as outside it), for training's, recalibration's and fine-tuning's reports."""
    return [n for n in (machine.get("calibration_note"), outside_note(machine)) if n]


def outside_note(machine: dict[str, Any]) -> str:
    """What a machine's detect.json entry says of calibration windows left out of its envelope ('' if none)."""
    n = machine.get("calibration_outside") or 0
    return (f"{n} of its calibration windows ran outside the operating envelope its weights trained in (a regime "
            f"the model never trained on): left out, calibrated on the other {machine.get('calibration_windows')}; "
            "retrain once that regime is normal operation") if n else ""


def inside_calibration(envelope: Any, w: WindowSet, running: np.ndarray, features: FeatureConfig,
                       ) -> tuple[WindowSet, np.ndarray, int, str]:
    """(windows, their running values, how many were left out, note): the calibration windows ``w`` inside
    ``envelope`` (:func:`pdm.detect.errors.inside_envelope`; a window in which the machine never ran is inside).

    Fewer than a window length of them (at the calibration stride, and at least ``min_calibration``) say
    too little about the error's spread: then all are kept and the note says so.
    """
    from pdm.detect.errors import inside_envelope

    inside = inside_envelope(envelope, w, running)
    outside = int((~inside).sum())
    if not outside:
        return w, running, 0, ""
    need = max(features.min_calibration, -(-features.window // features.cal_stride()))
    if inside.sum() < need:
        return w, running, 0, (f"{outside} of its {len(w)} calibration windows ran outside the operating envelope "
                               f"it was trained in, too few ({int(inside.sum())} < {need}) left to calibrate on: "
                               "calibrated on all of them (thresholds may be too high; retrain on the new regime)")
    keep = np.flatnonzero(inside)
    return w.take(keep), running[keep], outside, ""


def calibration_end(w: WindowSet, features: FeatureConfig) -> int:
    """End (ns) of the data calibration windows ``w`` saw: their last window's end.

    A fault, repair or maintenance near the end of the training range is kept out of the calibration,
    which then ends before the range does: work orders near or after it get a new baseline
    (:func:`pdm.detect.score.calibrated_to`, :mod:`pdm.detect.rebaseline`).
    """
    return int(w.start.max()) + features.window * pd.Timedelta(features.step).value


def _finite_or_none(v: Any) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None
