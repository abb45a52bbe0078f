"""Published checkpoints: key-layout converters, and per family what loads and what does not (and why).

VAE Lab's image families keep diffusers' module tree and names (``encoder.down_blocks.0.resnets.0.conv1``,
``mid_block.attentions.0.to_q`` ...), so a diffusers ``AutoencoderKL`` state dict loads as is. Two other
layouts of the *same* network are in circulation and are converted here:

* legacy diffusers attention names (``attentions.0.query/key/value/proj_attn``, 2022-era hub files);
* the original CompVis / LDM / taming layout of single-file checkpoints (``*.ckpt``, ``vae-ft-mse-840000-
  ema-pruned.safetensors``, taming VQGAN ``last.ckpt``): ``encoder.down.{i}.block.{j}``, ``nin_shortcut``,
  ``mid.block_1 / mid.attn_1.{norm,q,k,v,proj_out} / mid.block_2``, ``norm_out``, attention projections
  as 1x1 convs, and the decoder's ``up`` levels stored in *reverse* order (``decoder.up.{L-1-k}`` is
  diffusers' ``decoder.up_blocks.{k}``); inside a full Stable Diffusion checkpoint every VAE key carries
  a ``first_stage_model.`` prefix, and Lightning checkpoints add ``loss.*`` (discriminator, LPIPS) keys.

When a checkpoint carries no VAE Lab config (a diffusers ``config.json`` or a bare file), the model is
built at the checkpoint's own architecture: from ``config.json`` when there is one, else read off the
tensor shapes (GroupNorm groups cannot be read off shapes: every published LDM/SD/taming model uses 32).

``SUPPORT`` records, per family, where official weights are published and whether they load here; the
families whose module tree differs from the published one say why (``not_supported_reason``).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .base import WeightsError
from .layouts import is_ldm_layout, ldm_to_diffusers, strip_wrappers  # noqa: F401 - re-exported
from .weights import load_weights, torch_load_tensors  # noqa: F401 - torch_load_tensors re-exported


@dataclass(frozen=True)
class OfficialSupport:
    status: str  # "supported", "layout only" (the converter works, the released files do not fit) or "not supported"
    published: str  # where the official weights live
    detail: str  # what loads, or why not

    def summary(self) -> str:
        return f"{self.status}: {self.detail} (published: {self.published})"


SUPPORT: dict[str, OfficialSupport] = {
    "sd-vae": OfficialSupport(
        "supported", "stabilityai/sd-vae-ft-mse (diffusers), stabilityai/sd-vae-ft-mse-original (LDM single file)",
        "diffusers folders or repo ids (config.json + diffusion_pytorch_model.safetensors, legacy attention names "
        "included), LDM/CompVis single files (optionally inside a full SD checkpoint, first_stage_model. prefix), "
        "and AutoencoderKL configs without quant convs (SD3/FLUX-style, loaded with identity 1x1 convs); built at "
        "the checkpoint's config, e.g. the real SD config [128, 256, 512, 512] x 2, 32 groups, scaling 0.18215"),
    "vqgan": OfficialSupport(
        "supported", "CompVis/taming-transformers (MIT): vqgan_imagenet_f16_1024 and vqgan_imagenet_f16_16384, "
        "ckpts/last.ckpt (Lightning, heibox.uni-heidelberg.de links in its README)",
        "loads exactly (parity-tested against the reference VQModel, tests/test_released_vqgan.py): the Lightning "
        "last.ckpt as published (state_dict, loss.* dropped, PL 1.0 callback class keys read as inert "
        "placeholders), f16, ch 128 x [1, 1, 2, 2, 4], 2 ResNets, attention inside level 4 "
        "(encoder.down.4.attn.*, decoder.up.4.attn.*), z 256, 1024 or 16384 codes; other taming/LDM widths and "
        "attention levels are read off the tensor shapes. ~76 M parameters; CPU cost at full size: "
        "docs/PERFORMANCE.md 'Official checkpoints'"),
    "litevae": OfficialSupport(
        "supported", "no official weights; community reimplementation RGenDiff/open-litevae (AGPL-3.0), HF "
        "RGenDiff/olitevaeB_im_f8c12",
        "the LiteVAE authors released no weights; each checkpoint of the community reimplementation open-litevae "
        "(Lightning .ckpt or a plain state dict, e.g. RGenDiff/olitevaeB_im_f8c12:FILE) loads exactly "
        "(parity-tested against the open-litevae code) as its own tree (f8, 12 channels, 3-level Haar -> "
        "ChannelUNet extractors -> aggregator, SMC decoder; about 60 M parameters), built at the file's shapes; "
        "its code is AGPL-3.0, the weights are the user's own copy, loaded at run time. CPU cost at full size "
        "(random weights, fp32, 17 frames, 2 threads on a shared 2-core machine; docs/PERFORMANCE.md): 254 s and "
        "480 MiB peak at 128 px, 1181 s and 1447 MiB at 256 px"),
    "cv-vae": OfficialSupport(
        "supported", "Hugging Face AILab-CVC/CV-VAE, folder vae3d_v1-1/ (config.json + safetensors; code "
        "AILab-CVC/CV-VAE, no licence file in the code repository: check the model card before use)",
        "loads exactly (parity-tested against the reference CVVAEModel, tests/test_released_cv_vae.py): the "
        "folder, its safetensors alone (architecture read off the shapes) or AILab-CVC/CV-VAE:vae3d_v1-1; "
        "4x8x8, z 4, ch 128 x [1, 2, 4, 4], causal encoder / non-causal decoder, half-3D ResNets, GroupNorm over "
        "(C, T, H, W) eps 1e-5, joint spatial-temporal decoder attention, the reference's 16-frame chunks and "
        "576 px tiles (overlap 0.2222), scaling 0.18215. ~182 M parameters; CPU cost at full size: "
        "docs/PERFORMANCE.md 'Official checkpoints'. (vae3d_sd3 is a different tree and is refused)"),
    "iv-vae": OfficialSupport(
        "supported", "ModelScope wpy1999/iv-vae (ivvae_z4_dim64.pth, ivvae_z8_dim64.pth, ivvae_z16_dim64.pth, "
        "ivvae_z16_dim96.pth); code ali-vilab/iv-vae (MIT)",
        "each released plain state dict loads exactly (parity-tested against ali-vilab/iv-vae models/vae3d.py) as "
        "the reference tree (4x8x8, dim 64 -> about 108 M parameters, dim 96 -> about 242 M), built at the file's "
        "shapes, with the file's latent scale/shift; encode returns the posterior mean; a file, or a folder "
        "holding one checkpoint. CPU cost at full size (random weights, fp32, 17 frames streamed, 2 threads on a "
        "shared 2-core machine; docs/PERFORMANCE.md): dim 64 446 s and 1016 MiB peak at 128 px, 1870 s and 3932 MiB at 256 px; dim 96 "
        "792 s and 1543 MiB at 128 px"),
    "videovae-plus": OfficialSupport(
        "supported", "Google-Drive .ckpt files of VideoVerses/VideoVAEPlus (sota-4z, sota-4z-text, sota-16z, "
        "sota-16z-text; community .safetensors copies)",
        "the released AutoencoderKL2plus1D_1dcnn loads exactly as a sibling class (videovae_plus.ReleasedVideoVAEPlus) "
        "with the reference's key names, architecture read off the tensor shapes (16z / 4z, with or without text "
        "cross-attention), parity-tested against the reference code; text variants need the user's "
        "flan-t5-large embeddings (without them the cross-attention is skipped); weights CC BY-NC-ND 4.0"),
    "hvdm": OfficialSupport(
        "supported", "Google-Drive model_[EPOCH].pth per dataset (README of hxngiee/HVDM; no licence file)",
        "the released ViTAutoencoder (TimeSformer 384 wide, depth 5, triplane axis Transformers, Haar wavelet "
        "stacks, tanh bottleneck 4 channels) loads exactly as a sibling class (hvdm.ReleasedHVDM) with the "
        "reference's key names, parity-tested against the reference code; it runs only 16 x 256 x 256 clips, "
        "other clips are resized and chunked (said on the card)"),
    "vidtwin": OfficialSupport(
        "supported", "microsoft/vidtwin, file vidtwin_structure_7_7_8_dynamics_7_8.ckpt (Lightning; code "
        "microsoft/VidTok vidtwin/, MIT licence)", "<filled by _vidtwin_detail>"),
    "walt": OfficialSupport("not supported", "not released", "Google released neither code nor weights"),
}


def _vidtwin_detail() -> str:
    """The released VidTwin's line: what loads, that it is parity-tested, and its measured CPU cost (the JSON that
    ``scripts/parity_vidtwin.py bench`` writes; read here without importing the model module)."""
    import json
    from pathlib import Path

    detail = ("the released checkpoint loads exactly (parity-tested against the reference code microsoft/VidTok "
              "vidtwin/, max |diff| <= 1e-4 in fp32): read with torch.load(weights_only=True), state_dict taken, "
              "loss.* dropped, built at the file's own architecture (released: 16x224x224 clips, space-time ViT "
              "768 wide, depth 16+16, 12 heads, BLIP-2 Q-Former with 16 queries, 312.7 M parameters; other frame "
              "sizes are resampled to 224x224 and back); give the file, a folder holding it, or microsoft/vidtwin")
    path = Path(__file__).with_name("vidtwin_released_cost.json")
    try:
        cost = json.loads(path.read_text())
        runs = "; ".join(f"{p} {r['seconds']:.0f} s, peak RSS {r['peak_rss_gib']:.1f} GiB"
                         for p, r in cost["runs"].items())
        where = f"{cost['threads']} threads, load average {cost['load_average'].split(' ')[0]}"
        return detail + (f". CPU cost, one {cost['clip']} clip encode + decode (random weights, {where}; "
                         f"`scripts/parity_vidtwin.py bench`): {runs}")
    except (OSError, ValueError, KeyError, TypeError):
        return detail + ". CPU cost at full size: not measured"


SUPPORT["vidtwin"] = OfficialSupport(SUPPORT["vidtwin"].status, SUPPORT["vidtwin"].published, _vidtwin_detail())


def support(name: str) -> OfficialSupport | None:
    return SUPPORT.get(name)


def refuse_unless_supported(name: str) -> None:
    """Raise the family's "not supported because ..." for a checkpoint that is not a VAE Lab file."""
    s = SUPPORT.get(name)
    if s is not None and s.status == "not supported":
        raise WeightsError(f"{name}: official checkpoints are not supported because {s.detail}")


