"""Temporal attention: hybrid is exact where it should be, and its weights are distributions."""

from __future__ import annotations

import pytest
import torch

from pdm.model.attention import TemporalAttention


def _pair(kind: str, **kw) -> tuple[TemporalAttention, TemporalAttention]:
    torch.manual_seed(0)
    full = TemporalAttention(32, 4, "full")
    other = TemporalAttention(32, 4, kind, **kw)
    other.qkv.load_state_dict(full.qkv.state_dict())
    other.out.load_state_dict(full.out.state_dict())
    return full.eval(), other.eval()


@pytest.mark.parametrize("n", [17, 64, 100])
def test_hybrid_equals_full_attention_when_the_window_covers_the_sequence_and_there_is_one_bucket(n):
    full, hybrid = _pair("hybrid", window=128, chunk=128, rounds=2)
    x = torch.randn(3, n, 32)
    out_full, rec_full = full(x, need_weights=True)
    out_hybrid, rec_hybrid = hybrid(x, need_weights=True)
    torch.testing.assert_close(out_hybrid, out_full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rec_hybrid, rec_full, rtol=1e-5, atol=1e-6)


def test_window_attention_equals_full_attention_when_the_window_covers_the_sequence():
    full, window = _pair("window", window=64)
    x = torch.randn(2, 40, 32)
    torch.testing.assert_close(window(x)[0], full(x)[0], rtol=1e-5, atol=1e-6)


def test_the_written_out_attention_equals_the_fused_one():
    full, explicit = _pair("full_explicit")
    x = torch.randn(2, 33, 32)
    torch.testing.assert_close(explicit(x)[0], full(x)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["hybrid", "window", "full"])
