"""Plotly figures built from metric data (no torch, no model code).

Colours are keyed by model order (``PALETTE[i]`` for the i-th model), so the same model has
the same colour in every figure built from the same ordered dict. All error heatmaps share
one fixed scale, :data:`ERROR_COLORSCALE` over :data:`ERROR_RANGE`, so they are comparable
across models, frames and clips.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

ERROR_COLORSCALE = "Inferno"
ERROR_RANGE = (0, 64)  # mean |error| over RGB in 0..255 units; larger values saturate
ERROR_COLORBAR_TITLE = f"mean |error|<br>(0-255, ≥{ERROR_RANGE[1]}<br>saturates)"
DELTA_E_RANGE = (0, 20)  # CIEDE2000: ~1 just noticeable, 2-5 noticeable at a glance; larger values saturate
DELTA_E_COLORBAR_TITLE = f"colour difference<br>ΔE00 (≥{DELTA_E_RANGE[1]}<br>saturates)"
HEATMAP_MAX_SIDE = 160  # heatmaps are block-averaged to at most this many px per side
PALETTE = qualitative.Plotly
INPUT_COLOUR = "#444444"
TEMPLATE = "plotly_white"
FONT = dict(size=13)


def colour(i: int) -> str:
    """Colour of the i-th model (cycles through :data:`PALETTE`)."""
    return PALETTE[i % len(PALETTE)]


def style(fig: go.Figure, height: int, **layout) -> go.Figure:
    fig.update_layout(template=TEMPLATE, font=FONT, height=height, **layout)
    return fig


# --- metric curves ----------------------------------------------------------------------


def metric_curves(per_model: dict[str, dict], input_flicker: list[float] | None = None,
                  lpips_note: str = "LPIPS unavailable (AlexNet backbone not cached)") -> go.Figure:
    """Per-frame metric curves, one subplot row per metric, x = frame index.

    ``per_model[name]`` holds lists of length T: ``"psnr"``, ``"ssim"``, ``"lpips"`` (or None)
    and optionally ``"flicker"``. Rows: PSNR (dB), SSIM, LPIPS (only if some model has it,
    else an "LPIPS unavailable" note), temporal flicker (only if ``input_flicker`` or some
    model's ``"flicker"`` is given; the input is drawn dashed grey). Each model has one
    legend entry that toggles its traces in all rows.
    """
    has_lpips = any(m.get("lpips") is not None for m in per_model.values())
    has_flicker = input_flicker is not None or any(m.get("flicker") is not None for m in per_model.values())
    rows = [("psnr", "PSNR (dB)"), ("ssim", "SSIM")]
    rows += [("lpips", "LPIPS (lower is better)")] if has_lpips else []
    rows += [("flicker", "temporal flicker (mean |Δ| to previous frame)")] if has_flicker else []

    fig = make_subplots(
        rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.06,
        subplot_titles=[title for _, title in rows],
    )
    for i, (name, data) in enumerate(per_model.items()):
        shown = False
        for r, (key, _) in enumerate(rows, start=1):
            values = data.get(key)
            if values is None:
                continue
            fig.add_trace(
                go.Scatter(
                    x=list(range(len(values))), y=list(values), name=name, mode="lines",
                    line=dict(color=colour(i), width=2), legendgroup=name, showlegend=not shown,
                ),
                row=r, col=1,
            )
            shown = True
    if input_flicker is not None:
        fig.add_trace(
            go.Scatter(
                x=list(range(len(input_flicker))), y=list(input_flicker), name="input",
                mode="lines", line=dict(color=INPUT_COLOUR, width=2, dash="dash"),
                legendgroup="input",
            ),
            row=len(rows), col=1,
        )
    if not has_lpips:
        fig.add_annotation(
            text=lpips_note, xref="paper", yref="paper", x=1, y=1.02,
            xanchor="right", yanchor="bottom", showarrow=False, font=dict(color="gray"),
        )
    fig.update_xaxes(title_text="frame index", row=len(rows), col=1)
    return style(
        fig, height=min(600, 150 * len(rows) + 100), hovermode="x unified",
        margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.12),
    )


# --- frame panel ------------------------------------------------------------------------


def png_data_uri(img: np.ndarray) -> str:
    """(H, W, 3) uint8 RGB -> ``data:image/png;base64,...`` (stdlib-only PNG encoder)."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    h, w = img.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _block_mean(err: np.ndarray, max_side: int = HEATMAP_MAX_SIDE):
    """Average (H, W) into stride x stride blocks so the long side is <= max_side.

    Returns (z, x, y, stride): z is (ceil(H/s), ceil(W/s)) float32, x/y are block centres in
    original pixel coordinates (so the heatmap lines up with the full-size images).
    """
    stride = max(1, math.ceil(max(err.shape) / max_side))
    ys, xs = np.arange(0, err.shape[0], stride), np.arange(0, err.shape[1], stride)
    sums = np.add.reduceat(np.add.reduceat(err.astype(np.float64), ys, axis=0), xs, axis=1)
    nh, nw = np.diff(np.r_[ys, err.shape[0]]), np.diff(np.r_[xs, err.shape[1]])
    z = (sums / np.outer(nh, nw)).astype(np.float32)
    return z, xs + (nw - 1) / 2, ys + (nh - 1) / 2, stride


# --- bar charts -------------------------------------------------------------------------


def codebook_usage(counts: np.ndarray, perplexity: float, used: int) -> go.Figure:
    """Bar chart of (N,) code counts sorted by count (rank on x, code id in hover)."""
    counts = np.asarray(counts)
    order = np.argsort(-counts, kind="stable")
    fig = go.Figure(
        go.Bar(
            x=np.arange(len(counts)), y=counts[order], customdata=order,
            marker=dict(color=colour(0), line=dict(width=0)),
            hovertemplate="rank %{x}: code %{customdata}, count %{y}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="codes sorted by count")
    fig.update_yaxes(title_text="count")
    return style(
        fig, height=320, bargap=0, margin=dict(l=60, r=20, t=50, b=50),
        title=f"Codebook usage: used {used} of {len(counts)} codes, perplexity {perplexity:.1f}",
    )


def bars(categories: list[str], series: dict[str, list[float]], title: str, yaxis: str) -> go.Figure:
    """Grouped bars: one trace per ``series`` key (coloured by order), one group per category."""
    fig = go.Figure(
        [
            go.Bar(x=list(categories), y=list(values), name=name, marker_color=colour(i))
            for i, (name, values) in enumerate(series.items())
        ]
    )
    fig.update_yaxes(title_text=yaxis)
    return style(fig, height=360, barmode="group", title=title, margin=dict(l=60, r=20, t=50, b=50))


# --- wavelets ---------------------------------------------------------------------------


def image_row(images: dict[str, np.ndarray], title: str = "", height: int = 340) -> go.Figure:
    """A row of uint8 RGB images (e.g. wavelet mosaics of input and reconstructions), one subplot each."""
    fig = make_subplots(rows=1, cols=len(images), subplot_titles=list(images), horizontal_spacing=0.01)
    for i, img in enumerate(images.values(), start=1):
        fig.add_trace(go.Image(source=png_data_uri(img), hoverinfo="skip"), row=1, col=i)
    fig.update_xaxes(visible=False)
    for i in range(1, len(images) + 1):
        fig.update_yaxes(visible=False, scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i)
    return style(fig, height=height, title=title, margin=dict(l=10, r=10, t=60, b=10))


def band_bars(names: list[str], input_energy: list[float], recon_energy: dict[str, list[float]],
              error: dict[str, list[float]]) -> go.Figure:
    """Two rows: energy per band (input vs each model, log scale) and error per band (sums to the MSE)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("energy per band (mean squared coefficient, log scale)",
                                        "error per band (bars of one model sum to its MSE, [0,1] units)"))
    fig.add_trace(go.Bar(x=names, y=input_energy, name="input", marker_color=INPUT_COLOUR, legendgroup="input"),
                  row=1, col=1)
    for i, model in enumerate(recon_energy):
        fig.add_trace(go.Bar(x=names, y=recon_energy[model], name=model, marker_color=colour(i), legendgroup=model),
                      row=1, col=1)
        fig.add_trace(go.Bar(x=names, y=error[model], name=model, marker_color=colour(i), legendgroup=model,
                             showlegend=False), row=2, col=1)
    fig.update_yaxes(type="log", title_text="energy (log)", row=1, col=1)
    fig.update_yaxes(title_text="squared error", row=2, col=1)
    fig.update_xaxes(title_text="wavelet band (L1 = finest detail; LL / LLL = coarse image)", row=2, col=1)
    return style(fig, height=600, barmode="group", margin=dict(l=70, r=20, t=50, b=60),
                 legend=dict(orientation="h", y=-0.18, title_text="bars: "))


def hvdm_panel(planes: dict[str, np.ndarray], ablation_psnr: dict[str, float], frames: int) -> go.Figure:
    """HVDM's three triplane planes (uint8 RGB images, PCA of the features) and PSNR with each branch off."""
    n = len(planes)
    fig = make_subplots(rows=1, cols=n + 1, column_widths=[1.0] * n + [1.2], horizontal_spacing=0.05,
                        subplot_titles=[str(p).replace(" (", "<br>(") for p in planes]
                        + ["PSNR with a<br>branch switched off"])
    for i, img in enumerate(planes.values(), start=1):
        fig.add_trace(go.Image(source=png_data_uri(img), hoverinfo="skip"), row=1, col=i)
        fig.update_xaxes(visible=False, row=1, col=i)
        fig.update_yaxes(visible=False, row=1, col=i)
    labels = {"fused": "fused (the model)", "triplane": "triplane only", "wavelet": "wavelet only"}
    fig.add_trace(go.Bar(x=[labels[m] for m in ablation_psnr], y=list(ablation_psnr.values()),
                         marker_color=[colour(i) for i in range(len(ablation_psnr))],
                         text=[f"{v:.1f}" for v in ablation_psnr.values()], textposition="outside",
                         hovertemplate="%{x}: %{y:.2f} dB<extra></extra>", showlegend=False), row=1, col=n + 1)
    fig.update_yaxes(title_text="PSNR (dB)", row=1, col=n + 1)
    fig.update_annotations(font_size=12)
    return style(fig, height=380, title=dict(text=f"HVDM: triplane planes (first 3 principal components as RGB)<br>"
                                                  f"and branch ablations, first {frames} frames", font=dict(size=14)),
                 margin=dict(l=10, r=10, t=110, b=60))


# --- inside the model (ablations) ------------------------------------------------------------


def per_frame_lines(series: dict[str, list[float]], title: str, yaxis: str = "PSNR (dB)") -> go.Figure:
    """One line per variant over the frame index (e.g. PSNR with / without / with a wrong caption)."""
    fig = go.Figure([go.Scatter(x=list(range(len(v))), y=list(v), name=k, mode="lines+markers",
                                line=dict(color=colour(i), width=2), marker=dict(size=5))
                     for i, (k, v) in enumerate(series.items())])
    fig.update_xaxes(title_text="frame index")
    fig.update_yaxes(title_text=yaxis)
    return style(fig, height=320, title=title, hovermode="x unified", margin=dict(l=60, r=20, t=50, b=50),
                 legend=dict(orientation="h", y=-0.25))


def amplified_difference(a: np.ndarray, b: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """|a - b| of two uint8 RGB frames, averaged over colour, times ``gain``, as a grey uint8 RGB image."""
    d = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(-1) * gain
    return np.repeat(np.clip(d, 0, 255).round().astype(np.uint8)[..., None], 3, -1)


# --- tile galleries (any number of models) -------------------------------------------------------

TILE_MIN_PX = 200  # every tile is at least this wide; the grid wraps instead of shrinking them


def _lut(colorscale: str = ERROR_COLORSCALE) -> np.ndarray:
    """(256, 3) uint8 colour table sampled from a Plotly sequential scale."""
    from plotly.colors import get_colorscale, sample_colorscale

    cols = sample_colorscale(get_colorscale(colorscale), list(np.linspace(0, 1, 256)), colortype="tuple")
    return (np.asarray(cols) * (255 if max(max(c) for c in cols) <= 1 else 1)).round().astype(np.uint8)


def heatmap_rgb(err: np.ndarray, vrange: tuple[float, float] = ERROR_RANGE,
                colorscale: str = ERROR_COLORSCALE) -> np.ndarray:
    """(H, W) error values -> (H, W, 3) uint8 RGB on the fixed scale ``vrange`` (values beyond it saturate)."""
    lo, hi = vrange
    idx = np.clip((np.asarray(err, np.float32) - lo) / (hi - lo) * 255, 0, 255).round().astype(np.uint8)
    return _lut(colorscale)[idx]


def colourbar_html(title: str, vrange: tuple[float, float] = ERROR_RANGE, colorscale: str = ERROR_COLORSCALE,
                   ticks: int = 5) -> str:
    """A horizontal colour bar (legend for :func:`heatmap_rgb` tiles) as HTML."""
    from plotly.colors import get_colorscale, sample_colorscale

    stops = sample_colorscale(get_colorscale(colorscale), list(np.linspace(0, 1, 9)))
    lo, hi = vrange
    labels = "".join(f"<span>{lo + (hi - lo) * i / (ticks - 1):g}{'+' if i == ticks - 1 else ''}</span>"
                     for i in range(ticks))
    return (f'<div class="vaelab-colourbar" style="max-width:420px;margin:4px 0 10px">'
            f'<div style="font-size:0.85em">{_esc(title)}</div>'
            f'<div style="height:12px;border-radius:2px;background:linear-gradient(to right,{",".join(stops)})"></div>'
            f'<div style="display:flex;justify-content:space-between;font-size:0.8em">{labels}</div></div>')


def _esc(s: str) -> str:
    import html

    return html.escape(str(s), quote=True)


def tile_gallery_html(tiles: list[dict], elem_class: str = "vaelab-gallery", min_px: int = TILE_MIN_PX,
                      clickable: bool = False) -> str:
    """A wrapping grid of labelled images: each tile ``{"key", "image" (H, W, 3) uint8, "title", "lines"}``.

    The grid packs as many tiles of at least ``min_px`` per row as fit and wraps the rest, so titles
    (name on one line, numbers on the next, above the image) never overlap whatever the number of models.
    ``clickable``: a tile's click selects its key in the enlarge control (``data-key``; see the tab's JS).
    """
    out = [f'<div class="{elem_class}" style="display:grid;gap:10px;'
           f'grid-template-columns:repeat(auto-fill,minmax({min_px}px,1fr))">']
    for t in tiles:
        lines = "".join(f'<div class="vaelab-tile-line" style="font-size:0.85em;opacity:0.85">{_esc(x)}</div>'
                        for x in t.get("lines", []))
        cursor = "cursor:pointer;" if clickable else ""
        out.append(
            f'<figure class="vaelab-tile" data-key="{_esc(t["key"])}" style="margin:0;min-width:0;{cursor}">'
            f'<figcaption style="overflow-wrap:anywhere"><div class="vaelab-tile-title" style="font-weight:600">'
            f'{_esc(t["title"])}</div>{lines}</figcaption>'
            f'<img src="{png_data_uri(t["image"])}" alt="{_esc(t["title"])}" '
            f'style="width:100%;height:auto;display:block;image-rendering:pixelated;border-radius:2px"></figure>')
    out.append("</div>")
    return "".join(out)


def enlarged_frame(input_frame: np.ndarray, recon: np.ndarray, error: np.ndarray, name: str, frame_index: int,
                   psnr: float | None = None, vrange: tuple[float, float] = ERROR_RANGE,
                   colorbar_title: str = ERROR_COLORBAR_TITLE, error_name: str = "|error|") -> go.Figure:
    """One model enlarged next to the input: input | reconstruction | error heatmap in one row, shared zoom.

    ``input_frame``/``recon`` (H, W, 3) uint8, ``error`` (H, W) on the fixed scale ``vrange`` (mean |error|
    0..255 by default; ΔE00 with :data:`DELTA_E_RANGE`)."""
    sub = f"{name}<br>{psnr:.2f} dB" if psnr is not None else name
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.02,
                        subplot_titles=[f"input<br>frame {frame_index}", sub, f"{error_name}<br>{name}"])
    fig.add_trace(go.Image(source=png_data_uri(input_frame), name="input",
                           hovertemplate="x %{x}, y %{y}<extra>input</extra>"), row=1, col=1)
    fig.add_trace(go.Image(source=png_data_uri(recon), name=name,
                           hovertemplate=f"x %{{x}}, y %{{y}}<extra>{name}</extra>"), row=1, col=2)
    z, x, y, stride = _block_mean(np.asarray(error))
    block = f"mean of {stride}x{stride} px block (downsampled)" if stride > 1 else "per pixel"
    fig.add_trace(go.Heatmap(z=z, x=x, y=y, zmin=vrange[0], zmax=vrange[1], coloraxis="coloraxis",
                             name=name, hovertemplate=f"x %{{x}}, y %{{y}}<br>{error_name} %{{z:.1f}} ({block})"
                                                      f"<extra>{name}</extra>"), row=1, col=3)
    fig.update_xaxes(matches="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(matches="y", autorange="reversed", showticklabels=False, showgrid=False, zeroline=False,
                     scaleanchor="x", scaleratio=1)
    h, w = input_frame.shape[:2]
    height = int(np.clip(300 * h / max(w, 1) + 120, 260, 560))
    return style(fig, height=height, margin=dict(l=10, r=10, t=60, b=10),
                 coloraxis=dict(colorscale=ERROR_COLORSCALE, cmin=vrange[0], cmax=vrange[1],
                                colorbar=dict(title=dict(text=colorbar_title), thickness=14)))
