"""TSHAE: shapes, masks, attention maps, and that it learns."""

from __future__ import annotations

import torch

from pdm.model.tshae import TSHAE, TSHAEConfig, masked_huber


def _model(**kw) -> TSHAE:
    torch.manual_seed(0)
    cfg = TSHAEConfig(channels=6, context_channels=2, event_channels=3, window=64, patch=8, d_model=32,
                      heads=4, layers=2, attn_window=4, lsh_chunk=4, **kw)
    return TSHAE(cfg)


def _batch(b=4, missing=0.2):
    g = torch.Generator().manual_seed(1)
    t = torch.linspace(0, 8 * torch.pi, 64)
    values = torch.sin(t)[None, None, :] * torch.arange(1, 7)[None, :, None] / 6 + 0.05 * torch.randn(b, 6, 64, generator=g)
    mask = (torch.rand(b, 6, 64, generator=g) > missing).float()
    values = values.masked_fill(mask == 0, float("nan"))
    context = torch.randn(b, 2, 64, generator=g)
    events = torch.zeros(b, 3, 64)
    events[0, 1, 20] = 2.0
    return values, mask, context, events


def test_output_and_maps_have_the_documented_shapes_and_no_nan_leaks_through():
    model = _model().eval()
    values, mask, context, events = _batch()
    out = model(values, mask, context, events, need_maps=True)
    assert out.reconstruction.shape == (4, 6, 64)
    assert torch.isfinite(out.reconstruction).all()
    assert out.temporal.shape == (4, 6, 8) and out.spatial.shape == (4, 6, 6) and out.cross.shape == (4, 6, 9)
    for m in (out.temporal, out.spatial, out.cross):
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:-1]), rtol=1e-5, atol=1e-5)


def test_nan_never_reaches_the_loss_or_the_gradients():
    model = _model()
    values, mask, context, events = _batch(missing=0.5)
    out = model(values, mask, context, events)
    loss = masked_huber(out.reconstruction, values, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_a_fully_missing_window_gives_zero_loss_not_nan():
    model = _model()
    values, mask, context, events = _batch()
    loss = masked_huber(model(values, torch.zeros_like(mask)).reconstruction, values, torch.zeros_like(mask))
    assert loss.item() == 0.0


def test_masked_values_do_not_change_the_reconstruction():
    model = _model().eval()
    values, mask, context, events = _batch()
    a = model(values, mask, context, events).reconstruction
    b = model(values.masked_fill(mask == 0, 1e6), mask, context, events).reconstruction
    torch.testing.assert_close(a, b)


def test_a_window_without_events_attends_only_to_the_no_event_token():
    model = _model().eval()
    values, mask, context, _ = _batch()
    out = model(values, mask, context, torch.zeros(4, 3, 64), need_maps=True)
    torch.testing.assert_close(out.cross[..., -1], torch.ones(4, 6))


def test_training_lowers_the_reconstruction_loss():
    model = _model(dropout=0.0)
    values, mask, context, events = _batch(b=8)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = masked_huber(model(values, mask, context, events).reconstruction, values, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_only_the_attended_event_slots_are_kept_and_the_reconstruction_is_unchanged():
    from pdm.model.tshae import _attended_only

    model = _model().eval()
    values, mask, context, events = _batch()
    events[2, 0, 50] = 1.0  # window 2: an event in patch 6; window 0: patch 2; the others none
    tokens, pad = model._event_tokens(events, 4, 8, values.dtype, values.device)
    kept, kept_pad = _attended_only(tokens, pad)
    assert kept.shape == (4, 2, 32)  # the batch's most: one event + "no event"
    assert kept_pad.tolist() == [[False, False], [False, True], [False, False], [False, True]]
    torch.testing.assert_close(kept[0, 0], tokens[0, 2])
    torch.testing.assert_close(kept[2, 1], tokens[2, 8])
    plain = model(values, mask, context, events, need_maps=True).reconstruction  # the maps need every slot
    fast = model(values, mask, context, events).reconstruction
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
    none = torch.zeros_like(events)
    torch.testing.assert_close(model(values, mask, context, none).reconstruction,
                               model(values, mask, context, none, need_maps=True).reconstruction, rtol=1e-5, atol=1e-6)


def test_channel_attention_is_multihead_attention_and_old_weights_load_into_it():
    """The spatial and cross-modal steps compute what nn.MultiheadAttention did, from its saved weights."""
    from pdm.model.tshae import ChannelAttention, upgrade_state_dict

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    mine = ChannelAttention(32, 4, 0.0).eval()
    old = {f"layers.0.cross.{k}": v for k, v in mha.state_dict().items()}
    new = upgrade_state_dict(old)
    assert sorted(new) == sorted(f"layers.0.cross.{k}" for k in mine.state_dict())
    mine.load_state_dict({k.removeprefix("layers.0.cross."): v for k, v in new.items()})
    x, kv = torch.randn(5, 7, 32), torch.randn(5, 3, 32)
    pad = torch.tensor([[True, False, False]] * 4 + [[False, False, True]])
    for need in (False, True):
        want, want_w = mha(x, kv, kv, key_padding_mask=pad, need_weights=need)
        got, got_w = mine(x, kv, key_padding_mask=pad, need_weights=need)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        if need:
            torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-6)
    assert upgrade_state_dict({"embed.weight": x}) == {"embed.weight": x}
