"""Device and precision choice: which hardware a run uses and in which number format.

One setting for both everywhere (``models.load``, ``engine.run_model``, the CLI's ``--device``/``--precision``,
``VAELAB_PRECISION``, the app's Device/Precision controls):

* device ``auto | cpu | cuda[:i]``: cuda when there is one; an explicit cuda without a GPU falls back to cpu.
* precision ``auto | fp32 | bf16 | fp16``, resolved per device by :func:`resolve_precision`:
  ``auto`` is bf16 on a CUDA GPU that supports it, else fp16; on a CPU bf16 when it has native bf16 units
  (AVX-512 BF16 or AMX, :func:`cpu_bf16_native`), else fp32. fp16 on a CPU is refused (no fast kernels),
  as is bf16 on a GPU without bf16 and on a CPU without native bf16 units: emulated, it is not a choice
  but a trap (measured on an AVX2-only EPYC, one thread: matmul 70 vs 0.72 GFLOP/s, 3x3 conv 86 vs 0.28,
  and oneDNN's bf16 Conv3d refuses to run at all without AVX-512).

Reduced precision means ``torch.autocast`` (:func:`autocast`): weights stay float32 (the master copy in
training), matmuls and convolutions run in the reduced format, and torch keeps reductions (norm statistics,
softmax) accumulating in float32; losses, KL and VQ distances are computed in float32 by the models.
fp32 is the code path as it was before precision existed: no autocast context at all.

No module here imports the rest of vaelab (models/, hub and the engine all import this one).
"""
from __future__ import annotations

import functools
import os
import time
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ENV = "VAELAB_PRECISION"


class PrecisionError(ValueError):
    """An unknown precision, or one the device cannot run."""


def auto_device(pref: str | torch.device | None = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu. An explicit "cuda" without a GPU falls back to cpu."""
    if isinstance(pref, torch.device):
        return pref
    if pref in ("auto", None, ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(pref)


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (Linux), or None where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return set()


def _bf16_faster_by_timing() -> bool:
    """Time one 512x512 matmul in fp32 and under bf16 autocast (best of 3 after a warm-up); keep the faster."""
    a = torch.randn(512, 512)

    def best(ctx) -> float:
        times = []
        for _ in range(4):
            with ctx():
                t0 = time.perf_counter()
                a @ a
                times.append(time.perf_counter() - t0)
        return min(times[1:])

    return best(lambda: torch.autocast("cpu", torch.bfloat16)) < best(nullcontext)


@functools.lru_cache(maxsize=1)
def cpu_bf16_native() -> tuple[bool, str]:
    """(does this CPU compute bf16 natively, how we know). Flags first (``amx_bf16``, ``avx512_bf16``);
    where the flags cannot be read, one timing of both formats decides, once per process."""
    flags = _cpu_flags()
    if flags is not None and flags:
        found = sorted(flags & {"amx_bf16", "avx512_bf16"})
        if found:
            return True, "CPU flags " + "+".join(found)
        if "avx512f" in flags or "avx2" in flags:  # an x86 CPU whose flags we read: no bf16 units
            return False, "no amx_bf16/avx512_bf16 CPU flag"
    faster = _bf16_faster_by_timing()
    return faster, "timed: bf16 matmul " + ("faster" if faster else "not faster") + " than fp32"


def _cuda_bf16(device: torch.device) -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def requested_precision(pref: str | None = None, default: str = "auto") -> str:
    """The precision asked for: ``pref``, else ``VAELAB_PRECISION``, else ``default``; checked, lower-cased."""
    p = (pref or os.environ.get(ENV) or default).strip().lower()
    p = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}.get(p, p)
    if p not in PRECISIONS:
        raise PrecisionError(f"unknown precision {p!r}: choose one of {', '.join(PRECISIONS)}")
    return p


def resolve_precision(pref: str | None, device: str | torch.device | None = "auto", default: str = "auto") -> str:
    """The precision a run on ``device`` actually uses: "fp32", "bf16" or "fp16" (see the module doc)."""
    p = requested_precision(pref, default)
    dev = auto_device(device)
    if dev.type == "cuda":
        if p == "auto":
            return "bf16" if _cuda_bf16(dev) else "fp16"
        if p == "bf16" and not _cuda_bf16(dev):
            raise PrecisionError("bf16 is not supported natively by this GPU: choose fp16 or fp32")
        return p
    if dev.type == "cpu":
        if p == "auto":
            return "bf16" if cpu_bf16_native()[0] else "fp32"
        if p == "fp16":
            raise PrecisionError("fp16 runs only on a GPU; on a CPU choose bf16 or fp32")
        if p == "bf16":
            native, how = cpu_bf16_native()
            if not native:
                raise PrecisionError(f"bf16 would be emulated on this CPU ({how}), about 100x slower than "
                                     "fp32: choose auto or fp32")
        return p
    return "fp32" if p == "auto" else p


def precision_reason(precision: str, device: str | torch.device) -> str:
    """One line on why ``auto`` picks what it picks here (shown next to the choice)."""
    dev = auto_device(device)
    if dev.type == "cpu":
        native, how = cpu_bf16_native()
        return f"cpu: native bf16 {'yes' if native else 'no'} ({how})"
    if dev.type == "cuda":
        return f"cuda: bf16 {'supported' if _cuda_bf16(dev) else 'not supported'}"
    return dev.type


def autocast(precision: str, device: str | torch.device) -> ContextManager:
    """The context a forward pass runs in: nothing for fp32 (the unchanged path), else ``torch.autocast``."""
    if precision == "fp32":
        return nullcontext()
    dev = auto_device(device)
    return torch.autocast(dev.type, DTYPES[precision])
