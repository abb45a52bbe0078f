"""Tab "Inside the model": VideoVAE+'s caption and IV-VAE's latent branches (wiring and words only).

Both experiments run on the input of the last Reconstruct run. The computation is
``vaelab.analysis.ablations``, the figures ``vaelab.viz``. Endpoints: ``/caption_effect``,
``/branch_ablation``.
"""
from __future__ import annotations

import gradio as gr
import numpy as np

from .. import limits, models, pipeline, viz
from ..analysis import ablations
from ..device import resolve_precision
from ..engine import auto_device, get_model
from .compute import compute
from .errors import visitor_errors
from .gpu import zero_gpu
from .outputs import keyed
from .widgets import device_choice, precision_choice

CAPTION_MODEL, BRANCH_MODEL = "videovae-plus", "iv-vae"
MAX_CAPTION_CHARS = limits.MAX_CAPTION_CHARS

CAPTION_HELP = """### VideoVAE+: what does the caption do?
VideoVAE+ ([Xing et al. 2024](https://arxiv.org/abs/2412.17805)) lets its encoder *and* decoder attend to a
caption (cross-attention after the ResNet blocks), so text can carry part of what the latent would otherwise
have to store. Here the caption is read by a tiny text embedder of our own (hashed words, 2 transformer
blocks) trained with the VAE on one caption per training source; 10 % of training captions were dropped so
that "no caption" is a learned mode too. Compare the **right** caption, **no** caption and a **wrong** one on
the same clip: where the right caption wins, the caption carries information."""

BRANCH_HELP = """### IV-VAE: what each half of the latent carries
IV-VAE ([Wu et al. 2024](https://arxiv.org/abs/2411.06449)) splits its latent channels into a **keyframe**
branch (2D convolutions on the first frame of each 4-frame group) and a **temporal** branch (group-causal 3D
convolutions over the group). Decoding the same latent with one half set to zero shows what it carries. The
decoder mixes the halves from its first layer on, so this is not a clean "keyframes only" video: it is the
trained model missing half its code. PSNR is split by position inside each 4-frame group (frame 0 is coded
alone)."""


def _frames(state, frame=0) -> np.ndarray:
    """The last Reconstruct input, checked before any model runs (a NaN frame number is one line, not three
    reconstructions and a crash)."""
    if not isinstance(state, pipeline.Comparison):
        raise gr.Error("Run Reconstruct first: these experiments use its input clip.")
    try:
        limits.number(frame or 0, "Frame to show", 0, 1e9)
    except ValueError as e:
        raise gr.Error(str(e)) from None
    return state.frames


def _model(name: str, device: str, precision: str):
    """The lab model on ``device`` and the precision it will run in; refusals (no weights, fp16 on a CPU) are one
    line before any work."""
    if name not in models.names():
        raise gr.Error(f"The {name} lab weights are not installed ({models.lab_weights_path(name).name} is "
                       f"missing), so this experiment cannot run: VAE Lab never shows random-weight decodes.")
    dev = auto_device(device or "auto")
    prec = resolve_precision(precision or "auto", dev)  # PrecisionError is a ValueError: one line
    return get_model(name, "lab", dev), prec


def ran_md(ab: ablations.Ablation, device: str | None) -> str:
    """Which device and precision the experiment ran in (and what was asked, when it differs)."""
    asked = (f" (asked {device})" if device not in ("auto", None, "") and not ab.device.startswith(str(device))
             else "")
    how = " (autocast: weights, norm statistics and softmax in fp32)" if ab.precision != "fp32" else ""
    return f"- ran on {ab.device} {ab.precision}{asked}{how}"


def _picture(ab: ablations.Ablation, frame) -> tuple[int, dict[str, np.ndarray]]:
    """The frame to show (clamped to the clip) and the input and every variant at that frame."""
    t = int(np.clip(limits.number(frame or 0, "Frame to show", 0, 1e9), 0, len(ab.frames) - 1))
    return t, {"input": ab.frames[t]} | {k: v.recon[t] for k, v in ab.variants.items()}


def captions_for(example: str | None, upload: str | None = None) -> tuple[str, str]:
    """The right and a wrong caption for the Reconstruct tab's clip: a bundled example's own caption, and ""
    for an upload (its caption is the visitor's to write) or an example without one."""
    right = "" if upload else pipeline.example_caption(example)
    return right, ablations.wrong_caption_for(right)


