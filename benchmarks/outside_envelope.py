"""What windows outside the operating envelope would add, judged on a harness run's series (no rerun).

pdm does not score a window whose speed or load the model never saw in
training (:class:`pdm.detect.stages.OperatingEnvelope`): such windows neither
raise nor clear an alarm. On the held-back fleets that is a fifth of the
windows in which the machines ran, and a fault that grows through a product
run at another load goes unseen until a retrain (seed 2027's pump-016: 83 of
its 141 windows from onset to failure were outside; seed 4242's comp-005: 45
of 68). This script takes the series a ``pdmctl benchmark sim --stages
product --series`` run wrote (channel z-scores of every window, each window's
state and operating range, the work orders and the ground truth) and judges,
for every detector of the run, the same alarm rule under:

- ``as run``: outside windows unscored (the product's rule);
- ``scored``: outside windows scored against the calibration like any other
  (what the envelope keeps out);
- ``scored at 2x / 3x threshold``: scored, but raising only at twice (three
  times) the threshold (an outside window's score divided by that);
- ``excursion baseline``: as a vibration analyst baselines a machine after a
  change, each excursion outside the envelope (from its first outside window
  to the next window scored inside, or a work order; stopped windows do not
  end it) takes its first ``--hours`` of running windows as a new baseline
  (not scored): a channel's new level is the median of its z-scores over
  them where that is above 0 (only up, as :mod:`pdm.detect.rebaseline`), and
  the excursion's later windows are scored against those levels;
- ``excursion baseline + spread``: the same, each channel's z also divided by
  its spread over the baseline (IQR / 1.349 in z units) where that exceeds 1;
- ``..., its range``: the excursion's later windows scored only where their
  operating range lies inside an envelope fitted (as the training one) on
  the baseline windows' ranges: a baseline says nothing of a load it did
  not see either.

Series written with that stage (``state`` 3: scored against an excursion's
baseline) compare the stage as run with the envelope alone (those windows
unscored), and the stage with each baseline's spread taken about its median
or about its trend (:class:`pdm.detect.excursion.ExcursionBaseline`'s
``detrend``): the scored windows' z-scores are taken back to the
calibration's with the fit the run used (``stages.json`` beside the series;
a series written before it: about the median, its windows' length and
stride from the run's results file beside the folder) and the stage applied
again.

Usage::

    python benchmarks/outside_envelope.py --series DIR [--series DIR ...] [--hours 48] [--out NAME]

writes ``benchmarks/results/<NAME>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from pdm.detect.excursion import IDLE, INSIDE, OUT, RESET, ExcursionBaseline  # noqa: E402
from pdm.detect.rootcause import environment_mask  # noqa: E402
from pdm.detect.stages import ChannelCalibrator, OperatingEnvelope  # noqa: E402
from pdm.evaluate.bench_sim import SERIES_NEW_REGIME as NEW_REGIME  # noqa: E402
from pdm.evaluate.bench_sim import SERIES_OUTSIDE as OUTSIDE  # noqa: E402
from pdm.evaluate.bench_sim import SERIES_REBASELINE as BASELINE  # noqa: E402
from pdm.evaluate.bench_sim import SERIES_SCORED as SCORED  # noqa: E402
from pdm.evaluate.bench_sim import _Series, judge_series, read_series, read_stages  # noqa: E402

VARIANTS = ("as run", "scored", "scored at 2x threshold", "scored at 3x threshold", "excursion baseline",
            "excursion baseline + spread", "excursion baseline, its range", "excursion baseline + spread, its range")
#: For series written with the stage: as run (pdm.detect.excursion), the envelope alone (its windows unscored),
#: and the stage again with each baseline's spread about its median or about its trend.
STAGED_VARIANTS = ("as run", "envelope alone", "spread about its median", "spread about its trend")


def machine_score(z: np.ndarray, channels: list[str]) -> np.ndarray:
    """The product's machine score of channel z-scores (mean of the top k, the surroundings left out)."""
    return ChannelCalibrator().score_z(z, exclude=environment_mask(channels))


def excursions(s: _Series) -> list[np.ndarray]:
    """Index arrays of each excursion outside the envelope (see the module doc)."""
    assert s.state is not None
    ran = np.isfinite(s.z).any(axis=1)
    out: list[np.ndarray] = []
    cur: list[int] = []
    orders = np.asarray(s.resets if s.resets is not None else [], np.int64)
    for i, st in enumerate(s.state):
        if cur and orders.size and np.any((orders > s.times[cur[-1]]) & (orders <= s.times[i])):
            out.append(np.array(cur))
            cur = []
        if st == OUTSIDE:
            cur.append(i)
        elif st == BASELINE or (st == SCORED and ran[i]):
            if cur:
                out.append(np.array(cur))
            cur = []
    if cur:
        out.append(np.array(cur))
    return out


