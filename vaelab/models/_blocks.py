"""Building blocks shared by the families (LDM / diffusers shapes and parameter names).

The module tree and parameter names follow diffusers' ``AutoencoderKL`` exactly
(``down_blocks.{i}.resnets.{j}.norm1``, ``mid_block.attentions.0.to_q`` ...), so an
official diffusers state dict loads with no conversion. VQGAN and LiteVAE reuse the same
encoder/decoder skeleton; only their bottleneck (and LiteVAE's encoder) differ.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn


def full_precision(x: torch.Tensor) -> ContextManager:
    """Autocast switched off on ``x``'s device for a computation that must stay float32 (VQ distances);
    nothing outside autocast (and on devices autocast does not know, e.g. meta)."""
    dev = x.device.type
    if dev in ("cpu", "cuda") and torch.is_autocast_enabled(dev):
        return torch.autocast(dev, enabled=False)
    return nullcontext()


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that takes oneDNN's CPU kernel where PyTorch's heuristic falls back to its reference loop.

    PyTorch (2.14) picks oneDNN for a float32 CPU convolution of batch 1 only if N*C*D*H > 20480: a rule
    written for 2D inputs that leaves out W for 3D ones, so a one-clip batch of a few frames at lab sizes
    runs ``slow_conv3d``, about 5x slower per clip here (docs/PERFORMANCE.md). This applies the rule to the
    whole input (N*C*D*H*W) and keeps PyTorch's choice for 1x1 spatial kernels. Same parameters and state
    dict; same gradients; outputs equal to float32 rounding."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # the direct oneDNN call below is no autocast op (it would run in float32, and so would every
            # layer after it): cast here as autocast casts a convolution, then dispatch in that dtype
            dt = torch.get_autocast_dtype("cpu")
            with torch.autocast("cpu", enabled=False):
                return self._dispatch(x.to(dt), weight.to(dt), None if bias is None else bias.to(dt))
        return self._dispatch(x, weight, bias)

    def _dispatch(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16) and self.padding_mode == "zeros"
                and not isinstance(self.padding, str) and x.numel() > 20480
                and (weight.shape[-1] != 1 or weight.shape[-2] != 1)
                and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
            return torch.ops.aten.mkldnn_convolution(x.contiguous(), weight.contiguous(), bias, list(self.padding),
                                                     list(self.stride), list(self.dilation), self.groups)
        return super()._conv_forward(x, weight, bias)


def _groups(channels: int, groups: int) -> int:
    """GroupNorm needs channels % groups == 0; fall back to the largest divisor <= groups."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


