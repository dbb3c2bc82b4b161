"""Temporal attention scaling: time and peak memory of forward + backward, 1k-16k tokens.

One ``TemporalAttention`` layer (4 heads x 64 dims per head, d_model = 256,
batch 1, dropout 0, float32, CPU) per configuration:

- ``hybrid``: gated sliding window (blocks of 64 tokens + neighbours) and LSH
  (chunks of 64, 2 hash rounds), every chunk through PyTorch's fused
  ``scaled_dot_product_attention``;
- ``window``: the sliding-window branch alone;
- ``full``: full attention through the fused SDPA kernel (never builds n x n);
- ``full_explicit``: full attention written out, QK^T -> softmax -> V (builds
  the n x n matrix, as the standard Transformer does).

Each (kind, length) runs in a fresh subprocess: build the layer and input,
warm up once on 256 tokens and once at full size (not for the written-out
attention from 8k tokens: too slow), reset the peak resident set (``/proc/self/clear_refs``
= 5, Linux), then run forward + backward ``repeats`` times. Time is the median
wall time of those runs; memory is the peak resident set (VmHWM) minus the
resident set just before the first run, so the interpreter, torch and the
input are not counted. Memory is measured in a second subprocess run with
``MALLOC_MMAP_THRESHOLD_=65536``, so glibc returns every freed block over
64 KiB to the system at once and the resident set follows the live tensors
(with the default, adaptive threshold the same run varies by ~50 MB from
process to process; that run's figure is kept as ``peak_mib_default_allocator``).
Times come from the run with the default allocator (the fixed threshold
costs page faults). The written-out attention from 8k tokens runs once, in
the memory mode, for both. Before each subprocess the benchmark waits (up to
a minute) until other processes use < 15 % of the CPU, records the share
other processes used while it ran, and repeats (up to 3 tries) when that was
over 15 %: the machine is shared.

Quality: a small TSHAE is trained twice on the same simulator windows, once
with hybrid and once with full temporal attention (same seed, same data, a
length where full attention is cheap), and the masked reconstruction error
(mean absolute error over observed values) on held-out windows is compared.

Writes ``benchmarks/results/attention_scaling.json`` and ``.md``.
``--quick``: 1k and 2k tokens, no quality run; ``--no-quality``: skip it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
KINDS = ("hybrid", "window", "full", "full_explicit")
HEADS, HEAD_DIM = 4, 64


def _proc_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_busy(seconds: float = 0.5) -> float:
    """Fraction of the machine's CPU time used (by anyone) over ``seconds``."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)

    i0, t0 = read()
    time.sleep(seconds)
    i1, t1 = read()
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def wait_quiet(limit: float = 0.15, timeout: float = 60.0) -> float:
    """Wait until other processes use < ``limit`` of the CPU (at most ``timeout`` s); returns the last reading."""
    began = time.time()
    while True:
        busy = cpu_busy()
        if busy < limit or time.time() - began > timeout:
            return busy


def worker(kind: str, n: int, repeats: int) -> dict:
    """Runs in the subprocess: one kind at one length."""
    import torch

    from pdm.model.attention import TemporalAttention

    torch.manual_seed(0)
    layer = TemporalAttention(HEADS * HEAD_DIM, HEADS, kind, window=64, chunk=64, rounds=2)
    warm = torch.randn(1, 256, HEADS * HEAD_DIM, requires_grad=True)
    out, _ = layer(warm)
    out.sum().backward()
    x = torch.randn(1, n, HEADS * HEAD_DIM, requires_grad=True)
    if not (kind == "full_explicit" and n >= 8192):  # one untimed run at full size: lazy buffers, thread pools
        out, _ = layer(x)
        out.sum().backward()
        del out
    x.grad = None
    layer.zero_grad(set_to_none=True)
    Path("/proc/self/clear_refs").write_text("5")
    base = _proc_kib("VmRSS")
    times = []
    for _ in range(repeats):
        x.grad = None
        layer.zero_grad(set_to_none=True)
        t = time.perf_counter()
        out, _ = layer(x)
        out.sum().backward()
        times.append(time.perf_counter() - t)
        del out
    peak = _proc_kib("VmHWM")
    times.sort()
    return {"kind": kind, "tokens": n, "seconds": times[len(times) // 2], "seconds_all": times,
            "peak_mib": (peak - base) / 1024, "threads": torch.get_num_threads()}


def _cpu_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)  # busy, total (all CPUs)


