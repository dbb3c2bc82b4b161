"""benchmarks/outside_envelope.py: a series scored with the excursion stage, taken back and judged under another rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.outside_envelope import calibration_z, machine_score, rescored, stages_of
from pdm.detect.excursion import IDLE, INSIDE, OUT, ExcursionBaseline
from pdm.evaluate.bench_sim import (
    SERIES_NEW_REGIME,
    SERIES_OUTSIDE,
    SERIES_SCORED,
    _Series,
    write_stages,
)

H = 3_600_000_000_000
STRIDE, WINDOW = 2 * H, 6 * H
CHANNELS = ["vibration.de.rms", "vibration.de.band_1x", "temperature.bearing.celsius"]


def _series(rule: ExcursionBaseline) -> tuple[_Series, np.ndarray]:
    """A machine that leaves its envelope for 60 windows (one stop inside), a fault growing through it; the series
    as the harness writes it with ``rule`` (state 3 windows re-levelled), and its calibration z-scores."""
    rng = np.random.default_rng(7)
    kind = np.array([INSIDE] * 10 + [OUT] * 20 + [IDLE] * 3 + [OUT] * 40 + [INSIDE] * 5)
    n = len(kind)
    times = (np.arange(n, dtype=np.int64) + 1) * STRIDE
    raw = rng.normal(0.0, 1.0, (n, len(CHANNELS)))
    raw[kind == OUT] += [6.0, 3.0, 0.0]  # the model extrapolating
    raw[15:73, 1] += np.linspace(0.0, 25.0, 58)  # a fault growing from the excursion's first days on
    raw[kind == IDLE] = np.nan
    got = rule.apply(raw, kind, times, STRIDE, window_ns=WINDOW)
    state = np.where(kind == INSIDE, SERIES_SCORED, np.where(got.scored, SERIES_NEW_REGIME, SERIES_OUTSIDE))
    state = np.where(kind == IDLE, np.where(np.arange(n) < 10, SERIES_SCORED, SERIES_OUTSIDE), state)
    scores = machine_score(got.z, CHANNELS)
    scores[state == SERIES_OUTSIDE] = np.nan
    return _Series("pump-001", times, scores, got.z, 5.0, CHANNELS, np.zeros(0, np.int64), state.astype(np.int8)), raw


@pytest.mark.parametrize("detrend", [False, True])
def test_a_staged_series_is_taken_back_to_the_calibrations_z_and_scored_again_under_either_spread(tmp_path: Path,
                                                                                                  detrend: bool) -> None:
    rule = ExcursionBaseline(detrend=detrend)
    s, raw = _series(rule)
    assert (np.asarray(s.state) == SERIES_NEW_REGIME).sum() > 20
    write_stages(tmp_path, WINDOW, STRIDE)
    stages = json.loads((tmp_path / "stages.json").read_text())
    assert stages["window_ns"] == WINDOW and stages["excursion"]["detrend"] is True  # the product's default
    stages["excursion"]["detrend"] = detrend  # as this series was written
    assert np.allclose(calibration_z(s, stages), raw, equal_nan=True)
    same = rescored(s, f"spread about its {'trend' if detrend else 'median'}", 24, stages)
    assert np.allclose(same.scores, s.scores, equal_nan=True)
    other = rescored(s, f"spread about its {'median' if detrend else 'trend'}", 24, stages)
    scored = np.asarray(s.state) == SERIES_NEW_REGIME
    # the fault's rise through the baseline read as noise (median) scores its growth lower than about its trend
    lower, higher = (other.scores, s.scores) if detrend else (s.scores, other.scores)
    assert (higher[scored] >= lower[scored] - 1e-9).all() and (higher[scored] > 2 * lower[scored]).mean() > 0.5
    # settings that do not give the run's windows again are refused rather than judged wrongly
    with pytest.raises(ValueError, match="other settings"):
        calibration_z(s, {**stages, "excursion": {**stages["excursion"], "hours": 24.0}})


def test_a_series_written_before_stages_json_reads_its_windows_from_the_results_file(tmp_path: Path) -> None:
    folder = tmp_path / "sim_product_x_series"
    folder.mkdir()
    (tmp_path / "sim_product_x.json").write_text(json.dumps({"config": {"step": "10min", "window": 144, "stride": 12}}))
    got = stages_of(folder)
    assert got["excursion"] == {"detrend": False}
    assert got["window_ns"] == 144 * 600 * 10**9 and got["stride_ns"] == 12 * 600 * 10**9
