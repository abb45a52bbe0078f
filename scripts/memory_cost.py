"""Measure each family's per-request memory cost on CPU and write ``vaelab/memory_cost.json``.

For every model with weights, three requests go through ``pipeline.reconstruct_clip`` (the Reconstruct
tab's path: reconstruction, metrics, the family's extras), each in a fresh process, after a tiny warm-up
request (so lazy one-time loads are not counted) and with the kernel's high-water mark reset (``VmHWM``,
as ``vaelab bench`` measures). The peak RSS increase is fitted as

    MiB = fixed + per_mpx * (frames held at once x H x W / 1e6) + per_clip_mpx * (T x H x W / 1e6)

``fixed`` and ``per_mpx`` come from two window-long clips at two sizes (what the model holds at once);
``per_clip_mpx`` from a clip two windows long (what it adds beyond the window), but never below what grows
with the whole clip whatever the model (the uint8 input and reconstruction, per-frame metrics, the
side-by-side panel), measured once at the largest allowed clip (64 x 160 x 376) without a model. The
estimate thus passes through or above all three measured points.
The limits module uses it to refuse, before any work, a CPU request whose estimate is over the budget.

    PYTHONPATH=$PWD nice python scripts/memory_cost.py [--models a,b] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = ((96, 160), (160, 288))  # (H, W): the small and the large point
CLIP = (64, 160, 376)  # the largest clip one CPU request may hold (64 frames at 160 px short side, 16:7)


def window(name: str) -> int:
    """Frames a model holds at once in ``engine.run_model`` (see its docstring)."""
    from vaelab.engine import get_model, stream_window

    model = get_model(name, "lab", "cpu")
    kind, n = stream_window(model)
    if kind == "causal":
        return 17  # frame 0, then 4 x chunk_latents (the UI's default 4) frames with layer caches
    return n


def one(name: str, t: int, h: int, w: int, threads: int) -> dict:
    import numpy as np
    import torch

    from vaelab import pipeline
    from vaelab.bench.memory import _reset_hwm, _status_kib
    from vaelab.engine import get_model

    torch.set_num_threads(threads)
    get_model(name, "lab", "cpu")
    rng = np.random.default_rng(0)
    pipeline.reconstruct_clip(rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8), [name], device="cpu")
    clip = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    exact = _reset_hwm()
    rss0 = _status_kib("VmRSS")
    t0 = time.perf_counter()
    pipeline.reconstruct_clip(clip, [name], device="cpu")
    sec = time.perf_counter() - t0
    return {"peak_mib": round((_status_kib("VmHWM") - rss0) / 1024, 1), "exact": exact, "seconds": round(sec, 1)}


def whole_clip(t: int, h: int, w: int, threads: int) -> dict:
    """Peak RSS increase of everything in a request that follows the whole clip, not the model."""
    import numpy as np
    import torch

    from vaelab import metrics
    from vaelab.bench.memory import _reset_hwm, _status_kib
    from vaelab.io import side_by_side

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    metrics.clip_metrics(small, small[::-1].copy())
    clip = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    exact = _reset_hwm()
    rss0 = _status_kib("VmRSS")
    recon = np.concatenate([clip[i:i + 8] ^ 1 for i in range(0, t, 8)], 0)  # the engine's concatenation
    metrics.clip_metrics(clip, recon)
    metrics.temporal_flicker(recon)
    metrics.temporal_flicker(clip)
    side_by_side([clip, recon], ["input", "model"])
    return {"peak_mib": round((_status_kib("VmHWM") - rss0) / 1024, 1), "exact": exact}


def probe(name: str, t: int, h: int, w: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--one", name, str(t), str(h), str(w), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{name} {t}x{h}x{w}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit(name: str, threads: int, per_clip: float, points: list[dict] | None = None) -> dict:
    """The family's coefficients; ``points`` (from an earlier run) are refitted instead of measured again."""
    win = window(name)
    (h1, w1), (h2, w2) = SIZES
    pts = [(win, h1, w1), (2 * win, h1, w1), (win, h2, w2)]
    res = points or [probe(name, *p, threads) for p in pts]
    p1, p2, p3 = (r["peak_mib"] for r in res)
    px1, px3 = h1 * w1 / 1e6, h2 * w2 / 1e6
    # The larger point carries some whole-clip growth too; it is counted here as well (an over-estimate).
    per_mpx = max(0.0, (p3 - p1) / (win * (px3 - px1)))
    fixed = max(0.0, p1 - per_mpx * win * px1)
    # The clip two windows long: what it adds beyond the window is this family's whole-clip growth (streamed
    # latents, output chunks, allocator growth), never taken below the model-free part measured at full size.
    per_clip = max(per_clip, (p2 - fixed - per_mpx * win * px1) / (2 * win * px1))
    return {"window": win, "fixed": round(fixed, 1), "per_mpx": round(per_mpx, 1), "per_clip_mpx": round(per_clip, 1),
            "points": [{"frames": r.get("frames", t), "height": r.get("height", h), "width": r.get("width", w),
                        **{k: v for k, v in r.items() if k not in ("frames", "height", "width")}}
                       for (t, h, w), r in zip(pts, res)]}


