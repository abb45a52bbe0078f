"""Typed, frozen model configs: one dataclass per family, its defaults are the lab design.

Every family's config subclasses :class:`ModelConfig`:

* ``FamilyConfig.from_dict(d)`` builds one from a plain dict (a checkpoint's JSON metadata, a converter's
  output, a test's override); a key the family does not have raises :class:`ConfigError` naming the family,
  the closest valid key and every valid key. Missing keys take the dataclass defaults.
* ``config.replace(**changes)`` is ``dataclasses.replace`` with the same key check (released variants are
  ``replace``s of the lab default).
* ``config.to_dict()`` is the JSON-ready dict stored in a safetensors file's metadata (tuples as lists).
* ``config["key"]`` / ``config.get("key")`` / ``dict(config)`` read it like a read-only mapping, so code written
  against the old config dicts keeps reading it; nothing can write to it.
* ``config.card_factors()`` gives the card fields that follow the architecture (spatial/temporal compression,
  latent channels), so a card never states them a second time.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="ModelConfig")


class ConfigError(ValueError):
    """A config names a key its family does not have (or is not a mapping); the message lists the valid keys."""


def _frozen(value: Any) -> Any:
    """Lists (from JSON) as tuples, recursively, so a config is immutable all the way down."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: the JSON form."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class ModelConfig(Mapping):
    """Base of every family's config (a frozen dataclass that also reads as a read-only mapping)."""

    family: ClassVar[str] = "model"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, _frozen(value))

    # --- building ---------------------------------------------------------------------------------------
    @classmethod
    def keys_valid(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def check_keys(cls, keys: Any) -> None:
        """:class:`ConfigError` for any key ``cls`` lacks, with a suggestion and the valid keys."""
        valid = cls.keys_valid()
        unknown = [k for k in keys if k not in valid]
        if unknown:
            k = unknown[0]
            close = difflib.get_close_matches(str(k), valid, n=1) if isinstance(k, str) else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{cls.family} config has no key {str(k)[:60]!r}{hint}"
                              + (f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else "")
                              + f"; valid keys: {', '.join(valid)}")

    @classmethod
    def from_dict(cls: type[C], config: Mapping[str, Any] | C | None = None) -> C:
        """``config`` over the defaults: None -> the lab default; an instance of ``cls`` -> itself."""
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if isinstance(config, ModelConfig) or not isinstance(config, Mapping):
            raise ConfigError(f"{cls.family} config must be a mapping or {cls.__name__}, got {type(config).__name__}")
        cls.check_keys(config)
        return cls(**{k: _frozen(v) for k, v in config.items()})

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` (checked like :meth:`from_dict`)."""
        self.check_keys(changes)
        return dataclasses.replace(self, **{k: _frozen(v) for k, v in changes.items()})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (field order, tuples as lists): what travels in a checkpoint's metadata."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def card_factors(self) -> dict[str, Any]:
        """Card fields that follow this config (``spatial_factor``, ``temporal_factor``, ``latent_channels``, ...)."""
        return {}

    # --- read-only mapping view -------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key not in self.keys_valid():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_valid())

    def __len__(self) -> int:
        return len(dataclasses.fields(self))

    def __contains__(self, key: object) -> bool:
        return key in self.keys_valid()


def config_dict(config: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of any model's config (a typed one, or the plain mapping of a production VAE adapter)."""
    return config.to_dict() if isinstance(config, ModelConfig) else {k: _plain(v) for k, v in config.items()}


__all__ = ["ConfigError", "ModelConfig", "config_dict"]
