"""pdm.evaluate.rules and benchmarks/alarm_rules.py: alarm rules judged again on a run's series, fleets pooled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.alarm_rules import main
from pdm.evaluate.bench_sim import _Series, write_series, write_truth, write_work_orders
from pdm.evaluate.rules import judge_run, markdown, pool, verdict

H = 3_600_000_000_000
STRIDE = 2 * H
T0 = pd.Timestamp("2024-02-01", tz="UTC")
RULES = {"k of n": {}, "cusum": {"cusum": True, "cusum_ref": 0.5, "cusum_h": 3.0}}


def _run(tmp_path: Path, stem: str, seed: int) -> Path:
    """Two machines over 20 days of 2 h windows, threshold 1: pump-001 healthy at 0.2 but for one spike (a false
    alarm for neither rule); fan-002 with a fault from day 8 whose score sits at 0.75 x threshold for three days
    before rising above it, failing on day 14."""
    n = 240
    times = T0.value + (np.arange(n, dtype=np.int64) + 1) * STRIDE
    healthy = np.full(n, 0.2)
    healthy[100] = 9.0
    faulty = np.full(n, 0.2)
    onset = 96  # window index of day 8
    faulty[onset:] = 0.75
    faulty[onset + 36 :] = 1.5  # three days later above the threshold
    fail = int(times[168])  # day 14
    z = np.zeros((n, 2))
    series = [_Series("pump-001", times, healthy, z + healthy[:, None], 1.0, ["a", "b"]),
              _Series("fan-002", times[:169], faulty[:169], (z + faulty[:, None])[:169], 1.0, ["a", "b"])]
    folder = tmp_path / f"{stem}_series"
    for key in ("tshae", "pca"):
        write_series(series, folder / f"{key}.parquet")
    write_work_orders({}, folder / "work_orders.parquet")
    failures = pd.DataFrame({"machine": ["fan-002"], "failure": [pd.Timestamp(fail, tz="UTC")],
                             "onset": [pd.Timestamp(int(times[onset]) - H, tz="UTC")], "root_cause": ["a"]})
    observed = pd.DataFrame({"machine": ["pump-001", "fan-002"], "start": [T0, T0],
                             "end": [pd.Timestamp(int(times[-1]), tz="UTC"), pd.Timestamp(fail, tz="UTC")]})
    write_truth(failures, observed, None, folder)
    doc = {"config": {"seed": seed}, "split": str(T0),
           "results": {"tshae": {"name": "TSHAE"}, "pca": {"name": "PCA"}, "lstm_ae": {"name": "no series"}}}
    path = tmp_path / f"{stem}.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_cusum_catches_the_slow_fault_that_k_of_n_sees_too_late(tmp_path: Path) -> None:
    run = judge_run(_run(tmp_path, "sim_a", 1), RULES, factors=(1.0, 2.0))
    assert set(run["detectors"]) == {"tshae", "pca"}  # a detector without series is left out
    assert run["failures"] == 1 and run["seed"] == 1
    kofn, cusum = (run["detectors"]["tshae"]["rules"][r] for r in ("k of n", "cusum"))
    k1, c1 = kofn["curve"][0], cusum["curve"][0]
    assert (k1["caught"], k1["false_alarms"]) == (0, 0)  # raised at the rise's third window: 68 h ahead
    assert (c1["caught"], c1["false_alarms"]) == (1, 0)  # at the 12th window of 0.25 after onset
    assert kofn["per_failure"][0]["lead_after_onset_h"] == pytest.approx((168 - (132 + 2)) * 2, abs=0.01)
    # onset an hour before window 96's end; raised at window 96 + 11
    assert cusum["per_failure"][0]["to_alarm_h"] == pytest.approx(11 * 2 + 1, abs=0.01)
    # at twice the threshold the fault's 0.75 is 0.375: no evidence, and the CUSUM is no better than k of n
    assert cusum["curve"][1]["caught"] == kofn["curve"][1]["caught"] == 0


def test_two_of_three_raises_a_window_sooner_than_three_of_five(tmp_path: Path) -> None:
    """2 of 3 raises at the rise's second window above the threshold where 3 of 5 waits for the third: 2 h more lead."""
    from pdm.evaluate.rules import RULES as ALL

    run = judge_run(_run(tmp_path, "sim_a", 1), {"k of n": {}, "2 of 3": ALL["2 of 3"]}, factors=(1.0,))
    kofn, fast = (run["detectors"]["tshae"]["rules"][r]["per_failure"][0] for r in ("k of n", "2 of 3"))
    assert fast["lead_after_onset_h"] == pytest.approx(kofn["lead_after_onset_h"] + 2.0, abs=0.01)


def test_fleets_pool_as_one_plant_and_the_script_writes_its_files(tmp_path: Path) -> None:
    a, b = _run(tmp_path, "sim_a", 1), _run(tmp_path, "sim_b", 2)
    doc = pool({"a": judge_run(a, RULES, factors=(1.0,)), "b": judge_run(b, RULES, factors=(1.0,))})
    assert doc["failures"] == 2
    r = doc["detectors"]["tshae"]["rules"]
    assert (r["k of n"]["caught"], r["cusum"]["caught"]) == (0, 2)
    assert r["cusum"]["bands"][">= 96 h"] == [2, 2] and r["cusum"]["budgets"]["0.25"]["caught"] == 2
    assert r["cusum"]["to_alarm_h"][1] == pytest.approx(23.0, abs=0.01)
    assert "| TSHAE | cusum | 1 at 0 | 1 at 0 | 2 at 0 | 0.00 |" in markdown(doc)
    assert verdict(doc)[0] == "TSHAE: better than k of n: cusum (of 1 rules)"
    with pytest.raises(ValueError, match="no runs"):
        pool({})
    out = tmp_path / "out"
    assert main(["--run", f"a={a}", "--run", f"b={b}", "--rule", "+ CUSUM ref 0.5, h 3", "--results", str(out),
                 "--out", "rules"]) == 0
    written = json.loads((out / "rules.json").read_text())
    assert list(written["detectors"]["tshae"]["rules"]) == ["k of n", "+ CUSUM ref 0.5, h 3"]
    assert written["detectors"]["tshae"]["rules"]["+ CUSUM ref 0.5, h 3"]["caught"] == 2
    assert (out / "rules.md").read_text().count("| TSHAE |") == 2
    assert "- TSHAE: better than k of n: + CUSUM ref 0.5, h 3 (of 1 rules)" in (out / "rules.md").read_text() and (out / "rules.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        main(["--run", f"a={a}", "--rule", "no such rule", "--results", str(out)])
