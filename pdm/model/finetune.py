"""Per-machine fine-tuning of a fleet model (the seed's §3.1).

A fleet model learns what healthy machines of all types look like; one
machine's own quirks (its mounting, its load pattern) are then learnt by a
short fine-tuning on that machine's healthy windows, with the lower layers
frozen: the patch embedding, the channel and context embeddings, the event
embedding and the first layer keep the fleet's weights bit for bit, only the
upper layers and the decoder move. That needs fewer epochs than training
from scratch, and each epoch is cheaper (no gradients for the frozen part,
and none flow below the first trainable layer).

The fleet model is never modified: fine-tuning works on a copy.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import fields, replace
from typing import Any

from pdm.features import WindowSet
from pdm.model.train import TrainConfig, train
from pdm.model.tshae import TSHAE

log = logging.getLogger(__name__)

#: Parameter name prefixes frozen by default: the embeddings and the first layer.
DEFAULT_FREEZE: tuple[str, ...] = ("embed", "channel", "context", "event_embed", "layers.0")


def finetune(bundle_or_model: Any, windows: WindowSet, epochs: int = 3,
             freeze: tuple[str, ...] | list[str] = DEFAULT_FREEZE, *, lr_max: float | None = None,
             train_cfg: TrainConfig | None = None, **overrides: Any) -> tuple[TSHAE, dict[str, Any]]:
    """Fine-tune a copy of a fleet model on one machine's windows; returns (model, metrics).

    ``bundle_or_model``: a :class:`~pdm.model.directory.ModelBundle` (its
    training settings are the starting point) or a :class:`TSHAE`.
    ``freeze``: parameter name prefixes kept fixed (each must match at least one
    parameter). ``lr_max`` defaults to half the fleet's; other
    :class:`TrainConfig` fields can be overridden by keyword (``seed=1``,
    ``progress=False``, ...). Metrics are :func:`pdm.model.train.train`'s plus
    ``frozen_parameters`` and ``frozen``.
    """
    model, base = _fleet(bundle_or_model, train_cfg)
    cfg = model.cfg
    machines = sorted({str(m) for m in windows.machine})
    if len(machines) > 1:
        raise ValueError(f"fine-tuning is per machine; the windows hold {len(machines)}: {', '.join(machines[:5])}")
    if cfg.channel_names and list(windows.channels) != list(cfg.channel_names):
        raise ValueError("the windows' channels differ from the fleet model's; align the machine with the fleet's channels")
    if windows.values.shape[1:] != (cfg.channels, cfg.window):
        raise ValueError(f"windows are {windows.values.shape[1:]}, the model expects ({cfg.channels}, {cfg.window})")
    names = [n for n, _ in model.named_parameters()]
    unknown = [f for f in freeze if not any(n.startswith(f) for n in names)]
    if unknown:
        raise ValueError(f"freeze prefixes match no parameter: {unknown}")
    known = {f.name for f in fields(TrainConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise TypeError(f"unknown TrainConfig fields: {bad}")
    tcfg = replace(base, epochs=epochs, freeze=list(freeze), mvp_epochs=0,
                   lr_max=lr_max if lr_max is not None else base.lr_max / 2, **overrides)
    tuned = copy.deepcopy(model)
    frozen = sum(p.numel() for n, p in tuned.named_parameters() if any(n.startswith(f) for f in freeze))
    log.info("fine-tuning on %s: %d windows, %d epochs, %d of %d parameters frozen", machines[0] if machines else "?",
             len(windows), epochs, frozen, sum(p.numel() for p in tuned.parameters()))
    tuned, metrics = train(windows, cfg, tcfg, model=tuned)
    metrics["frozen_parameters"] = frozen
    metrics["frozen"] = list(freeze)
    return tuned, metrics


def _fleet(obj: Any, train_cfg: TrainConfig | None) -> tuple[TSHAE, TrainConfig]:
    from pdm.model.directory import ModelBundle

    if isinstance(obj, ModelBundle):
        saved = {k: v for k, v in (obj.config.get("train") or {}).items() if k in {f.name for f in fields(TrainConfig)}}
        return obj.model, train_cfg or TrainConfig(**saved)
    if isinstance(obj, TSHAE):
        return obj, train_cfg or TrainConfig()
    raise TypeError(f"expected a ModelBundle or a TSHAE, got {type(obj).__name__}")
