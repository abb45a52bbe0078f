"""Orthonormal Haar wavelet transforms in torch: 1D along any axis, 2D per frame, 3D over time.

Band names list the filter per axis in order (for 2D: rows then columns; for 3D: time, rows,
columns), ``L`` = low-pass (pairwise sum / sqrt 2), ``H`` = high-pass (pairwise difference / sqrt 2).
So in 2D ``HL`` is high-pass along rows = horizontal edges (PyWavelets' ``cH``) and ``LH`` is
vertical edges (``cV``). The transforms are orthonormal: energy is preserved and the inverse is
exact to float precision. Sizes must be even along transformed axes (``pad_even`` helps).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_S = 1.0 / math.sqrt(2.0)

BANDS_2D = ("LL", "LH", "HL", "HH")
BANDS_3D = tuple(a + b + c for a in "LH" for b in "LH" for c in "LH")  # LLL, LLH, ..., HHH


def haar1d(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``x`` along ``dim`` (even length n) into (low, high), each of length n/2."""
    x = x.movedim(dim, -1)
    even, odd = x[..., 0::2], x[..., 1::2]
    return ((even + odd) * _S).movedim(-1, dim), ((even - odd) * _S).movedim(-1, dim)


def ihaar1d(low: torch.Tensor, high: torch.Tensor, dim: int) -> torch.Tensor:
    """Inverse of :func:`haar1d`: interleave (low+high)/sqrt2 and (low-high)/sqrt2 along ``dim``."""
    low, high = low.movedim(dim, -1), high.movedim(dim, -1)
    even, odd = (low + high) * _S, (low - high) * _S
    return torch.stack([even, odd], dim=-1).flatten(-2).movedim(-1, dim)


def dwt2(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One level over the last two axes: (..., H, W) -> {LL, LH, HL, HH} each (..., H/2, W/2)."""
    lo, hi = haar1d(x, -2)
    ll, lh = haar1d(lo, -1)
    hl, hh = haar1d(hi, -1)
    return {"LL": ll, "LH": lh, "HL": hl, "HH": hh}


def idwt2(bands: dict[str, torch.Tensor]) -> torch.Tensor:
    lo = ihaar1d(bands["LL"], bands["LH"], -1)
    hi = ihaar1d(bands["HL"], bands["HH"], -1)
    return ihaar1d(lo, hi, -2)


def dwt2_multilevel(x: torch.Tensor, levels: int) -> list[dict[str, torch.Tensor]]:
    """Repeatedly split the LL band; returns one band dict per level (level 1 = finest).

    The LL kept at each level is the input to the next; the last dict's LL is the coarse image.
    """
    out = []
    for _ in range(levels):
        bands = dwt2(x)
        out.append(bands)
        x = bands["LL"]
    return out


def idwt2_multilevel(levels: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    x = levels[-1]["LL"]
    for bands in reversed(levels):
        x = idwt2({**bands, "LL": x})
    return x


def dwt3(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One 3D level over the last three axes (T, H, W) -> 8 bands (..., T/2, H/2, W/2)."""
    out = {"": x}
    for dim in (-3, -2, -1):
        nxt = {}
        for name, t in out.items():
            lo, hi = haar1d(t, dim)
            nxt[name + "L"], nxt[name + "H"] = lo, hi
        out = nxt
    return out


def idwt3(bands: dict[str, torch.Tensor]) -> torch.Tensor:
    cur = dict(bands)
    for dim in (-1, -2, -3):
        nxt = {}
        for name in {k[:-1] for k in cur}:
            nxt[name] = ihaar1d(cur[name + "L"], cur[name + "H"], dim)
        cur = nxt
    return cur[""]


def pad_even(x: torch.Tensor, dims: tuple[int, ...], multiple: int = 2) -> torch.Tensor:
    """Replicate-pad the given trailing axes (negative dims) up to a multiple of ``multiple``."""
    pads = [0, 0] * 3
    for d in dims:
        n = x.shape[d]
        pads[2 * (-d - 1) + 1] = (-n) % multiple
    if not any(pads):
        return x
    # F.pad(replicate) wants a batch+channel layout; flatten the leading axes into it.
    lead = x.shape[:-3]
    y = x.reshape(-1, 1, *x.shape[-3:])
    y = F.pad(y, pads, mode="replicate")
    return y.reshape(*lead, *y.shape[-3:])
