"""explain(): channels by share of the score (the machine's own first, a sensor's overall statistics after its band
out of range), log entries by cross-modal attention."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pdm.detect.rootcause import explain

STEP = 600 * 10**9
CHANNELS = ["temperature.ambient.celsius", "temperature.bearing.celsius", "vibration.de.band_bpfo",
            "vibration.de.rms"]


def _explain(z, logs=None, cross=None):
    c, n = len(CHANNELS), 4
    cross = np.full((c, n + 1), 1.0 / (n + 1)) if cross is None else cross
    return explain(alarm_ns=8 * STEP, channels=CHANNELS, zscores=np.asarray(z, float), spatial=np.eye(c),
                   baseline=np.eye(c), cross=cross, temporal=None, window_start_ns=0, step_ns=STEP, window=8,
                   patch=2, log_entries=logs if logs is not None else pd.DataFrame())


def test_channels_rank_by_their_share_of_the_score_and_the_shares_sum_to_one():
    rc = _explain([0.0, 2.0, 6.0, 1.0])
    # The bearing temperature (z 2) is out of range and follows nothing: before rms, which follows its band.
    assert [c["channel"] for c in rc.channels] == ["vibration.de.band_bpfo", "temperature.bearing.celsius",
                                                   "vibration.de.rms", "temperature.ambient.celsius"]
    assert [c["contribution"] for c in rc.channels[:3]] == [6 / 9, 2 / 9, 1 / 9]
    rc = _explain([0.0, 2.0, 1.5, 1.0])  # the band in range: everything by share
    assert [c["channel"] for c in rc.channels[:3]] == ["temperature.bearing.celsius", "vibration.de.band_bpfo",
                                                       "vibration.de.rms"]
    rc = _explain([0.0, 2.0, 6.0, -1.0])
    assert rc.channels[0]["contribution"] == 0.75 and abs(sum(c["contribution"] for c in rc.channels) - 1) < 1e-9
    assert rc.top_channel == "vibration.de.band_bpfo"


def test_the_ambient_temperature_is_no_part_of_the_score_and_comes_after_the_machines_own_channels():
    rc = _explain([9.0, 1.0, 3.0, 0.5])
    ranked = [c["channel"] for c in rc.channels]
    assert ranked == ["vibration.de.band_bpfo", "vibration.de.rms", "temperature.bearing.celsius",
                      "temperature.ambient.celsius"]  # rms right after the band that explains it
    assert rc.channels[-1]["contribution"] == 0.0 and rc.channels[-1]["zscore"] == 9.0
    assert rc.channels[0]["contribution"] == 3.0 / 4.5


def test_the_machine_score_leaves_out_the_ambient_temperature():
    from pdm.detect.rootcause import environment_mask
    from pdm.detect.stages import ChannelCalibrator

    cal = ChannelCalibrator(top_k=1).fit(np.array([[1.0, 1.0, 1.0, 1.0], [1.2, 1.2, 1.2, 1.2], [0.8, 0.8, 0.8, 0.8]]))
    err = np.array([[9.0, 1.0, 1.0, 1.0], [9.0, np.nan, np.nan, np.nan]])  # a warm day: only ambient is off
    plain = cal.apply(err)
    scored = cal.apply(err, exclude=environment_mask(CHANNELS))
    assert plain[0] > 10 and scored[0] == 0.0
    assert np.isnan(scored[1])  # nothing of the machine itself observed: no score


def test_log_entries_are_weighted_by_the_attention_their_patch_received():
    cross = np.zeros((4, 5))
    cross[:, 2] = 1.0  # every channel attends to the event token of patch 2 (steps 4-5)
    logs = pd.DataFrame({"event_type": ["observation", "inspection"], "message": ["noise", "ok"]},
                        index=pd.to_datetime([4 * STEP + 1, 1 * STEP], unit="ns", utc=True))
    rc = _explain([0.0, 1.0, 3.0, 0.0], logs, cross)
    assert rc.logs[0]["message"] == "noise" and rc.logs[0]["weight"] > 0.99
    assert rc.logs[1]["weight"] == 0.0


def test_a_sensors_overall_statistics_follow_its_band_that_is_out_of_range():
    from pdm.detect.rootcause import explaining_band

    chans = ["vibration.de.crest", "vibration.de.kurtosis", "vibration.de.band_1x", "vibration.de.rms",
             "vibration.nde.crest", "vibration.nde.band_1x", "temperature.bearing.celsius"]
    # A growing 1x tone at the drive end: crest factor and kurtosis fall (large error), 1x and rms rise.
    z = np.array([9.0, 7.0, 3.0, 5.0, 8.0, 1.0, 0.5])
    assert explaining_band(chans, z).tolist() == [2, 2, -1, 2, -1, -1, -1]
    rc = explain(alarm_ns=8 * STEP, channels=chans, zscores=z, spatial=np.eye(7), baseline=np.eye(7),
                 cross=np.full((7, 5), 0.2), temporal=None, window_start_ns=0, step_ns=STEP, window=8, patch=2,
                 log_entries=pd.DataFrame())
    ranked = [ch["channel"] for ch in rc.channels]
    # de's statistics follow its 1x band, which explains their shares with its own (3 + 9 + 7 + 5 of 33.5) and so
    # leads; nde's band is in range (z 1), so its crest factor stays an explanation of its own (8).
    assert ranked == ["vibration.de.band_1x", "vibration.nde.crest", "vibration.de.crest", "vibration.de.kurtosis",
                      "vibration.de.rms"]
    assert rc.channels[0]["contribution"] == pytest.approx(3.0 / 33.5)  # shares are the channel's own, only the order
    # ... and each ranked channel says what ranked it: the band the share it explains, its followers which band.
    assert rc.channels[0]["explained"] == pytest.approx(24.0 / 33.5) and rc.channels[0]["follows"] == ""
    assert [ch["follows"] for ch in rc.channels[2:]] == ["vibration.de.band_1x"] * 3
    assert rc.channels[1]["explained"] == rc.channels[1]["contribution"] == pytest.approx(8.0 / 33.5)
    from pdm.detect.rootcause import rootcause_points

    points = {p["tags"]["rank"]: p["fields"] for p in rootcause_points(rc, "m", "v")}
    assert points["c01"]["explained"] == pytest.approx(24.0 / 33.5) and "follows" not in points["c01"]
    assert points["c03"]["follows"] == "vibration.de.band_1x"
    assert (explaining_band(chans, np.where(np.arange(7) == 2, 1.9, z)) == -1).all()  # below BAND_EXPLAINS: by share


def test_a_defect_line_leads_the_high_frequency_band_and_a_raised_floor_follows_it():
    from pdm.detect.rootcause import explaining_band

    chans = ["vibration.nde.band_hf", "vibration.nde.band_bpfo", "vibration.nde.band_bpfi", "vibration.nde.kurtosis",
             "vibration.de.band_hf", "vibration.de.band_bpfo", "vibration.de.band_bpfi", "vibration.de.rms"]
    # nde: an outer-race defect (BPFO line well above BPFI; impacts ringing raise HF most in z);
    # de: poor lubrication (both envelope bands lifted alike by the HF floor).
    z = np.array([190.0, 110.0, 75.0, 30.0, 5.5, 4.6, 4.5, 3.0])
    assert explaining_band(chans, z).tolist() == [1, -1, 1, 1, -1, 4, 4, 4]
    rc = explain(alarm_ns=8 * STEP, channels=chans[:4], zscores=z[:4], spatial=np.eye(4), baseline=np.eye(4),
                 cross=np.full((4, 5), 0.2), temporal=None, window_start_ns=0, step_ns=STEP, window=8, patch=2,
                 log_entries=pd.DataFrame())
    assert rc.top_channel == "vibration.nde.band_bpfo"
    # Envelope bands alike but above the HF band: still a line (impacts lift both races' bands), not a floor.
    assert explaining_band(chans[4:7], np.array([9.4, 26.6, 23.3])).tolist() == [1, -1, 1]
    # Below BAND_EXPLAINS nothing follows anything: ranked by share.
    assert (explaining_band(chans, np.full(8, 1.5)) == -1).all()
    # One envelope band out of range beside one in range: a line.
    assert explaining_band(chans[:3], np.array([6.0, 4.0, 1.0])).tolist() == [1, -1, -1]


def test_the_bands_own_amplitudes_tell_a_raised_floor_from_a_defect_line_where_z_scores_mislead():
    from pdm.detect.rootcause import LINE_SPREAD, explaining_band

    chans = ["vibration.nde.band_hf", "vibration.nde.band_bpfo", "vibration.nde.band_bpfi", "vibration.nde.kurtosis"]
    # Poor lubrication (dev seed 5, gbx-003, its first alarm): the BPFO band's healthy error is narrower, so the
    # same lift reads as z 23.5 against 15.7 ("not alike": a line by z-scores alone). In log amplitude both rose
    # by about 1.0: a raised floor, which follows the high-frequency band.
    z = np.array([24.2, 23.5, 15.7, 5.6])
    lifted = np.array([0.54, 1.03, 1.00, 0.14])
    assert explaining_band(chans, z).tolist() == [1, -1, 1, 1]
    assert explaining_band(chans, z, lifted).tolist() == [-1, 0, 0, 0]
    # An outer-race defect whose envelope bands' z-scores came out alike under a higher HF band (a "floor" by
    # z-scores alone): its own race's band rose twice as much in amplitude (ln 2 more): the line leads.
    z = np.array([113.0, 100.0, 94.0, 143.0])
    line = np.array([1.2, 1.1 + LINE_SPREAD + 0.05, 1.1, 4.0])
    assert explaining_band(chans, z).tolist() == [-1, 0, 0, 0]
    assert explaining_band(chans, z, line).tolist() == [1, -1, 1, 1]
    # The band that rose most in amplitude leads, whichever z-score is larger.
    assert explaining_band(chans, z, np.array([1.2, 0.5, 1.1 + LINE_SPREAD, 4.0])).tolist() == [2, 2, -1, 2]
    # One band fell: not a floor, whatever the z-scores.
    assert explaining_band(chans, np.array([30.0, 20.0, 19.0, 5.0]),
                           np.array([0.6, 0.5, -0.05, 0.1])).tolist() == [1, -1, 1, 1]
    # Both fell (a machine quieter than the model expected, held-back gbx-013 five days before its fault's onset):
    # no bearing sign, neither floor nor line; each band by its own share.
    assert explaining_band(chans, np.array([57.3, 35.6, 29.6, 3.5]),
                           np.array([-0.35, -1.17, -1.06, 0.08])).tolist() == [-1, -1, -1, 0]
    # A band's change unknown (NaN): by z-scores, as without residuals.
    assert explaining_band(chans, z, np.array([1.2, np.nan, 1.1, 4.0])).tolist() == [-1, 0, 0, 0]


def test_the_sign_of_the_shape_statistics_names_a_band_that_is_barely_out_of_range():
    from pdm.detect.rootcause import explaining_band

    chans = ["vibration.de.crest", "vibration.de.kurtosis", "vibration.de.band_1x", "vibration.de.band_2x",
             "vibration.de.band_hf", "vibration.de.rms", "temperature.bearing.celsius"]
    # A 1x tone grew a little (z 1.2, its healthy error is wide); kurtosis and crest fell far (steady when healthy).
    z = np.array([6.0, 8.0, 1.2, 0.3, 0.8, 1.0, 2.5])
    fell = np.array([-0.4, -0.9, 0.3, -0.1, 0.2, 0.2, 0.1])
    assert (explaining_band(chans, z) == -1).all()  # without signs: nothing to go by
    assert explaining_band(chans, z, fell).tolist() == [2, 2, -1, -1, -1, 2, -1]
    rc = explain(alarm_ns=8 * STEP, channels=chans, zscores=z, spatial=np.eye(7), baseline=np.eye(7),
                 cross=np.full((7, 5), 0.2), temporal=None, window_start_ns=0, step_ns=STEP, window=8, patch=2,
                 log_entries=pd.DataFrame(), residuals=fell)
    # The tone explains, with the shares of what it explains (1.2 + 6 + 8 + 1 against the bearing temperature's
    # 2.5); the statistics follow the explanations.
    assert [ch["channel"] for ch in rc.channels][:4] == ["vibration.de.band_1x", "temperature.bearing.celsius",
                                                         "vibration.de.kurtosis", "vibration.de.crest"]
    # Risen shape statistics are impacts: the high-frequency band (the only one of those that rose) leads.
    rose = -fell
    rose[4] = 0.2
    assert explaining_band(chans, z, rose).tolist() == [4, 4, -1, -1, -1, 4, -1]
    # Statistics that disagree in sign, or no band moved the right way: no band is named.
    mixed = fell.copy()
    mixed[0] = 0.4
    assert (explaining_band(chans, z, mixed) == -1).all()
    assert (explaining_band(chans, z, np.where(np.arange(7) < 4, -0.5, 0.1)) == -1).all()
    # Rises are read against the sensor's bands together: all read below the reconstruction (a lower level),
    # the 1x band least so: the tone rose against the rest.
    offset = np.array([-0.6, -0.5, -0.16, -0.22, -0.2, -0.2, 0.0])
    assert explaining_band(chans, z, offset).tolist() == [2, 2, -1, -1, -1, 2, -1]
    # A band out of range leads as before, whatever the signs.
    z2 = z.copy()
    z2[4] = 3.0
    assert explaining_band(chans, z2, fell).tolist() == [4, 4, -1, -1, -1, 4, -1]
