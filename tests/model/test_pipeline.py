"""pdmctl train on simulator data: a model directory that loads and scores."""

from __future__ import annotations

import numpy as np

from pdm.cli import main
from pdm.model.directory import load


def test_train_reads_the_store_and_writes_a_loadable_model_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    monkeypatch.setenv("PDM_STORE__PATH", str(tmp_path / "s.duckdb"))
    monkeypatch.setenv("PDM_DATA_DIR", str(tmp_path))
    assert main(["simulate", "backfill", "--machines", "3", "--days", "2", "--seed", "3"]) == 0
    code = main(["train", "--from", "2024-01-01", "--to", "2024-01-03", "--window", "64", "--stride", "8",
                 "--epochs", "2", "--d-model", "16", "--layers", "1", "--error-trim", "0.03", "--count-scaling",
                 "--stops-as-gaps"])
    assert code == 0
    out = capsys.readouterr().out
    path = out.strip().splitlines()[-1].split("model directory: ")[1]
    bundle = load(path)
    assert sorted(bundle.scalers) == ["fan-002", "gbx-003", "pump-001"]
    # Every simulated machine has an ambient sensor: its temperatures are read as their rise over it.
    assert {s.rise_over for s in bundle.scalers.values()} == {"temperature.ambient.celsius"}
    assert bundle.metadata["metrics"]["epochs_run"] == 2
    assert bundle.metadata["metrics"]["valid_loss"][-1] < bundle.metadata["metrics"]["train_loss"][0]
    errs = bundle.errors["pump-001"]
    assert len(errs["median"]) == bundle.model.cfg.channels and np.all(np.isfinite(errs["median"]))
    # The healthy error statistics are those of the errors scoring computes: the ambient channel, hidden from
    # the model, has none (0 and the 1e-3 floor); the machine's own channels have.
    amb = bundle.model.cfg.channel_names.index("temperature.ambient.celsius")
    assert errs["median"][amb] == 0.0 and errs["iqr"][amb] == 1e-3
    own = [j for j, c in enumerate(bundle.model.cfg.channel_names) if c.startswith("vibration.")]
    assert own and all(errs["median"][j] > 0 for j in own)
    # The error trim travels with the directory: scoring computes errors as calibration did.
    from pdm.model.pipeline import bundle_features

    assert bundle.config["features"]["error_trim"] == 0.03 and bundle_features(bundle).error_trim == 0.03
    assert bundle.config["features"]["count_scaling"] is True and bundle_features(bundle).count_scaling
    assert bundle.config["features"]["stops_as_gaps"] is True and bundle_features(bundle).stops_as_gaps


def test_an_error_trim_out_of_range_is_refused_before_any_work(capsys):
    import pytest

    for bad in ("0.5", "-0.1", "lots"):
        with pytest.raises(SystemExit) as exc:
            main(["train", "--error-trim", bad])
        assert exc.value.code == 2
        assert "--error-trim" in capsys.readouterr().err


def test_a_tail_quantile_out_of_range_is_refused_before_any_work(capsys):
    import pytest

    for bad in ("1", "0.3", "high"):
        with pytest.raises(SystemExit) as exc:
            main(["benchmark", "sim", "--tail-quantile", bad])
        assert exc.value.code == 2
        assert "--tail-quantile" in capsys.readouterr().err


def test_scored_hours_that_are_not_positive_are_refused_before_any_work(capsys):
    import pytest

    from pdm.cli import _scored_hours

    assert _scored_hours("ALL") == "all" and _scored_hours("6") == 6.0
    for bad in ("0", "-3", "nan", "soon"):
        with pytest.raises(SystemExit) as exc:
            main(["train", "--scored-hours", bad])
        assert exc.value.code == 2
        assert "--scored-hours" in capsys.readouterr().err


