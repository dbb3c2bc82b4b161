"""The view models behind the pages, on a hand-written store (no browser, no model)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dashboard.data import MAX_POINTS, DashboardData, DashboardError, health_score, pick_every
from dashboard.pages.fleet import tile as fleet_tile
from pdm.settings import load_settings
from tests.dashboard import handmade


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DashboardData:
    root = tmp_path_factory.mktemp("dash-data")
    handmade.build(root / "pdm.duckdb")
    settings = load_settings(store={"backend": "embedded", "path": str(root / "pdm.duckdb")}, data_dir=str(root))
    return DashboardData(settings)


def test_health_is_100_far_below_50_at_and_0_at_twice_the_threshold() -> None:
    assert health_score(0.0) == 100.0
    assert health_score(1.0) == 50.0
    assert health_score(3.0) == 0.0
    assert health_score(float("nan")) is None


def test_long_ranges_are_aggregated_by_the_store_to_at_most_max_points() -> None:
    assert pick_every(pd.Timedelta("1D")) is None
    assert pick_every(pd.Timedelta("90D")) == "4h"
    for span in ("7D", "30D", "90D", "365D"):
        every = pick_every(pd.Timedelta(span))
        assert every is None or pd.Timedelta(span) / pd.Timedelta(every) <= MAX_POINTS


def test_fleet_tiles_come_worst_first_with_line_health_and_time_to_failure(data: DashboardData) -> None:
    tiles = data.fleet()
    assert [t.machine for t in tiles] == ["m-alarm", "m-warn", "m-ok"]
    assert [t.status for t in tiles] == ["alarm", "warning", "ok"]
    assert [t.line for t in tiles] == ["line-a", "line-a", "line-b"]
    alarm = tiles[0]
    # no failure in the store's history: no time to failure (the score's trend, 30 h in pdm_alarm, is not shown)
    assert alarm.active_alarms == 1 and alarm.ttf_hours is None and alarm.health == 0.0
    assert alarm.top_channel == handmade.CHANNELS[0]
    assert tiles[2].health == pytest.approx(85.0)


def test_machine_view_aggregates_in_the_store_and_marks_alarm_log_and_maintenance(data: DashboardData) -> None:
    raw = data.machine("m-warn", "1d")
    assert raw.every is None  # one day at 10 min: raw points
    whole = data.machine("m-alarm", "all")
    assert whole.start == handmade.T0
    assert set(whole.sensors) == {"vibration rms", "vibration kurtosis", "temperature °C", "process"}
    assert list(whole.sensors["vibration rms"].columns) == ["de", "nde"]
    assert all(len(f) <= MAX_POINTS for f in whole.sensors.values())
    assert whole.score["ratio"].max() == pytest.approx(2.0)
    assert len(whole.alarms) == 1 and bool(whole.alarms["open"].iloc[0])
    assert "noisy bearing" in whole.log["message"].iloc[0]
    maint = data.machine("m-warn", "all").truth
    assert list(maint["kind"]) == ["maintenance"]
    with pytest.raises(DashboardError, match="time range"):
        data.machine("m-alarm", "5y")
    with pytest.raises(DashboardError, match="no data"):
        data.machine("nope", "7d")


def test_root_cause_lists_channels_in_rank_order_with_maps_and_log(data: DashboardData) -> None:
    alarm_ns = int(handmade.ALARM_AT.value)
    rc = data.rootcause("m-alarm", alarm_ns)
    assert list(rc.channels["channel"]) == handmade.CHANNELS
    assert rc.maps["channels"] == handmade.CHANNELS and len(rc.maps["diff"]) == 3
    assert rc.logs["message"].iloc[0] == "m-alarm: noisy bearing"
    with pytest.raises(DashboardError, match="no alarm"):
        data.rootcause("m-ok", alarm_ns)


def test_an_open_alarms_time_to_failure_is_what_remained_after_past_alarms_as_old(tmp_path) -> None:
    from dashboard.pages.common import alarm_ttf

    store = handmade.build(tmp_path / "pdm.duckdb")
    # m-ok's history: three failures, each warned of by an alarm 100, 150 and 200 h ahead (closed by the repair)
    past = [handmade.T0 - pd.Timedelta(f"{d}D") for d in (40, 30, 20)]
    for when, lead in zip(past, (100, 150, 200), strict=True):
        start = when - pd.Timedelta(f"{lead}h")
        store.write([{"measurement": "pdm_alarm", "time": start, "tags": {"machine": "m-ok", "model_version": "v0"},
                      "fields": {"severity": "warning", "status": "closed by work order", "end_ns": int(when.value),
                                 "last_ns": int(when.value), "peak_ratio": 3.0, "ttf_hours": -1.0,
                                 "top_channel": handmade.CHANNELS[2]}}])
    truth = pd.DataFrame({"plant": "p1", "line": "line-b", "machine": "m-ok", "kind": "bearing_wear",
                          "is_failure": True, "failure_ns": [int(w.value) for w in past],
                          "end_ns": [int((w + pd.Timedelta("8h")).value) for w in past]},
                         index=pd.DatetimeIndex([w - pd.Timedelta("10D") for w in past]))
    store.write(truth, "pdm_truth", ["plant", "line", "machine", "kind"])
    settings = load_settings(store={"backend": "embedded", "path": str(tmp_path / "pdm.duckdb")}, data_dir=str(tmp_path))
    data = DashboardData(settings, store)
    assert data.lead_history().leads_h == (100.0, 150.0, 200.0)
    row = data.alarms().query("open").iloc[0].to_dict()  # m-alarm's, open since its last scored window: age 0
    assert (row["left_h"], row["left_low_h"], row["left_high_h"], row["left_n"]) == (150.0, 125.0, 175.0, 3)
    assert alarm_ttf(row) == "~6.2 d (5.2 d–7.3 d after 3 past alarms as old)"
    assert next(t for t in data.fleet() if t.machine == "m-alarm").ttf_hours == 150.0
    # 120 h later only two past alarms had run that long: no estimate
    store.write([{"measurement": "pdm_alarm", "time": handmade.ALARM_AT, "tags": {"machine": "m-alarm", "model_version": "v1"},
                  "fields": {"last_ns": int((handmade.ALARM_AT + pd.Timedelta("120h")).value)}}])
    row = data.alarms().query("open").iloc[0].to_dict()
    assert np.isnan(row["left_h"]) and alarm_ttf(row).startswith("no estimate")


def test_root_cause_shows_the_latest_ranking_of_the_episode(tmp_path) -> None:
    store = handmade.build(tmp_path / "pdm.duckdb")
    alarm_ns = int(handmade.ALARM_AT.value)
    later = handmade.ALARM_AT + pd.Timedelta("6h")  # the score grew: ranked again, the last channel first
    store.write([{"measurement": "pdm_rootcause", "time": later,
                  "tags": {"machine": "m-alarm", "model_version": "v1", "alarm": str(alarm_ns), "rank": f"c{i:02d}"},
                  "fields": {"kind": "channel", "channel": c, "contribution": 1.0 / i}}
                 for i, c in enumerate(handmade.CHANNELS[::-1], 1)])
    settings = load_settings(store={"backend": "embedded", "path": str(tmp_path / "pdm.duckdb")}, data_dir=str(tmp_path))
    rc = DashboardData(settings, store).rootcause("m-alarm", alarm_ns)
    assert list(rc.channels["channel"]) == handmade.CHANNELS[::-1] and rc.ranked_ns == int(later.value)
    assert rc.maps == {} and rc.logs.empty  # of the ranking shown, not mixed with the earlier one's


def test_a_ranking_inside_an_excursion_says_it_is_ranked_by_the_change_since_the_excursions_baseline(
        tmp_path) -> None:
    from dashboard.figures import contributions_figure
    from dashboard.pages.rootcause import ranking_note

    store = handmade.build(tmp_path / "pdm.duckdb")
    alarm_ns = int(handmade.ALARM_AT.value)
    settings = load_settings(store={"backend": "embedded", "path": str(tmp_path / "pdm.duckdb")}, data_dir=str(tmp_path))
    data = DashboardData(settings, store)
    rc = data.rootcause("m-alarm", alarm_ns)
    assert "excursion" not in ranking_note(rc, alarm_ns)
    assert contributions_figure(rc).layout.title.text == "contribution to the anomaly score"
    maps = {**rc.maps, "ranked_by": "excursion_change"}
    store.write([{"measurement": "pdm_rootcause", "time": handmade.ALARM_AT,
                  "tags": {"machine": "m-alarm", "model_version": "v1", "alarm": str(alarm_ns), "rank": "maps"},
                  "fields": {"kind": "maps", "maps_json": json.dumps(maps)}}])
    rc = data.rootcause("m-alarm", alarm_ns)
    assert "moved since the excursion's own baseline" in ranking_note(rc, alarm_ns)
    assert ranking_note(rc, alarm_ns).startswith("Ranked at the window that raised the alarm.")
    assert contributions_figure(rc).layout.title.text == "share of the change since the excursion's baseline"


def test_acknowledging_stores_an_operator_log_entry_and_shows_on_the_alarm(data: DashboardData) -> None:
    alarm_ns = int(handmade.ALARM_AT.value)
    before = len(data.read("operator_log", "m-alarm"))
    with pytest.raises(DashboardError, match="comment"):
        data.acknowledge("m-alarm", alarm_ns, "   ", "anna")
    with pytest.raises(DashboardError, match="no alarm"):
        data.acknowledge("m-ok", alarm_ns, "looked", "anna")
    assert len(data.read("operator_log", "m-alarm")) == before  # nothing written for bad input
    data.acknowledge("m-alarm", alarm_ns, "bearing greased, watching", "anna\nsmith")
    log = data.read("operator_log", "m-alarm")
    ack = log[log["event_type"] == "alarm_ack"]
    assert len(ack) == 1
    assert ack["operator"].iloc[0] == "anna smith" and ack["line"].iloc[0] == "line-a"
    assert int(ack["alarm_ns"].iloc[0]) == alarm_ns
    assert "bearing greased, watching" in ack["message"].iloc[0]
    row = data.alarms(["m-alarm"]).iloc[0]
    assert row["acked_by"] == "anna smith" and "bearing greased" in row["ack_comment"]


def test_model_info_without_models_says_so(data: DashboardData) -> None:
    info = data.model()
    assert info["production"] is None and info["versions"] == []
    drift = data.score_drift()
    assert list(drift.columns) == ["median", "p90", "machines"] and drift["machines"].max() == 3


def test_an_alarm_a_newer_model_continued_shows_once_under_it(data: DashboardData) -> None:
    t = pd.Timestamp("2024-01-05T00:00Z")
    rows = pd.DataFrame({
        "machine": ["m-x", "m-x", "m-y"], "model_version": ["v1", "v2", "v1"],
        "severity": ["warning", "critical", "watch"], "status": ["continued", "open", "continued"],
        "end_ns": [t.value + 3_600 * 10**9, 0, t.value + 7_200 * 10**9], "peak_ratio": [1.6, 2.4, 1.1],
        "ttf_hours": [-1.0, 30.0, -1.0], "top_channel": ["vibration.de.rms"] * 3, "continued_by": ["v2", None, "v2"],
    }, index=pd.DatetimeIndex([t, t, t], name="time"))
    out = data.alarms(["m-x", "m-y"], log=pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC")), rows=rows)
    x = out[out["machine"] == "m-x"]
    assert len(x) == 1 and x["model_version"].iloc[0] == "v2" and bool(x["open"].iloc[0])
    assert x["severity"].iloc[0] == "critical"
    # a handed-over alarm whose successor is not in the rows read stays (closed at its last window)
    y = out[out["machine"] == "m-y"]
    assert len(y) == 1 and not bool(y["open"].iloc[0])


def test_a_machine_running_outside_its_models_range_is_shown_as_unwatched_not_as_ok(tmp_path) -> None:
    # The newest windows of m-blind ran at a load the model never saw: pdm_score has the windows'
    # rows with state outside_envelope and no score. Its tile must not look like a healthy "ok"
    # (an old score) nor like a stopped machine ("no score"), but say why nothing watches it.
    store = handmade.build(tmp_path / "pdm.duckdb")
    times = pd.date_range(handmade.T0, handmade.T0 + pd.Timedelta("3D"), freq="1h", inclusive="left")
    tags = {"plant": "p1", "line": "line-b", "machine": "m-blind"}
    store.write(pd.DataFrame({**tags, "speed_rpm": 1500.0, "load_pct": 35.0, "current_a": 9.0, "running": True},
                             index=times), "process", list(tags))
    blind = times >= handmade.T0 + pd.Timedelta("2D")
    score = pd.DataFrame({"machine": "m-blind", "model_version": "v1", "score": np.where(blind, np.nan, 0.4),
                          "threshold": 2.0, "ratio": np.where(blind, np.nan, 0.2),
                          "state": np.where(blind, "outside_envelope", "scored")}, index=times)
    store.write(score, "pdm_score", ["machine", "model_version"])
    store.close()
    settings = load_settings(store={"backend": "embedded", "path": str(tmp_path / "pdm.duckdb")},
                             data_dir=str(tmp_path))
    tiles = DashboardData(settings).fleet()
    assert [t.machine for t in tiles] == ["m-alarm", "m-warn", "m-blind", "m-ok"]
    t = tiles[2]
    assert t.status == "outside range" and t.health is None and t.ratio is None
    assert "speed or load outside" in t.note
    assert tiles[3].status == "ok" and tiles[3].note == ""  # points without a state read as before
    html = fleet_tile(t)
    assert 'data-status="outside range"' in html and "speed or load outside" in html
    # The machine page says it too, beside a score trace whose last value is two days old.
    data = DashboardData(settings)
    assert "speed or load outside" in data.machine("m-blind").note
    assert data.machine("m-ok").note == ""
    # A day into the excursion its own baseline is taken (pdm.detect.excursion): scored again, it is watched
    # (a tile with its score), and the machine page says against what.
    from pdm.store.embedded import EmbeddedStore

    again = times >= handmade.T0 + pd.Timedelta("2D12h")
    store = EmbeddedStore(tmp_path / "pdm.duckdb")
    store.write(score.assign(score=np.where(again, 0.6, score["score"]), ratio=np.where(again, 0.3, score["ratio"]),
                             state=np.where(again, "new_regime", score["state"])), "pdm_score",
                ["machine", "model_version"])
    store.close()
    t = next(t for t in DashboardData(settings).fleet() if t.machine == "m-blind")
    assert t.status == "ok" and t.ratio == pytest.approx(0.3) and t.note == ""
    assert "against its own baseline" in DashboardData(settings).machine("m-blind").note


def test_an_alarm_a_work_order_closed_says_so(data: DashboardData) -> None:
    """The alarm table and machine page say 'closed by work order' where a work order ended the episode."""
    from dashboard.pages.common import alarm_state
    from pdm.store.schema import CLOSED_BY_WORK_ORDER

    t = pd.Timestamp("2024-01-05T00:00Z")
    order = t + pd.Timedelta("30h")
    rows = pd.DataFrame({
        "machine": ["m-x", "m-y", "m-z"], "model_version": ["v1"] * 3,
        "severity": ["warning", "watch", "critical"], "status": [CLOSED_BY_WORK_ORDER, "closed", "open"],
        "end_ns": [order.value, (t + pd.Timedelta("8h")).value, 0], "peak_ratio": [1.6, 1.1, 3.2],
        "ttf_hours": [-1.0, -1.0, 20.0], "top_channel": ["vibration.de.rms"] * 3,
    }, index=pd.DatetimeIndex([t, t, t], name="time"))
    out = data.alarms(["m-x", "m-y", "m-z"], log=pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC")), rows=rows)
    state = {r["machine"]: alarm_state(r) for _, r in out.iterrows()}
    assert state == {"m-x": "closed by work order 2024-01-06 06:00", "m-y": "closed 2024-01-05 08:00", "m-z": "open"}
    # points written before warning_ns / critical_ns: at their severity since their start
    assert set(out["severity_since"]) == {t}


def test_an_alarm_says_since_when_it_is_at_its_severity(data: DashboardData) -> None:
    t = pd.Timestamp("2024-01-05T00:00Z")
    rows = pd.DataFrame({
        "machine": ["m-x", "m-y"], "model_version": ["v1"] * 2, "severity": ["critical", "watch"],
        "status": ["open", "closed"], "end_ns": [0, (t + pd.Timedelta("8h")).value], "peak_ratio": [3.2, 1.1],
        "ttf_hours": [-1.0, -1.0], "top_channel": ["vibration.de.rms"] * 2,
        "warning_ns": [(t + pd.Timedelta("2h")).value, 0], "critical_ns": [(t + pd.Timedelta("6h")).value, 0],
    }, index=pd.DatetimeIndex([t, t], name="time"))
    out = data.alarms(["m-x", "m-y"], log=pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC")), rows=rows)
    since = dict(zip(out["machine"], out["severity_since"], strict=True))
    assert since == {"m-x": t + pd.Timedelta("6h"), "m-y": t}
    from dashboard.pages.common import severity_since

    shown = {r["machine"]: severity_since(r) for _, r in out.iterrows()}
    assert shown == {"m-x": " since 2024-01-05 06:00", "m-y": ""}  # a watch is one since it was raised


def _stopped_store(backend: str, tmp_path):
    """Settings of a store to write to: embedded (with the hand-made fleet) or a private InfluxDB 1.x server."""
    if backend == "embedded":
        handmade.build(tmp_path / "pdm.duckdb").close()
        return load_settings(store={"backend": "embedded", "path": str(tmp_path / "pdm.duckdb")},
                             data_dir=str(tmp_path)), None
    import shutil

    if shutil.which("influxd") is None:
        pytest.skip("no influxd: run `make sysdeps`")
    from pdm.devtools.influxd import InfluxServer

    server = InfluxServer(tmp_path / "influxd").start()
    return load_settings(store={"backend": "influxdb1", "url": server.url, "database": "stop", "retries": 0},
                         data_dir=str(tmp_path)), server


@pytest.mark.parametrize(("backend", "stopped_for", "last_ratio", "work_order"),
                         [("embedded", "2D", 0.9, False), ("embedded", "2D", 0.2, False),
                          ("embedded", "9D", 0.9, False), ("embedded", "2D", 0.9, True),
                          ("influxdb1", "2D", 0.9, False), ("influxdb1", "2D", 0.9, True)])
def test_a_machine_stopped_for_the_weekend_keeps_the_health_of_its_last_day_scored(
        tmp_path, backend: str, stopped_for: str, last_ratio: float, work_order: bool) -> None:
    # m-stop ran and was scored, then stopped (its newest windows: not_running, no score). For a weekend
    # its tile keeps the status and health of its last day scored (the median: the window holding the
    # stop itself scores high) and says to when; a machine idle for longer than STOPPED_HEALTH_FOR
    # (7 days), or with a new baseline taken since (a work order), shows no score.
    from pdm.store import open_store

    settings, server = _stopped_store(backend, tmp_path)
    try:
        stop = handmade.T0 + pd.Timedelta("3D")
        times = pd.date_range(handmade.T0, stop + pd.Timedelta(stopped_for), freq="1h", inclusive="left")
        idle = times >= stop
        ratio = np.full(len(times), np.nan)
        ratio[~idle] = np.linspace(0.1, last_ratio, (~idle).sum())
        ratio[(~idle).sum() - 1] = 3.0  # the window that holds the stop
        state = np.where(idle, "not_running", "scored")
        if work_order:
            state[(~idle).sum() + 5: (~idle).sum() + 10] = "rebaseline"
        tags = {"plant": "p1", "line": "line-b", "machine": "m-stop"}
        with open_store(settings.store) as store:
            store.write(pd.DataFrame({**tags, "speed_rpm": 1500.0, "load_pct": 80.0, "current_a": 9.0,
                                      "running": True}, index=times[~idle]), "process", list(tags))
            store.write(pd.DataFrame({"machine": "m-stop", "model_version": "v1", "score": 2.0 * ratio,
                                      "threshold": 2.0, "ratio": ratio, "state": state}, index=times),
                        "pdm_score", ["machine", "model_version"])
        t = next(t for t in DashboardData(settings).fleet() if t.machine == "m-stop")
    finally:
        if server is not None:
            server.stop()
    last_scored = times[~idle][-1]
    if stopped_for == "9D" or work_order:
        assert t.status == "no score" and t.health is None and t.health_at is None
        assert "did not run" in t.note
        return
    last_day = ratio[(times > last_scored - pd.Timedelta("24h")) & ~idle]
    assert len(last_day) == 24 and t.health_at == last_scored and t.ratio == pytest.approx(np.median(last_day))
    assert t.health == pytest.approx(health_score(np.median(last_day)))
    assert t.status == ("warning" if np.median(last_day) >= 0.8 else "ok")
    assert f"over its last day scored, to {last_scored:%Y-%m-%d %H:%M}" in t.note
    assert f"{last_scored:%Y-%m-%d %H:%M}" in fleet_tile(t)


def test_the_machine_chart_keeps_to_the_chosen_range_when_an_alarm_began_before_it(data: DashboardData) -> None:
    import dataclasses

    from dashboard.figures import machine_figure

    # m-alarm's alarm opened on day 2 and is still open; the last 18 h of its data begin after that.
    whole = data.machine("m-alarm", "1d")
    view = dataclasses.replace(whole, start=whole.stop - pd.Timedelta("18h"))
    assert view.alarms["start"].min() < view.start
    fig = machine_figure(view)
    assert [pd.Timestamp(x) for x in fig.layout.xaxis.range] == [view.start, view.stop]
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert rects and all(view.start <= pd.Timestamp(s.x0) < pd.Timestamp(s.x1) <= view.stop for s in rects)
    # m-warn's maintenance on day 1 lies before its one-day range: neither a band nor a note
    warn = machine_figure(data.machine("m-warn", "1d"))
    assert not [s for s in warn.layout.shapes if s.type == "rect"]
    assert not [a for a in warn.layout.annotations if a.text == "maintenance"]
    assert [a.text for a in machine_figure(data.machine("m-warn", "all")).layout.annotations].count("maintenance") == 1


def test_a_ranked_channel_says_what_ranked_it_above_a_larger_share() -> None:
    from dashboard.pages.rootcause import channel_line

    # The demo's lubrication alarm: the HF band leads with the envelope bands that follow it (a raised floor),
    # though each of those holds a larger share of the score than the band itself.
    lead = pd.Series({"channel": "vibration.de.band_hf", "contribution": 0.082, "zscore": 54.2,
                      "attention_change": 0.594, "explained": 0.469, "follows": None})
    follower = pd.Series({"channel": "vibration.de.band_bpfo", "contribution": 0.197, "zscore": 129.7,
                          "attention_change": 0.573, "explained": 0.197, "follows": "vibration.de.band_hf"})
    alone = pd.Series({"channel": "temperature.bearing.celsius", "contribution": 0.023, "zscore": 15.3,
                       "attention_change": 0.801, "explained": 0.023, "follows": None})
    older = pd.Series({"channel": "vibration.de.rms", "contribution": 0.023, "zscore": 15.3,
                       "attention_change": 0.801})  # a point written before explained / follows were stored
    assert channel_line(lead).startswith("explains 0.469 of the score with the channels that follow it "
                                         "(contribution 0.082)")
    assert channel_line(follower).startswith("follows vibration.de.band_hf; contribution 0.197")
    assert channel_line(alone) == channel_line(older) == "contribution 0.023, z 15.3, attention change 0.801"


def test_the_machine_page_says_which_window_its_score_is_of_when_the_newest_has_none(tmp_path) -> None:
    from dashboard.pages.machine import latest_score

    store = handmade.build(tmp_path / "pdm.duckdb")
    times = pd.date_range(handmade.T0, handmade.T0 + pd.Timedelta("3D"), freq="1h", inclusive="left")
    idle = times >= handmade.T0 + pd.Timedelta("2D")
    tags = {"plant": "p1", "line": "line-b", "machine": "m-stop"}
    store.write(pd.DataFrame({**tags, "speed_rpm": 1500.0, "load_pct": 80.0, "current_a": 9.0, "running": True},
                             index=times[~idle]), "process", list(tags))
    store.write(pd.DataFrame({"machine": "m-stop", "model_version": "v1", "score": np.where(idle, np.nan, 0.8),
                              "threshold": 2.0, "ratio": np.where(idle, np.nan, 0.4),
                              "state": np.where(idle, "not_running", "scored")}, index=times),
                "pdm_score", ["machine", "model_version"])
    store.close()
    data = DashboardData(load_settings(store={"backend": "embedded", "path": str(tmp_path / "pdm.duckdb")},
                                       data_dir=str(tmp_path)))
    label, value = latest_score(data.machine("m-stop", "all"))
    assert value == pytest.approx(0.4)
    assert label.startswith(f"score / threshold at its last scored window, {times[~idle][-1]:%Y-%m-%d %H:%M} UTC")
    label, value = latest_score(data.machine("m-ok", "all"))  # scored to its end
    assert label == "latest score / threshold " and value == pytest.approx(handmade.RATIO["m-ok"])


def test_the_machine_page_shows_no_score_from_before_a_repair(tmp_path) -> None:
    """A machine repaired (a work order: a new baseline) and stopped since: its pre-repair score, 31x the threshold,
    is history in the chart, not the machine's score or health, as its fleet tile has it."""
    from dashboard.pages.machine import latest_score

    store = handmade.build(tmp_path / "pdm.duckdb")
    times = pd.date_range(handmade.T0, handmade.T0 + pd.Timedelta("3D"), freq="1h", inclusive="left")
    state = np.array(["scored"] * 30 + ["rebaseline"] * 20 + ["not_running"] * 22)
    tags = {"plant": "p1", "line": "line-b", "machine": "m-fixed"}
    store.write(pd.DataFrame({**tags, "speed_rpm": 1500.0, "load_pct": 80.0, "current_a": 9.0, "running": True},
                             index=times[:50]), "process", list(tags))
    store.write(pd.DataFrame({"machine": "m-fixed", "model_version": "v1",
                              "score": np.where(state == "scored", 62.0, np.nan), "threshold": 2.0,
                              "ratio": np.where(state == "scored", 31.0, np.nan), "state": state}, index=times),
                "pdm_score", ["machine", "model_version"])
    store.close()
    data = DashboardData(load_settings(store={"backend": "embedded", "path": str(tmp_path / "pdm.duckdb")},
                                       data_dir=str(tmp_path)))
    view = data.machine("m-fixed", "all")
    assert view.rebaselined == times[30]
    label, value = latest_score(view)
    assert value is None and label.startswith(f"score / threshold: none since the new baseline of {times[30]:%Y-%m-%d %H:%M}")
    tile = next(t for t in data.fleet() if t.machine == "m-fixed")
    assert tile.status == "no score" and tile.health is None
    # stopped without a work order in between, the last scored window's score stands (and says of when)
    view = data.machine("m-ok", "all")
    assert view.rebaselined is None


def test_a_closed_alarm_shows_no_time_to_failure(data: DashboardData) -> None:
    from dashboard.pages.common import alarm_ttf

    row = data.alarms().iloc[0].to_dict()  # m-alarm's open alarm
    assert row["open"] and alarm_ttf(row) != "—"
    assert alarm_ttf({**row, "open": False, "ttf_hours": 0.2}) == "—"  # its last estimate ("~0 h" at a repair)
