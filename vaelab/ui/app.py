"""Gradio wiring. Every computation lives in ``vaelab.pipeline`` / ``vaelab.viz``; this file only connects them.

Endpoints (named after their functions, usable with gradio_client): ``/reconstruct``,
``/show_frame``, ``/wavelets``, ``/model_cards``; the tab modules add ``/swap``, ``/show_swap_frame``,
``/weights_status`` (tab_swap), ``/caption_effect``, ``/branch_ablation`` (tab_inside) and the Latent space
tab's own (tab_latents).
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from .. import limits, metrics, models, pipeline, viz
from ..engine import auto_device, configure_threads
from ..io import side_by_side, write_mp4
from . import security, tab_diagnostics, tab_inside, tab_latents, tab_swap, text
from .compute import compute
from .errors import visitor_errors
from .gpu import zero_gpu
from .tab_inside import MAX_CAPTION_CHARS
from .widgets import clip_inputs, clip_settings, device_choice, page_precision, precision_choice

log = logging.getLogger("vaelab.ui")

MAX_FILE_MB = limits.MAX_FILE_MB
# Work cap per request (frames x pixels x models): keeps one CPU request well under a minute.
MAX_WORK_CPU, MAX_WORK_GPU = limits.RECONSTRUCT.work_cpu, limits.RECONSTRUCT.work_gpu
QUEUE_SIZE = limits.QUEUE_SIZE
OUT_DIR = Path(tempfile.gettempdir()) / "vaelab-out"
OUT_TTL_S = 3600

CSS = """
#vaelab-notes {font-size: 0.9em}
.vaelab-small {font-size: 0.85em; opacity: 0.85}
"""


def _fresh_output_path(suffix: str) -> Path:
    """A new file in our output dir; files older than an hour are removed (Gradio keeps its own cached copy)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in OUT_DIR.glob("*"):
        try:
            if now - old.stat().st_mtime > OUT_TTL_S:
                old.unlink()
        except OSError:
            pass
    return OUT_DIR / f"{uuid.uuid4().hex}{suffix}"


def _table(comp: pipeline.Comparison) -> pd.DataFrame:
    rows = []
    for name, res in comp.results.items():
        s = res.summary()
        rows.append({
            "model": name,
            "latent (C,T,H,W)": "x".join(map(str, s["latent_shape"])),
            "compression": f"x{s['compression']:.0f}",
            "params": f"{s['params'] / 1e6:.2f} M",
            "encode s": round(s["encode_s"], 3),
            "decode s": round(s["decode_s"], 3),
            "PSNR dB": round(s["psnr"], 2),
            "pooled PSNR dB": round(s["pooled_psnr"], 2),
            "SSIM": round(s["ssim"], 4),
            "LPIPS": "unavailable" if s["lpips"] is None else round(s["lpips"], 4),
            "ran on": f"{s['device']} {s['precision']}",
        })
    return pd.DataFrame(rows)


def _frame_figure(comp: pipeline.Comparison, index: int):
    t = int(np.clip(index, 0, len(comp.frames) - 1))
    recons = {n: r.run.recon[t] for n, r in comp.results.items()}
    errors = {n: comp.error_maps(n, t) for n in comp.results}
    titles = {n: f"{n}: {r.metrics.psnr[t]:.2f} dB" for n, r in comp.results.items()}
    return viz.frame_panel(comp.frames[t], recons, errors, t, titles=titles)


