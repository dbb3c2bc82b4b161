"""pdmctl evaluate: alarms from the store against pdm_truth or a hand-written failure log."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pdm.cli import main
from pdm.evaluate.failures import FailureLogError, read_failure_log
from pdm.evaluate.run import EvaluationError, evaluate, metrics_rows
from tests.evaluate.storedata import write_store


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    store = write_store(path)
    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    monkeypatch.setenv("PDM_STORE__PATH", str(path))
    monkeypatch.setenv("PDM_DATA_DIR", str(tmp_path / "data"))
    return store


def test_metrics_from_the_store_truth_count_lead_time_false_alarm_and_root_cause(store_env):
    e = evaluate(store_env)
    m = e.events
    assert e.model_versions == ["v2"] and e.machines == ["m1", "m2"]
    assert (m.failures, m.caught, m.alarms, m.false_alarms) == (2, 1, 2, 1)
    assert [r.get("lead_h") for r in m.per_failure] == [96.0, None]
    assert m.recall_72h == 0.5 and m.rootcause_top1 == 1.0
    assert m.false_alarms_by_cause == {"maintenance": 1}
    # Scored 2024-01-01 00:00 → 2024-02-29 22:00 on two machines.
    assert m.machine_months == pytest.approx(2 * (59 + 22 / 24) / 30)


def test_point_wise_and_point_adjusted_metrics_come_side_by_side(store_env):
    p = evaluate(store_env).pointwise
    # m1 degrades Feb 1 → Feb 10 (108 windows of 2 h), alarmed Feb 6 → Feb 10 (48 judged windows);
    # m2 degrades Feb 15 → Feb 20 (60 windows), never alarmed; its false alarm spans 13 windows.
    assert (p["point"]["tp"], p["point"]["fp"], p["point"]["fn"]) == (48, 13, 60 + 60)
    assert (p["point_adjusted"]["tp"], p["point_adjusted"]["fn"]) == (108, 60)
    assert p["point_adjusted"]["f1"] > p["point"]["f1"]
    assert p["windows"] == 2 * 720 - 2 * 13  # failure → repair end is not judged


def test_the_time_to_failure_the_open_alarms_showed_is_judged_against_the_failures(store_env):
    e = evaluate(store_env)
    t = e.ttf
    assert t is not None and t["windows"] == 49 + 13 and t["windows_censored"] == 0
    # m1 said "72 h or less" from 72 h before its failure (37 windows, all right); m2's false alarm said 30 h
    assert (t["said_within"], t["said_within_followed"]) == (37 + 13, 37)
    assert t["base_rate"] == pytest.approx(37 / 62) and t["within_2x"] == pytest.approx(1.0)
    assert (t["failures"], t["failures_said"], t["said_on_time"]) == (2, 1, 1)
    assert [r["first_said_h"] for r in t["per_failure"]] == [72.0, None]
    rows = metrics_rows(e)
    trend = dict(rows[rows.index(next(r for r in rows if r[0] == "time to failure <= 72 h (trend)")):][:2])
    assert trend["time to failure <= 72 h (trend)"].startswith(
        "37 of 50 windows followed by a failure within 72 h (74.0 %")
    assert trend["  failures told <= 72 h ahead"] == "1 of 2 (1 within 72 h, 0 earlier)"
    # what the dashboard shows, from the failures before each window: m2's false alarm (January) had no history,
    # nor had m1's alarm (the first failure): never an estimate
    h = e.ttf_history
    assert h is not None and h["said_within"] == 0 and h["windows"] == 62
    assert "rows" not in e.to_dict()["time_to_failure"] and e.to_dict()["time_to_failure"]["said_within"] == 50
    assert evaluate(store_env, model_version="v1").ttf is None  # scores written before the field: nothing to judge


def test_an_older_model_version_is_judged_only_when_asked(store_env):
    e = evaluate(store_env, model_version="v1")
    assert e.model_versions == ["v1"] and e.events.failures == 0  # v1 scored January only
    assert e.events.false_alarms == 1
    assert evaluate(store_env, model_version="all").model_versions == ["v1", "v2"]
    with pytest.raises(EvaluationError, match="v9"):
        evaluate(store_env, model_version="v9")


def test_cli_on_a_hand_written_failure_log_prints_the_table_and_writes_json(store_env, tmp_path, capsys):
    log = tmp_path / "failures.csv"
    # A plant's log: time, machine, mode, component; no onset, so no point-wise metrics.
    log.write_text("time,machine,mode,component\n"
                   "2024-02-10 00:00,m1,bearing_wear,DE bearing\n"
                   "2024-02-12T12:00:00Z,m2,seal,pump seal\n"
                   "2024-05-01T00:00:00Z,m2,seal,pump seal\n")
    out = tmp_path / "m.json"
    assert main(["evaluate", "--failures", str(log), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "recall >= 72 h ahead" in text and "false alarms per machine-month" in text
    assert "m1           2024-02-10 00:00  lead 96.0 h" in text and "missed" in text
    assert "point-wise metrics left out" in text and "1 failure(s) happened outside" in text
    doc = json.loads(out.read_text())
    ev = doc["events"]
    assert (ev["failures"], ev["caught"], ev["false_alarms"]) == (2, 1, 1)
    assert doc["pointwise"] is None and doc["failures_outside_scored_period"] == 1
    assert ev["false_alarms_by_cause"] == {"maintenance": 1}  # nuisances still come from pdm_truth


def test_cli_from_to_limits_the_period(store_env, capsys):
    assert main(["evaluate", "--from", "2024-02-01", "--to", "2024-02-15"]) == 0
    text = capsys.readouterr().out
    assert "failures (in scored period)           1" in text  # only m1's
    assert "false alarms                          0" in text


@pytest.mark.parametrize("content, message", [
    ("when,machine\n2024-01-01,m1\n", "missing column(s) failure"),
    ("time,machine\n2024-13-45,m1\n", "not times"),
    ("time,machine\n2024-02-01,\n", "empty machine"),
    ("time,machine,repair_end\n2024-02-01,m1,2024-01-01\n", "repair_end before the failure"),
    ("\x00\x01garbage", "missing column"),
])
def test_a_malformed_failure_log_is_refused_with_the_reason(store_env, tmp_path, capsys, content, message):
    log = tmp_path / "bad.csv"
    log.write_text(content)
    with pytest.raises(FailureLogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_failure_log(log)
    assert main(["evaluate", "--failures", str(log)]) == 2
    err = capsys.readouterr().err
    assert "pdmctl evaluate:" in err and str(log) in err


def test_a_missing_failure_log_and_a_corrupt_parquet_are_refused(store_env, tmp_path, capsys):
    assert main(["evaluate", "--failures", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "f.parquet"
    bad.write_bytes(b"not parquet at all")
    assert main(["evaluate", "--failures", str(bad)]) == 2
    assert "cannot be read as Parquet" in capsys.readouterr().err


def test_a_parquet_failure_log_with_root_causes_gives_root_cause_accuracy(store_env, tmp_path):
    path = tmp_path / "f.parquet"
    pd.DataFrame({"time": pd.to_datetime(["2024-02-10"], utc=True), "machine": ["m1"],
                  "root_cause": ["temperature.bearing.celsius"]}).to_parquet(path)
    m = evaluate(store_env, path).events
    assert m.failures == 1 and m.rootcause_top1 == 0.0 and m.rootcause_top3 == 1.0


def test_a_store_without_scores_says_to_score_first(tmp_path):
    store = write_store(tmp_path / "s.duckdb")
    store.delete("pdm_score", "2000-01-01", "2100-01-01")
    with pytest.raises(EvaluationError, match="pdmctl score"):
        evaluate(store)


def test_the_simulator_labels_file_gives_failures_and_nuisances(tmp_path):
    store = write_store(tmp_path / "s.duckdb", truth=False)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "machine,plant,line,kind,is_failure,start,failure,end,root_cause,affected,detail\n"
        "m2,p,l,maintenance,False,2024-01-20T02:00:00Z,,2024-01-20T08:00:00Z,,,\n"
        "m1,p,l,bearing_wear,True,2024-02-01T00:00:00Z,2024-02-10T00:00:00Z,2024-02-11T00:00:00Z,"
        "vibration.de.band_bpfo;process..current_a,,\n"
    )
    failures, nuisances = read_failure_log(labels)
    assert list(failures["machine"]) == ["m1"] and failures.loc[0, "mode"] == "bearing_wear"
    assert failures.loc[0, "root_cause"] == "vibration.de.band_bpfo;process.current_a"  # channel ids as the features name them
    assert list(nuisances["kind"]) == ["maintenance"]
    e = evaluate(store, labels)
    assert (e.events.failures, e.events.caught) == (1, 1)
    assert e.events.false_alarms_by_cause == {"maintenance": 1}
    assert e.pointwise is not None and e.pointwise["point"]["tp"] == 48
    with pytest.raises(EvaluationError, match="--failures FILE"):
        evaluate(store)  # no failure log and no pdm_truth


def test_a_failure_whose_fault_ran_outside_the_operating_envelope_says_how_much(store_env):
    # Before pdm_score had a state, nothing is claimed either way.
    assert all("fault_windows" not in r for r in evaluate(store_env).events.per_failure)
    # m2's fault (2024-02-15 -> 02-20, 60 windows of 2 h): its last 2 days ran at a load the model never saw.
    t = pd.date_range("2024-01-01", "2024-03-01", freq="2h", inclusive="left", tz="UTC")
    for m in ("m1", "m2"):
        blind = (t >= pd.Timestamp("2024-02-18", tz="UTC")) & (t < pd.Timestamp("2024-02-20", tz="UTC")) & (m == "m2")
        # its last day there scored against that excursion's own baseline (pdm.detect.excursion)
        later = blind & (t >= pd.Timestamp("2024-02-19", tz="UTC"))
        unscored = blind & ~later
        frame = pd.DataFrame({"machine": m, "model_version": "v2", "threshold": 4.0,
                              "score": np.where(unscored, np.nan, 2.0), "ratio": np.where(unscored, np.nan, 0.5),
                              "state": np.where(later, "new_regime", np.where(blind, "outside_envelope", "scored"))},
                             index=t)
        store_env.write(frame, "pdm_score", ["machine", "model_version"])
    rows = {r["machine"]: r for r in evaluate(store_env).events.per_failure}
    assert rows["m2"]["fault_windows"] == 60 and rows["m2"]["fault_windows_outside_envelope"] == 12
    assert rows["m2"]["fault_windows_new_regime"] == 12
    assert rows["m1"]["fault_windows"] == 9 * 12 and rows["m1"]["fault_windows_outside_envelope"] == 0
    # the window m1's root cause was ranked at was scored inside the envelope (ranked by the model's errors)
    assert rows["m1"]["rootcause_window_state"] == "scored" and "rootcause_window_state" not in rows["m2"]


def test_each_severity_is_judged_from_when_the_alarms_reached_it(store_env):
    """m1's alarm (96 h ahead) turned critical 48 h before its failure; m2's false alarm stayed a warning."""
    e = evaluate(store_env)
    levels = {lv["level"]: lv for lv in e.severity["levels"]}
    assert (levels["warning"]["alarms"], levels["warning"]["caught_72h"], levels["warning"]["false_alarms"]) == (2, 1, 1)
    crit = levels["critical"]
    assert (crit["alarms"], crit["caught"], crit["caught_72h"], crit["false_alarms"], crit["near"]) == (1, 1, 0, 0, 1)
    assert crit["median_lead_h"] == pytest.approx(48.0)
    rows = dict(metrics_rows(e))
    assert rows["critical, counted from reaching it"] == ("0 of 2 caught >= 72 h ahead, 0 false alarms "
                                                          "(0.00 / machine-month); 1 of 1 failed within 72 h")
    assert e.to_dict()["severity"]["levels"][2]["near"] == 1
    # points written before warning_ns / critical_ns: every level up to their severity from their start
    old = {lv["level"]: lv for lv in evaluate(store_env, model_version="v1").severity["levels"]}
    assert (old["warning"]["alarms"], old["critical"]["alarms"]) == (1, 0)


def test_evaluate_prices_the_level_to_notify_from_with_the_plants_costs(store_env, tmp_path, capsys):
    e = evaluate(store_env)
    notify = e.severity["notify"]  # type: ignore[index]
    # the store's truth gives repair ends: m1's failure is told 96 h ahead and planned, m2's missed
    assert notify["repair_from_log"] and notify["false_call_h"] == 2.0
    watch = notify["levels"][0]
    assert (watch["planned"], watch["unplanned"], watch["false_alarms"]) == (1, 1, 1)
    assert watch["cost_h"] == pytest.approx(1.5 * notify["repair_h"] + 2.0)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--false-call-hours", "5", "--repair-hours", "10", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "a false call 5 h, a repair 10.0 h (stated), a planned stop 50 % of it)" in text
    assert "fewer calls pay when a call costs" in text
    doc = json.loads(out.read_text())["severity"]["notify"]
    assert doc["levels"][0]["cost_h"] == pytest.approx(10 + 5 + 5)
    assert main(["evaluate", "--false-call-hours", "-1"]) == 2
    assert "--false-call-hours must be >= 0" in capsys.readouterr().err
