"""Model registry: ``available()`` lists the cards, ``load(name)`` builds a family with its weights.

Weights live in ``assets/weights/<name>.safetensors`` (fp16, with the model config in the
safetensors metadata) next to ``<name>.json`` (training recipe and measured held-out numbers).
Only safetensors or ``torch.load(weights_only=True)`` are ever used to read a checkpoint.
Published checkpoints (diffusers folders, LDM/taming files, Hugging Face repo ids) go through
``official`` and ``vaelab.hub``; production video VAEs (diffusers classes) through ``diffusers_adapters``.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from . import metadata
from .base import VAE, ModelCard, WeightsError

# name -> (module, class), every family we implement. Order is the order shown in the app.
_REGISTRY: dict[str, tuple[str, str]] = {
    "vqgan": ("vqgan", "VQGAN"),
    "sd-vae": ("sd_vae", "AutoencoderKL"),
    "litevae": ("litevae", "LiteVAE"),
    "cv-vae": ("cv_vae", "CVVAE"),
    "iv-vae": ("iv_vae", "IVVAE"),
    "videovae-plus": ("videovae_plus", "VideoVAEPlus"),
    "hvdm": ("hvdm", "HVDM"),
    "vidtwin": ("vidtwin", "VidTwin"),
    "walt": ("walt", "WALTTokenizer"),
}

ASSETS = Path(os.environ.get("VAELAB_ASSETS") or Path(__file__).resolve().parents[2] / "assets")


def all_names() -> list[str]:
    """Every implemented family (buildable and trainable)."""
    return list(_REGISTRY)


def names() -> list[str]:
    """The models with real weights: the ones the app and ``vaelab eval`` offer.

    Families that ship trained lab weights, then configured production VAEs (``register_extra`` /
    ``VAELAB_EXTRA_MODELS``) whose published weights are on disk. A family without weights still has a
    card (``available()``) saying so; we never run random weights as if they were a result.
    """
    return [n for n in _REGISTRY if lab_weights_path(n).exists()] + extra_names()


def extra_names() -> list[str]:
    """Configured production VAEs (diffusers adapters) whose weights are on disk."""
    from .diffusers_adapters import ready_names

    return ready_names()


def register_extra(name: str, weights: str | Path) -> None:
    """Offer a production video VAE (a diffusers folder or repo id, see ``diffusers_adapters``) as ``name``."""
    from .diffusers_adapters import register_extra as register

    register(name, weights)


def _is_extra(name: str) -> bool:
    if name in _REGISTRY:
        return False
    from .diffusers_adapters import configured

    return name in configured()


def model_class(name: str) -> type[VAE]:
    if _is_extra(name):
        from .diffusers_adapters import extra_class

        return extra_class(name)
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def lab_weights_path(name: str) -> Path:
    return ASSETS / "weights" / f"{name}.safetensors"


def training_record(name: str) -> dict[str, Any]:
    path = ASSETS / "weights" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def card(name: str) -> ModelCard:
    """The family's card with parameter count, training record and official-checkpoint support filled in."""
    if _is_extra(name):
        from .diffusers_adapters import card as extra_card

        return extra_card(name)
    from .official import support

    cls = model_class(name)
    c = copy.deepcopy(cls.card)
    record = training_record(name)
    c.training = record
    c.params = int(record.get("params") or _param_count(name))
    c.weights = (f"lab weights trained by VAE Lab ({lab_weights_path(name).name})" if lab_weights_path(name).exists()
                 else "no lab weights shipped yet")
    official = support(name)
    if official is not None:
        c.weights += f". Official checkpoints: {official.summary()}"
    return c


@functools.cache
def _param_count(name: str) -> int:
    """Parameters of a family's lab config (built once per process; cards are rendered on every request)."""
    return sum(p.numel() for p in model_class(name)(training_record(name).get("config")).parameters())


def available() -> list[ModelCard]:
    """Cards of every implemented family (and configured production VAE), those with weights first;
    ``card.weights`` says which ship weights."""
    ready = names()
    return [card(n) for n in ready + [n for n in _REGISTRY if n not in ready]]


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors (and safetensors metadata) without ever unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path.name}")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        from .official import torch_load_tensors

        obj = torch_load_tensors(path)  # weights_only, Lightning callback class keys as placeholders
    except WeightsError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure is the user's file, not our bug
        text = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(e).split()))  # one line, no ANSI colours
        if "Weights only load failed" in text:  # torch's text is long and explains how to turn the safety off
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            what = f"it references {found.group(1)}, not only tensors" if found else "not a plain tensor checkpoint"
            raise WeightsError(f"refused checkpoint {path.name}: {what} (nothing was executed); "
                               "use a .safetensors file") from None
        raise WeightsError(f"could not read checkpoint {path.name}: {type(e).__name__}: {text[:200]}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path.name} is not a state dict of tensors")
    return obj, {}


