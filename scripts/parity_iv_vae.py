"""Make the IV-VAE parity fixture and key manifests from the reference code (needs a reference checkout; not CI).

Reference: ali-vilab/iv-vae at commit 555a35a158f68c37348ed6af92540b889ed05461 (2025-03-04), ``models/vae3d.py``
(MIT). Get it and run, e.g.::

    git clone https://github.com/ali-vilab/iv-vae /tmp/ref/iv-vae   # or: git archive of that commit
    python scripts/parity_iv_vae.py --ref /tmp/ref/iv-vae --commit 555a35a158f68c37348ed6af92540b889ed05461

The reference module is imported from the checkout as is (it needs torch and einops only); nothing of it is
copied here. What it writes under ``tests/fixtures/official/iv_vae/``:

* ``manifest.json``: for each released file (``ivvae_z4_dim64`` ... ``ivvae_z16_dim96``) the reference
  ``VAutoencoder3d`` at that config, built on the meta device: every state-dict key with its shape.
  ``other``: the same for two non-released sizes the constructor accepts (depth 1 and 3, other widths, an
  ``attn_scales`` entry).
* ``ivvae_tiny.pth``: the reference model at ``dim=2, z_dim=8`` (everything else as released), every parameter
  re-drawn from ``torch.manual_seed(SEED)`` (kernels N(0, 1/fan_in), biases N(0, 1), RMS gammas
  1 + N(0, 0.1^2); with these the fp32 reference is within 4e-6 of our float64 run, so the fixture is well
  conditioned), saved the way the
  released files are: ``torch.save(model.state_dict())``, fp32, the reference's own key names.
* ``ivvae_tiny_io.pt``: ``x`` (1, 3, 9, 16, 24) uniform in [-1, 1] from the same generator; ``latent``, the
  reference ``encode(x)`` with its posterior sample replaced by the mean (``model.sample = lambda mu, lv: mu``)
  at scale 1 / shift 0; ``latent_scaled``, the same with the z4 file's scale 1.3196 / shift 0.1250; ``recon``,
  the reference ``decode(latent)``. fp32, CPU, the reference's own frame-0-then-4-frame chunked loop.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch

SEED = 20250304
VARIANTS = {"ivvae_z4_dim64": (4, 64), "ivvae_z8_dim64": (8, 64), "ivvae_z16_dim64": (16, 64),
            "ivvae_z16_dim96": (16, 96)}
TINY = {"dim": 2, "z_dim": 8}
# other sizes the reference constructor accepts (keys only): shape inference must rebuild them too
OTHER = {"dim8_z4_mult1224_res1_attn0.5": dict(dim=8, z_dim=4, dim_mult=[1, 2, 2, 4], num_res_blocks=1,
                                               attn_scales=[0.5]),
         "dim4_z16_mult1111_res3": dict(dim=4, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=3)}
SCALED = (1.3196, 0.1250)  # ivvae_z4_dim64's scale / shift in the reference's IV_VAE()
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official" / "iv_vae"


def reference(ref: Path):
    spec = importlib.util.spec_from_file_location("ivvae_reference", ref / "models" / "vae3d.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cfg(z_dim: int, dim: int, scale: float = 1.0, shift: float = 0.0) -> dict:
    # the released cfg of the reference's IV_VAE(z_dim, dim)
    return dict(z_dim=z_dim, dim=dim, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                temperal_downsample=[False, True, True], dropout=0.0, scale_factor=scale, shift_factor=shift)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", type=Path, required=True, help="checkout of ali-vilab/iv-vae")
    ap.add_argument("--commit", required=True, help="the checkout's commit (recorded in the fixture)")
    args = ap.parse_args()
    mod = reference(args.ref)
    OUT.mkdir(parents=True, exist_ok=True)

    manifest = {"reference": f"ali-vilab/iv-vae@{args.commit}:models/vae3d.py", "variants": {}}
    for name, (z, d) in VARIANTS.items():
        with torch.device("meta"):
            m = mod.VAutoencoder3d(**cfg(z, d))
        manifest["variants"][name] = [[k, list(v.shape)] for k, v in m.state_dict().items()]
    manifest["other"] = {}
    for name, kw in OTHER.items():
        with torch.device("meta"):
            m = mod.VAutoencoder3d(**{**cfg(kw["z_dim"], kw["dim"]), **kw})
        manifest["other"][name] = {"config": kw, "keys": [[k, list(v.shape)] for k, v in m.state_dict().items()]}
    (OUT / "manifest.json").write_text(json.dumps(manifest, separators=(",", ":")))

    torch.manual_seed(SEED)
    model = mod.VAutoencoder3d(**cfg(TINY["z_dim"], TINY["dim"])).eval()
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith("gamma"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif p.ndim > 1:  # conv kernels: N(0, 1/fan_in), so activations stay O(1) through the deep tree
                p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
            else:  # biases N(0, 1): keeps RMS-norm inputs away from 0, where fp32 rounding would be amplified
                p.copy_(torch.randn_like(p))
    x = torch.rand(1, 3, 9, 16, 24) * 2 - 1
    model.sample = lambda mu, log_var: mu  # the deterministic latent: the posterior mean
    with torch.no_grad():
        latent = model.encode(x)
        recon = model.decode(latent)
        model.scale_factor, model.shift_factor = SCALED
        latent_scaled = model.encode(x)
    torch.save(model.state_dict(), OUT / "ivvae_tiny.pth")
    torch.save({"x": x, "latent": latent, "latent_scaled": latent_scaled, "recon": recon,
                "scaled": torch.tensor(SCALED), "reference": f"ali-vilab/iv-vae@{args.commit}",
                "seed": SEED, "config": TINY}, OUT / "ivvae_tiny_io.pt")
    print("latent", tuple(latent.shape), "recon", tuple(recon.shape), file=sys.stderr)


if __name__ == "__main__":
    main()
