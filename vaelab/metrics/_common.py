"""What every metric module shares: the clip check and frame chunking (bounded float64 copies)."""

from __future__ import annotations

import numpy as np

# Frames are processed in chunks of about this many float64 values per array, so that a
# long high-resolution clip does not allocate several (T,H,W,3) float64 copies at once.
_CHUNK_VALUES = 1 << 22


def _check(ref: np.ndarray, rec: np.ndarray) -> None:
    if ref.shape != rec.shape:
        raise ValueError(f"shape mismatch: ref {ref.shape} vs rec {rec.shape}")
    if ref.ndim != 4 or ref.shape[-1] != 3 or ref.shape[0] == 0:
        raise ValueError(f"expected non-empty (T, H, W, 3) clips, got {ref.shape}")
    if ref.dtype != np.uint8 or rec.dtype != np.uint8:
        raise ValueError(f"expected uint8 clips, got {ref.dtype} and {rec.dtype}")


def _frame_chunks(clip: np.ndarray):
    """Yield slices over the first axis holding about ``_CHUNK_VALUES`` values each."""
    step = max(1, _CHUNK_VALUES // max(1, int(np.prod(clip.shape[1:]))))
    for start in range(0, clip.shape[0], step):
        yield slice(start, start + step)