def test_attention_rows_sum_to_one_and_forward_applies_exactly_those_weights(kind):
    torch.manual_seed(1)
    layer = TemporalAttention(32, 4, kind, window=8, chunk=8, rounds=3).eval()
    x = torch.randn(2, 200, 32)
    weights = layer.dense_weights(x)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 200), rtol=1e-5, atol=1e-5)
    assert (weights >= 0).all()
    if kind != "full":
        assert (weights == 0).float().mean() > 0.5  # sparse: most pairs are never scored
    b, n, _ = x.shape
    q, k, v = layer.qkv(x).view(b, n, 3, 4, 8).permute(2, 0, 3, 1, 4)
    expected = layer.out((weights @ v).transpose(1, 2).reshape(b, n, 32))
    torch.testing.assert_close(layer(x)[0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["hybrid", "window"])
def test_scoring_gives_the_same_output_whatever_the_segments_it_runs_in(kind):
    torch.manual_seed(2)
    layer = TemporalAttention(32, 4, kind, window=8, chunk=8, rounds=2).eval()
    x = torch.randn(3, 203, 32)  # not a multiple of the block: padded queries and keys at the end
    with torch.no_grad():
        outs = []
        for rows in (1, 500, 1 << 20):  # one block or chunk per call, several, all in one call
            layer.segment = layer.inference_segment = rows
            outs.append(layer(x)[0])
    trained = layer(x)[0].detach()  # the training path: one segment, with autograd
    for out in outs:
        torch.testing.assert_close(out, trained, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("kind", "n"), [("hybrid", 18), ("hybrid", 5), ("hybrid", 32), ("window", 30)])
def test_a_short_sequence_computed_densely_equals_the_chunked_form(kind, n):
    """At most two window blocks and two LSH chunks: dense fused calls, the same output and gradients."""
    torch.manual_seed(3)
    layer = TemporalAttention(32, 4, kind, window=16, chunk=16, rounds=3)
    x = torch.randn(4, n, 32, requires_grad=True)
    grads = []
    for recompute_from in (512, 0):  # 0: every length takes the chunked (recomputing) path
        layer.recompute_from = recompute_from
        with torch.no_grad():
            scored = layer.eval()(x)[0]
        out = layer.train()(x)[0]  # dropout 0: the training path is deterministic
        torch.testing.assert_close(out.detach(), scored, rtol=1e-5, atol=1e-6)
        grads.append(torch.autograd.grad((out * torch.linspace(-1, 1, 32)).sum(), (x, *layer.parameters()),
                                         allow_unused=True))
        if recompute_from == 512:
            dense = scored
        else:
            torch.testing.assert_close(scored, dense, rtol=1e-5, atol=1e-6)
    for dense_grad, chunked_grad in zip(*grads, strict=True):
        if dense_grad is None:  # the fixed rotations
            assert chunked_grad is None
            continue
        torch.testing.assert_close(dense_grad, chunked_grad, rtol=1e-4, atol=1e-5)


def test_a_short_sequence_trained_with_dropout_attends_the_same_pairs_on_average():
    """With dropout the dense form runs fused calls per branch (the shared-score form is for p = 0):
    dropout rescales the kept weights, so averaged over many passes the output is the one without it."""
    torch.manual_seed(4)
    layer = TemporalAttention(32, 4, "hybrid", window=16, chunk=16, rounds=2, dropout=0.3)
    x = torch.randn(2, 24, 32)
    with torch.no_grad():
        layer.recompute_from = 0
        want = layer.eval()(x)[0]  # the chunked form, no dropout
        layer.recompute_from = 512
        mean = torch.stack([layer.train()(x)[0] for _ in range(600)]).mean(dim=0)
    assert (mean - want).abs().mean() < 0.1 * want.abs().mean()
    assert (mean - want).abs().mean() < 0.5 * (layer.train()(x)[0].detach() - want).abs().mean()  # averaging helped


def test_the_temporal_map_is_a_distribution_over_tokens():
    layer = TemporalAttention(32, 4, "hybrid", window=8, chunk=8).eval()
    _, received = layer(torch.randn(2, 70, 32), need_weights=True)
    assert received.shape == (2, 70)
    torch.testing.assert_close(received.sum(-1), torch.ones(2), rtol=1e-5, atol=1e-5)


def test_lsh_puts_similar_keys_in_the_same_chunk_more_often_than_chance():
    torch.manual_seed(2)
    layer = TemporalAttention(32, 4, "hybrid", window=4, chunk=4, rounds=1, buckets=8)
    base = torch.randn(8, 8)
    x = base.repeat_interleave(8, dim=0)[torch.randperm(64)] + 0.01 * torch.randn(64, 8)
    order = layer._bucket_orders(x[None, None], 8)[0, 0, 0]
    groups = (x[order] @ x[order].T).diagonal(offset=1)
    assert groups.mean() > (x @ x.T).mean()


@pytest.mark.parametrize("buckets", [2, 8, 12])
def test_buckets_are_the_argmax_over_the_rotations_and_their_negatives(buckets):
    """The hashing's shortcut (largest magnitude, sign picks the half) gives angular LSH's buckets exactly."""
    torch.manual_seed(3)
    layer = TemporalAttention(32, 4, "hybrid", window=4, chunk=4, rounds=3, buckets=buckets)
    x = torch.randn(2, 4, 50, 8) * torch.rand(2, 4, 50, 1) * 5
    half = buckets // 2
    proj = torch.einsum("...nd,rdh->r...nh", torch.nn.functional.normalize(x, dim=-1), layer.rotations[:, :, :half])
    bucket = torch.cat([proj, -proj], dim=-1).argmax(dim=-1)  # (R, 2, 4, N): the textbook form
    expected = (bucket * 50 + torch.arange(50)).argsort(dim=-1)
    torch.testing.assert_close(layer._bucket_orders(x, buckets), expected, rtol=0, atol=0)


def test_the_dense_chunk_mask_lets_a_query_see_its_own_chunk_and_the_one_before():
    from pdm.model.attention import _chunk_mask

    torch.manual_seed(5)
    n, c = 24, 16
    qs, ks = (torch.stack([torch.randperm(n) for _ in range(2 * 3 * 4)]).view(2, 3, 4, n) for _ in range(2))
    seen = _chunk_mask(qs, ks, c)  # (R·B, H, N, N)
    chunk_q = torch.empty_like(qs).scatter_(-1, qs, torch.arange(n).expand_as(qs) // c).flatten(0, 1)
    chunk_k = torch.empty_like(ks).scatter_(-1, ks, torch.arange(n).expand_as(ks) // c).flatten(0, 1)
    diff = chunk_q[..., :, None] - chunk_k[..., None, :]
    assert torch.equal(seen, (diff == 0) | (diff == 1))
    with pytest.raises(ValueError, match="at most two chunks"):
        _chunk_mask(qs, ks, 8)  # three chunks: the chunked form's case
