"""Figures of the Diagnostics tab, built from the data of ``vaelab.analysis.probes`` (no torch, no model code).

Every function takes the per-model dicts of a ``ProbeReport`` (``report.models``: {name: {json key: ...}}) or the
dicts of ``probes.rate_distortion`` / ``probes.motion_resolved_error``; colours follow model order as in ``viz``.
``grid_overlay`` draws the latent, tile and chunk grid over a Reconstruct frame panel.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .viz import INPUT_COLOUR, colour, image_row, png_data_uri, style

DASHES = {"0": "solid", "90": "dot", "45": "dash"}
DELTA_E_RANGE = (0, 20)


def _legend(fig: go.Figure) -> None:
    fig.update_layout(legend=dict(orientation="h", y=-0.2))


def spatial_mtf(per_model: dict[str, dict[str, Any]]) -> go.Figure:
    """Gain against cycles/pixel (solid: mean of 0 and 90 degrees; dotted 90, dashed 45 degrees) and the
    spurious (aliasing) energy against frequency; the half-gain frequency is marked on each curve."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("MTF: gain at the grating frequency (0.5 = half gain)",
                                        "spurious energy away from the grating frequency (aliasing)"))
    for i, (name, m) in enumerate(per_model.items()):
        s = m["spatial_mtf"]
        fig.add_trace(go.Scatter(x=s["freq"], y=s["gain"], name=name, legendgroup=name, mode="lines+markers",
                                 line=dict(color=colour(i), width=2),
                                 hovertemplate=f"{name}<br>%{{x:.3f}} cyc/px: gain %{{y:.3f}}<extra>0/90°</extra>"),
                      row=1, col=1)
        for deg in ("90", "45"):
            o = s["by_orientation"].get(deg)
            if o:
                fig.add_trace(go.Scatter(x=o["freq"], y=o["gain"], name=f"{name} {deg}°", legendgroup=name,
                                         showlegend=False, mode="lines", line=dict(color=colour(i), width=1,
                                                                                    dash=DASHES[deg]),
                                         hovertemplate=f"{name} {deg}°<br>%{{x:.3f}} cyc/px: %{{y:.3f}}<extra></extra>"),
                              row=1, col=1)
        hg = s["half_gain_freq"]
        fig.add_trace(go.Scatter(x=[hg], y=[0.5], mode="markers", legendgroup=name, showlegend=False,
                                 marker=dict(color=colour(i), size=11, symbol="diamond" if s["half_gain_reached"]
                                             else "triangle-right"),
                                 hovertemplate=f"{name}: half gain at {hg:.3f} cyc/px"
                                 + ("" if s["half_gain_reached"] else " or beyond") + "<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=s["freq"], y=s["spurious"], name=name, legendgroup=name, showlegend=False,
                                 mode="lines+markers", line=dict(color=colour(i), width=2),
                                 hovertemplate=f"{name}<br>%{{x:.3f}} cyc/px: %{{y:.3f}} of the input energy"
                                               "<extra></extra>"), row=1, col=2)
    fig.add_hline(y=0.5, line=dict(color="#999", dash="dot", width=1), row=1, col=1)
    fig.update_xaxes(title_text="spatial frequency (cycles / pixel; Nyquist 0.5)", range=[0, 0.5])
    fig.update_yaxes(title_text="gain (output / input amplitude)", row=1, col=1)
    fig.update_yaxes(title_text="spurious / input AC energy", row=1, col=2)
    style(fig, 420, margin=dict(l=60, r=20, t=50, b=60))
    _legend(fig)
    return fig


def zone_plate(per_model: dict[str, dict[str, Any]]) -> go.Figure:
    """The radial chirp (frequency rising from the centre to Nyquist at the edges) in and out of each model."""
    first = next(iter(per_model.values()))["spatial_mtf"]["_zone_plate"]
    images = {"input": first["input"]} | {n: m["spatial_mtf"]["_zone_plate"]["output"] for n, m in per_model.items()}
    return image_row(images, "Zone plate: 0 cycles/px at the centre, 0.5 (Nyquist) at the edge midpoints; "
                             "rings that fade show the MTF, extra rings are aliasing", height=300)


