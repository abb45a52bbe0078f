"""Training step time, fp32 vs bf16, at the lab-weights v2 recipe (128 px crops), and the 30-step loss curve.

    python scripts/train_precision_table.py table   # -> docs/measurements/train_step_precision_128px.json
    python scripts/train_precision_table.py curve   # -> docs/measurements/loss_curve_sd-vae_fp32_vs_bf16.json
    python scripts/train_precision_table.py fp32    # -> docs/measurements/train_step_fp32_<cpu>.json (any CPU)

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

    if which == "fp32":  # the step cost on this machine's CPU at the precision "auto" trains in here
        return fp32_table()
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


def fp32_table() -> int:
    """fp32 step CPU-seconds (1 thread) per family at scripts/train_all.sh's batch and frames, 128 px, tagged with
    the CPU it ran on: what a machine without native bf16 (where "auto" trains in fp32) pays per step."""
    import platform
    import statistics
    import time

    import torch

    from vaelab.device import cpu_bf16_native
    from vaelab.models.base import reads_captions
    from vaelab.train.data import Sampler, train_sources
    from vaelab.train.loop import TrainConfig, build_for_training, forward_losses

    torch.set_num_threads(1)
    native, how = cpu_bf16_native()
    runs = {"hvdm": (2, 16), "vidtwin": (2, 16), "walt": (2, 9), "sd-vae": (8, 1), "cv-vae": (2, 9),
            "vqgan": (8, 1), "litevae": (8, 1), "iv-vae": (2, 9), "videovae-plus": (2, 8)}  # train_all.sh
    out = {"cpu": platform.processor() or platform.machine(), "native_bf16": native, "how": how, "threads": 1,
           "clock": "process CPU time, median of steps 2-4 (step 1 is warm-up)", "models": {}}
    sampler_src = train_sources(short_sides=(128,))
    for name, (batch, frames) in runs.items():
        cfg = TrainConfig(model=name, batch=batch, crop=128, frames=frames)
        torch.manual_seed(0)
        model = build_for_training(cfg).train()
        sampler = Sampler(sampler_src, crop=128, frames=frames, seed=0)
        opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
        secs = []
        for _ in range(4):
            x, caps = sampler.sample(batch)
            t0 = time.process_time()
            _, _, parts = forward_losses(model, x, caps, cfg, "fp32", reads_captions(model))
            opt.zero_grad(set_to_none=True)
            sum(parts.values()).backward()
            opt.step()
            secs.append(time.process_time() - t0)
        out["models"][name] = {"batch": batch, "frames": frames, "crop": 128,
                               "step_cpu_s": round(statistics.median(secs[1:]), 3)}
        print(name, out["models"][name], flush=True)
    tag = "avx512bf16" if native else "no-native-bf16"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"train_step_fp32_{tag}.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "table"))
