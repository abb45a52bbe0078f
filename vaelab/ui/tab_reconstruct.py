"""Tab "Reconstruct": one clip through every chosen model, with frames, error maps, curves and a table.

Computation is ``vaelab.pipeline``; pictures are ``vaelab.viz`` / ``vaelab.viz_video``. Handlers return
``{output name: value}`` (see :data:`OUTPUTS`); :func:`build` maps the names to components. Endpoints:
``/reconstruct`` and ``/show_frame``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from .. import limits, metrics, models, pipeline, viz
from .. import viz_diagnostics as vd
from ..engine import auto_device
from ..io import write_mp4
from ..viz_video import clip_grid
from . import security, text
from .compute import compute
from .errors import visitor_errors
from .gpu import zero_gpu
from .outputs import fresh_output_path, keyed, refused_md, showing_md
from .tab_inside import MAX_CAPTION_CHARS
from .widgets import clip_inputs, clip_settings, device_choice, precision_choice

log = logging.getLogger("vaelab.ui.reconstruct")

MAX_FILE_MB = limits.MAX_FILE_MB
# Work cap per request (frames x pixels x models): keeps one CPU request well under a minute.
MAX_WORK_CPU, MAX_WORK_GPU = limits.RECONSTRUCT.work_cpu, limits.RECONSTRUCT.work_gpu

TABLE_HEADERS = ["model", "ran on", "latent (C,T,H,W)", "compression", "params", "encode s", "decode s",
                 "PSNR dB", "pooled PSNR dB", "SSIM", "LPIPS", "colour ΔE00 mean / p95",
                 "chroma kept · hue shift"]
# thirteen columns fit the page without a scroll bar when long cells wrap (compression, LPIPS) instead of widening
TABLE_WIDTHS = ["8%", "7%", "9%", "10%", "6%", "6%", "6%", "6%", "7%", "6%", "9%", "10%", "10%"]
# error map kinds: label -> (key, fixed colour range, colour-bar title, short name)
ERROR_KINDS = {
    "|error| (mean over R, G, B; 0-255)": ("rgb", viz.ERROR_RANGE, viz.ERROR_COLORBAR_TITLE, "|error|"),
    "colour difference ΔE00 (CIELAB, per pixel)": ("de", viz.DELTA_E_RANGE, viz.DELTA_E_COLORBAR_TITLE, "ΔE00"),
}
ERROR_BY_KEY = {v[0]: v for v in ERROR_KINDS.values()}
# Outputs of /reconstruct, in the order the API returns them (gr.State ones are not in the API).
OUTPUTS = ["status", "video", "frame", "gallery", "errors", "enlarge", "enlarged", "curves", "table", "notes",
           "codebook", "groups", "state", "shown"]


# --- words and numbers ---------------------------------------------------------------------------


def compression_text(summary: dict[str, Any], frames_thw: tuple[int, int, int], codebook: dict | None) -> str:
    """Continuous latents: input values per latent value. Quantised (a codebook): bits per pixel from
    log2(codebook size) bits per token, and the ratio to 24-bit RGB."""
    if codebook and codebook.get("n_embed"):
        _, tl, hl, wl = summary["latent_shape"]
        t, h, w = frames_thw
        bpp = tl * hl * wl * math.log2(int(codebook["n_embed"])) / (t * h * w)
        return f"{bpp:.3f} bits/px (x{24 / bpp:.0f} vs 24-bit RGB; {math.log2(int(codebook['n_embed'])):g} bits/token)"
    return f"x{summary['compression']:.0f} (float values)"


def precision_of(res: pipeline.ModelResult) -> str:
    """The precision the model actually ran in, as the run reports it."""
    return str(res.summary().get("precision") or "fp32")


def chroma_hue_text(m) -> str:
    """"14 % · -11°": how much of the input's colourfulness survives and how far its hues turn (CIELAB;
    ``metrics.CONVENTIONS['chroma_ratio' / 'hue_shift_deg']``); "-" where the input has no colour to measure."""
    kept = "-" if m.chroma_ratio is None else f"{100 * m.chroma_ratio:.0f} %"
    turn = "-" if m.hue_shift_deg is None else f"{m.hue_shift_deg:+.0f}°"
    return f"{kept} · {turn}"


def table(comp: pipeline.Comparison) -> pd.DataFrame:
    t, h, w, _ = comp.frames.shape
    lpips_cell = "downloading" if comp.lpips_message.startswith("LPIPS: downloading") else "unavailable"
    rows = []
    for name, res in comp.results.items():
        s = res.summary()
        rows.append([
            name, f"{s['device']} {precision_of(res)}", "x".join(map(str, s["latent_shape"])),
            compression_text(s, (t, h, w), res.extras.get("codebook")), f"{s['params'] / 1e6:.2f} M",
            round(s["encode_s"], 3), round(s["decode_s"], 3), round(s["psnr"], 2), round(s["pooled_psnr"], 2),
            round(s["ssim"], 4), lpips_cell if s["lpips"] is None else round(s["lpips"], 4),
            f"{res.metrics.delta_e_mean:.2f} / {res.metrics.delta_e_p95:.2f}", chroma_hue_text(res.metrics)])
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


def empty_table() -> pd.DataFrame:
    return pd.DataFrame([], columns=TABLE_HEADERS)


def notes_md(comp: pipeline.Comparison) -> str:
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


def work_refusal(t: int, h: int, w: int, n_models: int, cap: int, device: str) -> str | None:
    """None when the request fits the cap; else the refusal, saying what would fit at this selection."""
    work = t * h * w * n_models
    if work <= cap:
        return None
    fits = []
    if (f := cap // (h * w * n_models)) >= 1:
        fits.append(f"{f} frame{'s' if f > 1 else ''} at this size")
    scale = math.sqrt(cap / work)
    short = int(min(h, w) * scale) // 16 * 16
    if short >= pipeline.MIN_SIZE:
        fits.append(f"working resolution {short} px at {t} frames")
    if (m := cap // (t * h * w)) >= 1:
        fits.append(f"{m} model{'s' if m > 1 else ''} at these settings")
    return (f"This request is too heavy for {device.upper()}: {t} frames x {w}x{h} px x {n_models} models = "
            f"{work / 1e6:.1f} M frame pixels, over the {cap / 1e6:g} M cap. "
            + (f"What fits: {'; or '.join(fits)}." if fits else "Lower the frames, the resolution or the models."))


def upscale_warning(clip: Any) -> str | None:
    """A sentence when the source is smaller than the working resolution (the models see an upscaled picture)."""
    sw, sh = clip.source_size
    _, h, w, _ = clip.frames.shape
    if min(sw, sh) >= min(h, w):
        return None
    return (f"⚠️ **Upscaled input:** the source is {sw}x{sh} px and was enlarged to {w}x{h} px before coding, so "
            f"every number measures the enlarged picture (its interpolation blur is easy to code). Set the working "
            f"resolution to {max(pipeline.MIN_SIZE, min(sw, sh) // 16 * 16)} px or less to measure near the "
            "source size.")


def chunk_md(frames: int, chunk: int) -> str:
    """Where a causal video model's streamed chunks start and end for the current frame count."""
    frames, step = max(1, int(frames or 1)), 4 * max(1, int(chunk or 1))
    bounds = ["0"]
    start = 1
    while start < frames:
        end = min(frames, start + step) - 1
        bounds.append(f"{start}-{end}" if end > start else f"{start}")
        start += step
    return (f"Chunks for {frames} frame(s): **{' | '.join(bounds)}** ({len(bounds)} chunk(s); frame 0 is coded "
            f"alone). A chunk of {step} frames holds {step} frames of activations at a time instead of "
            f"{frames}, so the peak memory of causal streaming grows with the chunk, not the clip (measured in "
            "docs/PERFORMANCE.md); per-layer caches carry the past across chunks, so the result equals one-shot "
            "coding up to float rounding. Applies on the next Reconstruct click.")


