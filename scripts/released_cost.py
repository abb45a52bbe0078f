"""CPU cost of the released IV-VAE and open-LiteVAE architectures at full size (random weights: cost does not
depend on weight values), through the app's path (``engine.run_model``: causal models streamed, frame 0 then 16
frames per chunk; image models 8 frames at a time).

Every (model, size, precision) runs in a fresh process: one warm-up-free reconstruction of a 17-frame uint8 clip,
wall time (``time.perf_counter``) and peak RSS increase (``vaelab.bench._measure_rss``, VmHWM reset). Writes JSON
lines to stdout, e.g.::

    nice python scripts/released_cost.py --sizes 128,256 > /tmp/released_cost.jsonl

``--bf16`` adds a run under ``torch.autocast("cpu", torch.bfloat16)``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

MODELS = ("iv-vae:ivvae_z16_dim64", "iv-vae:ivvae_z16_dim96", "iv-vae:ivvae_z4_dim64", "litevae:olitevaeB_im_f8c12")


def build(spec: str):
    family, variant = spec.split(":")
    if family == "iv-vae":
        from vaelab.models.iv_vae import RELEASED, ReleasedIVVAE

        return ReleasedIVVAE(RELEASED[variant])
    from vaelab.models.litevae import RELEASED, ReleasedLiteVAE

    return ReleasedLiteVAE(RELEASED[variant])


def one(spec: str, size: int, frames: int, precision: str) -> dict:
    import contextlib

    import numpy as np
    import torch

    from vaelab.bench.memory import _measure_rss
    from vaelab.engine import run_model

    model = build(spec).eval().requires_grad_(False)
    clip = np.random.default_rng(0).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    ctx = torch.autocast("cpu", torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    t0 = time.perf_counter()
    with torch.inference_mode(), ctx:
        mem, _ = _measure_rss(lambda: run_model(model, clip))
    return {"model": spec, "size": size, "frames": frames, "precision": precision, "threads": torch.get_num_threads(),
            "seconds": round(time.perf_counter() - t0, 2), "peak_rss_mib": mem.get("peak_mem_mib"),
            "rss_exact": mem.get("exact"), "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        spec, size, prec = args.one.split("@")
        print(json.dumps(one(spec, int(size), args.frames, prec)))
        return
    for spec in args.models.split(","):
        for size in map(int, args.sizes.split(",")):
            for prec in ["fp32"] + (["bf16"] if args.bf16 else []):
                out = subprocess.run([sys.executable, __file__, "--one", f"{spec}@{size}@{prec}",
                                      "--frames", str(args.frames)], capture_output=True, text=True, check=False)
                line = out.stdout.strip().splitlines()[-1:] or [json.dumps(
                    {"model": spec, "size": size, "precision": prec, "error": out.stderr.strip()[-300:]})]
                print(line[0], flush=True)


if __name__ == "__main__":
    main()
