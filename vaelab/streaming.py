"""Long and large clips through a VAE with bounded memory: causal streaming and spatial tiling.

Causal streaming (exact). A causal video VAE (``card.causal``; W.A.L.T, IV-VAE) is run chunk by
chunk in time: frame 0 alone (-> 1 latent frame), then ``4 * chunk_latents`` frames at a time
(-> ``chunk_latents`` latent frames). Inside ``with streaming(model)`` every causal layer keeps the
few input frames the next chunk needs (see vaelab.models._causal), so the chunked result equals
the one-shot result to float rounding, and only the caches plus one chunk are alive at a time.
Decoding runs the same way over latent frames (latent 0 alone -> frame 0, then chunks).

    frames   0 | 1 2 3 4  5 6 7 8 | 9 ...        chunk_latents = 2
    latents  0 |    1        2    | 3 ...

The ``iter_*`` generators yield one chunk at a time, so a caller that writes each chunk out
(e.g. converts it to uint8) never holds the whole clip; ``frame_chunks`` / ``latent_chunks``
give the same boundaries for callers that slice their own (uint8) frames and call
``model.encode_chunk`` / ``model.decode_chunk`` inside ``with streaming(model)`` themselves.

Spatial tiling (approximate). ``tiled(fn, x, tile, overlap)`` runs any spatial map (an encoder,
a decoder, any model's) on overlapping tiles and blends the overlaps with linear ramps, the
diffusers / HunyuanVideo recipe. Tiles see zero padding where the full frame had content, so
without overlap the tile borders show as seams; ``seam_score`` measures them.

Tiles are spatial maps, so they take and give tensors: a tiled encoder is
``Latent(tiled(lambda x: model.encode(x).main, x, ...))``, a tiled decoder tiles ``z.main`` and wraps each
tile with ``z.with_main``; a latent with parts (``model.latent_parts``: VidTwin's axis-averaged dynamics)
has no spatial tiles.

Both at once. ``tiled_stream(model.encode_chunk, model.encoder, tile, overlap)`` gives every tile
its own streaming caches (:class:`TileStreams`), so a causal model streams in time *and* tiles in
space: the result equals the tiled one-shot result to float rounding (each tile is its own causal
clip; the blend is per frame), and the largest activation is one tile of one chunk, not a frame.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .models._causal import Streamable, check_frames, streaming
from .models.latent import Latent

__all__ = ["frame_chunks", "latent_chunks", "iter_encode_streaming", "iter_decode_streaming", "encode_streaming",
           "decode_streaming", "tile_starts", "tiled", "seam_score", "streaming", "TileStreams", "tiled_stream"]


# --- causal streaming ---------------------------------------------------------------------------

def _check_causal(model: Any) -> None:
    if not getattr(model, "streams_causally", False):
        name = getattr(getattr(model, "card", None), "name", type(model).__name__)
        raise ValueError(f"{name} is not a causal video VAE; streaming needs one (use tiled() or frame batches)")


def frame_chunks(t: int, chunk_latents: int = 1) -> list[tuple[int, int]]:
    """[start, stop) frame ranges of the streaming chunks for a 1 + 4k clip: [(0, 1), (1, 1 + 4n), ...]."""
    check_frames(t)
    if chunk_latents < 1:
        raise ValueError("chunk_latents must be >= 1")
    step = 4 * chunk_latents
    return [(0, 1)] + [(s, min(s + step, t)) for s in range(1, t, step)]


def latent_chunks(t_latent: int, chunk_latents: int = 1) -> list[tuple[int, int]]:
    """[start, stop) latent-frame ranges: [(0, 1), (1, 1 + n), ...]."""
    if chunk_latents < 1 or t_latent < 1:
        raise ValueError("need chunk_latents >= 1 and at least one latent frame")
    return [(0, 1)] + [(s, min(s + chunk_latents, t_latent)) for s in range(1, t_latent, chunk_latents)]


def iter_encode_streaming(model: Any, x_bcthw: torch.Tensor, chunk_latents: int = 1) -> Iterator[Latent]:
    """Yield latent chunks (main (B, C, n, H/8, W/8)) of a (B, 3, 1 + 4k, H, W) clip, first chunk = frame 0 alone."""
    _check_causal(model)
    bounds = frame_chunks(x_bcthw.shape[2], chunk_latents)
    with streaming(model):
        for a, b in bounds:
            with torch.no_grad():  # not around the yield: grad mode would leak into the caller
                z = model.encode_chunk(x_bcthw[:, :, a:b])
            yield z


def iter_decode_streaming(model: Any, z: Latent, chunk_latents: int = 1, **decode_kwargs: Any
                          ) -> Iterator[torch.Tensor]:
    """Yield frame chunks (B, 3, 4n or 1, H, W) of the decoded clip, first chunk = frame 0 from latent 0 alone."""
    _check_causal(model)
    bounds = latent_chunks(z.main.shape[2], chunk_latents)
    with streaming(model):
        for a, b in bounds:
            with torch.no_grad():
                y = model.decode_chunk(z.time_slice(a, b), **decode_kwargs)
            yield y


def encode_streaming(model: Any, x_bcthw: torch.Tensor, chunk_latents: int = 1) -> Latent:
    """Chunked causal encode; equals ``model.encode(x)`` (to float rounding) with memory O(chunk)."""
    return Latent.cat(list(iter_encode_streaming(model, x_bcthw, chunk_latents)))


def decode_streaming(model: Any, z: Latent, chunk_latents: int = 1, **decode_kwargs: Any) -> torch.Tensor:
    """Chunked causal decode; equals ``model.decode(z)`` (to float rounding)."""
    return torch.cat(list(iter_decode_streaming(model, z, chunk_latents, **decode_kwargs)), 2)


# --- spatial tiling -----------------------------------------------------------------------------

def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` with at least ``overlap`` shared.

    Stride is ``tile - overlap``; the last tile is shifted back to end exactly at ``size``
    (so it may overlap its neighbour by more). One tile if ``tile >= size``.
    """
    if tile >= size:
        return [0]
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    return list(range(0, size - tile, tile - overlap)) + [size - tile]


