"""A threshold fitted on few quiet healthy scores is raised to the floor, and says so."""

from __future__ import annotations

import numpy as np

from pdm.detect.stages import POTThreshold


def test_a_low_fitted_threshold_is_raised_to_the_floor_and_noted():
    quiet = np.random.default_rng(0).uniform(0.0, 1.0, 30)
    plain = POTThreshold().fit(quiet)
    floored = POTThreshold(floor=3.0).fit(quiet)
    assert plain.threshold < 1.0 and floored.threshold == 3.0
    assert "raised to the floor 3" in floored.note and "quantile" in floored.note
    assert POTThreshold.from_dict(floored.to_dict()).threshold == 3.0


def test_a_threshold_above_the_floor_is_kept():
    loud = np.random.default_rng(1).uniform(0.0, 10.0, 30)
    assert POTThreshold(floor=3.0).fit(loud).threshold == POTThreshold().fit(loud).threshold > 3.0
