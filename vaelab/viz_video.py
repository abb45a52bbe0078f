"""Clips tiled into one clip, so a single MP4 plays every panel in sync (numpy + PIL, no torch, no model code).

``side_by_side`` tiles clips left to right (one row), ``grid_video`` stacks labelled rows, and ``clip_grid``
wraps any number of clips into rows of at most ``cols`` so the video stays readable with many models.
"""
from __future__ import annotations

import math

import numpy as np

LABEL_HEIGHT = 14
GRID_COLUMNS = 4  # at most this many clips per row: ~250 px each in a 1000 px wide player


def _label_image(text: str, width: int) -> np.ndarray:
    """Black ``text`` on white, ``uint8`` ``(LABEL_HEIGHT, width, 3)``; clipped at the edge."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, LABEL_HEIGHT), "white")
    ImageDraw.Draw(image).text((2, 1), text, fill="black")
    return np.asarray(image)


def side_by_side(videos: list[np.ndarray], labels: list[str] | None = None, gap: int = 4) -> np.ndarray:
    """Tile clips left to right: ``uint8`` ``(T, H_i, W_i, 3)`` each, same ``T``.

    Shorter clips are padded at the bottom with white, columns are separated by ``gap``
    white pixels, and ``labels`` (one per clip) are drawn in a strip above each clip.
    Returns ``uint8`` ``(T, H, sum(W_i) + gap * (n - 1), 3)``.
    """
    if not videos:
        raise ValueError("side_by_side needs at least one clip")
    videos = [np.asarray(v) for v in videos]
    videos = [v[None] if v.ndim == 3 else v for v in videos]
    if any(v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8 for v in videos):
        raise ValueError("clips must be uint8 arrays shaped (T, H, W, 3)")
    n_frames = {v.shape[0] for v in videos}
    if len(n_frames) != 1:
        raise ValueError(f"clips must have the same number of frames; got {sorted(n_frames)}")
    if labels is not None and len(labels) != len(videos):
        raise ValueError(f"got {len(labels)} labels for {len(videos)} clips")

    t = n_frames.pop()
    strip = LABEL_HEIGHT if labels is not None else 0
    height = strip + max(v.shape[1] for v in videos)
    width = sum(v.shape[2] for v in videos) + gap * (len(videos) - 1)
    canvas = np.full((t, height, width, 3), 255, dtype=np.uint8)
    x = 0
    for index, video in enumerate(videos):
        _, h, w, _ = video.shape
        canvas[:, strip : strip + h, x : x + w] = video
        if labels is not None:
            canvas[:, :strip, x : x + w] = _label_image(labels[index], w)
        x += w + gap
    return canvas


def grid_video(rows: dict[str, dict[str, np.ndarray]], gap: int = 4) -> np.ndarray:
    """Labelled clips in a grid: ``rows[row][label]`` is uint8 (T, H, W, 3), the same T everywhere.

    Each row is tiled left to right (:func:`side_by_side`, labels above each clip), rows are stacked
    top to bottom with ``gap`` white pixels between them. Returns uint8 (T, H_grid, W_grid, 3); narrower
    rows are padded with white on the right.
    """
    strips = [side_by_side(list(r.values()), list(r), gap=gap) for r in rows.values()]
    width = max(s.shape[2] for s in strips)
    t = strips[0].shape[0]
    out = []
    for i, s in enumerate(strips):
        if i:
            out.append(np.full((t, gap, width, 3), 255, np.uint8))
        out.append(np.pad(s, ((0, 0), (0, 0), (0, width - s.shape[2]), (0, 0)), constant_values=255))
    return np.concatenate(out, axis=1)


def grid_columns(n: int, max_cols: int = GRID_COLUMNS) -> int:
    """Columns for ``n`` panels: one row up to ``max_cols``, else balanced rows (9 -> 3, 10 -> 4, 5 -> 3)."""
    if n <= max_cols:
        return max(n, 1)
    rows = math.ceil(n / max_cols)
    return math.ceil(n / rows)


def clip_grid(clips: dict[str, np.ndarray], max_cols: int = GRID_COLUMNS, gap: int = 4) -> np.ndarray:
    """Labelled clips (``clips[label]`` uint8 (T, H, W, 3)) wrapped into rows of at most ``max_cols``, in order."""
    items = list(clips.items())
    cols = grid_columns(len(items), max_cols)
    rows = {str(i): dict(items[i:i + cols]) for i in range(0, len(items), cols)}
    return grid_video(rows, gap=gap)
