"""Smaller, faster TSHAE for CPU and edge scoring (the seed's §3.2).

- :func:`prune_feed_forward` removes about ``fraction`` of the hidden units
  of every gated feed-forward layer (structured: the rows and columns go,
  so the matrices really shrink), keeping the units whose in- and outgoing
  weights have the largest norm. Fine-tune a little afterwards.
- :func:`quantize` applies PyTorch's dynamic int8 quantisation to every
  ``nn.Linear`` (weights int8, activations quantised on the fly).

Both return new models; the float model is untouched.
"""

from __future__ import annotations

import copy
import io

import torch
from torch import nn

from pdm.model.tshae import TSHAE, GatedFeedForward


def prune_feed_forward(model: TSHAE, fraction: float = 0.3) -> TSHAE:
    """A copy of ``model`` with ``fraction`` of each feed-forward layer's hidden units removed."""
    if not 0 <= fraction < 1:
        raise ValueError("fraction must be in [0, 1)")
    pruned = copy.deepcopy(model)
    for module in pruned.modules():
        if isinstance(module, GatedFeedForward):
            first, last = module.ff[0], module.ff[3]
            assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
            hidden = first.out_features
            keep_n = max(1, int(round(hidden * (1 - fraction))))
            importance = first.weight.norm(dim=1) * last.weight.norm(dim=0)
            keep = importance.argsort(descending=True)[:keep_n].sort().values
            new_first = nn.Linear(first.in_features, keep_n)
            new_last = nn.Linear(keep_n, last.out_features)
            with torch.no_grad():
                new_first.weight.copy_(first.weight[keep])
                new_first.bias.copy_(first.bias[keep])
                new_last.weight.copy_(last.weight[:, keep])
                new_last.bias.copy_(last.bias)
            module.ff[0], module.ff[3] = new_first, new_last
    return pruned


def quantize(model: TSHAE) -> nn.Module:
    """Dynamic int8 quantisation of the linear layers, for CPU scoring (eval mode)."""
    import warnings

    with warnings.catch_warnings():
        # torch.ao's dynamic quantisation is deprecated in favour of torchao, which is not
        # installed here; it still works and is what the CPU kernels support today.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


def size_bytes(model: nn.Module) -> int:
    """Serialised size of the model's state (what an edge device has to hold)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()
