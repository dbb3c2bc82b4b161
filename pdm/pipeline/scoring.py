"""Scoring as ``pdm_score`` runs it: machine groups, one group at a time.

The groups are fixed by a stable hash of each machine id, so a machine stays
in its group when others join or leave the fleet, and the mapped tasks of a
re-run see the same groups.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from pdm.store import Store

log = logging.getLogger(__name__)


def machine_groups(machines: list[str], groups: int) -> list[list[str]]:
    """Split ``machines`` into at most ``groups`` non-empty groups (stable per machine id)."""
    if groups < 1:
        raise ValueError("groups must be at least 1")
    out: list[list[str]] = [[] for _ in range(groups)]
    for m in sorted(set(machines)):
        out[int(hashlib.sha1(m.encode()).hexdigest(), 16) % groups].append(m)
    return [g for g in out if g]


def score_group(store: Store, model_path: str | Path, machines: list[str], start: Any, stop: Any) -> dict[str, Any]:
    """Score ``machines`` over ``[start, stop)`` with the model at ``model_path``; writes the outputs.

    Returns a JSON-able summary (machines, scores, alarms, problems).
    """
    from pdm.detect.score import score_machines

    report = score_machines(store, model_path, machines, start, stop, write=True, progress=False)
    return summarise(report, machines)


def summarise(report: Any, machines: list[str]) -> dict[str, Any]:
    """A :class:`pdm.detect.score.ScoreReport` as a small dict for XCom."""
    per = {m: {"status": r.status, "windows": len(r.scores), "alarms": len(r.alarms),
               "severity": r.open_alarm.severity if r.open_alarm else ""} for m, r in report.machines.items()}
    return {"machines": list(machines), "model_version": report.model_version,
            "scores": sum(p["windows"] for p in per.values()), "alarms": sum(p["alarms"] for p in per.values()),
            "points_written": int(report.points_written), "per_machine": per,
            "skipped": {m: r.message for m, r in report.machines.items() if r.status in ("skipped", "no data")}}
