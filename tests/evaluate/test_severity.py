"""Severity levels judged from when each episode reached them, on a hand-written table with known answers."""

from __future__ import annotations

import pandas as pd
import pytest

from pdm.evaluate.severity import (
    REPAIR_H,
    at_level,
    notify_costs,
    notify_line,
    notify_section,
    notify_table,
    pooled_severity,
    severity_evidence,
    severity_table,
)

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


def test_planned_stops_count_failures_told_a_day_ahead_after_onset_and_repairs_come_from_the_log() -> None:
    alarms, failures, observed = _table()
    # B's critical comes 40 h ahead (planned), A's 50 h; move B's failure so that it is told 20 h ahead only
    failures.loc[1, "failure"] = T0 + pd.Timedelta("280h")
    got = severity_evidence(alarms, failures, observed)
    assert [lv["planned"] for lv in got["levels"]] == [1, 1, 1]  # A only: B told 20 h ahead at every level
    assert got["repair_h"] is None and got["planning_lead_h"] == 24.0
    # an alarm older than the onset plans nothing: A's onset moved after its watch and warning (60 h, 100 h)
    failures.loc[0, "onset"] = T0 + pd.Timedelta("120h")
    failures["repair_end"] = failures["failure"] + pd.to_timedelta(["20h", "40h"])
    got = severity_evidence(alarms, failures, observed)
    assert [lv["planned"] for lv in got["levels"]] == [0, 0, 1] and got["repair_h"] == pytest.approx(30.0)
    assert pooled_severity([got, got])["levels"][2]["planned"] == 2  # type: ignore[index]
    older = {**got, "levels": [{k: v for k, v in lv.items() if k != "planned"} for lv in got["levels"]]}
    pooled = pooled_severity([got, older])  # results files from before planned stops were counted
    assert pooled is not None and "planned" not in pooled["levels"][0] and notify_section({"x": pooled}) == []
    with pytest.raises(ValueError, match="without planned stops"):
        notify_costs(pooled)
    assert notify_section({"x": got})[0] == "## Which level to notify from, priced in downtime"


def _evidence() -> dict:
    row = {"alarms": 0, "true_alarms": 0, "caught": 0, "caught_72h": 0, "near": 0, "failures": 10}
    return {"machine_months": 10.0, "repair_h": 30.0, "planning_lead_h": 24.0, "near_h": 72.0, "levels": [
        {**row, "level": "watch", "planned": 8, "false_alarms": 20},
        {**row, "level": "warning", "planned": 8, "false_alarms": 10},
        {**row, "level": "critical", "planned": 6, "false_alarms": 4}]}


def test_notify_costs_price_each_level_and_say_when_fewer_calls_pay() -> None:
    got = notify_costs(_evidence())  # a false call 2 h, repairs 30 h (the log's), a planned stop half of it
    watch, warning, critical = got["levels"]
    assert (watch["downtime_h"], watch["calls_h"], watch["cost_h"]) == (2 * 30 + 8 * 15, 40, 220)
    assert (warning["cost_h"], critical["cost_h"]) == (200, 4 * 30 + 6 * 15 + 8)
    assert warning["cost_per_machine_month_h"] == pytest.approx(20.0)
    # warning misses nothing watch tells: cheaper at any cost of a call; critical's two unplanned failures
    # (30 h more downtime) pay for 6 fewer calls once a call costs more than 5 h
    assert watch["pays_above_false_call_h"] is None and warning["pays_above_false_call_h"] == 0.0
    assert critical["pays_above_false_call_h"] == pytest.approx(5.0)
    assert got["best"] == "warning" and got["repair_from_log"]
    assert notify_costs(_evidence(), false_call_h=6)["best"] == "critical"
    assert notify_costs(_evidence(), false_call_h=5)["best"] == "critical"  # equal cost: the fewer calls
    assert notify_costs(_evidence(), false_call_h=0)["best"] == "warning"
    stated = notify_costs(_evidence(), repair_h=10)
    assert stated["levels"][0]["downtime_h"] == 2 * 10 + 8 * 5 and not stated["repair_from_log"]
    assert notify_costs({**_evidence(), "repair_h": None})["repair_h"] == REPAIR_H
    with pytest.raises(ValueError):
        notify_costs(_evidence(), false_call_h=-1)


def test_a_level_that_misses_failures_without_sparing_calls_never_pays() -> None:
    ev = _evidence()
    ev["levels"][2]["false_alarms"] = 10
    assert notify_costs(ev)["levels"][2]["pays_above_false_call_h"] is None


def test_the_notify_costs_read_as_rows_and_a_table() -> None:
    got = notify_costs(_evidence())
    (label, best), (_, pays) = notify_line(got)
    assert label == "notify from (cheapest in downtime)"
    assert best == ("warning (watch 220 h, warning 200 h, critical 218 h; a false call 2 h, a repair 30.0 h "
                    "(the failure log's median), a planned stop 50 % of it)")
    assert pays == "warning always, critical above 5.0 h"
    table = notify_table({"TSHAE": got})
    assert table is not None and "| TSHAE | warning **(cheapest)** | 8 | 2 | 10 | 180 | 20 | 200 | always |" in table
    assert notify_table({"x": None}) is None
