"""What the pages show, as plain view models built from store frames.

The dashboard only reads the store (sensor data, ``pdm_score``, ``pdm_alarm``,
``pdm_rootcause``, ``pdm_truth``, ``operator_log``) and the models directory;
the one thing it writes is an operator-log entry when someone acknowledges an
alarm. Everything here is testable without a browser. Large time ranges are
downsampled by the store (``every=``), never in the browser.
"""

from __future__ import annotations

import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pdm.detect.leads import LeadHistory
from pdm.detect.persist import reached_times, without_handed_over
from pdm.settings import Settings
from pdm.store import Store, open_store
from pdm.store.schema import (
    ALARM,
    NOT_RUNNING,
    OPERATOR_LOG,
    OUTSIDE_ENVELOPE,
    REBASELINE,
    ROOTCAUSE,
    SCORE,
    SCORE_STATES,
    SCORED,
)

TRUTH = "pdm_truth"
#: An open alarm's time to failure, from how long past alarms as old ran before their failures (pdm.detect.leads).
LEFT_COLUMNS = ["left_h", "left_low_h", "left_high_h", "left_n"]
ACK_EVENT = "alarm_ack"
#: Time ranges of the machine page: key → (label, length).
RANGES: dict[str, tuple[str, pd.Timedelta | None]] = {
    "1d": ("1 day", pd.Timedelta("1D")), "7d": ("7 days", pd.Timedelta("7D")),
    "30d": ("30 days", pd.Timedelta("30D")), "90d": ("90 days", pd.Timedelta("90D")),
    "all": ("all", None),
}
#: Points per series the browser gets at most; longer ranges are aggregated by the store.
MAX_POINTS = 600
_NICE_STEPS = ["1min", "5min", "10min", "30min", "1h", "2h", "4h", "6h", "12h", "1D", "2D", "7D"]
#: Tile statuses, worst first. "outside range": the machine runs at a speed or load its model never saw,
#: so its windows are not scored (pdm_score state ``outside_envelope``): nobody watches it until a retrain.
STATUS_ORDER = {"alarm": 0, "warning": 1, "outside range": 2, "ok": 3, "no score": 4}
WARNING_RATIO = 0.8  # score at 80 % of the threshold: amber before red
#: A machine that stopped (its newest windows: not running) keeps the health and status of its last
#: scored window this long: a weekend stop is not "no score"; a machine idle for longer is.
STOPPED_HEALTH_FOR = pd.Timedelta("7D")
#: ... and that health is the median score ratio of its scored windows in this span before it stopped.
STOPPED_HEALTH_SPAN = pd.Timedelta("24h")


class DashboardError(ValueError):
    """A request the dashboard cannot serve (unknown machine, bad comment, ...)."""


def health_score(ratio: float | None) -> float | None:
    """0–100: 100 far below the threshold, 50 at the threshold, 0 at twice the threshold."""
    if ratio is None or not math.isfinite(ratio):
        return None
    return float(np.clip(100.0 * (1.0 - 0.5 * ratio), 0.0, 100.0))


def pick_every(span: pd.Timedelta, floor: str = "10min") -> str | None:
    """The store-side aggregation interval that keeps ``span`` under MAX_POINTS points (None = raw)."""
    if span / pd.Timedelta(floor) <= MAX_POINTS:
        return None
    for step in _NICE_STEPS:
        if pd.Timedelta(step) >= pd.Timedelta(floor) and span / pd.Timedelta(step) <= MAX_POINTS:
            return step
    return _NICE_STEPS[-1]


def unscored_state(state: object) -> str:
    """A pdm_score ``state`` that says why a window has no score; "" for a scored window or no state."""
    return state if isinstance(state, str) and state != SCORED else ""


class _StateNote:
    """``note`` from the dataclass's ``unscored`` state: why the newest window has no score, in words."""

    unscored: str

    @property
    def note(self) -> str:
        """Why the newest window has no score, in words ("" when it has one)."""
        return SCORE_STATES.get(self.unscored, "")


