"""Severity levels judged from when each episode reached them, on a hand-written table with known answers."""

from __future__ import annotations

import pandas as pd
import pytest

from pdm.evaluate.severity import at_level, pooled_severity, severity_evidence, severity_table

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _h(hours: float) -> int:
    return (T0 + pd.Timedelta(hours=hours)).value


def _table() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A fails at 200 h (onset 50 h), B at 300 h (onset 250 h); C never fails (30 days observed each).

    A's episode: raised 60 h, warning 100 h, critical 150 h (50 h before the failure): every level catches
    it, only watch and warning >= 72 h ahead. B's: raised 260 h (40 h ahead), critical at once. C: one
    false alarm that stays a watch, one that turns critical.
    """
    alarms = pd.DataFrame([
        {"machine": "A", "start": T0 + pd.Timedelta("60h"), "end": T0 + pd.Timedelta("200h"),
         "reached": {"watch": _h(60), "warning": _h(100), "critical": _h(150)}},
        {"machine": "B", "start": T0 + pd.Timedelta("260h"), "end": T0 + pd.Timedelta("300h"),
         "reached": {"watch": _h(260), "warning": _h(260), "critical": _h(260)}},
        {"machine": "C", "start": T0 + pd.Timedelta("100h"), "end": T0 + pd.Timedelta("130h"),
         "reached": {"watch": _h(100)}},
        {"machine": "C", "start": T0 + pd.Timedelta("400h"), "end": T0 + pd.Timedelta("450h"),
         "reached": {"watch": _h(400), "warning": _h(410), "critical": _h(420)}},
    ])
    failures = pd.DataFrame({"machine": ["A", "B"], "failure": [T0 + pd.Timedelta("200h"), T0 + pd.Timedelta("300h")],
                             "onset": [T0 + pd.Timedelta("50h"), T0 + pd.Timedelta("250h")]})
    observed = pd.DataFrame({"machine": ["A", "B", "C"], "start": [T0] * 3, "end": [T0 + pd.Timedelta("30D")] * 3})
    return alarms, failures, observed


def test_each_level_counts_its_episodes_from_when_they_reached_it() -> None:
    alarms, failures, observed = _table()
    got = severity_evidence(alarms, failures, observed)
    assert got["machine_months"] == pytest.approx(3.0)
    watch, warning, critical = got["levels"]
    assert (watch["alarms"], watch["false_alarms"], watch["caught"], watch["caught_72h"]) == (4, 2, 2, 1)
    assert watch["caught_72h_after_onset"] == 1 and watch["median_lead_h"] == pytest.approx((140 + 40) / 2)
    assert (warning["alarms"], warning["false_alarms"], warning["caught_72h"]) == (3, 1, 1)  # A: 100 h ahead
    assert (critical["alarms"], critical["false_alarms"], critical["caught"], critical["caught_72h"]) == (3, 1, 2, 0)
    assert critical["false_alarms_per_machine_month"] == pytest.approx(1 / 3)
    # "a failure is near": A's and B's episodes failed within 72 h of turning critical, C's did not
    assert (critical["near"], critical["precision_near"]) == (2, pytest.approx(2 / 3))
    assert (watch["near"], warning["near"]) == (1, 1)  # only B's (40 h); A's watch was 140 h ahead
    assert critical["precision"] == pytest.approx(2 / 3)


def test_an_episode_counts_at_a_level_only_once_reached() -> None:
    alarms, _, _ = _table()
    crit = at_level(alarms, "critical")
    assert list(crit["machine"]) == ["A", "B", "C"]
    assert list(crit["start"]) == [T0 + pd.Timedelta(h) for h in ("150h", "260h", "420h")]
    assert at_level(alarms.iloc[:0], "warning").empty


def test_runs_pool_by_adding_counts_and_the_table_says_them() -> None:
    alarms, failures, observed = _table()
    one = severity_evidence(alarms, failures, observed)
    both = pooled_severity([one, one])
    assert both is not None and both["machine_months"] == pytest.approx(6.0)
    assert [lv["alarms"] for lv in both["levels"]] == [8, 6, 6]
    assert both["levels"][2]["caught_72h_after_onset"] == 0 and both["levels"][0]["caught_72h_after_onset"] == 2
    assert pooled_severity([None]) is None
    table = severity_table({"TSHAE": one})
    assert table is not None and "| TSHAE | critical | 3 | 0 (0) / 2 | 1 (0.33) | 2 (67 %) | 2 (67 %) |" in table
