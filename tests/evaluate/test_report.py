"""pdmctl report: one self-contained HTML file whose plots and numbers come from the store."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

from pdm.cli import main
from pdm.evaluate.report import write_report
from pdm.evaluate.run import evaluate, metrics_rows
from tests.evaluate.storedata import ALARM_M1, FAIL_M1, FAIL_M2, ROOT_M1, write_store


@pytest.fixture
def report(tmp_path):
    store = write_store(tmp_path / "s.duckdb")
    lines: list[str] = []
    res = write_report(store, tmp_path / "out" / "report.html", progress=lines.append)
    return store, res, lines


def _figures(doc: str) -> dict[str, dict]:
    """div id → the figure's data and layout, as plotly embeds them."""
    out = {}
    for div_id, body in re.findall(r'Plotly\.newPlot\(\s*"([^"]+)",\s*(\[.*?\]),\s*\{', doc, flags=re.S):
        out[div_id] = json.loads(body)
    return out


def test_the_report_holds_metrics_lead_times_timelines_and_root_causes(report):
    store, res, lines = report
    doc = res.html.read_text()
    assert res.figures == 4  # lead times, two machines, one caught failure
    ids = re.findall(r'<div id="(fig-[a-z]+-\d+)"', doc)
    assert [i.split("-")[1] for i in ids] == ["lead", "rootcause", "timeline", "timeline"]
    assert "m1: score and threshold (1 alarm(s), 1 failure(s))" in doc
    assert "m2: score and threshold (1 alarm(s), 1 failure(s))" in doc
    figs = _figures(doc)
    lead = figs[ids[0]]
    assert lead[0]["type"] == "histogram" and lead[0]["x"] == [96.0]
    bars = figs[ids[1]]
    assert bars[0]["y"] == ["vibration.de.rms (follows band_bpfo)", *ROOT_M1[1::-1]] and bars[0]["x"] == [0.1, 0.25, 0.6]
    m1 = figs[ids[2]]
    names = [t.get("name") for t in m1]
    assert {"score", "threshold", "failure", "alarm"} <= set(names)
    failure = next(t for t in m1 if t.get("name") == "failure")
    assert failure["x"][0].startswith(FAIL_M1.strftime("%Y-%m-%dT%H:%M:%S"))
    assert "maintenance" in [t.get("name") for t in figs[ids[3]]]
    # Alarm episodes are shaded spans of the layout.
    assert f'"x0":"{ALARM_M1[0].isoformat()}"' in doc.replace(" ", "")
    assert len(lines) >= 5 and lines[0].startswith("[1/5]") and any(x.startswith("[5/5]") for x in lines)


def test_the_report_metrics_table_and_json_match_the_evaluation(report):
    store, res, _ = report
    doc = res.html.read_text()
    expected = metrics_rows(evaluate(store))
    table = re.search(r'<table class="metrics" id="metrics">(.*?)</table>', doc, flags=re.S).group(1)
    rows = [(html.unescape(k), html.unescape(v)) for k, v in re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", table)]
    assert rows == expected
    assert ("recall >= 72 h ahead", "50.0 %") in rows and ("false alarms per machine-month", "0.25") in rows
    data = json.loads(res.json.read_text())
    assert res.json == res.html.with_suffix(".json")
    assert data["events"]["failures"] == 2 and data["events"]["median_lead_h"] == 96.0
    assert data["pointwise"]["point"]["tp"] == 48 and data["pointwise"]["point_adjusted"]["tp"] == 108
    assert [r["failure"][:10] for r in data["events"]["per_failure"]] == [f"{FAIL_M1:%Y-%m-%d}", f"{FAIL_M2:%Y-%m-%d}"]


def test_the_report_needs_no_network(report):
    _, res, _ = report
    doc = res.html.read_text()
    assert not re.search(r"<script[^>]+src=", doc)  # plotly.js is inline
    assert "cdn.plot.ly" not in doc.split("</head>")[1]
    assert len(doc) > 3_000_000  # the library itself is there


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless Chromium")
def test_headless_chromium_draws_every_plot_offline(report):
    _, res, _ = report
    dom = subprocess.run(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--virtual-time-budget=10000", "--dump-dom", res.html.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    drawn = re.findall(r'<div id="(fig-[a-z]+-\d+)" class="plotly-graph-div js-plotly-plot"', dom)
    assert len(drawn) == res.figures
    assert dom.count('class="main-svg"') >= res.figures


def test_cli_report_writes_html_and_json_and_says_each_step(tmp_path, monkeypatch, capsys):
    path = tmp_path / "s.duckdb"
    write_store(path)
    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    monkeypatch.setenv("PDM_STORE__PATH", str(path))
    out = tmp_path / "r.html"
    assert main(["report", "--out", str(out), "--model-version", "v2"]) == 0
    text = capsys.readouterr().out
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in text
    assert out.exists() and out.with_suffix(".json").exists()
    assert main(["report", "--out", str(tmp_path / "r.json")]) == 2
    assert "is HTML" in capsys.readouterr().err


def test_a_timeline_marks_the_windows_not_scored_outside_the_operating_envelope(tmp_path):
    import numpy as np
    import pandas as pd

    from pdm.evaluate.report import timeline_figure

    store = write_store(tmp_path / "s.duckdb")
    t = pd.date_range("2024-02-16", "2024-02-18", freq="2h", inclusive="left", tz="UTC")
    store.write(pd.DataFrame({"machine": "m2", "model_version": "v2", "threshold": 4.0, "score": np.nan,
                              "ratio": np.nan, "state": "outside_envelope"}, index=t),
                "pdm_score", ["machine", "model_version"])
    e = evaluate(store)
    names = {tr.name: tr for tr in timeline_figure("m2", e).data}
    marks = names["not scored: outside operating envelope"]
    assert len(marks.x) == len(t) and pd.Timestamp(marks.x[0]) == t[0]
    assert "not scored: outside operating envelope" not in {tr.name for tr in timeline_figure("m1", e).data}


def test_a_timeline_marks_when_each_alarm_reached_warning_and_critical(tmp_path):
    import pandas as pd

    from pdm.evaluate.report import timeline_figure
    from tests.evaluate.storedata import ALARM_M1, CRITICAL_M1

    e = evaluate(write_store(tmp_path / "s.duckdb"))
    names = {tr.name: tr for tr in timeline_figure("m1", e).data}
    assert [pd.Timestamp(x) for x in names["became critical"].x] == [CRITICAL_M1]
    assert [pd.Timestamp(x) for x in names["became warning"].x] == [ALARM_M1[0]]
    assert list(names["became critical"].y) == [4.0 * 1.8]  # on the score line
    assert "became critical" not in {tr.name for tr in timeline_figure("m2", e).data}  # m2's stayed a warning

