"""Tab "Diagnostics": probe clips with known ground truth, and rate-distortion / motion-resolved error on a clip.

Wiring and words only: the probes and measurements are ``vaelab.analysis.probes``, the figures
``vaelab.viz_diagnostics``; the JSON offered for download is ``ProbeReport.to_json`` (what ``vaelab probe``
writes). Endpoints: ``/run_diagnostics``, ``/clip_diagnostics``.
"""
from __future__ import annotations

import json

import gradio as gr

from .. import models, pipeline
from .. import viz_diagnostics as vd
from ..analysis import probes
from ..device import resolve_precision
from ..engine import auto_device, get_model
from .compute import compute
from .errors import visitor_errors
from .gpu import zero_gpu
from .outputs import keyed
from .widgets import clip_inputs, clip_settings, device_choice, precision_choice

# Outputs of /run_diagnostics and /clip_diagnostics, in the order the API returns them.
PROBE_OUTPUTS = ["spatial", "zone", "temporal", "flat", "colour", "motion", "frames", "rf", "summary", "report"]
CLIP_OUTPUTS = ["rd", "mre", "cnotes"]
# frames x pixels x models per request (the receptive field alone codes T + 1 clips of T frames)
MAX_PROBE_WORK_CPU = 9 * 9 * 64 * 64
MAX_PROBE_WORK_GPU = 9 * 33 * 256 * 256
MAX_CLIP_WORK_CPU = 4_000_000

INTRO = """Every probe is a clip **generated with a known answer**, coded by each model and measured against it:
what a model does to **frequency, time, colour and motion**, as curves you can compare across families.
`docs/DIAGNOSTICS.md` in the repository defines each probe and says what the lab weights show, with numbers;
`vaelab probe --models a,b --json out.json` writes the same numbers as the JSON offered below."""

HELP = {
    "spatial": "**Spatial frequency response (MTF).** One sinusoidal grating per clip; gain = output amplitude at "
               "the grating's frequency / input amplitude. 1 = passed, 0 = removed; the diamond is the half-gain "
               "frequency. An 8x VAE's latent grid has its Nyquist limit at 1/16 = 0.0625 cycles/px: what it keeps "
               "beyond that, the decoder re-invents. Right: energy the model puts *elsewhere* (aliasing, texture).",
    "zone": "**Zone plate.** A radial chirp: frequency rises from the centre (0) to the edges (Nyquist). Where rings "
            "fade is the MTF in every direction at once; rings that should not be there are aliases.",
    "temporal": "**Temporal frequency response.** A grating of one cycle per frame width drifting at f cycles/frame "
                "(f x size px/frame) and a textured scene whose brightness swings at f; gain relative to the static grating. "
                "Image models are flat at 1 (frames are independent); 4x temporal models average within groups. "
                "The legend's static flicker is frame-to-frame change the model adds to a still scene.",
    "flat": "**Flat fields.** Constant colours should come back constant: any energy off DC in the output's 2D FFT "
            "is an artefact (grid, tiles, texture). Dots on a lattice at multiples of 1/8 cycles/px are the "
            "latent grid; *grid share* is their part of the off-DC energy.",
    "colour": "**Colour chart.** The 24 ColorChecker patches, CIEDE2000 per patch interior (the lead's "
              "`metrics.delta_e_map`). < 1 is invisible, 2-5 noticeable side by side, > 10 reads as another colour.",
    "motion": "**Motion.** A 1/f texture panned at increasing speed (error against speed), and a scene cut inside "
              "a 4-frame group: per frame, how far the output is from what it is without the cut (the A-only clip's output "
              "before it, the B-only clip's after; 0-255 units); below 1 (dotted) counts as recovered.",
    "frames": "**Frame-count rules.** The same pan at 1, 4k and 4k+1 frames: hover for the frames after padding "
              "(last frame repeated) and the latent frames. 1+4k models code frame 0 alone; 4k models pad a "
              "single image to 4 frames.",
    "rf": "**Causal receptive field.** One input frame (top) or latent index (bottom) perturbed; each column shows "
          "which output frames change. Causal models are lower-triangular at their group size (dotted lines); "
          "a non-causal model changes frames before the perturbation.",
    "clip": "**Your clip.** Every chosen model on your clip: quality against latent size (floats per input pixel; "
            "bits per pixel for a codebook), with the Pareto front; and error binned by how much the input "
            "changes per pixel from frame to frame (frame difference: no optical-flow library or weights needed, "
            "and it is what a temporal VAE sees change, but it mixes speed with contrast).",
}


def _check_models(model_names) -> list[str]:
    if not model_names:
        raise gr.Error("Select at least one model.")
    unknown = [n for n in model_names if n not in models.names()]
    if unknown:
        raise gr.Error(f"No weights for {', '.join(unknown)}: VAE Lab never probes random weights.")
    return list(model_names)


