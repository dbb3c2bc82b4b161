"""Lead-time metrics on a hand-written failure/alarm table."""

from __future__ import annotations

import pandas as pd
import pytest

from pdm.evaluate.events import event_metrics

FAILURES = pd.DataFrame({
    "machine": ["m1", "m2", "m3"],
    "failure": ["2024-02-10T00:00Z", "2024-02-20T00:00Z", "2024-03-01T00:00Z"],
    "repair_end": ["2024-02-11T00:00Z", "2024-02-21T00:00Z", "2024-03-02T00:00Z"],
    "root_cause": ["vibration.de.band_bpfo;vibration.de.kurtosis", "temperature.winding.celsius", "vibration.axial.band_2x"],
})
ALARMS = pd.DataFrame({
    "machine": ["m1", "m1", "m2", "m3", "m3"],
    "start": ["2024-02-06T00:00Z",   # m1: 96 h ahead (first)
              "2024-02-09T00:00Z",   # m1: later alarm of the same failure
              "2024-02-19T12:00Z",   # m2: 12 h ahead
              "2024-01-01T00:00Z",   # m3: 60 days ahead: outside the 14-day horizon → false
              "2024-01-20T00:00Z"],  # m3: false, during a maintenance
    "channels": ["vibration.de.band_bpfo;temperature.bearing.celsius", "", "process.current_a;temperature.winding.celsius",
                 "vibration.de.rms", "vibration.de.rms"],
})
OBSERVED = pd.DataFrame({"machine": ["m1", "m2", "m3"], "start": ["2024-01-01T00:00Z"] * 3, "end": ["2024-03-31T00:00Z"] * 3})
NUISANCES = pd.DataFrame({"machine": ["m3"], "kind": ["maintenance"], "start": ["2024-01-20T02:00Z"], "end": ["2024-01-20T08:00Z"]})


def test_lead_times_recall_precision_and_false_alarms_per_machine_month():
    m = event_metrics(FAILURES, ALARMS, OBSERVED, NUISANCES)
    assert m.failures == 3 and m.caught == 2
    assert [f.get("lead_h") for f in m.per_failure] == [96.0, 12.0, None]
    assert m.recall == pytest.approx(2 / 3)
    assert m.recall_24h == pytest.approx(1 / 3) and m.recall_72h == pytest.approx(1 / 3)
    assert m.median_lead_h == 54.0
    assert m.alarms == 5 and m.true_alarms == 3 and m.precision == pytest.approx(3 / 5)
    assert m.false_alarms == 2
    assert m.machine_months == pytest.approx(3 * 90 / 30)
    assert m.false_alarms_per_machine_month == pytest.approx(2 / 9)
    assert m.false_alarms_by_cause == {"unexplained": 1, "maintenance": 1}


def test_root_cause_accuracy_uses_the_first_alarm_ranking():
    m = event_metrics(FAILURES, ALARMS, OBSERVED)
    assert m.rootcause_top1 == 0.5  # m1 right first, m2 second
    assert m.rootcause_top3 == 1.0


def test_root_cause_is_judged_as_ranked_72_hours_before_the_failure():
    alarms = ALARMS.copy()
    # m1's first alarm (96 h ahead) was raised ranking a temperature, ranked again twice as its score grew:
    # 80 h ahead naming the bearing's BPFO band, 30 h ahead naming the HF band. Judged: the ranking of 80 h.
    alarms["rankings"] = [
        [(pd.Timestamp("2024-02-06T00:00Z"), ["temperature.bearing.celsius"]),
         (pd.Timestamp("2024-02-06T16:00Z"), ["vibration.de.band_bpfo", "temperature.bearing.celsius"]),
         (pd.Timestamp("2024-02-08T18:00Z"), ["vibration.de.band_hf"])],
        [], [], [], []]
    m = event_metrics(FAILURES, alarms, OBSERVED)
    m1 = m.per_failure[0]
    assert m1["rootcause_rank"] == 1 and m1["rootcause_ranked_h"] == 80.0
    # m2 (12 h ahead) has no rankings column entry: its channels, as before
    assert m.per_failure[1]["rootcause_rank"] == 2 and "rootcause_ranked_h" not in m.per_failure[1]
    assert m.rootcause_top1 == 0.5 and m.rootcause_top1_at_raise == 0.0
    # judged 30 h before: the latest ranking by then, the HF band (not a true root cause)
    late = event_metrics(FAILURES, alarms, OBSERVED, ranking_lead=pd.Timedelta("30h"))
    assert late.per_failure[0]["rootcause_ranked_h"] == 30.0 and late.per_failure[0].get("rootcause_rank") is None


def test_an_alarm_raised_after_the_judging_time_is_judged_as_raised():
    alarms = ALARMS.copy()
    alarms["rankings"] = [[], [], [(pd.Timestamp("2024-02-19T12:00Z"), ["temperature.winding.celsius"]),
                                   (pd.Timestamp("2024-02-19T20:00Z"), ["process.current_a"])], [], []]
    m = event_metrics(FAILURES, alarms, OBSERVED)
    assert m.per_failure[1]["rootcause_rank"] == 1 and m.per_failure[1]["rootcause_ranked_h"] == 12.0


