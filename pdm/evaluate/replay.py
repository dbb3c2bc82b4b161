"""Replay the schedule the DAGs run over stored history, then measure it.

Train a fleet model on an initial period, then move forward in steps (say a
day): score each step's windows with the model of the moment (as the scoring
DAG does), and on a cadence (say every 7 days) train a new model on what has
been seen so far (``full``) or fine-tune the current one's top layers on the
last cadence's data (``finetune``, as ``pdm_train`` does without drift).
The alarms of every model version used are then judged together with event
metrics against the ground truth.

Caveat: training excludes labelled faults and maintenance using the store's
``pdm_truth``; a fault whose degradation started before a retraining but
whose failure comes after it is excluded too, which a real plant could not
know yet. The replay is therefore slightly optimistic about contaminated
training data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pdm.evaluate.run import Evaluation, evaluate
from pdm.store import Store


@dataclass
class ReplayConfig:
    """The schedule: initial training period, scoring step, retraining cadence."""

    initial: str = "14D"
    step: str = "1D"
    retrain_every: str | None = "7D"  # None: never retrain
    retrain: Literal["full", "finetune"] = "full"
    train_window: str | None = None  # full retrains: only the last this long (None: all history)
    finetune_epochs: int = 3
    #: A model directory already trained on the initial period (same data, the range checked), used instead of
    #: training it again: a replay that starts from a kept single-train run's model.
    initial_model: str | None = None
    #: Calibrate the given ``initial_model`` again on its training range with the current scoring code
    #: (:func:`pdm.model.pipeline.recalibrate`, saved into the replay's models directory) before it scores:
    #: a directory kept from before a change of the scorer (its envelope, gates, thresholds) is then
    #: replayed as a model trained today would be. False: it scores with its own calibration.
    recalibrate_initial: bool = False
    window: int = 144
    stride: int = 12
    d_model: int = 64
    layers: int = 2
    epochs: int = 10
    seed: int = 0
    #: Machine temperatures as their rise over ambient (:attr:`pdm.model.pipeline.FeatureConfig.temperature_rise`).
    temperature_rise: bool = True
    #: Vibration and currents scaled on running steps (:attr:`pdm.model.pipeline.FeatureConfig.running_scaling`).
    running_scaling: bool = False


@dataclass
class ReplayReport:
    evaluation: Evaluation
    versions: list[str]
    trainings: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    scoring_seconds: float = 0.0
    training_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"versions": self.versions, "trainings": self.trainings,
                "steps": [{k: str(v) if isinstance(v, pd.Timestamp) else v for k, v in s.items()} for s in self.steps],
                "seconds": self.seconds, "scoring_seconds": self.scoring_seconds,
                "training_seconds": self.training_seconds, "evaluation": self.evaluation.to_dict()}


def _given_initial(path: str | Path, lo: pd.Timestamp, t: pd.Timestamp) -> Any:
    """The model directory at ``path``, checked to be trained on ``[lo, t)`` (the replay's initial period)."""
    from pdm.model.directory import load

    bundle = load(path)
    data = bundle.metadata.get("data") or {}
    got = None
    if data.get("start") and data.get("stop"):
        got = (pd.to_datetime(data["start"], utc=True), pd.to_datetime(data["stop"], utc=True))
    if got is None or got[1] != t or got[0] < lo:
        span = f"{got[0]} .. {got[1]}" if got else "an unknown range"
        raise ValueError(f"initial model {bundle.version} was trained on {span}, not on the replay's initial "
                         f"period {lo} .. {t}")
    return bundle


def data_range(store: Store, machines: Sequence[str] | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last time of the sensor data (process values, else temperatures)."""
    for meas in ("process", "temperature", "vibration"):
        d = store.read(meas, list(machines) if machines else None, fields=None, every="1D", agg="last")
        if not d.empty:
            return d.index.min().floor("1D"), d.index.max().floor("1D") + pd.Timedelta("1D")
    raise ValueError("the store holds no sensor data to replay")


def replay(store: Store, models_dir: str | Path, start: Any = None, stop: Any = None, *,
           machines: Sequence[str] | None = None, config: ReplayConfig | None = None,
           failures: Any = None, progress: bool | Callable[[str], None] = True) -> ReplayReport:
    """Train, score forward step by step with retraining, and evaluate; returns the report.

    ``start``/``stop`` default to the stored data's range. Scoring covers
    ``[start + initial, stop)``. ``failures``: a failure log (else ``pdm_truth``).

    Raises
    ------
    ValueError
        When the range leaves nothing to score after the initial period.
    """
    from pdm.detect.score import score_machines
    from pdm.model.directory import load
    from pdm.model.pipeline import FeatureConfig, train_fleet
    from pdm.model.train import TrainConfig

    cfg = config or ReplayConfig()
    say = progress if callable(progress) else ((lambda m: print(m, flush=True)) if progress else (lambda _m: None))
    began = time.perf_counter()
    if start is None or stop is None:
        d0, d1 = data_range(store, machines)
    lo = d0 if start is None else pd.to_datetime(start, utc=True)
    hi = d1 if stop is None else pd.to_datetime(stop, utc=True)
    step, initial = pd.Timedelta(cfg.step), pd.Timedelta(cfg.initial)
    every = pd.Timedelta(cfg.retrain_every) if cfg.retrain_every else None
    t = lo + initial
    if t >= hi:
        raise ValueError(f"nothing to score: initial period {cfg.initial} reaches past the end {hi}")
    models_dir = Path(models_dir)
    features = FeatureConfig(window=cfg.window, stride=cfg.stride, min_windows=4, temperature_rise=cfg.temperature_rise,
                             running_scaling=cfg.running_scaling)
    overrides = {"d_model": cfg.d_model, "layers": cfg.layers}
    n_steps = -(-(hi - t) // step)
    report = ReplayReport(evaluation=None, versions=[])  # type: ignore[arg-type]

    def train_at(now: pd.Timestamp, kind: str, current: Any) -> Any:
        t0 = time.perf_counter()
        if kind == "finetune" and current is not None:
            from pdm.pipeline.retrain import finetune_fleet

            path = finetune_fleet(store, current.path, models_dir, now - (every or initial), now,
                                  epochs=cfg.finetune_epochs)
            span = (now - (every or initial), now)
        else:
            first = max(lo, now - pd.Timedelta(cfg.train_window)) if cfg.train_window else lo
            rep = train_fleet(store, models_dir, machines=list(machines) if machines else None, start=first, stop=now,
                              features=features, model_overrides=overrides,
                              train_cfg=TrainConfig(epochs=cfg.epochs, seed=cfg.seed, progress=False))
            path, span = rep.path, (first, now)
        bundle = load(path)
        secs = time.perf_counter() - t0
        report.training_seconds += secs
        report.versions.append(bundle.version)
        report.trainings.append({"version": bundle.version, "kind": kind, "from": str(span[0]), "to": str(span[1]),
                                 "seconds": round(secs, 1)})
        say(f"[replay] {kind} training on {span[0]:%Y-%m-%d} .. {span[1]:%Y-%m-%d}: model {bundle.version} "
            f"in {secs:.1f}s")
        return bundle

    if cfg.initial_model:
        bundle = _given_initial(cfg.initial_model, lo, t)
        given = {"version": bundle.version, "kind": "given", "from": str(lo), "to": str(t), "seconds": 0.0,
                 "path": str(bundle.path)}
        say(f"[replay] initial model {bundle.version} given (trained on {lo:%Y-%m-%d} .. {t:%Y-%m-%d})")
        if cfg.recalibrate_initial:
            from pdm.model.pipeline import recalibrate

            t0 = time.perf_counter()
            bundle = load(recalibrate(store, bundle, models_dir))
            given.update(recalibrated_as=bundle.version, seconds=round(time.perf_counter() - t0, 1))
            say(f"[replay] ... calibrated again by the current scorer: model {bundle.version}")
        report.versions.append(bundle.version)
        report.trainings.append(given)
    else:
        bundle = train_at(t, "full", None)
    last_train = t
    for i in range(int(n_steps)):
        if every is not None and t - last_train >= every:
            bundle = train_at(t, cfg.retrain, bundle)
            last_train = t
        t1 = min(t + step, hi)
        t0 = time.perf_counter()
        res = score_machines(store, bundle, list(machines) if machines else None, t, t1, progress=False)
        secs = time.perf_counter() - t0
        report.scoring_seconds += secs
        windows = sum(len(r.scores) for r in res.machines.values())
        open_alarms = sum(1 for r in res.machines.values() if r.open_alarm is not None)
        report.steps.append({"from": t, "to": t1, "version": bundle.version, "windows": windows,
                             "open_alarms": open_alarms, "seconds": round(secs, 2)})
        say(f"[replay {i + 1}/{int(n_steps)}] scored {t:%Y-%m-%d %H:%M} .. {t1:%Y-%m-%d %H:%M} with {bundle.version}: "
            f"{windows} windows, {open_alarms} machine(s) in alarm ({secs:.1f}s)")
        t = t1
    say("[replay] evaluating the alarms of every version used")
    report.evaluation = evaluate(store, failures, start=lo + initial, stop=hi, model_version=list(dict.fromkeys(report.versions)),
                                 machines=machines)
    report.seconds = time.perf_counter() - began
    return report