def run_one(kind: str, n: int, repeats: int, timeout: float, memory: bool) -> dict:
    """One configuration in a fresh subprocess; ``memory``: with a fixed mmap threshold (see the docstring).

    ``others`` = share of the machine's CPU time used by other processes while it ran
    (all CPU time minus the subprocess's own); measurements with others above 15 % are
    repeated (up to 3 tries, the quietest kept).
    """
    import resource

    env = dict(os.environ)
    if memory:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    best: dict | None = None
    for _ in range(3):
        wait_quiet()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0, tot0 = _cpu_jiffies()
        cmd = [sys.executable, __file__, "--worker", kind, str(n), str(repeats)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"kind": kind, "tokens": n, "error": f"timed out after {timeout:.0f} s"}
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            return {"kind": kind, "tokens": n, "error": f"exit {proc.returncode}: {tail[0]}"}
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy1, tot1 = _cpu_jiffies()
        hz = os.sysconf("SC_CLK_TCK")
        own = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) * hz
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["others_busy"] = max(0.0, (busy1 - busy0 - own) / max(tot1 - tot0, 1))
        if best is None or res["others_busy"] < best["others_busy"]:
            best = res
        if res["others_busy"] < 0.15:
            break
    assert best is not None
    return best


def explicit_fits(n: int, rows: list[dict]) -> tuple[bool, str]:
    """Will the written-out attention at ``n`` tokens fit, with 2 GiB to spare for the machine's other users?

    Its memory is quadratic: predicted from the largest length measured so far (x (n/m)^2, +5 %),
    else ~4 n x n float32 matrices per head (scores, softmax, their gradients).
    """
    done = [r for r in rows if r.get("kind") == "full_explicit" and "peak_mib" in r and r["tokens"] < n]
    if done:
        ref = max(done, key=lambda r: r["tokens"])
        need = ref["peak_mib"] / 1024 * (n / ref["tokens"]) ** 2 * 1.05
    else:
        need = 4 * HEADS * n * n * 4 * 1.1 / 2**30
    avail = _meminfo_gib("MemAvailable")
    return need < avail - 2.0, f"needs ~{need:.1f} GiB, {avail:.1f} GiB available"


def _meminfo_gib(field: str) -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return 0.0


