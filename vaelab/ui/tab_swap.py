"""Tab "Structure x Dynamics": VidTwin latent swaps between two clips (wiring and words only).

The computation is ``vaelab.analysis.swap``, the pictures are ``vaelab.viz_swap``. Endpoints (named
after their functions): ``/swap`` and ``/show_swap_frame``.
"""
from __future__ import annotations

import logging
import math
import os

import gradio as gr
import numpy as np

from .. import limits, models, pipeline, viz_swap
from ..analysis import swap as swap_data
from ..device import autocast, resolve_precision
from ..engine import auto_device, get_model
from ..io import write_mp4
from .compute import compute
from .errors import visitor_errors
from .gpu import zero_gpu
from .outputs import fresh_output_path, keyed
from .widgets import clip_inputs, clip_settings, device_choice, precision_choice

log = logging.getLogger("vaelab.ui.swap")

MODEL = "vidtwin"
# the operator may point the tab at a released checkpoint (file, folder or microsoft/vidtwin); default: lab weights
WEIGHTS_ENV = "VAELAB_VIDTWIN_WEIGHTS"


def weights_spec() -> str:
    return os.environ.get(WEIGHTS_ENV, "").strip() or "lab"

TEACHING = """### Structure x Dynamics (VidTwin)
VidTwin ([Wang et al., CVPR 2025](https://arxiv.org/abs/2412.17726)) codes a clip as **two latents** and its
decoder simply **adds** their embeddings, so the two can come from different clips.

- **Structure** asks *which few moments describe this clip?* At every place in the frame, 4 learned queries of a
  Q-Former read all frames of a 16-frame chunk and each keeps a weighted summary: 16 frames become 4 latent
  frames (the heatmap shows which frames each query reads). It holds the objects, the layout, the colours that
  stay, and slow motion.
- **Dynamics** asks *what changes from frame to frame?* It keeps every frame, but only as one profile over the
  rows and one over the columns (each frame averaged over its width and over its height): fast motion and
  changes of brightness or colour, with no room for objects.

**What to look for.** *Structure A + dynamics B* keeps A's objects and layout and takes on B's movement and
colour changes; *structure only* is a clip with its fast changes stripped out; *dynamics only* is change
without objects (row and column stripes that move). The notes measure it: a swap should share A's *layout* (where
things are bright or dark, colour removed) and take B's colours and frame-to-frame change. The paper reports that
the released model keeps A's objects and B's colours and fast motion. The weights here are lab-scale (1.6 M
parameters, trained on a CPU, v2): on held-out clips their swaps keep the structure donor's layout (0.92 vs -0.16
layout correlation), the queries read different moments of the chunk (attention peaks at frames 1, 6, 10 and 15),
the *fast* motion of a dynamics donor that has some carries over (0.22 vs 0.04 fast-motion correlation), and the
slow motion rides on the structure's keyframes -- all of it blurrily (18 dB reconstructions).
"""

WEIGHTS_MISSING = (f"**The VidTwin lab weights are not installed** (`{models.lab_weights_path(MODEL).name}` is "
                   f"missing from the weights folder), so this tab cannot run: VAE Lab never shows random-weight "
                   f"decodes. Train them with `vaelab train {MODEL}`.")

NO_OP_LEVELS = 1.0  # a swap closer than this (mean 0-255 levels) to a reconstruction is flagged as a near no-op
PART_LABELS = {"structure": "structure z_S (query frames)", "dynamics_h": "dynamics z_D_h (per frame, per row)",
               "dynamics_w": "dynamics z_D_w (per frame, per column)"}


def weights_status() -> str:
    """A line saying whether the VidTwin lab weights are there (re-evaluated on every page load)."""
    if weights_spec() != "lab":
        return (f"Model: `{MODEL}` with `{os.path.basename(weights_spec()) or weights_spec()}` ({WEIGHTS_ENV}); a released VidTwin reads 16 x 224 x 224 "
                "clips only, so the aligned clips are scaled, centre-cropped and cut (or looped) to that.")
    if MODEL not in models.names():
        return "⚠️ " + WEIGHTS_MISSING
    return f"Model: `{MODEL}` with lab weights (`{models.lab_weights_path(MODEL).name}`)."


