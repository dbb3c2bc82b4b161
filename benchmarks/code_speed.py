"""This checkout's TSHAE against an earlier revision's, the same workloads side by side in one run.

A speed change to the model's code is measured here rather than across
sessions (each session gets another machine: the same code ran 1.5x slower or
faster from one to the next). ``--baseline REV`` is checked out into a
temporary git worktree; every measurement runs in a fresh child process
importing ``pdm`` from either tree, the two alternating round by round so that
a neighbour's load hits both alike. The workloads are
``benchmarks/allocator.py``'s (random data of the product's shapes, timing
only; buffers kept in the heap in both):

- ``train``: one optimiser step on a batch of 32 windows, 33 channels x 144 steps;
- ``score``: a batch-64 forward pass in eval mode, no gradients;
- ``score_int8``: the same through the dynamically quantised model (``pdm.model.edge.quantize``);
- ``request``: a batch-1 forward pass of 16 channels x 1,440 steps (fleet scoring's request).

Reported per workload: median seconds per step for the baseline and this
checkout and their ratio (baseline / this: above 1 = faster now), and the
int8 / float ratio of each tree. Writes ``benchmarks/results/code_speed_TAG.json``
and ``.md`` (TAG: ``--tag``, default the baseline's short hash).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, this directory is on the path and the repository is not (the child must import
# pdm from the tree it measures); imported as benchmarks.code_speed, the package is.
try:
    from allocator import alternate, child
except ImportError:
    from benchmarks.allocator import alternate, child

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("train", "score", "score_int8", "request")
TREES = ("baseline", "this")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def measure(trees: dict[str, Path], workloads: tuple[str, ...], rounds: int, steps: int, threads: int,
            small: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    settings = {t: (dict(os.environ, PYTHONPATH=str(trees[t])), trees[t]) for t in TREES}
    args = ["--steps", str(steps), "--threads", str(threads)] + (["--small"] if small else [])
    for w in workloads:
        runs = alternate(__file__, w, settings, rounds, args, "code_speed")
        for tree in TREES:
            for res in runs[tree]:
                if not Path(res["pdm"]).resolve().is_relative_to(trees[tree].resolve()):
                    raise RuntimeError(f"{w}/{tree}: the child imported pdm from {res['pdm']}, not {trees[tree]}")
        per = {t: [res["median_s"] for res in runs[t]] for t in TREES}
        row = {t: {"median_s": statistics.median(per[t]), "round_medians_s": per[t]} for t in TREES}
        row["speedup"] = row["baseline"]["median_s"] / row["this"]["median_s"]
        row["shape"] = runs["this"][0]["shape"]
        out[w] = row
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"# TSHAE speed: this checkout ({res['this']}) against {res['baseline']}",
        "",
        f"Measured {res['date']} on {res['machine']}, torch {res['torch']}, {res['threads']} thread(s). Each cell: "
        f"median over {res['rounds']} fresh child processes per tree (the trees alternating) of each one's median "
        f"of {res['steps']} steps after a warm-up.",
        "",
        "| workload | baseline s/step | this s/step | speed-up | rounds baseline | rounds this |",
        "|---|---:|---:|---:|---|---|",
    ]
    for w, r in res["workloads"].items():
        b, t = r["baseline"], r["this"]
        lines.append(f"| {w}, {r['shape']} | {b['median_s']:.3f} | {t['median_s']:.3f} | {r['speedup']:.2f}x | "
                     f"{', '.join(f'{x:.3f}' for x in b['round_medians_s'])} | "
                     f"{', '.join(f'{x:.3f}' for x in t['round_medians_s'])} |")
    wl = res["workloads"]
    if "score" in wl and "score_int8" in wl:
        ratio = {t: wl["score"][t]["median_s"] / wl["score_int8"][t]["median_s"] for t in TREES}
        lines += ["", f"int8 / float32 scoring speed-up: baseline {ratio['baseline']:.2f}x, this {ratio['this']:.2f}x."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    ap.add_argument("--baseline", default="HEAD~1", help="git revision to compare against")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--small", action="store_true", help="tiny shapes (a smoke test, not a measurement)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    ap.add_argument("--tag")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.child:
        import pdm

        print(json.dumps({**child(args.child, args.steps, args.threads, args.small), "pdm": pdm.__file__}))
        return
    import torch

    chosen = tuple(w for w in args.workloads.split(",") if w)
    if bad := [w for w in chosen if w not in WORKLOADS]:
        ap.error(f"unknown workload(s) {', '.join(bad)}; choose from {', '.join(WORKLOADS)}")
    base = _git("rev-parse", "--short", args.baseline)
    this = _git("rev-parse", "--short", "HEAD") + ("+changes" if _git("status", "--porcelain", "pdm") else "")
    tmp = Path(tempfile.mkdtemp(prefix="pdm-baseline-"))
    try:
        _git("worktree", "add", "--detach", str(tmp / "tree"), base)
        res: dict[str, Any] = {"baseline": base, "this": this, "rounds": args.rounds, "steps": args.steps,
                               "threads": args.threads, "small": args.small}
        res["workloads"] = measure({"baseline": tmp / "tree", "this": ROOT}, chosen, args.rounds, args.steps,
                                   args.threads, args.small)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "tree")], cwd=ROOT, capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    res.update(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), torch=torch.__version__,
               machine=f"this machine ({os.cpu_count()} cores, {platform.machine()})")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"code_speed_{args.tag or base}" + ("_small" if args.small else "")
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
