"""Pooling harness runs of several fleets (pdm.evaluate.pooled, benchmarks/pooled.py) on hand-made runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.pooled import main
from pdm.evaluate.pooled import markdown, paired, paired_table, pool, sign_test

FACTORS = (1.0, 2.0)


def _run(leads: dict[str, list[tuple[float | None, float | None]]], fa: dict[str, int], months: float,
         sweep_fa: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """A harness run: per detector, each failure's (lead, lead after onset) in hours (None: missed)."""
    names = {"tshae": "TSHAE", "conv_ae": "Conv-AE"}
    results = {}
    for k, rows in leads.items():
        per = []
        for i, (lead, after) in enumerate(rows):
            row: dict[str, Any] = {"machine": f"m-{i}", "failure": f"2024-02-{i + 10:02d} 00:00:00+00:00",
                                   "caught": lead is not None, "onset": "2024-02-01 00:00:00+00:00"}
            if lead is not None:
                row["lead_h"] = lead
                row["rootcause_rank"] = 1 if i % 2 == 0 else 3
            if after is not None:
                row["lead_after_onset_h"] = after
            per.append(row)
        n = len(rows)
        c72 = sum(lead is not None and lead >= 72 for lead, _ in rows)
        c72o = sum(a is not None and a >= 72 for _, a in rows)
        caught = sum(lead is not None for lead, _ in rows)
        metrics = {"failures": n, "caught": caught, "recall": caught / n, "recall_72h": c72 / n,
                   "recall_72h_after_onset": c72o / n, "alarm_before_onset": 0, "alarms": caught + fa[k],
                   "true_alarms": caught, "precision": caught / (caught + fa[k]), "false_alarms": fa[k],
                   "machine_months": months, "false_alarms_per_machine_month": fa[k] / months,
                   "false_alarms_by_cause": {"unexplained": fa[k]}, "median_lead_h": 100.0,
                   "rootcause_top1": 0.5, "rootcause_top3": 1.0}
        sfa = (sweep_fa or {}).get(k, [fa[k], 0])
        sweep = [{"factor": f, "recall_72h": c72 / n, "caught_72h": c72, "recall_72h_after_onset": c72o / n,
                  "caught_72h_after_onset": c72o, "false_alarms": sfa[j], "false_alarms_per_machine_month": sfa[j] / months}
                 for j, f in enumerate(FACTORS)]
        results[k] = {"name": names[k], "fit_seconds": 1.0, "metrics": metrics, "sweep": sweep, "per_failure": per}
    return {"config": {"seed": 1}, "failures": len(next(iter(leads.values()))), "machines": 10,
            "split": "2024-01-31", "end": "2024-04-30", "results": results}


def _fleets() -> dict[str, dict[str, Any]]:
    a = _run({"tshae": [(100, 100), (80, None), (None, None)],
              "conv_ae": [(100, 100), (80, 80), (50, 50)]}, {"tshae": 2, "conv_ae": 3}, 10.0)
    b = _run({"tshae": [(200, 200), (75, 75)],
              "conv_ae": [(None, None), (90, 90)]}, {"tshae": 1, "conv_ae": 0}, 20.0)
    return {"A": a, "B": b}


def test_pool_sums_the_fleets() -> None:
    doc = pool(_fleets())
    t, c = doc["results"]["tshae"]["metrics"], doc["results"]["conv_ae"]["metrics"]
    assert t["failures"] == c["failures"] == 5 and doc["machines"] == 20
    assert t["recall_72h"] == pytest.approx(4 / 5)  # 100, 80, 200, 75
    assert t["recall_72h_after_onset"] == pytest.approx(3 / 5)  # 80 h was an older alarm
    assert c["recall_72h_after_onset"] == pytest.approx(3 / 5)  # 100, 80, 90
    assert t["false_alarms_per_machine_month"] == pytest.approx(3 / 30)
    assert c["false_alarms_per_machine_month"] == pytest.approx(3 / 30)
    assert t["rootcause_top1"] == pytest.approx(2 / 4)  # judged where caught: ranks 1, 3 (A), 1, 3 (B)
    assert t["rootcause_top3"] == pytest.approx(1.0)
    assert c["false_alarms_by_cause"] == {"unexplained": 3}
    sweep = doc["results"]["tshae"]["sweep"]
    assert [p["factor"] for p in sweep] == list(FACTORS)
    assert sweep[0]["caught_72h"] == 4 and sweep[0]["false_alarms"] == 3
    assert {r["fleet"] for r in doc["results"]["tshae"]["per_failure"]} == {"A", "B"}


def test_paired_counts_and_sign_test() -> None:
    doc = pool(_fleets())
    (row,) = paired(doc)  # after onset: TSHAE 100, -, -, 200, 75; Conv-AE 100, 80, -, -, 90
    assert (row["both"], row["tshae_only"], row["baseline_only"], row["neither"]) == (2, 1, 1, 1)
    assert row["difference"] == 0 and row["p_value"] == pytest.approx(1.0)
    assert row["tshae_only_failures"] == ["m-0 2024-02-10 (B)"]
    (any_alarm,) = paired(doc, "recall_72h")
    assert (any_alarm["both"], any_alarm["tshae_only"], any_alarm["baseline_only"]) == (3, 1, 0)
    assert "| Conv-AE | 2 | 1 | 1 | 1 | +0 | 1.00 |" in (paired_table(doc) or "")