@dataclass
class MachineTile(_StateNote):
    machine: str
    line: str
    plant: str
    status: str
    health: float | None
    ratio: float | None
    ttf_hours: float | None  # the soonest time to failure of its open alarms, from past alarms (None: no estimate)
    active_alarms: int
    last_scored: pd.Timestamp | None
    top_channel: str = ""
    unscored: str = ""  # the newest window's pdm_score state when it has no score ("" otherwise)
    #: When the machine is stopped and its health and status come from its last scored window: that window.
    health_at: pd.Timestamp | None = None

    @property
    def note(self) -> str:
        if self.health_at is not None:
            return f"not running; health over its last day scored, to {self.health_at:%Y-%m-%d %H:%M} UTC"
        return super().note


@dataclass
class MachineView(_StateNote):
    machine: str
    start: pd.Timestamp
    stop: pd.Timestamp
    every: str | None
    sensors: dict[str, pd.DataFrame]  # panel → wide frame (columns = series)
    score: pd.DataFrame  # score, threshold, ratio
    alarms: pd.DataFrame
    log: pd.DataFrame  # operator-log entries in range (incl. acknowledgements)
    truth: pd.DataFrame  # maintenance, repairs, failures
    tile: MachineTile | None = None
    unscored: str = ""  # the newest window's pdm_score state when it has no score ("" otherwise)
    #: Where the newest window has no score: the first window of a new baseline (a work order) after the last
    #: scored one, if any; the old score says nothing about the repaired machine (None: none).
    rebaselined: pd.Timestamp | None = None


@dataclass
class RootCause:
    machine: str
    alarm_ns: int
    alarm: dict[str, Any]
    channels: pd.DataFrame  # channel, contribution, zscore, attention_change[, explained, follows] (rank order)
    logs: pd.DataFrame  # time, event_type, message, weight
    maps: dict[str, Any] = field(default_factory=dict)
    ranked_ns: int | None = None  # end of the window ranked: the alarm's start, or later as its score grew


