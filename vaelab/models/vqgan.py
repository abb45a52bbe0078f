"""VQGAN (Esser, Rombach, Ommer, "Taming Transformers for High-Resolution Image Synthesis", CVPR 2021).

A conv autoencoder whose bottleneck is a learned codebook: each latent vector is replaced by
its nearest codebook entry, so an image becomes a grid of integer tokens. The gradient skips
the non-differentiable lookup with the straight-through estimator ``z + (z_q - z).detach()``.

    x (B*T, 3, H, W) -> encoder -> quant_conv -> z_e (B*T, e, H/8, W/8)
      -> nearest code -> indices (B*T, H/8, W/8), z_q (B*T, e, H/8, W/8)
      -> post_quant_conv -> decoder -> (B*T, 3, H, W)

``legacy=True`` reproduces taming's ``VectorQuantizer2`` default, which (as its own comment
admits) puts beta on the codebook term instead of the commitment term.

The released taming models (``configs/imagenet_vqgan.yaml``: ch 128, ch_mult [1, 1, 2, 2, 4], 2 ResNets
per level, ``attn_resolutions=[16]`` at ``resolution=256``, z 256, 1024 or 16384 codes) also put
self-attention *inside* the lowest-resolution level, after every ResNet of encoder level 4 and decoder
level 4; ``attention_levels`` (level indices, encoder order) says where, [] in the lab config.
``RELEASED_CONFIGS`` are those architectures; ``official.convert_checkpoint`` maps a taming ``last.ckpt``
onto this tree (``encoder.down.4.attn.j`` -> ``encoder.down_blocks.4.attentions.j``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import (
    Attention,
    Decoder,
    DownEncoderBlock2D,
    Encoder,
    ResnetBlock2D,
    UpDecoderBlock2D,
    full_precision,
)
from .base import ImageVAE, ModelCard, Paper
from .config import ModelConfig
from .latent import Latent
from .layout import fold_time, unfold_time


@dataclass(frozen=True)
class VQGANConfig(ModelConfig):
    """The lab VQGAN; ``RELEASED_CONFIGS`` are taming's released ones."""

    family: ClassVar[str] = "vqgan"

    block_out_channels: tuple[int, ...] = (32, 64, 64, 128)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    z_channels: int = 64
    embed_dim: int = 64
    n_embed: int = 512
    beta: float = 0.25
    legacy: bool = True
    attention_levels: tuple[int, ...] = ()  # levels (encoder order) with self-attention after each ResNet (taming attn_resolutions)

    def card_factors(self) -> dict[str, Any]:
        return {"spatial_factor": 2 ** (len(self.block_out_channels) - 1), "temporal_factor": 1,
                "latent_channels": self.embed_dim}


# taming-transformers configs/imagenet_vqgan.yaml (n_embed 1024) and its 16384-code sibling (same file, n_embed changed)
_TAMING_F16 = VQGANConfig().replace(block_out_channels=(128, 128, 256, 256, 512), layers_per_block=2,
                                    norm_num_groups=32, z_channels=256, embed_dim=256, beta=0.25, legacy=True,
                                    attention_levels=(4,))
RELEASED_CONFIGS: dict[str, VQGANConfig] = {
    "vqgan_imagenet_f16_1024": _TAMING_F16.replace(n_embed=1024),
    "vqgan_imagenet_f16_16384": _TAMING_F16.replace(n_embed=16384),
}

