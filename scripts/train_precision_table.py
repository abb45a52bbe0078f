"""Training step time, fp32 vs bf16, at the lab-weights v2 recipe (128 px crops), and the 30-step loss curve.

    python scripts/train_precision_table.py table   # -> docs/measurements/train_step_precision_128px.json
    python scripts/train_precision_table.py curve   # -> docs/measurements/loss_curve_sd-vae_fp32_vs_bf16.json

One thread, process CPU time (``bench.precision.bench_train_steps``), so the numbers hold on a shared machine.
The batches per family are those of ``scripts/train_all.sh``. Tables: docs/PERFORMANCE.md, "Training in bf16".
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# batch, frames per sample: scripts/train_all.sh
RECIPE = {"vqgan": (8, 1), "sd-vae": (8, 1), "litevae": (8, 1), "cv-vae": (2, 9), "iv-vae": (2, 9),
          "videovae-plus": (2, 8), "hvdm": (2, 16), "vidtwin": (2, 16), "walt": (2, 9)}
OUT = Path(__file__).resolve().parents[1] / "docs" / "measurements"


def main(which: str) -> int:
    from vaelab.bench.precision import bench_train_steps, loss_curves

    if which == "curve":
        result, path = loss_curves("sd-vae", steps=30, precision="bf16", threads=1), "loss_curve_sd-vae_fp32_vs_bf16"
    else:
        result, path = {}, "train_step_precision_128px"
        for name, (batch, _frames) in RECIPE.items():
            row = bench_train_steps([name], precision="bf16", steps=3, threads=1, batch=batch, crop=128)
            result[name] = row["models"][name]
            print(name, result[name]["step_s"], result[name]["speedup"], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{path}.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "table"))
