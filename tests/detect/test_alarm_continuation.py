"""The alarm rule continued from earlier scores gives the episodes of one run over the whole series."""

from __future__ import annotations

import numpy as np

from pdm.detect.stages import AlarmRule

HOUR = 3_600 * 10**9


def _series(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 0.25, n)
    for lo in rng.integers(0, n - 40, 5):  # episodes of rising scores, some long, some short
        base[lo : lo + rng.integers(3, 40)] *= rng.uniform(2, 8)
    return np.arange(n, dtype=np.int64) * HOUR, base


def _continued(rule: AlarmRule, times, scores, threshold, cut: int):
    """Episodes from a run over [0, cut) then one over [cut, n) that reads back the first run's state."""
    first = rule.apply(times[:cut], scores[:cut], threshold)
    still_open = [a for a in first if a.end is None or a.end >= times[cut]]
    need = rule.history(HOUR)
    open_at = int(np.searchsorted(times, still_open[-1].start)) if still_open else None
    keep = max(0, (open_at if open_at is not None else cut) - need)
    second = rule.apply(times[keep:], scores[keep:], threshold, begin=cut - keep,
                        open_at=None if open_at is None else open_at - keep)
    done = [a for a in first if a.end is not None and a.end < times[cut]]
    return done + second


def test_scoring_in_pieces_gives_the_same_episodes_as_scoring_at_once():
    rule = AlarmRule(clear_hours=9)  # hourly windows: clearing by hours is the binding rule
    for seed in range(4):
        times, scores = _series(seed)
        whole = rule.apply(times, scores, 1.0)
        assert len(whole) >= 2
        for cut in range(30, len(times) - 1, 7):
            assert _continued(rule, times, scores, 1.0, cut) == whole, (seed, cut)


def test_an_episode_open_at_the_cut_keeps_its_start_severity_and_peak():
    rule = AlarmRule(clear_hours=9)
    times = np.arange(100, dtype=np.int64) * HOUR
    scores = np.full(100, 0.5)
    scores[40:] = np.linspace(1.2, 5.0, 60)  # rises until the end: one episode, never cleared
    whole = rule.apply(times, scores, 1.0)
    assert len(whole) == 1 and whole[0].end is None and whole[0].start == times[42]
    pieces = _continued(rule, times, scores, 1.0, 70)
    assert pieces == whole
    assert pieces[0].severity == "critical" and pieces[0].peak_ratio == 5.0


def test_no_new_scores_continue_nothing():
    times, scores = _series(1, 50)
    assert AlarmRule().apply(times, scores, 1.0, begin=50) == []


