"""Memory probes: CUDA allocator peaks, and CPU peak RSS (VmHWM) of a stage or a streamed file in a fresh
process (``python -m vaelab.bench --one`` / ``--stream``)."""
from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ._common import VARIANTS, _clip, _load_model, _r, _sync, _wide, run_variant


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


def _cuda_memory(fn: Callable[[], Any], device: torch.device) -> tuple[dict, Any]:
    _sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = fn()
    _sync(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {"peak_mem_mib": _r((peak - base) / 2 ** 20, 5), "exact": True,
            "absolute_peak_mib": _r(peak / 2 ** 20, 5), "method": "torch.cuda.max_memory_allocated - allocated before"}, out


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
                    z = model.sample_latent(*x.shape[2:])
                result["decode"], _ = _measure_rss(lambda: model.decode(z))
    result["reset_supported"] = _reset_hwm()
    return result


def _run_probe(name: str, size: int, frames: int, weights: str, threads: int, stages: list[str],
               mode: str = "stages", timeout: float = 900) -> dict:
    pkg_root = str(Path(__file__).resolve().parents[2])
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


def _stream_probe(name: str, path: str, frames: int, size: int | None, weights: str, threads: int,
                  chunk_latents: int, checkpoints: tuple[int, ...] = (), tile: int | None = None,
                  overlap: int = 0) -> dict:
    """Body of ``python -m vaelab.bench --stream``: one streamed file reconstruction in this fresh process.

    ``peak_rss_at`` gives the process's peak RSS (VmHWM) when the reconstruction first reached each of
    ``checkpoints`` frames (and the end): flat values mean memory does not grow with clip length."""
    from ..engine import stream_file

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
    from ..io import example_path

    path = str(path or example_path("bigbuckbunny"))
    threads = threads or torch.get_num_threads()
    pkg_root = str(Path(__file__).resolve().parents[2])
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

