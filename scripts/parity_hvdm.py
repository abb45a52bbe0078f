"""Parity fixture and key manifest for the released HVDM autoencoder (needs a reference checkout; never runs in CI).

Reference: github.com/hxngiee/HVDM at commit ebb0a1d ("Update evals"), ``models/autoencoder/autoencoder_vit.py``
(ViTAutoencoder) + ``models/autoencoder/vit_modules.py``, the Haar ``DWT_3D`` of ``utils.py`` (what
tools/trainer.py and sample.py feed it), ``configs/autoencoder/base.yaml`` (embed_dim 4, channels 384, resolution
256, timesteps 16, splits 1).

How it was produced (``python scripts/parity_hvdm.py --ref-git /work/.mirror/hxngiee+HVDM/repo``):

1. ``git archive HEAD models utils.py configs`` into a scratch dir under /tmp; stubs in the scratch copy only:
   ``pywt`` (``Wavelet('haar')`` with pywt's filter values rec_lo [s, s], rec_hi [s, -s], s = 1/sqrt 2) and
   ``gdown`` (imported by utils.py, unused here); ``torch.utils.tensorboard.SummaryWriter`` (same) in sys.modules.
2. Manifest: the reference model at the released config on the meta device -> sorted [key, shape] list
   (``manifest_released.json``; 401 tensors, 63.5 M values incl. the rotary / coords buffers).
3. Parity: the reference hard-codes 384 channels and 16 x 256 x 256 (``view(..., 8, 32, 32)``), so it runs at full
   size. Every *parameter* is set by ``vaelab.models.official.hashed_weights`` (crc32 of the key seeds each tensor);
   buffers keep their constructed values (saved in the fixture, and the test checks ours equal them). Input:
   ``torch.Generator().manual_seed(0)``, ``rand(1, 3, 16, 256, 256) * 2 - 1``. Outputs: ``extract(x, DWT_3D(x))``
   (the latent, B x 4 x 16 x 32 x 32 after the view) and ``decode_from_sample`` of it (B*16 x 3 x 256 x 256).
   Saved (subsets, the full tensors are 256 KB / 12.6 MB): latent frames [0, 5, 15], reconstruction frames
   [0, 7, 15] at every 4th pixel, and per-frame float64 sums and abs-sums of both full tensors, in ``parity_released.safetensors``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from einops import rearrange
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests/fixtures/official/hvdm"
sys.path.insert(0, str(ROOT))
DDCONFIG = {"double_z": False, "channels": 384, "resolution": 256, "timesteps": 16, "skip": 1, "in_channels": 3,
            "out_ch": 3, "num_res_blocks": 2, "attn_resolutions": [], "splits": 1}
LATENT_FRAMES, RECON_FRAMES, STRIDE = [0, 5, 15], [0, 7, 15], 4


def parity_input() -> torch.Tensor:
    return torch.rand(1, 3, 16, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1


def summarise(latent_bcthw: torch.Tensor, recon_bcthw: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the fixture keeps of the two full tensors (the test applies the same to ours)."""
    return {"latent_frames": latent_bcthw[:, :, LATENT_FRAMES].contiguous(),
            "recon_frames": recon_bcthw[:, :, RECON_FRAMES, ::STRIDE, ::STRIDE].contiguous(),
            **{f"{name}_{kind}": f(t.double()).sum((0, 1, 3, 4)) for name, t in (("latent", latent_bcthw),
                                                                            ("recon", recon_bcthw))
               for kind, f in (("sum", lambda a: a), ("abs_sum", torch.abs))}}


def scratch_reference(ref_git: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="ref_hvdm_"))
    archive = subprocess.run(["git", f"--git-dir={ref_git}", "archive", "HEAD", "models", "utils.py", "configs"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(d)], input=archive, check=True)
    (d / "stubs/pywt").mkdir(parents=True)
    (d / "stubs/pywt/__init__.py").write_text(
        "import math\nclass Wavelet:\n    def __init__(self, name):\n        assert name == 'haar'\n"
        "        s = 1 / math.sqrt(2)\n        self.rec_lo, self.rec_hi = [s, s], [s, -s]\n"
        "        self.dec_lo, self.dec_hi = [s, s], [-s, s]\n")
    (d / "stubs/gdown").mkdir()
    (d / "stubs/gdown/__init__.py").write_text("")
    sys.path[:0] = [str(d / "stubs"), str(d)]
    import types

    tb = types.ModuleType("torch.utils.tensorboard")  # utils.py imports SummaryWriter; tensorboard is absent
    tb.SummaryWriter = object
    sys.modules["torch.utils.tensorboard"] = tb
    return d


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref-git", required=True, help="git dir of a hxngiee/HVDM clone")
    args = ap.parse_args()
    scratch_reference(args.ref_git)
    from models.autoencoder.autoencoder_vit import ViTAutoencoder
    from utils import DWT_3D

    from vaelab.models.official import hashed_weights

    commit = subprocess.run(["git", f"--git-dir={args.ref_git}", "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    OUT.mkdir(parents=True, exist_ok=True)
    model = ViTAutoencoder(4, DDCONFIG).eval()
    keys = sorted([k, list(v.shape)] for k, v in model.state_dict().items())
    (OUT / "manifest_released.json").write_text(json.dumps({"reference_commit": commit, "keys": keys},
                                                           separators=(",", ":")))
    params = hashed_weights({k: tuple(p.shape) for k, p in model.named_parameters()})
    buffers = {f"buffer.{k}": v.clone() for k, v in model.named_buffers()}
    model.load_state_dict({**params, **{k[len("buffer."):]: v for k, v in buffers.items()}}, strict=True)
    x = parity_input()
    with torch.no_grad():
        z = model.extract(x, DWT_3D("haar")(x)).view(1, 4, 16, 32, 32)
        rec = rearrange(model.decode_from_sample(z.reshape(1, 4, -1)), "(b t) c h w -> b c t h w", b=1)
    out = summarise(z, rec) | buffers
    save_file(out, str(OUT / "parity_released.safetensors"),
              metadata={"reference_commit": commit, "recipe": "vaelab.models.official.hashed_weights (parameters)"})
    print({k: tuple(v.shape) for k, v in out.items()}, float(z.abs().max()), float(rec.abs().max()))
    torch.save({"latent": z, "recon": rec}, "/tmp/hvdm_ref_full.pt")  # full tensors, for debugging only


if __name__ == "__main__":
    main()
