"""Tab "Latent space": where image and video VAEs put one clip in latent space (UMAP and PCA, with numbers).

Computation lives in :mod:`vaelab.analysis.latents` and the figures in :mod:`vaelab.viz_latents`; this
file connects them. Endpoints (named after their functions): ``/latent_space`` (collect, measure, embed,
plot) and ``/latent_patch`` (the input patch one plotted point comes from).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from .. import limits, models, pipeline
from .. import viz_latents as VL
from ..analysis import latents as L
from ..analysis import warmup
from ..device import resolve_precision
from ..engine import auto_device, get_model
from .compute import compute
from .errors import visitor_errors
from .gpu import zero_gpu
from .outputs import keyed
from .widgets import clip_inputs, clip_settings, device_choice, precision_choice

log = logging.getLogger("vaelab.ui.latents")

REFERENCE = "sd-vae"
CLIP_FROM_RECONSTRUCT = "Reconstruct tab's input"
CLIP_FROM_HERE = "Example or upload below"
DEFAULT_CAP, MIN_CAP, MAX_CAP = limits.LATENT_POINTS
DEFAULT_FRAMES, MAX_FRAMES = limits.LATENTS.default_frames, limits.LATENTS.max_frames
DEFAULT_SIZE, MAX_SIZE = limits.LATENTS.default_size, limits.LATENTS.max_size
# Work cap per request: frames x pixels x encoder passes (a video model costs ~3: its video pass, its
# image pass and the compatibility decode; the reference 1). Encoder passes are ~3x cheaper than the
# Reconstruct tab's encode + decode, so this is about the same wall time as its 4 M cap.
MAX_WORK_CPU, MAX_WORK_GPU = limits.LATENTS.work_cpu, limits.LATENTS.work_gpu
COMPAT_HEADERS = ["model", "image decoder on the video latent (dB)", "video model's own decoder (dB)",
                  "image VAE on those frames (ceiling, dB)", "frames", "how / why not"]

TEACH_MD = """
### How to read it

Each dot is one **latent position**: the C numbers a VAE keeps for one cell of the input (8x8 pixels; 16x16
for VidTwin), placed in 2D so that vectors close in C dimensions stay close. **Filled dots**: a video VAE
coding the whole clip. **Open dots** of the same colour: the same VAE coding every frame on its own, as a
still image. **Grey diamonds**: sd-vae, an image VAE, coding every frame. Its latent space is the one image
diffusion models are trained on.