def _notes(comp: pipeline.Comparison) -> str:
    lines = []
    if comp.clip_notes:
        lines.append("**Input:** " + "; ".join(comp.clip_notes) + ".")
    reused = [n for n, r in comp.results.items() if r.cached]
    if reused:
        lines.append(f"**Cached:** {', '.join(reused)} reused an identical earlier run (same input, model and "
                     "settings; the timings shown are that run's).")
    for name, res in comp.results.items():
        if res.run.notes:
            lines.append(f"**{name}:** " + "; ".join(res.run.notes) + ".")
        if "seam_score" in res.extras:
            e = res.extras
            lines.append(f"**{name} tiling:** seam score {e['seam_score']:.2f} at the {e['tile']} px tile borders "
                         f"(input: {e['seam_score_input']:.2f}; 1 = borders change no more than anywhere else). "
                         "Each tile is coded on its own statistics, so without overlap its borders show.")
        if res.extras.get("compatibility", {}).get("psnr") is not None:
            c = res.extras["compatibility"]
            lines.append(f"**{name} compatibility meter:** its video latent decoded by the frozen *image* decoder "
                         f"({c.get('image_model') or 'sd-vae'}) gives {c['psnr']:.2f} dB on the matching input frames "
                         f"(own video decoder {c['video_psnr']:.2f} dB; the image VAE coding those frames itself "
                         f"{c['image_vae_psnr']:.2f} dB). Close to the image VAE's number means an image diffusion "
                         "model could read this latent; the latent-compatibility regulariser in training is what "
                         "keeps it there.")
        if "codebook" in res.extras:
            cb = res.extras["codebook"]
            lines.append(f"**{name} codebook:** {cb['used']} of {cb['n_embed']} codes used on the first "
                         f"{cb['frames']} frame(s), perplexity {cb['perplexity']:.1f}.")
    lines.append(text.conventions_md(metrics.CONVENTIONS, comp.lpips_message))
    return "\n\n".join(lines)


custom_weights_allowed = security.custom_weights_allowed


def _weights_choice(custom_model, custom_weights, model_names) -> dict[str, str]:
    spec = (custom_weights or "").strip()
    if not spec:
        return {}
    if not custom_weights_allowed():
        raise gr.Error("Custom weights are switched off on this server (it is not bound to loopback only); "
                       "the owner can set VAELAB_ALLOW_CUSTOM_WEIGHTS=1.")
    if custom_model not in (model_names or []):
        raise gr.Error("Pick which selected model the custom weights are for.")
    return {custom_model: spec}


def weights_md() -> str:
    """Which weights each offered model uses (Markdown)."""
    rows = ["| model | weights |", "|---|---|"]
    for n in models.names():
        rec = models.training_record(n) if n in models.all_names() else {}
        held = rec.get("heldout", {})
        what = (f"VAE Lab weights `{models.lab_weights_path(n).name}` ({rec.get('steps', '?')} steps on CPU, "
                f"held-out {held['mean_psnr']:.2f} dB)" if "mean_psnr" in held else "configured published weights")
        rows.append(f"| `{n}` | {what} |")
    return "\n".join(rows)