CARD = ModelCard(
    name="vqgan",
    family="VQGAN",
    paper=Paper("Taming Transformers for High-Resolution Image Synthesis", "CVPR", 2021,
                "https://arxiv.org/abs/2012.09841"),
    kind="image",
    **VQGANConfig().card_factors(),
    causal=False,
    frame_rule="any",
    teaching=(
        "A discrete latent: every 8x8 patch is replaced by one of 512 learned code vectors, so a frame becomes a "
        "grid of integers a transformer can model like words. The codebook usage histogram shows how many codes "
        "the model really uses (dead codes are the classic failure); perplexity is the effective vocabulary size."
    ),
    idea="Nearest-neighbour vector quantisation with a straight-through gradient, f=8, K=512 codes of dim 64.",
    architecture="LDM conv encoder/decoder (same skeleton as sd-vae, no double_z) + quant_conv, codebook, post_quant_conv.",
)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook lookup with a straight-through gradient (taming ``VectorQuantizer2``)."""

    def __init__(self, n_embed: int, embed_dim: int, beta: float = 0.25, legacy: bool = True):
        super().__init__()
        self.n_embed, self.embed_dim, self.beta, self.legacy = n_embed, embed_dim, beta, legacy
        self.embedding = nn.Embedding(n_embed, embed_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_embed, 1.0 / n_embed)

    def indices(self, z_bchw: torch.Tensor) -> torch.Tensor:
        """(B, e, h, w) -> (B, h, w) int64 in [0, n_embed)."""
        z_nc = z_bchw.permute(0, 2, 3, 1).reshape(-1, self.embed_dim).float()
        codes = self.embedding.weight
        # ||z - e||^2 = ||z||^2 + ||e||^2 - 2 z.e, without forming the (N, K, e) difference tensor;
        # in float32 under autocast too (a bf16 z.e picks the wrong code among near ties)
        with full_precision(z_nc):
            d = z_nc.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1) - 2 * z_nc @ codes.t()
        b, _, h, w = z_bchw.shape
        return d.argmin(1).reshape(b, h, w)

    def lookup(self, idx_bhw: torch.Tensor) -> torch.Tensor:
        """(B, h, w) -> (B, e, h, w)."""
        return self.embedding(idx_bhw).permute(0, 3, 1, 2)

    def forward(self, z_bchw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (z_q with straight-through gradient, loss, indices)."""
        z_bchw = z_bchw.float()  # distances and losses in float32 (a no-op outside autocast)
        idx = self.indices(z_bchw)
        z_q = self.lookup(idx)
        commit = F.mse_loss(z_q.detach(), z_bchw)   # pulls the encoder to its code
        codebook = F.mse_loss(z_q, z_bchw.detach())  # pulls the code to the encoder output
        loss = commit + self.beta * codebook if self.legacy else codebook + self.beta * commit
        z_q = z_bchw + (z_q - z_bchw).detach()
        return z_q, loss, idx