custom_weights_allowed = security.custom_weights_allowed  # decided from the address actually bound


def weights_choice(custom_model, custom_weights, model_names) -> dict[str, str]:
    spec = (custom_weights or "").strip()
    if not spec:
        return {}
    if not custom_weights_allowed():
        raise gr.Error("Custom weights are switched off on this server (it is not bound to loopback only); "
                       "the owner can set VAELAB_ALLOW_CUSTOM_WEIGHTS=1.")
    if custom_model not in (model_names or []):
        raise gr.Error("Pick which selected model the custom weights are for.")
    return {custom_model: spec}


def load_custom(name: str, spec: str, device) -> None:
    """Load a visitor's weights once, turning every failure into one line (the loader's own messages are
    kept; a file that is no checkpoint or has broken metadata says so instead of a Python error)."""
    from ..engine import get_model

    try:
        get_model(name, spec, device)
    except models.WeightsError as e:
        raise ValueError(f"The weights {spec!r} for {name} did not load: {str(e).splitlines()[0]}") from None
    except FileNotFoundError:
        raise ValueError(f"The weights {spec!r} for {name} were not found (no such file or folder).") from None
    except (UnicodeDecodeError, ValueError) as e:
        what = "its metadata is not valid JSON" if "JSON" in type(e).__name__ or "Expecting" in str(e) \
            else "it is not a checkpoint this model can read"
        raise ValueError(f"The weights {spec!r} for {name} did not load: {what}.") from None
    except Exception as e:  # noqa: BLE001 - a visitor's file: one line, never a traceback
        log.warning("custom weights %s for %s failed: %r", spec, name, e)
        raise ValueError(f"The weights {spec!r} for {name} did not load: it is not a {name} checkpoint "
                         f"({type(e).__name__}).") from None


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


