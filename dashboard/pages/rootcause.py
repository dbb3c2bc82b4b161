"""Root cause of one alarm: ranked channels, spatial attention vs the healthy baseline, temporal attention, log."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html

from dashboard.app import Context, guarded
from dashboard.data import DashboardError, RootCause
from dashboard.figures import contributions_figure, spatial_figures, temporal_figure
from dashboard.pages.common import (
    alarm_ttf,
    data_attrs,
    fmt_num,
    fmt_time,
    machine_href,
    notice,
    severity_since,
    table,
)
from pdm.detect.rootcause import EXCURSION_CHANGE

GRAPH_CONFIG: Any = {"displaylogo": False, "responsive": True}


def layout(machine: str, alarm: str) -> html.Div:
    return html.Div([
        dcc.Store(id="rc-key", data={"machine": machine, "alarm": alarm}),
        html.Div([html.H1(["Root cause — ", dcc.Link(machine, href=machine_href(machine))])], className="toolbar"),
        dcc.Loading(html.Div(notice("Loading the root cause…"), id="rc-content"), delay_show=400),
    ])


def ranking_note(rc: RootCause, alarm_ns: int) -> str:
    """Which window the ranking shown is of, and what its channels were ranked by."""
    note = ("Ranked at the window that raised the alarm." if rc.ranked_ns is None or rc.ranked_ns == alarm_ns
            else f"Ranked again at the window ending {fmt_time(pd.Timestamp(rc.ranked_ns, unit='ns', tz='UTC'))} "
                 "UTC: the score had grown since the alarm was raised (the latest ranking is shown).")
    if rc.maps.get("ranked_by") == EXCURSION_CHANGE:
        note += (" The window was scored inside an excursion outside the operating envelope (the model "
                 "extrapolates there): channels are ranked by how far each moved since the excursion's own "
                 "baseline (z in units of its spread there), not by reconstruction error.")
    return note


def channel_line(r: Any) -> str:
    """One ranked channel in words: what ranked it (its share, with the channels that follow it), or the band it follows.

    The ranking puts a band before the channels that follow it (a sensor's rms after its leading band,
    a bearing's envelope bands after a raised high-frequency floor): a follower can hold a larger share
    of the score than a channel ranked above it, which its line says.
    """
    own = f"contribution {fmt_num(r.get('contribution'), 3)}"
    rest = f"z {fmt_num(r.get('zscore'), 1)}, attention change {fmt_num(r.get('attention_change'), 3)}"
    follows, explained = r.get("follows"), r.get("explained")
    if isinstance(follows, str) and follows:
        return f"follows {follows}; {own}, {rest}"
    if explained is not None and pd.notna(explained) and explained > float(r.get("contribution") or 0.0) + 5e-4:
        return f"explains {fmt_num(explained, 3)} of the score with the channels that follow it ({own}), {rest}"
    return f"{own}, {rest}"


def register(app: Dash, ctx: Context) -> None:
    def render(n: Any, key: dict[str, str]) -> Any:
        try:
            alarm_ns = int(key["alarm"])
        except (KeyError, ValueError):
            raise DashboardError(f"not an alarm id: {key.get('alarm')!r}") from None
        rc = ctx.data.rootcause(key["machine"], alarm_ns)
        a = rc.alarm
        head = html.Div([
            html.Span(["alarm ", html.B(a["severity"] or "—"), severity_since(a)], className="count"),
            html.Span(f"from {fmt_time(a['start'])} UTC" + ("" if a["open"] else f" to {fmt_time(a['end'])}"),
                      className="count"),
            html.Span(f"peak {fmt_num(a['peak_ratio'])} × threshold", className="count"),
            html.Span(f"time to failure {alarm_ttf(a)}", className="count"),
            html.Span(f"model {a['model_version']}", className="count"),
        ], className="summary")
        when = html.P(ranking_note(rc, alarm_ns), id="rc-ranked", className="muted")
        ranking = html.Ol([
            html.Li([html.B(r["channel"]), f"  {channel_line(r)}"], **data_attrs(channel=str(r["channel"])))
            for _, r in rc.channels.iterrows()
        ], id="rc-ranking", className="ranking")
        spatial = spatial_figures(rc)
        ids = ["rc-spatial", "rc-baseline", "rc-diff"]
        maps_row = html.Div([html.Div(dcc.Graph(id=i, figure=f, config=GRAPH_CONFIG), className="cell")
                             for i, f in zip(ids, spatial, strict=False)], className="maps-row") if spatial \
            else notice("No attention maps stored for this alarm.")
        temporal = temporal_figure(rc)
        logs = table(["time (UTC)", "type", "entry", "attention weight"],
                     [[fmt_time(r["time"]), r["event_type"], r["message"], fmt_num(r["weight"], 3)]
                      for _, r in rc.logs.iterrows()], id="rc-logs") if not rc.logs.empty \
            else html.P("The cross-modal attention points at no operator-log entry.", className="muted")
        return [
            head,
            html.Div([
                html.Div([html.H2("Channels, ranked"), when, ranking], className="cell"),
                html.Div(dcc.Graph(id="rc-contrib", figure=contributions_figure(rc), config=GRAPH_CONFIG),
                         className="cell"),
            ], className="two-col"),
            html.H2("Spatial attention (sensor × sensor)"), maps_row,
            html.H2("Temporal attention"),
            dcc.Graph(id="rc-temporal", figure=temporal, config=GRAPH_CONFIG) if temporal is not None
            else notice("No temporal attention stored."),
            html.H2("Operator-log entries the model attends to"), logs,
        ]

    app.callback(Output("rc-content", "children"), Input("rc-key", "data"), State("refresh", "n_intervals"),
                 )(guarded(lambda key, n: render(n, key), notice))
