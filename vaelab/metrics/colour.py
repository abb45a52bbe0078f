"""Colour fidelity: sRGB -> CIELAB, CIEDE2000, block and per-pixel colour difference, clip colour stats."""

from __future__ import annotations

import numpy as np

from ._common import _check, _frame_chunks

COLOUR_BLOCK = 8


# sRGB (linear) -> XYZ, D65; the same matrix and white point as skimage.color (rgb2xyz / xyz2lab).
_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) -> CIELAB (..., 3) float64 (L in [0, 100]), D65 2-degree observer."""
    rgb = np.asarray(rgb, dtype=np.float64)
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = lin @ _RGB_TO_XYZ.T / _D65_WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e_ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) between CIELAB arrays (..., 3)."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=np.float64), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=np.float64), -1, 0)
    c_bar = 0.5 * (np.hypot(a1, b1) + np.hypot(a2, b2))
    g = 0.5 * (1.0 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = a1 * (1.0 + g), a2 * (1.0 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    both = (c1p * c2p) != 0
    dhp = h2p - h1p
    dhp = np.where(dhp > 180.0, dhp - 360.0, np.where(dhp < -180.0, dhp + 360.0, dhp))
    dhp = np.where(both, dhp, 0.0)
    d_l, d_c = L2 - L1, c2p - c1p
    d_h = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dhp) / 2.0)
    l_bar, cp_bar = 0.5 * (L1 + L2), 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) > 180.0, np.where(h_sum < 360.0, h_sum + 360.0, h_sum - 360.0), h_sum
    ) / 2.0
    h_bar = np.where(both, h_bar, h_sum)
    t = (
        1.0
        - 0.17 * np.cos(np.radians(h_bar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * h_bar))
        + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    r_c = 2.0 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1.0 + 0.015 * (l_bar - 50.0) ** 2 / np.sqrt(20.0 + (l_bar - 50.0) ** 2)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c
    tl, tc, th = d_l / s_l, d_c / s_c, d_h / s_h
    return np.sqrt(np.maximum(tl**2 + tc**2 + th**2 + r_t * tc * th, 0.0))


def _block_means(clip: np.ndarray, block: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H // block, W // block, 3) float64 in [0, 1]."""
    t, h, w, _ = clip.shape
    hb, wb = h // block, w // block
    if hb == 0 or wb == 0:
        raise ValueError(f"colour blocks need frames of at least {block}x{block} px, got {h}x{w}")
    x = clip[:, : hb * block, : wb * block].astype(np.float64) / 255.0
    return x.reshape(t, hb, block, wb, block, 3).mean(axis=(2, 4))


def lab_blocks(clip: np.ndarray, block: int = COLOUR_BLOCK) -> np.ndarray:
    """CIELAB of the ``block``x``block`` block means of each frame: (T, H // block, W // block, 3) float64."""
    return rgb_to_lab(_block_means(clip, block))


def delta_e_blocks(ref: np.ndarray, rec: np.ndarray, block: int = COLOUR_BLOCK,
                   ref_lab: np.ndarray | None = None) -> np.ndarray:
    """CIEDE2000 between ``block``x``block`` block means of each frame: (T, H // block, W // block).
    ``ref_lab``: ``lab_blocks(ref, block)`` already computed (several reconstructions of one clip)."""
    _check(ref, rec)
    return delta_e_ciede2000(lab_blocks(ref, block) if ref_lab is None else ref_lab, lab_blocks(rec, block))


def delta_e_map(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 colour difference, (T, H, W) float32 (the colour-error heatmap)."""
    _check(ref, rec)
    out = np.empty(ref.shape[:3], dtype=np.float32)
    for sl in _frame_chunks(ref):
        out[sl] = delta_e_ciede2000(rgb_to_lab(ref[sl] / 255.0), rgb_to_lab(rec[sl] / 255.0))
    return out


def colour_stats(ref: np.ndarray, rec: np.ndarray, block: int = COLOUR_BLOCK,
                 ref_lab: np.ndarray | None = None) -> dict:
    """Clip colour fidelity: ``delta_e_mean``, ``delta_e_p95`` (over blocks and frames), ``delta_e`` per frame."""
    de = delta_e_blocks(ref, rec, block, ref_lab)
    flat = de.reshape(len(de), -1)
    return {
        "delta_e_mean": float(flat.mean()),
        "delta_e_p95": float(np.percentile(flat, 95)),
        "delta_e": [float(v) for v in flat.mean(axis=1)],
    }
