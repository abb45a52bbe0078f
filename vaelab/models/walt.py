"""W.A.L.T's causal video tokenizer (Gupta et al., "Photorealistic Video Generation with Diffusion Models", ECCV 2024).

W.A.L.T trains one diffusion transformer on images *and* videos. That needs one latent space for
both, which its tokenizer gets by being causal in time: it is MAGVIT-v2's 3D-CNN encoder/decoder
(without the lookup-free quantiser, so the latent is continuous), where every 3D convolution pads
only in front. Frame 0 is therefore encoded from frame 0 alone, and an image is exactly the first
frame of a video: encoding it alone gives latent frame 0 of any clip that starts with it.

    x (B, 3, 1 + 4k, H, W)
      -> causal conv_in -> [causal ResNet, down] per level: space /2 at every step,
         time /2 at the two deepest (1 + 4k -> 1 + 2k -> 1 + k, frame 0 kept alone)
      -> causal mid ResNet -> RMSNorm, SiLU, causal conv_out -> moments (B, 2c, 1 + k, H/8, W/8)
      -> z = mean (a sample when training), c = 8               (B, c, 1 + k, H/8, W/8)
      -> mirrored causal decoder: nearest x2 up in space, depth-to-time x2 up in time
      -> (B, 3, 1 + 4k, H, W)

Latent frame j >= 1 summarises frames 4j - 3 .. 4j and may look at any earlier frame; it never
sees a later one, so a clip can be encoded and decoded in chunks with a per-layer cache
(vaelab.streaming) with exactly the one-shot result. Norms are RMSNorm (per position) instead of
MAGVIT-v2's GroupNorm, because GroupNorm pools over time and would break that exactness.

Lab deviations (stated, not hidden): no quantiser (as W.A.L.T); a KL-regularised Gaussian latent with
the lab's usual tiny weight (1e-6 on a KL normalised per pixel, the LDM ratio), which only nudges
the latent towards N(0, I) (the scaling factor fixes its scale after training); nearest + conv
spatial up-sampling instead of depth-to-space (fewer parameters); RMSNorm everywhere; widths
[16, 32, 64, 64] with one ResNet per level (CPU budget); L1 + wavelet loss from the shared loop
instead of MAGVIT-v2's perceptual + StyleGAN/LeCAM adversarial losses. W.A.L.T released no code:
c = 8 and the MAGVIT-v2 details follow the paper as summarised in the lab's research notes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ._causal import CausalConv3d, CausalDownsample, CausalResBlock3d, CausalUpsample, CausalVideoVAE, RMSNorm
from .base import ModelCard, Paper
from .config import ModelConfig
from .latent import Latent


@dataclass(frozen=True)
class WALTConfig(ModelConfig):
    """The lab W.A.L.T causal tokenizer."""

    family: ClassVar[str] = "walt"

    # [32, 64, 64, 64] (2.93 M params) is the brief's size; halving the two full-resolution levels costs 0.6 M
    # params but 2.7x fewer FLOPs (65 vs 176 GFLOP fwd+bwd per 17x64x64 clip), which is what CPU training can afford.
    block_out_channels: tuple[int, ...] = (16, 32, 64, 64)
    layers_per_block: int = 1  # causal ResNet blocks per encoder level
    decoder_layers_per_block: int = 1  # per decoder level (LDM uses layers_per_block + 1; 1 keeps CPU training affordable)
    temporal_downsample: tuple[bool, ...] = (False, True, True)  # per down-sampling step: time /2 at the two deepest
    latent_channels: int = 8
    kl_weight: float = 1e-6
    scaling_factor: float = 1.0  # replaced after training by 1/std of training latents

    def card_factors(self) -> dict[str, Any]:
        return {"spatial_factor": 2 ** (len(self.block_out_channels) - 1),
                "temporal_factor": 2 ** sum(map(bool, self.temporal_downsample)), "latent_channels": self.latent_channels}


CARD = ModelCard(
    name="walt",
    family="W.A.L.T causal tokenizer",
    paper=Paper("Photorealistic Video Generation with Diffusion Models", "ECCV", 2024,
                "https://arxiv.org/abs/2312.06662"),
    kind="video",
    **WALTConfig().card_factors(),
    causal=True,
    frame_rule="1+4k",
    teaching=(
        "One latent space for images and videos. Every 3D convolution only looks backwards in time, so frame 0 "
        "is encoded from frame 0 alone: a photo is exactly the first frame of a video, and one generator can "
        "train on both. After frame 0, every 4 frames become 1 latent frame (17 frames -> 5). Causality has a "
        "price and a gift: a latent frame never sees the future, so the first frames of each group of 4 get "
        "less context (look at per-frame PSNR by position), but a long clip can be streamed through in chunks "
        "with a small cache and the result is bit-for-bit the one-shot result."
    ),
    idea="MAGVIT-v2-style causal 3D-CNN autoencoder with a continuous (KL) latent instead of a quantiser; "
         "4x temporal, 8x spatial compression; first frame encoded independently.",
    architecture="Causal conv_in -> 4 levels [16, 32, 64, 64] of causal 3x3x3 ResNets (RMSNorm), stride-2 causal "
                 "down-sampling (space at every step, time at the two deepest) -> mid ResNet -> 2c moments; decoder "
                 "mirrors it with depth-to-time (time) and nearest+conv (space) up-sampling.",
)


class CausalEncoder3d(nn.Module):
    """(B, 3, 1 + 4k, H, W) -> moments (B, 2c, 1 + k, H/8, W/8)."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        chs, n = cfg["block_out_channels"], cfg["layers_per_block"]
        tdown = cfg["temporal_downsample"]
        self.conv_in = CausalConv3d(3, chs[0], 3)
        self.down_blocks = nn.ModuleList()
        c = chs[0]
        for i, w in enumerate(chs):
            level = nn.Module()
            level.resnets = nn.ModuleList(CausalResBlock3d(c if j == 0 else w, w) for j in range(n))
            level.downsample = CausalDownsample(w, time=tdown[i]) if i < len(chs) - 1 else None
            self.down_blocks.append(level)
            c = w
        self.mid = CausalResBlock3d(c, c)
        self.norm_out = RMSNorm(c)
        self.conv_out = CausalConv3d(c, 2 * cfg["latent_channels"], 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down_blocks:
            for r in level.resnets:
                h = r(h)
            if level.downsample is not None:
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class CausalDecoder3d(nn.Module):
    """z (B, c, 1 + k, h, w) -> x (B, 3, 1 + 4k, 8h, 8w); ``decoder_layers_per_block`` ResNets per level."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        rev = list(reversed(cfg["block_out_channels"]))
        tup = list(reversed(cfg["temporal_downsample"]))
        n = cfg["decoder_layers_per_block"]
        self.conv_in = CausalConv3d(cfg["latent_channels"], rev[0], 3)
        self.mid = CausalResBlock3d(rev[0], rev[0])
        self.up_blocks = nn.ModuleList()
        c = rev[0]
        for i, w in enumerate(rev):
            level = nn.Module()
            level.resnets = nn.ModuleList(CausalResBlock3d(c if j == 0 else w, w) for j in range(n))
            level.upsample = CausalUpsample(w, time=tup[i]) if i < len(rev) - 1 else None
            self.up_blocks.append(level)
            c = w
        self.norm_out = RMSNorm(c)
        self.conv_out = CausalConv3d(c, 3, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in self.up_blocks:
            for r in level.resnets:
                h = r(h)
            if level.upsample is not None:
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight used by the adaptive GAN weight (taming)."""
        return self.conv_out.conv.weight


class WALTTokenizer(CausalVideoVAE):
    """W.A.L.T / MAGVIT-v2 causal tokenizer with a continuous Gaussian latent (see module docstring)."""

    card = CARD
    config_class = WALTConfig

    def __init__(self, config: WALTConfig | dict[str, Any] | None = None):
        cfg = WALTConfig.from_dict(config)
        super().__init__(cfg)
        levels, tdown = len(cfg["block_out_channels"]), cfg["temporal_downsample"]
        factors = (2 ** (levels - 1), 2 ** sum(tdown))
        if len(tdown) != levels - 1 or factors != (CARD.spatial_factor, CARD.temporal_factor):
            raise ValueError("walt config must keep 4 levels with 2 temporal down-samplings (4x8x8), as its card says")
        if cfg["latent_channels"] != CARD.latent_channels:
            raise ValueError(f"walt's card fixes latent_channels = {CARD.latent_channels}")
        self.encoder = CausalEncoder3d(cfg)
        self.decoder = CausalDecoder3d(cfg)

    def moments(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        return self.encoder(x_bcthw)

    def decode_chunk(self, z: Latent, **kwargs: Any) -> torch.Tensor:
        return self.decoder(z.main)