def _ramp(n: int, left: int, right: int, device: torch.device) -> torch.Tensor:
    """1D blend weight for a tile of ``n`` px: linear 0 -> 1 over ``left`` px, 1 -> 0 over ``right`` px (never 0)."""
    i = torch.arange(n, device=device, dtype=torch.float32) + 0.5
    w = torch.ones(n, device=device)
    if left:
        w = torch.minimum(w, i / left)
    if right:
        w = torch.minimum(w, (n - i) / right)
    return w


def _scaled(v: int, scale: Fraction, what: str) -> int:
    out = v * scale
    if out.denominator != 1:
        raise ValueError(f"{what} {v} does not map to whole output pixels (scale {scale}); "
                         "use tiles/overlaps that are multiples of the model's spatial factor")
    return int(out)


def tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int | tuple[int, int],
          overlap: int | tuple[int, int] = 0) -> torch.Tensor:
    """Run a spatial map ``fn`` on overlapping tiles of ``x`` (..., H, W) and blend the overlaps linearly.

    ``fn`` may change channels, frames and the spatial scale (an encoder: /8, a decoder: x8), as
    long as the scale is the same for every tile. ``tile`` and ``overlap`` are in *input* pixels;
    for an encoder use multiples of its spatial factor. Each output pixel is the weighted mean of
    the tiles covering it, weights ramping linearly across each overlap; overlap 0 just butts
    tiles together.
    """
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    oh, ow = (overlap, overlap) if isinstance(overlap, int) else overlap
    h, w = x.shape[-2:]
    ys, xs = tile_starts(h, th, oh), tile_starts(w, tw, ow)
    th, tw = min(th, h), min(tw, w)
    out = weight = None
    for y0 in ys:
        for x0 in xs:
            y = fn(x[..., y0:y0 + th, x0:x0 + tw])
            if out is None:
                sh, sw = Fraction(y.shape[-2], th), Fraction(y.shape[-1], tw)
                out = y.new_zeros(*y.shape[:-2], _scaled(h, sh, "height"), _scaled(w, sw, "width"))
                weight = y.new_zeros(out.shape[-2:])
                ohh = _scaled(oh, sh, "overlap") if len(ys) > 1 else 0  # overlaps in output pixels
                oww = _scaled(ow, sw, "overlap") if len(xs) > 1 else 0
            oy, ox = _scaled(y0, sh, "tile offset"), _scaled(x0, sw, "tile offset")
            ny, nx = y.shape[-2:]
            wy = _ramp(ny, ohh if y0 > 0 else 0, ohh if y0 + th < h else 0, y.device)
            wx = _ramp(nx, oww if x0 > 0 else 0, oww if x0 + tw < w else 0, y.device)
            wt = (wy[:, None] * wx[None, :]).to(y.dtype)
            out[..., oy:oy + ny, ox:ox + nx] += y * wt
            weight[oy:oy + ny, ox:ox + nx] += wt
    return out / weight


