"""Causal 3D building blocks for the causal video VAEs (W.A.L.T, IV-VAE), and their streaming cache.

Causal in time means: output frame t depends only on input frames <= t. A 3D convolution with a
temporal kernel k_t becomes causal by padding k_t - 1 frames *in front* of the clip (here: copies
of the first frame) and none behind. Stack such layers with stride-2 temporal down-sampling and a
clip of 1 + 4k frames gives 1 + k latent frames, where latent 0 sees frame 0 alone (an image is a
one-frame video) and latent j sees frames <= 4j:

    frames   0 | 1 2 3 4 | 5 6 7 8 | ...     (1 + 4k)
    latents  0 |    1    |    2    | ...     (1 + k)

Streaming. Because a causal layer never looks ahead, a long clip can be pushed through chunk by
chunk (frame 0 alone, then 4n frames at a time) if every layer remembers the few frames of its
*input* that the next chunk's first outputs still need. Each module that needs such context
subclasses :class:`Streamable` and owns one cache slot; ``with streaming(model):`` switches all of
them into streaming mode and empties the slots (again on exit). Inside the block, every call
is "the next chunk of the same clip". What each module keeps:

    CausalConv3d          the unconsumed tail of its padded input (k_t - 1 frames for stride 1,
                          1 frame for k_t = 3, stride 2)
    CausalUpsample        a flag "first frame already emitted" (its time conv keeps its own tail)
    GroupCausalConv3d     the last frame of the previous group (IV-VAE; see iv_vae.py)

So memory is one chunk plus a few frames per layer, independent of clip length, and the result is
*exactly* the one-shot result, provided no layer pools statistics over time. That is why the norm
here is :class:`RMSNorm` (per position, over channels): GroupNorm over (C, T, H, W) would make
frame 0's output depend on frame 40's statistics, breaking both causality and exact streaming.

Shapes are (B, C, T, H, W) throughout.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import Conv3d, DiagonalGaussian
from .base import VAE, pad_to_rule
from .latent import Latent
from .layout import depth_to_time, upsample_nearest_2x

# --- the streaming cache ------------------------------------------------------------------------

class Streamable(nn.Module):
    """A module with one cache slot that is used only inside ``with streaming(model):``.

    Outside streaming the module is a pure function of the whole clip it is given (and
    ``first_chunk`` is always True: the clip starts with frame 0).
    """

    def __init__(self) -> None:
        super().__init__()
        self._streaming = False
        self._cache: Any = None

    def _reset_stream(self, on: bool) -> None:
        self._streaming = on
        self._cache = None

    @property
    def first_chunk(self) -> bool:
        """Does the incoming chunk start the clip (hold frame 0)?"""
        return not self._streaming or self._cache is None

    def _store(self, value: Any) -> None:
        if self._streaming:
            # a copy, not a view: a slice of the chunk's activation would keep the whole chunk's storage alive
            # (one per layer, and per tile when tiled), which is most of the streaming memory at 720p
            self._cache = value.detach().clone() if isinstance(value, torch.Tensor) else value


@contextmanager
def streaming(model: nn.Module) -> Iterator[nn.Module]:
    """Every :class:`Streamable` inside ``model`` treats successive calls as chunks of one clip.

    Caches are emptied at entry and at exit, so a block always starts a new clip.
    """
    mods = [m for m in model.modules() if isinstance(m, Streamable)]
    if any(m._streaming for m in mods):
        raise RuntimeError("model is already streaming; finish the other clip first")
    for m in mods:
        m._reset_stream(True)
    try:
        yield model
    finally:
        for m in mods:
            m._reset_stream(False)


def is_streaming(model: nn.Module) -> bool:
    return any(m._streaming for m in model.modules() if isinstance(m, Streamable))


def cache_numel(model: nn.Module) -> int:
    """Number of tensor elements held in the streaming caches right now (the streaming memory cost)."""
    return sum(m._cache.numel() for m in model.modules()
               if isinstance(m, Streamable) and isinstance(m._cache, torch.Tensor))


# --- layers -------------------------------------------------------------------------------------

def _triple(k: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (k, k, k) if isinstance(k, int) else tuple(k)  # type: ignore[return-value]


class CausalConv3d(Streamable):
    """3D conv, causal in time: k_t - 1 copies of the first frame in front, zeros around space.

    (B, C_in, T, H, W) -> (B, C_out, T', H', W') with T' = T for stride 1 and
    T' = (T - 1) // 2 + 1 for stride 2 (1 + 2k -> 1 + k: output j reads inputs 2j - 2 .. 2j, and
    output 0 reads frame 0 only). Space: "same" padding, optional spatial stride 2 (H -> H / 2
    for even H).

    Streaming: the input is padded with the cached tail of the previous chunk instead of copies
    of frame 0, and the part of the padded input that no output window has started on yet is
    kept for the next chunk. That rule is exact for any kernel/stride, as long as chunks hold a
    multiple of the stride (frame 0 alone, then 4n frames, as streaming.py does).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int | tuple[int, int, int] = 3,
                 stride: int = 1, spatial_stride: int = 1, bias: bool = True):
        super().__init__()
        kt, kh, kw = _triple(kernel)
        self.kt, self.stride = kt, stride
        self.conv = Conv3d(in_channels, out_channels, (kt, kh, kw), stride=(stride, spatial_stride, spatial_stride),
                              padding=(0, kh // 2, kw // 2), bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first_chunk:
            front = x[:, :, :1].expand(-1, -1, self.kt - 1, -1, -1)
        else:
            front = self._cache
        padded = torch.cat([front, x], 2) if front.shape[2] else x
        y = self.conv(padded)
        self._store(padded[:, :, y.shape[2] * self.stride:])
        return y

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight


class RMSNorm(nn.Module):
    """x / sqrt(mean_c x^2 + eps) * gain, per position (no statistics over T, H or W).

    ``groups`` > 1 normalises each channel group on its own (IV-VAE: keyframe half and temporal
    half separately). Works on (B, C, ...) of any rank.
    """

    def __init__(self, channels: int, groups: int = 1, eps: float = 1e-6):
        super().__init__()
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} groups")
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        xg = x.reshape(b, self.groups, c // self.groups, *x.shape[2:])
        gain = self.weight.view(1, c, *([1] * (x.dim() - 2)))
        if x.dtype in (torch.float16, torch.bfloat16):  # statistics in float32, output in the input's dtype
            inv = torch.rsqrt(xg.float().pow(2).mean(2, keepdim=True) + self.eps).to(x.dtype)
            return (xg * inv).reshape(x.shape) * gain.to(x.dtype)
        xg = xg * torch.rsqrt(xg.pow(2).mean(2, keepdim=True) + self.eps)
        return xg.reshape(x.shape) * gain


class CausalResBlock3d(nn.Module):
    """RMSNorm -> SiLU -> causal conv 3x3x3 -> RMSNorm -> SiLU -> causal conv 3x3x3, plus a (1x1x1) skip.

    (B, C_in, T, H, W) -> (B, C_out, T, H, W); the MAGVIT-v2 ResNet block with GroupNorm swapped for RMSNorm.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = RMSNorm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3)
        self.norm2 = RMSNorm(out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3)
        self.conv_shortcut = Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class CausalDownsample(nn.Module):
    """Stride-2 causal conv 3x3x3: space H -> H/2 and, if ``time``, 1 + 2k -> 1 + k frames (frame 0 kept alone).

    With ``time`` the first output frame reads only frame 0 (three copies of it), output j >= 1
    reads frames 2j - 2 .. 2j, so two of these take 1 + 4k frames to 1 + k.
    """

    def __init__(self, channels: int, time: bool = True, space: bool = True):
        super().__init__()
        self.time, self.space = time, space
        self.conv = CausalConv3d(channels, channels, 3, stride=2 if time else 1, spatial_stride=2 if space else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CausalUpsample(Streamable):
    """Inverse of :class:`CausalDownsample`: time 1 + k -> 1 + 2k (depth-to-time), space H -> 2H.

    Time: a causal conv emits 2C channels per frame, which become two sub-frames (depth-to-time);
    latent frame 0 stands for frame 0 alone, so its first sub-frame is dropped. Sub-frame 1 of
    latent j lands on frame 2j, sub-frame 0 on frame 2j - 1, mirroring the encoder. In streaming
    only the clip's first chunk drops a frame. The two halves of the time conv start with equal
    weights, i.e. as a learned "repeat each frame twice".
    Space: nearest x2, then a causal 3x3x3 conv.
    """

    def __init__(self, channels: int, time: bool = True, space: bool = True):
        super().__init__()
        self.time, self.space = time, space
        self.time_conv = CausalConv3d(channels, 2 * channels, 3) if time else None
        if self.time_conv is not None:
            with torch.no_grad():
                w, b = self.time_conv.conv.weight, self.time_conv.conv.bias
                w[channels:].copy_(w[:channels])
                b[channels:].copy_(b[:channels])
        self.conv = CausalConv3d(channels, channels, 3) if space else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_conv is not None:
            first = self.first_chunk
            x = depth_to_time(self.time_conv(x))
            if first:
                x = x[:, :, 1:]
            self._store(True)
        if self.conv is not None:
            x = self.conv(upsample_nearest_2x(x))
        return x


# --- shared model plumbing ------------------------------------------------------------------------

def check_frames(t: int, rule: str = "1+4k") -> None:
    if rule == "1+4k" and (t < 1 or (t - 1) % 4):
        raise ValueError(f"a causal video VAE needs 1 + 4k frames (1, 5, 9, 13, 17, ...), got {t}; "
                         "use reconstruct() (it pads and crops) or vaelab.models.base.pad_to_rule")


class CausalVideoVAE(VAE):
    """What the causal video families share: 1 + 4k frame check, Gaussian posterior, KL-weighted forward.

    Subclasses implement ``moments(x) -> (B, 2C, T', H', W')`` and ``decode_chunk(z: Latent) -> x``.
    ``encode_chunk`` / ``decode_chunk`` skip the frame check so streaming.py can feed frame 0
    alone and then 4n-frame chunks inside ``with streaming(model)``.
    """

    def moments(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode_chunk(self, z: Latent, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError

    def posterior(self, x_bcthw: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.moments(x_bcthw))

    @property
    def streams_causally(self) -> bool:
        return True

    def encode_chunk(self, x_bcthw: torch.Tensor) -> Latent:
        return Latent(self.posterior(x_bcthw).mode())

    def encode(self, x_bcthw: torch.Tensor) -> Latent:
        """(B, 3, 1 + 4k, H, W), H and W multiples of 8 -> (B, C, 1 + k, H/8, W/8), the posterior mean."""
        check_frames(x_bcthw.shape[2], self.card.frame_rule)
        return self.encode_chunk(x_bcthw)

    def decode(self, z: Latent, **kwargs: Any) -> torch.Tensor:
        """main (B, C, 1 + k, h, w) -> (B, 3, 1 + 4k, 8h, 8w)."""
        return self.decode_chunk(z, **kwargs)

    def forward(self, x_bcthw: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training: pads to 1 + 4k frames / multiples of 8 if needed, samples z, returns the KL (weighted)."""
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, self.card.spatial_factor, self.card.frame_rule)
        post = self.posterior(x_pad)
        recon = self.decode_chunk(Latent(post.sample()))[:, :, :t, :h, :w]
        # KL summed over (C, T', H', W') per clip, divided by the clip's pixel count: the same per-pixel
        # normalisation as the image families, so a given kl_weight means the same thing across the lab.
        tp, hp, wp = x_pad.shape[2:]
        kl = post.kl().mean() / (3 * tp * hp * wp)
        return recon, {"kl": self.config["kl_weight"] * kl}
