"""LiteVAE (Sadat et al., "LiteVAE: Lightweight and Efficient Variational Autoencoders for Latent Diffusion Models", NeurIPS 2024).

SD latents look like a small image, so a heavy conv encoder is overkill. LiteVAE replaces it by
a fixed 3-level Haar wavelet transform, a small feature extractor per level and an aggregation
network; the decoder is SD's, with every GroupNorm+conv pair swapped for a self-modulated
convolution (SMC) that keeps feature magnitudes balanced without normalisation statistics.

    x (B*T, 3, H, W) -> Haar level l = 1..3: 12 bands (B*T, 12, H/2^l, W/2^l)
      -> extractor_l (no spatial down-sampling) -> avg-pool to H/8 -> concat
      -> aggregator -> moments (B*T, 2*n_z, H/8, W/8) -> z (B, n_z, T, H/8, W/8)
      -> SMC decoder -> (B, 3, T, H, W)
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .wavelets import dwt2_multilevel
from ._blocks import Decoder, DiagonalGaussian, ResnetBlock2D
from .base import ImageVAE, ModelCard, Paper, fold_time, unfold_time

LAB_CONFIG: dict[str, Any] = {
    "levels": 3,
    "extractor_channels": 8,
    "extractor_mult": [1, 2],
    "extractor_blocks": 1,
    "aggregator_channels": 16,
    "aggregator_mult": [1, 2],
    "aggregator_blocks": 2,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "decoder_block_out_channels": [32, 64, 128, 128],
    "decoder_layers_per_block": 1,
    "kl_weight": 1e-6,
    "scaling_factor": 1.0,
}

CARD = ModelCard(
    name="litevae",
    family="LiteVAE",
    paper=Paper("LiteVAE: Lightweight and Efficient Variational Autoencoders for Latent Diffusion Models",
                "NeurIPS", 2024, "https://arxiv.org/abs/2405.14477"),
    kind="image",
    spatial_factor=8,
    temporal_factor=1,
    latent_channels=4,
    causal=False,
    frame_rule="any",
    teaching=(
        "Same latent shape as sd-vae, but the encoder starts from a free, fixed Haar wavelet pyramid (see the "
        "Wavelets tab): the heavy lifting of finding edges at several scales is already done, so a tiny network "
        "suffices. Compare the encoder parameter and FLOP counts with sd-vae's in the Models tab."
    ),
    idea="3-level Haar DWT + per-level feature extractors + aggregation UNet as encoder; SD decoder with "
         "self-modulated convolutions instead of GroupNorm.",
    architecture="Encoder: DWT -> 3 extractor UNets (no spatial down-sampling) -> avg-pool to 1/8 -> aggregator "
                 "UNet -> 2*n_z. Decoder: diffusers-style decoder whose ResNets use SMC, mid block without attention.",
)


class SMConv2d(nn.Module):
    """Self-modulated conv: a learned per-input-channel scale modulates the kernel, then each output
    filter is demodulated to unit norm (StyleGAN2), and a learned gain sets the output scale.
    This normalises the layer through its weights, so no batch/group statistics are needed."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel) / (in_ch * kernel * kernel) ** 0.5)
        self.scale = nn.Parameter(torch.ones(in_ch))
        self.gain = nn.Parameter(torch.ones(out_ch))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.scale[None, :, None, None]
        w = w * torch.rsqrt(w.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8) * self.gain[:, None, None, None]
        return F.conv2d(x, w, self.bias, padding=self.padding)


