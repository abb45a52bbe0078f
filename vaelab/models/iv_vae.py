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

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import Conv3d
from ._causal import CausalVideoVAE, RMSNorm, Streamable, depth_to_time
from .base import ModelCard, Paper

LAB_CONFIG: dict[str, Any] = {
    "dim": 12,  # width of each branch at level 0 (12 -> 2.6 M params, on a par with walt; the paper uses 64 or 96)
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 1,  # encoder; the decoder gets one more per level
    "temporal_downsample": [False, True, True],
    "latent_channels": 8,  # 4 keyframe + 4 temporal
    "pac_dilations": [1, 3, 6],
    "mid_attention": True,
    "kl_weight": 1e-6,
    "scaling_factor": 1.0,
}

CARD = ModelCard(
    name="iv-vae",
    family="IV-VAE",
    paper=Paper("Improved Video VAE for Latent Video Diffusion Model", "CVPR", 2025,
                "https://arxiv.org/abs/2411.06449"),
    kind="video",
    spatial_factor=8,
    temporal_factor=4,
    latent_channels=8,
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


def per_frame(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D module to every frame: (B, C, T, H, W) -> (B, C', T, H', W')."""
    b, c, t, h, w = x.shape
    y = fn(x.transpose(1, 2).reshape(b * t, c, h, w))
    return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


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
    """Single-head self-attention over the H*W positions of each frame, with a residual. (B, C, T, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = RMSNorm(channels)
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
    latent_branches = BRANCHES

    def __init__(self, config: dict[str, Any] | None = None):
        cfg = {**LAB_CONFIG, **(config or {})}
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

    def zero_branch(self, z: torch.Tensor, branch: str | None) -> torch.Tensor:
        """z with the keyframe (channels :z/2) or temporal (z/2:) half set to 0; ``None`` returns z."""
        if branch is None:
            return z
        if branch not in BRANCHES:
            raise ValueError(f"zero_branch must be one of {BRANCHES} or None, got {branch!r}")
        half = z.shape[1] // 2
        z = z.clone()
        if branch == "keyframe":
            z[:, :half] = 0
        else:
            z[:, half:] = 0
        return z

    def decode_chunk(self, z: torch.Tensor, zero_branch: str | None = None, **kwargs: Any) -> torch.Tensor:
        return self.decoder(self.zero_branch(z, zero_branch))

    def decode_heads(self, z: torch.Tensor, zero_branch: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Both RGB heads for every frame, before selection: (keyframe RGB, temporal RGB), each (B, 3, 1 + 4k, H, W)."""
        return tuple(self.decoder.heads(self.zero_branch(z, zero_branch)).chunk(2, 1))  # type: ignore[return-value]