def default_models(device: str = "auto") -> list[str]:
    """Models ticked when the page opens: every trained model on a GPU; on a CPU the image families only
    (about 3 s each at the default settings on 2 cores, where a video model takes 2-16 s: see
    docs/PERFORMANCE.md), so a first click answers quickly. Every model stays one tick away."""
    trained = models.names()
    if auto_device(device).type == "cuda":
        return trained
    image = [n for n in trained if models.model_class(n).card.kind == "image"]
    return image or trained


# --- pictures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameView:
    """What the frame panels show: which frame, which model is enlarged, which error map, and whether the
    heatmaps show the coding grid (latent cells, tiles, chunk) each run used."""
    index: int = 0
    enlarge: str | None = None
    error: str = "rgb"
    grid: bool = False


def grid_caption(res: pipeline.ModelResult, t: int) -> str:
    """One line on how frame ``t`` was coded, from the run's plan: its chunk, or per frame; and the tiles."""
    plan = res.run.plan or {}
    chunk = vd.chunk_caption(t, plan.get("chunks")) if plan.get("coding") not in (None, "per frame") else None
    how = {"streamed": "streamed", "windows": "window", "one shot": "one shot"}.get(plan.get("coding"), "")
    what = (chunk.split(": ", 1)[1].replace("chunk", f"{how} chunk") if chunk else
            "frames coded independently" if plan.get("coding") == "per frame" else "no coding plan recorded")
    tiles = f"{plan['tile']} px tiles, overlap {plan['overlap']}" if plan.get("tile") else "no tiles"
    return f"{what} · {tiles}"


def _with_grid(img: np.ndarray, res: pipeline.ModelResult) -> np.ndarray:
    plan = res.run.plan or {}
    if not plan:
        return img
    return vd.grid_overlay_rgb(img, latent_factor=plan["spatial_factor"], tile=plan.get("tile"),
                               overlap=plan.get("overlap", 0), coded=tuple(plan["coded_size"]))


def _error_map(comp: pipeline.Comparison, name: str, t: int, kind: str) -> np.ndarray:
    """(H, W) error of one model at frame ``t``: mean |error| over RGB (0-255) or per-pixel CIEDE2000."""
    if kind == "de":
        return metrics.delta_e_map(comp.frames[t:t + 1], comp.results[name].run.recon[t:t + 1])[0]
    return comp.error_maps(name, t)


