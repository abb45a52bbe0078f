"""CV-VAE (Zhao et al., "CV-VAE: A Compatible Video VAE for Latent Generative Video Models", NeurIPS 2024).

Text-to-image diffusion models already speak the SD image VAE's latent language. CV-VAE builds a
video VAE (4x in time, 8x in space) that speaks the *same* language, so those models can be
fine-tuned on truly time-compressed video latents. Two ingredients:

1. Inflation. The video VAE is SD's VAE with most 2D convs turned into 3D ones ("half-3D":
   in each ResNet conv1 becomes 3x3x3, conv2 stays a per-frame 2D conv) and the same parameter
   names. ``inflate_from_sd`` copies every 2D kernel into the temporal slice that sees the
   *current* frame (last slice of a causal conv, centre of a symmetric one) and zeros the rest;
   the time up-sampler (a conv with 2C outputs) gets the kernel in both halves. Right after
   inflation the stride-2 temporal down-samplers just pick frames 0, 2, 4, ..., so the video
   latent of frames 0, 4, 8, ... *is* the SD latent of those frames, and the decoder holds each
   latent for its group of 4 frames.
2. A latent regulariser through the frozen image decoder. ``forward`` decodes every video latent
   frame with the attached, frozen SD decoder and pulls it (L1) towards the matching input frame:
   frame 0 for latent 0 and, for latent j >= 1, a random frame of its group 4j-3 .. 4j (the
   paper's ``random`` target). Gradients reach only the 3D encoder, through z: the encoder is
   taught to keep emitting latents the image decoder can read while the 3D decoder learns motion.

Shapes (widths ``block_out_channels`` = SD's, L = 4 levels):

    x (B, 3, 1 + 4k, H, W)                                   H, W multiples of 8
      -> causal conv_in (3x3x3)
      -> per level: half-3D ResNet (causal conv1 3x3x3, per-frame conv2 3x3),
         down-sampler (causal 3x3x3, stride 2 in space; stride 2 in time at levels 0 and 2:
         1 + 4k -> 1 + 2k -> 1 + k)
      -> mid: ResNet, per-frame spatial attention, ResNet -> conv_out -> quant_conv
      -> moments (B, 8, 1 + k, H/8, W/8) -> z (B, 4, 1 + k, H/8, W/8)
      -> post_quant_conv -> symmetric (non-causal) conv_in -> mid: ResNet, spatial attention,
         temporal attention, ResNet
      -> per level: half-3D ResNets, up-sampler (nearest x2 in space, 3x3x3 conv; on time-up
         levels the conv emits 2C channels = two sub-frames, first frame dropped: 1 + k -> 1 + 2k)
      -> (B, 3, 1 + 4k, H, W)

Frame rule 1 + 4k: latent frame 0 codes frame 0 alone (an image is a 1-frame video, which is
what makes latent 0 directly comparable to the SD latent); latent j >= 1 codes frames 4j-3 .. 4j.

What is causal. The encoder: latent j depends on frames <= 4j only. The decoder is not (as in the
paper): its symmetric temporal convs and temporal attention see the whole latent clip.

Chunking (the paper's 16 + 1 scheme, ``encode_chunked`` / ``decode_chunked``) is approximate:
windows ``x[16n : 16n + 17]`` are encoded independently, each restarting the causal padding at its
own first frame (which duplicates the previous window's last frame, so its latent is dropped).
What holds: window 0 (latents 0..4) equals one-shot exactly, because the encoder is causal and
normalises per frame; on a static clip every window is exact (the replicated first frame *is*
the past). What does not: a later window's first latents differ from one-shot, since the
replicated first frame stands in for the real past frames the one-shot receptive field sees.
Decoding windows of 4 + 1 latents is approximate everywhere: the decoder's symmetric convs and
temporal attention see across window edges. With the paper's GroupNorm over (T, H, W)
(``encoder_norm_over_time`` / ``decoder_norm_over_time`` True) the statistics differ per window
too, and even window 0 is no longer exact. There are no per-layer caches (no ``encode_chunk``,
so the engine runs it one-shot): exact streaming is not what this design offers.

Lab deviations (stated): GroupNorm normalises each frame on its own (= SD's GroupNorm on every
frame); the paper's GroupNorm pools over (T, H, W), which makes latent 0 depend on later frames
(breaking the causality above) and makes the inflated model differ from SD. Both are config
switches. With per-frame norms the inflated model is exactly SD: the encoder gives the SD latent
of frames 0, 4, 8, ... and the decoder decodes every latent like SD, holding it for its group.
SD's 1x1 quant/post-quant convs are kept (as 1x1x1 convs) so the inflated model equals SD
exactly; CV-VAE folds them away. The constraint is a plain weighted L1
(the paper divides it by its own learned log-variance); no LPIPS/GAN here (the lab loop adds
L1 + wavelet). Lab widths are our sd-vae's [32, 64, 128, 128], one ResNet per encoder level.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import psnr_from_mse
from ._blocks import Attention, Conv3d, DiagonalGaussian, _groups
from .base import VAE, ModelCard, Paper, pad_to_rule
from .config import ModelConfig
from .latent import Latent
from .layout import (
    depth_to_time,
    from_time_sequences,
    per_frame,
    time_sequences,
    to_channels_first,
    to_channels_last,
    upsample_nearest_2x,
)
from .sd_vae import convert_legacy_attention


@dataclass(frozen=True)
class CVVAEConfig(ModelConfig):
    """The lab CV-VAE; ``RELEASED_CONFIG`` is AILab-CVC's released CVVAEModel."""

    family: ClassVar[str] = "cv-vae"

    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (32, 64, 128, 128)  # = sd-vae's lab widths, so the trained sd-vae inflates into it
    layers_per_block: int = 1  # encoder; the decoder has layers_per_block + 1 per level (as SD)
    latent_channels: int = 4
    norm_num_groups: int = 8
    temporal_downsample: tuple[bool, ...] = (True, False, True)  # per encoder down-sampler (levels 0 and 2, as CV-VAE)
    # GroupNorm statistics per frame (= SD on every frame). True = the paper's GroupNorm over (T, H, W): in the
    # encoder that breaks causality and exact inflation; in the decoder it only breaks "inflated decoder == SD".
    encoder_norm_over_time: bool = False
    decoder_norm_over_time: bool = False
    kl_weight: float = 1e-6
    compat_weight: float = 1.0  # the paper's rec2d_weight: L1 through the frozen image decoder
    compat_target: str = "random"  # "random" (paper's released config), "slice" (frame 4j) or "mean" (group mean)
    scaling_factor: float = 1.0  # replaced after training by 1/std of training latents
    # switches for the released architecture (RELEASED_CONFIG); the defaults are the lab design
    norm_eps: float = 1e-6  # GroupNorm eps (the release: 1e-5)
    quant_convs: bool = True  # SD's 1x1 quant / post-quant convs (the release has none)
    decoder_time_padding: str = "replicate"  # decoder 3x3x3 convs pad time by replicating ("zeros": nn.Conv3d padding)
    decoder_attention: str = "separate"  # mid: spatial + temporal attention, each residual; "joint": x + T(S(x))
    frames_per_chunk: int | None = None  # encode 1 + n frames at a time, decode 1 + n/4 latents (the release: 16)
    tile_size: int | None = None  # spatial tiles of this many pixels, blended (the release: 576)
    tile_overlap: float = 0.2222

    def card_factors(self) -> dict[str, Any]:
        return {"spatial_factor": 2 ** (len(self.block_out_channels) - 1),
                "temporal_factor": 2 ** sum(map(bool, self.temporal_downsample)), "latent_channels": self.latent_channels}


