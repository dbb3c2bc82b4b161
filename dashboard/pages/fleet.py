"""Fleet: one tile per machine, grouped by line, worst first, filterable by line and status."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from dashboard.app import Context, guarded
from dashboard.data import STATUS_ORDER, MachineTile
from dashboard.pages.common import data_attrs, fmt_num, fmt_time, fmt_ttf, machine_href, notice

STATUSES = list(STATUS_ORDER)


def layout() -> html.Div:
    return html.Div([
        html.Div([
            html.H1("Fleet"),
            dcc.Dropdown(id="fleet-line", multi=True, placeholder="all lines", className="filter"),
            dcc.Checklist(id="fleet-status", options=[{"label": s, "value": s} for s in STATUSES],
                          value=STATUSES, inline=True, className="filter status-filter"),
        ], className="toolbar"),
        html.Div(id="fleet-summary", className="summary"),
        dcc.Loading(html.Div(notice("Loading the fleet…"), id="fleet-tiles"), delay_show=400),
    ])


def tile(t: MachineTile) -> dcc.Link:
    return dcc.Link(html.Div([
        html.Div([html.Span(t.machine, className="tile-name"), html.Span(t.status, className="badge")],
                 className="tile-head"),
        html.Div([html.Span("health", className="k"), html.Span(fmt_num(t.health, 0), className="v health")]),
        html.Div([html.Span("time to failure", className="k"),
                  html.Span(fmt_ttf(t.ttf_hours) if t.active_alarms else "—", className="v")]),
        html.Div([html.Span("active alarms", className="k"), html.Span(str(t.active_alarms), className="v alarms")]),
        html.Div(t.top_channel and f"top: {t.top_channel}", className="tile-foot"),
    ], className=f"tile status-{t.status.replace(' ', '-')}", **data_attrs(machine=t.machine, status=t.status)),
        href=machine_href(t.machine), className="tile-link")


def register(app: Dash, ctx: Context) -> None:
    def render(_n: Any, lines: list[str] | None, statuses: list[str] | None) -> tuple[Any, Any, Any]:
        tiles = ctx.data.fleet()
        all_lines = sorted({t.line for t in tiles})
        options = [{"label": ln, "value": ln} for ln in all_lines]
        shown = [t for t in tiles if (not lines or t.line in lines) and (statuses is None or t.status in statuses)]
        counts = {s: sum(t.status == s for t in tiles) for s in STATUSES}
        newest = max((t.last_scored for t in tiles if t.last_scored is not None), default=None)
        summary = [html.Span(f"{len(tiles)} machines", className="count")] + [
            html.Span(f"{counts[s]} {s}", className=f"count status-{s.replace(' ', '-')}") for s in STATUSES
        ] + [html.Span(f"scores up to {fmt_time(newest)} UTC", className="count")]
        if not tiles:
            return notice("No machines in the store yet."), options, summary
        groups = []
        order = []  # lines ordered by their worst machine (tiles are sorted worst first)
        for t in shown:
            if t.line not in order:
                order.append(t.line)
        for ln in order:
            mine = [t for t in shown if t.line == ln]
            groups.append(html.Section([html.H2(f"{ln} ({len(mine)})"),
                                        html.Div([tile(t) for t in mine], className="tiles")],
                                       className="line-group", **data_attrs(line=ln)))
        return (groups or notice("No machine matches the filters.")), options, summary

    app.callback(Output("fleet-tiles", "children"), Output("fleet-line", "options"), Output("fleet-summary", "children"),
                 Input("refresh", "n_intervals"), Input("fleet-line", "value"), Input("fleet-status", "value"),
                 )(guarded(render, lambda msg: (notice(msg), [], ""), outputs=3))
