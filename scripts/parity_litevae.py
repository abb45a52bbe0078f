"""Make the open-LiteVAE parity fixture and key manifest from the reference code (needs checkouts; not CI).

LiteVAE's authors released no code or weights; the checkpoint VAE Lab loads is the community reimplementation
RGenDiff/open-litevae (AGPL-3.0), HF ``RGenDiff/olitevaeB_im_f8c12``. Reference: RGenDiff/open-litevae at commit
2d93a82be3b398ad05f659a59a2fd2986b4f2e76 (2025-02-10), whose encoder imports ``torch_dwt.functional.dwt2`` from
KeKsBoTer/torch-dwt (commit 68a5b5f99fcee72625accb1a1fa049c4993eb4fd; needs PyWavelets). Run, e.g.::

    git clone https://github.com/RGenDiff/open-litevae /tmp/ref/open-litevae
    git clone https://github.com/KeKsBoTer/torch-dwt /tmp/ref/torch-dwt
    python scripts/parity_litevae.py --ref /tmp/ref/open-litevae --dwt /tmp/ref/torch-dwt \\
        --commit 2d93a82be3b398ad05f659a59a2fd2986b4f2e76

Both are imported from the checkouts as they are; nothing of them is copied here. Two packages the reference
imports only for training are stood in for in this process (``sys.modules``), not in the checkout:
``pytorch_lightning`` (``LightningModule`` -> ``torch.nn.Module``, ``rank_zero_only`` -> identity) and
OmegaConf (the configs are plain dicts with attribute access; the reference only reads ``.params.latent_dim``).

Writes under ``tests/fixtures/official/litevae/``:

* ``manifest.json``: ``LiteAutoencoderKL`` at ``configs/olitevaeB_im_f8c12.yaml`` (the released model), built on
  the meta device: every state-dict key and shape (the ``loss.*`` discriminator excluded: the yaml's loss is
  ``torch.nn.Identity``).
* ``olitevae_tiny.ckpt``: the same class at reduced widths (``TINY`` below), every parameter re-drawn from
  ``torch.manual_seed(SEED)`` (kernels N(0, 1/fan_in), the rest 1 + N(0, 0.1^2) for SMC gains/scales and
  GroupNorm weights, N(0, 0.1^2) for biases), with a stand-in ``loss`` module (``torch.nn.Linear(2, 2)``) so
  the file carries ``loss.*`` keys as a trained Lightning checkpoint does; saved Lightning-style,
  ``torch.save({"state_dict": model.state_dict(), "epoch": 0, "global_step": 0})``.
* ``olitevae_tiny_io.pt``: ``x`` (2, 3, 32, 48) uniform in [-1, 1]; ``latent``, ``model.encode(x).mode()``
  (the posterior mean); ``recon``, ``model.decode(latent)``. fp32, CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import torch
from torch import nn

SEED = 20250210
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official" / "litevae"
RELEASED_ENCODER = dict(in_channels=3, dct_levels=3, latent_dim=12, image_size=256, extractor_channels=32,
                        extractor_mult=[1, 2, 3], extractor_resblocks=4, aggregate_channels=32,
                        aggregate_mult=[1, 2, 3], aggregate_resblocks=4)
RELEASED_DECODER = dict(channels=128, z_channels=12, out_channels=3, channel_mult=[1, 2, 4, 4], num_res_blocks=2)
TINY_ENCODER = dict(in_channels=3, dct_levels=3, latent_dim=6, image_size=32, extractor_channels=8,
                    extractor_mult=[1, 2], extractor_resblocks=1, aggregate_channels=8, aggregate_mult=[1, 2, 1],
                    aggregate_resblocks=2)
TINY_DECODER = dict(channels=8, z_channels=6, out_channels=3, channel_mult=[1, 2, 2, 1], num_res_blocks=1)


class AttrDict(dict):
    """The part of OmegaConf's DictConfig the reference uses: item and attribute access."""

    def __getattr__(self, k):
        return self[k]

    def __setattr__(self, k, v):
        self[k] = v


def stub_training_deps() -> None:
    pl = types.ModuleType("pytorch_lightning")
    pl.LightningModule = nn.Module
    utilities = types.ModuleType("pytorch_lightning.utilities")
    distributed = types.ModuleType("pytorch_lightning.utilities.distributed")
    distributed.rank_zero_only = lambda f: f
    sys.modules.update({"pytorch_lightning": pl, "pytorch_lightning.utilities": utilities,
                        "pytorch_lightning.utilities.distributed": distributed})


def build(encoder: dict, decoder: dict, embed_dim: int, loss: dict):
    from olvae.models.liteautoencoder import LiteAutoencoderKL

    return LiteAutoencoderKL(
        encoder_config=AttrDict(target="olvae.modules.litevae.encoder_model.LiteVAE_Encoder",
                                params=AttrDict(encoder)),
        decoder_config=AttrDict(target="olvae.modules.litevae.decoder_model.LiteVAE_Decoder", params=decoder),
        lossconfig=loss, embed_dim=embed_dim, use_quant=False, use_ema=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", type=Path, required=True, help="checkout of RGenDiff/open-litevae")
    ap.add_argument("--dwt", type=Path, required=True, help="checkout of KeKsBoTer/torch-dwt")
    ap.add_argument("--commit", required=True, help="the open-litevae checkout's commit (recorded)")
    args = ap.parse_args()
    sys.path[:0] = [str(args.ref), str(args.dwt)]
    stub_training_deps()
    OUT.mkdir(parents=True, exist_ok=True)
    ref = f"RGenDiff/open-litevae@{args.commit}"

    with torch.device("meta"):
        full = build(dict(RELEASED_ENCODER), RELEASED_DECODER, 12, {"target": "torch.nn.Identity"})
    keys = [[k, list(v.shape)] for k, v in full.state_dict().items()]
    (OUT / "manifest.json").write_text(json.dumps(
        {"reference": f"{ref}:configs/olitevaeB_im_f8c12.yaml", "variants": {"olitevaeB_im_f8c12": keys}},
        separators=(",", ":")))

    torch.manual_seed(SEED)
    model = build(dict(TINY_ENCODER), TINY_DECODER, 6,
                  {"target": "torch.nn.Linear", "params": {"in_features": 2, "out_features": 2}}).eval()
    with torch.no_grad():
        for k, p in model.named_parameters():
            if p.ndim > 1:
                p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
            elif k.endswith(("gain", "scales")) or ".norm" in k and k.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        latent = model.encode(x).mode()
        recon = model.decode(latent)
    torch.save({"state_dict": model.state_dict(), "epoch": 0, "global_step": 0}, OUT / "olitevae_tiny.ckpt")
    torch.save({"x": x, "latent": latent, "recon": recon, "reference": ref, "seed": SEED,
                "encoder": TINY_ENCODER, "decoder": TINY_DECODER}, OUT / "olitevae_tiny_io.pt")
    print("latent", tuple(latent.shape), "recon", tuple(recon.shape), file=sys.stderr)


if __name__ == "__main__":
    main()
