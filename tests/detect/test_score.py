"""score_machines on a simulated fleet: scores, alarms, root causes, incremental runs, clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pdm.cli import main
from pdm.detect.rootcause import BAND_EXPLAINS
from pdm.detect.score import _ranking_windows, calibrated_to, score_machines
from pdm.detect.stages import Alarm
from pdm.model.directory import ModelDirectoryError, load
from pdm.store.schema import ALARM, FIELD_TYPES, ROOTCAUSE, SCORE, SCORE_STATES
from tests.detect.conftest import FAILURE, FAULTY, HEALTHY, ONSET_DAYS


@pytest.fixture(scope="module")
def scored(trained, tmp_path_factory):
    store = trained.fresh_store(tmp_path_factory.mktemp("whole") / "s.duckdb")
    report = score_machines(store, trained.model, start=trained.start, stop=trained.stop, progress=False)
    return store, report


def test_the_model_directory_holds_calibration_thresholds_and_attention_baselines(trained):
    bundle = load(trained.model)
    c = bundle.model.cfg.channels
    # Temperatures read as rises over the ambient one, which the model is not shown when calibrated (nor
    # scored): its channel has no calibrated scale (pdm.detect.errors.hide_environment).
    amb = bundle.model.cfg.channel_names.index("temperature.ambient.celsius")
    for m in (FAULTY, HEALTHY):
        assert bundle.scalers[m].rise_over == "temperature.ambient.celsius"
        iqr = bundle.detect["machines"][m]["calibrator"]["iqr"]
        assert iqr[amb] is None and None not in iqr[:amb] + iqr[amb + 1:]  # None: uncalibrated
        assert bundle.detect["machines"][m]["environment_hidden"] is True  # so the scorer hides it too
    for m in (FAULTY, HEALTHY):
        d = bundle.detect["machines"][m]
        assert d["calibration_windows"] >= 4 and np.isfinite(d["threshold"]["threshold"])
        assert np.asarray(d["baseline_spatial"]).shape == (c, c)
        # calibration windows are the last healthy ones, kept out of training: after the faulty
        # machine's training windows, before its fault onset
        assert pd.Timestamp(d["calibration_from"], tz="UTC") > trained.start + pd.Timedelta("2D")
    assert bundle.detect["machines"][FAULTY]["calibration_from"] < (FAILURE - pd.Timedelta(days=ONSET_DAYS)).value
    # The data the faulty machine's calibration saw end with its last window, before the fault (kept out), not at
    # the end of the training range: work orders from 48 h before that take a new baseline (pdm.detect.rebaseline).
    d = bundle.detect["machines"][FAULTY]
    onset = (FAILURE - pd.Timedelta(days=ONSET_DAYS)).value
    assert d["calibration_from"] < d["calibration_to"] <= onset + pd.Timedelta("10min").value
    assert calibrated_to(bundle, FAULTY) == d["calibration_to"] < pd.Timestamp(bundle.metadata["data"]["stop"]).value
    del bundle.detect["machines"][FAULTY]["calibration_to"]  # a model directory saved before it: the data range's end
    assert calibrated_to(bundle, FAULTY) == pd.Timestamp(bundle.metadata["data"]["stop"]).value


def test_every_machine_gets_a_score_per_window_tagged_with_the_model_version(scored, trained):
    store, report = scored
    version = load(trained.model).version
    points = store.read(SCORE)
    assert set(points.columns) >= {"machine", "model_version", *FIELD_TYPES[SCORE]}
    assert set(points["model_version"]) == {version}
    for m in (FAULTY, HEALTHY):
        mine = points[points["machine"] == m]
        assert len(mine) == len(report.machines[m].scores) > 80
        step = pd.Timedelta("2h")  # window ends on the 12 x 10 min stride grid
        assert (mine.index.asi8 % step.value == 0).all()
        assert np.allclose(mine["ratio"], mine["score"] / mine["threshold"], equal_nan=True)
        # a window in which the machine never ran has no score (not a healthy 0), and those are few here
        before = mine[mine.index <= FAILURE]
        assert mine["threshold"].notna().all() and before["score"].notna().mean() > 0.9
        # The faulty machine's calibration saw it before its fault only: after its breakdown and repair (work
        # orders) it is down, then a new baseline is taken, to the end of the range (pdm.detect.rebaseline).
        after = mine[mine.index > FAILURE]
        assert (m == HEALTHY) == (after["state"] == "scored").all()
        assert m == HEALTHY or set(after["state"]) == {"rebaseline", "not_running"}
        # every window says whether it was scored, and why not
        assert ((mine["state"] == "scored") == mine["score"].notna()).all()
        assert set(mine["state"]) <= set(SCORE_STATES)


def test_the_table_gives_a_stopped_machine_its_last_score_and_says_why_the_newest_window_has_none(scored):
    _, report = scored
    table = report.table().set_index("machine")
    # Down after its failure, then taking a new baseline to the end: the newest window is not scored.
    faulty, s = table.loc[FAULTY], report.machines[FAULTY].scores
    assert np.isnan(report.machines[FAULTY].latest_score)
    assert faulty["state"] in ("rebaseline", "not_running") and faulty["last_window"] == s.index[-1]
    scored_windows = s[s["state"] == "scored"]
    assert faulty["last_scored"] == scored_windows.index[-1] < faulty["last_window"]
    assert faulty["score"] == scored_windows["score"].iloc[-1] and np.isfinite(faulty["score"])
    healthy = table.loc[HEALTHY]  # ran to the end: its newest window is its last scored one
    assert healthy["state"] == "scored" and healthy["last_scored"] == healthy["last_window"]
    text = report.text(notes=False)
    assert "NaN" not in text.splitlines()[[FAULTY in line for line in text.splitlines()].index(True)]
    assert "note" not in text.splitlines()[0] and "note" in report.text().splitlines()[0]


def test_the_failing_machine_alarms_after_its_fault_begins_and_before_it_fails(scored):
    store, report = scored
    onset = FAILURE - pd.Timedelta(days=ONSET_DAYS)
    alarms = store.read(ALARM, FAULTY)
    before = alarms[(alarms.index >= onset) & (alarms.index < FAILURE)]
    assert len(before) >= 1, alarms
    first = before.index[0]
    assert FAILURE - first >= pd.Timedelta("12h")  # warned at least half a day ahead
    assert before["severity"].iloc[0] in ("warning", "critical")
    # each window holds the time to failure its open alarm showed (-1: none); an episode's last scored window's
    # is the episode's own (pdm.evaluate.ttf judges them against the failures)
    sc = store.read(SCORE, FAULTY)
    assert (sc.loc[sc.index < alarms.index[0], "ttf_hours"] == -1).all()
    ep = before.iloc[0]
    end = int(ep["end_ns"]) if int(ep["end_ns"]) > 0 else int(ep["last_ns"])
    inside = sc[(sc.index >= before.index[0]) & (sc.index.asi8 <= end) & sc["score"].notna()]
    assert len(inside) > 3 and inside["ttf_hours"].iloc[-1] == pytest.approx(ep["ttf_hours"])
    assert (inside["ttf_hours"].iloc[3:] > 0).any()  # a rising fault's trend gave estimates
    # the fault lifts the failing machine's score far above what the healthy one ever shows
    s = report.machines[FAULTY].scores
    late = s[(s.index >= FAILURE - pd.Timedelta("1D")) & (s.index < FAILURE)]["ratio"].max()
    assert late > 2 * report.machines[HEALTHY].scores["ratio"].max()


def test_an_alarm_is_explained_by_vibration_channels_and_attention_maps(scored, trained):
    store, _ = scored
    alarms = store.read(ALARM, FAULTY)
    onset = FAILURE - pd.Timedelta(days=ONSET_DAYS)
    t = alarms[(alarms.index >= onset) & (alarms.index < FAILURE)].index[0]
    rc = store.read(ROOTCAUSE, FAULTY, t, t + pd.Timedelta(1, "ns"))
    ranks = sorted(rc["rank"])
    assert [r for r in ranks if r.startswith("c")] == ["c01", "c02", "c03", "c04", "c05"]
    assert "maps" in ranks and set(rc["alarm"]) == {str(t.value)}
    channels = rc[rc["kind"] == "channel"].sort_values("rank")
    assert channels["channel"].iloc[0].startswith("vibration.")
    # (the alarm's top channel is its latest ranking's: see the test of re-ranking below)
    # Shares of the score, not an order: an out-of-range band ranks before the overall statistics it explains
    # even when they carry more (pdm.detect.rootcause.explain; the order is tested in test_rootcause.py).
    assert (channels["contribution"] >= 0).all() and channels["contribution"].sum() <= 1 + 1e-9
    assert channels["zscore"].iloc[0] >= BAND_EXPLAINS and channels["contribution"].iloc[0] > 0
    assert (channels["attention_change"] >= 0).all()
    maps = json.loads(rc[rc["rank"] == "maps"]["maps_json"].iloc[0])
    c = len(maps["channels"])
    bundle = load(trained.model)
    assert c == bundle.model.cfg.channels
    assert np.asarray(maps["spatial"]).shape == np.asarray(maps["diff"]).shape == (c, c)
    n = bundle.model.cfg.tokens
    assert np.asarray(maps["temporal"]).shape == (c, n) and len(maps["token_times_ns"]) == n
    assert np.allclose(np.asarray(maps["spatial"]).sum(axis=1), 1, atol=1e-3)  # attention rows sum to 1


def test_an_episode_is_ranked_again_each_time_its_score_grows_a_quarter():
    ratios = np.array([0.5, 0.8, 1.2, 1.3, 1.6, np.nan, 1.5, 2.1, 2.0, 0.4, 0.3])
    times = np.arange(len(ratios)) * 10
    ep = Alarm(start=20, end=90, severity="warning", peak_ratio=2.1, ttf_hours=None)
    assert _ranking_windows([ep], times, ratios, begin=0) == {2: 20, 4: 20, 7: 20}  # 1.2 → ≥ 1.5 → ≥ 2.0
    # a run that starts inside the episode ranks at the same windows (index into its own range)
    assert _ranking_windows([ep], times, ratios, begin=5) == {2: 20}
    # an open episode goes to the end; one whose start is not among the windows is left alone
    assert _ranking_windows([Alarm(40, None, "watch", 2.1, None)], times, ratios, begin=0) == {4: 40, 7: 40}
    assert _ranking_windows([Alarm(25, None, "watch", 2.1, None)], times, ratios, begin=0) == {}


def test_the_failing_machine_alarm_is_ranked_again_as_its_fault_grows(scored, trained):
    from pdm.evaluate.run import read_alarms

    store, report = scored
    alarms = store.read(ALARM, FAULTY)
    onset = FAILURE - pd.Timedelta(days=ONSET_DAYS)
    t = alarms[(alarms.index >= onset) & (alarms.index < FAILURE)].index[0]
    rc = store.read(ROOTCAUSE, FAULTY, t)
    rc = rc[rc["alarm"] == str(t.value)]
    ranked = sorted(set(rc.index))
    assert ranked[0] == t and len(ranked) >= 2, ranked  # raised, then ranked again
    ratio = report.machines[FAULTY].scores["ratio"]
    steps = [ratio[b] / ratio[a] for a, b in zip(ranked, ranked[1:], strict=False)]
    assert min(steps) >= 1.25 - 1e-9, steps
    for when in ranked:  # each ranking is whole: five channels and the maps
        ranks = sorted(rc.loc[rc.index == when, "rank"])
        assert [r for r in ranks if r.startswith("c")] == ["c01", "c02", "c03", "c04", "c05"] and "maps" in ranks
    latest = rc[(rc.index == ranked[-1]) & (rc["rank"] == "c01")]["channel"].iloc[0]
    assert alarms.loc[t, "top_channel"] == latest
    row = read_alarms(store, [load(trained.model).version], [FAULTY]).set_index("start").loc[t]
    assert [w for w, _ in row["rankings"]] == ranked and row["channels"][0] == latest


def test_scoring_in_two_runs_equals_scoring_at_once(scored, trained, tmp_path):
    whole_store, _ = scored
    store = trained.fresh_store(tmp_path / "s.duckdb")
    mid = FAILURE - pd.Timedelta("20h")  # inside the failing machine's alarm episode
    score_machines(store, trained.model, start=trained.start, stop=mid, progress=False)
    score_machines(store, trained.model, start=mid, stop=trained.stop, progress=False)
    for meas in (SCORE, ALARM, ROOTCAUSE):
        a, b = whole_store.read(meas), store.read(meas)
        assert len(a) == len(b) and len(a), meas
        pd.testing.assert_index_equal(a.index, b.index)
        for col in a.columns:
            if pd.api.types.is_float_dtype(a[col]):
                assert np.allclose(a[col], b[col], rtol=1e-5, atol=1e-6, equal_nan=True), (meas, col)
            elif col != "maps_json":
                assert a[col].tolist() == b[col].tolist(), (meas, col)


def test_an_unknown_machine_is_skipped_with_a_message_and_the_others_are_scored(trained, tmp_path):
    store = trained.fresh_store(tmp_path / "s.duckdb")
    day = trained.stop - pd.Timedelta("6h")
    report = score_machines(store, trained.model, ["pump-nope", HEALTHY], start=day, stop=trained.stop,
                            progress=False)
    assert report.machines["pump-nope"].status == "skipped"
    assert "pump-nope: not in model" in report.skipped["pump-nope"] and HEALTHY in report.skipped["pump-nope"]
    assert len(report.machines[HEALTHY].scores) == 3
    assert set(store.read(SCORE)["machine"]) == {HEALTHY}


def test_a_corrupt_model_directory_is_refused(trained, tmp_path):
    bad = tmp_path / "models" / trained.model.name
    shutil.copytree(trained.model, bad)
    raw = (bad / "detect.json").read_bytes()
    (bad / "detect.json").write_bytes(raw.replace(b'"threshold": ', b'"threshold":_', 1))  # same size
    store = trained.fresh_store(tmp_path / "s.duckdb")
    with pytest.raises(ModelDirectoryError, match="detect.json fails its checksum"):
        score_machines(store, bad, progress=False)
    (bad / "detect.json").unlink()
    with pytest.raises(ModelDirectoryError, match="detect.json is missing"):
        score_machines(store, bad, progress=False)
    assert store.read(SCORE).empty


def test_pdmctl_score_prints_a_table_and_fails_clearly(trained, tmp_path, monkeypatch, capsys):
    trained.fresh_store(tmp_path / "s.duckdb")
    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    monkeypatch.setenv("PDM_STORE__PATH", str(tmp_path / "s.duckdb"))
    monkeypatch.setenv("PDM_DATA_DIR", str(tmp_path))
    # no models at all
    assert main(["score"]) == 1
    assert "no trained model" in capsys.readouterr().err
    # the production model (newest valid version) on each machine's latest window
    shutil.copytree(trained.model, tmp_path / "models" / trained.model.name)
    assert main(["score", "-q"]) == 0
    out = capsys.readouterr().out
    assert FAULTY in out and HEALTHY in out and "threshold" in out and "status" in out
    from pdm.store.embedded import EmbeddedStore

    written = EmbeddedStore(tmp_path / "s.duckdb").read(SCORE)
    assert sorted(written["machine"]) == sorted([FAULTY, HEALTHY])  # one latest window each,
    assert (written.index == trained.stop).all()  # ending with the last data
    # unknown machine only → error
    assert main(["score", "--machines", "pump-nope"]) == 1
    assert "not in model" in capsys.readouterr().err
    # store down
    monkeypatch.setenv("PDM_STORE__BACKEND", "influxdb1")
    monkeypatch.setenv("PDM_STORE__URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PDM_STORE__RETRIES", "0")
    assert main(["score", "-q"]) == 1
    assert "pdmctl score" in capsys.readouterr().err


def test_windows_at_a_load_the_model_never_saw_are_not_scored_and_say_why(trained, tmp_path):
    bundle = load(trained.model)
    env = bundle.detect["machines"][HEALTHY]["envelope"]
    assert env["fields"] == ["speed", "load"] and env["lo"][1] < env["hi"][1]  # fitted on the training range
    store = trained.fresh_store(tmp_path / "s.duckdb")
    day = trained.stop - pd.Timedelta("1D")
    before = score_machines(store, bundle, [HEALTHY], start=day, stop=trained.stop, progress=False, write=False)
    scored = before.machines[HEALTHY].scores["score"]
    assert scored.notna().sum() >= 2 and before.machines[HEALTHY].outside == 0
    env["hi"][1] = env["lo"][1] + 1e-6  # pretend it was trained at its lowest load only
    report = score_machines(store, bundle, [HEALTHY], start=day, stop=trained.stop, progress=False)
    r = report.machines[HEALTHY]
    assert r.scores["score"].isna().all() and r.outside == int(scored.notna().sum())
    assert "outside what the model was trained on" in r.message
    written = store.read(SCORE)
    assert "score" not in written or written["score"].isna().all()  # the window's row, without a score
    # ... and why, for the dashboard and the evaluation: the windows that ran are outside the envelope
    ran = scored.notna().to_numpy()
    assert (written["state"].to_numpy()[ran] == "outside_envelope").all()
    assert (r.scores["state"].to_numpy()[~ran] == "not_running").all()
    assert not r.alarms


def test_the_ambient_channel_is_hidden_when_scoring_only_where_the_calibration_hid_it(trained, monkeypatch, tmp_path):
    """A model directory calibrated before the ambient channel was hidden is scored as it was calibrated."""
    import pdm.detect.errors

    seen: list[object] = []
    real = pdm.detect.errors.hide_environment

    def spy(windows, rise_over):
        seen.append(rise_over)
        return real(windows, rise_over)

    monkeypatch.setattr(pdm.detect.errors, "hide_environment", spy)
    store = trained.fresh_store(tmp_path / "s.duckdb")
    bundle = load(trained.model)
    stop = trained.start + pd.Timedelta("2D")
    score_machines(store, bundle, [HEALTHY], start=trained.start, stop=stop, progress=False, write=False)
    assert seen and set(seen) == {"temperature.ambient.celsius"}
    seen.clear()
    del bundle.detect["machines"][HEALTHY]["environment_hidden"]  # calibrated before: the model saw it
    score_machines(store, bundle, [HEALTHY], start=trained.start, stop=stop, progress=False, write=False)
    assert seen and set(seen) == {None}


def test_stops_are_shown_as_gaps_when_scoring_only_where_the_directory_says_so(trained, monkeypatch, tmp_path):
    """``FeatureConfig.stops_as_gaps`` is read from the model directory (older ones: off), as calibration used it."""
    import pdm.detect.errors

    seen: list[bool] = []
    real = pdm.detect.errors.hide_steps

    def spy(windows, running, *, as_gaps=False, step_hours=None):
        seen.append(as_gaps)
        assert step_hours == 1 / 6  # the warm-up after a start is shown as a gap too (a 10-minute grid)
        return real(windows, running, as_gaps=as_gaps, step_hours=step_hours)

    monkeypatch.setattr(pdm.detect.errors, "hide_steps", spy)
    store = trained.fresh_store(tmp_path / "s.duckdb")
    bundle = load(trained.model)
    stop = trained.start + pd.Timedelta("2D")
    assert "stops_as_gaps" in bundle.config["features"]  # written by this version: off by default
    score_machines(store, bundle, [HEALTHY], start=trained.start, stop=stop, progress=False, write=False)
    assert seen and set(seen) == {False}
    seen.clear()
    bundle.config["features"]["stops_as_gaps"] = True
    score_machines(store, bundle, [HEALTHY], start=trained.start, stop=stop, progress=False, write=False)
    assert seen and set(seen) == {True}
    seen.clear()
    del bundle.config["features"]["stops_as_gaps"]  # a directory written before the setting
    score_machines(store, bundle, [HEALTHY], start=trained.start, stop=stop, progress=False, write=False)
    assert seen and set(seen) == {False}
