"""Where the 72 h target is lost: how long after a fault's onset its first alarm came, by failure mode.

A failure can be told 72 h ahead only when its first alarm after the onset comes at least 72 h before the
failure: the alarm's *delay* after the onset must not exceed the *window* from onset (or the start of
scoring, if later) to the failure, less 72 h (both counted from the later of the onset and the start of
scoring: an alarm cannot come before scoring began). This reads the per-failure rows of results files already
written (no rerun, seconds) and splits every failure into:

- **under the ceiling**: its window is shorter than 72 h (no detector watching the fault's own signal tells it);
- **told**: first alarm after the onset at least 72 h ahead;
- **late**: alarmed after the onset, less than 72 h ahead (the delay that would have told it is given);
- **never**: no alarm after the onset (an alarm raised before the onset warned of something else).

By mode, pooled over the runs: failures, windows, delays, and the delay needed. A plot (``.png``) puts every
failure at (window, delay): the ones under the line ``delay = window - 72 h`` were told.

Runs are results JSONs of ``benchmarks/detection.py`` (modes in their rows) or of ``pdmctl benchmark sim``
(``--detector``'s rows; modes joined by machine and failure time from a detection JSON of the same seed,
``--modes NAME=FILE``).

    python benchmarks/onset_delay.py --run 8317=detection_fresh8317.json \\
        --run 2027=sim_product_heldback2027_last48.json --modes 2027=detection_runin_env_excrc.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
LEAD_H = 72.0
CLASSES = ("told", "late", "never", "under the ceiling")


def _key(machine: str, t: Any) -> tuple[str, pd.Timestamp]:
    return str(machine), pd.Timestamp(t).tz_convert("UTC").floor("min")


def _load(path: Path, detector: str) -> tuple[list[dict[str, Any]], pd.Timestamp]:
    """Per-failure rows and the start of scoring of a detection or harness results JSON."""
    doc = json.loads(path.read_text())
    if "evaluation" in doc:
        return doc["evaluation"]["events"]["per_failure"], pd.Timestamp(doc["evaluation"]["start"])
    if "results" in doc:
        if detector not in doc["results"]:
            raise ValueError(f"{path}: no detector {detector!r} (has {', '.join(doc['results'])})")
        return doc["results"][detector]["per_failure"], pd.Timestamp(doc["split"])
    raise ValueError(f"{path}: neither a benchmarks/detection.py nor a pdmctl benchmark sim results file")


def failure_rows(runs: dict[str, Path], detector: str = "tshae", modes: dict[str, Path] | None = None,
                 lead_h: float = LEAD_H) -> pd.DataFrame:
    """One row per failure with an onset: run, machine, mode, failure, window_h, delay_h (None: never), lead_h,
    class (:data:`CLASSES`), needed_h (the delay that would have told it, for ``late`` and ``never``)."""
    rows = []
    for name, path in runs.items():
        per, scored_from = _load(path, detector)
        mode_of: dict[tuple[str, pd.Timestamp], str] = {}
        if modes and name in modes:
            for p in _load(modes[name], detector)[0]:
                mode_of[_key(p["machine"], p["failure"])] = str(p.get("mode") or "")
        for p in per:
            if not p.get("onset"):
                continue
            failure, onset = pd.Timestamp(p["failure"]), pd.Timestamp(p["onset"])
            window = (failure - max(onset, scored_from)) / pd.Timedelta("1h")
            lead = p.get("lead_after_onset_h")
            delay = None if lead is None else window - lead  # from the later of onset and start of scoring
            cls = ("under the ceiling" if window < lead_h else "never" if lead is None
                   else "told" if lead >= lead_h else "late")
            mode = str(p.get("mode") or mode_of.get(_key(p["machine"], failure), "") or "unknown")
            needed = window - lead_h if cls in ("late", "never") else None
            rows.append({"run": name, "machine": p["machine"], "mode": mode, "failure": str(failure),
                         "window_h": window, "delay_h": delay, "lead_h": lead, "class": cls, "needed_h": needed})
    return pd.DataFrame(rows, columns=["run", "machine", "mode", "failure", "window_h", "delay_h", "lead_h", "class",
                                       "needed_h"])


def by_mode(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Pooled per mode (and all): counts per class, median window, median delay of the alarmed ones."""
    out = []
    for mode, g in [*sorted(rows.groupby("mode")), ("all", rows)]:
        alarmed = g["delay_h"].dropna()
        miss = g[g["class"].isin(["late", "never"])]
        out.append({"mode": mode, "failures": len(g), **{c: int((g["class"] == c).sum()) for c in CLASSES},
                    "median_window_h": float(g["window_h"].median()) if len(g) else None,
                    "median_delay_h": float(alarmed.median()) if len(alarmed) else None,
                    "max_delay_told_h": float(g.loc[g["class"] == "told", "delay_h"].max())
                    if (g["class"] == "told").any() else None,
                    "median_needed_h": float(miss["needed_h"].median()) if len(miss) else None})
    return out


