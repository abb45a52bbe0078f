"""Inference engine: device choice, uint8 <-> tensor conversion, chunked runs with timing.

Models see float (B, 3, T, H, W) in [-1, 1]; the rest of VAE Lab handles uint8 (T, H, W, 3).
``run_model`` is the single place a clip goes through a model: it chunks frames so memory
stays bounded, times encode and decode separately and returns plain data (no figures).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .models import VAE

_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str, str], VAE] = {}


def auto_device(pref: str = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu. An explicit "cuda" without a GPU falls back to cpu."""
    if pref in ("auto", None, ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(pref)


def configure_threads() -> None:
    """Use every core for intra-op work (torch's default on some builds is half)."""
    n = int(os.environ.get("VAELAB_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(max(1, n))


def get_model(name: str, weights: str = "lab", device: str | torch.device = "auto") -> VAE:
    """Load once per (name, weights, device) per process; models are read-only after load."""
    from . import models

    dev = auto_device(str(device)) if not isinstance(device, torch.device) else device
    key = (name, str(weights), str(dev))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = models.load(name, weights=weights, device=dev)
        return _CACHE[key]


def to_tensor(frames_thwc: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (1, 3, T, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames_thwc)).to(device)
    return (x.permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5) - 1.0


def to_uint8(x_bcthw: torch.Tensor) -> np.ndarray:
    """float (1, 3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    x = ((x_bcthw[0].clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


@dataclass
class RunResult:
    name: str
    recon: np.ndarray  # uint8 (T, H, W, 3)
    latent_shape: tuple[int, ...]  # (C, T', H', W') for the whole clip
    compression: float
    params: int
    encode_s: float
    decode_s: float
    device: str
    notes: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def run_model(model: VAE, frames_thwc: np.ndarray, frame_batch: int = 8,
              progress: Callable[[float], None] | None = None) -> RunResult:
    """Reconstruct a clip. Image models run ``frame_batch`` frames at a time (memory bound, same result)."""
    device = next(model.parameters()).device
    card = model.card
    t, h, w, _ = frames_thwc.shape
    notes = []
    latent = card.latent_shape(t, h, w)
    if (h % card.spatial_factor) or (w % card.spatial_factor):
        notes.append(f"padded {w}x{h} to a multiple of {card.spatial_factor} (edge replicate), then cropped back")
    from .models.base import pad_frames_to_rule, pad_to_rule

    if pad_frames_to_rule(t, card.frame_rule) != t:
        notes.append(f"{t} frames padded to {pad_frames_to_rule(t, card.frame_rule)} ({card.frame_rule} rule), then cropped")
    enc_s = dec_s = 0.0
    out = []
    step = frame_batch if card.kind == "image" else t
    for start in range(0, t, step):
        x = to_tensor(frames_thwc[start:start + step], device)
        x_pad, (tt, hh, ww) = pad_to_rule(x, card.spatial_factor, card.frame_rule)
        _sync(device)
        t0 = time.perf_counter()
        z = model.encode(x_pad)
        _sync(device)
        t1 = time.perf_counter()
        y = model.decode(z)[:, :, :tt, :hh, :ww]
        _sync(device)
        enc_s += t1 - t0
        dec_s += time.perf_counter() - t1
        out.append(to_uint8(y))
        if progress:
            progress(min(1.0, (start + step) / t))
    recon = np.concatenate(out, 0)
    return RunResult(card.name, recon, latent, card.compression(t, h, w), model.num_params(), enc_s, dec_s,
                     str(device), notes)
