"""fp32 stays bit-identical: sha256 of every lab model's uint8 reconstruction of one fixed clip.

fp32 kernels round differently on different CPU instruction sets (oneDNN picks AVX-512 or AVX2 code paths), so
the digests are recorded per ``torch.backends.cpu.get_cpu_capability()``: on a CPU of a recorded capability any
change to the fp32 path of a model, the engine or the shared blocks that moves a single output byte fails here.
On every CPU the reconstruction must also stay within a stated tolerance of a stored uint8 reference
(``recon_fp32.npz``), which is what a CPU without recorded digests checks. Regenerate only for a deliberate fp32
change (new weights): ``python tests/test_digests.py --write [--reference] [--changed=a,b]`` (this CPU's digests,
with ``--reference`` the reference reconstructions too; other capabilities' digests of a changed model are
dropped: those that differ from this CPU's old digest, and those named by ``--changed``)."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab import engine, metrics, models

EXPECTED = Path(__file__).with_name("digests_fp32.json")
REFERENCE = Path(__file__).with_name("recon_fp32.npz")
# across instruction sets fp32 results move by a rounding here and there (one uint8 level on a few pixels; a VQ
# code can flip where two codes are equally near), far from what a changed layer does (~20 dB)
CROSS_CPU_MIN_PSNR_DB, CROSS_CPU_MEAN_LEVELS = 35.0, 0.5


def fixed_clip() -> np.ndarray:
    """uint8 (9, 48, 64, 3): a smooth moving pattern plus seeded noise (exercises padding of 48 -> 64 too)."""
    t, y, x = np.meshgrid(np.arange(9), np.arange(48), np.arange(64), indexing="ij")
    base = np.stack([np.sin(x / 7 + t / 3), np.cos(y / 5 - t / 4), np.sin((x + y) / 9)], -1)
    noise = np.random.default_rng(0).normal(0, 0.15, base.shape)
    return np.clip((base + noise + 1) * 127.5, 0, 255).astype(np.uint8)


def reconstruct(name: str, **kwargs) -> np.ndarray:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = engine.get_model(name, "lab", "cpu")
        return engine.run_model(model, fixed_clip(), **kwargs).recon
    finally:
        torch.set_num_threads(threads)


def digest(name: str, **kwargs) -> str:
    return hashlib.sha256(np.ascontiguousarray(reconstruct(name, **kwargs)).tobytes()).hexdigest()


def capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


def _expected() -> dict[str, dict[str, str]]:
    return json.loads(EXPECTED.read_text())


@pytest.mark.parametrize("name", models.names())
def test_fp32_reconstruction_is_bit_identical(name):
    recon = reconstruct(name)
    with np.load(REFERENCE) as ref:
        assert name in ref.files, f"no reference reconstruction for {name}"
        d = np.abs(recon.astype(np.float64) - ref[name].astype(np.float64))
    psnr = float(metrics.psnr_from_mse((d ** 2).mean()))
    assert psnr >= CROSS_CPU_MIN_PSNR_DB and d.mean() <= CROSS_CPU_MEAN_LEVELS, (name, psnr, d.mean())
    want = _expected().get(capability(), {})
    if name in want:  # bit-exact where this CPU capability's digest is recorded
        assert hashlib.sha256(np.ascontiguousarray(recon).tobytes()).hexdigest() == want[name]


if __name__ == "__main__" and "--write" in sys.argv:
    table = _expected() if EXPECTED.exists() else {}
    mine = {n: digest(n) for n in models.names()}
    changed = {n for n, h in mine.items() if table.get(capability(), {}).get(n) not in (None, h)}
    changed |= {n for a in sys.argv if a.startswith("--changed=") for n in a.split("=", 1)[1].split(",")}
    for cap in list(table):  # a deliberate change on this CPU makes the other CPUs' digests of that model stale
        table[cap] = {n: h for n, h in table[cap].items() if n not in changed}
    table[capability()] = mine
    EXPECTED.write_text(json.dumps(table, indent=1) + "\n")
    if "--reference" in sys.argv:
        np.savez_compressed(REFERENCE, **{n: reconstruct(n) for n in models.names()})
    print(EXPECTED.read_text())
