"""Helpers every benchmark shares: device, timing a call, rounding, loading a model, a test clip,
and the reconstruction paths the sweeps time (``run_variant``)."""
from __future__ import annotations

import statistics  # noqa: F401
import time
from typing import Any, Callable

import numpy as np
import torch

from .. import models
from ..device import auto_device
from ..engine import run_model
from ..models.base import VAE, ModelCard, pad_to_rule


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return auto_device()
    return device if isinstance(device, torch.device) else auto_device(str(device))


def _r(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def _load_model(name: str, weights: str, device: torch.device, notes: list[str]) -> tuple[VAE, str]:
    """Load ``weights``; when lab weights are missing or unusable fall back to random ones and say so."""
    try:
        return models.load(name, weights=weights, device=device), str(weights)
    except models.WeightsError as e:
        if weights == "random":
            raise
        notes.append(f"{e}; timed with random weights of the same config instead "
                     "(speed and memory do not depend on weight values)")
        return models.load(name, weights="random", device=device), "random"


def _clip(card: ModelCard, size: int, frames: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """A (1, 3, T, size, size) clip in [-1, 1], already padded to the family's frame/size rule."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, frames, size, size, generator=g) * 2 - 1
    return pad_to_rule(x, card.spatial_factor, card.frame_rule)[0].to(device)


def _wide(size: int) -> int:
    """Width of a 16:9 frame whose short side is ``size`` (multiple of 8)."""
    return max(8, int(round(size * 16 / 9 / 8)) * 8)


VARIANTS = ("engine", "one-shot", "tiled")


SCALING_TILE = 128  # px, with a quarter overlap, for the "tiled" variant


def run_variant(model: VAE, clip_thwc: np.ndarray, variant: str = "engine") -> Any:
    """One reconstruction of a uint8 clip by one of the scaling sweep's paths.

    * "engine":   the app's path, ``run_model``: causal video models streamed chunk by chunk with layer
                  caches, image models 8 frames at a time, other video models in one call;
    * "one-shot": the whole clip through ``model.reconstruct`` in one call (no streaming, no batching):
                  what memory looks like without the engine;
    * "tiled":    ``run_model`` with 128 px tiles and 32 px overlap (causal streaming models keep one set
                  of layer caches per tile)."""
    from ..engine import to_tensor, to_uint8

    if variant == "engine":
        return run_model(model, clip_thwc)
    if variant == "one-shot":
        return to_uint8(model.reconstruct(to_tensor(clip_thwc, next(model.parameters()).device)))
    if variant == "tiled":
        return run_model(model, clip_thwc, tile=SCALING_TILE, overlap=SCALING_TILE // 4)
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")

