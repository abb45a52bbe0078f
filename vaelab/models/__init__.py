"""VAE Lab's models: ``available()`` lists the cards, ``load(name)`` builds a model with its weights.

This package only re-exports; the code lives in one module per concern:

* ``registry``  names -> classes, cards, ``build`` / ``load`` (families, then configured production VAEs)
* ``families``  the VAE Lab families (one file each: ``vqgan``, ``sd_vae``, ... reading like their papers)
* ``weights``   where lab weights live, reading any checkpoint safely, strict loading, saving
* ``config``    the typed frozen config every family has (``SDVAEConfig``, ...); ``metadata`` checks a file's
* ``base``      the model contract (``VAE``, ``ModelCard``, ``WeightsError``)
* ``official`` / ``vaelab.hub``  published checkpoints; ``diffusers_adapters``  production video VAEs
"""
from __future__ import annotations

from typing import Any

from . import metadata, weights
from .base import VAE, ModelCard, WeightsError
from .config import ConfigError, ModelConfig, config_dict
from .registry import (
    all_names,
    available,
    build,
    card,
    extra_names,
    load,
    model_class,
    names,
    register_extra,
)
from .weights import (
    lab_weights_path,
    load_weights,
    read_checkpoint,
    save_weights,
    training_record,
    use_assets,
)


def __getattr__(name: str) -> Any:
    if name == "ASSETS":  # read through to the one place it is set (``use_assets``), never a stale copy
        return weights.ASSETS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["VAE", "ConfigError", "ModelCard", "ModelConfig", "WeightsError", "all_names", "available", "build",
           "card", "config_dict", "extra_names", "lab_weights_path", "load", "load_weights", "metadata", "model_class", "names",
           "read_checkpoint", "register_extra", "save_weights", "training_record", "use_assets"]
