"""CPU cost of a released-size model with random weights: one reconstruct, wall time and peak RSS (one process each).

    python scripts/released_cpu_cost.py videovae-plus sota-16z 16 256 [--bf16]
    python scripts/released_cpu_cost.py hvdm released 16 256

Prints one JSON line. Random weights (the architecture's cost does not depend on the values); torch.no_grad.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(family: str, variant: str):
    if family == "videovae-plus":
        from vaelab.models.videovae_plus import RELEASED_CONFIGS, ReleasedVideoVAEPlus

        return ReleasedVideoVAEPlus(RELEASED_CONFIGS[variant])
    from vaelab.models.hvdm import ReleasedHVDM

    return ReleasedHVDM()


def main() -> None:
    family, variant, t, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    dtype = torch.bfloat16 if "--bf16" in sys.argv else torch.float32
    torch.manual_seed(0)
    model = build(family, variant).eval().to(dtype)
    x = (torch.rand(1, 3, t, size, size) * 2 - 1).to(dtype)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with torch.no_grad():
        y = model.reconstruct(x)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"family": family, "variant": variant, "input": [t, size, size], "dtype": str(dtype),
                      "params": sum(p.numel() for p in model.parameters()), "seconds": round(wall, 1),
                      "peak_rss_gib": round(peak / 2**20, 2), "rss_before_gib": round(base / 2**20, 2),
                      "threads": torch.get_num_threads(), "finite": bool(torch.isfinite(y.float()).all())}))


if __name__ == "__main__":
    main()
