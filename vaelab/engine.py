"""Inference engine: uint8 <-> tensor conversion, chunked runs with timing, in the chosen precision.

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

from .device import auto_device, autocast, resolve_precision
from .limits import check_cancelled
from .metrics import psnr_per_frame
from .models import VAE
from .models.latent import Latent

__all__ = ["RunResult", "auto_device", "configure_threads", "forget_models", "get_model", "run_model", "to_tensor",
           "to_uint8"]

_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str, str], VAE] = {}
_MODEL_LOCKS: dict[int, threading.Lock] = {}


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
            model = models.load(name, weights=weights, device=dev)
            if model.card.kind == "image":
                # NHWC lets oneDNN/cuDNN pick faster conv kernels (~1.3x on this CPU for the sd-vae decoder);
                # outputs match NCHW to float rounding (see docs/PERFORMANCE.md)
                model = model.to(memory_format=torch.channels_last)
            _CACHE[key] = model
        return _CACHE[key]


def forget_models(name: str | None = None) -> None:
    """Drop loaded models (all, or every weights/device of ``name``) so the next :func:`get_model` loads afresh:
    after new lab weights were written, or the weights folder changed (``models.use_assets``)."""
    with _LOCK:
        for key in [k for k in _CACHE if name is None or k[0] == name]:
            del _CACHE[key]


def to_tensor(frames_thwc: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (1, 3, T, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames_thwc)).to(device)
    return (x.permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5) - 1.0


def to_uint8(x_bcthw: torch.Tensor) -> np.ndarray:
    """float (1, 3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3); reduced-precision outputs are rounded in float32."""
    x = ((x_bcthw[0].float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
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
    precision: str = "fp32"  # what actually ran: fp32, bf16 or fp16
    plan: dict[str, Any] = field(default_factory=dict)  # how the clip was cut (see run_model): chunks and tiles


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model_lock(model: VAE) -> threading.Lock:
    """Streaming keeps per-layer caches inside the (shared, cached) model: one clip at a time per model."""
    with _LOCK:
        return _MODEL_LOCKS.setdefault(id(model), threading.Lock())


def _frame_index(t: int, rule: str) -> np.ndarray:
    """Source frame for each padded frame: the frame rule is met by repeating the last frame."""
    from .models.base import pad_frames_to_rule

    return np.minimum(np.arange(pad_frames_to_rule(t, rule)), t - 1)


def _decode_precision(model: VAE, precision: str) -> str:
    """fp16's overflow guard: decoders marked ``fp16_decoder_upcast`` (SD's, as diffusers) decode in fp32."""
    return "fp32" if precision == "fp16" and getattr(model, "fp16_decoder_upcast", False) else precision


def _coders(model: VAE, streamed: bool, tile: int | None, overlap: int, model_kwargs: dict | None = None,
            decode_kwargs: dict | None = None,
            precision: str = "fp32") -> tuple[Callable, Callable, int | None, int, str | None]:
    """(encode, decode, tile, overlap, note) for one run: the model's own functions (``*_chunk`` when
    streamed) with ``model_kwargs`` (both) and ``decode_kwargs`` bound, under the precision's autocast,
    tiled when ``tile`` is given, tile/overlap rounded down to multiples of the spatial factor."""
    from functools import partial

    enc, dec = (model.encode_chunk, model.decode_chunk) if streamed else (model.encode, model.decode)
    enc = partial(enc, **(model_kwargs or {}))
    dec = partial(dec, **(model_kwargs or {}), **(decode_kwargs or {}))
    if precision != "fp32":
        device = next(model.parameters()).device
        enc, dec = _under(precision, device, enc), _under(_decode_precision(model, precision), device, dec)
    if not tile:
        return enc, dec, None, 0, None
    if model.latent_parts:
        return enc, dec, None, 0, f"tiling off: {model.card.name}'s latent parts are not all spatial maps"
    from .streaming import tiled, tiled_stream

    f = model.card.spatial_factor
    tile, overlap = max(f, tile // f * f), max(0, overlap // f * f)
    overlap = min(overlap, tile - f)
    # tiles blend tensors: the encoder's tiles are the latents' main tensors, the decoder's are tiles of z.main
    chunk: list[Latent] = []  # the latent being decoded (its metadata travels with every tile)
    enc_main = lambda x: enc(x).main  # noqa: E731
    dec_main = lambda m: dec(chunk[0].with_main(m))  # noqa: E731
    if streamed:  # fresh per-tile caches for this run (each tile streams as its own causal clip)
        enc_tiles = tiled_stream(enc_main, model.encoder, tile, overlap)
        dec_tiles = tiled_stream(dec_main, model.decoder, tile // f, overlap // f)
    else:
        enc_tiles = lambda x: tiled(enc_main, x, tile, overlap)  # noqa: E731
        dec_tiles = lambda m: tiled(dec_main, m, tile // f, overlap // f)  # noqa: E731

    def encode(x: torch.Tensor) -> Latent:
        return Latent(enc_tiles(x))

    def decode(z: Latent) -> torch.Tensor:
        chunk[:] = [z]
        return dec_tiles(z.main)

    note = (f"tiled: {tile} px tiles, {overlap} px overlap, linear blending (encoder and decoder)"
            + ("; every tile streams on its own layer caches" if streamed else ""))
    return encode, decode, tile, overlap, note


@torch.inference_mode()
def run_model(model: VAE, frames_thwc: np.ndarray, frame_batch: int = 8, chunk_latents: int = 4,
              tile: int | None = None, overlap: int = 0,
              progress: Callable[[float], None] | None = None, model_kwargs: dict | None = None,
              decode_kwargs: dict | None = None, precision: str | None = None,
              window: int | None = None) -> RunResult:
    """Reconstruct a uint8 clip (T, H, W, 3), with memory bounded by the chunk, not the clip.

    * image models: ``frame_batch`` frames at a time (frames are independent: same result);
    * causal video models: streamed, frame 0 alone then ``4 * chunk_latents`` frames per chunk, with
      per-layer caches (``vaelab.streaming``): equal to one-shot to float rounding;
    * other video models: in the independent frame windows of their paper (:func:`stream_window`; VidTwin
      and HVDM code 16-frame chunks independently anyway, CV-VAE's 16+1 and VideoVAE+'s 16-frame windows are
      those papers' long-video recipes), so memory follows the window, not the clip; ``window=0`` codes
      the whole clip in one call, another int sets the window.
    ``limits.check_cancelled`` runs before every chunk, so a cancelled request stops at the next one.
    Frame and size rules are met by padding (last frame repeated, edge pixels replicated) and cropped back.

    ``tile`` (px) runs encoder and decoder on overlapping spatial tiles blended linearly over ``overlap`` px
    (``vaelab.streaming.tiled``; the diffusers recipe; streamed models keep one set of layer caches per
    tile, ``tiled_stream``); both are rounded down to multiples of the spatial factor. The result then
    carries ``extras["seam_score"]`` (1 = no seams). ``model_kwargs`` go to encode and decode (VideoVAE+'s
    ``caption``), ``decode_kwargs`` to decode only (IV-VAE's ``zero_branch``).

    ``RunResult.plan`` records how the clip was cut, for figures that draw it: ``coding`` ("per frame", "streamed",
    "windows", "one shot"), ``chunks`` ([first, end) input frames of each coded chunk; None for image models,
    whose frames are independent), ``spatial_factor``, ``coded_size`` ([H, W] after padding: the frame the tiles
    are laid on) and the rounded ``tile``/``overlap`` (None/0 without tiling).

    ``precision`` (``auto|fp32|bf16|fp16``; default: the model's ``precision`` from ``models.load``, else
    ``VAELAB_PRECISION``, else fp32) is resolved for the model's device (``vaelab.device``) and recorded in
    ``RunResult.precision``. fp16 guards against overflow: decoders marked ``fp16_decoder_upcast`` decode in
    float32, and a non-finite output reruns the clip in float32 (with a note).
    """
    from .models.base import pad_to_rule

    device = next(model.parameters()).device
    prec = resolve_precision(precision or getattr(model, "precision", None), device, default="fp32")
    card = model.card
    t, h, w, _ = frames_thwc.shape
    idx = _frame_index(t, card.frame_rule)
    notes = []
    if (h % card.spatial_factor) or (w % card.spatial_factor):
        notes.append(f"padded {w}x{h} to a multiple of {card.spatial_factor} (edge replicate), then cropped back")
    if len(idx) != t:
        notes.append(f"{t} frames padded to {len(idx)} ({card.frame_rule} rule, last frame repeated), then cropped")
    streamed = model.streams_causally
    if card.kind == "image":
        chunks = [(a, min(a + frame_batch, len(idx))) for a in range(0, len(idx), frame_batch)]
    elif streamed:
        from .streaming import frame_chunks

        chunks = frame_chunks(len(idx), chunk_latents)
        notes.append(f"streamed causally: frame 0, then {4 * chunk_latents}-frame chunks with layer caches")
    else:
        win = stream_window(model)[1] if window is None else int(window)
        windowed = 0 < win < t
        chunks = [(a, min(a + win, t)) for a in range(0, t, win)] if windowed else [(0, len(idx))]
        if windowed:
            notes.append(f"coded in independent {win}-frame windows (the paper's long-video recipe; bounded memory)")
    windowed = card.kind == "video" and not streamed and len(chunks) > 1

    f = card.spatial_factor
    fits = model.fits_input  # a released model with one fixed input size (HVDM: 16x256x256) fits clips itself
    if fits:
        notes.append(fits + (" (tiling off)" if tile else ""))
        tile = None
    encode, decode, tile, overlap, note = _coders(model, streamed, tile, overlap, model_kwargs, decode_kwargs, prec)
    if note:
        notes.append(note)
    if _decode_precision(model, prec) != prec:
        notes.append("fp16 encoder, fp32 decoder (this decoder overflows fp16; diffusers' upcast)")
    if prec != "fp32":
        notes.append(f"ran in {prec} (autocast; weights, norm statistics and softmax in fp32) on {device}")
    overflow = False

    def tensor(a: int, b: int) -> torch.Tensor:
        sel = a + _frame_index(b - a, card.frame_rule) if windowed else idx[a:b]  # a window meets the rule alone
        return pad_to_rule(to_tensor(frames_thwc[sel], device), card.spatial_factor, "any")[0]

    enc_s = dec_s = 0.0
    out: list[np.ndarray] = []
    with _model_lock(model):
        if streamed:
            from .streaming import latent_chunks, streaming

            zs = []
            with streaming(model):
                for i, (a, b) in enumerate(chunks):
                    check_cancelled()
                    x = tensor(a, b)
                    _sync(device)
                    t0 = time.perf_counter()
                    zs.append(encode(x))
                    _sync(device)
                    enc_s += time.perf_counter() - t0
                    if progress:
                        progress(0.5 * (i + 1) / len(chunks))
            z = Latent.cat(zs)
            lat = latent_chunks(z.main.shape[2], chunk_latents)
            with streaming(model):
                for i, (a, b) in enumerate(lat):
                    check_cancelled()
                    _sync(device)
                    t0 = time.perf_counter()
                    y = decode(z.time_slice(a, b))
                    _sync(device)
                    dec_s += time.perf_counter() - t0
                    overflow = overflow or (prec == "fp16" and not bool(torch.isfinite(y).all()))
                    out.append(to_uint8(y[:, :, :, :h, :w]))
                    if progress:
                        progress(0.5 + 0.5 * (i + 1) / len(lat))
        else:
            for i, (a, b) in enumerate(chunks):
                check_cancelled()
                x = tensor(a, b)
                _sync(device)
                t0 = time.perf_counter()
                z = encode(x)
                _sync(device)
                t1 = time.perf_counter()
                check_cancelled()
                y = (decode(z, out_size=tuple(x.shape[2:])) if fits else decode(z))[:, :, :b - a if windowed else None,
                                                                                     :h, :w]
                _sync(device)
                enc_s += t1 - t0
                dec_s += time.perf_counter() - t1
                overflow = overflow or (prec == "fp16" and not bool(torch.isfinite(y).all()))
                out.append(to_uint8(y))
                if progress:
                    progress((i + 1) / len(chunks))
    if overflow:
        res = run_model(model, frames_thwc, frame_batch, chunk_latents, tile, overlap, progress, model_kwargs,
                        decode_kwargs, precision="fp32")
        res.notes.append("fp16 overflowed (non-finite output): this clip was rerun in fp32")
        return res
    recon = np.concatenate(out, 0)[:t]
    extras = {}
    if tile:
        from .streaming import seam_score

        hp, wp = -(-h // f) * f, -(-w // f) * f  # the padded frame the tiles were laid on
        if hp > tile or wp > tile:
            def score(clip: np.ndarray) -> float:
                x = torch.from_numpy(np.pad(clip, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)), mode="edge"))
                return round(seam_score(x.permute(3, 0, 1, 2).float(), tile, overlap), 3)

            extras = {"seam_score": score(recon), "seam_score_input": score(frames_thwc), "tile": tile,
                      "overlap": overlap}
    coding = "per frame" if card.kind == "image" else "streamed" if streamed else "windows" if windowed else "one shot"
    spans = [(min(a, t), min(b, t)) for a, b in chunks] if not windowed else chunks
    plan = {"coding": coding, "chunks": [[a, b] for a, b in spans if b > a] if card.kind == "video" else None,
            "spatial_factor": f, "coded_size": [-(-h // f) * f, -(-w // f) * f], "tile": tile,
            "overlap": overlap if tile else 0}
    return RunResult(card.name, recon, card.latent_shape(t, h, w), card.compression(t, h, w), model.num_params(),
                     enc_s, dec_s, str(device), notes, extras, prec, plan)


def _under(precision: str, device: torch.device, fn: Callable) -> Callable:
    """``fn`` run inside the precision's autocast context."""
    def run(*a, **k):
        with autocast(precision, device):
            return fn(*a, **k)
    return run


def stream_window(model: VAE) -> tuple[str, int]:
    """How :func:`stream_reconstruct` cuts a clip for ``model``: ("causal", 4) or ("windows", n frames).

    Causal video models keep per-layer caches, so the cut does not change the result. Every other model
    codes independent windows: image models frame by frame (8 at a time, no effect either); VidTwin and
    HVDM in their own ``chunk_frames`` (16; they code 16-frame chunks independently anyway, so this matches
    one-shot); CV-VAE (non-causal decoder) and VideoVAE+ in 17- and 16-frame windows, whose borders differ
    from a one-shot run (each CV-VAE window's first frame is coded alone, like an image)."""
    card = model.card
    if model.streams_causally:
        return "causal", 4
    if card.kind == "image":
        return "windows", 8
    n = int(getattr(model, "config", {}).get("chunk_frames", 16))
    return "windows", n + 1 if card.frame_rule == "1+4k" else n


@torch.inference_mode()
def stream_reconstruct(model: VAE, chunks: Any, chunk_latents: int = 1, tile: int | None = None,
                       overlap: int = 0, precision: str | None = None) -> Any:
    """Reconstruct a clip that arrives as uint8 (n, H, W, 3) pieces; yields uint8 reconstructed pieces.

    Memory is bounded by one window of frames at the working resolution, whatever the clip's length:
    no whole-clip array exists on either side. Causal models go frame 0 alone, then ``4 * chunk_latents``
    frames at a time with layer caches (equal to ``run_model``'s one-shot-equivalent result); other models
    in the independent windows of :func:`stream_window`. Frame and size rules are met per window by
    padding (last frame repeated, edges replicated) and cropping back. ``tile``/``overlap`` (px) tile
    every window in space as in :func:`run_model` (per-tile caches for causal models), which bounds
    memory by one tile of one window, also at 720p and beyond. ``precision`` as in :func:`run_model`."""
    import itertools

    from .models.base import pad_to_rule

    device = next(model.parameters()).device
    card = model.card
    kind, n = stream_window(model)
    causal = kind == "causal"
    sizes = itertools.chain([1], itertools.repeat(4 * chunk_latents)) if causal else itertools.repeat(n)
    prec = resolve_precision(precision or getattr(model, "precision", None), device, default="fp32")
    encode, decode, *_ = _coders(model, causal, tile, overlap, precision=prec)
    first = [True]

    def code(frames: np.ndarray) -> np.ndarray:
        t, h, w, _ = frames.shape
        padded = -(-t // 4) * 4 if causal and not first[0] else None  # causal chunks after frame 0: groups of 4
        first[0] = False
        idx = np.minimum(np.arange(padded), t - 1) if padded else _frame_index(t, card.frame_rule)
        x = pad_to_rule(to_tensor(frames[idx], device), card.spatial_factor, "any")[0]
        check_cancelled()
        y = decode(encode(x))
        return to_uint8(y[:, :, :t, :h, :w])

    from contextlib import nullcontext

    from .streaming import streaming

    with _model_lock(model), (streaming(model) if causal else nullcontext()):
        want, pending, have = next(sizes), [], 0
        for piece in chunks:
            pending.append(piece)
            have += len(piece)
            while have >= want:
                buf = np.concatenate(pending, 0)
                yield code(buf[:want])
                rest = buf[want:]
                pending, have = ([rest] if len(rest) else []), len(rest)
                want = next(sizes)
        if have:
            yield code(np.concatenate(pending, 0))


def stream_file(model: VAE, path: Any, *, size: int | None = None, max_frames: int | None = None,
                chunk_latents: int = 1, out_path: Any = None, fps: float = 24.0,
                on_chunk: Callable[[int], None] | None = None, tile: int | None = None,
                overlap: int = 0, precision: str | None = None) -> dict[str, Any]:
    """Reconstruct a video file of any length with bounded memory; per-frame PSNR, optionally an MP4.

    Frames are decoded lazily (``io.iter_chunks``), reconstructed by :func:`stream_reconstruct`, measured
    and, with ``out_path``, written as they come (``io.write_mp4_chunks``). ``on_chunk(frames_done)`` is
    called after each reconstructed piece (progress, or memory probes). Returns plain data."""
    from .io import VideoLimits, iter_chunks, write_mp4_chunks

    limits = VideoLimits(max_frames=max(VideoLimits.max_frames, max_frames or 0))
    psnr: list[float] = []
    shape: list[int] = []

    def source():
        for piece in iter_chunks(path, 4, max_frames=max_frames, size=size, limits=limits):
            if not shape:
                shape.extend(piece.shape[1:3])
            sources.append(piece)
            yield piece

    sources: list[np.ndarray] = []  # input frames not yet compared with their reconstruction

    def measured():
        for rec in stream_reconstruct(model, source(), chunk_latents=chunk_latents, tile=tile, overlap=overlap,
                                      precision=precision):
            ref = np.concatenate(sources, 0)
            n = len(rec)
            psnr.extend(float(v) for v in psnr_per_frame(ref[:n], rec))
            sources[:] = [ref[n:]] if n < len(ref) else []
            yield rec
            if on_chunk:
                on_chunk(len(psnr))

    t0 = time.perf_counter()
    if out_path is not None:
        write_mp4_chunks(measured(), out_path, fps=fps)
    else:
        for _ in measured():
            pass
    kind, n = stream_window(model)
    return {"name": model.card.name, "frames": len(psnr), "height": shape[0] if shape else 0,
            "width": shape[1] if shape else 0, "psnr": psnr, "seconds": time.perf_counter() - t0,
            "cut": "causal chunks with layer caches" if kind == "causal" else f"independent {n}-frame windows",
            "chunk_frames": 4 * chunk_latents if kind == "causal" else n, "tile": tile, "overlap": overlap if tile else 0,
            "precision": resolve_precision(precision or getattr(model, "precision", None),
                                           next(model.parameters()).device, default="fp32")}
