"""Several trainings of the same detectors on one fleet side by side: the spread a training's seed alone gives.

One ``pdmctl benchmark sim`` run trains each detector once. On the held-back fleet 9001 TSHAE's false alarms
moved 8 -> 34 from one training seed to another with the same data and settings, more than most switches
compared with single runs. :func:`spread` takes several runs of one fleet (the same failures) and, for the
trainings named in them (a run's detector), reports each training's failures caught >= 72 h after their onset
and its false alarms, per group of trainings (one detector, or an ensemble of it) the least, the median and the
most, and failure by failure how many of a group's trainings caught it: a difference between two detectors
means something only where it is larger than their own spread.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from pdm.evaluate.pooled import _caught72

KEY = "recall_72h_after_onset"
#: What must be equal in every run for their trainings to be compared (the fleet and the scored period).
SAME = ("seed", "machines", "days", "train_days", "step", "window", "stride", "stages")


def _failures(run: dict[str, Any], det: str) -> list[tuple[str, str]]:
    return [(r["machine"], str(r["failure"])) for r in run["results"][det].get("per_failure") or []]


def spread(trainings: list[dict[str, Any]]) -> dict[str, Any]:
    """``trainings``: one entry per training, ``{"group", "label", "run" (a run's document), "detector" (its key)}``.

    Returns ``{"fleet", "failures", "trainings": [...], "groups": {group: summary}, "per_failure": [...]}``.
    Raises ValueError when the runs are not of one fleet and scored period, a detector is not in its run, or a
    run has no per-failure rows.
    """
    if not trainings:
        raise ValueError("no trainings to compare")
    first = trainings[0]["run"]
    fleet = {k: first["config"].get(k) for k in SAME}
    ref: list[tuple[str, str]] | None = None
    rows = []
    for t in trainings:
        run, det = t["run"], t["detector"]
        if det not in run.get("results", {}):
            raise ValueError(f"{t['label']}: no detector {det!r} in its run (has {sorted(run.get('results', {}))})")
        other = {k: run["config"].get(k) for k in SAME}
        if other != fleet:
            diff = {k: (fleet[k], other[k]) for k in SAME if fleet[k] != other[k]}
            raise ValueError(f"{t['label']}: another fleet or scored period than {trainings[0]['label']}: {diff}")
        fails = _failures(run, det)
        if not fails:
            raise ValueError(f"{t['label']}: {det} has no per-failure rows")
        if ref is None:
            ref = fails
        elif fails != ref:
            raise ValueError(f"{t['label']}: other failures than {trainings[0]['label']}")
        r = run["results"][det]
        m = r["metrics"]
        per = r["per_failure"]
        caught = [_caught72(p, KEY) for p in per]
        rows.append({"group": t["group"], "label": t["label"], "name": r["name"], "caught": int(sum(caught)),
                     "false_alarms": int(m["false_alarms"]),
                     "false_alarms_per_machine_month": float(m["false_alarms_per_machine_month"]),
                     "caught_by_failure": caught,
                     "lead_after_onset_h": [p.get("lead_after_onset_h") for p in per]})
    assert ref is not None
    by_group: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_group.setdefault(r["group"], []).append(r)
    groups: dict[str, Any] = {}
    for g, mine in by_group.items():
        c = np.array([r["caught"] for r in mine])
        fa = np.array([r["false_alarms"] for r in mine])
        groups[g] = {"trainings": len(mine), "caught_min": int(c.min()), "caught_median": float(np.median(c)),
                     "caught_max": int(c.max()), "false_alarms_min": int(fa.min()),
                     "false_alarms_median": float(np.median(fa)), "false_alarms_max": int(fa.max()),
                     "false_alarms_per_machine_month_median": float(np.median(
                         [r["false_alarms_per_machine_month"] for r in mine]))}
    per_failure = []
    for i, (machine, failure) in enumerate(ref):
        row: dict[str, Any] = {"machine": machine, "failure": failure}
        for g, mine in by_group.items():
            leads = [r["lead_after_onset_h"][i] for r in mine if r["lead_after_onset_h"][i] is not None]
            row[g] = {"caught": sum(r["caught_by_failure"][i] for r in mine), "of": len(mine),
                      "lead_after_onset_h_median": float(np.median(leads)) if leads else None}
        per_failure.append(row)
    return {"fleet": fleet, "failures": len(ref), "trainings": rows, "groups": groups, "per_failure": per_failure}


def markdown(doc: dict[str, Any]) -> str:
    """The three tables: every training, each group's spread, and failure by failure."""
    n, f = doc["failures"], {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in doc["fleet"].items()}
    out = [f"Fleet: seed {f['seed']}, {f['machines']} machines x {f['days']} days ({f['train_days']} to train), "
           f"{n} failures scored; caught = >= 72 h ahead by an alarm raised "
           "after the fault's onset.", "", "| Group | training | detector | caught | false alarms | per machine-month |",
           "|---|---|---|---:|---:|---:|"]
    for r in doc["trainings"]:
        out.append(f"| {r['group']} | {r['label']} | {r['name']} | {r['caught']}/{n} | {r['false_alarms']} | "
                   f"{r['false_alarms_per_machine_month']:.2f} |")
    out += ["", "| Group | trainings | caught (least / median / most) | false alarms (least / median / most) | "
            "median per machine-month |", "|---|---:|---|---|---:|"]
    for g, s in doc["groups"].items():
        out.append(f"| {g} | {s['trainings']} | {s['caught_min']} / {s['caught_median']:g} / {s['caught_max']} | "
                   f"{s['false_alarms_min']} / {s['false_alarms_median']:g} / {s['false_alarms_max']} | "
                   f"{s['false_alarms_per_machine_month_median']:.2f} |")
    groups = list(doc["groups"])
    out += ["", "Failure by failure: the trainings of each group that caught it (median lead after onset, h).", "",
            "| machine | failure | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]
    for row in doc["per_failure"]:
        cells = []
        for g in groups:
            c = row[g]
            lead = "-" if c["lead_after_onset_h_median"] is None else f"{c['lead_after_onset_h_median']:.0f}"
            cells.append(f"{c['caught']}/{c['of']} ({lead})")
        out.append(f"| {row['machine']} | {row['failure'][:16]} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(doc: dict[str, Any], path: Any) -> bool:
    """Each training as a point (false alarms per machine-month, failures caught), one colour per group (PNG);
    False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, g in enumerate(doc["groups"]):
        mine = [r for r in doc["trainings"] if r["group"] == g]
        jitter = (k - (len(doc["groups"]) - 1) / 2) * 0.06  # groups side by side where they land on one count
        at = Counter((round(r["false_alarms_per_machine_month"], 4), r["caught"]) for r in mine)
        pts = ax.scatter([x for x, _ in at], [y + jitter for _, y in at], s=[40 * n for n in at.values()],
                         label=f"{g} ({len(mine)} training{'s' if len(mine) > 1 else ''})")
        for (x, y), n in at.items():
            if n > 1:  # trainings that landed on one point: how many
                ax.annotate(f"x{n}", (x, y + jitter), xytext=(6, 4), textcoords="offset points", fontsize=8,
                            color=pts.get_facecolor()[0])
    ax.set_xlabel("false alarms per machine-month")
    ax.set_ylabel(f"failures caught >= 72 h after onset (of {doc['failures']})")
    ax.set_xlim(left=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"One fleet (seed {doc['fleet']['seed']}), several trainings: the spread of a training's seed",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