def temporal_mtf(per_model: dict[str, dict[str, Any]]) -> go.Figure:
    """Drifting-grating gain (normalised by the static grating) and flicker gain, against cycles per frame."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("drifting grating: gain / static gain", "flickering scene: brightness gain"))
    for i, (name, m) in enumerate(per_model.items()):
        t = m["temporal_mtf"]
        fig.add_trace(go.Scatter(x=t["freq"], y=t["gain"], name=f"{name} (static flicker {t['static_flicker']:.2f})",
                                 legendgroup=name, mode="lines+markers", line=dict(color=colour(i), width=2),
                                 customdata=t["speed_px_per_frame"],
                                 hovertemplate=f"{name}<br>%{{x:.3f}} cyc/frame (%{{customdata:.0f}} px/frame): "
                                               "%{y:.3f}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=t["flicker"]["freq"], y=t["flicker"]["gain"], name=name, legendgroup=name,
                                 showlegend=False, mode="lines+markers", line=dict(color=colour(i), width=2),
                                 hovertemplate=f"{name}<br>%{{x:.3f}} cyc/frame: %{{y:.3f}}<extra></extra>"),
                      row=1, col=2)
    fig.update_xaxes(title_text="temporal frequency (cycles / frame; 0.5 = alternate frames)", range=[-0.02, 0.52])
    fig.update_yaxes(title_text="gain", row=1, col=1)
    fig.update_yaxes(title_text="gain", row=1, col=2)
    style(fig, 400, margin=dict(l=60, r=20, t=50, b=60))
    _legend(fig)
    return fig


def flat_field_spectra(per_model: dict[str, dict[str, Any]]) -> go.Figure:
    """Mean 2D power spectrum (log10, DC at the centre) of each model's output on flat colours."""
    names = list(per_model)
    fig = make_subplots(rows=1, cols=len(names), horizontal_spacing=0.02,
                        subplot_titles=[f"{n}: off-DC {per_model[n]['flat_field']['off_dc_energy']:.3g}"
                                        f"<br>grid share {per_model[n]['flat_field']['grid_share']:.2f}"
                                        for n in names])
    for i, n in enumerate(names, start=1):
        spec = np.asarray(per_model[n]["flat_field"]["_spectrum"])
        s = spec.shape[0]
        f = np.fft.fftshift(np.fft.fftfreq(s))
        fig.add_trace(go.Heatmap(z=spec, x=f, y=f, coloraxis="coloraxis", name=n,
                                 hovertemplate=f"{n}<br>fx %{{x:.3f}}, fy %{{y:.3f}}: log10 power %{{z:.2f}}"
                                               "<extra></extra>"), row=1, col=i)
        fig.update_yaxes(scaleanchor=f"x{i if i > 1 else ''}", showticklabels=i == 1, row=1, col=i)
    fig.update_xaxes(showticklabels=False)
    return style(fig, 360, margin=dict(l=40, r=20, t=110, b=20),
                 coloraxis=dict(colorscale="Viridis", cmin=-6, cmax=2,
                                colorbar=dict(title=dict(text="log10 power<br>(0-255 units²)"), thickness=12)),
                 title="Flat fields: power spectrum of the output (a perfect model is one dot at DC, removed here)")


def colour_chart(per_model: dict[str, dict[str, Any]]) -> go.Figure:
    """The ColorChecker input, then per model its reconstruction with each patch's CIEDE2000 written on it."""
    names = list(per_model)
    first = per_model[names[0]]["colour_chart"]
    fig = make_subplots(rows=1, cols=1 + len(names), horizontal_spacing=0.01,
                        subplot_titles=["input"] + [f"{n}: mean ΔE00 {per_model[n]['colour_chart']['delta_e_mean']:.2f}"
                                                    for n in names])
    fig.add_trace(go.Image(source=png_data_uri(first["_chart"]["input"]), hoverinfo="skip"), row=1, col=1)
    for c, n in enumerate(names, start=2):
        ch = per_model[n]["colour_chart"]
        img = ch["_chart"]["output"]
        fig.add_trace(go.Image(source=png_data_uri(img), hoverinfo="skip"), row=1, col=c)
        ph, pw = img.shape[0] / 4, img.shape[1] / 6
        xs, ys, texts, hover = [], [], [], []
        for i, (name, de) in enumerate(zip(ch["patches"], ch["per_patch"])):
            r, k = divmod(i, 6)
            xs.append((k + 0.5) * pw)
            ys.append((r + 0.5) * ph)
            texts.append(f"{de:.1f}")
            hover.append(f"{name}: ΔE00 {de:.2f}")
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="text", text=texts, hovertext=hover, hoverinfo="text",
                                 textfont=dict(size=10, color=["#000" if d < 5 else "#fff" for d in ch["per_patch"]]),
                                 showlegend=False), row=1, col=c)
    fig.update_xaxes(visible=False)
    for i in range(1, len(names) + 2):
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i)
    return style(fig, 300, margin=dict(l=10, r=10, t=60, b=10),
                 title="Colour chart: CIEDE2000 per patch (interior; < 1 invisible, 2-5 noticeable, > 10 a "
                       "different colour)")


