"""Production video VAEs from diffusers, behind VAE Lab's API (optional extra: ``pip install vaelab[diffusers]``).

Wan 2.1/2.2 (``AutoencoderKLWan``), CogVideoX (``AutoencoderKLCogVideoX``), HunyuanVideo
(``AutoencoderKLHunyuanVideo``), LTX-Video (``AutoencoderKLLTXVideo``), Cosmos (``AutoencoderKLCosmos``) and
VidTok (``AutoencoderVidTok``, when the installed diffusers has it) run through :class:`DiffusersVAE`: float
``(B, 3, T, H, W)`` in [-1, 1] in, the posterior mode out of ``encode``, pixels out of ``decode``, and a
:class:`~vaelab.models.base.ModelCard` whose frame rule, factors and latent channels are read off the
checkpoint's ``config.json``. The module tree is diffusers' own (its children are registered on the adapter),
so the adapter's state dict *is* the diffusers state dict: a ``save_pretrained`` folder loads with VAE Lab's
strict, NaN-refusing loader, safetensors first.

These models never show up as results unless real weights are configured: a name only enters
``vaelab.models.names()`` after :func:`register_extra` (or ``VAELAB_EXTRA_MODELS="name=weights,..."``) *and*
when its weights are on disk (a local folder, or repo files already in the Hugging Face cache).

Latents. Like every VAE Lab family, ``encode`` returns the raw latent (no scaling), so distances and
plots compare like with like. :meth:`DiffusersVAE.normalize_latent` / :meth:`~DiffusersVAE.denormalize_latent`
apply the family's own convention for the latent a generator sees (read from its diffusers pipeline):

* CogVideoX, HunyuanVideo, VidTok: ``z * scaling_factor`` (minus ``shift_factor`` first when set);
* Wan: ``(z - latents_mean) / latents_std`` per channel;
* LTX-Video: ``(z - latents_mean) * scaling_factor / latents_std`` per channel (the means are model buffers);
* Cosmos: ``(z - latents_mean) / latents_std`` per channel and latent frame (the pipeline then multiplies
  by its scheduler's ``sigma_data``, which belongs to the scheduler, not the VAE).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import families
from .base import VAE, ModelCard, Paper, WeightsError
from .latent import Latent
from .weights import load_weights, read_checkpoint

ENV = "VAELAB_EXTRA_MODELS"


@dataclass(frozen=True)
class Geometry:
    spatial: int
    temporal: int
    latent_channels: int
    frame_rule: str
    causal: bool


@dataclass(frozen=True)
class AdapterSpec:
    family: str
    paper: Paper
    teaching: str
    idea: str
    geometry: Callable[[dict[str, Any]], Geometry]  # from the full config (class defaults filled in)
    normalisation: str  # "scale", "channel", "channel_scaled" or "channel_frame" (see module doc)


def _wan(c: dict[str, Any]) -> Geometry:
    t = c.get("scale_factor_temporal") or 2 ** sum(c["temperal_downsample"])
    s = c.get("scale_factor_spatial") or 2 ** len(c["temperal_downsample"]) * (c.get("patch_size") or 1)
    return Geometry(s, t, c["z_dim"], f"1+{t}k", True)


def _cogvideox(c: dict[str, Any]) -> Geometry:
    t = int(c["temporal_compression_ratio"])
    # decoding an even number of latent frames up-samples every frame (2 -> 4 -> 8 frames), an odd number keeps
    # the first one apart; diffusers notes "1, 8k or 8k + 1" frames: so the rule is 1 + 2tk
    return Geometry(2 ** (len(c["block_out_channels"]) - 1), t, c["latent_channels"], f"1+{2 * t}k", True)


def _hunyuan(c: dict[str, Any]) -> Geometry:
    t = int(c["temporal_compression_ratio"])
    return Geometry(int(c["spatial_compression_ratio"]), t, c["latent_channels"], f"1+{t}k", True)


def _ltx(c: dict[str, Any]) -> Geometry:
    s = c.get("spatial_compression_ratio") or c["patch_size"] * 2 ** sum(c["spatio_temporal_scaling"])
    t = c.get("temporal_compression_ratio") or c["patch_size_t"] * 2 ** sum(c["spatio_temporal_scaling"])
    return Geometry(int(s), int(t), c["latent_channels"], f"1+{int(t)}k", bool(c["encoder_causal"]))


def _cosmos(c: dict[str, Any]) -> Geometry:
    t = int(c["temporal_compression_ratio"])
    return Geometry(int(c["spatial_compression_ratio"]), t, c["latent_channels"], f"1+{t}k", True)


def _vidtok(c: dict[str, Any]) -> Geometry:
    n = len(c["ch_mult"])
    spatial_ds = c.get("spatial_ds") if c.get("spatial_ds") is not None else list(range(n - 1))
    tempo_ds = c.get("tempo_ds") if c.get("tempo_ds") is not None else [n - 2, n - 3]
    t = 2 ** len(tempo_ds)
    # non-causal VidTok decodes latent chunks of 16 / t frames: whole 16-frame chunks only
    rule = f"1+{t}k" if c["is_causal"] else "16k"
    return Geometry(2 ** len(spatial_ds), t, c["z_channels"], rule, bool(c["is_causal"]))


_CAUSAL_CACHE = "Causal 3D convolutions: the first frame is coded alone (an image is a 1-frame video)"

ADAPTERS: dict[str, AdapterSpec] = {
    "AutoencoderKLWan": AdapterSpec(
        "Wan VAE", Paper("Wan: Open and Advanced Large-Scale Video Generative Models", "arXiv", 2025,
                         "https://arxiv.org/abs/2503.20314"),
        f"{_CAUSAL_CACHE}; RMSNorm instead of GroupNorm, so a feature cache streams a video of any length "
        "exactly. Wan 2.2's VAE folds 2x2 pixels into channels first (4x16x16, 48 channels).",
        "Causal 3D conv VAE with RMSNorm and a per-layer feature cache; Wan 2.1: 4x8x8, 16 channels.",
        _wan, "channel"),
    "AutoencoderKLCogVideoX": AdapterSpec(
        "CogVideoX VAE", Paper("CogVideoX: Text-to-Video Diffusion Models with An Expert Transformer", "ICLR", 2025,
                               "https://arxiv.org/abs/2408.06072"),
        f"{_CAUSAL_CACHE}; frames are encoded 8 at a time with a conv cache between batches, so GroupNorm only "
        "sees the current batch: chunked coding is close to, not equal to, one-shot.",
        "Causal 3D conv VAE, 4x8x8, 16 channels, GroupNorm, frame-batched encoding with a conv cache.",
        _cogvideox, "scale"),
    "AutoencoderKLHunyuanVideo": AdapterSpec(
        "HunyuanVideo VAE", Paper("HunyuanVideo: A Systematic Framework For Large Video Generative Models", "arXiv",
                                  2024, "https://arxiv.org/abs/2412.03603"),
        f"{_CAUSAL_CACHE}; long clips are cut into overlapping 16-frame tiles whose latents are blended, which "
        "trades exactness for memory.",
        "Causal 3D conv VAE, 4x8x8, 16 channels, mid-block attention, temporal tiling with blending.",
        _hunyuan, "scale"),
    "AutoencoderKLLTXVideo": AdapterSpec(
        "LTX-Video VAE", Paper("LTX-Video: Realtime Video Latent Diffusion", "arXiv", 2025,
                               "https://arxiv.org/abs/2501.00103"),
        "Very high compression (32x32 pixels and 8 frames per latent position, 128 channels): pixels are "
        "patchified 4x4 into channels first, and the decoder does part of the generator's denoising.",
        "Causal-encoder 3D VAE, 8x32x32, 128 channels, 4x4 patchify, optionally timestep-conditioned decoder.",
        _ltx, "channel_scaled"),
    "AutoencoderKLCosmos": AdapterSpec(
        "Cosmos tokenizer (CV)", Paper("Cosmos World Foundation Model Platform for Physical AI", "arXiv", 2025,
                                       "https://arxiv.org/abs/2501.03575"),
        f"{_CAUSAL_CACHE}; a fixed 3D Haar wavelet patcher splits the clip into sub-bands before any learned "
        "layer, and the latent is deterministic (no KL sampling).",
        "Causal continuous video tokenizer with a Haar wavelet patcher, factorised attention, 16 channels.",
        _cosmos, "channel_frame"),
    "AutoencoderVidTok": AdapterSpec(
        "VidTok", Paper("VidTok: A Versatile and Open-Source Video Tokenizer", "arXiv", 2024,
                        "https://arxiv.org/abs/2412.13061"),
        "Factorised: 2D spatial ResNets and 1D temporal ResNets with LayerNorm; temporal down-sampling mixes an "
        "average pool and a strided causal conv with a learned weight. Causal models pad 3 copies of frame 0 "
        "in front, so an input of 1 + 4k frames gives 1 + k latents.",
        "Continuous (KL) or FSQ video tokenizer from 2x8x8 to 4x16x16 with 4-16 channels.",
        _vidtok, "scale"),
}


def diffusers_available() -> bool:
    try:
        import diffusers  # noqa: F401
    except ImportError:
        return False
    return True


def supported_classes() -> list[str]:
    """The adapted classes the installed diffusers provides."""
    if not diffusers_available():
        return []
    import diffusers

    return [c for c in ADAPTERS if hasattr(diffusers, c)]


def _diffusers_class(name: str):

    if not diffusers_available():
        raise WeightsError("production video VAEs need diffusers: pip install 'vaelab[diffusers]'")
    import diffusers

    if name not in ADAPTERS:
        raise WeightsError(f"{name} is not an adapted diffusers video VAE; adapted: {', '.join(ADAPTERS)}")
    if not hasattr(diffusers, name):
        raise WeightsError(f"the installed diffusers {diffusers.__version__} has no {name}")
    return getattr(diffusers, name)


def full_config(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the class's defaults filled in (released config.json files omit newer fields)."""
    cls = _diffusers_class(class_name)
    defaults = {k: copy.deepcopy(p.default) for k, p in inspect.signature(cls.__init__).parameters.items()
                if k != "self" and p.default is not inspect.Parameter.empty}
    return defaults | {k: v for k, v in config.items() if not k.startswith("_")}


