"""Why a machine alarms: channels, attention change, operator-log entries.

For an alarm's first window (the one that raised it) a :class:`RootCause`
holds

- the channels ranked by their share of the machine score (positive robust
  z-scores of the reconstruction error, normalised to sum to 1), with two
  rules of vibration analysis (:func:`explaining_band`): a sensor's overall
  statistics (:data:`OVERALL`: rms, peak, crest factor, kurtosis) follow its
  leading band when the band is itself out of its healthy range (z ≥
  :data:`BAND_EXPLAINS`): they are functions of the same waveform (rms² is
  the sum of the band energies; a growing 1x or 2x tone lowers crest factor
  and kurtosis), so the band names what changed; and a bearing's envelope
  bands and high-frequency band follow one another as a defect line or a
  raised high-frequency floor. Channels out of range that follow none come first, by the share
  they explain (their own and their followers'); then those that follow one, by share; then the
  channels in range. The surroundings
  (:data:`ENVIRONMENT`) are no part of the score and come last;
- per channel, how much the window's spatial attention (sensor × sensor)
  moved away from the machine's healthy baseline: the L1 change of the
  channel's row and column;
- the operator-log entries in the window or shortly before it, ranked by the
  cross-modal attention the channels (weighted by their contribution) paid
  to the event token of the patch the entry fell in. Entries before the
  window have no token in it and weigh 0 (they are listed for context).

:func:`rootcause_points` turns it into ``pdm_rootcause`` points (see
:mod:`pdm.store.schema`): ``c01``.. channel rows, ``l01``.. log rows and one
``maps`` row whose ``maps_json`` the dashboard draws heatmaps from.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pdm.store.schema import ROOTCAUSE

TOP_CHANNELS = 5
TOP_LOGS = 5
#: Channels of the machine's surroundings (by id): model input, no part of the machine score, ranked last.
ENVIRONMENT = (".ambient.",)
#: A vibration sensor's statistics of the whole waveform (last part of the channel id); its other fields are bands.
OVERALL = ("rms", "peak", "crest", "kurtosis")
#: A band with at least this z-score explains its sensor's overall statistics (they rank after it).
BAND_EXPLAINS = 2.0
#: Overall statistics of the waveform's shape (not its size): a growing tone lowers them, impacts raise them.
SHAPE = ("crest", "kurtosis")
#: Bands of tones at the running speed and twice it (imbalance, misalignment, looseness).
TONES = ("band_1x", "band_2x")
#: Envelope-spectrum bands at the bearing defect frequencies, and the high-frequency band.
ENVELOPE = ("band_bpfo", "band_bpfi")
HIGH_FREQUENCY = "band_hf"
#: Envelope bands whose smaller z is at least this share of the larger rose alike (a raised floor, not a line).
ALIKE = 0.8
#: With signed changes in the channels' own units (log amplitude for bands): envelope bands that rose within
#: this of each other rose alike (a raised floor); a defect's line lifts its own race's band more (ln 2, 6 dB).
LINE_SPREAD = math.log(2.0)
#: What a root cause's channels were ranked by (``maps["ranked_by"]``, set by the scorer): the window's
#: calibrated error z-scores, or, in a window scored against its excursion's baseline, each channel's change
#: since that baseline in units of its spread there (:mod:`pdm.detect.excursion`).
MODEL_ERRORS, EXCURSION_CHANGE = "model_errors", "excursion_change"


def is_environment(channel: str) -> bool:
    """True for a channel that measures the surroundings (ambient temperature), not the machine."""
    return any(key in channel for key in ENVIRONMENT)


def explaining_band(channels: list[str], zscores: np.ndarray, residuals: np.ndarray | None = None) -> np.ndarray:
    """(C,) the index of the band a channel follows in the root cause, -1 where it follows none.

    Rules of vibration analysis, per sensor, among channels out of their
    healthy range (z ≥ :data:`BAND_EXPLAINS`):

    - Envelope bands (:data:`ENVELOPE`, read off the squared high-passed
      signal) and the high-frequency band rise together in two ways. Poor
      lubrication raises the high-frequency floor: both envelope bands rise
      alike, and they follow the high-frequency band. Otherwise it is a
      bearing defect's line at its defect frequency: the envelope band that
      rose most leads, the high-frequency band and the other envelope band
      follow. Alike is read off the bands' own amplitudes when ``residuals``
      gives them (both rose, within :data:`LINE_SPREAD` of each other in log
      amplitude; where the out-of-range envelope bands all fell, below what
      the model expected, neither: a fall is no bearing's sign, and each band
      stands by its own share); from z-scores alone, the smaller at least
      :data:`ALIKE` of the larger and neither above the high-frequency band. Z-scores are
      each band's error over its own healthy error, which differs between
      the races' bands (a quiet band has a narrow healthy range), so the
      same rise reads as different z-scores.
    - The overall statistics (:data:`OVERALL`) follow the sensor's leading
      band (the largest z among bands that follow no other).
    - With ``residuals`` (C,), the signed error (value − reconstruction) in
      the channel's own units (log amplitude for bands and levels), a
      sensor with no band out of range but its shape statistics
      (:data:`SHAPE`) out of range all one way names the band by that way:
      fallen, a tone grew (the tone band, :data:`TONES`, that rose most);
      risen, impacts (the envelope or high-frequency band that rose most).
      A band's rise is its residual above the median of the sensor's bands:
      a shift all bands share is a change of level (gain, load), not of shape.
      A small change of a band that varies with load shows as a large one of
      kurtosis, which is steady on a healthy machine: the band is the cause.
    """
    z = np.nan_to_num(np.asarray(zscores, float), nan=-np.inf)
    follows = np.full(len(channels), -1, int)
    sensors: dict[str, dict[str, int]] = {}
    for j, c in enumerate(channels):
        p = str(c).split(".")
        if len(p) >= 3 and p[0] == "vibration":
            sensors.setdefault(p[1], {})[p[-1]] = j
    for fields in sensors.values():
        up = {f: j for f, j in fields.items() if z[j] >= BAND_EXPLAINS}
        env = sorted((j for f, j in up.items() if f in ENVELOPE), key=lambda j: -z[j])
        hf = up.get(HIGH_FREQUENCY)
        if env and hf is not None:
            rise = _envelope_rises(fields, residuals)
            if rise is not None:  # by the bands' own amplitudes: alike, or one race's line
                floor = min(rise.values()) > 0 and max(rise.values()) - min(rise.values()) <= LINE_SPREAD
                env = sorted(env, key=lambda j: -rise[j])
                fell = rise[env[0]] <= 0  # no bearing sign at all: each band by its own share
            else:  # by z-scores alone: each band's healthy error sets its scale
                alike = len(env) == 2 and z[env[1]] >= ALIKE * z[env[0]] or (
                    len(env) == 1 and len([f for f in ENVELOPE if f in fields]) == 1)
                floor = alike and z[hf] >= z[env[0]]  # a floor lifts them no more than the HF band itself
                fell = False
            if floor:
                follows[env] = hf
            elif not fell:
                follows[[hf, *env[1:]]] = env[0]
        bands = [j for f, j in up.items() if f not in OVERALL and follows[j] < 0]
        lead = max(bands, key=lambda j: z[j]) if bands else _shape_lead(fields, z, residuals)
        if lead is not None:
            for f, j in fields.items():
                if f in OVERALL:
                    follows[j] = lead
    return follows


def _envelope_rises(fields: dict[str, int], residuals: np.ndarray | None) -> dict[int, float] | None:
    """The signed change of each of a sensor's envelope bands (channel index → residual), when all are known."""
    if residuals is None:
        return None
    r = np.asarray(residuals, float)
    idx = [fields[f] for f in ENVELOPE if f in fields]
    if len(idx) < 2 or not np.isfinite(r[idx]).all():
        return None
    return {j: float(r[j]) for j in idx}


