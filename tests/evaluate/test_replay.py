"""The replay trains, scores forward day by day with the model of the moment, retrains, and evaluates."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from pdm.evaluate.replay import ReplayConfig, replay
from pdm.store.embedded import EmbeddedStore
from sensors_sim.config import fleet_config
from sensors_sim.run import backfill


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "s.duckdb"
    store = EmbeddedStore(path)
    res = backfill(store, fleet_config(machines=2, seed=11), 8, progress=False)
    return store, res.start


def test_replay_scores_each_step_with_the_model_of_the_moment(plant, tmp_path):
    store, t0 = plant
    lines: list[str] = []
    # 2024-01-01 is a Monday: both trainings end on a weekday (calibration windows need a running machine).
    # The range ends on day 7 (a Sunday, 00:00).
    cfg = ReplayConfig(initial="3D", step="1D", retrain_every="2D", window=72, stride=24, d_model=32, layers=1,
                       epochs=1)
    rep = replay(store, tmp_path / "models", t0, t0 + pd.Timedelta("7D"), config=cfg, progress=lines.append)
    assert [s["from"] for s in rep.steps] == [t0 + pd.Timedelta(days=d) for d in (3, 4, 5, 6)]
    assert len(rep.trainings) == 2 and len(set(rep.versions)) == 2  # initial, then day 5
    v = rep.versions
    assert [s["version"] for s in rep.steps] == [v[0], v[0], v[1], v[1]]
    assert pd.Timestamp(rep.trainings[1]["to"]) == t0 + pd.Timedelta("5D")
    assert all(s["windows"] > 0 for s in rep.steps)
    scores = store.read("pdm_score")
    by_version = scores.groupby("model_version").size()
    assert set(by_version.index) == set(rep.versions)
    # Each version scored only its own steps.
    late = scores[scores["model_version"] == v[1]]
    assert late.index.min() >= t0 + pd.Timedelta("5D") and late.index.max() < t0 + pd.Timedelta("7D")
    ev = rep.evaluation
    assert ev.model_versions == rep.versions and ev.start == t0 + pd.Timedelta("3D")
    assert ev.events.machine_months > 0
    assert sum(line.startswith("[replay ") for line in lines) == 4 and any("training" in x for x in lines)


def test_replay_refuses_a_range_with_nothing_after_the_initial_period(plant, tmp_path):
    store, t0 = plant
    with pytest.raises(ValueError, match="nothing to score"):
        replay(store, tmp_path / "m", t0, t0 + pd.Timedelta("3D"), config=ReplayConfig(initial="5D"), progress=False)


def test_a_fine_tune_fits_its_thresholds_on_weeks_before_it_not_only_on_its_own_held_out_day(plant, tmp_path):
    from pdm.model.directory import load
    from pdm.model.pipeline import FeatureConfig, train_fleet
    from pdm.model.train import TrainConfig
    from pdm.pipeline.retrain import finetune_fleet

    store, t0 = plant
    base = train_fleet(store, tmp_path / "base", start=t0, stop=t0 + pd.Timedelta("3D"),
                       features=FeatureConfig(window=72, stride=24, min_windows=4),
                       model_overrides={"d_model": 32, "layers": 1}, train_cfg=TrainConfig(epochs=1, progress=False))
    start, stop = t0 + pd.Timedelta("3D"), t0 + pd.Timedelta("5D")
    only = load(finetune_fleet(store, base.path, tmp_path / "own", start, stop, epochs=1, calibration_days=0))
    wide = load(finetune_fleet(store, base.path, tmp_path / "wide", start, stop, epochs=1))
    for m, det in wide.detect["machines"].items():
        own = only.detect["machines"][m]
        assert own["calibration_from"] >= start.value  # the fine-tuning range's held-out windows only
        assert det["calibration_from"] < start.value  # and the healthy running windows before it
        assert det["calibration_windows"] > own["calibration_windows"]
    # The fine-tuned weights are the same either way: only the calibration differs.
    a, b = only.model.state_dict(), wide.model.state_dict()
    assert all((a[k] == b[k]).all() for k in a)


def test_a_replay_can_start_from_a_model_already_trained_on_its_initial_period(plant, tmp_path):
    from pdm.model.directory import load
    from pdm.model.pipeline import FeatureConfig, train_fleet
    from pdm.model.train import TrainConfig

    store, t0 = plant
    kw = {"features": FeatureConfig(window=72, stride=24, min_windows=4), "model_overrides": {"d_model": 32, "layers": 1},
          "train_cfg": TrainConfig(epochs=1, progress=False)}
    base = train_fleet(store, tmp_path / "kept", start=t0, stop=t0 + pd.Timedelta("3D"), **kw)
    cfg = ReplayConfig(initial="3D", step="2D", retrain_every=None, window=72, stride=24, initial_model=str(base.path))
    rep = replay(store, tmp_path / "models", t0, t0 + pd.Timedelta("5D"), config=cfg, progress=False)
    assert rep.trainings[0]["kind"] == "given" and rep.training_seconds == 0.0
    kept = load(base.path)
    version = kept.version
    assert rep.versions == [version] and [s["version"] for s in rep.steps] == [version]
    assert not (tmp_path / "models").exists()  # nothing trained
    # Calibrated again first: a new version (same weights) scores, saved in the replay's directory.
    again = replay(store, tmp_path / "models", t0, t0 + pd.Timedelta("5D"), progress=False,
                   config=dataclasses.replace(cfg, recalibrate_initial=True))
    new = again.trainings[0]["recalibrated_as"]
    assert new != version and again.versions == [new] and {s["version"] for s in again.steps} == {new}
    fresh = load(tmp_path / "models" / new)
    assert fresh.metadata["recalibrated"]["from_version"] == version
    weights = kept.model.state_dict()
    assert all(v.equal(weights[k]) for k, v in fresh.model.state_dict().items())  # the same weights
    other = train_fleet(store, tmp_path / "other", start=t0, stop=t0 + pd.Timedelta("2D"), **kw)
    with pytest.raises(ValueError, match="trained on .* not on the replay's initial period"):
        replay(store, tmp_path / "m2", t0, t0 + pd.Timedelta("5D"),
               config=ReplayConfig(initial="3D", initial_model=str(other.path)), progress=False)


def test_training_can_scale_temperatures_on_running_steps_and_the_model_directory_keeps_it(plant, tmp_path):
    """FeatureConfig.temperatures_running reaches every machine's scaler and travels with the model directory."""
    from pdm.features.windows import is_machine_temperature
    from pdm.model.directory import load
    from pdm.model.pipeline import FeatureConfig, train_fleet
    from pdm.model.train import TrainConfig

    store, t0 = plant
    kw = {"model_overrides": {"d_model": 32, "layers": 1}, "train_cfg": TrainConfig(epochs=1, progress=False)}
    stop = t0 + pd.Timedelta("3D")
    on = load(train_fleet(store, tmp_path / "on", start=t0, stop=stop, **kw,
                          features=FeatureConfig(window=72, stride=24, min_windows=4, temperatures_running=True)).path)
    off = load(train_fleet(store, tmp_path / "off", start=t0, stop=stop, **kw,
                           features=FeatureConfig(window=72, stride=24, min_windows=4)).path)
    assert on.scalers and set(on.scalers) == set(off.scalers)
    for m, s in on.scalers.items():
        assert s.temperatures_running and not s.running_only and not off.scalers[m].temperatures_running
        temps = [j for j, c in enumerate(s.channels) if is_machine_temperature(c)]
        other = [j for j, c in enumerate(s.channels) if not is_machine_temperature(c)]
        assert temps and (s.median[temps] != off.scalers[m].median[temps]).any()  # the running steps' level
        assert (s.median[other] == off.scalers[m].median[other]).all()  # vibration and currents as before
