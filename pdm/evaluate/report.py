"""``pdmctl report``: one self-contained HTML file, plus the metrics as JSON beside it.

The HTML carries plotly.js inline (a plant's network often has no way out),
so it opens offline in any browser. It holds the metrics table, a histogram
of lead times, one timeline per machine (score and threshold, alarms
shaded, fault onsets, failures and maintenance from the ground truth) and,
for every caught failure, the channels its first alarm ranked, with the
true root cause marked.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.evaluate.run import Evaluation, evaluate, metrics_rows, read_rootcauses
from pdm.store import Store
from pdm.store.schema import OUTSIDE_ENVELOPE

STEPS = 5


@dataclass
class ReportResult:
    html: Path
    json: Path
    evaluation: Evaluation
    figures: int


def _say(progress: bool | Callable[[str], None]) -> Callable[[str], None]:
    if callable(progress):
        return progress
    return (lambda msg: print(msg, flush=True)) if progress else (lambda _msg: None)


def lead_time_figure(e: Evaluation) -> Any:
    import plotly.graph_objects as go

    leads = [r["lead_h"] for r in e.events.per_failure if r.get("lead_h") is not None]
    missed = sum(1 for r in e.events.per_failure if r.get("lead_h") is None)
    fig = go.Figure(go.Histogram(x=leads, xbins={"start": 0, "size": 24}, name="caught", marker_color="#2b8a3e"))
    fig.add_vline(x=72, line_dash="dash", line_color="#c92a2a")
    fig.update_layout(title=f"Lead time before failure ({len(leads)} caught, {missed} missed; dashed: 72 h target)",
                      xaxis_title="hours between first alarm and failure", yaxis_title="failures",
                      height=320, margin={"t": 50, "b": 40, "l": 50, "r": 20}, bargap=0.05,
                      xaxis_range=[0, max([96.0, *leads]) + 24])
    return fig


def _spans(fig: Any, rows: pd.DataFrame, start: str, end: str, color: str, opacity: float) -> None:
    for a, b in zip(rows[start], rows[end], strict=True):
        if pd.notna(a) and pd.notna(b):
            fig.add_vrect(x0=pd.Timestamp(a).isoformat(), x1=pd.Timestamp(b).isoformat(),
                          fillcolor=color, opacity=opacity, line_width=0, layer="below")


def timeline_figure(machine: str, e: Evaluation) -> Any:
    import plotly.graph_objects as go

    assert e.scores is not None
    s = e.scores[e.scores["machine"] == machine].sort_index()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=s.index, y=s["score"], name="score", mode="lines", line={"color": "#1c7ed6", "width": 1.2}))
    fig.add_trace(go.Scatter(x=s.index, y=s["threshold"], name="threshold", mode="lines",
                             line={"color": "#495057", "dash": "dash", "width": 1}, line_shape="hv"))
    top = float(np.nanmax(np.r_[s["score"].to_numpy(float), s["threshold"].to_numpy(float), 1.0]))
    alarms = e.alarms[e.alarms["machine"] == machine] if e.alarms is not None else pd.DataFrame()
    _spans(fig, alarms, "start", "end", "#fd7e14", 0.3)
    for level, color in (("warning", "#e67700"), ("critical", "#c92a2a")):  # when each alarm reached the level
        when = [pd.Timestamp(r[level], tz="UTC") for r in alarms.get("reached", []) if isinstance(r, dict) and level in r]
        if when:
            at = s["score"].reindex(pd.DatetimeIndex(when), method="nearest") if len(s) else pd.Series(np.nan, when)
            fig.add_trace(go.Scatter(x=when, y=at.to_numpy(float), name=f"became {level}", mode="markers",
                                     marker={"color": color, "symbol": "triangle-up", "size": 10}))
    fails = e.failures[e.failures["machine"] == machine] if e.failures is not None else pd.DataFrame()
    if len(fails):
        _spans(fig, fails.assign(onset=fails["onset"]), "onset", "failure", "#ffc9c9", 0.35)
        xs, ys, text = [], [], []
        for f in fails.itertuples(index=False):
            xs += [f.failure, f.failure, None]
            ys += [0, top * 1.05, None]
            text += [f"failure ({f.mode})" if f.mode else "failure"] * 2 + [""]
        fig.add_trace(go.Scatter(x=xs, y=ys, name="failure", mode="lines", line={"color": "#c92a2a", "width": 2},
                                 hovertext=text, hoverinfo="text+x"))
    if "state" in s:  # windows the machine ran through at a speed or load the model never saw: no score
        out = s.index[s["state"].to_numpy() == OUTSIDE_ENVELOPE]
        if len(out):
            fig.add_trace(go.Scatter(x=out, y=np.zeros(len(out)), name="not scored: outside operating envelope",
                                     mode="markers", marker={"color": "#6d28d9", "symbol": "line-ns-open", "size": 9}))
    nuis = e.nuisances if e.nuisances is not None else pd.DataFrame(columns=["machine", "kind", "start", "end"])
    maint = nuis[(nuis["machine"] == machine) & (nuis["kind"] == "maintenance")]
    if len(maint):
        xs, ys = [], []
        for t in maint["start"]:
            xs += [t, t, None]
            ys += [0, top * 1.05, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, name="maintenance", mode="lines",
                                 line={"color": "#5c940d", "width": 1.5, "dash": "dot"}))
    # Legend entries for the shaded spans (shapes have none).
    for name, color in (("alarm", "#fd7e14"), ("fault onset → failure", "#ffc9c9")):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name,
                                 marker={"color": color, "size": 12, "symbol": "square"}))
    n_alarm = len(alarms)
    fig.update_layout(title=f"{machine}: score and threshold ({n_alarm} alarm(s), {len(fails)} failure(s))",
                      height=300, margin={"t": 45, "b": 30, "l": 50, "r": 20}, yaxis_title="score",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def rootcause_figures(store: Store, e: Evaluation) -> list[tuple[str, Any]]:
    """One bar chart per caught failure: the root cause judged (the alarm raised by 72 h before the failure, as ranked then)."""
    import plotly.graph_objects as go

    rc = read_rootcauses(store, e.model_versions, e.machines)
    out = []
    alarms = e.alarms if e.alarms is not None else pd.DataFrame()
    for row in e.events.per_failure:
        if row.get("lead_h") is None or row.get("alarm_start") is None:
            continue
        judged = row.get("rootcause_alarm_start") or row["alarm_start"]  # the alarm open 72 h before, if later
        alarm = alarms[(alarms["machine"] == row["machine"]) & (alarms["start"] == judged)].iloc[0]
        ranked_at = row.get("rootcause_ranked_at")
        ranks = rc[(rc["machine"] == row["machine"]) & (rc["alarm"] == str(alarm["start"].value))]
        ranks = ranks[ranks["ranked"] == ranked_at] if ranked_at is not None else \
            ranks[ranks["model_version"] == alarm["model_version"]]
        ranks = ranks.drop_duplicates("rank", keep="last").sort_values("rank")
        truth = {c for c in str(row.get("true_root_cause") or "").split(";") if c}
        if ranks.empty:
            channels = list(alarm["channels"])
            values = [1.0] * len(channels)
            follows: list[Any] = [None] * len(channels)
        else:
            channels = list(ranks["channel"])
            values = list(ranks["contribution"].astype(float).fillna(0.0))
            follows = list(ranks["follows"])  # empty on points written before it was stored
        colors = ["#c92a2a" if c in truth else "#868e96" for c in channels]
        # A channel ranked after the band it follows (pdm.detect.rootcause.explaining_band) says so: it may hold a
        # larger share than a band ranked above it.
        labels = [f"{c} (follows {f.rsplit('.', 1)[-1]})" if isinstance(f, str) and f else c
                  for c, f in zip(channels, follows, strict=True)]
        fig = go.Figure(go.Bar(x=values[::-1], y=labels[::-1], orientation="h", marker_color=colors[::-1]))
        failure = pd.Timestamp(row["failure"])
        first = pd.Timestamp(row["alarm_start"])
        when = "" if alarm["start"] == first else f", root cause of the alarm of {alarm['start']:%Y-%m-%d %H:%M}"
        if ranked_at is not None and ranked_at != alarm["start"]:
            when += f", ranked {ranked_at:%Y-%m-%d %H:%M}"
        title = (f"{row['machine']}, failure {failure:%Y-%m-%d %H:%M}: alarm {first:%Y-%m-%d %H:%M} "
                 f"({row['lead_h']:.0f} h ahead{when}); red = true root cause")
        fig.update_layout(title=title, xaxis_title="contribution to the score", height=120 + 24 * len(channels),
                          margin={"t": 45, "b": 40, "l": 220, "r": 20})
        out.append((f"{row['machine']} {failure:%Y-%m-%d}", fig))
    return out


def _table(e: Evaluation) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in metrics_rows(e))
    return f'<table class="metrics" id="metrics">{rows}</table>'


def _per_failure(e: Evaluation) -> str:
    if not e.events.per_failure:
        return "<p>No failures in the scored period.</p>"
    body = ""
    for r in e.events.per_failure:
        lead = "missed" if r.get("lead_h") is None else f"{r['lead_h']:.1f} h"
        rank = r.get("rootcause_rank")
        body += (f"<tr><td>{html.escape(r['machine'])}</td><td>{pd.Timestamp(r['failure']):%Y-%m-%d %H:%M}</td>"
                 f"<td>{html.escape(str(r.get('mode') or ''))}</td><td>{lead}</td>"
                 f"<td>{'' if rank is None else rank}</td><td>{html.escape(str(r.get('true_root_cause') or ''))}</td>"
                 f"<td>{html.escape(', '.join(r.get('ranked_channels') or []))}</td></tr>")
    return ('<table class="failures"><tr><th>machine</th><th>failure (UTC)</th><th>mode</th><th>lead time</th>'
            f"<th>root cause rank</th><th>true root cause</th><th>alarm's top channels</th></tr>{body}</table>")


CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#212529}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #dee2e6;padding:.25em .6em;text-align:left}
table.metrics th{background:#f1f3f5;font-weight:normal}section{margin-bottom:2em}.note{color:#868e96}"""