def frame_outputs(comp: pipeline.Comparison, view: FrameView) -> dict[str, Any]:
    """Gallery of reconstructions, gallery of error heatmaps and the enlarged pair for one frame."""
    t = int(np.clip(view.index, 0, len(comp.frames) - 1))
    names = list(comp.results)
    big = view.enlarge if view.enlarge in comp.results else names[0]
    kind, vrange, bar_title, short = ERROR_BY_KEY.get(view.error, ERROR_BY_KEY["rgb"])
    unit = "(0-255)" if kind == "rgb" else "ΔE00"
    tiles = [{"key": "input", "image": comp.frames[t], "title": "input", "lines": [f"frame {t}"]}]
    err_tiles = []
    for n, r in comp.results.items():
        psnr, ssim = r.metrics.psnr[t], r.metrics.ssim[t]
        tiles.append({"key": n, "image": r.run.recon[t], "title": n, "lines": [f"{psnr:.2f} dB · SSIM {ssim:.3f}"]})
        err = _error_map(comp, n, t, kind)
        heat = viz.heatmap_rgb(err, vrange)
        lines = [f"mean {err.mean():.1f} · max {err.max():.0f} {unit}"]
        if view.grid:
            heat = _with_grid(heat, r)
            lines.append(grid_caption(r, t))
        err_tiles.append({"key": n, "image": heat, "title": n, "lines": lines})
    legend = viz.colourbar_html(f"{bar_title.replace('<br>', ' ')}: frame {t}, black = no error", vrange)
    err = _error_map(comp, big, t, kind)
    res = comp.results[big]
    enlarged = viz.enlarged_frame(comp.frames[t], res.run.recon[t], err, big, t, res.metrics.psnr[t],
                                  vrange=vrange, colorbar_title=bar_title, error_name=short)
    if view.grid and (plan := res.run.plan):
        vd.grid_overlay(enlarged, *comp.frames.shape[1:3], latent_factor=plan["spatial_factor"], tile=plan.get("tile"),
                        overlap=plan.get("overlap", 0), coded=tuple(plan["coded_size"]), rows=[1], cols=[2, 3])
        enlarged.add_annotation(text=f"{big}: {grid_caption(res, t)}", xref="paper", yref="paper", x=1, y=0,
                                yshift=-4, showarrow=False, xanchor="right", yanchor="top", font=dict(size=12))
        enlarged.update_layout(margin=dict(b=34))
        legend += GRID_LEGEND
    return {"gallery": viz.tile_gallery_html(tiles, clickable=True),
            "errors": legend + viz.tile_gallery_html(err_tiles, clickable=True), "enlarged": enlarged}


GRID_LEGEND = ('<div class="vaelab-small" id="rec-grid-legend" style="margin:-4px 0 8px">Coding grid of each run: '
               'faint white = latent cells, solid cyan = where a tile begins, dotted cyan = where the tile before ends '
               '(the blended overlap lies between); under each map, the chunk that coded this frame.</div>')


def _curves(comp: pipeline.Comparison):
    return viz.metric_curves(
        {n: {"psnr": r.metrics.psnr, "ssim": r.metrics.ssim, "lpips": r.metrics.lpips, "flicker": r.flicker}
         for n, r in comp.results.items()}, input_flicker=comp.input_flicker,
        lpips_note="LPIPS: downloading the AlexNet backbone" if comp.lpips_message.startswith("LPIPS: downloading")
        else "LPIPS unavailable (AlexNet backbone not cached)")


def _codebook(comp: pipeline.Comparison):
    fig = None
    for res in comp.results.values():
        if "codebook" in res.extras:
            cb = res.extras["codebook"]
            fig = viz.codebook_usage(np.asarray(cb["counts"]), cb["perplexity"], cb["used"])
    return fig