class DashboardData:
    """Reads for the pages; one store connection, used one request at a time."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        pipeline = getattr(settings, "pipeline", None)
        self.models_dir = Path(getattr(pipeline, "models_dir", None) or settings.data_dir / "models")
        self._store = store
        self._lock = threading.RLock()
        self._last_ok = 0.0  # monotonic time of the last successful store call

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.store)
        return self._store

    def read(self, measurement: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
        # Reads run side by side (every back end reads thread-safely; the embedded one
        # shares one DuckDB instance per process); only opening the store is locked.
        with self._lock:
            store = self.store
        try:
            out = store.read(measurement, *args, **kwargs)
        except Exception:
            self._last_ok = 0.0
            raise
        self._last_ok = time.monotonic()
        return out

    def read_many(self, calls: dict[str, tuple[Any, ...]]) -> dict[str, pd.DataFrame]:
        """Several reads at once: name → (measurement, args..., kwargs dict)."""
        with ThreadPoolExecutor(min(len(calls), 6), thread_name_prefix="pdm-dash-read") as pool:
            futures = {k: pool.submit(self.read, *c[:-1], **c[-1]) for k, c in calls.items()}
            return {k: f.result() for k, f in futures.items()}

    def ping(self, fresh_s: float = 0.0) -> None:
        """Raise a StoreError unless the store answers.

        A read that succeeded less than ``fresh_s`` seconds ago counts as an
        answer, so the banner's check does not queue behind the pages' reads.
        """
        if fresh_s > 0 and time.monotonic() - self._last_ok < fresh_s:
            return
        with self._lock:
            try:
                self.store.ping()
            except Exception:
                self._last_ok = 0.0
                raise
            self._last_ok = time.monotonic()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # ------------------------------------------------------------------ fleet
    def latest_scores(self) -> pd.DataFrame:
        """Per machine the newest score point: score, threshold, ratio, state, model_version, time; and
        scored_time / scored_ratio, what the machine last showed (see :meth:`_last_scored`)."""
        daily = self.read(SCORE, fields=["score", "threshold", "ratio"], every="1D", agg="last")
        if daily.empty:
            return pd.DataFrame(columns=["machine", "model_version", "score", "threshold", "ratio", "time"])
        daily = daily.reset_index()
        last = daily.sort_values("time").groupby("machine").tail(1).set_index("machine")
        last["state"] = None  # points written before pdm_score had a state have none
        # Refine the newest day to exact points (raw scores from the day before it: a stop's last day scored;
        # from further back for machines whose newest day has no score, as far as a stop's score stands).
        start = last["time"].max()
        stale = daily[daily["machine"].isin(last.index[last["ratio"].isna()]) & daily["ratio"].notna()
                      & (daily["time"] >= start - STOPPED_HEALTH_FOR - pd.Timedelta("1D"))]
        recent = self.read(SCORE, start=min([start, *stale["time"]]) - STOPPED_HEALTH_SPAN).reset_index()
        if not recent.empty:
            exact = recent.sort_values("time").groupby("machine").tail(1).set_index("machine")
            exact = exact[exact["time"] >= start]  # machines with a point in the newest day, as before
            cols = ["time", "score", "threshold", "ratio", "model_version", *(["state"] if "state" in exact else [])]
            last.loc[exact.index, cols] = exact[cols]
        last["scored_time"], last["scored_ratio"] = last["time"].where(last["ratio"].notna()), last["ratio"]
        self._last_scored(recent, last)
        return last.reset_index()

    @staticmethod
    def _last_scored(points: pd.DataFrame, last: pd.DataFrame) -> None:
        """Fill ``scored_time`` / ``scored_ratio`` of machines whose newest window has no score from ``points``
        (raw pdm_score points): their newest scored window and the median ratio of the day of scored windows up to it.

        Looked for as far back as a stop's score still stands (``STOPPED_HEALTH_FOR``), and not across
        a new baseline (a work order since: the old score says nothing about the repaired machine).
        A median, because the window that holds the stop itself scores high (a machine running down).
        """
        need = last.index[last["ratio"].isna()]
        if not len(need) or points.empty:
            return
        points = points[points["machine"].isin(need)]
        scored = points[points["ratio"].notna()]
        if scored.empty:
            return
        when = scored.groupby("machine")["time"].max()  # each machine's newest scored window
        since = points["time"] > points["machine"].map(when)
        state = points["state"] if "state" in points else pd.Series("", index=points.index)
        rebaselined = (since & (state == REBASELINE)).groupby(points["machine"]).any()
        recent = scored[scored["time"] > scored["machine"].map(when) - STOPPED_HEALTH_SPAN]
        median = recent.groupby("machine")["ratio"].median()
        keep = [m for m in when.index if not rebaselined.get(m, False)]
        last.loc[keep, "scored_time"] = when[keep]
        last.loc[keep, "scored_ratio"] = median[keep].astype(float)

    def as_of(self) -> pd.Timestamp | None:
        """Newest time with scores (else sensor data): the fleet's "now"."""
        scores = self.read(SCORE, fields=["ratio"], every="7D", agg="last")
        if not scores.empty:
            lo = scores.index.max()
            return self.read(SCORE, start=lo, fields=["ratio"]).index.max()
        proc = self.read("process", fields=["speed_rpm"], every="7D", agg="max")
        if proc.empty:
            return None
        return self.read("process", start=proc.index.max(), fields=["speed_rpm"]).index.max()

    def places(self, around: pd.Timestamp | None) -> pd.DataFrame:
        """plant and line of each machine, from its process data near ``around``."""
        start = None if around is None else around - pd.Timedelta("1D")
        proc = self.read("process", start=start, fields=["speed_rpm"], every="1D", agg="last")
        if proc.empty:
            return pd.DataFrame(columns=["plant", "line"])
        return proc.reset_index().groupby("machine")[["plant", "line"]].last()

    def alarms(self, machines: list[str] | None = None, log: pd.DataFrame | None = None,
               rows: pd.DataFrame | None = None) -> pd.DataFrame:
        """Every alarm episode, newest first, with ``open`` and acknowledgement columns."""
        a = self.read(ALARM, machines) if rows is None else rows
        cols = ["machine", "model_version", "start", "alarm_ns", "severity", "severity_since", "status", "open",
                "end", "peak_ratio", "ttf_hours", "top_channel", "acked_by", "ack_comment", *LEFT_COLUMNS]
        if a.empty:
            return pd.DataFrame(columns=cols)
        fleet = a if machines is None and rows is None else None  # every machine's alarms: the history's too
        a = a.reset_index().rename(columns={"time": "start"})
        a["alarm_ns"] = a["start"].map(lambda t: int(t.value))
        a = without_handed_over(a)
        end = a["end_ns"].fillna(0).astype("int64")
        a["open"] = (end == 0) | (a["status"].astype(str).str.lower() == "open")
        a["end"] = pd.to_datetime(end.where(end > 0), unit="ns", utc=True)
        self._time_left(a, fleet)
        acks = self.acknowledgements(machines, a["start"].min(), log)
        a["acked_by"], a["ack_comment"] = "", ""
        if not acks.empty:
            last = acks.sort_values("time").groupby(["machine", "alarm_ns"]).tail(1)
            key = dict(zip(zip(last["machine"], last["alarm_ns"], strict=True),
                           zip(last["operator"], last["message"], strict=True), strict=True))
            for i, row in a.iterrows():
                hit = key.get((row["machine"], row["alarm_ns"]))
                if hit:
                    a.at[i, "acked_by"], a.at[i, "ack_comment"] = hit
        for c in ("severity", "status", "top_channel"):
            a[c] = a[c].fillna("").astype(str)
        # when it reached its severity (its start for a watch, or for a point written before that was kept)
        a["severity_since"] = [pd.Timestamp(reached_times(r, r["start"].value).get(r["severity"], r["start"].value), tz="UTC")
                               for r in a.to_dict("records")]
        return a.sort_values("start", ascending=False)[cols].reset_index(drop=True)

    def lead_history(self, alarms: pd.DataFrame | None = None) -> LeadHistory:
        """How long the plant's past alarms ran before their failures (pdm.detect.leads): an open alarm's time
        to failure is read from it, not from the score's trend (measured to say little of it). ``alarms``: every
        machine's ``pdm_alarm`` points, when already read."""
        return LeadHistory.from_store(self.store, alarms=alarms)

    def _time_left(self, a: pd.DataFrame, fleet: pd.DataFrame | None = None) -> None:
        """``left_h`` (median), ``left_low_h`` / ``left_high_h`` (quartiles), ``left_n``: what remained after past
        alarms as old as each open one (its age to its last scored window); NaN for a closed one or no estimate.
        ``fleet``: every machine's alarm points as read (else read again for the history)."""
        for c in LEFT_COLUMNS:
            a[c] = np.nan
        if not a["open"].any():
            return
        history = self.lead_history(fleet)
        last = a["last_ns"].fillna(0).astype("int64") if "last_ns" in a else pd.Series(0, index=a.index)
        for i in a.index[a["open"].to_numpy()]:
            got = history.left_at(int(a.at[i, "alarm_ns"]), int(last[i]))
            if got is not None:
                a.loc[i, LEFT_COLUMNS] = [got.median_h, got.low_h, got.high_h, got.n]

    def acknowledgements(self, machines: list[str] | None, since: Any, logs: pd.DataFrame | None = None) -> pd.DataFrame:
        """``alarm_ack`` entries since ``since`` (from ``logs`` when given: it must cover that range)."""
        logs = self.read(OPERATOR_LOG, machines, start=since) if logs is None else logs[logs.index >= since]
        if logs.empty or "alarm_ns" not in logs.columns:
            return pd.DataFrame(columns=["time", "machine", "alarm_ns", "operator", "message"])
        acks = logs[logs["event_type"] == ACK_EVENT].reset_index()
        acks = acks[acks["alarm_ns"].notna()]
        acks["alarm_ns"] = acks["alarm_ns"].astype("int64")
        return acks[["time", "machine", "alarm_ns", "operator", "message"]]

    def fleet(self) -> list[MachineTile]:
        """One tile per machine, worst first (alarm, warning, ok, unscored; then by health)."""
        scores = self.latest_scores().set_index("machine")
        now = scores["time"].max() if len(scores) else self.as_of()
        places = self.places(now)
        alarms = self.alarms()
        machines = sorted(set(places.index) | set(scores.index) | set(alarms["machine"]))
        rows: dict[Any, dict[str, Any]] = scores.to_dict("index")  # per-cell .at lookups cost 0.2 s for 200 machines
        tiles = []
        for m in machines:
            row = rows.get(m, {})
            ratio = float(row["ratio"]) if pd.notna(row.get("ratio")) else None
            mine = alarms[(alarms["machine"] == m) & alarms["open"]]
            ttf = None
            if len(mine):  # the soonest of its open alarms' times left, as past alarms that old had (NaN: none)
                t = pd.to_numeric(mine["left_h"], errors="coerce").dropna()
                ttf = float(t.min()) if len(t) else None
            state = row.get("state")
            unscored = unscored_state(state) if ratio is None else ""
            health_at = None
            if unscored == NOT_RUNNING and pd.notna(row.get("scored_time")) \
                    and row["time"] - row["scored_time"] <= STOPPED_HEALTH_FOR:
                ratio, health_at = float(row["scored_ratio"]), row["scored_time"]
            if len(mine):
                status = "alarm"
            elif unscored == OUTSIDE_ENVELOPE:
                status = "outside range"
            elif ratio is None:
                status = "no score"
            elif ratio >= WARNING_RATIO:
                status = "warning"
            else:
                status = "ok"
            tiles.append(MachineTile(
                machine=m, line=str(places.at[m, "line"]) if m in places.index else "unknown",
                plant=str(places.at[m, "plant"]) if m in places.index else "",
                status=status, health=health_score(ratio), ratio=ratio, ttf_hours=ttf,
                active_alarms=int(len(mine)),
                last_scored=row.get("time"),
                top_channel=str(mine["top_channel"].iloc[0]) if len(mine) else "", unscored=unscored,
                health_at=health_at,
            ))
        tiles.sort(key=lambda t: (STATUS_ORDER.get(t.status, 9), t.health if t.health is not None else 101, t.machine))
        return tiles

    # ---------------------------------------------------------------- machine
    def machine(self, machine: str, range_key: str = "7d") -> MachineView:
        """Trends, score, alarms, log and maintenance of one machine over a range ending at its newest data."""
        if range_key not in RANGES:
            raise DashboardError(f"unknown time range {range_key!r}; one of {', '.join(RANGES)}")
        stop = self._machine_end(machine)
        length = RANGES[range_key][1]
        start = self._machine_start(machine) if length is None else stop - length
        span = stop - start
        every = pick_every(span)
        fine = pick_every(span, "1min")
        got = self.read_many({
            "vib": ("vibration", machine, start, stop, {"fields": ["rms", "kurtosis"], "every": every}),
            "temp": ("temperature", machine, start, stop, {"fields": ["celsius"], "every": every}),
            "proc": ("process", machine, start, stop, {"fields": ["speed_rpm", "load_pct", "current_a"],
                                                       "every": fine}),
            # The peak matters in a score trace: aggregate with max (the threshold moves slowly).
            "score": (SCORE, machine, start, stop, {"fields": ["score", "threshold", "ratio"], "every": fine,
                                                    "agg": "max"}),
            "alarms": (ALARM, machine, {}),
            "truth": (TRUTH, machine, {}),
        })
        vib, temp, proc, score, alarm_rows, truth = (got[k] for k in ("vib", "temp", "proc", "score", "alarms", "truth"))
        panels: dict[str, pd.DataFrame] = {}
        for f, panel in (("rms", "vibration rms"), ("kurtosis", "vibration kurtosis")):
            panels[panel] = _wide(vib, "sensor", f)
        panels["temperature °C"] = _wide(temp, "sensor", "celsius")
        panels["process"] = proc[[c for c in ("speed_rpm", "load_pct", "current_a") if c in proc]].astype(float) \
            if not proc.empty else pd.DataFrame()
        if not score.empty:
            score = score[["score", "threshold", "ratio"]].groupby(level=0).max().astype(float)
        # One operator-log read serves the markers and the acknowledgements (written later, at real time).
        since = min([start, *alarm_rows.index]) if not alarm_rows.empty else start
        logs = self.read(OPERATOR_LOG, machine, start=since)
        alarms = self.alarms([machine], logs, alarm_rows)
        end = alarms["end"].fillna(stop)
        alarms = alarms[(alarms["start"] < stop) & (end >= start)]
        log = logs[(logs.index >= start) & (logs.index < stop)]
        if not truth.empty:
            tend = pd.to_datetime(truth["end_ns"].astype("int64"), unit="ns", utc=True)
            truth = truth[(truth.index < stop) & (tend.to_numpy() >= start)]
        scored = score.index[score["ratio"].notna()] if not score.empty else []
        unscored, rebaselined = self._unscored(machine, stop, scored[-1] if len(scored) else None)
        return MachineView(machine, start, stop, every, panels, score, alarms, log, truth,
                           unscored=unscored, rebaselined=rebaselined)

    def _unscored(self, machine: str, stop: pd.Timestamp,
                  scored_until: pd.Timestamp | None = None) -> tuple[str, pd.Timestamp | None]:
        """The newest window's state when it has no score ("" when it has one, or its point has no state), and
        the first window of a new baseline after ``scored_until`` (the range's last scored time), if any.

        The score trace's last value is the last *scored* window: without this a machine running
        outside its model's range would show a days-old score as if it were current, and a repaired one
        its score from before the repair.
        """
        start = stop - pd.Timedelta("1D")
        if scored_until is not None:
            start = min(start, scored_until)
        recent = self.read(SCORE, machine, start, stop, fields=["state"])
        if recent.empty or "state" not in recent:
            return "", None
        recent = recent.sort_index()
        state = unscored_state(recent["state"].iloc[-1])
        if not state:
            return "", None
        after = recent if scored_until is None else recent[recent.index > scored_until]
        new = after.index[after["state"] == REBASELINE]
        return state, (new[0] if len(new) else None)

    def _machine_end(self, machine: str) -> pd.Timestamp:
        """End of the machine's newest hour with scored windows (else sensor data): one aggregated read.

        Windows count whether they got a score or not (``threshold`` is on every pdm_score point), so
        days a machine ran unscored (outside its model's range) are in the page, as a gap in the score.
        """
        for meas, f in ((SCORE, "threshold"), ("process", "speed_rpm"), ("vibration", "rms")):
            hourly = self.read(meas, machine, fields=[f], every="1h", agg="last")
            if not hourly.empty:
                return hourly.index.max() + pd.Timedelta("1h")
        raise DashboardError(f"no data for machine {machine!r}")

    def _machine_start(self, machine: str) -> pd.Timestamp:
        for meas, f in (("process", "speed_rpm"), (SCORE, "ratio")):
            hourly = self.read(meas, machine, fields=[f], every="1h", agg="last")
            if not hourly.empty:
                return hourly.index.min()
        raise DashboardError(f"no data for machine {machine!r}")

    # ------------------------------------------------------------- root cause
    def rootcause(self, machine: str, alarm_ns: int) -> RootCause:
        alarms = self.alarms([machine])
        hit = alarms[alarms["alarm_ns"] == int(alarm_ns)]
        if hit.empty:
            raise DashboardError(f"no alarm of {machine} starting at {pd.Timestamp(int(alarm_ns), tz='UTC')}")
        alarm = hit.iloc[0].to_dict()
        # Ranked when raised (time = the alarm's start) and again as the episode's score grew: the latest.
        rc = self.read(ROOTCAUSE, machine, int(alarm_ns))
        if not rc.empty:
            rc = rc[rc["alarm"] == str(int(alarm_ns))]
            if (rc["model_version"] == alarm["model_version"]).any():
                rc = rc[rc["model_version"] == alarm["model_version"]]
        ranked_ns = None
        if not rc.empty:
            rc = rc[rc.index == rc.index.max()]
            ranked_ns = int(rc.index.max().value)
        ch_cols = ["channel", "contribution", "zscore", "attention_change", "explained", "follows"]
        channels = pd.DataFrame(columns=ch_cols)
        logs = pd.DataFrame(columns=["time", "event_type", "message", "weight"])
        maps: dict[str, Any] = {}
        if not rc.empty:
            rc = rc.reset_index(drop=True).sort_values("rank")
            rank = rc["rank"].astype(str)
            c = rc[rank.str.startswith("c")]
            channels = c[[k for k in ch_cols if k in c]].reset_index(drop=True)
            lg = rc[rank.str.startswith("l")]
            if not lg.empty:
                logs = pd.DataFrame({
                    "time": pd.to_datetime(lg["log_ns"].astype("int64"), unit="ns", utc=True).to_numpy(),
                    "event_type": lg["event_type"].to_numpy(), "message": lg["message"].to_numpy(),
                    "weight": lg["weight"].astype(float).to_numpy()})
            m = rc[rank == "maps"]
            if not m.empty and isinstance(m["maps_json"].iloc[0], str):
                maps = json.loads(m["maps_json"].iloc[0])
        return RootCause(machine, int(alarm_ns), alarm, channels, logs, maps, ranked_ns)

    # ---------------------------------------------------------------- actions
    def acknowledge(self, machine: str, alarm_ns: int, comment: str, operator: str) -> dict[str, Any]:
        """Store an acknowledgement as an ``operator_log`` entry (event_type ``alarm_ack``)."""
        comment = (comment or "").strip()
        if not comment:
            raise DashboardError("write a comment to acknowledge the alarm")
        if len(comment) > 1000:
            raise DashboardError("the comment is longer than 1000 characters")
        operator = " ".join((operator or "").split())[:64] or "operator"
        alarms = self.alarms([machine])
        if not (alarms["alarm_ns"] == int(alarm_ns)).any():
            raise DashboardError(f"no alarm of {machine} starting at {alarm_ns}")
        places = self._place(machine)
        started = pd.Timestamp(int(alarm_ns), unit="ns", tz="UTC")
        now = pd.Timestamp.now(tz="UTC")
        point = {"measurement": OPERATOR_LOG,
                 "tags": {"plant": places[0], "line": places[1], "machine": machine,
                          "event_type": ACK_EVENT, "operator": operator},
                 "fields": {"message": f"acknowledged alarm of {started:%Y-%m-%d %H:%M} UTC: {comment}",
                            "severity": 0, "alarm_ns": int(alarm_ns)},
                 "time": now}
        with self._lock:
            self.store.write([point])
        return point

    def _place(self, machine: str) -> tuple[str, str]:
        proc = self.read("process", machine, fields=["speed_rpm"], every="30D", agg="last")
        if proc.empty:
            return "", ""
        return str(proc["plant"].iloc[-1]), str(proc["line"].iloc[-1])

    # ------------------------------------------------------------------ model
    def model(self) -> dict[str, Any]:
        """Production version, its metadata, every version, the promotion history and drift."""
        from pdm.model import registry

        out: dict[str, Any] = {"models_dir": str(self.models_dir), "production": None, "metadata": {},
                               "versions": [], "history": [], "drift": None, "problem": ""}
        try:
            out["versions"] = registry.versions(self.models_dir)
            out["production"] = registry.production_version(self.models_dir)
            out["history"] = registry.history(self.models_dir)
        except Exception as exc:  # a corrupt pointer must not take the page down
            out["problem"] = str(exc)
        for v in out["versions"]:
            if v["version"] == out["production"]:
                out["metadata"] = v["metadata"]
        drift_file = self.models_dir / "drift.json"
        if drift_file.exists():
            try:
                out["drift"] = json.loads(drift_file.read_text())
            except ValueError as exc:
                out["problem"] = f"{drift_file}: {exc}"
        return out

    def score_drift(self) -> pd.DataFrame:
        """Daily fleet median and 90th percentile of score/threshold: a drift figure from the store."""
        daily = self.read(SCORE, fields=["ratio"], every="1D", agg="mean")
        if daily.empty:
            return pd.DataFrame(columns=["median", "p90", "machines"])
        g = daily.groupby(level=0)["ratio"]
        return pd.DataFrame({"median": g.median(), "p90": g.quantile(0.9), "machines": g.size()})


def _wide(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    if frame.empty or value not in frame:
        return pd.DataFrame()
    out = frame.reset_index().pivot_table(index="time", columns=column, values=value, aggfunc="mean")
    out.columns = [str(c) for c in out.columns]
    return out.astype(float)
