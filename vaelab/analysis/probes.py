"""Probe clips with known ground truth, and what a model does to them, as plain data.

Every probe is generated here (deterministic, at the chosen size S and length T), coded by a model through its
public contract (``model.encode`` / ``model.decode`` on the clip padded to ``model.card``'s frame and size rule,
cropped back: what ``VAE.reconstruct`` does) and measured against the ground truth. Nothing here draws;
``vaelab.viz_diagnostics`` turns the returned data into figures and ``ProbeReport.to_json`` is the ``vaelab probe``
schema. Pixels are float in [-1, 1] shaped ``x_bcthw``; errors and changes are reported in 0-255 units.
Models run in the precision ``run_probes`` is given (``auto|fp32|bf16|fp16``, resolved per model's device as
``engine.run_model`` does; fp32 is the unchanged path with no autocast); every measurement is in float32/64.

Measurements (see docs/DIAGNOSTICS.md for how to read them):

* spatial MTF: one sinusoidal grating per clip, on the DFT grid of the S x S frame; gain = amplitude of the output
  at the grating's frequency / input amplitude (projection onto the complex exponential: exact, no leakage);
  everything else the output puts off DC is the *spurious* (aliasing) energy, relative to the input's AC energy;
* temporal MTF: gratings drifting at f_t cycles/frame; the coherent gain (regression of the output's per-frame
  phasor on the input's) normalised by the static grating's gain, and a flickering field;
* flat fields, colour chart, motion, scene cut, frame-count rules, receptive fields (input and latent frames).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..cache import clip_hash
from ..metrics import psnr_from_mse
from ..models.base import pad_frames_to_rule, pad_to_rule
from ..models.latent import Latent

PROBES = ("spatial", "temporal", "flat", "colour", "motion", "frame_count", "receptive_field")
MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 32, 256, 64
MIN_FRAMES, MAX_FRAMES, DEFAULT_FRAMES = 5, 33, 9
AMPLITUDE = 0.5  # grating amplitude in [-1, 1] units (a quarter of the range either side of mid-grey)
BATCH = 8  # clips per model call

# Macbeth ColorChecker Classic, sRGB 8-bit (BabelColor averages), row by row as the physical chart.
COLOUR_CHART = (
    ("dark skin", (115, 82, 68)), ("light skin", (194, 150, 130)), ("blue sky", (98, 122, 157)),
    ("foliage", (87, 108, 67)), ("blue flower", (133, 128, 177)), ("bluish green", (103, 189, 170)),
    ("orange", (214, 126, 44)), ("purplish blue", (80, 91, 166)), ("moderate red", (193, 90, 99)),
    ("purple", (94, 60, 108)), ("yellow green", (157, 188, 64)), ("orange yellow", (224, 163, 46)),
    ("blue", (56, 61, 150)), ("green", (70, 148, 73)), ("red", (175, 54, 60)),
    ("yellow", (231, 199, 31)), ("magenta", (187, 86, 149)), ("cyan", (8, 133, 161)),
    ("white", (243, 243, 242)), ("neutral 8", (200, 200, 200)), ("neutral 6.5", (160, 160, 160)),
    ("neutral 5", (122, 122, 121)), ("neutral 3.5", (85, 85, 85)), ("black", (52, 52, 52)),
)
FLAT_COLOURS = (("mid grey", (128, 128, 128)), ("dark", (32, 32, 32)), ("light", (224, 224, 224)),
                ("red", (200, 60, 50)), ("blue", (40, 70, 190)))
ORIENTATIONS = {0: (1, 0), 45: (1, 1), 90: (0, 1)}  # degrees -> (kx, ky) direction on the DFT grid
DRIFT_FREQS = (0.0, 0.0625, 0.125, 0.25, 0.375, 0.5)  # cycles per frame
FLICKER_FREQS = (0.0, 0.25, 0.5)
PAN_SPEEDS = (0, 1, 3, 8)  # px per frame
RF_SIZE = 32  # receptive fields are temporal: measured on frames of at most this side (4x cheaper than 64)
MOTION_BINS = (0, 1, 2, 4, 8, 16, 32, 64, 256)  # |frame difference| bin edges, 0-255 units

CONVENTIONS = {
    "pixels": "probes are generated as float in [-1, 1] and fed to the model unquantised; errors, changes and "
              "off-DC energies are in 0-255 units (1 unit = 1/255 of the range)",
    "coding": "model.encode/decode on the clip padded to the card's frame rule (last frame repeated) and size "
              "multiple (edge replicate), cropped back and clamped: VAE.reconstruct, one shot over the clip",
    "spatial_mtf": "one grey sinusoidal grating per clip (amplitude 0.5, mid-grey mean), integer cycles per frame "
                   "(frequencies where 16 f is an integer are skipped: there an alias lands on the grating itself); "
                   "gain = |output DFT at f| / |input DFT at f|, mean over RGB and frames; 'gain' is the mean of "
                   "0 and 90 degrees; half_gain_freq = first crossing of 0.5, linearly interpolated (Nyquist 0.5 and "
                   "half_gain_reached=false when the gain stays above 0.5); spurious = output AC energy away from "
                   "+-f over the input's AC energy; aliasing_energy = mean spurious over the frequencies",
    "static_clips": "spatial, flat-field and colour probes are static clips of 1 + temporal_factor frames "
                    "(one full temporal group after the first frame; 1 frame for models without temporal "
                    "compression), measured on every frame",
    "temporal_mtf": "grating of one cycle per frame width (1/S cycles/px) drifting at f_t cycles/frame; gain = coherent gain "
                    "(sum_t out_t conj(in_t) / sum_t |in_t|^2 of the per-frame complex amplitudes) over the static "
                    "grating's gain; flicker: a textured scene whose brightness swings by +-0.25 at f_t, gain of "
                    "the frame-mean swing; static_flicker = mean |y_t - y_t-1| on the static scene (input: 0)",
    "flat_field": "static flat colours; off_dc_energy = mean over colours, frames and channels of the 2D FFT "
                  "energy off DC per pixel (= spatial variance, 0-255 units squared); grid_share = part of it at "
                  "multiples of the latent grid frequency 1/spatial_factor; spectrum = log10 of the mean power",
    "colour_chart": "ColorChecker Classic sRGB values, 4 x 6 patches of S/4 px; per-patch CIEDE2000 "
                    "(metrics.delta_e_map) over the patch interior (a margin of S/16 px left out), mean over frames; "
                    "delta_e_mean = mean over patches",
    "motion": "periodic 1/f colour texture panned by whole pixels per frame (wrapping); PSNR and mean |error| "
              "per speed; scene cut: texture A then B from frame `cut`; output_change[t] = mean |output of the cut clip - "
              "output of the A-only clip (t < cut) or B-only clip (t >= cut)| (0-255); recovery_frames = frames after "
              "the cut until it stays below 1; frames_changed_before_cut = frames before the cut where it is >= 1",
    "frame_count": "the slow pan at 1, 4k and 4k+1 frames: frames after padding to the rule, latent frames, "
                   "per-frame PSNR",
    "precision": "input.precision is what was asked (auto|fp32|bf16|fp16); each model's 'precision' is what ran "
                 "on its 'device': fp32 = no autocast (the float32 path), bf16/fp16 = torch.autocast around encode "
                 "and decode (weights, norm statistics and softmax in fp32; decoders marked fp16_decoder_upcast "
                 "decode in fp32 under fp16; a batch with a non-finite fp16 output is recoded in fp32 and listed in "
                 "'precision_notes'); outputs are cast to float32 before any measurement",
    "pool": "input.pool: how several models ran at once: serial, thread (worker threads in one interpreter) or "
            "process (forked worker processes); each worker runs one torch thread; the measurements do not depend "
            "on it, the seconds do",
    "receptive_field": "change[i][j] = mean |output frame i with input frame j perturbed - unperturbed output "
                       "frame i| (0-255 units); the perturbation adds a fixed +-0.25 random pattern to frame j; "
                       "latent: noise of 0.5 x the latent's std added to latent index j along axis 2 (parts of a "
                       "structured latent with the same length on that axis are perturbed together)",
}


# --------------------------------------------------------------------------- the model contract


def _pixel_count(x_bcthw: torch.Tensor) -> int:
    return x_bcthw.shape[2] * x_bcthw.shape[3] * x_bcthw.shape[4]


_MEMO: dict[tuple[int, str], torch.Tensor] = {}  # (id(model), clip digest) -> reconstruction, within run_probes


@dataclass
class _Run:
    """The precision the current model runs in (resolved) and what had to fall back to fp32."""

    precision: str = "fp32"
    notes: list[str] = field(default_factory=list)


_RUN: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("vaelab_probe_run", default=None)


def _current() -> _Run:
    """The run in progress (``run_probes``), or fp32 outside one."""
    return _RUN.get() or _Run()


@contextlib.contextmanager
def _running(precision: str) -> Iterator[_Run]:
    run = _Run(precision)
    token = _RUN.set(run)
    try:
        yield run
    finally:
        _RUN.reset(token)


def _device(model: Any) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


# Copied from vaelab.engine._decode_precision (the fp16 overflow guard, for the probes' direct decode calls)
def _decode_precision(model: Any, precision: str) -> str:
    return "fp32" if precision == "fp16" and getattr(model, "fp16_decoder_upcast", False) else precision


def _encode(model: Any, x: torch.Tensor, precision: str | None = None) -> Latent:
    """``model.encode`` under the current run's autocast (none for fp32)."""
    from ..device import autocast

    prec = precision or _current().precision
    with autocast(prec, _device(model)):
        return model.encode(x)


