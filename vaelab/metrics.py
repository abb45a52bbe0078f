"""Reconstruction metrics on decoded clips (no plotting).

All functions take uint8 RGB clips shaped ``(T, H, W, 3)``: a reference clip and its
reconstruction of the same shape. Metrics are computed on the decoded arrays, never on a
re-encoded video file. :data:`CONVENTIONS` documents every choice and is meant to be shown
next to the numbers (UI / JSON export).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import asdict, dataclass

import numpy as np

PSNR_CAP = 100.0
COLOUR_BLOCK = 8

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
        "use_sample_covariance=False, data_range=255, channel_axis=-1))"
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
}

# Frames are processed in chunks of about this many float64 values per array, so that a
# long high-resolution clip does not allocate several (T,H,W,3) float64 copies at once.
_CHUNK_VALUES = 1 << 22


def _check(ref: np.ndarray, rec: np.ndarray) -> None:
    if ref.shape != rec.shape:
        raise ValueError(f"shape mismatch: ref {ref.shape} vs rec {rec.shape}")
    if ref.ndim != 4 or ref.shape[-1] != 3 or ref.shape[0] == 0:
        raise ValueError(f"expected non-empty (T, H, W, 3) clips, got {ref.shape}")
    if ref.dtype != np.uint8 or rec.dtype != np.uint8:
        raise ValueError(f"expected uint8 clips, got {ref.dtype} and {rec.dtype}")


def _frame_chunks(clip: np.ndarray):
    """Yield slices over the first axis holding about ``_CHUNK_VALUES`` values each."""
    step = max(1, _CHUNK_VALUES // max(1, int(np.prod(clip.shape[1:]))))
    for start in range(0, clip.shape[0], step):
        yield slice(start, start + step)


def _mse_to_psnr(mse: np.ndarray | float) -> np.ndarray:
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(255.0**2 / mse)
    return np.minimum(psnr, PSNR_CAP)


def _frame_mse(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """(T,) MSE per frame over H, W, C, in float64."""
    out = np.empty(ref.shape[0], dtype=np.float64)
    for s in _frame_chunks(ref):
        d = ref[s].astype(np.float64) - rec[s]
        out[s] = np.mean(d * d, axis=(1, 2, 3))
    return out


def psnr_per_frame(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """PSNR (dB) of each frame, shape (T,) float64, capped at :data:`PSNR_CAP`."""
    _check(ref, rec)
    return _mse_to_psnr(_frame_mse(ref, rec))


def pooled_psnr(ref: np.ndarray, rec: np.ndarray) -> float:
    """PSNR (dB) of one MSE pooled over all frames (TokenBench convention), capped."""
    _check(ref, rec)
    return float(_mse_to_psnr(_frame_mse(ref, rec).mean()))


# --- SSIM -------------------------------------------------------------------------------

_SSIM_SIGMA, _SSIM_RADIUS = 1.5, 5  # radius = int(3.5 * sigma + 0.5), as skimage/ndimage
_SSIM_C1, _SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _gauss_kernel() -> np.ndarray:
    x = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / _SSIM_SIGMA) ** 2)
    return k / k.sum()


def _filter_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of (N, H, W, C) over H and W -> (N, H-2r, W-2r, C)."""
    n = len(k) - 1
    h, w = x.shape[1] - n, x.shape[2] - n
    rows = sum(k[i] * x[:, i : i + h] for i in range(len(k)))
    return sum(k[i] * rows[:, :, i : i + w] for i in range(len(k)))