CARD = ModelCard(
    name="cv-vae",
    family="CV-VAE",
    paper=Paper("CV-VAE: A Compatible Video VAE for Latent Generative Video Models", "NeurIPS", 2024,
                "https://arxiv.org/abs/2405.20279"),
    kind="video",
    **CVVAEConfig().card_factors(),
    causal=True,  # the encoder (the latent); the decoder is not causal
    frame_rule="1+4k",
    teaching=(
        "A video VAE grown out of the sd-vae image VAE: same widths, same parameter names, 2D kernels inflated to "
        "3D. Its latent is meant to stay readable by the *image* decoder: during training every latent frame is "
        "also decoded by the frozen sd-vae decoder and compared with its input frame. Decode the video latent "
        "with the image decoder (the compatibility meter) to see how well a T2I model's latent space survived "
        "4x temporal compression; the 3D decoder alone usually reconstructs better."
    ),
    idea="SD VAE inflated to a causal-encoder 4x8x8 video VAE (half-3D ResNets), trained with a latent "
         "regulariser that decodes the video latent with the frozen SD image decoder; 4 latent channels.",
    architecture="Encoder: causal 3x3x3 conv_in, per level a half-3D ResNet (conv1 causal 3x3x3, conv2 per-frame "
                 "3x3) + causal stride-2 down-sampler (time /2 at levels 0 and 2), mid ResNet-spatial attention-"
                 "ResNet, quant conv. Decoder: non-causal mirror with mid spatial + temporal attention and "
                 "sub-pixel (2C-channel) temporal up-sampling at two levels (1 + k -> 1 + 2k -> 1 + 4k).",
)


# --- layers ------------------------------------------------------------------------------------------

class GroupNorm3D(nn.GroupNorm):
    """GroupNorm on (B, C, T, H, W): statistics per frame (``over_time=False``, = SD's GroupNorm on
    every frame) or over (C/g, T, H, W) (``over_time=True``, CV-VAE's)."""

    def __init__(self, channels: int, groups: int, over_time: bool, eps: float = 1e-6):
        super().__init__(_groups(channels, groups), channels, eps=eps)
        self.over_time = over_time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.over_time or x.dim() != 5:
            return super().forward(x)
        return per_frame(super().forward, x)