def _decode(model: Any, z: Latent, precision: str | None = None) -> torch.Tensor:
    """``model.decode`` under the current run's autocast (fp32 for fp16-upcast decoders); float32 out."""
    from ..device import autocast

    prec = _decode_precision(model, precision or _current().precision)
    with autocast(prec, _device(model)):
        return model.decode(z).float()


def _code_batch(model: Any, x: torch.Tensor) -> torch.Tensor:
    """One batch through encode/decode in the run's precision, padded to the card's rule and cropped back; an
    fp16 batch with a non-finite output is recoded in fp32 (and noted)."""
    card = model.card
    xp, (t, h, w) = pad_to_rule(x, card.spatial_factor, card.frame_rule)
    run = _current()
    y = _decode(model, _encode(model, xp))
    if run.precision == "fp16" and not bool(torch.isfinite(y).all()):
        y = _decode(model, _encode(model, xp, "fp32"), "fp32")
        run.notes.append(f"fp16 overflowed on a {tuple(x.shape)} batch: recoded in fp32")
    return y[:, :, :t, :h, :w].clamp(-1, 1).float().cpu()


def code(model: Any, x_bcthw: torch.Tensor, batch: int = BATCH) -> tuple[torch.Tensor, None]:
    """(B, 3, T, H, W) -> (reconstruction of the same shape, None), ``batch`` clips per model call, in the current
    ``run_probes`` precision (fp32 outside one). Clips that several probes share (the slow pan is the motion,
    frame-count and receptive-field base) are coded once per ``run_probes`` call."""
    device = _device(model)
    keys = [(id(model), clip_hash(x_bcthw[i:i + 1])) for i in range(x_bcthw.shape[0])] if _MEMO_ON else []
    todo = [i for i in range(x_bcthw.shape[0]) if not keys or keys[i] not in _MEMO]
    outs: dict[int, torch.Tensor] = {}
    with torch.inference_mode():
        for a in range(0, len(todo), batch):
            idx = todo[a:a + batch]
            y = _code_batch(model, x_bcthw[idx].to(device))
            for k, i in enumerate(idx):
                outs[i] = y[k:k + 1]
                if keys:
                    _MEMO[keys[i]] = outs[i]
    return torch.cat([outs[i] if i in outs else _MEMO[keys[i]] for i in range(x_bcthw.shape[0])], 0), None


_MEMO_ON = False


def static_frames(card: Any, frames: int) -> int:
    """Frames of a static probe clip: the first frame plus one full temporal group (1 without temporal coding)."""
    return 1 if card.temporal_factor <= 1 else min(frames, 1 + card.temporal_factor)