**Good overlap.** The filled and open dots of one colour mix in the same clouds, and the grey diamonds sit
among them. The video VAE then puts a clip where it puts still images, so one diffusion model can learn
from images and videos together, and an image decoder can read the video latents. CV-VAE is trained for
exactly this (a loss decodes its latents with the frozen sd-vae decoder). Its *compatibility PSNR* (sd-vae's
decoder on CV-VAE's latent frames) should come close to sd-vae coding those frames itself.

**Bad overlap.** Separate islands: video latents in one place, image latents or sd-vae's somewhere else.
A diffusion model trained on one set then works in the wrong region for the other, and an image decoder
reading these latents decodes noise (a low compatibility PSNR). Models that were never trained to match
sd-vae (HVDM, VideoVAE+) show what "incompatible" looks like. Causal "1+4k" models code frame 0 on its own,
so latent frame 0 of their video latent *is* an image latent. Hover a dot to see its latent frame.

**Don't over-read the picture.** UMAP keeps neighbourhoods, not distances. The gap between two islands,
their sizes and their places mean little, and a new seed moves them. PCA (below the UMAP) is a linear projection:
what is far apart there is far apart in the latent space. The numbers are computed on **every** vector in
C dimensions, never on the 2D picture:
- **Fréchet distance**: FID's formula applied to the latent vectors. 0 means the same mean and covariance;
  a pure shift d of the mean adds |d|².
- **Sliced Wasserstein-2**: about |d|/√C for a shift, in latent units. Compare it with the channel
  standard deviations in the table.

Distances are only computed between latents with the same number of channels. Models with C = 8 (iv-vae,
walt) get their own panel, and they are not compared with sd-vae (C = 4).
"""


# --- choices --------------------------------------------------------------------------------------

def video_model_names() -> list[str]:
    """Video models with real weights (shipped lab weights, or a configured production VAE on disk): the
    only ones whose latents mean anything."""
    return [n for n in models.names() if models.model_class(n).card.kind == "video"]


def _no_video_md() -> str:
    untrained = [n for n in models.all_names() if models.model_class(n).card.kind == "video"]
    return ("**No video VAE ships trained weights yet** (" + ", ".join(untrained) + " are implemented; their "
            "weights are still being trained). This tab compares *video* latents with *image* latents, so until "
            "then it can only show the image reference's (sd-vae) latents on their own. VAE Lab never shows "
            "random-weight latents as a result.")


# --- the request ----------------------------------------------------------------------------------

def _int(value: Any, name: str, lo: int, hi: int) -> int:
    return limits.number(value, name, lo, hi)


def _choose_clip(clip_source: str, upload: str | None, example: str | None, frames: int, size: int,
                 state: Any) -> tuple[np.ndarray, str, list[str]]:
    """uint8 (T, H, W, 3) frames, a sentence saying which clip they are, and decode notes."""
    if clip_source == CLIP_FROM_RECONSTRUCT and isinstance(state, pipeline.Comparison):
        clip = state.frames[:frames]
        t, h, w, _ = clip.shape
        return clip, f"the Reconstruct tab's last input, first {t} frame(s) at {w}x{h} px", []
    if clip_source not in (CLIP_FROM_RECONSTRUCT, CLIP_FROM_HERE):
        raise ValueError(f"Clip must be {CLIP_FROM_RECONSTRUCT!r} or {CLIP_FROM_HERE!r} (got {clip_source!r}).")
    clip = pipeline.load_input(upload, example, frames=frames, size=size)
    t, h, w, _ = clip.frames.shape
    what = f"your upload *{Path(upload).name}*" if upload else f"the example *{example}*"
    text = f"{what}, first {t} frame(s) at {w}x{h} px"
    if clip_source == CLIP_FROM_RECONSTRUCT:
        text += " (no Reconstruct run in this session yet, so the clip chosen in this tab)"
    return clip.frames, text, list(clip.notes)


def _compat_rows(compat: list[dict[str, Any]]) -> pd.DataFrame:
    def db(v: Any) -> Any:
        return "—" if v is None else round(float(v), 2)

    rows = [[c["model"], db(c.get("psnr")), db(c.get("video_psnr")), db(c.get("image_vae_psnr")),
             ", ".join(map(str, c.get("frames", []))) or "—", c.get("method") or c.get("reason", "")]
            for c in compat]
    return pd.DataFrame(rows, columns=COMPAT_HEADERS)


def _counts_md(report: L.LatentReport, sub: L.LatentSet) -> str:
    full = report.lset
    parts = [f"{m} {s} {len(full.group_index(m, s)):,}" for m, s in full.groups()]
    return (f"**Vectors:** {len(full):,} latent positions ({'; '.join(parts)}). **Plotted: {len(sub):,}**"
            + (" of them (subsampled to the cap, stratified: every model and source gets an equal share, "
               "smaller groups are kept whole)" if len(sub) < len(full) else " (all of them)")
            + ". The numbers below use all of them.")


# Outputs of /latent_space, in the order the API returns them (the view is a gr.State: not in the API).
OUTPUTS = ["status", "umap", "pca", "table", "compat", "bars", "view"]
PATCH_OUTPUTS = ["patch", "patch_caption"]


@zero_gpu
def latent_space(clip_source, upload, example, frames, size, model_names, use_reference, cap, seed,
                 parallel=False, state=None, device="auto", precision="auto", progress=gr.Progress()):
    """Collect the clip's latents from each chosen video model (video and per-frame image latents) and
    the sd-vae reference on ``device`` in ``precision``; returns ``{output name: value}`` (:data:`OUTPUTS`):
    the status text (which clip, device and precision ran), UMAP and PCA scatter plots, the distance /
    channel table, the decoder-compatibility table (an update, hidden when there is no row), the
    per-channel bars and the view kept for thumbnails."""
    with visitor_errors("The latent-space analysis", "try fewer frames, a lower resolution or fewer models"):
        return _latent_space(clip_source, upload, example, frames, size, model_names, use_reference, cap, seed,
                             parallel, state, device, precision, progress)


def _latent_space(clip_source, upload, example, frames, size, model_names, use_reference, cap, seed, parallel,
                  state, device, precision, progress) -> dict[str, Any]:
    """:func:`latent_space`'s work; bad input raises ValueError (or the decoder's / loader's error)."""
    model_names = list(model_names or [])
    frames = _int(frames, "Frames", 1, MAX_FRAMES)
    size = _int(size, "Working resolution", pipeline.MIN_SIZE, MAX_SIZE)
    cap = _int(cap, "Point cap", MIN_CAP, MAX_CAP)
    seed = _int(seed, "Seed", 0, 2**31 - 1)
    offered = video_model_names()
    unknown = [n for n in model_names if n not in offered]
    if unknown:
        raise ValueError(f"Not a video model with trained weights: {', '.join(unknown)}. "
                         f"Choose from: {', '.join(offered) or 'none yet'}.")
    if use_reference and REFERENCE not in models.names():
        raise ValueError(f"The image reference {REFERENCE} has no trained weights in this install.")
    if not model_names and not use_reference:
        raise ValueError("Select at least one video model, or the sd-vae image reference.")
    dev = auto_device(device or "auto")
    prec = resolve_precision(precision or "auto", dev)  # fp16 on a CPU: one line before any work
    progress(0.0, desc="decoding input")
    clip, clip_text, clip_notes = _choose_clip(clip_source, upload, example, frames, size, state)
    t, h, w, _ = clip.shape
    passes = 3 * len(model_names) + (1 if use_reference else 0)
    if t * h * w * passes > (MAX_WORK_GPU if dev.type == "cuda" else MAX_WORK_CPU):
        raise ValueError(f"This request is too heavy for {dev.type.upper()}: {t} frames x {w}x{h} px with "
                         f"{len(model_names)} video model(s){' and the reference' if use_reference else ''}. "
                         "Lower the frames or the number of models, or the resolution (for the Reconstruct "
                         f"tab's input: choose {CLIP_FROM_HERE!r} and a lower resolution).")
    progress(0.05, desc="loading models")
    video_models = [get_model(n, "lab", dev) for n in model_names]
    reference = get_model(REFERENCE, "lab", dev) if use_reference else None
    progress(0.1, desc=f"collecting latents ({dev.type} {prec}) and measuring them (all vectors)")
    report = L.analyse(clip, video_models, reference, precision=prec)
    sub = report.lset.subsample(cap, seed)
    progress(0.5, desc=f"UMAP of {len(sub):,} points" + (" (waiting for the start-up compilation)"
                                                          if warmup.umap_running() else ""))
    t0 = time.perf_counter()
    umap_xy = L.embed(sub, "umap", seed=seed, parallel=bool(parallel))
    t1 = time.perf_counter()
    pca_xy = L.embed(sub, "pca")
    t2 = time.perf_counter()

    progress(0.9, desc="plotting")
    mode = ("parallel, no seed (faster on many cores, **not reproducible**)" if parallel
            else f"random_state {seed}, one thread (reproducible)")
    umap_fig = VL.latent_scatter(umap_xy, sub, f"UMAP (n_neighbors {L.UMAP_PARAMS['n_neighbors']}, "
                                               f"min_dist {L.UMAP_PARAMS['min_dist']}, "
                                               + ("parallel)" if parallel else f"seed {seed})"))
    pca_fig = VL.latent_scatter(pca_xy, sub, "PCA (first two principal axes; linear, deterministic)")
    table = pd.DataFrame(VL.latent_stats_table(report.distances, report.stats),
                         columns=VL.LATENT_TABLE_HEADERS)
    s = report.seconds
    lines = []
    if not model_names:
        lines.append("**sd-vae's image latents on their own:** " + (
            "no video VAE ships trained weights yet, so there is nothing to compare them with (see above)."
            if not video_model_names() else "no video model selected."))
    asked = (f" (asked {device})" if device not in ("auto", None, "") and not str(dev).startswith(str(device))
             else "")
    lines += [
        f"**Clip:** {clip_text}.",
        f"**Ran on:** {dev} {prec}{asked}" + (" (autocast: weights, norm statistics and softmax in fp32; latents "
                                              "read back as fp32)" if prec != "fp32" else "") + ".",
        _counts_md(report, sub),
        f"**UMAP:** euclidean, n_neighbors {L.UMAP_PARAMS['n_neighbors']}, min_dist {L.UMAP_PARAMS['min_dist']}, "
        f"spectral init, {mode}; subsample seed {seed}. Channel groups are embedded separately.",
        f"**Time:** latents and numbers {s['collect'] + s['numbers']:.1f} s"
        + (f", decoder compatibility {s['compatibility']:.1f} s" if report.compatibility else "")
        + (" (cached: same clip and models as an earlier request)" if report.cached else "")
        + f"; UMAP {t1 - t0:.1f} s; PCA {t2 - t1:.2f} s (repeats with the same settings are cached). "
        + warmup.umap_text(),
    ]
    notes = clip_notes + report.lset.notes
    if notes:
        lines.append("**Notes:** " + "; ".join(notes) + ".")
    return {"status": "\n\n".join(lines), "umap": umap_fig, "pca": pca_fig, "table": table,
            "compat": gr.update(value=_compat_rows(report.compatibility), visible=bool(report.compatibility)),
            "bars": VL.channel_bars(report.stats), "view": {"frames": clip, "set": sub}}


def latent_patch(view, point):
    """The input patch of one plotted point (its number is in the hover text): ``{output name: value}``
    (:data:`PATCH_OUTPUTS`): the frame with the latent cell outlined and the cell enlarged, and a caption."""
    if not isinstance(view, dict) or "set" not in view:
        raise gr.Error("Run the latent space first; then click a point or type its number.")
    sub: L.LatentSet = view["set"]
    try:
        row = _int(point, "Point number", 0, len(sub) - 1)
    except ValueError as e:
        raise gr.Error(str(e)) from None
    frame = int(sub.frame[row])
    img = VL.patch_view(view["frames"][frame], tuple(sub.patch[row]))
    y0, x0, y1, x1 = (int(v) for v in sub.patch[row])
    source = str(sub.source[row])
    window = (" The video latent frame stands for a group of input frames; this is its first frame, and "
              "the encoder also saw its neighbours." if source == "video" else "")
    caption = (f"**Point #{row}:** {sub.model[row]} · {source}, latent frame {int(sub.t[row])}, position "
               f"y {int(sub.y[row])}, x {int(sub.x[row])}: input frame {frame}, pixels y {y0}-{y1 - 1}, "
               f"x {x0}-{x1 - 1} (left: outlined in the frame; right: enlarged with its neighbours)."
               + window + " The encoder's receptive field is larger than this cell.")
    return {"patch": img, "patch_caption": caption}


# A click on a plotted point fills the point number and presses "Show patch" (plotly's own click event;
# gr.Plot has no select event). Runs after each plot update; polls because the figure renders after it.
CLICK_TO_PATCH_JS = """
() => {
  const attach = (tries) => {
    for (const id of ["latent-umap", "latent-pca"]) {
      const gd = document.querySelector(`#${id} .js-plotly-plot`);
      if (gd && gd.on && !gd.__vaelabClick) {
        gd.__vaelabClick = true;
        gd.on("plotly_click", (ev) => {
          const pt = ev && ev.points && ev.points[0];
          if (!pt || !pt.customdata) return;
          const box = document.querySelector("#latent-point input[type=number]");
          const button = document.querySelector("#latent-show-patch");
          if (!box || !button) return;
          box.value = String(pt.customdata[0]);
          box.dispatchEvent(new Event("input", {bubbles: true}));
          setTimeout(() => button.click(), 50);
        });
      }
    }
    if (tries > 0) setTimeout(() => attach(tries - 1), 500);
  };
  attach(40);
}
"""


def build(state: gr.State) -> None:
    """Create the tab's components and events inside the current ``gr.Tab`` context.

    ``state`` is the Reconstruct tab's last :class:`vaelab.pipeline.Comparison` (or None)."""
    video = video_model_names()
    examples = pipeline.example_names()
    has_reference = REFERENCE in models.names()
    gr.Markdown("Where do image and video VAEs put the same clip in **latent space**? Every latent position "
                "of the clip, from each video VAE coding the clip, the same VAE coding each frame as an image, "
                "and sd-vae coding each frame, embedded in 2D with UMAP and PCA, with distances computed on "
                "all vectors.")
    if not video:
        gr.Markdown(_no_video_md(), elem_id="latent-no-video")
    view = gr.State(None, time_to_live=limits.STATE_TTL_S)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            clip_source = gr.Radio([CLIP_FROM_RECONSTRUCT, CLIP_FROM_HERE], value=CLIP_FROM_RECONSTRUCT,
                                   label="Clip", elem_id="latent-clip-source",
                                   info="The Reconstruct tab's input uses its last run; until there is one, the "
                                        "clip chosen below. The status line says which clip was used.")
            upload, example = clip_inputs(examples, examples[0] if examples else None, "latent-upload",
                                          "latent-example")
            frames, size = clip_settings(MAX_FRAMES, DEFAULT_FRAMES, pipeline.MIN_SIZE, MAX_SIZE, DEFAULT_SIZE, "latent-",
                                         "Example or upload only; the Reconstruct input keeps its size.")
            chosen = gr.CheckboxGroup(video, value=video[:2], label="Video models (trained weights only)",
                                      elem_id="latent-models")
            use_reference = gr.Checkbox(has_reference, interactive=has_reference,
                                        label=f"Image reference: {REFERENCE} on every frame",
                                        elem_id="latent-reference")
            cap = gr.Slider(MIN_CAP, MAX_CAP, value=DEFAULT_CAP, step=500, label="Points plotted (cap)",
                            elem_id="latent-cap",
                            info="A stratified subsample is embedded and plotted; numbers use every vector. "
                                 "UMAP takes about 5 s for 5,000 points and 35 s for 50,000 on 2 CPU cores.")
            with gr.Row():
                seed = gr.Number(0, precision=0, minimum=0, label="Seed (subsample and UMAP)", elem_id="latent-seed")
                parallel = gr.Checkbox(False, label="Parallel UMAP (faster on many cores, not reproducible)",
                                       elem_id="latent-parallel")
            device = device_choice("latent-device")
            precision = precision_choice("latent-precision")
            run = gr.Button("Show latent space", variant="primary", elem_id="latent-run")
            gr.Markdown(f"Limits: up to {MAX_FRAMES} frames, short side {pipeline.MIN_SIZE}-{MAX_SIZE} px, "
                        f"frames x pixels x encoder passes <= {MAX_WORK_CPU / 1e6:.0f} M on CPU (a video model "
                        f"counts 3 passes, the reference 1), {MIN_CAP:,}-{MAX_CAP:,} plotted points.",
                        elem_classes=["vaelab-small"])
        with gr.Column(scale=3):
            c: dict[str, Any] = {"view": view, "status": gr.Markdown(elem_id="latent-status")}
            gr.Markdown("**Reading it in one line:** filled dots = a video VAE coding the clip, open dots of the same "
                        "colour = that VAE coding each frame as an image, grey diamonds = sd-vae. Mixed clouds mean "
                        "compatible latents, separate islands incompatible ones (the guide is at the bottom).",
                        elem_classes=["vaelab-small"])
            c["umap"] = gr.Plot(label="UMAP", elem_id="latent-umap", show_label=False)
            c["pca"] = gr.Plot(label="PCA", elem_id="latent-pca", show_label=False)
            with gr.Row():
                point = gr.Number(None, precision=0, minimum=0, label="Point # (click a point, or type the "
                                  "number from its hover text)", elem_id="latent-point", scale=1)
                show = gr.Button("Show patch", elem_id="latent-show-patch", scale=0)
            with gr.Row():
                c["patch"] = gr.Image(label="Input patch of the point", elem_id="latent-patch", interactive=False,
                                      type="numpy", height=200, scale=1)
                c["patch_caption"] = gr.Markdown(elem_id="latent-patch-caption")
    c["table"] = gr.Dataframe(label="Distances and per-channel mean ± std (all vectors)", elem_id="latent-table",
                              interactive=False)
    c["compat"] = gr.Dataframe(label="Decoder compatibility: sd-vae's decoder on each video model's latent frames",
                               elem_id="latent-compat", interactive=False)
    c["bars"] = gr.Plot(label="Per-channel mean ± std", elem_id="latent-bars", show_label=False)
    with gr.Accordion("How to read the latent space (filled / open dots, good and bad overlap, what the numbers "
                      "mean)", open=False):
        gr.Markdown(TEACH_MD, elem_id="latent-teach")

    run.click(compute(keyed(latent_space, c)),
              [clip_source, upload, example, frames, size, chosen, use_reference, cap, seed, parallel, state, device,
               precision],
              [c[k] for k in OUTPUTS],
              concurrency_limit=1, concurrency_id="compute"
              ).then(None, None, None, js=CLICK_TO_PATCH_JS, api_visibility="private")
    patch_outputs = [c[k] for k in PATCH_OUTPUTS]
    show.click(keyed(latent_patch, c), [view, point], patch_outputs, concurrency_limit=4)
    point.submit(keyed(latent_patch, c), [view, point], patch_outputs, concurrency_limit=4,
                 api_visibility="undocumented")  # same function as /latent_patch; Enter in the box
