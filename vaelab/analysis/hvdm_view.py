"""What HVDM's two branches see and carry: its three triplane planes as pictures, and branch ablations.

Plain data for the Wavelets tab (figures in ``vaelab.viz``). HVDM pools a feature volume into three
planes (a "mean frame" hw, and per-frame profiles tw and th) and fuses them with a 3D Haar wavelet
branch; switching one branch off in the trained model (``mode=``) shows how much of the
reconstruction each one carries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class HVDMView:
    planes: dict[str, np.ndarray]  # name -> uint8 (A, B, 3): the plane's first 3 principal components as RGB
    ablation_psnr: dict[str, float]  # mode ("fused", "triplane", "wavelet") -> mean per-frame PSNR (dB)
    frames: int  # how many frames (one HVDM chunk at most) were analysed


def pca_rgb(plane_dab: torch.Tensor) -> np.ndarray:
    """(D, A, B) features -> uint8 (A, B, 3): the 3 leading principal components over positions, each
    stretched between its 1st and 99th percentile (a standard way to look at feature maps)."""
    d, a, b = plane_dab.shape
    x = plane_dab.reshape(d, a * b).T.double()
    x = x - x.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    comps = (x @ vh[:3].T).numpy()
    if comps.shape[1] < 3:
        comps = np.pad(comps, ((0, 0), (0, 3 - comps.shape[1])))
    lo, hi = np.percentile(comps, 1, axis=0), np.percentile(comps, 99, axis=0)
    rgb = np.clip((comps - lo) / np.maximum(hi - lo, 1e-9), 0, 1)
    return (rgb.reshape(a, b, 3) * 255).round().astype(np.uint8)


@torch.inference_mode()
def hvdm_view(model, frames_thwc: np.ndarray) -> HVDMView:
    """Planes and branch ablations of a trained HVDM on the first chunk of a uint8 clip (T, H, W, 3)."""
    from .. import metrics
    from ..engine import _model_lock, to_tensor, to_uint8
    from ..models.base import pad_to_rule

    n = min(len(frames_thwc), int(model.config["chunk_frames"]))
    clip = frames_thwc[:n]
    x = to_tensor(clip, next(model.parameters()).device)
    x_pad, _ = pad_to_rule(x, model.card.spatial_factor, "any")
    with _model_lock(model):
        p = model.planes(x_pad)
        planes = {"hw: pooled over time (a 'mean frame')": pca_rgb(p["hw"][0].float().cpu()),
                  "tw: pooled over height (time down, columns across)": pca_rgb(p["tw"][0].float().cpu()),
                  "th: pooled over width (time down, rows across)": pca_rgb(p["th"][0].float().cpu())}
        psnr = {}
        for mode in ("fused", "triplane", "wavelet"):
            rec = to_uint8(model.reconstruct(x, mode=mode))
            psnr[mode] = float(np.mean(metrics.psnr_per_frame(clip, rec)))
    return HVDMView(planes, psnr, n)