def temporal_groups(card: Any, frames: int) -> list[int]:
    """Group index of each frame under the card's rule: "1+Nk" -> frame 0 alone then groups of N; "Nk" -> groups
    of N; "any" -> groups of ``temporal_factor`` (1: every frame its own group)."""
    rule, n = card.frame_rule, max(1, card.temporal_factor)
    if rule.startswith("1+"):
        return [0 if t == 0 else 1 + (t - 1) // n for t in range(frames)]
    return [t // n for t in range(frames)]


# --------------------------------------------------------------------------- probe generation


def grating(size: int, kx: int, ky: int, frames: int = 1, drift: float = 0.0, amplitude: float = AMPLITUDE,
            phase: float = 0.0) -> torch.Tensor:
    """Grey grating (1, 3, T, S, S): amplitude * cos(2 pi (kx x + ky y) / S - 2 pi drift t + phase)."""
    ar = torch.arange(size, dtype=torch.float64)
    arg = 2 * math.pi * (kx * ar[None, :] + ky * ar[:, None]) / size
    t = torch.arange(frames, dtype=torch.float64)[:, None, None]
    g = amplitude * torch.cos(arg - 2 * math.pi * drift * t + phase)
    return g.float()[None, None].expand(1, 3, frames, size, size)


def zone_plate(size: int, frames: int = 1, amplitude: float = AMPLITUDE) -> torch.Tensor:
    """Radial chirp (1, 3, T, S, S): local frequency r / S cycles/px, 0 at the centre, Nyquist at the edge midpoints."""
    c = (size - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64) - c, torch.arange(size, dtype=torch.float64) - c,
                            indexing="ij")
    z = amplitude * torch.cos(math.pi * (xx ** 2 + yy ** 2) / size)
    return z.float()[None, None, None].expand(1, 3, frames, size, size).contiguous()


def texture(size: int, seed: int, width: int | None = None) -> torch.Tensor:
    """Periodic colour texture (3, S, W) with a 1/f amplitude spectrum (natural-image statistics), std ~0.35."""
    width = width or size
    g = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(width)[None, :]
    amp = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / max(size, width))
    amp[0, 0] = 0.0
    out = []
    mix = g.normal(size=(3, 3)) * 0.3 + np.eye(3)  # correlated channels, like photos
    base = [np.fft.irfft2(amp * np.exp(2j * np.pi * g.random(amp.shape)), s=(size, width)) for _ in range(3)]
    for c in range(3):
        out.append(sum(mix[c, k] * base[k] for k in range(3)))
    arr = np.stack(out)
    arr = 0.35 * arr / arr.std()
    return torch.from_numpy(np.clip(arr, -0.95, 0.95)).float()


def pan(size: int, frames: int, speed: int, seed: int = 1, start: int = 0) -> torch.Tensor:
    """(1, 3, T, S, S): the periodic texture moving left by ``speed`` whole px per frame (wrapping: exact)."""
    tex = texture(size, seed)
    return torch.stack([torch.roll(tex, -(start + speed * t), dims=-1) for t in range(frames)], 1)[None]


def flat(size: int, frames: int, rgb: tuple[int, int, int]) -> torch.Tensor:
    v = torch.tensor(rgb, dtype=torch.float32) / 127.5 - 1.0
    return v[None, :, None, None, None].expand(1, 3, frames, size, size).contiguous()


def colour_chart(size: int, frames: int) -> torch.Tensor:
    """(1, 3, T, S, 3S/2): the 24 ColorChecker patches, 4 rows x 6 columns of S/4 px."""
    p = size // 4
    img = torch.empty(3, 4 * p, 6 * p)
    for i, (_, rgb) in enumerate(COLOUR_CHART):
        r, c = divmod(i, 6)
        img[:, r * p:(r + 1) * p, c * p:(c + 1) * p] = torch.tensor(rgb, dtype=torch.float32)[:, None, None] / 127.5 - 1
    return img[None, :, None].expand(1, 3, frames, 4 * p, 6 * p).contiguous()


def grating_frequencies(size: int, count: int = 7) -> list[int]:
    """Integer cycles per frame k (f = k / S), roughly log-spaced from 1 to just under Nyquist, skipping k with
    16 k / S integer (there the grating coincides with one of its own aliases and its gain depends on phase)."""
    top = size // 2 - 1
    ks = sorted({int(round(v)) for v in np.geomspace(1, top, 3 * count)})
    ks = [k for k in ks if (16 * k) % size]
    if len(ks) <= count:
        return ks
    pick = np.unique(np.round(np.linspace(0, len(ks) - 1, count)).astype(int))
    return [ks[i] for i in pick]


# --------------------------------------------------------------------------- measurement helpers


def _dft_at(y_bcthw: torch.Tensor, kx: int, ky: int) -> torch.Tensor:
    """Complex DFT coefficient at (ky, kx) per (B, C, T), normalised so a cosine of amplitude A gives A/2
    (one coefficient by two small matrix products instead of a full FFT)."""
    h, w = y_bcthw.shape[-2:]
    ex = torch.exp(-2j * math.pi * kx * torch.arange(w, dtype=torch.float64) / w)
    ey = torch.exp(-2j * math.pi * ky * torch.arange(h, dtype=torch.float64) / h)
    return (y_bcthw.to(torch.complex128) @ ex) @ ey / (h * w)


def _ac_energy(y_bcthw: torch.Tensor) -> torch.Tensor:
    """Mean square off DC per (B, C, T) (Parseval: the spatial variance)."""
    return y_bcthw.double().var(dim=(-1, -2), unbiased=False)


def half_gain_frequency(freq: list[float], gain: list[float]) -> tuple[float, bool]:
    """First frequency where the gain falls to 0.5 (linear interpolation); (0.5, False) when it never does."""
    for i in range(len(freq)):
        if gain[i] <= 0.5:
            if i == 0:
                return float(freq[0]), True
            f0, f1, g0, g1 = freq[i - 1], freq[i], gain[i - 1], gain[i]
            return float(f0 + (g0 - 0.5) * (f1 - f0) / (g0 - g1)), True
    return 0.5, False


