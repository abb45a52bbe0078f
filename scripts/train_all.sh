#!/usr/bin/env bash
# Lab weights v2: every family on the same data mix, schedule shape and budget (5e8 pixel-frames, 128 px crops,
# bf16 autocast with fp32 master weights), one after another, resumable. Rerun it to resume: a family whose
# record already says data_mix v2 and the full budget is skipped; an interrupted one resumes from its checkpoint.
#   nice -n 19 bash scripts/train_all.sh [OUT_DIR] [THREADS]
# Recipe and results: docs/TRAINING.md. Never run in CI.
set -euo pipefail
OUT=${1:-runs}
THREADS=${2:-2}
BUDGET=5e8
COMMON=(--data-mix v2 --photo-share 0.5 --crop 128 --pixel-frames "$BUDGET" --threads "$THREADS" --warmup 100
        --out "$OUT")
# family | frames | batch | lr | precision | extra. Shortest runs first, so finished families accumulate on a
# machine whose session ends before the queue does; cv-vae starts from the trained sd-vae, so it follows it.
# "auto" is bf16 autocast where the CPU has native bf16 units (avx512_bf16/AMX) and fp32 elsewhere: emulated bf16
# is several times slower than fp32. The two transformer families train in fp32 everywhere: even with native bf16
# their bf16 step is slower (128 px, one thread: hvdm 1.29 vs 1.01 s, vidtwin 4.80 vs 1.65 s; docs/PERFORMANCE.md).
RUNS=(
  "hvdm 16 2 4e-4 fp32"
  "vidtwin 16 2 3e-4 fp32"
  "walt 9 2 1.5e-4 auto --image-batch-share 0.25"
  "sd-vae 1 8 4e-4 auto"
  "cv-vae 9 2 1e-4 auto"
  "vqgan 1 8 4e-4 auto"
  "litevae 1 8 4e-4 auto"
  "iv-vae 9 2 4e-4 auto"
  "videovae-plus 8 2 4e-4 auto"
)
for run in "${RUNS[@]}"; do
  read -r name frames batch lr precision extra <<<"$run"
  if python - "$name" "$BUDGET" <<'PY'
import json, sys
from vaelab import models
p = models.lab_weights_path(sys.argv[1]).with_suffix(".json")
r = json.loads(p.read_text()) if p.exists() else {}
ok = r.get("recipe", {}).get("data_mix") == "v2" and r.get("pixel_frames", 0) >= float(sys.argv[2])
sys.exit(0 if ok else 1)
PY
  then echo "== $name: already trained on v2 at the full budget, skipped"; continue; fi
  echo "== $name $(date -u +%FT%TZ)"
  # shellcheck disable=SC2086
  python -m vaelab.cli train "$name" --frames "$frames" --batch "$batch" --lr "$lr" --precision "$precision" \
    "${COMMON[@]}" $extra
done
