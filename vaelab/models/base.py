"""What every VAE Lab model shares: its card, the (B, 3, T, H, W) contract, padding rules.

Every family subclasses :class:`VAE`. Pixels are float in [-1, 1], shaped ``x_bcthw``.
``encode`` returns the latent the family's paper would hand to a generator, as a
:class:`~vaelab.models.latent.Latent` for every family, ``decode`` takes that type back and
inverts it, and ``reconstruct`` pads the input to the family's frame/size rule, runs
both and crops back, so callers never have to know the rule.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .latent import Latent
from .layout import fold_time, unfold_time


@dataclass(frozen=True)
class Paper:
    title: str
    venue: str
    year: int
    url: str = ""


@dataclass
class ModelCard:
    """Static description of a family; ``params`` and ``training`` are filled when loaded."""

    name: str
    family: str
    paper: Paper
    kind: str  # "image" or "video"
    spatial_factor: int
    temporal_factor: int
    latent_channels: int
    causal: bool
    frame_rule: str  # "any", "1+4k", "4k" (lab families); "1+Nk" / "Nk" in general (production VAEs)
    teaching: str
    idea: str = ""
    architecture: str = ""
    params: int = 0
    weights: str = ""
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def latent_shape(self, t: int, h: int, w: int) -> tuple[int, int, int, int]:
        """(C, T', H', W') for an input of t frames of h x w pixels, after padding to the rule."""
        t_pad = pad_frames_to_rule(t, self.frame_rule)
        if self.frame_rule.startswith("1+"):
            t_lat = 1 + (t_pad - 1) // self.temporal_factor
        else:
            t_lat = t_pad // self.temporal_factor
        f = self.spatial_factor
        return (self.latent_channels, t_lat, math.ceil(h / f), math.ceil(w / f))

    def compression(self, t: int, h: int, w: int) -> float:
        """Input values per latent value (3*T*H*W / C*T'*H'*W')."""
        c, tl, hl, wl = self.latent_shape(t, h, w)
        return (3 * t * h * w) / (c * tl * hl * wl)


def reads_captions(model: Any) -> bool:
    """Does ``model`` take a ``caption=`` (VideoVAE+ with its text path on)? Every caption-aware caller asks this."""
    return bool(getattr(model, "reads_captions", False))


def pad_frames_to_rule(t: int, rule: str) -> int:
    """Smallest frame count >= t that satisfies ``rule``: "any", "1+Nk" (e.g. "1+4k") or "Nk" (e.g. "4k")."""
    if rule == "any":
        return t
    m = re.fullmatch(r"(1\+)?([1-9][0-9]*)k", rule)
    if m is None:
        raise ValueError(f"unknown frame rule {rule!r}")
    n = int(m.group(2))
    if m.group(1):
        return 1 + n * math.ceil(max(t - 1, 0) / n)
    return n * math.ceil(t / n)


def pad_to_rule(x_bcthw: torch.Tensor, spatial: int, frame_rule: str) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Replicate-pad frames at the end and pixels at bottom/right; returns the padded clip and (T, H, W) to crop back to."""
    b, c, t, h, w = x_bcthw.shape
    t2 = pad_frames_to_rule(t, frame_rule)
    h2, w2 = math.ceil(h / spatial) * spatial, math.ceil(w / spatial) * spatial
    if (t2, h2, w2) != (t, h, w):
        # replicate, not zeros: a black border would show up as error at the crop edge
        x_bcthw = F.pad(x_bcthw, (0, w2 - w, 0, h2 - h, 0, t2 - t), mode="replicate")
    return x_bcthw, (t, h, w)


class WeightsError(RuntimeError):
    """A checkpoint could not be used; the message says why in one line."""


class VAE(nn.Module):
    """Base class. Subclasses set ``card`` and implement ``encode``/``decode``.

    ``forward(x)`` is the training entry point: it returns ``(recon_bcthw, losses)``
    where ``losses`` holds the family's regularisation terms (KL, VQ, ...), already
    weighted as its paper does, so one training loop serves every family.
    """

    card: ModelCard

    # --- capabilities: what callers ask instead of checking the family ---------------------
    parent: str | None = None  # the model this family starts from in training (CV-VAE: the image VAE)
    latent_branches: tuple[str, ...] = ()  # named latent halves ``zero_branch`` can zero (IV-VAE)
    latent_parts: tuple[str, ...] = ()  # named parts of a decoupled latent (VidTwin); its main part has query slots
    fits_input: str | None = None  # says how a model with one fixed input size fits clips (released HVDM);
    # its ``decode(z, out_size=(T, H, W))`` then gives the clip's own size back

    config_class: type[ModelConfig] | None = None  # the family's frozen config (None: a plain mapping, adapters)

    def __init__(self, config: ModelConfig | Mapping[str, Any]):
        """``config``: the family's typed config (``config_class``), the source of truth, read-only. Card fields that
        follow the architecture (``config.card_factors()``) are this instance's, when they differ from the family's."""
        super().__init__()
        self.config = config if isinstance(config, ModelConfig) else MappingProxyType(dict(config))
        if isinstance(config, ModelConfig):
            changed = {k: v for k, v in config.card_factors().items() if getattr(self.card, k) != v}
            if changed:
                self.card = dataclasses.replace(copy.deepcopy(self.card), **changed)

    @property
    def streams_causally(self) -> bool:
        """Can run frame 0 then chunks with per-layer caches (``encode_chunk``/``decode_chunk``), equal to one-shot."""
        return False

    @property
    def reads_captions(self) -> bool:
        """Takes ``caption=`` in encode/decode/forward (VideoVAE+ with its text path on)."""
        return getattr(self, "text", None) is not None

    @property
    def quantised(self) -> bool:
        """A discrete latent (codebook indices), trained with a VQ loss."""
        return False

    def start_from(self, parent: VAE) -> None:
        """Training starts from ``parent`` (a loaded ``self.parent`` model), as the family's paper does."""
        raise NotImplementedError(f"{self.card.name} does not start from another model")

    def zero_branch(self, z: Latent, branch: str | None) -> Latent:
        """``z`` with the main tensor's channels of one of ``latent_branches`` set to zero (None: unchanged)."""
        raise ValueError(f"{self.card.name} has no latent branches")

    def compatibility_with(self, x_bcthw: torch.Tensor, image_model: VAE | None) -> dict[str, Any] | None:
        """A family that measures its own latent compatibility with an image VAE (CV-VAE's meter) returns it here;
        None: callers fall back to decoding latent frames with ``image_model`` themselves."""
        return None

    def diagnostics(self, x_bcthw: torch.Tensor, reference: Callable[[str], VAE]) -> dict[str, Any]:
        """The family's own extra measurements on a clip in [-1, 1], keyed by what they are (VQGAN: "codebook",
        CV-VAE: "compatibility"); ``reference(name)`` loads another model a measurement needs. Default: none."""
        return {}

    # --- the public contract -------------------------------------------------------
    def encode(self, x_bcthw: torch.Tensor) -> Latent:
        """(B, 3, T, H, W) in [-1, 1], padded to the card's rule -> the family's :class:`Latent`."""
        raise NotImplementedError

    def decode(self, z: Latent) -> torch.Tensor:
        """A :class:`Latent` from ``encode`` (or one built like it) -> (B, 3, T, H, W)."""
        raise NotImplementedError

    def sample_latent(self, t: int, h: int, w: int, batch: int = 1) -> Latent:
        """Standard-normal values in the shape of every latent part for a t x h x w clip: what a decode-only
        probe feeds ``decode`` without running the encoder."""
        return Latent(torch.randn(batch, *self.card.latent_shape(t, h, w)))

    def forward(self, x_bcthw: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    @torch.no_grad()
    def reconstruct(self, x_bcthw: torch.Tensor) -> torch.Tensor:
        """Same shape as ``x_bcthw``: pad to the frame/size rule, encode, decode, crop."""
        x_pad, (t, h, w) = pad_to_rule(x_bcthw, self.card.spatial_factor, self.card.frame_rule)
        return self.decode(self.encode(x_pad))[:, :, :t, :h, :w].clamp(-1, 1)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ImageVAE(VAE):
    """An image VAE sees a video as T independent frames: fold T into the batch."""

    def encode_frames(self, x_bchw: torch.Tensor) -> Latent:
        """(N, 3, H, W) -> a Latent with main (N, C, h, w)."""
        raise NotImplementedError

    def decode_frames(self, z: Latent) -> torch.Tensor:
        """A Latent with main (N, C, h, w) -> (N, 3, H, W)."""
        raise NotImplementedError

    def encode(self, x_bcthw: torch.Tensor) -> Latent:
        b, _, t, _, _ = x_bcthw.shape
        z = self.encode_frames(fold_time(x_bcthw))
        return z.with_main(unfold_time(z.main, b, t))

    def decode(self, z: Latent) -> torch.Tensor:
        b, _, t, _, _ = z.main.shape
        return unfold_time(self.decode_frames(z.with_main(fold_time(z.main))), b, t)