class Conv3dT(Conv3d):
    """3D conv padded in time by replicating edge frames: ``causal`` pads k_t - 1 frames in front only
    (output t sees inputs <= t), otherwise (k_t - 1) / 2 on each side (``time_pad="zeros"``: zero frames, what
    the released CV-VAE decoder's ``nn.Conv3d(padding=1)`` does). Space: zero "same" padding (``space_pad``
    False: none, the caller pads). Its weight is [out, in, k_t, k, k], the 2D name kept."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, causal: bool = True,
                 stride: tuple[int, int, int] = (1, 1, 1), space_pad: bool = True, time_pad: str = "replicate"):
        p = kernel // 2 if space_pad else 0
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=(0, p, p))
        self.causal = causal
        self.time_pad = time_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kt = self.kernel_size[0]
        if kt > 1:
            front, back = (kt - 1, 0) if self.causal else ((kt - 1) // 2, kt // 2)
            x = F.pad(x, (0, 0, 0, 0, front, back), mode="replicate" if self.time_pad == "replicate" else "constant")
        return super().forward(x)


class ResnetBlock3D(nn.Module):
    """Half-3D ResNet: norm -> SiLU -> conv1 3x3x3 (causal or symmetric) -> norm -> SiLU -> conv2 3x3 per frame,
    plus a 1x1x1 skip. (B, C_in, T, H, W) -> (B, C_out, T, H, W). Names = diffusers' ResnetBlock2D."""

    def __init__(self, in_ch: int, out_ch: int, groups: int, causal: bool, norm_over_time: bool,
                 eps: float = 1e-6, time_pad: str = "replicate"):
        super().__init__()
        self.norm1 = GroupNorm3D(in_ch, groups, norm_over_time, eps)
        self.conv1 = Conv3dT(in_ch, out_ch, 3, causal=causal, time_pad=time_pad)
        self.norm2 = GroupNorm3D(out_ch, groups, norm_over_time, eps)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = Conv3dT(in_ch, out_ch, 1, causal=causal) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = per_frame(self.conv2, self.dropout(F.silu(self.norm2(h))))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Downsample3D(nn.Module):
    """Zero-pad right/bottom by one, replicate 2 frames in front, 3x3x3 conv with stride (2 or 1, 2, 2).

    With ``time``: 1 + 2k -> 1 + k frames, output j reads frames 2j - 2 .. 2j (output 0: frame 0 alone)."""

    def __init__(self, channels: int, time: bool):
        super().__init__()
        self.time = time
        self.conv = Conv3dT(channels, channels, 3, causal=True, stride=(2 if time else 1, 2, 2), space_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample3D(nn.Module):
    """Nearest x2 in space, then a symmetric 3x3x3 conv; with ``time`` the conv emits 2C channels that become two
    sub-frames per frame and the first frame is dropped: 1 + k -> 1 + 2k (k -> 2k - 1 in general)."""

    def __init__(self, channels: int, time: bool):
        super().__init__()
        self.time = time
        self.conv = Conv3dT(channels, channels * (2 if time else 1), 3, causal=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(upsample_nearest_2x(x))
        return depth_to_time(x)[:, :, 1:] if self.time else x


class SpatialAttention(Attention):
    """diffusers' single-head spatial self-attention (same names), applied to every frame on its own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return per_frame(super().forward, x)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The attention output without the residual: (B, C, T, H, W) -> (B, C, T, H, W)."""
        def one(f_bchw: torch.Tensor) -> torch.Tensor:
            b, c, h, w = f_bchw.shape
            seq = self.group_norm(f_bchw).flatten(2).transpose(1, 2)
            out = F.scaled_dot_product_attention(self.to_q(seq), self.to_k(seq), self.to_v(seq))
            return self.to_out[1](self.to_out[0](out)).transpose(1, 2).reshape(b, c, h, w)
        return per_frame(one, x)


class TemporalAttention(nn.Module):
    """Single-head self-attention over T at every pixel: LayerNorm -> q, k, v -> softmax(qk^T/sqrt(C)) v -> out,
    residual. The output projection starts at zero, so a freshly inflated decoder is unchanged by it."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])
        nn.init.zeros_(self.to_out[0].weight)
        nn.init.zeros_(self.to_out[0].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The attention output without the residual: (B, C, T, H, W) -> (B, C, T, H, W)."""
        b, c, t, h, w = x.shape
        seq = self.norm(time_sequences(to_channels_last(x)))  # (B*h*w, T, C)
        out = F.scaled_dot_product_attention(self.to_q(seq), self.to_k(seq), self.to_v(seq))
        out = self.to_out[1](self.to_out[0](out))
        return to_channels_first(from_time_sequences(out, b, h, w))


class MidBlock3D(nn.Module):
    """ResNet -> spatial attention (-> temporal attention, decoder) -> ResNet at the lowest resolution.

    ``joint`` (the released decoder's spatial-temporal block): the temporal attention reads the spatial
    attention's output before its residual, and only their composition is added: x + T(S(x))."""

    def __init__(self, channels: int, groups: int, causal: bool, norm_over_time: bool, temporal_attention: bool,
                 eps: float = 1e-6, time_pad: str = "replicate", joint: bool = False):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock3D(channels, channels, groups, causal, norm_over_time, eps, time_pad)
                                      for _ in range(2)])
        self.attentions = nn.ModuleList([SpatialAttention(channels, groups, eps)])
        self.temporal_attentions = nn.ModuleList([TemporalAttention(channels)] if temporal_attention else [])
        self.joint = joint and temporal_attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        if self.joint:
            x = x + self.temporal_attentions[0].branch(self.attentions[0].branch(x))
        else:
            x = self.attentions[0](x)
            for attn in self.temporal_attentions:
                x = attn(x)
        return self.resnets[1](x)


class DownEncoderBlock3D(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, layers: int, groups: int, norm_over_time: bool,
                 downsample: bool, time: bool, eps: float = 1e-6):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock3D(in_ch if i == 0 else out_ch, out_ch, groups, True, norm_over_time,
                                                   eps) for i in range(layers))
        self.downsamplers = nn.ModuleList([Downsample3D(out_ch, time)]) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for r in self.resnets:
            x = r(x)
        return self.downsamplers[0](x) if self.downsamplers is not None else x


class UpDecoderBlock3D(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, layers: int, groups: int, norm_over_time: bool,
                 upsample: bool, time: bool, eps: float = 1e-6, time_pad: str = "replicate"):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock3D(in_ch if i == 0 else out_ch, out_ch, groups, False, norm_over_time,
                                                   eps, time_pad) for i in range(layers))
        self.upsamplers = nn.ModuleList([Upsample3D(out_ch, time)]) if upsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for r in self.resnets:
            x = r(x)
        return self.upsamplers[0](x) if self.upsamplers is not None else x


