"""Stable Diffusion's AutoencoderKL (Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models").

The LDM "KL-f8" autoencoder: a conv encoder emits the mean and log-variance of a diagonal
Gaussian over a 4-channel latent at 1/8 resolution, a tiny KL weight (1e-6) keeps that latent
close to N(0, I) without blurring it, and a conv decoder maps it back. The module tree and
parameter names are diffusers' ``AutoencoderKL``; ``load_diffusers_state_dict`` also accepts
the legacy attention names (``query/key/value/proj_attn``) found in 2022-era hub files.

    x (B, 3, T, H, W) -> encoder -> quant_conv -> moments (B*T, 8, H/8, W/8)
      -> z = mean (or a sample when training) (B, 4, T, H/8, W/8)
      -> post_quant_conv -> decoder -> (B, 3, T, H, W)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ._blocks import Decoder, DiagonalGaussian, Encoder
from .base import ImageVAE, ModelCard, Paper
from .config import ModelConfig
from .latent import Latent
from .layout import fold_time, unfold_time


@dataclass(frozen=True)
class SDVAEConfig(ModelConfig):
    """The lab AutoencoderKL; ``SD_CONFIG`` is the released one."""

    family: ClassVar[str] = "sd-vae"

    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 8
    kl_weight: float = 1e-6
    scaling_factor: float = 1.0  # replaced after training by 1/std of training latents (the 0.18215 recipe)
    shift_factor: float | None = None  # a diffusers config.json's latent shift (SD3 / FLUX VAEs), recorded like scaling_factor

    def card_factors(self) -> dict[str, Any]:
        return {"spatial_factor": 2 ** (len(self.block_out_channels) - 1), "temporal_factor": 1,
                "latent_channels": self.latent_channels}


# The released SD config (stabilityai/sd-vae-ft-mse), used by the reference benchmark and parity tests.
SD_CONFIG = SDVAEConfig().replace(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
                                  scaling_factor=0.18215)

CARD = ModelCard(
    name="sd-vae",
    family="Stable Diffusion AutoencoderKL",
    paper=Paper("High-Resolution Image Synthesis with Latent Diffusion Models", "CVPR", 2022,
                "https://arxiv.org/abs/2112.10752"),
    kind="image",
    **SDVAEConfig().card_factors(),
    causal=False,
    frame_rule="any",
    teaching=(
        "A continuous, Gaussian latent: the encoder predicts a mean and a variance per latent value, and a very "
        "small KL penalty (1e-6) keeps the latent roughly standard-normal without forcing it to forget detail. "
        "Every frame is compressed on its own, 8x8 pixels -> 4 numbers, so nothing ties frame t to frame t+1: "
        "watch the flicker curve."
    ),
    idea="KL-regularised conv autoencoder, f=8, 4 latent channels; the latent space of Stable Diffusion 1.x/2.x.",
    architecture="diffusers AutoencoderKL tree: conv_in, 4 DownEncoderBlock2D, mid (ResNet-Attn-ResNet), conv_out -> "
                 "quant_conv; post_quant_conv -> mirrored decoder with layers_per_block+1 ResNets per level.",
)

_LEGACY_ATTN = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


class AutoencoderKL(ImageVAE):
    card = CARD
    config_class = SDVAEConfig
    fp16_decoder_upcast = True  # SD's decoder overflows fp16 (diffusers' force_upcast): engine decodes it in fp32

    def __init__(self, config: SDVAEConfig | dict[str, Any] | None = None):
        cfg = SDVAEConfig.from_dict(config)
        super().__init__(cfg)
        z = cfg["latent_channels"]
        common = dict(block_out_channels=cfg["block_out_channels"], layers_per_block=cfg["layers_per_block"],
                      norm_num_groups=cfg["norm_num_groups"])
        self.encoder = Encoder(cfg["in_channels"], 2 * z, **common)
        self.decoder = Decoder(z, cfg["out_channels"], **common)
        self.quant_conv = nn.Conv2d(2 * z, 2 * z, 1)
        self.post_quant_conv = nn.Conv2d(z, z, 1)

    def posterior(self, x_bchw: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.quant_conv(self.encoder(x_bchw)))

    def encode_frames(self, x_bchw: torch.Tensor) -> Latent:
        return Latent(self.posterior(x_bchw).mode())

    def decode_frames(self, z: Latent) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z.main))

    def forward(self, x_bcthw: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, _, t, _, _ = x_bcthw.shape
        post = self.posterior(fold_time(x_bcthw))
        recon = unfold_time(self.decode_frames(Latent(post.sample())), b, t)
        # LDM sums the KL over (C, H, W) and averages over the batch; the pixel loss is a per-pixel mean, so
        # normalise the KL by the pixel count to keep the paper's 1e-6 weight meaningful at our scale.
        kl = post.kl().mean() / (3 * x_bcthw.shape[-2] * x_bcthw.shape[-1])
        return recon, {"kl": self.config["kl_weight"] * kl}

    def load_diffusers_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True):
        """Load a diffusers ``AutoencoderKL`` state dict, legacy attention names included."""
        return self.load_state_dict(convert_legacy_attention(state), strict=strict)


def convert_legacy_attention(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``attentions.0.{query,key,value,proj_attn}`` to diffusers' current names; squeeze 1x1-conv weights."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if "attentions" in parts:
            i = parts.index("attentions") + 2
            if i < len(parts) and parts[i] in _LEGACY_ATTN:
                parts[i] = _LEGACY_ATTN[parts[i]]
                key = ".".join(parts)
            if value.ndim == 4 and key.endswith("weight") and value.shape[-2:] == (1, 1):
                value = value[:, :, 0, 0]
        out[key] = value
    return out
