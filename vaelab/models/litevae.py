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

import copy
import dataclasses
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import Decoder, DiagonalGaussian, ResnetBlock2D
from .base import ImageVAE, ModelCard, Paper
from .config import ModelConfig
from .latent import Latent
from .layout import fold_time, unfold_time
from .wavelets import dwt2_multilevel


@dataclass(frozen=True)
class LiteVAEConfig(ModelConfig):
    """The lab LiteVAE (``ReleasedConfig`` is open-litevae's tree)."""

    family: ClassVar[str] = "litevae"

    levels: int = 3
    extractor_channels: int = 8
    extractor_mult: tuple[int, ...] = (1, 2)
    extractor_blocks: int = 1
    aggregator_channels: int = 16
    aggregator_mult: tuple[int, ...] = (1, 2)
    aggregator_blocks: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 8
    decoder_block_out_channels: tuple[int, ...] = (32, 64, 128, 128)
    decoder_layers_per_block: int = 1
    kl_weight: float = 1e-6
    scaling_factor: float = 1.0

    def card_factors(self) -> dict[str, Any]:
        # the DWT pyramid sets the encoder's factor (each level halves H and W); the decoder mirrors it
        return {"spatial_factor": 2 ** self.levels, "temporal_factor": 1, "latent_channels": self.latent_channels}


