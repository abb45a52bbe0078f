"""Non-model work of the nine-model request: what the Reconstruct handler does besides encode/decode.

    T=1 F=17 python scripts/request_overhead.py [--json OUT]

Runs the nine trained models once (bf16 where the CPU has it) on the bundled example, then times, by this
process's CPU seconds and by wall seconds, each non-model step ``ui.tab_reconstruct._reconstruct`` takes for
that result: metrics (PSNR, SSIM, colour, flicker; the input's halves prepared once), the side-by-side grid
and its H.264 MP4, the frame panels (galleries and heatmaps), the metric curves, the table and notes, and the
codebook / group-position figures. Model cards are paid once at start-up (``analysis.warmup``), not here.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("T", "1")))

from vaelab import metrics, models, pipeline  # noqa: E402
from vaelab.io import write_mp4  # noqa: E402
from vaelab.ui import tab_reconstruct as rec  # noqa: E402
from vaelab.viz_video import clip_grid  # noqa: E402


def main() -> int:
    out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    names = models.names()
    clip = pipeline.load_input(None, pipeline.example_names()[0], frames=int(os.environ.get("F", "17")), size=128)
    comp = pipeline.reconstruct_clip(clip.frames, names, device="cpu", precision="auto", fps=clip.fps)
    t: dict[str, tuple[float, float]] = {}

    def lap(key, fn):
        c0, w0 = time.process_time(), time.perf_counter()
        value = fn()
        t[key] = (round(time.process_time() - c0, 3), round(time.perf_counter() - w0, 3))
        return value

    def all_metrics():
        reference = metrics.ClipReference(comp.frames)
        return [(metrics.clip_metrics(comp.frames, r.run.recon, with_lpips=False, reference=reference),
                 metrics.temporal_flicker(r.run.recon)) for r in comp.results.values()]

    tmp = tempfile.mkdtemp()
    lap("metrics: PSNR, SSIM, colour, flicker x9", all_metrics)
    grid = lap("side-by-side grid", lambda: clip_grid({"input": comp.frames} | {n: r.run.recon for n, r in comp.results.items()}))
    lap("H.264 MP4 of the grid", lambda: write_mp4(grid, os.path.join(tmp, "a.mp4"), fps=comp.fps))
    lap("frame panels (galleries + nine heatmaps + enlarged)", lambda: rec.frame_outputs(comp, rec.FrameView(0, names[0])))
    lap("metric curves figure", lambda: rec._curves(comp))
    lap("table + notes", lambda: (rec.table(comp), rec.notes_md(comp)))
    lap("codebook + group-position figures", lambda: (rec._codebook(comp), rec._groups(comp)))
    total = (round(sum(v[0] for v in t.values()), 3), round(sum(v[1] for v in t.values()), 3))
    report = {"frames": int(clip.frames.shape[0]), "size": f"{clip.frames.shape[2]}x{clip.frames.shape[1]}",
              "threads": torch.get_num_threads(), "precision": sorted({r.run.precision for r in comp.results.values()}),
              "load_avg": os.getloadavg(), "cpu_s, wall_s": t, "total cpu_s, wall_s": total}
    print(json.dumps(report, indent=1))
    if out:
        Path(out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
