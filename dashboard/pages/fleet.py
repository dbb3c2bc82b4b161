"""Fleet: one tile per machine, grouped by line, worst first, filterable by line and status."""

from __future__ import annotations

from html import escape as html_escape
from typing import Any

from dash import Dash, Input, Output, dcc, html

from dashboard.app import Context, guarded
from dashboard.data import STATUS_ORDER, MachineTile
from dashboard.pages.common import fmt_num, fmt_time, fmt_ttf, machine_href, notice

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


def tile(t: MachineTile) -> str:
    """One tile as HTML (every value escaped).

    The grid is one HTML block, not a Dash component per element: Dash's
    renderer needs seconds for the ~2,600 components of 200 tiles, the
    browser a few milliseconds for the same markup.
    """
    e = html_escape
    status = t.status.replace(" ", "-")
    ttf = fmt_ttf(t.ttf_hours) if t.active_alarms else "—"
    foot = f"top: {t.top_channel}" if t.top_channel else t.note
    return (
        f'<a class="tile-link" href="{e(machine_href(t.machine))}">'
        f'<div class="tile status-{e(status)}" data-machine="{e(t.machine)}" data-status="{e(t.status)}">'
        f'<div class="tile-head"><span class="tile-name">{e(t.machine)}</span><span class="badge">{e(t.status)}</span></div>'
        f'<div><span class="k">health</span><span class="v health">{e(fmt_num(t.health, 0))}</span></div>'
        f'<div><span class="k">time to failure</span><span class="v">{e(ttf)}</span></div>'
        f'<div><span class="k">active alarms</span><span class="v alarms">{t.active_alarms}</span></div>'
        f'<div class="tile-foot">{e(foot)}</div></div></a>'
    )


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
            groups.append(f'<section class="line-group" data-line="{html_escape(ln)}">'
                          f'<h2>{html_escape(ln)} ({len(mine)})</h2>'
                          f'<div class="tiles">{"".join(tile(t) for t in mine)}</div></section>')
        if not groups:
            return notice("No machine matches the filters."), options, summary
        return dcc.Markdown("".join(groups), dangerously_allow_html=True, className="fleet-grid"), options, summary

    app.callback(Output("fleet-tiles", "children"), Output("fleet-line", "options"), Output("fleet-summary", "children"),
                 Input("refresh", "n_intervals"), Input("fleet-line", "value"), Input("fleet-status", "value"),
                 )(guarded(render, lambda msg: (notice(msg), [], ""), outputs=3))
