"""Robust scaling of a machine's channels: temperatures as their rise over ambient."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pdm.features.windows import RobustScaler, ambient_channel

AMB, BRG, WND = "temperature.ambient.celsius", "temperature.bearing.celsius", "temperature.winding.celsius"
RMS = "vibration.de.rms"
CHANNELS = [AMB, BRG, WND, RMS]


def plant(n: int = 400, warmer: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A machine whose temperatures ride on the ambient one: winter (warmer=0) or a warmer season."""
    rng = np.random.default_rng(seed)
    load = rng.uniform(0.3, 1.0, n)
    amb = 12 + warmer + 3 * np.sin(np.arange(n) / 20) + rng.normal(0, 0.2, n)
    return pd.DataFrame({AMB: amb, BRG: amb + 25 * load + rng.normal(0, 0.5, n),
                         WND: amb + 40 * load + rng.normal(0, 0.5, n), RMS: 2 + load + rng.normal(0, 0.1, n)})


def test_the_ambient_channel_is_found_by_name():
    assert ambient_channel(CHANNELS) == AMB
    assert ambient_channel([BRG, RMS]) is None


def test_a_warmer_season_moves_the_machine_temperatures_only_when_read_as_measured():
    winter, spring = plant(), plant(warmer=5.0)
    rise = RobustScaler(CHANNELS).fit(winter, rise_over=ambient_channel(CHANNELS))
    raw = RobustScaler(CHANNELS).fit(winter)
    assert rise.rise_over == AMB and raw.rise_over is None
    for s, moved in ((rise, False), (raw, True)):
        shift = np.median(s.transform(spring) - s.transform(winter), axis=0)
        assert shift[0] > 0.5  # the ambient channel itself still shows the season
        assert (abs(shift[1]) > 0.3) == moved and (abs(shift[2]) > 0.3) == moved, (s.rise_over, shift)
        assert abs(shift[3]) < 1e-9  # vibration untouched
    # Rise over ambient is the machine's own heating: 0 at no load, so its median is what load makes.
    assert abs(rise.median[2] - np.median(plant()[WND] - plant()[AMB])) < 1e-9


def test_a_missing_ambient_reading_masks_the_rise_at_that_step_only():
    frame = plant()
    s = RobustScaler(CHANNELS).fit(frame, rise_over=AMB)
    frame.loc[[5, 6], AMB] = np.nan
    x = s.transform(frame)
    assert np.isnan(x[[5, 6], :3]).all()  # no ambient, no rise: masked, not filled
    assert np.isfinite(x[[5, 6], 3]).all() and np.isfinite(x[[4, 7]]).all()


def test_a_machine_without_an_ambient_reading_keeps_its_temperatures_as_measured_and_says_so():
    frame = plant()
    frame.loc[frame.index[:300], AMB] = np.nan  # observed on a quarter of the steps
    s = RobustScaler(CHANNELS).fit(frame, rise_over=AMB)
    assert s.rise_over is None
    assert any("rise over ambient" in p for p in s.problems)
    assert np.isfinite(s.transform(frame)[:, 1:]).all()


def test_the_choice_travels_with_the_scaler_and_older_scalers_read_as_measured():
    winter = plant()
    s = RobustScaler(CHANNELS).fit(winter, rise_over=AMB)
    back = RobustScaler.from_dict(s.to_dict())
    assert back.rise_over == AMB
    np.testing.assert_array_equal(back.transform(winter), s.transform(winter))
    old = RobustScaler(CHANNELS).fit(winter).to_dict()
    assert "rise_over" not in old and RobustScaler.from_dict(old).rise_over is None
