"""int8 and pruned models score like the float model."""

from __future__ import annotations

import numpy as np
import torch

from pdm.model.edge import prune_feed_forward, quantize, size_bytes
from pdm.model.tshae import TSHAE, TSHAEConfig, masked_huber


def _trained() -> tuple[TSHAE, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    cfg = TSHAEConfig(channels=8, context_channels=2, event_channels=1, window=64, patch=8, d_model=32, heads=4,
                      layers=2, attn_window=4, lsh_chunk=4, dropout=0.0)
    model = TSHAE(cfg)
    g = torch.Generator().manual_seed(1)
    t = torch.linspace(0, 6 * torch.pi, 64)
    base = torch.sin(t[None, None, :] + torch.rand(32, 8, 1, generator=g) * 6)
    values = base + 0.05 * torch.randn(32, 8, 64, generator=g)
    mask = torch.ones_like(values)
    ctx, ev = torch.rand(32, 2, 64, generator=g), torch.zeros(32, 1, 64)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss = masked_huber(model(values, mask, ctx, ev).reconstruction, values, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # Score windows with anomalies of different sizes so the scores spread.
    test = values.clone()
    test[:, 0, 30:40] += torch.linspace(0, 3, 32)[:, None]
    return model.eval(), (test, mask, ctx, ev)


def _scores(model, batch) -> np.ndarray:
    values, mask, ctx, ev = batch
    with torch.no_grad():
        recon = model(values, mask, ctx, ev).reconstruction
    return (recon - values).abs().mean(dim=(1, 2)).numpy()


def test_the_quantised_model_scores_correlate_with_the_float_model_and_is_smaller():
    model, batch = _trained()
    q = quantize(model)
    r = np.corrcoef(_scores(model, batch), _scores(q, batch))[0, 1]
    assert r >= 0.99
    assert size_bytes(q) < 0.7 * size_bytes(model)  # tiny model: fixed overheads weigh; larger ones shrink more


def test_pruning_removes_a_third_of_the_feed_forward_units_and_keeps_scores_close():
    model, batch = _trained()
    pruned = prune_feed_forward(model, 0.3)
    n_before = sum(p.numel() for p in model.parameters())
    n_after = sum(p.numel() for p in pruned.parameters())
    assert n_after < n_before
    first = pruned.layers[0].ff_t.ff[0]
    assert first.out_features == round(64 * 0.7)
    r = np.corrcoef(_scores(model, batch), _scores(pruned, batch))[0, 1]
    assert r >= 0.9


def test_every_linear_layer_is_quantised_the_attention_projections_included():
    model, _ = _trained()
    q = quantize(model)
    dense = [n for n, m in q.named_modules() if isinstance(m, torch.nn.Linear)]
    assert dense == []  # the spatial and cross-modal projections too (nn.MultiheadAttention's were skipped)
    quantised = [n for n, m in q.named_modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert "layers.0.spatial.kv_proj" in quantised and "layers.1.cross.q_proj" in quantised