class Encoder3D(nn.Module):
    """Causal: x (B, 3, 1 + 4k, H, W) -> moments (B, 2C, 1 + k, H/8, W/8) (before quant_conv)."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        chs, g, over_t = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["encoder_norm_over_time"]
        tdown, eps = cfg["temporal_downsample"], cfg["norm_eps"]
        self.conv_in = Conv3dT(cfg["in_channels"], chs[0], 3, causal=True)
        self.down_blocks = nn.ModuleList(
            DownEncoderBlock3D(chs[max(i - 1, 0)], chs[i], cfg["layers_per_block"], g, over_t,
                               downsample=i < len(chs) - 1, time=i < len(chs) - 1 and tdown[i], eps=eps)
            for i in range(len(chs)))
        self.mid_block = MidBlock3D(chs[-1], g, True, over_t, temporal_attention=False, eps=eps)
        self.conv_norm_out = GroupNorm3D(chs[-1], g, over_t, eps)
        self.conv_out = Conv3dT(chs[-1], 2 * cfg["latent_channels"], 3, causal=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.down_blocks:
            h = block(h)
        h = self.mid_block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class Decoder3D(nn.Module):
    """Non-causal: z (B, C, 1 + k, h, w) -> x (B, 3, 1 + 4k, 8h, 8w)."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        rev, g = list(reversed(cfg["block_out_channels"])), cfg["norm_num_groups"]
        over_t = cfg["decoder_norm_over_time"]
        tdown, eps, pad = cfg["temporal_downsample"], cfg["norm_eps"], cfg["decoder_time_padding"]
        n = len(rev)
        self.conv_in = Conv3dT(cfg["latent_channels"], rev[0], 3, causal=False, time_pad=pad)
        self.mid_block = MidBlock3D(rev[0], g, False, over_t, temporal_attention=True, eps=eps, time_pad=pad,
                                    joint=cfg["decoder_attention"] == "joint")
        # up block k mirrors encoder down-sampler n - 2 - k
        self.up_blocks = nn.ModuleList(
            UpDecoderBlock3D(rev[max(k - 1, 0)], rev[k], cfg["layers_per_block"] + 1, g, over_t,
                             upsample=k < n - 1, time=k < n - 1 and tdown[n - 2 - k], eps=eps, time_pad=pad)
            for k in range(n))
        self.conv_norm_out = GroupNorm3D(rev[-1], g, over_t, eps)
        self.conv_out = Conv3dT(rev[-1], cfg["out_channels"], 3, causal=False, time_pad=pad)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            h = block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))

    @property
    def last_layer(self) -> torch.Tensor:
        return self.conv_out.weight


# --- inflation ------------------------------------------------------------------------------------