def stages_of(folder: Path) -> dict[str, Any]:
    """The product stages' settings a run's series were written with (``stages.json``; before it: the excursion's
    spread about its median, and the windows' length and stride from the results file beside the folder)."""
    got = read_stages(folder)
    if got is not None:
        return got
    results = folder.parent / f"{folder.name.removesuffix('_series')}.json"
    cfg = json.loads(results.read_text())["config"]
    step = int(pd.Timedelta(cfg["step"]).value)
    return {"excursion": {"detrend": False}, "window_ns": cfg["window"] * step, "stride_ns": cfg["stride"] * step}


def _kinds(s: _Series) -> np.ndarray:
    """Each window as :meth:`ExcursionBaseline.apply` saw it in the run (inside, outside, re-baselined, idle)."""
    state = np.asarray(s.state)
    idle = ~np.isfinite(s.z).any(axis=1)
    return np.where(state == BASELINE, RESET, np.where(idle, IDLE, np.where(state == SCORED, INSIDE, OUT)))


def calibration_z(s: _Series, stages: dict[str, Any]) -> np.ndarray:
    """``s``'s channel z-scores against the calibration (windows scored against an excursion's baseline taken back
    with the fit the run used: its baseline windows hold the calibration's z-scores, so the fit is the run's)."""
    rule = ExcursionBaseline.from_dict(stages["excursion"])
    got = rule.apply(s.z, _kinds(s), s.times, int(stages["stride_ns"]), window_ns=int(stages["window_ns"]))
    if not np.array_equal(got.scored, np.asarray(s.state) == NEW_REGIME):
        raise ValueError(f"{s.machine}: the excursion stage does not give the run's windows again; other settings?")
    fits = {b["time"]: (np.asarray(b["levels"]), np.asarray(b["spread"])) for b in got.finished}
    z = np.array(s.z, float)
    start = None
    for i, k in enumerate(_kinds(s)):
        if k in (INSIDE, RESET):
            start = None
        elif k == OUT and start is None:
            start = int(s.times[i])
        if got.scored[i]:
            level, spread = fits[start]
            z[i] = s.z[i] * spread + level
    return z


def rescored(s: _Series, variant: str, need: int, stages: dict[str, Any] | None = None) -> _Series:
    """``s`` with its outside windows handled as ``variant`` says (``stages``: the settings the run used,
    :func:`stages_of`, for the staged variants)."""
    if variant == "as run":
        return s
    assert s.state is not None
    score = s.scores.copy()
    if variant == "envelope alone":
        score[s.state == NEW_REGIME] = np.nan
        return _Series(s.machine, s.times, score, s.z, s.threshold, s.channels, s.resets, s.state, s.ranges)
    if variant.startswith("spread about"):
        assert stages is not None
        rule = ExcursionBaseline.from_dict({**stages["excursion"], "detrend": variant.endswith("its trend")})
        got = rule.apply(calibration_z(s, stages), _kinds(s), s.times, int(stages["stride_ns"]),
                         window_ns=int(stages["window_ns"]))
        score[got.scored] = machine_score(got.z[got.scored], s.channels)
        return _Series(s.machine, s.times, score, got.z, s.threshold, s.channels, s.resets, s.state, s.ranges)
    outside = s.state == OUTSIDE
    if variant.startswith("scored"):
        factor = float(variant.split(" at ")[1].split("x")[0]) if " at " in variant else 1.0
        score[outside] = machine_score(s.z[outside], s.channels) / factor
    else:
        ran = np.isfinite(s.z).any(axis=1)
        for idx in excursions(s):
            running = idx[ran[idx]]
            base, rest = running[:need], running[need:]
            if len(base) < need or not len(rest):
                continue
            if variant.endswith("its range") and s.ranges:
                own = OperatingEnvelope.of_windows({f: r[base] for f, r in s.ranges.items()})
                rest = rest[own.apply({f: r[rest] for f, r in s.ranges.items()})]
                if not len(rest):
                    continue
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # channels not seen in the baseline
                level = np.nanmedian(s.z[base], axis=0)
                level = np.where(np.isfinite(level), np.maximum(level, 0.0), 0.0)
                z = s.z[rest] - level
                if "spread" in variant:
                    q75, q25 = np.nanpercentile(s.z[base], [75, 25], axis=0)
                    spread = np.where(np.isfinite(q75 - q25), (q75 - q25) / 1.349, 1.0)
                    z = z / np.maximum(spread, 1.0)
            score[rest] = machine_score(z, s.channels)
    return _Series(s.machine, s.times, score, s.z, s.threshold, s.channels, s.resets, s.state, s.ranges)


