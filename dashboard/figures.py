"""Plotly figures for the pages, built from the view models in :mod:`dashboard.data`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.data import MachineView, RootCause
from pdm.detect.rootcause import EXCURSION_CHANGE

ALARM_FILL = "rgba(220, 38, 38, 0.18)"
MAINT_FILL = "rgba(37, 99, 235, 0.14)"
REPAIR_FILL = "rgba(107, 114, 128, 0.22)"
#: Ground-truth events an operator knows about (spikes and dropouts are the simulator's secrets).
MAINTENANCE_KINDS = ("maintenance", "sensor_replaced")


def empty_figure(text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=200, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def machine_figure(view: MachineView) -> go.Figure:
    """Sensor panels over the anomaly score, one shared time axis, alarms and maintenance shaded."""
    panels = [(k, v) for k, v in view.sensors.items() if not v.empty]
    rows = len(panels) + 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.025,
                        subplot_titles=[k for k, _ in panels] + ["anomaly score"],
                        row_heights=[1.0] * len(panels) + [1.3])
    for i, (name, frame) in enumerate(panels, start=1):
        for col in frame.columns:
            fig.add_trace(go.Scatter(x=frame.index, y=frame[col], mode="lines", name=f"{name}: {col}",
                                       legendgroup=name, line=dict(width=1.2)), row=i, col=1)
    r = rows
    if not view.score.empty:
        s = view.score
        fig.add_trace(go.Scatter(x=s.index, y=s["score"], mode="lines", name="score",
                                 line=dict(color="#111827", width=1.6)), row=r, col=1)
        fig.add_trace(go.Scatter(x=s.index, y=s["threshold"], mode="lines", name="threshold",
                                 line=dict(color="#dc2626", dash="dash", width=1.4)), row=r, col=1)
    if not view.log.empty:
        lg = view.log
        y0 = float(np.nanmin(view.score["score"])) if not view.score.empty else 0.0
        ack = lg["event_type"] == "alarm_ack"
        for sel, name, sym, colr in ((~ack, "operator log", "diamond", "#7c3aed"),
                                     (ack, "acknowledgement", "star", "#059669")):
            part = lg[sel.to_numpy()]
            if part.empty:
                continue
            text = [f"{t:%Y-%m-%d %H:%M} {e} ({o}): {m}" for t, e, o, m in
                    zip(part.index, part["event_type"], part.get("operator", [""] * len(part)),
                        part["message"], strict=False)]
            fig.add_trace(go.Scatter(x=part.index, y=[y0] * len(part), mode="markers", name=name,
                                     marker=dict(symbol=sym, size=11, color=colr), hovertext=text,
                                     hoverinfo="text"), row=r, col=1)
    # Shapes on the shared x axis spanning the whole height (yref "paper"), added in one go:
    # fig.add_vrect(row="all") per event costs Plotly seconds on a 90-day range.
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []

    def band(x0: Any, x1: Any, fill: str) -> None:
        # Clipped to the range: an alarm raised before it would otherwise stretch the axis to its start.
        x0, x1 = max(pd.Timestamp(x0), view.start), min(pd.Timestamp(x1), view.stop)
        if x0 < x1:
            shapes.append(dict(type="rect", xref="x", yref="paper", x0=x0, x1=x1, y0=0, y1=1, fillcolor=fill,
                               line_width=0, layer="below"))

    for _, a in view.alarms.iterrows():
        band(a["start"], a["end"] if pd.notna(a["end"]) else view.stop, ALARM_FILL)
    for t, row in view.truth.iterrows():
        end = pd.Timestamp(int(row["end_ns"]), unit="ns", tz="UTC")
        kind = str(row.get("kind", ""))
        failed = row.get("is_failure")
        if pd.notna(failed) and bool(failed) and pd.notna(row.get("failure_ns")):
            failure = pd.Timestamp(int(row["failure_ns"]), unit="ns", tz="UTC")
            band(failure, end, REPAIR_FILL)
            if not view.start <= failure <= view.stop:
                continue
            shapes.append(dict(type="line", xref="x", yref="paper", x0=failure, x1=failure, y0=0, y1=1,
                               line=dict(color="#dc2626", width=2)))
            notes.append(dict(x=failure, y=1.0, xref="x", yref="paper", text="failure → repair", showarrow=False,
                              font=dict(size=11, color="#dc2626"), xanchor="left"))
        elif kind in MAINTENANCE_KINDS:
            band(t, max(end, t + pd.Timedelta("30min")), MAINT_FILL)
            if not view.start <= t <= view.stop:
                continue
            notes.append(dict(x=t, y=1.0, xref="x", yref="paper", text=kind.replace("_", " "), showarrow=False,
                              font=dict(size=10, color="#2563eb"), xanchor="left", yshift=-14))
    fig.update_layout(shapes=shapes, annotations=list(fig.layout.annotations) + notes)
    fig.update_xaxes(range=[view.start, view.stop])  # the chosen range, whatever a shape or marker spans
    fig.update_layout(height=135 * rows + 90, margin=dict(l=50, r=20, t=40, b=30), hovermode="x unified",
                      legend=dict(orientation="h", y=-0.04), uirevision=view.machine)
    return fig


def contributions_figure(rc: RootCause) -> go.Figure:
    if rc.channels.empty:
        return empty_figure("no root cause stored for this alarm")
    ch = rc.channels.iloc[::-1]
    fig = go.Figure(go.Bar(x=ch["contribution"].astype(float), y=ch["channel"], orientation="h",
                           marker_color="#dc2626", hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(height=max(220, 26 * len(ch) + 60), margin=dict(l=10, r=10, t=30, b=30),
                      title="share of the change since the excursion's baseline"
                      if rc.maps.get("ranked_by") == EXCURSION_CHANGE else "contribution to the anomaly score",
                      yaxis=dict(automargin=True))
    return fig


def heatmap(matrix: Any, x: list[str], y: list[str], title: str, *, diverging: bool = False) -> go.Figure:
    z = np.asarray(matrix, dtype=float)
    kw: dict[str, Any] = dict(colorscale="RdBu", reversescale=True, zmid=0) if diverging else dict(colorscale="Viridis")
    fig = go.Figure(go.Heatmap(z=z, x=x, y=y, **kw))
    fig.update_layout(title=title, height=380, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(automargin=True, tickangle=45), yaxis=dict(automargin=True, autorange="reversed"))
    return fig


def spatial_figures(rc: RootCause) -> list[go.Figure]:
    m = rc.maps
    names = [str(c) for c in m.get("channels", [])]
    out = []
    for key, title, div in (("spatial", "spatial attention (alarm)", False),
                            ("baseline", "healthy baseline", False),
                            ("diff", "difference (alarm − baseline)", True)):
        if m.get(key) is not None and len(m[key]):
            fig = heatmap(m[key], names, names, title, diverging=div)
            # Sensor names on the first map's rows only; the rest show them on hover.
            fig.update_xaxes(showticklabels=False)
            fig.update_yaxes(showticklabels=key == "spatial")
            out.append(fig)
    return out


def temporal_figure(rc: RootCause) -> go.Figure | None:
    m = rc.maps
    if m.get("temporal") is None or not len(m["temporal"]):
        return None
    names = [str(c) for c in m.get("channels", [])]
    times = m.get("token_times_ns") or list(range(np.asarray(m["temporal"]).shape[-1]))
    x = [pd.Timestamp(int(t), unit="ns", tz="UTC").strftime("%m-%d %H:%M") for t in times] \
        if m.get("token_times_ns") else [str(t) for t in times]
    fig = heatmap(m["temporal"], x, names, "temporal attention over the window (sensor × time)")
    fig.update_layout(height=max(300, 22 * len(names) + 120))
    return fig


def drift_figure(drift: pd.DataFrame) -> go.Figure:
    if drift.empty:
        return empty_figure("no scores in the store yet")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=drift.index, y=drift["median"], name="fleet median", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=drift.index, y=drift["p90"], name="90th percentile", mode="lines"))
    fig.add_hline(y=1.0, line=dict(color="#dc2626", dash="dash"), annotation_text="threshold")
    fig.update_layout(title="score / threshold per day across the fleet", height=320,
                      margin=dict(l=40, r=10, t=40, b=30))
    return fig
