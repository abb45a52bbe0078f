"""Make the VQGAN parity fixtures from the reference code (CompVis/taming-transformers). Never runs in CI.

    python scripts/parity_vqgan.py --ref-git-dir /path/to/taming-transformers/.git   # a clone or bare mirror

What it does, exactly:

1. ``git archive`` the reference commit's ``taming/`` and ``configs/`` into a temporary folder (nothing of it is copied into this repository).
2. Stub the two imports ``taming.models.vqgan`` needs only for training: ``pytorch_lightning.LightningModule``
   becomes ``torch.nn.Module`` and ``main.instantiate_from_config`` builds the loss from its ``target``
   (``torch.nn.Identity``: the released ``loss.*`` keys are training-only and VAE Lab drops them).
3. For every case in ``CASES`` build the reference ``VQModel`` (its own ``Encoder``, ``Decoder`` and
   ``VectorQuantizer2``) at a reduced width, set every parameter from ``recipe_tensor`` (a per-key seeded
   normal draw, fan-in scaled; the test regenerates the same values), and run it in fp32 on the input clip
   (uint8-exact values): the pre-quantisation latent ``h = quant_conv(encoder(x))``, the code indices, the
   quantised latent ``z_q`` and the reconstruction ``decode(z_q)``.
4. Write ``tests/fixtures/official/vqgan/<case>.safetensors`` (x, h, indices, z_q, recon) and ``<case>.json``
   (reference commit, reference config, seed and the key/shape list in the released layout: what the test
   turns into a Lightning ``last.ckpt`` from the recipe). The weights themselves are not committed (too big at
   GroupNorm's 32-group minimum width; the recipe reproduces them bit for bit).
5. Full-size key manifests: the reference ``VQModel`` at ``configs/imagenet_vqgan.yaml`` (n_embed 1024, and 16384
   for the other released model), built on the meta device: ``manifest_<variant>.json.gz`` = [[key, shape], ...].
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

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official" / "vqgan"
SEED = 20260101

# reduced copies of configs/imagenet_vqgan.yaml's ddconfig: same structure, 32-wide (GroupNorm(32) needs >= 32)
CASES = {
    # f16, attention inside level 4 (attn_resolutions [16] at resolution 256 -> here [4] at 64), as released
    "f16_level4_attention": {
        "ddconfig": {"double_z": False, "z_channels": 32, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
                     "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [4], "dropout": 0.0},
        "n_embed": 64, "embed_dim": 16, "input": [1, 3, 64, 48]},
    # another width/depth the constructor accepts: f8, one ResNet per level, attention in levels 2 and 3
    "f8_levels23_attention": {
        "ddconfig": {"double_z": False, "z_channels": 64, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
                     "ch_mult": [1, 2, 2, 2], "num_res_blocks": 1, "attn_resolutions": [8, 4], "dropout": 0.0},
        "n_embed": 128, "embed_dim": 8, "input": [2, 3, 32, 40]},
}

RELEASED = {  # configs/imagenet_vqgan.yaml; the 16384-code model is the same file with n_embed 16384
    "imagenet_f16_1024": {"n_embed": 1024},
    "imagenet_f16_16384": {"n_embed": 16384},
}


# Copied from tests/test_released_vqgan.py (the test regenerates the weights with it)
def recipe_tensor(key: str, shape: list[int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    v = torch.randn(shape, generator=g, dtype=torch.float32)
    if "embedding" in key:
        return v
    if len(shape) >= 2:
        return v / math.sqrt(math.prod(shape[1:]))
    return 1.0 + 0.1 * v if key.endswith("weight") else 0.1 * v


# Copied from tests/test_released_vqgan.py
def recipe_input(shape: list[int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(shape[0], shape[1], shape[2] // 8, shape[3] // 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=shape[2:], mode="bilinear", align_corners=False)
    x = (x + 0.15 * torch.rand(shape, generator=g)).clamp(0, 1)
    return torch.round(x * 255) / 127.5 - 1.0  # uint8-exact values in [-1, 1]


def extract(git_dir: Path, dest: Path, paths: tuple[str, ...] = ("taming", "configs")) -> str:
    commit = subprocess.check_output(["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"], text=True).strip()
    data = subprocess.check_output(["git", "--git-dir", str(git_dir), "archive", "--format=tar", commit, *paths])
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def stub_training_imports() -> None:
    pl = types.ModuleType("pytorch_lightning")
    pl.LightningModule = torch.nn.Module
    sys.modules["pytorch_lightning"] = pl
    main = types.ModuleType("main")

    def instantiate_from_config(config):
        module, cls = config["target"].rsplit(".", 1)
        return getattr(__import__(module, fromlist=[cls]), cls)(**config.get("params", {}))

    main.instantiate_from_config = instantiate_from_config
    sys.modules["main"] = main


def build(VQModel, case: dict, device: str = "cpu"):
    with torch.device(device):
        return VQModel(ddconfig=case["ddconfig"], lossconfig={"target": "torch.nn.Identity"},
                       n_embed=case["n_embed"], embed_dim=case["embed_dim"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref-git-dir", type=Path, required=True)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        commit = extract(args.ref_git_dir, Path(tmp))
        sys.path.insert(0, tmp)
        stub_training_imports()
        from taming.models.vqgan import VQModel

        for name, case in CASES.items():
            model = build(VQModel, case).eval()
            keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
            model.load_state_dict({k: recipe_tensor(k, s, SEED) for k, s in keys}, strict=True)
            x = recipe_input(case["input"], SEED)
            with torch.no_grad():
                h = model.quant_conv(model.encoder(x))
                z_q, _, (_, _, idx) = model.quantize(h)
                recon = model.decode(z_q)
            idx = idx.reshape(h.shape[0], h.shape[2], h.shape[3])
            save_file({"x": x, "h": h, "indices": idx, "z_q": z_q.contiguous(), "recon": recon.contiguous()},
                      str(OUT / f"{name}.safetensors"))
            meta = {"reference": "CompVis/taming-transformers", "commit": commit,
                    "code": "taming/models/vqgan.py VQModel (Encoder, Decoder, VectorQuantizer2), fp32 CPU, "
                            f"torch {torch.__version__}",
                    "config": {k: v for k, v in case.items() if k != "input"}, "input_shape": case["input"],
                    "seed": SEED, "weights": "recipe_tensor(key, shape, seed) for every key below",
                    "keys": keys, "used_codes": int(idx.unique().numel())}
            (OUT / f"{name}.json").write_text(json.dumps(meta, separators=(",", ":")))
            print(name, "codes used", meta["used_codes"], "recon range", float(recon.min()), float(recon.max()))

        import yaml

        cfg = yaml.safe_load((Path(tmp) / "configs" / "imagenet_vqgan.yaml").read_text())["model"]["params"]
        for variant, over in RELEASED.items():
            case = {"ddconfig": cfg["ddconfig"], "n_embed": over["n_embed"], "embed_dim": cfg["embed_dim"]}
            model = build(VQModel, case, device="meta")
            manifest = {"reference": "CompVis/taming-transformers", "commit": commit,
                        "config": "configs/imagenet_vqgan.yaml" + (f" with n_embed {over['n_embed']}"
                                                                    if over["n_embed"] != cfg["n_embed"] else ""),
                        "ddconfig": cfg["ddconfig"], "n_embed": over["n_embed"], "embed_dim": cfg["embed_dim"],
                        "note": "loss.* (LPIPS + discriminator) keys of last.ckpt are training-only and not listed",
                        "params": sum(p.numel() for p in model.parameters()),
                        "keys": [[k, list(v.shape)] for k, v in model.state_dict().items()]}
            with gzip.GzipFile(OUT / f"manifest_{variant}.json.gz", "wb", mtime=0) as f:  # byte-reproducible
                f.write(json.dumps(manifest, separators=(",", ":")).encode())
            print(variant, manifest["params"], "params", len(manifest["keys"]), "keys")


if __name__ == "__main__":
    main()
