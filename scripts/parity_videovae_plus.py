"""Parity fixtures and key manifests for the released VideoVAE+ (needs a reference checkout; never runs in CI).

Reference: github.com/VideoVerses/VideoVAEPlus at commit c829d91 (``git log -1``: "Merge pull request #8 from
sunfly04/dev"), ``src/models/autoencoder2plus1d_1dcnn.py`` (AutoencoderKL2plus1D_1dcnn) and
``src/models/autoencoder_temporal.py`` (EncoderTemporal1DCNN / DecoderTemporal1DCNN).

How it was produced (``python scripts/parity_videovae_plus.py --ref-git /work/.mirror/VideoVerses+VideoVAEPlus/repo``):

1. ``git archive HEAD src utils configs`` of the reference into a scratch dir under /tmp, with stubs in the scratch
   copy only: ``pytorch_lightning.LightningModule`` = nn.Module (+ device/dtype), ``cv2`` empty module,
   ``src/modules/t5.py`` replaced by a class that refuses to build (Flan-T5 is never used: text embeddings are
   given as tensors), the loss config replaced by ``torch.nn.Identity`` (its ``loss.*`` keys are training-only).
   xformers is absent, so the reference takes its plain-PyTorch attention branch.
2. Manifests: the model of each ``configs/inference/config_*.yaml`` on the meta device -> sorted [key, shape]
   list, ``manifest_sota-*.json``. ``config_4z_cap.yaml`` omits ``embed_dim`` (the constructor's assert then
   fails); it is built with ``embed_dim: 4`` as ``config_4z.yaml`` (its README row: 4 latent channels).
3. Parity at reduced widths (``REDUCED`` below: ch 32, ch_mult [1, 1, 2, 2], 1 ResNet per level, temporal hidden
   32): every parameter set by ``vaelab.models.official.hashed_weights`` (crc32 of the key name seeds each
   tensor; the test rebuilds the same file from the recipe, so no checkpoint is committed), loaded with
   ``load_state_dict(strict=True)``; input ``torch.manual_seed(0)`` uniform [-1, 1] (1, 3, 8, 32, 32); text
   embeddings ``manual_seed(1)`` N(0, 1) (1, 6, 1024) with mask [1, 1, 1, 1, 0, 0]. Saved: input, the reference's
   ``encode(x, sample_posterior=False)`` latent (posterior mode) and ``decode`` of it, plus for "plain" the image
   mode (``mask_temporal=True``) on frame 0, in ``parity_<variant>.safetensors``; the reduced manifest
   ``manifest_<variant>.json``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests/fixtures/official/videovae_plus"
sys.path.insert(0, str(ROOT))

REDUCED = {
    "plain": {"ddconfig": {"double_z": True, "z_channels": 4, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
                           "ch_mult": [1, 1, 2, 2], "temporal_down_factor": 1, "num_res_blocks": 1,
                           "attn_resolutions": [], "dropout": 0.0},
              "ppconfig": {"temporal_scale_factor": 4, "z_channels": 4, "out_ch": 4, "ch": 4, "hidden_channel": 32,
                           "attn_temporal_factor": []},
              "use_quant_conv": True, "embed_dim": 4, "caption_guide": False},
    "text": {"ddconfig": {"double_z": True, "z_channels": 8, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
                          "ch_mult": [1, 1, 2, 2], "temporal_down_factor": 1, "num_res_blocks": 1,
                          "attn_resolutions": [4, 8, 16, 32], "dropout": 0.0},
             "ppconfig": {"temporal_scale_factor": 4, "z_channels": 8, "out_ch": 8, "ch": 8, "hidden_channel": 32,
                          "attn_temporal_factor": [2, 4]},
             "use_quant_conv": False, "caption_guide": True},
}


def scratch_reference(ref_git: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="ref_vvp_"))
    archive = subprocess.run(["git", f"--git-dir={ref_git}", "archive", "HEAD", "src", "utils", "configs"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(d)], input=archive, check=True)
    (d / "stubs/pytorch_lightning").mkdir(parents=True)
    (d / "stubs/pytorch_lightning/__init__.py").write_text(
        "import torch.nn as nn\nclass LightningModule(nn.Module):\n"
        "    device = property(lambda self: next(self.parameters()).device)\n"
        "    dtype = property(lambda self: next(self.parameters()).dtype)\n")
    (d / "stubs/cv2").mkdir()
    (d / "stubs/cv2/__init__.py").write_text("")
    (d / "src/modules/t5.py").write_text("class T5Embedder:\n    def __init__(self, *a, **k):\n"
                                         "        raise RuntimeError('flan-t5 is not available')\n")
    sys.path[:0] = [str(d / "stubs"), str(d)]
    return d


def build(params: dict):
    from src.models.autoencoder2plus1d_1dcnn import AutoencoderKL2plus1D_1dcnn

    p = {k: v for k, v in params.items() if k not in ("ckpt_path", "monitor")}
    p["lossconfig"] = {"target": "torch.nn.Identity"}
    return AutoencoderKL2plus1D_1dcnn(**p)


def manifest(model) -> list:
    return sorted([k, list(v.shape)] for k, v in model.state_dict().items() if not k.startswith("loss."))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref-git", required=True, help="git dir of a VideoVerses/VideoVAEPlus clone")
    args = ap.parse_args()
    import yaml

    from vaelab.models.official import hashed_weights

    ref = scratch_reference(args.ref_git)
    commit = subprocess.run(["git", f"--git-dir={args.ref_git}", "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, cfg in [("sota-16z", "16z"), ("sota-16z-text", "16z_cap"), ("sota-4z", "4z"), ("sota-4z-text", "4z_cap")]:
        params = yaml.safe_load((ref / f"configs/inference/config_{cfg}.yaml").read_text())["model"]["params"]
        params.setdefault("embed_dim", 4 if params.get("use_quant_conv") else 0)
        with torch.device("meta"):
            m = build(params)
        (OUT / f"manifest_{name}.json").write_text(json.dumps({"reference_commit": commit, "keys": manifest(m)},
                                                              separators=(",", ":")))
    for variant, params in REDUCED.items():
        model = build(params).eval()
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        model.load_state_dict(hashed_weights(shapes), strict=True)
        torch.manual_seed(0)
        x = torch.rand(1, 3, 8, 32, 32) * 2 - 1
        out = {"input": x}
        kw = {}
        if params["caption_guide"]:
            torch.manual_seed(1)
            out["text_embeddings"] = torch.randn(1, 6, 1024)
            out["text_mask"] = torch.tensor([[1.0, 1, 1, 1, 0, 0]])
            kw = {"text_embeddings": out["text_embeddings"], "text_attn_mask": out["text_mask"]}
        with torch.no_grad():
            z, _ = model.encode(x, sample_posterior=False, **kw)
            out["latent"], out["recon"] = z, model.decode(z, **kw)
            if variant == "plain":
                zi, _ = model.encode(x[:, :, :1], sample_posterior=False, mask_temporal=True)
                out["image_latent"], out["image_recon"] = zi, model.decode(zi, mask_temporal=True)
        save_file({k: v.contiguous() for k, v in out.items()}, str(OUT / f"parity_{variant}.safetensors"),
                  metadata={"reference_commit": commit, "recipe": "vaelab.models.official.hashed_weights"})
        (OUT / f"manifest_{variant}.json").write_text(json.dumps({"reference_commit": commit, "keys": manifest(model)},
                                                                 separators=(",", ":")))
        print(variant, {k: tuple(v.shape) for k, v in out.items()}, float(out["recon"].abs().max()))


if __name__ == "__main__":
    main()