def motion(per_model: dict[str, dict[str, Any]]) -> go.Figure:
    """PSNR against pan speed, and per frame around a scene cut how far the output is from the single-scene clip's
    output (A-only before the cut, B-only after; 1 = the recovery threshold, dotted)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("textured pan: PSNR against speed",
                                        "scene cut: |output - single-scene output| per frame"))
    cut = None
    for i, (name, m) in enumerate(per_model.items()):
        mo = m["motion"]
        fig.add_trace(go.Scatter(x=mo["speeds"], y=mo["psnr"], name=name, legendgroup=name, mode="lines+markers",
                                 line=dict(color=colour(i), width=2),
                                 hovertemplate=f"{name}<br>%{{x}} px/frame: %{{y:.2f}} dB<extra></extra>"), row=1, col=1)
        sc = mo["scene_cut"]
        cut = sc["cut_frame"]
        rec = sc["recovery_frames"]
        label = f"{name}: recovers in {rec} frame(s)" if rec is not None else f"{name}: not recovered in the clip"
        label += f", {sc['frames_changed_before_cut']} frame(s) before the cut changed"
        fig.add_trace(go.Scatter(x=list(range(len(sc["output_change"]))), y=sc["output_change"], name=label,
                                 legendgroup=name, showlegend=False, mode="lines+markers",
                                 line=dict(color=colour(i), width=2),
                                 hovertemplate=label + "<br>frame %{x}: %{y:.2f}<extra></extra>"), row=1, col=2)
    if cut is not None:
        fig.add_vline(x=cut - 0.5, line=dict(color="#999", dash="dot"), row=1, col=2)
        fig.add_hline(y=1.0, line=dict(color="#bbb", dash="dot", width=1), row=1, col=2)
    fig.update_xaxes(title_text="pan speed (px / frame)", row=1, col=1)
    fig.update_xaxes(title_text=f"frame (cut before frame {cut})", row=1, col=2)
    fig.update_yaxes(title_text="PSNR (dB)", row=1, col=1)
    fig.update_yaxes(title_text="mean |change| (0-255)", row=1, col=2)
    style(fig, 400, margin=dict(l=60, r=20, t=50, b=60))
    _legend(fig)
    return fig


def frame_count(per_model: dict[str, dict[str, Any]]) -> go.Figure:
    """Per-frame PSNR of the slow pan at 1, 4k and 4k+1 frames (one panel each); hover says padding and latent."""
    cases = [c["frames"] for c in next(iter(per_model.values()))["frame_count"]["cases"]]
    fig = make_subplots(rows=1, cols=len(cases), horizontal_spacing=0.06,
                        subplot_titles=[f"{n} frame{'s' if n > 1 else ''}" for n in cases])
    for i, (name, m) in enumerate(per_model.items()):
        for c, case in enumerate(m["frame_count"]["cases"], start=1):
            info = f"{name}: padded to {case['padded_to']}, {case['latent_frames']} latent frame(s)"
            fig.add_trace(go.Scatter(x=list(range(case["frames"])), y=case["psnr"], name=name, legendgroup=name,
                                     showlegend=c == 1, mode="lines+markers", line=dict(color=colour(i), width=2),
                                     hovertemplate=info + "<br>frame %{x}: %{y:.2f} dB<extra></extra>"), row=1, col=c)
    fig.update_xaxes(title_text="frame")
    fig.update_yaxes(title_text="PSNR (dB)", row=1, col=1)
    style(fig, 360, margin=dict(l=60, r=20, t=50, b=60))
    _legend(fig)
    return fig


def receptive_fields(per_model: dict[str, dict[str, Any]]) -> go.Figure:
    """Per model: output frame (rows) x perturbed input frame (columns), and x perturbed latent index; each map
    divided by its own maximum (hover: the change in 0-255 units). Dotted lines: the model's temporal groups."""
    names = list(per_model)
    fig = make_subplots(rows=2, cols=len(names), horizontal_spacing=0.03, vertical_spacing=0.16,
                        subplot_titles=[f"{n}: input frame" for n in names] + [f"{n}: latent index" for n in names])
    for c, n in enumerate(names, start=1):
        rf = per_model[n]["receptive_field"]
        for r, (cols, z) in enumerate(((rf["input_frames"], rf["change"]),
                                       (rf["latent"]["latent_frames"], rf["latent"]["change"])), start=1):
            z = np.asarray(z, dtype=float)
            if z.size == 0:
                continue
            peak = z.max() if z.max() > 0 else 1.0
            fig.add_trace(go.Heatmap(z=z / peak, x=[str(v) for v in cols], y=rf["output_frames"], customdata=z,
                                     coloraxis="coloraxis",
                                     hovertemplate=f"{n}<br>output frame %{{y}}, perturbed %{{x}}: change "
                                                   "%{customdata:.3f} (0-255)<extra></extra>"), row=r, col=c)
            fig.update_yaxes(autorange="reversed", row=r, col=c, title_text="output frame" if c == 1 else None)
        groups = rf.get("groups") or []
        for t in range(1, len(groups)):
            if groups[t] != groups[t - 1]:
                for kw in (dict(x0=t - 0.5, x1=t - 0.5, y0=-0.5, y1=len(groups) - 0.5),
                           dict(y0=t - 0.5, y1=t - 0.5, x0=-0.5, x1=len(groups) - 0.5)):
                    fig.add_shape(type="line", line=dict(color="#bbb", width=1, dash="dot"), row=1, col=c, **kw)
    return style(fig, 560, margin=dict(l=60, r=20, t=60, b=40),
                 coloraxis=dict(colorscale="Magma", cmin=0, cmax=1,
                                colorbar=dict(title=dict(text="change /<br>map max"), thickness=12)),
                 title="Causal receptive field: which output frames change when one input (top) or latent (bottom) "
                       "frame is perturbed")