def test_the_alarm_judged_is_the_one_raised_by_72_hours_before_the_failure():
    failures = FAILURES.iloc[:1]
    alarms = pd.DataFrame({
        "machine": ["m1", "m1", "m1"],
        "start": ["2024-01-31T00:00Z",   # raised and cleared before the fault began, naming a temperature
                  "2024-02-05T00:00Z",   # the fault's own alarm: judged (the latest raised by Feb 7)
                  "2024-02-08T00:00Z"],  # raised inside the last 72 h: not judged
        "end": ["2024-02-01T00:00Z", "2024-02-10T00:00Z", "2024-02-10T00:00Z"],
        "channels": ["temperature.bearing.celsius", "vibration.de.band_bpfo", "vibration.de.rms"],
    })
    m = event_metrics(failures, alarms, OBSERVED)
    row = m.per_failure[0]
    assert row["lead_h"] == 240.0  # lead time still from the first alarm in effect
    assert row["rootcause_alarm_start"] == pd.Timestamp("2024-02-05T00:00Z") and row["rootcause_rank"] == 1
    assert m.rootcause_top1 == 1.0 and m.rootcause_top1_at_raise == 0.0  # the first alarm, as raised, was wrong


def test_downtime_caught_a_day_ahead_becomes_planned_under_the_stated_cost_model():
    m = event_metrics(FAILURES, ALARMS, OBSERVED, planned_fraction=0.5)
    assert m.downtime_turned_planned_h == 12.0  # m1: 24 h repair, half of it as a planned stop
    assert m.downtime_saved_h == 12.0
    assert m.unplanned_downtime_h == 48.0  # m2 (12 h lead < 24 h) and m3 (missed)


def test_no_alarms_means_nothing_caught_and_no_false_alarms():
    m = event_metrics(FAILURES, ALARMS.iloc[:0], OBSERVED)
    assert m.caught == 0 and m.false_alarms == 0 and m.recall == 0.0


def test_an_alarm_raised_before_the_horizon_and_still_raised_in_it_catches_the_failure():
    alarms = ALARMS.assign(end=["2024-02-07T00:00Z", "2024-02-09T06:00Z", "2024-02-20T06:00Z",
                                "2024-01-05T00:00Z", "2024-01-21T00:00Z"])
    # m3's 60-day-old alarm never cleared: in effect throughout the horizon, it warned of the failure.
    still = alarms.assign(end=alarms["end"].where(alarms.index != 3, "2024-03-01T06:00Z"))
    m = event_metrics(FAILURES, still, OBSERVED, NUISANCES)
    assert m.caught == 3 and m.caught_early == 1
    assert m.per_failure[2]["lead_h"] == 60 * 24.0 and m.per_failure[2]["alarm_before_horizon"]
    assert m.false_alarms == 1 and m.false_alarms_by_cause == {"maintenance": 1}
    # Cleared a day before the horizon began (2024-02-16): an old alarm, false; the failure is missed.
    cleared = alarms.assign(end=alarms["end"].where(alarms.index != 3, "2024-02-15T23:00Z"))
    m = event_metrics(FAILURES, cleared, OBSERVED, NUISANCES)
    assert m.caught == 2 and m.caught_early == 0 and m.false_alarms == 2
    # With their ends, the hand-written alarms are judged as without them.
    assert event_metrics(FAILURES, alarms, OBSERVED).to_dict() == event_metrics(FAILURES, ALARMS, OBSERVED).to_dict()


def test_alarms_older_than_the_fault_onset_are_counted_apart():
    # m1's fault began 2024-02-07: its first alarm (02-06, 96 h ahead) is older than the fault, the second
    # (02-09, 24 h ahead) is the fault's own. A stuck alarm raised 2024-01-30 on m2 and still raised when it
    # failed (fault began 02-15) catches it by the horizon rule, but no alarm was raised after its onset.
    fails = FAILURES.copy()
    fails["onset"] = ["2024-02-07T00:00Z", "2024-02-15T00:00Z", None]
    alarms = pd.DataFrame({"machine": ["m1", "m1", "m2"],
                           "start": ["2024-02-06T00:00Z", "2024-02-09T00:00Z", "2024-01-30T00:00Z"],
                           "end": ["2024-02-06T12:00Z", "2024-02-10T00:00Z", "2024-02-20T00:00Z"]})
    m = event_metrics(fails, alarms, OBSERVED)
    assert [f.get("lead_h") for f in m.per_failure] == [96.0, 504.0, None]
    assert m.recall_72h == pytest.approx(2 / 3)  # by the horizon rule
    assert [f.get("lead_after_onset_h") for f in m.per_failure] == [24.0, None, None]
    assert m.recall_72h_after_onset == 0.0  # 0 of the 2 failures with an onset
    assert m.median_lead_after_onset_h == 24.0
    assert m.alarm_before_onset == 2
    assert [bool(f.get("alarm_before_onset")) for f in m.per_failure] == [True, True, False]
    # without onsets nothing of it is reported
    plain = event_metrics(FAILURES, alarms, OBSERVED)
    assert plain.recall_72h_after_onset is None and plain.alarm_before_onset == 0
