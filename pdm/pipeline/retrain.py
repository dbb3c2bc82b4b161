"""``pdm_train``'s steps: a candidate model, its evaluation, and promotion.

- :func:`full_retrain`: a new fleet model from scratch on the training range
  (when the data drifted, see :mod:`pdm.pipeline.drift`, or no model exists).
- :func:`finetune_fleet`: the seed's elastic update — a copy of the
  production model with its lower layers frozen
  (:data:`pdm.model.finetune.DEFAULT_FREEZE`), only the top layers and the
  decoder trained a few epochs on recent healthy windows of the whole fleet;
  the production model's scalers are kept.
- :func:`evaluate_model`: score a model over a range without writing, and
  compute event metrics against the ground truth in ``pdm_truth``.
- :func:`decide_promotion`: the candidate is promoted only when it is not
  worse than production on the same data: recall (when there are failures)
  at least production's, and false alarms per machine-month at most
  production's + ``fa_tolerance``. Old versions are never deleted, so
  :func:`pdm.model.registry.rollback` can go back.

Candidates get deterministic version ids (range end + kind), so a retried
task finds the candidate it already wrote instead of writing another.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.store import Store

log = logging.getLogger(__name__)


def candidate_version(stop: Any, kind: str) -> str:
    return pd.Timestamp(stop).strftime("%Y%m%dT%H%M%SZ") + f"-{kind}"


def _existing(models_dir: Path, version: str) -> Path | None:
    from pdm.model.directory import ModelDirectoryError, verify

    path = Path(models_dir) / version
    if not path.exists():
        return None
    try:
        verify(path)
    except ModelDirectoryError as exc:
        raise ModelDirectoryError(f"{path} exists but is not a valid model ({exc}); remove it to retrain") from None
    log.info("candidate %s exists already (a retried task): reusing it", version)
    return path


def full_retrain(store: Store, models_dir: str | Path, start: Any, stop: Any, *, window: int = 144, stride: int = 12,
                 d_model: int = 64, layers: int = 2, epochs: int = 10, machines: list[str] | None = None,
                 seed: int = 0) -> Path:
    """Train a fleet model on ``[start, stop)``; returns its directory."""
    from pdm.model.pipeline import FeatureConfig, train_fleet
    from pdm.model.train import TrainConfig

    version = candidate_version(stop, "full")
    found = _existing(Path(models_dir), version)
    if found is not None:
        return found
    report = train_fleet(store, Path(models_dir) / ".staging", machines=machines, start=start, stop=stop,
                         features=FeatureConfig(window=window, stride=stride, min_windows=4),
                         model_overrides={"d_model": d_model, "layers": layers},
                         train_cfg=TrainConfig(epochs=epochs, progress=False, seed=seed))
    final = Path(models_dir) / version
    report.path.rename(final)  # same file system: atomic
    log.info("full retrain: %s on %d machines (%s)", version, len(report.machines), ", ".join(report.machines))
    return final


#: Days of healthy data before a fine-tune's end that its thresholds are fitted on (the fine-tuning range itself,
#: a week, leaves about a day and a half of calibration windows per machine: too few for a tail fit).
CALIBRATION_DAYS = 28.0


def finetune_fleet(store: Store, production: str | Path, models_dir: str | Path, start: Any, stop: Any, *,
                   epochs: int = 3, freeze: tuple[str, ...] | None = None,
                   calibration_days: float = CALIBRATION_DAYS) -> Path:
    """Fine-tune the top layers of the production model on recent healthy windows; returns the candidate.

    Training uses ``[start, stop)`` less its last ~20 % of windows (held out, as
    :func:`pdm.model.pipeline.split_sets`). Calibration (error calibrators,
    thresholds, attention baselines, operating envelope) uses those held-out
    windows and the healthy windows in which the machine ran during the
    ``calibration_days`` before ``stop`` that precede ``start`` (at the
    training stride): a week's held-out windows alone are too few for a
    peaks-over-threshold fit, and a threshold from a high quantile of a day
    and a half of scores sets the false-alarm rate by chance. The earlier
    windows were not in the fine-tuning set (the frozen lower layers may
    have seen them in the base model's training).
    """
    from pdm.features import WindowSet
    from pdm.model.directory import ModelBundle, load, save
    from pdm.model.finetune import DEFAULT_FREEZE
    from pdm.model.pipeline import (
        active_windows,
        bundle_features,
        bundle_windows,
        calibrate,
        calibration_notes,
        error_stats,
        fit_envelopes,
        joined_envelopes,
        merge_calibration,
        read_labels,
        saved_envelopes,
        scored_errors,
        split_sets,
        training_windows,
    )
    from pdm.model.train import TrainConfig, train

    version = candidate_version(stop, "finetune")
    found = _existing(Path(models_dir), version)
    if found is not None:
        return found
    bundle = load(production)
    cfg = bundle.model.cfg
    features = bundle_features(bundle)
    t0, t1 = pd.to_datetime(start, utc=True), pd.to_datetime(stop, utc=True)
    first = min(t0, t1 - pd.Timedelta(days=calibration_days))
    grids, spans, _ = bundle_windows(store, bundle, first, t1, features)  # with the model's speed maxima
    begin = t0.value
    sets = {m: w.take(np.nonzero(w.start >= begin)[0]) for m, w in spans.items()}
    short = sorted(set(bundle.scalers) - {m for m, w in sets.items() if len(w)})
    sets = {m: w for m, w in sets.items() if len(w)}
    notes = [f"{m}: no healthy windows in the fine-tuning range; keeps its previous calibration" for m in short]
    # As train_fleet and recalibrate: calibration windows are ones in which the machine ran.
    fit_sets, cal_sets, split_notes = split_sets(grids, sets, features, bundle.scalers, read_labels(store))
    notes += split_notes
    for m in cal_sets:
        w = spans[m].take(np.nonzero(spans[m].start < begin)[0])
        earlier = w.take(np.nonzero(active_windows(grids[m], w, features))[0]) if len(w) else w
        if len(earlier):
            cal_sets[m] = WindowSet.concat([earlier, cal_sets[m]])
    if not sets:
        raise ValueError(f"no healthy windows in {start} .. {stop} to fine-tune on")
    windows = training_windows(fit_sets, bundle.scalers, features)
    saved = bundle.config.get("train", {})
    base = TrainConfig(**{k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__})
    freeze = tuple(freeze or DEFAULT_FREEZE)
    tcfg = replace(base, epochs=epochs, freeze=list(freeze), mvp_epochs=0, lr_max=base.lr_max / 2, progress=False)
    model, metrics = train(windows, cfg, tcfg, model=copy.deepcopy(bundle.model))
    errors = dict(bundle.errors)  # machines without recent windows keep their healthy statistics
    for m, w in sets.items():  # as scoring computes errors (pdm.model.pipeline.scored_errors)
        errors[m] = error_stats(scored_errors(model, grids[m], w, features, bundle.scalers[m].rise_over)[1])
    # The envelope the tuned weights know: the fine-tuning windows' joined with the base model's.
    saved = saved_envelopes(bundle.detect.get("machines", {}))
    envelopes = joined_envelopes(fit_envelopes(grids, fit_sets, features), saved)
    detect = calibrate(model, cal_sets, grids, features, bundle.scalers, envelopes=envelopes)
    notes += [f"{m}: {why}" for m, why in detect["skipped"].items()]
    notes += [f"{m}: {n}" for m, d in detect["machines"].items() for n in calibration_notes(d)]
    detect["machines"] = merge_calibration(bundle.detect.get("machines", {}), detect["machines"])
    tuned = ModelBundle(model, bundle.scalers, errors, {**bundle.config, "train": tcfg.to_dict()},
                        {**bundle.metadata, "data": {"start": str(pd.Timestamp(start)), "stop": str(pd.Timestamp(stop))},
                         "base_version": bundle.version, "kind": "finetune", "metrics": metrics, "problems": notes},
                        detect=detect)
    path = save(tuned, models_dir, version)
    log.info("fine-tuned %s -> %s on %d windows (%d epochs, frozen %s)", bundle.version, version, len(windows),
             epochs, ", ".join(freeze))
    return path


def _failures(store: Store, start: pd.Timestamp, stop: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    truth = store.read("pdm_truth")
    cols_f = ["machine", "failure", "repair_end", "root_cause"]
    cols_n = ["machine", "kind", "start", "end"]
    if truth.empty:
        return pd.DataFrame(columns=cols_f), pd.DataFrame(columns=cols_n)
    end = pd.to_datetime(truth["end_ns"].astype("int64"), unit="ns", utc=True)
    is_fail = truth["is_failure"].fillna(False).astype(bool).to_numpy()
    f = truth[is_fail]
    failures = pd.DataFrame({
        "machine": f["machine"].to_numpy(),
        "failure": pd.to_datetime(f["failure_ns"].astype("int64"), unit="ns", utc=True).to_numpy(),
        "repair_end": end[is_fail].to_numpy(),
        "root_cause": f["root_cause"].fillna("").to_numpy() if "root_cause" in f else "",
    })
    failures = failures[(failures["failure"] >= start) & (failures["failure"] < stop)]
    n = truth[~is_fail]
    nuisances = pd.DataFrame({"machine": n["machine"].to_numpy(), "kind": n["kind"].to_numpy(),
                              "start": n.index, "end": end[~is_fail].to_numpy()})
    return failures.reset_index(drop=True), nuisances


def alarm_frame(report: Any) -> pd.DataFrame:
    """machine, start, channels (latest ranking, ";"-joined), severity, rankings ((time, channels) made in the run)."""
    rows = []
    for m, res in report.machines.items():
        for alarm in res.alarms:
            rc = res.rootcauses.get(alarm.start)
            ranked = [c["channel"] for c in rc.channels] if rc is not None else [res.top_channels.get(alarm.start, "")]
            rankings = [(pd.Timestamp(r.window_end_ns, unit="ns", tz="UTC"), [c["channel"] for c in r.channels])
                        for r in res.rankings if r.alarm_ns == alarm.start]
            rows.append({"machine": m, "start": pd.Timestamp(alarm.start, unit="ns", tz="UTC"),
                         "channels": ";".join(c for c in ranked if c), "severity": alarm.severity,
                         "rankings": rankings})
    return pd.DataFrame(rows, columns=["machine", "start", "channels", "severity", "rankings"])


def evaluate_model(store: Store, model_path: str | Path, start: Any, stop: Any) -> dict[str, Any]:
    """Event metrics of the model's alarms over ``[start, stop)`` (nothing is written)."""
    from pdm.detect.score import score_machines
    from pdm.evaluate.events import event_metrics

    t0, t1 = pd.to_datetime(start, utc=True), pd.to_datetime(stop, utc=True)
    report = score_machines(store, model_path, None, t0, t1, write=False, progress=False)
    alarms = alarm_frame(report)
    failures, nuisances = _failures(store, t0, t1)
    machines = sorted(m for m, r in report.machines.items() if r.status != "skipped")
    observed = pd.DataFrame({"machine": machines, "start": [t0] * len(machines), "end": [t1] * len(machines)})
    m = event_metrics(failures, alarms, observed, nuisances).to_dict()
    m.pop("per_failure", None)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()}


def decide_promotion(candidate: dict[str, Any], production: dict[str, Any] | None, *,
                     fa_tolerance: float = 0.5) -> tuple[bool, str]:
    """(promote?, why) — the candidate must not be worse than production on the same data."""
    if production is None:
        return True, "no production model yet"
    reasons = []
    if (production.get("failures") or 0) > 0:
        cr, pr = candidate.get("recall") or 0.0, production.get("recall") or 0.0
        if cr < pr:
            reasons.append(f"recall {cr:.2f} < production's {pr:.2f}")
    cf = candidate.get("false_alarms_per_machine_month") or 0.0
    pf = production.get("false_alarms_per_machine_month") or 0.0
    if cf > pf + fa_tolerance:
        reasons.append(f"false alarms/machine-month {cf:.2f} > production's {pf:.2f} + {fa_tolerance:g}")
    if reasons:
        return False, "worse than production: " + "; ".join(reasons)
    return True, (f"not worse than production (recall {candidate.get('recall')}, false alarms/machine-month "
                  f"{cf:.2f} vs {pf:.2f})")