def limits_text() -> str:
    s = swap_data
    return (f"**Limits:** up to {s.MAX_FRAMES} frames from the start of each clip (default {s.DEFAULT_FRAMES}, one "
            f"VidTwin chunk); working resolution (short side) {s.MIN_SIZE}-{s.MAX_SIZE} px (default "
            f"{s.DEFAULT_SIZE}); at most {s.MAX_WORK_CPU / 1e6:g} M frame pixels (frames x width x height) per "
            f"request on CPU, {s.MAX_WORK_GPU / 1e6:g} M on GPU. Each request runs 2 encodes and 8 decodes. "
            "Clips of different sizes or lengths are aligned, never rejected: B is scaled and centre-cropped to "
            "A's frame, the shorter clip is looped.")


def latent_md(sizes: swap_data.LatentSizes) -> str:
    """Latent sizes of one clip (both clips have the same) as a Markdown table."""
    c, t, h, w = sizes.input_shape
    lines = ["**Latent sizes** (per clip; both clips are coded at the same size)", "",
             "| part | shape | values | share of the input |", "|---|---|---:|---:|"]
    for part in swap_data.LATENT_PARTS:
        lines.append(f"| {PART_LABELS[part]} | {' x '.join(map(str, sizes.shapes[part]))} | "
                     f"{sizes.numel(part):,} | {100 * sizes.share(part):.3f} % |")
    lines.append(f"| **whole latent** | | **{sizes.numel():,}** | **{100 * sizes.share():.3f} %** |")
    lines.append(f"| input clip | {c} x {t} x {h} x {w} | {sizes.input_numel:,} | 100 % |")
    lines += ["", "Shapes are channels x time x height x width, for the frame padded to a multiple of 16 px. The "
              "structure keeps 4 query frames per 16-frame chunk; the dynamics keep every frame but one value per row "
              "or column."]
    return "\n".join(lines)


