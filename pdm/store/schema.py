"""The measurements pdm writes and reads, with their tag keys and field types.

Field types follow InfluxDB's: ``float``, ``integer``, ``boolean``, ``string``.
A measurement not listed here is accepted too; its field types are then taken
from what is already stored and from the batch itself.
"""

from __future__ import annotations

import re
from typing import Literal

FieldType = Literal["float", "integer", "boolean", "string"]

# Tags that identify where a point comes from, in the plant's words.
MACHINE_TAG = "machine"
SENSOR_TAG = "sensor"
ASSET_TAGS = ("plant", "line", MACHINE_TAG)

VIBRATION = "vibration"
TEMPERATURE = "temperature"
PROCESS = "process"
OPERATOR_LOG = "operator_log"

#: Declared field types per measurement. Vibration band energies are named
#: ``band_*`` and are floats too (see :func:`declared_type`).
FIELD_TYPES: dict[str, dict[str, FieldType]] = {
    VIBRATION: {"rms": "float", "peak": "float", "kurtosis": "float", "crest": "float"},
    TEMPERATURE: {"celsius": "float"},
    PROCESS: {"speed_rpm": "float", "load_pct": "float", "current_a": "float", "running": "boolean"},
    OPERATOR_LOG: {"message": "string", "severity": "integer"},
    # What scoring writes (see pdm.detect). Tags: machine, model_version (+ below).
    # pdm_score: one point per window, time = the window's end; state says whether it was scored
    # and, when not (score and ratio missing), why: see SCORE_STATES.
    # ttf_hours: the time to failure an open alarm showed at the window, -1 where none (no open alarm, or no
    # rising trend; pdm_alarm says which); points written before the field existed lack it.
    "pdm_score": {"score": "float", "threshold": "float", "ratio": "float", "state": "string", "ttf_hours": "float"},
    # pdm_alarm: one point per alarm episode, time = its first alarming window.
    # end_ns = 0 while open; ttf_hours = -1 when no rising trend; warning_ns / critical_ns: the window at
    # which the episode first reached that severity (0: not reached; points written before them lack them).
    "pdm_alarm": {"severity": "string", "status": "string", "end_ns": "integer", "last_ns": "integer",
                  "peak_ratio": "float", "ttf_hours": "float", "top_channel": "string",
                  "continued_by": "string", "warning_ns": "integer", "critical_ns": "integer"},
    # pdm_rootcause: extra tags alarm (= alarm start ns, as text) and rank ("c01".. channels,
    # "l01".. operator-log entries, "maps" the attention maps); time = the alarm's start.
    "pdm_rootcause": {"kind": "string", "channel": "string", "contribution": "float", "zscore": "float",
                      "attention_change": "float", "event_type": "string", "message": "string",
                      "log_ns": "integer", "weight": "float", "maps_json": "string",
                      # a channel's share of the score with the channels that follow it (what ranked it),
                      # and the band it follows (pdm.detect.rootcause.explaining_band); older points lack both
                      "explained": "float", "follows": "string"},
    # pdm_baseline: a machine's new error levels after a work order (pdm.detect.rebaseline), time = the
    # work order; levels_json = per-channel levels in the model's channel order; last_ns = start of
    # the last baseline window; taken = false when too few windows ran (the calibration's levels stay).
    # Tagged kind=excursion: an excursion outside the operating envelope's baseline (pdm.detect.excursion),
    # time = its first window's end, with spread_json (per-channel spreads) and last_ns = its last window's end,
    # and value_levels_json / value_spread_json: the channels' own median level and spread over it (scaler
    # units), which root causes inside the excursion are ranked against.
    "pdm_baseline": {"levels_json": "string", "taken": "boolean", "windows": "integer", "last_ns": "integer",
                     "spread_json": "string", "value_levels_json": "string", "value_spread_json": "string"},
}

SCORE = "pdm_score"
#: ``state`` of a ``pdm_score`` point, and what it means for someone watching the machine. A window
#: that is not scored neither raises nor clears an alarm; ``outside_envelope`` is the one to act on:
#: the machine runs, but at a speed or load the model never saw, so nothing watches it until it is
#: retrained on that regime. (Points written before the field existed have no state.)
SCORED, NOT_RUNNING, REBASELINE, OUTSIDE_ENVELOPE = "scored", "not_running", "rebaseline", "outside_envelope"
#: Scored, outside the envelope, against the baseline its excursion there took (pdm.detect.excursion).
NEW_REGIME = "new_regime"
SCORE_STATES: dict[str, str] = {
    SCORED: "scored",
    NEW_REGIME: "scored against its own baseline: running outside what the model was trained on for long "
                "enough to take one (retrain on the new regime)",
    NOT_RUNNING: "not scored: the machine did not run (or no sensor reported) in the window",
    REBASELINE: "not scored: a new baseline is being taken after a work order",
    OUTSIDE_ENVELOPE: "not scored: running at a speed or load outside what the model was trained on "
                      "(a baseline of the new regime is being taken; retrain on it)",
}
ALARM = "pdm_alarm"
ROOTCAUSE = "pdm_rootcause"
BASELINE = "pdm_baseline"
#: ``status`` of a ``pdm_alarm`` point whose episode a newer model version continues (field ``continued_by``).
CONTINUED = "continued"
#: ``status`` of a ``pdm_alarm`` point whose episode a work order on its machine closed (``end_ns`` its time).
CLOSED_BY_WORK_ORDER = "closed by work order"
#: Tag keys of the measurements scoring writes (re-scoring a range overwrites the same keys).
OUTPUT_TAGS: dict[str, tuple[str, ...]] = {
    SCORE: (MACHINE_TAG, "model_version"),
    ALARM: (MACHINE_TAG, "model_version"),
    ROOTCAUSE: (MACHINE_TAG, "model_version", "alarm", "rank"),
    BASELINE: (MACHINE_TAG, "model_version", "kind"),
}

# Names that go into queries unquoted-safe: letters, digits, _ . - and no
# leading digit-only weirdness. Anything else could inject query syntax.
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")


def is_safe_name(name: str) -> bool:
    """True when ``name`` may be used as a measurement, tag key or field name."""
    return isinstance(name, str) and bool(_NAME_RE.match(name))


def declared_type(measurement: str, field: str) -> FieldType | None:
    """The declared type of ``measurement.field``, or None when not declared."""
    types = FIELD_TYPES.get(measurement)
    if types is None:
        return None
    if field in types:
        return types[field]
    if measurement == VIBRATION and field.startswith("band_"):
        return "float"
    return None