def _cap(work: int, device: str, cpu: int, gpu: int, what: str) -> None:
    dev = auto_device(device)
    if work > (gpu if dev.type == "cuda" else cpu):
        raise gr.Error(f"This request is too heavy for {dev.type.upper()}: {what}. Lower the frames, the size or "
                       "the number of models.")


def _report_path():
    """A fresh file next to the app's other outputs (the system temp dir, which Gradio may serve)."""
    import tempfile
    import uuid
    from pathlib import Path

    out = Path(tempfile.gettempdir()) / "vaelab-out"
    out.mkdir(parents=True, exist_ok=True)
    return out / f"probe-{uuid.uuid4().hex[:12]}.json"


def notes_md(report: probes.ProbeReport) -> str:
    rows = ["| model | half-gain (cyc/px) | aliasing | temporal gain @0.25 | static flicker | flat off-DC | "
            "chart ΔE00 | cut recovery (frames) | s |", "|---|---|---|---|---|---|---|---|---|"]
    for n, m in report.models.items():
        s, t, f, c, mo = m["spatial_mtf"], m["temporal_mtf"], m["flat_field"], m["colour_chart"], m["motion"]
        hg = f"{s['half_gain_freq']:.3f}" + ("" if s["half_gain_reached"] else "+")
        g25 = t["gain"][t["freq"].index(0.25)] if 0.25 in t["freq"] else float("nan")
        rec = mo["scene_cut"]["recovery_frames"]
        rows.append(f"| {n} | {hg} | {s['aliasing_energy']:.3f} | {g25:.2f} | {t['static_flicker']:.2f} | "
                    f"{f['off_dc_energy']:.3g} | {c['delta_e_mean']:.2f} | {'not in clip' if rec is None else rec} | "
                    f"{report.seconds[n]:.1f} |")
    rules = [f"- **{n}** ({m['frame_count']['rule']}): " + "; ".join(
        f"{c['frames']} → {c['padded_to']} frames, {c['latent_frames']} latent" for c in m["frame_count"]["cases"])
        for n, m in report.models.items()]
    ran = sorted({f"{r['device']} {r['precision']}" for r in report.ran.values()})
    fell_back = [f"{n}: {'; '.join(r['precision_notes'])}" for n, r in report.ran.items() if r["precision_notes"]]
    return "\n".join(rows) + "\n\n**Frame-count rules:**\n" + "\n".join(rules) + (
        f"\n\nProbes at {report.size} px, {report.frames} frames (receptive fields at "
        f"{min(report.size, probes.RF_SIZE)} px). '+': the gain stays above 0.5 up to Nyquist."
        f"\n\n**Ran on:** {' / '.join(ran) or '—'} (asked {report.precision})"
        + ("; " + "; ".join(fell_back) if fell_back else "") + ".")


@zero_gpu
def run_diagnostics(model_names, frames, size, device="auto", precision="auto", progress=gr.Progress()):
    """The probe suite on each chosen model in ``precision``: ``{output name: value}`` (:data:`PROBE_OUTPUTS`):
    eight figures, a summary table (with the device and precision that ran) and the JSON report."""
    names = _check_models(model_names)
    with visitor_errors("The probe suite"):
        size, frames = probes.check_settings(size, frames)
        _cap(len(names) * frames * size * size, device, MAX_PROBE_WORK_CPU, MAX_PROBE_WORK_GPU,
             f"{len(names)} models x {frames} frames x {size}x{size} px")
        dev = auto_device(device)
        resolve_precision(precision or "auto", dev)  # fp16 on a CPU: one line before any model loads
        loaded = {}
        for i, n in enumerate(names):
            progress(0.02 * i, desc=f"loading {n}")
            loaded[n] = get_model(n, "lab", dev)
        report = probes.run_probes(loaded, size, frames, precision=precision or "auto",
                                   progress=lambda p, msg: progress(0.05 + 0.9 * p, desc=msg))
    path = _report_path()
    path.write_text(json.dumps(report.to_json(), indent=1) + "\n")
    m = report.models
    return {"spatial": vd.spatial_mtf(m), "zone": vd.zone_plate(m), "temporal": vd.temporal_mtf(m),
            "flat": vd.flat_field_spectra(m), "colour": vd.colour_chart(m), "motion": vd.motion(m),
            "frames": vd.frame_count(m), "rf": vd.receptive_fields(m), "summary": notes_md(report),
            "report": str(path)}


