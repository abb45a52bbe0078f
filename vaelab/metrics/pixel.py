"""Pixel metrics of a reconstruction against its input: PSNR, SSIM, LPIPS (AlexNet v0.1), error maps.

All clip functions take uint8 RGB clips shaped ``(T, H, W, 3)``: a reference clip and its reconstruction
of the same shape, computed on the decoded arrays, never on a re-encoded video file.
"""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np

from ._common import _check, _frame_chunks

PSNR_CAP = 100.0


def psnr_from_mse(mse, data_range: float = 255.0) -> np.ndarray:
    """PSNR (dB) of mean squared errors (any array-like, a CPU tensor too), float64, capped at :data:`PSNR_CAP`
    (an MSE of 0 gives the cap, not inf). The package's one PSNR formula: every PSNR (uint8 clips here, float
    [-1, 1] tensors in the probes and CV-VAE's compatibility meter, the precision bench) ends here.
    ``data_range`` is the peak-to-peak range of the values: 255 for uint8, 2 for [-1, 1]."""
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(data_range**2 / mse)
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
    return psnr_from_mse(_frame_mse(ref, rec))


def pooled_psnr(ref: np.ndarray, rec: np.ndarray) -> float:
    """PSNR (dB) of one MSE pooled over all frames (TokenBench convention), capped."""
    _check(ref, rec)
    return float(psnr_from_mse(_frame_mse(ref, rec).mean()))


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


class SSIMReference:
    """The reference clip's half of SSIM, filtered once, so that scoring several reconstructions of one input
    (the nine models of a request) filters the input once instead of once per model.

    Works in float32 (the shifted sums of :func:`_filter_valid`, about 3x faster than float64) on values centred at 127.5: the variances are then sums of squares of at most 127.5,
    far from float32 cancellation (measured against scikit-image: |difference| < 1e-5 on random and natural
    images; the float64 :func:`_filter_valid` path is the reference). Keeps the filtered maps only while they
    fit ``keep_bytes``; a larger clip is filtered again per call, in bounded chunks.
    """

    def __init__(self, ref: np.ndarray, keep_bytes: int = 256 << 20):
        win = 2 * _SSIM_RADIUS + 1
        if ref.ndim != 4 or min(ref.shape[1:3]) < win:
            raise ValueError(f"SSIM needs frames of at least {win}x{win}, got {ref.shape[1:3]}")
        self.ref = ref
        self._k = _gauss_kernel().astype(np.float32)
        self._chunks = list(_frame_chunks(ref))
        self._kept = {s.start: self._prepare(ref[s]) for s in self._chunks} if ref.size * 16 <= keep_bytes else None

    def _prepare(self, x_thwc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centred x (N, H, W, 3), its filtered mean and variance (N, H-2r, W-2r, 3)), float32."""
        x = x_thwc.astype(np.float32) - np.float32(127.5)
        ux = _filter_valid(x, self._k)
        return x, ux, _filter_valid(x * x, self._k) - ux * ux

    def score(self, rec: np.ndarray) -> np.ndarray:
        """SSIM of each frame of ``rec`` against the reference, shape (T,) float64."""
        _check(self.ref, rec)
        out = np.empty(rec.shape[0], dtype=np.float64)
        for s in self._chunks:
            x, ux, vx = self._kept[s.start] if self._kept is not None else self._prepare(self.ref[s])
            y = rec[s].astype(np.float32) - np.float32(127.5)
            uy = _filter_valid(y, self._k)
            vy = _filter_valid(y * y, self._k) - uy * uy
            vxy = _filter_valid(x * y, self._k) - ux * uy
            mx, my = ux + np.float32(127.5), uy + np.float32(127.5)  # SSIM's luminance term is not shift-invariant
            num = (2 * mx * my + np.float32(_SSIM_C1)) * (2 * vxy + np.float32(_SSIM_C2))
            den = (mx * mx + my * my + np.float32(_SSIM_C1)) * (vx + vy + np.float32(_SSIM_C2))
            out[s] = (num / den).mean(axis=(1, 2, 3), dtype=np.float64)  # mean over pixels == mean over channels
        return out


def ssim_per_frame(ref: np.ndarray, rec: np.ndarray, reference: SSIMReference | None = None) -> np.ndarray:
    """SSIM of each frame, shape (T,) float64 (see ``CONVENTIONS['ssim']``).

    Filtering only the interior ('valid') is exactly skimage's full-image Gaussian filter followed by
    cropping ``(win_size - 1) // 2 = 5`` px from each border. ``reference``: an :class:`SSIMReference` of
    ``ref`` already made (scoring many reconstructions of one clip).
    """
    _check(ref, rec)
    return (reference if reference is not None and reference.ref is ref else SSIMReference(ref, 0)).score(rec)


def ssim_per_frame_f64(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """The float64 numpy SSIM (shifted sums): the slow, plain reading of the formula, kept as the reference
    the float32 :class:`SSIMReference` is tested against."""
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
        out[s] = (num / den).mean(axis=(1, 2, 3))
    return out


# --- pixel maps -------------------------------------------------------------------------


def error_maps(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """Per-pixel mean absolute error over RGB, shape (T, H, W) float32 in [0, 255]."""
    _check(ref, rec)
    diff = np.abs(ref.astype(np.int16) - rec.astype(np.int16))
    return diff.mean(axis=-1, dtype=np.float32)


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
        from .. import lpips_fetch

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