def inflate_from_sd(cv: CVVAE, sd_state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Load an sd-vae (diffusers-named) state dict into ``cv``, inflating 2D kernels to 3D.

    Same-shape tensors are copied. A 2D kernel [O, I, k, k] goes into the temporal slice of the 3D
    kernel [O, I, k_t, k, k] that sees the current frame: the last slice for a causal conv, the
    centre for a symmetric one; the other slices are zero. A time up-sampler ([2O, I, k_t, k, k])
    gets it in both output halves (and its bias twice), i.e. starts as "repeat each frame".
    Returns {"copied", "inflated", "new"}: keys copied as-is, inflated, and left at their init
    (the decoder's temporal attention). Raises ValueError when the widths do not match.
    """
    sd_state = convert_legacy_attention(dict(sd_state))
    own = cv.state_dict()
    convs = {name: m for name, m in cv.named_modules() if isinstance(m, Conv3dT)}
    new: dict[str, torch.Tensor] = {}
    report: dict[str, list[str]] = {"copied": [], "inflated": [], "new": []}
    problems = []
    for key, v in sd_state.items():
        if key not in own:
            problems.append(f"unexpected key {key}")
            continue
        tgt = own[key]
        v = v.to(tgt.dtype)
        if tuple(v.shape) == tuple(tgt.shape):
            new[key] = v.clone()
            report["copied"].append(key)
            continue
        mod_name, _, pname = key.rpartition(".")
        conv = convs.get(mod_name)
        reps = tgt.shape[0] // max(v.shape[0], 1)
        if conv is not None and pname == "weight" and v.dim() == 4 and tgt.dim() == 5 \
                and tgt.shape[0] == reps * v.shape[0] and tuple(tgt.shape[1:2] + tgt.shape[3:]) == tuple(v.shape[1:]):
            kt = tgt.shape[2]
            s = kt - 1 if conv.causal else kt // 2
            w = torch.zeros_like(tgt)
            for r in range(reps):
                w[r * v.shape[0]:(r + 1) * v.shape[0], :, s] = v
            new[key] = w
            report["inflated"].append(key)
        elif conv is not None and pname == "bias" and v.dim() == 1 and tgt.shape[0] == reps * v.shape[0]:
            new[key] = v.repeat(reps)
            report["inflated"].append(key)
        else:
            problems.append(f"{key}: image VAE {tuple(v.shape)} vs video VAE {tuple(tgt.shape)}")
    if problems:
        raise ValueError(f"image VAE state dict does not inflate into cv-vae ({len(problems)} problem(s)), e.g. "
                         f"{problems[0]}; build cv-vae with the sd-vae's block_out_channels / layers_per_block / "
                         "norm_num_groups / latent_channels")
    report["new"] = [k for k in own if k not in new]
    cv.load_state_dict({**own, **new})
    return report


# --- the model ------------------------------------------------------------------------------------

def _psnr(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """PSNR in dB for [-1, 1] images over all but the leading dims (peak-to-peak 2, = the uint8 convention)."""
    mse = (a.float() - b.float()).pow(2).flatten(-3).mean(-1)
    return psnr_from_mse(mse.detach().cpu(), data_range=2.0)


class CVVAE(VAE):
    card = CARD
    config_class = CVVAEConfig
    parent = "sd-vae"  # inflated from the image VAE, whose frozen decoder also regularises the latent
    COMPAT_FRAMES = 17  # the compatibility meter reads at most this many frames (5 latent frames)

    def __init__(self, config: CVVAEConfig | dict[str, Any] | None = None):
        cfg = CVVAEConfig.from_dict(config)
        n = len(cfg["block_out_channels"])
        if len(cfg["temporal_downsample"]) != n - 1 or sum(map(bool, cfg["temporal_downsample"])) != 2:
            raise ValueError("temporal_downsample needs one flag per down-sampler and exactly two True (4x in time)")
        if cfg["compat_target"] not in ("random", "slice", "mean"):
            raise ValueError(f"compat_target must be random, slice or mean, got {cfg['compat_target']!r}")
        super().__init__(cfg)
        z = cfg["latent_channels"]
        self.encoder = Encoder3D(cfg)
        self.decoder = Decoder3D(cfg)
        quant = cfg["quant_convs"]
        self.quant_conv = Conv3dT(2 * z, 2 * z, 1) if quant else nn.Identity()
        self.post_quant_conv = Conv3dT(z, z, 1, causal=False) if quant else nn.Identity()
        self._warned = False

    # --- the image VAE: inflation source and frozen compatibility decoder -----------------------------
    def inflate_from_sd(self, sd_state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
        """See :func:`inflate_from_sd`."""
        return inflate_from_sd(self, sd_state)

    def attach_image_decoder(self, image_vae: nn.Module) -> CVVAE:
        """Use ``image_vae`` (an sd-vae, e.g. ``models.load("sd-vae")``) as the frozen image decoder.

        It is frozen (eval, requires_grad False) and kept *outside* this module's tree: it is not in
        ``parameters()`` (so no optimiser sees it), ``state_dict()`` or saved weights, and ``.to()``
        does not move it (it is moved to the latent's device on use).
        """
        z = getattr(image_vae, "config", {}).get("latent_channels")
        if not hasattr(image_vae, "decode_frames") or z != self.config["latent_channels"]:
            raise ValueError("the image decoder must be an sd-vae-like model with the same latent_channels")
        image_vae.eval().requires_grad_(False)
        self.__dict__["_image_vae"] = image_vae
        return self

    def detach_image_decoder(self) -> None:
        self.__dict__.pop("_image_vae", None)

    def start_from(self, parent: VAE) -> None:
        """Training starts as the trained image VAE, inflated, with its frozen decoder attached."""
        self.inflate_from_sd(parent.state_dict())
        self.attach_image_decoder(parent)

    def trained_against(self) -> VAE | None:
        """The image VAE these lab weights were trained against, when it is no longer the shipped sd-vae: loaded once
        from ``weights.parent_weights_path`` (kept beside the weights when sd-vae was retrained after them; the
        loader is set by ``families.load``); None for any other weights or when the shipped sd-vae is that parent."""
        cached = self.__dict__.get("_trained_against")
        loader = self.__dict__.get("_trained_against_loader")
        if cached is None and loader is not None:
            cached = loader()
            self.__dict__["_trained_against"] = cached  # outside the module tree, like the attached decoder
        return cached

    def compatibility_with(self, x_bcthw: torch.Tensor, image_model: VAE | None) -> dict[str, Any]:
        """:meth:`compatibility_psnr` with ``image_model`` as the frozen decoder (for the call), unless one is attached.
        Lab weights read by the image VAE they were trained against (:meth:`trained_against`) where that differs."""
        image_model = self.trained_against() or image_model
        attach = self.image_vae is None
        if attach and image_model is None:
            return {"psnr": None, "reason": f"{self.card.name} needs an image decoder (pass the sd-vae)"}
        try:
            if attach:
                self.attach_image_decoder(image_model)
            try:
                res = self.compatibility_psnr(x_bcthw)
            finally:
                if attach:
                    self.detach_image_decoder()
        except ValueError as e:
            return {"psnr": None, "reason": str(e)}
        used = self.image_vae if not attach else image_model
        return res | {"method": f"{self.card.name} compatibility_psnr",
                      "image_model_weights": str(getattr(used, "weights_source", "lab"))}

    def diagnostics(self, x_bcthw: torch.Tensor, reference: Any) -> dict[str, Any]:
        """The compatibility meter on the first ``COMPAT_FRAMES`` frames, read by the lab image VAE it started from."""
        image_vae = self.trained_against() or reference(self.parent)
        base = {"model": self.card.name, "image_model": image_vae.card.name}
        if self.released_architecture and getattr(image_vae, "weights_source", "lab") == "lab":
            return {"compatibility": base | {"psnr": None, "reason": (
                "the released CV-VAE's latent is Stable Diffusion 2.1's; the lab sd-vae is not its image decoder "
                "(load SD's VAE as sd-vae weights and call compatibility_with)")}}
        return {"compatibility": base | self.compatibility_with(x_bcthw[:, :, :self.COMPAT_FRAMES], image_vae)}

    @property
    def released_architecture(self) -> bool:
        """Built at the released CVVAEModel's design (RELEASED_CONFIG or a width/depth of it), not the lab's."""
        return self.config["decoder_attention"] == "joint" and not self.config["quant_convs"]

    @property
    def image_vae(self) -> nn.Module | None:
        return self.__dict__.get("_image_vae")

    def _image_vae_on(self, ref: torch.Tensor) -> nn.Module:
        sd = self.image_vae
        if sd is None:
            raise RuntimeError("no image decoder attached: call attach_image_decoder(models.load('sd-vae')) first")
        p = next(sd.parameters())
        if p.device != ref.device or p.dtype != ref.dtype:
            sd.to(device=ref.device, dtype=ref.dtype)
        return sd

    def decode_with_image_decoder(self, z: Latent) -> torch.Tensor:
        """Each latent frame through the frozen image decoder: main (B, C, T', h, w) -> (B, 3, T', 8h, 8w)."""
        sd = self._image_vae_on(z.main)
        return per_frame(lambda f: sd.decode_frames(Latent(f)), z.main)

    # --- VAE contract ---------------------------------------------------------------------------------
    @staticmethod
    def _check(x: torch.Tensor) -> None:
        t, h, w = x.shape[2:]
        if (t - 1) % 4 or h % 8 or w % 8:
            raise ValueError(f"cv-vae needs 1 + 4k frames and H, W multiples of 8, got {t}x{h}x{w}; use reconstruct() "
                             "(it pads and crops) or vaelab.models.base.pad_to_rule")

    def posterior(self, x_bcthw: torch.Tensor) -> DiagonalGaussian:
        self._check(x_bcthw)
        return DiagonalGaussian(self.quant_conv(self._chunked(self.encoder, x_bcthw, self.config["frames_per_chunk"],
                                                              1 / 8)))

    def _chunked(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int | None,
                 scale: float) -> torch.Tensor:
        """``fn`` (encoder: ``scale`` 1/8, decoder: 8) over windows of 1 + ``chunk`` frames sharing one frame, the
        first output frame of later windows dropped, each window spatially tiled (the released CV-VAE's
        ``tiled_encode`` / ``tiled_decode``); ``chunk`` None: the whole clip at once."""
        if not chunk:
            return self._tiled(fn, x, scale)
        rounds = max(math.ceil((x.shape[2] - 1) / chunk), 1)
        out = [self._tiled(fn, x[:, :, n * chunk:(n + 1) * chunk + 1], scale) for n in range(rounds)]
        return torch.cat([o if n == 0 else o[:, :, 1:] for n, o in enumerate(out)], 2)

    def _tiled(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: float) -> torch.Tensor:
        """``fn`` on overlapping spatial tiles of ``tile_size`` pixels (``tile_size`` / 8 latents), each blended
        linearly into its (already blended) upper and left neighbours, then cropped to the stride and stitched:
        the released CV-VAE's ``spatial_tiled_encode`` / ``_decode``. No tile_size: ``fn(x)``."""
        size, ratio = self.config["tile_size"], self.config["tile_overlap"]
        if not size:
            return fn(x)
        pixel = size // 8
        tile_in, tile_out = (size, pixel) if scale < 1 else (pixel, size)
        stride_in = round(tile_in * (1 - ratio))
        overlap = round(tile_out * ratio)
        stride_out = tile_out - overlap
        rows: list[list[torch.Tensor]] = []
        for i in range(0, x.shape[3], stride_in):
            cols = []
            for j in range(0, x.shape[4], stride_in):
                cols.append(fn(x[:, :, :, i:i + tile_in, j:j + tile_in]))
                if j + tile_in >= x.shape[4]:
                    break
            rows.append(cols)
            if i + tile_in >= x.shape[3]:
                break
        ramp = torch.arange(overlap, device=x.device) / max(overlap, 1)
        for i, cols in enumerate(rows if overlap else []):
            for j, tile in enumerate(cols):
                if i > 0:
                    up, w = rows[i - 1][j], ramp.view(-1, 1)
                    tile[:, :, :, :overlap] = (1 - w) * up[:, :, :, -overlap:] + w * tile[:, :, :, :overlap]
                if j > 0:
                    left = cols[j - 1]
                    tile[..., :overlap] = (1 - ramp) * left[..., -overlap:] + ramp * tile[..., :overlap]
        stitched = [torch.cat([t[:, :, :, :stride_out if i < len(rows) - 1 else None,
                                 :stride_out if j < len(cols) - 1 else None] for j, t in enumerate(cols)], 4)
                    for i, cols in enumerate(rows)]
        return torch.cat(stitched, 3)

    def encode(self, x_bcthw: torch.Tensor) -> Latent:
        """(B, 3, 1 + 4k, H, W) -> posterior mean (B, 4, 1 + k, H/8, W/8)."""
        return Latent(self.posterior(x_bcthw).mode())

    def decode(self, z: Latent) -> torch.Tensor:
        """main (B, 4, 1 + k, h, w) -> (B, 3, 1 + 4k, 8h, 8w) with the 3D decoder."""
        chunk = self.config["frames_per_chunk"]
        return self._chunked(self.decoder, self.post_quant_conv(z.main), chunk // 4 if chunk else None, 8.0)

    def compat_targets(self, x_pad: torch.Tensor, t_lat: int,
                       mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Input frames matched to latent frames: (B, 3, T', H, W) and the frame index per (B, T').

        Latent 0 <-> frame 0; latent j >= 1 <-> its group 4j-3 .. 4j: a random frame ("random"),
        frame 4j ("slice", what the inflated encoder sees at init) or the group mean ("mean").
        """
        mode = mode or self.config["compat_target"]
        b = x_pad.shape[0]
        base = torch.arange(t_lat, device=x_pad.device) * 4  # 0, 4, 8, ...
        if mode == "mean":
            groups = [x_pad[:, :, :1]] + [x_pad[:, :, 4 * j - 3:4 * j + 1].mean(2, keepdim=True)
                                          for j in range(1, t_lat)]
            return torch.cat(groups, 2), base.expand(b, -1)
        idx = base.expand(b, -1).clone()
        if mode == "random" and t_lat > 1:
            idx[:, 1:] -= torch.randint(0, 4, (b, t_lat - 1), device=x_pad.device)
        gather = idx[:, None, :, None, None].expand(-1, x_pad.shape[1], -1, *x_pad.shape[-2:])
        return x_pad.gather(2, gather), idx

    def forward(self, x_bcthw: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training: pad to 1 + 4k / multiples of 8, sample z, decode; losses "kl" and (with an image decoder
        attached) "compat" = compat_weight * L1(image_decoder(z), matching input frames)."""
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, 8, "1+4k")
        post = self.posterior(x_pad)
        z = Latent(post.sample())
        recon = self.decode(z)[:, :, :t, :h, :w]
        tp, hp, wp = x_pad.shape[2:]
        losses = {"kl": self.config["kl_weight"] * post.kl().mean() / (3 * tp * hp * wp)}
        if self.image_vae is not None and self.config["compat_weight"] > 0:
            target, _ = self.compat_targets(x_pad, z.main.shape[2])
            img = self.decode_with_image_decoder(z)
            losses["compat"] = self.config["compat_weight"] * (img - target).abs().mean()
        elif self.training and self.config["compat_weight"] > 0 and not self._warned:
            warnings.warn("cv-vae is training without its image decoder: no compatibility loss "
                          "(call attach_image_decoder(models.load('sd-vae')))", stacklevel=2)
            self._warned = True
        return recon, losses

    @torch.no_grad()
    def compatibility_psnr(self, x_bcthw: torch.Tensor) -> dict[str, Any]:
        """The compatibility meter: how well the image decoder reads this model's latents.

        Encodes the clip (posterior mean), decodes every latent frame with the frozen image decoder and
        compares with frames 0, 4, 8, ... (the frames an inflated encoder starts from). Returns PSNRs in
        dB (peak-to-peak 2 on [-1, 1], = 255 on uint8): ``psnr`` (image decoder on the video latent),
        ``per_frame``, ``video_psnr`` (this model's own 3D decoder on the same frames) and
        ``image_vae_psnr`` (the image VAE coding those frames itself: the ceiling), plus ``frames``.
        """
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, 8, "1+4k")
        z = self.encode(x_pad)
        frames = [4 * j for j in range(z.main.shape[2]) if 4 * j < t]
        target = x_pad[:, :, frames, :h, :w]
        img = self.decode_with_image_decoder(z.time_slice(0, len(frames)))[:, :, :, :h, :w].clamp(-1, 1)
        video = self.decode(z)[:, :, frames, :h, :w].clamp(-1, 1)
        sd = self._image_vae_on(z.main)
        ceiling = per_frame(lambda f: sd.decode_frames(sd.encode_frames(f)), x_pad[:, :, frames])[:, :, :, :h, :w]
        per = _psnr(img.transpose(1, 2), target.transpose(1, 2))  # (B, F)
        return {
            "psnr": float(per.mean()),
            "per_frame": [float(v) for v in per.mean(0)],
            "frames": frames,
            "video_psnr": float(_psnr(video.transpose(1, 2), target.transpose(1, 2)).mean()),
            "image_vae_psnr": float(_psnr(ceiling.clamp(-1, 1).transpose(1, 2), target.transpose(1, 2)).mean()),
        }

    # --- the paper's 16 + 1 chunking (approximate; see the module docstring) --------------------------
    def encode_chunked(self, x_bcthw: torch.Tensor, window: int = 16) -> Latent:
        """Encode windows ``x[window*n : window*(n+1) + 1]`` independently; drop the first latent of later windows.

        Same shape as ``encode(x)``. Window 0 (latents 0 .. window/4) equals one-shot exactly; later
        latents are approximate (each window restarts the causal padding at its first frame).
        """
        self._check(x_bcthw)
        if window < 4 or window % 4:
            raise ValueError(f"window must be a positive multiple of 4, got {window}")
        t = x_bcthw.shape[2]
        out = []
        for n, s in enumerate(range(0, max(t - 1, 1), window)):
            z = self.encode(x_bcthw[:, :, s:s + window + 1])
            out.append(z if n == 0 else z.time_slice(1, None))
        return Latent.cat(out)

    def decode_chunked(self, z: Latent, window: int = 4) -> torch.Tensor:
        """Decode latent windows ``z[window*n : window*(n+1) + 1]`` independently; drop the first frame of later
        windows. Same shape as ``decode(z)``; approximate everywhere (the decoder is not causal)."""
        if window < 1:
            raise ValueError("window must be >= 1")
        tl = z.main.shape[2]
        out = []
        for n, s in enumerate(range(0, max(tl - 1, 1), window)):
            y = self.decode(z.time_slice(s, s + window + 1))
            out.append(y if n == 0 else y[:, :, 1:])
        return torch.cat(out, 2)



# --- the released checkpoints (AILab-CVC/CV-VAE, models/modeling_vae.py CVVAEModel + models/vae_models.py) -----

RELEASED_CONFIG = CVVAEConfig().replace(
    block_out_channels=(128, 256, 512, 512),  # ch 128, ch_mult [1, 2, 4, 4]
    layers_per_block=2,  # num_res_blocks (the decoder has 3 per level)
    norm_num_groups=32,
    encoder_norm_over_time=True,
    decoder_norm_over_time=True,
    norm_eps=1e-5,
    quant_convs=False,
    decoder_time_padding="zeros",
    decoder_attention="joint",
    frames_per_chunk=16,
    tile_size=576,
    tile_overlap=0.2222,
    scaling_factor=0.18215,
)

# CVVAEModel's constructor defaults (what a config.json that omits a key gets) and the values this tree runs
_REFERENCE_DEFAULTS: dict[str, Any] = {
    "double_z": True, "z_channels": 4, "in_channels": 3, "out_ch": 3, "ch": 128, "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0, "use_3d_conv": True, "half_3d": True,
    "causal_encoder": True, "causal_decoder": False, "encoder_attn_type": "vanilla-xformers",
    "decoder_attn_type": "spatial-temporal-xformer", "scaling_factor": 0.18215, "en_de_n_frames_a_time": 16,
    "time_n_compress": 4, "spatial_n_compress": 8, "tile_spatial_size": 576, "num_video_frames": None,
    "tile_overlap_ratio": 0.2222, "reshape_z_dim_to_4": False, "reshape_x_dim_to_4": False,
}
_MUST = {"double_z": True, "attn_resolutions": [], "use_3d_conv": True, "half_3d": True, "causal_encoder": True,
         "causal_decoder": False, "decoder_attn_type": "spatial-temporal-xformer", "time_n_compress": 4,
         "spatial_n_compress": 8, "num_video_frames": None, "reshape_z_dim_to_4": False, "reshape_x_dim_to_4": False}


def _released_config(ch: int, ch_mult: list[int], num_res_blocks: int, z: int, in_ch: int = 3, out_ch: int = 3,
                     **tiling: Any) -> CVVAEConfig:
    n = len(ch_mult)
    tdown = [i % 2 == 0 for i in range(n - 1)]  # the reference's half_t_mult: time /2 at even levels
    if sum(tdown) != 2:
        raise ValueError(f"ch_mult of {n} levels gives {sum(tdown)} temporal down-samplers; this tree runs "
                         "4x-in-time models (4 or 5 levels)")
    return RELEASED_CONFIG.replace(in_channels=in_ch, out_channels=out_ch, block_out_channels=[ch * m for m in ch_mult],
                                   layers_per_block=num_res_blocks, latent_channels=z, temporal_downsample=tdown,
                                   **tiling)


def config_from_released(config: dict[str, Any]) -> CVVAEConfig:
    """A released ``config.json`` (CVVAEModel, diffusers-style) -> our config; one-line ValueError for what
    this tree does not run (named)."""
    cls = config.get("_class_name", "CVVAEModel")
    if cls != "CVVAEModel":
        raise ValueError(f"config.json is {cls}, not the released CVVAEModel (the SD3 variant CVVAESD3Model is "
                         "a different tree)")
    c = {**_REFERENCE_DEFAULTS, **{k: v for k, v in config.items() if not k.startswith("_")}}
    bad = [f"{k}={c[k]!r}" for k, v in _MUST.items() if c[k] != v]
    if c["encoder_attn_type"] not in ("vanilla-xformers", "vanilla"):
        bad.append(f"encoder_attn_type={c['encoder_attn_type']!r}")
    if c["dropout"]:
        bad.append(f"dropout={c['dropout']!r}")
    if bad:
        raise ValueError("this CV-VAE config has " + ", ".join(bad) + ", which the released tree does not use")
    frames = c["en_de_n_frames_a_time"]
    tile = c["tile_spatial_size"]
    return _released_config(int(c["ch"]), list(c["ch_mult"]), int(c["num_res_blocks"]), int(c["z_channels"]),
                            int(c["in_channels"]), int(c["out_ch"]), frames_per_chunk=frames, tile_size=tile,
                            tile_overlap=c["tile_overlap_ratio"] if tile else CVVAEConfig.tile_overlap,
                            scaling_factor=float(c["scaling_factor"]))


def is_released_layout(state: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith(("encoder.down.", "decoder.up.")) for k in state)


def config_from_state(state: dict[str, torch.Tensor]) -> CVVAEConfig:
    """The released architecture a bare state dict (released names) was built with, read off its shapes;
    tiling / chunking / scaling are CVVAEModel's defaults (576 px, 16 frames, 0.18215)."""
    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise ValueError(f"checkpoint has no {key}")
        return tuple(state[key].shape)

    chs, n = [], 0
    while f"encoder.down.{n}.block.0.conv1.weight" in state:
        chs.append(shape(f"encoder.down.{n}.block.0.conv1.weight")[0])
        n += 1
    blocks = 0
    while f"encoder.down.0.block.{blocks}.conv1.weight" in state:
        blocks += 1
    ch = shape("encoder.conv_in.weight")[0]
    if not chs or any(c % ch for c in chs):
        raise ValueError(f"encoder level widths {chs} are not multiples of conv_in's {ch}")
    z = shape("decoder.conv_in.weight")[1]
    if shape("encoder.conv_out.weight")[0] != 2 * z:
        raise ValueError("encoder.conv_out does not emit 2 x decoder.conv_in channels (double_z)")
    if "decoder.mid.attn_1.q_t.weight" not in state:
        raise ValueError("decoder.mid.attn_1 has no temporal part (q_t): not the spatial-temporal decoder")
    return _released_config(ch, [c // ch for c in chs], blocks, z, shape("encoder.conv_in.weight")[1],
                            shape("decoder.conv_out.weight")[0])


_TEMPORAL = {"q_t": "to_q", "k_t": "to_k", "v_t": "to_v", "proj_out_t": "to_out.0", "norm_t": "norm"}


def released_to_lab(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released key names -> ours: the LDM-layout map (``layouts.ldm_to_diffusers``) plus the decoder's temporal
    attention (``decoder.mid.attn_1.q_t`` -> ``decoder.mid_block.temporal_attentions.0.to_q`` ...)."""
    import re

    from .layouts import ldm_to_diffusers

    out = {}
    for key, value in state.items():
        if m := re.match(r"decoder\.mid\.attn_1\.(q_t|k_t|v_t|proj_out_t|norm_t)\.(weight|bias)$", key):
            key = f"decoder.mid_block.temporal_attentions.0.{_TEMPORAL[m[1]]}.{m[2]}"
        out[key] = value
    return ldm_to_diffusers(out)


def convert_released(state: dict[str, torch.Tensor], config: dict[str, Any] | None,
                     lab_config: dict[str, Any] | None) -> tuple[dict[str, torch.Tensor], dict[str, Any], list[str]]:
    """A published CV-VAE checkpoint -> (state in our names, config to build, notes); see ``official``."""
    from .base import WeightsError

    if config is None and not is_released_layout(state):
        return state, dict(lab_config or {}), []  # our own layout without metadata: the strict load decides
    try:
        built = config_from_released(config) if config is not None else config_from_state(state)
    except ValueError as e:
        raise WeightsError(f"cv-vae: {e}") from None
    notes = ["released CV-VAE (AILab-CVC/CV-VAE CVVAEModel) " + ("from its config.json" if config is not None else
                                                                 "architecture read off the tensor shapes, "
                                                                 "tiling/chunking at CVVAEModel's defaults")]
    return released_to_lab(state), built, notes
