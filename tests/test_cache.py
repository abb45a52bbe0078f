"""The one LRU cache (vaelab.cache.LRU) and the one content hash (vaelab.cache.clip_hash)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from vaelab.cache import LRU, clip_hash


def test_lru_keeps_the_most_recently_used():
    c = LRU(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # refreshes a: b is now the oldest
    c.put("c", 3)
    assert "b" not in c and c.get("a") == 1 and c.get("c") == 3 and len(c) == 2
    assert c.get("b") is None and c.get("b", "gone") == "gone"
    c.put("a", 10)  # replacing keeps one entry
    assert c.get("a") == 10 and len(c) == 2
    c.clear()
    assert len(c) == 0 and c.get("a") is None
    with pytest.raises(ValueError):
        LRU(0)


def test_lru_byte_budget():
    c = LRU(10, max_bytes=100, nbytes=len)
    c.put("big", b"x" * 101)  # larger than the whole budget: not stored
    assert "big" not in c and c.nbytes == 0
    for k in "abc":
        c.put(k, b"x" * 40)
    assert "a" not in c and "b" in c and "c" in c and c.nbytes == 80
    c.put("b", b"x" * 10)  # a replaced value's bytes are given back
    assert c.nbytes == 50
    c.clear()
    assert c.nbytes == 0


def test_lru_is_thread_safe():
    c = LRU(16)

    def work(t):
        for i in range(2000):
            c.put((t, i % 40), i)
            c.get((t, (i * 7) % 40))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(c) == 16


def test_clip_hash_sees_content_shape_and_dtype():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4, 1)
    assert clip_hash(a) == clip_hash(a.copy()) and len(clip_hash(a)) == 32
    b = a.copy()
    b[1, 2, 3, 0] ^= 1
    assert clip_hash(b) != clip_hash(a)
    assert clip_hash(a.reshape(2, 4, 3, 1)) != clip_hash(a)  # same bytes, other shape
    assert clip_hash(a.astype(np.int8)) != clip_hash(a)  # same bytes, other dtype
    assert clip_hash(a[:, ::-1]) == clip_hash(np.ascontiguousarray(a[:, ::-1]))  # views hash by content
    assert clip_hash(a, a) != clip_hash(a)
    x = torch.linspace(-1, 1, 60).reshape(1, 3, 1, 4, 5)
    assert clip_hash(x) == clip_hash(x.numpy()) and clip_hash(x) != clip_hash(x + 1e-3)
    assert len(clip_hash(a, digest_size=12)) == 24
