"""Machine: sensor trends over the anomaly score on one time axis, alarms, log and maintenance marked."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html

from dashboard.app import Context, guarded
from dashboard.data import RANGES, MachineView, health_score
from dashboard.figures import empty_figure, machine_figure
from dashboard.pages.common import (
    alarm_state,
    alarm_ttf,
    data_attrs,
    fmt_num,
    fmt_time,
    notice,
    rootcause_href,
    severity_since,
)
from pdm.store.schema import OUTSIDE_ENVELOPE


def layout(machine: str, range_key: str = "7d") -> html.Div:
    """The page of ``machine``; ``range_key`` from the URL (``/machine/<id>?range=90d``)."""
    return html.Div([
        dcc.Store(id="machine-id", data=machine),
        html.Div([
            html.H1(machine, id="machine-title"),
            dcc.RadioItems(id="machine-range", options=[{"label": v[0], "value": k} for k, v in RANGES.items()],
                           value=range_key, inline=True, className="filter range-picker"),
        ], className="toolbar"),
        html.Div(id="machine-summary", className="summary"),
        html.Div(id="machine-alarms"),
        dcc.Loading(dcc.Graph(id="machine-graph", figure=empty_figure("loading…"),
                              config={"displaylogo": False, "responsive": True}), delay_show=400),
    ])


def latest_score(view: MachineView) -> tuple[str, float | None]:
    """The summary's label and the newest score / threshold in the range; where the newest window has no score
    (the machine stopped), the label says which earlier window the value (and health) is of; after a new baseline
    (a work order since), there is none: the score before the repair is history, as the fleet tile has it."""
    scored = view.score["ratio"].dropna() if not view.score.empty else pd.Series(dtype=float)
    if not len(scored):
        return "latest score / threshold ", None
    if not view.unscored:
        return "latest score / threshold ", float(scored.iloc[-1])
    if view.rebaselined is not None:  # a work order since: the score before it is history, not the machine's state
        return f"score / threshold: none since the new baseline of {fmt_time(view.rebaselined)} UTC (a work order) ", None
    return f"score / threshold at its last scored window, {fmt_time(scored.index[-1])} UTC: ", float(scored.iloc[-1])


def register(app: Dash, ctx: Context) -> None:
    def render(_n: Any, range_key: str, machine: str) -> tuple[Any, Any, Any]:
        view = ctx.data.machine(machine, range_key or "7d")
        s = view.score
        latest_label, latest = latest_score(view)
        peak = float(s["ratio"].max()) if not s.empty and s["ratio"].notna().any() else None
        open_alarms = view.alarms[view.alarms["open"]]
        summary = [
            html.Span([latest_label, html.B(fmt_num(latest), id="machine-ratio")], className="count"),
            html.Span(["peak in range ", html.B(fmt_num(peak), id="machine-peak")],
                      className="count" + (" status-alarm" if peak is not None and peak > 1 else "")),
            html.Span(["health ", html.B(fmt_num(health_score(latest), 0))], className="count"),
            html.Span(f"{len(open_alarms)} open alarms", className="count"),
            *([html.Span(view.note, id="machine-state", className="count status-outside-range"
                         if view.unscored == OUTSIDE_ENVELOPE else "count")] if view.note else []),
            html.Span(f"{fmt_time(view.start)} → {fmt_time(view.stop)} UTC"
                      + (f", store-aggregated to {view.every}" if view.every else ", raw points"), className="count"),
        ]
        items = []
        for _, a in view.alarms.iterrows():
            state = alarm_state(a)
            ack = f" — acknowledged by {a['acked_by']}" if a["acked_by"] else ""
            items.append(html.Li([
                html.Span(a["severity"] or "alarm", className=f"badge sev-{a['severity']}"),
                f"{severity_since(a)} from {fmt_time(a['start'])} ({state}); peak {fmt_num(a['peak_ratio'])} × threshold; "
                f"time to failure {alarm_ttf(a)}; top sensor {a['top_channel'] or '—'}{ack} ",
                dcc.Link("root cause →", href=rootcause_href(machine, a["alarm_ns"]), className="rc-link"),
            ], className="alarm-item", **data_attrs(alarm=str(a["alarm_ns"]))))
        alarms = html.Ul(items, className="alarm-list") if items else html.P("No alarms in this range.",
                                                                            className="muted")
        return summary, alarms, machine_figure(view)

    app.callback(Output("machine-summary", "children"), Output("machine-alarms", "children"),
                 Output("machine-graph", "figure"),
                 Input("refresh", "n_intervals"), Input("machine-range", "value"), State("machine-id", "data"),
                 )(guarded(render, lambda msg: (notice(msg), "", empty_figure(msg)), outputs=3))