def test_sign_test_exact() -> None:
    assert sign_test(0, 3) == pytest.approx(0.25)
    assert sign_test(5, 0) == pytest.approx(2 / 32)
    assert sign_test(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert sign_test(0, 0) == 1.0


def test_pool_refuses_what_it_cannot_add_up() -> None:
    fleets = _fleets()
    fleets["A"]["results"]["tshae"]["metrics"]["recall_72h"] = 1.0  # its rows say 2 of 3
    with pytest.raises(ValueError, match="per-failure rows give 2 caught"):
        pool(fleets)
    fleets = _fleets()
    fleets["B"]["results"]["conv_ae"]["sweep"][1]["factor"] = 3.0
    with pytest.raises(ValueError, match="different factors"):
        pool(fleets)
    with pytest.raises(ValueError, match="nothing"):
        pool({})


def test_markdown_and_script(tmp_path: Path) -> None:
    fleets = _fleets()
    for name, d in fleets.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(d))
    out = tmp_path / "out"
    assert main(["--run", f"A={tmp_path / 'A.json'}", "--run", "B=B.json", "--results", str(out), "--out", "p"]) == 2
    out.mkdir()
    (out / "B.json").write_text(json.dumps(fleets["B"]))  # a relative path is read under --results
    assert main(["--run", f"A={tmp_path / 'A.json'}", "--run", "B=B.json", "--results", str(out), "--out", "p"]) == 0
    doc = json.loads((out / "p.json").read_text())
    assert doc["results"]["tshae"]["metrics"]["failures"] == 5
    md = (out / "p.md").read_text()
    assert "| TSHAE | 1/3 at 0.20 | 2/2 at 0.05 | 3/5 at 0.10 |" in md
    assert "| Conv-AE | 2/3 at 0.30 | 1/2 at 0.00 | 3/5 at 0.10 |" in md
    assert md == markdown({**pool(fleets), "runs": doc["runs"]}, "p", (out / "p_curves.png").exists(),
                          date=doc["date"]) + "\n"
    assert "`A` (`A.json`, seed" in md and "`B` (`B.json`, seed" in md  # which files were pooled
    fleets["B"]["results"]["tshae"]["per_failure"] = []  # an older results file without per-failure rows
    (out / "B.json").write_text(json.dumps(fleets["B"]))
    assert main(["--run", f"A={tmp_path / 'A.json'}", "--run", "B=B.json", "--results", str(out), "--out", "q"]) == 2
    assert not (out / "q.json").exists()


def test_response_times_from_onset_or_the_start_of_scoring_and_the_faults_by_the_time_they_gave() -> None:
    from pdm.evaluate.pooled import response, response_table

    rows = [
        # 80 h from onset to failure, alarm 60 h ahead: 20 h after the onset, not >= 72 h
        {"fleet": "A", "onset": "2024-02-05 00:00:00+00:00", "failure": "2024-02-08 08:00:00+00:00", "lead_after_onset_h": 60.0},
        # onset before scoring began (2024-02-01): the fault gave 240 h of scoring, the alarm came 40 h into it
        {"fleet": "A", "onset": "2024-01-20 00:00:00+00:00", "failure": "2024-02-11 00:00:00+00:00", "lead_after_onset_h": 200.0},
        # 48 h from onset to failure, missed
        {"fleet": "A", "onset": "2024-02-10 00:00:00+00:00", "failure": "2024-02-12 00:00:00+00:00"},
        {"fleet": "A", "failure": "2024-02-20 00:00:00+00:00", "lead_h": 90.0},  # no onset: not judged here
    ]
    doc = {"fleets": {"A": {"split": "2024-02-01 00:00:00+00:00"}},
           "results": {"tshae": {"name": "TSHAE", "per_failure": rows}}}
    got = response(doc)["tshae"]
    assert got["delays"] == pytest.approx([20.0, 40.0])
    assert got["bands"] == {"0-72 h": [0, 1], "72-96 h": [0, 1], ">= 96 h": [1, 1]}
    table = response_table(doc)
    assert table is not None and "| TSHAE | 30 (25-35) | 0/1 | 0/1 | 1/1 |" in table
    assert response_table({"fleets": {}, "results": {"tshae": {"name": "TSHAE", "per_failure": rows[3:]}}}) is None


def test_severity_levels_pool_when_every_run_has_them() -> None:
    fleets = _fleets()
    for d, months in zip(fleets.values(), (10.0, 20.0), strict=True):
        for r in d["results"].values():
            r["severity"] = {"near_h": 72.0, "machine_months": months, "levels": [
                {"level": lv, "alarms": 4 - i, "true_alarms": 2, "false_alarms": 2 - i, "caught": 2, "caught_72h": 2 - i,
                 "caught_72h_after_onset": 1, "failures": 3, "median_lead_h": 50.0, "near": i}
                for i, lv in enumerate(("watch", "warning", "critical"))]}
    crit = pool(fleets)["results"]["tshae"]["severity"]["levels"][2]
    assert (crit["alarms"], crit["false_alarms"], crit["caught_72h"], crit["near"]) == (4, 0, 0, 4)
    assert crit["false_alarms_per_machine_month"] == 0.0 and crit["precision_near"] == 1.0
    del fleets["B"]["results"]["tshae"]["severity"]  # an older run without it: nothing pooled
    assert pool(fleets)["results"]["tshae"]["severity"] is None