# Lightning checkpoints (class-keyed callback states) are read by ``weights.torch_load_tensors``; the LDM -> diffusers
# key map (``ldm_to_diffusers``, ``strip_wrappers``) lives in ``layouts``.

# --- layouts ----------------------------------------------------------------------------------------

def to_lab_names(state: dict[str, torch.Tensor], in_level_attention: bool = False) -> dict[str, torch.Tensor]:
    """Any supported image-AE layout (LDM/taming, legacy or current diffusers) -> our names."""
    from .sd_vae import convert_legacy_attention

    state = strip_wrappers(state)
    if is_ldm_layout(state):
        state = ldm_to_diffusers(state, in_level_attention)
    return convert_legacy_attention(state)


# --- configs ----------------------------------------------------------------------------------------

class ArchitectureError(WeightsError):
    """The checkpoint is this family's, but its tensors describe no architecture the reference can build."""


OFFICIAL_GROUPS = 32  # GroupNorm groups of every published LDM / SD / taming autoencoder


def _levels(state: dict[str, torch.Tensor]) -> tuple[list[int], int]:
    """(block_out_channels, layers_per_block) of a diffusers-named encoder."""
    chs, i = [], 0
    while f"encoder.down_blocks.{i}.resnets.0.conv1.weight" in state:
        chs.append(int(state[f"encoder.down_blocks.{i}.resnets.0.conv1.weight"].shape[0]))
        i += 1
    layers = 0
    while f"encoder.down_blocks.0.resnets.{layers}.conv1.weight" in state:
        layers += 1
    if not chs or not layers:
        raise WeightsError("checkpoint has no encoder.down_blocks.* / encoder.down.* keys: "
                           "not an LDM-style autoencoder")
    return chs, layers


