"""The residual-lead estimator (pdm.detect.leads, benchmarks/ttf_estimates.py) on hand-made alarms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pdm.detect.leads import LeadHistory

H = 3_600_000_000_000


def test_the_residual_lead_is_the_median_time_left_after_alarms_of_the_same_age() -> None:
    history = LeadHistory((10.0, 50.0, 100.0, 200.0))
    times = np.array([0, 5, 20, 60, 120]) * H
    starts = np.array([np.nan, 0, 0, 0, 0], float)  # no alarm open at the first window
    got = history.track(times, starts)
    assert np.isnan(got[0])
    assert got[1] == 70.0  # age 5 h: all four longer, 5, 45, 95, 195 left
    assert got[2] == 80.0  # age 20 h: 30, 80, 180 left
    assert math.isinf(got[3]) and math.isinf(got[4])  # fewer than 3 leads longer: no estimate
    left = history.left(20.0)
    assert left is not None and (left.low_h, left.median_h, left.high_h, left.n) == (55.0, 80.0, 130.0, 3)
    assert history.left(60.0) is None and LeadHistory().left(0.0) is None


def test_each_failure_counts_its_earliest_alarm_open_at_it() -> None:
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    alarms = pd.DataFrame({"machine": ["a", "a", "b"],
                           "start": [t0, t0 + pd.Timedelta("100h"), t0 + pd.Timedelta("10h")],
                           "end": [t0 + pd.Timedelta("20h"), t0 + pd.Timedelta("150h"), t0 + pd.Timedelta("30h")]})
    failures = pd.DataFrame({"machine": ["a", "b", "c"],
                             "failure": [t0 + pd.Timedelta("150h"), t0 + pd.Timedelta("500h"), t0]})
    # a: its second alarm was open at it (the first cleared 130 h before); b's alarm cleared long before, c had none
    assert LeadHistory.from_events(alarms, failures).leads_h == (50.0,)
    alarms.loc[0, "end"] = t0 + pd.Timedelta("140h")  # cleared 10 h before it: still the one that warned
    assert LeadHistory.from_events(alarms, failures).leads_h == (150.0,)
    assert LeadHistory.from_events(alarms.iloc[:0], failures).leads_h == ()


def test_the_causal_track_reads_each_window_from_the_failures_before_it() -> None:
    from pdm.detect.leads import causal_track

    leads = [(100 * H, 50.0), (200 * H, 80.0), (300 * H, 120.0)]  # (failure time, lead)
    times = np.array([250, 350, 360]) * H
    starts = np.array([240, 340, 340], float) * H
    got = causal_track(times, starts, leads)
    assert math.isinf(got[0])  # two failures before it: too few
    assert got[1] == 70.0  # age 10 h: 40, 70, 110 left
    assert got[2] == 60.0  # age 20 h: 30, 60, 100 left