def _groups(comp: pipeline.Comparison):
    video_models = [n for n in comp.results
                    if models.model_class(n).card.kind == "video" and models.model_class(n).card.temporal_factor == 4]
    if not video_models or len(comp.frames) <= 1:
        return None
    per_pos = {n: metrics.psnr_by_group_position(comp.results[n].metrics.psnr) for n in video_models}
    cats = list(next(iter(per_pos.values())))
    return viz.bars(cats, {n: [v[c] for c in cats] for n, v in per_pos.items()},
                    "PSNR by position inside each 4-frame group (frame 0 is coded alone)", "PSNR (dB)")


# --- handlers ------------------------------------------------------------------------------------


def busy(upload, example, model_names, frames, size):
    """Before a run: the button is disabled (a second click cannot be silently dropped) and says so."""
    what = "your upload" if upload else f"example {example}"
    return {"run": gr.Button("Running...", interactive=False),
            "status": f"⏳ **Running:** {what}, {len(model_names or [])} model(s), {frames} frame(s), "
                      f"{size} px. What is on screen stays until it finishes."}


@zero_gpu
def reconstruct(upload, example, model_names, frames, size, device, tiling=False, tile=64, overlap=16,
                chunk=4, custom_model=None, custom_weights="", caption="", precision="auto", progress=gr.Progress()):
    """Reconstruct the chosen clip with each selected model; returns ``{output name: value}`` (:data:`OUTPUTS`).
    A refused request raises ``gr.Error`` (API clients get an error; the page uses :func:`reconstruct_page`)."""
    return _reconstruct(upload, example, model_names, frames, size, device, tiling, tile, overlap, chunk,
                        custom_model, custom_weights, caption, precision, progress)


def reconstruct_page(upload, example, model_names, frames, size, device, tiling, tile, overlap, chunk,
                     custom_model, custom_weights, caption, precision, shown, grid=False, progress=gr.Progress()):
    """The page's Reconstruct: a refusal is a toast and a status line, and every result panel keeps what it
    shows (Gradio would mark each output of a failed event "Error"); the button comes back either way. ``grid``:
    the heatmaps' coding-grid toggle, kept across runs."""
    try:
        out = reconstruct(upload, example, model_names, frames, size, device, tiling, tile, overlap, chunk,
                          custom_model, custom_weights, caption, precision, progress=progress)
        if grid:
            out |= frame_outputs(out["state"], FrameView(0, next(iter(out["state"].results)), "rgb", True))
    except gr.Error as e:
        message = str(getattr(e, "message", e))
        gr.Warning(message)
        return {"status": refused_md(message, shown or "Nothing reconstructed yet."), "ran": False,
                "run": gr.Button("Reconstruct", interactive=True)}
    return out | {"ran": True, "run": gr.Button("Reconstruct", interactive=True)}


def fitted(ran, state, fit):
    """``fit(state)`` after a run that produced a result; nothing changes after a refusal."""
    return fit(state) if ran else gr.skip()


