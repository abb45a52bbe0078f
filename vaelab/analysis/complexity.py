"""Parameter and FLOP counts of a model's encoder and decoder: the package's one FLOP counter.

FLOPs are counted one way everywhere (the Models table and cards, ``vaelab bench``, the reference comparison):
``torch.utils.flop_counter.FlopCounterMode`` on a copy of the model built on the meta device (shapes only, no
compute). 2 FLOPs per multiply-add of conv / matmul / attention; norms, activations, resampling and other
elementwise ops are not counted.

Why meta: on CPU two kernels the counter has no formula for run instead of counted ops, so counting a CPU
forward misses work: the fused ``scaled_dot_product_attention`` CPU kernel (every attention block counts as 0)
and our ``Conv3d``'s direct oneDNN call (``models._blocks.Conv3d``: every dispatched 3D convolution counts as
0). On meta, attention decomposes into counted matmuls and convolutions go through ``aten.convolution``, so the
count is the architecture's, whatever device the timings ran on.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs of one call ``fn(*args, **kwargs)`` as ``FlopCounterMode`` sees it, on whatever device the
    arguments live (use :func:`meta_flops` / :func:`model_flops` for a model: see the module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def meta_flops(make: Callable[[], Any], encode: Callable[[Any, torch.Tensor], Any],
               decode: Callable[[Any, Any], Any], x_shape) -> tuple[int, int]:
    """(encode, decode) FLOPs of a model built by ``make()`` on the meta device, for an input of ``x_shape``.

    The model is frozen and run under ``no_grad``: FlopCounterMode's module tracker hooks the autograd graph of
    every module input that requires grad, and a view of a parameter taken under no_grad (VidTwin's Q-Former
    queries, expanded per place) requires grad with no grad_fn ("Expected gradient function to be set")."""
    with torch.device("meta"), torch.no_grad():
        m = make()
        if isinstance(m, torch.nn.Module):
            m = m.eval().requires_grad_(False)
        x = torch.empty(tuple(x_shape))
        enc = count_flops(encode, m, x)
        z = encode(m, x)
        dec = count_flops(decode, m, z)
    return enc, dec


def model_flops(name: str, config: Any, x_shape) -> tuple[int, int]:
    """(encode, decode) FLOPs of family ``name`` built with ``config`` for an input of ``x_shape`` (B, 3, T, H, W)."""
    from .. import models

    return meta_flops(lambda: models.build(name, config), lambda m, x: m.encode(x), lambda m, z: m.decode(z),
                      x_shape)


def smallest_clip_frames(frame_rule: str) -> int:
    """Frames of the shortest valid clip: 1 for "any" and "1+Nk" (one frame is a clip), N for "Nk"."""
    return 1 if frame_rule == "any" or frame_rule.startswith("1+") else int(frame_rule.rstrip("k"))


@functools.cache
def encoder_decoder_stats(name: str, size: int = 128) -> dict[str, float]:
    """Params and FLOPs per ``size`` x ``size`` frame, split into encoder and decoder, at the shipped weights'
    config (counted on the meta device; random weights suffice for the parameter count)."""
    from .. import models

    config = models.training_record(name).get("config")
    model = models.build(name, config)
    t = smallest_clip_frames(model.card.frame_rule)
    enc_flops, dec_flops = model_flops(name, config, (1, 3, t, size, size))
    enc_params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("encoder", "quant_conv")))
    return {"encoder_params": enc_params, "decoder_params": model.num_params() - enc_params,
            "encoder_gflops": enc_flops / t / 1e9, "decoder_gflops": dec_flops / t / 1e9, "size": size}
