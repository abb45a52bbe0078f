"""fp32 vs bf16 per model on the bundled example (17 frames, short side 128): the table of docs/PERFORMANCE.md.

    python scripts/precision_table.py [--threads 1] [--models a,b] [--precision bf16]

``engine.run_model`` in both precisions, best of 2 after a warm-up, timed by this process's CPU time (stable
when other jobs share the cores) and wall time; PSNR change (reduced - fp32, mean per-frame PSNR against the
input) and the largest uint8 difference between the two reconstructions. One JSON line per model."""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--size", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from vaelab import engine, metrics, models, pipeline

    clip = pipeline.load_input(None, pipeline.example_names()[0], frames=a.frames, size=a.size).frames
    names = a.models.split(",") if a.models else models.names()

    def psnr(rec: np.ndarray) -> float:
        return float(metrics.psnr_per_frame(clip, rec).mean())

    for name in names:
        model = engine.get_model(name, "lab", "cpu")
        row = {}
        for p in ("fp32", a.precision):
            res = engine.run_model(model, clip, precision=p)  # warm-up
            cpu = wall = float("inf")
            for _ in range(2):
                c0, w0 = time.process_time(), time.perf_counter()
                res = engine.run_model(model, clip, precision=p)
                cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
            row[p] = (cpu, wall, res)
        lo, hi = row[a.precision][2], row["fp32"][2]
        print(json.dumps({"model": name, "ran": [hi.precision, lo.precision], "device": lo.device,
                          "threads": a.threads, "cpu_s": {p: round(v[0], 3) for p, v in row.items()},
                          "wall_s": {p: round(v[1], 3) for p, v in row.items()},
                          "speedup_cpu": round(row["fp32"][0] / row[a.precision][0], 2),
                          "psnr_delta_db": round(psnr(lo.recon) - psnr(hi.recon), 4),
                          "max_uint8_diff": int(np.abs(lo.recon.astype(int) - hi.recon).max())}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
