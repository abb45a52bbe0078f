"""The one latent type: what every family's ``encode`` returns and every ``decode`` takes.

A :class:`Latent` holds the *main* tensor -- the video-shaped latent a generator would be trained on,
``(B, C, T', h, w)`` for video families (``(N, C, h, w)`` from an image model's ``encode_frames``) --
and, for a decoupled latent, further named parts in order. Only VidTwin has parts today:

    main = structure  (B, d_S, n_q * chunks, h_S, w_S)   Q-Former summaries, one map per query slot
    dynamics_h        (B, d_D, T, h_D)                   per frame and row (averaged over the width)
    dynamics_w        (B, d_D, T, w_D)                   per frame and column (averaged over the height)

plus typed metadata a decoder needs back (VidTwin's encoder token grid; the frame size the released
VidTwin resampled from). Code that does tensor math on "the latent" writes ``z.main`` explicitly;
code that must keep every part uses the helpers (``to``, ``map``, ``cat``, ``time_slice``,
``with_main``, ``replace``, ``with_parts_from``), which never reorder float operations, so results
stay bit-identical to working on the tensors themselves. What a model's latent consists of is a
capability of the model (``VAE.latent_parts``), never a check on the latent's type.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

__all__ = ["Latent"]


@dataclass(frozen=True, eq=False)  # eq on tensors is ambiguous: compare parts explicitly
class Latent:
    """A family's latent: ``main`` plus ordered named ``extra`` parts and metadata. See the module docstring.

    main        (B, C, T', h, w) (video) or (N, C, h, w) (``encode_frames``); named ``main_name``
    extra       further parts of a decoupled latent, in order (VidTwin: dynamics_h, dynamics_w); empty otherwise
    main_name   the main part's name ("z"; VidTwin: "structure")
    token_grid  (h, w) of the encoder's patch grid, when the decoder needs it back (VidTwin)
    frame_size  (H, W) the model resampled from, when decode must go back to it (released VidTwin)
    """

    main: torch.Tensor
    extra: Mapping[str, torch.Tensor] = field(default_factory=dict)
    main_name: str = "z"
    token_grid: tuple[int, int] | None = None
    frame_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.main, torch.Tensor):
            raise TypeError(f"Latent.main must be a tensor, got {type(self.main).__name__}")
        if self.main_name in self.extra:
            raise ValueError(f"part {self.main_name!r} given twice (main and extra)")
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        for k in ("token_grid", "frame_size"):
            v = getattr(self, k)
            if v is not None:
                object.__setattr__(self, k, (int(v[0]), int(v[1])))

    # --- reading parts ---------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Every part's name, main first (VidTwin: structure, dynamics_h, dynamics_w)."""
        return (self.main_name, *self.extra)

    @property
    def parts(self) -> dict[str, torch.Tensor]:
        """Every part by name, main first."""
        return {self.main_name: self.main, **self.extra}

    @property
    def has_parts(self) -> bool:
        """Does the latent have parts besides ``main`` (a decoupled latent)?"""
        return bool(self.extra)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name == self.main_name:
            return self.main
        if name in self.extra:
            return self.extra[name]
        raise KeyError(f"latent has no part {name!r}; its parts: {', '.join(self.names)}")

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(self.parts.items())

    def numel(self) -> int:
        """Latent values per clip (batch element), every part counted."""
        return sum(v[0].numel() for v in self.parts.values())

    def flatten(self) -> torch.Tensor:
        """Every value of every part in one 1D tensor (main first), e.g. for a scale over the whole latent."""
        return torch.cat([v.flatten() for v in self.parts.values()])

    @property
    def dtype(self) -> torch.dtype:
        return self.main.dtype

    @property
    def device(self) -> torch.device:
        return self.main.device

    # --- new latents from this one ---------------------------------------------------------------
    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Latent:
        """``fn`` applied to every part (``.cpu()``, ``.detach()``, a dtype cast, ...); metadata kept."""
        return dataclasses.replace(self, main=fn(self.main), extra={k: fn(v) for k, v in self.extra.items()})

    def to(self, *args: Any, **kwargs: Any) -> Latent:
        """Every part ``.to(*args, **kwargs)`` (device and/or dtype)."""
        return self.map(lambda v: v.to(*args, **kwargs))

    def with_main(self, main: torch.Tensor) -> Latent:
        """Same parts and metadata with another main tensor (a perturbed or tiled copy)."""
        return dataclasses.replace(self, main=main)

    def replace(self, **parts: torch.Tensor) -> Latent:
        """Named parts replaced (``z.replace(dynamics_h=..., dynamics_w=...)``); unknown names raise."""
        unknown = set(parts) - set(self.names)
        if unknown:
            raise KeyError(f"latent has no part {sorted(unknown)[0]!r}; its parts: {', '.join(self.names)}")
        main = parts.pop(self.main_name, self.main)
        return dataclasses.replace(self, main=main, extra={k: parts.get(k, v) for k, v in self.extra.items()})

    def with_parts_from(self, other: Latent, names: Sequence[str]) -> Latent:
        """This latent with the parts ``names`` taken from ``other`` (a swap between two clips)."""
        return self.replace(**{n: other[n] for n in names})

    def time_slice(self, start: int, stop: int) -> Latent:
        """Every part cut to ``[start, stop)`` along axis 2 (latent time; the inverse of :meth:`cat`)."""
        return self.map(lambda v: v[:, :, start:stop])

    @staticmethod
    def cat(latents: Sequence[Latent], dim: int = 2) -> Latent:
        """Chunks of one clip joined along axis 2 (latent time; VidTwin's structure: query slots), part by part;
        ``dim=0`` stacks clips into one batch.

        The latents must have the same parts and metadata (streaming and chunked coding produce them so)."""
        first = latents[0]
        if len(latents) == 1:
            return first
        for z in latents[1:]:
            if (z.names, z.token_grid, z.frame_size) != (first.names, first.token_grid, first.frame_size):
                raise ValueError("Latent.cat needs chunks with the same parts and metadata")
        return dataclasses.replace(first, main=torch.cat([z.main for z in latents], dim),
                                   extra={k: torch.cat([z.extra[k] for z in latents], dim) for k in first.extra})

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.parts.items())
        meta = "".join(f", {k}={getattr(self, k)}" for k in ("token_grid", "frame_size") if getattr(self, k))
        return f"Latent({shapes}, {self.dtype}{meta})"
