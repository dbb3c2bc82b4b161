"""Alarms: open and past alarms, filter by severity, acknowledge with a comment."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx

from dashboard.app import Context, guarded
from dashboard.data import DashboardError
from dashboard.pages.common import (
    alarm_state,
    alarm_ttf,
    fmt_num,
    fmt_time,
    machine_href,
    notice,
    rootcause_href,
    table,
)
from pdm.store.errors import StoreError

#: Rows drawn at most (newest first): Dash draws thousands of table cells slowly.
MAX_ROWS = 300


def layout() -> html.Div:
    return html.Div([
        dcc.Store(id="ack-done", data=0),
        html.Div([
            html.H1("Alarms"),
            dcc.RadioItems(id="alarm-state", options=[{"label": "open", "value": "open"},
                                                      {"label": "all", "value": "all"}],
                           value="all", inline=True, className="filter"),
            dcc.Checklist(id="alarm-severity", inline=True, className="filter"),
        ], className="toolbar"),
        html.Div(id="alarm-table"),
        html.Section([
            html.H2("Acknowledge an alarm"),
            dcc.Dropdown(id="ack-alarm", placeholder="choose an alarm", className="filter wide"),
            dcc.Input(id="ack-operator", placeholder="your name", className="filter", debounce=False),
            dcc.Textarea(id="ack-comment", placeholder="what you found or did", className="comment"),
            html.Button("Acknowledge", id="ack-button", n_clicks=0, className="button"),
            html.Div(id="ack-message", className="ack-message", role="status"),
        ], className="ack-form"),
    ])


def register(app: Dash, ctx: Context) -> None:
    def render(_n: Any, state: str, severities: list[str] | None, _done: Any) -> tuple[Any, Any, Any, Any]:
        a = ctx.data.alarms()
        sev_all = sorted({s for s in a["severity"] if s})
        sev_opts = [{"label": s, "value": s} for s in sev_all]
        shown = a[a["open"]] if state == "open" else a
        if severities is not None:
            shown = shown[shown["severity"].isin(severities) | (shown["severity"] == "")]
        rows = [[fmt_time(r["start"]), dcc.Link(r["machine"], href=machine_href(r["machine"])),
                 html.Span(r["severity"] or "—", className=f"badge sev-{r['severity']}",
                           title=f"{r['severity']} since {fmt_time(r['severity_since'])}" if r["severity"] else None),
                 alarm_state(r), fmt_num(r["peak_ratio"]),
                 alarm_ttf(r), r["top_channel"] or "—",
                 (f"{r['acked_by']}: {r['ack_comment']}" if r["acked_by"] else "—"),
                 dcc.Link("root cause", href=rootcause_href(r["machine"], r["alarm_ns"]))]
                for _, r in shown.head(MAX_ROWS).iterrows()]
        body = table(["start (UTC)", "machine", "severity", "state", "peak × thr", "time to failure",
                      "top sensor", "acknowledged", ""], rows, id="alarms") if rows \
            else notice("No alarms match." if len(a) else "No alarms in the store.")
        if len(shown) > MAX_ROWS:
            body = html.Div([body, html.P(f"The newest {MAX_ROWS} of {len(shown)} alarms; filter to see others.",
                                          className="muted")])
        choices = [{"label": f"{r['machine']} — {fmt_time(r['start'])} ({r['severity'] or 'alarm'}"
                             f"{', acknowledged' if r['acked_by'] else ''})",
                    "value": f"{r['machine']}|{r['alarm_ns']}"} for _, r in a.head(MAX_ROWS).iterrows()]
        return body, sev_opts, (sev_all if severities is None else no_update), choices

    app.callback(Output("alarm-table", "children"), Output("alarm-severity", "options"),
                 Output("alarm-severity", "value"), Output("ack-alarm", "options"),
                 Input("refresh", "n_intervals"), Input("alarm-state", "value"), Input("alarm-severity", "value"),
                 Input("ack-done", "data"),
                 )(guarded(render, lambda msg: (notice(msg), [], no_update, []), outputs=4))

    @app.callback(Output("ack-operator", "style"), Input("ack-done", "data"))
    def operator_field(_: Any) -> dict[str, str]:
        # With authentication the operator is the signed-in user, not a typed name.
        return {"display": "none"} if ctx.auth_required else {}

    @app.callback(Output("ack-message", "children"), Output("ack-done", "data"), Output("ack-comment", "value"),
                  Input("ack-button", "n_clicks"), State("ack-alarm", "value"), State("ack-comment", "value"),
                  State("ack-operator", "value"), State("ack-done", "data"), prevent_initial_call=True)
    def acknowledge(_clicks: int, choice: str | None, comment: str | None, operator: str | None,
                    done: int) -> tuple[Any, Any, Any]:
        if dash_ctx.triggered_id != "ack-button":
            return no_update, no_update, no_update
        if ctx.auth_required:
            operator = ctx.signed_in_operator()
            if operator is None:
                return (html.Span(["Acknowledging needs a sign-in: ",
                                   html.A("sign in", href="/login?next=/alarms"), "."], className="error"),
                        no_update, no_update)
        if not choice or "|" not in choice:
            return html.Span("Choose an alarm first.", className="error"), no_update, no_update
        machine, alarm_ns = choice.rsplit("|", 1)
        try:
            point = ctx.data.acknowledge(machine, int(alarm_ns), comment or "", operator or "")
        except DashboardError as exc:
            return html.Span(str(exc), className="error"), no_update, no_update
        except StoreError:
            return html.Span("The store is unreachable; the acknowledgement was not saved. Try again.",
                             className="error"), no_update, no_update
        who = point["tags"]["operator"]
        return html.Span(f"Acknowledged by {who}; stored in the operator log of {machine}.", className="ok"), \
            (done or 0) + 1, ""
