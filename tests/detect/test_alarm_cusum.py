"""The alarm rule's CUSUM: sustained evidence below the threshold raises, a spike does not, work orders reset it."""

from __future__ import annotations

import numpy as np
import pytest

from pdm.detect.stages import AlarmRule

from .test_alarm_continuation import HOUR, _continued, _series, _with_idle_gaps

CUSUM = AlarmRule(cusum=True, cusum_ref=0.5, cusum_cap=1.5, cusum_h=3.0, cusum_windows=24)


def _flat(n: int = 60, level: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n, dtype=np.int64) * 2 * HOUR, np.full(n, level)


def test_a_score_held_below_the_threshold_raises_when_its_evidence_reaches_h():
    times, scores = _flat()
    scores[20:] = 0.75  # 0.25 of evidence per window: 12 windows make 3.0
    assert AlarmRule().apply(times, scores, 1.0) == []  # k of n never sees a window above
    alarms = CUSUM.apply(times, scores, 1.0)
    assert len(alarms) == 1 and alarms[0].start == times[31] and alarms[0].end is None
    assert alarms[0].severity == "watch" and alarms[0].peak_ratio == 0.75


def test_the_evidence_is_the_best_run_ending_now_within_the_memory():
    rule = AlarmRule(cusum=True, cusum_ref=0.5, cusum_cap=1.5, cusum_windows=4)
    ratio = np.array([1.5, 1.5, 0.0, 1.0, 1.0, 1.0])
    assert rule.evidence(ratio, 0, 1) == pytest.approx(2.0)
    assert rule.evidence(ratio, 0, 2) == pytest.approx(1.5)  # 1.0 + 1.0 - 0.5
    assert rule.evidence(ratio, 0, 5) == pytest.approx(1.5)  # the last three; the 0.0 costs more than 1.5 gives
    assert rule.evidence(ratio, 4, 5) == pytest.approx(1.0)  # from a work order at 4
    assert rule.evidence(np.zeros(3), 0, 2) == 0.0


def test_one_spike_does_not_raise_however_high():
    times, scores = _flat()
    scores[30] = 50.0  # counted at the cap: 1.0 of evidence
    assert CUSUM.apply(times, scores, 1.0) == []
    scores[31] = scores[32] = 50.0  # three in a row: k of n raises, and so does the evidence (3.0)
    alarms = CUSUM.apply(times, scores, 1.0)
    assert [a.start for a in alarms] == [times[32]]


def test_an_alarm_does_not_clear_while_its_evidence_holds():
    times, scores = _flat(120)
    scores[20:80] = 0.75
    rule = AlarmRule(cusum=True, cusum_h=3.0, clear_n=6, clear_hours=0.0, hysteresis=0.8)
    alarms = rule.apply(times, scores, 1.0)
    # Below the hysteresis all along, yet held open while the evidence held: at 80 + j the best run is the
    # 0.75s still in the 24-window memory less the 0.2s after them, (23 - j) * 0.25 - (j + 1) * 0.3, under 3.0
    # from j = 5; then six windows below the hysteresis clear it.
    assert len(alarms) == 1 and alarms[0].start == times[31]
    assert alarms[0].end == times[85 + 5]
    assert rule.evidence(scores, 0, 84) >= 3.0 > rule.evidence(scores, 0, 85)


def test_a_work_order_starts_the_evidence_afresh():
    times, scores = _flat()
    scores[20:] = 0.75
    order = np.array([times[28] + HOUR], np.int64)  # between windows 28 and 29
    alarms = CUSUM.apply(times, scores, 1.0, resets=order)
    assert len(alarms) == 1 and alarms[0].start == times[29 + 11]


def test_off_by_default_and_old_rules_read_back():
    rule = AlarmRule.from_dict({k: v for k, v in AlarmRule().to_dict().items() if not k.startswith("cusum")})
    assert rule == AlarmRule() and not rule.cusum
    assert AlarmRule.from_dict(CUSUM.to_dict()) == CUSUM
    for seed in range(3):
        times, scores = _with_idle_gaps(seed)
        assert AlarmRule(cusum=False, cusum_h=0.1).apply(times, scores, 1.0) == AlarmRule().apply(times, scores, 1.0)


@pytest.mark.parametrize("fields", [{"cusum_ref": 1.5, "cusum_cap": 1.5}, {"cusum_h": 0.0}, {"cusum_windows": 0},
                                    {"cusum_ref": -0.1}])
def test_settings_that_cannot_work_are_refused(fields):
    with pytest.raises(ValueError, match="CUSUM"):
        AlarmRule(cusum=True, **fields)


def test_scoring_in_pieces_gives_the_same_episodes_with_the_cusum():
    rule = AlarmRule(clear_hours=9, cusum=True, cusum_ref=0.5, cusum_h=2.0, cusum_windows=40)  # longer than the trend
    assert rule.history(HOUR) == 40
    differs = 0
    for seed in range(4):
        for times, scores in (_series(seed), _with_idle_gaps(seed)):
            whole = rule.apply(times, scores, 1.0)
            differs += whole != AlarmRule(clear_hours=9).apply(times, scores, 1.0)
            for cut in range(30, len(times) - 1, 7):
                if np.isnan(scores[cut]):
                    continue
                assert _continued(rule, times, scores, 1.0, cut) == whole, (seed, cut)
    assert differs  # the evidence changed the episodes of these series, so the pieces were put to the test


def test_a_continued_run_reads_as_much_history_as_the_memory_holds():
    rule = AlarmRule(clear_hours=9, cusum=True, cusum_ref=0.5, cusum_h=3.0, cusum_windows=40)
    times = np.arange(120, dtype=np.int64) * HOUR
    scores = np.full(120, 0.2)
    scores[10:] = 0.6  # about 0.1 of evidence a window: raised some 30 windows in, more than the trend's 24
    whole = rule.apply(times, scores, 1.0)
    assert len(whole) == 1 and 38 <= int(np.searchsorted(times, whole[0].start)) <= 42
    for cut in range(20, 60):
        assert _continued(rule, times, scores, 1.0, cut) == whole, cut
