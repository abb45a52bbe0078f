"""Tensor layout moves every family shares, written once.

Video tensors are channel-first ``(B, C, T, H, W)``; transformer tokens are channel-last ``(B, T, h, w, D)``.
These helpers only move values (einops ``rearrange``/``repeat``: a permute, a reshape, an expand), never
compute with them, so swapping one in for a hand-written permute/reshape gives bit-identical results.
"""
from __future__ import annotations

from typing import Callable

import torch
from einops import rearrange, repeat

__all__ = ["fold_time", "unfold_time", "per_frame", "depth_to_time", "upsample_nearest_2x", "time_sequences",
           "from_time_sequences", "to_channels_first", "to_channels_last"]


def fold_time(x_bcthw: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W): every frame an image."""
    return rearrange(x_bcthw, "b c t h w -> (b t) c h w")


def unfold_time(x_nchw: torch.Tensor, b: int, t: int) -> torch.Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W), the inverse of :func:`fold_time`."""
    return rearrange(x_nchw, "(b t) c h w -> b c t h w", b=b, t=t)


def per_frame(fn: Callable[[torch.Tensor], torch.Tensor], x_bcthw: torch.Tensor) -> torch.Tensor:
    """Apply a 2D module to every frame: (B, C, T, H, W) -> (B, C', T, H', W')."""
    b, _, t, _, _ = x_bcthw.shape
    return unfold_time(fn(fold_time(x_bcthw)), b, t)


def depth_to_time(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    """(B, r*C, T, H, W) -> (B, C, r*T, H, W): channel block i becomes sub-frame i of every frame."""
    return rearrange(x, "b (r c) t h w -> b c (t r) h w", r=r)


def upsample_nearest_2x(x_bcthw: torch.Tensor) -> torch.Tensor:
    """Nearest x2 in space, every frame: (B, C, T, H, W) -> (B, C, T, 2H, 2W)."""
    return repeat(x_bcthw, "b c t h w -> b c t (h 2) (w 2)")


def time_sequences(tokens_bthwd: torch.Tensor) -> torch.Tensor:
    """(B, T, h, w, D) -> (B*h*w, T, D): one sequence over time per position (temporal attention, Q-Formers)."""
    return rearrange(tokens_bthwd, "b t h w d -> (b h w) t d")


def from_time_sequences(seq: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """(B*h*w, T, D) -> (B, T, h, w, D), the inverse of :func:`time_sequences`."""
    return rearrange(seq, "(b h w) t d -> b t h w d", b=b, h=h, w=w)


def to_channels_first(tokens: torch.Tensor) -> torch.Tensor:
    """(B, T, h, w, D) -> (B, D, T, h, w)."""
    return rearrange(tokens, "b t h w d -> b d t h w")


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, D, T, h, w) -> (B, T, h, w, D)."""
    return rearrange(x, "b d t h w -> b t h w d")