@zero_gpu
def reconstruct(upload, example, model_names, frames, size, device, tiling=False, tile=64, overlap=16,
                chunk=4, custom_model=None, custom_weights="", caption="", precision="auto", progress=gr.Progress()):
    """Reconstruct the chosen clip with each selected model; returns video, slider, figures, table, notes, state."""
    if not model_names:
        raise gr.Error("Select at least one model.")
    weights = _weights_choice(custom_model, custom_weights, model_names)
    with visitor_errors("Reconstruction"):
        opts = limits.check_reconstruct(upload, frames, size, tiling, tile, overlap, chunk)
        progress(0.0, desc="decoding input")
        clip = pipeline.load_input(upload, example, frames=opts.frames, size=opts.size)
        t, h, w, _ = clip.frames.shape
        dev = auto_device(device)
        limits.check_work(t, h, w, len(model_names), dev)
        limits.check_memory(list(model_names), t, h, w, dev, tile=opts.tile)
        comp = pipeline.reconstruct_clip(
            clip.frames, list(model_names), device=str(dev), weights=weights, fps=clip.fps, clip_notes=clip.notes,
            tile=opts.tile, overlap=opts.overlap, chunk_latents=opts.chunk,
            caption=limits.caption(caption), progress=lambda p, msg: progress(0.05 + 0.8 * p, desc=msg),
            precision=precision or "auto")

    progress(0.88, desc="encoding side-by-side video")
    panel = side_by_side([comp.frames] + [r.run.recon for r in comp.results.values()], ["input"] + list(comp.results))
    video = write_mp4(panel, _fresh_output_path(".mp4"), fps=comp.fps)
    progress(0.95, desc="plotting")
    curves = viz.metric_curves(
        {n: {"psnr": r.metrics.psnr, "ssim": r.metrics.ssim, "lpips": r.metrics.lpips, "flicker": r.flicker}
         for n, r in comp.results.items()}, input_flicker=comp.input_flicker)
    codebook = None
    for res in comp.results.values():
        if "codebook" in res.extras:
            cb = res.extras["codebook"]
            codebook = viz.codebook_usage(np.asarray(cb["counts"]), cb["perplexity"], cb["used"])
    video_models = [n for n, r in comp.results.items()
                    if models.model_class(n).card.kind == "video" and models.model_class(n).card.temporal_factor == 4]
    groups = None
    if video_models and len(comp.frames) > 1:
        per_pos = {n: metrics.psnr_by_group_position(comp.results[n].metrics.psnr) for n in video_models}
        cats = list(next(iter(per_pos.values())))
        groups = viz.bars(cats, {n: [v[c] for c in cats] for n, v in per_pos.items()},
                          "PSNR by position inside each 4-frame group (frame 0 is coded alone)", "PSNR (dB)")
    slider = gr.Slider(minimum=0, maximum=max(len(comp.frames) - 1, 1), value=0, step=1,
                       interactive=len(comp.frames) > 1)
    notes = _notes(comp)
    if weights:
        notes = "".join(f"**{n}:** weights from `{w}` (not the VAE Lab weights).\n\n" for n, w in weights.items()) + notes
    return (str(video), slider, _frame_figure(comp, 0), curves, _table(comp), notes,
            gr.Plot(value=codebook, visible=codebook is not None), gr.Plot(value=groups, visible=groups is not None),
            comp, model_cards(comp))


def show_frame(state, index):
    """Render input, reconstructions and error heatmaps for one frame of the last result."""
    if not isinstance(state, pipeline.Comparison):
        return None
    with visitor_errors("The frame view"):
        return _frame_figure(state, limits.number(index, "Frame", 0, 1e9))


def wavelets(state, mode, frame):
    """Haar band view of the last Reconstruct result: mosaics for one frame and per-band energy/error bars."""
    from ..analysis import wavelet_view as wv

    if not isinstance(state, pipeline.Comparison):
        raise gr.Error("Run Reconstruct first: this tab analyses its input and reconstructions.")
    recons = {n: r.run.recon for n, r in state.results.items()}
    with visitor_errors("The wavelet view"):
        t = int(np.clip(limits.number(frame or 0, "Frame", 0, 1e9), 0, len(state.frames) - 1))
    three_d = str(mode).startswith("3D")
    if three_d:
        tl = t // 2
        mosaics = {"input": wv.subband_mosaic_3d(state.frames, tl)[0]}
        mosaics |= {n: wv.subband_mosaic_3d(r, tl)[0] for n, r in recons.items()}
        title = (f"3D Haar sub-bands at time step {tl} (frames {2 * tl}-{2 * tl + 1}); tiles, left to right: "
                 "LLL LLH LHL LHH / HLL HLH HHL HHH (letters: time, rows, columns; detail = sqrt(2|c|))")
    else:
        mosaics = {"input": wv.mallat_mosaic(state.frames[t])} | {n: wv.mallat_mosaic(r[t]) for n, r in recons.items()}
        title = f"2D Haar, 3 levels, frame {t}: LL top-left, then LH right, HL below, HH diagonal (detail = sqrt(2|c|))"
    rep = wv.band_report(state.frames, recons, mode="3d" if three_d else "2d")
    bars = viz.band_bars(rep.names, rep.input_energy, rep.recon_energy, rep.error)
    lines = [text.WAVELETS_HELP]
    for n in recons:
        share = dict(zip(rep.names, rep.error_share(n)))
        top = max(share, key=share.get)
        lines.append(f"- **{n}**: {100 * share[top]:.0f} % of its error is in band {top}.")
    hvdm_fig = None
    if "hvdm" in state.results:  # HVDM's own two branches: its triplane planes and what each branch carries
        from ..analysis.hvdm_view import hvdm_view
        from ..engine import get_model

        res = state.results["hvdm"]
        view = hvdm_view(get_model("hvdm", "lab", res.run.device), state.frames)
        hvdm_fig = viz.hvdm_panel(view.planes, view.ablation_psnr, view.frames)
        lines.append(f"- **hvdm branches** (first {view.frames} frames): fused {view.ablation_psnr['fused']:.2f} dB, "
                     f"triplane only {view.ablation_psnr['triplane']:.2f} dB, wavelet only "
                     f"{view.ablation_psnr['wavelet']:.2f} dB. A branch switched off in the trained model shows how "
                     "much the other one carries (out of distribution: not what a model trained that way reaches). "
                     "The 3D sub-bands above (input) are exactly what HVDM's wavelet branch reads.")
    return (viz.image_row(mosaics, title), bars, "\n".join(lines),
            gr.Plot(value=hvdm_fig, visible=hvdm_fig is not None))