def make_card(name: str, class_name: str, config: dict[str, Any]) -> ModelCard:
    spec = ADAPTERS[class_name]
    g = spec.geometry(full_config(class_name, config))
    return ModelCard(
        name=name, family=spec.family, paper=spec.paper, kind="video", spatial_factor=int(g.spatial),
        temporal_factor=int(g.temporal), latent_channels=int(g.latent_channels), causal=g.causal,
        frame_rule=g.frame_rule, teaching=spec.teaching, idea=spec.idea,
        architecture=f"diffusers {class_name} (published production weights, run as released)")


class DiffusersVAE(VAE):
    """A diffusers video autoencoder under the (B, 3, T, H, W) contract. Subclasses (one per registered name,
    made by :func:`adapter_class`) set ``card``, ``class_name`` and ``default_config``."""

    card: ModelCard
    class_name: str
    default_config: dict[str, Any]

    def __init__(self, config: dict[str, Any] | None = None):
        cfg = {k: v for k, v in dict(self.default_config if config is None else config).items()
               if not k.startswith("_")}
        super().__init__(cfg)
        vae = _diffusers_class(self.class_name).from_config(cfg)
        object.__setattr__(self, "_vae", vae)  # not a submodule: its children are registered below instead
        # the adapter's parameter names are exactly diffusers' (encoder.*, decoder.*, quant_conv.* ...)
        for child_name, child in vae.named_children():
            self.add_module(child_name, child)
        for p_name, p in vae.named_parameters(recurse=False):
            self.register_parameter(p_name, p)
        for b_name, b in vae.named_buffers(recurse=False):
            self.register_buffer(b_name, b, persistent=b_name not in vae._non_persistent_buffers_set)
        self.spec = ADAPTERS[self.class_name]
        self.full_config = full_config(self.class_name, cfg)  # released config.json files omit defaults

    def _apply(self, fn, recurse=True):
        # .to()/.half() replace our own (direct) tensors; the wrapped model must see the same ones
        out = super()._apply(fn, recurse)
        for name in self._vae._parameters:
            self._vae._parameters[name] = self._parameters[name]
        for name in self._vae._buffers:
            self._vae._buffers[name] = self._buffers[name]
        return out

    def train(self, mode: bool = True):
        super().train(mode)
        self._vae.train(mode)
        return self

    @property
    def diffusers_model(self):
        """The wrapped diffusers model (shares every tensor with this module)."""
        return self._vae

    # --- the contract ------------------------------------------------------------------------------------
    def encode(self, x_bcthw: torch.Tensor) -> Latent:
        """(B, 3, T, H, W) already padded to the frame/size rule -> raw latent, main (B, C, T', H/s, W/s)."""
        if self.class_name == "AutoencoderVidTok" and self.card.causal:
            # as VidTok's forward: t - 1 copies of frame 0 in front (its decoder drops them again)
            tc = self.card.temporal_factor
            x_bcthw = torch.cat([x_bcthw[:, :, :1].expand(-1, -1, tc - 1, -1, -1), x_bcthw], 2)
        out = self._vae.encode(x_bcthw)
        if hasattr(out, "latent_dist"):
            return Latent(out.latent_dist.mode())
        return Latent(out[0])  # VidTok FSQ: (quantised latent, indices)

    def decode(self, z: Latent) -> torch.Tensor:
        """Raw latent, main (B, C, T', h, w) -> pixels (B, 3, T, H, W) in about [-1, 1]."""
        z = z.main
        kwargs = {}
        if self.class_name == "AutoencoderKLLTXVideo" and self.full_config.get("timestep_conditioning"):
            # the LTX pipeline's default decode_timestep is 0 (a clean latent)
            kwargs["temb"] = torch.zeros(z.shape[0], device=z.device, dtype=z.dtype)
        out = self._vae.decode(z, **kwargs)
        return out.sample if hasattr(out, "sample") else out

    # --- the generator's latent --------------------------------------------------------------------------
    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (or per channel and latent frame: Cosmos) mean and std, broadcastable to z (B, C, T', h, w)."""
        c = z.shape[1]
        if self.spec.normalisation == "channel_scaled":  # LTX keeps them as buffers
            mean, std = self._vae.latents_mean, self._vae.latents_std
        else:
            mean, std = torch.tensor(self.full_config["latents_mean"]), torch.tensor(self.full_config["latents_std"])
        shape = (1, c, -1, 1, 1) if self.spec.normalisation == "channel_frame" else (1, c, 1, 1, 1)
        mean, std = mean.view(shape).to(z), std.view(shape).to(z)
        return mean[:, :, : z.shape[2]], std[:, :, : z.shape[2]]

    def _scale_shift(self) -> tuple[float, float]:
        scale = self.full_config.get("scaling_factor")
        return (1.0 if scale is None else float(scale)), float(self.full_config.get("shift_factor") or 0.0)

    def normalize_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent tensor (B, C, T', h, w) (a Latent's ``main``) -> the one the family's diffusion model works
        with (see module doc)."""
        scale, shift = self._scale_shift()
        if self.spec.normalisation == "scale":
            return (z - shift) * scale
        if self.spec.normalisation == "channel_frame" and self.full_config.get("latents_mean") is None:
            return z
        mean, std = self._stats(z)
        return (z - mean) * (scale if self.spec.normalisation == "channel_scaled" else 1.0) / std

    def denormalize_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize_latent`."""
        scale, shift = self._scale_shift()
        if self.spec.normalisation == "scale":
            return z / scale + shift
        if self.spec.normalisation == "channel_frame" and self.full_config.get("latents_mean") is None:
            return z
        mean, std = self._stats(z)
        return z * std / (scale if self.spec.normalisation == "channel_scaled" else 1.0) + mean


def adapter_class(name: str, class_name: str, config: dict[str, Any]) -> type[DiffusersVAE]:
    """A :class:`DiffusersVAE` subclass for one checkpoint: its card (name, factors, rule) and default config."""
    _diffusers_class(class_name)
    card = make_card(name, class_name, config)
    return type(f"DiffusersVAE_{re.sub(r'[^0-9A-Za-z]', '_', name)}", (DiffusersVAE,),
                {"card": card, "class_name": class_name,
                 "default_config": {k: v for k, v in config.items() if not k.startswith("_")}})


def class_name_of(config: dict[str, Any], source: str) -> str:

    cls = config.get("_class_name")
    if cls not in ADAPTERS:
        raise WeightsError(f"{source}: config.json is for {cls or 'an unnamed class'}, not one of the adapted "
                                  f"production video VAEs ({', '.join(ADAPTERS)})")
    return cls


def from_pretrained(weights: str | Path, name: str | None = None, device: str | torch.device | None = "cpu"
                    ) -> DiffusersVAE:
    """Load a diffusers video-VAE folder or repo id (``OWNER/NAME[:SUBFOLDER]``) without registering it.

    Reads config.json for the class and architecture and the weights with VAE Lab's safe, strict loader.
    """
    from .. import hub

    res = hub.resolve(weights)
    if res.kind != "folder":
        raise WeightsError(f"{Path(str(weights)).name}: production VAEs load from a diffusers folder "
                                  "(config.json + diffusion_pytorch_model.safetensors), not a single file")
    class_name = class_name_of(res.config, str(weights))
    cls = adapter_class(name or _default_name(class_name), class_name, res.config)
    model = cls(res.config)
    state: dict[str, torch.Tensor] = {}
    for f in res.weight_files:
        state.update(read_checkpoint(f)[0])
    load_weights(model, state)
    model.weights_source = str(weights)
    model.eval().requires_grad_(False)
    if device is None:
        from ..device import auto_device

        device = auto_device()
    return model.to(device)


def _default_name(class_name: str) -> str:
    return {"AutoencoderKLWan": "wan-vae", "AutoencoderKLCogVideoX": "cogvideox-vae",
            "AutoencoderKLHunyuanVideo": "hunyuanvideo-vae", "AutoencoderKLLTXVideo": "ltx-video-vae",
            "AutoencoderKLCosmos": "cosmos-cv", "AutoencoderVidTok": "vidtok"}[class_name]


# --- registration ---------------------------------------------------------------------------------------

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,47}$")
_REGISTERED: dict[str, str] = {}  # name -> weights spec, from register_extra()
_CLASSES: dict[tuple[str, str], type[DiffusersVAE]] = {}


