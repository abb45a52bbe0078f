"""fp32 stays bit-identical: sha256 of every lab model's uint8 reconstruction of one fixed clip.

The expected digests were recorded before precision support existed (float32, one intra-op thread, this
machine's oneDNN kernels); any change to the fp32 path of a model, the engine or the shared blocks that moves
a single output byte fails here. Regenerate only for a deliberate fp32 change:
``python tests/test_digests.py --write``."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab import engine, models

EXPECTED = Path(__file__).with_name("digests_fp32.json")


def fixed_clip() -> np.ndarray:
    """uint8 (9, 48, 64, 3): a smooth moving pattern plus seeded noise (exercises padding of 48 -> 64 too)."""
    t, y, x = np.meshgrid(np.arange(9), np.arange(48), np.arange(64), indexing="ij")
    base = np.stack([np.sin(x / 7 + t / 3), np.cos(y / 5 - t / 4), np.sin((x + y) / 9)], -1)
    noise = np.random.default_rng(0).normal(0, 0.15, base.shape)
    return np.clip((base + noise + 1) * 127.5, 0, 255).astype(np.uint8)


def digest(name: str, **kwargs) -> str:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = engine.get_model(name, "lab", "cpu")
        res = engine.run_model(model, fixed_clip(), **kwargs)
    finally:
        torch.set_num_threads(threads)
    return hashlib.sha256(np.ascontiguousarray(res.recon).tobytes()).hexdigest()


def _expected() -> dict[str, str]:
    return json.loads(EXPECTED.read_text())


@pytest.mark.parametrize("name", models.names())
def test_fp32_reconstruction_is_bit_identical(name):
    want = _expected()
    assert name in want, f"no recorded digest for {name}"
    assert digest(name) == want[name]


if __name__ == "__main__" and "--write" in sys.argv:
    EXPECTED.write_text(json.dumps({n: digest(n) for n in models.names()}, indent=1) + "\n")
    print(EXPECTED.read_text())
