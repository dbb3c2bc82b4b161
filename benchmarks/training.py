"""Training throughput: TSHAE vs tsai's TSTPlus on the same windows, and achieved GFLOP/s vs this CPU's peak.

Windows: simulator windows as in :mod:`benchmarks.edge` (one day = 144 steps
of 10 minutes, 33 sensor channels plus 4 context and 5 event channels;
``--machines`` machines x ``--days`` days, healthy windows). Both models
train on the same packed tsai array, through the same tsai ``get_ts_dls``
loaders (batch 32, 20 % validation) and a fastai ``Learner`` with
``fit_one_cycle``:

- TSHAE: :func:`pdm.model.train.train` (masked reconstruction, hybrid
  temporal attention, d_model 64, 2 layers: the pipeline's default);
- TSTPlus: tsai's Transformer (defaults: d_model 128, 3 layers, 16 heads,
  one token per time step) trained with tsai's ``MVP`` masked
  reconstruction, the tsai way of training TSTPlus as an autoencoder.

Throughput = training windows x epochs / wall time of the fit (validation
passes included), after one warm-up epoch that is not counted.

GFLOP/s: floating-point operations of one training step (forward +
backward) counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls,
convolutions and attention; PyTorch's fused CPU attention kernel is added
with PyTorch's own SDPA formulas), divided by the median step time of a
plain loop (no data loading), for TSHAE, TSTPlus and a large,
matmul-bound TSHAE configuration (d_model 256, 4 layers, feed-forward x4,
full attention, window 1024 steps = 128 tokens per channel). The peak is
given twice: measured (the best of several large float32 ``torch.mm`` on
this machine, the practical ceiling) and theoretical (cores x FMA width x
frequency, from ``lscpu``/``/proc/cpuinfo``; stated assumptions).

Writes ``benchmarks/results/training.json`` and ``.md``; ``--quick``: fewer
windows and steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# ------------------------------------------------------------------- peak
def cpu_info() -> dict[str, Any]:
    """Cores, model, frequency and vector flags of this CPU."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = dict(re.findall(r"^([^:\n]+):\s*(.*)$", text, flags=re.M))
    flags = set(info.get("Flags", "").split())
    mhz = [float(x) for x in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text(), flags=re.M)]
    max_mhz = float(info["CPU max MHz"]) if "CPU max MHz" in info else None
    return {"model": info.get("Model name", "?"), "family": info.get("CPU family"), "cores": os.cpu_count(),
            "mhz": max(mhz) if mhz else None, "max_mhz": max_mhz, "avx512f": "avx512f" in flags,
            "avx2": "avx2" in flags, "fma": "fma" in flags, "hypervisor": info.get("Hypervisor vendor")}


def theoretical_peak(info: dict[str, Any]) -> tuple[float, str]:
    """GFLOP/s float32 = cores x FMA pipes x lanes x 2 x GHz, with the assumptions spelled out."""
    lanes = 16 if info["avx512f"] else 8 if info["avx2"] else 4
    pipes = 2
    try:
        family = int(info["family"] or 0)
    except ValueError:
        family = 0
    zen4 = info["avx512f"] and "AMD" in info["model"] and family == 25
    if zen4:
        lanes = 8  # Zen 4 runs a 512-bit FMA as two halves on its two 256-bit pipes
    ghz = (info["max_mhz"] or info["mhz"] or 0) / 1000
    peak = info["cores"] * pipes * lanes * 2 * ghz
    width = "256-bit pipes, AVX-512 split in halves" if zen4 else "AVX-512" if lanes == 16 else "AVX2"
    cpu = (f"{info['model']}, family {info['family']}: " + ("AMD Zen 4, whose AVX-512 runs on two 256-bit FMA pipes"
                                                             if zen4 else "two full-width FMA pipes per core assumed"))
    why = (f"{info['cores']} cores x {pipes} FMA pipes x {lanes} float32 lanes ({width}) "
           f"x 2 flop/FMA x {ghz:.2f} GHz = {peak:.0f} GFLOP/s ({cpu}), at the {ghz:.2f} GHz the VM reports "
           "(no boost clock is exposed under the hypervisor, so the real clock may be higher: a measured peak above "
           "this one says it is).")
    return peak, why