def _shape_lead(fields: dict[str, int], z: np.ndarray, residuals: np.ndarray | None) -> int | None:
    """The band a sensor's out-of-range shape statistics point at by their sign (see :func:`explaining_band`)."""
    if residuals is None:
        return None
    r = np.nan_to_num(np.asarray(residuals, float))
    shape = [j for f, j in fields.items() if f in SHAPE and z[j] >= BAND_EXPLAINS]
    signs = {bool(r[j] > 0) for j in shape if r[j] != 0}
    if not shape or len(signs) != 1:
        return None
    kinds = (*ENVELOPE, HIGH_FREQUENCY) if signs.pop() else TONES
    # Against the sensor's bands together: a shift they share is the level (gain, load), not the shape.
    bands = [j for f, j in fields.items() if f not in OVERALL and np.isfinite(z[j])]
    rel = r - np.median(r[bands]) if bands else r
    rose = [j for f, j in fields.items() if f in kinds and rel[j] > 0 and np.isfinite(z[j])]
    return max(rose, key=lambda j: rel[j]) if rose else None


def environment_mask(channels: list[str]) -> np.ndarray:
    """(C,) True for the surroundings' channels: model input, but no part of the machine score.

    A warmer season lifts the ambient temperature's error without anything
    wearing; the machine's own temperatures, which it drives, still count.
    """
    return np.array([is_environment(str(c)) for c in channels], bool)


