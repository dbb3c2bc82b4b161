"""Has the healthy data moved away from what the production model learnt?

Test, per machine and channel: the two-sample Kolmogorov–Smirnov test
(:func:`scipy.stats.ks_2samp`) between the scaled values of the recent
healthy data and those of the model's training data (its data range, read
again from the store and scaled with the model's own per-machine scalers).
A channel *drifts* when the KS statistic D exceeds ``ks`` (default 0.3, an
effect size: with thousands of samples the p-value alone flags trivial
shifts) **and** its p-value is below ``alpha`` (default 0.01). The fleet has
drifted when the share of drifting (machine, channel) pairs exceeds ``share``
(default 0.25): then ``pdm_train`` retrains fully, else it only fine-tunes
the top layers.

Healthy means outside labelled faults (onset → repair end) and maintenance,
as for training. Channels with fewer than ``min_samples`` observed values on
either side are not tested.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pdm.store import Store

log = logging.getLogger(__name__)

KS = 0.3
ALPHA = 0.01
SHARE = 0.25
MIN_SAMPLES = 50


@dataclass
class DriftReport:
    """Per-channel test results and the decision."""

    table: pd.DataFrame  # machine, channel, statistic, pvalue, n_reference, n_recent, drifted
    share: float
    threshold: float
    tested: int
    problems: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return self.tested > 0 and self.share > self.threshold

    @property
    def decision(self) -> str:
        return "retrain" if self.drifted else "finetune"

    def summary(self) -> dict[str, Any]:
        top = self.table[self.table["drifted"]].sort_values("statistic", ascending=False).head(10) if len(self.table) else self.table
        return {"share": self.share, "threshold": self.threshold, "tested": self.tested, "decision": self.decision,
                "test": "two-sample Kolmogorov-Smirnov per machine and channel",
                "top": [{"machine": r.machine, "channel": r.channel, "D": round(float(r.statistic), 4),
                         "p": float(r.pvalue)} for r in top.itertuples()],
                "problems": self.problems[:20]}


def channel_drift(reference: pd.DataFrame, recent: pd.DataFrame, *, ks: float = KS, alpha: float = ALPHA,
                  min_samples: int = MIN_SAMPLES) -> pd.DataFrame:
    """KS test per common column of two frames of scaled values (NaN = missing)."""
    from scipy.stats import ks_2samp

    rows = []
    for c in [c for c in reference.columns if c in recent.columns]:
        a = reference[c].to_numpy(dtype=float)
        b = recent[c].to_numpy(dtype=float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < min_samples or len(b) < min_samples:
            continue
        res = ks_2samp(a, b)
        d, p = float(res.statistic), float(res.pvalue)
        rows.append({"channel": c, "statistic": d, "pvalue": p, "n_reference": len(a), "n_recent": len(b),
                     "drifted": bool(d > ks and p < alpha)})
    return pd.DataFrame(rows, columns=["channel", "statistic", "pvalue", "n_reference", "n_recent", "drifted"])


def _healthy_scaled(store: Store, machine: str, scaler: Any, channels: list[str], start: Any, stop: Any,
                    labels: pd.DataFrame, step: str) -> pd.DataFrame:
    from pdm.features import align_machine
    from pdm.features.windows import excluded_steps, grid_running

    grid = align_machine(store, machine, start, stop, step, channels=channels)
    keep = ~excluded_steps(grid.index, labels, machine)
    values = scaler.transform(grid.sensors[keep], grid_running(grid, keep))
    return pd.DataFrame(values, columns=channels)


def fleet_drift(store: Store, bundle: Any, recent_start: Any, recent_stop: Any, *, ks: float = KS,
                alpha: float = ALPHA, share: float = SHARE, reference_days: float = 14.0,
                min_samples: int = MIN_SAMPLES) -> DriftReport:
    """Drift of ``[recent_start, recent_stop)`` against the model's training data, machine by machine.

    The reference is the last ``reference_days`` of the model's training range.
    """
    from pdm.model.pipeline import read_labels

    data = bundle.metadata.get("data", {})
    if not data.get("stop"):
        raise ValueError("the model's metadata has no training data range; cannot test drift")
    ref_stop = pd.Timestamp(data["stop"])
    ref_start = max(pd.Timestamp(data["start"]), ref_stop - pd.Timedelta(days=reference_days))
    channels = list(bundle.model.cfg.channel_names)
    step = bundle.config.get("features", {}).get("step", "10min")
    labels = read_labels(store)
    tables, problems = [], []
    for machine, scaler in sorted(bundle.scalers.items()):
        ref = _healthy_scaled(store, machine, scaler, channels, ref_start, ref_stop, labels, step)
        rec = _healthy_scaled(store, machine, scaler, channels, recent_start, recent_stop, labels, step)
        t = channel_drift(ref, rec, ks=ks, alpha=alpha, min_samples=min_samples)
        if t.empty:
            problems.append(f"{machine}: too little healthy data to test (reference {len(ref)}, recent {len(rec)} steps)")
            continue
        t.insert(0, "machine", machine)
        tables.append(t)
    table = pd.concat(tables, ignore_index=True) if tables else channel_drift(pd.DataFrame(), pd.DataFrame())
    if "machine" not in table.columns:
        table.insert(0, "machine", pd.Series(dtype=object))
    tested = len(table)
    frac = float(table["drifted"].mean()) if tested else 0.0
    report = DriftReport(table, frac, share, tested, problems)
    log.info("drift: %d of %d channel tests drifted (%.0f%%, threshold %.0f%%) -> %s",
             int(table["drifted"].sum()) if tested else 0, tested, 100 * frac, 100 * share, report.decision)
    return report


def quick_shift(store: Store, models_dir: Any, start: Any, stop: Any, *, limit: float = 1.0,
                step: str = "10min") -> dict[str, Any]:
    """A cheap screen run by every ingest: the share of (machine, channel) pairs whose median over
    ``[start, stop)``, scaled by the production model's scalers, lies more than ``limit`` IQR
    from the training median. No model: share 0. The KS test of :func:`fleet_drift` decides.
    """
    import json

    from pdm.features import RobustScaler, align_machine
    from pdm.features.windows import grid_running
    from pdm.model.directory import ModelDirectoryError
    from pdm.model.registry import production_path

    try:
        path = production_path(models_dir)
    except ModelDirectoryError:
        return {"share": 0.0, "tested": 0, "shifted": []}
    scalers = {m: RobustScaler.from_dict(d) for m, d in json.loads((path / "scalers.json").read_text()).items()}
    shifted, tested = [], 0
    for machine, scaler in sorted(scalers.items()):
        grid = align_machine(store, machine, start, stop, step, channels=scaler.channels)
        if grid.sensors.empty:
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing channels are not tested
            med = (np.nanmedian(scaler.transform(grid.sensors, grid_running(grid)), axis=0) if len(grid.sensors)
                   else np.array([]))
        for c, v in zip(scaler.channels, med, strict=False):
            if np.isfinite(v):
                tested += 1
                if abs(v) > limit:
                    shifted.append(f"{machine}:{c}")
    return {"share": len(shifted) / tested if tested else 0.0, "tested": tested, "shifted": shifted[:50]}


DRIFT_FILE = "drift.json"


def save_drift(models_dir: Any, summary: dict[str, Any]) -> None:
    """Keep the latest drift check beside the models (``<models>/drift.json``; the dashboard's model page shows it)."""
    import json
    import os
    from pathlib import Path

    root = Path(models_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{DRIFT_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    os.replace(tmp, root / DRIFT_FILE)

