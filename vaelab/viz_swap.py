"""Pictures for the Structure x Dynamics view, built from plain arrays (no torch, no model code).

``grid_video`` tiles every panel's clip (inputs, reconstructions, part-only decodes, swaps) into one
labelled clip, so a single MP4 plays them in sync; ``frame_grid`` shows one frame of every panel as a
Plotly grid with shared zoom; ``attention_heatmaps`` shows which frames each Q-Former query reads.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .viz import png_data_uri, style
from .viz_video import grid_video  # noqa: F401 - re-exported: the swap grid is a grid of clips

ATTENTION_COLORSCALE = "Viridis"


def frame_grid(rows: dict[str, dict[str, np.ndarray]], frame_index: int, height: int | None = None) -> go.Figure:
    """One frame of every panel: ``rows[row][title]`` is a uint8 (H, W, 3) image, all of one size.

    One subplot row per entry of ``rows`` (in order), one column per image; every row must have the
    same number of images. All panels follow the first one's zoom and pan (equal pixel aspect).
    """
    n_cols = {len(r) for r in rows.values()}
    if len(n_cols) != 1:
        raise ValueError(f"every row needs the same number of panels, got {sorted(n_cols)}")
    cols = n_cols.pop()
    titles = [title for r in rows.values() for title in r]
    fig = make_subplots(rows=len(rows), cols=cols, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.08)
    for i, r in enumerate(rows.values(), start=1):
        for j, (title, img) in enumerate(r.items(), start=1):
            fig.add_trace(go.Image(source=png_data_uri(img), name=title,
                                   hovertemplate=f"x %{{x}}, y %{{y}}<extra>{title}</extra>"), row=i, col=j)
    fig.update_xaxes(matches="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(matches="y", autorange="reversed", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(xaxis_matches=None, yaxis_matches=None)  # the first panel leads
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    h, w = next(iter(rows.values()))[titles[0]].shape[:2]
    height = height or int(min(760, max(320, len(rows) * (1200 / cols) * h / w + 90)))
    return style(fig, height=height, margin=dict(l=10, r=10, t=60, b=10),
                  title=dict(text=f"frame {frame_index}", x=0.01, y=0.995, font=dict(size=13)))


def attention_heatmaps(attention: dict[str, np.ndarray], chunk_frames: int | None = None) -> go.Figure:
    """Q-Former cross-attention, one heatmap per clip: ``attention[name]`` is (Q, T), rows summing to 1.

    x = frame, y = query; one colour scale from 0 to the largest weight over all clips. The title gives
    the uniform weight 1/T (a query that reads every frame equally) as the reference; with ``chunk_frames``
    and T longer than it, it says that each chunk's queries only read that chunk.
    """
    names = list(attention)
    q, t = next(iter(attention.values())).shape
    zmax = max(float(np.max(a)) for a in attention.values()) or 1.0
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[f"clip {n}" for n in names],
                        horizontal_spacing=0.08)
    for i, name in enumerate(names, start=1):
        a_qt = np.asarray(attention[name], dtype=np.float32)
        fig.add_trace(go.Heatmap(
            z=a_qt, x=list(range(a_qt.shape[1])), y=[f"query {k}" for k in range(a_qt.shape[0])],
            coloraxis="coloraxis", name=f"clip {name}",
            hovertemplate="%{y}, frame %{x}: weight %{z:.3f}<extra>clip " + name + "</extra>"), row=1, col=i)
    fig.update_xaxes(title_text="frame", dtick=1 if t <= 32 else None)
    fig.update_yaxes(autorange="reversed")
    title = (f"Q-Former attention over frames (last layer, mean over heads and positions); each row sums to 1, "
             f"uniform = 1/{t} = {1 / t:.3f}")
    if chunk_frames and t > chunk_frames:
        title += f"<br>frames are coded in chunks of {chunk_frames}: each chunk has its own queries"
    return style(fig, height=200 + 28 * q, margin=dict(l=70, r=20, t=90, b=50),
                  title=dict(text=title, font=dict(size=13)),
                  coloraxis=dict(colorscale=ATTENTION_COLORSCALE, cmin=0.0, cmax=zmax,
                                 colorbar=dict(title=dict(text="weight"), thickness=14)))