def model_cards(state=None) -> str:
    """All model cards as Markdown (with latent shapes for the last input, when there is one)."""
    from ..analysis.complexity import encoder_decoder_stats

    shape = None
    if isinstance(state, pipeline.Comparison):
        t, h, w, _ = state.frames.shape
        shape = (t, h, w)
    parts = []
    trained = set(models.names()) & set(models.all_names())  # production adapters: no FLOP count (full size)
    for c in models.available():
        try:
            stats = encoder_decoder_stats(c.name) if c.name in trained else None
        except Exception:  # noqa: BLE001 - stats are a nicety; a card must still render
            stats = None
        parts.append(text.card_md(c, stats, shape))
    return "\n\n---\n\n".join(parts)


def build_app() -> gr.Blocks:
    names = models.names()
    examples = pipeline.example_names()
    with gr.Blocks(title="VAE Lab", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(text.INTRO)
        state = gr.State(None, time_to_live=limits.STATE_TTL_S)  # a session's last result; see limits
        with gr.Tab("Reconstruct"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    upload, example = clip_inputs(examples, examples[0] if examples else None, "upload", "example")
                    chosen = gr.CheckboxGroup(names, value=default_models(), elem_id="models",
                                              label="Models (video models take longer on CPU)")
                    frames, size = clip_settings(pipeline.MAX_FRAMES, pipeline.DEFAULT_FRAMES, pipeline.MIN_SIZE,
                                                 pipeline.MAX_SIZE, pipeline.DEFAULT_SIZE)
                    device = device_choice("device")
                    precision = precision_choice("precision")
                    with gr.Accordion("Streaming and tiling (memory vs artefacts)", open=False):
                        chunk = gr.Slider(1, 8, value=4, step=1, elem_id="chunk",
                                          label="Causal video models: latent frames per streamed chunk (x4 frames)")
                        tiling = gr.Checkbox(False, label="Encode and decode in tiles", elem_id="tiling")
                        tile = gr.Slider(16, 256, value=64, step=8, label="Tile size (px)", elem_id="tile")
                        overlap = gr.Slider(0, 64, value=16, step=8, label="Overlap (px, linear blend)",
                                            elem_id="overlap")
                    caption = gr.Textbox(pipeline.example_caption(examples[0] if examples else None),
                                         label="Caption for VideoVAE+ (optional; others ignore it)",
                                         elem_id="caption", max_length=MAX_CAPTION_CHARS,
                                         info="Examples come with the caption VideoVAE+ was trained on. Empty = no "
                                              "caption. Inside the model compares right / none / wrong.")
                    with gr.Accordion("Weights", open=False):
                        gr.Markdown(weights_md(), elem_id="weights-table")
                        custom_model = gr.Dropdown(names, value=names[0] if names else None, elem_id="custom-model",
                                                   label="Use other weights for")
                        custom_weights = gr.Textbox(
                            "", elem_id="custom-weights", interactive=custom_weights_allowed(),
                            label="Local file/folder or Hugging Face repo id (OWNER/NAME[@REV][:SUBFOLDER])",
                            placeholder="e.g. stabilityai/sd-vae-ft-mse for sd-vae; empty = the weights above")
                        gr.Markdown("Published checkpoints load where our module tree matches (see each model card); "
                                    "offline, a repo must already be in the Hugging Face cache. " +
                                    ("" if custom_weights_allowed() else "**Switched off on this server** "
                                     "(not bound to loopback; set VAELAB_ALLOW_CUSTOM_WEIGHTS=1 to allow)."),
                                    elem_classes=["vaelab-small"])
                    run = gr.Button("Reconstruct", variant="primary", elem_id="run")
                    gr.Markdown(text.limits_text(pipeline.MAX_FRAMES, pipeline.MAX_SIZE, MAX_FILE_MB, 60.0),
                                elem_classes=["vaelab-small"])
                with gr.Column(scale=3):
                    video = gr.Video(label="Input | reconstructions (synchronised)", elem_id="side-by-side",
                                     autoplay=True, loop=True, show_label=False)
                    frame_idx = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False, elem_id="frame")
                    frame_plot = gr.Plot(label="Frame: input, reconstructions and |error| (one colour scale)",
                                         elem_id="frame-plot", show_label=False)
            curves = gr.Plot(label="Per-frame metrics", elem_id="curves")
            table = gr.Dataframe(label="Per model", elem_id="table", interactive=False)
            codebook = gr.Plot(label="VQGAN codebook usage", visible=False, elem_id="codebook")
            group_plot = gr.Plot(label="Temporal groups", visible=False, elem_id="group-psnr")
            notes = gr.Markdown(elem_id="vaelab-notes")
        with gr.Tab("Wavelets"):
            gr.Markdown("Haar wavelet bands of the input and of each reconstruction from the last **Reconstruct** "
                        "run: which frequencies does each VAE keep, and where does its error live?")
            with gr.Row():
                wmode = gr.Radio(["2D per frame (3 levels)", "3D over time (1 level)"], value="2D per frame (3 levels)",
                                 label="Transform", elem_id="wavelet-mode")
                wframe = gr.Slider(0, pipeline.MAX_FRAMES - 1, value=0, step=1, label="Frame", elem_id="wavelet-frame")
                wrun = gr.Button("Show bands", variant="primary", elem_id="wavelet-run")
            wmosaic = gr.Plot(elem_id="wavelet-mosaic", show_label=False)
            wbars = gr.Plot(elem_id="wavelet-bars", show_label=False)
            wnotes = gr.Markdown(elem_id="wavelet-notes")
            whvdm = gr.Plot(elem_id="wavelet-hvdm", show_label=False, visible=False)
        with gr.Tab("Inside the model"):
            inside_frame = tab_inside.build(state, example)
        with gr.Tab("Structure x Dynamics"):
            tab_swap.build()
        with gr.Tab("Latent space"):
            tab_latents.build(state)
        with gr.Tab("Diagnostics"):
            tab_diagnostics.build()
        with gr.Tab("Models"):
            cards = gr.Markdown(elem_id="cards")

        # compute(): the one process-wide compute slot, and a cancel that stops the work (ui/compute.py)
        run.click(compute(reconstruct), [upload, example, chosen, frames, size, device, tiling, tile, overlap, chunk,
                                   custom_model, custom_weights, caption, precision],
                  [video, frame_idx, frame_plot, curves, table, notes, codebook, group_plot, state, cards],
                  concurrency_limit=1, concurrency_id="compute"
                  ).success(tab_inside.frame_range, state, inside_frame, queue=False, api_name=False)
        # typed values and drags both arrive as .input; only the latest pending one is rendered
        frame_idx.input(show_frame, [state, frame_idx], frame_plot, concurrency_limit=4, trigger_mode="always_last")
        example.change(pipeline.example_caption, example, caption, queue=False, api_name=False)
        wrun.click(compute(wavelets), [state, wmode, wframe], [wmosaic, wbars, wnotes, whvdm], concurrency_limit=1,
                   concurrency_id="compute")  # its HVDM part runs a model: the one compute slot
        demo.load(model_cards, None, cards)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return demo


def default_models(device: str = "auto") -> list[str]:
    """Models ticked when the page opens: every trained model on a GPU; on a CPU the image families only
    (about 3 s each at the default settings on 2 cores, where a video model takes 2-16 s: see
    docs/PERFORMANCE.md), so a first click answers quickly. Every model stays one tick away."""
    trained = models.names()
    if auto_device(device).type == "cuda":
        return trained
    image = [n for n in trained if models.model_class(n).card.kind == "image"]
    return image or trained


def precompute_examples(names: list[str] | None = None) -> int:
    """Workshop mode: reconstruct every bundled example with every trained model at the default settings,
    so those requests are answered from the result cache. Returns how many (example, model) pairs ran."""
    names = names or models.names()
    dev = str(auto_device("auto"))
    done = 0
    for ex in pipeline.example_names():
        clip = pipeline.load_input(None, ex, frames=pipeline.DEFAULT_FRAMES, size=pipeline.DEFAULT_SIZE)
        for name in names:
            try:
                pipeline.reconstruct_clip(clip.frames, [name], device=dev, fps=clip.fps, clip_notes=clip.notes,
                                          caption=pipeline.example_caption(ex),  # what the page sends
                                          precision=page_precision())
                done += 1
            except Exception as e:  # noqa: BLE001 - one failing model must not stop the others
                log.warning("workshop pre-computation of %s on %s failed: %s", name, ex, e)
    return done


def _warm(workshop: bool = False) -> None:
    """Load models and count FLOPs in the background so the first request doesn't pay for it; in workshop
    mode also pre-compute the examples' results."""
    from ..analysis.complexity import encoder_decoder_stats
    from ..engine import get_model

    for name in models.names():
        try:
            get_model(name, "lab", "auto")
            if name in models.all_names():
                encoder_decoder_stats(name)
        except Exception as e:  # noqa: BLE001 - a missing weight file is reported when a user picks the model
            log.warning("warm-up of %s failed: %s", name, e)
    model_cards()  # the remaining cards' parameter counts
    if workshop:
        t0 = time.perf_counter()
        n = precompute_examples()
        log.warning("workshop mode: %d example results cached in %.0f s", n, time.perf_counter() - t0)


def launch(host: str = "127.0.0.1", port: int = 7860, workshop: bool = False, **kwargs):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    security.bind(host)  # custom weights follow the address actually bound, not an environment variable
    configure_threads()
    threading.Thread(target=tab_latents.warm, daemon=True, name="vaelab-warm-latents").start()
    if workshop:  # a room of laptops: pay every load and every example before the first visitor arrives
        _warm(workshop=True)
    else:
        threading.Thread(target=_warm, daemon=True).start()
    demo = build_app()
    return demo.launch(server_name=host, server_port=port, max_file_size=f"{MAX_FILE_MB}mb",
                       theme=gr.themes.Soft(), css=CSS, show_error=True,
                       state_session_capacity=limits.STATE_SESSIONS,
                       app_kwargs={"middleware": security.middleware()}, **kwargs)