def _h(v: float | None) -> str:
    return "-" if v is None or pd.isna(v) else f"{v:.0f}"


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# Where the 72 h target is lost: delay from onset to the first alarm ({doc['date']})", "",
             f"Detector `{doc['detector']}`; runs: " + ", ".join(f"`{n}` (`{Path(f).name}`)" for n, f in doc["runs"].items())
             + ". Window: from the fault's onset (or the start of scoring, if later) to the failure. Delay: from the "
             "same point to the first alarm raised after the onset. Told: that alarm >= 72 h ahead; late: alarmed, less; never: "
             "no alarm after the onset; under the ceiling: a window under 72 h. Needed: the delay that would have "
             "told a late or never one (window - 72 h).", "",
             "| mode | failures | told | late | never | under the ceiling | median window h | median delay h "
             "| longest delay told h | median delay needed (late, never) h |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in doc["by_mode"]:
        name = "**all**" if m["mode"] == "all" else m["mode"]
        lines.append(f"| {name} | {m['failures']} | {m['told']} | {m['late']} | {m['never']} | "
                     f"{m['under the ceiling']} | {_h(m['median_window_h'])} | {_h(m['median_delay_h'])} | "
                     f"{_h(m['max_delay_told_h'])} | {_h(m['median_needed_h'])} |")
    lines += ["", "Failures not told (late, never):", "", "| run | machine | mode | window h | delay h | lead h "
              "| needed h |", "|---|---|---|---|---|---|---|"]
    for r in doc["failures"]:
        if r["class"] in ("late", "never"):
            lines.append(f"| {r['run']} | {r['machine']} | {r['mode']} | {_h(r['window_h'])} | {_h(r['delay_h'])} | "
                         f"{_h(r['lead_h'])} | {_h(r['needed_h'])} |")
    if doc.get("plot"):
        lines += ["", f"![window against delay]({doc['plot']})"]
    if doc.get("note"):
        lines += ["", doc["note"]]
    return "\n".join(lines) + "\n"


def plot(rows: pd.DataFrame, path: Path, lead_h: float = LEAD_H) -> bool:
    """Every failure at (window, delay), by mode; ``never`` drawn at the top. False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is installed with the project
        return False
    fig, ax = plt.subplots(figsize=(7.5, 5))
    top = float(np.nanmax(rows[["window_h", "delay_h"]].to_numpy(float))) * 1.08 if len(rows) else 100.0
    never_y = top * 0.95
    for mode, g in sorted(rows.groupby("mode")):
        alarmed = g[g["delay_h"].notna()]
        pts = ax.scatter(alarmed["window_h"], alarmed["delay_h"], s=26, label=mode)
        nv = g[g["delay_h"].isna()]
        if len(nv):
            ax.scatter(nv["window_h"], [never_y] * len(nv), marker="x", s=40, color=pts.get_facecolor()[0])
    xs = np.array([lead_h, top * 1.02])
    ax.plot(xs, xs - lead_h, "k--", lw=1, label=f"told {lead_h:g} h ahead below")
    ax.axvline(lead_h, color="0.6", lw=0.8, ls=":")
    ax.text(lead_h, never_y, " x: never alarmed after onset", fontsize=8, va="bottom")
    ax.set_xlabel("onset (or start of scoring) to failure, h")
    ax.set_ylabel("onset (or start of scoring) to first alarm after onset, h")
    ax.set_xlim(0, top * 1.02)
    ax.set_ylim(0, top)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, 0.93))
    ax.set_title(f"{len(rows)} failures: where the {lead_h:g} h lead is lost", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _pairs(items: list[str], what: str, results: Path) -> dict[str, Path]:
    from pdm.evaluate.bench_sim import results_file, run_pairs

    out = {}
    for name, f in run_pairs(items, what).items():
        p = results_file(f, results)
        if not p.exists():
            raise ValueError(f"{what} {name}: no such file {p}")
        out[name] = p
    return out


def _named(path: Path, results: Path) -> str:
    """``path`` as the results files name it: relative to ``results`` where it lies there."""
    return str(path.relative_to(results)) if path.is_relative_to(results) else str(path)


def main(argv: list[str] | None = None) -> int:
    from pdm.evaluate.bench_sim import run_arguments, write_results

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_arguments(ap, "onset_delay", RESULTS, "a detection.py or harness results JSON (relative: under --results); "
                                              "repeat")
    ap.add_argument("--modes", action="append", default=[], metavar="NAME=FILE",
                    help="a detection.py results JSON of the same seed, for a harness run's failure modes")
    ap.add_argument("--note", default="", help="a paragraph for the results file")
    args = ap.parse_args(argv)
    try:
        runs = _pairs(args.run, "--run", args.results)
        modes = _pairs(args.modes, "--modes", args.results)
        rows = failure_rows(runs, args.detector, modes)
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        print(f"onset_delay: {exc}", file=sys.stderr)
        return 2
    args.results.mkdir(parents=True, exist_ok=True)
    png = args.results / f"{args.out}.png"
    doc = {"benchmark": "onset_delay", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "detector": args.detector, "runs": {n: _named(p, args.results) for n, p in runs.items()},
           "modes_from": {n: _named(p, args.results) for n, p in modes.items()}, "lead_h": LEAD_H,
           "by_mode": by_mode(rows), "failures": rows.to_dict("records"),
           "plot": png.name if plot(rows, png) else None, "note": args.note}
    write_results(args.results, args.out, doc, markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
