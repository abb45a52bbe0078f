"""The package's one in-memory LRU cache and one content hash of clips (and other arrays).

:class:`LRU` backs the per-model result cache (``pipeline``), the latent report and embedding caches
(``analysis.latents``); :func:`clip_hash` keys them, and the probes' per-run memo.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, TypeVar

import numpy as np

V = TypeVar("V")


def clip_hash(*arrays: Any, digest_size: int = 16) -> str:
    """Content hash (blake2b hex) of one or more arrays: each one's bytes, dtype and shape.

    Takes numpy arrays or CPU tensors (anything ``np.asarray`` reads without copying, e.g. a uint8 clip
    (T, H, W, 3) or a float (B, 3, T, H, W) tensor)."""
    h = hashlib.blake2b(digest_size=digest_size)
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(a.tobytes())
        h.update(f"{a.dtype.str}{a.shape}".encode())
    return h.hexdigest()


class LRU(Generic[V]):
    """Thread-safe least-recently-used map with an entry bound and an optional byte budget.

    ``size``: most entries kept. ``max_bytes`` with ``nbytes`` (value -> its size in bytes): a value larger
    than the budget is not stored, and the oldest entries go until the rest fits. ``get`` refreshes an entry.
    Values are stored as given (callers keep them immutable)."""

    def __init__(self, size: int, max_bytes: int | None = None, nbytes: Callable[[V], int] | None = None):
        if size < 1:
            raise ValueError(f"an LRU needs size >= 1, got {size}")
        self.size, self.max_bytes, self._nbytes = size, max_bytes, nbytes
        self._d: OrderedDict[Hashable, V] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def _cost(self, value: V) -> int:
        return int(self._nbytes(value)) if self._nbytes is not None else 0

    def get(self, key: Hashable, default: V | None = None) -> V | None:
        with self._lock:
            if key not in self._d:
                return default
            self._d.move_to_end(key)
            return self._d[key]

    def put(self, key: Hashable, value: V) -> None:
        cost = self._cost(value)
        if self.max_bytes is not None and cost > self.max_bytes:
            return
        with self._lock:
            if key in self._d:
                self._bytes -= self._cost(self._d.pop(key))
            self._d[key] = value
            self._bytes += cost
            while len(self._d) > self.size or (self.max_bytes is not None and self._bytes > self.max_bytes):
                self._bytes -= self._cost(self._d.popitem(last=False)[1])

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self._bytes = 0

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._d

    def __len__(self) -> int:
        with self._lock:
            return len(self._d)

    @property
    def nbytes(self) -> int:
        """Bytes held, by ``nbytes`` (0 without it)."""
        with self._lock:
            return self._bytes