@zero_gpu
def caption_effect(state, caption, wrong, frame, device="auto", precision="auto", progress=gr.Progress()):
    """VideoVAE+ with the right caption, none and a wrong one: PSNR curves, one frame of each, notes (which
    device and precision ran)."""
    frames = _frames(state, frame)
    with visitor_errors("The caption experiment"):
        model, prec = _model(CAPTION_MODEL, device, precision)
        progress(0.1, desc=f"videovae-plus: 3 reconstructions ({prec})")
        ab = ablations.caption_effect(model, frames, str(caption or "")[:MAX_CAPTION_CHARS],
                                      str(wrong or "")[:MAX_CAPTION_CHARS], precision=prec)
    t, images = _picture(ab, frame)
    images["|right - none| x4"] = viz.amplified_difference(ab.variants["right caption"].recon[t],
                                                            ab.variants["no caption"].recon[t])
    curves = viz.per_frame_lines({k: v.psnr for k, v in ab.variants.items()}, "VideoVAE+: PSNR per frame")
    notes = "\n".join([f"- {n}" for n in ab.notes] + [ran_md(ab, device)])
    return {"ccurves": curves, "cimages": viz.image_row(images, f"frame {t}"), "cnotes": notes}


@zero_gpu
def branch_ablation(state, frame, device="auto", precision="auto", progress=gr.Progress()):
    """IV-VAE decoded with its full latent and with either branch zeroed: one frame, PSNR by group position,
    notes (which device and precision ran)."""
    frames = _frames(state, frame)
    with visitor_errors("The branch experiment"):
        model, prec = _model(BRANCH_MODEL, device, precision)
        progress(0.1, desc=f"iv-vae: 3 reconstructions ({prec})")
        ab = ablations.branch_ablation(model, frames, precision=prec)
    t, images = _picture(ab, frame)
    cats = list(next(iter(ab.by_position.values())))
    bars = viz.bars(cats, {k: [v[c] for c in cats] for k, v in ab.by_position.items()},
                    "IV-VAE: PSNR by position inside each 4-frame group", "PSNR (dB)")
    notes = "\n".join([f"- {n}" for n in ab.notes] + [ran_md(ab, device)])
    return {"bimages": viz.image_row(images, f"frame {t}"), "bbars": bars, "bnotes": notes}


def frame_range(state):
    """The frame slider fitted to the last Reconstruct input (called after each successful run)."""
    n = len(state.frames) if isinstance(state, pipeline.Comparison) else pipeline.MAX_FRAMES
    return gr.Slider(minimum=0, maximum=max(n - 1, 1), value=0, step=1, interactive=n > 1)


def build(state: gr.State, example: gr.Dropdown, upload: gr.File | None = None) -> gr.Slider:
    """Components and events inside the current ``gr.Tab``; ``state`` is Reconstruct's last result, ``example``
    and ``upload`` its clip pickers (the clip's caption fills the caption box: the example's own, none for an
    upload). Returns the frame slider, which the app fits to each new Reconstruct input (``frame_range``)."""
    gr.Markdown("Two experiments that change one thing inside a trained model and decode the **Reconstruct** "
                "tab's last input again (its frames and resolution; each experiment runs its model 3 times).")
    frame = gr.Slider(0, pipeline.MAX_FRAMES - 1, value=0, step=1, label="Frame to show", elem_id="inside-frame")
    with gr.Row():
        device = device_choice("inside-device")
        precision = precision_choice("inside-precision")
    gr.Markdown(CAPTION_HELP)
    examples = pipeline.example_names()
    right, wrong_default = captions_for(examples[0] if examples else None)
    with gr.Row():
        caption = gr.Textbox(right, label="Right caption (describe the clip)", elem_id="caption-right",
                             max_length=MAX_CAPTION_CHARS, placeholder="describe the uploaded clip in a few words")
        wrong = gr.Textbox(wrong_default, label="Wrong caption", elem_id="caption-wrong", max_length=MAX_CAPTION_CHARS)
    crun = gr.Button("Compare captions", variant="primary", elem_id="caption-run")
    c = {"ccurves": gr.Plot(elem_id="caption-curves", show_label=False),
         "cimages": gr.Plot(elem_id="caption-images", show_label=False),
         "cnotes": gr.Markdown(elem_id="caption-notes")}
    gr.Markdown(BRANCH_HELP)
    brun = gr.Button("Zero each branch", variant="primary", elem_id="branch-run")
    c |= {"bimages": gr.Plot(elem_id="branch-images", show_label=False),
          "bbars": gr.Plot(elem_id="branch-bars", show_label=False),
          "bnotes": gr.Markdown(elem_id="branch-notes")}

    pickers = [example] + ([upload] if upload is not None else [])
    for src in pickers:
        src.change(captions_for, pickers, [caption, wrong], queue=False, api_name=False)
    crun.click(compute(keyed(caption_effect, c)), [state, caption, wrong, frame, device, precision],
               [c[k] for k in ("ccurves", "cimages", "cnotes")], api_name="caption_effect",
               concurrency_limit=1, concurrency_id="compute")
    brun.click(compute(keyed(branch_ablation, c)), [state, frame, device, precision],
               [c[k] for k in ("bimages", "bbars", "bnotes")],
               api_name="branch_ablation", concurrency_limit=1, concurrency_id="compute")
    return frame
