"""VideoVAE+ (Xing, Fei, He et al., "Large Motion Video Autoencoding with Cross-modal Video VAE", ICCV 2025).

A 3D-inflated VAE compresses space and time in the same convolutions, and large motion then
blurs or ghosts. VideoVAE+ separates the two jobs:

1. A *temporal-aware spatial* autoencoder (2+1D) compresses every frame 8x8. Its convolutions are
   per-frame 2D convs, but every ResNet also carries zero-initialised temporal convs and the mid
   block a temporal attention (with relative positions), so frames see their neighbours while no
   frames are merged yet.
2. A lightweight *temporal* autoencoder then compresses that per-frame latent 4x in time with
   plain 3D convs (stride 2 in time, twice) and expands it back with transposed convs.
3. Captions steer both: cross-attention layers after the ResNets attend from the feature map
   (cut into patches so the query grid is always H/8 x W/8) to the caption's tokens. The paper
   uses a frozen Flan-T5-large; here it is the tiny hashed-word transformer of ``_text.py``,
   trained with the VAE, with a learned null token for "no caption".
4. Joint image mode: for a 1-frame input every temporal layer and the whole temporal
   autoencoder are skipped, so an image is coded by the spatial path alone (a different latent
   space from a video's: a 1-frame image latent is *not* a 4-frame video latent).

Shapes (widths ``block_out_channels`` per level, L = 4 levels):

    x (B, 3, 4k, H, W)                                           H, W multiples of 8
      -> stage 1 encoder, per frame: conv_in, per level [ResNet2+1D (+ caption cross-attn)],
         spatial down-sampling, mid ResNet - spatial attn - temporal attn - ResNet, conv_out
      -> moments (B, 8, 4k, H/8, W/8) -> z1 (B, 4, 4k, H/8, W/8)
      -> stage 2 encoder: conv 3x3x3, 2 x [conv stride (2, 1, 1), ResBlock (+ caption cross-attn)]
      -> moments (B, 8, k, H/8, W/8) -> z (B, 4, k, H/8, W/8)         (frame rule "4k", not causal)
      -> stage 2 decoder: conv, 2 x [ConvTranspose (2, 1, 1), 2 ResBlocks (+ cross-attn)] -> z1'
      -> stage 1 decoder (mirror, layers_per_block + 1 ResNets per level) -> (B, 3, 4k, H, W)
    image mode: x (B, 3, 1, H, W) -> stage 1 only -> z (B, 4, 1, H/8, W/8) -> stage 1 only.

API: ``encode(x, caption=None)`` (a 1-frame x uses image mode), ``decode(z, caption=None,
image=False)`` (a latent does not say which mode made it: pass ``image=True`` for image
latents), ``reconstruct(x, caption=None)`` (1 frame: image mode; else pads to 4k). ``caption``:
None (unconditional), one string for the whole batch, or one string/None per sample.

Effect of a caption. With random weights every caption (and None) gives a different output:
the cross-attention outputs are added to the features (nothing is zero-initialised there, as in
the repo). After training, a caption only helps as much as the training captions carried
information; the lab's captions are one line per training source (``train/data.py: CAPTIONS``), so
the effect is small (the weights' record, ``caption_effect``, has it on held-out frames). Compare caption / None / a wrong caption on the same clip (Inside the model tab).

Chunking (``encode_chunked`` / ``decode_chunked`` / ``reconstruct_chunked``): like the repo's
inference script, clips are cut into independent chunks of 4n frames with no overlap or
cache. The temporal convs, temporal attention and the stage-2 GroupNorm (over T) all see only
their chunk, so chunked != one-shot and the frames on either side of a chunk boundary are coded
without each other: expect a flicker spike at every boundary (chunk == T reproduces one-shot).

Lab deviations (stated): widths [32, 48, 48, 48] / hidden 16 instead of 128 / 128 (CPU budget);
the zero-initialised temporal convs are 3x1x1 (a 1D conv over time; the repo uses 3x3x3,
``temporal_conv_kernel``) and pad time by replicating edge frames (the repo zero-pads); stage-1
GroupNorm per frame (so a video frame and an image see the same normalisation; the repo pools
over T); the tiny text embedder above instead of Flan-T5 (4 heads x 16 instead of 8 x 64 in the
cross-attention); KL on the latent that is handed out (stage 2, or stage 1 in image mode), both
posteriors sampled when training, as the repo; joint image training happens inside ``forward``
(with probability ``joint_image_prob`` a video batch is coded as independent images, the repo's
``training_step_joint`` fold) so the shared loop needs no change.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from ._blocks import Conv3d, DiagonalGaussian, Downsample2D, Upsample2D, _groups
from ._text import Caption, TextEmbedder, as_caption_list
from .base import VAE, ModelCard, Paper, pad_to_rule
from .config import ModelConfig
from .cv_vae import GroupNorm3D, SpatialAttention
from .latent import Latent
from .layout import (
    fold_time,
    from_time_sequences,
    per_frame,
    time_sequences,
    to_channels_first,
    to_channels_last,
    unfold_time,
    upsample_nearest_2x,
)


@dataclass(frozen=True)
class VideoVAEPlusConfig(ModelConfig):
    """The lab VideoVAE+ (``ReleasedConfig`` is the published tree)."""

    family: ClassVar[str] = "videovae-plus"

    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (32, 48, 48, 48)  # stage 1 (spatial AE) widths per level (repo: 128 * [1, 2, 4, 4])
    layers_per_block: int = 1  # encoder ResNets per level; the decoder has one more
    norm_num_groups: int = 8
    latent_channels: int = 4
    temporal_conv_kernel: tuple[int, ...] = (3, 1, 1)  # zero-initialised temporal convs in every ResNet (repo: [3, 3, 3])
    temporal_heads: int = 1
    max_relative_position: int = 16
    temporal_hidden: int = 16  # stage 2 (temporal AE) width: 16 -> 32 -> 64 (repo: 128 -> 256 -> 512)
    text: bool = True
    text_dim: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_vocab: int = 4096
    text_max_tokens: int = 32
    cross_heads: int = 4
    cross_head_dim: int = 16
    text_levels: tuple[int, ...] = (0, 1, 2, 3)  # stage-1 levels with caption cross-attention (encoder and decoder; repo: all)
    text_temporal_factors: tuple[int, ...] = (2, 4)  # stage-2 blocks with caption cross-attention (repo: [2, 4])
    caption_dropout: float = 0.1  # training: share of captions replaced by None (learns the unconditional path)
    joint_image_prob: float = 0.2  # training: share of steps that code the batch's frames as images
    kl_weight: float = 1e-6
    scaling_factor: float = 1.0

    def card_factors(self) -> dict[str, Any]:
        # time: the temporal AE's two stride-(2, 1, 1) steps (TemporalEncoder), as the paper's 4x
        return {"spatial_factor": 2 ** (len(self.block_out_channels) - 1), "temporal_factor": 4,
                "latent_channels": self.latent_channels}


CARD = ModelCard(
    name="videovae-plus",
    family="VideoVAE+",
    paper=Paper("Large Motion Video Autoencoding with Cross-modal Video VAE", "ICCV", 2025,
                "https://arxiv.org/abs/2412.17805"),
    kind="video",
    **VideoVAEPlusConfig().card_factors(),
    causal=False,
    frame_rule="4k",
    teaching=(
        "Space first, then time: a per-frame 8x8 autoencoder whose layers can glance at neighbouring frames, "
        "followed by a small autoencoder that squeezes 4 frames into 1. Captions can steer the coding through "
        "cross-attention: reconstruct with the right caption, no caption and a wrong one and compare (Inside the "
        "model tab; the card's training record gives the held-out effect). A single "
        "image skips every temporal layer (joint image mode). Chunks are coded independently, so watch for a "
        "flicker spike at every chunk boundary."
    ),
    idea="Temporal-aware 2+1D spatial AE (8x8) followed by a 1D-CNN temporal AE (4x); optional caption "
         "cross-attention (tiny text embedder instead of Flan-T5); images skip the temporal path.",
    architecture="Stage 1: LDM layout with ResNet2+1D blocks (per-frame 3x3 convs + zero-init temporal convs), "
                 "caption cross-attention after ResNets (patches 8/4/2/1 -> H/8 grid), mid spatial + relative-"
                 "position temporal attention. Stage 2: 3D conv encoder with two stride-(2,1,1) convs and a "
                 "transposed-conv decoder on the 4-channel stage-1 latent. Not causal; frame rule 4k.",
)


# --- stage 1 layers -----------------------------------------------------------------------------------

class TemporalConvLayer(nn.Module):
    """GroupNorm -> SiLU -> zero-initialised conv over time (kernel k_t x k x k, time padded by replication).

    (B, C, T, H, W) -> (B, C, T, H, W); added residually by the ResNet, so it starts as the identity."""

    def __init__(self, channels: int, groups: int, kernel: Sequence[int]):
        super().__init__()
        kt, kh, kw = kernel
        self.kt = kt
        self.norm = GroupNorm3D(channels, groups, over_time=False)
        self.conv = Conv3d(channels, channels, (kt, kh, kw), padding=(0, kh // 2, kw // 2))
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm(x))
        p = self.kt // 2
        return self.conv(F.pad(h, (0, 0, 0, 0, p, p), mode="replicate") if p else h)


class ResnetBlock2plus1D(nn.Module):
    """Per-frame ResNet (norm, SiLU, 3x3 conv, twice, 1x1 skip) with a temporal conv layer added after conv1,
    after conv2 and after the skip projection; ``temporal=False`` (image mode) skips them."""

    def __init__(self, in_ch: int, out_ch: int, groups: int, kernel: Sequence[int]):
        super().__init__()
        self.norm1 = GroupNorm3D(in_ch, groups, over_time=False)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv1_tmp = TemporalConvLayer(out_ch, groups, kernel)
        self.norm2 = GroupNorm3D(out_ch, groups, over_time=False)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv2_tmp = TemporalConvLayer(out_ch, groups, kernel)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None
        self.conv3_tmp = TemporalConvLayer(out_ch, groups, kernel) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor, temporal: bool) -> torch.Tensor:
        h = per_frame(self.conv1, F.silu(self.norm1(x)))
        if temporal:
            h = h + self.conv1_tmp(h)
        h = per_frame(self.conv2, F.silu(self.norm2(h)))
        if temporal:
            h = h + self.conv2_tmp(h)
        if self.conv_shortcut is not None:
            x = per_frame(self.conv_shortcut, x)
            if temporal:
                x = x + self.conv3_tmp(x)
        return x + h


class RelativeTemporalAttention(nn.Module):
    """Multi-head self-attention over T at every pixel with learned relative-position terms on keys and values
    (Shaw et al.); q/k/v and output projections start at zero, so the block starts as the identity."""

    def __init__(self, channels: int, heads: int = 1, max_relative: int = 16):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        self.heads, self.max_relative = heads, max_relative
        d = channels // heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.rel_k = nn.Parameter(torch.empty(2 * max_relative + 1, d))
        self.rel_v = nn.Parameter(torch.empty(2 * max_relative + 1, d))
        self.proj_out = nn.Linear(channels, channels)
        nn.init.xavier_uniform_(self.rel_k)
        nn.init.xavier_uniform_(self.rel_v)
        for lin in (self.qkv, self.proj_out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        seq = self.norm(time_sequences(to_channels_last(x)))  # (B*h*w, T, C)
        q, k, v = self.qkv(seq).view(-1, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (N, h, T, d)
        pos = torch.arange(t, device=x.device)
        rel = (pos[None, :] - pos[:, None]).clamp(-self.max_relative, self.max_relative) + self.max_relative
        rk, rv = self.rel_k[rel], self.rel_v[rel]  # (T, T, d)
        logits = (q @ k.transpose(-1, -2) + torch.einsum("nhid,ijd->nhij", q, rk)) * q.shape[-1] ** -0.5
        attn = logits.float().softmax(-1).to(v.dtype)  # softmax in float32 under autocast (no-op in fp32)
        out = attn @ v + torch.einsum("nhij,ijd->nhid", attn, rv)
        out = self.proj_out(out.transpose(1, 2).reshape(-1, t, c))
        return x + to_channels_first(from_time_sequences(out, b, h, w))


class CaptionCrossAttention(nn.Module):
    """Features attend to caption tokens. The map is cut into p x p patches (p = 8 at full resolution, then 4,
    2, 1), so the queries always form the H/8 x W/8 grid: (B, C, T, H, W) -> residual update of the same shape.

    Every frame attends on its own to the clip's caption. Pre-LN on the patch vectors; multi-head."""

    def __init__(self, channels: int, patch: int, text_dim: int, heads: int, head_dim: int):
        super().__init__()
        self.patch, self.heads = patch, heads
        pdim, inner = channels * patch * patch, heads * head_dim
        self.norm = nn.LayerNorm(pdim)
        self.to_q = nn.Linear(pdim, inner, bias=False)
        self.to_k = nn.Linear(text_dim, inner, bias=False)
        self.to_v = nn.Linear(text_dim, inner, bias=False)
        self.to_out = nn.Linear(inner, pdim)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        p = self.patch
        if h % p or w % p:
            raise ValueError(f"feature map {h}x{w} does not split into {p}x{p} patches (inputs must be multiples of 8)")
        gh, gw = h // p, w // p
        tok = x.transpose(1, 2).reshape(b * t, c, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1)
        tok = tok.reshape(b * t, gh * gw, p * p * c)
        q = self.to_q(self.norm(tok))
        ctx_bt = ctx.repeat_interleave(t, 0)
        k, v = self.to_k(ctx_bt), self.to_v(ctx_bt)
        n = q.shape[0]
        q, k, v = (a.view(n, -1, self.heads, a.shape[-1] // self.heads).transpose(1, 2) for a in (q, k, v))
        mask = valid.repeat_interleave(t, 0)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(n, gh * gw, -1)
        out = self.to_out(out).view(b, t, gh, gw, p, p, c).permute(0, 6, 1, 2, 4, 3, 5)
        return out.reshape(b, c, t, h, w)


class MidBlock2plus1D(nn.Module):
    def __init__(self, channels: int, groups: int, kernel: Sequence[int], heads: int, max_relative: int):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2plus1D(channels, channels, groups, kernel) for _ in range(2)])
        self.attentions = nn.ModuleList([SpatialAttention(channels, groups)])
        self.temporal_attentions = nn.ModuleList([RelativeTemporalAttention(channels, heads, max_relative)])

    def forward(self, x: torch.Tensor, temporal: bool) -> torch.Tensor:
        x = self.attentions[0](self.resnets[0](x, temporal))
        if temporal:
            x = self.temporal_attentions[0](x)
        return self.resnets[1](x, temporal)