def notes_md(res: swap_data.SwapResult, device: str) -> str:
    """The verdict per swap, alignment notes, the distance table and the timing."""
    lines = ["**Verdict** (what the measures below say, one line per swap)", ""]
    lines += [f"- {v}" for v in verdicts(res.distances())]
    lines += ["", "**How the clips were aligned**", ""] + [f"- {n}" for n in res.notes]
    lines += ["", "**Which clip does each decode resemble?** *Layout*: correlation of the time-averaged brightness "
              "pattern, colour and exposure removed (1 = same layout; higher = closer). *Picture*: mean absolute "
              f"difference (0-255) of the time-averaged frame in {swap_data.STRUCTURE_POOL}x{swap_data.STRUCTURE_POOL} "
              "px blocks, colour included; *change*: of the frame-to-frame differences (what moves). Lower = closer. "
              "*Motion*: the motion-transfer score, correlation of the frame-to-frame brightness changes in the same "
              "blocks (where and when the picture moves; 1 = same motion, higher = closer). *Fast motion*: the same "
              f"after removing each change's moving average over {swap_data.FAST_WINDOW} frames, i.e. the motion "
              "faster than the structure latent's keyframes: the part the paper gives to the dynamics latent.",
              "", "| decode | layout vs A | layout vs B | motion vs A | motion vs B | fast motion vs A | fast motion vs B "
              "| picture vs A | picture vs B | change vs A | change vs B |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def fmt(v: float | None) -> str:
        return "n/a (1 frame)" if v is None else f"{v:.1f}"

    def corr(v: float | None) -> str:
        return "n/a (still)" if v is None else f"{v:.2f}"

    for name, d in res.distances().items():
        lines.append(f"| {name} | {d['layout_to_A']:.2f} | {d['layout_to_B']:.2f} | "
                     f"{corr(d['motion_to_A'])} | {corr(d['motion_to_B'])} | "
                     f"{corr(d.get('fast_motion_to_A'))} | {corr(d.get('fast_motion_to_B'))} | "
                     f"{fmt(d['structure_to_A'])} | {fmt(d['structure_to_B'])} | "
                     f"{fmt(d['dynamics_to_A'])} | {fmt(d['dynamics_to_B'])} |")
    lines += ["", "**Did the swap change anything?** Mean absolute difference (0-255) of each swap to the two "
              "reconstructions:"]
    for name, d in res.swap_effect().items():
        lines.append(f"- {name}: {d['to_A']:.1f} from A reconstructed, {d['to_B']:.1f} from B reconstructed.")
        donor = min(d, key=d.get)[-1]
        if d[f"to_{donor}"] < NO_OP_LEVELS:
            part = "structure" if name.startswith(f"structure {donor}") else "dynamics"
            lines.append(f"  ⚠️ Nearly identical to {donor}'s reconstruction: with these weights {donor}'s {part} "
                         "latent carries almost the whole clip and the other part adds little.")
    lines += ["", f"Model time: {res.seconds:.1f} s on {device} for {res.frames} frames of "
              f"{res.clips['A'].shape[2]}x{res.clips['A'].shape[1]} px."]
    return "\n".join(lines)


SWAPS = {"structure A + dynamics B": ("A", "B"), "structure B + dynamics A": ("B", "A")}
FAST_MOTION_MIN = 0.05  # fast-motion correlations below this with both clips are noise, not a transfer


def verdicts(distances: dict[str, dict[str, float | None]]) -> list[str]:
    """One plain-language line per swap: whose layout, whose picture (colour) and whose motion it has, and
    whether that is what the swap asked for (layout from the structure donor, change from the dynamics donor)."""
    out = []
    for name, (s_donor, d_donor) in SWAPS.items():
        d = distances.get(name)
        if d is None:
            continue
        layout = "A" if d["layout_to_A"] >= d["layout_to_B"] else "B"
        parts = [f"layout like {layout} ({d['layout_to_A']:.2f} vs {d['layout_to_B']:.2f} correlation to A / B)"
                 + (" ✓" if layout == s_donor else " ✗ (expected " + s_donor + ")")]
        if d["structure_to_A"] is not None:
            pic = "A" if d["structure_to_A"] <= d["structure_to_B"] else "B"
            parts.append(f"picture and colours closer to {pic} ({d['structure_to_A']:.1f} vs "
                         f"{d['structure_to_B']:.1f} levels)")
        mot = None
        fast = (d.get("fast_motion_to_A"), d.get("fast_motion_to_B"))
        if None not in fast and max(fast) < FAST_MOTION_MIN:
            parts.append(f"no fast motion to transfer ({fast[0]:.2f} vs {fast[1]:.2f} fast-motion correlation "
                         "to A / B: too small to judge)")
        elif None not in fast:
            # the paper's split: fast motion belongs to the dynamics donor; slow motion rides on the structure
            mot = "A" if fast[0] >= fast[1] else "B"
            parts.append(f"fast motion like {mot} ({fast[0]:.2f} vs {fast[1]:.2f} "
                         "fast-motion correlation to A / B)" + (" ✓" if mot == d_donor else f" ✗ (expected {d_donor})"))
            if d.get("motion_to_A") is not None and d.get("motion_to_B") is not None:
                slow = "A" if d["motion_to_A"] >= d["motion_to_B"] else "B"
                parts.append(f"overall motion like {slow} ({d['motion_to_A']:.2f} vs {d['motion_to_B']:.2f})"
                             + (" (slow motion rides on the structure keyframes)" if slow == s_donor else ""))
        elif d.get("motion_to_A") is not None and d.get("motion_to_B") is not None:
            mot = "A" if d["motion_to_A"] >= d["motion_to_B"] else "B"
            parts.append(f"motion like {mot} ({d['motion_to_A']:.2f} vs {d['motion_to_B']:.2f} motion-transfer "
                         "correlation to A / B)" + (" ✓" if mot == d_donor else f" ✗ (expected {d_donor})"))
        elif d["dynamics_to_A"] is not None:
            mot = "A" if d["dynamics_to_A"] <= d["dynamics_to_B"] else "B"
            parts.append(f"frame-to-frame change closer to {mot} ({d['dynamics_to_A']:.1f} vs "
                         f"{d['dynamics_to_B']:.1f} levels)" + (" ✓" if mot == d_donor else
                                                                 f" ✗ (expected {d_donor})"))
        else:
            parts.append("motion not measurable (1 frame)")
        ok = layout == s_donor and (mot is None or mot == d_donor)
        out.append(f"**{name}**: {'the swap worked' if ok else 'only partly a swap'}: " + "; ".join(parts) + ".")
    return out


def max_size_for(frames: int, aspect: float = 16 / 9, cap: int = swap_data.MAX_WORK_CPU) -> int:
    """The largest working resolution (short side, multiple of 16) a ``frames``-frame clip of ``aspect`` fits
    under the work cap."""
    short = int(math.sqrt(cap / (max(1, int(frames)) * aspect))) // 16 * 16
    return int(np.clip(short, swap_data.MIN_SIZE, swap_data.MAX_SIZE))


def size_range(frames, size):
    """The size slider follows the frame count: it never offers a size the CPU work cap refuses (16:9 clip)."""
    top = max_size_for(frames)
    return gr.Slider(maximum=top, value=min(int(size), top),
                     info=f"Up to {top} px at {int(frames)} frames on CPU (work cap, 16:9 clip).")


def work_refusal(shape_thwc: tuple[int, ...], device) -> None:
    """The work-cap refusal, saying what fits at this selection."""
    t, h, w = shape_thwc[:3]
    cap = swap_data.MAX_WORK_GPU if str(device).startswith("cuda") else swap_data.MAX_WORK_CPU
    if t * h * w <= cap:
        return
    frames_fit = cap // (h * w)
    size_fit = int(min(h, w) * math.sqrt(cap / (t * h * w))) // 16 * 16
    fits = ([f"{frames_fit} frames at this size"] if frames_fit >= 1 else []) + (
        [f"working resolution {size_fit} px at {t} frames"] if size_fit >= swap_data.MIN_SIZE else [])
    raise ValueError(f"This swap is too heavy for {'GPU' if cap == swap_data.MAX_WORK_GPU else 'CPU'}: {t} frames x "
                     f"{w}x{h} px = {t * h * w / 1e6:.2f} M pixels (limit {cap / 1e6:g} M). "
                     + (f"What fits: {'; or '.join(fits)}." if fits else "Lower the frames or the resolution."))


OUTPUTS = ["video", "frame", "frame_plot", "attention", "latents", "notes", "state"]


@zero_gpu
def swap(upload_a, example_a, upload_b, example_b, frames, size, device, precision="auto", progress=gr.Progress()):
    """Swap VidTwin's structure and dynamics latents between clip A and clip B.

    Returns ``{output name: value}`` (:data:`OUTPUTS`): the grid video, the frame slider, the frame grid figure,
    the attention heatmaps, the latent-size table, the notes and the result (state for the frame slider)."""
    if weights_spec() == "lab" and MODEL not in models.names():
        raise gr.Error(WEIGHTS_MISSING.replace("**", "").replace("`", ""))
    with visitor_errors("The swap"):
        progress(0.0, desc="reading clips")
        pair = swap_data.load_pair(upload_a, example_a, upload_b, example_b, frames=frames, size=size)
        dev = auto_device(device)
        work_refusal(pair.a.shape, dev)
        progress(0.15, desc="VidTwin: 2 encodes, 8 decodes")
        prec = resolve_precision(precision or "auto", dev)
        with autocast(prec, dev):
            res = swap_data.swap_pair(get_model(MODEL, weights_spec(), dev), pair)

    progress(0.85, desc="writing the video")
    video = write_mp4(viz_swap.grid_video(res.rows()), fresh_output_path(".mp4"), fps=res.fps)
    progress(0.95, desc="plotting")
    slider = gr.Slider(minimum=0, maximum=max(res.frames - 1, 1), value=0, step=1, interactive=res.frames > 1)
    return {"video": str(video), "frame": slider, "frame_plot": viz_swap.frame_grid(res.rows(0), 0),
            "attention": viz_swap.attention_heatmaps(res.attention, res.chunk_frames),
            "latents": latent_md(res.latents), "notes": notes_md(res, f"{dev} ({prec})"), "state": res}


def show_swap_frame(state, index):
    """One frame of every panel of the last swap."""
    if not isinstance(state, swap_data.SwapResult):
        return None
    try:
        t = int(np.clip(limits.number(index or 0, "Frame", 0, 1e9), 0, state.frames - 1))
    except ValueError as e:
        raise gr.Error(str(e)) from None
    return viz_swap.frame_grid(state.rows(t), t)


def build() -> None:
    """Create the tab's components and events inside the current ``gr.Tab`` context."""
    examples = pipeline.example_names()

    def default(name: str, fallback: int) -> str | None:
        if name in examples:
            return name
        return examples[min(fallback, len(examples) - 1)] if examples else None

    gr.Markdown(TEACHING)
    gr.Markdown(weights_status, elem_id="swap-status")
    c = {"state": gr.State(None, time_to_live=limits.STATE_TTL_S)}
    state = c["state"]
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            with gr.Group():
                gr.Markdown("**Clip A** (structure donor of the first swap)")
                upload_a, example_a = clip_inputs(examples, default("bigbuckbunny", 0), "swap-upload-a",
                                                  "swap-example-a", "clip A")
            with gr.Group():
                gr.Markdown("**Clip B** (dynamics donor of the first swap)")
                upload_b, example_b = clip_inputs(examples, default("bikes", 1), "swap-upload-b", "swap-example-b",
                                                  "clip B")
            frames, size = clip_settings(swap_data.MAX_FRAMES, swap_data.DEFAULT_FRAMES, swap_data.MIN_SIZE,
                                         swap_data.MAX_SIZE, swap_data.DEFAULT_SIZE, "swap-")
            device = device_choice("swap-device")
            precision = precision_choice("swap-precision")
            run = gr.Button("Swap structure and dynamics", variant="primary", elem_id="swap-run")
            gr.Markdown(limits_text(), elem_classes=["vaelab-small"])
        with gr.Column(scale=3):
            gr.Markdown("Top row: clip A, its reconstruction, A's structure only, A's dynamics only, **structure A + "
                        "dynamics B**; bottom row the same for clip B, ending with **structure B + dynamics A**. One "
                        "video, so every panel plays in sync.", elem_classes=["vaelab-small"])
            c["video"] = gr.Video(label="Clips, decodes and swaps (synchronised)", elem_id="swap-video",
                                  autoplay=True, loop=True, show_label=False)
            c["frame"] = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False, elem_id="swap-frame")
            c["frame_plot"] = gr.Plot(label="One frame of every panel", elem_id="swap-frame-plot", show_label=False)
    with gr.Row():  # the distance table has 11 columns: give it three quarters of the width
        with gr.Column(scale=3):
            c["notes"] = gr.Markdown(elem_id="swap-notes")
        with gr.Column(scale=1, min_width=240):
            c["latents"] = gr.Markdown(elem_id="swap-latents")
    c["attention"] = gr.Plot(label="Q-Former attention over frames", elem_id="swap-attention", show_label=False)
    frame_idx, frame_plot = c["frame"], c["frame_plot"]
    frames.change(size_range, [frames, size], size, queue=False, api_name=False)

    run.click(compute(keyed(swap, c)), [upload_a, example_a, upload_b, example_b, frames, size, device, precision],
              [c[k] for k in OUTPUTS], api_name="swap",
              concurrency_limit=1, concurrency_id="compute")  # shares the one compute slot with Reconstruct
    frame_idx.input(show_swap_frame, [state, frame_idx], frame_plot, concurrency_limit=4, trigger_mode="always_last")
