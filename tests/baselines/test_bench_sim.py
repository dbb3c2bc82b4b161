"""``pdmctl benchmark sim`` end to end on a tiny fleet (one fast detector)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pdm.evaluate.bench_sim import SimBenchConfig, benchmark_sim


def test_sim_benchmark_tiny(tmp_path: Path) -> None:
    cfg = SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1, detectors=("pca",))
    doc = benchmark_sim(cfg, tmp_path / "out", quick=True, progress=None)
    assert doc["machines"] == 2
    m = doc["results"]["pca"]["metrics"]
    assert m["machine_months"] == pytest.approx(2 * 3.0 / 30, rel=0.02)  # only the scored period counts
    assert m["alarms"] == m["true_alarms"] + m["false_alarms"]
    saved = json.loads((tmp_path / "out" / "sim_quick.json").read_text())
    assert saved["results"]["pca"]["name"] == "PCA T²+Q"
    md = (tmp_path / "out" / "sim_quick.md").read_text()
    assert "false alarms / machine-month" in md
    # The threshold sweep: every factor, and factor 1 is the default row.
    from pdm.evaluate.bench_sim import SWEEP_FACTORS

    curve = saved["results"]["pca"]["sweep"]
    assert [p["factor"] for p in curve] == list(SWEEP_FACTORS)
    one = next(p for p in curve if p["factor"] == 1.0)
    assert one["false_alarms"] == m["false_alarms"]
    assert one["recall_72h"] == pytest.approx(m["recall_72h"], nan_ok=True)
    assert curve[0]["false_alarms"] > curve[-1]["false_alarms"]  # the lowest factor alarms more than the highest here
    assert "## At the same false-alarm budget" in md
    assert (tmp_path / "out" / "sim_quick_curves.png").stat().st_size > 1000


def test_sim_benchmark_with_the_products_stages(tmp_path: Path) -> None:
    """Every detector through pdm's scorer's stages: a window-level detector (IForest) and a per-step one (PCA)."""
    cfg = SimBenchConfig(machines=2, days=8.0, train_days=5.0, window=72, stride=12, epochs=1,
                         detectors=("pca", "iforest"), stages="product", series=True)
    doc = benchmark_sim(cfg, tmp_path / "out", quick=True, progress=None, tag="t1")
    # the series and the work orders beside them give back the run's alarms (an open alarm ends at a work order)
    import pandas as pd

    from pdm.detect.stages import AlarmRule

    orders = pd.read_parquet(tmp_path / "out" / "sim_quick_product_t1_series" / "work_orders.parquet")
    assert list(orders.columns) == ["machine", "time"]
    frame = pd.read_parquet(tmp_path / "out" / "sim_quick_product_t1_series" / "pca.parquet")
    again = []
    for m, g in frame.groupby("machine"):
        resets = orders.loc[orders["machine"] == m, "time"].astype("int64").to_numpy()
        again += AlarmRule().apply(g["time"].astype("int64").to_numpy(), g["score"].to_numpy("float64"),
                                   float(g["threshold"].iloc[0]), resets=resets)
    assert [int(a.start) for a in sorted(again, key=lambda a: a.start)] == sorted(
        pd.Timestamp(a["start"]).value for a in doc["results"]["pca"]["alarms"])
    # each window says why it has no score, with its operating range; with the ground truth written beside them the
    # series give back the run's event metrics (so other envelope or baseline rules can be judged without a rerun)
    from pdm.evaluate.bench_sim import SERIES_STATES, judge_series, read_series

    folder = tmp_path / "out" / "sim_quick_product_t1_series"
    assert set(frame["state"].unique()) <= set(SERIES_STATES) and {"load_lo", "load_hi", "speed_lo"} <= set(frame.columns)
    assert frame.loc[frame["state"] != 0, "score"].isna().all()
    assert (frame["load_lo"] <= frame["load_hi"]).all() or frame["load_lo"].isna().any()
    for key in ("pca", "iforest"):
        series = read_series(folder, key)
        assert sorted(s.machine for s in series) == sorted(frame["machine"].unique())
        got, want = judge_series(folder, series).to_dict(), doc["results"][key]["metrics"]
        for k in ("failures", "caught", "false_alarms", "alarms"):
            assert got[k] == want[k], k
        assert got["recall_72h"] == pytest.approx(want["recall_72h"], nan_ok=True)
        assert got["machine_months"] == pytest.approx(want["machine_months"])
    saved = json.loads((tmp_path / "out" / "sim_quick_product_t1.json").read_text())
    assert saved["config"]["stages"] == "product" and not (tmp_path / "out" / "sim_quick.json").exists()
    for key in ("pca", "iforest"):
        m = doc["results"][key]["metrics"]
        assert m["machine_months"] == pytest.approx(2 * 3.0 / 30, rel=0.02)
        assert isinstance(saved["results"][key]["per_failure"], list)
        # the default threshold's alarms are kept, and every sweep point counts alarms after the fault's onset too
        assert isinstance(saved["results"][key]["alarms"], list)
        assert all("recall_72h_after_onset" in pt for pt in saved["results"][key]["sweep"])
        # what the open alarms said as time to failure, window by window, judged against the failures
        ttf = saved["results"][key]["ttf"]
        assert ttf["failures"] == m["failures"] and len(ttf["per_failure"]) == m["failures"]
        shown = sum(int((~np.isnan(AlarmRule().ttf_track(s.times, s.scores, s.threshold, resets=s.resets))).sum())
                    for s in read_series(folder, key))
        assert len(ttf["rows"]) == shown and ttf["windows"] + ttf["windows_censored"] == shown
        assert sum(b["windows"] for b in ttf["bins"]) == ttf["windows"]
        # each severity level judged from when the default threshold's alarms reached it: watch is every alarm
        sev = saved["results"][key]["severity"]["levels"]
        assert [lv["level"] for lv in sev] == ["watch", "warning", "critical"]
        assert (sev[0]["alarms"], sev[0]["false_alarms"], sev[0]["caught"]) == (m["alarms"], m["false_alarms"], m["caught"])
        assert sev[0]["alarms"] >= sev[1]["alarms"] >= sev[2]["alarms"]
        assert all(lv["alarms"] == sum(a["reached"].get(lv["level"]) is not None for a in saved["results"][key]["alarms"])
                   for lv in sev)
    # each window's counted share travels with the series; the stop effect is measured from it
    assert frame["counted"].between(0, 1).all()
    # the excursion stage's settings and the windows' length and stride travel with them (stages.json)
    from pdm.detect.excursion import ExcursionBaseline
    from pdm.evaluate.bench_sim import read_stages

    stages = read_stages(folder)
    assert stages is not None and stages["excursion"] == ExcursionBaseline().to_dict()
    assert stages["window_ns"] == 72 * 600 * 10**9 and stages["stride_ns"] == 12 * 600 * 10**9
    assert all(s.counted is not None for s in read_series(folder, "pca"))
    effect = doc["results"]["pca"]["stop_effect"]
    assert effect is None or effect["windows_running"] + effect["windows_with_stop"] <= len(frame)
    md = (tmp_path / "out" / "sim_quick_product_t1.md").read_text()
    assert "(product)" in md and "operating envelope" in md
    assert "alarm after onset" in md
    assert "## Time to failure, as the open alarms estimated it" in md
    assert "## Severity levels, each from when an alarm reached it" in md
    # every detector's errors travel with the series, and staged again as run they give back its scores
    # (benchmarks/score_aggregation.py checks that, then judges other stages on the same errors)
    from benchmarks.score_aggregation import main as aggregation
    from pdm.evaluate.bench_sim import read_stage_inputs, stage_series

    inputs = read_stage_inputs(folder / "pca_errors.npz")
    assert sorted(i.machine for i in inputs) == sorted(frame["machine"].unique())
    # which windows ran throughout travels too (stop_thresholds)
    assert all(i.full is not None and len(i.full) == len(i.times) and i.cal_full is not None
               and len(i.cal_full) == len(i.healthy) for i in inputs)
    assert aggregation(["--run", f"a={tmp_path / 'out' / 'sim_quick_product_t1.json'}", "--results",
                        str(tmp_path / "agg"), "--quantile", "0.9"]) == 0
    agg = json.loads((tmp_path / "agg" / "score_aggregation.json").read_text())
    assert sorted(agg["restaged_as_run_checked"]) == ["sim_quick_product_t1_series/iforest",
                                                      "sim_quick_product_t1_series/pca"]
    assert set(agg["detectors"]["pca"]["rules"]) == {"z as is", "tail q0.9", "count-scaled, z as is",
                                                     "count-scaled, tail q0.9"}
    scaled = stage_series(inputs[0], stages["window_ns"], stages["stride_ns"], tail_quantile=0.9)
    plain = stage_series(inputs[0], stages["window_ns"], stages["stride_ns"])
    assert scaled is not None and plain is not None
    # every channel's z divided by its calibration tail (>= 1): the scores move (the threshold may sit at its floor)
    assert not np.allclose(scaled.scores, plain.scores, equal_nan=True)
    with pytest.raises(ValueError, match="stages"):
        benchmark_sim(SimBenchConfig(stages="fancy"), tmp_path, progress=None)
    with pytest.raises(ValueError, match="tag"):
        benchmark_sim(cfg, tmp_path, progress=None, tag="../x")


def test_sim_benchmark_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train_days"):
        benchmark_sim(SimBenchConfig(days=5.0, train_days=6.0), tmp_path, progress=None)
    with pytest.raises(ValueError, match="window"):
        benchmark_sim(SimBenchConfig(window=60), tmp_path, progress=None)
    with pytest.raises(ValueError, match="error_trim"):
        benchmark_sim(SimBenchConfig(error_trim=0.5), tmp_path, progress=None)
    with pytest.raises(ValueError, match="1 to 72 steps"):
        benchmark_sim(SimBenchConfig(stages="product", last_steps=200), tmp_path, progress=None)
    with pytest.raises(ValueError, match="product stages"):
        benchmark_sim(SimBenchConfig(last_steps=48), tmp_path, progress=None)


def _doc(**rows: tuple[float, float]) -> dict:
    return {"results": {k: {"name": k.upper(), "metrics": {"recall_72h": r, "false_alarms_per_machine_month": fa}}
                        for k, (r, fa) in rows.items()}}


def test_verdict_needs_more_recall_at_no_more_false_alarms() -> None:
    from pdm.evaluate.bench_sim import verdict

    assert verdict(_doc(pca=(0.5, 1.0))) is None  # no TSHAE row
    assert "**met**" in str(verdict(_doc(tshae=(0.8, 0.5), pca=(0.6, 0.5), lstm=(0.7, 0.9))))
    # As much recall is not ahead, even at fewer false alarms.
    out = str(verdict(_doc(tshae=(0.8, 0.5), pca=(0.6, 0.5), lstm=(0.8, 0.9))))
    assert "**missed**" in out and "LSTM" in out and "PCA" not in out.split("missed")[1]
    # More recall bought with more false alarms is not ahead.
    out = str(verdict(_doc(tshae=(0.9, 1.2), pca=(0.6, 0.5))))
    assert "**missed**" in out and "PCA" in out
    # Judged on the recall that counts only alarms raised after the fault's onset, where the rows have it.
    from pdm.evaluate.bench_sim import ONSET

    assert verdict(_doc(tshae=(0.8, 0.5), pca=(0.6, 0.5)), ONSET) is None  # not measured
    doc = _doc(tshae=(0.6, 0.5), pca=(0.8, 0.5))
    doc["results"]["tshae"]["metrics"][ONSET], doc["results"]["pca"]["metrics"][ONSET] = 0.6, 0.5
    assert "**missed**" in str(verdict(doc)) and "**met**" in str(verdict(doc, ONSET))


def test_at_budget_takes_the_most_recall_within_the_budget() -> None:
    from pdm.evaluate.bench_sim import at_budget

    curve = [{"factor": 0.8, "recall_72h": 0.9, "false_alarms_per_machine_month": 1.4},
             {"factor": 1.0, "recall_72h": 0.8, "false_alarms_per_machine_month": 0.9},
             {"factor": 1.5, "recall_72h": 0.8, "false_alarms_per_machine_month": 0.4},
             {"factor": 2.0, "recall_72h": 0.5, "false_alarms_per_machine_month": 0.1}]
    assert at_budget(curve, 1.0)["factor"] == 1.5  # same recall, fewer false alarms
    assert at_budget(curve, 2.0)["factor"] == 0.8
    assert at_budget(curve, 0.25)["factor"] == 2.0
    assert at_budget(curve, 0.05) is None


def test_budget_verdict_compares_each_detector_at_its_best_within_the_budget() -> None:
    from pdm.evaluate.bench_sim import budget_verdict

    def pts(*p: tuple[float, float]) -> list:
        return [{"factor": 1.0 + i, "recall_72h": r, "false_alarms_per_machine_month": fa} for i, (r, fa) in enumerate(p)]

    doc = {"results": {"tshae": {"name": "TSHAE", "sweep": pts((0.9, 0.9), (0.7, 0.2))},
                       "pca": {"name": "PCA", "sweep": pts((0.95, 2.0), (0.8, 0.45), (0.6, 0.2))}}}
    out = str(budget_verdict(doc))
    assert "at <= 1: TSHAE 0.90, ahead of every baseline" in out  # PCA's 0.95 costs 2 false alarms
    assert "at <= 0.5: TSHAE 0.70, not ahead of PCA 0.80" in out
    assert "at <= 0.25: TSHAE 0.70, ahead" in out


def test_own_rate_verdict_compares_tshaes_default_with_each_baselines_best_at_no_more_false_alarms() -> None:
    from pdm.evaluate.bench_sim import own_rate_verdict

    def pts(*p: tuple[float, float]) -> list:
        return [{"factor": 1.0 + i, "recall_72h": r, "caught_72h": round(r * 10), "false_alarms_per_machine_month": fa}
                for i, (r, fa) in enumerate(p)]

    def doc(tshae: tuple[float, float], **others: list) -> dict:
        rows = {"tshae": {"name": "TSHAE", "sweep": pts(tshae),
                          "metrics": {"recall_72h": tshae[0], "false_alarms_per_machine_month": tshae[1], "failures": 10}}}
        rows.update({k: {"name": k.upper(), "sweep": v, "metrics": {"failures": 10}} for k, v in others.items()})
        return {"results": rows}

    # Conv-AE's default (0.9 at 0.45) catches more, but within TSHAE's 0.05 its best is 0.7.
    out = str(own_rate_verdict(doc((0.8, 0.05), conv=pts((0.9, 0.45), (0.7, 0.05), (0.5, 0.0)))))
    assert "CONV 0.70 (7/10 at 0.05, 2x)" in out and out.endswith("TSHAE ahead of every baseline.")
    # As much recall within the rate is not ahead; a baseline that never gets down to the rate is behind.
    out = str(own_rate_verdict(doc((0.8, 0.05), conv=pts((0.9, 0.45), (0.8, 0.02)), pca=pts((0.9, 0.3), (0.6, 0.1)))))
    assert "PCA: no threshold of the sweep gets down to it" in out and out.endswith("TSHAE not ahead of CONV.")
    assert own_rate_verdict({"results": {"pca": {"name": "PCA", "sweep": pts((0.5, 0.1))}}}) is None


def test_cause_table_counts_each_detectors_false_alarms_by_nuisance() -> None:
    from pdm.evaluate.bench_sim import cause_table

    doc = {"results": {"a": {"name": "A", "metrics": {"false_alarms": 3, "false_alarms_by_cause": {"unexplained": 1, "spike": 2}}},
                       "b": {"name": "B", "metrics": {"false_alarms": 1, "false_alarms_by_cause": {"regime_change": 1}}}}}
    lines = str(cause_table(doc)).splitlines()
    assert lines[0] == "| Detector | regime change | spike | unexplained | all |"  # unexplained last
    assert lines[2:] == ["| A | 0 | 2 | 1 | 3 |", "| B | 1 | 0 | 0 | 1 |"]
    assert cause_table({"results": {"a": {"name": "A", "metrics": {"false_alarms": 0}}}}) is None


def test_failure_table_marks_alarms_older_than_the_onset() -> None:
    from pdm.evaluate.bench_sim import failure_table

    fail = {"machine": "m1", "failure": "2024-02-10T00:00:00+00:00", "onset": "2024-02-07T00:00:00+00:00"}
    doc = {"results": {
        "tshae": {"name": "TSHAE", "per_failure": [{**fail, "lead_h": 48.0, "lead_after_onset_h": 48.0}]},
        "pca": {"name": "PCA", "per_failure": [{**fail, "lead_h": 500.0, "alarm_before_onset": True}]},
        "lstm": {"name": "LSTM", "per_failure": [{**fail, "lead_h": None}]},
    }}
    row = str(failure_table(doc)).splitlines()[-1]
    assert row == ("| m1 | 2024-02-10 00:00 | 2024-02-07 00:00 | 72 | 48 | 500 (older alarm; after onset: none) "
                   "| missed |")
    assert failure_table({"results": {"pca": {"name": "PCA", "per_failure": []}}}) is None


def test_ceiling_counts_failures_too_soon_after_onset_or_scoring_start() -> None:
    from pdm.evaluate.bench_sim import ceiling_note

    rows = [{"machine": "a", "failure": "2024-02-03T00:00:00+00:00", "onset": "2024-01-20T00:00:00+00:00"},  # 48 h scored
            {"machine": "b", "failure": "2024-02-20T00:00:00+00:00", "onset": "2024-02-18T00:00:00+00:00"},  # 48 h
            {"machine": "c", "failure": "2024-02-20T00:00:00+00:00", "onset": "2024-02-10T00:00:00+00:00"}]
    doc = {"split": "2024-02-01T00:00:00+00:00", "results": {"pca": {"name": "PCA", "per_failure": rows}}}
    out = str(ceiling_note(doc))
    assert "2 of 3" in out and "a 2024-02-03 (48 h)" in out and "b 2024-02-20 (48 h)" in out and "0.33" in out


def test_kept_tshae_scores_a_model_directory_that_fits_the_windows() -> None:
    """The harness can score kept weights (the held-back fleet's model) instead of training; a misfit is refused."""
    import numpy as np

    from pdm.evaluate.bench_sim import kept_tshae
    from pdm.features import WindowSet

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "models" / "heldback-2027-rise"
    mc = json.loads((path / "config.json").read_text())["model"]
    n, c, t = 3, len(mc["channel_names"]), mc["window"]
    rng = np.random.default_rng(0)

    def windows(channels: list[str], window: int) -> WindowSet:
        return WindowSet(values=rng.normal(size=(n, len(channels), window)).astype(np.float32),
                         mask=np.ones((n, len(channels), window), np.float32),
                         context=np.zeros((n, mc["context_channels"], window), np.float32),
                         events=np.zeros((n, mc["event_channels"], window), np.float32),
                         start=np.arange(n, dtype=np.int64), machine=np.full(n, "m", dtype=object),
                         channels=list(channels))

    ws = windows(mc["channel_names"], t)
    det = kept_tshae(path, ws)
    err = det.errors(ws)
    assert err.shape == (n, c) and np.isfinite(err).all()
    with pytest.raises(ValueError, match="window"):
        kept_tshae(path, windows(mc["channel_names"], t // 2))
    with pytest.raises(ValueError, match="channel_names"):
        kept_tshae(path, windows(mc["channel_names"][::-1], t))
    # Read another way: only vibration imputed; its vibration errors are the modality pass's, the rest's not.
    other = kept_tshae(path, ws, "vibration")
    assert other.model_.cfg.scoring == "vibration" and det.model_.cfg.scoring == "modality"
    assert other.metrics_["scoring"] == "vibration"
    vib = np.array([n.startswith("vibration.") for n in mc["channel_names"]])
    again = other.errors(ws)
    np.testing.assert_allclose(again[:, vib], err[:, vib], rtol=1e-4)
    assert not np.allclose(again[:, ~vib], err[:, ~vib], rtol=1e-3)
    assert np.allclose(kept_tshae(path, ws).errors(ws), err)  # the loaded directory left as it was
    with pytest.raises(ValueError, match="scoring"):
        kept_tshae(path, ws, "no such")


def test_kept_directories_say_whether_their_weights_saw_stops_as_gaps() -> None:
    from pdm.evaluate.bench_sim import kept_stops_as_gaps

    models = Path(__file__).resolve().parents[2] / "benchmarks" / "models"
    assert kept_stops_as_gaps(models / "heldback-4242-gaps") is True  # the harness's settings, in its metadata
    assert kept_stops_as_gaps(models / "heldback-2027-rise") is False  # train_fleet's features, older than the key
    assert kept_stops_as_gaps(models / "dev11-runin-2026-12-05") is False  # harness settings older than the key


def test_model_seed_trains_the_detectors_apart_from_the_fleet_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pdm.baselines

    seen: list[int] = []

    class Stop(Exception):
        pass

    def spy(key: str, seed: int = 0, **kw: object) -> object:
        seen.append(seed)
        raise Stop

    monkeypatch.setattr(pdm.baselines, "make_detector", spy)
    cfg = SimBenchConfig(machines=2, days=8.0, train_days=5.0, window=72, stride=12, epochs=1, detectors=("pca",), seed=3)
    for model_seed, want in ((None, 3), (11, 11)):
        cfg.model_seed = model_seed
        with pytest.raises(Stop):
            benchmark_sim(cfg, tmp_path / "out", quick=True, progress=None)
        assert seen[-1] == want


def test_series_are_written_and_reproduce_the_default_alarms(tmp_path: Path) -> None:
    """--series: per-window scores and thresholds from which the AlarmRule gives back the run's own alarms."""
    import pandas as pd

    from pdm.detect.stages import AlarmRule

    cfg = SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1, detectors=("pca",),
                         series=True)
    doc = benchmark_sim(cfg, tmp_path / "out", quick=True, progress=None, tag="s")
    frame = pd.read_parquet(tmp_path / "out" / "sim_quick_s_series" / "pca.parquet")
    assert list(frame.columns[:4]) == ["machine", "time", "score", "threshold"]
    assert frame["machine"].nunique() == 2 and any(c.startswith("z:vibration.") for c in frame.columns)
    assert frame["time"].dt.tz is not None and frame.groupby("machine")["time"].is_monotonic_increasing.all()
    again = 0
    for _, g in frame.groupby("machine"):
        times = g["time"].astype("int64").to_numpy()
        again += len(AlarmRule().apply(times, g["score"].to_numpy("float64"), float(g["threshold"].iloc[0])))
    assert again == len(doc["results"]["pca"]["alarms"])
    # without the flag nothing is written
    benchmark_sim(SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1,
                                 detectors=("pca",)), tmp_path / "plain", quick=True, progress=None)
    assert not list((tmp_path / "plain").glob("*_series"))


def test_a_tshae_saved_by_one_run_scores_the_same_when_read_back(tmp_path: Path) -> None:
    """--tshae-save then --tshae-from: the second run scores the first run's weights (no training) identically."""
    import pandas as pd

    cfg = SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1, detectors=("tshae",),
                         series=True, tshae_save=str(tmp_path / "models"))
    benchmark_sim(cfg, tmp_path / "out", quick=True, progress=None, tag="a")
    (saved,) = list((tmp_path / "models").iterdir())
    assert (saved / "weights.safetensors").exists()
    from pdm.evaluate.bench_sim import kept_run_in, kept_stops_as_gaps

    assert kept_run_in(saved) == 2.0  # the run-in its windows were cut with, which a rescore cuts them with again
    assert kept_stops_as_gaps(saved) is False  # from the harness settings the directory's metadata keeps
    gapped = SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1,
                            detectors=("tshae",), tshae_from=str(saved), stops_as_gaps=True)
    with pytest.raises(ValueError, match="trained with stops shown as stops; score them without --stops-as-gaps"):
        benchmark_sim(gapped, tmp_path / "out", quick=True, progress=None, tag="c")  # refused before simulating
    again = SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1, detectors=("tshae",),
                           series=True, tshae_from=str(saved), tshae_save=str(tmp_path / "models"))
    doc = benchmark_sim(again, tmp_path / "out", quick=True, progress=None, tag="b")
    assert doc["results"]["tshae"]["name"].endswith("(kept weights)")
    assert len(list((tmp_path / "models").iterdir())) == 1  # kept weights are not written again
    a = pd.read_parquet(tmp_path / "out" / "sim_quick_a_series" / "tshae.parquet")
    b = pd.read_parquet(tmp_path / "out" / "sim_quick_b_series" / "tshae.parquet")
    pd.testing.assert_frame_equal(a, b)
    # The same weights read another way: vibration imputed alike (the same z-scores), the other sensors shown.
    vib = SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1, detectors=("tshae",),
                         series=True, tshae_from=str(saved), tshae_scoring="vibration")
    doc = benchmark_sim(vib, tmp_path / "out", quick=True, progress=None, tag="v")
    assert doc["results"]["tshae"]["name"] == "TSHAE (kept weights, scored by vibration)"
    assert doc["config"]["tshae_scoring"] == "vibration"
    v = pd.read_parquet(tmp_path / "out" / "sim_quick_v_series" / "tshae.parquet")
    zs = [c for c in v.columns if c.startswith("z:vibration.")]
    others = [c for c in v.columns if c.startswith("z:") and c not in zs and "ambient" not in c]
    assert zs and others
    pd.testing.assert_frame_equal(v[zs], a[zs], rtol=1e-4, atol=1e-5)  # batched apart: rounding
    assert not np.allclose(v[others].to_numpy(), a[others].to_numpy(), equal_nan=True)
    # An ensemble of the directory with itself: the mean of two equal errors, so the same series again.
    twice = SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1, detectors=("tshae",),
                           series=True, tshae_from=str(saved), tshae_also=(str(saved),))
    doc = benchmark_sim(twice, tmp_path / "out", quick=True, progress=None, tag="e")
    assert doc["results"]["tshae"]["name"] == "TSHAE x2 (mean of errors) (kept weights)"
    pd.testing.assert_frame_equal(a, pd.read_parquet(tmp_path / "out" / "sim_quick_e_series" / "tshae.parquet"))
    with pytest.raises(ValueError, match="trained with stops shown as stops"):  # every member is checked
        benchmark_sim(SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1,
                                     detectors=("tshae",), tshae_from=str(saved), tshae_also=(str(saved),),
                                     stops_as_gaps=True), tmp_path / "out", quick=True, progress=None, tag="f")
    with pytest.raises(ValueError, match="need a first one, tshae_from"):
        benchmark_sim(SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1,
                                     detectors=("tshae",), tshae_also=(str(saved),)), tmp_path / "out",
                      quick=True, progress=None, tag="g")
    with pytest.raises(ValueError, match="give them with tshae_from"):  # a training's scoring is its own
        benchmark_sim(SimBenchConfig(machines=2, days=6.0, train_days=3.0, window=72, stride=12, epochs=1,
                                     detectors=("tshae",), tshae_scoring="vibration"), tmp_path / "out",
                      quick=True, progress=None, tag="h")


