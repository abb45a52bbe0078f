"""Plotly figures and table rows for the latent-space comparison (:mod:`vaelab.analysis.latents`).

Colours follow :mod:`vaelab.viz`: the i-th video model (in collection order) has ``colour(i)``; its
"video" vectors are solid markers, its "image" vectors open markers of the same colour; the image
reference (sd-vae) is grey. Points are ``go.Scattergl`` (WebGL), one trace per (model, source), with
float32 coordinates (sent to the browser as typed arrays). Each point's ``customdata`` is
(row, latent frame, input frame, y, x): ``row`` indexes the :class:`~vaelab.analysis.latents.LatentSet`
(e.g. for a thumbnail of ``lset.patch[row]`` in frame ``lset.frame[row]``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .viz import colour, style

REFERENCE_COLOUR = "#9a9a9a"
SYMBOLS = {"video": "circle", "image": "circle-open", "reference": "diamond"}
LATENT_TABLE_HEADERS = ["model", "comparison", "C", "n", "Fréchet", "sliced W2", "channel mean ± std / note"]


def model_colours(lset: Any) -> dict[str, str]:
    """Model name -> colour: video models by first appearance, reference models grey."""
    out: dict[str, str] = {}
    for model, source in lset.groups():
        if source == "reference":
            out.setdefault(model, REFERENCE_COLOUR)
        elif model not in out:
            out[model] = colour(sum(1 for c in out.values() if c != REFERENCE_COLOUR))
    return out


def latent_scatter(coords: np.ndarray, lset: Any, title: str = "", marker_size: float | None = None) -> go.Figure:
    """2D latent embedding: one ``Scattergl`` trace per (model, source), one panel per channel group.

    ``coords`` (N, 2) as returned by ``latents.embed`` (which embeds each channel group separately, so with
    several groups the panels have unrelated axes). Hover: model, source, latent frame, input frame,
    position (y, x) and the point number (``customdata[0]``, the row in ``lset``). Legend entries of one
    model are grouped (click toggles them). ``marker_size`` None: 5 px up to 5,000 points, 3 px above.
    """
    coords = np.asarray(coords, np.float32)
    if coords.shape != (len(lset), 2):
        raise ValueError(f"coords must be ({len(lset)}, 2), got {coords.shape}")
    if marker_size is None:
        marker_size = 5.0 if len(lset) <= 5_000 else 3.0
    colours = model_colours(lset)
    groups = lset.channel_groups()
    chans = list(groups)
    panel = {c: i + 1 for i, c in enumerate(chans)}
    titles = []
    for c in chans:  # at most three model names per title line, so titles of side-by-side panels never meet
        models_in = list(dict.fromkeys(lset.model[groups[c]].tolist()))
        lines = [", ".join(models_in[i:i + 3]) for i in range(0, len(models_in), 3)]
        titles.append(f"C={c}: " + "<br>".join(lines))
    fig = make_subplots(rows=1, cols=len(chans), subplot_titles=titles if len(chans) > 1 else None,
                        horizontal_spacing=0.08)
    rows = np.arange(len(lset), dtype=np.int32)
    for model, source in lset.groups():
        idx = lset.group_index(model, source)
        c = int(lset.channels[idx[0]])
        custom = np.stack([rows[idx], lset.t[idx], lset.frame[idx], lset.y[idx], lset.x[idx]], 1).astype(np.int32)
        col = colours[model]
        fig.add_trace(go.Scattergl(
            x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=f"{model} · {source}",
            legendgroup=model, customdata=custom,
            marker=dict(color=col, size=marker_size + (3 if source == "image" else 0),
                        symbol=SYMBOLS.get(source, "circle"),
                        opacity=0.55 if source == "reference" else (0.9 if source == "image" else 0.6),
                        line=dict(width=2, color=col) if source == "image" else None),
            hovertemplate=(f"<b>{model}</b> · {source}<br>latent frame %{{customdata[1]}} "
                           "(input frame %{customdata[2]})<br>position y %{customdata[3]}, x %{customdata[4]}"
                           "<br>point #%{customdata[0]}<extra></extra>"),
        ), row=1, col=panel[c])
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    note = ("separate embeddings per channel count: axes of different panels are unrelated"
            if len(chans) > 1 else "")
    if note:  # under the title: below the plots it would sit on the axis titles
        title = f"{title}<br><sup>{note}</sup>" if title else f"<sup>{note}</sup>"
    top = 40 + 18 * max((t.count("<br>") for t in titles), default=0) + (30 if title else 0) + (16 if note else 0)
    fig.update_xaxes(title_text="embedding axis 1 (no unit)", title_font=dict(size=11))
    fig.update_yaxes(title_text="embedding axis 2", title_font=dict(size=11), col=1)
    return style(fig, height=480 + top, title=title or None, margin=dict(l=40, r=20, t=top + 30, b=60),
                 legend=dict(itemsizing="constant", orientation="h", y=-0.12,
                             title=dict(text="filled = video · open = each frame as an image · ◆ grey = image "
                                             "reference", side="top")),
                 showlegend=True, hovermode="closest")


def _fmt(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}g}"


def latent_stats_table(distances: list[dict[str, Any]], stats: dict[tuple[str, str], dict[str, Any]],
                       max_channels: int = 8) -> list[list[Any]]:
    """Rows for a ``gr.Dataframe`` with :data:`LATENT_TABLE_HEADERS`.

    ``distances`` from ``latents.distance_table``, ``stats`` from ``latents.channel_stats`` (both on the
    full set). Per model: its distance rows ("video vs image", "video vs reference sd-vae", ...), then
    one row per source with the per-channel mean ± std (first ``max_channels`` channels); reference
    groups last.
    """
    out: list[list[Any]] = []
    models = list(dict.fromkeys([d["model"] for d in distances] + [m for m, s in stats if s != "reference"]))
    for model in models:
        for d in (d for d in distances if d["model"] == model):
            out.append([model, f"{d['a']} vs {d['b']}", d["channels"], f"{d['n_a']} / {d['n_b']}",
                        _fmt(d.get("frechet")), _fmt(d.get("sliced_w2")), d.get("reason", "")])
        for (m, s), st in stats.items():
            if m == model:
                out.append(_stats_row(m, s, st, max_channels))
    for (m, s), st in stats.items():
        if s == "reference":
            out.append(_stats_row(m, s, st, max_channels))
    return out


def _stats_row(model: str, source: str, st: dict[str, Any], max_channels: int) -> list[Any]:
    pairs = [f"{mu:+.2f}±{sd:.2f}" for mu, sd in zip(st["mean"][:max_channels], st["std"][:max_channels])]
    more = " …" if st["channels"] > max_channels else ""
    return [model, source, st["channels"], str(st["n"]), "", "", ", ".join(pairs) + more]


def channel_bars(stats: dict[tuple[str, str], dict[str, Any]], title: str = "Per-channel mean ± std") -> go.Figure:
    """One row per video model: bars of each channel's mean (error bars = std) for its "video" (solid),
    "image" (hatched) vectors and the reference (grey) when it has the same channel count."""
    order: list[str] = []
    for m, s in stats:
        if s != "reference" and m not in order:
            order.append(m)
    refs = [(m, s) for m, s in stats if s == "reference"]
    if not order:
        fig = make_subplots(rows=1, cols=1, subplot_titles=[", ".join(m for m, _ in refs) or "(no latents)"])
        for m, s in refs:
            st = stats[(m, s)]
            fig.add_trace(go.Bar(
                x=[f"c{i}" for i in range(st["channels"])], y=np.asarray(st["mean"], np.float32),
                name=f"{m} (reference)",
                error_y=dict(type="data", array=np.asarray(st["std"], np.float32), thickness=1),
                marker=dict(color=REFERENCE_COLOUR), opacity=0.8))
        fig.update_yaxes(title_text="mean ± std", title_font=dict(size=11))
        return style(fig, height=320, barmode="group", title=title, margin=dict(l=60, r=20, t=70, b=40))
    n = len(order)
    fig = make_subplots(rows=n, cols=1, subplot_titles=order, vertical_spacing=0.12 / n + 0.04)
    shown = set()
    for r, model in enumerate(order, start=1):
        col = colour(r - 1)
        entries = [((model, s), col) for s in ("video", "image") if (model, s) in stats]
        entries += [(g, REFERENCE_COLOUR) for g in refs if stats[g]["channels"] == stats[entries[0][0]]["channels"]]
        for (m, s), c in entries:
            st = stats[(m, s)]
            name = f"{m} · {s}" if s != "reference" else f"{m} (reference)"
            fig.add_trace(go.Bar(
                x=[f"c{i}" for i in range(st["channels"])], y=np.asarray(st["mean"], np.float32), name=name,
                legendgroup=name, showlegend=name not in shown,
                error_y=dict(type="data", array=np.asarray(st["std"], np.float32), thickness=1),
                marker=dict(color=c, pattern_shape="/" if s == "image" else "", line=dict(color=c, width=1)),
                opacity=0.6 if s == "reference" else 0.9,
            ), row=r, col=1)
            shown.add(name)
    fig.update_yaxes(title_text="mean ± std", title_font=dict(size=11))
    return style(fig, height=min(900, 200 * n + 120), barmode="group", title=title,
                  margin=dict(l=60, r=20, t=70, b=40))


PATCH_OUTLINE = (255, 40, 40)


def _nearest(img_hwc: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Nearest-neighbour resize of a uint8 (H, W, 3) image (pixels stay visible as blocks)."""
    h, w = img_hwc.shape[:2]
    rows = np.minimum((np.arange(out_h) * h) // out_h, h - 1)
    cols = np.minimum((np.arange(out_w) * w) // out_w, w - 1)
    return img_hwc[rows][:, cols]


def _outline(img_hwc: np.ndarray, box: tuple[int, int, int, int], width: int) -> None:
    """Draw the border of the pixel box (y0, x0, y1, x1) in place, ``width`` px inside the box."""
    y0, x0, y1, x1 = box
    y1, x1 = max(y1, y0 + 1), max(x1, x0 + 1)
    for sl in ((slice(y0, y0 + width), slice(x0, x1)), (slice(y1 - width, y1), slice(x0, x1)),
               (slice(y0, y1), slice(x0, x0 + width)), (slice(y0, y1), slice(x1 - width, x1))):
        img_hwc[sl] = PATCH_OUTLINE


def patch_view(frame_hwc: np.ndarray, box: tuple[int, int, int, int], height: int = 192, gap: int = 8) -> np.ndarray:
    """uint8 (height, W', 3) thumbnail of where one latent vector comes from: left, the input frame with
    the latent cell ``box`` (y0, x0, y1, x1 input pixels, as ``LatentSet.patch``) outlined; right, the
    cell with one cell of context on each side, enlarged with nearest neighbours, the cell outlined."""
    frame_hwc = np.asarray(frame_hwc, np.uint8)
    h, w = frame_hwc.shape[:2]
    y0, x0, y1, x1 = (int(v) for v in box)
    if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
        raise ValueError(f"box {box} is not inside a {h}x{w} frame")
    scale = height / h
    left = _nearest(frame_hwc, height, max(1, round(w * scale)))
    _outline(left, (round(y0 * scale), round(x0 * scale), round(y1 * scale), round(x1 * scale)), 2)
    ch, cw = y1 - y0, x1 - x0
    cy0, cx0, cy1, cx1 = max(0, y0 - ch), max(0, x0 - cw), min(h, y1 + ch), min(w, x1 + cw)
    zoom = height / (cy1 - cy0)
    right = _nearest(frame_hwc[cy0:cy1, cx0:cx1], height, max(1, round((cx1 - cx0) * zoom)))
    _outline(right, (round((y0 - cy0) * zoom), round((x0 - cx0) * zoom), round((y1 - cy0) * zoom),
                     round((x1 - cx0) * zoom)), 2)
    out = np.full((height, left.shape[1] + gap + right.shape[1], 3), 255, np.uint8)
    out[:, : left.shape[1]] = left
    out[:, left.shape[1] + gap:] = right
    return out


__all__ = ["latent_scatter", "latent_stats_table", "channel_bars", "model_colours", "patch_view",
           "LATENT_TABLE_HEADERS"]