def _reconstruct(upload, example, model_names, frames, size, device, tiling, tile, overlap, chunk,
                 custom_model, custom_weights, caption, precision, progress) -> dict[str, Any]:
    if not model_names:
        raise gr.Error("Select at least one model.")
    weights = weights_choice(custom_model, custom_weights, model_names)
    with visitor_errors("Reconstruction"):
        opts = limits.check_reconstruct(upload, frames, size, tiling, tile, overlap, chunk)  # one line on bad values
        progress(0.0, desc="decoding input")
        clip = pipeline.load_input(upload, example, frames=opts.frames, size=opts.size)
        t, h, w, _ = clip.frames.shape
        dev = auto_device(device)
        cap = MAX_WORK_GPU if dev.type == "cuda" else MAX_WORK_CPU
        if refusal := work_refusal(t, h, w, len(model_names), cap, dev.type):
            raise ValueError(refusal)
        limits.check_memory(list(model_names), t, h, w, dev, tile=opts.tile)
        for name, spec in weights.items():
            load_custom(name, spec, dev)
        comp = pipeline.reconstruct_clip(
            clip.frames, list(model_names), device=str(dev), weights=weights, fps=clip.fps, clip_notes=clip.notes,
            tile=opts.tile, overlap=opts.overlap, chunk_latents=opts.chunk,
            caption=limits.caption(caption), progress=lambda p, msg: progress(0.05 + 0.8 * p, desc=msg),
            precision=precision or "auto")

    progress(0.88, desc="encoding side-by-side video")
    grid = clip_grid({"input": comp.frames} | {n: r.run.recon for n, r in comp.results.items()})
    video = write_mp4(grid, fresh_output_path(".mp4"), fps=comp.fps)
    progress(0.95, desc="plotting")
    notes = notes_md(comp)
    if weights:
        notes = "".join(f"**{n}:** weights from `{w}` (not the VAE Lab weights).\n\n" for n, w in weights.items()) + notes
    ran = sorted({f"{r.run.device} {precision_of(r)}" for r in comp.results.values()})
    shown = showing_md("your upload" if upload else f"example *{example}*", {
        "frames": t, "size": f"{w}x{h} px", "models": ", ".join(comp.results),
        "device": (f"asked {device}, ran " if device not in ("auto", None, "") and not str(dev).startswith(str(device))
                   else "") + " / ".join(ran),
        "tiles": f"{int(tile)} px, overlap {int(overlap or 0)}" if tiling else None,
        "caption": f"“{str(caption)[:40]}{'…' if len(str(caption)) > 40 else ''}”" if caption else "none"})
    if comp.lpips_message.startswith("LPIPS: downloading"):
        shown += " **LPIPS: downloading** the AlexNet backbone; LPIPS numbers come with the next run after it is in."
    if warn := upscale_warning(clip):
        shown += "\n\n" + warn
    codebook, groups = _codebook(comp), _groups(comp)
    names = list(comp.results)
    return {
        "status": shown, "shown": shown, "video": str(video), "state": comp,
        "frame": gr.Slider(minimum=0, maximum=max(t - 1, 1), value=0, step=1, interactive=t > 1),
        "enlarge": gr.Radio(choices=names, value=names[0]),
        **frame_outputs(comp, FrameView(0, names[0])),
        "curves": _curves(comp), "table": table(comp), "notes": notes,
        "codebook": gr.Plot(value=codebook, visible=codebook is not None),
        "groups": gr.Plot(value=groups, visible=groups is not None),
    }


def show_frame(state, index, enlarge=None, error_kind=None, grid=False):
    """The frame panels (galleries and the enlarged model) for one frame of the last result; ``grid`` draws each
    run's coding grid (latent cells, tiles, the frame's chunk) over the heatmaps."""
    if not isinstance(state, pipeline.Comparison):
        return {}
    kind = ERROR_KINDS.get(error_kind, ERROR_BY_KEY["rgb"])[0]
    with visitor_errors("The frame view"):
        index = int(limits.number(index or 0, "Frame", 0, 1e9))
    return frame_outputs(state, FrameView(index, enlarge, kind, bool(grid)))


def caption_for_clip(upload, example) -> str:
    """The caption belongs to its clip: an upload starts with none, an example with its own."""
    return "" if upload else pipeline.example_caption(example)


def weights_target(model_names, current):
    """The custom-weights dropdown offers the ticked models and keeps its choice while it stays ticked."""
    names = list(model_names or [])
    return gr.Dropdown(choices=names, value=current if current in names else (names[0] if names else None))


# A click on a tile selects that model in the "Enlarge" radio (which re-renders the enlarged view).
TILE_CLICK_JS = """
() => {
  if (window.__vaelabTiles) return;
  window.__vaelabTiles = true;
  document.addEventListener("click", (ev) => {
    const tile = ev.target.closest && ev.target.closest("#rec-gallery .vaelab-tile, #rec-errors .vaelab-tile");
    if (!tile) return;
    const box = document.querySelector(`#enlarge input[value="${CSS.escape(tile.dataset.key)}"]`);
    if (box) box.click();
  });
}
"""


# --- layout --------------------------------------------------------------------------------------