def _with_idle_gaps(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Scores with NaN runs where the machine stood still (nights, weekends)."""
    times, scores = _series(seed, n)
    rng = np.random.default_rng(seed + 100)
    for lo in rng.integers(0, n - 30, 12):
        scores[lo : lo + rng.integers(2, 30)] = np.nan
    return times, scores


def test_idle_windows_are_skipped_not_read_as_healthy():
    times = np.arange(80, dtype=np.int64) * HOUR
    scores = np.full(80, 0.5)
    scores[20:70] = 2.0
    scores[35:60] = np.nan  # a weekend stop in the middle of a rising fault
    alarms = AlarmRule(k=3, n=5, clear_n=6, clear_hours=0).apply(times, scores, 1.0)
    assert len(alarms) == 1 and alarms[0].start == times[22] and alarms[0].end == times[75]
    # Read as zeros, the same stop clears the episode and raises a second one after it.
    zeros = np.nan_to_num(scores, nan=0.0)
    assert len(AlarmRule(k=3, n=5, clear_n=6, clear_hours=0).apply(times, zeros, 1.0)) == 2


def test_idle_windows_give_the_episodes_of_the_scored_windows_alone():
    rule = AlarmRule(clear_hours=9)
    for seed in range(4):
        times, scores = _with_idle_gaps(seed)
        ok = np.isfinite(scores)
        assert rule.apply(times, scores, 1.0) == rule.apply(times[ok], scores[ok], 1.0)


def test_scoring_in_pieces_with_idle_windows_equals_scoring_at_once():
    """As the scorer does it: earlier NaN scores are not stored, so the history comes back without them."""
    rule = AlarmRule(clear_hours=9)
    for seed in range(3):
        times, scores = _with_idle_gaps(seed)
        whole = rule.apply(times, scores, 1.0)
        for cut in range(30, len(times) - 1, 11):
            first = rule.apply(times[:cut], scores[:cut], 1.0)
            done = [a for a in first if a.end is not None and a.end < times[cut]]
            still_open = [a for a in first if a.end is None or a.end >= times[cut]]
            prior = np.isfinite(scores[:cut])
            pt, ps = times[:cut][prior], scores[:cut][prior]
            open_at = int(np.searchsorted(pt, still_open[-1].start)) if still_open else None
            t = np.concatenate([pt, times[cut:]])
            s = np.concatenate([ps, scores[cut:]])
            second = rule.apply(t, s, 1.0, begin=len(pt), open_at=open_at)
            assert done + second == whole, (seed, cut)


def test_a_work_order_closes_the_open_episode_and_the_next_counts_only_windows_after_it():
    rule = AlarmRule(k=3, n=5, clear_hours=0)
    times = np.arange(100, dtype=np.int64) * HOUR
    scores = np.full(100, 0.5)
    scores[20:80] = 2.0  # one fault that a repair at 50.5 h does not fix: it stays above threshold
    order = times[50] + HOUR // 2
    plain = rule.apply(times, scores, 1.0)
    assert len(plain) == 1 and plain[0].start == times[22] and plain[0].end is not None and plain[0].end > times[80]
    first, second = rule.apply(times, scores, 1.0, resets=np.array([order]))
    assert first.start == times[22] and first.end == order and first.by_work_order
    # k of n counts the windows after the order only: 51, 52, 53 (not 49 and 50 before it)
    assert second.start == times[53] and not second.by_work_order and second.end is not None
    # an order while no alarm is open, and a rule that ignores orders, change nothing
    assert rule.apply(times, scores, 1.0, resets=np.array([times[5]])) == plain
    assert AlarmRule(k=3, n=5, clear_hours=0, close_at_work_order=False).apply(
        times, scores, 1.0, resets=np.array([order])) == plain


def test_a_work_order_after_the_last_window_closes_the_episode_open_at_the_end():
    rule = AlarmRule(k=3, n=5)
    times = np.arange(60, dtype=np.int64) * HOUR
    scores = np.full(60, 0.5)
    scores[40:] = 3.0
    (open_,) = rule.apply(times, scores, 1.0)
    assert open_.end is None
    (closed,) = rule.apply(times, scores, 1.0, resets=np.array([times[-1] + 3 * HOUR]))
    assert closed.start == open_.start and closed.end == times[-1] + 3 * HOUR and closed.by_work_order
    # a window ending at the order's time is before it: the order closes the episode it raised
    (at,) = rule.apply(times, scores, 1.0, resets=np.array([times[-1]]))
    assert at.end == times[-1] and at.by_work_order


def test_scoring_in_pieces_with_work_orders_equals_scoring_at_once():
    """Orders between two runs close the episode the first left open, whether the first run saw them or not."""
    rule = AlarmRule(clear_hours=9)
    for seed in range(3):
        times, scores = _with_idle_gaps(seed)
        rng = np.random.default_rng(seed + 7)
        plain = rule.apply(times, scores, 1.0)
        inside = [(a.start + (a.end or a.start + 4 * HOUR)) // 2 for a in plain]  # orders in the middle of episodes
        resets = np.sort(np.concatenate([rng.integers(20, len(times) - 5, 4) * HOUR, inside])) + HOUR // 3
        whole = rule.apply(times, scores, 1.0, resets=resets)
        assert any(a.by_work_order for a in whole)
        after = {int(np.searchsorted(times, r)) for r in resets}  # the order falls between the two runs
        for cut in sorted(set(range(30, len(times) - 1, 5)) | after):
            for seen in (resets[resets < times[cut - 1] + 1], resets[resets < times[cut]]):
                first = rule.apply(times[:cut], scores[:cut], 1.0, resets=seen)
                done = [a for a in first if a.end is not None and a.end < times[cut]]
                still_open = [a for a in first if a.end is None or a.end >= times[cut]]
                prior = np.isfinite(scores[:cut])
                pt, ps = times[:cut][prior], scores[:cut][prior]
                open_at = int(np.searchsorted(pt, still_open[-1].start)) if still_open else None
                keep = max(0, (open_at if open_at is not None else len(pt)) - rule.history(HOUR))
                t = np.concatenate([pt[keep:], times[cut:]])
                s = np.concatenate([ps[keep:], scores[cut:]])
                second = rule.apply(t, s, 1.0, begin=len(pt) - keep,
                                    open_at=None if open_at is None else open_at - keep,
                                    resets=resets[resets >= t[0]])
                assert done + second == whole, (seed, cut, len(seen))


def test_a_sustained_grading_continues_as_one_run_grades():
    rule = AlarmRule(clear_hours=9, sustain_windows=12, sustain_ratio=4.0, critical_ttf_h=None)
    graded = []
    for seed in range(3):
        times, scores = _series(seed)
        whole = rule.apply(times, scores, 1.0)
        graded += ["critical" in a.reached for a in whole]
        for cut in range(30, len(times) - 1, 11):
            assert _continued(rule, times, scores, 1.0, cut) == whole, (seed, cut)
    assert any(graded) and not all(graded)  # both kinds of episode were continued
