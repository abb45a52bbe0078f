"""Speed, FLOPs and memory of the VAE Lab models, and our sd-vae against diffusers' AutoencoderKL.

``vaelab bench`` calls :func:`run_bench` and writes the JSON it returns; docs/PERFORMANCE.md
explains every number. The short version (also in the report under ``"conventions"``):

* **time**: encode and decode are timed separately with ``time.perf_counter`` around one call
  on the whole clip (CUDA synchronised before and after), under ``torch.inference_mode``, after
  one untimed warm-up call; the reported value is the median over ``repeats`` calls.
* **FLOPs**: counted once by ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add of
  conv / matmul / attention; norms, activations, resampling and other elementwise ops are not
  counted) on a copy of the model on the meta device (shapes only: no compute, and attention is
  counted, which the fused CPU attention kernel is not), divided by the number of frames.
* **achieved GFLOP/s**: counted FLOPs / median seconds; **peak ratio**: that over this machine's
  fp32 matmul GFLOP/s (:func:`matmul_peak_gflops`, best of ``repeats``) measured in the same run.
* **memory**: on CUDA, ``torch.cuda.max_memory_allocated`` during the stage minus what was
  allocated before it. On CPU, the peak resident-set increase of the stage, measured in a fresh
  subprocess (``python -m vaelab.bench --one NAME ...``) from ``/proc/self/status``: the kernel's
  high-water mark ``VmHWM`` is reset (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0) before the
  stage and read after it, so the value is ``VmHWM_after - VmRSS_before``. Where the reset is not
  allowed each stage gets its own subprocess and a value that could not be separated from the
  set-up peak is flagged ``"exact": false`` (then it is an upper bound).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import models
from .engine import auto_device, configure_threads, run_model
from .models.base import VAE, ModelCard, pad_to_rule

# Families whose fp16 decoder is known to overflow: on CUDA they also get an fp16 encoder + fp32 decoder
# variant (the "upcast VAE" recipe of SDXL pipelines).
DECODER_UPCAST = ("sd-vae",)

CONVENTIONS: dict[str, str] = {
    "median_s": "median wall-clock seconds of one call on the whole clip (1 x 3 x frames x size x size, float32), "
                "after one untimed warm-up call, under torch.inference_mode; CUDA is synchronised around each call",
    "times_s": "every timed call, in order",
    "frames_per_s": "frames / median_s for that stage alone; reconstruct_frames_per_s uses encode + decode",
    "flops_per_frame": "FLOPs counted by torch.utils.flop_counter.FlopCounterMode for one call on the clip, / frames, "
                       "on a meta-device copy of the model (same shapes, no compute; see flops_counted_on); "
                       "2 FLOPs per multiply-add of conv, matmul and attention; norms, activations, resampling, "
                       "the Haar transform and other elementwise ops are not counted, so it is a lower bound",
    "achieved_gflops": "counted FLOPs / median_s / 1e9",
    "peak_ratio": "achieved_gflops / matmul_peak.gflops of the same run (fp32 square matmul, best of repeats); "
                  "convolutions rarely reach it, so this is an efficiency indicator, not a hard limit",
    "peak_mem_mib": "CUDA: torch.cuda.max_memory_allocated during the stage minus memory allocated before it. "
                    "CPU: VmHWM after the stage minus VmRSS before it, in a fresh subprocess, with the high-water "
                    "mark reset through /proc/self/clear_refs; exact=false marks an upper bound",
    "threads": "torch intra-op threads used for every CPU number (matmul peak, timings and memory probes alike)",
    "reference_sd.ratio": "ours / diffusers median seconds for the same SD-config weights and input, timed "
                          "interleaved in one process (order alternates each repeat); < 1 means ours is faster",
    "loadavg": "1/5/15-minute load average at start and end: other work on the machine slows every number",
}


# --- small helpers ---------------------------------------------------------------------------

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


# --- the building blocks ---------------------------------------------------------------------

def matmul_peak_gflops(n: int | None = None, repeats: int = 5, device: str | torch.device | None = None) -> dict:
    """This machine's measured fp32 matmul rate: 2 n^3 FLOPs / best time over ``repeats`` (after a warm-up).

    ``n`` defaults to 1024 on CPU and 4096 on CUDA (1024 is too small to fill a GPU).
    """
    dev = _device(device)
    n = n or (4096 if dev.type == "cuda" else 1024)
    inner = 10 if dev.type == "cuda" else 1  # a single GPU matmul is too short to time alone
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dev)
    b = torch.randn(n, n, generator=g).to(dev)
    times = []
    with torch.inference_mode():
        torch.mm(a, b)
        for _ in range(max(1, repeats)):
            dt, _ = _timed(lambda: [torch.mm(a, b) for _ in range(inner)], dev)
            times.append(dt / inner)
    flops = 2 * n ** 3
    out = {"gflops": _r(flops / min(times) / 1e9, 5), "median_gflops": _r(flops / statistics.median(times) / 1e9, 5),
           "n": n, "repeats": len(times), "best_s": _r(min(times)), "dtype": "float32", "device": str(dev),
           "threads": torch.get_num_threads()}
    if dev.type == "cuda":
        out["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return out


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs of one call ``fn(*args, **kwargs)`` as counted by ``FlopCounterMode`` (conv/matmul/attention only)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def _meta_count(make: Callable[[], Any], encode: Callable[[Any, torch.Tensor], torch.Tensor],
                decode: Callable[[Any, torch.Tensor], torch.Tensor], x_shape) -> tuple[int, int]:
    """Encode and decode FLOPs of a model built by ``make()`` on the meta device (shapes only, no compute).

    Why meta: on CPU, ``scaled_dot_product_attention`` runs a fused kernel that FlopCounterMode has no formula
    for, so attention would count as 0 there; on meta it decomposes into counted matmuls, and the count is the
    same whatever device the timings ran on.
    """
    with torch.device("meta"):
        m = make()
        x = torch.empty(tuple(x_shape))
        enc = count_flops(encode, m, x)
        z = encode(m, x)
        dec = count_flops(decode, m, z)
    return enc, dec


def model_flops(name: str, config: dict[str, Any], x_shape) -> tuple[int, int]:
    """(encode, decode) FLOPs of family ``name`` with ``config`` for an input of ``x_shape`` (B, 3, T, H, W)."""
    cls = models.model_class(name)
    return _meta_count(lambda: cls(config).eval(), lambda m, x: m.encode(x), lambda m, z: m.decode(z), x_shape)


# --- CPU memory: /proc/self/status in a fresh subprocess ------------------------------------

def _status_kib(field: str) -> int | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible.

    ``VAELAB_BENCH_NO_HWM_RESET=1`` pretends it is not, to exercise the one-process-per-stage fallback."""
    if os.environ.get("VAELAB_BENCH_NO_HWM_RESET") == "1":
        return False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _measure_rss(fn: Callable[[], Any]) -> tuple[dict, Any]:
    """Run ``fn`` once and return its peak RSS increase (MiB) with how it was measured, and its output."""
    gc.collect()
    _malloc_trim()
    reset = _reset_hwm()
    rss0, hwm0 = _status_kib("VmRSS"), _status_kib("VmHWM")
    out = fn()
    hwm1 = _status_kib("VmHWM")
    if rss0 is None or hwm0 is None or hwm1 is None:
        return {"peak_mem_mib": None, "exact": False, "method": "unavailable (no /proc/self/status)"}, out
    # Without a reset, a stage that never rose above the set-up's peak leaves VmHWM unchanged: the value is then
    # only an upper bound (the set-up peak above the stage's starting RSS).
    exact = reset or hwm1 > hwm0
    return {"peak_mem_mib": _r((hwm1 - rss0) / 1024, 5), "exact": exact,
            "method": "VmHWM reset via clear_refs" if reset else "VmHWM without reset"}, out


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
    from .engine import to_tensor, to_uint8

    if variant == "engine":
        return run_model(model, clip_thwc)
    if variant == "one-shot":
        return to_uint8(model.reconstruct(to_tensor(clip_thwc, next(model.parameters()).device)))
    if variant == "tiled":
        return run_model(model, clip_thwc, tile=SCALING_TILE, overlap=SCALING_TILE // 4)
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def _probe(name: str, size: int, frames: int, weights: str, threads: int, stages: list[str], mode: str) -> dict:
    """Body of ``python -m vaelab.bench --one``: measure the listed stages once in this (fresh) process."""
    torch.set_num_threads(threads)
    dev = torch.device("cpu")
    notes: list[str] = []
    model, used = _load_model(name, weights, dev, notes)
    result: dict[str, Any] = {"name": name, "weights": used, "threads": threads, "mode": mode,
                              "reset_supported": None}
    with torch.inference_mode():
        if mode in VARIANTS:  # a uint8 clip through one of the sweep's paths (see run_variant)
            w = _wide(size)
            clip = np.random.default_rng(0).integers(0, 256, (frames, size, w, 3), dtype=np.uint8)
            result["engine"], _ = _measure_rss(lambda: run_variant(model, clip, mode))
        else:
            x = _clip(model.card, size, frames, dev)
            z = None
            if "encode" in stages:
                result["encode"], z = _measure_rss(lambda: model.encode(x))
            if "decode" in stages:
                if z is None:  # decode-only probe: a latent of the right shape, without an encoder pass
                    t = x.shape[2]
                    z = torch.randn(1, *model.card.latent_shape(t, x.shape[3], x.shape[4]))
                result["decode"], _ = _measure_rss(lambda: model.decode(z))
    result["reset_supported"] = _reset_hwm()
    return result


def _run_probe(name: str, size: int, frames: int, weights: str, threads: int, stages: list[str],
               mode: str = "stages", timeout: float = 900) -> dict:
    pkg_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([pkg_root] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    cmd = [sys.executable, "-m", "vaelab.bench", "--one", name, "--size", str(size), "--frames", str(frames),
           "--weights", weights, "--threads", str(threads), "--stages", ",".join(stages), "--mode", mode]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"memory probe timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"memory probe failed (exit {proc.returncode}): {tail[:200]}"}
    return json.loads(lines[-1])


def measure_memory_cpu(name: str, size: int, frames: int, weights: str = "lab", threads: int | None = None,
                       mode: str = "stages") -> dict:
    """Peak RSS increase of encode and decode (or of a whole ``run_model`` call, mode="engine") in fresh processes."""
    threads = threads or torch.get_num_threads()
    if mode in VARIANTS:
        return _run_probe(name, size, frames, weights, threads, ["engine"], mode=mode)
    res = _run_probe(name, size, frames, weights, threads, ["encode", "decode"])
    if "error" not in res and not res.get("reset_supported") and not res["decode"]["exact"]:
        # no HWM reset here: the encode peak hides the decode peak, so measure decode in its own process
        res["decode"] = _run_probe(name, size, frames, weights, threads, ["decode"]).get("decode", res["decode"])
    return res


def _wide(size: int) -> int:
    """Width of a 16:9 frame whose short side is ``size`` (multiple of 8)."""
    return max(8, int(round(size * 16 / 9 / 8)) * 8)


# --- per model -------------------------------------------------------------------------------

def _stage(seconds: list[float], flops: int, frames: int, peak_gflops: float | None) -> dict:
    med = statistics.median(seconds)
    achieved = flops / med / 1e9 if med > 0 else float("nan")
    return {"median_s": _r(med), "times_s": [_r(s) for s in seconds], "frames_per_s": _r(frames / med, 5),
            "flops_per_frame": int(round(flops / frames)), "gflops_per_frame": _r(flops / frames / 1e9, 5),
            "achieved_gflops": _r(achieved, 5),
            "peak_ratio": _r(achieved / peak_gflops, 4) if peak_gflops else None}


def _time_pair(enc: Callable[[], Any], dec: Callable[[Any], Any], repeats: int,
               device: torch.device) -> tuple[list[float], list[float], Any, Any]:
    """Warm up once, then time encode and decode ``repeats`` times each (interleaved)."""
    z = enc()
    y = dec(z)
    _sync(device)
    te, td = [], []
    for _ in range(max(1, repeats)):
        dt, z = _timed(enc, device)
        te.append(dt)
        dt, y = _timed(lambda: dec(z), device)
        td.append(dt)
    return te, td, z, y


def _cuda_memory(fn: Callable[[], Any], device: torch.device) -> tuple[dict, Any]:
    _sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = fn()
    _sync(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {"peak_mem_mib": _r((peak - base) / 2 ** 20, 5), "exact": True,
            "absolute_peak_mib": _r(peak / 2 ** 20, 5), "method": "torch.cuda.max_memory_allocated - allocated before"}, out


def _precision_variants(name: str, model: VAE, x: torch.Tensor, y_fp32: torch.Tensor, repeats: int,
                        device: torch.device, fp32: dict) -> dict:
    """CUDA only: autocast fp16/bf16 timings, and fp16 encoder + fp32 decoder for families that need the upcast."""
    variants = [("fp16", torch.float16, False), ("bf16", torch.bfloat16, False)]
    if name in DECODER_UPCAST:
        variants.append(("fp16+fp32-decoder", torch.float16, True))
    out = {}
    for label, dtype, upcast in variants:
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            out[label] = {"skipped": "bf16 not supported on this GPU"}
            continue

        def enc(dtype=dtype):
            with torch.autocast("cuda", dtype=dtype):
                return model.encode(x)

        def dec(z, dtype=dtype, upcast=upcast):
            if upcast:
                return model.decode(z.float())
            with torch.autocast("cuda", dtype=dtype):
                return model.decode(z)

        te, td, _, y = _time_pair(enc, dec, repeats, device)
        y = y.float()
        e, d = statistics.median(te), statistics.median(td)
        out[label] = {"autocast": str(dtype).replace("torch.", ""), "decoder_fp32": upcast,
                      "encode_median_s": _r(e), "decode_median_s": _r(d),
                      "speedup_vs_fp32_encode": _r(fp32["encode"]["median_s"] / e, 4),
                      "speedup_vs_fp32_decode": _r(fp32["decode"]["median_s"] / d, 4),
                      "finite": bool(torch.isfinite(y).all()),
                      "max_abs_diff_vs_fp32": _r(float((y - y_fp32).abs().max()), 4)}
    return out


def bench_model(name: str, size: int = 128, frames: int = 8, repeats: int = 3, weights: str = "lab",
                device: str | torch.device | None = None, peak: dict | None = None, memory: bool = True,
                precisions: bool = True) -> dict:
    """Encode and decode timings, counted FLOPs, efficiency and peak memory of one model on a random clip.

    ``peak`` is a :func:`matmul_peak_gflops` result from the same run (measured here when None);
    ``memory=False`` skips the memory measurement (on CPU it costs a subprocess); on CUDA,
    ``precisions`` adds fp16/bf16 autocast timings (and fp16 + fp32 decoder for ``DECODER_UPCAST``).
    """
    dev = _device(device)
    notes: list[str] = []
    model, used = _load_model(name, weights, dev, notes)
    if peak is None:
        peak = matmul_peak_gflops(device=dev)
    x = _clip(model.card, size, frames, dev)
    t_in = x.shape[2]
    if t_in != frames:
        notes.append(f"{frames} frames padded to {t_in} ({model.card.frame_rule} rule); rates use {t_in} frames")
    try:
        flops_enc, flops_dec = model_flops(name, model.config, x.shape)
        flops_method = "meta device"
    except Exception as e:  # noqa: BLE001 - an op without a meta kernel: count on the real device instead
        with torch.inference_mode():
            flops_enc = count_flops(model.encode, x)
            flops_dec = count_flops(model.decode, model.encode(x))
        flops_method = f"{dev.type} (meta failed: {type(e).__name__}); fused attention kernels may count as 0"
    with torch.inference_mode():
        te, td, z, y = _time_pair(lambda: model.encode(x), model.decode, repeats, dev)
        result: dict[str, Any] = {
            "name": name, "weights": used, "notes": notes, "device": str(dev), "dtype": "float32",
            "threads": torch.get_num_threads() if dev.type == "cpu" else None,
            "input_shape": list(x.shape), "latent_shape": list(z.shape), "params": model.num_params(),
            "matmul_peak_gflops": peak["gflops"], "flops_counted_on": flops_method,
            "encode": _stage(te, flops_enc, t_in, peak["gflops"]),
            "decode": _stage(td, flops_dec, t_in, peak["gflops"]),
        }
        result["reconstruct_frames_per_s"] = _r(t_in / (result["encode"]["median_s"] + result["decode"]["median_s"]), 5)
        if memory and dev.type == "cuda":
            result["encode"]["memory"], z = _cuda_memory(lambda: model.encode(x), dev)
            result["decode"]["memory"], _ = _cuda_memory(lambda: model.decode(z), dev)
        if precisions and dev.type == "cuda":
            result["precisions"] = _precision_variants(name, model, x, y.float(), repeats, dev, result)
    if memory and dev.type == "cpu":
        probe = measure_memory_cpu(name, size, frames, weights=used, threads=torch.get_num_threads())
        for stage in ("encode", "decode"):
            result[stage]["memory"] = probe.get(stage) or {"peak_mem_mib": None, "error": probe.get("error")}
    for stage in ("encode", "decode"):
        mem = result[stage].get("memory") or {}
        result[stage]["peak_mem_mib"] = mem.get("peak_mem_mib")
    return result


# --- our sd-vae vs diffusers -----------------------------------------------------------------

def _diffusers_autoencoder(cfg: dict[str, Any], size: int):
    import diffusers

    n = len(cfg["block_out_channels"])
    return diffusers.AutoencoderKL(
        in_channels=cfg["in_channels"], out_channels=cfg["out_channels"],
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg["block_out_channels"]), layers_per_block=cfg["layers_per_block"],
        latent_channels=cfg["latent_channels"], norm_num_groups=cfg["norm_num_groups"], sample_size=size,
    ).eval()


def bench_conv3d_kernels(names: tuple[str, ...] = ("iv-vae", "walt", "cv-vae", "videovae-plus"), frames: int = 9,
                         size: tuple[int, int] = (128, 224), repeats: int = 2, weights: str = "lab") -> dict:
    """Our ``_blocks.Conv3d`` (oneDNN for batch-1 CPU clips) vs stock ``nn.Conv3d`` dispatch, in one process.

    For each model: best-of-``repeats`` encode+decode seconds of one (1, 3, frames, H, W) clip with each
    dispatch (same weights, same input), their ratio, and the largest output difference (float rounding)."""
    from .models._blocks import Conv3d

    ours, stock = Conv3d._conv_forward, torch.nn.Conv3d._conv_forward
    rows = []
    x = torch.rand(1, 3, frames, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    try:
        for name in names:
            notes: list[str] = []
            model, used = _load_model(name, weights, torch.device("cpu"), notes)
            xx = x if model.card.frame_rule == "1+4k" else x[:, :, : frames // 4 * 4]
            best, outs = {}, {}
            for kind, fn in (("ours", ours), ("stock", stock)):
                Conv3d._conv_forward = fn
                with torch.inference_mode():
                    model.decode(model.encode(xx))  # warm-up
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        outs[kind] = model.decode(model.encode(xx))
                        best[kind] = min(best.get(kind, float("inf")), time.perf_counter() - t0)
            rows.append({"name": name, "weights": used, "ours_s": _r(best["ours"], 4), "stock_s": _r(best["stock"], 4),
                         "speedup": _r(best["stock"] / best["ours"], 3),
                         "max_abs_diff": float((outs["ours"] - outs["stock"]).abs().max())})
    finally:
        Conv3d._conv_forward = ours
    return {"input": [1, 3, frames, *size], "threads": torch.get_num_threads(), "repeats": repeats, "rows": rows,
            "method": "same process, same weights and input; stock = torch.nn.Conv3d's own dispatch"}


def bench_reference_sd(size: int = 256, repeats: int = 2, config: dict[str, Any] | None = None, batch: int = 1,
                       device: str | torch.device | None = None, count: bool = True, seed: int = 0) -> dict:
    """Our sd-vae vs ``diffusers.AutoencoderKL`` with the same random weights (SD config unless ``config``).

    Checks decode(encode(x)) agrees to 1e-4 and times both interleaved in this process; ``ratio`` is
    ours / diffusers median seconds (< 1: ours faster).
    """
    from .models.sd_vae import SD_CONFIG

    try:
        import diffusers
    except ImportError:
        return {"skipped": "diffusers is not installed (pip install 'vaelab[test]')"}
    dev = _device(device)
    cfg = {**SD_CONFIG, **(config or {})}
    torch.manual_seed(seed)
    ref = _diffusers_autoencoder(cfg, size)
    ours = models.build("sd-vae", cfg).eval()
    ours.load_diffusers_state_dict(ref.state_dict())
    ref.to(dev).requires_grad_(False)
    ours.to(dev).requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(dev)
    fns = {
        "ours": (lambda: ours.encode_frames(x), lambda z: ours.decode_frames(z)),
        "diffusers": (lambda: ref.encode(x).latent_dist.mode(), lambda z: ref.decode(z).sample),
    }
    times: dict[str, dict[str, list[float]]] = {k: {"encode": [], "decode": []} for k in fns}
    with torch.inference_mode():
        z = {k: enc() for k, (enc, _) in fns.items()}  # warm-up, and the parity check
        y = {k: dec(z[k]) for k, (_, dec) in fns.items()}
        latent_diff = float((z["ours"] - z["diffusers"]).abs().max())
        max_abs_diff = float((y["ours"] - y["diffusers"]).abs().max())
        for r in range(max(1, repeats)):
            order = ["ours", "diffusers"] if r % 2 == 0 else ["diffusers", "ours"]
            for stage in ("encode", "decode"):
                for k in order:
                    enc, dec = fns[k]
                    dt, _ = _timed(enc if stage == "encode" else (lambda: dec(z[k])), dev)
                    times[k][stage].append(dt)
    flops = {}
    if count:
        shape = x.shape
        flops["ours"] = dict(zip(("encode", "decode"), _meta_count(
            lambda: models.build("sd-vae", cfg).eval(), lambda m, x: m.encode_frames(x),
            lambda m, z: m.decode_frames(z), shape)))
        flops["diffusers"] = dict(zip(("encode", "decode"), _meta_count(
            lambda: _diffusers_autoencoder(cfg, size), lambda m, x: m.encode(x).latent_dist.mode(),
            lambda m, z: m.decode(z).sample, shape)))
    med = {k: {s: statistics.median(v) for s, v in st.items()} for k, st in times.items()}
    procs = getattr(ref, "attn_processors", {}) or {}
    result = {
        "config": {k: cfg[k] for k in ("block_out_channels", "layers_per_block", "latent_channels", "norm_num_groups")},
        "input_shape": list(x.shape), "device": str(dev), "dtype": "float32", "threads": torch.get_num_threads(),
        "diffusers_version": diffusers.__version__,
        "diffusers_attention": sorted({type(p).__name__ for p in procs.values()}),
        "max_abs_diff": _r(max_abs_diff, 4), "latent_max_abs_diff": _r(latent_diff, 4),
        "parity_ok": bool(max_abs_diff <= 1e-4),
        "repeats": max(1, repeats),
        "times_s": {k: {s: [_r(t) for t in v] for s, v in st.items()} for k, st in times.items()},
        "median_s": {k: {s: _r(v) for s, v in st.items()} for k, st in med.items()},
        "ratio": {s: _r(med["ours"][s] / med["diffusers"][s], 4) for s in ("encode", "decode")},
    }
    if flops:
        result["flops"] = flops
        result["flops_equal"] = flops["ours"] == flops["diffusers"]
    return result


# --- scaling ---------------------------------------------------------------------------------

def bench_scaling(name: str, lengths=(17, 33, 65, 129), sizes=(128, 256, 480, 720), weights: str = "lab",
                  device: str | torch.device | None = None, repeats: int = 1, length_size: int = 128,
                  size_frames: int = 8, memory: bool = True, variants=("engine",)) -> dict:
    """Time and peak memory vs clip length and resolution, for each path in ``variants`` (see ``run_variant``).

    Lengths are run at ``length_size`` px short side, sizes with ``size_frames`` frames; frames are 16:9
    (short side x round(16/9 short side)). "engine" streams causal models and batches image models, so
    its memory should stay flat with length; "one-shot" shows what it would be without; "tiled" bounds
    memory with resolution. One warm-up call on the smallest point, then the median of ``repeats`` calls
    per point; peak memory in a fresh process per point (CPU). On 2 CPU cores 720p points take minutes.
    """
    dev = _device(device)
    notes: list[str] = []
    model, used = _load_model(name, weights, dev, notes)
    rng = np.random.default_rng(0)
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {v!r}")

    def point(t: int, s: int, variant: str) -> dict:
        w = _wide(s)
        clip = rng.integers(0, 256, (t, s, w, 3), dtype=np.uint8)
        secs = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            out = run_variant(model, clip, variant)
            _sync(dev)
            secs.append(time.perf_counter() - t0)
        total = statistics.median(secs)
        row = {"variant": variant, "frames": t, "height": s, "width": w, "total_s": _r(total),
               "frames_per_s": _r(t / total, 5)}
        if hasattr(out, "notes"):
            row["notes"] = [n for n in out.notes if "streamed" in n or "tiled" in n or "tiling" in n]
        if memory:
            if dev.type == "cuda":
                mem, _ = _cuda_memory(lambda: run_variant(model, clip, variant), dev)
            else:
                mem = measure_memory_cpu(name, s, t, weights=used, mode=variant)
                mem = mem.get("engine") or {"peak_mem_mib": None, "error": mem.get("error")}
            row["peak_mem_mib"] = mem.get("peak_mem_mib")
            row["memory_exact"] = mem.get("exact")
        return row

    run_model(model, rng.integers(0, 256, (min(lengths), min(sizes), _wide(min(sizes)), 3), dtype=np.uint8))
    return {"name": name, "weights": used, "notes": notes, "device": str(dev), "threads": torch.get_num_threads(),
            "repeats": max(1, repeats), "variants": list(variants),
            "paths": {v: run_variant.__doc__.split("* \"%s\":" % v)[1].split("* ")[0].split(";")[0].strip()
                      for v in variants},
            "vs_length": [point(t, length_size, v) for v in variants for t in lengths],
            "vs_size": [point(size_frames, sz, v) for v in variants for sz in sizes]}


def _stream_probe(name: str, path: str, frames: int, size: int | None, weights: str, threads: int,
                  chunk_latents: int, checkpoints: tuple[int, ...] = (), tile: int | None = None,
                  overlap: int = 0) -> dict:
    """Body of ``python -m vaelab.bench --stream``: one streamed file reconstruction in this fresh process.

    ``peak_rss_at`` gives the process's peak RSS (VmHWM) when the reconstruction first reached each of
    ``checkpoints`` frames (and the end): flat values mean memory does not grow with clip length."""
    from .engine import stream_file

    torch.set_num_threads(threads)
    notes: list[str] = []
    model, used = _load_model(name, weights, torch.device("cpu"), notes)
    gc.collect()
    _malloc_trim()
    base = _status_kib("VmRSS")
    marks = sorted({m for m in (checkpoints or ()) if m <= frames} | {frames})
    at: dict[int, float] = {}

    def mark(done: int) -> None:  # peak RSS so far, the first time each mark is reached
        for m in marks:
            if done >= m and m not in at:
                hwm_now = _status_kib("VmHWM")
                at[m] = _r(hwm_now / 1024, 5) if hwm_now else None

    res = stream_file(model, path, size=size, max_frames=frames, chunk_latents=chunk_latents, on_chunk=mark,
                      tile=tile, overlap=overlap)
    hwm = _status_kib("VmHWM")
    psnr = res.pop("psnr")
    return res | {"weights": used, "threads": threads, "mean_psnr": _r(float(np.mean(psnr)), 4),
                  "seconds": _r(res["seconds"], 4), "frames_per_s": _r(len(psnr) / res["seconds"], 4),
                  "rss_after_load_mib": _r(base / 1024, 5) if base else None,
                  "peak_rss_mib": _r(hwm / 1024, 5) if hwm else None,
                  "peak_increase_mib": _r((hwm - base) / 1024, 5) if hwm and base else None,
                  "peak_rss_at": {str(k): v for k, v in at.items()}}


def bench_stream_memory(name: str, path: str | None = None, lengths=(33, 66, 132), size: int | None = None,
                        weights: str = "lab", threads: int | None = None, chunk_latents: int = 1,
                        timeout: float = 3600, tile: int | None = None, overlap: int = 0) -> dict:
    """Peak RSS of a streamed whole-file reconstruction vs clip length, one fresh process per length.

    Default clip: the bundled bigbuckbunny.mp4 at its native 1280x720 (``size=None``). The frames are
    decoded lazily and never held whole (``engine.stream_file``), so the peak should not grow with length:
    the figure of merit is ``peak_rss_mib`` at 132 frames over that at 33. ``tile``/``overlap`` (px) also
    tile every chunk in space (per-tile caches), which bounds the peak by a tile instead of a frame."""
    from .io import example_path

    path = str(path or example_path("bigbuckbunny"))
    threads = threads or torch.get_num_threads()
    pkg_root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([pkg_root] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    rows = []
    for t in lengths:
        cmd = [sys.executable, "-m", "vaelab.bench", "--stream", name, "--path", path, "--frames", str(t),
               "--weights", weights, "--threads", str(threads), "--chunk-latents", str(chunk_latents)]
        cmd += ["--size", str(size or 0), "--lengths", str(t)]  # 0 = native; the child's default is 128
        if tile:
            cmd += ["--tile", str(tile), "--overlap", str(overlap)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
            lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
            row = json.loads(lines[-1]) if proc.returncode == 0 and lines else {
                "error": f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['no output'])[-1][:200]}"}
        except subprocess.TimeoutExpired:
            row = {"error": f"timed out after {timeout:.0f} s"}
        rows.append({"requested_frames": t} | row)
    peaks = [r.get("peak_rss_mib") for r in rows]
    flat = (peaks[-1] / peaks[0]) if all(peaks) else None
    return {"name": name, "clip": Path(path).name, "size": size or "native", "chunk_latents": chunk_latents,
            "tile": tile, "overlap": overlap if tile else 0,
            "rows": rows, "peak_ratio_longest_vs_shortest": _r(flat, 4) if flat else None,
            "method": "VmHWM of a fresh process per length (model load included), frames decoded lazily"}


# --- the whole report ------------------------------------------------------------------------

def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu, "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if info["cuda"]:
        info["cuda_runtime"] = torch.version.cuda
        info["tf32"] = {"matmul": bool(torch.backends.cuda.matmul.allow_tf32),
                        "cudnn": bool(torch.backends.cudnn.allow_tf32)}
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError:
        info["diffusers"] = None
    return info


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run_bench(names: list[str], size: int = 128, frames: int = 8, reference: bool = True, repeats: int = 3,
              weights: str = "lab", threads: int | None = None, memory: bool = True,
              device: str | torch.device | None = None, reference_size: int | None = None,
              reference_repeats: int = 2) -> dict:
    """Everything ``vaelab bench`` reports: machine, matmul peak, one entry per model, the diffusers reference.

    ``threads`` sets torch's intra-op threads (None: the app's choice, ``engine.configure_threads``);
    the reference runs at ``reference_size`` (default ``size``).
    """
    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    else:
        configure_threads()
    try:
        return _run_bench(names, size, frames, reference, repeats, weights, memory, _device(device),
                          reference_size, reference_repeats)
    finally:
        torch.set_num_threads(prev_threads)  # a library call should not leave the process's thread count changed


def _run_bench(names, size, frames, reference, repeats, weights, memory, dev, reference_size, reference_repeats):
    load_start = _loadavg()
    t0 = time.perf_counter()
    peak = matmul_peak_gflops(device=dev)
    report: dict[str, Any] = {
        "machine": {**machine_info(), "device": str(dev), "loadavg_start": load_start},
        "settings": {"size": size, "frames": frames, "repeats": repeats, "weights": weights, "memory": memory,
                     "reference_size": (reference_size or size) if reference else None,
                     "reference_repeats": reference_repeats if reference else None},
        "matmul_peak": peak,
        "models": {n: bench_model(n, size=size, frames=frames, repeats=repeats, weights=weights, device=dev,
                                  peak=peak, memory=memory) for n in names},
        "reference_sd": (bench_reference_sd(size=reference_size or size, repeats=reference_repeats, device=dev)
                         if reference else None),
        "conventions": CONVENTIONS,
    }
    report["machine"]["loadavg_end"] = _loadavg()
    report["wall_s"] = _r(time.perf_counter() - t0, 4)
    return report


# --- python -m vaelab.bench ------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaelab.bench",
                                description="Memory probe (--one), scaling sweep (--scaling) or reference (--reference).")
    p.add_argument("--one", metavar="NAME", help="measure CPU peak RSS of one model in this fresh process")
    p.add_argument("--scaling", metavar="NAME", help="time/memory vs clip length and resolution")
    p.add_argument("--reference", action="store_true", help="our sd-vae vs diffusers at the SD config")
    p.add_argument("--conv3d", action="store_true", help="our Conv3d dispatch vs stock nn.Conv3d on the video models")
    p.add_argument("--stream", metavar="NAME", help="peak RSS of one streamed file reconstruction (fresh process)")
    p.add_argument("--stream-sweep", metavar="NAME", help="--stream at each of --lengths, one process each")
    p.add_argument("--path", help="video file for --stream (default: bundled bigbuckbunny.mp4)")
    p.add_argument("--chunk-latents", type=int, default=1)
    p.add_argument("--tile", type=int, default=0, help="--stream/--stream-sweep: spatial tile (px; 0 = untiled)")
    p.add_argument("--overlap", type=int, default=16, help="tile overlap (px)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--weights", default="lab")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--stages", default="encode,decode")
    p.add_argument("--mode", default="stages", choices=["stages", *VARIANTS])
    p.add_argument("--variants", default="engine", help="scaling: comma-separated paths among " + ", ".join(VARIANTS))
    p.add_argument("--lengths", default="17,33,65,129")
    p.add_argument("--sizes", default="128,256,480,720")
    p.add_argument("--json", help="also write the result here")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.one:
        res = _probe(a.one, a.size, a.frames, a.weights, a.threads or torch.get_num_threads(),
                     a.stages.split(","), a.mode)
    elif a.scaling:
        res = bench_scaling(a.scaling, lengths=tuple(int(v) for v in a.lengths.split(",")),
                            sizes=tuple(int(v) for v in a.sizes.split(",")), weights=a.weights,
                            repeats=a.repeats, length_size=a.size, size_frames=a.frames,
                            variants=tuple(a.variants.split(",")))
    elif a.reference:
        res = bench_reference_sd(size=a.size, repeats=a.repeats)
    elif a.conv3d:
        res = bench_conv3d_kernels(frames=a.frames if a.frames != 8 else 9, repeats=a.repeats)
    elif a.stream:
        from .io import example_path

        res = _stream_probe(a.stream, a.path or str(example_path("bigbuckbunny")), a.frames, a.size or None,
                            a.weights, a.threads or torch.get_num_threads(), a.chunk_latents,
                            tuple(int(v) for v in a.lengths.split(",")), tile=a.tile or None, overlap=a.overlap)
    elif a.stream_sweep:
        res = bench_stream_memory(a.stream_sweep, a.path, lengths=tuple(int(v) for v in a.lengths.split(",")),
                                  size=a.size or None, weights=a.weights, threads=a.threads or None,
                                  chunk_latents=a.chunk_latents, tile=a.tile or None, overlap=a.overlap)
    else:
        p.error("give --one NAME, --scaling NAME, --reference, --conv3d, --stream NAME or --stream-sweep NAME")
    text = json.dumps(res)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
