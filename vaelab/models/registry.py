"""Model registry: ``available()`` lists the cards, ``load(name)`` builds a model with its weights.

A name is a VAE Lab family (``families``: our code, our lab weights) or a configured production video VAE
(``diffusers_adapters``: ``register_extra`` / ``VAELAB_EXTRA_MODELS``); this module decides which and hands
over. ``vaelab.models`` re-exports it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..device import requested_precision
from . import diffusers_adapters, families
from .base import VAE, ModelCard
from .config import ModelConfig
from .families import all_names
from .weights import lab_weights_path


def names() -> list[str]:
    """The models with real weights: the ones the app and ``vaelab eval`` offer.

    Families that ship trained lab weights, then configured production VAEs (``register_extra`` /
    ``VAELAB_EXTRA_MODELS``) whose published weights are on disk. A family without weights still has a
    card (``available()``) saying so; we never run random weights as if they were a result.
    """
    return [n for n in families.FAMILIES if lab_weights_path(n).exists()] + extra_names()


def extra_names() -> list[str]:
    """Configured production VAEs (diffusers adapters) whose weights are on disk."""
    return diffusers_adapters.ready_names()


def register_extra(name: str, weights: str | Path) -> None:
    """Offer a production video VAE (a diffusers folder or repo id, see ``diffusers_adapters``) as ``name``."""
    diffusers_adapters.register_extra(name, weights)


def _is_extra(name: str) -> bool:
    return name not in families.FAMILIES and name in diffusers_adapters.configured()


def model_class(name: str) -> type[VAE]:
    if _is_extra(name):
        return diffusers_adapters.extra_class(name)
    return families.family_class(name)


def card(name: str) -> ModelCard:
    """The model's card with parameter count, training record and official-checkpoint support filled in."""
    return diffusers_adapters.card(name) if _is_extra(name) else families.card(name)


def available() -> list[ModelCard]:
    """Cards of every implemented family (and configured production VAE), those with weights first;
    ``card.weights`` says which ship weights."""
    ready = names()
    return [card(n) for n in ready + [n for n in families.FAMILIES if n not in ready]]


def build(name: str, config: ModelConfig | dict[str, Any] | None = None) -> VAE:
    """A freshly initialised model (random weights): for training and tests only. A family's ``config`` is its
    typed config or a dict of some of its keys (an unknown key raises ``ConfigError`` listing the valid ones)."""
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
    if precision is not None:
        precision = requested_precision(precision)
    if _is_extra(name):
        model = diffusers_adapters.load_extra(name, weights, device)
    else:
        model = families.load(name, weights, device)
    if precision is not None:
        model.precision = precision
    return model


__all__ = ["all_names", "available", "build", "card", "extra_names", "load", "model_class", "names",
           "register_extra"]
