"""Make the CV-VAE parity fixtures from the reference code (AILab-CVC/CV-VAE). Never runs in CI.

    python scripts/parity_cv_vae.py --ref-git-dir /path/to/CV-VAE/.git   # a clone or bare mirror

What it does, exactly:

1. ``git archive`` the reference commit's ``models/`` into a temporary folder (nothing of it is copied into this
   repository).
2. xformers is not installable here and the reference calls ``xformers.ops.memory_efficient_attention``
   unconditionally in its attention blocks; a stand-in ``xformers`` module is put in ``sys.modules`` whose
   ``memory_efficient_attention(q, k, v, attn_bias=None, op=None)`` is ``torch.nn.functional.
   scaled_dot_product_attention`` on the same (B, N, C) tensors: xformers' definition (softmax(q k^T / sqrt(C)) v,
   no bias). Nothing else is patched.
3. For every case in ``CASES`` build the reference ``models.modeling_vae.CVVAEModel`` (encoder/decoder from
   ``models/vae_models.py``, its own temporal chunking and spatial tiling) at a reduced width, set every
   parameter from ``recipe_tensor`` (a per-key seeded normal draw; the test regenerates the same values), run
   it in fp32 on CPU on the input clip (uint8-exact values): ``encode(x).latent_dist.mode()`` (the mean) and
   ``decode(mean).sample``.
4. Write ``tests/fixtures/official/cv_vae/<case>/config.json`` exactly as the reference's ``save_pretrained``
   writes it (the released folder format; the weights file is not kept: the test writes
   ``diffusion_pytorch_model.safetensors`` from the recipe), ``<case>.json`` (reference commit, seed, input shape,
   released key/shape list) and ``<case>.safetensors`` (input where small, mean, reconstruction or a strided
   subset of it where the clip is large).
5. Full-size key manifest: ``CVVAEModel()`` (its defaults = ch 128, ch_mult [1, 2, 4, 4], 2 ResNets, z 4,
   scaling 0.18215, the vae3d_v1-1 architecture) on the meta device: ``manifest_vae3d_v1-1.json.gz``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import subprocess
import sys
import tarfile
import tempfile
import types
import zlib
from io import BytesIO
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official" / "cv_vae"
SEED = 20260102

CASES = {
    # the released structure (ch_mult [1, 2, 4, 4], 2 ResNets) at width 32; one chunk, one tile (576 px)
    "v1_1_width32": {"config": {"ch": 32, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2},
                     "input": [1, 3, 9, 32, 40], "subset": 1},
    # another depth, and the reference's own tiling at a small tile: 21 frames = 2 encoder chunks of 16 + 1
    # (latents 0-4, 4-5), 2 decoder chunks; 96 px in 72-px tiles (the smallest whose strides agree, as 576 does)
    "tiled_chunked": {"config": {"ch": 32, "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "tile_spatial_size": 72},
                      "input": [1, 3, 21, 96, 96], "subset": 4},
}


# Copied from tests/test_released_cv_vae.py (the test regenerates the weights with it)
def recipe_tensor(key: str, shape: list[int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    v = torch.randn(shape, generator=g, dtype=torch.float32)
    if len(shape) >= 2:
        return v / math.sqrt(math.prod(shape[1:]))
    return 1.0 + 0.1 * v if key.endswith("weight") else 0.1 * v


# Copied from tests/test_released_cv_vae.py
def recipe_input(shape: list[int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    b, c, t, h, w = shape
    low = torch.rand(b, c, t, h // 8, w // 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=(t, h, w), mode="trilinear", align_corners=False)
    x = (x + 0.15 * torch.rand(shape, generator=g)).clamp(0, 1)
    return torch.round(x * 255) / 127.5 - 1.0


def extract(git_dir: Path, dest: Path, paths: tuple[str, ...] = ("models",)) -> str:
    commit = subprocess.check_output(["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"], text=True).strip()
    data = subprocess.check_output(["git", "--git-dir", str(git_dir), "archive", "--format=tar", commit, *paths])
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def stub_xformers() -> None:
    xf = types.ModuleType("xformers")
    xf.__version__ = "0.0.0+sdpa"
    ops = types.ModuleType("xformers.ops")

    def memory_efficient_attention(q, k, v, attn_bias=None, op=None):
        assert attn_bias is None
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    ops.memory_efficient_attention = memory_efficient_attention
    xf.ops = ops
    sys.modules["xformers"] = xf
    sys.modules["xformers.ops"] = ops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref-git-dir", type=Path, required=True)
    ap.add_argument("--only", default=None, help="one case name")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        commit = extract(args.ref_git_dir, Path(tmp))
        sys.path.insert(0, tmp)
        import diffusers.models.modeling_utils  # noqa: F401  (before the stand-in: diffusers probes xformers' spec)

        stub_xformers()
        from models.modeling_vae import CVVAEModel

        for name, case in CASES.items():
            if args.only and name != args.only:
                continue
            model = CVVAEModel(**case["config"]).eval()
            keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
            model.load_state_dict({k: recipe_tensor(k, s, SEED) for k, s in keys}, strict=True)
            folder = OUT / name
            with tempfile.TemporaryDirectory() as saved:
                model.save_pretrained(saved, safe_serialization=True)
                folder.mkdir(exist_ok=True)
                (folder / "config.json").write_text(Path(saved, "config.json").read_text())
                files = sorted(p.name for p in Path(saved).iterdir())
            x = recipe_input(case["input"], SEED)
            with torch.no_grad():
                mean = model.encode(x).latent_dist.mode()
                recon = model.decode(mean).sample
            k = case["subset"]
            tensors = {"mean": mean.contiguous(), "recon": recon[:, :, :, ::k, ::k].contiguous(),
                       "recon_frame_sums": recon.sum((0, 1, 3, 4)).contiguous()}
            if k == 1:
                tensors["x"] = x
            save_file(tensors, str(OUT / f"{name}.safetensors"))
            meta = {"reference": "AILab-CVC/CV-VAE", "commit": commit,
                    "code": "models/modeling_vae.py CVVAEModel (models/vae_models.py Encoder/Decoder), fp32 CPU, "
                            f"torch {torch.__version__}, xformers attention = torch SDPA",
                    "constructor": case["config"], "input_shape": case["input"], "recon_stride": k, "seed": SEED,
                    "saved_files": files, "weights": "recipe_tensor(key, shape, seed) for every key below",
                    "keys": keys}
            (OUT / f"{name}.json").write_text(json.dumps(meta, separators=(",", ":")))
            print(name, tuple(mean.shape), tuple(recon.shape), files)

        with torch.device("meta"):
            model = CVVAEModel()
        manifest = {"reference": "AILab-CVC/CV-VAE", "commit": commit,
                    "config": "CVVAEModel() defaults (ch 128, ch_mult [1, 2, 4, 4], num_res_blocks 2, z 4): "
                              "vae3d_v1-1's architecture",
                    "params": sum(p.numel() for p in model.parameters()),
                    "keys": [[k, list(v.shape)] for k, v in model.state_dict().items()]}
        with gzip.GzipFile(OUT / "manifest_vae3d_v1-1.json.gz", "wb", mtime=0) as f:  # byte-reproducible
            f.write(json.dumps(manifest, separators=(",", ":")).encode())
        print("vae3d_v1-1", manifest["params"], "params", len(manifest["keys"]), "keys")


if __name__ == "__main__":
    main()
