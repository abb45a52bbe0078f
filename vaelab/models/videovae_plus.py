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

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import Conv3d, DiagonalGaussian, Downsample2D, Upsample2D, _groups
from ._text import Caption, TextEmbedder, as_caption_list
from .base import VAE, ModelCard, Paper, pad_to_rule
from .cv_vae import GroupNorm3D, SpatialAttention, per_frame

LAB_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [32, 48, 48, 48],  # stage 1 (spatial AE) widths per level (repo: 128 * [1, 2, 4, 4])
    "layers_per_block": 1,  # encoder ResNets per level; the decoder has one more
    "norm_num_groups": 8,
    "latent_channels": 4,
    "temporal_conv_kernel": [3, 1, 1],  # zero-initialised temporal convs in every ResNet (repo: [3, 3, 3])
    "temporal_heads": 1,
    "max_relative_position": 16,
    "temporal_hidden": 16,  # stage 2 (temporal AE) width: 16 -> 32 -> 64 (repo: 128 -> 256 -> 512)
    "text": True,
    "text_dim": 64,
    "text_layers": 2,
    "text_heads": 4,
    "text_vocab": 4096,
    "text_max_tokens": 32,
    "cross_heads": 4,
    "cross_head_dim": 16,
    "text_levels": [0, 1, 2, 3],  # stage-1 levels with caption cross-attention (encoder and decoder; repo: all)
    "text_temporal_factors": [2, 4],  # stage-2 blocks with caption cross-attention (repo: [2, 4])
    "caption_dropout": 0.1,  # training: share of captions replaced by None (learns the unconditional path)
    "joint_image_prob": 0.2,  # training: share of steps that code the batch's frames as images
    "kl_weight": 1e-6,
    "scaling_factor": 1.0,
}

CARD = ModelCard(
    name="videovae-plus",
    family="VideoVAE+",
    paper=Paper("Large Motion Video Autoencoding with Cross-modal Video VAE", "ICCV", 2025,
                "https://arxiv.org/abs/2412.17805"),
    kind="video",
    spatial_factor=8,
    temporal_factor=4,
    latent_channels=4,
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
        seq = self.norm(x.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c))
        q, k, v = self.qkv(seq).view(-1, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (N, h, T, d)
        pos = torch.arange(t, device=x.device)
        rel = (pos[None, :] - pos[:, None]).clamp(-self.max_relative, self.max_relative) + self.max_relative
        rk, rv = self.rel_k[rel], self.rel_v[rel]  # (T, T, d)
        logits = (q @ k.transpose(-1, -2) + torch.einsum("nhid,ijd->nhij", q, rk)) * q.shape[-1] ** -0.5
        attn = logits.float().softmax(-1).to(v.dtype)  # softmax in float32 under autocast (no-op in fp32)
        out = attn @ v + torch.einsum("nhij,ijd->nhid", attn, rv)
        out = self.proj_out(out.transpose(1, 2).reshape(-1, t, c))
        return x + out.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2)


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

    def __init__(self, config: dict[str, Any] | None = None):
        cfg = {**LAB_CONFIG, **(config or {})}
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
               image: bool | None = None) -> torch.Tensor:
        """(B, 3, 4k, H, W) -> (B, 4, k, H/8, W/8); a 1-frame input (or ``image=True``) uses image mode:
        (B, 3, 1, H, W) -> (B, 4, 1, H/8, W/8) through the spatial path only. Posterior means."""
        image = x_bcthw.shape[2] == 1 if image is None else image
        if image and x_bcthw.shape[2] != 1:
            b, t = x_bcthw.shape[0], x_bcthw.shape[2]
            z = self.encode(_fold(x_bcthw), _repeat_caps(caption, b, t), image=True)
            return _unfold(z, b, t)
        return self._encode(x_bcthw, self.context(caption, x_bcthw.shape[0]), image, sample=False)[0]

    def decode(self, z: torch.Tensor, caption: Caption | Sequence[Caption] = None, image: bool = False) -> torch.Tensor:
        """(B, 4, k, h, w) -> (B, 3, 4k, 8h, 8w); ``image=True``: every latent frame is an image latent
        (B, 4, T, h, w) -> (B, 3, T, 8h, 8w) through the spatial decoder only."""
        if image and z.shape[2] != 1:
            b, t = z.shape[0], z.shape[2]
            return _unfold(self.decode(_fold(z), _repeat_caps(caption, b, t), image=True), b, t)
        return self._decode(z, self.context(caption, z.shape[0]), image)

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
                       ) -> torch.Tensor:
        """Encode non-overlapping chunks of ``chunk`` frames (a multiple of 4) independently and concatenate."""
        if chunk < 4 or chunk % 4:
            raise ValueError(f"chunk must be a positive multiple of 4, got {chunk}")
        self._check(x_bcthw, image=False)
        return torch.cat([self.encode(x_bcthw[:, :, s:s + chunk], caption, image=False)
                          for s in range(0, x_bcthw.shape[2], chunk)], 2)

    def decode_chunked(self, z: torch.Tensor, chunk_latents: int = 4, caption: Caption | Sequence[Caption] = None
                       ) -> torch.Tensor:
        """Decode non-overlapping chunks of ``chunk_latents`` latent frames independently and concatenate."""
        if chunk_latents < 1:
            raise ValueError("chunk_latents must be >= 1")
        return torch.cat([self.decode(z[:, :, s:s + chunk_latents], caption)
                          for s in range(0, z.shape[2], chunk_latents)], 2)

    @torch.no_grad()
    def reconstruct_chunked(self, x_bcthw: torch.Tensor, chunk: int = 16,
                            caption: Caption | Sequence[Caption] = None) -> torch.Tensor:
        """``reconstruct`` in independent chunks of ``chunk`` frames (pads to 4k first): boundaries flicker."""
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, 8, "4k")
        z = self.encode_chunked(x_pad, chunk, caption)
        return self.decode_chunked(z, chunk // 4, caption)[:, :, :t, :h, :w].clamp(-1, 1)


def _fold(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, 1, H, W): every frame an image."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, 1, h, w)


def _unfold(x: torch.Tensor, b: int, t: int) -> torch.Tensor:
    """(B*T, C, 1, H, W) -> (B, C, T, H, W)."""
    return x.reshape(b, t, *x.shape[1:2], *x.shape[3:]).transpose(1, 2)


def _repeat_caps(caption: Caption | Sequence[Caption], b: int, t: int) -> list[Caption]:
    """Per-sample captions repeated for every frame of that sample (sample-major, as ``_fold``)."""
    return [c for c in as_caption_list(caption, b) for _ in range(t)]

