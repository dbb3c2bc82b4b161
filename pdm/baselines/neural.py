"""Neural baselines (torch, small, seeded) and the TSHAE adapter.

- :class:`ConvAE`: dense 1-D convolutional autoencoder (two strided Conv1d
  down, two ConvTranspose1d up, as SKAB's Conv-AE), input values and mask.
- :class:`LSTMAE`: LSTM encoder → last hidden state repeated → LSTM decoder.
- :class:`TSTMVP`: tsai's ``TSTPlus`` trained with tsai's ``MVP`` callback
  (masked reconstruction of random subsequences). Its loss only covers
  masked values, so it is scored the same way: the window is reconstructed
  in ``T / block`` passes, each hiding one block of ``block`` steps per
  channel (staggered across channels so the other channels stay visible);
  every observed value is hidden exactly once, and the error is taken at the
  hidden values only.
- :class:`TSHAEDetector`: TSHAE through :func:`pdm.model.train.train`,
  :func:`~pdm.model.train.reconstruct` and :func:`~pdm.model.train.channel_errors`.

All reconstruction errors are mean absolute errors over observed values per
window and channel (as TSHAE's :func:`~pdm.model.train.channel_errors`); the
autoencoders train on a masked MSE (missing values never reach the loss).
Training: Adam, ``epochs`` at most, 10 % validation with early stopping
(``patience``), seeded, CPU unless a GPU is present.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pdm.baselines.base import check_fit_windows, seed_all
from pdm.detect.errors import masked_mean
from pdm.features import WindowSet
from pdm.model import allocator

log = logging.getLogger(__name__)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _inputs(windows: WindowSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values NaN→0, mask, values|mask stacked) as float32."""
    v = np.nan_to_num(windows.values).astype(np.float32)
    m = windows.mask.astype(np.float32)
    return v, m, np.concatenate([v, m], axis=1)


@dataclass
class TorchFit:
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 32
    patience: int = 5
    valid_frac: float = 0.1
    seed: int = 0


def fit_reconstruction(net: nn.Module, x: np.ndarray, target: np.ndarray, mask: np.ndarray, cfg: TorchFit) -> dict[str, Any]:
    """Train ``net(x) ≈ target`` on masked MSE with early stopping; restores the best weights."""
    dev = _device()
    net.to(dev)
    rng = np.random.default_rng(cfg.seed)
    n = len(x)
    order = rng.permutation(n)
    n_valid = max(1, int(round(n * cfg.valid_frac))) if n >= 10 else 0
    valid, trn = order[:n_valid], order[n_valid:]
    xt, yt, mt = (torch.from_numpy(a) for a in (x, target, mask))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)

    def loss_on(idx: np.ndarray, train: bool) -> float:
        total, count = 0.0, 0.0
        for lo in range(0, len(idx), cfg.batch_size):
            b = idx[lo : lo + cfg.batch_size]
            xb, yb, mb = xt[b].to(dev), yt[b].to(dev), mt[b].to(dev)
            with torch.set_grad_enabled(train):
                pred = net(xb)
                se = ((pred - yb) ** 2) * mb
                loss = se.sum() / mb.sum().clamp_min(1.0)
            if train:
                opt.zero_grad()
                loss.backward()
                opt.step()
            total += float(se.detach().sum())
            count += float(mb.sum())
        return total / max(count, 1.0)

    best, best_state, bad, history = float("inf"), None, 0, []
    began = time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        tl = loss_on(rng.permutation(trn), True)
        net.eval()
        vl = loss_on(valid, False) if n_valid else tl
        history.append((tl, vl))
        log.info("%s: epoch %d/%d done, train loss %.4g, valid loss %.4g (%.0f s)", type(net).__name__.strip("_"),
                 epoch + 1, cfg.epochs, tl, vl, time.perf_counter() - began)
        if vl < best - 1e-7:
            best, bad = vl, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.cpu().eval()
    return {"epochs_run": len(history), "train_loss": [h[0] for h in history], "valid_loss": [h[1] for h in history]}