def test_a_seed_ensemble_trained_here_scores_as_its_kept_members_do(tmp_path: Path) -> None:
    """ensemble_seeds: each detector fitted once per seed, the mean of their errors scored; TSHAE's members saved
    one directory per seed score the same when read back as tshae_from + tshae_also."""
    import pandas as pd

    base = {"machines": 2, "days": 6.0, "train_days": 3.0, "window": 72, "stride": 12, "epochs": 1, "series": True}
    doc = benchmark_sim(SimBenchConfig(**base, detectors=("tshae", "pca"), ensemble_seeds=(0, 1),
                                       tshae_save=str(tmp_path / "models")), tmp_path / "out", quick=True,
                        progress=None, tag="ens")
    assert doc["results"]["tshae"]["name"] == "TSHAE x2 (mean of errors)"
    saved = sorted((tmp_path / "models").iterdir())
    assert [p.name.split("-")[2] for p in saved] == ["model0", "model1"]
    series = tmp_path / "out" / "sim_quick_ens_series"
    single = benchmark_sim(SimBenchConfig(**base, detectors=("pca",)), tmp_path / "out", quick=True, progress=None,
                           tag="one")
    # PCA has no seed: its ensemble is itself, through every stage
    assert doc["results"]["pca"]["name"] == single["results"]["pca"]["name"] + " x2 (mean of errors)"
    pd.testing.assert_frame_equal(pd.read_parquet(series / "pca.parquet"),
                                  pd.read_parquet(tmp_path / "out" / "sim_quick_one_series" / "pca.parquet"))
    benchmark_sim(SimBenchConfig(**base, detectors=("tshae",), tshae_from=str(saved[0]), tshae_also=(str(saved[1]),)),
                  tmp_path / "out", quick=True, progress=None, tag="kept")
    pd.testing.assert_frame_equal(pd.read_parquet(series / "tshae.parquet"),
                                  pd.read_parquet(tmp_path / "out" / "sim_quick_kept_series" / "tshae.parquet"))
    with pytest.raises(ValueError, match="two or more different seeds"):
        benchmark_sim(SimBenchConfig(**base, detectors=("pca",), ensemble_seeds=(1, 1)), tmp_path / "out",
                      quick=True, progress=None, tag="bad")
    with pytest.raises(ValueError, match="not both"):
        benchmark_sim(SimBenchConfig(**base, detectors=("pca",), ensemble_seeds=(1, 2), model_seed=3), tmp_path / "out",
                      quick=True, progress=None, tag="bad")


