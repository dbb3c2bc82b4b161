"""Training TSHAE with tsai/fastai: one-cycle schedule, early stopping, progress bar.

Windows are packed into tsai's single-array layout (values | mask | context
| events on the channel axis, see :meth:`pdm.features.WindowSet.packed`) and
the target is the same array, so tsai's ``get_ts_dls`` and a fastai
``Learner`` drive the loop; the model unpacks the array itself. Training
is seeded and reproducible on the CPU; a GPU is used when present.

During training a random 15 % of observed values are hidden from the model
(masked reconstruction, as in MVP), which keeps it from copying its input.

Optionally (``TrainConfig.mvp_epochs``) the main fit is preceded by
pretraining with tsai's ``MVP`` callback: masked reconstruction of random
subsequences (geometric lengths, mean ``mvp_lm`` steps, ``mvp_r`` of the
observed values). MVP replaces the model's ``head`` with a 1x1 convolution
from ``head_nf`` features per time step to every packed input variable;
TSHAE has no per-time-step feature map (its tokens are per channel and
patch), so :class:`MVPTSHAE` gives MVP one: TSHAE's own reconstruction, C
channels per time step. MVP's head therefore sits on top of TSHAE's decoder,
which it pretrains with the rest; it is dropped after pretraining. Masked
values are hidden the way TSHAE expects (value 0 and mask 0), so the loss
also sees the mask channel at those places (target 1), which the head
learns at once.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pdm.features import WindowSet
from pdm.model import allocator
from pdm.model.tshae import TSHAE, TSHAEConfig, group_members, masked_huber

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """How to train (serialised with the model)."""

    epochs: int = 10
    lr_max: float = 2e-3
    batch_size: int = 32
    valid_frac: float = 0.2
    patience: int = 3
    hide_frac: float = 0.15
    group_frac: float = 0.5  # share of windows with one imputation group hidden (models scored by imputation)
    seed: int = 0
    device: str = "auto"  # "cpu", "cuda" or "auto"
    progress: bool = True
    freeze: list[str] = field(default_factory=list)  # parameter name prefixes not trained (fine-tuning)
    mvp_epochs: int = 0  # epochs of tsai MVP pretraining before the main fit (0: none)
    mvp_r: float = 0.15  # MVP: share of observed values masked
    mvp_lm: float = 3.0  # MVP: mean masked subsequence length (steps)

    def to_dict(self) -> dict:
        return asdict(self)


class PackedTSHAE(nn.Module):
    """Adapter: tsai's packed (B, 2C+K+E, T) array in, reconstruction (B, C, T) out."""

    def __init__(self, model: TSHAE, hide_frac: float = 0.0, group_frac: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.hide_frac = hide_frac
        self.group_frac = group_frac if model.cfg.train_groups else 0.0
        self.member: Tensor
        self.register_buffer("member", group_members(model.cfg.train_groups, model.cfg.channels), persistent=False)
        cfg = model.cfg
        self.splits = (cfg.channels, cfg.channels, cfg.context_channels, max(cfg.event_channels, 0))

    def unpack(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c, _, k, e = self.splits
        values, mask = x[:, :c], x[:, c : 2 * c]
        return values, mask, x[:, 2 * c : 2 * c + k], x[:, 2 * c + k : 2 * c + k + e]

    def forward(self, x: Tensor) -> Tensor:
        x = x.as_subclass(Tensor)
        values, mask, ctx, ev = self.unpack(x)
        if self.training and self.hide_frac > 0:
            mask = mask * (torch.rand_like(mask) >= self.hide_frac)
        if self.training and self.group_frac > 0:  # hide one whole group in some windows: learn to impute it
            b = mask.shape[0]
            pick = torch.randint(0, self.member.shape[0], (b,), device=mask.device)
            hidden = self.member[pick] * (torch.rand(b, 1, device=mask.device) < self.group_frac)
            mask = mask * (1 - hidden)[:, :, None]
        return self.model(values, mask, ctx, ev).reconstruction


class MVPTSHAE(nn.Module):
    """What tsai's MVP callback needs: ``head``/``head_nf`` on a (B, head_nf, T) feature map.

    The feature map is TSHAE's reconstruction (head_nf = C); MVP swaps ``head``
    for ``Conv1d(C, vars, 1)`` so the output has the packed input's shape.
    """

    def __init__(self, model: TSHAE) -> None:
        super().__init__()
        self.model = model
        self.packed = PackedTSHAE(model, hide_frac=0.0)
        self.head_nf = model.cfg.channels
        self.head: nn.Module = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.packed(x))


def mvp_mask(channels: int, r: float, lm: float):
    """MVP ``custom_mask``: tsai's subsequence mask on observed values, also hiding them in the mask channels."""
    from tsai.callback.MVP import create_subsequence_mask

    def mask(x: Tensor) -> Tensor:
        x = x.as_subclass(Tensor)
        hide = create_subsequence_mask(x[:, :channels], r=r, lm=lm) & (x[:, channels : 2 * channels] > 0)
        out = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
        out[:, :channels] = hide
        out[:, channels : 2 * channels] = hide
        return out

    return mask


def packed_loss(delta: float, channels: int):
    """fastai loss: masked Huber between the reconstruction and the packed target's values."""

    def loss(pred: Tensor, target: Tensor) -> Tensor:
        target = target.as_subclass(Tensor)
        return masked_huber(pred, target[:, :channels], target[:, channels : 2 * channels], delta)

    return loss


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; also keeps large buffers in the heap (:func:`pdm.model.allocator.tune`)."""
    allocator.tune()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train(windows: WindowSet, model_cfg: TSHAEConfig, cfg: TrainConfig, model: TSHAE | None = None) -> tuple[TSHAE, dict[str, Any]]:
    """Train (or continue training ``model``) on ``windows``; returns the model and metrics.

    Metrics: ``train_loss``/``valid_loss`` per epoch, ``seconds``, ``windows``.
    """
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
    from fastai.callback.progress import ProgressCallback
    from fastai.callback.tracker import EarlyStoppingCallback
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from tsai.data.core import get_ts_dls

    from pdm.model.tsai_compat import patch_tsai

    patch_tsai()
    if len(windows) < 4:
        raise ValueError(f"too few training windows ({len(windows)}); need at least 4")
    seed_everything(cfg.seed)
    x = windows.packed()
    n = len(x)
    order = np.random.default_rng(cfg.seed).permutation(n)
    n_valid = max(1, int(round(n * cfg.valid_frac)))
    splits = (sorted(order[n_valid:].tolist()), sorted(order[:n_valid].tolist()))
    device = _device(cfg.device)
    dls = get_ts_dls(x, x, splits=splits, tfms=[None, None], bs=cfg.batch_size, drop_last=False,
                     device=device, shuffle_train=True, seed=cfg.seed)
    assert isinstance(dls, DataLoaders)
    if model is None:
        seed_everything(cfg.seed)
        model = TSHAE(model_cfg)
    for name, p in model.named_parameters():
        p.requires_grad_(not any(name.startswith(f) for f in cfg.freeze))
    mvp: dict[str, Any] = {}
    if cfg.mvp_epochs > 0:
        mvp = _pretrain_mvp(dls, model, cfg)
    net = PackedTSHAE(model, cfg.hide_frac, cfg.group_frac)
    cbs = [EarlyStoppingCallback(monitor="valid_loss", patience=cfg.patience)]
    learn = Learner(dls, net, loss_func=packed_loss(model_cfg.huber_delta, model_cfg.channels), cbs=cbs)
    if not cfg.progress:
        learn.remove_cb(ProgressCallback)
        learn.add_cb(epoch_log("TSHAE"))
    began = time.perf_counter()
    with learn.no_logging() if not cfg.progress else _null():
        learn.fit_one_cycle(cfg.epochs, lr_max=cfg.lr_max)
    seconds = time.perf_counter() - began
    values = learn.recorder.values
    model = net.model.cpu().eval()
    metrics = {
        "train_loss": [float(v[0]) for v in values],
        "valid_loss": [float(v[1]) for v in values],
        "epochs_run": len(values),
        "seconds": seconds,
        "windows": n,
        "windows_per_s": n * len(values) / max(seconds, 1e-9),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **mvp,
    }
    for p in model.parameters():
        p.requires_grad_(True)
    return model, metrics


def _pretrain_mvp(dls: Any, model: TSHAE, cfg: TrainConfig) -> dict[str, Any]:
    """``cfg.mvp_epochs`` epochs of tsai MVP masked-subsequence reconstruction on ``dls``; returns metrics."""
    import tempfile

    from fastai.callback.core import Callback
    from fastai.callback.progress import ProgressCallback
    from fastai.learner import Learner
    from tsai.callback.MVP import MVP

    class _TrainNewHead(Callback):
        # MVP swaps the head in before_fit, after fastai built the optimiser over the old
        # parameters: rebuild it so the new head is trained too.
        order = MVP.order + 1

        def before_fit(self) -> None:
            self.learn.create_opt()

    net = MVPTSHAE(model)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cb = MVP(custom_mask=mvp_mask(model.cfg.channels, cfg.mvp_r, cfg.mvp_lm), target_dir=tmp, save_best=False)
        # MVP swaps in its own masked MSE loss in before_fit; the Learner needs one to start.
        learn = Learner(dls, net, loss_func=nn.MSELoss(), cbs=[cb, _TrainNewHead()])
        if not cfg.progress:
            learn.remove_cb(ProgressCallback)
            learn.add_cb(epoch_log("TSHAE MVP pretraining"))
        with learn.no_logging() if not cfg.progress else _null():
            learn.fit_one_cycle(cfg.mvp_epochs, lr_max=cfg.lr_max)
    values = learn.recorder.values
    return {"mvp_train_loss": [float(v[0]) for v in values], "mvp_valid_loss": [float(v[1]) for v in values],
            "mvp_seconds": time.perf_counter() - began}


def epoch_log(name: str, logger: logging.Logger | None = None) -> Any:
    """A fastai callback: one INFO line per finished epoch (losses, seconds), for runs without the bar.

    A benchmark that fits for an hour with the bar off (its output is a log, not a terminal)
    still shows where it is.
    """
    from fastai.callback.core import Callback

    out = logger or log

    class _EpochLog(Callback):
        order = 60  # after the Recorder has the epoch's losses

        def before_fit(self) -> None:
            self.began = time.perf_counter()

        def after_epoch(self) -> None:
            vals = self.learn.recorder.values[-1] if self.learn.recorder.values else []
            losses = ", ".join(f"{k} {float(v):.4g}" for k, v in zip(("train loss", "valid loss"), vals, strict=False))
            out.info("%s: epoch %d/%d done, %s (%.0f s)", name, self.learn.epoch + 1, self.learn.n_epoch, losses,
                     time.perf_counter() - self.began)

    return _EpochLog()


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _batches(windows: WindowSet, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """(values with NaN as 0, mask, context, events) tensors of ``windows``, ``batch_size`` at a time."""
    for lo in range(0, len(windows), batch_size):
        sl = slice(lo, lo + batch_size)
        yield (torch.from_numpy(np.nan_to_num(windows.values[sl])), torch.from_numpy(windows.mask[sl]),
               torch.from_numpy(windows.context[sl]), torch.from_numpy(windows.events[sl]))


@torch.no_grad()
def reconstruct(model: TSHAE, windows: WindowSet, batch_size: int = 64, need_maps: bool = False,
                group_threads: int = 1) -> dict[str, np.ndarray]:
    """Reconstruction (and maps) for every window, in batches, on the CPU.

    Returns ``reconstruction`` (n, C, T) and, with ``need_maps``, ``temporal``,
    ``spatial``, ``cross``.

    ``group_threads`` > 1 (a model with imputation groups): each group's pass runs on its own thread
    (:func:`group_pool`) instead of all groups stacked into one batch; same reconstruction. For a caller
    that has set torch to one intra-op thread and scores a few windows at a time: one window's passes
    then use one core each, where torch's intra-op threads split the small kernels of one pass across
    cores and wait on each other (``benchmarks/fleet_scoring.py``).
    """
    allocator.tune()
    model.eval()
    groups = model.cfg.groups
    pool = group_pool(group_threads) if groups and len(groups) > 1 and group_threads > 1 else None
    out: dict[str, list[np.ndarray]] = {}
    for values, mask, ctx, ev in _batches(windows, batch_size):
        res = model(values, mask, ctx, ev, need_maps=need_maps) if need_maps or not groups else None
        if groups:  # the maps (when asked for) come from the plain pass, every channel shown
            recon = _impute(model, values, mask, ctx, ev, groups, pool)
        else:
            assert res is not None
            recon = res.reconstruction
        out.setdefault("reconstruction", []).append(recon.numpy())
        for k in ("temporal", "spatial", "cross"):
            v = getattr(res, k) if res is not None else None
            if v is not None:
                out.setdefault(k, []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


#: Windows that a healthy mean attention map is averaged over (spread evenly over the calibration windows).
BASELINE_WINDOWS = 96


def mean_spatial(model: TSHAE, windows: WindowSet, limit: int = BASELINE_WINDOWS, batch_size: int = 64) -> np.ndarray:
    """The mean spatial-attention map (C, C) over at most ``limit`` of ``windows``, spread evenly over them.

    The maps cost a pass of their own (with channel groups, the reconstruction
    comes from the group-hidden passes); a mean over every calibration window
    doubled a calibration's cost for a map that only the root-cause view
    shows beside the alarm's own (its ranking does not use it).
    """
    n = len(windows)
    if n == 0:
        raise ValueError("no windows to average the spatial attention over")
    sub = windows.take(np.unique(np.linspace(0, n - 1, min(n, max(1, limit))).round().astype(np.int64)))
    model.eval()
    total: np.ndarray | None = None
    with torch.no_grad():
        for values, mask, ctx, ev in _batches(sub, batch_size):
            res = model(values, mask, ctx, ev, need_maps=True)
            part = res.spatial.sum(dim=0).numpy().astype(np.float64)
            total = part if total is None else total + part
    assert total is not None
    return total / len(sub)


@functools.cache
def group_pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` threads that run imputation passes side by side (made once per size)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="pdm-impute")


def _impute(model: TSHAE, values: Tensor, mask: Tensor, ctx: Tensor, ev: Tensor, groups: list[list[int]],
            pool: ThreadPoolExecutor | None = None) -> Tensor:
    """Each group's channels as reconstructed with that group hidden (one pass over all groups, stacked;
    with ``pool``, one pass per group on the pool's threads).

    Channels in no group (the ambient temperature) come from the first pass,
    where they are shown.
    """
    g, b = len(groups), values.shape[0]
    hidden = group_members(groups, values.shape[1]).to(mask.dtype)[:, None, :, None]  # (G, 1, C, 1)
    masks = mask[None] * (1 - hidden)
    if pool is not None:
        def one(i: int) -> Tensor:
            with torch.no_grad():  # grad mode is per thread
                return model(values, masks[i], ctx, ev).reconstruction

        recon = torch.stack(list(pool.map(one, range(g))))
    else:
        def rep(t: Tensor) -> Tensor:
            return t[None].expand(g, *t.shape).reshape(g * b, *t.shape[1:])

        recon = model(rep(values), masks.reshape(g * b, *mask.shape[1:]), rep(ctx), rep(ev)
                      ).reconstruction.view(g, b, *values.shape[1:])
    out = recon[0].clone()
    for i, idx in enumerate(groups):
        out[:, idx] = recon[i][:, idx]
    return out


def channel_errors(windows: WindowSet, reconstruction: np.ndarray) -> np.ndarray:
    """Mean absolute error per window and channel over observed values: (n, C), NaN if unobserved.

    Every observed step counts; scoring gates by running (:mod:`pdm.detect.errors`).
    """
    from pdm.detect.errors import window_errors

    return window_errors(windows, reconstruction)
