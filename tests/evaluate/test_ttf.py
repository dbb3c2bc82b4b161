"""The time-to-failure evaluation on a hand-written table of estimates and failures with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pdm.evaluate.ttf import pooled_ttf, ttf_evidence, ttf_table

H = 3_600_000_000_000
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _table() -> tuple[list, pd.DataFrame, pd.DataFrame]:
    times = T0.value + np.arange(200) * H
    a = np.full(200, np.nan)
    a[60:100] = np.inf  # open, no rising trend: 90 .. 51 h before A's failure at 150 h
    a[100:150] = 40.0  # "within 72 h" from 50 h before it
    b = np.full(200, np.nan)
    b[100:120] = 10.0  # said under 24 h, and B never failed (its record ends at 199 h: judged)
    b[180:200] = 10.0  # ... but these windows' 72 h reach past the record's end: censored
    failures = pd.DataFrame({"machine": ["A"], "failure": [T0 + pd.Timedelta("150h")]})
    observed = pd.DataFrame({"machine": ["A", "B"], "start": [T0, T0], "end": [T0 + pd.Timedelta("199h")] * 2})
    return [("A", times, a), ("B", times, b)], failures, observed


def test_estimates_are_judged_against_the_time_that_remained() -> None:
    tracks, failures, observed = _table()
    got = ttf_evidence(tracks, failures, observed)
    assert got["windows"] == 110 and got["windows_censored"] == 20
    assert got["base_rate"] == pytest.approx(72 / 110)  # 22 of A's no-trend windows were within 72 h, and all 50
    assert (got["said_within"], got["said_within_followed"]) == (70, 50)
    assert got["precision"] == pytest.approx(50 / 70) and got["lift"] == pytest.approx((50 / 70) / (72 / 110))
    bins = {b["said"]: b for b in got["bins"]}
    assert (bins["under 24 h"]["windows"], bins["under 24 h"]["failure_within"]) == (20, 0)
    assert (bins["24-72 h"]["windows"], bins["24-72 h"]["failure_within"]) == (50, 50)
    assert bins["24-72 h"]["median_remaining_h"] == pytest.approx(25.5)  # 50 .. 1 h
    assert (bins["no trend"]["windows"], bins["no trend"]["failure_within"]) == (40, 22)
    assert bins["over 7 d"]["windows"] == 0 and bins["over 7 d"]["share"] is None
    # 40 h said with 50 .. 1 h left: within a factor of 2 from 80 h down to 20 h left, 31 of 50
    assert got["estimates_judged"] == 50 and got["within_2x"] == pytest.approx(31 / 50)
    assert got["per_failure"] == [{"machine": "A", "failure": str(T0 + pd.Timedelta("150h")),
                                   "first_said_h": 50.0, "estimate_h": 40.0}]
    assert (got["failures_said"], got["said_on_time"], got["said_early"]) == (1, 1, 0)


def test_pooling_concatenates_the_windows_and_the_failures() -> None:
    tracks, failures, observed = _table()
    one = ttf_evidence(tracks, failures, observed)
    both = pooled_ttf([one, one])
    assert both is not None and both["windows"] == 220 and both["precision"] == pytest.approx(one["precision"])
    assert both["failures"] == 2 and pooled_ttf([None]) is None  # type: ignore[list-item]
    text = ttf_table({"TSHAE": one, "missing": None})
    assert text is not None and "| TSHAE | 0/20 (0 %; -) | 50/50 (100 %; 26 h) |" in text and "missing" not in text
    assert "71 % (65 %, 1.1x)" in text and "1/1 (1 / 0; 50)" in text


def test_an_estimate_said_long_before_the_failure_is_early() -> None:
    times = T0.value + np.arange(400) * H
    a = np.full(400, np.nan)
    a[150:200] = 30.0  # said 150 .. 101 h before the failure at 300 h
    failures = pd.DataFrame({"machine": ["A"], "failure": [T0 + pd.Timedelta("300h")]})
    observed = pd.DataFrame({"machine": ["A"], "start": [T0], "end": [T0 + pd.Timedelta("399h")]})
    got = ttf_evidence([("A", times, a)], failures, observed)
    assert got["said_within"] == 50 and got["said_within_followed"] == 0 and got["precision"] == 0
    assert (got["said_on_time"], got["said_early"], got["median_first_said_h"]) == (0, 1, 150.0)


def test_a_failure_is_told_only_by_windows_after_the_machines_previous_failure() -> None:
    times = T0.value + np.arange(400) * H
    a = np.full(400, np.nan)
    a[90:100] = 20.0  # told of the failure at 100 h; the one at 200 h was never told
    failures = pd.DataFrame({"machine": ["A", "A"], "failure": [T0 + pd.Timedelta("100h"), T0 + pd.Timedelta("200h")]})
    observed = pd.DataFrame({"machine": ["A"], "start": [T0], "end": [T0 + pd.Timedelta("399h")]})
    got = ttf_evidence([("A", times, a)], failures, observed)
    assert [r["first_said_h"] for r in got["per_failure"]] == [10.0, None]
