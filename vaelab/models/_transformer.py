"""Transformer pieces shared by the token-based video VAEs (VidTwin, HVDM).

Everything works on channels-last token grids ``(B, T, h, w, D)`` made by a (1, p, p) patch
embedding, and carries **no fixed-size position table**: positions enter through rotary
embeddings (RoPE) computed on the fly for whatever grid arrives, so the same weights run at any
clip length and frame size. RoPE is relative (the attention score between two tokens depends on
their offset, not on where they sit), which is what lets a model trained on 16x64x64 clips run
on 8x48x80 ones without interpolating any table.

    PatchEmbed3d      (B, 3, T, H, W) -> (B, T, H/p, W/p, D)           Conv3d (1, p, p), stride (1, p, p)
    Unpatchify        (B, T, h, w, D) -> (B, 3, T, h*p, w*p)            LayerNorm, Linear D -> 3*p*p, pixel shuffle
    Attention         self- or cross-attention, keys and values may come from different tensors
                      (HVDM fuses with q = triplane, k = low band, v = high bands), optional RoPE,
                      optional causal mask, optional returned weights (VidTwin's Q-Former maps)
    FactorisedBlock   divided space-time attention (TimeSformer / VidTwin's ST-Transformer):
                      spatial attention inside each frame over h*w tokens (2D axial RoPE),
                      temporal attention at each position over T tokens (1D RoPE, optionally causal),
                      then an MLP; pre-LayerNorm residual branches.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import Conv3d
from .layout import from_time_sequences, time_sequences, to_channels_last

# --- rotary position embeddings ---------------------------------------------------------------------

def rope_angles(pos: torch.Tensor, dim: int, base: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (N, dim/2) for float positions ``pos`` (N,). ``base`` 100 suits grids of a few dozen tokens."""
    freqs = base ** (-torch.arange(0, dim, 2, device=pos.device, dtype=torch.float32) / dim)
    ang = pos.float()[:, None] * freqs[None]
    return ang.cos(), ang.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate feature pairs (first half, second half) of the last axis by the given angles."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def apply_rope(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    """RoPE on ``x`` (..., N, d). ``pos`` (N,) rotates all d dims by one axis; ``pos`` (N, 2) is axial 2D:
    the first d/2 dims follow axis 0 (rows), the last d/2 axis 1 (columns). ``None``: unchanged."""
    if pos is None:
        return x
    d = x.shape[-1]
    if pos.ndim == 1:
        return _rotate(x, *rope_angles(pos, d))
    half = d // 2
    a = _rotate(x[..., :half], *rope_angles(pos[:, 0], half))
    b = _rotate(x[..., half:], *rope_angles(pos[:, 1], half))
    return torch.cat([a, b], dim=-1)


def grid_positions(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """(h*w, 2) row/column indices in raster order, for axial 2D RoPE."""
    yy, xx = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([yy.flatten(), xx.flatten()], 1)


def frame_times(n: int, device: torch.device | None = None) -> torch.Tensor:
    """(n,) float32 normalised frame times tau = (f + 1/2) / n in (0, 1): "early", "middle", "late" for any length."""
    return (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n


def fourier_time(n: int, dim: int = 16, device: torch.device | None = None) -> torch.Tensor:
    """(n, dim) features of the *normalised* frame time tau (:func:`frame_times`): sin/cos(pi k tau), k = 1..dim/2.

    Being a function of tau rather than of the frame index, it gives the same meaning ("early",
    "middle", "late") to frames of clips of any length."""
    tau = frame_times(n, device)
    k = torch.arange(1, dim // 2 + 1, device=device, dtype=torch.float32)
    ang = math.pi * tau[:, None] * k[None]
    return torch.cat([ang.sin(), ang.cos()], 1)


# --- attention ----------------------------------------------------------------------------------------

class Attention(nn.Module):
    """Multi-head attention: ``q_in`` (N, Lq, dim), ``k_in`` (N, Lk, kv_dim) (default ``q_in``),
    ``v_in`` (N, Lk, kv_dim) (default ``k_in``).

    Separate key and value inputs let a fusion layer read *where to look* from one feature map and
    *what to copy* from another. ``q_pos``/``k_pos`` are RoPE positions ((L,) or (L, 2)); ``causal``
    masks keys later than the query (self-attention only). With ``need_weights`` it also returns
    the head-averaged attention probabilities (N, Lq, Lk), rows summing to 1. ``bias`` is added to the
    attention logits (broadcast to (N, heads, Lq, Lk); not combined with ``causal``).
    """

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        kv_dim = kv_dim or dim
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(kv_dim, dim)
        self.to_v = nn.Linear(kv_dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, l, d = x.shape
        return x.reshape(n, l, self.heads, d // self.heads).transpose(1, 2)  # (N, heads, L, dh)

    def forward(self, q_in: torch.Tensor, k_in: torch.Tensor | None = None, v_in: torch.Tensor | None = None, *,
                q_pos: torch.Tensor | None = None, k_pos: torch.Tensor | None = None, causal: bool = False,
                need_weights: bool = False, bias: torch.Tensor | None = None):
        if causal and bias is not None:
            raise ValueError("an attention bias and the causal mask cannot be combined")
        k_in = q_in if k_in is None else k_in
        v_in = k_in if v_in is None else v_in
        q = apply_rope(self._split(self.to_q(q_in)), q_pos)
        k = apply_rope(self._split(self.to_k(k_in)), k_pos)
        v = self._split(self.to_v(v_in))
        if need_weights:
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            if bias is not None:
                scores = scores + bias.to(scores.dtype)
            if causal:
                lq, lk = scores.shape[-2:]
                later = torch.ones(lq, lk, dtype=torch.bool, device=q.device).triu(1)
                scores = scores.masked_fill(later, float("-inf"))
            probs = scores.float().softmax(-1).to(v.dtype)  # softmax in float32 under autocast
            out = probs @ v
        else:
            mask = None if bias is None else bias.to(q.dtype)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
            probs = None
        n, _, lq, _ = out.shape
        out = self.to_out(out.transpose(1, 2).reshape(n, lq, -1))
        return (out, probs.mean(1)) if need_weights else out


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__(nn.Linear(dim, dim * mult), nn.GELU(), nn.Linear(dim * mult, dim))


class FactorisedBlock(nn.Module):
    """Divided space-time attention on (B, T, h, w, D) tokens, then an MLP.

    ``order="space-time"`` (VidTwin's ST-Transformer) or ``"time-space"`` (TimeSformer, HVDM).
    Spatial attention: each frame's h*w tokens attend to each other (axial 2D RoPE over rows/cols).
    Temporal attention: each position's T tokens attend along time (1D RoPE; ``causal_time``
    restricts frame t to frames <= t, as VidTwin's ``temporal_casual``).
    """

    def __init__(self, dim: int, heads: int, order: str = "space-time", causal_time: bool = False, mlp_mult: int = 4):
        super().__init__()
        if order not in ("space-time", "time-space"):
            raise ValueError(f"order must be 'space-time' or 'time-space', not {order!r}")
        self.order, self.causal_time = order, causal_time
        self.norm_s, self.attn_s = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm_t, self.attn_t = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm_mlp, self.mlp = nn.LayerNorm(dim), FeedForward(dim, mlp_mult)

    def _space(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, d = x.shape
        seq = self.norm_s(x).reshape(b * t, h * w, d)
        pos = grid_positions(h, w, x.device)
        return x + self.attn_s(seq, q_pos=pos, k_pos=pos).reshape(b, t, h, w, d)

    def _time(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, d = x.shape
        seq = time_sequences(self.norm_t(x))
        pos = torch.arange(t, device=x.device)
        out = self.attn_t(seq, q_pos=pos, k_pos=pos, causal=self.causal_time)
        return x + from_time_sequences(out, b, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._space(self._time(x)) if self.order == "time-space" else self._time(self._space(x))
        return x + self.mlp(self.norm_mlp(x))


class STTransformer(nn.Module):
    """A stack of :class:`FactorisedBlock` with a final LayerNorm. (B, T, h, w, D) -> same."""

    def __init__(self, dim: int, depth: int, heads: int, order: str = "space-time", causal_time: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(FactorisedBlock(dim, heads, order, causal_time) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


# --- patches --------------------------------------------------------------------------------------

class PatchEmbed3d(nn.Module):
    """(B, 3, T, H, W) -> tokens (B, T, H/p, W/p, D); H and W must be multiples of p."""

    def __init__(self, patch: int, dim: int, in_channels: int = 3):
        super().__init__()
        self.patch = patch
        self.proj = Conv3d(in_channels, dim, (1, patch, patch), stride=(1, patch, patch))

    def forward(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        h, w = x_bcthw.shape[-2:]
        if h % self.patch or w % self.patch:
            raise ValueError(f"frame size {h}x{w} must be a multiple of the patch size {self.patch} "
                             "(reconstruct() pads for you)")
        return to_channels_last(self.proj(x_bcthw))


class Unpatchify(nn.Module):
    """tokens (B, T, h, w, D) -> pixels (B, C, T, h*p, w*p): LayerNorm, Linear D -> C*p*p, then a pixel shuffle
    (the same map as a ConvTranspose2d with kernel = stride = p, applied per frame)."""

    def __init__(self, dim: int, patch: int, out_channels: int = 3):
        super().__init__()
        self.patch, self.out_channels = patch, out_channels
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, out_channels * patch * patch)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, t, h, w, _ = tokens.shape
        p, c = self.patch, self.out_channels
        y = self.proj(self.norm(tokens)).reshape(b, t, h, w, c, p, p)
        return y.permute(0, 4, 1, 2, 5, 3, 6).reshape(b, c, t, h * p, w * p)

    @property
    def weight(self) -> torch.Tensor:
        return self.proj.weight


def fixed_chunks(t: int, size: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of consecutive chunks of ``size`` frames (the last one may be shorter)."""
    return [(a, min(a + size, t)) for a in range(0, max(t, 1), size)]


def centre_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Crop the last two axes of ``x`` to (h, w) around the centre (VidTwin's decoder, after x2 up-sampling)."""
    hh, ww = x.shape[-2:]
    top, left = (hh - h) // 2, (ww - w) // 2
    return x[..., top:top + h, left:left + w]
