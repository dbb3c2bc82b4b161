"""Fleet scoring: 1,000 machines x 16 channels x one 1,440-step window, float32 and int8, on this CPU.

Target (issue 5): the whole fleet scored in <= 60 s on this 2-core machine
with p99 per-machine latency <= 100 ms, for the float32 model and for the
dynamic-int8 one (:func:`pdm.model.edge.quantize`).

Model: TSHAE with the product's default hyperparameters (d_model 64, 4
heads, 2 layers, hybrid attention, patch 8) for 16 sensor channels, 4
context channels, 5 event types and a window of 1,440 steps (180 tokens per
channel), in eval mode. Its weights come from a short training run
(``--train-steps`` AdamW steps of ``masked_huber`` with 15 % of the observed
values and, in half of the windows, one imputation group hidden, as
:mod:`pdm.model.train` does, on the healthy calibration windows below) so that the int8 model's scores are compared with a float
model that reconstructs something; timing does not depend on the weights.

Data (synthetic, fixed seed, no simulator or store: this measures scoring,
not alignment): per machine one window of 1,440 one-minute steps (a day)
with two shifts (06:00-22:00, start/stop jittered per machine; the
``running`` context flag), a load profile that steps every 30-120 minutes,
16 channels that follow load with per-machine gains, lags (thermal
channels) and a daily cycle, plus noise; ~2 % of values missing (single
points and short dropouts, masked); 0-3 operator-log events per machine.
About 1 % of the machines (at least 3) have an injected fault: a drift over
the last third of the window in 2-3 channels. Healthy calibration windows
are drawn from the same generator with another seed and no faults.

Calibration (fleet level, explicit): one :class:`ChannelCalibrator` and one
:class:`POTThreshold` per model (float32, int8) fitted on the errors of
``--calib-windows`` healthy windows. The product fits them per machine; for
the cost of scoring that is the same lookup. Each model is calibrated on
its own reconstructions, as an int8 edge deployment would be.

Scoring path per request (as in :func:`pdm.detect.score._score_one`, without
the store): :func:`pdm.model.train.reconstruct` (no_grad, eval; the product's
imputation scoring, one pass per group: the 12 vibration channels hidden,
then the 4 temperatures) →
:func:`pdm.detect.errors.window_errors` with the observed mask and the
scorer's gate (stopped vibration/process steps hidden from the model,
``pdm.detect.errors.step_gate`` on the window's ``running`` context: running,
warm-up, a quarter of the window counted) →
``ChannelCalibrator.apply`` → ``POTThreshold.apply`` → ``AlarmRule.apply``
over a short history (the machine's 5 previous scores, healthy ones drawn
from the calibration scores, then the new one).

Measured, per model, after one warm-up request, for each torch thread
count in ``--threads`` (default 2) and, with ``--workers N``, also with N
spawned scoring processes of one thread each, every one scoring a
contiguous shard of the fleet (wall time from a common start barrier to
the last one's end):

- fleet throughput: all machines in batches of each ``--batch-sizes``;
  total seconds, machines/s; the per-machine latency of a batched request
  is the batch's wall time;
- latency: batch size 1 is one request per machine, timed one by one:
  p50 / p95 / p99 / max;
- score agreement int8 vs float32 (Pearson of the machine scores, share of
  machines with the same alarm decision), and the injected faults found;
- the torch profiler's top operators on one request (what limits it), and
  a single-request time with 1 thread vs ``--threads`` (interleaved), since
  on a shared 2-core machine a second thread can stall on a busy core.

Recorded: torch version, threads, cores, 1-minute load average at start
and end (the machine is shared), peak RSS of the process and resident
memory per pass. The brief training runs in a spawned child process so that
its autograd memory does not count as scoring memory.

Writes ``benchmarks/results/fleet_scoring.json`` and ``.md``; ``--quick``:
100 machines, batch sizes 1 and 8, a shorter training, written to
``fleet_scoring_quick.*``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_TOTAL_S = 60.0
TARGET_P99_MS = 100.0
TARGET_MACHINES = 1000
RUNNING = 2  # index of "running" in pdm.features.grid.CONTEXT_CHANNELS
STEP_HOURS = 1 / 60  # the synthetic windows are one step per minute
DAY_END_MIN = 20 * 60  # minute of the day at which each synthetic window ends
THERMAL = (12, 13, 14, 15)  # synthetic channels that follow load with a lag


def model_groups(config: dict[str, Any]) -> list[list[int]]:
    """The imputation groups of a recorded model config (its channel names are not recorded)."""
    from pdm.model.tshae import TSHAEConfig

    names = channel_names(int(config["channels"]))
    return TSHAEConfig.from_dict({**config, "channel_names": names}).groups


def channel_names(channels: int) -> list[str]:
    """Ids as the product names them: the thermal channels are temperatures, the others vibration features.

    They decide the model's imputation groups (vibration | the rest), so the
    benchmark scores with the product's two imputation passes.
    """
    return [f"temperature.t{c:02d}.celsius" if c in THERMAL else f"vibration.v{c:02d}.rms" for c in range(channels)]


@dataclass
class BenchConfig:
    """What one run measures (the defaults are the full run)."""

    machines: int = 1000
    channels: int = 16
    window: int = 1440
    batch_sizes: tuple[int, ...] = (1, 8, 16, 32)
    threads: tuple[int, ...] = (2,)
    workers: tuple[int, ...] = ()  # also score with this many 1-thread processes (each value > 1)
    #: also score in this process with one torch thread and this many threads running a request's imputation
    #: passes side by side (pdm.model.train.reconstruct's group_threads; each value > 1)
    group_threads: tuple[int, ...] = ()
    train_in_child: bool = True
    calib_windows: int = 300
    train_steps: int = 200
    train_batch: int = 4
    seed: int = 5
    profile: bool = True
    history: int = 5
    notes: list[str] = field(default_factory=list)


# -------------------------------------------------------------------- data
def synthetic_windows(machines: int, channels: int, window: int, seed: int, faulty: int = 0) -> tuple[Any, np.ndarray]:
    """One window per machine (a WindowSet) and the indices of the machines with an injected fault."""
    from pdm.features.grid import CONTEXT_CHANNELS, EVENT_TYPES
    from pdm.features.windows import WindowSet

    rng = np.random.default_rng(seed)
    t = np.arange(window, dtype=np.float64)
    minute = (t + (DAY_END_MIN - window)) % 1440  # every window ends at 20:00, inside a shift
    values = np.empty((machines, channels, window), np.float32)
    mask = np.empty((machines, channels, window), np.float32)
    context = np.zeros((machines, len(CONTEXT_CHANNELS), window), np.float32)
    events = np.zeros((machines, len(EVENT_TYPES), window), np.float32)
    chunk = 100  # bounded float64 intermediates
    for lo in range(0, machines, chunk):
        m = min(chunk, machines - lo)
        on = 360 + rng.integers(-20, 21, m)[:, None]
        off = 1320 + rng.integers(-20, 21, m)[:, None]
        running = ((minute[None, :] >= on) & (minute[None, :] < off)).astype(np.float64)
        load = np.empty((m, window))
        for i in range(m):  # a load level that steps every 30-120 minutes
            cuts = np.cumsum(rng.integers(30, 121, window // 30 + 1))
            levels = rng.uniform(0.4, 1.0, len(cuts) + 1)
            load[i] = levels[np.searchsorted(cuts, t, side="right")]
        load = load * running
        lagged = load.copy()
        for k in range(1, window):  # thermal lag (~30 min)
            lagged[:, k] = lagged[:, k - 1] + (load[:, k] - lagged[:, k - 1]) / 30.0
        gain = rng.uniform(0.8, 1.6, (m, channels, 1))
        daily = rng.uniform(0.1, 0.4, (m, channels, 1)) * np.sin(2 * np.pi * (minute / 1440.0 + rng.uniform(0, 1, (m, channels, 1))))
        x = gain * load[:, None, :] + daily - 0.7
        x[:, list(THERMAL)] = (gain[:, list(THERMAL)] * lagged[:, None, :] + daily[:, list(THERMAL)] - 0.7)
        x += rng.normal(0, 0.08, x.shape)
        observed = rng.random(x.shape) >= 0.015
        for i in range(m):  # a short dropout in ~half the machines (~0.5 % more missing)
            if rng.random() < 0.5:
                c, s = rng.integers(channels), rng.integers(window - 120)
                observed[i, c, s : s + int(rng.integers(30, 120))] = False
        x[~observed] = np.nan
        values[lo : lo + m] = x
        mask[lo : lo + m] = observed
        context[lo : lo + m, 0] = running * (0.8 + 0.2 * load)  # speed
        context[lo : lo + m, 1] = load
        context[lo : lo + m, 2] = running
        context[lo : lo + m, 3] = rng.uniform(0, 1, (m, 1))  # days since work order / 30
        for i in range(m):
            for _ in range(int(rng.integers(0, 4))):
                events[lo + i, rng.integers(len(EVENT_TYPES)), rng.integers(window)] = rng.integers(1, 5) / 4.0
    bad = rng.choice(machines, size=min(faulty, machines), replace=False) if faulty else np.zeros(0, int)
    for j in bad:  # drift over the last third of the window in 2-3 channels
        chans = rng.choice(channels, size=int(rng.integers(2, 4)), replace=False)
        ramp = np.clip((np.arange(window) - 2 * window / 3) / (window / 3), 0, None)
        values[j, chans] += (rng.uniform(2.0, 4.0, (len(chans), 1)) * ramp).astype(np.float32)
    start = np.full(machines, 1_735_689_600_000_000_000, np.int64)  # 2025-01-01
    names = np.array([f"m-{i:04d}" for i in range(machines)], dtype=object)
    ws = WindowSet(values=values, mask=mask, context=context, events=events, start=start, machine=names,
                   channels=channel_names(channels))
    return ws, np.sort(bad)


# ------------------------------------------------------------------- model
def build_model(channels: int, window: int) -> Any:
    from pdm.features.grid import CONTEXT_CHANNELS, EVENT_TYPES
    from pdm.model.tshae import TSHAE, TSHAEConfig

    cfg = TSHAEConfig(channels=channels, context_channels=len(CONTEXT_CHANNELS), event_channels=len(EVENT_TYPES),
                      window=window, channel_names=channel_names(channels))
    return TSHAE(cfg)


def brief_training(model: Any, ws: Any, steps: int, batch: int, seed: int) -> dict[str, Any]:
    """AdamW on masked_huber with 15 % of observed values hidden (pdm.model.train's objective)."""
    import torch

    from pdm.model.train import PackedTSHAE, TrainConfig
    from pdm.model.tshae import masked_huber

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    net = PackedTSHAE(model, TrainConfig.hide_frac, TrainConfig.group_frac).train()
    began, losses = time.perf_counter(), []
    for _ in range(steps):
        idx = rng.choice(len(ws), size=min(batch, len(ws)), replace=False)
        v = torch.from_numpy(np.nan_to_num(ws.values[idx]))
        m = torch.from_numpy(ws.mask[idx])
        packed = torch.cat([v, m, torch.from_numpy(ws.context[idx]), torch.from_numpy(ws.events[idx])], dim=1)
        loss = masked_huber(net(packed), v, m, model.cfg.huber_delta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    k = max(1, min(10, len(losses) // 2))
    return {"steps": steps, "batch": batch, "seconds": time.perf_counter() - began,
            "loss_first": float(np.mean(losses[:k])) if losses else None,
            "loss_last": float(np.mean(losses[-k:])) if losses else None}


# ----------------------------------------------------------------- scoring
def errors(model: Any, ws: Any, batch_size: int, group_threads: int = 1) -> np.ndarray:
    """Per-channel errors (n, C) of ``ws``: reconstruct → the scorer's running gate (warm-up, minimum count).

    ``group_threads``: as :func:`pdm.model.train.reconstruct`'s (1: the imputation passes stacked in one batch).
    """
    from pdm.detect.errors import gated_errors, hide_steps, step_gate
    from pdm.model.train import reconstruct

    ws = hide_steps(ws, ws.context[:, RUNNING])  # stopped steps hidden from the model, as the scorer does
    recon = reconstruct(model, ws, batch_size=batch_size, group_threads=group_threads)["reconstruction"]
    return gated_errors(ws, recon, step_gate(ws.context[:, RUNNING], STEP_HOURS))


@dataclass
class Scorer:
    """One model with its calibration: scores a batch of machines end to end."""

    model: Any
    calibrator: Any
    threshold: Any
    rule: Any
    history: np.ndarray  # (machines, h) earlier healthy scores of each machine
    group_threads: int = 1  # threads running a request's imputation passes side by side (1: stacked)

    def __call__(self, ws: Any, lo: int) -> tuple[np.ndarray, np.ndarray, int]:
        scores = self.calibrator.apply(errors(self.model, ws, len(ws), self.group_threads))
        alarm = self.threshold.apply(scores)
        h = self.history.shape[1]
        times = np.arange(h + 1, dtype=np.int64) * 600_000_000_000
        episodes = 0
        for i, s in enumerate(scores):
            series = np.append(self.history[lo + i], s)
            episodes += len(self.rule.apply(times, series, self.threshold.threshold, begin=h))
        return scores, alarm, episodes


def calibrate(model: Any, calib: Any, machines: int, history: int, seed: int) -> tuple[Scorer, dict[str, Any]]:
    from pdm.detect.stages import AlarmRule, ChannelCalibrator, POTThreshold

    err = errors(model, calib, 16)
    half = len(calib) // 2  # calibrator on one half, threshold on the scores of the other
    cal = ChannelCalibrator().fit(err[:half])
    healthy = cal.apply(err[half:])
    thr = POTThreshold(min_scores=min(100, max(10, len(healthy)))).fit(healthy)
    rng = np.random.default_rng(seed)
    hist = rng.choice(healthy, size=(machines, history))
    info = {"windows": len(calib), "calibrator_windows": half, "threshold_windows": len(healthy),
            "threshold": thr.threshold, "method": thr.method, "note": thr.note,
            "healthy_score_p50": float(np.median(healthy)), "healthy_score_max": float(np.max(healthy))}
    return Scorer(model, cal, thr, AlarmRule(), hist), info


def _score_shard(scorer: Scorer, ws: Any, batch: int) -> dict[str, Any]:
    """Score ``ws`` in requests of ``batch``: wall time of each request, resident memory after it."""
    lat, scores, alarms, episodes, rss = [], [], [], 0, 0.0
    for lo in range(0, len(ws), batch):
        t = time.perf_counter()
        s, a, e = scorer(ws.take(slice(lo, lo + batch)), lo)
        lat.append(time.perf_counter() - t)
        scores.append(s)
        alarms.append(a)
        episodes += e
        rss = max(rss, rss_now_mb())
    return {"lat": lat, "scores": np.concatenate(scores), "alarms": np.concatenate(alarms), "episodes": episodes,
            "rss": rss}


def _pass_result(parts: list[dict[str, Any]], total: float, machines: int, threads: int, workers: int,
                 batch: int, group_threads: int = 1) -> dict[str, Any]:
    ms = np.concatenate([p["lat"] for p in parts]) * 1e3
    return {"workers": workers, "threads": threads, "group_threads": group_threads, "batch": batch, "total_s": total,
            "machines_per_s": machines / total,
            "requests": len(ms), "rss_mb": sum(p["rss"] for p in parts),
            "latency_ms": {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
                           "p99": float(np.percentile(ms, 99)), "max": float(ms.max()), "mean": float(ms.mean())},
            "alarm_episodes": sum(p["episodes"] for p in parts),
            "_scores": np.concatenate([p["scores"] for p in parts]),
            "_alarms": np.concatenate([p["alarms"] for p in parts])}


def fleet_pass(scorer: Scorer, ws: Any, batch: int, threads: int) -> dict[str, Any]:
    """All machines in this process, in requests of ``batch`` (the scorer's ``group_threads`` as set)."""
    began = time.perf_counter()
    part = _score_shard(scorer, ws, batch)
    return _pass_result([part], time.perf_counter() - began, len(ws), threads, 1, batch, scorer.group_threads)


# One scoring process of a worker pool (spawned): its shard, its scorer, the start barrier.
_WORKER: dict[str, Any] = {}


def _worker_init(state: dict[str, Any], int8: bool, scorer: Scorer, shard: Any, barrier: Any) -> None:
    import torch

    from pdm.model.edge import quantize

    torch.set_num_threads(1)
    model = build_model(shard.values.shape[1], shard.values.shape[2])
    model.load_state_dict(state)
    model.eval()
    scorer.model = quantize(model) if int8 else model
    scorer(shard.take(slice(0, 1)), 0)  # warm-up
    _WORKER.update(scorer=scorer, shard=shard, barrier=barrier)


def _worker_pass(batch: int) -> dict[str, Any]:
    _WORKER["barrier"].wait()  # all workers start together, and each takes exactly one task
    began = time.monotonic()
    part = _score_shard(_WORKER["scorer"], _WORKER["shard"], batch)
    return {**part, "began": began, "ended": time.monotonic(), "lo": int(_WORKER["lo"])}


class WorkerPool:
    """``workers`` spawned processes with one torch thread each, each scoring a contiguous shard of the fleet.

    This is process-level parallelism (as separate scoring tasks per shard of machines would run), in
    place of torch's intra-op threads: a request's small kernels then never wait on a second core.
    """

    def __init__(self, workers: int, state: dict[str, Any], int8: bool, scorer: Scorer, ws: Any) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.workers, self.machines = workers, len(ws)
        barrier = ctx.Barrier(workers)
        bounds = np.linspace(0, len(ws), workers + 1).astype(int)
        self.pools = []
        for w in range(workers):
            lo, hi = int(bounds[w]), int(bounds[w + 1])
            shard_scorer = Scorer(None, scorer.calibrator, scorer.threshold, scorer.rule, scorer.history[lo:hi])
            pool = ctx.Pool(1, initializer=_worker_init_at,
                            initargs=(lo, state, int8, shard_scorer, _copy_windows(ws, lo, hi), barrier))
            self.pools.append(pool)

    def run(self, batch: int) -> dict[str, Any]:
        pending = [pool.apply_async(_worker_pass, (batch,)) for pool in self.pools]
        parts = sorted((p.get() for p in pending), key=lambda r: r["lo"])
        total = max(r["ended"] for r in parts) - min(r["began"] for r in parts)
        return _pass_result(parts, total, self.machines, 1, self.workers, batch)

    def close(self) -> None:
        for pool in self.pools:
            pool.close()
            pool.join()


def _worker_init_at(lo: int, *args: Any) -> None:
    _worker_init(*args)
    _WORKER["lo"] = lo


def _copy_windows(ws: Any, lo: int, hi: int) -> Any:
    return ws.take(np.arange(lo, hi))  # an index array: copies, not views of the parent's arrays


def _train_child(cfg: BenchConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build and briefly train the model (in a child process: its autograd memory stays out of scoring's RSS)."""
    import torch

    torch.set_num_threads(1)
    calib, _ = synthetic_windows(cfg.calib_windows, cfg.channels, cfg.window, cfg.seed + 1000)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.channels, cfg.window)
    info = brief_training(model, calib, cfg.train_steps, cfg.train_batch, cfg.seed)
    info["rss_peak_mb"] = rss_mb()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, info


def thread_probe(model: Any, ws: Any, threads: int, reps: int = 10) -> dict[str, float]:
    """Median single-request reconstruction time with 1 thread and with ``threads``, interleaved."""
    import torch

    from pdm.model.train import reconstruct

    one = ws.take(slice(0, 1))
    times: dict[int, list[float]] = {1: [], threads: []}
    old = torch.get_num_threads()
    try:
        for _ in range(reps):
            for n in times:
                torch.set_num_threads(n)
                t = time.perf_counter()
                reconstruct(model, one, batch_size=1)
                times[n].append(time.perf_counter() - t)
    finally:
        torch.set_num_threads(old)
    return {f"{n}_thread_ms": float(np.median(v)) * 1e3 for n, v in times.items()}


CATEGORIES = {
    "linear layers": ("aten::addmm", "aten::mm", "aten::linear", "aten::matmul", "aten::bmm", "quantized::linear_dynamic"),
    "fused attention (SDPA)": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math"),
    "LSH gathers / scatters / sort": ("aten::index_select", "aten::index_add_", "aten::scatter_add_", "aten::argsort",
                                      "aten::sort", "aten::argmax", "aten::gather"),
    "copies, cat, fill, zeros": ("aten::copy_", "aten::cat", "aten::fill_", "aten::zero_", "aten::zeros", "aten::clone",
                                 "aten::contiguous", "aten::new_zeros"),
}


def profile_request(model: Any, ws: Any, batch: int) -> dict[str, Any]:
    """torch.profiler over one request of ``batch`` machines: top operators and time by category."""
    from torch.profiler import ProfilerActivity, profile

    from pdm.model.train import reconstruct

    sub = ws.take(slice(0, batch))
    reconstruct(model, sub, batch_size=batch)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        reconstruct(model, sub, batch_size=batch)
    ev = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in ev)
    # The cross-modal step: SDPA whose queries are all C·N sensor tokens of a machine (keys: N event tokens + 1).
    sensor_tokens = ws.values.shape[1] * model.cfg.tokens if hasattr(model, "cfg") else None
    cross = sum(e.self_cpu_time_total for e in prof.key_averages(group_by_input_shape=True)
                if e.key.startswith("aten::_scaled_dot_product") and e.input_shapes and len(e.input_shapes[0]) == 4
                and e.input_shapes[0][2] == sensor_tokens)
    top = sorted(ev, key=lambda e: -e.self_cpu_time_total)[:12]
    cats = {name: sum(e.self_cpu_time_total for e in ev if e.key in keys) / max(total, 1e-9)
            for name, keys in CATEGORIES.items()}
    cats["other"] = 1.0 - sum(cats.values())
    return {"batch": batch, "total_ms": total / 1e3,
            "top": [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total,
                     "calls": e.count} for e in top],
            "categories": cats, "cross_modal_sdpa_share": cross / max(total, 1e-9),
            "event_keys_used": float(np.mean([(np.abs(sub.events[i]).reshape(sub.events.shape[1], -1, model.cfg.patch)
                                               .sum(axis=(0, 2)) > 0).sum() + 1 for i in range(batch)]))
            if hasattr(model, "cfg") else None}


# -------------------------------------------------------------------- run
def rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mb() -> float:
    """Current resident memory (MB; Linux ``/proc``, else the peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss_mb()


def run_benchmark(cfg: BenchConfig, progress: bool = True) -> dict[str, Any]:
    """Build, train briefly, calibrate, then time float32 and int8 scoring of the fleet; a JSON-able dict."""
    import torch
    from scipy.stats import pearsonr

    from pdm.model.edge import quantize, size_bytes

    def say(msg: str) -> None:
        if progress:
            print(f"fleet: {msg}", flush=True)

    load_start = os.getloadavg()[0]
    rss_base = rss_now_mb()
    old_threads = torch.get_num_threads()
    res: dict[str, Any] = {"config": {k: v for k, v in cfg.__dict__.items() if k != "notes"}, "notes": list(cfg.notes),
                           "load_avg_start": load_start}
    faulty = max(3, round(0.01 * cfg.machines))
    say(f"generating {cfg.machines} machines x {cfg.channels} channels x {cfg.window} steps ({faulty} with a fault) ...")
    fleet, bad = synthetic_windows(cfg.machines, cfg.channels, cfg.window, cfg.seed, faulty)
    calib, _ = synthetic_windows(cfg.calib_windows, cfg.channels, cfg.window, cfg.seed + 1000)
    res["data"] = {"machines": cfg.machines, "channels": cfg.channels, "window": cfg.window,
                   "missing_share": float(1 - fleet.mask.mean()), "faulty": bad.tolist(),
                   "values_mb": fleet.values.nbytes / 2**20, "rss_before_data_mb": rss_base,
                   "rss_after_data_mb": rss_now_mb()}
    # Training and calibration are not timed; one thread is what a busy neighbour disturbs least.
    say(f"training {cfg.train_steps} steps (batch {cfg.train_batch}) on the calibration windows ...")
    if cfg.train_in_child:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(1) as trainer:
            state, res["training"] = trainer.apply(_train_child, (cfg,))
    else:
        state, res["training"] = _train_child(cfg)
    res["training"]["in_child_process"] = cfg.train_in_child
    torch.set_num_threads(1)
    model = build_model(cfg.channels, cfg.window)
    model.load_state_dict(state)
    models = {"float32": model.eval(), "int8": quantize(model)}
    res["model"] = {"config": {k: v for k, v in model.cfg.to_dict().items() if k != "channel_names"},
                    "parameters": int(sum(p.numel() for p in model.parameters())),
                    "size_kib": {n: size_bytes(m) / 1024 for n, m in models.items()}}
    runs: dict[str, Any] = {}
    scores: dict[str, np.ndarray] = {}
    alarms: dict[str, np.ndarray] = {}
    try:
        for name, m in models.items():
            torch.set_num_threads(1)
            say(f"{name}: calibrating on {cfg.calib_windows} healthy windows ...")
            scorer, cal_info = calibrate(m, calib, cfg.machines, cfg.history, cfg.seed)
            passes = []
            for th in cfg.threads:
                torch.set_num_threads(th)
                scorer(fleet.take(slice(0, min(max(cfg.batch_sizes), cfg.machines))), 0)  # warm-up
                for b in cfg.batch_sizes:
                    p = fleet_pass(scorer, fleet, b, th)
                    say(f"{name}: {th} thread(s), batch {b}: {p['total_s']:.1f} s, {p['machines_per_s']:.1f} "
                        f"machines/s, p99 {p['latency_ms']['p99']:.0f} ms (load {os.getloadavg()[0]:.1f})")
                    passes.append(p)
            for g in (g for g in cfg.group_threads if g > 1):
                torch.set_num_threads(1)
                scorer.group_threads = g
                try:
                    scorer(fleet.take(slice(0, min(max(cfg.batch_sizes), cfg.machines))), 0)  # warm-up (starts the pool)
                    for b in cfg.batch_sizes:
                        p = fleet_pass(scorer, fleet, b, 1)
                        say(f"{name}: 1 thread, {g} imputation threads, batch {b}: {p['total_s']:.1f} s, "
                            f"{p['machines_per_s']:.1f} machines/s, p99 {p['latency_ms']['p99']:.0f} ms "
                            f"(load {os.getloadavg()[0]:.1f})")
                        passes.append(p)
                finally:
                    scorer.group_threads = 1
            for w in (w for w in cfg.workers if w > 1):
                say(f"{name}: starting {w} scoring processes ...")
                workers = WorkerPool(w, state, name == "int8", scorer, fleet)
                try:
                    for b in cfg.batch_sizes:
                        p = workers.run(b)
                        say(f"{name}: {w} processes x 1 thread, batch {b}: {p['total_s']:.1f} s, "
                            f"{p['machines_per_s']:.1f} machines/s, p99 {p['latency_ms']['p99']:.0f} ms "
                            f"(load {os.getloadavg()[0]:.1f})")
                        passes.append(p)
                finally:
                    workers.close()
            ref = passes[0]["_scores"]
            scores[name], alarms[name] = ref, passes[0]["_alarms"]
            best = min(passes, key=lambda p: p["total_s"])
            singles = [p for p in passes if p["batch"] == 1]
            single = min(singles, key=lambda p: p["latency_ms"]["p99"]) if singles else None
            runs[name] = {
                "calibration": cal_info, "passes": [{k: v for k, v in p.items() if not k.startswith("_")} for p in passes],
                "best": {"workers": best["workers"], "threads": best["threads"],
                         "group_threads": best.get("group_threads", 1), "batch": best["batch"], "total_s": best["total_s"],
                         "machines_per_s": best["machines_per_s"], "p99_ms": best["latency_ms"]["p99"]},
                "single_request": {"workers": single["workers"], "threads": single["threads"],
                                   "group_threads": single.get("group_threads", 1),
                                   "latency_ms": single["latency_ms"]} if single else None,
                "score_max_diff_across_passes": max(float(np.max(np.abs(p["_scores"] - ref))) for p in passes),
                "scoring_rss_mb": max(p["rss_mb"] for p in passes),
                "alarms": int(alarms[name].sum()), "faults_found": int(alarms[name][bad].sum()),
                "false_alarms": int(alarms[name].sum() - alarms[name][bad].sum()),
            }
            if cfg.profile:
                th = min(cfg.threads)
                torch.set_num_threads(th)
                say(f"{name}: profiling one request ({th} thread(s)) ...")
                runs[name]["profile"] = {"threads": th, "batch_1": profile_request(m, fleet, 1)}
                if best["batch"] != 1:
                    runs[name]["profile"][f"batch_{best['batch']}"] = profile_request(m, fleet, best["batch"])
        if max(cfg.threads) != 1:
            n = max(cfg.threads)
            say(f"single request with 1 vs {n} threads ...")
            res["threads_probe"] = {"threads": n, **{name: thread_probe(m, fleet, n) for name, m in models.items()}}
    finally:
        torch.set_num_threads(old_threads)
    f, q = scores["float32"], scores["int8"]
    res["agreement"] = {"pearson": float(pearsonr(f, q)[0]) if np.std(f) > 0 and np.std(q) > 0 else float("nan"),
                        "max_abs_diff": float(np.max(np.abs(f - q))),
                        "alarm_decision_agreement": float(np.mean(alarms["float32"] == alarms["int8"]))}
    res["runs"] = runs
    res["load_avg_end"] = os.getloadavg()[0]
    res["peak_rss_mb"] = rss_mb()
    res["targets"] = targets(res)
    if max(res["load_avg_start"], res["load_avg_end"]) > 1.5:
        res["notes"].append(f"The machine was shared and busy (1-min load average {res['load_avg_start']:.1f} at the "
                            f"start, {res['load_avg_end']:.1f} at the end, on {os.cpu_count()} cores): times are "
                            "upper bounds of what a quiet machine gives.")
    return res


def setting(p: dict[str, Any]) -> str:
    """How a pass ran, in words."""
    procs = f"{p['workers']} processes x " if p.get("workers", 1) > 1 else ""
    groups = f", {p['group_threads']} imputation threads" if p.get("group_threads", 1) > 1 else ""
    return f"{procs}{p['threads']} thread{'s' if p['threads'] > 1 else ''}{groups}"


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 5's checks per model; totals scaled to 1,000 machines when fewer were scored (flagged)."""
    scale = TARGET_MACHINES / res["data"]["machines"]
    rows = []
    for name, r in res["runs"].items():
        passes = r["passes"]
        best = min(passes, key=lambda p: p["total_s"])
        rows.append({"check": f"{name}: {TARGET_MACHINES:,} machines, total (best: {setting(best)}, batch {best['batch']})",
                     "target": f"<= {TARGET_TOTAL_S:g} s", "value": best["total_s"] * scale, "unit": "s",
                     "scaled": scale != 1, "met": best["total_s"] * scale <= TARGET_TOTAL_S})
        if r["single_request"]:
            p99 = r["single_request"]["latency_ms"]["p99"]
            rows.append({"check": f"{name}: p99 per-machine latency, one request per machine "
                                  f"({setting(r['single_request'])})",
                         "target": f"<= {TARGET_P99_MS:g} ms", "value": p99, "unit": "ms", "scaled": False,
                         "met": p99 <= TARGET_P99_MS})
        # Both at once: one setting that scores the fleet in time with every machine answered in time.
        ok = [p for p in passes if p["total_s"] * scale <= TARGET_TOTAL_S and p["latency_ms"]["p99"] <= TARGET_P99_MS]
        pick = min(ok or passes, key=lambda p: (p["latency_ms"]["p99"] > TARGET_P99_MS, p["total_s"]))
        rows.append({"check": f"{name}: both in one setting ({setting(pick)}, batch {pick['batch']}: "
                              f"{pick['total_s'] * scale:.1f} s)",
                     "target": f"<= {TARGET_TOTAL_S:g} s and p99 <= {TARGET_P99_MS:g} ms",
                     "value": pick["latency_ms"]["p99"], "unit": "ms p99", "scaled": False, "met": bool(ok)})
    return rows


# ------------------------------------------------------------------ report
def markdown(res: dict[str, Any]) -> str:
    d, c, mo = res["data"], res["config"], res["model"]
    lines = [
        "# Fleet scoring: float32 vs int8 TSHAE on this CPU",
        "",
        f"Measured {res['date']} on {res['machine']}, torch {res['torch']}, scoring with {' and '.join(map(str, c['threads']))} torch "
        f"thread(s); 1-min load average {res['load_avg_start']:.2f} at the start, {res['load_avg_end']:.2f} at the end. "
        f"Memory: peak RSS of the benchmark process {res['peak_rss_mb']:.0f} MB ({d['rss_before_data_mb']:.0f} MB of it "
        f"is the interpreter with torch and pdm loaded, before any data; {d['rss_after_data_mb']:.0f} MB with the "
        f"fleet's and the calibration windows; values and mask {d['values_mb']:.0f} MB each); the brief training ran "
        f"in {'a child process' if res['training'].get('in_child_process') else 'this process'} (peak "
        f"{res['training']['rss_peak_mb']:.0f} MB); per scoring pass, the resident memory (all its processes) is in "
        "the RSS column below.",
        "",
        f"Fleet: {d['machines']} synthetic machines x {d['channels']} channels x {d['window']} steps "
        f"({d['missing_share']:.1%} missing, {len(d['faulty'])} with an injected drift); model: TSHAE d_model "
        f"{mo['config']['d_model']}, {mo['config']['heads']} heads, {mo['config']['layers']} layers, "
        f"{mo['config']['attention']} attention, patch {mo['config']['patch']} ({mo['parameters']:,} parameters; "
        f"{mo['size_kib']['float32']:.0f} KiB float32, {mo['size_kib']['int8']:.0f} KiB int8), trained "
        f"{res['training']['steps']} steps (loss {res['training']['loss_first']:.3f} → {res['training']['loss_last']:.3f}, "
        f"{res['training']['seconds']:.0f} s, not timed below). Scoring path per request: reconstruct "
        f"({len(model_groups(mo['config']))} imputation passes) → window_errors (mask, running gate) → ChannelCalibrator.apply → POTThreshold → AlarmRule over a 5-score history; "
        f"calibration fleet-level on {c['calib_windows']} separate healthy windows per model.",
        "",
        "## Targets",
        "",
        "| check | target | measured | met |",
        "|---|---|---:|:---:|",
    ]
    for t in res["targets"]:
        scaled = f" (x{TARGET_MACHINES // d['machines']} from {d['machines']})" if t["scaled"] else ""
        lines.append(f"| {t['check']} | {t['target']} | {t['value']:.1f} {t['unit']}{scaled} | "
                     f"{'yes' if t['met'] else 'NO'} |")
    lines += ["", "## Throughput and latency by threads and batch size", "",
              f"All {d['machines']} machines per row.", "",
              "| model | setting | batch | total s | machines/s | latency p50 ms | p95 | p99 | max | RSS MB |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in res["runs"].items():
        for p in r["passes"]:
            la = p["latency_ms"]
            best = " **(best)**" if all(p.get(k, 1) == r["best"].get(k, 1)
                                        for k in ("workers", "threads", "group_threads", "batch")) else ""
            lines.append(f"| {name} | {setting(p)} | {p['batch']}{best} | {p['total_s']:.1f} | "
                         f"{p['machines_per_s']:.1f} | {la['p50']:.0f} | {la['p95']:.0f} | {la['p99']:.0f} | "
                         f"{la['max']:.0f} | {p['rss_mb']:.0f} |")
    lines += ["", "Batch 1 = one request per machine (the latency distribution); for a batched request every machine in "
              "it waits for the whole batch, so its latency is the batch's wall time. \"N imputation threads\": one "
              "torch thread, and a request's imputation passes (one per channel group) run side by side on N threads "
              "of this process instead of stacked into one batch (pdm.model.train.reconstruct's group_threads)."]
    a = res["agreement"]
    lines += ["", "## Scores: int8 vs float32", "",
              f"Pearson correlation of the machine scores {a['pearson']:.4f} (largest absolute difference "
              f"{a['max_abs_diff']:.3f}); alarm decisions agree on {a['alarm_decision_agreement']:.1%} of the machines.",
              "", "| model | threshold (method) | alarms | injected faults found | false alarms | score diff across passes |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, r in res["runs"].items():
        cal = r["calibration"]
        lines.append(f"| {name} | {cal['threshold']:.2f} ({cal['method']}) | {r['alarms']} | {r['faults_found']} / "
                     f"{len(d['faulty'])} | {r['false_alarms']} | {r['score_max_diff_across_passes']:.2g} |")
    if any("profile" in r for r in res["runs"].values()):
        lines += ["", "## What limits it", "",
                  "torch.profiler, one request, self CPU time by operator (profiled run, so slower than the timed one)."]
        for name, r in res["runs"].items():
            prof = dict(r.get("profile", {}))
            th = prof.pop("threads", None)
            for key, p in prof.items():
                cats = ", ".join(f"{k} {v:.0%}" for k, v in sorted(p["categories"].items(), key=lambda kv: -kv[1]))
                cross = (f" The cross-modal attention kernel alone (all {d['channels']} x {mo['config']['window'] // mo['config']['patch']} "
                         f"sensor tokens against the event tokens attended: {p['event_keys_used']:.1f} of "
                         f"{mo['config']['window'] // mo['config']['patch'] + 1} slots on average, the rest dropped "
                         f"before the kernel): {p['cross_modal_sdpa_share']:.0%}."
                         if p.get("event_keys_used") is not None else "")
                lines += ["", f"**{name}, {key.replace('_', ' ')}, {th} thread(s)** ({p['total_ms']:.0f} ms CPU): {cats}.{cross}", "",
                          "| operator | self ms | share | calls |", "|---|---:|---:|---:|"]
                for o in p["top"][:8]:
                    lines.append(f"| {o['op']} | {o['self_ms']:.1f} | {o['share']:.0%} | {o['calls']} |")
    tp = res.get("threads_probe")
    if tp:
        n = tp["threads"]
        lines += ["", "## Threads", "", f"One request (reconstruction only), median of 10, 1 thread vs {n} interleaved: "
                  + "; ".join(f"{name} {v['1_thread_ms']:.0f} ms vs {v[f'{n}_thread_ms']:.0f} ms"
                              for name, v in tp.items() if name != "threads") + "."]
    for note in res.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 machines, batch sizes 1 and 8, 20 training steps")
    ap.add_argument("--machines", type=int, default=1000)
    ap.add_argument("--batch-sizes", default="1,8,16,32", help="comma-separated")
    ap.add_argument("--threads", default="2", help="torch threads while scoring, comma-separated (e.g. 1,2)")
    ap.add_argument("--workers", default="", help="also score with N one-thread processes, comma-separated (e.g. 2)")
    ap.add_argument("--group-threads", default="",
                    help="also score in this process with one torch thread and a request's imputation passes on N "
                         "threads side by side, comma-separated (e.g. 2)")
    ap.add_argument("--calib-windows", type=int, default=300)
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--tag", default="", help="results written to fleet_scoring_TAG.* (default: fleet_scoring.*)")
    args = ap.parse_args()
    cfg = BenchConfig(machines=args.machines, batch_sizes=tuple(int(b) for b in args.batch_sizes.split(",")),
                      threads=tuple(int(t) for t in args.threads.split(",")),
                      workers=tuple(int(w) for w in args.workers.split(",") if w),
                      group_threads=tuple(int(g) for g in args.group_threads.split(",") if g),
                      calib_windows=args.calib_windows, train_steps=args.train_steps,
                      seed=args.seed, profile=not args.no_profile)
    if args.quick:
        cfg.machines, cfg.batch_sizes, cfg.calib_windows, cfg.train_steps = 100, (1, 8), 120, 20
        cfg.notes.append("Quick run (100 machines, 20 training steps): a smoke test; the 1,000-machine totals are "
                         "the 100-machine ones x 10.")
    import torch

    res = run_benchmark(cfg)
    res["torch"] = torch.__version__
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    res["machine"] = f"this machine ({os.cpu_count()} cores, {platform.machine()})"
    RESULTS.mkdir(exist_ok=True)
    name = ("fleet_scoring_quick" if args.quick else "fleet_scoring") + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