def measured_peak(size: int = 4096, repeats: int = 5) -> dict[str, Any]:
    """Best GFLOP/s of float32 ``torch.mm`` (size x size) over a few runs: the practical ceiling."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - t) / 1e9)
    return {"gflops": best, "size": size, "threads": torch.get_num_threads()}


# ------------------------------------------------------------------ flops
def count_flops(step) -> float:
    """Flops of one call of ``step`` (forward + backward)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    def fwd(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_flop_count(q, k, v)

    def bwd(go: Any, q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_backward_flop_count(go, q, k, v)

    aten = torch.ops.aten
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: fwd,
               aten._scaled_dot_product_flash_attention_for_cpu_backward: bwd}
    with FlopCounterMode(display=False, custom_mapping=mapping) as fc:
        step()
    return float(fc.get_total_flops())


def step_rate(name: str, model: Any, batch: Any, loss_fn, steps: int) -> dict[str, Any]:
    """Median time of a plain training step (forward, loss, backward, AdamW) and its GFLOP/s."""
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()

    flops = count_flops(step)
    step()
    opt.step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        opt.step()
        times.append(time.perf_counter() - t)
    sec = float(np.median(times))
    print(f"flops: {name}: {flops / 1e9:.2f} GFLOP per step, {sec:.3f} s -> {flops / sec / 1e9:.1f} GFLOP/s", flush=True)
    return {"gflop_per_step": flops / 1e9, "seconds_per_step": sec, "gflops": flops / sec / 1e9}


# ------------------------------------------------------------- throughput
def _dls(x: np.ndarray, bs: int, seed: int = 0):
    from tsai.data.core import get_ts_dls

    from pdm.model.tsai_compat import patch_tsai

    patch_tsai()
    n = len(x)
    order = np.random.default_rng(seed).permutation(n)
    n_valid = max(1, int(round(n * 0.2)))
    splits = (sorted(order[n_valid:].tolist()), sorted(order[:n_valid].tolist()))
    return get_ts_dls(x, x, splits=splits, tfms=[None, None], bs=bs, drop_last=False, shuffle_train=True, seed=seed), splits


def tshae_throughput(windows: Any, epochs: int) -> dict[str, Any]:
    from pdm.features.grid import CONTEXT_CHANNELS, EVENT_TYPES
    from pdm.model.train import TrainConfig, train
    from pdm.model.tshae import TSHAEConfig

    cfg = TSHAEConfig(channels=len(windows.channels), context_channels=len(CONTEXT_CHANNELS),
                      event_channels=len(EVENT_TYPES), window=windows.values.shape[-1], channel_names=list(windows.channels))
    train(windows, cfg, TrainConfig(epochs=1, progress=False))  # warm-up
    model, m = train(windows, cfg, TrainConfig(epochs=epochs, patience=epochs, progress=False))
    n_train = len(windows) - max(1, int(round(len(windows) * 0.2)))
    return {"seconds": m["seconds"], "epochs": m["epochs_run"], "train_windows": n_train,
            "windows_per_s": n_train * m["epochs_run"] / m["seconds"],
            "parameters": sum(p.numel() for p in model.parameters()), "valid_loss": m["valid_loss"][-1]}


def tstplus_throughput(windows: Any, epochs: int) -> dict[str, Any]:
    import fastai.callback.schedule  # noqa: F401
    from fastai.callback.core import Callback
    from fastai.callback.progress import ProgressCallback
    from fastai.learner import Learner
    from torch import nn
    from tsai.callback.MVP import MVP
    from tsai.models.TSTPlus import TSTPlus

    x = windows.packed()
    dls, splits = _dls(x, 32)

    class _TrainNewHead(Callback):
        order = MVP.order + 1  # MVP swaps the head after the optimiser exists (see pdm.model.train)

        def before_fit(self) -> None:
            self.learn.create_opt()

    def make() -> Learner:
        net = TSTPlus(dls.vars, dls.vars, dls.len)
        with tempfile.TemporaryDirectory() as tmp:
            learn = Learner(dls, net, loss_func=nn.MSELoss(), cbs=[MVP(target_dir=tmp, save_best=False), _TrainNewHead()])
        learn.remove_cb(ProgressCallback)
        return learn

    learn = make()
    with learn.no_logging():
        learn.fit_one_cycle(1, 1e-3)  # warm-up
    learn = make()
    with learn.no_logging():
        t = time.perf_counter()
        learn.fit_one_cycle(epochs, 1e-3)
        sec = time.perf_counter() - t
    return {"seconds": sec, "epochs": epochs, "train_windows": len(splits[0]),
            "windows_per_s": len(splits[0]) * epochs / sec,
            "parameters": sum(p.numel() for p in learn.model.parameters()),
            "valid_loss": float(learn.recorder.values[-1][1])}


def flop_configs(windows: Any, steps: int) -> dict[str, Any]:
    import torch
    from tsai.models.TSTPlus import TSTPlus

    from pdm.features.grid import CONTEXT_CHANNELS, EVENT_TYPES
    from pdm.model.tshae import TSHAE, TSHAEConfig, masked_huber

    bs = 32
    k, e = len(CONTEXT_CHANNELS), len(EVENT_TYPES)
    c, t = windows.values.shape[1], windows.values.shape[2]
    vals = torch.from_numpy(np.nan_to_num(windows.values[:bs]))
    batch = (vals, torch.from_numpy(windows.mask[:bs]), torch.from_numpy(windows.context[:bs]),
             torch.from_numpy(windows.events[:bs]))

    def tshae_loss(model: Any, b: Any) -> Any:
        return masked_huber(model(*b).reconstruction, b[0], b[1])

    out: dict[str, Any] = {}
    torch.manual_seed(0)
    base = TSHAE(TSHAEConfig(channels=c, context_channels=k, event_channels=e, window=t)).train()
    out["TSHAE (default, window 144)"] = step_rate("TSHAE", base, batch, tshae_loss, steps)
    x = torch.from_numpy(windows.packed()[:bs])
    tst = TSTPlus(x.shape[1], x.shape[1], t).train()
    tst.head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Conv1d(tst.head_nf, x.shape[1], 1))  # MVP's head
    out["TSTPlus (tsai defaults + MVP head, window 144)"] = step_rate(
        "TSTPlus", tst, x, lambda m, b: torch.nn.functional.mse_loss(m(b), b), steps)
    # Large and matmul-bound: wide layers, full attention, long windows (random data of the same layout).
    big_t, big_bs = 1024, 8
    g = torch.Generator().manual_seed(0)
    big = (torch.randn(big_bs, c, big_t, generator=g), torch.ones(big_bs, c, big_t), torch.rand(big_bs, k, big_t, generator=g),
           torch.zeros(big_bs, e, big_t))
    large = TSHAE(TSHAEConfig(channels=c, context_channels=k, event_channels=e, window=big_t, d_model=256, heads=4, layers=4,
                              ff_mult=4, attention="full", dropout=0.0)).train()
    out["TSHAE large (d 256, 4 layers, ff x4, full attention, window 1024, batch 8)"] = step_rate(
        "TSHAE large", large, big, tshae_loss, max(2, steps // 3))
    return out


# ----------------------------------------------------------------- report
def markdown(res: dict) -> str:
    lines = [
        "# Training throughput and achieved GFLOP/s",
        "",
        f"Measured {res['date']} on {res['machine']}, torch {res['torch']}, {res['threads']} threads. Windows: "
        f"{res['windows']} simulator windows ({res['channels']} sensor channels, {res['window_steps']} steps), batch 32.",
        "",
        "## Windows per second (fastai fit_one_cycle, same windows, same loaders)",
        "",
        "| model | parameters | epochs | train windows | seconds | windows/s | final valid loss |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in res["throughput"].items():
        lines.append(f"| {name} | {r['parameters']:,} | {r['epochs']} | {r['train_windows']} | {r['seconds']:.1f} | "
                     f"{r['windows_per_s']:.1f} | {r['valid_loss']:.4f} |")
    th = res["throughput"]
    names = list(th)
    if len(names) == 2:
        lines += ["", f"{names[0]} / {names[1]}: {th[names[0]]['windows_per_s'] / th[names[1]]['windows_per_s']:.2f}x "
                  "windows/s (losses are not comparable: different objectives)."]
    p = res["peak"]
    lines += [
        "",
        "## Achieved GFLOP/s of one training step (forward + backward + AdamW, no data loading)",
        "",
        f"Peak assumed: measured {p['measured']['gflops']:.0f} GFLOP/s (best float32 torch.mm "
        f"{p['measured']['size']}x{p['measured']['size']}, {p['measured']['threads']} threads); theoretical "
        f"{p['theoretical']:.0f} GFLOP/s — {p['theoretical_why']}",
        "",
        "| configuration | GFLOP / step | s / step | GFLOP/s | of measured peak | of theoretical peak |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in res["flops"].items():
        lines.append(f"| {name} | {r['gflop_per_step']:.2f} | {r['seconds_per_step']:.3f} | {r['gflops']:.1f} | "
                     f"{r['gflops'] / p['measured']['gflops']:.1%} | {r['gflops'] / p['theoretical']:.1%} |")
    big = max(res["flops"].items(), key=lambda kv: kv[1]["gflop_per_step"])
    lines += ["", f"Largest (matmul-bound) configuration: {big[0]}: {big[1]['gflops']:.1f} GFLOP/s = "
              f"{big[1]['gflops'] / p['measured']['gflops']:.1%} of the measured and "
              f"{big[1]['gflops'] / p['theoretical']:.1%} of the theoretical peak."]
    for note in res.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--machines", type=int, default=3)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    if args.quick:
        args.machines, args.days, args.epochs, args.steps = 2, 8, 1, 2
    import torch

    from benchmarks.edge import simulator_data
    from pdm.features import WindowSet

    res: dict[str, Any] = {"notes": []}
    print("peak: measuring torch.mm ...", flush=True)
    info = cpu_info()
    peak, why = theoretical_peak(info)
    res["peak"] = {"measured": measured_peak(2048 if args.quick else 4096), "theoretical": peak, "theoretical_why": why,
                   "cpu": info}
    with tempfile.TemporaryDirectory() as tmp:
        data = simulator_data(Path(tmp), machines=args.machines, days=args.days, train_days=args.days)
    windows = WindowSet.concat([m.train for m in data.machines.values()])
    res.update(windows=len(windows), channels=len(windows.channels), window_steps=windows.values.shape[-1])
    res["throughput"] = {}
    print(f"throughput: TSHAE on {len(windows)} windows ...", flush=True)
    res["throughput"]["TSHAE (pdm train)"] = tshae_throughput(windows, args.epochs)
    print(f"throughput: TSTPlus + MVP on {len(windows)} windows ...", flush=True)
    res["throughput"]["TSTPlus (tsai, MVP)"] = tstplus_throughput(windows, args.epochs)
    for name, r in res["throughput"].items():
        print(f"throughput: {name}: {r['windows_per_s']:.1f} windows/s", flush=True)
    res["flops"] = flop_configs(windows, args.steps)
    res["torch"] = torch.__version__
    res["threads"] = torch.get_num_threads()
    res["date"] = time.strftime("%Y-%m-%d")
    res["machine"] = f"this machine ({os.cpu_count()} cores, {platform.machine()})"
    RESULTS.mkdir(exist_ok=True)
    name = "training_quick" if args.quick else "training"
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
