"""Time and peak memory vs clip length and resolution."""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from ..engine import run_model
from ._common import VARIANTS, _device, _load_model, _r, _sync, _wide, run_variant
from .memory import _cuda_memory, measure_memory_cpu


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

