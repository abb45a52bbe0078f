"""HVDM (Kim, Lee, Park et al., "Hybrid Video Diffusion Models with 2D Triplane and 3D Wavelet Representation",
ECCV 2024).

HVDM's autoencoder builds its latent from two views of the clip and fuses them:

* **Triplane branch (global).** A TimeSformer turns the clip into a feature volume, then three
  small Transformers each summarise it along one axis with a CLS token: along t (one vector per
  pixel -> an h x w plane, a "mean frame"), along h (per frame and column -> a t x w plane) and along
  w (per frame and row -> a t x h plane); the latter two look like motion "slices". The planes are
  broadcast back along their missing axis and summed into a volume again.
* **Wavelet branch (local, frequency-aware).** A fixed 3D Haar transform splits the clip into 8
  sub-bands at half resolution in t, h and w: LLL (the smooth low band) and 7 high bands. Small 3D
  conv stacks (kernels 1 x 3 x 3) turn the low band and, separately, the 7 high bands (21 channels)
  into features on the latent grid, repeated x2 in time to the full frame rate.
* **Fusion by cross-attention:** queries from the triplane volume, **keys from the low-band
  features, values from the high-band features** -- the smooth band decides where to look, the
  detail bands supply what is copied -- along time at each position, then in space inside each frame,
  then an MLP and a tanh.

A 1x1x1 projection to 4 channels and a **tanh** give a deterministic latent bounded in (-1, 1)
(no KL), with **no temporal compression**. A TimeSformer decoder maps it back to pixels.

Shapes (lab config: patch 8, width 64, for a 16 x 64 x 64 clip):

    x (B, 3, T, H, W)
      triplane: PatchEmbed (1, 8, 8) -> 2 TimeSformer blocks -> V (B, T, h, w, D)    16 x 8 x 8 x 64, h = H/8
        -> along t: plane "hw" (B, D, h, w)   along h: plane "tw" (B, D, T, w)   along w: plane "th" (B, D, T, h)
        -> broadcast + sum -> P (B, T, h, w, D)
      wavelet: dwt3(x) -> 8 bands (B, 3, T/2, H/2, W/2)
        LLL (3 ch) -> conv stack (two spatial stride-2) -> L (B, D, T/2, h, w) -> repeat x2 in t
        7 high bands (21 ch) -> same stack          -> Hf (B, D, T/2, h, w) -> repeat x2 in t
      fusion: q = P, k = L, v = Hf: temporal cross-attn, spatial cross-attn, MLP, tanh
      -> Linear D -> 4, tanh -> z (B, 4, T, H/8, W/8) in (-1, 1)                    4 x 16 x 8 x 8
      decoder: Linear 4 -> D -> 2 TimeSformer blocks -> Unpatchify -> 2 sigmoid - 1 -> (B, 3, T, H, W)

Ablations (``mode``): "fused" (the model), "triplane" (the wavelet branch is *zeroed*: keys and
values of the fusion are zero feature maps), "wavelet" (the triplane branch is zeroed: the fusion's
queries are a zero volume, so attention is steered by the low band alone). Fusion, bottleneck and
decoder are the same modules in every mode. Set ``config["mode"]`` to *train* an ablated model (the
zeroed branch then gets no gradient), or pass ``mode=`` to ``encode``/``reconstruct``/``forward`` to
switch a branch off in a trained fused model (out of distribution: it shows how much each branch
carries, not what an ablated model would reach).

Frame rule "any": there is no temporal compression, so padding T to 4k would only add latent
frames. The one constraint, the Haar's even length in time, is met inside the wavelet branch:
an odd clip gets its last frame replicated before the DWT and the extra feature frame is dropped
after the x2 repeat. Spatial sizes must be multiples of 8 (``reconstruct`` pads). As the paper's
autoencoder works on 16-frame clips (``timesteps 16``), ``encode``/``decode`` code a longer clip as
independent chunks of ``chunk_frames`` = 16 frames (the triplane's "mean frame" is per chunk).

Losses: ``forward`` adds HVDM's frequency supervision, an L1 on all 8 Haar sub-bands of recon vs
input, ``wavelet3d_weight`` x mean over the bands. The paper weighs pixel L1 by 4 and each band by
4/8, i.e. mean-over-bands : pixel L1 = 1 : 1, the default here (the shared loop supplies the
pixel L1). There is no KL: the latent is deterministic.

Lab deviations: widths 64 instead of 384, TimeSformer depth 2 + 2 (paper 5 + 5), axis-pooling
Transformers of depth 1 (paper 4), wavelet conv stacks 3 -> 16 -> 32 -> 64 (+1 mid conv) with SiLU
(paper: up to 768 with tanh), fusion depth 1 (paper 2); RoPE everywhere instead of learned position
tables, so any size works; no LPIPS / GAN (the shared loop's L1 + 2D wavelet loss instead).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .wavelets import BANDS_3D, dwt3
from ._blocks import Conv3d, _groups
from ._transformer import (Attention, FeedForward, PatchEmbed3d, STTransformer, Unpatchify, fixed_chunks,
                           grid_positions)
from .base import VAE, ModelCard, Paper, pad_to_rule

MODES = ("fused", "triplane", "wavelet")
HIGH_BANDS = tuple(b for b in BANDS_3D if b != "LLL")

LAB_CONFIG: dict[str, Any] = {
    "patch_size": 8,  # tokens and latent at H/8 (the paper: patch 8 at 256 px -> 32 x 32)
    "width": 64,
    "heads": 4,
    "encoder_depth": 2,  # TimeSformer blocks before the triplane pooling
    "decoder_depth": 2,
    "pool_depth": 1,  # per axis-pooling Transformer
    "wavelet_channels": [16, 32, 64],  # conv stack after the DWT; each step after the first halves H and W
    "fusion_depth": 1,
    "latent_channels": 4,
    "mode": "fused",  # "fused" | "triplane" | "wavelet" (ablations: the other branch is zeroed)
    "chunk_frames": 16,  # clips are coded in independent chunks of this many frames (the paper's timesteps 16)
    "wavelet3d_weight": 1.0,  # paper: pixel L1 x 4 + each of 8 bands x 4/8 -> mean over bands : pixel = 1 : 1
    "scaling_factor": 1.0,
}

CARD = ModelCard(
    name="hvdm",
    family="HVDM",
    paper=Paper("Hybrid Video Diffusion Models with 2D Triplane and 3D Wavelet Representation", "ECCV", 2024,
                "https://arxiv.org/abs/2402.13729"),
    kind="video",
    spatial_factor=8,
    temporal_factor=1,
    latent_channels=4,
    causal=False,
    frame_rule="any",
    teaching=(
        "Two ways to look at a clip, fused. The triplane branch squeezes the video along each axis: along time you "
        "get a 'mean frame', along height and width you get slices that show motion as streaks. The wavelet "
        "branch splits the clip into a smooth part and 7 detail bands (edges in space, changes in time). "
        "Cross-attention fuses them: the triplane asks, the smooth band decides where to look, the detail bands "
        "answer. The latent is squashed by tanh into (-1, 1) and keeps every frame (only 8x8 pixels -> 4 numbers). "
        "Switch a branch off and compare the reconstructions."
    ),
    idea="Deterministic tanh-bounded video latent (4 ch, 8x spatial, no temporal compression) fusing a triplane "
         "(axis-pooled TimeSformer features) with 3D Haar wavelet features by cross-attention (q = triplane, "
         "k = low band, v = high bands); wavelet-domain L1 as frequency supervision.",
    architecture="TimeSformer (patch 8, width 64, 2 blocks) -> CLS-pooling Transformers along t, h, w -> 3 planes, "
                 "summed back to a volume; Haar DWT -> conv stacks for LLL and the 7 high bands (H/8, repeated x2 "
                 "in time); fusion: temporal + spatial cross-attention, MLP, tanh -> Linear 64 -> 4, tanh; decoder: "
                 "Linear 4 -> 64, 2 TimeSformer blocks, unpatchify, 2 sigmoid - 1.",
)


class AxisPool(nn.Module):
    """Summarise sequences with a learnable CLS token: (N, L, D) -> (N, D). RoPE positions: CLS 0, tokens 1..L."""

    def __init__(self, dim: int, heads: int, depth: int):
        super().__init__()
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            layer = nn.Module()
            layer.norm1, layer.attn = nn.LayerNorm(dim), Attention(dim, heads)
            layer.norm2, layer.mlp = nn.LayerNorm(dim), FeedForward(dim)
            self.layers.append(layer)
        self.norm = nn.LayerNorm(dim)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        n, l, d = seq.shape
        x = torch.cat([self.cls.to(seq.dtype).expand(n, 1, d), seq], 1)
        pos = torch.arange(l + 1, device=seq.device)
        for layer in self.layers:
            x = x + layer.attn(layer.norm1(x), q_pos=pos, k_pos=pos)
            x = x + layer.mlp(layer.norm2(x))
        return self.norm(x[:, 0])


def _conv_stack(in_ch: int, widths: list[int], extra_mid: bool = True) -> nn.Sequential:
    """Conv3d (1, 3, 3) layers with GroupNorm + SiLU; every layer after the first has spatial stride 2."""
    layers: list[nn.Module] = []
    c = in_ch
    for i, w in enumerate(widths):
        stride = (1, 1, 1) if i == 0 else (1, 2, 2)
        layers += [Conv3d(c, w, (1, 3, 3), stride=stride, padding=(0, 1, 1)),
                   nn.GroupNorm(_groups(w, 8), w), nn.SiLU()]
        c = w
    if extra_mid:
        layers.append(Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1)))
    return nn.Sequential(*layers)


class FusionLayer(nn.Module):
    """Cross-attention fusion on (B, T, h, w, D): q from the triplane volume, k from the low-band features,
    v from the high-band features.

    Temporal cross-attention (sequences along T at each position), spatial cross-attention
    (sequences over h*w inside each frame), then an MLP; residuals on the query stream.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_qt, self.norm_kt, self.norm_vt = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn_t = Attention(dim, heads)
        self.norm_qs, self.norm_ks, self.norm_vs = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn_s = Attention(dim, heads)
        self.norm_mlp, self.mlp = nn.LayerNorm(dim), FeedForward(dim)

    def forward(self, q: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        b, t, h, w, d = q.shape

        def along_t(x: torch.Tensor) -> torch.Tensor:
            return x.permute(0, 2, 3, 1, 4).reshape(b * h * w, t, d)

        pos = torch.arange(t, device=q.device)
        out = self.attn_t(along_t(self.norm_qt(q)), along_t(self.norm_kt(low)), along_t(self.norm_vt(high)),
                          q_pos=pos, k_pos=pos)
        q = q + out.reshape(b, h, w, t, d).permute(0, 3, 1, 2, 4)
        pos = grid_positions(h, w, q.device)
        out = self.attn_s(self.norm_qs(q).reshape(b * t, h * w, d), self.norm_ks(low).reshape(b * t, h * w, d),
                          self.norm_vs(high).reshape(b * t, h * w, d), q_pos=pos, k_pos=pos)
        q = q + out.reshape(b, t, h, w, d)
        return q + self.mlp(self.norm_mlp(q))


class HVDMDecoder(nn.Module):
    """z (B, 4, T, h, w) -> Linear 4 -> D -> TimeSformer -> Unpatchify -> 2 sigmoid - 1 -> (B, 3, T, h*p, w*p)."""

    def __init__(self, latent_channels: int, dim: int, depth: int, heads: int, patch: int):
        super().__init__()
        self.post_quant = nn.Linear(latent_channels, dim)
        self.transformer = STTransformer(dim, depth, heads, "time-space")
        self.to_pixels = Unpatchify(dim, patch)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        tokens = self.post_quant(z.permute(0, 2, 3, 4, 1))
        return 2 * torch.sigmoid(self.to_pixels(self.transformer(tokens))) - 1

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight used by the adaptive GAN weight (taming)."""
        return self.to_pixels.weight


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return mode


class HVDMEncoder(nn.Module):
    """Triplane branch + wavelet branch -> cross-attention fusion -> Linear D -> latent, tanh."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        d, p, heads = cfg["width"], cfg["patch_size"], cfg["heads"]
        widths = list(cfg["wavelet_channels"])
        self.width, self.patch = d, p
        # triplane branch
        self.patch_embed = PatchEmbed3d(p, d)
        self.transformer = STTransformer(d, cfg["encoder_depth"], heads, "time-space")
        self.pool_t, self.pool_h, self.pool_w = (AxisPool(d, heads, cfg["pool_depth"]) for _ in range(3))
        # wavelet branch
        self.low_stack = _conv_stack(3, widths)
        self.high_stack = _conv_stack(3 * len(HIGH_BANDS), widths)
        # fusion and bottleneck
        self.fusion = nn.ModuleList(FusionLayer(d, heads) for _ in range(cfg["fusion_depth"]))
        self.quant = nn.Linear(d, cfg["latent_channels"])

    # triplane branch
    def planes(self, x_bcthw: torch.Tensor) -> dict[str, torch.Tensor]:
        v = self.transformer(self.patch_embed(x_bcthw))
        b, t, h, w, d = v.shape
        hw = self.pool_t(v.permute(0, 2, 3, 1, 4).reshape(b * h * w, t, d)).reshape(b, h, w, d)
        tw = self.pool_h(v.permute(0, 1, 3, 2, 4).reshape(b * t * w, h, d)).reshape(b, t, w, d)
        th = self.pool_w(v.reshape(b * t * h, w, d)).reshape(b, t, h, d)
        return {"hw": hw.permute(0, 3, 1, 2), "tw": tw.permute(0, 3, 1, 2), "th": th.permute(0, 3, 1, 2)}

    def triplane_volume(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        pl = self.planes(x_bcthw)
        hw = pl["hw"].permute(0, 2, 3, 1)[:, None]  # (B, 1, h, w, D)
        tw = pl["tw"].permute(0, 2, 3, 1)[:, :, None]  # (B, T, 1, w, D)
        th = pl["th"].permute(0, 2, 3, 1)[:, :, :, None]  # (B, T, h, 1, D)
        return hw + tw + th

    # wavelet branch
    def wavelet_features(self, x_bcthw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = x_bcthw.shape[2]
        bands = wavelet_bands(x_bcthw)
        low = self.low_stack(bands["LLL"])
        high = self.high_stack(torch.cat([bands[k] for k in HIGH_BANDS], 1))
        return tuple(f.repeat_interleave(2, dim=2)[:, :, :t].permute(0, 2, 3, 4, 1) for f in (low, high))

    def fused_volume(self, x_bcthw: torch.Tensor, mode: str) -> torch.Tensor:
        _check_mode(mode)
        b, _, t, hh, ww = x_bcthw.shape
        if hh % self.patch or ww % self.patch:
            raise ValueError(f"frame size {hh}x{ww} must be a multiple of {self.patch} (reconstruct() pads for you)")
        if mode == "wavelet":  # triplane branch zeroed: the queries are a zero volume
            q = x_bcthw.new_zeros(b, t, hh // self.patch, ww // self.patch, self.width)
        else:
            q = self.triplane_volume(x_bcthw)
        if mode == "triplane":  # wavelet branch zeroed: zero keys and values
            low = high = torch.zeros_like(q)
        else:
            low, high = self.wavelet_features(x_bcthw)
        for layer in self.fusion:
            q = layer(q, low, high)
        return torch.tanh(q)

    def forward(self, x_bcthw: torch.Tensor, mode: str = "fused") -> torch.Tensor:
        """(B, 3, T, H, W) -> z (B, C, T, H/p, W/p) in (-1, 1)."""
        return torch.tanh(self.quant(self.fused_volume(x_bcthw, mode))).permute(0, 4, 1, 2, 3)


def wavelet_bands(x_bcthw: torch.Tensor) -> dict[str, torch.Tensor]:
    """The 8 orthonormal 3D Haar sub-bands {LLL, LLH, ..., HHH} over (T, H, W), each (B, 3, T/2, H/2, W/2).

    Letters are the filter along (time, rows, columns). An odd T is first made even by
    replicating the last frame (what the wavelet branch does), so ``idwt3`` returns that clip.
    """
    if x_bcthw.shape[2] % 2:
        x_bcthw = torch.cat([x_bcthw, x_bcthw[:, :, -1:]], 2)
    return dwt3(x_bcthw)


class HVDM(VAE):
    """HVDM autoencoder: triplane + 3D wavelet branches fused by cross-attention, tanh latent (see the module doc)."""

    card = CARD

    def __init__(self, config: dict[str, Any] | None = None):
        cfg = {**LAB_CONFIG, **(config or {})}
        super().__init__(cfg)
        widths = list(cfg["wavelet_channels"])
        if widths[-1] != cfg["width"]:
            raise ValueError(f"wavelet_channels must end at the width {cfg['width']}, got {widths}")
        if 2 ** len(widths) != cfg["patch_size"]:  # the DWT halves once, every stack step after the first again
            raise ValueError(f"{len(widths)} wavelet conv steps reach H/{2 ** len(widths)}, "
                             f"but the patch grid is H/{cfg['patch_size']}")
        _check_mode(cfg["mode"])
        self.card = dataclasses.replace(CARD, spatial_factor=cfg["patch_size"], latent_channels=cfg["latent_channels"])
        self.encoder = HVDMEncoder(cfg)
        self.decoder = HVDMDecoder(cfg["latent_channels"], cfg["width"], cfg["decoder_depth"], cfg["heads"],
                                   cfg["patch_size"])

    def _mode(self, mode: str | None) -> str:
        return _check_mode(mode or self.config["mode"])

    # --- what the app shows --------------------------------------------------------------------------
    def planes(self, x_bcthw: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three triplane features of ``x`` as given (no chunking: pass at most ``chunk_frames`` frames
        to see what ``encode`` sees); H and W must be multiples of the patch size.

        ``hw`` (B, D, H', W'): pooled along time (the paper's ``xy``: a "mean frame");
        ``tw`` (B, D, T, W'): pooled along height (per frame and column);
        ``th`` (B, D, T, H'): pooled along width (per frame and row). H' = H/8, W' = W/8.
        """
        return self.encoder.planes(x_bcthw)

    wavelet_bands = staticmethod(wavelet_bands)

    def wavelet_features(self, x_bcthw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) features (B, T, h, w, D): the LLL band and the 7 high bands through their conv stacks,
        repeated x2 in time to the clip's frame rate (the fusion's keys and values)."""
        return self.encoder.wavelet_features(x_bcthw)

    # --- the VAE contract ---------------------------------------------------------------------------
    def encode(self, x_bcthw: torch.Tensor, mode: str | None = None) -> torch.Tensor:
        """z (B, 4, T, H/8, W/8) in (-1, 1). H and W must be multiples of 8 (``reconstruct`` pads).
        ``mode`` overrides ``config["mode"]`` ("fused" | "triplane" | "wavelet": the other branch zeroed).
        Chunks of ``chunk_frames`` frames are encoded independently and concatenated in time."""
        mode = self._mode(mode)
        chunks = fixed_chunks(x_bcthw.shape[2], self.config["chunk_frames"])
        zs = [self.encoder(x_bcthw[:, :, a:b], mode) for a, b in chunks]
        return torch.cat(zs, 2) if len(zs) > 1 else zs[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, 4, T, h, w) -> (B, 3, T, 8h, 8w), chunk by chunk as ``encode``."""
        xs = [self.decoder(z[:, :, a:b]) for a, b in fixed_chunks(z.shape[2], self.config["chunk_frames"])]
        return torch.cat(xs, 2) if len(xs) > 1 else xs[0]

    @torch.no_grad()
    def reconstruct(self, x_bcthw: torch.Tensor, mode: str | None = None) -> torch.Tensor:
        """As :meth:`VAE.reconstruct`, with an optional ablation ``mode``."""
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, self.card.spatial_factor, self.card.frame_rule)
        return self.decode(self.encode(x_pad, mode))[:, :, :t, :h, :w].clamp(-1, 1)

    def wavelet_loss(self, x_bcthw: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Mean over the 8 Haar sub-bands of the L1 between recon's and input's band (HVDM's frequency supervision)."""
        bx, br = wavelet_bands(x_bcthw), wavelet_bands(recon)
        return torch.stack([F.l1_loss(br[k], bx[k]) for k in BANDS_3D]).mean()

    def forward(self, x_bcthw: torch.Tensor, mode: str | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.encode(x_bcthw, mode)
        recon = self.decode(z)
        return recon, {"wavelet3d": self.config["wavelet3d_weight"] * self.wavelet_loss(x_bcthw, recon),
                       "_latent_abs_mean": z.detach().abs().mean()}


__all__ = ["HVDM", "HVDMEncoder", "HVDMDecoder", "wavelet_bands", "CARD", "LAB_CONFIG", "MODES", "HIGH_BANDS"]
