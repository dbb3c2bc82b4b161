"""`pdmctl demo` end to end on a small plant: every step runs and reports."""

from __future__ import annotations

import json

from pdm.cli import main


def test_the_demo_runs_every_step_and_leaves_a_model_scores_and_a_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    monkeypatch.setenv("PDM_STORE__PATH", str(tmp_path / "demo.duckdb"))
    monkeypatch.setenv("PDM_DATA_DIR", str(tmp_path / "data"))
    assert main(["demo", "--machines", "3", "--days", "5", "--train-days", "4"]) == 0
    out = capsys.readouterr().out
    for step in range(1, 8):
        assert f"[{step}/7]" in out
    assert "http://127.0.0.1:8050/" in out
    assert (tmp_path / "data" / "models" / "production.json").exists()
    metrics = json.loads((tmp_path / "data" / "report.json").read_text())
    assert metrics  # the evaluation ran over the scored day
    assert "<html" in (tmp_path / "data" / "report.html").read_text()[:2000].lower()
