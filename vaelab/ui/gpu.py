"""ZeroGPU support shared by every tab's compute handlers."""
from __future__ import annotations

import os


def zero_gpu(fn, duration: int = 120):
    """On a ZeroGPU Space (``SPACES_ZERO_GPU`` set), borrow a GPU for each call with ``spaces.GPU``;
    elsewhere, or without the ``spaces`` package, the function is returned unchanged."""
    if os.environ.get("SPACES_ZERO_GPU"):
        try:
            import spaces
        except ImportError:
            return fn
        return spaces.GPU(duration=duration)(fn)
    return fn