def study(folder: Path, hours: float) -> dict[str, Any]:
    out: dict[str, Any] = {"series": str(folder), "detectors": {}}
    for path in sorted(folder.glob("*.parquet")):
        key = path.stem
        if key in ("work_orders", "failures", "observed", "nuisances"):
            continue
        series = read_series(folder, key)
        if not series or series[0].state is None:
            continue
        # Series written with pdm.detect.excursion (state 3: scored against an excursion's baseline) hold the
        # stage's z-scores there, not the calibration's: only the stage and the envelope alone can be compared.
        staged = any(bool(np.any(np.asarray(s.state) == NEW_REGIME)) for s in series)
        variants = STAGED_VARIANTS if staged else VARIANTS
        stages = stages_of(folder) if staged else None
        if stages is not None:
            about = "trend" if stages["excursion"].get("detrend", True) else "median"
            out["as_run"] = f"the excursion stage with each baseline's spread about its {about}"
        stride_ns = int(np.median(np.diff(series[0].times)))
        need = max(4, int(np.ceil(hours * 3.6e12 / stride_ns)))
        rows = {}
        for v in variants:
            t = time.perf_counter()
            m = judge_series(folder, [rescored(s, v, need, stages) for s in series]).to_dict()
            rows[v] = {k: m[k] for k in ("failures", "caught", "recall_72h", "recall_72h_after_onset",
                                         "false_alarms", "false_alarms_per_machine_month", "alarms")}
            rows[v]["false_alarms_by_cause"] = m["false_alarms_by_cause"]
            rows[v]["per_failure"] = [{k: f.get(k) for k in ("machine", "failure", "lead_h", "lead_after_onset_h", "caught")}
                                      for f in m.get("per_failure") or []]
            print(f"{folder.name} {key:8s} {v:28s} recall@72h {_f(m['recall_72h'])} "
                  f"(after onset {_f(m['recall_72h_after_onset'])}) FA/mm {_f(m['false_alarms_per_machine_month'])} "
                  f"({time.perf_counter() - t:.1f}s)", flush=True)
        outside = np.concatenate([np.isin(np.asarray(s.state), [OUTSIDE, NEW_REGIME]) for s in series])
        ran = np.concatenate([np.isfinite(s.z).any(axis=1) for s in series])
        out["detectors"][key] = {"variants": rows, "outside_share_of_running": float((outside & ran).sum() / ran.sum())}
    return out


def _f(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}"


def markdown(doc: dict[str, Any]) -> str:
    lines = ["# Windows outside the operating envelope: unscored, scored, or against an excursion's own baseline", "",
             f"Measured {doc['when']} from harness series (no rerun: the same weights, windows and z-scores); "
             f"excursion baseline {doc['hours']:g} h of running windows. Recall at 72 h counts failures "
             "caught >= 72 h ahead (after onset: by an alarm raised at or after the fault's onset).", ""]
    for run in doc["runs"]:
        lines += [f"## {Path(run['series']).name}", "",
                  *([f"As run: {run['as_run']}.", ""] if run.get("as_run") else []),
                  "| detector | outside share of running windows | rule | caught | recall @72 h | after onset "
                  "| false alarms | per machine-month |", "|---|---:|---|---:|---:|---:|---:|---:|"]
        for key, d in run["detectors"].items():
            for v, r in d["variants"].items():
                lines.append(f"| {key} | {d['outside_share_of_running']:.1%} | {v} | {r['caught']} / {r['failures']} "
                             f"| {_f(r['recall_72h'])} | {_f(r['recall_72h_after_onset'])} | {r['false_alarms']} "
                             f"| {_f(r['false_alarms_per_machine_month'])} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", action="append", required=True, type=Path,
                    help="a `pdmctl benchmark sim --stages product --series` run's series folder (repeatable)")
    ap.add_argument("--hours", type=float, default=48.0, help="an excursion's baseline, hours of running windows")
    ap.add_argument("--out", default="outside_envelope")
    args = ap.parse_args(argv)
    doc = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "hours": args.hours,
           "runs": [study(f, args.hours) for f in args.series]}
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{args.out}.json").write_text(json.dumps(doc, indent=1, default=str))
    (res / f"{args.out}.md").write_text(markdown(doc))
    print(f"wrote {res / args.out}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
