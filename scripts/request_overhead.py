"""Non-model work of the nine-model request: what ui.app.reconstruct does besides encode/decode.

    T=1 F=17 python scripts/request_overhead.py

Runs the nine trained models once (bf16) on the bundled example, then times, by CPU and wall seconds, each
non-model step the app takes for that result: metrics (SSIM, PSNR, flicker), the side-by-side MP4, the metric
curves, the frame figure with the heatmaps, the table and notes, the model cards."""
import json
import os
import tempfile
import time

import torch

torch.set_num_threads(int(os.environ.get("T", "1")))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
from vaelab import metrics, models, pipeline, viz
from vaelab.io import side_by_side, write_mp4
from vaelab.ui import app

names = models.names()
clip = pipeline.load_input(None, pipeline.example_names()[0], frames=int(os.environ.get("F", "17")), size=128)
pipeline._RESULTS.clear()
t = {}
def lap(k, f):
    c0, w0 = time.process_time(), time.perf_counter(); r = f(); t[k] = (round(time.process_time() - c0, 3), round(time.perf_counter() - w0, 3)); return r
comp = lap("reconstruct_clip (models + metrics)", lambda: pipeline.reconstruct_clip(clip.frames, names, device="cpu", precision="bf16", fps=clip.fps))
model_s = sum(r.run.encode_s + r.run.decode_s for r in comp.results.values())
t["model wall (enc+dec)"] = (None, round(model_s, 3))
lap("metrics only (clip_metrics x9 + flicker)", lambda: [ (metrics.clip_metrics(clip.frames, r.run.recon, with_lpips=False), metrics.temporal_flicker(r.run.recon)) for r in comp.results.values()])
d = tempfile.mkdtemp()
lap("side_by_side + write_mp4", lambda: write_mp4(side_by_side([comp.frames] + [r.run.recon for r in comp.results.values()], ["input"] + list(comp.results)), os.path.join(d, "a.mp4"), fps=comp.fps))
lap("metric_curves figure", lambda: viz.metric_curves({n: {"psnr": r.metrics.psnr, "ssim": r.metrics.ssim, "lpips": r.metrics.lpips, "flicker": r.flicker} for n, r in comp.results.items()}, input_flicker=comp.input_flicker))
lap("frame figure (heatmaps)", lambda: app._frame_figure(comp, 0))
lap("table + notes", lambda: (app._table(comp), app._notes(comp)))
lap("model_cards", lambda: app.model_cards(comp))
print(json.dumps({"frames": clip.frames.shape[0], "threads": torch.get_num_threads(), "cpu_s, wall_s": t}, indent=1))
