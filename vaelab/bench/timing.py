"""Timing: this machine's matmul and convolution peaks (fp32 and bf16, one run), timed encode/decode
pairs and their per-stage summary, and what the machine was doing."""
from __future__ import annotations

import os
import platform
import re
import statistics
from pathlib import Path
from typing import Any, Callable

import torch

from ._common import _device, _r, _sync, _timed


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


def _stage(seconds: list[float], flops: int | None, frames: int, peak_gflops: float | None) -> dict:
    """Timing summary of one stage; ``flops`` None (not countable on the meta device) leaves the rates None."""
    med = statistics.median(seconds)
    out = {"median_s": _r(med), "times_s": [_r(s) for s in seconds], "frames_per_s": _r(frames / med, 5),
           "flops_per_frame": None, "gflops_per_frame": None, "achieved_gflops": None, "peak_ratio": None}
    if flops is None:
        return out
    achieved = flops / med / 1e9 if med > 0 else float("nan")
    return out | {"flops_per_frame": int(round(flops / frames)), "gflops_per_frame": _r(flops / frames / 1e9, 5),
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

