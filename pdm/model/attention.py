"""Temporal attention over one channel's tokens: full, sliding-window, and hybrid.

Hybrid attention (the seed's "dynamic hybrid attention") is a learned,
per-token sigmoid gate between two sparse branches:

- **window**: each query attends to its block of ``window`` tokens and the
  blocks either side (blocked sliding window), for local shape;
- **LSH**: tokens are hashed by random rotations (angular LSH, ``rounds``
  independent hash rounds averaged), queries and keys are sorted by bucket and
  each chunk of ``chunk`` sorted queries attends to its chunk of sorted keys
  and the one before, for long-range matches with similar shape.

Both branches run PyTorch's fused ``scaled_dot_product_attention`` on their
chunks, so no n × n score matrix is ever built: time and memory grow as
O(n·w + n·c·rounds + n log n). The chunks are 4-D with a 4-D additive mask
(the shapes SDPA's fused CPU kernel accepts), neighbouring blocks are
overlapping ``unfold`` views rather than copies, all hash rounds go through
one batched call, and queries, keys and values are read straight from the
qkv projection (the LSH branch by row index) with outputs written straight
into the layout of the output projection. Long sequences (``recompute_from``
tokens and more) are processed in segments of bounded size, and training
recomputes each segment in the backward instead of keeping the branches'
intermediates, so the peak memory of a training step stays near that of the
fused full attention. With ``need_weights`` the chunks' weights are also
computed explicitly (for root-cause maps); then the dense equivalent can be
assembled for tests (:meth:`TemporalAttention.dense_weights`).

When the window covers the whole sequence and there is one bucket, both
branches equal full attention, hence so does the hybrid, exactly.

A short sequence (at most two window blocks and two LSH chunks, such as the
product's one-day windows of 18 tokens) runs as dense fused calls instead:
the same pairs and weights, without the chunked form's gathers and copies,
which dominate at that length (see ``_short_forward``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AttentionKind = Literal["hybrid", "full", "window", "full_explicit"]


def _pad_to(x: Tensor, multiple: int, dim: int) -> Tensor:
    n = x.shape[dim]
    pad = (-n) % multiple
    if pad == 0:
        return x
    shape = list(x.shape)
    shape[dim] = pad
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


def _additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Boolean (nb, 1, K) key mask → additive (1, nb, 1, K): the 4-D form SDPA's fused CPU kernel takes."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))[None]


def _neighbour_mask(nb: int, w: int, n: int, before: int, after: int, device: torch.device) -> Tensor:
    """Valid keys per block (nb, 1, (before+1+after)·w): in range and not padding."""
    block = torch.arange(nb, device=device)[:, None]
    offs = torch.arange(-before, after + 1, device=device).repeat_interleave(w)[None, :]
    pos = (block + offs) * w + torch.arange(w, device=device).repeat(before + 1 + after)[None, :]
    valid = (block + offs >= 0) & (block + offs < nb) & (pos < n)
    return valid[:, None, :]


@dataclass
class _Plan:
    """Geometry of one sparse-attention call over the qkv projection's output.

    Q, K and V are read straight from the projection, (B, N, 3, H, d), seen as
    a flat table of (B·N·3·H) rows of d: the LSH branch gathers rows by index,
    the window branch copies token ranges per segment. Outputs go to a
    (B·N·H + 1, d) table whose last row takes what padding queries produce.
    """

    b: int
    h: int
    n: int
    w: int  # window block
    nb: int  # window blocks
    p: float  # attention dropout
    seg: int  # rows (sequences × tokens) per segment: bounds the working memory
    wmask: Tensor  # (1, nb, 1, 3w) additive
    lsh: bool = False
    rounds: int = 1
    c: int = 0  # LSH chunk
    nq: int = 0  # LSH chunks
    lmask: Tensor | None = None  # (1, nq, 1, 2c) additive
    qrows: Tensor | None = None  # (R·B·H, nq·c) qkv rows of the queries in bucket order (padding: row 0)
    krows: Tensor | None = None  # (R·B·H, (nq+1)·c) qkv rows of the keys after a padding chunk (values: + H)
    orows: Tensor | None = None  # (R·B·H, nq·c) output rows of the queries (padding: the extra last row)
    short: bool = False  # computed densely where that is exact and cheaper (short sequences, not recomputed)
    dmask: Tensor | None = None  # (R·B, H, N, N) bool, True = attended: the LSH branch's chunks as a dense mask


def _window_attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, w: int, p: float) -> Tensor:
    """Blocked window attention: q (BH, m·w, d), k/v (BH, (m+2)·w, ·) its blocks and one either side → (BH, m·w, dv)."""
    bh, m = q.shape[0], q.shape[1] // w
    qb = q.reshape(bh, m, w, q.shape[-1])
    kb = k.unfold(1, 3 * w, w).transpose(-1, -2)  # overlapping views, no copies
    vb = v.unfold(1, 3 * w, w).transpose(-1, -2)
    return F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, dropout_p=p).reshape(bh, m * w, -1)


def _lsh_attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, c: int, p: float) -> Tensor:
    """Chunked attention in bucket order: q (RBH, m·c, d), k/v (RBH, (m+1)·c, ·) → (RBH, m·c, dv)."""
    rb, m = q.shape[0], q.shape[1] // c
    qc = q.reshape(rb, m, c, q.shape[-1])
    kc = k.unfold(1, 2 * c, c).transpose(-1, -2)
    vc = v.unfold(1, 2 * c, c).transpose(-1, -2)
    return F.scaled_dot_product_attention(qc, kc, vc, attn_mask=mask, dropout_p=p).reshape(rb, m * c, -1)


def _segments(count: int, per: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + per, count)) for lo in range(0, count, per)]


def _window_span(plan: _Plan, b0: int, b1: int) -> tuple[int, int, int, int, int]:
    """Blocks [b0, b1): query tokens [lo, hi), key tokens [klo, khi) and where they start in the key block rows."""
    w, n = plan.w, plan.n
    klo = max(0, (b0 - 1) * w)
    return b0 * w, min(b1 * w, n), klo, min(n, (b1 + 1) * w), klo - (b0 - 1) * w


def _window_inputs(qkv5: Tensor, plan: _Plan, b0: int, b1: int) -> tuple[Tensor, Tensor, Tensor]:
    """Zero-padded Q (BH, m·w, d) and K, V (BH, (m+2)·w, d) of blocks [b0, b1), copied from (B, N, 3, H, d)."""
    b, h, w, d = plan.b, plan.h, plan.w, qkv5.shape[-1]
    lo, hi, klo, khi, off = _window_span(plan, b0, b1)
    m = b1 - b0
    # Only the padding is zeroed (masked keys still enter Q·Kᵀ, so it must be finite):
    # zeroing whole buffers first cost about as much as the copies themselves.
    q = qkv5.new_empty(b, h, m * w, d)
    q[:, :, hi - lo :] = 0
    q[:, :, : hi - lo] = qkv5[:, lo:hi, 0].transpose(1, 2)
    kv = qkv5.new_empty(2, b, h, (m + 2) * w, d)
    kv[:, :, :, :off] = 0
    kv[:, :, :, off + khi - klo :] = 0
    kv[:, :, :, off : off + khi - klo] = qkv5[:, klo:khi, 1:].permute(2, 0, 3, 1, 4)
    return q.view(b * h, m * w, d), kv[0].view(b * h, -1, d), kv[1].view(b * h, -1, d)


def _lsh_inputs(flat: Tensor, plan: _Plan, c0: int, c1: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gathered Q, K, V of sorted chunks [c0, c1) (all rounds) and their qkv and output rows."""
    assert plan.qrows is not None and plan.krows is not None and plan.orows is not None
    c, rb, d = plan.c, plan.qrows.shape[0], flat.shape[-1]
    qi = plan.qrows[:, c0 * c : c1 * c].reshape(-1)
    ki = plan.krows[:, c0 * c : (c1 + 1) * c].reshape(-1)
    q = flat.index_select(0, qi).view(rb, -1, d)
    k = flat.index_select(0, ki).view(rb, -1, d)
    v = flat.index_select(0, ki + plan.h).view(rb, -1, d)
    return q, k, v, qi, plan.orows[:, c0 * c : c1 * c].reshape(-1)