def load_weights(model: VAE, state: dict[str, torch.Tensor]) -> None:
    """Strict load with a one-line message on mismatch, refusing NaN/Inf."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise WeightsError(f"checkpoint has NaN/Inf values in {len(bad)} tensor(s), e.g. {bad[0]}")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatch(es), e.g. {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise WeightsError(f"checkpoint does not fit {model.card.name}: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def build(name: str, config: dict[str, Any] | None = None) -> VAE:
    """A freshly initialised model (random weights): for training and tests only."""
    return model_class(name)(config)


def load(name: str, weights: str | Path | None = "lab", device: str | torch.device | None = None,
         precision: str | None = None) -> VAE:
    """Build ``name`` and load weights: "lab" (ours, shipped in assets/), "random", or a published checkpoint:
    a local file, a local diffusers folder, or a Hugging Face repo id ``OWNER/NAME[@REV][:SUBFOLDER or FILE]``
    (see ``vaelab.hub``; ``HF_HUB_OFFLINE`` and the local cache are honoured).

    A VAE Lab file (config in its safetensors metadata) loads as before. Anything else goes through
    ``official.convert_checkpoint``: diffusers / legacy / LDM key layouts, and the model is built at the
    checkpoint's own config (e.g. the real SD config), with the card's factors following it. Families whose
    published checkpoints cannot map onto our module tree raise WeightsError saying why.
    For a configured production VAE (``register_extra``), "lab" means its configured published weights.

    Returns the model in eval mode on ``device`` (default: ``vaelab.device.auto_device``). ``precision``
    (``auto|fp32|bf16|fp16``, checked here) becomes ``model.precision``, the default of ``engine.run_model``
    for this model; weights stay float32 (reduced precision is autocast at run time).
    """
    from ..device import requested_precision

    if precision is not None:
        precision = requested_precision(precision)
    if _is_extra(name):
        from .diffusers_adapters import load_extra

        model = load_extra(name, weights, device)
        if precision is not None:
            model.precision = precision
        return model
    cls = model_class(name)
    notes: list[str] = []
    if weights == "random" or weights is None:
        model = cls(training_record(name).get("config"))
    elif weights == "lab":
        path = lab_weights_path(name)
        if not path.exists():
            raise WeightsError(f"no lab weights for {name}: {path.name} is missing (train them with `vaelab train {name}`)")
        state, meta = read_checkpoint(path)
        config = metadata.checked_config(name, cls, meta["config"]) if "config" in meta else training_record(name).get("config")
        model = cls(config)
        load_weights(model, state)
    else:
        model, notes = _load_published(name, cls, weights)
    model.weights_source = str(weights)
    model.weights_notes = notes
    model.eval().requires_grad_(False)
    if precision is not None:
        model.precision = precision
    if device is None:
        from ..device import auto_device

        device = auto_device()
    return model.to(device)


def _load_published(name: str, cls: type[VAE], weights: str | Path) -> tuple[VAE, list[str]]:
    """A checkpoint given by path or repo id: a VAE Lab file as is, anything else converted (see ``load``)."""
    from .. import hub
    from . import official

    released = official.load_released_spec(name, weights)  # families with their own released-file reader (VidTwin)
    if released is not None:
        return released
    spec = official.released_file_in_folder(name, str(weights))
    spec, folder_notes = official.released_folder_file(name, spec)
    res = hub.resolve(spec)
    res.notes = folder_notes + res.notes
    if res.kind == "folder":  # check config.json before reading (possibly large) weights
        official.check_folder_config(name, res.config)
    state: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {}
    for f in res.weight_files:
        part, part_meta = read_checkpoint(f)
        state.update(part)
        meta = meta or part_meta
    if res.kind == "file" and "config" in meta:
        model = cls(metadata.checked_config(name, cls, meta["config"]))  # untrusted: checked before building
        load_weights(model, state)
        return model, []
    released = official.load_released(name, state, str(spec))
    if released is None and res.kind != "folder":
        released = official.load_released_video(name, state)
    if released is not None:
        return released[0], released[1] + res.notes
    if not official.converts(name):
        model = cls(training_record(name).get("config"))
        try:
            load_weights(model, state)
        except WeightsError as e:
            reason = official.support(name)
            if reason is None or reason.status != "not supported":
                raise
            raise WeightsError(f"{e}; official {name} checkpoints are not supported because {reason.detail}") from None
        return model, []
    state, config, notes = official.convert_checkpoint(name, state, res.config, training_record(name).get("config"))
    model = cls(metadata.checked_config(name, cls, config))
    load_weights(model, state)
    changes = {k: v for k, v in official.card_overrides(name, config).items() if getattr(model.card, k) != v}
    if changes:
        model.card = dataclasses.replace(copy.deepcopy(cls.card), **changes)  # this instance only, not the family
    return model, notes + res.notes


def save_weights(model: VAE, path: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """fp16 safetensors with the config in the metadata (what ``load`` reads back)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(model.config), "vaelab_model": model.card.name})
    return path