def _cross(cfg: dict[str, Any], channels: int, patch: int) -> CaptionCrossAttention:
    return CaptionCrossAttention(channels, patch, cfg["text_dim"], cfg["cross_heads"], cfg["cross_head_dim"])


class Level(nn.Module):
    """One resolution level: ResNets, each optionally followed by caption cross-attention, then a resampler."""

    def __init__(self, in_ch: int, out_ch: int, layers: int, cfg: dict[str, Any], text: bool, patch: int,
                 resample: nn.Module | None):
        super().__init__()
        g, k = cfg["norm_num_groups"], cfg["temporal_conv_kernel"]
        self.resnets = nn.ModuleList(ResnetBlock2plus1D(in_ch if i == 0 else out_ch, out_ch, g, k)
                                     for i in range(layers))
        self.text_attentions = nn.ModuleList(_cross(cfg, out_ch, patch) for _ in range(layers) if text)
        self.resample = resample

    def forward(self, x: torch.Tensor, temporal: bool, ctx: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        for i, r in enumerate(self.resnets):
            x = r(x, temporal)
            if ctx is not None and len(self.text_attentions):
                x = x + self.text_attentions[i](x, *ctx)
        return per_frame(self.resample, x) if self.resample is not None else x


class Encoder2plus1D(nn.Module):
    """x (B, 3, T, H, W) -> moments (B, 2C, T, H/8, W/8); per-frame convs plus temporal layers."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        chs, g, n = cfg["block_out_channels"], cfg["norm_num_groups"], len(cfg["block_out_channels"])
        text = cfg["text"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], chs[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            Level(chs[max(i - 1, 0)], chs[i], cfg["layers_per_block"], cfg, text and i in cfg["text_levels"],
                  2 ** (n - 1 - i), Downsample2D(chs[i]) if i < n - 1 else None)
            for i in range(n))
        self.mid_block = MidBlock2plus1D(chs[-1], g, cfg["temporal_conv_kernel"], cfg["temporal_heads"],
                                         cfg["max_relative_position"])
        self.conv_norm_out = GroupNorm3D(chs[-1], g, over_time=False)
        self.conv_out = nn.Conv2d(chs[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x: torch.Tensor, temporal: bool, ctx: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        h = per_frame(self.conv_in, x)
        for level in self.down_blocks:
            h = level(h, temporal, ctx)
        h = self.mid_block(h, temporal)
        return per_frame(self.conv_out, F.silu(self.conv_norm_out(h)))


class Decoder2plus1D(nn.Module):
    """z (B, C, T, h, w) -> x (B, 3, T, 8h, 8w)."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        rev, g, n = list(reversed(cfg["block_out_channels"])), cfg["norm_num_groups"], len(cfg["block_out_channels"])
        text = cfg["text"]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], rev[0], 3, padding=1)
        self.mid_block = MidBlock2plus1D(rev[0], g, cfg["temporal_conv_kernel"], cfg["temporal_heads"],
                                         cfg["max_relative_position"])
        # up block k runs at resolution level n - 1 - k; patch 2^k keeps the H/8 query grid
        self.up_blocks = nn.ModuleList(
            Level(rev[max(k - 1, 0)], rev[k], cfg["layers_per_block"] + 1, cfg,
                  text and (n - 1 - k) in cfg["text_levels"], 2 ** k, Upsample2D(rev[k]) if k < n - 1 else None)
            for k in range(n))
        self.conv_norm_out = GroupNorm3D(rev[-1], g, over_time=False)
        self.conv_out = nn.Conv2d(rev[-1], cfg["out_channels"], 3, padding=1)

    def forward(self, z: torch.Tensor, temporal: bool, ctx: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        h = self.mid_block(per_frame(self.conv_in, z), temporal)
        for level in self.up_blocks:
            h = level(h, temporal, ctx)
        return per_frame(self.conv_out, F.silu(self.conv_norm_out(h)))

    @property
    def last_layer(self) -> torch.Tensor:
        return self.conv_out.weight


# --- stage 2: the temporal autoencoder -----------------------------------------------------------------

class SamePadConv3d(Conv3d):
    """3x3x3 conv with "same" replicate padding (front-heavy when the stride is 2): T -> T / stride_t."""

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__(in_ch, out_ch, 3, stride=stride)
        pads = []
        for s in reversed(stride):
            p = 3 - s
            pads += [p // 2 + p % 2, p // 2]
        self.pads = tuple(pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads, mode="replicate"))


class ResBlock3d(nn.Module):
    """GroupNorm (over C/g, T, H, W) -> SiLU -> 3x3x3 conv, twice, plus the input."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(channels, groups), channels, eps=1e-6)
        self.conv1 = SamePadConv3d(channels, channels)
        self.norm2 = nn.GroupNorm(_groups(channels, groups), channels, eps=1e-6)
        self.conv2 = SamePadConv3d(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


def _xavier(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class TemporalEncoder(nn.Module):
    """z1 (B, C, 4k, h, w) -> moments (B, 2C, k, h, w): conv, then per /2 step a stride-(2,1,1) conv doubling the
    width and a ResBlock (+ caption cross-attention at the listed factors), then norm-SiLU-conv."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        c, hid, g = cfg["latent_channels"], cfg["temporal_hidden"], cfg["norm_num_groups"]
        self.conv_in = SamePadConv3d(c, hid)
        self.blocks = nn.ModuleList()
        for i in range(2):
            blk = nn.Module()
            blk.down = SamePadConv3d(hid * 2 ** i, hid * 2 ** (i + 1), stride=(2, 1, 1))
            blk.res = ResBlock3d(hid * 2 ** (i + 1), g)
            with_text = cfg["text"] and 2 ** (i + 1) in cfg["text_temporal_factors"]
            blk.text_attentions = nn.ModuleList([_cross(cfg, hid * 2 ** (i + 1), 1)] if with_text else [])
            self.blocks.append(blk)
        self.norm_out = nn.GroupNorm(_groups(hid * 4, g), hid * 4, eps=1e-6)
        self.conv_out = SamePadConv3d(hid * 4, 2 * c)
        _xavier(self)

    def forward(self, z: torch.Tensor, ctx: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        h = self.conv_in(z)
        for blk in self.blocks:
            h = blk.res(blk.down(h))
            if ctx is not None:
                for attn in blk.text_attentions:
                    h = h + attn(h, *ctx)
        return self.conv_out(F.silu(self.norm_out(h)))


class TemporalDecoder(nn.Module):
    """z (B, C, k, h, w) -> z1 (B, C, 4k, h, w): conv, then per x2 step a ConvTranspose3d (stride (2,1,1)) and two
    ResBlocks (each + caption cross-attention at the listed factors), then a conv back to C channels."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        c, hid, g = cfg["latent_channels"], cfg["temporal_hidden"], cfg["norm_num_groups"]
        self.conv_in = SamePadConv3d(c, hid * 4)
        self.blocks = nn.ModuleList()
        widths = [hid * 4, hid * 4, hid * 2]
        for i in range(2):
            factor = 4 // 2 ** i  # the coarse side of this block
            blk = nn.Module()
            blk.up = nn.ConvTranspose3d(widths[i], widths[i + 1], 3, stride=(2, 1, 1), padding=1,
                                        output_padding=(1, 0, 0))
            blk.res = nn.ModuleList([ResBlock3d(widths[i + 1], g) for _ in range(2)])
            with_text = cfg["text"] and factor in cfg["text_temporal_factors"]
            blk.text_attentions = nn.ModuleList([_cross(cfg, widths[i + 1], 1) for _ in range(2)] if with_text else [])
            self.blocks.append(blk)
        self.conv_out = SamePadConv3d(widths[-1], c)
        _xavier(self)

    def forward(self, z: torch.Tensor, ctx: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        h = self.conv_in(z)
        for blk in self.blocks:
            h = blk.up(h)
            for i, res in enumerate(blk.res):
                h = res(h)
                if ctx is not None and len(blk.text_attentions):
                    h = h + blk.text_attentions[i](h, *ctx)
        return self.conv_out(h)


# --- the model ----------------------------------------------------------------------------------------

class VideoVAEPlus(VAE):
    card = CARD
    config_class = VideoVAEPlusConfig

    def __init__(self, config: VideoVAEPlusConfig | dict[str, Any] | None = None):
        cfg = VideoVAEPlusConfig.from_dict(config)
        if len(cfg["temporal_conv_kernel"]) != 3:
            raise ValueError("temporal_conv_kernel is (k_t, k_h, k_w)")
        super().__init__(cfg)
        self.text = TextEmbedder(cfg["text_dim"], cfg["text_layers"], cfg["text_heads"], cfg["text_vocab"],
                                 cfg["text_max_tokens"]) if cfg["text"] else None
        self.encoder = Encoder2plus1D(cfg)
        self.decoder = Decoder2plus1D(cfg)
        self.temporal_encoder = TemporalEncoder(cfg)
        self.temporal_decoder = TemporalDecoder(cfg)

    # --- pieces ---------------------------------------------------------------------------------------
    def context(self, caption: Caption | Sequence[Caption], batch: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Caption tokens and validity mask for a batch, or None when the model has no text path."""
        if self.text is None:
            return None
        return self.text(as_caption_list(caption, batch))

    @staticmethod
    def _check(x: torch.Tensor, image: bool) -> None:
        t, h, w = x.shape[2:]
        if h % 8 or w % 8 or (not image and t % 4):
            raise ValueError(f"videovae-plus needs 4k frames (or 1 frame in image mode) and H, W multiples of 8, got "
                             f"{t}x{h}x{w}; use reconstruct() (it pads and crops) or vaelab.models.base.pad_to_rule")

    def _encode(self, x: torch.Tensor, ctx, image: bool, sample: bool) -> tuple[torch.Tensor, DiagonalGaussian]:
        self._check(x, image)
        post = DiagonalGaussian(self.encoder(x, not image, ctx))
        z = post.sample() if sample else post.mode()
        if image:
            return z, post
        post = DiagonalGaussian(self.temporal_encoder(z, ctx))
        return (post.sample() if sample else post.mode()), post

    def _decode(self, z: torch.Tensor, ctx, image: bool) -> torch.Tensor:
        if not image:
            z = self.temporal_decoder(z, ctx)
        return self.decoder(z, not image, ctx)

    # --- VAE contract ---------------------------------------------------------------------------------
    def encode(self, x_bcthw: torch.Tensor, caption: Caption | Sequence[Caption] = None,
               image: bool | None = None) -> Latent:
        """(B, 3, 4k, H, W) -> (B, 4, k, H/8, W/8); a 1-frame input (or ``image=True``) uses image mode:
        (B, 3, 1, H, W) -> (B, 4, 1, H/8, W/8) through the spatial path only. Posterior means."""
        image = x_bcthw.shape[2] == 1 if image is None else image
        if image and x_bcthw.shape[2] != 1:
            b, t = x_bcthw.shape[0], x_bcthw.shape[2]
            z = self.encode(_fold(x_bcthw), _repeat_caps(caption, b, t), image=True)
            return z.with_main(_unfold(z.main, b, t))
        return Latent(self._encode(x_bcthw, self.context(caption, x_bcthw.shape[0]), image, sample=False)[0])

    def decode(self, z: Latent, caption: Caption | Sequence[Caption] = None, image: bool = False) -> torch.Tensor:
        """main (B, 4, k, h, w) -> (B, 3, 4k, 8h, 8w); ``image=True``: every latent frame is an image latent
        (B, 4, T, h, w) -> (B, 3, T, 8h, 8w) through the spatial decoder only."""
        b, _, t = z.main.shape[:3]
        if image and t != 1:
            return _unfold(self.decode(z.with_main(_fold(z.main)), _repeat_caps(caption, b, t), image=True), b, t)
        return self._decode(z.main, self.context(caption, b), image)

    @torch.no_grad()
    def reconstruct(self, x_bcthw: torch.Tensor, caption: Caption | Sequence[Caption] = None) -> torch.Tensor:
        """Same shape as x. One frame: image mode (spatial padding only); otherwise pad to 4k frames."""
        image = x_bcthw.shape[2] == 1
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, 8, "any" if image else "4k")
        z = self.encode(x_pad, caption, image=image)
        return self.decode(z, caption, image=image)[:, :, :t, :h, :w].clamp(-1, 1)

    def forward(self, x_bcthw: torch.Tensor, caption: Caption | Sequence[Caption] = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training: both posteriors sampled; losses "kl" (weighted, normalised per input value) and the extra
        "_image_mode" (1.0 when the step coded frames as images: a 1-frame batch, or the joint-image draw).
        Captions: as in ``encode``; while training each is dropped to None with ``caption_dropout``."""
        b, _, t0 = x_bcthw.shape[:3]
        caps = as_caption_list(caption, b)
        if self.training and self.config["caption_dropout"] > 0:
            drop = torch.rand(b) < self.config["caption_dropout"]
            caps = [None if d else c for c, d in zip(caps, drop.tolist())]
        image = t0 == 1 or (self.training and float(torch.rand(())) < self.config["joint_image_prob"])
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, 8, "any" if image else "4k")
        tp = x_pad.shape[2]
        x_in = _fold(x_pad) if image and tp > 1 else x_pad
        caps_in = _repeat_caps(caps, b, tp) if image and tp > 1 else caps
        ctx = self.context(caps_in, x_in.shape[0])
        z, post = self._encode(x_in, ctx, image, sample=True)
        recon = self._decode(z, ctx, image)
        if image and tp > 1:
            recon = _unfold(recon, b, tp)
        per_sample = 3 * x_in.shape[2] * x_pad.shape[3] * x_pad.shape[4]
        kl = self.config["kl_weight"] * post.kl().mean() / per_sample
        return recon[:, :, :t, :h, :w], {"kl": kl, "_image_mode": torch.tensor(float(image))}

    # --- independent chunks (the repo's inference script) -------------------------------------------------
    def encode_chunked(self, x_bcthw: torch.Tensor, chunk: int = 16, caption: Caption | Sequence[Caption] = None
                       ) -> Latent:
        """Encode non-overlapping chunks of ``chunk`` frames (a multiple of 4) independently and concatenate."""
        if chunk < 4 or chunk % 4:
            raise ValueError(f"chunk must be a positive multiple of 4, got {chunk}")
        self._check(x_bcthw, image=False)
        return Latent.cat([self.encode(x_bcthw[:, :, s:s + chunk], caption, image=False)
                           for s in range(0, x_bcthw.shape[2], chunk)])

    def decode_chunked(self, z: Latent, chunk_latents: int = 4, caption: Caption | Sequence[Caption] = None
                       ) -> torch.Tensor:
        """Decode non-overlapping chunks of ``chunk_latents`` latent frames independently and concatenate."""
        if chunk_latents < 1:
            raise ValueError("chunk_latents must be >= 1")
        return torch.cat([self.decode(z.time_slice(s, s + chunk_latents), caption)
                          for s in range(0, z.main.shape[2], chunk_latents)], 2)

    @torch.no_grad()
    def reconstruct_chunked(self, x_bcthw: torch.Tensor, chunk: int = 16,
                            caption: Caption | Sequence[Caption] = None) -> torch.Tensor:
        """``reconstruct`` in independent chunks of ``chunk`` frames (pads to 4k first): boundaries flicker."""
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, 8, "4k")
        z = self.encode_chunked(x_pad, chunk, caption)
        return self.decode_chunked(z, chunk // 4, caption)[:, :, :t, :h, :w].clamp(-1, 1)


def _fold(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, 1, H, W): every frame an image (a one-frame clip)."""
    return fold_time(x).unsqueeze(2)


def _unfold(x: torch.Tensor, b: int, t: int) -> torch.Tensor:
    """(B*T, C, 1, H, W) -> (B, C, T, H, W)."""
    return unfold_time(x.squeeze(2), b, t)


def _repeat_caps(caption: Caption | Sequence[Caption], b: int, t: int) -> list[Caption]:
    """Per-sample captions repeated for every frame of that sample (sample-major, as ``_fold``)."""
    return [c for c in as_caption_list(caption, b) for _ in range(t)]



# =====================================================================================================
# The released VideoVAE+ (VideoVerses/VideoVAEPlus, ``AutoencoderKL2plus1D_1dcnn``) at its own key names.
#
# The lab model above is a reduced design (per-frame GroupNorm, 3x1x1 temporal convs, its own text
# embedder), so the released checkpoints get a sibling class with the reference's module tree and state-dict
# names (``encoder.down.{i}.block.{j}.conv1_tmp.conv``, ``encoder_temporal.mid_blocks.{i}.down.conv``, ...).
# Every layer below follows the reference's arithmetic, including its quirks: GroupNorm(32, eps 1e-6) pooled
# over (C/32, T, H, W) of the whole clip, temporal convs 3x3x3 zero-padded in time, a mid-block temporal
# attention whose relative-position term on the keys is indexed (s, t) not (t, s), and the temporal AE's
# replicate "same" padding. Nothing is zero-initialised and nothing loads with strict=False: a checkpoint must
# provide every tensor (``load_weights`` names what does not fit).
# =====================================================================================================

RELEASED_SOURCE = "VideoVerses/VideoVAEPlus (commit c829d91), src/models/autoencoder2plus1d_1dcnn.py + autoencoder_temporal.py"
RELEASED_LICENCE = ("weights: CC BY-NC-ND 4.0 (non-commercial use only, no derivatives: do not redistribute "
                    "modified or fine-tuned versions); code: see the reference repository")
RELEASED_FILES = {  # README "Pretrained Models" (Google Drive) -> latent channels, text
    "sota-4z": (4, False), "sota-4z-text": (4, True), "sota-16z": (16, False), "sota-16z-text": (16, True)}
T5_NOTE = ("text variant: its cross-attention layers expect google/flan-t5-large token embeddings (B, N, 1024) and "
           "mask (B, N), which VAE Lab cannot download: supply them (encode/decode text_embeddings=, text_mask=) or set "
           "model.text to a callable captions -> (embeddings, mask); without them the cross-attention layers are "
           "skipped, which is NOT the reference (it always conditions on a T5 embedding, of '' when no caption)")


@dataclass(frozen=True)
class ReleasedConfig(ModelConfig):
    """The reference constructor's architecture arguments (``ddconfig`` / ``ppconfig`` of the inference yamls).

    Defaults: ``configs/inference/config_16z.yaml`` (sota-16z). ``cross_levels``: spatial levels whose ResNets are
    followed by caption cross-attention (``attn_resolutions`` [27, 54, 108, 216] at resolution 216 = every level);
    ``temporal_cross_factors``: the temporal AE's ``attn_temporal_factor``."""

    family: ClassVar[str] = "videovae-plus (released)"

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 16
    embed_dim: int = 0  # 0: no quant convs (16z); 4z: quant_conv 2z -> 2e, post_quant_conv e -> z
    in_channels: int = 3
    out_channels: int = 3
    temporal_in: int = 16  # ppconfig ch: channels of the spatial latent (embed_dim or z_channels)
    temporal_out: int = 16  # ppconfig out_ch: channels of the final latent
    temporal_hidden: int = 128
    temporal_downs: int = 2  # log2(temporal_scale_factor)
    temporal_heads: int = 1
    max_relative_position: int = 64
    cross_levels: tuple[int, ...] = ()
    temporal_cross_factors: tuple[int, ...] = ()
    context_dim: int = 1024
    cross_heads: int = 8
    cross_head_dim: int = 64

    @property
    def text(self) -> bool:
        return bool(self.cross_levels or self.temporal_cross_factors)

    @property
    def latent_channels(self) -> int:
        return self.temporal_out


RELEASED_CONFIGS = {
    "sota-16z": ReleasedConfig(),
    "sota-16z-text": ReleasedConfig(cross_levels=(0, 1, 2, 3), temporal_cross_factors=(2, 4)),
    "sota-4z": ReleasedConfig(z_channels=4, embed_dim=4, temporal_in=4, temporal_out=4),
    "sota-4z-text": ReleasedConfig(z_channels=4, embed_dim=4, temporal_in=4, temporal_out=4,
                                   cross_levels=(0, 1, 2, 3), temporal_cross_factors=(2, 4)),
}


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class RTemporalConvLayer(nn.Module):
    """GroupNorm -> SiLU -> Conv3d 3x3x3 (zero padding): (B, C, T, H, W) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.conv = nn.Conv3d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.silu(self.norm(x)))


class RResnetBlock2plus1D(nn.Module):
    """Spatial 1x3x3 convs, each followed by a residual temporal conv layer; the 1x1x1 skip projection too.
    ``conv3_tmp`` exists in every block (the reference builds it unconditionally) and runs only with a projection."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.norm1 = _norm(in_ch)
        self.conv1 = nn.Conv3d(in_ch, out_ch, (1, 3, 3), padding=(0, 1, 1))
        self.conv1_tmp = RTemporalConvLayer(out_ch)
        self.norm2 = _norm(out_ch)
        self.conv2 = nn.Conv3d(out_ch, out_ch, (1, 3, 3), padding=(0, 1, 1))
        self.conv2_tmp = RTemporalConvLayer(out_ch)
        if in_ch != out_ch:
            self.nin_shortcut = nn.Conv3d(in_ch, out_ch, 1)
        self.conv3_tmp = RTemporalConvLayer(out_ch)

    def forward(self, x: torch.Tensor, temporal: bool = True) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if temporal:
            h = self.conv1_tmp(h) + h
        h = self.conv2(F.silu(self.norm2(h)))
        if temporal:
            h = self.conv2_tmp(h) + h
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
            if temporal:
                x = self.conv3_tmp(x) + x
        return x + h


class RAttnBlock3D(nn.Module):
    """Single-head spatial self-attention inside each frame (1x1x1 conv projections, clip-wide GroupNorm)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv3d(channels, channels, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, h, _ = x.shape
        n = self.norm(x)
        q, k, v = (rearrange(f(n), "b c t h w -> (b t) (h w) c") for f in (self.q, self.k, self.v))
        attn = torch.softmax(q @ k.transpose(1, 2) * c ** -0.5, dim=-1)
        out = rearrange(attn @ v, "(b t) (h w) c -> b c t h w", b=b, h=h)
        return x + self.proj_out(out)


class RRelativePosition(nn.Module):
    def __init__(self, units: int, max_relative: int):
        super().__init__()
        self.max_relative = max_relative
        self.embeddings_table = nn.Parameter(torch.zeros(2 * max_relative + 1, units))

    def forward(self, n: int) -> torch.Tensor:
        """(n, n, units): row i, column j holds the embedding of the clipped distance j - i."""
        pos = torch.arange(n, device=self.embeddings_table.device)
        rel = (pos[None, :] - pos[:, None]).clamp(-self.max_relative, self.max_relative) + self.max_relative
        return self.embeddings_table[rel]


class RTemporalAttention(nn.Module):
    """Self-attention over T at every pixel with relative positions (the reference's QKVAttention):
    logits[t, s] = q_t.k_s / sqrt(d) + d^-1/4 q_s.Rk[s, t]; out_t = sum_s a[t, s] (v_s + Rv[t, s])."""

    def __init__(self, channels: int, heads: int, max_relative: int):
        super().__init__()
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.relative_position_k = RRelativePosition(channels // heads, max_relative)
        self.relative_position_v = RRelativePosition(channels // heads, max_relative)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        seq = rearrange(x, "b c t h w -> (b h w) c t")
        q, k, v = self.qkv(self.norm(seq).float().to(seq.dtype)).chunk(3, dim=1)
        d = c // self.heads
        scale = d ** -0.25
        q, k, v = (a.reshape(-1, d, t) for a in (q * scale, k * scale, v))  # (N*heads, d, T)
        rk, rv = self.relative_position_k(t), self.relative_position_v(t)  # (T, T, d)
        logits = torch.einsum("nct,ncs->nts", q, k) + torch.einsum("nct,tsc->nst", q, rk)
        attn = torch.softmax(logits.float(), dim=-1).to(logits.dtype)
        out = torch.einsum("nts,ncs->nct", attn, v) + torch.einsum("nts,tsc->ntc", attn, rv).transpose(1, 2)
        out = self.proj_out(out.reshape(-1, c, t))
        return x + rearrange(out, "(b h w) c t -> b c t h w", b=b, h=h, w=w)


class RCrossAttention(nn.Module):
    """Caption cross-attention on p x p patches: (B, C, T, H, W), context (B, N, context_dim) -> update (same shape).
    Pre-LN on the patch vectors, 8 heads x 64, no bias on q/k/v; masked tokens get -max before the softmax."""

    def __init__(self, channels: int, patch: int, context_dim: int, heads: int, head_dim: int):
        super().__init__()
        self.patch, self.heads, self.scale = patch, heads, head_dim ** -0.5
        pdim, inner = channels * patch * patch, heads * head_dim
        self.norm = nn.LayerNorm(pdim)
        self.to_q = nn.Linear(pdim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, pdim))

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, _, t, hh, ww = x.shape
        p = self.patch
        if hh % p or ww % p:
            raise ValueError(f"feature map {hh}x{ww} does not split into {p}x{p} patches")
        tok = self.norm(rearrange(x, "b c t (gh ph) (gw pw) -> (b t) (gh gw) (ph pw c)", ph=p, pw=p))
        ctx = repeat(context.to(tok.dtype), "b n d -> (b t) n d", t=t)
        q, k, v = (rearrange(a, "n l (h d) -> (n h) l d", h=self.heads)
                   for a in (self.to_q(tok), self.to_k(ctx), self.to_v(ctx)))
        sim = q @ k.transpose(1, 2) * self.scale
        if mask is not None:
            keep = repeat(mask.reshape(b, -1), "b j -> (b t h) () j", t=t, h=self.heads) > 0.5
            sim = sim.masked_fill(~keep, -torch.finfo(sim.dtype).max)
        out = rearrange(sim.softmax(-1) @ v, "(n h) l d -> n l (h d)", h=self.heads)
        return rearrange(self.to_out(out), "(b t) (gh gw) (ph pw c) -> b c t (gh ph) (gw pw)",
                         b=b, t=t, gh=hh // p, ph=p, pw=p)


def _cross_r(cfg: ReleasedConfig, channels: int, patch: int) -> RCrossAttention:
    return RCrossAttention(channels, patch, cfg.context_dim, cfg.cross_heads, cfg.cross_head_dim)


Context = tuple[torch.Tensor, torch.Tensor | None] | None


class RMid(nn.Module):
    def __init__(self, cfg: ReleasedConfig, channels: int):
        super().__init__()
        self.block_1 = RResnetBlock2plus1D(channels, channels)
        self.attn_1 = RAttnBlock3D(channels)
        self.attn_1_tmp = RTemporalAttention(channels, cfg.temporal_heads, cfg.max_relative_position)
        self.block_2 = RResnetBlock2plus1D(channels, channels)

    def forward(self, h: torch.Tensor, temporal: bool) -> torch.Tensor:
        h = self.attn_1(self.block_1(h, temporal))
        return self.block_2(self.attn_1_tmp(h) if temporal else h, temporal)


def _blocks_with_attention(level: nn.Module, h: torch.Tensor, ctx: Context, temporal: bool) -> torch.Tensor:
    for i, block in enumerate(level.block):
        h = block(h, temporal)
        if len(level.attn) and ctx is not None:
            h = h + level.attn[i](h, *ctx)
    return h


class REncoder2plus1D(nn.Module):
    """x (B, 3, T, H, W) -> moments (B, 2 z, T, H/2^(L-1), W/2^(L-1))."""

    def __init__(self, cfg: ReleasedConfig):
        super().__init__()
        chs = [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv3d(cfg.in_channels, cfg.ch, (1, 3, 3), padding=(0, 1, 1))
        self.down = nn.ModuleList()
        block_in, patch = cfg.ch, 8  # the reference starts its patch size at 8 whatever the depth
        for i, out in enumerate(chs):
            level = nn.Module()
            level.block = nn.ModuleList(RResnetBlock2plus1D(block_in if j == 0 else out, out)
                                        for j in range(cfg.num_res_blocks))
            level.attn = nn.ModuleList(_cross_r(cfg, out, patch) for _ in range(cfg.num_res_blocks)
                                       if i in cfg.cross_levels)
            if i != len(chs) - 1:
                level.downsample = nn.Module()
                level.downsample.conv = nn.Conv3d(out, out, (1, 3, 3), stride=(1, 2, 2))
                patch //= 2
            block_in = out
            self.down.append(level)
        self.mid = RMid(cfg, block_in)
        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv3d(block_in, 2 * cfg.z_channels, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor, ctx: Context, temporal: bool = True) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = _blocks_with_attention(level, h, ctx, temporal)
            if hasattr(level, "downsample"):
                h = level.downsample.conv(F.pad(h, (0, 1, 0, 1, 0, 0)))  # asymmetric pad, as the LDM encoder
        return self.conv_out(F.silu(self.norm_out(self.mid(h, temporal))))


class RDecoder2plus1D(nn.Module):
    """z (B, z, T, h, w) -> (B, 3, T, h 2^(L-1), w 2^(L-1)); levels stored in ``up`` low index = high resolution."""

    def __init__(self, cfg: ReleasedConfig):
        super().__init__()
        chs = [cfg.ch * m for m in cfg.ch_mult]
        n = len(chs)
        block_in = chs[-1]
        self.conv_in = nn.Conv3d(cfg.z_channels, block_in, (1, 3, 3), padding=(0, 1, 1))
        self.mid = RMid(cfg, block_in)
        levels: list[nn.Module] = []
        patch = 1
        for i in reversed(range(n)):
            level = nn.Module()
            level.block = nn.ModuleList(RResnetBlock2plus1D(block_in if j == 0 else chs[i], chs[i])
                                        for j in range(cfg.num_res_blocks + 1))
            level.attn = nn.ModuleList(_cross_r(cfg, chs[i], patch) for _ in range(cfg.num_res_blocks + 1)
                                       if i in cfg.cross_levels)
            if i != 0:
                level.upsample = nn.Module()
                level.upsample.conv = nn.Conv3d(chs[i], chs[i], (1, 3, 3), padding=(0, 1, 1))
                patch *= 2
            block_in = chs[i]
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv3d(block_in, cfg.out_channels, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, z: torch.Tensor, ctx: Context, temporal: bool = True) -> torch.Tensor:
        h = self.mid(self.conv_in(z), temporal)
        for level in reversed(self.up):
            h = _blocks_with_attention(level, h, ctx, temporal)
            if hasattr(level, "upsample"):
                h = level.upsample.conv(upsample_nearest_2x(h))
        return self.conv_out(F.silu(self.norm_out(h)))


class RSamePadConv3d(nn.Module):
    """Conv3d with TF-style "same" replicate padding (front gets the odd pixel): the reference's SamePadConv3d."""

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        pads = [(3 - s) // 2 + (3 - s) % 2 for s in stride], [(3 - s) // 2 for s in stride]
        self.pad = tuple(p for d in reversed(range(3)) for p in (pads[0][d], pads[1][d]))
        self.conv = nn.Conv3d(in_ch, out_ch, 3, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad, mode="replicate"))


class RResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(channels), RSamePadConv3d(channels, channels)
        self.norm2, self.conv2 = _norm(channels), RSamePadConv3d(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


class REncoderTemporal1DCNN(nn.Module):
    """(B, C, T, h, w) -> moments (B, 2 C', T / 2^downs, h, w): replicate-padded 3D convs, stride 2 in time."""

    def __init__(self, cfg: ReleasedConfig):
        super().__init__()
        hid = cfg.temporal_hidden
        self.conv_in = RSamePadConv3d(cfg.temporal_in, hid)
        self.mid_blocks = nn.ModuleList()
        for i in range(cfg.temporal_downs):
            blk = nn.Module()
            blk.down = RSamePadConv3d(hid * 2 ** i, hid * 2 ** (i + 1), stride=(2, 1, 1))
            blk.res = RResBlock(hid * 2 ** (i + 1))
            blk.attn = nn.ModuleList([_cross_r(cfg, hid * 2 ** (i + 1), 1)] if 2 ** (i + 1) in
                                     cfg.temporal_cross_factors else [])
            self.mid_blocks.append(blk)
        top = hid * 2 ** cfg.temporal_downs
        self.final_block = nn.Sequential(_norm(top), nn.SiLU(), RSamePadConv3d(top, 2 * cfg.temporal_out))

    def forward(self, z: torch.Tensor, ctx: Context) -> torch.Tensor:
        h = self.conv_in(z)
        for blk in self.mid_blocks:
            h = blk.res(blk.down(h))
            if len(blk.attn) and ctx is not None:
                h = blk.attn[0](h, *ctx) + h
        return self.final_block(h)


class RDecoderTemporal1DCNN(nn.Module):
    """(B, C', k, h, w) -> (B, C, k 2^downs, h, w): transposed convs stride 2 in time, two ResBlocks each."""

    def __init__(self, cfg: ReleasedConfig):
        super().__init__()
        hid, n = cfg.temporal_hidden, cfg.temporal_downs
        self.conv_in = RSamePadConv3d(cfg.temporal_in, hid * 2 ** n)
        self.mid_blocks = nn.ModuleList()
        for i in range(n):
            c_in, c_out = hid * 2 ** (n if i == 0 else n - i + 1), hid * 2 ** (n - i)
            with_text = 2 ** (n - i) in cfg.temporal_cross_factors
            blk = nn.Module()
            blk.up = nn.ConvTranspose3d(c_in, c_out, 3, stride=(2, 1, 1), padding=1, output_padding=(1, 0, 0))
            blk.res1 = RResBlock(c_out)
            blk.attn1 = nn.ModuleList([_cross_r(cfg, c_out, 1)] if with_text else [])
            blk.res2 = RResBlock(c_out)
            blk.attn2 = nn.ModuleList([_cross_r(cfg, c_out, 1)] if with_text else [])
            self.mid_blocks.append(blk)
        self.conv_last = RSamePadConv3d(hid * 2, cfg.temporal_out)

    def forward(self, z: torch.Tensor, ctx: Context) -> torch.Tensor:
        h = self.conv_in(z)
        for blk in self.mid_blocks:
            h = blk.res1(blk.up(h))
            if len(blk.attn1) and ctx is not None:
                h = blk.attn1[0](h, *ctx) + h
            h = blk.res2(h)
            if len(blk.attn2) and ctx is not None:
                h = blk.attn2[0](h, *ctx) + h
        return self.conv_last(h)


class ReleasedVideoVAEPlus(VAE):
    """The released VideoVAE+ (``AutoencoderKL2plus1D_1dcnn``) with the reference's module tree and key names.

    x (B, 3, 4k, H, W), H, W multiples of 2^(L-1) (8 for the released 4 levels)
      -> ``encoder`` (2+1D) -> [``quant_conv``] -> posterior mode (B, e, 4k, H/8, W/8)
      -> ``encoder_temporal`` -> posterior mode z (B, C, k, H/8, W/8)          (C = 16 or 4)
    ``decode`` mirrors it. A 1-frame input (or ``image=True``) is the reference's ``mask_temporal`` image mode:
    every temporal layer and the temporal AE are skipped. Deterministic: posterior modes, never samples.
    Text variants: see ``T5_NOTE``; ``model.text`` may be set to a callable captions -> (embeddings, mask).
    """

    card = dataclasses.replace(CARD, family="VideoVAE+ (released)")

    def __init__(self, config: ReleasedConfig | dict[str, Any] | None = None):
        cfg = ReleasedConfig.from_dict(config)
        if cfg.temporal_downs < 1 or cfg.temporal_in != cfg.temporal_out:
            raise ValueError("the reference temporal AE needs temporal_downs >= 1 and ch == out_ch")
        if cfg.temporal_in != (cfg.embed_dim or cfg.z_channels):
            raise ValueError(f"temporal AE input {cfg.temporal_in} != spatial latent {cfg.embed_dim or cfg.z_channels}")
        super().__init__(dataclasses.asdict(cfg))
        self.released = cfg
        self.card = dataclasses.replace(
            type(self).card, spatial_factor=2 ** (len(cfg.ch_mult) - 1), temporal_factor=2 ** cfg.temporal_downs,
            latent_channels=cfg.latent_channels, frame_rule=f"{2 ** cfg.temporal_downs}k")
        self.text = None  # captions -> (embeddings, mask): the user's Flan-T5-large (see T5_NOTE)
        self.encoder = REncoder2plus1D(cfg)
        self.decoder = RDecoder2plus1D(cfg)
        if cfg.embed_dim:
            self.quant_conv = nn.Conv3d(2 * cfg.z_channels, 2 * cfg.embed_dim, 1)
            self.post_quant_conv = nn.Conv3d(cfg.embed_dim, cfg.z_channels, 1)
        self.encoder_temporal = REncoderTemporal1DCNN(cfg)
        self.decoder_temporal = RDecoderTemporal1DCNN(cfg)

    def context(self, caption: Caption | Sequence[Caption], batch: int, text_embeddings: torch.Tensor | None,
                text_mask: torch.Tensor | None) -> Context:
        """(embeddings (B, N, context_dim), mask (B, N) or None) for the cross-attention layers, or None (skip)."""
        if not self.released.text:
            return None
        if text_embeddings is not None:
            if text_embeddings.ndim != 3 or text_embeddings.shape[-1] != self.released.context_dim:
                raise ValueError(f"text_embeddings must be (B, N, {self.released.context_dim}) Flan-T5-large tokens, "
                                 f"got {tuple(text_embeddings.shape)}")
            return text_embeddings, text_mask
        caps = as_caption_list(caption, batch)
        if all(c is None for c in caps):
            return None
        if self.text is None:
            raise ValueError("this VideoVAE+ text checkpoint reads captions through google/flan-t5-large, which is "
                             "not available here: pass text_embeddings= or set model.text, or use no caption")
        return self.text(caps)

    def _check(self, x: torch.Tensor, image: bool) -> None:
        t, h, w = x.shape[2:]
        f, ft = self.card.spatial_factor, self.card.temporal_factor
        if h % f or w % f or (not image and t % ft):
            raise ValueError(f"released videovae-plus needs {ft}k frames (or 1 frame) and H, W multiples of {f}, got "
                             f"{t}x{h}x{w}; use reconstruct() (it pads and crops)")

    def encode(self, x_bcthw: torch.Tensor, caption: Caption | Sequence[Caption] = None, image: bool | None = None,
               text_embeddings: torch.Tensor | None = None, text_mask: torch.Tensor | None = None) -> Latent:
        """(B, 3, 4k, H, W) -> (B, C, k, H/8, W/8) posterior modes; 1 frame: (B, e, 1, H/8, W/8) image mode."""
        image = x_bcthw.shape[2] == 1 if image is None else image
        self._check(x_bcthw, image)
        ctx = self.context(caption, x_bcthw.shape[0], text_embeddings, text_mask)
        h = self.encoder(x_bcthw, ctx, temporal=not image)
        if self.released.embed_dim:
            h = self.quant_conv(h)
        z = h.chunk(2, dim=1)[0]
        if image:
            return Latent(z)
        return Latent(self.encoder_temporal(z, ctx).chunk(2, dim=1)[0])

    def decode(self, z: Latent, caption: Caption | Sequence[Caption] = None, image: bool = False,
               text_embeddings: torch.Tensor | None = None, text_mask: torch.Tensor | None = None) -> torch.Tensor:
        """main (B, C, k, h, w) -> (B, 3, 4k, 8h, 8w); ``image=True``: (B, e, 1, h, w) -> (B, 3, 1, 8h, 8w)."""
        z = z.main
        ctx = self.context(caption, z.shape[0], text_embeddings, text_mask)
        if not image:
            z = self.decoder_temporal(z, ctx)
        if self.released.embed_dim:
            z = self.post_quant_conv(z)
        return self.decoder(z, ctx, temporal=not image)

    @torch.no_grad()
    def reconstruct(self, x_bcthw: torch.Tensor, caption: Caption | Sequence[Caption] = None) -> torch.Tensor:
        """Same shape as x: 1 frame in image mode, else replicate-padded to 4k frames (and 8 px), cropped back."""
        image = x_bcthw.shape[2] == 1
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, self.card.spatial_factor, "any" if image else self.card.frame_rule)
        return self.decode(self.encode(x_pad, caption, image=image), caption, image=image)[:, :, :t, :h, :w].clamp(-1, 1)

    def forward(self, x_bcthw: torch.Tensor, caption: Caption | Sequence[Caption] = None):
        raise NotImplementedError("released checkpoints are for inference here; train the lab videovae-plus instead")

    def encode_chunked(self, x_bcthw: torch.Tensor, chunk: int = 16, caption: Caption | Sequence[Caption] = None
                       ) -> Latent:
        """Independent chunks of ``chunk`` frames, as the reference's inference_video.py (no overlap, no cache)."""
        if chunk < 4 or chunk % 4:
            raise ValueError(f"chunk must be a positive multiple of 4, got {chunk}")
        return Latent.cat([self.encode(x_bcthw[:, :, s:s + chunk], caption, image=False)
                           for s in range(0, x_bcthw.shape[2], chunk)])

    def decode_chunked(self, z: Latent, chunk_latents: int = 4, caption: Caption | Sequence[Caption] = None
                       ) -> torch.Tensor:
        return torch.cat([self.decode(z.time_slice(s, s + chunk_latents), caption)
                          for s in range(0, z.main.shape[2], max(1, chunk_latents))], 2)

    @torch.no_grad()
    def reconstruct_chunked(self, x_bcthw: torch.Tensor, chunk: int = 16,
                            caption: Caption | Sequence[Caption] = None) -> torch.Tensor:
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, self.card.spatial_factor, self.card.frame_rule)
        z = self.encode_chunked(x_pad, chunk, caption)
        return self.decode_chunked(z, chunk // 4, caption)[:, :, :t, :h, :w].clamp(-1, 1)


# --- reading a released checkpoint ---------------------------------------------------------------------

RELEASED_MARKERS = ("encoder_temporal.conv_in.conv.weight", "encoder.down.0.block.0.conv1_tmp.conv.weight")


def is_released_state(state: dict[str, torch.Tensor]) -> bool:
    return all(k in state for k in RELEASED_MARKERS)


def _need(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        from .base import WeightsError

        raise WeightsError(f"released videovae-plus checkpoint has no {key}")
    return state[key]


def released_config_from_state(state: dict[str, torch.Tensor]) -> ReleasedConfig:
    """The architecture the tensors were built with (any width/depth the reference constructor accepts)."""
    ch = int(_need(state, "encoder.conv_in.weight").shape[0])
    mults, i = [], 0
    while f"encoder.down.{i}.block.0.conv1.weight" in state:
        mults.append(int(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0]) // ch)
        i += 1
    blocks = 0
    while f"encoder.down.0.block.{blocks}.conv1.weight" in state:
        blocks += 1
    z = int(_need(state, "encoder.conv_out.weight").shape[0]) // 2
    embed = int(state["quant_conv.weight"].shape[0]) // 2 if "quant_conv.weight" in state else 0
    hid = int(_need(state, "encoder_temporal.conv_in.conv.weight").shape[0])
    downs = 0
    while f"encoder_temporal.mid_blocks.{downs}.down.conv.weight" in state:
        downs += 1
    table = _need(state, "encoder.mid.attn_1_tmp.relative_position_k.embeddings_table")
    top = ch * mults[-1] if mults else ch
    cross = tuple(i for i in range(len(mults)) if f"encoder.down.{i}.attn.0.to_q.weight" in state)
    tcross = tuple(2 ** (i + 1) for i in range(downs) if f"encoder_temporal.mid_blocks.{i}.attn.0.to_q.weight" in state)
    ctx_key = next((k for k in state if k.endswith(".to_k.weight")), None)
    inner = int(state[ctx_key].shape[0]) if ctx_key else 512
    return ReleasedConfig(
        ch=ch, ch_mult=tuple(mults), num_res_blocks=blocks, z_channels=z, embed_dim=embed,
        in_channels=int(state["encoder.conv_in.weight"].shape[1]),
        out_channels=int(_need(state, "decoder.conv_out.weight").shape[0]),
        temporal_in=int(state["encoder_temporal.conv_in.conv.weight"].shape[1]),
        temporal_out=int(_need(state, "encoder_temporal.final_block.2.conv.weight").shape[0]) // 2,
        temporal_hidden=hid, temporal_downs=downs, temporal_heads=max(1, top // int(table.shape[1])),
        max_relative_position=(int(table.shape[0]) - 1) // 2, cross_levels=cross, temporal_cross_factors=tcross,
        context_dim=int(state[ctx_key].shape[1]) if ctx_key else 1024, cross_heads=8, cross_head_dim=inner // 8)


def released_name(cfg: ReleasedConfig) -> str | None:
    """Which README checkpoint this architecture is (None: a custom/reduced one)."""
    return next((n for n, c in RELEASED_CONFIGS.items() if c == cfg), None)


# measured by scripts/released_cpu_cost.py (random weights, fp32, one reconstruct, 2 threads on a shared 2-core
# machine at load average ~35, so times are upper bounds; docs/PERFORMANCE.md "Released checkpoints")
_COST_16Z = "sota-16z, 16 x 128 x 128, fp32: 614 s, peak RSS 3.3 GiB (2 shared CPU threads)"
CPU_COST: dict[str, str] = {"sota-16z": _COST_16Z, **{n: _COST_16Z + "; this variant shares its trunk, not measured "
                                                      "separately" for n in ("sota-4z", "sota-16z-text", "sota-4z-text")}}


def load_released(state: dict[str, torch.Tensor]) -> tuple[ReleasedVideoVAEPlus, list[str]]:
    """A released checkpoint's state dict (Lightning ``state_dict``, ``loss.*`` dropped) -> model, notes."""
    from .base import WeightsError
    from .weights import load_weights

    state = {k: v for k, v in state.items() if not k.startswith("loss.")}
    try:
        cfg = released_config_from_state(state)
        model = ReleasedVideoVAEPlus(cfg)
    except WeightsError:
        raise
    except (ValueError, KeyError, ZeroDivisionError, IndexError) as e:
        raise WeightsError(f"released videovae-plus checkpoint has an architecture the reference cannot build: {e}") from None
    load_weights(model, state)
    name = released_name(cfg)
    notes = [(f"released VideoVAE+ architecture ({name or 'custom widths, read off the tensor shapes'}): "
              f"{cfg.latent_channels} latent channels, {'with' if cfg.text else 'without'} text cross-attention"),
             "licence: " + RELEASED_LICENCE]
    if cfg.text:
        notes.append(T5_NOTE)
    model.card = dataclasses.replace(model.card, weights=released_weights_text(name, cfg))
    return model, notes


def released_weights_text(name: str | None, cfg: ReleasedConfig) -> str:
    what = f"released checkpoint {name}.ckpt" if name else "released-architecture checkpoint (custom widths)"
    parts = [f"{what} from {RELEASED_SOURCE} (README: Google Drive .ckpt; community .safetensors load the same way)",
             "licence: " + RELEASED_LICENCE, "loads exactly (parity-tested against the reference code)"]
    if name and name in CPU_COST:
        parts.append("CPU cost at full size: " + CPU_COST[name])
    if cfg.text:
        parts.append(T5_NOTE)
    return "; ".join(parts)