def test_a_directory_without_an_error_trim_is_scored_with_the_plain_mean():
    """Directories written before ``error_trim`` were calibrated on plain means: read so, whatever today's default."""
    import dataclasses
    from types import SimpleNamespace

    from pdm.model.pipeline import FeatureConfig, bundle_features

    old = SimpleNamespace(config={"features": {"step": "10min", "window": 144, "stride": 12}})
    assert bundle_features(old).error_trim == 0.0 and bundle_features(old).window == 144
    assert bundle_features(old).count_scaling is False  # calibrated on unscaled z-scores
    assert bundle_features(old).stops_as_gaps is False  # calibrated with stops shown
    assert bundle_features(old).last_steps() is None  # calibrated on every step of a window
    trimmed = SimpleNamespace(config={"features": {**old.config["features"], "error_trim": 0.02}})
    assert bundle_features(trimmed).error_trim == 0.02
    # And a setting the reader does not know (a newer directory's) is left out rather than refused.
    newer = SimpleNamespace(config={"features": {**old.config["features"], "not_yet": 1}})
    assert dataclasses.asdict(bundle_features(newer)) == dataclasses.asdict(FeatureConfig(error_trim=0.0,
                                                                                          count_scaling=False,
                                                                                          scored_hours=None))


def test_training_hides_the_ambient_channel_where_the_scorer_hides_it():
    """Machines whose temperatures are rises over ambient train without it; others, and the off switch, show it."""
    from pdm.features import RobustScaler, WindowSet
    from pdm.model.pipeline import FeatureConfig, training_windows

    channels = ["temperature.ambient.celsius", "temperature.bearing.celsius", "vibration.de.rms"]

    def windows(machine: str) -> WindowSet:
        values = np.ones((3, 3, 8), np.float32)
        return WindowSet(values, np.ones_like(values), np.zeros((3, 4, 8), np.float32), np.zeros((3, 5, 8), np.float32),
                         np.arange(3, dtype=np.int64), np.full(3, machine, dtype=object), channels)

    rises = RobustScaler(channels, rise_over=channels[0])
    measured = RobustScaler(channels)
    sets = {"a": windows("a"), "b": windows("b")}
    got = training_windows(sets, {"a": rises, "b": measured}, FeatureConfig())
    a, b = got.machine == "a", got.machine == "b"
    assert not got.mask[a][:, 0].any() and np.isnan(got.values[a][:, 0]).all()  # hidden: unobserved and NaN
    assert got.mask[a][:, 1:].all() and got.mask[b].all()  # the rest, and a machine read as measured, shown
    assert sets["a"].mask.all()  # the input is not modified
    shown = training_windows(sets, {"a": rises, "b": measured}, FeatureConfig(train_hides_environment=False))
    assert shown.mask.all()


def test_training_shows_stops_and_warm_ups_as_gaps_where_the_scorer_will():
    """``stops_as_gaps``: training windows lose their stopped and warm-up steps in every channel, context held."""
    from pdm.features import RobustScaler, WindowSet
    from pdm.features.grid import CONTEXT_CHANNELS
    from pdm.model.pipeline import FeatureConfig, training_windows

    channels = ["temperature.bearing.celsius", "vibration.de.rms"]
    t = 36  # 10-minute steps: 6 h
    values = np.ones((1, 2, t), np.float32)
    context = np.zeros((1, len(CONTEXT_CHANNELS), t), np.float32)
    running = np.ones(t)
    running[6:12] = 0  # a one-hour stop; the machine starts again at step 12
    context[0, CONTEXT_CHANNELS.index("running")] = running
    context[0, CONTEXT_CHANNELS.index("speed")] = np.where(running > 0, 0.9, 0.0)
    w = WindowSet(values, np.ones_like(values), context, np.zeros((1, 5, t), np.float32), np.zeros(1, np.int64),
                  np.array(["a"], dtype=object), channels)
    feats = FeatureConfig(step="10min", stops_as_gaps=True, train_hides_environment=False)
    got = training_windows({"a": w}, {"a": RobustScaler(channels)}, feats)
    gap = np.zeros(t, bool)
    gap[6:30] = True  # the stop and three hours' warm-up after it
    assert (got.mask[0] == 0).tolist() == [gap.tolist()] * 2 and np.isnan(got.values[0][:, gap]).all()
    assert (got.context[0, CONTEXT_CHANNELS.index("running")] == 1).all()
    assert (got.context[0, CONTEXT_CHANNELS.index("speed")] == np.float32(0.9)).all()
    assert w.mask.all()  # the input is not modified
    assert training_windows({"a": w}, {"a": RobustScaler(channels)},
                            FeatureConfig(train_hides_environment=False)).mask.all()  # off: shown