# ------------------------------------------------------------------ quality
def quality(days: int, machines: int, epochs: int, window: int, seeds: int) -> dict:
    """Hybrid vs full temporal attention in TSHAE: held-out reconstruction error on simulator windows."""
    import tempfile

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.edge import simulator_data
    from pdm.features import WindowSet
    from pdm.features.grid import CONTEXT_CHANNELS, EVENT_TYPES
    from pdm.model.train import TrainConfig, channel_errors, reconstruct, train
    from pdm.model.tshae import TSHAEConfig

    with tempfile.TemporaryDirectory() as tmp:
        data = simulator_data(Path(tmp), machines=machines, days=days, train_days=days, healthy_window=window,
                              healthy_stride=window // 8)
    windows = WindowSet.concat(list(data.healthy.values()))
    n = len(windows)
    order = np.random.default_rng(0).permutation(n)
    tr, te = windows.take(np.sort(order[n // 5:])), windows.take(np.sort(order[: n // 5]))
    out: dict = {"windows_train": len(tr), "windows_test": len(te), "window_steps": window, "seeds": seeds,
                 "epochs": epochs, "rows": {}}
    for kind in ("full", "hybrid"):
        maes, secs = [], []
        for seed in range(seeds):
            cfg = TSHAEConfig(channels=len(tr.channels), context_channels=len(CONTEXT_CHANNELS),
                              event_channels=len(EVENT_TYPES), window=window, attention=kind,
                              channel_names=list(tr.channels))
            print(f"quality: training {kind} seed {seed} ({len(tr)} windows, {cfg.tokens} tokens per channel, "
                  f"{epochs} epochs)", flush=True)
            model, metrics = train(tr, cfg, TrainConfig(epochs=epochs, patience=epochs, progress=False, seed=seed))
            err = channel_errors(te, reconstruct(model, te)["reconstruction"])
            maes.append(float(np.nanmean(err)))
            secs.append(metrics["seconds"])
            print(f"quality: {kind} seed {seed}: held-out MAE {maes[-1]:.4f} ({secs[-1]:.0f} s)", flush=True)
        out["rows"][kind] = {"test_mae": float(np.mean(maes)), "test_mae_per_seed": maes, "train_seconds": float(np.mean(secs)),
                             "attn_window": cfg.attn_window, "lsh_chunk": cfg.lsh_chunk, "patch": cfg.patch,
                             "tokens": cfg.tokens}
    out["patch"], out["tokens"] = out["rows"]["full"]["patch"], out["rows"]["full"]["tokens"]
    out["hybrid_over_full"] = out["rows"]["hybrid"]["test_mae"] / out["rows"]["full"]["test_mae"]
    return out


# ------------------------------------------------------------------- report
def markdown(res: dict) -> str:
    lines = [
        "# Temporal attention scaling — forward + backward, one layer",
        "",
        f"Measured {res['date']} on {res['machine']}; {HEADS} heads x {HEAD_DIM} dims, batch 1, float32, "
        f"{res['threads']} threads. Time: median of {res['repeats']} runs (1 for the written-out attention "
        "from 8k); memory: peak resident set over the run minus the resident set before it, in a fresh "
        "process per row. \"others\": CPU share used by other processes on this shared machine just before.",
        "",
        "| tokens | kind | time s | peak MiB | time / fused full | time / written-out | mem / fused full | mem / written-out | others |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in res["rows"]:
        if "error" in row or "skipped" in row:
            lines.append(f"| {row['tokens']:,} | {row['kind']} | — | — | | | | | {row.get('error') or row['skipped']} |")
            continue
        r = row.get("ratios", {})

        def f(k: str, r: dict = r) -> str:
            return f"{r[k]:.3f}" if k in r else ""

        lines.append(f"| {row['tokens']:,} | {row['kind']} | {row['seconds']:.3f} | {row['peak_mib']:,.0f} | "
                     f"{f('time_vs_full')} | {f('time_vs_full_explicit')} | {f('mem_vs_full')} | "
                     f"{f('mem_vs_full_explicit')} | {row.get('others_busy', 0):.0%} |")
    t = res.get("targets")
    if t:
        lines += ["", f"## Targets at {t['tokens']:,} tokens (hybrid)", ""]
        for name, item in t["checks"].items():
            lines.append(f"- {name}: {item['value']} (target {item['target']}) — **{'met' if item['met'] else 'missed'}**")
    q = res.get("quality")
    if q:
        lines += [
            "",
            f"## Reconstruction quality ({q['tokens']} tokens = {q['window_steps']} steps / patch {q['patch']}; "
            f"{q['windows_train']} training, {q['windows_test']} held-out healthy simulator windows, {q['epochs']} epochs, "
            f"mean of {q['seeds']} seeds)",
            "",
            *([f"Measured {q['date']} (a separate run from the timings above)."] if q.get("date") else []),
            "",
            "TSHAE as configured by default (d_model 64, 2 layers, hybrid: blocks of 16 tokens, LSH chunks of 16, 2 rounds); "
            "MAE over observed, scaled values.",
            "",
            "| temporal attention | held-out MAE | per seed | train s per model |",
            "|---|---:|---|---:|",
        ]
        for kind, row in q["rows"].items():
            per = ", ".join(f"{x:.4f}" for x in row["test_mae_per_seed"])
            lines.append(f"| {kind} | {row['test_mae']:.4f} | {per} | {row['train_seconds']:.1f} |")
        lines.append("")
        lines.append(f"hybrid / full = {q['hybrid_over_full']:.4f} (target <= 1.02): "
                     f"**{'met' if q['hybrid_over_full'] <= 1.02 else 'missed'}**.")
    for note in res.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1k and 2k tokens only, no quality run")
    ap.add_argument("--lengths", type=int, nargs="*", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--quality-only", action="store_true",
                    help="run only the quality comparison and add it to the existing attention_scaling.json")
    ap.add_argument("--quality-days", type=int, default=40)
    ap.add_argument("--quality-machines", type=int, default=4)
    ap.add_argument("--quality-epochs", type=int, default=6)
    ap.add_argument("--quality-seeds", type=int, default=2)
    args = ap.parse_args()
    if args.quality_only:
        path = RESULTS / "attention_scaling.json"
        res = json.loads(path.read_text())
        res["quality"] = quality(args.quality_days, args.quality_machines, args.quality_epochs, window=1024,
                                 seeds=args.quality_seeds)
        res["quality"]["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        path.write_text(json.dumps(res, indent=2, default=str))
        (RESULTS / "attention_scaling.md").write_text(markdown(res))
        print(markdown(res))
        return
    lengths = args.lengths or ([1024, 2048] if args.quick else [1024, 2048, 4096, 8192, 16384])
    res: dict = {"rows": [], "repeats": args.repeats, "notes": []}
    # The written-out attention last and alone at the longest lengths: it needs ~n^2 memory.
    plan = [(k, n) for n in lengths for k in KINDS if not (k == "full_explicit" and n >= 8192)]
    plan += [("full_explicit", n) for n in lengths if n >= 8192]
    for kind, n in plan:
        repeats = 1 if kind == "full_explicit" and n >= 8192 else args.repeats
        if kind == "full_explicit":
            ok, why = explicit_fits(n, res["rows"])
            if not ok:
                res["rows"].append({"kind": kind, "tokens": n, "skipped": f"skipped: {why}"})
                print(f"{kind:>14} {n:>6}: skipped ({why})", flush=True)
                continue
        print(f"{kind:>14} {n:>6}: running ...", flush=True)
        single = kind == "full_explicit" and n >= 8192  # too slow to run twice: one run, memory mode
        row = run_one(kind, n, repeats, timeout=1800, memory=single)
        if "error" not in row and not single:
            mem = run_one(kind, n, 1, timeout=1800, memory=True)
            row["peak_mib_default_allocator"] = row["peak_mib"]
            row["peak_mib"] = mem.get("peak_mib", float("nan"))
            row["others_busy_memory_run"] = mem.get("others_busy")
        res["rows"].append(row)
        if "error" in row:
            print(f"{kind:>14} {n:>6}: {row['error']}", flush=True)
        else:
            print(f"{kind:>14} {n:>6}: {row['seconds']:8.3f} s  {row['peak_mib']:9,.0f} MiB peak  "
                  f"(others {row['others_busy']:.0%})", flush=True)
    by = {(r["kind"], r["tokens"]): r for r in res["rows"] if "seconds" in r}
    for (kind, n), row in by.items():
        row["ratios"] = {}
        for ref in ("full", "full_explicit"):
            base = by.get((ref, n))
            if base and ref != kind:
                row["ratios"][f"time_vs_{ref}"] = row["seconds"] / base["seconds"]
                row["ratios"][f"mem_vs_{ref}"] = row["peak_mib"] / max(base["peak_mib"], 1e-9)
    top = max(lengths)
    h, f, e = by.get(("hybrid", top)), by.get(("full", top)), by.get(("full_explicit", top))
    if h and f:
        checks = {
            "time vs fused full": {"value": f"{h['seconds'] / f['seconds']:.3f}x", "target": "<= 0.2x",
                                   "met": h["seconds"] <= 0.2 * f["seconds"]},
            "peak memory vs fused full": {"value": f"{h['peak_mib']:.0f} / {f['peak_mib']:.0f} MiB", "target": "<= 1x",
                                          "met": h["peak_mib"] <= f["peak_mib"]},
        }
        if e:
            checks["peak memory vs written-out"] = {"value": f"{h['peak_mib'] / e['peak_mib']:.4f}x", "target": "<= 0.1x",
                                                    "met": h["peak_mib"] <= 0.1 * e["peak_mib"]}
        res["targets"] = {"tokens": top, "checks": checks}
    if not args.quick and not args.no_quality:
        res["quality"] = quality(args.quality_days, args.quality_machines, args.quality_epochs, window=1024,
                                 seeds=args.quality_seeds)
    import torch

    res["threads"] = torch.get_num_threads()
    res["torch"] = torch.__version__
    res["date"] = time.strftime("%Y-%m-%d")
    res["machine"] = f"this machine ({os.cpu_count()} cores, {platform.machine()})"
    RESULTS.mkdir(exist_ok=True)
    name = "attention_scaling_quick" if args.quick else "attention_scaling"
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
