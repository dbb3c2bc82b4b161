"""``pdmctl benchmark sim`` end to end on a tiny fleet (one fast detector)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pdm.evaluate.bench_sim import SimBenchConfig, benchmark_sim


def test_sim_benchmark_tiny(tmp_path: Path) -> None:
    cfg = SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1, detectors=("pca",))
    doc = benchmark_sim(cfg, tmp_path / "out", quick=True, progress=None)
    assert doc["machines"] == 2
    m = doc["results"]["pca"]["metrics"]
    assert m["machine_months"] == pytest.approx(2 * 3.0 / 30, rel=0.02)  # only the scored period counts
    assert m["alarms"] == m["true_alarms"] + m["false_alarms"]
    saved = json.loads((tmp_path / "out" / "sim_quick.json").read_text())
    assert saved["results"]["pca"]["name"] == "PCA T²+Q"
    assert "false alarms / machine-month" in (tmp_path / "out" / "sim_quick.md").read_text()


def test_sim_benchmark_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train_days"):
        benchmark_sim(SimBenchConfig(days=5.0, train_days=6.0), tmp_path, progress=None)
    with pytest.raises(ValueError, match="window"):
        benchmark_sim(SimBenchConfig(window=60), tmp_path, progress=None)


def _doc(**rows: tuple[float, float]) -> dict:
    return {"results": {k: {"name": k.upper(), "metrics": {"recall_72h": r, "false_alarms_per_machine_month": fa}}
                        for k, (r, fa) in rows.items()}}


def test_verdict_needs_more_recall_at_no_more_false_alarms() -> None:
    from pdm.evaluate.bench_sim import verdict

    assert verdict(_doc(pca=(0.5, 1.0))) is None  # no TSHAE row
    assert "**met**" in str(verdict(_doc(tshae=(0.8, 0.5), pca=(0.6, 0.5), lstm=(0.7, 0.9))))
    # As much recall is not ahead, even at fewer false alarms.
    out = str(verdict(_doc(tshae=(0.8, 0.5), pca=(0.6, 0.5), lstm=(0.8, 0.9))))
    assert "**missed**" in out and "LSTM" in out and "PCA" not in out.split("missed")[1]
    # More recall bought with more false alarms is not ahead.
    out = str(verdict(_doc(tshae=(0.9, 1.2), pca=(0.6, 0.5))))
    assert "**missed**" in out and "PCA" in out
