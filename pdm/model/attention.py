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
O(n·w + n·c·rounds + n log n). With ``need_weights`` the chunks' weights are
also computed explicitly (for root-cause maps); then the dense equivalent
can be assembled for tests (:meth:`TemporalAttention.dense_weights`).

When the window covers the whole sequence and there is one bucket, both
branches equal full attention, hence so does the hybrid, exactly.
"""

from __future__ import annotations

import math
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


def _neighbours(x: Tensor, before: int, after: int) -> Tensor:
    """(..., nb, w, d) blocks → (..., nb, (before+1+after)·w, d): each block with its neighbours."""
    parts = []
    for s in range(-before, after + 1):
        if s == 0:
            parts.append(x)
            continue
        shifted = torch.roll(x, shifts=-s, dims=-3)
        if s < 0:
            shifted[..., : -s, :, :] = 0
        else:
            shifted[..., -s:, :, :] = 0
        parts.append(shifted)
    return torch.cat(parts, dim=-2)


def _neighbour_mask(nb: int, w: int, n: int, before: int, after: int, device: torch.device) -> Tensor:
    """Valid keys per block (nb, 1, (before+1+after)·w): in range and not padding."""
    block = torch.arange(nb, device=device)[:, None]
    offs = torch.arange(-before, after + 1, device=device).repeat_interleave(w)[None, :]
    pos = (block + offs) * w + torch.arange(w, device=device).repeat(before + 1 + after)[None, :]
    valid = (block + offs >= 0) & (block + offs < nb) & (pos < n)
    return valid[:, None, :]


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
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        received = None
        if self.kind == "full":
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=self._p())
            if need_weights:
                received = self._received_full(q, k)
        elif self.kind == "full_explicit":
            w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
            o = F.dropout(w, self._p()) @ v
            if need_weights:
                received = w.mean(dim=(1, 2))
        elif self.kind == "window":
            o, received = self._window(q, k, v, need_weights)
        else:
            ow, rw = self._window(q, k, v, need_weights)
            ol, rl = self._lsh(q, k, v, need_weights)
            assert self.gate is not None
            g = torch.sigmoid(self.gate(x)).permute(0, 2, 1)[..., None]  # (B, H, N, 1)
            o = g * ow + (1 - g) * ol
            if need_weights and rw is not None and rl is not None:
                gm = g[..., 0].mean(dim=1)  # (B, N): gate per query, averaged over heads
                # Received attention mixes the branches per query; approximating with the
                # mean gate keeps it a distribution over tokens.
                gbar = gm.mean(dim=1, keepdim=True)
                received = gbar * rw + (1 - gbar) * rl
        o = o.transpose(1, 2).reshape(b, n, self.d_model)
        return self.out(o), received

    def dense_weights(self, x: Tensor) -> Tensor:
        """The (B, H, N, N) attention matrix this layer applies, assembled from its chunks.

        For tests and small inputs only: it is exactly what ``forward`` computes.
        """
        b, n, _ = x.shape
        q, k, _ = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        eye = torch.eye(n, dtype=x.dtype, device=x.device).expand(b, self.heads, n, n)
        if self.kind in ("full", "full_explicit"):
            return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
        # Attending with V = identity returns the weights themselves.
        ow, _ = self._window(q, k, eye, False)
        if self.kind == "window":
            return ow
        ol, _ = self._lsh(q, k, eye, False)
        assert self.gate is not None
        g = torch.sigmoid(self.gate(x)).permute(0, 2, 1)[..., None]
        return g * ow + (1 - g) * ol

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

    def _window(self, q: Tensor, k: Tensor, v: Tensor, need: bool) -> tuple[Tensor, Tensor | None]:
        b, h, n, d = q.shape
        w = min(self.window, n)
        nb = math.ceil(n / w)
        qb = _pad_to(q, w, 2).view(b, h, nb, w, d)
        kb = _neighbours(_pad_to(k, w, 2).view(b, h, nb, w, d), 1, 1)
        vb = _neighbours(_pad_to(v, w, 2).view(b, h, nb, w, v.shape[-1]), 1, 1)
        mask = _neighbour_mask(nb, w, n, 1, 1, q.device)  # (nb, 1, 3w)
        o = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, dropout_p=self._p())
        o = o.reshape(b, h, nb * w, -1)[:, :, :n]
        received = None
        if need:
            s = (qb @ kb.transpose(-1, -2)) / math.sqrt(d)
            wts = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)  # (b,h,nb,w,3w)
            qvalid = (torch.arange(nb * w, device=q.device) < n).view(nb, w, 1)
            wts = wts * qvalid
            key_pos = (torch.arange(nb, device=q.device)[:, None] + torch.arange(-1, 2, device=q.device).repeat_interleave(w)[None, :]) * w \
                + torch.arange(w, device=q.device).repeat(3)[None, :]
            key_pos = key_pos.clamp(0, nb * w - 1)
            per_key = wts.sum(dim=3).mean(dim=1)  # (b, nb, 3w)
            rec = q.new_zeros(b, nb * w)
            rec.scatter_add_(1, key_pos.reshape(1, -1).expand(b, -1), per_key.reshape(b, -1))
            received = rec[:, :n] / n
        return o, received

    def _lsh(self, q: Tensor, k: Tensor, v: Tensor, need: bool) -> tuple[Tensor, Tensor | None]:
        b, h, n, d = q.shape
        c = min(self.chunk, n)
        nbuckets = self.buckets or max(1, 2 * round(n / c / 2))
        outs, recs = [], []
        for r in range(self.rounds):
            qs, ks = self._bucket_order(q, r, nbuckets), self._bucket_order(k, r, nbuckets)
            gather = lambda t, idx: t.gather(2, idx[..., None].expand(-1, -1, -1, t.shape[-1]))  # noqa: E731
            nq = math.ceil(n / c)
            qc = _pad_to(gather(q, qs), c, 2).view(b, h, nq, c, d)
            kc = _neighbours(_pad_to(gather(k, ks), c, 2).view(b, h, nq, c, d), 1, 0)
            vc = _neighbours(_pad_to(gather(v, ks), c, 2).view(b, h, nq, c, v.shape[-1]), 1, 0)
            mask = _neighbour_mask(nq, c, n, 1, 0, q.device)
            o = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=mask, dropout_p=self._p())
            o = o.reshape(b, h, nq * c, -1)[:, :, :n]
            outs.append(torch.empty_like(o).scatter_(2, qs[..., None].expand_as(o), o))
            if need:
                s = (qc @ kc.transpose(-1, -2)) / math.sqrt(d)
                wts = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)
                wts = wts * (torch.arange(nq * c, device=q.device) < n).view(nq, c, 1)
                per_key = wts.sum(dim=3)  # (b, h, nq, 2c): weight received by each sorted key slot
                slot = (torch.arange(nq, device=q.device)[:, None] + torch.arange(-1, 1, device=q.device).repeat_interleave(c)[None, :]) * c \
                    + torch.arange(c, device=q.device).repeat(2)[None, :]
                slot = slot.clamp(0, nq * c - 1).reshape(-1)
                ks_pad = _pad_to(ks, c, 2)  # sorted slot → original position
                orig = ks_pad[:, :, slot]  # (b, h, nq·2c)
                rec = q.new_zeros(b, h, nq * c)
                rec.scatter_add_(2, orig, per_key.reshape(b, h, -1))
                recs.append(rec[:, :, :n].mean(dim=1) / n)
        o = torch.stack(outs).mean(dim=0)
        received = torch.stack(recs).mean(dim=0) if need else None
        return o, received

    def _bucket_order(self, x: Tensor, r: int, nbuckets: int) -> Tensor:
        """Positions sorted by (bucket, position) for hash round ``r``: (B, H, N) long."""
        n = x.shape[2]
        if nbuckets <= 1:
            return torch.arange(n, device=x.device).expand(x.shape[0], x.shape[1], n)
        half = max(1, nbuckets // 2)
        rot = self.rotations[r, :, :half].to(x.dtype)
        proj = F.normalize(x, dim=-1) @ rot
        bucket = torch.cat([proj, -proj], dim=-1).argmax(dim=-1)  # (B, H, N)
        key = bucket * n + torch.arange(n, device=x.device)
        return key.argsort(dim=-1)
