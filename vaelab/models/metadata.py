"""A checkpoint's config is untrusted input: check it before anything is built from it.

``checked_config(name, cls, config)`` is the one gate every loader passes a config through (lab files,
published files carrying a VAE Lab config, configs converted from diffusers/LDM files). It refuses, in
one line (``WeightsError``):

* a metadata string over ``MAX_METADATA_CHARS`` or JSON that is not an object;
* keys the family's config does not have (``ConfigError`` from the family's typed config, naming the valid keys);
* values whose type differs from the family's default (a list where a number belongs, a string for a
  channel count, a bool for an int), lists longer than ``MAX_LIST``;
* numbers that are NaN/inf, negative, zero where the default is positive, or over ``MAX_INT``;
* a config whose model would hold more than ``MAX_PARAMS`` parameters, counted by building it on the
  ``meta`` device (no memory is allocated): a 308-byte file asking for ``block_out_channels`` [1024] x 4
  is refused before 2 GB are allocated.

What passes is returned as the family's typed config (``cls.config_class``), the one thing a model is built from.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import torch

from .base import VAE, WeightsError
from .config import ConfigError, ModelConfig

MAX_METADATA_CHARS = 64_000
MAX_LIST = 16
MAX_INT = 8192
MAX_PARAMS = 200_000_000  # 800 MB in fp32: above every published checkpoint these families load


def parse(text: Any, what: str = "checkpoint") -> dict[str, Any]:
    """The JSON config stored in a checkpoint's metadata, as a dict; ``WeightsError`` otherwise."""
    if not isinstance(text, str) or len(text) > MAX_METADATA_CHARS:
        raise WeightsError(f"{what}: its config metadata is not a string of at most {MAX_METADATA_CHARS:,} characters")
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        raise WeightsError(f"{what}: its config metadata is not valid JSON") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{what}: its config metadata is not a JSON object")
    return config


def default_config(cls: type[VAE]) -> dict[str, Any]:
    """The family's own default config, as JSON (a class without a typed config is built on the meta device)."""
    if cls.config_class is not None:
        return cls.config_class().to_dict()
    with torch.device("meta"):
        return dict(cls(None).config)


def _check_value(key: str, value: Any, default: Any, name: str) -> None:
    where = f"{name} config: {key}"
    if isinstance(default, bool) or isinstance(value, bool):
        if not (isinstance(value, bool) and isinstance(default, bool)):
            raise WeightsError(f"{where} must be {type(default).__name__}, got {type(value).__name__}")
        return
    if isinstance(default, (int, float)) and default is not None:
        if not isinstance(value, (int, float)) or (isinstance(default, int) and isinstance(value, float)
                                                    and not value.is_integer()):
            raise WeightsError(f"{where} must be a number like {default!r}, got {str(value)[:40]!r}")
        if not math.isfinite(value):
            raise WeightsError(f"{where} must be finite, got {value}")
        if value < 0 and default >= 0:
            raise WeightsError(f"{where} must not be negative, got {value}")
        if value == 0 and default > 0 and isinstance(default, int):
            raise WeightsError(f"{where} must be positive, got 0")
        if abs(value) > MAX_INT and abs(default) <= MAX_INT:
            raise WeightsError(f"{where} is too large ({value}; at most {MAX_INT})")
        return
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise WeightsError(f"{where} must be a list, got {type(value).__name__}")
        if len(value) > MAX_LIST:
            raise WeightsError(f"{where} has {len(value)} entries (at most {MAX_LIST})")
        if default:
            for v in value:
                _check_value(key, v, default[0], name)
        return
    if isinstance(default, str):
        if not isinstance(value, str) or len(value) > 200:
            raise WeightsError(f"{where} must be a short string, got {type(value).__name__}")
        return
    if default is None:
        if value is not None and not isinstance(value, (int, float, str, bool)):
            raise WeightsError(f"{where} must be a plain value, got {type(value).__name__}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                not math.isfinite(value) or value < 0 or value > MAX_INT):
            raise WeightsError(f"{where} is out of range ({value})")


def checked_config(name: str, cls: type[VAE], config: Any) -> ModelConfig | dict[str, Any] | None:
    """``config`` (a dict, a JSON string, a typed config or None) validated against ``cls``'s default and its size;
    returns the typed config to build with (a dict for a class without one). ``WeightsError`` with one line when
    it is refused."""
    if config is None:
        return None
    if isinstance(config, ModelConfig):
        config = config.to_dict()  # a converter's typed result: its values are read off the file, check them too
    if isinstance(config, str):
        config = parse(config, name)
    if not isinstance(config, Mapping):
        raise WeightsError(f"{name} config must be a JSON object, got {type(config).__name__}")
    if cls.config_class is not None:
        try:
            cls.config_class.check_keys(config)
        except ConfigError as e:
            raise WeightsError(str(e)) from None
    default = default_config(cls)
    for k, v in config.items():
        if k in default:
            _check_value(k, v, default[k], name)
        elif not isinstance(k, str) or len(k) > 100 or not (
                v is None or isinstance(v, (bool, str)) and len(str(v)) <= 200
                or isinstance(v, (int, float)) and math.isfinite(v) and abs(v) <= MAX_INT):
            # (adapters without a typed config) keys their default lacks may hold plain values only
            raise WeightsError(f"{name} config has an unknown key {str(k)[:60]!r} holding a non-plain value")
    try:
        built = cls.config_class.from_dict(config) if cls.config_class is not None else dict(config)
        with torch.device("meta"):
            n = sum(p.numel() for p in cls(built).parameters())
    except Exception as e:  # noqa: BLE001 - any failure to build is the file's, in one line
        raise WeightsError(f"{name} config does not build a model ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:120]})") from None
    if n > MAX_PARAMS:
        raise WeightsError(f"{name} config asks for {n / 1e6:.0f} M parameters (at most {MAX_PARAMS / 1e6:.0f} M)")
    return built
