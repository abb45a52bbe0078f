"""Every metric of the package, one home each (no plotting).

Submodules, by what they measure:

* :mod:`.pixel`     PSNR (:func:`psnr_from_mse` is the one PSNR formula), SSIM, LPIPS, error maps
* :mod:`.temporal`  frame-to-frame flicker, PSNR by position inside temporal groups
* :mod:`.colour`    sRGB -> CIELAB, CIEDE2000, block / per-pixel colour difference, clip colour stats
* :mod:`.latent`    latent-distribution: per-channel moments, Fréchet and sliced Wasserstein distances
* :mod:`.seam`      the tile/chunk seam score

Clip metrics take uint8 RGB clips shaped ``(T, H, W, 3)``: a reference clip and its reconstruction of the
same shape. Metrics are computed on the decoded arrays, never on a re-encoded video file.
:data:`CONVENTIONS` documents every choice and is meant to be shown next to the numbers (UI / JSON export).
:func:`clip_metrics` is what a request computes per model. Every public name is re-exported here
(``from vaelab.metrics import clip_metrics, psnr_per_frame, ...``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .colour import (
    CHROMA_MIN,
    COLOUR_BLOCK,
    HUE_CLASSES,
    chroma_and_hue,
    colour_stats,
    delta_e_blocks,
    delta_e_ciede2000,
    delta_e_map,
    hue_classes,
    lab_blocks,
    rgb_to_lab,
)
from .latent import frechet_distance, sliced_wasserstein, vector_stats
from .pixel import (
    PSNR_CAP,
    SSIMReference,
    error_maps,
    lpips_per_frame,
    lpips_status,
    pooled_psnr,
    psnr_from_mse,
    psnr_per_frame,
    ssim_per_frame,
)
from .seam import border_jump_ratio
from .temporal import GROUP_POSITIONS, psnr_by_group_position, temporal_flicker

CONVENTIONS: dict[str, str] = {
    "psnr": (
        "per frame on uint8 RGB, data range 255, MSE over H,W,C; clip PSNR = mean of per-frame "
        f"PSNR; 'pooled_psnr' = one MSE over all frames (TokenBench convention); values are "
        f"capped at {PSNR_CAP:g} dB (identical frames give {PSNR_CAP:g}, not inf)"
    ),
    "ssim": (
        "per frame, Gaussian window sigma=1.5 (11x11), K1=0.01, K2=0.03, data range 255, "
        "population covariance, borders of 5 px excluded, on each RGB channel then averaged "
        "(matches skimage structural_similarity(gaussian_weights=True, sigma=1.5, "
        "use_sample_covariance=False, data_range=255, channel_axis=-1)); computed in float32 on values "
        "centred at 127.5, within 1e-6 of skimage's float64"
    ),
    "lpips": (
        "AlexNet LPIPS v0.1 (lpips package), inputs scaled to [-1,1], per frame; null when the "
        "backbone weights are not in the torch hub cache"
    ),
    "error_map": "per-pixel mean absolute error over RGB in [0,255]",
    "temporal_flicker": (
        "per frame mean absolute change from the previous frame over H,W,C in [0,255]; "
        "frame 0 is 0"
    ),
    "clip_means": "psnr_mean / ssim_mean / lpips_mean are plain means over frames",
    "delta_e": (
        f"CIEDE2000 colour difference (kL=kC=kH=1) between the {COLOUR_BLOCK}x{COLOUR_BLOCK} block means "
        "of input and reconstruction, sRGB (IEC 61966-2-1) -> CIELAB with the D65 2-degree white point "
        "(as skimage.color.rgb2lab); delta_e_mean / delta_e_p95 = mean / 95th percentile over all blocks "
        "of all frames; partial blocks at the right/bottom edge are left out; 1 is about a just-noticeable "
        "difference, > 5 a clearly different colour"
    ),
    "chroma_ratio": (
        "mean CIELAB chroma (C_ab = hypot(a, b)) of the reconstruction's colour blocks over the input's: 1 = as "
        "colourful, 0 = grey; null when the input is grey (mean C_ab < 1)"
    ),
    "hue_shift_deg": (
        f"circular mean of the CIELAB hue-angle change (reconstruction minus input, degrees) over the input's "
        f"colour blocks with C_ab >= {CHROMA_MIN:g}, weighted by the smaller of the two chromas; positive = "
        "counter-clockwise in the (a, b) plane (e.g. red -> yellow -> green); null without a colourful block"
    ),
}


@dataclass
class ClipMetrics:
    """Per-frame metric lists (length T) and clip summaries; ``lpips*`` None if unavailable."""

    psnr: list[float]
    ssim: list[float]
    lpips: list[float] | None
    psnr_mean: float
    pooled_psnr: float
    ssim_mean: float
    lpips_mean: float | None
    delta_e: list[float]
    delta_e_mean: float
    delta_e_p95: float
    chroma_ratio: float | None = None
    hue_shift_deg: float | None = None

    def to_dict(self) -> dict:
        """JSON-safe dict (floats, lists of floats, None)."""
        return asdict(self)


class ClipReference:
    """What every metric needs of one input clip, computed once: scoring the nine reconstructions of a request
    against it then filters the input for SSIM and converts its colour blocks to CIELAB once, not nine times."""

    def __init__(self, ref: np.ndarray):
        self.ref = ref
        self.ssim = SSIMReference(ref)
        self.lab = lab_blocks(ref)


def clip_metrics(
    ref: np.ndarray, rec: np.ndarray, *, with_lpips: bool = True, device: str = "cpu",
    reference: ClipReference | None = None,
) -> ClipMetrics:
    """All per-frame metrics and their clip summaries for one (ref, rec) pair. ``reference``: a
    :class:`ClipReference` of ``ref`` (the same numbers, computed faster for many reconstructions of one clip)."""
    if reference is not None and reference.ref is not ref:
        raise ValueError("clip_metrics: the ClipReference was made for another clip")
    psnr = psnr_per_frame(ref, rec)
    ssim = ssim_per_frame(ref, rec, reference.ssim if reference else None)
    lp = lpips_per_frame(ref, rec, device=device) if with_lpips else None
    colour = colour_stats(ref, rec, ref_lab=reference.lab if reference else None)
    return ClipMetrics(
        psnr=[float(v) for v in psnr],
        ssim=[float(v) for v in ssim],
        lpips=None if lp is None else [float(v) for v in lp],
        psnr_mean=float(psnr.mean()),
        pooled_psnr=pooled_psnr(ref, rec),
        ssim_mean=float(ssim.mean()),
        lpips_mean=None if lp is None else float(lp.mean()),
        **colour,
    )


__all__ = ["CHROMA_MIN", "COLOUR_BLOCK", "HUE_CLASSES", "chroma_and_hue", "hue_classes", "CONVENTIONS", "GROUP_POSITIONS", "PSNR_CAP", "ClipMetrics", "ClipReference", "SSIMReference", "border_jump_ratio",
           "clip_metrics", "colour_stats", "delta_e_blocks", "delta_e_ciede2000", "delta_e_map", "error_maps",
           "frechet_distance", "lab_blocks", "lpips_per_frame", "lpips_status", "pooled_psnr", "psnr_by_group_position",
           "psnr_from_mse", "psnr_per_frame", "rgb_to_lab", "sliced_wasserstein", "ssim_per_frame",
           "temporal_flicker", "vector_stats"]