def rate_distortion(rd: dict[str, Any]) -> go.Figure:
    """PSNR, SSIM and CIEDE2000 against latent floats per pixel (log x); the Pareto front of PSNR joined."""
    rows = rd["models"]
    names = list(rows)
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=("PSNR (dB, higher is better)", "SSIM (higher is better)",
                                        "mean ΔE00 (lower is better)"))
    for i, n in enumerate(names):
        r = rows[n]
        bpp = f"<br>{r['bits_per_pixel']:.3f} bits/px (quantised)" if r.get("bits_per_pixel") is not None else ""
        for c, key in enumerate(("psnr", "ssim", "delta_e_mean"), start=1):
            fig.add_trace(go.Scatter(x=[r["floats_per_pixel"]], y=[r[key]], name=n, legendgroup=n, showlegend=c == 1,
                                     mode="markers+text", text=[n] if c == 1 else None, textposition="top center",
                                     marker=dict(color=colour(i), size=12,
                                                 symbol="star" if r.get("bits_per_pixel") is not None else "circle",
                                                 line=dict(width=2, color="#000") if r["pareto"] else None),
                                     hovertemplate=f"{n}: %{{x:.4f}} floats/px, %{{y:.3f}}{bpp}<extra></extra>"),
                          row=1, col=c)
    front = sorted((rows[n]["floats_per_pixel"], rows[n]["psnr"]) for n in names if rows[n]["pareto"])
    if len(front) > 1:
        fig.add_trace(go.Scatter(x=[p[0] for p in front], y=[p[1] for p in front], mode="lines", name="Pareto front",
                                 line=dict(color=INPUT_COLOUR, dash="dash", width=1)), row=1, col=1)
    fig.update_xaxes(type="log", title_text="latent floats per pixel")
    style(fig, 420, margin=dict(l=60, r=20, t=50, b=60),
          title=f"Rate-distortion on your clip ({rd['frames']} frames, {rd['width']}x{rd['height']}); outlined: on "
                "the Pareto front; star: quantised latent")
    _legend(fig)
    return fig


