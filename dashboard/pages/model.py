"""Model: the production version, its training range and metrics, drift, and previous versions."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from dashboard.app import Context, guarded
from dashboard.figures import drift_figure
from dashboard.pages.common import fmt_num, fmt_time, notice, table


def layout() -> html.Div:
    return html.Div([html.Div(html.H1("Model"), className="toolbar"),
                     dcc.Loading(html.Div(notice("Loading…"), id="model-content"), delay_show=400)])


def _metrics_rows(metrics: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for k, v in sorted(metrics.items()):
        if isinstance(v, list):
            v = f"{fmt_num(v[0], 4)} → {fmt_num(v[-1], 4)} ({len(v)} epochs)" if v and isinstance(v[0], int | float) else ""
        elif isinstance(v, float):
            v = f"{v:.4g}"  # seconds 76.03, windows/s 94.66, a loss 0.0114
        if v != "":
            rows.append([k, str(v)])
    return rows


def register(app: Dash, ctx: Context) -> None:
    def render(_n: Any) -> Any:
        info = ctx.data.model()
        meta = info["metadata"]
        parts: list[Any] = []
        if info["problem"]:
            parts.append(html.Div(info["problem"], className="notice error"))
        if info["production"] is None:
            parts.append(notice(f"No trained model in {info['models_dir']} (run `pdmctl train`)."))
        else:
            data = meta.get("data", {})
            parts += [
                html.Div([
                    html.Span(["production ", html.B(info["production"], id="model-production")], className="count"),
                    html.Span(f"trained on {fmt_time(data.get('start'))} → {fmt_time(data.get('stop'))} UTC",
                              className="count"),
                    html.Span(f"{len(meta.get('machines', []))} machines", className="count"),
                ], className="summary"),
                html.H2("Training metrics"),
                table(["metric", "value"], _metrics_rows(meta.get("metrics", {})), id="model-metrics"),
            ]
        parts.append(html.H2("Drift"))
        parts.append(dcc.Graph(id="model-drift", figure=drift_figure(ctx.data.score_drift()),
                               config={"displaylogo": False}))
        drift = info["drift"]
        if isinstance(drift, dict) and drift:
            parts.append(table(["drift check", "value"], [[k, str(v)] for k, v in sorted(drift.items())
                                                          if not isinstance(v, dict | list)]))
        parts.append(html.H2("Versions"))
        rows = [[v["version"] + (" (production)" if v["version"] == info["production"] else ""),
                 "valid" if v["valid"] else f"invalid: {v['error']}",
                 fmt_time(v["metadata"].get("data", {}).get("start")), fmt_time(v["metadata"].get("data", {}).get("stop")),
                 fmt_num((v["metadata"].get("metrics", {}).get("valid_loss") or [None])[-1], 4)]
                for v in reversed(info["versions"])]
        parts.append(table(["version", "state", "data from (UTC)", "data to (UTC)", "valid loss"], rows, id="model-versions")
                     if rows else notice("No versions."))
        if info["history"]:
            parts.append(html.H2("Promotions"))
            parts.append(table(["at", "version", "previous", "reason"],
                               [[h.get("at", ""), h.get("version", ""), h.get("previous") or "—", h.get("reason", "")]
                                for h in reversed(info["history"])]))
        return parts

    app.callback(Output("model-content", "children"), Input("refresh", "n_intervals"),
                 )(guarded(render, notice))