class AttnDownEncoderBlock2D(DownEncoderBlock2D):
    """An encoder level with self-attention after every ResNet (taming's in-level ``attn``; diffusers' names)."""

    def __init__(self, in_ch: int, out_ch: int, layers: int, groups: int, add_downsample: bool):
        super().__init__(in_ch, out_ch, layers, groups, add_downsample)
        self.attentions = nn.ModuleList(Attention(out_ch, groups) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for r, a in zip(self.resnets, self.attentions):
            x = a(r(x))
        return self.downsamplers[0](x) if self.downsamplers is not None else x


class AttnUpDecoderBlock2D(UpDecoderBlock2D):
    """A decoder level with self-attention after every ResNet."""

    def __init__(self, in_ch: int, out_ch: int, layers: int, groups: int, add_upsample: bool):
        super().__init__(in_ch, out_ch, layers, groups, add_upsample, resnet=ResnetBlock2D)
        self.attentions = nn.ModuleList(Attention(out_ch, groups) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for r, a in zip(self.resnets, self.attentions):
            x = a(r(x))
        return self.upsamplers[0](x) if self.upsamplers is not None else x


def _add_level_attention(encoder: Encoder, decoder: Decoder, chs: list[int], layers: int, groups: int,
                         levels: list[int]) -> None:
    """Swap the levels in ``levels`` (encoder order; decoder up block L-1-i) for their attention-bearing twins."""
    n = len(chs)
    for i in levels:
        if not 0 <= i < n:
            raise ValueError(f"attention level {i} out of range for {n} levels")
        encoder.down_blocks[i] = AttnDownEncoderBlock2D(chs[max(i - 1, 0)], chs[i], layers, groups, i < n - 1)
        rev, k = list(reversed(chs)), n - 1 - i
        decoder.up_blocks[k] = AttnUpDecoderBlock2D(rev[max(k - 1, 0)], rev[k], layers + 1, groups, k < n - 1)


class VQGAN(ImageVAE):
    card = CARD
    config_class = VQGANConfig
    quantised = True
    CODEBOOK_FRAMES = 32  # codebook usage is counted on at most this many frames (one encoder pass, bounded memory)

    def __init__(self, config: VQGANConfig | dict[str, Any] | None = None):
        cfg = VQGANConfig.from_dict(config)
        super().__init__(cfg)
        common = dict(block_out_channels=cfg["block_out_channels"], layers_per_block=cfg["layers_per_block"],
                      norm_num_groups=cfg["norm_num_groups"])
        self.encoder = Encoder(3, cfg["z_channels"], **common)
        self.decoder = Decoder(cfg["z_channels"], 3, **common)
        _add_level_attention(self.encoder, self.decoder, list(cfg["block_out_channels"]), cfg["layers_per_block"],
                             cfg["norm_num_groups"], list(cfg.get("attention_levels") or []))
        self.quant_conv = nn.Conv2d(cfg["z_channels"], cfg["embed_dim"], 1)
        self.quantize = VectorQuantizer(cfg["n_embed"], cfg["embed_dim"], cfg["beta"], cfg["legacy"])
        self.post_quant_conv = nn.Conv2d(cfg["embed_dim"], cfg["z_channels"], 1)

    def encode_indices(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> token grid (B, T, H/8, W/8)."""
        b, _, t, _, _ = x_bcthw.shape
        idx = self.quantize.indices(self.quant_conv(self.encoder(fold_time(x_bcthw))))
        return idx.reshape(b, t, *idx.shape[-2:])

    def encode_frames(self, x_bchw: torch.Tensor) -> Latent:
        """The quantised code vectors z_q (B, e, h, w): what the decoder sees."""
        return Latent(self.quantize.lookup(self.quantize.indices(self.quant_conv(self.encoder(x_bchw)))))

    def decode_frames(self, z: Latent) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z.main))

    def decode_indices(self, idx_bthw: torch.Tensor) -> torch.Tensor:
        b, t = idx_bthw.shape[:2]
        z = self.quantize.lookup(idx_bthw.flatten(0, 1))
        return unfold_time(self.decode_frames(Latent(z)), b, t)

    def forward(self, x_bcthw: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, _, t, _, _ = x_bcthw.shape
        z_q, vq_loss, idx = self.quantize(self.quant_conv(self.encoder(fold_time(x_bcthw))))
        recon = unfold_time(self.decode_frames(Latent(z_q)), b, t)
        return recon, {"vq": vq_loss, "_indices": idx}

    @torch.no_grad()
    def codebook_usage(self, x_bcthw: torch.Tensor) -> dict[str, Any]:
        """Counts of each code over a clip, codes used, and perplexity exp(H(p))."""
        from .base import pad_to_rule

        idx = self.encode_indices(pad_to_rule(x_bcthw, self.card.spatial_factor, self.card.frame_rule)[0])
        return codebook_stats(idx, self.quantize.n_embed)

    def diagnostics(self, x_bcthw: torch.Tensor, reference: Any = None) -> dict[str, Any]:
        """Codebook usage (counts, codes used, perplexity) on the first ``CODEBOOK_FRAMES`` frames."""
        n = min(x_bcthw.shape[2], self.CODEBOOK_FRAMES)
        return {"codebook": self.codebook_usage(x_bcthw[:, :, :n]) | {"frames": n}}


def codebook_stats(idx: torch.Tensor, n_embed: int) -> dict[str, Any]:
    counts = torch.bincount(idx.flatten(), minlength=n_embed).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"counts": counts.long().tolist(), "used": int((counts > 0).sum()), "n_embed": n_embed,
            "perplexity": float(entropy.exp())}