def _sparse_forward(qkv: Tensor, gate: Tensor | None, plan: _Plan) -> Tensor:
    """g·window + (1 − g)·mean over rounds of LSH, segment by segment.

    ``qkv``: (B, N, 3·H·d); ``gate``: (B, N, H) or None (window only). Returns (B, N, H·d).
    """
    b, h, n, w = plan.b, plan.h, plan.n, plan.w
    d = qkv.shape[-1] // (3 * h)
    qkv5 = qkv.view(b, n, 3, h, d)
    if plan.short:
        return _short_forward(qkv5, gate, plan).reshape(b, n, h * d)
    out = qkv.new_empty(b * n * h + 1, d)  # last row: where padding queries write
    view = out[:-1].view(b, n, h, d)
    for b0, b1 in _segments(plan.nb, max(1, plan.seg // (b * h * w))):
        lo, hi = _window_span(plan, b0, b1)[:2]
        o = _window_attend(*_window_inputs(qkv5, plan, b0, b1), plan.wmask[:, b0:b1], w, plan.p)
        o = o.view(b, h, -1, d)[:, :, : hi - lo].transpose(1, 2)
        view[:, lo:hi] = o if gate is None else o * gate[:, lo:hi, :, None]
    if plan.lsh:
        assert gate is not None and plan.lmask is not None
        other = torch.cat([1 - gate.reshape(-1), gate.new_zeros(1)]) / plan.rounds  # (1 − g) / R per output row
        flat = qkv.view(-1, d)
        for c0, c1 in _segments(plan.nq, max(1, plan.seg // (b * h * plan.c * plan.rounds))):
            q, k, v, _, oi = _lsh_inputs(flat, plan, c0, c1)
            o = _lsh_attend(q, k, v, plan.lmask[:, c0:c1], plan.c, plan.p)
            out.index_add_(0, oi, o.reshape(-1, d) * other[oi, None])
    return out[:-1].view(b, n, h * d)


def _short_forward(qkv5: Tensor, gate: Tensor | None, plan: _Plan) -> Tensor:
    """The same attention for a short sequence, as dense fused calls on the unpadded tokens: (B, N, H, d).

    With at most two window blocks every block's neighbours are all the blocks, so the window
    branch is full attention, exactly (the blocked form's masked keys get zero weight); the
    LSH branch is full attention under the mask its sorted chunks imply (query i sees key j
    when j's chunk among the sorted keys is i's chunk among the sorted queries or the one
    before), so the same pairs, weights and outputs, exactly. For tens of tokens this skips
    the gathers, padded block copies and scattered adds of the chunked form (most of its
    time: the product's one-day windows are 18 tokens). Without dropout (scoring) the two
    branches also share one score matrix and one product with V.
    """
    q, k, v = qkv5.permute(2, 0, 3, 1, 4)  # (B, H, N, d) each
    if gate is not None and plan.dmask is not None and plan.p == 0:
        # Without dropout both branches share Q·Kᵀ and V: one score matrix, the branches'
        # softmaxes mixed by the gate, one product with V (half the time of the fused calls).
        s = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(q.shape[-1]))  # (B, H, N, N)
        g = gate.transpose(1, 2)[..., None]  # (B, H, N, 1)
        lsh = torch.softmax(torch.where(plan.dmask.view(plan.rounds, *s.shape), s, -math.inf), dim=-1).mean(dim=0)
        return ((torch.softmax(s, dim=-1) * g + lsh * (1 - g)) @ v).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v, dropout_p=plan.p).transpose(1, 2)  # (B, N, H, d)
    if gate is None:
        return o
    o = o * gate[..., None]
    if plan.dmask is not None:
        r = plan.rounds
        qr, kr, vr = (t.expand(r, *t.shape).reshape(-1, *t.shape[1:]) for t in (q, k, v))
        lsh = F.scaled_dot_product_attention(qr, kr, vr, attn_mask=plan.dmask, dropout_p=plan.p)
        o = o + lsh.view(r, *q.shape).mean(dim=0).transpose(1, 2) * (1 - gate)[..., None]
    return o


class _SparseAttention(torch.autograd.Function):
    """Sparse attention from the qkv projection (B, N, 3·H·d) to (B, N, H·d), memory-lean.

    The forward runs segment by segment without building a graph and keeps
    only its inputs (the projection and the gate); the backward recomputes each
    segment with autograd and adds its gradients straight into the
    projection's gradient. So the branches' blocks, sorted copies and outputs
    never all exist at once: peak memory stays near the fused full
    attention's, and every chunk still runs on the fused SDPA kernel. Dropout
    masks are replayed from the saved random state.
    """

    @staticmethod
    def forward(ctx, qkv: Tensor, gate: Tensor | None, plan: _Plan) -> Tensor:  # type: ignore[override]
        ctx.plan = plan
        ctx.rng = _rng_state(qkv) if plan.p > 0 else None
        ctx.save_for_backward(qkv, gate)
        return _sparse_forward(qkv, gate, plan)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        qkv, gate = ctx.saved_tensors
        plan: _Plan = ctx.plan
        b, h, n, w = plan.b, plan.h, plan.n, plan.w
        d = qkv.shape[-1] // (3 * h)
        qkv5 = qkv.view(b, n, 3, h, d)
        grad = grad.reshape(b, n, h, d)
        dqkv = torch.zeros_like(qkv)
        d5 = dqkv.view(b, n, 3, h, d)
        dgate = torch.zeros_like(gate) if gate is not None else None
        with _replay(ctx.rng, qkv), torch.enable_grad():
            for b0, b1 in _segments(plan.nb, max(1, plan.seg // (b * h * w))):
                lo, hi, klo, khi, off = _window_span(plan, b0, b1)
                q, k, v = (t.requires_grad_() for t in _window_inputs(qkv5, plan, b0, b1))
                o = _window_attend(q, k, v, plan.wmask[:, b0:b1], w, plan.p)
                g_o = grad[:, lo:hi] if gate is None else grad[:, lo:hi] * gate[:, lo:hi, :, None]
                go = o.new_zeros(b, h, o.shape[1], d)
                go[:, :, : hi - lo] = g_o.transpose(1, 2)
                dq, dk, dv = torch.autograd.grad(o, (q, k, v), go.view(b * h, -1, d))
                d5[:, lo:hi, 0] += dq.view(b, h, -1, d)[:, :, : hi - lo].transpose(1, 2)
                d5[:, klo:khi, 1] += dk.view(b, h, -1, d)[:, :, off : off + khi - klo].transpose(1, 2)
                d5[:, klo:khi, 2] += dv.view(b, h, -1, d)[:, :, off : off + khi - klo].transpose(1, 2)
                if dgate is not None:
                    mine = o.detach().view(b, h, -1, d)[:, :, : hi - lo].transpose(1, 2)
                    dgate[:, lo:hi] += (grad[:, lo:hi] * mine).sum(-1)
            if plan.lsh:
                assert gate is not None and dgate is not None and plan.lmask is not None
                last = b * n * h
                flat, dflat = qkv.view(-1, d), dqkv.view(-1, d)
                fgrad, fgate, fdgate = grad.reshape(-1, d), gate.reshape(-1), dgate.view(-1)
                for c0, c1 in _segments(plan.nq, max(1, plan.seg // (b * h * plan.c * plan.rounds))):
                    q, k, v, qi, oi = _lsh_inputs(flat, plan, c0, c1)
                    q, k, v = q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
                    o = _lsh_attend(q, k, v, plan.lmask[:, c0:c1], plan.c, plan.p).reshape(-1, d)
                    real = (oi < last).to(grad.dtype)[:, None] / plan.rounds
                    oi = oi.clamp(max=last - 1)
                    go = fgrad.index_select(0, oi) * real  # ∂L/∂(this round's output), before the gate
                    dq, dk, dv = torch.autograd.grad(o, (q, k, v), go * (1 - fgate.index_select(0, oi))[:, None])
                    ki = plan.krows[:, c0 * plan.c : (c1 + 1) * plan.c].reshape(-1)  # type: ignore[index]
                    dflat.index_add_(0, qi, dq.reshape(-1, d))  # padding rows add exact zeros to row 0
                    dflat.index_add_(0, ki, dk.reshape(-1, d))
                    dflat.index_add_(0, ki + h, dv.reshape(-1, d))
                    fdgate.index_add_(0, oi, -(go * o.detach()).sum(-1))
        return dqkv, dgate, None


def _rng_state(x: Tensor) -> tuple[Tensor, Tensor | None]:
    return torch.get_rng_state(), torch.cuda.get_rng_state(x.device) if x.is_cuda else None


class _replay:
    """Run with the random state saved at forward time (so dropout masks repeat), then restore."""

    def __init__(self, state: tuple[Tensor, Tensor | None] | None, x: Tensor) -> None:
        self.state, self.x = state, x

    def __enter__(self) -> None:
        if self.state is None:
            return
        self.saved = _rng_state(self.x)
        torch.set_rng_state(self.state[0])
        if self.state[1] is not None:
            torch.cuda.set_rng_state(self.state[1], self.x.device)

    def __exit__(self, *exc: object) -> None:
        if self.state is None:
            return
        torch.set_rng_state(self.saved[0])
        if self.saved[1] is not None:
            torch.cuda.set_rng_state(self.saved[1], self.x.device)


#: Longest sequence whose LSH branch may run as dense masked attention (its mask is
#: rounds x B x H x N x N); beyond this the chunked form is cheaper.
SHORT_LSH_TOKENS = 128


def _chunk_mask(qs: Tensor, ks: Tensor, c: int) -> Tensor:
    """(R·B, H, N, N) bool, True where query i sees key j: j's sorted chunk is i's or the one before.

    ``qs``, ``ks``: (R, B, H, N) positions in bucket order (the sorted chunks' contents), at most
    two chunks of ``c`` (the dense form's case): then i sees j exactly when j's chunk is not after
    i's, one comparison of chunk numbers (no N × N arithmetic, no float mask to build or add).
    """
    n = qs.shape[-1]
    if n > 2 * c:
        raise ValueError(f"a dense chunk mask is for at most two chunks ({n} tokens, chunks of {c})")
    pos = (torch.arange(n, device=qs.device) >= c).expand_as(qs)  # second chunk?
    cq = torch.empty_like(pos).scatter_(-1, qs, pos)  # chunk of each query: 0 or 1
    ck = torch.empty_like(pos).scatter_(-1, ks, pos)
    return (cq[..., :, None] >= ck[..., None, :]).flatten(0, 1)


class TemporalAttention(nn.Module):
    """Multi-head self-attention over tokens (B, N, D) with a selectable sparsity.

    Parameters
    ----------
    d_model, heads
        Model width and number of heads (d_model divisible by heads).
    kind
        ``"hybrid"`` (gated window + LSH), ``"window"``, ``"full"`` (fused
        SDPA), or ``"full_explicit"`` (QKᵀ → softmax → V written out: the
        standard Transformer, as a baseline).
    window, chunk, rounds, buckets
        Window block size; LSH chunk size; hash rounds; buckets per round
        (``None``: about n / chunk).
    """

    def __init__(self, d_model: int, heads: int, kind: AttentionKind = "hybrid", *, window: int = 64,
                 chunk: int = 64, rounds: int = 2, buckets: int | None = None, dropout: float = 0.0,
                 seed: int = 0) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
        self.d_model, self.heads, self.kind = d_model, heads, kind
        self.head_dim = d_model // heads
        self.window, self.chunk, self.rounds, self.buckets = window, chunk, rounds, buckets
        self.dropout = dropout
        # Rows (sequences × tokens) the sparse kinds process at a time: bounds their working
        # memory to a few MiB beyond Q, K, V and the gradients; measured not to cost time.
        self.segment = 2048
        # From this many tokens on, training recomputes the sparse attention in the backward
        # instead of keeping its intermediates: peak memory near the fused full attention's
        # (a third to a half of plain autograd's) for ~8 % more time. Shorter sequences (the
        # usual TSHAE windows: tens of tokens, large batches) take plain autograd over one
        # segment, which is faster there (~30 % per training step).
        self.recompute_from = 512
        # Rows per segment when scoring (no graph, no gradients): a window of a scoring request
        # is short (180 tokens x 16 channels x 4 heads x 2 imputation passes is ~23k rows), and
        # 2,048-row segments cut its branches into one 16-token block per fused-attention call
        # (24 calls per layer and request). 32,768 rows take a request's window in one or two
        # calls per branch: 10 % less time per request with 2 threads, 4 % with 1 (fleet scoring,
        # measured interleaved), for a working set of a few tens of MiB; long sequences still go
        # in bounded segments.
        self.inference_segment = 32768
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.gate = nn.Linear(d_model, heads) if kind == "hybrid" else None
        self.rotations: Tensor
        gen = torch.Generator().manual_seed(seed)
        # Random rotations for angular LSH, fixed so scoring is deterministic.
        self.register_buffer("rotations", torch.randn(rounds, self.head_dim, 64, generator=gen), persistent=True)

    # ----------------------------------------------------------------- public
    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attend over ``x`` (B, N, D); returns (output (B, N, D), attention received per token (B, N) or None).

        The second value is each token's share of attention, averaged over
        heads and queries (it sums to one over tokens): the temporal map.
        """
        b, n, _ = x.shape
        qkv = self.qkv(x)
        received = None
        if self.kind in ("window", "hybrid"):
            gate = torch.sigmoid(self.gate(x)) if self.gate is not None else None  # (B, N, H)
            with torch.no_grad():
                q, k = qkv.detach().view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)[:2]
                plan = self._plan(q, k, gate is not None)
                del q, k
            if not (torch.is_grad_enabled() and (qkv.requires_grad or (gate is not None and gate.requires_grad))):
                plan.seg = max(plan.seg, self.inference_segment)
                o = _sparse_forward(qkv, gate, plan)  # inference: segments bound the working memory
            elif n >= self.recompute_from:
                o = _SparseAttention.apply(qkv, gate, plan)  # long input: recompute in the backward
            else:
                plan.seg = b * self.heads * n * max(1, self.rounds)  # short input: one segment, plain autograd
                o = _sparse_forward(qkv, gate, plan)
            assert isinstance(o, Tensor)
            if need_weights:
                q, k = qkv.view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)[:2]
                received = self._window_received(q, k, plan)
                if gate is not None:
                    # Received attention mixes the branches per query; approximating with the
                    # mean gate keeps it a distribution over tokens.
                    gbar = gate.mean(dim=(1, 2))[:, None]
                    received = gbar * received + (1 - gbar) * self._lsh_received(q, k, plan)
            return self.out(o), received
        q, k, v = qkv.view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.kind == "full":
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=self._p())
            if need_weights:
                received = self._received_full(q, k)
        else:  # full_explicit
            w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
            o = F.dropout(w, self._p()) @ v
            if need_weights:
                received = w.mean(dim=(1, 2))
        o = o.transpose(1, 2).reshape(b, n, self.d_model)
        return self.out(o), received

    def dense_weights(self, x: Tensor) -> Tensor:
        """The (B, H, N, N) attention matrix this layer applies, assembled from its chunks.

        For tests and small inputs only: it is exactly what ``forward`` computes.
        """
        b, n, _ = x.shape
        q, k, _ = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.kind in ("full", "full_explicit"):
            return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
        # Attending with V = identity returns the weights themselves: run the layer's own
        # sparse forward with d columns of the identity as values at a time.
        gate = torch.sigmoid(self.gate(x)) if self.gate is not None else None
        plan = self._plan(q, k, gate is not None)
        d, h = self.head_dim, self.heads
        eye = torch.eye(n, dtype=x.dtype, device=x.device)
        cols = []
        for lo in range(0, n, d):
            vals = F.pad(eye[:, lo : lo + d], (0, d - min(d, n - lo)))[None, :, None, :].expand(b, n, h, d)
            qkv = torch.stack([q.transpose(1, 2), k.transpose(1, 2), vals], dim=2).reshape(b, n, 3 * h * d)
            cols.append(_sparse_forward(qkv, gate, plan).view(b, n, h, d))
        return torch.cat(cols, dim=-1)[..., :n].permute(0, 2, 1, 3)

    # ---------------------------------------------------------------- helpers
    def _p(self) -> float:
        return self.dropout if self.training else 0.0

    def _received_full(self, q: Tensor, k: Tensor) -> Tensor:
        # Chunked over queries so the n × n matrix never exists at once.
        n = q.shape[-2]
        total = q.new_zeros(q.shape[0], n)
        for lo in range(0, n, 1024):
            w = torch.softmax(q[..., lo : lo + 1024, :] @ k.transpose(-1, -2) / math.sqrt(self.head_dim), -1)
            total += w.sum(dim=2).mean(dim=1)
        return total / n

    def _plan(self, q: Tensor, k: Tensor, lsh: bool) -> _Plan:
        """Blocks, masks, bucket orders and row maps for (B, H, N, d) queries and keys."""
        b, h, n, _ = q.shape
        w = min(self.window, n)
        nb = math.ceil(n / w)
        dev = q.device
        plan = _Plan(b=b, h=h, n=n, w=w, nb=nb, p=self._p(), seg=self.segment,
                     wmask=_additive(_neighbour_mask(nb, w, n, 1, 1, dev), q.dtype),
                     short=nb <= 2 and n < self.recompute_from)
        if not lsh:
            return plan
        c = min(self.chunk, n)
        nq = math.ceil(n / c)
        nbuckets = self.buckets or max(1, 2 * round(n / c / 2))
        qs, ks = self._bucket_orders(torch.stack([q, k]), nbuckets).unbind(1)  # (R, B, H, N) each
        # Sorted position → row of the flat qkv table (B·N·3·H, d) / of the output table (B·N·H + 1, d).
        bi = torch.arange(b, device=dev).repeat_interleave(h).repeat(self.rounds)[:, None] * n
        hi = torch.arange(h, device=dev).repeat(b * self.rounds)[:, None]
        rb = bi.shape[0]
        pad = torch.zeros(rb, nq * c - n, dtype=torch.long, device=dev)
        plan.lsh, plan.rounds, plan.c, plan.nq = True, self.rounds, c, nq
        plan.qrows = torch.cat([(bi + qs.reshape(rb, n)) * 3 * h + hi, pad], dim=1)
        plan.krows = torch.cat([pad.new_zeros(rb, c), (bi + ks.reshape(rb, n)) * 3 * h + h + hi, pad], dim=1)
        plan.orows = torch.cat([(bi + qs.reshape(rb, n)) * h + hi, pad + b * n * h], dim=1)
        plan.lmask = _additive(_neighbour_mask(nq, c, n, 1, 0, dev), q.dtype)
        if plan.short:
            if nq <= 2 and n <= SHORT_LSH_TOKENS:
                plan.dmask = _chunk_mask(qs, ks, c)
            else:
                plan.short = False  # the window branch alone could go dense; both go chunked
        return plan

    def _window_received(self, q: Tensor, k: Tensor, plan: _Plan) -> Tensor:
        """Attention each token receives in the window branch, averaged over heads and queries: (B, N)."""
        b, h, n, d = q.shape
        w, nb = plan.w, plan.nb
        qb = _pad_to(q, w, 2).reshape(b, h, nb, w, d)
        kb = F.pad(k, (0, 0, w, (nb + 1) * w - n)).unfold(2, 3 * w, w).transpose(-1, -2)  # (B, H, nb, 3w, d)
        mask = _neighbour_mask(nb, w, n, 1, 1, q.device)  # (nb, 1, 3w)
        s = (qb @ kb.transpose(-1, -2)) / math.sqrt(d)
        wts = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)  # (b,h,nb,w,3w)
        wts = wts * (torch.arange(nb * w, device=q.device) < n).view(nb, w, 1)
        key_pos = (torch.arange(nb, device=q.device)[:, None] + torch.arange(-1, 2, device=q.device).repeat_interleave(w)[None, :]) * w \
            + torch.arange(w, device=q.device).repeat(3)[None, :]
        per_key = wts.sum(dim=3).mean(dim=1)  # (b, nb, 3w)
        rec = q.new_zeros(b, nb * w)
        rec.scatter_add_(1, key_pos.clamp(0, nb * w - 1).reshape(1, -1).expand(b, -1), per_key.reshape(b, -1))
        return rec[:, :n] / n

    def _lsh_received(self, q: Tensor, k: Tensor, plan: _Plan) -> Tensor:
        """Attention each token receives in the LSH branch, averaged over rounds, heads and queries: (B, N)."""
        b, h, n, d = q.shape
        assert plan.qrows is not None and plan.krows is not None
        c, nq, rb = plan.c, plan.nq, plan.qrows.shape[0]
        # The plan's rows index the qkv table (B·N·3·H, d); rebuild that table from q and k.
        table = torch.stack([q, k, k], dim=2).permute(0, 3, 2, 1, 4).reshape(-1, d)  # (B, N, 3, H, d) rows
        qc = table.index_select(0, plan.qrows.reshape(-1)).view(rb, nq, c, d)
        kc = table.index_select(0, plan.krows.reshape(-1)).view(rb, -1, d).unfold(1, 2 * c, c).transpose(-1, -2)
        mask = _neighbour_mask(nq, c, n, 1, 0, q.device)  # (nq, 1, 2c)
        s = (qc @ kc.transpose(-1, -2)) / math.sqrt(d)
        wts = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)
        wts = wts * (torch.arange(nq * c, device=q.device) < n).view(nq, c, 1)
        per_key = wts.sum(dim=2)  # (R·B·H, nq, 2c): weight received by each sorted key slot
        pos = (plan.krows.unfold(1, 2 * c, c) // (3 * h)) % n  # token of each key slot (padding: weight 0)
        rec = q.new_zeros(rb, n).scatter_add_(1, pos.reshape(rb, -1), per_key.reshape(rb, -1))
        return rec.view(self.rounds, b, h, n).mean(dim=(0, 2)) / n

    def _bucket_orders(self, x: Tensor, nbuckets: int) -> Tensor:
        """Positions sorted by (bucket, position) in each hash round: x (..., N, d) → (R, ..., N) long.

        All rounds (and all leading dimensions: queries and keys stacked) in one projection,
        one max and one stable sort. A vector's bucket is the argmax over its rotations [xR, −xR]
        (angular LSH), found without building that concatenation: the rotation of largest
        magnitude, in the second half when it is negative (the same index, first maximum
        first, up to exact ties of magnitude). Scaling x does not move an argmax, so x is not
        normalised first. Both halve the hashing's cost in a scoring request.
        """
        n, d, r = x.shape[-2], x.shape[-1], self.rounds
        lead = x.shape[:-2]
        if nbuckets <= 1:
            return torch.arange(n, device=x.device).expand(r, *lead, n)
        half = max(1, nbuckets // 2)
        rot = self.rotations[:, :, :half].to(x.dtype).permute(1, 0, 2).reshape(d, r * half)
        proj = (x @ rot).unflatten(-1, (r, half)).movedim(-2, 0)  # (R, ..., N, half)
        top = proj.abs().max(dim=-1).indices  # (R, ..., N)
        bucket = top + half * (proj.gather(-1, top[..., None])[..., 0] < 0)
        return torch.sort(bucket, dim=-1, stable=True).indices  # by bucket, then position
