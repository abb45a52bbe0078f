"""CPU cost of the released-size VQGAN f16 and CV-VAE (random weights: the architecture's cost, not a result).

    python scripts/official_cost.py [--threads 2] [--dtype float32] > cost.json

Each point runs in its own subprocess (so its peak RSS is its own): build the released architecture
(``vqgan.RELEASED_CONFIGS["vqgan_imagenet_f16_16384"]``, ``cv_vae.RELEASED_CONFIG``) with random weights,
one encode and one decode (no warm-up) of a random clip under ``torch.no_grad``, wall time of each and the peak
resident memory of the process (``ru_maxrss``, weights included). Points: VQGAN one frame at 128 and 256 px;
CV-VAE 17 frames at 128 and 256 px (one temporal chunk, one spatial tile: below 576 px).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

POINTS = [("vqgan", 1, 128), ("vqgan", 1, 256), ("cv-vae", 17, 128), ("cv-vae", 17, 256)]


def point(name: str, frames: int, size: int, threads: int, dtype: str) -> dict:
    import torch

    from vaelab import models
    from vaelab.models import cv_vae, vqgan

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = vqgan.RELEASED_CONFIGS["vqgan_imagenet_f16_16384"] if name == "vqgan" else cv_vae.RELEASED_CONFIG
    dt = getattr(torch, dtype)
    model = models.build(name, config).eval().to(dt)
    x = (torch.rand(1, 3, frames, size, size) * 2 - 1).to(dt)
    with torch.no_grad():
        t0 = time.perf_counter()
        z = model.encode(x)
        t1 = time.perf_counter()
        y = model.decode(z)
        t2 = time.perf_counter()
    return {"model": name, "frames": frames, "size": size, "dtype": dtype, "threads": threads,
            "params": sum(p.numel() for p in model.parameters()), "latent": list(z.main.shape), "out": list(y.shape),
            "encode_s": round(t1 - t0, 3), "decode_s": round(t2 - t1, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--models", default="vqgan,cv-vae", help="comma-separated subset")
    ap.add_argument("--point", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.point:
        name, frames, size = args.point
        print(json.dumps(point(name, int(frames), int(size), args.threads, args.dtype)))
        return
    rows = []
    for name, frames, size in [p for p in POINTS if p[0] in args.models.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--dtype", args.dtype,
                              "--point", name, str(frames), str(size)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]) | {"loadavg_1m": os.getloadavg()[0]})
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"cpu": os.cpu_count(), "torch_threads": args.threads, "points": rows}, indent=1))


if __name__ == "__main__":
    main()