def _to_uint8(x_bcthw: torch.Tensor) -> np.ndarray:
    """(B, 3, T, H, W) [-1, 1] -> uint8 (B, T, H, W, 3)."""
    return ((x_bcthw.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()


def _mae_per_frame(ref: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
    """Mean |error| per (B, T) in 0-255 units."""
    return (rec - ref).abs().mean(dim=(1, 3, 4)) * 127.5


def _psnr_per_frame(ref: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
    mse = ((rec - ref) * 127.5).pow(2).mean(dim=(1, 3, 4)).double()
    return torch.from_numpy(psnr_from_mse(mse.cpu().numpy()))


def _r(v: Any, nd: int = 4) -> Any:
    if isinstance(v, (list, tuple)):
        return [_r(x, nd) for x in v]
    if isinstance(v, (float, np.floating)):
        return round(float(v), nd)
    return v


# --------------------------------------------------------------------------- probes


def spatial_probe(model: Any, size: int, frames: int) -> dict[str, Any]:
    """Gain, spurious energy per frequency and orientation; zone plate in and out (uint8, frame 0)."""
    n = static_frames(model.card, frames)
    ks = grating_frequencies(size)
    specs = [(deg, k) for deg in ORIENTATIONS for k in ks]
    x = torch.cat([grating(size, k * ORIENTATIONS[d][0], k * ORIENTATIONS[d][1], n) for d, k in specs]
                  + [zone_plate(size, n)], 0)
    y, _ = code(model, x)
    gx, gy = x[:-1], y[:-1]
    by_orientation: dict[str, dict[str, list[float]]] = {}
    for i, (deg, k) in enumerate(specs):
        kx, ky = k * ORIENTATIONS[deg][0], k * ORIENTATIONS[deg][1]
        a_in = _dft_at(gx[i:i + 1], kx, ky).abs()
        a_out = _dft_at(gy[i:i + 1], kx, ky).abs()
        gain = float((a_out / a_in).mean())
        # energy at +-f is 2 |c|^2; the rest of the AC energy is spurious
        spur = float(((_ac_energy(gy[i:i + 1]) - 2 * a_out ** 2).clamp_min(0) / _ac_energy(gx[i:i + 1])).mean())
        o = by_orientation.setdefault(str(deg), {"freq": [], "gain": [], "spurious": []})
        o["freq"].append(math.hypot(kx, ky) / size)
        o["gain"].append(gain)
        o["spurious"].append(spur)
    freq = [k / size for k in ks]
    gain = [(a + b) / 2 for a, b in zip(by_orientation["0"]["gain"], by_orientation["90"]["gain"])]
    spurious = [(a + b) / 2 for a, b in zip(by_orientation["0"]["spurious"], by_orientation["90"]["spurious"])]
    hg, reached = half_gain_frequency(freq, gain)
    zone = _to_uint8(torch.cat([x[-1:], y[-1:]], 0)[:, :, :1])[:, 0]
    return {"freq": _r(freq), "gain": _r(gain), "half_gain_freq": _r(hg), "half_gain_reached": reached,
            "spurious": _r(spurious), "aliasing_energy": _r(float(np.mean(spurious))),
            "by_orientation": {d: {k: _r(v) for k, v in o.items()} for d, o in by_orientation.items()},
            "half_gain_by_orientation": {d: _r(half_gain_frequency(o["freq"], o["gain"])[0])
                                         for d, o in by_orientation.items()},
            "frames": n, "_zone_plate": {"input": zone[0], "output": zone[1]}}


def _coherent_gain(x_in: torch.Tensor, y_out: torch.Tensor, kx: int, ky: int) -> float:
    """Regression of the output's per-frame complex amplitude at (kx, ky) on the input's, over frames; mean RGB."""
    a, b = _dft_at(x_in, kx, ky), _dft_at(y_out, kx, ky)  # (1, C, T)
    g = (b * a.conj()).sum(-1) / (a.abs() ** 2).sum(-1)
    return float(g.abs().mean())


def temporal_probe(model: Any, size: int, frames: int) -> dict[str, Any]:
    """Drifting gratings (gain vs cycles/frame), a flickering scene, flicker added on a static scene. The grating has
    one cycle per frame width (1/S cycles/px, inside every lab model's pass band, VidTwin's 16x included), so the
    static gain it is divided by stays near 1."""
    k = 1
    drift = [grating(size, k, 0, frames, drift=f) for f in DRIFT_FREQS]
    scene = texture(size, seed=3)[None, :, None].expand(1, 3, frames, size, size)
    t = torch.arange(frames, dtype=torch.float64)
    flick = [(scene + 0.25 * torch.cos(2 * math.pi * f * t).float()[None, None, :, None, None]).clamp(-1, 1)
             for f in FLICKER_FREQS]
    x = torch.cat(drift + flick, 0)
    y, _ = code(model, x)
    raw = [_coherent_gain(x[i:i + 1], y[i:i + 1], k, 0) for i in range(len(DRIFT_FREQS))]
    static = raw[0] if raw[0] > 1e-6 else 1.0
    fl_gain = []
    off = len(DRIFT_FREQS)
    for j, f in enumerate(FLICKER_FREQS):
        if f == 0:
            continue
        m_in = x[off + j].mean(dim=(0, 2, 3)).double()
        m_out = y[off + j].mean(dim=(0, 2, 3)).double()
        d_in, d_out = m_in - m_in.mean(), m_out - m_out.mean()
        fl_gain.append(float((d_out * d_in).sum() / (d_in * d_in).sum()))
    s = y[off + FLICKER_FREQS.index(0.0)]
    static_flicker = float((s[:, 1:] - s[:, :-1]).abs().mean() * 127.5) if frames > 1 else 0.0
    return {"freq": list(DRIFT_FREQS), "gain": _r([g / static for g in raw]), "raw_gain": _r(raw),
            "spatial_freq": k / size, "speed_px_per_frame": _r([f * size / k for f in DRIFT_FREQS]),
            "flicker": {"freq": [f for f in FLICKER_FREQS if f], "gain": _r(fl_gain)},
            "static_flicker": _r(static_flicker)}


def flat_field_probe(model: Any, size: int, frames: int) -> dict[str, Any]:
    n = static_frames(model.card, frames)
    x = torch.cat([flat(size, n, rgb) for _, rgb in FLAT_COLOURS], 0)
    y, _ = code(model, x)
    y255 = (y.double() * 127.5)
    power = torch.fft.fft2(y255 - y255.mean(dim=(-1, -2), keepdim=True)).abs() ** 2 / (size * size) ** 2  # (B,C,T,S,S)
    energy = power.sum(dim=(-1, -2))  # (B, C, T): spatial variance
    f = model.card.spatial_factor
    idx = torch.arange(size)
    on_grid = ((idx % max(1, size // f)) == 0) if size % f == 0 and f > 1 else torch.zeros(size, dtype=torch.bool)
    grid_mask = on_grid[:, None] | on_grid[None, :]
    grid_mask[0, 0] = False
    grid = power[..., grid_mask].sum(-1)
    total = float(energy.mean())
    mean_power = power.mean(dim=(0, 1, 2))
    spectrum = torch.log10(torch.fft.fftshift(mean_power) + 1e-6).float().numpy()
    dc_shift = ((y - x).mean(dim=(2, 3, 4)) * 127.5)  # (B, C)
    return {"off_dc_energy": _r(total, 6), "off_dc_rms": _r(math.sqrt(max(total, 0.0))),
            "grid_share": _r(float(grid.sum() / energy.sum()) if float(energy.sum()) > 0 else 0.0),
            "per_colour": {name: _r(float(energy[i].mean()), 6) for i, (name, _) in enumerate(FLAT_COLOURS)},
            "mean_shift": {name: _r(dc_shift[i].tolist(), 2) for i, (name, _) in enumerate(FLAT_COLOURS)},
            "frames": n, "_spectrum": spectrum}


def colour_chart_probe(model: Any, size: int, frames: int) -> dict[str, Any]:
    from .. import metrics

    n = static_frames(model.card, frames)
    x = colour_chart(size, n)
    y, _ = code(model, x)
    ref, rec = _to_uint8(x)[0], _to_uint8(y)[0]
    de = np.asarray(metrics.delta_e_map(ref, rec), np.float64).mean(0)  # (H, W)
    p, m = size // 4, max(1, size // 16)
    per_patch = []
    for i in range(len(COLOUR_CHART)):
        r, c = divmod(i, 6)
        per_patch.append(float(de[r * p + m:(r + 1) * p - m, c * p + m:(c + 1) * p - m].mean()))
    stats = metrics.colour_stats(ref, rec)
    return {"delta_e_mean": _r(float(np.mean(per_patch)), 3), "delta_e_max": _r(float(np.max(per_patch)), 3),
            "worst_patch": COLOUR_CHART[int(np.argmax(per_patch))][0],
            "per_patch": _r(per_patch, 3), "patches": [name for name, _ in COLOUR_CHART],
            "clip": {k: _r(float(stats[k]), 3) for k in ("delta_e_mean", "delta_e_p95")}, "frames": n,
            "_chart": {"input": ref[0], "output": rec[0]}}


RECOVERY_UNITS = 1.0  # a frame is recovered when its output differs from the single-scene clip's by < 1/255


def _settle(diff: list[float]) -> int | None:
    """Frames until ``diff`` stays below RECOVERY_UNITS; None when it never does inside the clip."""
    for i in range(len(diff)):
        if all(d < RECOVERY_UNITS for d in diff[i:]):
            return i
    return None


def motion_probe(model: Any, size: int, frames: int) -> dict[str, Any]:
    """Textured pan at increasing speeds; a scene cut compared with the A-only and B-only clips *output to output*
    (so the model's own error on the texture, the same in both, cancels)."""
    pans = [pan(size, frames, v) for v in PAN_SPEEDS]
    cut = min(frames - 1, frames // 2 + 2)
    a_only, b_only = pan(size, frames, 1, seed=1), pan(size, frames, 1, seed=2, start=-cut)
    cut_clip = torch.cat([a_only[:, :, :cut], b_only[:, :, cut:]], 2)
    x = torch.cat(pans + [cut_clip, a_only, b_only], 0)
    y, _ = code(model, x)
    psnr, mae = _psnr_per_frame(x, y), _mae_per_frame(x, y)
    n = len(PAN_SPEEDS)
    ref = torch.cat([y[n + 1:n + 2, :, :cut], y[n + 2:n + 3, :, cut:]], 2)  # what each frame would be without the cut
    diff = ((y[n:n + 1] - ref).abs().mean(dim=(1, 3, 4))[0] * 127.5).tolist()
    after, before = diff[cut:], diff[:cut]
    rec = _settle(after)
    return {"speeds": list(PAN_SPEEDS), "psnr": _r(psnr[:n].mean(1).tolist(), 3), "mae": _r(mae[:n].mean(1).tolist(), 3),
            "scene_cut": {"cut_frame": cut, "output_change": _r(diff, 3), "mae": _r(mae[n].tolist(), 3),
                          "mae_a_only": _r(mae[n + 1].tolist(), 3), "mae_b_only": _r(mae[n + 2].tolist(), 3),
                          "psnr": _r(psnr[n].tolist(), 3), "recovery_frames": rec, "recovered": rec is not None,
                          "frames_changed_before_cut": int(sum(d >= RECOVERY_UNITS for d in before))}}


def frame_count_probe(model: Any, size: int, frames: int) -> dict[str, Any]:
    card = model.card
    k = max(1, (frames - 1) // 4)
    cases = []
    for t in sorted({1, 4 * k, 4 * k + 1}):
        x = pan(size, t, 1)
        y, _ = code(model, x)
        cases.append({"frames": t, "padded_to": pad_frames_to_rule(t, card.frame_rule),
                      "latent_frames": card.latent_shape(t, size, size)[1],
                      "psnr": _r(_psnr_per_frame(x, y)[0].tolist(), 3)})
    return {"rule": card.frame_rule, "cases": cases}


def _latent_slots(z: Latent) -> list[tuple[list[str], int, str]]:
    """Where a 'latent frame' is: index j along axis 2 of the latent (each part of a latent with parts; parts with
    the same length on that axis together). Returns (parts, j, label); the label is just j for a one-part latent."""
    if not z.has_parts:
        return [([z.main_name], j, str(j)) for j in range(z.main.shape[2])]
    groups: dict[int, list[str]] = {}
    for key, v in z.items():
        groups.setdefault(v.shape[2], []).append(key)
    return [(keys, j, f"{'+'.join(keys)}[{j}]") for length, keys in groups.items() for j in range(length)]


def _perturbed(z: Latent, parts: list[str], j: int, gen: torch.Generator) -> Latent:
    def bump(v: torch.Tensor) -> torch.Tensor:
        v = v.clone()
        noise = torch.randn(v[:, :, j].shape, generator=gen).to(v.device, v.dtype)
        v[:, :, j] = v[:, :, j] + 0.5 * v.float().std().to(v.dtype) * noise
        return v

    return z.replace(**{k: bump(z[k]) for k in parts})


def receptive_field_probe(model: Any, size: int, frames: int) -> dict[str, Any]:
    """T x T map of output change per perturbed input frame; output change per perturbed latent index.
    Measured on frames of min(size, RF_SIZE) px: the map is about time, and T + 1 clips of T frames are the
    suite's largest cost."""
    card = model.card
    size = min(size, RF_SIZE)
    base = pan(size, frames, 1)
    gen = torch.Generator().manual_seed(7)
    bump = (torch.randint(0, 2, (1, 3, 1, size, size), generator=gen).float() * 2 - 1) * 0.25
    xs = [base]
    for j in range(frames):
        x = base.clone()
        x[:, :, j:j + 1] = (x[:, :, j:j + 1] + bump).clamp(-1, 1)
        xs.append(x)
    y, _ = code(model, torch.cat(xs, 0))
    change = ((y[1:] - y[:1]).abs().mean(dim=(1, 3, 4)) * 127.5).T  # [i][j]: output i, perturbed input j

    device = _device(model)
    xp, (t, h, w) = pad_to_rule(base.to(device), card.spatial_factor, card.frame_rule)
    with torch.inference_mode():
        z = _encode(model, xp)
        y0 = _decode(model, z)[:, :, :t, :h, :w].clamp(-1, 1).float().cpu()
        slots = _latent_slots(z)
        variants = [_perturbed(z, parts, j, gen) for parts, j, _ in slots]
        outs = []
        if not z.has_parts:  # one batched decode per BATCH perturbed latents
            for a in range(0, len(variants), BATCH):
                outs.append(_decode(model, Latent.cat(variants[a:a + BATCH], dim=0)))
        else:
            outs = [_decode(model, v) for v in variants]
        cols = [(torch.cat(outs, 0)[:, :, :t, :h, :w].clamp(-1, 1).float().cpu() - y0).abs().mean(dim=(1, 3, 4))
                * 127.5] if outs else []
    lat = cols[0].T if cols else torch.zeros(frames, 0)
    return {"input_frames": list(range(frames)), "output_frames": list(range(frames)),
            "change": _r(change.tolist(), 4), "groups": temporal_groups(card, frames), "size": size,
            "latent": {"latent_frames": [label for *_, label in slots], "output_frames": list(range(frames)),
                       "change": _r(lat.tolist(), 4)}}


_RUNNERS: dict[str, tuple[str, Callable[[Any, int, int], dict[str, Any]]]] = {
    "spatial": ("spatial_mtf", spatial_probe), "temporal": ("temporal_mtf", temporal_probe),
    "flat": ("flat_field", flat_field_probe), "colour": ("colour_chart", colour_chart_probe),
    "motion": ("motion", motion_probe), "frame_count": ("frame_count", frame_count_probe),
    "receptive_field": ("receptive_field", receptive_field_probe),
}


@dataclass
class ProbeReport:
    """Per model: {json key: measurement}; keys starting with '_' hold arrays for figures (not in the JSON)."""

    size: int
    frames: int
    precision: str = "fp32"  # what was asked (auto|fp32|bf16|fp16)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per model
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # CPU time of this process (shared machines)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: dict[str, dict[str, Any]] = field(default_factory=dict)  # per model: device, precision, precision_notes
    pool: str = "serial"  # how models ran at once: serial | thread | process
    pool_note: str = ""  # why the pool fell back, if it did

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items() if not str(k).startswith("_")}
            return v

        return {"models": {n: clean(m) | {"card": self.cards.get(n, {}), "seconds": round(self.seconds.get(n, 0), 3),
                                              "cpu_seconds": round(self.cpu_seconds.get(n, 0), 3)}
                           | self.ran.get(n, {}) for n, m in self.models.items()},
                "input": {"size": self.size, "frames": self.frames, "precision": self.precision, "pool": self.pool}
                | ({"pool_note": self.pool_note} if self.pool_note else {}),
                "conventions": dict(CONVENTIONS)}


def check_settings(size: int, frames: int) -> tuple[int, int]:
    """Validated (size, frames); ValueError with one line for the visitor otherwise."""
    try:
        size, frames = int(size), int(frames)
    except (TypeError, ValueError):
        raise ValueError("size and frames must be whole numbers") from None
    if not MIN_SIZE <= size <= MAX_SIZE or size % 16:
        raise ValueError(f"probe size must be a multiple of 16 between {MIN_SIZE} and {MAX_SIZE} px (got {size}): "
                         "gratings sit on the frame's DFT grid and every latent grid (8 and 16 px) must tile it")
    if not MIN_FRAMES <= frames <= MAX_FRAMES:
        raise ValueError(f"probe frames must be between {MIN_FRAMES} and {MAX_FRAMES} (got {frames}): the scene cut "
                         "and the 4k / 4k+1 rules need at least one full 4-frame group after frame 0")
    return size, frames


def probe_workers(named_models: dict[str, Any]) -> int:
    """How many models to probe at once: on a CPU, one per core (each with one torch thread), because the
    probe clips are small (64 px) and one model's ops scale badly over two threads (measured: the nine-model
    suite took 29.0 s on two threads and 31.3 CPU-s on one); on a GPU, one."""
    if len(named_models) < 2 or any(_device(m).type != "cpu" for m in named_models.values()):
        return 1
    return max(1, min(len(named_models), os.cpu_count() or 1, torch.get_num_threads()))


def probe_pool() -> str:
    """How concurrent models run by default: ``thread`` (worker threads in this interpreter), or ``process``
    (forked worker processes sharing the loaded weights copy-on-write) where ``VAELAB_PROBE_POOL=process`` asks
    for it and the OS can fork. Threads are the default: on an AVX2 CPU in fp32 both took 49-50 s for the
    nine-model suite (docs/DIAGNOSTICS.md), and forking a busy server process is the riskier of the two. Where
    the ops are fast (bf16 on AMX) the interpreter lock between a probe's small ops made two threaded models run
    1.4x slower each than alone: processes do not share it."""
    import multiprocessing

    asked = os.environ.get("VAELAB_PROBE_POOL", "").strip().lower()
    return "process" if asked == "process" and "fork" in multiprocessing.get_all_start_methods() else "thread"


def _order(named_models: dict[str, Any]) -> list[str]:
    """The most expensive first (video models, then the larger ones), so no worker is left with a long model at
    the end while the others idle."""
    return sorted(named_models, key=lambda n: (named_models[n].card.kind != "video",
                                               -sum(p.numel() for p in named_models[n].parameters())))


def _probe_model(name: str, model: Any, size: int, frames: int, probes: tuple[str, ...], precision: str,
                 tick: Callable[[str], None], cpu_clock: Callable[[], float]
                 ) -> tuple[dict[str, Any], dict[str, Any], float, float]:
    """Every probe on one model: (measurements, what ran, wall s, CPU s); ``tick(message)`` before each probe."""
    t0, c0 = time.perf_counter(), cpu_clock()
    out: dict[str, Any] = {}
    with _running(precision) as run:
        for p in probes:
            tick(f"{name}: {p} ({run.precision})")
            key, fn = _RUNNERS[p]
            out[key] = fn(model, size, frames)
    for k in list(_MEMO):  # list(): a snapshot, other workers insert meanwhile
        if k[0] == id(model):
            _MEMO.pop(k, None)
    ran = {"device": str(_device(model)), "precision": run.precision, "precision_notes": sorted(set(run.notes))}
    return out, ran, time.perf_counter() - t0, cpu_clock() - c0


# What a forked worker reads from its parent's memory: the loaded models, the settings and the message queue
# (set just before the pool forks, cleared after; only model names, messages and results cross processes).
_FORK_JOB: dict[str, Any] = {}
STALL_S = 300.0  # a worker process silent this long (no probe started, none finished) is killed: threads redo it


def _child_started() -> None:
    torch.set_num_threads(1)
    _FORK_JOB["queue"].put(("pid", os.getpid()))


def _probe_in_child(name: str) -> tuple[dict[str, Any], dict[str, Any], float, float]:
    job = _FORK_JOB
    return _probe_model(name, job["models"][name], job["size"], job["frames"], job["probes"],
                        job["precision"][name], lambda msg: job["queue"].put(("tick", msg)), time.process_time)


def _run_in_processes(named_models: dict[str, Any], workers: int, job: dict[str, Any],
                      tick: Callable[[str], None]) -> dict[str, tuple]:
    """``_probe_model`` on every model in ``workers`` forked processes; ``tick`` gets each child's progress.
    Raises ``BrokenProcessPool`` when a worker dies, or is killed after :data:`STALL_S` s of silence (a lock
    held by another thread at the fork can leave a child waiting forever)."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("fork")
    messages = ctx.SimpleQueue()
    _FORK_JOB.clear()
    _FORK_JOB.update(job, models=named_models, queue=messages)
    pids: set[int] = set()
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_child_started) as pool:
            futures = {name: pool.submit(_probe_in_child, name) for name in _order(named_models)}
            pending, heard = set(futures.values()), time.monotonic()
            while pending:
                finished, pending = wait(pending, timeout=0.2)
                if finished:
                    heard = time.monotonic()
                while not messages.empty():
                    kind, payload = messages.get()
                    heard = time.monotonic()
                    if kind == "pid":
                        pids.add(payload)
                    else:
                        tick(payload)
                if pending and time.monotonic() - heard > STALL_S:
                    for pid in pids:
                        with contextlib.suppress(OSError):
                            os.kill(pid, signal.SIGKILL)
                    heard = time.monotonic()  # the pool now breaks; f.result() below raises BrokenProcessPool
            return {name: f.result() for name, f in futures.items()}
    finally:
        _FORK_JOB.clear()


def run_probes(named_models: dict[str, Any], size: int = DEFAULT_SIZE, frames: int = DEFAULT_FRAMES,
               probes: tuple[str, ...] = PROBES,
               progress: Callable[[float, str], None] | None = None, precision: str = "fp32",
               workers: int | None = None, pool: str | None = None) -> ProbeReport:
    """Every probe in ``probes`` on every model ({name: loaded model}) in ``precision`` (``auto|fp32|bf16|fp16``,
    resolved per model's device; fp32, the default, is the float32 path with no autocast); plain data (see
    ``ProbeReport``). A precision the device cannot run (fp16 on a CPU) raises ValueError before any work.
    ``workers`` models are probed at once, each with one torch thread (None: :func:`probe_workers`), in forked
    processes or in threads (``pool``; None: :func:`probe_pool`); the numbers depend on neither (every model's
    clips and measurements are its own)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from ..device import requested_precision, resolve_precision

    size, frames = check_settings(size, frames)
    unknown = [p for p in probes if p not in _RUNNERS]
    if unknown:
        raise ValueError(f"unknown probe(s) {', '.join(unknown)}; choose from {', '.join(PROBES)}")
    if pool not in (None, "thread", "process"):
        raise ValueError(f"pool must be thread or process (got {pool!r})")
    asked = requested_precision(precision, default="fp32")
    resolved = {name: resolve_precision(asked, _device(m), default="fp32") for name, m in named_models.items()}
    report = ProbeReport(size, frames, asked)
    steps = len(named_models) * len(probes)
    done, lock = 0, threading.Lock()
    workers = probe_workers(named_models) if workers is None else max(1, int(workers))
    pool = "serial" if workers == 1 else (pool or probe_pool())
    report.pool = pool

    def tick(message: str) -> None:
        nonlocal done
        with lock:
            if progress:
                progress(done / max(steps, 1), message)
            done += 1

    def one(name: str) -> tuple[dict[str, Any], dict[str, Any], float, float]:
        # one torch thread per worker thread: its own CPU clock; one after another: the process's
        clock = time.thread_time if pool == "thread" else time.process_time
        return _probe_model(name, named_models[name], size, frames, probes, resolved[name], tick, clock)

    global _MEMO_ON
    _MEMO_ON = True
    threads = torch.get_num_threads()
    try:
        results: dict[str, tuple] | None = None
        if pool == "process":
            job = {"size": size, "frames": frames, "probes": probes, "precision": resolved}
            try:
                results = _run_in_processes(named_models, workers, job, tick)
            except (BrokenProcessPool, OSError) as e:  # a worker died (memory), hung or could not start
                report.pool = pool = "thread"
                report.pool_note = f"worker processes failed ({type(e).__name__}: {e}); probed in threads"
                done = 0
        if results is None and pool == "thread":
            torch.set_num_threads(1)
            with ThreadPoolExecutor(workers, thread_name_prefix="probe") as ex:
                futures = {name: ex.submit(one, name) for name in _order(named_models)}
                results = {name: f.result() for name, f in futures.items()}
        if results is None:
            results = {name: one(name) for name in named_models}
    finally:
        torch.set_num_threads(threads)
        _MEMO_ON = False
        _MEMO.clear()
    for name, model in named_models.items():
        report.models[name], report.ran[name], report.seconds[name], report.cpu_seconds[name] = results[name]
        c = model.card
        report.cards[name] = {"kind": c.kind, "spatial_factor": c.spatial_factor,
                              "temporal_factor": c.temporal_factor, "latent_channels": c.latent_channels,
                              "causal": c.causal, "frame_rule": c.frame_rule}
    return report


# --------------------------------------------------------------------------- views on the user's clip


def pareto_front(rate: list[float], quality: list[float]) -> list[bool]:
    """True where no other point has rate <= and quality >= with one strictly better (lower rate is better)."""
    on = []
    for i, (r, q) in enumerate(zip(rate, quality)):
        on.append(not any((r2 <= r and q2 >= q and (r2 < r or q2 > q)) for j, (r2, q2) in enumerate(zip(rate, quality))
                          if j != i))
    return on


def rate_distortion(frames: np.ndarray, recons: dict[str, np.ndarray], named_models: dict[str, Any],
                    precision: str = "fp32") -> dict[str, Any]:
    """Per model on the user's clip (uint8 (T, H, W, 3) and each reconstruction): PSNR, SSIM, CIEDE2000, latent
    floats per pixel (actual encoder output on the padded clip, per input pixel) and, for quantised models
    (``model.quantised``), bits per pixel (indices per frame x log2 codebook size, from ``model.diagnostics``); the Pareto front of PSNR against floats per pixel.
    ``precision`` (resolved: fp32, bf16 or fp16) is the autocast of the latent-size encode (only its shape is read)."""
    from .. import metrics
    from ..engine import to_tensor

    t, h, w, _ = frames.shape
    rows: dict[str, dict[str, Any]] = {}
    for name, model in named_models.items():
        rec = recons[name]
        device = _device(model)
        xp, _ = pad_to_rule(to_tensor(frames, device), model.card.spatial_factor, model.card.frame_rule)
        with torch.inference_mode():
            z = _encode(model, xp, precision)
        bpp = None
        if getattr(model, "quantised", False):  # a codebook: each index costs log2(codebook size) bits
            with torch.inference_mode():
                cb = model.diagnostics(to_tensor(frames, device), reference=None).get("codebook") or {}
            if cb.get("n_embed") and cb.get("frames"):
                per_frame = float(np.sum(cb["counts"])) / cb["frames"]
                bpp = per_frame * math.log2(cb["n_embed"]) / (h * w)
        colour = metrics.colour_stats(frames, rec)
        rows[name] = {"floats_per_pixel": _r(z.numel() / (t * h * w), 5), "bits_per_pixel": _r(bpp, 5),
                      "psnr": _r(float(metrics.psnr_per_frame(frames, rec).mean()), 3),
                      "ssim": _r(float(metrics.ssim_per_frame(frames, rec).mean()), 4),
                      "delta_e_mean": _r(float(colour["delta_e_mean"]), 3)}
    names = list(rows)
    front = pareto_front([rows[n]["floats_per_pixel"] for n in names], [rows[n]["psnr"] for n in names])
    for n, on in zip(names, front):
        rows[n]["pareto"] = on
    return {"models": rows, "frames": int(t), "width": int(w), "height": int(h)}


def motion_resolved_error(frames: np.ndarray, recons: dict[str, np.ndarray],
                          edges: tuple[int, ...] = MOTION_BINS) -> dict[str, Any]:
    """Per-pixel |error| (mean over RGB) binned by the input's motion magnitude |frame_t - frame_t-1| (mean over
    RGB), frames 1..T-1. Frame difference, not optical flow: it needs no extra library or weights and is exactly
    what a temporal VAE sees change, but it mixes speed with local contrast (a fast flat region reads as still)."""
    if len(frames) < 2:
        raise ValueError("motion-resolved error needs at least 2 frames")
    f = frames.astype(np.float32)
    motion = np.abs(f[1:] - f[:-1]).mean(-1).ravel()
    which = np.clip(np.digitize(motion, edges[1:-1], right=False), 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    out = {}
    for name, rec in recons.items():
        err = np.abs(rec[1:].astype(np.float32) - f[1:]).mean(-1).ravel()
        sums = np.bincount(which, weights=err, minlength=len(edges) - 1)
        out[name] = [None if c == 0 else round(float(s / c), 3) for s, c in zip(sums, counts)]
    return {"edges": list(edges), "counts": counts.tolist(), "error": out}
