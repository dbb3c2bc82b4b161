"""TSHAE: the temporal-spatial hybrid-attention autoencoder.

Input, per window (see :mod:`pdm.model` for the packed layout):

- ``values`` (B, C, T): scaled sensor channels, NaN-free (missing = 0);
- ``mask`` (B, C, T): 1 where a value was observed;
- ``context`` (B, K, T): conditioning channels fed to the model but never
  reconstructed (speed, load, running, time since maintenance);
- ``events`` (B, E, T): operator-log events per time step (severity per
  event type), also conditioning.

Every channel is cut into patches of P steps; each patch becomes a token
(values and mask together, plus the patch of context). Each layer runs:

1. temporal attention over each channel's tokens (hybrid window + LSH);
2. spatial attention across channels at each time token (its weights are
   the sensor × sensor map);
3. cross-modal attention from sensor tokens to the event tokens (one per
   patch with a logged event, plus a learned "no event" token);

each followed by a gated feed-forward layer (a learned sigmoid gate per
token, the seed's dynamic gating). A linear decoder maps tokens back to
patches. Masked positions never reach the loss, and NaN never reaches the
output.

``forward`` returns a :class:`TSHAEOutput` with the reconstruction and the
attention maps:

- ``temporal`` (B, C, N): share of attention each token of each channel receives;
- ``spatial`` (B, C, C): row c = how channel c attends to every channel;
- ``cross`` (B, C, N + 1): how much each channel attends to the event token of
  each patch (last column: the "no event" token).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pdm.model.attention import AttentionKind, TemporalAttention


@dataclass
class TSHAEConfig:
    """Hyperparameters of TSHAE (serialised in the model directory)."""

    channels: int
    context_channels: int = 0
    event_channels: int = 0
    window: int = 256  # time steps per model window
    patch: int = 8
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    ff_mult: int = 2
    attention: AttentionKind = "hybrid"
    attn_window: int = 16  # tokens per sliding-window block
    lsh_chunk: int = 16
    lsh_rounds: int = 2
    dropout: float = 0.1
    huber_delta: float = 1.0
    channel_names: list[str] = field(default_factory=list)
    #: How errors are scored: "modality" (imputation: each modality's channels
    #: hidden in turn, see :func:`impute_groups`), "vibration" (the vibration
    #: channels imputed from the rest; the other sensors reconstructed in the same
    #: pass, shown: one pass) or "reconstruct" (every channel seen; what models
    #: saved before this option was added did).
    scoring: str = "modality"

    def __post_init__(self) -> None:
        if self.scoring not in SCORING:
            raise ValueError(f"scoring must be one of {SCORING}, got {self.scoring!r}")
        if self.window % self.patch:
            raise ValueError(f"window ({self.window}) must be a multiple of patch ({self.patch})")
        if not 64 <= self.window <= 16_384:
            raise ValueError(f"window must be 64..16384 steps, got {self.window}")

    @property
    def tokens(self) -> int:
        return self.window // self.patch

    @property
    def groups(self) -> list[list[int]]:
        """Channel groups hidden together when scoring by imputation ([] = plain reconstruction)."""
        groups = self.train_groups
        return groups[:1] if self.scoring == "vibration" else groups  # [vibration, the rest] or []

    @property
    def train_groups(self) -> list[list[int]]:
        """Channel groups training hides in some windows, so that the model learns to impute each from the other.

        Both modalities with either imputing scoring: a model trained for "vibration" can be read by
        "modality" and back (its weights are the same kind), and both were measured on such weights.
        """
        return [] if self.scoring == "reconstruct" else impute_groups(self.channel_names)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TSHAEConfig:
        return cls(**{"scoring": "reconstruct", **d})  # a directory saved without it was trained to reconstruct


SCORING = ("reconstruct", "modality", "vibration")


def is_vibration(name: str) -> bool:
    """A vibration channel: pdm's ``vibration.*`` ids, or a name that says accelerometer (SKAB's ``Accelerometer1RMS``)."""
    return name.startswith("vibration.") or "accelerometer" in name.lower()


def group_members(groups: list[list[int]], channels: int) -> Tensor:
    """(G, C) 1 where channel c belongs to imputation group g."""
    member = torch.zeros(len(groups), channels)
    for g, idx in enumerate(groups):
        member[g, idx] = 1.0
    return member


def impute_groups(names: list[str]) -> list[list[int]]:
    """Vibration channels | the other sensors (temperatures, currents): the groups imputation hides in turn.

    Each group is reconstructed from the other and the context (speed, load,
    events, ambient temperature), never from itself: a level that the operating
    point and the other modality do not explain shows as error even when the
    autoencoder could copy it. Fewer than two non-empty groups: [] (nothing to
    impute from).
    """
    from pdm.detect.rootcause import is_environment

    shown = [is_environment(n) for n in names]  # the surroundings: an input, never hidden, no part of the score
    vib = [i for i, n in enumerate(names) if is_vibration(n) and not shown[i]]
    rest = [i for i, n in enumerate(names) if not is_vibration(n) and not shown[i]]
    groups = [g for g in (vib, rest) if g]
    return groups if len(groups) >= 2 else []


@dataclass
class TSHAEOutput:
    reconstruction: Tensor  # (B, C, T)
    temporal: Tensor | None = None  # (B, C, N)
    spatial: Tensor | None = None  # (B, C, C)
    cross: Tensor | None = None  # (B, C, N + 1)


class GatedFeedForward(nn.Module):
    """x + σ(W_g x) ⊙ FFN(x): a learned sigmoid gate decides, per token and feature, how much to update."""

    def __init__(self, d: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, d * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(d * mult, d))
        self.gate = nn.Linear(d, d)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        return x + torch.sigmoid(self.gate(h)) * self.ff(h)


class ChannelAttention(nn.Module):
    """Multi-head attention for the spatial and cross-modal steps, with its projections as ``nn.Linear``.

    The same function as ``nn.MultiheadAttention`` (batch first, weights averaged over heads),
    whose input projection is a bare parameter that dynamic int8 quantisation cannot reach
    (and whose output projection it skips by type): here the query and key/value projections
    and the output are linear layers, so :func:`pdm.model.edge.quantize` quantises them too.
    Directories saved with ``nn.MultiheadAttention``'s names load through
    :func:`upgrade_state_dict`.
    """

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model ({d}) must be divisible by heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.q_proj = nn.Linear(d, d)
        self.kv_proj = nn.Linear(d, 2 * d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: Tensor, kv: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, L, D) attends to kv (B, S, D) (``key_padding_mask`` (B, S): True = not attended).

        Returns the output (B, L, D) and, with ``need_weights``, the weights averaged over heads (B, L, S).
        """
        b, length, d = x.shape
        h = self.heads
        q = self.q_proj(x).view(b, length, h, d // h).transpose(1, 2)
        k, v = self.kv_proj(kv).view(b, kv.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        mask = None
        if key_padding_mask is not None:
            mask = torch.zeros(key_padding_mask.shape, dtype=q.dtype, device=q.device)
            mask = mask.masked_fill_(key_padding_mask, float("-inf"))[:, None, None, :]
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(d // h)
            w = torch.softmax(scores if mask is None else scores + mask, dim=-1)
            o = F.dropout(w, p, self.training) @ v
            weights = w.mean(dim=1)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out_proj(o.transpose(1, 2).reshape(b, length, d)), weights


def upgrade_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weights saved when the spatial and cross-modal steps were ``nn.MultiheadAttention``, renamed for
    :class:`ChannelAttention` (its packed input projection split into query and key/value); others unchanged."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        prefix, _, name = key.rpartition(".")
        if name in ("in_proj_weight", "in_proj_bias") and (".spatial" in prefix or ".cross" in prefix):
            kind = name.removeprefix("in_proj_")
            d = value.shape[0] // 3
            out[f"{prefix}.q_proj.{kind}"] = value[:d]
            out[f"{prefix}.kv_proj.{kind}"] = value[d:]
        else:
            out[key] = value
    return out


class _Layer(nn.Module):
    def __init__(self, cfg: TSHAEConfig, index: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm_t = nn.LayerNorm(d)
        self.temporal = TemporalAttention(d, cfg.heads, cfg.attention, window=cfg.attn_window, chunk=cfg.lsh_chunk,
                                          rounds=cfg.lsh_rounds, dropout=cfg.dropout, seed=index)
        self.ff_t = GatedFeedForward(d, cfg.ff_mult, cfg.dropout)
        self.norm_s = nn.LayerNorm(d)
        self.spatial = ChannelAttention(d, cfg.heads, cfg.dropout)
        self.ff_s = GatedFeedForward(d, cfg.ff_mult, cfg.dropout)
        self.norm_c = nn.LayerNorm(d)
        self.cross = ChannelAttention(d, cfg.heads, cfg.dropout)
        self.ff_c = GatedFeedForward(d, cfg.ff_mult, cfg.dropout)

    def forward(self, x: Tensor, events: Tensor, event_pad: Tensor, need: bool) -> tuple[Tensor, dict[str, Tensor]]:
        b, c, n, d = x.shape
        maps: dict[str, Tensor] = {}
        # 1. temporal, per channel
        h, rec = self.temporal(self.norm_t(x).reshape(b * c, n, d), need_weights=need)
        x = self.ff_t(x + h.view(b, c, n, d))
        if need and rec is not None:
            maps["temporal"] = rec.view(b, c, n)
        # 2. spatial, per time token
        xs = x.permute(0, 2, 1, 3).reshape(b * n, c, d)
        hs = self.norm_s(xs)
        h, w = self.spatial(hs, hs, need_weights=need)
        x = self.ff_s(x + h.view(b, n, c, d).permute(0, 2, 1, 3))
        if need and w is not None:
            maps["spatial"] = w.view(b, n, c, c).mean(dim=1)
        # 3. cross-modal: sensor tokens → event tokens
        xc = self.norm_c(x).reshape(b, c * n, d)
        h, w = self.cross(xc, events, key_padding_mask=event_pad, need_weights=need)
        x = self.ff_c(x + h.view(b, c, n, d))
        if need and w is not None:
            maps["cross"] = w.view(b, c, n, -1).mean(dim=2)
        return x, maps


class TSHAE(nn.Module):
    """The network; see the module docstring. Build it from a :class:`TSHAEConfig`."""

    def __init__(self, cfg: TSHAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        p, d = cfg.patch, cfg.d_model
        self.embed = nn.Linear(2 * p, d)  # a patch of values and its mask → a token
        self.context = nn.Linear(cfg.context_channels * p, d) if cfg.context_channels else None
        self.channel = nn.Parameter(torch.randn(cfg.channels, d) * 0.02)
        self.position: Tensor
        self.register_buffer("position", _sinusoid(cfg.tokens, d), persistent=False)
        self.event_embed = nn.Linear(max(cfg.event_channels, 1) * p, d)
        self.no_event = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.layers = nn.ModuleList(_Layer(cfg, i) for i in range(cfg.layers))
        self.norm = nn.LayerNorm(d)
        self.decode = nn.Linear(d, p)
        self.head_nf = d  # tsai's MVP looks for .head / .head_nf

    @property
    def head(self) -> nn.Module:
        return self.decode

    def forward(self, values: Tensor, mask: Tensor, context: Tensor | None = None, events: Tensor | None = None,
                need_maps: bool = False) -> TSHAEOutput:
        cfg = self.cfg
        b, c, t = values.shape
        if c != cfg.channels or t != cfg.window:
            raise ValueError(f"expected (B, {cfg.channels}, {cfg.window}), got {tuple(values.shape)}")
        p, n = cfg.patch, cfg.tokens
        observed = mask.to(values.dtype)
        values = torch.nan_to_num(values) * observed
        tokens = torch.cat([values.view(b, c, n, p), observed.view(b, c, n, p)], dim=-1)
        x = self.embed(tokens) + self.channel[None, :, None, :] + self.position[None, None, :, :]
        if self.context is not None and context is not None:
            ctx = torch.nan_to_num(context).view(b, cfg.context_channels, n, p).permute(0, 2, 1, 3).reshape(b, n, -1)
            x = x + self.context(ctx)[:, None, :, :]
        ev_tokens, ev_pad = self._event_tokens(events, b, n, values.dtype, values.device)
        if not need_maps:
            ev_tokens, ev_pad = _attended_only(ev_tokens, ev_pad)
        maps: dict[str, list[Tensor]] = {}
        for layer in self.layers:
            x, m = layer(x, ev_tokens, ev_pad, need_maps)
            for k, v in m.items():
                maps.setdefault(k, []).append(v)
        recon = self.decode(self.norm(x)).reshape(b, c, t)
        mean = {k: torch.stack(v).mean(dim=0) for k, v in maps.items()}
        return TSHAEOutput(recon, mean.get("temporal"), mean.get("spatial"), mean.get("cross"))

    def _event_tokens(self, events: Tensor | None, b: int, n: int, dtype: torch.dtype,
                      device: torch.device) -> tuple[Tensor, Tensor]:
        """One token per patch (masked where no event was logged) plus the "no event" token."""
        p, e = self.cfg.patch, max(self.cfg.event_channels, 1)
        if events is None or self.cfg.event_channels == 0:
            events = torch.zeros(b, e, n * p, dtype=dtype, device=device)
        ev = torch.nan_to_num(events).view(b, e, n, p).permute(0, 2, 1, 3).reshape(b, n, e * p)
        tokens = self.event_embed(ev) + self.position[None]
        pad = ev.abs().sum(dim=-1) == 0  # (b, n): patches without events are not attended
        tokens = torch.cat([tokens, self.no_event.expand(b, 1, -1)], dim=1)
        pad = torch.cat([pad, torch.zeros(b, 1, dtype=torch.bool, device=device)], dim=1)
        return tokens, pad


def _attended_only(tokens: Tensor, pad: Tensor) -> tuple[Tensor, Tensor]:
    """The event tokens that can be attended (a logged event, or "no event"), first, padded to the batch's most.

    A window holds a few logged events among its N patch slots, and a padded key gets zero weight,
    so dropping the slots no window of the batch attends leaves the output as it was and spares the
    cross-modal attention most of its keys. Not for the maps, whose columns are the N + 1 slots.
    """
    keep = int((~pad).sum(dim=1).max())
    if keep == pad.shape[1]:
        return tokens, pad
    order = torch.argsort(pad.to(torch.int8), dim=1, stable=True)[:, :keep]  # attended slots first, in order
    return tokens.gather(1, order[..., None].expand(-1, -1, tokens.shape[-1])), pad.gather(1, order)


def masked_huber(recon: Tensor, target: Tensor, mask: Tensor, delta: float = 1.0) -> Tensor:
    """Huber loss on observed values only (robust to outliers); 0 when nothing is observed."""
    observed = mask.bool() & torch.isfinite(target)
    if not observed.any():
        return recon.sum() * 0.0
    return F.huber_loss(recon[observed], target[observed], delta=delta)


def _sinusoid(n: int, d: int) -> Tensor:
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10_000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d // 2])
    return pe