def test_stop_effect_compares_windows_holding_a_stop_with_windows_run_throughout() -> None:
    from pdm.evaluate.bench_sim import _Series, stop_effect, stop_note

    t = np.arange(6, dtype=np.int64)
    z = np.zeros((6, 1))
    a = _Series("a", t, np.array([1.0, 1.0, 1.0, 3.0, 3.0, np.nan]), z, 10.0, ["c"],
                counted=np.array([1.0, 1.0, 1.0, 0.5, 0.5, 0.5]))
    b = _Series("b", t, np.array([2.0, 2.0, 9.0, 5.0, 8.0, 8.0]), z, 20.0, ["c"],
                counted=np.array([1.0, 1.0, 0.95, 0.25, 0.1, 0.0]))  # 0.95: a start-up's warm-up, neither class
    e = stop_effect([a, b])
    assert e is not None and (e["windows_running"], e["windows_with_stop"]) == (5, 3)
    assert e["median_ratio_running"] == pytest.approx(0.1)  # 0.1 x 3, 0.1 x 2
    assert e["median_ratio_with_stop"] == pytest.approx(0.3)  # 0.3, 0.3, 0.25 (under 20 % counted: neither)
    assert e["quotient"] == pytest.approx(3.0)
    assert stop_effect([a, _Series("c", t, np.ones(6), z, 1.0, ["c"])]) is None  # plain stages: no shares
    doc = {"results": {"tshae": {"name": "TSHAE", "stop_effect": e}, "pca": {"name": "PCA", "stop_effect": None}}}
    assert "TSHAE 0.30 against 0.10 (3.0x)" in (stop_note(doc) or "") and "PCA" not in (stop_note(doc) or "")


