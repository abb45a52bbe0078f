"""Temporal metrics: frame-to-frame flicker, and PSNR by position inside the temporal groups of a causal VAE."""

from __future__ import annotations

import numpy as np


def temporal_flicker(clip: np.ndarray) -> np.ndarray:
    """Mean absolute frame-to-frame change, shape (T,) float64 in [0, 255]; first is 0.

    ``clip`` is (T, H, W, C) uint8. Compare the curve of the input with that of a
    reconstruction to see added (or removed) temporal flicker.
    """
    if clip.ndim != 4:
        raise ValueError(f"expected (T, H, W, C) clip, got {clip.shape}")
    out = np.zeros(clip.shape[0], dtype=np.float64)
    for t in range(1, clip.shape[0]):
        out[t] = np.abs(clip[t].astype(np.int16) - clip[t - 1]).mean()
    return out


GROUP_POSITIONS = ("frame 0", "1st", "2nd", "3rd", "4th")


def psnr_by_group_position(psnr: list[float] | np.ndarray, group: int = 4) -> dict[str, float]:
    """Mean per-frame PSNR by position inside the 1 + 4k temporal groups of a causal video VAE.

    Frame 0 is coded alone; frame t >= 1 sits at position ``(t - 1) % group`` of its group. A plain causal
    VAE gives the first frames of a group less context (lower PSNR there); IV-VAE's group-causal design
    aims to even this out. Positions with no frame are left out.
    """
    psnr = np.asarray(psnr, dtype=np.float64)
    out = {GROUP_POSITIONS[0]: float(psnr[0])} if len(psnr) else {}
    for pos in range(group):
        vals = psnr[1 + pos::group]
        if len(vals):
            out[GROUP_POSITIONS[1 + pos] if pos < 4 else f"{pos + 1}th"] = float(vals.mean())
    return out
