"""benchmarks/onset_delay.py on hand-made results files: each failure's window and delay, by mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.onset_delay import failure_rows, main


def _write(tmp: Path) -> None:
    """A detection run (modes in its rows) and a harness run of the same failures (modes joined from the first).

    Scoring starts 2024-01-31. m1: cooling, onset Feb 10 00:00, fails Feb 14 00:00 (96 h), alarmed Feb 10 12:00
    (84 h ahead: told, 12 h after onset). m2: cooling, onset Feb 10, fails Feb 14, alarmed Feb 11 12:00 (60 h: late,
    needed 24 h). m3: bearing, onset Jan 20 (before scoring), fails Feb 2 00:00 (48 h after scoring began: under
    the ceiling). m4: bearing, onset Feb 1, fails Feb 20, an alarm before the onset only: never.
    """
    per = [
        {"machine": "m1", "mode": "cooling_failure", "onset": "2024-02-10T00:00:00Z", "failure": "2024-02-14T00:00:00Z",
         "lead_after_onset_h": 84.0},
        {"machine": "m2", "mode": "cooling_failure", "onset": "2024-02-10T00:00:00Z", "failure": "2024-02-14T00:00:00Z",
         "lead_after_onset_h": 60.0},
        {"machine": "m3", "mode": "bearing_wear", "onset": "2024-01-20T00:00:00Z", "failure": "2024-02-02T00:00:00Z",
         "lead_after_onset_h": 20.0},
        {"machine": "m4", "mode": "bearing_wear", "onset": "2024-02-01T00:00:00Z", "failure": "2024-02-20T00:00:00Z",
         "lead_h": 500.0},
        {"machine": "m5", "failure": "2024-02-20T00:00:00Z"},  # no onset: not counted
    ]
    (tmp / "det.json").write_text(json.dumps({"evaluation": {"start": "2024-01-31T00:00:00Z",
                                                             "events": {"per_failure": per}}}))
    harness = [{k: v for k, v in p.items() if k != "mode"} for p in per]
    harness[1]["lead_after_onset_h"] = 80.0  # the harness told m2
    (tmp / "sim.json").write_text(json.dumps({"split": "2024-01-31 00:00:00+00:00",
                                              "results": {"tshae": {"per_failure": harness}}}))


def test_windows_delays_and_classes(tmp_path: Path) -> None:
    _write(tmp_path)
    rows = failure_rows({"d": tmp_path / "det.json"}).set_index("machine")
    assert list(rows["class"]) == ["told", "late", "under the ceiling", "never"]
    assert rows.loc["m1", "window_h"] == 96 and rows.loc["m1", "delay_h"] == 12
    assert rows.loc["m2", "delay_h"] == 36 and rows.loc["m2", "needed_h"] == 24
    assert rows.loc["m3", "window_h"] == 48  # counted from the start of scoring, not the onset
    assert rows.loc["m4", "needed_h"] == 19 * 24 - 72
    sim = failure_rows({"s": tmp_path / "sim.json"}, modes={"s": tmp_path / "det.json"}).set_index("machine")
    assert list(sim["mode"]) == ["cooling_failure", "cooling_failure", "bearing_wear", "bearing_wear"]
    assert sim.loc["m2", "class"] == "told"


def test_the_results_files_say_it_by_mode(tmp_path: Path) -> None:
    _write(tmp_path)
    assert main(["--run", "d=det.json", "--results", str(tmp_path), "--out", "od"]) == 0
    doc = json.loads((tmp_path / "od.json").read_text())
    cooling = next(m for m in doc["by_mode"] if m["mode"] == "cooling_failure")
    assert (cooling["failures"], cooling["told"], cooling["late"], cooling["median_needed_h"]) == (2, 1, 1, 24)
    every = doc["by_mode"][-1]
    assert every["mode"] == "all" and (every["told"], every["never"], every["under the ceiling"]) == (1, 1, 1)
    md = (tmp_path / "od.md").read_text()
    assert "| cooling_failure | 2 | 1 | 1 | 0 | 0 | 96 | 24 | 12 | 24 |" in md
    assert "| d | m2 | cooling_failure | 96 | 36 | 60 | 24 |" in md
    assert (tmp_path / "od.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--run", "d=nope.json"], "no such file"),
    (["--run", "d"], "expected NAME=FILE"),
    (["--run", "d=det.json", "--run", "d=det.json"], "--run d: given twice"),
    (["--run", "s=sim.json", "--detector", "pca"], "no detector 'pca'"),
])
def test_bad_runs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    _write(tmp_path)
    assert main([*args, "--results", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
