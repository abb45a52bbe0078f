"""Parameter and FLOP counts of a model's encoder and decoder (for the model cards and LiteVAE's claim)."""
from __future__ import annotations

import functools

import torch
from torch.utils.flop_counter import FlopCounterMode


def _flops(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args)
    return int(counter.get_total_flops())


@functools.cache
def encoder_decoder_stats(name: str, size: int = 128) -> dict[str, float]:
    """Params and FLOPs per ``size`` x ``size`` frame, split into encoder and decoder (random weights suffice)."""
    from .. import models

    # Frozen: FlopCounterMode's module tracker hooks the autograd graph of every module input that requires
    # grad, and a view of a parameter taken under no_grad (VidTwin's Q-Former queries, expanded per place)
    # requires grad with no grad_fn: "Expected gradient function to be set" on every start.
    model = models.build(name, models.training_record(name).get("config")).eval().requires_grad_(False)
    card = model.card
    rule = card.frame_rule  # "any", "1+Nk" (one frame is a valid clip) or "Nk" (N frames are the smallest clip)
    t = 1 if rule == "any" or rule.startswith("1+") else int(rule.rstrip("k"))
    x = torch.zeros(1, 3, t, size, size)
    with torch.no_grad():
        z = model.encode(x)
    enc_flops = _flops(model.encode, x) / t
    dec_flops = _flops(model.decode, z) / t
    enc_params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("encoder", "quant_conv")))
    return {"encoder_params": enc_params, "decoder_params": model.num_params() - enc_params,
            "encoder_gflops": enc_flops / 1e9, "decoder_gflops": dec_flops / 1e9, "size": size}
