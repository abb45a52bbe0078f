"""Colour fidelity: sRGB -> CIELAB, CIEDE2000, block and per-pixel colour difference, clip colour stats."""

from __future__ import annotations

import numpy as np

from ._common import _check, _frame_chunks

COLOUR_BLOCK = 8
CHROMA_MIN = 10.0  # C*ab a block of the input needs for its hue to count in the hue shift (10: a clear colour)


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


def chroma_and_hue(ref_lab: np.ndarray, rec_lab: np.ndarray) -> dict:
    """Two numbers that name what Delta E alone does not: is the colour lost (greyed) or turned (another hue)?

    ``chroma_ratio``: mean CIELAB chroma C*ab = hypot(a*, b*) of the reconstruction's blocks over the input's
    (1 = as colourful, 0 = grey; None when the input is itself grey, mean C*ab < 1). ``hue_shift_deg``: the
    circular mean of the hue-angle change h_ab(rec) - h_ab(ref) in degrees over the input's colourful blocks
    (C*ab >= ``CHROMA_MIN``), each weighted by min(C*ab in, C*ab out) so a greyed block, whose hue is
    undefined, does not count; positive = counter-clockwise in the a*b* plane (green -> cyan -> blue -> magenta
    -> red -> yellow -> green); None without a colourful block."""
    c_ref, c_rec = np.hypot(ref_lab[..., 1], ref_lab[..., 2]), np.hypot(rec_lab[..., 1], rec_lab[..., 2])
    mean_ref = float(c_ref.mean())
    ratio = float(c_rec.mean()) / mean_ref if mean_ref >= 1.0 else None
    sel = c_ref >= CHROMA_MIN
    w = np.minimum(c_ref, c_rec)[sel]
    shift = None
    if sel.any() and w.sum() > 1e-6:
        d = (np.arctan2(rec_lab[..., 2], rec_lab[..., 1]) - np.arctan2(ref_lab[..., 2], ref_lab[..., 1]))[sel]
        shift = float(np.degrees(np.arctan2((w * np.sin(d)).sum(), (w * np.cos(d)).sum())))
    return {"chroma_ratio": ratio, "hue_shift_deg": shift}


# Input blocks by what they show, from their CIELAB (L*, C*ab, h_ab in degrees) alone: coarse, stated ranges, so a
# "foliage turned yellow" or "sky lost its blue" claim has a number. A block may be in no class.
HUE_CLASSES = {
    "foliage": {"hue": (95.0, 170.0), "chroma": (12.0, 200.0), "lightness": (10.0, 95.0)},  # yellow-green .. green
    "sky": {"hue": (200.0, 290.0), "chroma": (8.0, 200.0), "lightness": (40.0, 100.0)},  # cyan-blue .. blue, light
    "skin": {"hue": (25.0, 80.0), "chroma": (10.0, 45.0), "lightness": (30.0, 90.0)},  # orange-red .. yellow, muted
}


def hue_classes(ref_lab: np.ndarray, rec_lab: np.ndarray) -> dict[str, dict]:
    """:func:`chroma_and_hue` restricted to the input blocks of each of :data:`HUE_CLASSES`, with their count:
    ``{class: {"blocks": n, "chroma_ratio": r, "hue_shift_deg": d}}`` (ratio and shift None with no block)."""
    L = ref_lab[..., 0]
    c = np.hypot(ref_lab[..., 1], ref_lab[..., 2])
    h = np.degrees(np.arctan2(ref_lab[..., 2], ref_lab[..., 1])) % 360.0
    out = {}
    for name, r in HUE_CLASSES.items():
        sel = ((h >= r["hue"][0]) & (h < r["hue"][1]) & (c >= r["chroma"][0]) & (c <= r["chroma"][1])
               & (L >= r["lightness"][0]) & (L <= r["lightness"][1]))
        n = int(sel.sum())
        stats = chroma_and_hue(ref_lab[sel], rec_lab[sel]) if n else {"chroma_ratio": None, "hue_shift_deg": None}
        out[name] = {"blocks": n, **stats}
    return out


def colour_stats(ref: np.ndarray, rec: np.ndarray, block: int = COLOUR_BLOCK,
                 ref_lab: np.ndarray | None = None) -> dict:
    """Clip colour fidelity: ``delta_e_mean``, ``delta_e_p95`` (over blocks and frames), ``delta_e`` per frame,
    and :func:`chroma_and_hue` of the same blocks (``chroma_ratio``, ``hue_shift_deg``)."""
    _check(ref, rec)
    ref_lab = lab_blocks(ref, block) if ref_lab is None else ref_lab
    rec_lab = lab_blocks(rec, block)
    de = delta_e_ciede2000(ref_lab, rec_lab)
    flat = de.reshape(len(de), -1)
    return {
        "delta_e_mean": float(flat.mean()),
        "delta_e_p95": float(np.percentile(flat, 95)),
        "delta_e": [float(v) for v in flat.mean(axis=1)],
        **chroma_and_hue(ref_lab, rec_lab),
    }
