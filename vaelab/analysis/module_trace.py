"""A family's blocks and the tensor shapes between them, read from the module itself (for the Models tab).

The model is built from its config (the lab one from the training record) with random weights: only the
structure is read, never an output. One small clip goes through ``encode`` and ``decode`` with forward hooks
on the blocks two levels down (``encoder.down.0``, ``decoder.mid``, ...), in the order they run.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

TRACE_SIZE = 32  # px per side of the traced clip: shapes scale with it, structure does not


@dataclass(frozen=True)
class Block:
    name: str  # dotted module path, e.g. "encoder.down.1"
    kind: str  # class name
    params: int
    out_shape: tuple[int, ...]  # first tensor output, batch dropped: (C, T, H, W) or (C, H, W) or (N, D)
    stage: str  # "encode" or "decode"


@dataclass(frozen=True)
class Trace:
    model: str
    input_shape: tuple[int, ...]  # (C, T, H, W)
    latent_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    blocks: tuple[Block, ...]


def _first_tensor(out) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if (t := _first_tensor(o)) is not None:
                return t
    if isinstance(out, dict):
        for o in out.values():
            if (t := _first_tensor(o)) is not None:
                return t
    for attr in ("mean", "z", "main", "sample"):  # latent / distribution objects
        if isinstance(getattr(out, attr, None), torch.Tensor):
            return getattr(out, attr)
    return None


MAX_DEPTH = 4  # encoder.down_blocks.0.downsample is depth 4; deeper modules are never drawn


def _shown(calls: list[str], leaves: set[str]) -> list[str]:
    """The blocks to draw, in execution order: depth-2 modules that ran, and where one did not run as a
    whole (a container of blocks), its children that did; top-level modules only when they are leaves."""
    ran = set(calls)
    out: list[str] = []
    for path in dict.fromkeys(calls):
        parts = path.split(".")
        depth = len(parts)
        if depth == 1 and path not in leaves:
            continue
        if any(path.startswith(q + ".") for q in out):
            continue
        if any(".".join(parts[:k]) in ran for k in range(2, depth)):
            continue
        out.append(path)
    return out


@functools.lru_cache(maxsize=32)
def trace(name: str, size: int = TRACE_SIZE) -> Trace:
    """Blocks of ``name``'s lab configuration in execution order, with their output shapes."""
    from .. import models

    model = models.build(name, models.training_record(name).get("config")).eval()
    rule = model.card.frame_rule
    t = 1 if rule == "any" else (1 + int(rule.split("+")[1].rstrip("k")) if rule.startswith("1+")
                                 else int(rule.rstrip("k")))
    x = torch.zeros(1, 3, t, size, size)
    calls: list[str] = []
    info: dict[str, tuple] = {}
    stage = ["encode"]
    hooks = []
    leaves = set()
    for path, mod in model.named_modules():
        if not path or path.count(".") >= MAX_DEPTH or sum(p.numel() for p in mod.parameters()) == 0:
            continue
        if not any(True for _ in mod.children()):
            leaves.add(path)

        def pre(m, args, path=path):
            calls.append(path)

        def post(m, args, out, path=path):
            ten = _first_tensor(out)
            if ten is not None and path not in info:
                info[path] = (type(m).__name__, sum(p.numel() for p in m.parameters()),
                              tuple(int(s) for s in ten.shape[1:]), stage[0])
        hooks += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        with torch.no_grad():
            z = model.encode(x)
            stage[0] = "decode"
            calls.append("|")  # stage boundary: a block used by both stages is drawn in each
            y = model.decode(z)
    finally:
        for h in hooks:
            h.remove()
    cut = calls.index("|")
    blocks = []
    for part, st in ((calls[:cut], "encode"), (calls[cut + 1:], "decode")):
        for path in _shown([c for c in part if c in info], leaves):
            kind, params, shape, _ = info[path]
            blocks.append(Block(path, kind, params, shape, st))
    return Trace(name, tuple(x.shape[1:]), tuple(z.main.shape[1:]), tuple(_first_tensor(y).shape[1:]),
                 tuple(blocks))
