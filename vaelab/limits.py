"""Every per-request limit of VAE Lab in one place, and the one path that checks a form against them.

The tabs and the CLI read their bounds from here (frames, working resolution, work caps, memory rule,
caption length, upload budget, state lifetime) and validate what a visitor sent with :func:`check_form`
/ :func:`number` before any work starts: a bad value gives one line (``ValueError``), never
"cannot convert float NaN to integer".

The work in flight can be cancelled: a compute handler runs inside :func:`cancel_scope` and the engine
and pipeline call :func:`check_cancelled` between models and chunks, so a cancelled job stops at the
next chunk (``Cancelled``) instead of running on unseen.

Memory rule (CPU): a request's peak is estimated per model from that family's *measured* cost
(``MEMORY_COST``: fixed MiB plus MiB per mega frame-pixel of the frames it holds at once, from
``scripts/memory_cost.py``, which measures ``pipeline.reconstruct_clip`` in fresh processes with the
``VmHWM`` method of ``vaelab bench``). Models run one after another, so the request's estimate is the
largest of them; above ``MEMORY_BUDGET_MIB`` the request is refused before it starts. Non-causal video
models run in their paper's independent frame windows (``engine.stream_window``), so their cost
follows the window, not the clip.
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --- the numbers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Form:
    """Bounds of one tab's clip form (frames from the start, working resolution = short side in px) and its
    work cap (frames x pixels x passes per request)."""

    default_frames: int
    max_frames: int
    default_size: int
    min_size: int
    max_size: int
    work_cpu: int
    work_gpu: int

    def work_cap(self, device: Any) -> int:
        return self.work_gpu if _device_type(device) == "cuda" else self.work_cpu


# Reconstruct (and Inside the model / Wavelets, which reuse its input): frames x pixels x models
RECONSTRUCT = Form(default_frames=8, max_frames=64, default_size=128, min_size=32, max_size=512,
                   work_cpu=4_000_000, work_gpu=200_000_000)
# Structure x Dynamics: frames x pixels of the aligned pair (eight decodes of it run per request)
SWAP = Form(default_frames=16, max_frames=32, default_size=128, min_size=64, max_size=256,
            work_cpu=1_000_000, work_gpu=8_000_000)
# Latent space: frames x pixels x encoder passes (a video model counts 3, the image reference 1)
LATENTS = Form(default_frames=8, max_frames=32, default_size=128, min_size=32, max_size=256,
               work_cpu=8_000_000, work_gpu=400_000_000)
LATENT_POINTS = (5_000, 500, 50_000)  # default, min, max plotted points

MAX_CAPTION_CHARS = 300  # the caption embedder reads at most 32 words anyway
MAX_FILE_MB = int(os.environ.get("VAELAB_MAX_FILE_MB", "200"))
QUEUE_SIZE = int(os.environ.get("VAELAB_QUEUE_SIZE", "16"))
MAX_FPS = 240.0  # a variable-frame-rate clip is resampled to at most this rate (io.VideoLimits.max_fps)
# What one browser session may keep on the server: its last results live this long after their last
# update (gr.State time_to_live), and its uploads are budgeted per hour.
STATE_TTL_S = float(os.environ.get("VAELAB_STATE_TTL_S", "900"))
STATE_SESSIONS = int(os.environ.get("VAELAB_STATE_SESSIONS", "2000"))  # sessions Gradio keeps state for
UPLOAD_BUDGET_MB = int(os.environ.get("VAELAB_UPLOAD_BUDGET_MB", "1000"))  # per client address per hour
UPLOAD_WINDOW_S = 3600.0
MEMORY_BUDGET_MIB = float(os.environ.get("VAELAB_MEMORY_BUDGET_MIB", "1536"))  # per request on CPU


def _device_type(device: Any) -> str:
    return str(getattr(device, "type", device) or "cpu").split(":")[0]


# --- one validation path -------------------------------------------------------------------------

def number(value: Any, name: str, lo: float, hi: float, integer: bool = True) -> Any:
    """``value`` from a form as an int (or float) within [lo, hi]; ``ValueError`` with one line otherwise.

    Refuses None, booleans, text that is not a number, NaN and infinities by name (Gradio hands NaN
    through a Number box untouched)."""
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be {kind} (got {value!r}).")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be {kind} (got {str(value)[:40]!r}).") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number (got {v}).")
    if integer:
        if v != int(v):
            raise ValueError(f"{name} must be a whole number (got {v:g}).")
        v = int(v)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be between {lo:,} and {hi:,} (got {v:,}).")
    return v


def check_form(frames: Any, size: Any, form: Form = RECONSTRUCT) -> tuple[int, int]:
    """Frames and working resolution from a form, as ints within ``form``'s bounds; ``ValueError`` otherwise."""
    frames = number(frames, "Frames", 1, form.max_frames)
    size = number(size, "Working resolution", form.min_size, form.max_size)
    return frames, size


@dataclass(frozen=True)
class ReconstructOptions:
    frames: int
    size: int
    tile: int | None  # px, None = untiled
    overlap: int
    chunk: int  # latent frames per streamed chunk of causal video models


def check_reconstruct(upload: Any, frames: Any, size: Any, tiling: Any = False, tile: Any = 64, overlap: Any = 16,
                      chunk: Any = 4) -> ReconstructOptions:
    """Every setting of the Reconstruct form checked at once, before the clip is decoded."""
    check_upload_name(upload or None)
    frames, size = check_form(frames, size, RECONSTRUCT)
    tiled = bool(tiling)
    tile_px = number(tile, "Tile size", 16, 256) if tiled else None
    overlap_px = number(overlap or 0, "Overlap", 0, 64) if tiled else 0
    return ReconstructOptions(frames, size, tile_px, overlap_px, number(chunk or 4, "Chunk", 1, 8))