class TileStreams:
    """``fn`` with one set of streaming caches per spatial tile, for ``tiled`` inside ``with streaming(model)``.

    ``tiled`` visits the tiles of every chunk in the same order, so the k-th call after ``next_chunk()``
    is always tile k: before it, the caches of the :class:`Streamable` modules inside ``part`` (the
    encoder or the decoder, whose caches ``fn`` uses) are set to tile k's, afterwards they are saved
    back. A tile seen for the first time starts with empty caches, i.e. at frame 0 of its own clip."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], part: nn.Module):
        self.fn = fn
        self.mods = [m for m in part.modules() if isinstance(m, Streamable)]
        self.states: list[list[Any]] = []
        self.k = 0

    def next_chunk(self) -> None:
        self.k = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.mods and not self.mods[0]._streaming:
            raise RuntimeError("TileStreams runs inside `with streaming(model):`")
        state = self.states[self.k] if self.k < len(self.states) else [None] * len(self.mods)
        for m, c in zip(self.mods, state):
            m._cache = c
        y = self.fn(x)
        saved = [m._cache for m in self.mods]
        if self.k < len(self.states):
            self.states[self.k] = saved
        else:
            self.states.append(saved)
        self.k += 1
        return y


def tiled_stream(fn: Callable[[torch.Tensor], torch.Tensor], part: nn.Module, tile: int,
                 overlap: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A chunk function (``encode_chunk``/``decode_chunk``) that tiles each chunk, every tile streaming on
    its own caches (see :class:`TileStreams`); ``tile``/``overlap`` in the chunk's own pixels."""
    streams = TileStreams(fn, part)

    def run(x: torch.Tensor) -> torch.Tensor:
        streams.next_chunk()
        return tiled(streams, x, tile, overlap)

    return run


def _borders(size: int, tile: int, overlap: int) -> list[int]:
    """Pixel boundaries (between b - 1 and b) where a tile starts or ends, excluding the image edges."""
    starts = tile_starts(size, tile, overlap)
    edges = {s for s in starts} | {s + min(tile, size) for s in starts}
    return sorted(b for b in edges if 0 < b < size)


def seam_score(x: torch.Tensor, tile: int, overlap: int = 0) -> float:
    """How much sharper the image changes across tile borders than elsewhere (1 = no seams).

    :func:`vaelab.metrics.seam.border_jump_ratio` (the metric) at the borders of the tile layout
    ``tile_starts(size, tile, overlap)`` (in ``x``'s pixels). ``x`` is (..., H, W), e.g. a decoded
    (B, 3, T, H, W) clip.
    """
    from .metrics.seam import border_jump_ratio

    return border_jump_ratio(x, _borders(x.shape[-1], tile, overlap), _borders(x.shape[-2], tile, overlap))