class SMCResnetBlock(nn.Module):
    """SiLU -> SMConv -> SiLU -> SMConv plus skip; the GroupNorms of :class:`ResnetBlock2D` are gone."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 0):
        super().__init__()
        self.conv1 = SMConv2d(in_channels, out_channels)
        self.conv2 = SMConv2d(out_channels, out_channels)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.conv1(F.silu(x))))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class FlatUNet(nn.Module):
    """ADM-style UNet without spatial down-sampling (LiteVAE's extractor and aggregator).

    The "down" path widens channels level by level, the "up" path narrows them again with
    concatenated skips, all at one resolution. (B, in, H, W) -> (B, out, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int, channels: int, mult: list[int], blocks: int, groups: int):
        super().__init__()
        widths = [channels * m for m in mult]
        self.conv_in = nn.Conv2d(in_ch, channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, c = [channels], channels
        for w in widths:
            for _ in range(blocks):
                self.down.append(ResnetBlock2D(c, w, groups))
                c = w
                skips.append(c)
        self.mid = ResnetBlock2D(c, c, groups)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            for _ in range(blocks):
                self.up.append(ResnetBlock2D(c + skips.pop(), w, groups))
                c = w
        self.norm_out = nn.GroupNorm(min(groups, c), c)
        self.conv_out = nn.Conv2d(c + skips.pop(), out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        hs = [h]
        for block in self.down:
            h = block(h)
            hs.append(h)
        h = self.mid(h)
        for block in self.up:
            h = block(torch.cat([h, hs.pop()], 1))
        return self.conv_out(torch.cat([F.silu(self.norm_out(h)), hs.pop()], 1))


class LiteEncoder(nn.Module):
    """Haar pyramid -> per-level extractors -> aggregator. (B, 3, H, W) -> moments (B, 2*n_z, H/8, W/8)."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.levels = cfg["levels"]
        c, g = cfg["extractor_channels"], cfg["norm_num_groups"]
        self.extractors = nn.ModuleList(
            FlatUNet(12, c, c, cfg["extractor_mult"], cfg["extractor_blocks"], g) for _ in range(self.levels)
        )
        self.aggregator = FlatUNet(c * self.levels, 2 * cfg["latent_channels"], cfg["aggregator_channels"],
                                   cfg["aggregator_mult"], cfg["aggregator_blocks"], g)

    def pyramid(self, x_bchw: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's fixed input: per level, (B, 12, H/2^l, W/2^l) = 4 bands x RGB."""
        return [torch.cat([bands[k] for k in ("LL", "LH", "HL", "HH")], 1)
                for bands in dwt2_multilevel(x_bchw, self.levels)]

    def forward(self, x_bchw: torch.Tensor) -> torch.Tensor:
        feats = []
        for level, (bands, extractor) in enumerate(zip(self.pyramid(x_bchw), self.extractors)):
            pool = 2 ** (self.levels - 1 - level)  # kernels 4, 2, 1 bring every level to H/8
            f = extractor(bands)
            feats.append(F.avg_pool2d(f, pool) if pool > 1 else f)
        return self.aggregator(torch.cat(feats, 1))


class LiteVAE(ImageVAE):
    card = CARD

    def __init__(self, config: dict[str, Any] | None = None):
        cfg = {**LAB_CONFIG, **(config or {})}
        super().__init__(cfg)
        self.encoder = LiteEncoder(cfg)
        self.decoder = Decoder(cfg["latent_channels"], 3, cfg["decoder_block_out_channels"],
                               cfg["decoder_layers_per_block"], cfg["norm_num_groups"], mid_attention=False,
                               resnet=SMCResnetBlock, norm_out=nn.Identity())

    def posterior(self, x_bchw: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.encoder(x_bchw))

    def encode_frames(self, x_bchw: torch.Tensor) -> torch.Tensor:
        return self.posterior(x_bchw).mode()

    def decode_frames(self, z_bchw: torch.Tensor) -> torch.Tensor:
        return self.decoder(z_bchw)

    def forward(self, x_bcthw: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, _, t, h, w = x_bcthw.shape
        post = self.posterior(fold_time(x_bcthw))
        recon = unfold_time(self.decode_frames(post.sample()), b, t)
        return recon, {"kl": self.config["kl_weight"] * post.kl().mean() / (3 * h * w)}
