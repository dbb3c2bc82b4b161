"""Several trainings on one fleet side by side (pdm.evaluate.spread, benchmarks/seed_spread.py) on hand-made runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.seed_spread import main, parse
from pdm.evaluate.spread import markdown, spread
from tests.evaluate.test_pooled import _run


def _trainings() -> list[dict]:
    # Three runs of one fleet (three failures): TSHAE and Conv-AE trained once in each, another seed each time.
    a = _run({"tshae": [(100, 100), (80, 80), (None, None)], "conv_ae": [(100, 100), (80, 80), (90, 90)]},
             {"tshae": 2, "conv_ae": 1}, 10.0)
    b = _run({"tshae": [(100, 100), (80, 70), (None, None)], "conv_ae": [(100, 100), (80, 80), (None, None)]},
             {"tshae": 6, "conv_ae": 1}, 10.0)
    c = _run({"tshae": [(100, 100), (85, 85), (75, 75)], "conv_ae": [(100, 100), (80, 80), (90, 90)]},
             {"tshae": 1, "conv_ae": 3}, 10.0)
    return [{"group": g, "label": f"seed {i}", "run": run, "detector": det}
            for g, det in (("TSHAE", "tshae"), ("Conv-AE", "conv_ae")) for i, run in enumerate((a, b, c))]


def test_spread_gives_each_groups_least_median_and_most() -> None:
    doc = spread(_trainings())
    t, c = doc["groups"]["TSHAE"], doc["groups"]["Conv-AE"]
    assert (t["caught_min"], t["caught_median"], t["caught_max"]) == (1, 2, 3)  # 2 (80 after onset), 1 (70), 3
    assert (t["false_alarms_min"], t["false_alarms_median"], t["false_alarms_max"]) == (1, 2, 6)
    assert (c["caught_min"], c["caught_median"], c["caught_max"]) == (2, 3, 3)
    assert t["false_alarms_per_machine_month_median"] == pytest.approx(0.2)
    second = doc["per_failure"][1]
    assert second["TSHAE"] == {"caught": 2, "of": 3, "lead_after_onset_h_median": 80.0}  # 80, 70, 85
    assert doc["per_failure"][2]["Conv-AE"]["caught"] == 2
    md = markdown(doc)
    assert "| TSHAE | 3 | 1 / 2 / 3 | 1 / 2 / 6 | 0.20 |" in md
    assert "| m-1 | 2024-02-11 00:00 | 2/3 (80) | 3/3 (80) |" in md


def test_spread_refuses_runs_of_other_fleets_or_failures() -> None:
    tr = _trainings()
    tr[1]["run"] = json.loads(json.dumps(tr[1]["run"]))
    tr[1]["run"]["config"]["seed"] = 2
    with pytest.raises(ValueError, match="another fleet or scored period"):
        spread(tr)
    tr = _trainings()[:2]
    tr[1]["run"] = json.loads(json.dumps(tr[1]["run"]))
    tr[1]["run"]["results"]["tshae"]["per_failure"][0]["machine"] = "m-9"
    with pytest.raises(ValueError, match="other failures"):
        spread(tr)
    with pytest.raises(ValueError, match="no detector 'lstm_ae'"):
        spread([{**_trainings()[0], "detector": "lstm_ae"}])
    with pytest.raises(ValueError, match="no trainings"):
        spread([])


def test_the_script_writes_tables_and_a_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i, t in enumerate(_trainings()[:3]):
        (tmp_path / f"run{i}.json").write_text(json.dumps(t["run"]))
    args = [a for i in range(3) for a in ("--training", f"TSHAE/seed {i}=run{i}.json:tshae")]
    assert main([*args, "--results", str(tmp_path), "--out", "s"]) == 0
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["groups"]["TSHAE"]["trainings"] == 3 and doc["trainings"][0]["file"] == "run0.json"
    assert (tmp_path / "s.png").stat().st_size > 1000 and "s.png" in (tmp_path / "s.md").read_text()
    assert main(["--training", "TSHAE/x=missing.json:tshae", "--results", str(tmp_path)]) == 2
    assert "seed_spread:" in capsys.readouterr().err
    with pytest.raises(ValueError, match="GROUP/LABEL=FILE:DETECTOR"):
        parse("TSHAE=run0.json")