def motion_resolved(mre: dict[str, Any]) -> go.Figure:
    """Mean |error| per bin of input motion (frame difference), one line per model; bars: pixels per bin."""
    edges = mre["edges"]
    labels = [f"{a}-{b}" for a, b in zip(edges[:-1], edges[1:])]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=labels, y=mre["counts"], name="pixels in bin", marker_color="#dddddd", opacity=0.35),
                  secondary_y=True)
    for i, (name, err) in enumerate(mre["error"].items()):
        fig.add_trace(go.Scatter(x=labels, y=err, name=name, mode="lines+markers", line=dict(color=colour(i), width=2),
                                 connectgaps=False,
                                 hovertemplate=f"{name}<br>motion %{{x}}: error %{{y:.2f}}<extra></extra>"),
                      secondary_y=False)
    fig.update_xaxes(title_text="input motion: |frame t - frame t-1| per pixel (0-255, mean over RGB)")
    fig.update_yaxes(title_text="mean |error| (0-255)", secondary_y=False)
    fig.update_yaxes(title_text="pixels", type="log", secondary_y=True, showgrid=False)
    style(fig, 400, margin=dict(l=60, r=60, t=50, b=60),
          title="Motion-resolved error: how each model's error grows with what moves")
    _legend(fig)
    return fig


# Copied from vaelab.streaming.tile_starts (kept torch-free here)
def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if tile >= size:
        return [0]
    return list(range(0, size - tile, tile - overlap)) + [size - tile]


def grid_lines(height: int, width: int, *, latent_factor: int = 8, tile: int | None = None, overlap: int = 0,
               coded: tuple[int, int] | None = None) -> dict[str, dict[str, list[int]]]:
    """Where the coding grid of a ``height`` x ``width`` frame lies, in pixel indices: per axis ("x", "y") the
    latent cell starts (every ``latent_factor`` px; none when a cell is under 2 px or there would be more than 64),
    the tile starts (``streaming.tile_starts`` on the ``coded`` frame, the padded [H, W] the tiles were laid on;
    default the frame itself) and the first pixel after each tile's end. Only lines inside the frame are kept."""
    ch, cw = coded or (height, width)
    out: dict[str, dict[str, list[int]]] = {}
    for axis, size, limit in (("x", width, cw), ("y", height, ch)):
        lines: dict[str, list[int]] = {"latent": [], "tile_start": [], "tile_end": []}
        if latent_factor and latent_factor > 1 and max(height, width) // latent_factor <= 64:
            lines["latent"] = list(range(latent_factor, size, latent_factor))
        if tile:
            starts = _tile_starts(limit, tile, overlap)
            lines["tile_start"] = [a for a in starts[1:] if 0 < a < size]
            lines["tile_end"] = [a + tile for a in starts[:-1] if 0 < a + tile < size]
        out[axis] = lines
    return out


def chunk_caption(frame: int, chunks: list[tuple[int, int]] | None) -> str | None:
    """"frame t: chunk i (frames a-b)" for the chunk ([first, end) frames) that coded ``frame``; None if none."""
    where = next(((i, a, b) for i, (a, b) in enumerate(chunks or []) if a <= frame < b), None)
    if where is None:
        return None
    i, a, b = where
    return f"frame {frame}: chunk {i} (frames {a}-{b - 1})" if b - 1 > a else f"frame {frame}: chunk {i} (frame {a})"


