"""glibc's default malloc against the heap-kept large buffers of ``pdm.model.allocator``, in one run.

Each measurement runs in a fresh child process (the allocator setting is
process-wide and cannot be undone), the two settings alternating round by
round so that a neighbour's load hits both alike:

- ``default``: ``PDM_MALLOC=default`` (glibc as shipped: buffers above the
  dynamic mmap threshold, at most 32 MiB, are mapped and unmapped each time);
- ``tuned``: ``pdm.model.allocator.tune()`` (mmap threshold 1 GiB, trim 512 MiB).

Workloads (TSHAE as the product trains and scores it, random data of the
right shape; timing only):

- ``train``: one optimiser step (forward, masked Huber loss, backward, AdamW)
  on a batch of 32 windows (``TrainConfig``'s default), 33 channels x 144
  steps, d_model 64: the sim benchmark's and the DAG's training shape;
- ``train64``: the same with a batch of 64, whose buffers pass glibc's
  largest mmap threshold (32 MiB);
- ``score``: a batch-64 forward pass in eval mode, no gradients (edge scoring);
- ``request``: a batch-1 forward pass of 16 channels x 1,440 steps (the fleet
  scoring benchmark's request).

Reported per workload: median seconds per step (median over rounds of each
child's median), the ratio default / tuned, and each child's peak resident
memory. Writes ``benchmarks/results/allocator.json`` and ``allocator.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
WORKLOADS = ("train", "train64", "score", "request")
SETTINGS = ("default", "tuned")


def child(workload: str, steps: int, threads: int, small: bool) -> dict[str, Any]:
    """Time ``steps`` steps of ``workload`` (after one warm-up) in this process; the allocator as the env says."""
    import torch

    from pdm.model import allocator
    from pdm.model.tshae import TSHAE, TSHAEConfig, masked_huber

    applied = allocator.tune()
    quantised = workload == "score_int8"  # for code_speed.py: the edge model
    workload = "score" if quantised else workload
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if workload == "request":
        b, c, t = 1, 16, 1440 if not small else 256
    else:
        b, c, t = (32 if workload == "train" else 64, 33, 144) if not small else (4, 8, 64)
    model = TSHAE(TSHAEConfig(channels=c, context_channels=3, event_channels=6, window=t))
    values, mask = torch.randn(b, c, t), torch.ones(b, c, t)
    mask[:, 0, : t // 4] = 0  # some missing values, as real windows have
    ctx, ev = torch.randn(b, 3, t), torch.zeros(b, 6, t)
    ev[0, 1, t // 2] = 1.0
    if workload.startswith("train"):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            out = model(values, mask, ctx, ev)
            loss = masked_huber(out.reconstruction, values, mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        model.eval()
        if quantised:
            from pdm.model.edge import quantize

            model = quantize(model)  # type: ignore[assignment]

        def step() -> None:
            with torch.no_grad():
                model(values, mask, ctx, ev)
    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"applied": applied, "shape": f"batch {b} x {c} ch x {t:,}", "seconds": times, "median_s": statistics.median(times),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def alternate(script: str, workload: str, settings: dict[str, tuple[dict[str, str], Path]], rounds: int,
              args: list[str], tag: str, progress: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Run ``script --child workload *args`` in a fresh process per setting (its environment and working
    directory) and round, the settings alternating round by round; each child's JSON result, per setting."""
    names = list(settings)
    per: dict[str, list[dict[str, Any]]] = {s: [] for s in names}
    for r in range(rounds):
        for s in names if r % 2 == 0 else names[::-1]:
            env, cwd = settings[s]
            proc = subprocess.run([sys.executable, script, "--child", workload, *args], env=env, cwd=cwd,
                                  capture_output=True, text=True, check=False)
            if proc.returncode:
                raise RuntimeError(f"{workload}/{s}: child failed:\n{proc.stderr[-2000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            per[s].append(res)
            if progress:
                print(f"{tag}: {workload} round {r + 1}/{rounds} {s}: {res['median_s']:.3f} s/step", flush=True)
    return per


def run(rounds: int = 3, steps: int = 3, threads: int = 2, small: bool = False,
        workloads: tuple[str, ...] = WORKLOADS, progress: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": rounds, "steps": steps, "threads": threads, "small": small, "workloads": {}}
    root = Path(__file__).parent.parent
    settings = {s: (dict(os.environ, PDM_MALLOC="default" if s == "default" else "tuned"), root) for s in SETTINGS}
    args = ["--steps", str(steps), "--threads", str(threads)] + (["--small"] if small else [])
    for w in workloads:
        per = alternate(__file__, w, settings, rounds, args, "allocator", progress)
        row: dict[str, Any] = {"shape": per["tuned"][0]["shape"]}
        for s in SETTINGS:
            row[s] = {"median_s": statistics.median(x["median_s"] for x in per[s]),
                      "round_medians_s": [x["median_s"] for x in per[s]],
                      "peak_rss_mib": max(x["peak_rss_mib"] for x in per[s]),
                      "applied": sorted({x["applied"] for x in per[s]})}
        row["speedup"] = row["default"]["median_s"] / row["tuned"]["median_s"]
        out["workloads"][w] = row
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "# Large buffers kept in the heap (pdm.model.allocator) vs glibc's default malloc",
        "",
        f"Measured {res['date']} on {res['machine']}, torch {res['torch']}, {res['threads']} thread(s). Each cell: "
        f"median over {res['rounds']} fresh child processes (the two settings alternating) of each one's median "
        f"of {res['steps']} steps after a warm-up.",
        "",
        "| workload | default s/step | tuned s/step | speed-up | peak RSS default / tuned MiB | rounds default | rounds tuned |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    names = {"train": "train step", "train64": "train step", "score": "scoring pass", "request": "request"}
    for w, r in res["workloads"].items():
        d, t = r["default"], r["tuned"]
        lines.append(f"| {names.get(w, w)}, {r['shape']} | {d['median_s']:.3f} | {t['median_s']:.3f} | {r['speedup']:.2f}x | "
                     f"{d['peak_rss_mib']:,.0f} / {t['peak_rss_mib']:,.0f} | "
                     f"{', '.join(f'{x:.3f}' for x in d['round_medians_s'])} | "
                     f"{', '.join(f'{x:.3f}' for x in t['round_medians_s'])} |")
    lines += ["", "Why: above glibc's mmap threshold each buffer is a fresh mapping whose pages the kernel faults in "
              "and zeroes on first touch, every step; kept in the heap they are reused. Peak memory is the "
              "working set either way.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="tiny shapes (a smoke test, not a measurement)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    ap.add_argument("--tag", help="appended to the results files' names (allocator_TAG.json)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.threads, args.small)))
        return
    import torch

    chosen = tuple(w for w in args.workloads.split(",") if w)
    if bad := [w for w in chosen if w not in WORKLOADS]:
        ap.error(f"unknown workload(s) {', '.join(bad)}; choose from {', '.join(WORKLOADS)}")
    res = run(args.rounds, args.steps, args.threads, args.small, chosen)
    res.update(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), torch=torch.__version__,
               machine=f"this machine ({os.cpu_count()} cores, {platform.machine()})")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = ("allocator_small" if args.small else "allocator") + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