@torch.no_grad()
def _predict(net: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    allocator.tune()  # as TSHAE's scoring does (pdm.model.train.reconstruct)
    net.eval()
    return np.concatenate([net(torch.from_numpy(x[lo : lo + batch])).numpy() for lo in range(0, len(x), batch)]) if len(x) else np.zeros((0,))


class _ConvNet(nn.Module):
    def __init__(self, c: int, t: int, k: int = 7, f1: int = 32, f2: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        if t % 4:
            raise ValueError(f"ConvAE needs a window length divisible by 4, got {t}")
        p = k // 2
        self.enc = nn.Sequential(nn.Conv1d(2 * c, f1, k, stride=2, padding=p), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Conv1d(f1, f2, k, stride=2, padding=p), nn.ReLU())
        self.dec = nn.Sequential(nn.ConvTranspose1d(f2, f2, k, stride=2, padding=p, output_padding=1), nn.ReLU(),
                                 nn.Dropout(dropout),
                                 nn.ConvTranspose1d(f2, f1, k, stride=2, padding=p, output_padding=1), nn.ReLU(),
                                 nn.Conv1d(f1, c, k, padding=p))

    def forward(self, x: Tensor) -> Tensor:
        return self.dec(self.enc(x))


class _LSTMNet(nn.Module):
    def __init__(self, c: int, hidden: int = 32) -> None:
        super().__init__()
        self.enc = nn.LSTM(2 * c, hidden, batch_first=True)
        self.dec = nn.LSTM(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, c)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.transpose(1, 2)  # (B, T, 2C)
        _, (h, _) = self.enc(seq)
        z = h[-1].unsqueeze(1).expand(-1, seq.shape[1], -1)
        y, _ = self.dec(z)
        return self.out(y).transpose(1, 2)


@dataclass
class _AEDetector:
    fit_cfg: TorchFit = field(default_factory=TorchFit)
    name: str = ""
    net_: nn.Module | None = None
    metrics_: dict[str, Any] = field(default_factory=dict)

    def _build(self, c: int, t: int) -> nn.Module:
        raise NotImplementedError

    def fit(self, windows: WindowSet) -> _AEDetector:
        check_fit_windows(windows)
        seed_all(self.fit_cfg.seed)
        v, m, x = _inputs(windows)
        self.net_ = self._build(v.shape[1], v.shape[2])
        self.metrics_ = fit_reconstruction(self.net_, x, v, m, self.fit_cfg)
        return self

    def step_errors(self, windows: WindowSet) -> np.ndarray:
        """(n, C, T) absolute reconstruction errors, NaN where unobserved."""
        if self.net_ is None:
            raise RuntimeError(f"{self.name}: fit() first")
        v, m, x = _inputs(windows)
        return np.where(m > 0, np.abs(v - _predict(self.net_, x)), np.nan)

    def errors(self, windows: WindowSet) -> np.ndarray:
        return masked_mean(self.step_errors(windows), windows.mask)


@dataclass
class ConvAE(_AEDetector):
    name: str = "Conv-AE"

    def _build(self, c: int, t: int) -> nn.Module:
        return _ConvNet(c, t)


@dataclass
class LSTMAE(_AEDetector):
    hidden: int = 32
    name: str = "LSTM-AE"

    def _build(self, c: int, t: int) -> nn.Module:
        return _LSTMNet(c, self.hidden)


@dataclass
class TSTMVP:
    """tsai TSTPlus pretrained with the MVP callback; scored by blockwise masked reconstruction."""

    epochs: int = 20
    lr_max: float = 1e-3
    batch_size: int = 32
    d_model: int = 32
    n_heads: int = 4
    d_ff: int = 64
    n_layers: int = 2
    r: float = 0.15
    lm: float = 4.0
    block: int = 4
    seed: int = 0
    name: str = "TST (tsai MVP)"
    net_: nn.Module | None = None
    metrics_: dict[str, Any] = field(default_factory=dict)

    def fit(self, windows: WindowSet) -> TSTMVP:
        import tempfile

        import fastai.callback.schedule  # noqa: F401
        from fastai.callback.progress import ProgressCallback
        from fastai.learner import Learner
        from tsai.callback.MVP import MVP
        from tsai.data.core import get_ts_dls
        from tsai.models.TSTPlus import TSTPlus

        from pdm.model.train import epoch_log
        from pdm.model.tsai_compat import patch_tsai

        patch_tsai()
        check_fit_windows(windows)
        seed_all(self.seed)
        x = np.where(windows.mask > 0, np.nan_to_num(windows.values), np.nan).astype(np.float32)
        n, c, t = x.shape
        order = np.random.default_rng(self.seed).permutation(n)
        n_valid = max(1, int(round(n * 0.1)))
        splits = (sorted(order[n_valid:].tolist()), sorted(order[:n_valid].tolist()))
        dls = get_ts_dls(x, splits=splits, tfms=[None], bs=self.batch_size, drop_last=False, device=_device(),
                         shuffle_train=True, seed=self.seed)
        seed_all(self.seed)
        net = TSTPlus(c, c, t, d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff, n_layers=self.n_layers)
        with tempfile.TemporaryDirectory() as tmp:
            cb = MVP(r=self.r, lm=self.lm, target_dir=tmp, save_best=False, verbose=False)
            learn = Learner(dls, net, loss_func=nn.MSELoss(), cbs=[cb, _RebuildOpt()])
            learn.remove_cb(ProgressCallback)
            learn.add_cb(epoch_log(self.name, log))
            with learn.no_logging():
                learn.fit_one_cycle(self.epochs, lr_max=self.lr_max)
        vals = learn.recorder.values
        self.metrics_ = {"epochs_run": len(vals), "train_loss": [float(v[0]) for v in vals],
                         "valid_loss": [float(v[1]) for v in vals]}
        self.net_ = learn.model.cpu().eval()
        return self

    def errors(self, windows: WindowSet) -> np.ndarray:
        return masked_mean(self.step_errors(windows), windows.mask)

    @torch.no_grad()
    def step_errors(self, windows: WindowSet) -> np.ndarray:
        """(n, C, T) errors at the hidden values (every observed value is hidden once), NaN where unobserved."""
        if self.net_ is None:
            raise RuntimeError(f"{self.name}: fit() first")
        allocator.tune()
        v = np.nan_to_num(windows.values).astype(np.float32)
        m = windows.mask > 0
        n, c, t = v.shape
        nb = max(1, -(-t // self.block))
        err = np.zeros_like(v)
        step = np.arange(t) // self.block  # block of each step
        for p in range(nb):
            hide = np.zeros((c, t), dtype=bool)
            for j in range(c):
                hide[j] = step == (p + j) % nb
            xin = np.where(hide[None], 0.0, v).astype(np.float32)
            rec = np.concatenate([self.net_(torch.from_numpy(xin[lo : lo + 256])).as_subclass(Tensor).numpy()
                                  for lo in range(0, n, 256)])
            err = np.where(hide[None], np.abs(v - rec), err)
        return np.where(m, err, np.nan)


def _rebuild_opt_cls() -> type:
    from fastai.callback.core import Callback
    from tsai.callback.MVP import MVP

    class _Rebuild(Callback):
        # MVP swaps the head in before_fit after the optimiser was built: rebuild it (as pdm.model.train does).
        order = MVP.order + 1

        def before_fit(self) -> None:
            self.learn.create_opt()

    return _Rebuild


def _RebuildOpt() -> Any:  # noqa: N802
    return _rebuild_opt_cls()()


@dataclass
class TSHAEDetector:
    """TSHAE in the baseline harness (train / reconstruct / channel_errors of pdm.model.train)."""

    patch: int = 8
    d_model: int = 32
    layers: int = 2
    epochs: int = 10
    mvp_epochs: int = 0
    batch_size: int = 32
    seed: int = 0
    name: str = "TSHAE"
    model_: Any = None
    metrics_: dict[str, Any] = field(default_factory=dict)

    def fit(self, windows: WindowSet) -> TSHAEDetector:
        from pdm.model.train import TrainConfig, train
        from pdm.model.tshae import TSHAEConfig

        check_fit_windows(windows)
        cfg = TSHAEConfig(channels=windows.values.shape[1], context_channels=windows.context.shape[1],
                          event_channels=windows.events.shape[1], window=windows.values.shape[2], patch=self.patch,
                          d_model=self.d_model, layers=self.layers, channel_names=list(windows.channels))
        tcfg = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed, progress=False,
                           mvp_epochs=self.mvp_epochs)
        self.model_, self.metrics_ = train(windows, cfg, tcfg)
        return self

    def errors(self, windows: WindowSet) -> np.ndarray:
        from pdm.model.train import channel_errors, reconstruct

        if self.model_ is None:
            raise RuntimeError("TSHAE: fit() first")
        return channel_errors(windows, reconstruct(self.model_, windows, batch_size=256)["reconstruction"])

    def step_errors(self, windows: WindowSet) -> np.ndarray:
        """(n, C, T) absolute reconstruction errors, NaN where unobserved."""
        from pdm.model.train import reconstruct

        if self.model_ is None:
            raise RuntimeError("TSHAE: fit() first")
        rec = reconstruct(self.model_, windows, batch_size=256)["reconstruction"]
        return np.where(windows.mask > 0, np.abs(np.nan_to_num(windows.values) - rec), np.nan)
