"""Seam metric of a tiled (or chunked) reconstruction: how much sharper the image changes at given borders.

The tile layout itself belongs to :mod:`vaelab.streaming` (``tile_starts``; ``streaming.seam_score(x, tile,
overlap)`` names the borders of its layout and calls :func:`border_jump_ratio`). Works on torch tensors
without importing torch here (only tensor methods are called), so importing the metrics stays light.
"""

from __future__ import annotations

from typing import Any, Iterable


def border_jump_ratio(x: Any, col_borders: Iterable[int], row_borders: Iterable[int]) -> float:
    """Mean jump at the given pixel boundaries over the mean jump at all others (1 = no seams).

    At every pixel boundary b (between columns b - 1 and b, likewise rows) the jump
    |d(b) - (d(b - 1) + d(b + 1)) / 2| is the first difference minus its neighbours' mean, i.e. a
    step that a smooth gradient does not produce. ``x`` is a tensor (..., H, W), e.g. a decoded
    (B, 3, T, H, W) clip; ``col_borders`` / ``row_borders`` are boundaries b along W / H.
    """
    x = x.detach().float()
    sums = {True: [0.0, 0], False: [0.0, 0]}
    for dim, size, borders in ((-1, x.shape[-1], col_borders), (-2, x.shape[-2], row_borders)):
        if size < 4:
            continue
        d = x.diff(dim=dim)  # d[..., i] = x[i + 1] - x[i]: boundary b = i + 1
        n = d.shape[dim]
        jump = (d.narrow(dim, 1, n - 2) - 0.5 * (d.narrow(dim, 0, n - 2) + d.narrow(dim, 2, n - 2))).abs()
        per_b = jump.transpose(dim, -1).reshape(-1, n - 2).mean(0)  # boundaries b = 2 .. size - 2
        border = set(borders)
        for k, v in enumerate(per_b.tolist()):
            b = k + 2
            s = sums[b in border]
            s[0] += v
            s[1] += 1
    if not sums[True][1] or not sums[False][1]:
        raise ValueError("no tile borders (or no other boundaries) to compare; is tile smaller than the image?")
    return (sums[True][0] / sums[True][1]) / max(sums[False][0] / sums[False][1], 1e-12)