def _shape(state: dict[str, torch.Tensor], key: str, dim: int) -> int:
    if key not in state:
        raise WeightsError(f"checkpoint has no {key}")
    return int(state[key].shape[dim])


def sd_config_from_state(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The sd-vae architecture a (converted) AutoencoderKL state dict was trained with."""
    chs, layers = _levels(state)
    return {"in_channels": _shape(state, "encoder.conv_in.weight", 1),
            "out_channels": _shape(state, "decoder.conv_out.weight", 0),
            "block_out_channels": chs, "layers_per_block": layers,
            "latent_channels": _shape(state, "decoder.conv_in.weight", 1), "norm_num_groups": OFFICIAL_GROUPS}


def vqgan_config_from_state(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The VQGAN architecture of a (converted) taming state dict."""
    chs, layers = _levels(state)
    if _shape(state, "encoder.conv_in.weight", 1) != 3 or _shape(state, "decoder.conv_out.weight", 0) != 3:
        raise WeightsError("VQGAN checkpoint is not RGB in / RGB out")
    enc = sorted({int(m[1]) for k in state if (m := re.match(r"encoder\.down_blocks\.(\d+)\.attentions\.", k))})
    dec = sorted({len(chs) - 1 - int(m[1]) for k in state
                  if (m := re.match(r"decoder\.up_blocks\.(\d+)\.attentions\.", k))})
    if enc != dec:
        raise ArchitectureError(f"VQGAN checkpoint has in-level attention at encoder levels {enc} but decoder levels "
                           f"{dec}; taming puts both at the same resolutions (attn_resolutions)")
    return {"block_out_channels": chs, "layers_per_block": layers, "norm_num_groups": OFFICIAL_GROUPS,
            "z_channels": _shape(state, "encoder.conv_out.weight", 0),
            "embed_dim": _shape(state, "quantize.embedding.weight", 1),
            "n_embed": _shape(state, "quantize.embedding.weight", 0), "attention_levels": enc}


_ARCH_KEYS = {"sd-vae": ("in_channels", "out_channels", "block_out_channels", "layers_per_block", "latent_channels"),
              "vqgan": ("block_out_channels", "layers_per_block", "z_channels", "embed_dim", "n_embed",
                        "attention_levels")}


def same_architecture(name: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Do two configs of family ``name`` build tensors of the same shapes?"""
    return all(list(a.get(k, [])) == list(b.get(k, [])) if isinstance(a.get(k), (list, tuple)) else a.get(k) == b.get(k)
               for k in _ARCH_KEYS[name])


def sd_config_from_diffusers(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A diffusers ``AutoencoderKL`` config.json -> (our sd-vae config, notes). Refuses what our tree lacks."""
    cls = config.get("_class_name", "AutoencoderKL")
    if cls != "AutoencoderKL":
        # (the production video VAEs are diffusers Autoencoder* classes; their adapters sit above this module)
        hint = (" (if it is a production video VAE: register it with vaelab.models.register_extra or "
                "VAELAB_EXTRA_MODELS)" if str(cls).startswith("Autoencoder") else "")
        raise WeightsError(f"sd-vae loads diffusers AutoencoderKL folders, this one is {cls}{hint}")
    n = len(config.get("block_out_channels", []))
    problems = []
    if list(config.get("down_block_types", ["DownEncoderBlock2D"] * n)) != ["DownEncoderBlock2D"] * n:
        problems.append(f"down_block_types {config['down_block_types']}")
    if list(config.get("up_block_types", ["UpDecoderBlock2D"] * n)) != ["UpDecoderBlock2D"] * n:
        problems.append(f"up_block_types {config['up_block_types']}")
    if config.get("act_fn", "silu") != "silu":
        problems.append(f"act_fn {config['act_fn']}")
    if not config.get("mid_block_add_attention", True):
        problems.append("mid_block_add_attention false (the family class always has the mid attention)")
    if problems:
        raise WeightsError("not supported because this AutoencoderKL config has " + "; ".join(problems))
    ours = {"in_channels": config.get("in_channels", 3), "out_channels": config.get("out_channels", 3),
            "block_out_channels": list(config["block_out_channels"]),
            "layers_per_block": config.get("layers_per_block", 1), "latent_channels": config.get("latent_channels", 4),
            "norm_num_groups": config.get("norm_num_groups", 32),
            "scaling_factor": config.get("scaling_factor", 0.18215)}
    notes = []
    if config.get("shift_factor") is not None:
        ours["shift_factor"] = config["shift_factor"]
    for flag in ("use_quant_conv", "use_post_quant_conv"):
        if not config.get(flag, True):
            notes.append(f"{flag} false: loaded as an identity 1x1 conv (exact)")
    return ours, notes


def fill_identity_quant_convs(state: dict[str, torch.Tensor], latent_channels: int) -> list[str]:
    """Add identity ``quant_conv`` / ``post_quant_conv`` when a checkpoint has none (diffusers'
    use_quant_conv=False, e.g. SD3 / FLUX VAEs): a 1x1 conv with identity weight and zero bias is exactly
    "no conv". Returns the keys added."""
    added = []
    for name, c in (("quant_conv", 2 * latent_channels), ("post_quant_conv", latent_channels)):
        if f"{name}.weight" not in state and f"{name}.bias" not in state:
            state[f"{name}.weight"] = torch.eye(c)[:, :, None, None]
            state[f"{name}.bias"] = torch.zeros(c)
            added.append(name)
    return added


# families whose conversion lives in the family module: name -> (module, function(state, config, lab_config))
FAMILY_CONVERTERS: dict[str, tuple[str, str]] = {
    "cv-vae": ("cv_vae", "convert_released"),
}
# families that read a diffusers-style folder (config.json + safetensors): name -> (module, config reader)
FOLDER_CONFIGS: dict[str, tuple[str, str]] = {
    "cv-vae": ("cv_vae", "config_from_released"),
}


def _family_converter(name: str) -> Any:
    import importlib

    module, fn = FAMILY_CONVERTERS[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), fn)


def converts(name: str) -> bool:
    """Does ``name`` convert published checkpoints (as opposed to loading only VAE Lab files)?"""
    return name in _ARCH_KEYS or name in FAMILY_CONVERTERS


def check_folder_config(name: str, config: dict[str, Any] | None) -> None:
    """Refuse a diffusers-style folder before its (possibly large) weights are read, with the reason."""
    import importlib

    if name == "sd-vae":
        sd_config_from_diffusers(config or {})
        return
    if name in FOLDER_CONFIGS:
        module, fn = FOLDER_CONFIGS[name]
        try:
            getattr(importlib.import_module(f"{__package__}.{module}"), fn)(config or {})
        except ValueError as e:
            raise WeightsError(f"{name}: {e}") from None
        return
    refuse_unless_supported(name)
    raise WeightsError(f"{name}: diffusers folders load only for sd-vae, cv-vae (and production VAEs)")


def convert_checkpoint(name: str, state: dict[str, torch.Tensor], config: dict[str, Any] | None,
                       lab_config: dict[str, Any] | None) -> tuple[dict[str, torch.Tensor], Mapping[str, Any], list[str]]:
    """A published (non-VAE-Lab) checkpoint of family ``name`` -> (state in our names, config to build, notes).
    The config is a dict read off the file or one of the family's typed configs (``SD_CONFIG``, ...); either way
    it goes through ``metadata.checked_config`` before anything is built.

    ``config`` is a diffusers config.json when the checkpoint came in a folder. Without one the config is read
    off the shapes; a checkpoint whose shapes are the lab config's keeps the lab config (so a bare state dict
    of our own model still loads as before), and one with the real SD architecture gets the real SD config.
    """
    if name in FAMILY_CONVERTERS:
        return _family_converter(name)(state, config, lab_config)
    if name not in _ARCH_KEYS:
        refuse_unless_supported(name)
        raise WeightsError(f"{name}: no converter for this checkpoint layout")
    notes: list[str] = []
    if name == "sd-vae" and config is not None:
        built, notes = sd_config_from_diffusers(config)
        state = to_lab_names(state)
        fill_identity_quant_convs(state, built["latent_channels"])
        return state, built, notes
    if config is not None:
        raise WeightsError(f"{name}: diffusers folders are only read for sd-vae")
    ldm = is_ldm_layout(strip_wrappers(state))
    state = to_lab_names(state, in_level_attention=name == "vqgan")
    if ldm:
        notes.append("converted from the CompVis/LDM key layout")
    try:
        built = sd_config_from_state(state) if name == "sd-vae" else vqgan_config_from_state(state)
    except ArchitectureError:
        raise
    except WeightsError:
        # not this family's checkpoint at all: build the lab config, and the strict loader says what does not fit
        return state, dict(lab_config or {}), notes
    if name == "sd-vae":
        added = fill_identity_quant_convs(state, built["latent_channels"])
        notes += [f"{k}: none in the checkpoint, identity 1x1 conv" for k in added]
    if lab_config and same_architecture(name, built, lab_config):
        return state, dict(lab_config), notes
    if name == "vqgan":
        from .vqgan import RELEASED_CONFIGS

        for tag, released in RELEASED_CONFIGS.items():
            if same_architecture(name, built, released):
                return state, released, [*notes, f"the released taming architecture ({tag}: "
                                                       "configs/imagenet_vqgan.yaml)"]
    if name == "sd-vae":
        from .sd_vae import SD_CONFIG

        if same_architecture(name, built, SD_CONFIG):
            return state, SD_CONFIG, notes + ["the real Stable Diffusion VAE architecture: SD config "
                                                    "(32 groups, scaling_factor 0.18215)"]
    return state, built, notes + [f"architecture read off the tensor shapes, GroupNorm groups assumed "
                                  f"{OFFICIAL_GROUPS} (every published LDM/taming autoencoder)"]


def load_released(name: str, state: dict[str, torch.Tensor], source: str) -> tuple[Any, list[str]] | None:
    """A published checkpoint of a family whose released tree is a sibling config in its module, or None when
    ``state`` is not in that family's released layout (then the caller goes on as before)."""
    if name == "iv-vae":
        return _load_released_iv_vae(state, source)
    if name == "litevae":
        return _load_released_litevae(state, source)
    return None


def _load_released_iv_vae(state: dict[str, torch.Tensor], source: str) -> tuple[Any, list[str]] | None:
    from . import iv_vae

    if not iv_vae.is_released_layout(state):
        return None
    cfg = iv_vae.released_config_from_state(state, source)
    model = iv_vae.ReleasedIVVAE(cfg)
    load_weights(model, state)
    size = (f"released {cfg.variant} (scale {cfg.scale_factor}, shift {cfg.shift_factor})" if cfg.variant else
            f"not a released size (dim {cfg.dim}, z {cfg.z_dim}): latent scale 1, shift 0")
    note = f"IV-VAE reference layout (ali-vilab/iv-vae models/vae3d.py); {size}; encode returns the posterior mean"
    _released_card(model, "iv-vae", source)
    return model, [note + " (the reference samples)"]


def _load_released_litevae(state: dict[str, torch.Tensor], source: str) -> tuple[Any, list[str]] | None:
    from . import litevae

    state = litevae.released_state(state)
    if state is None:
        return None
    cfg = litevae.released_config_from_state(state)
    model = litevae.ReleasedLiteVAE(cfg)
    load_weights(model, state)
    _released_card(model, "litevae", source)
    note = ("open-LiteVAE layout (RGenDiff/open-litevae, a community reimplementation; not released by the "
            "LiteVAE authors); encode returns the posterior mean")
    return model, [note]


def _released_card(model: Any, name: str, source: str) -> None:
    """This instance's card: the loaded file, then what the family's released checkpoints are and cost."""
    from pathlib import PurePath

    model.card.weights = (f"{model.card.weights}; this file: {PurePath(source).name}. "
                          f"Official checkpoints: {SUPPORT[name].summary()}")


def released_file_in_folder(name: str, weights: str) -> str:
    """For iv-vae / litevae: a local folder without config.json (e.g. a ModelScope download) -> its one checkpoint
    file; several checkpoints -> WeightsError naming them. Anything else is returned unchanged."""
    from pathlib import Path

    from ..hub import CONFIG, WEIGHT_SUFFIXES

    path = Path(str(weights)).expanduser()
    if name not in ("iv-vae", "litevae") or not path.is_dir() or (path / CONFIG).is_file():
        return weights
    files = sorted(f.name for f in path.iterdir() if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES))
    if len(files) == 1:
        return str(path / files[0])
    if not files:
        raise WeightsError(f"{path.name}/ holds no checkpoint file ({', '.join(WEIGHT_SUFFIXES)})")
    raise WeightsError(f"{path.name}/ holds {len(files)} checkpoints ({', '.join(files[:6])}"
                       f"{', ...' if len(files) > 6 else ''}): name the file")


