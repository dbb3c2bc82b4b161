"""Notifications of new alarms (warning and above by default): once each, and never the webhook's secret."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from pdm.pipeline.notify import NOTIFIED, Notifier, NotifyError, alarms_to_notify, notify_new_alarms
from pdm.store.embedded import EmbeddedStore

SECRET_URL = "https://hooks.example.test/services/T0KEN-s3cr3t"


@pytest.fixture
def store(tmp_path):
    s = EmbeddedStore(tmp_path / "s.duckdb")
    t = [pd.Timestamp("2024-01-05T10:00Z"), pd.Timestamp("2024-01-05T12:00Z"), pd.Timestamp("2024-01-01T00:00Z")]
    frame = pd.DataFrame({"machine": ["m1", "m2", "m3"], "model_version": "v1",
                          "severity": ["critical", "warning", "critical"], "status": ["open", "open", "closed"],
                          "end_ns": [0, 0, 1], "last_ns": [x.value for x in t[:2]] + [t[2].value],
                          "peak_ratio": [3.0, 1.5, 2.0], "ttf_hours": [40.0, -1.0, -1.0],
                          "top_channel": ["vibration.de.rms", "", ""],
                          "warning_ns": [t[0].value, t[1].value, t[2].value],
                          "critical_ns": [t[0].value + 4 * 3_600_000_000_000, 0, t[2].value]},
                         index=pd.DatetimeIndex(t, name="time"))
    s.write(frame, "pdm_alarm", ["machine", "model_version"])
    return s


class _Post:
    def __init__(self, status=200, fail=False):
        self.calls, self.status, self.fail = [], status, fail

    def __call__(self, url, json, timeout):
        if self.fail:
            raise ConnectionError(f"cannot reach {url}")
        self.calls.append(json)
        return type("R", (), {"status_code": self.status})()


def test_only_new_alarms_of_the_severity_in_the_interval_are_sent_once(store, caplog):
    post = _Post()
    n = Notifier(SECRET_URL, post=post)
    caplog.set_level(logging.INFO)
    start, stop = "2024-01-05T00:00Z", "2024-01-06T00:00Z"
    assert notify_new_alarms(store, start, stop, n, "critical") == 1
    assert [c["machine"] for c in post.calls] == ["m1"]
    assert notify_new_alarms(store, start, stop, n, "critical") == 0  # a retried task sends nothing again
    assert len(post.calls) == 1 and len(store.read(NOTIFIED)) == 1
    assert [a["machine"] for a in alarms_to_notify(store, start, stop)] == ["m2"]  # warning and above by default
    assert "s3cr3t" not in caplog.text and "hooks.example.test" in caplog.text


def test_without_a_webhook_the_alarm_is_a_log_line(store, caplog):
    caplog.set_level(logging.WARNING)
    assert notify_new_alarms(store, "2024-01-05", "2024-01-06", Notifier("")) == 2
    assert "ALARM warning on m2 since 2024-01-05T12:00:00+00:00, warning since 2024-01-05T12:00:00+00:00" in caplog.text
    assert "ALARM critical on m1 since 2024-01-05T10:00:00+00:00, critical since 2024-01-05T14:00:00+00:00" in caplog.text


def test_the_message_says_when_the_alarm_reached_each_level(store):
    (m1,) = alarms_to_notify(store, "2024-01-05", "2024-01-06", "critical")
    assert m1["reached"] == {"warning": "2024-01-05T10:00:00+00:00", "critical": "2024-01-05T14:00:00+00:00"}
    by = {a["machine"]: a for a in alarms_to_notify(store, "2024-01-05", "2024-01-06", "warning")}
    assert by["m2"]["reached"] == {"warning": "2024-01-05T12:00:00+00:00"}  # never critical


def test_a_failing_webhook_raises_without_the_url_and_records_nothing(store):
    n = Notifier(SECRET_URL, post=_Post(fail=True))
    with pytest.raises(NotifyError) as err:
        notify_new_alarms(store, "2024-01-05", "2024-01-06", n)
    assert "s3cr3t" not in str(err.value)
    assert store.read(NOTIFIED).empty  # so the retry sends it
    with pytest.raises(NotifyError, match="HTTP 500"):
        notify_new_alarms(store, "2024-01-05", "2024-01-06", Notifier(SECRET_URL, post=_Post(status=500)))


def test_a_webhook_url_must_be_http():
    with pytest.raises(ValueError):
        Notifier("ftp://x")


def test_the_message_gives_the_time_left_from_the_plants_past_alarms(store, caplog):
    """Three past failures of p1, each warned by an alarm open 100, 120 and 150 h before it: an open alarm just
    raised has a median 120 h left (quartiles 110-135 h), as the dashboard shows; not the score's trend."""
    t0 = pd.Timestamp("2023-10-01T00:00Z")
    fails = [t0 + pd.Timedelta(days=20 * i) for i in (1, 2, 3)]
    starts = [f - pd.Timedelta(hours=h) for f, h in zip(fails, (100, 120, 150), strict=True)]
    store.write(pd.DataFrame({"machine": "p1", "model_version": "v1", "severity": "warning", "status": "closed",
                              "end_ns": [f.value for f in fails], "last_ns": [f.value for f in fails],
                              "peak_ratio": 2.0, "top_channel": ""}, index=pd.DatetimeIndex(starts, name="time")),
                "pdm_alarm", ["machine", "model_version"])
    store.write(pd.DataFrame({"plant": "p", "line": "l", "machine": "p1", "kind": "bearing_wear", "is_failure": True,
                              "failure_ns": [f.value for f in fails], "end_ns": [(f + pd.Timedelta("1D")).value for f in fails],
                              "root_cause": "", "affected": "", "detail": ""},
                             index=pd.DatetimeIndex([s - pd.Timedelta("1D") for s in starts], name="time")),
                "pdm_truth", ["plant", "line", "machine", "kind"])
    by = {a["machine"]: a for a in alarms_to_notify(store, "2024-01-05", "2024-01-06")}
    assert by["m1"]["time_left"] == {"median_h": 120.0, "low_h": 110.0, "high_h": 135.0, "past_alarms": 3}
    assert "ttf_hours" not in by["m1"]  # the score's trend is not sent
    caplog.set_level(logging.WARNING)
    notify_new_alarms(store, "2024-01-05", "2024-01-06", Notifier(""))
    assert "time left ~120 h (110-135 h after 3 past alarms as old)" in caplog.text