class ResnetBlock2D(nn.Module):
    """GroupNorm -> SiLU -> conv3x3 -> GroupNorm -> SiLU -> conv3x3, plus a (1x1) skip. (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 32, eps: float = 1e-6, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels, groups), in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(out_channels, groups), out_channels, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return skip + h


class Downsample2D(nn.Module):
    """Pad right/bottom by one, then 3x3 stride-2 conv (taming/diffusers asymmetric padding). H -> H/2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample2D(nn.Module):
    """Nearest x2 then 3x3 conv. H -> 2H."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Attention(nn.Module):
    """Single-head spatial self-attention over H*W positions with a residual (diffusers names)."""

    def __init__(self, channels: int, groups: int = 32, eps: float = 1e-6):
        super().__init__()
        self.group_norm = nn.GroupNorm(_groups(channels, groups), channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x_bchw: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x_bchw.shape
        seq_bnc = self.group_norm(x_bchw).flatten(2).transpose(1, 2)
        q, k, v = self.to_q(seq_bnc), self.to_k(seq_bnc), self.to_v(seq_bnc)
        out_bnc = F.scaled_dot_product_attention(q, k, v)
        out_bnc = self.to_out[1](self.to_out[0](out_bnc))
        return x_bchw + out_bnc.transpose(1, 2).reshape(b, c, h, w)


class MidBlock2D(nn.Module):
    """ResNet -> Attention -> ResNet at the lowest resolution."""

    def __init__(self, channels: int, groups: int, resnet: Callable[..., nn.Module], attention: bool = True):
        super().__init__()
        self.attentions = nn.ModuleList([Attention(channels, groups)] if attention else [])
        self.resnets = nn.ModuleList([resnet(channels, channels, groups), resnet(channels, channels, groups)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        for attn in self.attentions:
            x = attn(x)
        return self.resnets[1](x)


class DownEncoderBlock2D(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, layers: int, groups: int, add_downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(in_ch if i == 0 else out_ch, out_ch, groups) for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(out_ch)]) if add_downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for r in self.resnets:
            x = r(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
        return x


class UpDecoderBlock2D(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, layers: int, groups: int, add_upsample: bool, resnet: Callable[..., nn.Module]):
        super().__init__()
        self.resnets = nn.ModuleList([resnet(in_ch if i == 0 else out_ch, out_ch, groups) for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(out_ch)]) if add_upsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for r in self.resnets:
            x = r(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class Encoder(nn.Module):
    """x (B, 3, H, W) -> features (B, out_channels, H/2^(L-1), W/2^(L-1)), L = len(block_out_channels)."""

    def __init__(self, in_channels: int, out_channels: int, block_out_channels: list[int], layers_per_block: int,
                 norm_num_groups: int, mid_attention: bool = True):
        super().__init__()
        chs = block_out_channels
        self.conv_in = nn.Conv2d(in_channels, chs[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            DownEncoderBlock2D(chs[max(i - 1, 0)], chs[i], layers_per_block, norm_num_groups, add_downsample=i < len(chs) - 1)
            for i in range(len(chs))
        )
        self.mid_block = MidBlock2D(chs[-1], norm_num_groups, ResnetBlock2D, attention=mid_attention)
        self.conv_norm_out = nn.GroupNorm(_groups(chs[-1], norm_num_groups), chs[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(chs[-1], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.down_blocks:
            h = block(h)
        h = self.mid_block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class Decoder(nn.Module):
    """z (B, C_z, h, w) -> x (B, 3, h*2^(L-1), w*2^(L-1)); ``layers_per_block + 1`` ResNets per level, as in LDM.

    ``resnet`` lets LiteVAE swap in self-modulated blocks; ``norm_out`` lets it drop GroupNorm.
    """

    def __init__(self, in_channels: int, out_channels: int, block_out_channels: list[int], layers_per_block: int,
                 norm_num_groups: int, mid_attention: bool = True,
                 resnet: Callable[..., nn.Module] = ResnetBlock2D, norm_out: nn.Module | None = None):
        super().__init__()
        rev = list(reversed(block_out_channels))
        self.conv_in = nn.Conv2d(in_channels, rev[0], 3, padding=1)
        self.mid_block = MidBlock2D(rev[0], norm_num_groups, resnet, attention=mid_attention)
        self.up_blocks = nn.ModuleList(
            UpDecoderBlock2D(rev[max(i - 1, 0)], rev[i], layers_per_block + 1, norm_num_groups,
                             add_upsample=i < len(rev) - 1, resnet=resnet)
            for i in range(len(rev))
        )
        self.conv_norm_out = norm_out if norm_out is not None else nn.GroupNorm(_groups(rev[-1], norm_num_groups), rev[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(rev[-1], out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            h = block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight used by the adaptive GAN weight (taming)."""
        return self.conv_out.weight


class DiagonalGaussian:
    """Posterior from (B, 2C, ...) moments: mean and log-variance (clamped to [-30, 20], as LDM)."""

    def __init__(self, moments: torch.Tensor):
        if moments.dtype in (torch.float16, torch.bfloat16):
            moments = moments.float()  # KL and sampling in float32 under autocast (float64 stays float64)
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self) -> torch.Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL to N(0, I), summed over all but the batch dim: (B,)."""
        kl = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return kl.flatten(1).sum(1)