def grid_overlay(fig: go.Figure, height: int, width: int, *, latent_factor: int = 8, tile: int | None = None,
                 overlap: int = 0, frame: int | None = None, chunks: list[tuple[int, int]] | None = None,
                 rows: list[int] | None = None, cols: list[int] | None = None,
                 coded: tuple[int, int] | None = None) -> go.Figure:
    """Draw the grid that produced a heatmap over it: latent cells (every ``latent_factor`` px, faint), tile
    starts (solid) and ends (dotted; between them the blended overlap) as ``engine.run_model`` lays the
    ``tile``/``overlap`` px tiles (``streaming.tile_starts`` on the ``coded`` frame; pass the run's ``plan``) and,
    with ``frame`` and ``chunks`` ([(first, end) ...] frames), the chunk the frame was coded in, as a caption.
    ``rows``/``cols``: the subplots to draw on (default: every panel of ``fig``). Works on ``viz.frame_panel`` and
    ``viz.enlarged_frame`` figures (pixel coordinates, y down). Returns ``fig``."""
    targets = [(r, c) for r in (rows or [None]) for c in (cols or [None])]
    kw_all = [dict(row=r, col=c) if r is not None and c is not None else {} for r, c in targets]

    def vline(x: float, **style_kw) -> list[dict]:
        return [dict(type="line", x0=x, x1=x, y0=-0.5, y1=height - 0.5, line=style_kw)]

    def hline(y: float, **style_kw) -> list[dict]:
        return [dict(type="line", y0=y, y1=y, x0=-0.5, x1=width - 0.5, line=style_kw)]

    lines = grid_lines(height, width, latent_factor=latent_factor, tile=tile, overlap=overlap, coded=coded)
    shapes: list[dict] = []
    for draw, axis in ((vline, "x"), (hline, "y")):
        for a in lines[axis]["latent"]:
            shapes += draw(a - 0.5, color="rgba(255,255,255,0.25)", width=1)
    for draw, axis in ((vline, "x"), (hline, "y")):
        for a in lines[axis]["tile_start"]:
            shapes += draw(a - 0.5, color="rgba(0,255,255,0.9)", width=2)  # where a tile begins
        for a in lines[axis]["tile_end"]:
            shapes += draw(a - 0.5, color="rgba(0,255,255,0.6)", width=1, dash="dot")  # where it ends
    for kw in kw_all:
        for s in shapes:
            fig.add_shape(**s, **kw)
        # pin the pixel extent: plotly sizes a go.Image from its source only once loaded, and until then
        # lets the shapes decide the range (a 2 px wide view of nothing)
        fig.update_xaxes(range=[-0.5, width - 0.5], autorange=False, **kw)
        fig.update_yaxes(range=[height - 0.5, -0.5], autorange=False, **kw)
    if frame is not None and (text := chunk_caption(frame, chunks)):
        fig.add_annotation(text=text, xref="paper", yref="paper", x=0, y=-0.02, showarrow=False, xanchor="left",
                           yanchor="top", font=dict(size=12))
    return fig


GRID_LATENT_RGB, GRID_TILE_RGB = (255, 255, 255), (0, 255, 255)


def grid_overlay_rgb(image: np.ndarray, *, latent_factor: int = 8, tile: int | None = None, overlap: int = 0,
                     coded: tuple[int, int] | None = None) -> np.ndarray:
    """The same grid as :func:`grid_overlay`, drawn into a copy of an (H, W, 3) uint8 picture (a heatmap tile):
    latent cell starts blended 25 % white, tile starts solid cyan, the first pixel after a tile's end dotted cyan."""
    img = np.array(image, dtype=np.uint8, copy=True)
    h, w = img.shape[:2]
    lines = grid_lines(h, w, latent_factor=latent_factor, tile=tile, overlap=overlap, coded=coded)
    lat = np.asarray(GRID_LATENT_RGB, np.float32)
    for a in lines["x"]["latent"]:
        img[:, a] = (0.75 * img[:, a] + 0.25 * lat).round().astype(np.uint8)
    for a in lines["y"]["latent"]:
        img[a, :] = (0.75 * img[a, :] + 0.25 * lat).round().astype(np.uint8)
    for a in lines["x"]["tile_start"]:
        img[:, a] = GRID_TILE_RGB
    for a in lines["y"]["tile_start"]:
        img[a, :] = GRID_TILE_RGB
    for a in lines["x"]["tile_end"]:
        img[::2, a] = GRID_TILE_RGB
    for a in lines["y"]["tile_end"]:
        img[a, ::2] = GRID_TILE_RGB
    return img
