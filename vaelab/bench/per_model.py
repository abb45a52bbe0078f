"""One model's encode/decode timings, counted FLOPs, efficiency and peak memory."""
from __future__ import annotations

import statistics
from typing import Any

import torch

from ..models.base import VAE
from ._common import _clip, _device, _load_model, _r
from .flops import model_flops
from .memory import _cuda_memory, measure_memory_cpu
from .timing import _stage, _time_pair, matmul_peak_gflops

# Families whose fp16 decoder is known to overflow: on CUDA they also get an fp16 encoder + fp32 decoder
# variant (the "upcast VAE" recipe of SDXL pipelines).
DECODER_UPCAST = ("sd-vae",)


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
                return model.decode(z.to(torch.float32))
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
    flops_method = "meta device"
    try:
        flops_enc, flops_dec = model_flops(name, model.config, x.shape)
    except Exception as e:  # noqa: BLE001 - an op without a meta kernel: no count, never one counted another way
        flops_enc = flops_dec = None
        flops_method = f"not counted: the meta-device count failed ({type(e).__name__}: {e})"[:240]
    with torch.inference_mode():
        te, td, z, y = _time_pair(lambda: model.encode(x), model.decode, repeats, dev)
        result: dict[str, Any] = {
            "name": name, "weights": used, "notes": notes, "device": str(dev), "dtype": "float32",
            "threads": torch.get_num_threads() if dev.type == "cpu" else None,
            "input_shape": list(x.shape), "latent_shape": list(z.main.shape), "params": model.num_params(),
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

