#!/usr/bin/env bash
# Benchmark VAE Lab on a CUDA machine and run the GPU tests.
#
# Usage (from anywhere, on a machine with an NVIDIA GPU and vaelab installed with its test extras):
#
#     bash scripts/bench_gpu.sh                  # -> ./bench_gpu.json, then pytest -m gpu
#     bash scripts/bench_gpu.sh --size 256       # extra arguments go to `vaelab bench`
#     OUT=results/h100 bash scripts/bench_gpu.sh # write into another folder
#     SCALING=sd-vae bash scripts/bench_gpu.sh   # also time/memory vs clip length and resolution
#                                                # for that model (-> bench_gpu_scaling.json)
#     PRECISION=fp16 bash scripts/bench_gpu.sh   # the reduced precision compared with fp32 (auto|bf16|fp16;
#                                                # default: every one of bf16 and fp16, one JSON each)
#
# What it does:
#   1. refuses to run (exit 1) when torch sees no CUDA device, so CPU numbers never land in a GPU file;
#   2. records nvidia-smi's view of the card next to the JSON (when nvidia-smi exists);
#   3. `vaelab bench --precision P --json $OUT/bench_gpu_P.json` for each precision: the fp32-vs-P table
#      (per-model time, held-out PSNR of both, |uint8 diff|, share of the fp32/P matmul and conv peaks), fp32 timings, counted FLOPs, peak-matmul ratio and
#      torch.cuda.max_memory_allocated per stage, fp16/bf16 autocast variants (fp16 encoder + fp32 decoder
#      for sd-vae), and our sd-vae vs diffusers' AutoencoderKL at the SD config (see docs/PERFORMANCE.md);
#   4. `pytest -m gpu`: the tests that need a CUDA device.
# The exit status is non-zero if the bench or any GPU test fails.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${OUT:-.}"
mkdir -p "$OUT"

if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "bench_gpu.sh: no CUDA device visible to torch; run 'vaelab bench' for CPU numbers instead" >&2
    exit 1
fi

if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv \
        > "$OUT/bench_gpu_nvidia_smi.csv" || true
fi

for P in ${PRECISION:-bf16 fp16}; do
    echo "== vaelab bench --precision $P -> $OUT/bench_gpu_$P.json"
    python -m vaelab.cli bench --precision "$P" --json "$OUT/bench_gpu_$P.json" "$@" > /dev/null
done

if [[ -n "${SCALING:-}" ]]; then
    echo "== scaling of $SCALING -> $OUT/bench_gpu_scaling.json"
    python -m vaelab.bench --scaling "$SCALING" --json "$OUT/bench_gpu_scaling.json" > /dev/null
fi

echo "== pytest -m gpu"
python -m pytest -m gpu -q tests