def write_report(store: Store, out: str | Path, failures: str | Path | pd.DataFrame | None = None, *,
                 start: Any = None, stop: Any = None, model_version: str | Sequence[str] | None = None,
                 machines: Sequence[str] | None = None, progress: bool | Callable[[str], None] = True,
                 **costs: Any) -> ReportResult:
    """Write ``out`` (HTML) and ``out`` with suffix ``.json`` (the metrics); returns both paths.

    ``costs``: ``false_call_h`` / ``repair_h`` for :func:`pdm.evaluate.run.evaluate`'s notify costs.

    Raises
    ------
    EvaluationError, FailureLogError
    """
    import plotly.offline

    say = _say(progress)
    out = Path(out)
    if out.suffix.lower() == ".json":
        raise ValueError(f"{out}: the report is HTML; its metrics go to the same name with .json")
    began = time.perf_counter()
    say(f"[1/{STEPS}] evaluating alarms against failures")
    e = evaluate(store, failures, start=start, stop=stop, model_version=model_version, machines=machines,
                 progress=lambda m: say(f"      {m}"), **costs)
    say(f"[2/{STEPS}] lead-time histogram")
    figs: list[tuple[str, str, Any]] = [("lead", "Lead times", lead_time_figure(e))]
    say(f"[3/{STEPS}] score timelines of {len(e.machines)} machine(s)")
    for m in e.machines:
        figs.append(("timeline", m, timeline_figure(m, e)))
    say(f"[4/{STEPS}] root-cause bars of {e.events.caught} caught failure(s)")
    for name, fig in rootcause_figures(store, e):
        figs.append(("rootcause", name, fig))
    say(f"[5/{STEPS}] writing {out} and {out.with_suffix('.json')}")
    parts: dict[str, list[str]] = {"lead": [], "timeline": [], "rootcause": []}
    for i, (kind, _name, fig) in enumerate(figs):
        parts[kind].append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{kind}-{i}",
                                       config={"displaylogo": False}))
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in e.notes)
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pdm report</title><style>{CSS}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head><body>
<h1>Predictive-maintenance report</h1>
<p>Model version(s) {html.escape(', '.join(e.model_versions))}; {len(e.machines)} machine(s);
{e.start:%Y-%m-%d %H:%M} to {e.stop:%Y-%m-%d %H:%M} UTC; failures from {html.escape(e.failures_source)};
written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.</p>
<section><h2>Metrics</h2>{_table(e)}{notes}</section>
<section><h2>Failures</h2>{_per_failure(e)}</section>
<section><h2>Lead time</h2>{''.join(parts['lead'])}</section>
<section><h2>Root cause of each caught failure</h2>{''.join(parts['rootcause']) or '<p>No failure was caught.</p>'}</section>
<section><h2>Machines</h2>{''.join(parts['timeline'])}</section>
</body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(out)
    js = out.with_suffix(".json")
    js.write_text(json.dumps(e.to_dict(), indent=2, default=str))
    say(f"      done in {time.perf_counter() - began:.1f}s: {len(figs)} figures, {out.stat().st_size / 1e6:.1f} MB")
    return ReportResult(out, js, e, len(figs))