@zero_gpu
def clip_diagnostics(upload, example, model_names, frames, size, device="auto", precision="auto",
                     progress=gr.Progress()):
    """Rate-distortion (with the Pareto front) and motion-resolved error of each chosen model on a clip, in
    ``precision``: ``{output name: value}`` (:data:`CLIP_OUTPUTS`); the notes say which device and precision ran."""
    names = _check_models(model_names)
    with visitor_errors("The clip diagnostics"):
        clip = pipeline.load_input(upload, example, frames=frames, size=size)
        t, h, w, _ = clip.frames.shape
        if t < 2:
            raise ValueError("Motion-resolved error needs a video (at least 2 frames); this input has 1.")
        _cap(len(names) * t * h * w, device, MAX_CLIP_WORK_CPU, 50 * MAX_CLIP_WORK_CPU,
             f"{t} frames x {w}x{h} px x {len(names)} models")
        dev = str(auto_device(device))
        prec = resolve_precision(precision or "auto", dev)
        comp = pipeline.reconstruct_clip(clip.frames, names, device=dev, with_lpips=False, fps=clip.fps,
                                         clip_notes=clip.notes, progress=lambda p, msg: progress(0.8 * p, desc=msg),
                                         precision=prec)
        recons = {n: r.run.recon for n, r in comp.results.items()}
        progress(0.85, desc="latent sizes")
        rd = probes.rate_distortion(clip.frames, recons, {n: get_model(n, "lab", dev) for n in names}, precision=prec)
        mre = probes.motion_resolved_error(clip.frames, recons)
    rows = ["| model | floats/px | bits/px | PSNR dB | SSIM | ΔE00 | Pareto |", "|---|---|---|---|---|---|---|"]
    for n, r in rd["models"].items():
        bpp = "—" if r["bits_per_pixel"] is None else f"{r['bits_per_pixel']:.3f}"
        rows.append(f"| {n} | {r['floats_per_pixel']:.4f} | {bpp} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                    f"{r['delta_e_mean']:.2f} | {'yes' if r['pareto'] else ''} |")
    ran = sorted({f"{r.run.device} {r.run.precision}" for r in comp.results.values()})
    notes = "\n".join(rows) + f"\n\n**Ran on:** {' / '.join(ran)}."
    if clip.notes:
        notes = "**Input:** " + "; ".join(clip.notes) + ".\n\n" + notes
    return {"rd": vd.rate_distortion(rd), "mre": vd.motion_resolved(mre), "cnotes": notes}


def build() -> None:
    """Components and events inside the current ``gr.Tab``."""
    names = models.names()
    image = [n for n in names if models.model_class(n).card.kind == "image"]
    default = names if auto_device("auto").type == "cuda" else (image or names)[:3]
    gr.Markdown(INTRO)
    with gr.Row():
        chosen = gr.CheckboxGroup(names, value=default, label="Models to probe (each video model adds seconds on CPU)",
                                  elem_id="diag-models")
    with gr.Row():
        frames = gr.Slider(probes.MIN_FRAMES, probes.MAX_FRAMES, value=probes.DEFAULT_FRAMES, step=1,
                           label="Probe frames", elem_id="diag-frames")
        size = gr.Slider(probes.MIN_SIZE, probes.MAX_SIZE, value=probes.DEFAULT_SIZE, step=16,
                         label="Probe size (px, multiple of 16)", elem_id="diag-size")
        device = device_choice("diag-device")
        precision = precision_choice("diag-precision")
    run = gr.Button("Run probes", variant="primary", elem_id="diag-run")
    c: dict = {"summary": gr.Markdown(elem_id="diag-notes"),
               "report": gr.File(label="Probe report (JSON, as `vaelab probe` writes it)", elem_id="diag-json",
                                 interactive=False)}
    for key, elem in (("spatial", "diag-spatial"), ("zone", "diag-zone"), ("temporal", "diag-temporal"),
                      ("flat", "diag-flat"), ("colour", "diag-colour"), ("motion", "diag-motion"),
                      ("frames", "diag-frame-count"), ("rf", "diag-rf")):
        gr.Markdown(HELP[key], elem_classes=["vaelab-small"])
        c[key] = gr.Plot(elem_id=elem, show_label=False)
    gr.Markdown("---\n" + HELP["clip"])
    examples = pipeline.example_names()
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            upload, example = clip_inputs(examples, examples[0] if examples else None, "diag-upload", "diag-example")
            cframes, csize = clip_settings(pipeline.MAX_FRAMES, pipeline.DEFAULT_FRAMES, pipeline.MIN_SIZE,
                                           pipeline.MAX_SIZE, 64, prefix="diag-clip-")
            crun = gr.Button("Rate-distortion and motion error", variant="primary", elem_id="diag-clip-run")
        with gr.Column(scale=3):
            c["rd"] = gr.Plot(elem_id="diag-rd", show_label=False)
            c["mre"] = gr.Plot(elem_id="diag-mre", show_label=False)
            c["cnotes"] = gr.Markdown(elem_id="diag-clip-notes")

    run.click(compute(keyed(run_diagnostics, c)), [chosen, frames, size, device, precision],
              [c[k] for k in PROBE_OUTPUTS], concurrency_limit=1, concurrency_id="compute")
    crun.click(compute(keyed(clip_diagnostics, c)), [upload, example, chosen, cframes, csize, device, precision],
               [c[k] for k in CLIP_OUTPUTS], concurrency_limit=1, concurrency_id="compute")
