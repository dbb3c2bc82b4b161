"""The fleet-scoring benchmark's core run on a tiny fleet: every field it reports is there and finite."""

from __future__ import annotations

import json
import math

import numpy as np

from benchmarks.fleet_scoring import (
    BenchConfig,
    markdown,
    model_groups,
    run_benchmark,
    synthetic_windows,
)


def test_synthetic_fleet_has_missing_values_running_flag_and_faults() -> None:
    ws, bad = synthetic_windows(machines=6, channels=16, window=128, seed=1, faulty=2)
    assert ws.values.shape == (6, 16, 128) and len(bad) == 2
    assert np.isnan(ws.values).any() and np.array_equal(np.isnan(ws.values), ws.mask == 0)
    assert set(np.unique(ws.context[:, 2])) <= {0.0, 1.0}


def test_tiny_fleet_run_reports_finite_scores_and_targets() -> None:
    cfg = BenchConfig(machines=3, window=128, batch_sizes=(1, 2), threads=(1,), group_threads=(2,), calib_windows=24,
                      train_steps=2, profile=False, train_in_child=False)
    res = run_benchmark(cfg, progress=False)
    for name in ("float32", "int8"):
        r = res["runs"][name]
        assert [(p["batch"], p["group_threads"]) for p in r["passes"]] == [(1, 1), (2, 1), (1, 2), (2, 2)]
        assert r["passes"][0]["requests"] == 3 and r["passes"][1]["requests"] == 2
        assert math.isfinite(r["best"]["total_s"]) and r["single_request"]["latency_ms"]["p99"] > 0
    # Batching, or the imputation passes run side by side, does not change a float32 score (int8's can move:
    # activations are quantised per batch).
    assert res["runs"]["float32"]["score_max_diff_across_passes"] < 1e-4
    assert 0.0 <= res["agreement"]["alarm_decision_agreement"] <= 1.0
    assert {t["check"].split(":")[0] for t in res["targets"]} == {"float32", "int8"}
    assert all(t["scaled"] for t in res["targets"] if t["unit"] == "s")  # 3 machines → scaled to 1,000
    assert model_groups(res["model"]["config"]) == [[*range(12)], [12, 13, 14, 15]]
    res.update(torch="x", date="today", machine="here")
    json.dumps(res)
    md = markdown(res)
    assert "| check | target | measured | met |" in md
    assert "reconstruct (2 imputation passes)" in md  # the product's scoring, not plain reconstruction
    assert "| float32 | 1 thread, 2 imputation threads | 1 |" in md
