"""IV-VAE (Wu et al., "Improved Video VAE for Latent Video Diffusion Model", CVPR 2025).

Two observations about causal video VAEs and one fix for each:

1. Keyframe-based Temporal Compression (KTC). Every feature map is split in two halves,
   ``[keyframe | temporal]``. At each conv both halves read the *whole* input, but the keyframe
   half is computed by a per-frame 2D conv and, at each temporal down-sampling, simply *keeps
   every other frame* (after two steps: the first frame of every 4-frame group), while the
   temporal half uses 3D convs and learned stride-2 temporal convs. So half of the latent is an
   image-VAE-like code of each group's key frame, the other half a code of the motion in the group.
   The latent is z = 8 channels = 4 keyframe + 4 temporal. The decoder emits two RGB images per
   frame, one from each half's head; frame 0 and the first frame of every group are taken from
   the keyframe head, the other three frames of a group from the temporal head.
2. Group Causal Convolution (GCConv). A plain causal conv gives the 4 frames of a group unequal
   context (frame 1 of a group sees none of the group's future, frame 4 sees all of its past),
   so quality oscillates inside each group (flicker). GCConv pads every group of t_c frames on
   its own: in front with the last frame of the *previous* group, behind with zeros. Inside a
   group convolution is two-sided; between groups it is causal. t_c = 4 at full frame rate,
   2 after one temporal down-sampling; after two, the layers are plain per-frame 2D.

Shapes (per branch width d = ``dim``, widths d * ``dim_mult`` per level):

    x (B, 3, 1 + 4k, H, W)
      -> SepConv in (d | d)                     GCConv t_c = 4 for the temporal head
      -> level 0: SepResBlock, space /2          t_c = 4
      -> level 1: SepResBlock, space /2, time /2 t_c = 4    (1 + 4k -> 1 + 2k)
      -> level 2: SepResBlock, space /2, time /2 t_c = 2    (-> 1 + k)
      -> level 3 + mid: 2D SepResBlocks, per-frame attention per half
      -> PAC head (parallel dilated convs) -> moments -> z (B, 8, 1 + k, H/8, W/8) = [kf 4 | temporal 4]
      -> decoder mirrors it (keyframe half repeated in time, temporal half depth-to-time)
      -> per frame two RGB heads (B, 3 + 3, 1 + 4k, H, W) -> group frame selection -> (B, 3, 1 + 4k, H, W)

What is causal here. Frame 0 is coded alone (its GCConv window is [x0, x0, 0]), and group j
(frames 4j - 3 .. 4j) only reads earlier groups through the one-frame front pad, so latent frame
j depends on frames <= 4j and never on a later group: exactly the latent-level causality of a
causal VAE, and the model streams exactly with a one-frame cache per GCConv (vaelab.streaming).
What does *not* hold, by design: inside a group, features of the group's first frame depend on
its last frame (two-sided conv), so the encoder is not causal frame-by-frame.

Zeroed-branch decoding. ``decode(z, zero_branch="keyframe")`` sets the 4 keyframe channels to 0
before decoding, ``zero_branch="temporal"`` the 4 temporal channels; ``decode_heads(z)`` returns
both RGB heads for every frame without the selection. The decoder mixes the halves from its first
conv on, so a zeroed half does not give a clean "keyframes only" video; it shows how much of the
picture each half of the latent carries.

Lab deviations: trained from scratch (the paper initialises the keyframe half from a z/2 image
VAE); branch width 12 instead of 64/96; one ResNet per encoder level (two per decoder level)
instead of two (three); the up-sampler's conv narrows channels to the next level's width; PAC
dilations (1, 3, 6) instead of (1, 3, 6, 9, 12) at our small latent sizes; one attention block per
half in the mid block instead of seven; no 1x1 quant/post-quant convs (they fold into PAC's fuse
conv and the decoder's conv_in).
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import Conv3d
from ._causal import CausalVideoVAE, RMSNorm, Streamable
from .base import ModelCard, Paper
from .config import ModelConfig
from .latent import Latent
from .layout import depth_to_time, per_frame


@dataclass(frozen=True)
class IVVAEConfig(ModelConfig):
    """The lab IV-VAE (``ReleasedConfig`` is the published tree)."""

    family: ClassVar[str] = "iv-vae"

    dim: int = 12  # width of each branch at level 0 (12 -> 2.6 M params, on a par with walt; the paper uses 64 or 96)
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 1  # encoder; the decoder gets one more per level
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    latent_channels: int = 8  # 4 keyframe + 4 temporal
    pac_dilations: tuple[int, ...] = (1, 3, 6)
    mid_attention: bool = True
    kl_weight: float = 1e-6
    scaling_factor: float = 1.0

    def card_factors(self) -> dict[str, Any]:
        return {"spatial_factor": 2 ** len(self.temporal_downsample),
                "temporal_factor": 2 ** sum(map(bool, self.temporal_downsample)), "latent_channels": self.latent_channels}


CARD = ModelCard(
    name="iv-vae",
    family="IV-VAE",
    paper=Paper("Improved Video VAE for Latent Video Diffusion Model", "CVPR", 2025,
                "https://arxiv.org/abs/2411.06449"),
    kind="video",
    **IVVAEConfig().card_factors(),
    causal=True,
    frame_rule="1+4k",
    teaching=(
        "Half of the latent is a keyframe code (the first frame of every group of 4, computed with per-frame 2D "
        "convs), the other half a motion code (3D convs over the group). Decode with either half zeroed to see "
        "what each carries (Inside the model tab). Its convolutions are causal *between* groups of 4 frames but two-sided *inside* a "
        "group, so the 4 frames of a group get equal context: compare per-frame PSNR by position in the group "
        "with a plain causal VAE (W.A.L.T), whose first frames of each group get less. Between groups it is "
        "still causal, so it streams exactly with a one-frame cache."
    ),
    idea="Keyframe/temporal split latent (KTC) + group causal convolution (GCConv): bidirectional inside 4-frame "
         "groups, causal between them; 4x8x8, z = 4 keyframe + 4 temporal channels.",
    architecture="Per level: Sep convs (per-frame 2D head -> keyframe half, GCConv 3D head -> temporal half, both "
                 "reading all channels), RMSNorm per half; temporal down-sampling = frame selection (keyframe) / "
                 "stride-2 conv (temporal); 2D lowest level + mid with per-half attention; PAC head. Decoder mirrors "
                 "it and emits [keyframe RGB | temporal RGB], selected per position in the group.",
)

BRANCHES = ("keyframe", "temporal")


class GroupCausalConv3d(Streamable):
    """GCConv, temporal kernel 3. (B, C_in, T, H, W) -> (B, C_out, T, H, W), T = 1 + n*t_c (or n*t_c when streaming).

    Frame 0 alone is convolved as [x0, x0, 0]. The remaining frames are cut into groups of t_c;
    each group is padded in front with the last frame of the previous group (x0 for the first
    group) and behind with zeros, then all groups are convolved at once (groups folded into the
    batch). Streaming keeps the last input frame of the chunk.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, t_c: int = 4):
        super().__init__()
        self.t_c = t_c
        self.conv = Conv3d(in_channels, out_channels, (3, kernel, kernel), padding=(0, kernel // 2, kernel // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        outs = []
        if self.first_chunk:
            x0 = x[:, :, :1]
            outs.append(self.conv(torch.cat([x0, x0, torch.zeros_like(x0)], 2)))
            prev, rest = x0, x[:, :, 1:]
        else:
            prev, rest = self._cache, x
        if rest.shape[2]:
            tc = self.t_c
            if rest.shape[2] % tc:
                raise ValueError(f"GCConv needs whole groups of {tc} frames after frame 0, got {rest.shape[2]}")
            g = rest.shape[2] // tc
            groups = rest.reshape(b, c, g, tc, h, w).transpose(1, 2)  # (B, G, C, tc, H, W), a view
            # one copy straight into the folded layout: [last frame of the previous group | group | zeros]
            padded = rest.new_empty(b, g, c, tc + 2, h, w)
            padded[:, 0, :, 0] = prev[:, :, 0]
            padded[:, 1:, :, 0] = groups[:, :-1, :, -1]
            padded[:, :, :, 1:tc + 1] = groups
            padded[:, :, :, tc + 1] = 0
            y = self.conv(padded.view(b * g, c, tc + 2, h, w))  # (B*G, C', tc, H, W)
            outs.append(y.reshape(b, g, -1, tc, h, w).transpose(1, 2).reshape(b, -1, g * tc, h, w))
        self._store(x[:, :, -1:])
        return torch.cat(outs, 2) if len(outs) > 1 else outs[0]


class SepConv(nn.Module):
    """KTC conv: input (B, C_in, T, H, W) with C_in = [keyframe | temporal] -> (B, 2*C_half, T, H, W).

    Both heads read all C_in channels: a per-frame 2D conv makes the keyframe half, a GCConv the
    temporal half. With ``t_c=None`` (fully compressed levels) it is one per-frame 2D conv.
    """

    def __init__(self, in_channels: int, out_half: int, kernel: int = 3, t_c: int | None = 4):
        super().__init__()
        p = kernel // 2
        if t_c is None:
            self.conv_2d = nn.Conv2d(in_channels, 2 * out_half, kernel, padding=p)
            self.conv_3d = None
        else:
            self.conv_2d = nn.Conv2d(in_channels, out_half, kernel, padding=p)
            self.conv_3d = GroupCausalConv3d(in_channels, out_half, kernel, t_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kf = per_frame(self.conv_2d, x)
        return kf if self.conv_3d is None else torch.cat([kf, self.conv_3d(x)], 1)


class SepResBlock(nn.Module):
    """RMSNorm per half -> SiLU -> SepConv -> RMSNorm per half -> SiLU -> SepConv, plus a 1x1x1 skip.

    (B, 2*in_half, T, H, W) -> (B, 2*out_half, T, H, W); ``t_c=None`` gives the 2D variant.
    """

    def __init__(self, in_half: int, out_half: int, t_c: int | None):
        super().__init__()
        self.norm1 = RMSNorm(2 * in_half, groups=2)
        self.conv1 = SepConv(2 * in_half, out_half, 3, t_c)
        self.norm2 = RMSNorm(2 * out_half, groups=2)
        self.conv2 = SepConv(2 * out_half, out_half, 3, t_c)
        self.conv_shortcut = Conv3d(2 * in_half, 2 * out_half, 1) if in_half != out_half else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class FrameAttention(nn.Module):
    """Single-head self-attention over the H*W positions of each frame, with a residual. (B, C, T, H, W).

    ``norm``: the lab's RMSNorm, or the released tree's per-image one (reference ``AttentionBlock``)."""

    def __init__(self, channels: int, norm: type[nn.Module] | None = None):
        super().__init__()
        self.norm = (norm or RMSNorm)(channels)
        self.to_qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.to_qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=-1)  # (N, HW, C) each
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(1, 2).reshape(n, c, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(self._frames, x)


class SepAttention(nn.Module):
    """One :class:`FrameAttention` per half: (B, 2*C, T, H, W) -> same."""

    def __init__(self, half: int):
        super().__init__()
        self.keyframe = FrameAttention(half)
        self.temporal = FrameAttention(half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kf, tp = x.chunk(2, 1)
        return torch.cat([self.keyframe(kf), self.temporal(tp)], 1)


class SepDownsample(Streamable):
    """Space /2 on both halves (pad right/bottom, 3x3 stride-2 conv, per frame); with ``time`` also
    1 + 2m -> 1 + m frames: frame 0 passes alone, then the keyframe half keeps every other frame
    (the first of each pair) and the temporal half applies a learned (2,1,1) stride-2 conv per pair.
    (B, 2*C, T, H, W) -> (B, 2*C, T', H/2, W/2). Streaming only remembers whether frame 0 has passed.
    """

    def __init__(self, half: int, time: bool):
        super().__init__()
        self.time = time
        self.conv_kf = nn.Conv2d(half, half, 3, stride=2)
        self.conv_tp = nn.Conv2d(half, half, 3, stride=2)
        self.time_conv = Conv3d(half, half, (2, 1, 1), stride=(2, 1, 1)) if time else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kf, tp = x.chunk(2, 1)
        kf = per_frame(lambda v: self.conv_kf(F.pad(v, (0, 1, 0, 1))), kf)
        tp = per_frame(lambda v: self.conv_tp(F.pad(v, (0, 1, 0, 1))), tp)
        if self.time_conv is not None:
            n0 = 1 if self.first_chunk else 0
            self._store(True)
            if kf.shape[2] > n0:
                kf = torch.cat([kf[:, :, :n0], kf[:, :, n0::2]], 2)
                tp = torch.cat([tp[:, :, :n0], self.time_conv(tp[:, :, n0:])], 2)
        return torch.cat([kf, tp], 1)


class SepUpsample(Streamable):
    """Inverse of :class:`SepDownsample`. With ``time``: 1 + m -> 1 + 2m frames, frame 0 stays single,
    the keyframe half is repeated (nearest in time), the temporal half goes through a 1x1x1 conv to 2C
    channels that become two sub-frames (depth-to-time). Then per half nearest x2 in space and a 3x3
    conv to ``out_half`` channels. (B, 2*in_half, T, H, W) -> (B, 2*out_half, T', 2H, 2W).
    """

    def __init__(self, in_half: int, out_half: int, time: bool):
        super().__init__()
        self.time = time
        self.time_conv = Conv3d(in_half, 2 * in_half, 1) if time else None
        self.conv_kf = nn.Conv2d(in_half, out_half, 3, padding=1)
        self.conv_tp = nn.Conv2d(in_half, out_half, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kf, tp = x.chunk(2, 1)
        if self.time_conv is not None:
            n0 = 1 if self.first_chunk else 0
            self._store(True)
            if kf.shape[2] > n0:
                kf = torch.cat([kf[:, :, :n0], kf[:, :, n0:].repeat_interleave(2, dim=2)], 2)
                tp = torch.cat([tp[:, :, :n0], depth_to_time(self.time_conv(tp[:, :, n0:]))], 2)
        up = lambda conv: (lambda v: conv(F.interpolate(v, scale_factor=2.0, mode="nearest-exact")))  # noqa: E731
        return torch.cat([per_frame(up(self.conv_kf), kf), per_frame(up(self.conv_tp), tp)], 1)


class PAC(nn.Module):
    """Parallel atrous convs (the paper's TMPE head): a 1x1 and 3x3 convs with several dilations,
    concatenated and fused by a 1x1 conv; per frame. (B, C_in, T, H, W) -> (B, C_out, T, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, dilations: list[int]):
        super().__init__()
        self.branches = nn.ModuleList([nn.Conv2d(in_channels, out_channels, 1)] + [
            nn.Conv2d(in_channels, out_channels, 3, padding=d, dilation=d) for d in dilations])
        self.fuse = nn.Conv2d(out_channels * len(self.branches), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(lambda v: self.fuse(torch.cat([br(v) for br in self.branches], 1)), x)


class GroupFrameSelect(Streamable):
    """(B, 3 + 3, T, H, W) = [keyframe RGB | temporal RGB] -> (B, 3, T, H, W): frame 0 and the first frame
    of each 4-frame group from the keyframe head, the other frames from the temporal head."""

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        kf, tp = rgb.chunk(2, 1)
        n0 = 1 if self.first_chunk else 0
        self._store(True)
        pos = torch.arange(rgb.shape[2], device=rgb.device) - n0
        use_kf = (pos % 4 == 0) | (pos < 0)
        return torch.where(use_kf.view(1, 1, -1, 1, 1), kf, tp)


def _group_sizes(temporal_steps: list[bool]) -> list[int | None]:
    """GCConv group length t_c at each encoder level: 4 at full frame rate, halved per temporal step; None = 2D."""
    out, tc = [], 4
    for i in range(len(temporal_steps) + 1):
        out.append(tc if tc > 1 else None)
        if i < len(temporal_steps) and temporal_steps[i]:
            tc //= 2
    return out


class KTCEncoder(nn.Module):
    """(B, 3, 1 + 4k, H, W) -> moments (B, 2z, 1 + k, H/8, W/8), ordered [kf mean | tp mean | kf logvar | tp logvar]."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        d, mult, n = cfg["dim"], cfg["dim_mult"], cfg["num_res_blocks"]
        widths = [d * m for m in mult]
        tcs = _group_sizes(cfg["temporal_downsample"])
        self.z = cfg["latent_channels"]
        self.conv_in = SepConv(3, d, 3, t_c=tcs[0])
        self.levels = nn.ModuleList()
        c = d
        for i, w in enumerate(widths):
            level = nn.Module()
            level.resnets = nn.ModuleList(SepResBlock(c if j == 0 else w, w, tcs[i]) for j in range(n))
            level.downsample = SepDownsample(w, cfg["temporal_downsample"][i]) if i < len(widths) - 1 else None
            self.levels.append(level)
            c = w
        self.mid = nn.ModuleList([SepResBlock(c, c, None)] + ([SepAttention(c)] if cfg["mid_attention"] else [])
                                 + [SepResBlock(c, c, None)])
        self.norm_out = RMSNorm(2 * c, groups=2)
        # per half: mean and log-variance of z/2 channels -> 2z outputs = [kf (z) | tp (z)]
        self.head = PAC(2 * c, 2 * self.z, cfg["pac_dilations"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.levels:
            for r in level.resnets:
                h = r(h)
            if level.downsample is not None:
                h = level.downsample(h)
        for block in self.mid:
            h = block(h)
        kf, tp = self.head(F.silu(self.norm_out(h))).chunk(2, 1)
        (kf_mu, kf_lv), (tp_mu, tp_lv) = kf.chunk(2, 1), tp.chunk(2, 1)
        return torch.cat([kf_mu, tp_mu, kf_lv, tp_lv], 1)


class KTCDecoder(nn.Module):
    """z (B, z, 1 + k, h, w) -> [keyframe RGB | temporal RGB] (B, 6, 1 + 4k, 8h, 8w); ``select`` -> (B, 3, ...)."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        d, n = cfg["dim"], cfg["num_res_blocks"] + 1
        rev = [d * m for m in reversed(cfg["dim_mult"])]
        tup = list(reversed(cfg["temporal_downsample"]))
        tcs = list(reversed(_group_sizes(cfg["temporal_downsample"])))
        self.conv_in = nn.Conv2d(cfg["latent_channels"], 2 * rev[0], 3, padding=1)  # per frame, reads both halves
        c = rev[0]
        self.mid = nn.ModuleList([SepResBlock(c, c, None)] + ([SepAttention(c)] if cfg["mid_attention"] else [])
                                 + [SepResBlock(c, c, None)])
        self.levels = nn.ModuleList()
        for i, w in enumerate(rev):
            level = nn.Module()
            level.resnets = nn.ModuleList(SepResBlock(c if j == 0 else w, w, tcs[i]) for j in range(n))
            level.upsample = SepUpsample(w, rev[i + 1], tup[i]) if i < len(rev) - 1 else None
            self.levels.append(level)
            c = rev[i + 1] if i < len(rev) - 1 else w
        self.norm_out = RMSNorm(2 * c, groups=2)
        self.conv_out = SepConv(2 * c, 3, 3, t_c=tcs[-1])
        self.select = GroupFrameSelect()

    def heads(self, z: torch.Tensor) -> torch.Tensor:
        h = per_frame(self.conv_in, z)
        for block in self.mid:
            h = block(h)
        for level in self.levels:
            for r in level.resnets:
                h = r(h)
            if level.upsample is not None:
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.select(self.heads(z))

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight used by the adaptive GAN weight: the temporal head, which draws 3 of every 4 frames."""
        return self.conv_out.conv_3d.conv.weight


class IVVAE(CausalVideoVAE):
    """IV-VAE: keyframe/temporal split latent, group causal convolutions (see module docstring)."""

    card = CARD
    config_class = IVVAEConfig
    latent_branches = BRANCHES

    def __init__(self, config: IVVAEConfig | dict[str, Any] | None = None):
        cfg = IVVAEConfig.from_dict(config)
        super().__init__(cfg)
        tdown = cfg["temporal_downsample"]
        if len(tdown) != len(cfg["dim_mult"]) - 1 or 2 ** len(tdown) != CARD.spatial_factor or 2 ** sum(tdown) != 4:
            raise ValueError("iv-vae config must keep 4 levels with 2 temporal down-samplings (4x8x8), "
                             "as its card says")
        if cfg["latent_channels"] != CARD.latent_channels:
            raise ValueError(f"iv-vae's card fixes latent_channels = {CARD.latent_channels}")
        self.encoder = KTCEncoder(cfg)
        self.decoder = KTCDecoder(cfg)

    def moments(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        return self.encoder(x_bcthw)

    def zero_branch(self, z: Latent, branch: str | None) -> Latent:
        """z with the keyframe (channels :z/2) or temporal (z/2:) half set to 0; ``None`` returns z."""
        if branch is None:
            return z
        if branch not in BRANCHES:
            raise ValueError(f"zero_branch must be one of {BRANCHES} or None, got {branch!r}")
        half = z.main.shape[1] // 2
        main = z.main.clone()
        if branch == "keyframe":
            main[:, :half] = 0
        else:
            main[:, half:] = 0
        return z.with_main(main)

    def decode_chunk(self, z: Latent, zero_branch: str | None = None, **kwargs: Any) -> torch.Tensor:
        return self.decoder(self.zero_branch(z, zero_branch).main)

    def decode_heads(self, z: Latent, zero_branch: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Both RGB heads for every frame, before selection: (keyframe RGB, temporal RGB), each (B, 3, 1 + 4k, H, W)."""
        return tuple(self.decoder.heads(self.zero_branch(z, zero_branch).main).chunk(2, 1))  # type: ignore[return-value]


# --- the released architecture (ali-vilab/iv-vae models/vae3d.py, MIT) ------------------------------
#
# The published checkpoints (ModelScope wpy1999/iv-vae: ivvae_z{4,8,16}_dim64.pth, ivvae_z16_dim96.pth, plain
# state dicts) are the Wan-derived tree below, module for module and name for name, so a file loads with no
# renaming. Same two ideas as the lab model above (KTC halves, GCConv); what differs from the lab tree:
# full-width branches (dim 64 / 96), two ResNets per encoder level and three per decoder level, attention after
# the level-2 down-sampler and after every ResNet of the lowest level, PAC dilations (1, 3, 6, 9, 12) with its
# outputs regrouped per half, a 1x1 "conv1"/"conv2" around the latent, up-samplers that halve the width, the 1x1
# shortcuts as Sep convs, and the per-model latent scale/shift. The reference runs frame 0 and then 4-frame
# chunks with a one-frame cache per GCConv; every layer here is per frame except the GCConvs, so one shot over
# the whole clip gives the same numbers, and ``vaelab.streaming`` gives them again chunk by chunk.

@dataclass(frozen=True)
class ReleasedConfig(ModelConfig):
    """Constructor arguments of the reference ``VAutoencoder3d`` (``IV_VAE(z_dim, dim)`` fills the rest)."""

    family: ClassVar[str] = "iv-vae (released)"

    dim: int = 64
    z_dim: int = 16  # latent channels: z_dim/2 keyframe + z_dim/2 temporal
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()
    scale_factor: float = 1.0
    shift_factor: float = 0.0
    variant: str = ""  # released file stem, "" for other sizes

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.dim_mult) != 4:
            raise ValueError("the released IV-VAE has 4 levels (its t_c schedule and decoder widths assume them)")
        if self.z_dim % 2 or self.dim < 1:
            raise ValueError("IV-VAE needs an even z_dim (two halves) and dim >= 1")


# scale/shift per released file, as in the reference's IV_VAE()
RELEASED: dict[str, ReleasedConfig] = {
    "ivvae_z4_dim64": ReleasedConfig(64, 4, scale_factor=1.3196, shift_factor=0.1250, variant="ivvae_z4_dim64"),
    "ivvae_z8_dim64": ReleasedConfig(64, 8, scale_factor=1.0940, shift_factor=-0.0322, variant="ivvae_z8_dim64"),
    "ivvae_z16_dim64": ReleasedConfig(64, 16, scale_factor=0.9697, shift_factor=-0.1553, variant="ivvae_z16_dim64"),
    "ivvae_z16_dim96": ReleasedConfig(96, 16, scale_factor=0.7619, shift_factor=-0.0483, variant="ivvae_z16_dim96"),
}


class ReleasedGCConv(GroupCausalConv3d):
    """:class:`GroupCausalConv3d` holding its kernel as ``weight``/``bias`` (the reference subclasses nn.Conv3d)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, t_c: int = 4):
        Streamable.__init__(self)
        self.t_c, self.pad = t_c, kernel // 2
        ref = nn.Conv3d(in_channels, out_channels, (3, kernel, kernel))
        self.weight, self.bias = ref.weight, ref.bias

    def conv(self, x: torch.Tensor) -> torch.Tensor:  # what the parent's forward calls on the padded groups
        return F.conv3d(x, self.weight, self.bias, padding=(0, self.pad, self.pad))


class SepRMSNorm(nn.Module):
    """RMS norm of each half on its own: x_half / ||x_half||_C * sqrt(C) * gamma. (B, 2C, T, H, W)."""

    def __init__(self, half: int):
        super().__init__()
        self.half = half
        self.gamma = nn.Parameter(torch.ones(2 * half, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xr = F.normalize(x.unflatten(1, (2, self.half)), dim=2).flatten(1, 2)
        return xr * self.half ** 0.5 * self.gamma


class ImageRMSNorm(nn.Module):
    """RMS norm over channels of (N, C, H, W): x / ||x||_C * sqrt(C) * gamma."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * x.shape[1] ** 0.5 * self.gamma


class SepConv3d(nn.Module):
    """Reference ``Sep_Conv3d``: per-frame 2D conv -> keyframe half, GCConv (or 1x1x1 conv) -> temporal half;
    both read all input channels. (B, C_in, T, H, W) -> (B, out_2d + out_3d, T, H, W)."""

    def __init__(self, in_channels: int, out_2d: int, out_3d: int, kernel: int, t_c: int):
        super().__init__()
        self.conv_2d = nn.Conv2d(in_channels, out_2d, kernel, padding=kernel // 2)
        self.conv_3d = (ReleasedGCConv(in_channels, out_3d, kernel, t_c) if kernel > 1
                        else Conv3d(in_channels, out_3d, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([per_frame(self.conv_2d, x), self.conv_3d(x)], 1)


class SepConv2d(nn.Module):
    """Reference ``Sep_Conv2d`` / ``Sep_Conv2d_dilated``: one per-frame 2D conv over both halves."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=dilation * (kernel // 2), dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(self.conv, x)


class ReleasedResBlock(nn.Module):
    """norm -> SiLU -> conv -> norm -> SiLU -> dropout -> conv, plus a 1x1 Sep shortcut when the width changes.
    ``t_c=None``: the 2D variant (Sep_ResidualBlock_2d). (B, 2*in_half, T, H, W) -> (B, 2*out_half, T, H, W)."""

    def __init__(self, in_half: int, out_half: int, t_c: int | None):
        super().__init__()

        def conv(cin: int, k: int) -> nn.Module:
            return SepConv2d(2 * cin, 2 * out_half, k) if t_c is None else SepConv3d(2 * cin, out_half, out_half, k, t_c)

        self.residual = nn.Sequential(SepRMSNorm(in_half), nn.SiLU(), conv(in_half, 3),
                                      SepRMSNorm(out_half), nn.SiLU(), nn.Dropout(0.0), conv(out_half, 3))
        self.shortcut = conv(in_half, 1) if in_half != out_half else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class ReleasedSepAttention(nn.Module):
    """One attention per half (reference ``Sep_AttentionBlock``). (B, 2C, T, H, W) -> same."""

    def __init__(self, half: int):
        super().__init__()
        self.Attention_2d = FrameAttention(half, norm=ImageRMSNorm)
        self.Attention_3d = FrameAttention(half, norm=ImageRMSNorm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kf, tp = x.chunk(2, 1)
        return torch.cat([self.Attention_2d(kf), self.Attention_3d(tp)], 1)


class ReleasedResample(Streamable):
    """Reference ``Resample``. (B, 2*dim, T, H, W) ->

    * downsample2d/3d: space /2 per half (pad right/bottom, 3x3 stride 2); 3d also 1 + 2m -> 1 + m frames
      (frame 0 alone, then keyframe half keeps the first frame of each pair, temporal half a (2,1,1) stride-2 conv);
    * upsample2d/3d: 3d first doubles time (frame 0 stays single; keyframe half repeated, temporal half a 1x1x1
      conv to 2*dim channels, depth-to-time), then nearest x2 and a 3x3 conv to dim/2 per half -> (B, dim, ...).
    """

    def __init__(self, dim: int, mode: str):
        super().__init__()
        self.dim, self.mode = dim, mode
        if mode.startswith("up"):
            def branch() -> nn.Module:
                return nn.Sequential(nn.Upsample(scale_factor=(2.0, 2.0), mode="nearest-exact"),
                                     nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:
            def branch() -> nn.Module:
                return nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        self.resample_2d, self.resample_3d = branch(), branch()
        if mode == "upsample3d":
            self.time_conv = Conv3d(dim, 2 * dim, 1)
        elif mode == "downsample3d":
            self.time_conv = Conv3d(dim, dim, (2, 1, 1), stride=(2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n0 = 1 if self.first_chunk else 0
        self._store(True)
        kf, tp = x.chunk(2, 1)
        if self.mode == "upsample3d" and x.shape[2] > n0:
            kf = torch.cat([kf[:, :, :n0], kf[:, :, n0:].repeat_interleave(2, dim=2)], 2)
            tp = torch.cat([tp[:, :, :n0], depth_to_time(self.time_conv(tp[:, :, n0:]))], 2)
        kf, tp = per_frame(self.resample_2d, kf), per_frame(self.resample_3d, tp)
        if self.mode == "downsample3d" and x.shape[2] > n0:
            kf = torch.cat([kf[:, :, :n0], kf[:, :, n0::2]], 2)
            tp = torch.cat([tp[:, :, :n0], self.time_conv(tp[:, :, n0:])], 2)
        return torch.cat([kf, tp], 1)


class ReleasedPAC(nn.Module):
    """Reference ``PAC``: 1x1, 3x3 and dilated (3, 6, 9, 12) 3x3 convs over both halves; their keyframe halves,
    then their temporal halves, are concatenated and fused by a 1x1 conv. (B, 2C, T, H, W) -> (B, 2*out_half, ...)."""

    DILATIONS = (3, 6, 9, 12)

    def __init__(self, half: int, out_half: int):
        super().__init__()
        self.out_half = out_half
        self.PAC_0 = SepConv2d(2 * half, 2 * out_half, 1)
        self.PAC_1 = SepConv2d(2 * half, 2 * out_half, 3)
        for d in self.DILATIONS:
            setattr(self, f"PAC_{d}", SepConv2d(2 * half, 2 * out_half, 3, dilation=d))
        self.PAC_conv = SepConv2d(12 * out_half, 2 * out_half, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [getattr(self, f"PAC_{d}")(x) for d in (0, 1, *self.DILATIONS)]
        n = self.out_half
        return self.PAC_conv(torch.cat([o[:, :n] for o in outs] + [o[:, n:] for o in outs], 1))


def _released_encoder_t_c(level: int) -> int:
    return 2 if level == 2 else 4  # GCConv group length: 4 frames, 2 after the first temporal down-sampling


class ReleasedEncoder(nn.Module):
    """(B, 3, 1 + 4k, H, W) -> (B, 2 * z_dim, 1 + k, H/8, W/8) = [keyframe | temporal] PAC output."""

    def __init__(self, cfg: ReleasedConfig):
        super().__init__()
        d, mult, n = cfg.dim, cfg.dim_mult, cfg.num_res_blocks
        dims = [d * m for m in (1, *mult)]
        self.conv1 = SepConv3d(3, d, d, 3, t_c=4)
        blocks: list[nn.Module] = []
        scale = 1.0
        for i, (cin, cout) in enumerate(itertools.pairwise(dims)):
            last = i == len(mult) - 1
            for _ in range(n):
                blocks.append(ReleasedResBlock(cin, cout, None if last else _released_encoder_t_c(i)))
                if scale in cfg.attn_scales:
                    blocks.append(ReleasedSepAttention(cout))
                if last:
                    blocks.append(ReleasedSepAttention(cout))
                cin = cout
            if not last:
                blocks.append(ReleasedResample(cout, "downsample3d" if i >= 1 else "downsample2d"))
                scale /= 2.0
            if i == len(mult) - 2:
                blocks.append(ReleasedSepAttention(cout))
        self.downsamples = nn.Sequential(*blocks)
        c = dims[-1]
        self.middle = nn.Sequential(ReleasedResBlock(c, c, None), ReleasedSepAttention(c), ReleasedResBlock(c, c, None))
        self.head = nn.Sequential(SepRMSNorm(c), nn.SiLU(), ReleasedPAC(c, cfg.z_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.middle(self.downsamples(self.conv1(x))))


class ReleasedDecoder(nn.Module):
    """(B, z_dim, 1 + k, h, w) -> [keyframe RGB | temporal RGB] (B, 6, 1 + 4k, 8h, 8w); ``select`` picks per frame."""

    def __init__(self, cfg: ReleasedConfig):
        super().__init__()
        mult, n = cfg.dim_mult, cfg.num_res_blocks
        dims = [cfg.dim * m for m in (mult[-1], *reversed(mult))]
        scale = 1.0 / 2 ** (len(mult) - 2)
        self.conv1 = SepConv2d(cfg.z_dim, 2 * dims[0], 3)
        self.middle = nn.Sequential(ReleasedResBlock(dims[0], dims[0], None), ReleasedSepAttention(dims[0]),
                                    ReleasedResBlock(dims[0], dims[0], None))
        blocks: list[nn.Module] = []
        for i, (cin, cout) in enumerate(itertools.pairwise(dims)):
            if i > 0:
                cin //= 2  # the up-sampler before this level halved the width
            for _ in range(n + 1):
                blocks.append(ReleasedResBlock(cin, cout, None if i == 0 else (2 if i == 1 else 4)))
                if scale in cfg.attn_scales:
                    blocks.append(ReleasedSepAttention(cout))
                if i == 0:
                    blocks.append(ReleasedSepAttention(cout))
                cin = cout
            if i != len(mult) - 1:
                blocks.append(ReleasedResample(cout, "upsample3d" if i < 2 else "upsample2d"))
                scale *= 2.0
        self.upsamples = nn.Sequential(*blocks)
        self.head = nn.Sequential(SepRMSNorm(dims[-1]), nn.SiLU(), SepConv3d(2 * dims[-1], 3, 3, 3, t_c=4))
        self.select = GroupFrameSelect()

    def heads(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.upsamples(self.middle(self.conv1(z))))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.select(self.heads(z))


RELEASED_CARD_NOTE = ("released IV-VAE checkpoint (ali-vilab/iv-vae, MIT; ModelScope wpy1999/iv-vae, "
                      "ivvae_z{4,8,16}_dim64.pth / ivvae_z16_dim96.pth), loads exactly (parity-tested against the "
                      "reference code)")


class ReleasedIVVAE(CausalVideoVAE):
    """The published IV-VAE (reference ``VAutoencoder3d``), with the reference's state-dict names.

    ``encode`` returns the reference's latent with the posterior *mean* (the reference samples):
    ``scale_factor * (mean - shift_factor)``, (B, z_dim, 1 + k, H/8, W/8) = [keyframe z/2 | temporal z/2].
    """

    card = CARD
    latent_branches = BRANCHES

    def __init__(self, config: ReleasedConfig | dict[str, Any] | None = None):
        cfg = ReleasedConfig.from_dict(config if isinstance(config, ReleasedConfig) else
                                       {k: v for k, v in (config or {}).items() if k != "architecture"})
        super().__init__({"architecture": "released", **dataclasses.asdict(cfg)})
        self.released = cfg
        half = cfg.z_dim // 2
        self.encoder = ReleasedEncoder(cfg)
        self.conv1 = SepConv3d(2 * cfg.z_dim, cfg.z_dim, cfg.z_dim, 1, t_c=1)
        self.conv2 = SepConv3d(cfg.z_dim, half, half, 1, t_c=1)
        self.decoder = ReleasedDecoder(cfg)
        self.card = dataclasses.replace(copy.deepcopy(CARD), latent_channels=cfg.z_dim, weights=RELEASED_CARD_NOTE)
        self.card.params = self.num_params()

    def moments(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        """(B, 2 * z_dim, 1 + k, H/8, W/8) = [mean kf | mean tp | logvar kf | logvar tp]."""
        h = self.conv1(self.encoder(x_bcthw))  # [2D: mean kf, logvar kf | 3D: mean tp, logvar tp]
        (m_kf, lv_kf), (m_tp, lv_tp) = (p.chunk(2, 1) for p in h.chunk(2, 1))
        return torch.cat([m_kf, m_tp, lv_kf, lv_tp], 1)

    def encode_chunk(self, x_bcthw: torch.Tensor) -> Latent:
        return Latent(self.released.scale_factor * (self.posterior(x_bcthw).mode() - self.released.shift_factor))

    def zero_branch(self, z: Latent, branch: str | None) -> Latent:
        """The *unscaled* latent with one half set to 0 (see :meth:`IVVAE.zero_branch`)."""
        return IVVAE.zero_branch(self, z, branch)  # type: ignore[arg-type]

    def _unscale(self, z: Latent, zero_branch: str | None) -> torch.Tensor:
        """(B, z_dim, T', h, w): the decoder's input, one half zeroed if asked."""
        return self.zero_branch(z.with_main(z.main / self.released.scale_factor + self.released.shift_factor),
                                zero_branch).main

    def decode_chunk(self, z: Latent, zero_branch: str | None = None, **kwargs: Any) -> torch.Tensor:
        return self.decoder(self.conv2(self._unscale(z, zero_branch)))

    def decode_heads(self, z: Latent, zero_branch: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(self.decoder.heads(self.conv2(self._unscale(z, zero_branch))).chunk(2, 1))  # type: ignore[return-value]


def released_config_from_state(state: dict[str, torch.Tensor], source: str = "") -> ReleasedConfig:
    """The reference constructor arguments a released-layout state dict was built with, read off its shapes.

    Widths from the first conv of each encoder level, depth from the number of ResNets before the first
    down-sampler, attention scales from attention blocks after level ResNets. Scale/shift: the released file's
    (matched by ``z_dim``/``dim``, or by the file stem in ``source``), else 1 / 0.
    """
    from .base import WeightsError

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise WeightsError(f"not a released IV-VAE state dict: no {key}")
        return tuple(state[key].shape)

    dim = shape("encoder.conv1.conv_2d.weight")[0]
    z_dim = shape("conv2.conv_2d.weight")[1]
    kinds = []  # per encoder.downsamples entry: ("res", out_half) / ("attn", 0) / ("resample", 0)
    i = 0
    while any(k.startswith(f"encoder.downsamples.{i}.") for k in state):
        p = f"encoder.downsamples.{i}."
        if p + "residual.0.gamma" in state:
            w = state.get(p + "residual.2.conv_2d.weight", state.get(p + "residual.2.conv.weight"))
            if w is None:
                raise WeightsError(f"not a released IV-VAE state dict: {p}residual.2 has no conv weight")
            kinds.append(("res", int(w.shape[0]) // (1 if p + "residual.2.conv_2d.weight" in state else 2)))
        elif p + "Attention_2d.norm.gamma" in state:
            kinds.append(("attn", 0))
        else:
            kinds.append(("resample", 0))
        i += 1
    levels: list[list[tuple[str, int]]] = [[]]
    for kind in kinds:
        levels[-1].append(kind)
        if kind[0] == "resample":
            levels.append([])
    res_per_level = [[c for k, c in lv if k == "res"] for lv in levels]
    if len(levels) != 4 or not res_per_level[0] or any(len(r) != len(res_per_level[0]) for r in res_per_level):
        raise WeightsError(f"released IV-VAE layout not recognised: encoder.downsamples has {len(kinds)} entries "
                           "that do not form 4 levels of equal depth")
    if any(c % dim for r in res_per_level for c in r):
        raise WeightsError("released IV-VAE layout not recognised: level widths are not multiples of dim")
    mult = tuple(r[0] // dim for r in res_per_level)
    attn_scales = []
    for li, lv in enumerate(levels[:3]):  # an attention right after a level ResNet (not the fixed level-2 one)
        if any(a[0] == "res" and b[0] == "attn" for a, b in itertools.pairwise(lv)):
            attn_scales.append(1.0 / 2 ** li)
    known = next((c for c in RELEASED.values() if c.variant and c.variant in source), None)
    known = known or next((c for c in RELEASED.values() if (c.dim, c.z_dim) == (dim, z_dim)), None)
    scale, shift, variant = (known.scale_factor, known.shift_factor, known.variant) if known else (1.0, 0.0, "")
    return ReleasedConfig(dim, z_dim, mult, len(res_per_level[0]), tuple(attn_scales), scale, shift, variant)


def is_released_layout(state: dict[str, torch.Tensor]) -> bool:
    return "encoder.conv1.conv_2d.weight" in state and "encoder.head.2.PAC_conv.conv.weight" in state
