"""Which frequencies does a VAE lose? Haar band energies and errors of input vs reconstruction.

Because the Haar transform is orthonormal, a clip's squared error splits exactly over the bands:
``sum(band_errors) == MSE`` (per value, averaged). That is what the Wavelets tab shows: the
share of the error in each band, next to how much energy the input and reconstruction have there.

Inputs are uint8 clips (T, H, W, 3); values are scaled to [0, 1] before transforming.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..models.wavelets import BANDS_3D, dwt2_multilevel, dwt3, pad_even


def _to_tensor(clip_thwc: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float64 (3, T, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(clip_thwc)).permute(3, 0, 1, 2).double() / 255.0


def bands_2d(clip_thwc: np.ndarray, levels: int = 3) -> dict[str, torch.Tensor]:
    """Per-frame multi-level 2D Haar: {"L1 LH": (3, T, h, w), ..., "L3 LL": ...} (LL only at the last level)."""
    x = pad_even(_to_tensor(clip_thwc), (-2, -1), multiple=2 ** levels)
    out = {}
    for lvl, bands in enumerate(dwt2_multilevel(x, levels), start=1):
        for name in ("LH", "HL", "HH"):
            out[f"L{lvl} {name}"] = bands[name]
        if lvl == levels:
            out[f"L{lvl} LL"] = bands["LL"]
    return out


def bands_3d(clip_thwc: np.ndarray) -> dict[str, torch.Tensor]:
    """One level of 3D Haar over (T, H, W): 8 bands LLL..HHH, each (3, T/2, H/2, W/2). T < 2 is repeated to 2."""
    x = _to_tensor(clip_thwc if len(clip_thwc) > 1 else np.repeat(clip_thwc, 2, axis=0))
    return dwt3(pad_even(x, (-3, -2, -1)))


@dataclass
class BandReport:
    names: list[str]
    input_energy: list[float]  # mean squared coefficient per band (input)
    recon_energy: dict[str, list[float]]  # per model
    error: dict[str, list[float]]  # per model: sum of squared coefficient differences / number of pixel values

    def error_share(self, model: str) -> list[float]:
        total = sum(self.error[model]) or 1.0
        return [e / total for e in self.error[model]]


def band_report(frames: np.ndarray, recons: dict[str, np.ndarray], mode: str = "2d", levels: int = 3) -> BandReport:
    """Energies and errors per band for the input and each model's reconstruction.

    ``error`` is normalised by the number of (padded) pixel values, so for each model the list sums
    to the MSE of the padded clip in [0, 1] units.
    """
    fn = (lambda c: bands_2d(c, levels)) if mode == "2d" else bands_3d
    ref = fn(frames)
    names = list(ref)
    n_values = sum(b.numel() for b in ref.values())
    rec_e, err = {}, {}
    for model, rec in recons.items():
        bands = fn(rec)
        rec_e[model] = [float(bands[k].pow(2).mean()) for k in names]
        err[model] = [float((bands[k] - ref[k]).pow(2).sum() / n_values) for k in names]
    return BandReport(names, [float(ref[k].pow(2).mean()) for k in names], rec_e, err)


def mallat_mosaic(frame_hwc: np.ndarray, levels: int = 3, gain: float = 2.0) -> np.ndarray:
    """The classic wavelet layout of one frame as a uint8 RGB image: LL top-left, detail bands around it.

    Details are shown as sqrt(|coefficient| x ``gain``) (the same mapping for every image, so input
    and reconstruction mosaics compare directly; the square root lifts faint texture into view);
    LL is shown as the image itself.
    """
    bands = bands_2d(frame_hwc[None], levels)
    h = bands["L1 LH"].shape[-2] * 2
    w = bands["L1 LH"].shape[-1] * 2
    out = np.zeros((h, w, 3))

    def put(t: torch.Tensor, y: int, x: int, detail: bool) -> None:
        img = t[:, 0].permute(1, 2, 0).numpy()
        img = np.sqrt(np.abs(img) * gain) if detail else img / (2.0 ** levels)  # orthonormal LL grows by 2 per level
        out[y:y + img.shape[0], x:x + img.shape[1]] = img

    for lvl in range(levels, 0, -1):
        bh, bw = bands[f"L{lvl} LH"].shape[-2:]
        if lvl == levels:
            put(bands[f"L{lvl} LL"], 0, 0, False)
        put(bands[f"L{lvl} LH"], 0, bw, True)
        put(bands[f"L{lvl} HL"], bh, 0, True)
        put(bands[f"L{lvl} HH"], bh, bw, True)
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def subband_mosaic_3d(clip_thwc: np.ndarray, t: int = 0, gain: float = 2.0) -> tuple[np.ndarray, list[str]]:
    """The 8 3D sub-bands at time ``t`` (of T/2) tiled 2 x 4 (LLL as image, others sqrt(|coef| x gain)), and names."""
    bands = bands_3d(clip_thwc)
    tiles = []
    for name in BANDS_3D:
        b = bands[name][:, min(t, bands[name].shape[1] - 1)].permute(1, 2, 0).numpy()
        tiles.append(b / (2 * np.sqrt(2)) if name == "LLL" else np.sqrt(np.abs(b) * gain))
    rows = [np.concatenate(tiles[i:i + 4], axis=1) for i in (0, 4)]
    img = np.concatenate(rows, axis=0)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), list(BANDS_3D)