def register_extra(name: str, weights: str | Path) -> None:
    """Offer the production VAE at ``weights`` (a diffusers folder or repo id) as model ``name``.

    It appears in ``vaelab.models.names()`` once its weights are on disk. Nothing is downloaded here.
    """

    if not _NAME.match(name):
        raise ValueError(f"model name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
    if name in families.all_names():
        raise ValueError(f"{name!r} is a VAE Lab family; pick another name for the production VAE")
    _REGISTERED[name] = str(weights)


def unregister_extra(name: str) -> None:
    _REGISTERED.pop(name, None)
    for key in [k for k in _CLASSES if k[0] == name]:
        del _CLASSES[key]


def parse_env(value: str | None) -> dict[str, str]:
    """``VAELAB_EXTRA_MODELS``: "name=weights" entries separated by commas or new lines."""
    out = {}
    for item in re.split(r"[,\n]", value or ""):
        if not item.strip():
            continue
        name, sep, weights = item.partition("=")
        name, weights = name.strip(), weights.strip()
        if not sep or not _NAME.match(name) or not weights:
            raise ValueError(f"{ENV}: bad entry {item.strip()!r}; expected name=weights (weights: a diffusers "
                             "folder or OWNER/NAME[:SUBFOLDER])")
        out[name] = weights
    return out


def configured() -> dict[str, str]:
    """name -> weights of every configured production VAE (``VAELAB_EXTRA_MODELS`` then register_extra)."""

    env = {n: w for n, w in parse_env(os.environ.get(ENV)).items() if n not in families.all_names()}
    return env | _REGISTERED


def ready_names() -> list[str]:
    """Configured production VAEs whose weights are on disk (no download) and whose class diffusers has."""
    from .. import hub

    wanted = configured()
    if not wanted:  # nothing configured: never pay for importing diffusers
        return []
    family = {n: f for n, w in wanted.items() if (f := family_spec(w))}
    if len(family) < len(wanted) and not diffusers_available():
        wanted = {n: w for n, w in wanted.items() if n in family}
    return [n for n, w in wanted.items() if hub.is_available_offline(family[n][1] if n in family else w)]


def family_spec(weights: str) -> tuple[str, str] | None:
    """``FAMILY:WEIGHTS`` entries (``cv-vae:AILab-CVC/CV-VAE:vae3d_v1-1``, ``vqgan:/ckpts/last.ckpt``): a VAE Lab
    family's published checkpoint offered under its own name, loaded by ``models.load(FAMILY, weights=...)``.
    A repo id has a "/" before its first ":", so the two forms cannot be confused."""

    head, sep, rest = str(weights).partition(":")
    return (head, rest) if sep and rest and head in families.all_names() else None


def _family_card(name: str, family: str, spec: str) -> ModelCard:
    from .official import support

    c = copy.deepcopy(families.card(family))
    c.name = name
    c.params = _published_params(family, spec)
    s = support(family)
    c.weights = f"published {family} checkpoint {spec}" + (f". {s.summary()}" if s is not None else "")
    return c


@functools.lru_cache(maxsize=16)
def _published_params(family: str, spec: str) -> int:
    """Parameters in the checkpoint (training-only ``loss.*`` keys left out)."""
    from .. import hub
    from .official import strip_wrappers

    return sum(v.numel() for f in hub.resolve(spec).weight_files
               for v in strip_wrappers(read_checkpoint(f)[0]).values())


def extra_class(name: str) -> type[DiffusersVAE]:
    """The adapter class of configured model ``name`` (its config.json must be on disk or downloadable)."""
    from .. import hub

    weights = configured().get(name)
    if weights is None:
        raise KeyError(f"{name!r} is not a configured production VAE")
    if fam := family_spec(weights):
        return families.family_class(fam[0])  # type: ignore[return-value]
    key = (name, weights)
    if key not in _CLASSES:
        res = hub.resolve(weights)
        if res.kind != "folder":
            raise WeightsError(f"{name}: {weights} is a single file; production VAEs load from a diffusers "
                                      "folder or repo id")
        _CLASSES[key] = adapter_class(name, class_name_of(res.config, weights), res.config)
    return _CLASSES[key]


def card(name: str) -> ModelCard:
    """The card of configured model ``name``, with parameters counted on the meta device (no memory)."""
    if fam := family_spec(configured()[name]):
        return _family_card(name, *fam)
    cls = extra_class(name)
    c = copy.deepcopy(cls.card)
    with torch.device("meta"):
        c.params = cls(None).num_params()
    c.weights = f"published weights: {configured()[name]} (diffusers {cls.class_name})"
    return c


def load_extra(name: str, weights: str | Path | None = "lab", device: str | torch.device | None = None) -> DiffusersVAE:
    """``vaelab.models.load`` for a configured production VAE: "lab" = its configured weights; "random" =
    the same architecture with random weights (tests only); else another folder / repo id of the same class."""

    if fam := family_spec(configured()[name]):
        family, spec = fam
        model = families.load(family, weights="random" if weights in ("random", None) else
                            spec if weights == "lab" else str(weights), device=device)
        model.card = dataclasses.replace(copy.deepcopy(model.card), name=name)
        return model
    cls = extra_class(name)
    if weights in ("random", None):
        model = cls(None)
        model.weights_source = "random"
    else:
        spec = configured()[name] if weights == "lab" else str(weights)
        model = from_pretrained(spec, name=name, device="cpu")
        if model.class_name != cls.class_name:
            raise WeightsError(f"{name} is a {cls.class_name}; {spec} holds a {model.class_name}")
    model.eval().requires_grad_(False)
    if device is None:
        from ..device import auto_device

        device = auto_device()
    return model.to(device)


__all__ = ["ADAPTERS", "DiffusersVAE", "adapter_class", "card", "configured", "extra_class",
           "from_pretrained", "load_extra", "make_card", "ready_names", "register_extra", "supported_classes",
           "unregister_extra"]