@dataclass
class Reconstruct:
    """What other tabs read from this one."""
    state: gr.State
    upload: gr.File
    example: gr.Dropdown
    done: Any  # the dependency of a page run: chain ``.then(fitted, [ran, ...])`` on it
    ran: gr.State  # True after a run that produced a result, False after a refusal


def build(state: gr.State) -> Reconstruct:
    """Components and events inside the current ``gr.Tab``; ``state`` receives the last Comparison."""
    names = models.names()
    examples = pipeline.example_names()
    ticked = default_models()
    c: dict[str, Any] = {"state": state, "shown": gr.State(""), "ran": gr.State(False)}
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            upload, example = clip_inputs(examples, examples[0] if examples else None, "upload", "example")
            chosen = gr.CheckboxGroup(names, value=ticked, elem_id="models",
                                      label="Models (video models take longer on CPU)")
            frames, size = clip_settings(pipeline.MAX_FRAMES, pipeline.DEFAULT_FRAMES, pipeline.MIN_SIZE,
                                         pipeline.MAX_SIZE, pipeline.DEFAULT_SIZE)
            device = device_choice("device")
            precision = precision_choice("precision")
            with gr.Accordion("Streaming and tiling (memory vs artefacts)", open=False):
                chunk = gr.Slider(1, 8, value=4, step=1, elem_id="chunk",
                                  label="Causal video models: latent frames per streamed chunk (x4 frames)")
                chunk_info = gr.Markdown(chunk_md(pipeline.DEFAULT_FRAMES, 4), elem_id="chunk-info",
                                         elem_classes=["vaelab-small"])
                tiling = gr.Checkbox(False, label="Encode and decode in tiles", elem_id="tiling")
                tile = gr.Slider(16, 256, value=64, step=8, label="Tile size (px)", elem_id="tile")
                overlap = gr.Slider(0, 64, value=16, step=8, label="Overlap (px, linear blend)", elem_id="overlap")
            caption = gr.Textbox(caption_for_clip(None, examples[0] if examples else None),
                                 label="Caption for VideoVAE+ (optional; others ignore it)",
                                 elem_id="caption", max_length=MAX_CAPTION_CHARS,
                                 info="An example comes with the caption VideoVAE+ was trained on; an upload starts "
                                      "with none (write your own). Empty = no caption.")
            with gr.Accordion("Weights", open=False):
                gr.Markdown(weights_md(), elem_id="weights-table")
                custom_model = gr.Dropdown(ticked, value=ticked[0] if ticked else None, elem_id="custom-model",
                                           label="Use other weights for (a ticked model)")
                custom_weights = gr.Textbox(
                    "", elem_id="custom-weights", interactive=custom_weights_allowed(),
                    label="Local file/folder or Hugging Face repo id (OWNER/NAME[@REV][:SUBFOLDER])",
                    placeholder="e.g. stabilityai/sd-vae-ft-mse for sd-vae; empty = the weights above")
                gr.Markdown("Published checkpoints load where our module tree matches (see each model card); "
                            "offline, a repo must already be in the Hugging Face cache. " +
                            ("" if custom_weights_allowed() else "**Switched off on this server** "
                             "(not bound to loopback; set VAELAB_ALLOW_CUSTOM_WEIGHTS=1 to allow)."),
                            elem_classes=["vaelab-small"])
            c["run"] = gr.Button("Reconstruct", variant="primary", elem_id="run")
            gr.Markdown(text.limits_text(pipeline.MAX_FRAMES, pipeline.MAX_SIZE, MAX_FILE_MB, 60.0) +
                        f" Work cap: frames x pixels x models <= {MAX_WORK_CPU / 1e6:g} M on CPU, "
                        f"{MAX_WORK_GPU / 1e6:g} M on GPU. Settings apply on the next click.",
                        elem_classes=["vaelab-small"])
        with gr.Column(scale=3):
            c["status"] = gr.Markdown("Nothing reconstructed yet: choose a clip and models, then **Reconstruct**.",
                                      elem_id="rec-status")
            c["video"] = gr.Video(label="Input and reconstructions, one tile each (synchronised)",
                                  elem_id="side-by-side", autoplay=True, loop=True, show_label=False)
            c["frame"] = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False, elem_id="frame")
            gr.Markdown("**Frame:** the input, then every model (name, PSNR and SSIM of this frame). Click a tile "
                        "(or choose below) to enlarge it next to the input.", elem_classes=["vaelab-small"])
            c["gallery"] = gr.HTML(elem_id="rec-gallery")
            with gr.Accordion("Error heatmaps (one fixed colour scale for every model)", open=True):
                error_kind = gr.Radio(list(ERROR_KINDS), value=next(iter(ERROR_KINDS)), label="Error map",
                                      elem_id="error-kind", info="Redraws at once. ΔE00: ~1 is just noticeable, "
                                                                 "2-5 noticeable at a glance, above 5 another colour.")
                grid = gr.Checkbox(False, label="Show the coding grid (latent cells, tiles, the frame's chunk)",
                                   elem_id="error-grid",
                                   info="Drawn from each run's own plan: the tile size and overlap it used (after "
                                        "rounding to its latent grid) and the chunk or window that coded this frame.")
                c["errors"] = gr.HTML(elem_id="rec-errors")
            c["enlarge"] = gr.Radio([], label="Enlarge (input | model | error map, shared zoom)", elem_id="enlarge")
            c["enlarged"] = gr.Plot(elem_id="frame-plot", show_label=False)
    c["curves"] = gr.Plot(label="Per-frame metrics", elem_id="curves")
    c["table"] = gr.Dataframe(empty_table(), headers=TABLE_HEADERS, label="Per model", elem_id="table",
                              interactive=False, wrap=True, column_widths=TABLE_WIDTHS)
    c["codebook"] = gr.Plot(label="VQGAN codebook usage", visible=False, elem_id="codebook")
    c["groups"] = gr.Plot(label="Temporal groups", visible=False, elem_id="group-psnr")
    c["notes"] = gr.Markdown(elem_id="vaelab-notes")

    inputs = [upload, example, chosen, frames, size, device, tiling, tile, overlap, chunk, custom_model,
              custom_weights, caption, precision]
    ev = c["run"].click(keyed(busy, c), [upload, example, chosen, frames, size], [c["run"], c["status"]],
                        queue=False, api_name=False)
    page_outputs = [c[k] for k in OUTPUTS] + [c["ran"], c["run"]]
    # compute(): the one process-wide compute slot, and a cancel that stops the work (ui/compute.py)
    done = ev.then(compute(keyed(reconstruct_page, c)), inputs + [c["shown"], grid], page_outputs, api_name=False,
                   concurrency_limit=1, concurrency_id="compute", show_progress_on=[c["status"]])
    # the same computation for API clients, where a refusal is an error (this button is never shown)
    api = gr.Button(visible=False, elem_id="reconstruct-api")
    api.click(compute(keyed(reconstruct, c)), inputs, [c[k] for k in OUTPUTS], api_name="reconstruct",
              concurrency_limit=1, concurrency_id="compute")
    frame_inputs = [state, c["frame"], c["enlarge"], error_kind, grid]
    frame_outputs_ = [c["gallery"], c["errors"], c["enlarged"]]
    # typed values and drags both arrive as .input; only the latest pending one is rendered
    c["frame"].input(keyed(show_frame, c), frame_inputs, frame_outputs_, concurrency_limit=4,
                     trigger_mode="always_last", api_name="show_frame")
    for control in (c["enlarge"], error_kind, grid):
        control.input(keyed(show_frame, c), frame_inputs, frame_outputs_, concurrency_limit=4,
                      trigger_mode="always_last", api_name=False)
    for src in (upload, example):
        src.change(caption_for_clip, [upload, example], caption, queue=False, api_name=False)
    chosen.change(weights_target, [chosen, custom_model], custom_model, queue=False, api_name=False)
    for src in (frames, chunk):
        src.change(chunk_md, [frames, chunk], chunk_info, queue=False, api_name=False)
    return Reconstruct(state=state, upload=upload, example=example, done=done, ran=c["ran"])
