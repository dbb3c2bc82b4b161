"""Tell someone about new alarms of a severity or above (``warning`` by default), exactly once per alarm.

The default notifier writes a log line; with a webhook URL configured it also
POSTs a JSON document. The URL may hold a token, so it is never logged: log
lines name only its host. What was sent is recorded in ``pdm_notified``
(tags machine, model_version, alarm = alarm start ns), and an alarm recorded
there is not sent again, so a retried or re-run task sends no duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from pdm.detect.leads import LeadHistory
from pdm.detect.persist import reached_times, without_handed_over
from pdm.store import Store
from pdm.store.schema import ALARM

log = logging.getLogger(__name__)

NOTIFIED = "pdm_notified"
SEVERITIES = ("warning", "critical")


class NotifyError(RuntimeError):
    """The webhook could not be reached or refused the message (the URL is not in the message)."""


class Notifier:
    """Log line, plus an optional webhook POST (``url`` is a secret)."""

    def __init__(self, webhook_url: str | Any = "", *, timeout_s: float = 10.0,
                 post: Callable[..., Any] | None = None) -> None:
        raw = webhook_url.get_secret_value() if hasattr(webhook_url, "get_secret_value") else str(webhook_url or "")
        if raw and not raw.startswith(("http://", "https://")):
            raise ValueError("webhook URL must start with http:// or https://")
        self._url = raw
        self.timeout_s = timeout_s
        self._post = post

    @property
    def target(self) -> str:
        """Where messages go, safe to log (the host only)."""
        return f"log + webhook at {urlsplit(self._url).hostname}" if self._url else "log"

    def send(self, alarm: dict[str, Any]) -> None:
        level = str(alarm.get("severity", "?"))
        since = (alarm.get("reached") or {}).get(level)
        left = alarm.get("time_left")
        told = (f"time left ~{left['median_h']:.0f} h ({left['low_h']:.0f}-{left['high_h']:.0f} h after "
                f"{left['past_alarms']} past alarms as old)" if left else "no time-left estimate")
        log.warning("ALARM %s on %s since %s%s (peak ratio %.2f, top channel %s, %s, model %s)",
                    level, alarm.get("machine"), alarm.get("start"), f", {level} since {since}" if since else "",
                    float(alarm.get("peak_ratio") or 0.0), alarm.get("top_channel", ""), told,
                    alarm.get("model_version", ""))
        if not self._url:
            return
        post = self._post
        if post is None:
            import requests

            post = requests.post
        try:
            resp = post(self._url, json={"type": "pdm_alarm", **alarm}, timeout=self.timeout_s)
        except Exception as exc:  # the exception text may contain the URL: keep only its type
            raise NotifyError(f"webhook at {urlsplit(self._url).hostname} unreachable ({type(exc).__name__})") from None
        status = getattr(resp, "status_code", 200)
        if status >= 300:
            raise NotifyError(f"webhook at {urlsplit(self._url).hostname} answered HTTP {status}")


def alarms_to_notify(store: Store, start: Any, stop: Any, severity: str = "warning",
                     machines: list[str] | None = None) -> list[dict[str, Any]]:
    """Alarms of at least ``severity`` that were alarming in ``[start, stop)``, not yet notified."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")
    levels = SEVERITIES[SEVERITIES.index(severity):]
    # An alarm point's time is its start; read from well before so long alarms are seen.
    t0 = pd.Timestamp(start) - pd.Timedelta("30D")
    alarms = store.read(ALARM, machines, t0, stop)
    if alarms.empty:
        return []
    alarms = alarms[alarms["severity"].isin(levels)]
    if not alarms.empty:  # an episode a newer model continued is one alarm: its successor's row
        alarms = alarms.iloc[without_handed_over(alarms.reset_index(), start="time").index.to_numpy()]
    s0 = pd.Timestamp(start).value
    last = alarms["last_ns"].astype("int64") if "last_ns" in alarms else pd.Series(alarms.index.asi8, index=alarms.index)
    alarms = alarms[(last.to_numpy() >= s0) | (alarms.index.asi8 >= s0)]
    done = store.read(NOTIFIED, machines)
    sent = set()
    if not done.empty:
        # By machine and start, whatever the version: an episode sent under an earlier model is not sent
        # again when a newer one continues it.
        sent = set(zip(done["machine"], done["alarm"], strict=True))
    out = []
    history: LeadHistory | None = None
    for t, row in alarms.iterrows():
        t_ns = int(pd.Timestamp(t).value)
        if (row["machine"], str(t_ns)) in sent:
            continue
        if history is None:  # read once, and only when there is something to send
            history = LeadHistory.from_store(store)
        out.append({"machine": row["machine"], "model_version": row.get("model_version", ""),
                    "start": pd.Timestamp(t).isoformat(), "start_ns": t_ns,
                    "severity": row["severity"], "status": row.get("status", ""),
                    "peak_ratio": float(row.get("peak_ratio", 0.0) or 0.0),
                    "time_left": _time_left(history, row, t_ns),
                    "top_channel": row.get("top_channel", "") or "",
                    "reached": {lv: pd.Timestamp(ns, tz="UTC").isoformat()
                                for lv, ns in reached_times(row, t_ns).items() if lv != "watch"}})
    return out


def _time_left(history: LeadHistory, row: pd.Series, start_ns: int) -> dict[str, Any] | None:
    """What remained after the plant's past alarms as old as this one, as the dashboard shows it
    (:class:`pdm.detect.leads.LeadHistory`: median and quartiles in hours, over ``past_alarms`` failures);
    None for a closed alarm or without at least 3 such past failures. Not the score's trend, which was measured
    to say nothing of when a machine fails (:mod:`pdm.evaluate.ttf`)."""
    end = row.get("end_ns")
    if end is not None and pd.notna(end) and int(end) > 0:
        return None
    last = row.get("last_ns")
    got = history.left_at(start_ns, int(last) if last is not None and pd.notna(last) else None)
    if got is None:
        return None
    return {"median_h": round(got.median_h, 1), "low_h": round(got.low_h, 1), "high_h": round(got.high_h, 1),
            "past_alarms": got.n}


def notify_new_alarms(store: Store, start: Any, stop: Any, notifier: Notifier, severity: str = "warning",
                      machines: list[str] | None = None) -> int:
    """Send each new alarm once, recording it in ``pdm_notified`` right after; returns how many were sent."""
    sent = 0
    for alarm in alarms_to_notify(store, start, stop, severity, machines):
        notifier.send(alarm)
        store.write([{"measurement": NOTIFIED,
                      "tags": {"machine": alarm["machine"], "model_version": alarm["model_version"],
                               "alarm": str(alarm["start_ns"])},
                      "fields": {"severity": alarm["severity"], "target": notifier.target},
                      "time": alarm["start_ns"]}])
        sent += 1
    if sent:
        log.info("notified %d new %s alarm(s) via %s", sent, severity, notifier.target)
    return sent
