"""Tab "Wavelets": Haar bands of the last Reconstruct input and of each reconstruction (wiring and words).

Computation is ``vaelab.analysis.wavelet_view`` (and ``hvdm_view`` for HVDM's own branches), pictures
``vaelab.viz``. Endpoint: ``/wavelets``. Handlers return ``{output name: value}``.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from .. import limits, pipeline, viz
from . import text
from .compute import compute
from .errors import visitor_errors
from .outputs import keyed

MODES = ["2D per frame (3 levels)", "3D over time (1 level)"]
OUTPUTS = ["mosaic", "bars", "notes", "hvdm"]


def _mosaics(state: pipeline.Comparison, three_d: bool, t: int) -> tuple[dict[str, np.ndarray], str]:
    from ..analysis import wavelet_view as wv

    recons = {n: r.run.recon for n, r in state.results.items()}
    if three_d:
        tl = t // 2
        mosaics = {"input": wv.subband_mosaic_3d(state.frames, tl)[0]}
        mosaics |= {n: wv.subband_mosaic_3d(r, tl)[0] for n, r in recons.items()}
        legend = (f"3D Haar sub-bands at time step {tl} (frames {2 * tl}-{2 * tl + 1}). Tiles, left to right: "
                  "LLL LLH LHL LHH / HLL HLH HHL HHH (letters: time, rows, columns). Detail bands are shown as "
                  "sqrt(2|c|) so faint detail is visible.")
    else:
        mosaics = {"input": wv.mallat_mosaic(state.frames[t])} | {n: wv.mallat_mosaic(r[t]) for n, r in recons.items()}
        legend = (f"2D Haar, 3 levels, frame {t}: the coarse image (LL) top-left, then for each level LH to its "
                  "right, HL below, HH diagonal. Detail bands are shown as sqrt(2|c|) so faint detail is visible.")
    return mosaics, legend


def wavelets(state, mode, frame) -> dict[str, Any]:
    """Haar band view of the last Reconstruct result: mosaics for one frame and per-band energy/error bars."""
    from ..analysis import wavelet_view as wv

    if not isinstance(state, pipeline.Comparison):
        raise gr.Error("Run Reconstruct first: this tab analyses its input and reconstructions.")
    with visitor_errors("The wavelet view"):
        t = int(np.clip(limits.number(frame or 0, "Frame", 0, 1e9), 0, len(state.frames) - 1))
    three_d = str(mode).startswith("3D")
    mosaics, legend = _mosaics(state, three_d, t)
    tiles = [{"key": k, "image": v, "title": k} for k, v in mosaics.items()]
    recons = {n: r.run.recon for n, r in state.results.items()}
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
    mosaic_html = (f'<div class="vaelab-small" style="margin-bottom:6px">{viz._esc(legend)}</div>'
                   + viz.tile_gallery_html(tiles, min_px=260))
    return {"mosaic": mosaic_html, "bars": bars, "notes": "\n".join(lines),
            "hvdm": gr.Plot(value=hvdm_fig, visible=hvdm_fig is not None)}


def frame_range(state):
    """The frame slider fitted to the last Reconstruct input."""
    n = len(state.frames) if isinstance(state, pipeline.Comparison) else 1
    return gr.Slider(minimum=0, maximum=max(n - 1, 1), value=0, step=1, interactive=n > 1,
                     label=f"Frame (0-{max(n - 1, 0)} of the last Reconstruct input)")


def auto_wavelets(state, mode, frame) -> dict[str, Any]:
    """Re-render on a control change once there is a result; before that, nothing to do."""
    if not isinstance(state, pipeline.Comparison):
        return {}
    return wavelets(state, mode, frame)


def build(state: gr.State) -> gr.Slider:
    """Components and events inside the current ``gr.Tab``; returns the frame slider (fitted after each run)."""
    gr.Markdown("Haar wavelet bands of the input and of each reconstruction from the last **Reconstruct** "
                "run: which frequencies does each VAE keep, and where does its error live? Changing the transform "
                "or the frame redraws the view.")
    c: dict[str, Any] = {}
    with gr.Row():
        mode = gr.Radio(MODES, value=MODES[0], label="Transform", elem_id="wavelet-mode")
        frame = gr.Slider(0, 1, value=0, step=1, label="Frame (run Reconstruct first)", interactive=False,
                          elem_id="wavelet-frame")
        run = gr.Button("Show bands", variant="primary", elem_id="wavelet-run")
    c["mosaic"] = gr.HTML(elem_id="wavelet-mosaic")
    c["bars"] = gr.Plot(elem_id="wavelet-bars", show_label=False)
    c["notes"] = gr.Markdown(elem_id="wavelet-notes")
    c["hvdm"] = gr.Plot(elem_id="wavelet-hvdm", show_label=False, visible=False)
    outs = [c[k] for k in OUTPUTS]
    # its HVDM part runs a model: the one compute slot (ui/compute.py), as every compute handler
    slot = {"concurrency_limit": 1, "concurrency_id": "compute"}
    run.click(compute(keyed(wavelets, c)), [state, mode, frame], outs, api_name="wavelets", **slot)
    mode.change(compute(keyed(auto_wavelets, c)), [state, mode, frame], outs, api_name=False, **slot)
    frame.input(compute(keyed(auto_wavelets, c)), [state, mode, frame], outs, trigger_mode="always_last",
                api_name=False, **slot)
    return frame