def ssim_per_frame(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """SSIM of each frame, shape (T,) float64 (see ``CONVENTIONS['ssim']``).

    Filtering only the interior ('valid') is exactly skimage's full-image Gaussian filter
    followed by cropping ``(win_size - 1) // 2 = 5`` px from each border.
    """
    _check(ref, rec)
    win = 2 * _SSIM_RADIUS + 1
    if min(ref.shape[1:3]) < win:
        raise ValueError(f"SSIM needs frames of at least {win}x{win}, got {ref.shape[1:3]}")
    k = _gauss_kernel()
    out = np.empty(ref.shape[0], dtype=np.float64)
    for s in _frame_chunks(ref):
        x, y = ref[s].astype(np.float64), rec[s].astype(np.float64)
        ux, uy = _filter_valid(x, k), _filter_valid(y, k)
        vx = _filter_valid(x * x, k) - ux * ux
        vy = _filter_valid(y * y, k) - uy * uy
        vxy = _filter_valid(x * y, k) - ux * uy
        num = (2 * ux * uy + _SSIM_C1) * (2 * vxy + _SSIM_C2)
        den = (ux * ux + uy * uy + _SSIM_C1) * (vx + vy + _SSIM_C2)
        out[s] = (num / den).mean(axis=(1, 2, 3))  # mean over pixels == mean over channels
    return out


# --- pixel maps -------------------------------------------------------------------------


def error_maps(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """Per-pixel mean absolute error over RGB, shape (T, H, W) float32 in [0, 255]."""
    _check(ref, rec)
    diff = np.abs(ref.astype(np.int16) - rec.astype(np.int16))
    return diff.mean(axis=-1, dtype=np.float32)


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


# --- LPIPS ------------------------------------------------------------------------------

_LPIPS_LOCK = threading.Lock()
_LPIPS_MODELS: dict[tuple[str, str], object] = {}


def _alexnet_backbone_path() -> str:
    """Path where torchvision caches the ImageNet AlexNet weights (may not exist)."""
    import torch
    from torchvision.models import AlexNet_Weights

    name = os.path.basename(AlexNet_Weights.IMAGENET1K_V1.url)  # alexnet-owt-7be5be79.pth
    return os.path.join(torch.hub.get_dir(), "checkpoints", name)


def _lpips_linear_path() -> str | None:
    """Path of the LPIPS v0.1 AlexNet linear layers shipped inside the lpips package."""
    try:
        import lpips
    except ImportError:
        return None
    return os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "alex.pth")


def lpips_status() -> tuple[bool, str]:
    """(available, message). Only looks at files; never downloads anything."""
    lin = _lpips_linear_path()
    if lin is None:
        return False, "LPIPS unavailable: the lpips package is not installed"
    if not os.path.isfile(lin):
        return False, f"LPIPS unavailable: lpips linear weights missing ({lin})"
    backbone = _alexnet_backbone_path()
    if not os.path.isfile(backbone):
        from . import lpips_fetch

        fetch = lpips_fetch.status()
        if fetch.state == "downloading":
            return False, "LPIPS: downloading the AlexNet backbone (started at start-up; numbers follow once it is in)"
        where = os.path.dirname(backbone)
        why = f" ({fetch.reason})" if fetch.state == "failed" else ""
        return False, f"LPIPS unavailable: AlexNet backbone not found in {where}{why} (see README 'LPIPS')"
    return True, f"LPIPS available: AlexNet LPIPS v0.1, backbone {backbone}"


def _build_lpips(backbone: str, device: str):
    """lpips.LPIPS(net='alex') with its trunk loaded from ``backbone``; no network access.

    The trunk is built random (``pnet_rand=True``, so torchvision downloads nothing) and the
    ImageNet ``features.*`` weights are copied in from the cached torchvision file.
    """
    import lpips
    import torch

    with warnings.catch_warnings():  # lpips uses torchvision's deprecated `pretrained=`
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    sd = torch.load(backbone, map_location="cpu", weights_only=True)
    # lpips splits alexnet.features into slice1..5 that keep the original layer indices.
    trunk = {
        f"{slice_name}.{key}": sd[f"features.{key}"]
        for slice_name, block in model.net.named_children()
        for key in block.state_dict()
    }
    model.net.load_state_dict(trunk, strict=True)
    return model.eval().requires_grad_(False).to(device)


def _get_lpips(device: str):
    key = (str(device), _alexnet_backbone_path())
    with _LPIPS_LOCK:
        if key not in _LPIPS_MODELS:
            _LPIPS_MODELS[key] = _build_lpips(key[1], key[0])
        return _LPIPS_MODELS[key]


def lpips_per_frame(
    ref: np.ndarray, rec: np.ndarray, device: str = "cpu", batch: int = 8
) -> np.ndarray | None:
    """AlexNet LPIPS v0.1 of each frame, shape (T,) float64; None when unavailable."""
    _check(ref, rec)
    if not lpips_status()[0]:
        return None
    import torch

    model = _get_lpips(device)

    def to_tensor(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(0, 3, 1, 2)
        return t.float() / 127.5 - 1.0

    out = []
    with torch.inference_mode():
        for i in range(0, ref.shape[0], batch):
            d = model(to_tensor(ref[i : i + batch]), to_tensor(rec[i : i + batch]))
            out.append(d.flatten().double().cpu().numpy())
    return np.concatenate(out)


# --- colour (CIELAB) ----------------------------------------------------------------------

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


def delta_e_blocks(ref: np.ndarray, rec: np.ndarray, block: int = COLOUR_BLOCK) -> np.ndarray:
    """CIEDE2000 between ``block``x``block`` block means of each frame: (T, H // block, W // block)."""
    _check(ref, rec)
    return delta_e_ciede2000(rgb_to_lab(_block_means(ref, block)), rgb_to_lab(_block_means(rec, block)))


def delta_e_map(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 colour difference, (T, H, W) float32 (the colour-error heatmap)."""
    _check(ref, rec)
    out = np.empty(ref.shape[:3], dtype=np.float32)
    for sl in _frame_chunks(ref):
        out[sl] = delta_e_ciede2000(rgb_to_lab(ref[sl] / 255.0), rgb_to_lab(rec[sl] / 255.0))
    return out


def colour_stats(ref: np.ndarray, rec: np.ndarray, block: int = COLOUR_BLOCK) -> dict:
    """Clip colour fidelity: ``delta_e_mean``, ``delta_e_p95`` (over blocks and frames), ``delta_e`` per frame."""
    de = delta_e_blocks(ref, rec, block)
    flat = de.reshape(len(de), -1)
    return {
        "delta_e_mean": float(flat.mean()),
        "delta_e_p95": float(np.percentile(flat, 95)),
        "delta_e": [float(v) for v in flat.mean(axis=1)],
    }


# --- summary ----------------------------------------------------------------------------


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

    def to_dict(self) -> dict:
        """JSON-safe dict (floats, lists of floats, None)."""
        return asdict(self)


def clip_metrics(
    ref: np.ndarray, rec: np.ndarray, *, with_lpips: bool = True, device: str = "cpu"
) -> ClipMetrics:
    """All per-frame metrics and their clip summaries for one (ref, rec) pair."""
    psnr = psnr_per_frame(ref, rec)
    ssim = ssim_per_frame(ref, rec)
    lp = lpips_per_frame(ref, rec, device=device) if with_lpips else None
    colour = colour_stats(ref, rec)
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