def check_work(t: int, h: int, w: int, passes: int, device: Any, form: Form = RECONSTRUCT, what: str = "request",
               hint: str = "Lower the frames, the resolution or the number of models.") -> None:
    """``ValueError`` when frames x pixels x passes is over ``form``'s cap for ``device``."""
    cap = form.work_cap(device)
    if t * h * w * passes > cap:
        dev = _device_type(device).upper()
        raise ValueError(f"This {what} is too heavy for {dev}: {t} frames x {w}x{h} px x {passes} = "
                         f"{t * h * w * passes / 1e6:.2f} M (limit {cap / 1e6:g} M). {hint}")


def check_upload_name(path: Any) -> None:
    """An uploaded file must have a real name: refuse an empty one, ``.`` or ``..`` (one line, no path)."""
    if path is None:
        return
    name = Path(str(path)).name
    if not str(path).strip() or name in ("", ".", "..") or not name.strip(". "):
        raise ValueError("The uploaded file has no usable name (empty, '.' or '..'); rename it and upload again.")


def caption(text: Any) -> str:
    """A caption from a form, cut to ``MAX_CAPTION_CHARS``."""
    return str(text or "")[:MAX_CAPTION_CHARS]


# --- memory rule ---------------------------------------------------------------------------------

# Measured by scripts/memory_cost.py (fresh process per point, pipeline.reconstruct_clip on CPU, lab weights,
# VmHWM reset): MiB = fixed + per_mpx * (frames held at once x H x W / 1e6) + per_clip_mpx * (T x H x W / 1e6).
# "window" is how many frames a model holds at once (image models: a batch of 8; causal video models:
# frame 0 then 16-frame chunks; non-causal video models: their paper window; 0 = the whole clip).
MEMORY_COST: dict[str, dict[str, float]] = {}
_COST_FILE = Path(__file__).with_name("memory_cost.json")


def memory_cost() -> dict[str, dict[str, float]]:
    """Per-family measured cost (see ``MEMORY_COST``), read once from ``vaelab/memory_cost.json``."""
    if not MEMORY_COST and _COST_FILE.exists():
        import json

        MEMORY_COST.update(json.loads(_COST_FILE.read_text())["families"])
    return MEMORY_COST


def estimate_mib(name: str, t: int, h: int, w: int, tile: int | None = None) -> float | None:
    """Estimated peak RSS increase (MiB) of reconstructing a T x H x W clip with ``name`` on CPU, or None for
    a model without a measurement (production adapters). With ``tile`` (px) a model holds one tile at once."""
    c = memory_cost().get(name)
    if c is None:
        return None
    held = t if not c["window"] else min(t, int(c["window"]))
    hh, ww = (min(h, tile), min(w, tile)) if tile else (h, w)
    return c["fixed"] + c["per_mpx"] * held * hh * ww / 1e6 + c["per_clip_mpx"] * t * h * w / 1e6


def check_memory(names: list[str], t: int, h: int, w: int, device: Any,
                 budget_mib: float | None = None, tile: int | None = None) -> None:
    """``ValueError`` when a CPU request's estimated peak (the largest of its models; they run one after the
    other) is over ``MEMORY_BUDGET_MIB``. GPUs are bounded by the work cap and CUDA's own errors."""
    if _device_type(device) == "cuda":
        return
    budget = MEMORY_BUDGET_MIB if budget_mib is None else budget_mib
    over = {n: e for n in names if (e := estimate_mib(n, t, h, w, tile)) is not None and e > budget}
    if over:
        n, e = max(over.items(), key=lambda kv: kv[1])
        raise ValueError(f"This request needs too much memory for this server: {n} at {t} frames x {w}x{h} px "
                         f"needs about {e / 1024:.1f} GB (limit {budget / 1024:.1f} GB per request). "
                         "Lower the frames or the resolution, or switch on tiling.")


# --- cancellation --------------------------------------------------------------------------------

class Cancelled(Exception):
    """The request that owns this work was cancelled (the visitor left or pressed stop)."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


_SCOPE = threading.local()


_HOOK: list = []


def _install_module_hook() -> None:
    """Check the token before every module's forward too (not only between chunks): one chunk of a video
    model can take seconds on a CPU, one layer takes milliseconds. Installed once, on the first scope (the
    app's compute handlers); outside a scope the hook is one thread-local lookup."""
    if _HOOK:
        return
    with _HOOK_LOCK:
        if not _HOOK:
            from torch.nn.modules.module import register_module_forward_pre_hook

            _HOOK.append(register_module_forward_pre_hook(lambda module, args: check_cancelled()))


_HOOK_LOCK = threading.Lock()


@contextlib.contextmanager
def cancel_scope(token: CancelToken) -> Iterator[CancelToken]:
    """Work in this thread inside the block stops at the next :func:`check_cancelled` (between chunks, and
    before any module's forward) once ``token`` is cancelled."""
    _install_module_hook()
    prev = getattr(_SCOPE, "token", None)
    _SCOPE.token = token
    try:
        yield token
    finally:
        _SCOPE.token = prev


def check_cancelled() -> None:
    """Raise :class:`Cancelled` when the current thread's request was cancelled (a no-op outside a scope)."""
    token = getattr(_SCOPE, "token", None)
    if token is not None and token.cancelled:
        raise Cancelled()
