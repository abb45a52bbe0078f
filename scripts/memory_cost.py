"""Measure each family's per-request memory cost on CPU and write ``vaelab/memory_cost.json``.

For every model with weights, three requests go through ``pipeline.reconstruct_clip`` (the Reconstruct
tab's path: reconstruction, metrics, the family's extras), each in a fresh process, after a tiny warm-up
request (so lazy one-time loads are not counted) and with the kernel's high-water mark reset (``VmHWM``,
as ``vaelab bench`` measures). The peak RSS increase is fitted as

    MiB = fixed + per_mpx * (frames held at once x H x W / 1e6) + per_clip_mpx * (T x H x W / 1e6)

from a window-long clip, a clip two windows long and a window-long clip at a larger size. The limits
module uses it to refuse, before any work, a CPU request whose estimate is over the budget.

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
    from vaelab.bench import _reset_hwm, _status_kib
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


def probe(name: str, t: int, h: int, w: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--one", name, str(t), str(h), str(w), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{name} {t}x{h}x{w}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit(name: str, threads: int) -> dict:
    win = window(name)
    (h1, w1), (h2, w2) = SIZES
    pts = [(win, h1, w1), (2 * win, h1, w1), (win, h2, w2)]
    res = [probe(name, *p, threads) for p in pts]
    p1, p2, p3 = (r["peak_mib"] for r in res)
    px1, px3 = h1 * w1 / 1e6, h2 * w2 / 1e6
    per_clip = max(0.0, (p2 - p1) / (win * px1))  # the second window only adds what grows with the clip
    per_mpx = max(0.0, (p3 - p1 - per_clip * win * (px3 - px1)) / (win * (px3 - px1)))
    fixed = max(0.0, p1 - per_mpx * win * px1 - per_clip * win * px1)
    return {"window": win, "fixed": round(fixed, 1), "per_mpx": round(per_mpx, 1), "per_clip_mpx": round(per_clip, 1),
            "points": [{"frames": t, "height": h, "width": w, **r} for (t, h, w), r in zip(pts, res)]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", nargs=4, metavar=("NAME", "T", "H", "W"))
    p.add_argument("--models", default="")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "vaelab" / "memory_cost.json"))
    a = p.parse_args()
    if a.one:
        name, t, h, w = a.one
        print(json.dumps(one(name, int(t), int(h), int(w), a.threads)))
        return 0
    from vaelab import models

    names = [n for n in (a.models.split(",") if a.models else models.names()) if n in models.all_names()]
    out = Path(a.out)
    data = json.loads(out.read_text()) if out.exists() else {"families": {}}
    data["method"] = __doc__.split("\n\n")[1].replace("\n", " ")
    data["threads"] = a.threads
    for n in names:
        data["families"][n] = fit(n, a.threads)
        print(n, json.dumps({k: v for k, v in data["families"][n].items() if k != "points"}), flush=True)
        out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
