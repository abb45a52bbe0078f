"""The VAE Lab families: name -> class, their cards, and building / loading one with its weights.

This is the family half of the registry; ``registry`` adds the configured production VAEs
(``diffusers_adapters``) on top, and ``vaelab.models`` re-exports ``registry``. Published checkpoints
(diffusers folders, LDM/taming files, Hugging Face repo ids) go through ``official`` and ``vaelab.hub``.
"""
from __future__ import annotations

import copy
import functools
import importlib
from pathlib import Path
from typing import Any

import torch

from .. import hub
from ..device import auto_device
from . import metadata, official
from .base import VAE, ModelCard, WeightsError
from .config import ModelConfig
from .weights import lab_weights_path, load_weights, parent_weights_path, read_checkpoint, training_record

# name -> (module, class), every family we implement. Order is the order shown in the app.
FAMILIES: dict[str, tuple[str, str]] = {
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


def all_names() -> list[str]:
    """Every implemented family (buildable and trainable)."""
    return list(FAMILIES)


def family_class(name: str) -> type[VAE]:
    if name not in FAMILIES:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(FAMILIES)}")
    module, cls = FAMILIES[name]
    # imported by name so that listing the families does not import (and build) every family module
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def card(name: str) -> ModelCard:
    """The family's card with parameter count, training record and official-checkpoint support filled in."""
    cls = family_class(name)
    c = copy.deepcopy(cls.card)
    record = training_record(name)
    c.training = record
    c.params = int(record.get("params") or _param_count(name))
    c.weights = (f"lab weights trained by VAE Lab ({lab_weights_path(name).name})" if lab_weights_path(name).exists()
                 else "no lab weights shipped yet")
    support = official.support(name)
    if support is not None:
        c.weights += f". Official checkpoints: {support.summary()}"
    return c


@functools.cache
def _param_count(name: str) -> int:
    """Parameters of a family's lab config (built once per process on the meta device; cards render per request)."""
    with torch.device("meta"):
        return family_class(name)(training_record(name).get("config")).num_params()


def build(name: str, config: ModelConfig | dict[str, Any] | None = None) -> VAE:
    """A freshly initialised family model (random weights): for training and tests only."""
    return family_class(name)(config)


def _pinned_parent(name: str, parent: str) -> VAE:
    """The parent ``name``'s lab weights were trained against, from ``parent_weights_path`` (CPU; moved on use)."""
    path = parent_weights_path(name)
    model = load(parent, weights=str(path), device="cpu")
    model.weights_source = f"{path.name} (the {parent} these weights were trained against)"
    return model


def load(name: str, weights: str | Path | None = "lab", device: str | torch.device | None = None) -> VAE:
    """Family ``name`` with ``weights`` ("lab", "random"/None, or a published checkpoint: see ``registry.load``),
    in eval mode on ``device`` (default: ``vaelab.device.auto_device``)."""
    cls = family_class(name)
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
    if weights == "lab" and model.parent is not None and parent_weights_path(name).exists():
        model.__dict__["_trained_against_loader"] = lambda parent=model.parent: _pinned_parent(name, parent)
    model.eval().requires_grad_(False)
    return model.to(auto_device() if device is None else device)


def _load_published(name: str, cls: type[VAE], weights: str | Path) -> tuple[VAE, list[str]]:
    """A checkpoint given by path or repo id: a VAE Lab file as is, anything else converted (see ``registry.load``)."""
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
    # the card's factors follow the checkpoint's config (a published f16 VQGAN is 16x): VAE.__init__ sees to it
    model = cls(metadata.checked_config(name, cls, config))
    load_weights(model, state)
    return model, notes + res.notes


__all__ = ["FAMILIES", "all_names", "build", "card", "family_class", "load"]