# --- released checkpoints of VideoVAE+ and HVDM (their builders live in the family modules) ---------------

def load_released_video(name: str, state: dict[str, torch.Tensor]) -> tuple[Any, list[str]] | None:
    """VideoVAE+ / HVDM: a released checkpoint (recognised by its own key names) -> (model, notes); None when
    ``state`` is not one (a lab checkpoint then goes through the usual strict load)."""
    if name == "videovae-plus":
        from . import videovae_plus as family
    elif name == "hvdm":
        from . import hvdm as family
    else:
        return None
    if not hasattr(family, "is_released_state") or not family.is_released_state(state):
        return None
    return family.load_released(state)


def hashed_weights(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Deterministic stand-in weights for parity tests, from each key name alone (no file to commit).

    Every tensor comes from its own generator seeded with crc32(key): 1-D ``*weight`` (norm scales)
    1 + 0.1 N(0, 1), other 1-D tensors (biases) 0.05 N(0, 1), the rest N(0, 1) / sqrt(fan_in), fan_in =
    prod(shape[1:]). The same recipe fills the reference model in scripts/parity_*.py."""
    import math
    import zlib

    out = {}
    for key, shape in shapes.items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        x = torch.randn(tuple(shape), generator=g, dtype=torch.float32)
        if len(shape) <= 1:
            x = 1 + 0.1 * x if key.endswith("weight") else 0.05 * x
        else:
            x = x / math.sqrt(max(1, math.prod(shape[1:])))
        out[key] = x
    return out


def released_folder_file(name: str, weights: Any) -> tuple[Any, list[str]]:
    """A local folder holding released VideoVAE+ / HVDM files (no diffusers config.json) -> the one file to read.

    VideoVAE+'s ``ckpt/`` holds one ``.ckpt`` / ``.safetensors``; HVDM's ``results/first_stage_ae_*`` holds
    ``model_[EPOCH].pth`` per saved step (the highest epoch is taken, and said). Anything else is returned
    unchanged (``hub.resolve`` then reads it as before)."""
    from pathlib import Path

    from .. import hub

    if name not in ("videovae-plus", "hvdm"):
        return weights, []
    folder = Path(str(weights)).expanduser()
    if not folder.is_dir() or (folder / "config.json").is_file():
        return weights, []
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(hub.WEIGHT_SUFFIXES))
    if name == "hvdm":
        epochs = [(int(m.group(1)), p) for p in files if (m := re.fullmatch(r"model_(\d+)\.pth", p.name))]
        if epochs:
            best = max(epochs)[1]
            return best, [f"{folder.name}/: {best.name} (the highest of {len(epochs)} model_[EPOCH].pth)"]
        files = [p for p in files if p.name == "model_last.pth"] or files
    if len(files) != 1:
        listed = ", ".join(p.name for p in files[:4]) or "none"
        raise WeightsError(f"{folder.name}/ holds {len(files)} checkpoint files ({listed}): name the file")
    return files[0], [f"{folder.name}/: {files[0].name}"]


# --- VidTwin: the released Lightning checkpoint -------------------------------------------------------

def load_released_spec(name: str, weights: Any) -> tuple[Any, list[str]] | None:
    """(model, notes) for a family whose released files need their own reader, else None (the generic path).

    VidTwin: ``vidtwin.load_released_spec`` (a released-layout file, a folder holding it, or a repo id)."""
    if name == "vidtwin":
        from .vidtwin import load_released_spec

        return load_released_spec(weights)
    return None
