"""Small pieces the pages share."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pandas as pd
from dash import html


def data_attrs(**values: str) -> dict[str, Any]:
    """``data-*`` attributes for a component (``data_attrs(machine="m1")`` → ``data-machine``)."""
    return {f"data-{k}": v for k, v in values.items()}


def machine_href(machine: str) -> str:
    return f"/machine/{quote(machine, safe='')}"


def rootcause_href(machine: str, alarm_ns: int) -> str:
    return f"/rootcause/{quote(machine, safe='')}/{int(alarm_ns)}"


def fmt_time(t: Any) -> str:
    if t is None or (not isinstance(t, str) and pd.isna(t)):
        return "—"
    return pd.Timestamp(t).strftime("%Y-%m-%d %H:%M")


def fmt_num(x: Any, digits: int = 2, suffix: str = "") -> str:
    if x is None or pd.isna(x):
        return "—"
    return f"{float(x):.{digits}f}{suffix}"


def fmt_ttf(hours: Any) -> str:
    if hours is None or pd.isna(hours) or float(hours) < 0:
        return "no estimate"
    h = float(hours)
    return f"~{h:.0f} h" if h < 72 else f"~{h / 24:.1f} d"


def _span(hours: float) -> str:
    return f"{hours:.0f} h" if hours < 72 else f"{hours / 24:.1f} d"


def alarm_state(row: Any) -> str:
    """An alarm row's state as shown: open, cleared at a time, or closed by the work order at that time."""
    from pdm.store.schema import CLOSED_BY_WORK_ORDER

    if row["open"]:
        return "open"
    if str(row.get("status", "")) == CLOSED_BY_WORK_ORDER:
        return f"closed by work order {fmt_time(row['end'])}"
    return f"closed {fmt_time(row['end'])}"


def severity_since(row: Any) -> str:
    """" since <time>" when an alarm reached its severity after it was raised (``severity_since``), else ""."""
    since = row.get("severity_since")
    if not row.get("severity") or since is None or pd.isna(since) or since == row["start"]:
        return ""
    return f" since {fmt_time(since)}"


def alarm_ttf(row: Any) -> str:
    """An open alarm's time to failure as shown: what remained after the plant's past alarms as old (median,
    quartiles, how many: pdm.detect.leads), not the score's trend, which was measured to say nothing of when a
    machine fails (pdm.evaluate.ttf); "—" once closed."""
    if not row["open"]:
        return "—"
    left = row.get("left_h")
    if left is None or pd.isna(left):
        return "no estimate (< 3 past failures alarmed this long)"
    return (f"{fmt_ttf(left)} ({_span(float(row['left_low_h']))}–{_span(float(row['left_high_h']))} "
            f"after {int(row['left_n'])} past alarms as old)")


def notice(text: str) -> html.Div:
    return html.Div(text, className="notice")


def table(header: list[str], rows: list[list[Any]], **kw: Any) -> html.Table:
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in header])),
                       html.Tbody([html.Tr([html.Td(c) for c in r]) for r in rows])], className="grid", **kw)