def markdown(data: dict) -> str:
    """The measured points, the fitted coefficients and what the rule says at a few request shapes."""
    from vaelab import limits

    lines = ["| model | window (frames) | fixed MiB | MiB / Mpx held | measured peaks MiB (frames x H x W) | "
             "estimate 8x128x228 | 64x128x228 | 64x160x376 |", "|---|---:|---:|---:|---|---:|---:|---:|"]
    for n, f in data["families"].items():
        pts = ", ".join(f"{p['peak_mib']:.0f} ({p['frames']}x{p['height']}x{p['width']})" for p in f["points"])
        est = [limits.estimate_mib(n, *shape) for shape in ((8, 128, 228), (64, 128, 228), (64, 160, 376))]
        cells = [f"{e:.0f}" + ("" if e <= limits.MEMORY_BUDGET_MIB else " refused") for e in est]
        lines.append(f"| {n} | {f['window']} | {f['fixed']:.0f} | {f['per_mpx']:.0f} | {pts} | " + " | ".join(cells) + " |")
    c = data.get("whole_clip")
    if c:
        lines.append("")
        lines.append(f"Whole-clip part (every model): {c['peak_mib']:.0f} MiB at {c['frames']}x{c['height']}x{c['width']} "
                     f"= {c['peak_mib'] / (c['frames'] * c['height'] * c['width'] / 1e6):.0f} MiB per mega frame-pixel "
                     "(the floor of every family's per-clip term).")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", nargs=4, metavar=("NAME", "T", "H", "W"))
    p.add_argument("--models", default="")
    p.add_argument("--whole-clip", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--refit", action="store_true", help="refit the stored points (no model runs)")
    p.add_argument("--markdown", action="store_true", help="print the stored table as Markdown (no model runs)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "vaelab" / "memory_cost.json"))
    a = p.parse_args()
    if a.one:
        name, t, h, w = a.one
        print(json.dumps(one(name, int(t), int(h), int(w), a.threads)))
        return 0
    if a.whole_clip:
        print(json.dumps(whole_clip(*CLIP, a.threads)))
        return 0
    if a.markdown:
        print(markdown(json.loads(Path(a.out).read_text())))
        return 0
    from vaelab import models

    names = [n for n in (a.models.split(",") if a.models else models.names()) if n in models.all_names()]
    out = Path(a.out)
    data = json.loads(out.read_text()) if out.exists() else {"families": {}}
    data["method"] = __doc__.split("\n\n")[1].replace("\n", " ")
    data["threads"] = a.threads
    if a.refit and "whole_clip" in data:
        clip = data["whole_clip"]
    else:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out_ = subprocess.run([sys.executable, __file__, "--whole-clip", "--threads", str(a.threads)],
                              capture_output=True, text=True, env=env, timeout=1800, check=True)
        clip = json.loads(out_.stdout.strip().splitlines()[-1]) | dict(zip(("frames", "height", "width"), CLIP))
        data["whole_clip"] = clip
    per_clip = clip["peak_mib"] / (CLIP[0] * CLIP[1] * CLIP[2] / 1e6)
    for n in names:
        old = data["families"].get(n, {}).get("points") if a.refit else None
        if a.refit and not old:
            continue
        data["families"][n] = fit(n, a.threads, per_clip, old)
        print(n, json.dumps({k: v for k, v in data["families"][n].items() if k != "points"}), flush=True)
        out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
