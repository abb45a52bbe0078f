"""Reference comparisons: our sd-vae vs diffusers' AutoencoderKL, and our Conv3d dispatch vs stock."""
from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from .. import models
from ._common import _device, _load_model, _r, _timed
from .flops import meta_flops


def _diffusers_autoencoder(cfg: dict[str, Any], size: int):
    import diffusers

    n = len(cfg["block_out_channels"])
    return diffusers.AutoencoderKL(
        in_channels=cfg["in_channels"], out_channels=cfg["out_channels"],
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg["block_out_channels"]), layers_per_block=cfg["layers_per_block"],
        latent_channels=cfg["latent_channels"], norm_num_groups=cfg["norm_num_groups"], sample_size=size,
    ).eval()


def bench_conv3d_kernels(names: tuple[str, ...] = ("iv-vae", "walt", "cv-vae", "videovae-plus"), frames: int = 9,
                         size: tuple[int, int] = (128, 224), repeats: int = 2, weights: str = "lab") -> dict:
    """Our ``_blocks.Conv3d`` (oneDNN for batch-1 CPU clips) vs stock ``nn.Conv3d`` dispatch, in one process.

    For each model: best-of-``repeats`` encode+decode seconds of one (1, 3, frames, H, W) clip with each
    dispatch (same weights, same input), their ratio, and the largest output difference (float rounding)."""
    from ..models._blocks import Conv3d

    ours, stock = Conv3d._conv_forward, torch.nn.Conv3d._conv_forward
    rows = []
    x = torch.rand(1, 3, frames, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    try:
        for name in names:
            notes: list[str] = []
            model, used = _load_model(name, weights, torch.device("cpu"), notes)
            xx = x if model.card.frame_rule == "1+4k" else x[:, :, : frames // 4 * 4]
            best, outs = {}, {}
            for kind, fn in (("ours", ours), ("stock", stock)):
                Conv3d._conv_forward = fn
                with torch.inference_mode():
                    model.decode(model.encode(xx))  # warm-up
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        outs[kind] = model.decode(model.encode(xx))
                        best[kind] = min(best.get(kind, float("inf")), time.perf_counter() - t0)
            rows.append({"name": name, "weights": used, "ours_s": _r(best["ours"], 4), "stock_s": _r(best["stock"], 4),
                         "speedup": _r(best["stock"] / best["ours"], 3),
                         "max_abs_diff": float((outs["ours"] - outs["stock"]).abs().max())})
    finally:
        Conv3d._conv_forward = ours
    return {"input": [1, 3, frames, *size], "threads": torch.get_num_threads(), "repeats": repeats, "rows": rows,
            "method": "same process, same weights and input; stock = torch.nn.Conv3d's own dispatch"}


def bench_reference_sd(size: int = 256, repeats: int = 2, config: dict[str, Any] | None = None, batch: int = 1,
                       device: str | torch.device | None = None, count: bool = True, seed: int = 0) -> dict:
    """Our sd-vae vs ``diffusers.AutoencoderKL`` with the same random weights (SD config unless ``config``).

    Checks decode(encode(x)) agrees to 1e-4 and times both interleaved in this process; ``ratio`` is
    ours / diffusers median seconds (< 1: ours faster).
    """
    from ..models.sd_vae import SD_CONFIG

    try:
        import diffusers
    except ImportError:
        return {"skipped": "diffusers is not installed (pip install 'vaelab[test]')"}
    dev = _device(device)
    cfg = {**SD_CONFIG, **(config or {})}
    torch.manual_seed(seed)
    ref = _diffusers_autoencoder(cfg, size)
    ours = models.build("sd-vae", cfg).eval()
    ours.load_diffusers_state_dict(ref.state_dict())
    ref.to(dev).requires_grad_(False)
    ours.to(dev).requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(dev)
    fns = {
        "ours": (lambda: ours.encode_frames(x), lambda z: ours.decode_frames(z)),
        "diffusers": (lambda: ref.encode(x).latent_dist.mode(), lambda z: ref.decode(z).sample),
    }
    times: dict[str, dict[str, list[float]]] = {k: {"encode": [], "decode": []} for k in fns}
    with torch.inference_mode():
        z = {k: enc() for k, (enc, _) in fns.items()}  # warm-up, and the parity check
        y = {k: dec(z[k]) for k, (_, dec) in fns.items()}
        latent_diff = float((z["ours"].main - z["diffusers"]).abs().max())  # ours: a Latent
        max_abs_diff = float((y["ours"] - y["diffusers"]).abs().max())
        for r in range(max(1, repeats)):
            order = ["ours", "diffusers"] if r % 2 == 0 else ["diffusers", "ours"]
            for stage in ("encode", "decode"):
                for k in order:
                    enc, dec = fns[k]
                    dt, _ = _timed(enc if stage == "encode" else (lambda: dec(z[k])), dev)
                    times[k][stage].append(dt)
    flops = {}
    if count:
        shape = x.shape
        flops["ours"] = dict(zip(("encode", "decode"), meta_flops(
            lambda: models.build("sd-vae", cfg), lambda m, x: m.encode_frames(x),
            lambda m, z: m.decode_frames(z), shape)))
        flops["diffusers"] = dict(zip(("encode", "decode"), meta_flops(
            lambda: _diffusers_autoencoder(cfg, size), lambda m, x: m.encode(x).latent_dist.mode(),
            lambda m, z: m.decode(z).sample, shape)))
    med = {k: {s: statistics.median(v) for s, v in st.items()} for k, st in times.items()}
    procs = getattr(ref, "attn_processors", {}) or {}
    result = {
        "config": {k: cfg[k] for k in ("block_out_channels", "layers_per_block", "latent_channels", "norm_num_groups")},
        "input_shape": list(x.shape), "device": str(dev), "dtype": "float32", "threads": torch.get_num_threads(),
        "diffusers_version": diffusers.__version__,
        "diffusers_attention": sorted({type(p).__name__ for p in procs.values()}),
        "max_abs_diff": _r(max_abs_diff, 4), "latent_max_abs_diff": _r(latent_diff, 4),
        "parity_ok": bool(max_abs_diff <= 1e-4),
        "repeats": max(1, repeats),
        "times_s": {k: {s: [_r(t) for t in v] for s, v in st.items()} for k, st in times.items()},
        "median_s": {k: {s: _r(v) for s, v in st.items()} for k, st in med.items()},
        "ratio": {s: _r(med["ours"][s] / med["diffusers"][s], 4) for s in ("encode", "decode")},
    }
    if flops:
        result["flops"] = flops
        result["flops_equal"] = flops["ours"] == flops["diffusers"]
    return result