@dataclass
class RootCause:
    """The explanation of one alarm (times in ns)."""

    alarm_ns: int
    window_start_ns: int
    window_end_ns: int
    channels: list[dict[str, Any]]  # channel, contribution, zscore, attention_change; ranked
    logs: list[dict[str, Any]]  # log_ns, event_type, message, weight; ranked
    maps: dict[str, Any] = field(default_factory=dict)

    @property
    def top_channel(self) -> str:
        return self.channels[0]["channel"] if self.channels else ""


def _r(a: Any) -> Any:
    """Round to 4 decimals for JSON (NaN → None)."""
    arr = np.asarray(a, dtype=float)
    out = np.round(arr, 4).tolist()
    if arr.ndim == 0:
        return None if not math.isfinite(out) else out
    return json.loads(json.dumps(out).replace("NaN", "null"))


def attention_change(spatial: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Per channel: L1 change of its row and column of the spatial map (diagonal counted once)."""
    diff = np.abs(np.asarray(spatial, float) - np.asarray(baseline, float))
    return diff.sum(axis=1) + diff.sum(axis=0) - np.diag(diff)


def explain(*, alarm_ns: int, channels: list[str], zscores: np.ndarray, spatial: np.ndarray,
            baseline: np.ndarray | None, cross: np.ndarray, temporal: np.ndarray | None,
            window_start_ns: int, step_ns: int, window: int, patch: int,
            log_entries: pd.DataFrame, residuals: np.ndarray | None = None) -> RootCause:
    """Root cause of the alarm raised by the window ``[window_start_ns, +window*step)``.

    ``zscores`` (C,) are the calibrated channel z-scores of the window;
    ``spatial`` (C, C), ``cross`` (C, N + 1) and ``temporal`` (C, N) its
    attention maps; ``baseline`` (C, C) the machine's healthy mean spatial
    map; ``log_entries`` the operator log (time index; event_type, message)
    of the window and the lead time before it; ``residuals`` (C,) the
    window's signed errors (value − reconstruction) in the channels' own
    units (log amplitude for bands), which tell a bearing's raised floor from
    a defect line and let the shape statistics name a band
    (:func:`explaining_band`).
    """
    c = len(channels)
    z = np.asarray(zscores, float)
    env = environment_mask(channels)
    pos = np.where(np.isfinite(z) & ~env, np.maximum(z, 0.0), 0.0)  # the machine score's channels
    total = pos.sum()
    contribution = pos / total if total > 0 else np.zeros(c)
    if baseline is None or np.shape(baseline) != (c, c):
        baseline = np.full((c, c), np.nan)
    base = np.asarray(baseline, float)
    change = attention_change(spatial, base)
    # The surroundings cannot be a machine's fault (a warm spring lifts the ambient temperature):
    # no share of the score, listed (with their z-score) after every channel of the machine itself.
    lead = explaining_band(channels, z, residuals)
    # Out of range and following no other first (the explanations), then what they explain, then the rest;
    # a band that the shape statistics name explains them even when it is itself barely out of range.
    named = np.isin(np.arange(c), lead[lead >= 0])
    tier = np.where(lead >= 0, 1, np.where((np.nan_to_num(z, nan=-np.inf) >= BAND_EXPLAINS) | named, 0, 2))
    # An explanation weighs what it explains: its own share and its followers'.
    explained = contribution + np.bincount(lead[lead >= 0], weights=contribution[lead >= 0], minlength=c)
    order = sorted(range(c), key=lambda j: (bool(env[j]), int(tier[j]), -(explained[j] if tier[j] == 0 else contribution[j]),
                                            -np.nan_to_num(z[j], nan=-np.inf), channels[j]))
    ranked = [{"channel": channels[j], "contribution": float(contribution[j]),
               "zscore": float(z[j]) if np.isfinite(z[j]) else float("nan"),
               "attention_change": float(change[j]) if np.isfinite(change[j]) else float("nan"),
               # what the ranking weighed: its share with its followers', and the band it follows
               "explained": float(explained[j]), "follows": channels[lead[j]] if lead[j] >= 0 else ""}
              for j in order[:TOP_CHANNELS]]
    # Log entries → the event token of their patch; weight = contribution-weighted channel attention.
    n_tokens = window // patch
    weights_by_channel = contribution if total > 0 else np.full(c, 1.0 / max(c, 1))
    token_weight = weights_by_channel @ np.asarray(cross, float)[:, :n_tokens]  # (N,)
    window_end_ns = window_start_ns + window * step_ns
    logs: list[dict[str, Any]] = []
    if log_entries is not None and not log_entries.empty:
        for t, row in log_entries.sort_index().iterrows():
            ns = int(pd.Timestamp(t).value)
            tok = (ns - window_start_ns) // (patch * step_ns)
            w = float(token_weight[tok]) if 0 <= tok < n_tokens and ns < window_end_ns else 0.0
            logs.append({"log_ns": ns, "event_type": str(row.get("event_type", "")),
                         "message": str(row.get("message", "")), "weight": w,
                         "token": int(tok) if 0 <= tok < n_tokens else None})
    logs.sort(key=lambda e: (-e["weight"], -e["log_ns"]))
    diff = np.asarray(spatial, float) - base
    maps = {
        "channels": list(channels),
        "spatial": _r(spatial), "baseline": _r(base), "diff": _r(diff),
        "temporal": _r(temporal) if temporal is not None else [],
        "cross": _r(np.asarray(cross, float)),
        "token_times_ns": [int(window_start_ns + i * patch * step_ns) for i in range(n_tokens)],
        "window_start_ns": int(window_start_ns), "window_end_ns": int(window_end_ns),
        "logs": [{**e, "weight": _r(e["weight"])} for e in logs],
    }
    return RootCause(int(alarm_ns), int(window_start_ns), int(window_end_ns), ranked, logs[:TOP_LOGS], maps)


def rootcause_points(rc: RootCause, machine: str, version: str) -> list[dict[str, Any]]:
    """``pdm_rootcause`` points of one ranking of an alarm (tag ``alarm`` = its start; time = the ranked window's end).

    The ranking made when the alarm was raised has the alarm's start as its
    time; later rankings of the same episode (its score grew) follow it.
    """
    tags = {"machine": machine, "model_version": version, "alarm": str(rc.alarm_ns)}
    out: list[dict[str, Any]] = []
    for i, ch in enumerate(rc.channels, 1):
        fields = {"kind": "channel", "channel": ch["channel"], "contribution": ch["contribution"]}
        for k in ("zscore", "attention_change", "explained"):
            if math.isfinite(ch[k]):
                fields[k] = ch[k]
        if ch["follows"]:
            fields["follows"] = ch["follows"]
        out.append({"measurement": ROOTCAUSE, "tags": {**tags, "rank": f"c{i:02d}"}, "fields": fields,
                    "time": rc.window_end_ns})
    for i, e in enumerate(rc.logs, 1):
        out.append({"measurement": ROOTCAUSE, "tags": {**tags, "rank": f"l{i:02d}"},
                    "fields": {"kind": "log", "event_type": e["event_type"], "message": e["message"],
                               "log_ns": e["log_ns"], "weight": e["weight"]}, "time": rc.window_end_ns})
    out.append({"measurement": ROOTCAUSE, "tags": {**tags, "rank": "maps"},
                "fields": {"kind": "maps", "maps_json": maps_json(rc.maps)}, "time": rc.window_end_ns})
    return out


#: InfluxDB keeps string fields up to 64 KiB; larger maps drop the baseline (= spatial - diff).
MAX_JSON = 60_000


def maps_json(maps: dict[str, Any]) -> str:
    """The maps as compact JSON, under :data:`MAX_JSON` characters where the fleet has many channels."""
    text = json.dumps(maps, separators=(",", ":"))
    if len(text) > MAX_JSON:
        text = json.dumps({**maps, "baseline": None, "logs": maps.get("logs", [])[:TOP_LOGS]}, separators=(",", ":"))
    return text