def test_the_results_say_when_window_errors_were_trimmed() -> None:
    from pdm.evaluate.bench_sim import _trim_note

    assert _trim_note({"config": {}}) == "" and _trim_note({"config": {"error_trim": 0.0}}) == ""
    assert "largest 2%" in _trim_note({"config": {"error_trim": 0.02}})


def test_the_results_header_says_how_window_errors_and_z_scores_were_taken() -> None:
    from pdm.evaluate.bench_sim import _trim_note

    assert _trim_note({"config": {}}) == ""
    assert "largest 2%" in _trim_note({"config": {"error_trim": 0.02}})
    both = _trim_note({"config": {"error_trim": 0.02, "count_scaling": True, "stages": "product"}})
    assert "largest 2%" in both and "count_scaled" in both
    assert "count_scaled" not in _trim_note({"config": {"count_scaling": True, "stages": "plain"}})  # product only


def test_stop_thresholds_judge_windows_run_throughout_against_their_own_calibration() -> None:
    """A line that stops at weekends: the calibration windows holding the stop score far higher than the ones run
    throughout (TSHAE's weekend bias) and set the machine's threshold; with ``stop_thresholds`` a weekday window is
    judged against the weekday windows' own threshold, a window holding a stop as before."""
    from pdm.evaluate.bench_sim import FULL_CLASS_MIN, StageInputs, _Series, stage_series

    rng = np.random.default_rng(3)
    step_ns = 600 * 10**9
    n_full, n_stop, n = 90, 10, 40
    healthy = rng.normal(1.0, 0.05, (n_full + n_stop, 3))
    healthy[n_full:, :2] += 2.0  # the windows holding the weekend stop: imputed far off
    errors = rng.normal(1.0, 0.05, (n, 3))
    errors[:20, :2] += 0.6  # a fault in weekday windows: far above their calibration, below the weekend's
    cal_full = np.r_[np.ones(n_full, bool), np.zeros(n_stop, bool)]
    full = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    starts = np.arange(n, dtype=np.int64) * 12 * step_ns

    def staged(cal_f: np.ndarray | None, f: np.ndarray | None, on: bool) -> _Series:
        inp = StageInputs("m", ["a", "b", "c"], healthy, np.ones(len(healthy)), errors, starts, starts + 143 * step_ns,
                          np.ones(n), np.ones(n, bool), np.zeros(0, np.int64), {"load": np.zeros((n, 2))}, cal_f, f)
        got = stage_series(inp, 144 * step_ns, 12 * step_ns, stop_thresholds=on)
        assert got is not None
        return got

    plain, own = staged(cal_full, full, False), staged(cal_full, full, True)
    assert own.threshold == plain.threshold
    assert (plain.scores[:20] < plain.threshold).all() and (own.scores[:20] > own.threshold).all()
    assert np.array_equal(own.scores[20:], plain.scores[20:])  # windows holding a stop: as before
    ratio = own.scores[:20] / plain.scores[:20]
    assert np.allclose(ratio, ratio[0]) and ratio[0] > 3
    # too few weekday calibration windows, or none recorded: the machine's threshold for all
    few = cal_full.copy()
    few[FULL_CLASS_MIN - 1:n_full] = False
    assert np.array_equal(staged(few, full, True).scores, plain.scores, equal_nan=True)
    assert np.array_equal(staged(None, None, True).scores, plain.scores, equal_nan=True)
