"""Detection stages on hand-made series with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import genpareto

from pdm.detect import AlarmRule, ChannelCalibrator, POTThreshold
from pdm.detect.stages import tail_scale

HOUR = 3_600 * 10**9


def test_the_calibrator_scores_a_step_in_one_channel_and_ignores_a_quiet_one():
    rng = np.random.default_rng(0)
    healthy = rng.normal(1.0, 0.1, (500, 5))
    cal = ChannelCalibrator(top_k=1).fit(healthy)
    test = rng.normal(1.0, 0.1, (10, 5))
    test[5:, 2] += 2.0  # a step of 20 healthy standard deviations in channel 2
    scores = cal.apply(test)
    assert scores[:5].max() < 3 and scores[5:].min() > 10
    assert np.argmax(cal.channel_scores(test)[7]) == 2


def test_calibration_survives_unobserved_channels():
    cal = ChannelCalibrator().fit(np.array([[1.0, np.nan], [1.2, np.nan], [0.8, np.nan]]))
    assert np.isfinite(cal.apply(np.array([[1.0, np.nan]]))).all()


def test_a_window_with_no_counted_channel_has_no_score_rather_than_zero():
    cal = ChannelCalibrator().fit(np.array([[1.0, 2.0], [1.2, 2.2], [0.8, 1.8]]))
    scores = cal.apply(np.array([[1.0, 2.0], [np.nan, np.nan], [np.nan, 9.0]]))
    assert np.isfinite(scores[0]) and np.isnan(scores[1]) and scores[2] > 10


def test_pot_threshold_matches_the_known_tail_of_a_generalised_pareto_sample():
    shape, scale, risk = 0.1, 1.0, 1e-3
    scores = genpareto.rvs(shape, scale=scale, size=20_000, random_state=1)
    th = POTThreshold(risk=risk, level=0.9).fit(scores)
    exact = genpareto.ppf(1 - risk, shape, scale=scale)
    assert th.method == "pot"
    assert th.threshold == pytest.approx(exact, rel=0.1)
    assert np.mean(th.apply(genpareto.rvs(shape, scale=scale, size=200_000, random_state=2))) == pytest.approx(risk, rel=0.3)


def test_too_few_healthy_scores_fall_back_to_a_quantile_and_say_so():
    th = POTThreshold(min_scores=100).fit(np.arange(50, dtype=float))
    assert th.method == "quantile" and "only 50 healthy scores" in th.note


def test_stages_round_trip_through_dicts():
    cal = ChannelCalibrator().fit(np.random.default_rng(0).normal(size=(50, 3)))
    assert ChannelCalibrator.from_dict(cal.to_dict()).to_dict() == cal.to_dict()
    th = POTThreshold().fit(np.random.default_rng(0).exponential(size=1000))
    assert POTThreshold.from_dict(th.to_dict()).threshold == th.threshold
    rule = AlarmRule(k=2, n=4)
    assert AlarmRule.from_dict(rule.to_dict()) == rule


def test_a_step_change_raises_an_alarm_at_the_kth_window_above_threshold():
    times = np.arange(40) * HOUR
    scores = np.full(40, 0.5)
    scores[20:] = 2.0  # step at window 20
    alarms = AlarmRule(k=3, n=5).apply(times, scores, threshold=1.0)
    assert len(alarms) == 1
    assert alarms[0].start == times[22]  # the 3rd window above threshold
    assert alarms[0].end is None


def test_a_single_spike_does_not_alarm_and_an_episode_clears_with_hysteresis():
    times = np.arange(60) * HOUR
    scores = np.full(60, 0.5)
    scores[5] = 10.0  # one spike
    scores[20:30] = 2.0
    scores[30:33] = 0.9  # above the hysteresis level: stays open
    alarms = AlarmRule(k=3, n=5, clear_n=6, clear_hours=0, hysteresis=0.8).apply(times, scores, threshold=1.0)
    assert len(alarms) == 1
    assert alarms[0].start == times[22]
    assert alarms[0].end == times[38]  # six windows below 0.8 after index 33


def test_an_episode_clears_after_the_same_hours_below_whatever_the_stride():
    rule = AlarmRule(k=3, n=5, clear_n=6, clear_hours=24, hysteresis=0.8)
    for stride_h in (2, 4):
        times = np.arange(80) * stride_h * HOUR
        scores = np.full(80, 0.5)
        scores[10:20] = 2.0  # the last window at or above the hysteresis level is index 19
        alarms = rule.apply(times, scores, threshold=1.0)
        assert len(alarms) == 1 and alarms[0].start == times[12]
        assert alarms[0].end == times[19] + 24 * HOUR  # 12 windows below at a 2 h stride, 6 at 4 h
    # A stop (no scores) counts as time, but clearing still takes clear_n scored windows below.
    times = np.arange(80) * 2 * HOUR
    scores = np.full(80, 0.5)
    scores[10:20] = 2.0
    scores[20:40] = np.nan
    alarms = rule.apply(times, scores, threshold=1.0)
    assert alarms[0].end == times[45]
    # continued runs read back enough windows to find the last high one
    assert AlarmRule(trend_windows=4, clear_hours=24).history(2 * HOUR) == 13 and AlarmRule().history(HOUR) == 49


def test_a_score_quiet_for_a_day_and_a_half_between_two_highs_is_one_episode_by_default():
    times = np.arange(100) * 2 * HOUR
    scores = np.full(100, 0.5)
    scores[10:20] = 2.0
    scores[38:48] = 2.0  # back above after 18 windows (36 h) below the hysteresis level
    assert len(AlarmRule(clear_hours=24).apply(times, scores, threshold=1.0)) == 2  # chatters: raised twice
    alarms = AlarmRule().apply(times, scores, threshold=1.0)
    assert len(alarms) == 1 and alarms[0].start == times[12] and alarms[0].end == times[47] + 48 * HOUR


def test_a_rising_score_is_graded_critical_with_a_time_to_failure():
    times = np.arange(48) * HOUR
    ratio = np.exp(np.linspace(-1, np.log(3.2), 48))  # exponential growth, as bearing wear
    alarms = AlarmRule().apply(times, ratio, threshold=1.0)
    assert alarms and alarms[-1].severity == "critical"
    assert alarms[-1].ttf_hours is not None and 0 < alarms[-1].ttf_hours < 72


def test_tail_scale_divides_each_channel_by_its_own_healthy_tail() -> None:
    """A heavy-tailed channel (rare z of 40 in healthy windows) no longer sets the threshold that a light-tailed
    channel's fault must beat; a channel's scale is never below 1, and one never seen keeps 1."""
    rng = np.random.default_rng(3)
    light = rng.normal(0.0, 0.74, 1000)  # IQR-normalised Gaussian: q0.95 about 1.2
    heavy = rng.normal(0.0, 0.74, 1000)
    heavy[::50] = 40.0  # 2 % of healthy windows
    tiny = rng.normal(0.0, 0.1, 1000)
    z = np.column_stack([light, heavy, tiny, np.full(1000, np.nan)])
    s = tail_scale(z, 0.99)
    assert s[0] == pytest.approx(np.quantile(light, 0.99))
    assert s[1] == pytest.approx(40.0)  # the tail is the channel's rare high values
    assert s[2] == 1.0 and s[3] == 1.0  # never amplified; unseen: as is
    errors = z * 2.0 + 5.0  # errors whose median 5 and IQR 2 give back about z
    cal = ChannelCalibrator().fit(errors)
    plain = cal.score_z(cal.channel_scores(errors))
    tailed = ChannelCalibrator().fit(errors).fit_tail(cal.channel_scores(errors), 0.99)
    healthy = tailed.score_z(tailed.channel_scores(errors))
    # a fault of 8 z on the light channel: under the plain score's healthy 99.5 % it hides, scaled it stands out
    fault = np.array([[5.0 + 2.0 * 8.0, 5.0, 5.0, np.nan]])
    assert cal.apply(fault)[0] < np.quantile(plain, 0.995)
    assert tailed.apply(fault)[0] > 2 * np.quantile(healthy, 0.995)
    # stored with the calibration; one stored before the tail reads as before (no tail)
    again = ChannelCalibrator.from_dict(tailed.to_dict())
    assert np.allclose(again.scale, tailed.scale) and np.allclose(again.apply(fault), tailed.apply(fault))
    old = {k: v for k, v in cal.to_dict().items() if k != "tail"}
    assert "tail" not in cal.to_dict() and np.allclose(ChannelCalibrator.from_dict(old).scale, cal.iqr)
    with pytest.raises(ValueError, match="tail quantile"):
        tail_scale(z, 1.0)


def test_ttf_track_is_what_each_window_of_an_open_episode_showed():
    times = np.arange(48) * HOUR
    ratio = np.exp(np.linspace(-1, np.log(3.2), 48))
    rule = AlarmRule()
    alarms = rule.apply(times, ratio, threshold=1.0)
    track = rule.ttf_track(times, ratio, threshold=1.0)
    raised = int(np.searchsorted(times, alarms[0].start))
    assert np.isnan(track[:raised]).all() and track[raised] == np.inf  # no estimate at the raising window
    assert track[-1] == pytest.approx(alarms[-1].ttf_hours)
    assert np.isfinite(track[raised + 3 :]).all() and np.all(np.diff(track[raised + 3 :]) < 0)  # nearer each hour
    # A window that was not scored shows nothing and moves nothing else; a work order ends the episode.
    gap = ratio.copy()
    gap[40] = np.nan
    held = rule.ttf_track(times, gap, threshold=1.0)
    assert np.isnan(held[40]) and held[-1] == pytest.approx(rule.apply(times, gap, 1.0)[-1].ttf_hours)
    cut = rule.ttf_track(times, ratio, threshold=1.0, resets=np.array([times[30] + HOUR // 2]))
    assert np.isfinite(cut[30]) and np.isnan(cut[31:33]).all() and cut[33] == np.inf  # raised anew: 3 of 5 after it


def test_an_episode_records_when_it_reached_each_severity():
    """Flat at 1.2 x threshold for a day, then 2 x, then 4 x: watch when raised (3 of 5), warning at the
    first window at 2 x; critical by default once 2 x has held for half of the last 12 windows (the median
    of six at 1.2 and six at 2.0 is 1.6), graded by the
    peak (``sustain_windows=0``) at the first window at 4 x (a flat score has no rising trend to hurry it)."""
    times = np.arange(80) * 2 * HOUR
    ratio = np.full(80, 0.5)
    ratio[10:30], ratio[30:50], ratio[50:60] = 1.2, 2.0, 4.0
    (alarm,) = AlarmRule().apply(times, ratio, threshold=1.0)
    assert alarm.reached == {"watch": times[12], "warning": times[30], "critical": times[35]}
    assert alarm.severity == "critical"
    rule = AlarmRule(sustain_windows=0, critical_ttf_h=None)
    (alarm,) = rule.apply(times, ratio, threshold=1.0)
    assert alarm.reached == {"watch": times[12], "warning": times[30], "critical": times[50]}
    # a window that raises an episode already high is graded at once, every level below at the same window
    jump = np.full(40, 0.5)
    jump[10:20] = 5.0
    (high,) = rule.apply(times[:40], jump, threshold=1.0)
    assert high.reached == dict.fromkeys(("watch", "warning", "critical"), times[12])
    # below the warning level throughout: watch only
    low = np.where(ratio > 1, 1.3, 0.5)
    (quiet,) = rule.apply(times, low, threshold=1.0)
    assert quiet.reached == {"watch": times[12]} and quiet.severity == "watch"


def test_a_sustained_score_grades_critical_and_a_spike_does_not():
    """With ``sustain_windows``, critical needs the median of the last windows at ``sustain_ratio`` or more:
    a fault's score that stays up turns critical after half of them; a burst of spikes, however high, does not."""
    rule = AlarmRule()  # sustain_windows=12, sustain_ratio=1.5
    times = np.arange(120) * 2 * HOUR
    fault = np.full(120, 0.5)
    fault[20:80] = 2.0
    (alarm,) = rule.apply(times, fault, threshold=1.0)
    assert alarm.reached == {"watch": times[22], "warning": times[22], "critical": times[26]}  # 7 of 12 at 2.0
    spikes = np.full(120, 0.5)
    spikes[20:25] = [9.0, 0.5, 9.0, 9.0, 0.5]  # 3 of 5 raise; peak 9, but never half the day
    (burst,) = rule.apply(times, spikes, threshold=1.0)
    assert burst.severity == "warning" and "critical" not in burst.reached
    assert AlarmRule(sustain_windows=0).apply(times, spikes, threshold=1.0)[0].severity == "critical"  # by the peak
    assert rule.history(2 * HOUR) >= 12
