"""FLOPs, counted one way: ``FlopCounterMode`` on a meta-device copy of the model (shapes only)."""
from __future__ import annotations

from typing import Any, Callable

import torch

from .. import models


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs of one call ``fn(*args, **kwargs)`` as counted by ``FlopCounterMode`` (conv/matmul/attention only)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def _meta_count(make: Callable[[], Any], encode: Callable[[Any, torch.Tensor], torch.Tensor],
                decode: Callable[[Any, torch.Tensor], torch.Tensor], x_shape) -> tuple[int, int]:
    """Encode and decode FLOPs of a model built by ``make()`` on the meta device (shapes only, no compute).

    Why meta: on CPU, ``scaled_dot_product_attention`` runs a fused kernel that FlopCounterMode has no formula
    for, so attention would count as 0 there; on meta it decomposes into counted matmuls, and the count is the
    same whatever device the timings ran on.
    """
    with torch.device("meta"):
        m = make()
        x = torch.empty(tuple(x_shape))
        enc = count_flops(encode, m, x)
        z = encode(m, x)
        dec = count_flops(decode, m, z)
    return enc, dec


def model_flops(name: str, config: dict[str, Any], x_shape) -> tuple[int, int]:
    """(encode, decode) FLOPs of family ``name`` with ``config`` for an input of ``x_shape`` (B, 3, T, H, W)."""
    cls = models.model_class(name)
    return _meta_count(lambda: cls(config).eval(), lambda m, x: m.encode(x), lambda m, z: m.decode(z), x_shape)