CARD = ModelCard(
    name="litevae",
    family="LiteVAE",
    paper=Paper("LiteVAE: Lightweight and Efficient Variational Autoencoders for Latent Diffusion Models",
                "NeurIPS", 2024, "https://arxiv.org/abs/2405.14477"),
    kind="image",
    **LiteVAEConfig().card_factors(),
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
    config_class = LiteVAEConfig

    def __init__(self, config: LiteVAEConfig | dict[str, Any] | None = None):
        cfg = LiteVAEConfig.from_dict(config)
        super().__init__(cfg)
        self.encoder = LiteEncoder(cfg)
        self.decoder = Decoder(cfg["latent_channels"], 3, cfg["decoder_block_out_channels"],
                               cfg["decoder_layers_per_block"], cfg["norm_num_groups"], mid_attention=False,
                               resnet=SMCResnetBlock, norm_out=nn.Identity())

    def posterior(self, x_bchw: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.encoder(x_bchw))

    def encode_frames(self, x_bchw: torch.Tensor) -> Latent:
        return Latent(self.posterior(x_bchw).mode())

    def decode_frames(self, z: Latent) -> torch.Tensor:
        return self.decoder(z.main)

    def forward(self, x_bcthw: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, _, t, h, w = x_bcthw.shape
        post = self.posterior(fold_time(x_bcthw))
        recon = unfold_time(self.decode_frames(Latent(post.sample())), b, t)
        return recon, {"kl": self.config["kl_weight"] * post.kl().mean() / (3 * h * w)}


# --- the open-LiteVAE checkpoints (RGenDiff/open-litevae, a community reimplementation) ----------------------
#
# The LiteVAE authors released neither code nor weights. RGenDiff/open-litevae (AGPL-3.0; read for its facts, no
# code taken) reimplemented the paper and published ``RGenDiff/olitevaeB_im_f8c12`` (B-scale encoder, f8, 12
# latent channels). Its tree, with its state-dict names, is the one below. Differences from the lab tree above:
# extractor/aggregator ResNets are conv -> GroupNorm(8) -> SiLU (post-norm) with 1x1 convs changing the width
# between levels and a 1x1 output conv, level features are average-pooled to 1/8 with kernels 4, 2, 1 (the
# same as ours), the decoder's ResNets are SMC -> SiLU -> SMC -> SiLU (no pre-activation) and its mid block is
# num_res_blocks + 1 ResNets, and each SMC normalises its kernel and its input scales before demodulating.

@dataclass(frozen=True)
class ReleasedConfig(ModelConfig):
    """Constructor arguments of open-litevae's LiteAutoencoderKL (encoder, decoder, quantiser)."""

    family: ClassVar[str] = "litevae (open-litevae)"

    in_channels: int = 3
    dct_levels: int = 3
    embed_dim: int = 12
    extractor_channels: int = 32
    extractor_mult: tuple[int, ...] = (1, 2, 3)
    extractor_resblocks: int = 4
    aggregate_channels: int = 32
    aggregate_mult: tuple[int, ...] = (1, 2, 3)
    aggregate_resblocks: int = 4
    decoder_channels: int = 128
    decoder_mult: tuple[int, ...] = (1, 2, 4, 4)
    decoder_res_blocks: int = 2
    out_channels: int = 3
    resamp_with_conv: bool = True
    use_quant: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if 2 ** self.dct_levels != 2 ** (len(self.decoder_mult) - 1):
            raise ValueError(f"encoder factor 2^{self.dct_levels} and decoder factor 2^{len(self.decoder_mult) - 1} "
                             "differ")


RELEASED: dict[str, ReleasedConfig] = {"olitevaeB_im_f8c12": ReleasedConfig()}  # configs/olitevaeB_im_f8c12.yaml


class PostNormResBlock(nn.Module):
    """conv3x3 -> GroupNorm(8) -> SiLU -> conv3x3 -> GroupNorm(8) -> SiLU, plus a (1x1) residual projection."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 8):
        super().__init__()
        self.residual_conv = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(h))) + self.residual_conv(x)


class ChannelUNet(nn.Module):
    """open-litevae's extractor/aggregator: a UNet that never changes resolution, only width (1x1 convs between
    levels), with concatenated skips from every down-path ResNet. (B, in, H, W) -> (B, out, H, W)."""

    def __init__(self, in_channels: int, channels: int, mult: tuple[int, ...], blocks: int,
                 out_channels: int | None = None):
        super().__init__()
        dims = [channels * m for m in mult]
        out_channels = in_channels if out_channels is None else out_channels
        self.init_conv = nn.Conv2d(in_channels, dims[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            nn.ModuleList([*(PostNormResBlock(a, a) for _ in range(blocks)), nn.Conv2d(a, b, 1)])
            for a, b in itertools.pairwise(dims))
        self.mid_block = nn.ModuleList(PostNormResBlock(dims[-1], dims[-1]) for _ in range(blocks))
        self.up_blocks = nn.ModuleList(
            nn.ModuleList([nn.Conv2d(a, b, 1), *(PostNormResBlock(2 * b, b) for _ in range(blocks))])
            for a, b in zip(dims[:0:-1], dims[-2::-1]))
        self.conv_out = nn.Conv2d(dims[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.init_conv(x)
        skips = []
        for level in self.down_blocks:
            for block in level[:-1]:
                x = block(x)
                skips.append(x)
            x = level[-1](x)
        for block in self.mid_block:
            x = block(x)
        for level in self.up_blocks:
            x = level[0](x)
            for block in level[1:]:
                x = block(torch.cat([x, skips.pop()], 1))
        return self.conv_out(x)


class ReleasedLiteEncoder(nn.Module):
    """Haar pyramid -> one ChannelUNet per level -> avg-pool to 1/2^levels -> aggregator ChannelUNet.
    (B, C, H, W) -> (B, out, H/8, W/8)."""

    def __init__(self, cfg: ReleasedConfig, out_channels: int):
        super().__init__()
        self.levels = cfg.dct_levels
        self.extractors = nn.ModuleList(
            ChannelUNet(4 * cfg.in_channels, cfg.extractor_channels, cfg.extractor_mult, cfg.extractor_resblocks)
            for _ in range(cfg.dct_levels))
        self.aggregator = ChannelUNet(4 * cfg.in_channels * cfg.dct_levels, cfg.aggregate_channels,
                                      cfg.aggregate_mult, cfg.aggregate_resblocks, out_channels)

    def forward(self, x_bchw: torch.Tensor) -> torch.Tensor:
        feats = []
        for level, (bands, extractor) in enumerate(zip(dwt2_multilevel(x_bchw, self.levels), self.extractors)):
            f = extractor(torch.cat([bands[k] for k in ("LL", "LH", "HL", "HH")], 1))
            pool = 2 ** (self.levels - 1 - level)
            feats.append(F.avg_pool2d(f, pool) if pool > 1 else f)
        return self.aggregator(torch.cat(feats, 1))


class SMC(nn.Module):
    """open-litevae's self-modulated conv: kernel and per-input-channel scales each normalised to unit RMS, the
    kernel modulated by the scales and demodulated per output filter (StyleGAN2), times a learned scalar gain,
    then the bias. (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
        self.gain = nn.Parameter(torch.ones(1))
        self.scales = nn.Parameter(torch.ones(in_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.conv.weight
        w = w * w.pow(2).mean((1, 2, 3), keepdim=True).rsqrt()
        s = self.scales * self.scales.pow(2).mean().rsqrt()
        w = w * s.view(1, -1, 1, 1)
        w = w * (w.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8).rsqrt() * self.gain
        return F.conv2d(x, w, self.conv.bias, padding=self.conv.padding)


class SMCResBlock(nn.Module):
    """SMC -> SiLU -> SMC -> SiLU, plus a 1x1 ``nin_shortcut`` when the width changes."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = SMC(in_channels, out_channels)
        self.conv2 = SMC(out_channels, out_channels)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.conv2(F.silu(self.conv1(x))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class ReleasedLiteDecoder(nn.Module):
    """SD-layout decoder with SMC ResNets, mid block of res_blocks + 1 ResNets, no attention.
    (B, z, h, w) -> (B, out, 8h, 8w). ``up`` is stored finest level first (LDM order)."""

    def __init__(self, cfg: ReleasedConfig):
        super().__init__()
        ch, mult, n = cfg.decoder_channels, cfg.decoder_mult, cfg.decoder_res_blocks
        c = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.embed_dim, c, 3, padding=1)
        self.mid = nn.ModuleList(SMCResBlock(c, c) for _ in range(n + 1))
        up = []
        for i in reversed(range(len(mult))):
            level = nn.Module()
            level.block = nn.ModuleList()
            for _ in range(n + 1):
                level.block.append(SMCResBlock(c, ch * mult[i]))
                c = ch * mult[i]
            if i != 0:
                level.upsample = nn.Module()
                if cfg.resamp_with_conv:
                    level.upsample.conv = nn.Conv2d(c, c, 3, padding=1)
            up.insert(0, level)
        self.up = nn.ModuleList(up)
        self.conv_norm = SMC(c, c)
        self.conv_out = nn.Conv2d(c, cfg.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
                if hasattr(level.upsample, "conv"):
                    h = level.upsample.conv(h)
        return self.conv_out(F.silu(self.conv_norm(h)))


RELEASED_CARD_NOTE = ("community reimplementation: RGenDiff/open-litevae (AGPL-3.0 code) and its checkpoint "
                      "RGenDiff/olitevaeB_im_f8c12, NOT released by the LiteVAE authors; loads exactly "
                      "(parity-tested against the open-litevae code)")


class ReleasedLiteVAE(ImageVAE):
    """open-litevae's LiteAutoencoderKL at inference: ``encode`` = posterior mean (B, embed_dim, T, H/8, W/8)."""

    card = CARD

    def __init__(self, config: ReleasedConfig | dict[str, Any] | None = None):
        cfg = ReleasedConfig.from_dict(config if isinstance(config, ReleasedConfig) else
                                       {k: v for k, v in (config or {}).items() if k != "architecture"})
        super().__init__({"architecture": "released", **dataclasses.asdict(cfg)})
        self.released = cfg
        e = cfg.embed_dim
        self.encoder = ReleasedLiteEncoder(cfg, e if cfg.use_quant else 2 * e)
        self.decoder = ReleasedLiteDecoder(cfg)
        if cfg.use_quant:
            self.quantizer = nn.Module()
            self.quantizer.quant_conv = nn.Conv2d(e, 2 * e, 1)
            self.quantizer.post_quant_conv = nn.Conv2d(e, e, 1)
        self.card = dataclasses.replace(copy.deepcopy(CARD), latent_channels=e, spatial_factor=2 ** cfg.dct_levels,
                                        weights=RELEASED_CARD_NOTE)
        self.card.params = self.num_params()

    def posterior(self, x_bchw: torch.Tensor) -> DiagonalGaussian:
        h = self.encoder(x_bchw)
        return DiagonalGaussian(self.quantizer.quant_conv(h) if self.released.use_quant else h)

    def encode_frames(self, x_bchw: torch.Tensor) -> Latent:
        return Latent(self.posterior(x_bchw).mode())

    def decode_frames(self, z: Latent) -> torch.Tensor:
        return self.decoder(self.quantizer.post_quant_conv(z.main) if self.released.use_quant else z.main)

    def forward(self, x_bcthw: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b, _, t, h, w = x_bcthw.shape
        post = self.posterior(fold_time(x_bcthw))
        return unfold_time(self.decode_frames(Latent(post.sample())), b, t), {"kl": post.kl().mean() / (3 * h * w)}


_TRAINING_ONLY = ("loss.", "encoder_ema.", "decoder_ema.", "quantizer_ema.", "model_ema.")


def released_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The autoencoder keys of an open-litevae checkpoint (Lightning ``loss.*`` discriminator and EMA copies
    dropped), or None when ``state`` is not one."""
    if "encoder.extractors.0.init_conv.weight" not in state or "decoder.conv_norm.scales" not in state:
        return None
    return {k: v for k, v in state.items() if not k.startswith(_TRAINING_ONLY)}


def _unet_shape(state: dict[str, torch.Tensor], prefix: str) -> tuple[int, tuple[int, ...], int, int]:
    """(channels, mult, resblocks, out_channels) of a ChannelUNet under ``prefix``, read off its shapes."""
    from .base import WeightsError

    def get(key: str) -> torch.Tensor:
        if prefix + key not in state:
            raise WeightsError(f"not an open-litevae state dict: no {prefix}{key}")
        return state[prefix + key]

    dims = [int(get("init_conv.weight").shape[0])]
    blocks = sum(1 for k in state if re.fullmatch(re.escape(prefix) + r"mid_block\.\d+\.conv1\.weight", k))
    i = 0
    while f"{prefix}down_blocks.{i}.{blocks}.weight" in state:
        dims.append(int(state[f"{prefix}down_blocks.{i}.{blocks}.weight"].shape[0]))
        i += 1
    ch = math.gcd(*dims)
    return ch, tuple(d // ch for d in dims), blocks, int(get("conv_out.weight").shape[0])


def released_config_from_state(state: dict[str, torch.Tensor]) -> ReleasedConfig:
    """The open-litevae constructor arguments of ``state`` (after :func:`released_state`), from tensor shapes."""
    from .base import WeightsError

    levels = sum(1 for k in state if re.fullmatch(r"encoder\.extractors\.\d+\.init_conv\.weight", k))
    in_ch = int(state["encoder.extractors.0.init_conv.weight"].shape[1]) // 4
    ex_ch, ex_mult, ex_n, _ = _unet_shape(state, "encoder.extractors.0.")
    ag_ch, ag_mult, ag_n, ag_out = _unet_shape(state, "encoder.aggregator.")
    use_quant = "quantizer.quant_conv.weight" in state
    embed = int(state["quantizer.quant_conv.weight"].shape[1]) if use_quant else ag_out // 2
    n_up = sum(1 for k in state if re.fullmatch(r"decoder\.up\.\d+\.block\.0\.conv1\.conv\.weight", k))
    if not n_up or "decoder.conv_in.weight" not in state or "decoder.conv_out.weight" not in state:
        raise WeightsError("not an open-litevae state dict: decoder.up.* / conv_in / conv_out missing")
    widths = [int(state[f"decoder.up.{i}.block.0.conv1.conv.weight"].shape[0]) for i in range(n_up)]
    ch = math.gcd(*widths, int(state["decoder.conv_in.weight"].shape[0]))
    n_blocks = sum(1 for k in state if re.fullmatch(r"decoder\.up\.0\.block\.\d+\.conv1\.conv\.weight", k))
    try:
        return ReleasedConfig(in_ch, levels, embed, ex_ch, ex_mult, ex_n, ag_ch, ag_mult, ag_n, ch,
                              tuple(w // ch for w in widths), n_blocks - 1,
                              int(state["decoder.conv_out.weight"].shape[0]),
                              any(k.startswith("decoder.up.") and ".upsample.conv." in k for k in state), use_quant)
    except ValueError as e:
        raise WeightsError(f"open-litevae checkpoint not usable: {e}") from None
