"""``pdmctl train``: read the store, build healthy windows, train, write a model directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.features import RobustScaler, WindowSet, align_machine, make_windows
from pdm.features.grid import CONTEXT_CHANNELS, EVENT_TYPES, MachineGrid
from pdm.features.windows import excluded_steps
from pdm.model.directory import ModelBundle, save
from pdm.model.train import TrainConfig, channel_errors, reconstruct, train
from pdm.model.tshae import TSHAEConfig
from pdm.store import Store

log = logging.getLogger(__name__)


@dataclass
class FeatureConfig:
    step: str = "10min"
    window: int = 144  # steps (1 day at 10 min)
    stride: int = 12
    min_windows: int = 8


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
    machines = machines or store.machines(["vibration", "temperature"])
    if not machines:
        raise ValueError("no machines with sensor data in the store")
    start = start if start is not None else store.read("process", machines[:1]).index.min()
    stop = stop if stop is not None else pd.Timestamp.now(tz="UTC")
    labels = read_labels(store)
    grids, channels = build_grids(store, machines, start, stop, features.step)
    report = TrainReport(Path(), [], {})
    scalers, sets = {}, {}
    for m, g in grids.items():
        healthy = ~excluded_steps(g.index, labels, m)
        scaler = RobustScaler(channels).fit(g.sensors[healthy])
        w = make_windows(g, scaler, features.window, features.stride, exclude=~healthy)
        if len(w) < features.min_windows:
            report.skipped[m] = f"only {len(w)} healthy windows (need {features.min_windows}); not trained on"
            log.warning("%s: %s", m, report.skipped[m])
            continue
        report.problems += w.problems
        scalers[m], sets[m] = scaler, w
    if not sets:
        raise ValueError("no machine has enough healthy windows: " + "; ".join(f"{k}: {v}" for k, v in report.skipped.items()))
    for p in report.problems:
        log.warning("%s", p)
    windows = WindowSet.concat(list(sets.values()))
    model_cfg = TSHAEConfig(channels=len(channels), context_channels=len(CONTEXT_CHANNELS),
                            event_channels=len(EVENT_TYPES), window=features.window,
                            channel_names=channels, **(model_overrides or {}))
    model, metrics = train(windows, model_cfg, train_cfg)
    errors = {}
    for m, w in sets.items():
        err = channel_errors(w, reconstruct(model, w)["reconstruction"])
        with np.errstate(all="ignore"):
            q1, med, q3 = np.nanpercentile(err, [25, 50, 75], axis=0)
        errors[m] = {"median": np.nan_to_num(med, nan=0.0).tolist(),
                     "iqr": np.where(np.isfinite(q3 - q1) & (q3 - q1 > 0), q3 - q1, 1e-3).tolist()}
    bundle = ModelBundle(
        model, scalers, errors,
        {"model": model_cfg.to_dict(), "train": train_cfg.to_dict(), "features": features.__dict__},
        {"data": {"start": str(pd.Timestamp(start)), "stop": str(pd.Timestamp(stop))}, "machines": sorted(sets),
         "skipped": report.skipped, "problems": report.problems, "metrics": metrics},
    )
    report.path = save(bundle, models_dir)
    report.machines, report.metrics = sorted(sets), metrics
    return report
