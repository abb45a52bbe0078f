"""fp32 against a reduced precision (bf16 on this CPU) in one run: peaks, per-model inference, training steps.

* :func:`peaks`: the fp32 and reduced-precision matmul and 3x3-conv rates of this machine, measured together;
* :func:`bench_precision`: every model's ``engine.run_model`` time in both precisions on the held-out frames
  (interleaved repeats), the PSNR change, the max |uint8 difference| distribution, and each model's achieved
  GFLOP/s (FLOPs counted on the meta device) as a share of all four peaks;
* :func:`bench_train_steps`: AdamW steps at each family's recipe batch/crop/frames from one initialisation and
  the same batches in both precisions: step-time ratio and the two loss curves.
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import Any

import numpy as np
import torch

from .. import models
from ..device import autocast, resolve_precision
from ..metrics import psnr_per_frame
from ._common import _device, _r
from .flops import model_flops


def _best_rate(fn, flops: float, repeats: int, clock=time.perf_counter) -> float:
    fn()
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return flops / max(best, 1e-9) / 1e9


def peaks(precision: str = "bf16", repeats: int = 3, device: str | torch.device | None = None,
          n: int = 1024, channels: int = 128, size: int = 64) -> dict[str, Any]:
    """GFLOP/s of an ``n``-square matmul and of a ``channels`` -> ``channels`` 3x3 conv on a ``size``-px image,
    each in fp32 and under ``precision``'s autocast, best of ``repeats`` after a warm-up, interleaved."""
    dev = _device(device)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g).to(dev), torch.randn(n, n, generator=g).to(dev)
    x = torch.randn(1, channels, size, size, generator=g).to(dev)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(dev).requires_grad_(False)
    mm_flops, conv_flops = 2 * n ** 3, 2 * channels * channels * 9 * size * size
    out: dict[str, Any] = {"matmul": {}, "conv3x3": {}, "matmul_n": n,
                           "conv_shape": [1, channels, size, size], "threads": torch.get_num_threads(),
                           "device": str(dev), "repeats": repeats}
    with torch.inference_mode():
        for p in ("fp32", precision):
            def mm(p=p):
                with autocast(p, dev):
                    torch.mm(a, b)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)

            def cv(p=p):
                with autocast(p, dev):
                    conv(x)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)

            out["matmul"][p] = _r(_best_rate(mm, mm_flops, repeats), 5)
            out["conv3x3"][p] = _r(_best_rate(cv, conv_flops, repeats), 5)
            if dev.type == "cpu":  # by this process's CPU time too: stable when other jobs share the cores
                out.setdefault("cpu_time", {"matmul": {}, "conv3x3": {}})
                out["cpu_time"]["matmul"][p] = _r(_best_rate(mm, mm_flops, repeats, time.process_time), 5)
                out["cpu_time"]["conv3x3"][p] = _r(_best_rate(cv, conv_flops, repeats, time.process_time), 5)
    return out


def heldout_inputs(frames: int = 17, size: int = 128) -> dict[str, np.ndarray]:
    """The held-out frames of the training clips (last 20 %, never trained on), first ``frames`` of each."""
    from ..train.data import heldout_clips

    return {k: v[:frames] for k, v in heldout_clips(size).items()}


def bench_precision(names: list[str], precision: str = "auto", frames: int = 17, size: int = 128,
                    repeats: int = 2, device: str | torch.device | None = None,
                    peak: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per model: fp32 vs ``precision`` time (``run_model``, enc + dec, best of ``repeats`` interleaved), PSNR on
    the held-out frames in both, PSNR difference, max |uint8 diff| and its distribution, achieved GFLOP/s
    over this run's four peaks."""
    from ..engine import get_model, run_model

    dev = _device(device)
    prec = resolve_precision(precision, dev)
    if prec == "fp32":
        return {"skipped": f"precision {precision!r} resolves to fp32 on {dev}: nothing to compare", "device": str(dev)}
    clips = heldout_inputs(frames, size)
    peak = peak or peaks(prec, device=dev)
    rows = {}
    for name in names:
        model = get_model(name, "lab", dev)
        secs: dict[str, list[float]] = {"fp32": [], prec: []}
        cpu: dict[str, list[float]] = {"fp32": [], prec: []}
        recon: dict[str, dict[str, np.ndarray]] = {"fp32": {}, prec: {}}
        with torch.inference_mode():
            for p in ("fp32", prec):  # warm-up, and the reconstructions compared
                for clip_name, clip in clips.items():
                    recon[p][clip_name] = run_model(model, clip, precision=p).recon
            first = next(iter(clips.values()))
            for r in range(max(1, repeats)):
                for p in (("fp32", prec) if r % 2 == 0 else (prec, "fp32")):
                    c0 = time.process_time()
                    res = run_model(model, first, precision=p)
                    cpu[p].append(time.process_time() - c0)
                    secs[p].append(res.encode_s + res.decode_s)
        diff = np.concatenate([np.abs(recon[prec][c].astype(np.int16) - recon["fp32"][c]).ravel() for c in clips])
        hist = np.bincount(np.minimum(diff, 4), minlength=5) / diff.size
        psnr = {p: float(np.mean([psnr_per_frame(clips[c], recon[p][c]).mean() for c in clips]))
                for p in ("fp32", prec)}
        t, h, w, _ = first.shape
        from ..models.base import pad_frames_to_rule

        tp = pad_frames_to_rule(t, model.card.frame_rule)
        f = model.card.spatial_factor
        shape = (1, 3, tp, -(-h // f) * f, -(-w // f) * f)
        try:
            enc, dec = model_flops(name, model.config, shape)
            flops = enc + dec
        except Exception:  # noqa: BLE001 - no meta kernel for some op: no count
            flops = None
        best = {p: min(v) for p, v in secs.items()}
        best_cpu = {p: min(v) for p, v in cpu.items()}
        row: dict[str, Any] = {
            "device": str(dev), "precisions": ["fp32", prec], "clip": [t, h, w], "clips": list(clips),
            "seconds": {p: _r(v, 4) for p, v in best.items()}, "times_s": {p: [_r(s, 4) for s in v] for p, v in secs.items()},
            "speedup": _r(best["fp32"] / best[prec], 4),
            "cpu_seconds": {p: _r(v, 4) for p, v in best_cpu.items()},
            "speedup_cpu_time": _r(best_cpu["fp32"] / best_cpu[prec], 4),
            "psnr": {p: _r(v, 6) for p, v in psnr.items()}, "psnr_delta_db": _r(psnr[prec] - psnr["fp32"], 4),
            "uint8_diff": {"max": int(diff.max()), "mean": _r(float(diff.mean()), 4),
                           "share": {k: _r(float(v), 4) for k, v in zip(("0", "1", "2", "3", ">=4"), hist)}},
        }
        if flops:
            row["flops_per_clip"] = int(flops)
            for p in ("fp32", prec):
                gf = flops / best[p] / 1e9
                row[f"gflops_{p}"] = _r(gf, 5)
                row[f"peak_share_{p}"] = {f"{kind}_{q}": _r(gf / peak[kind][q], 4)
                                          for kind in ("matmul", "conv3x3") for q in ("fp32", prec)}
        rows[name] = row
    total = {p: _r(sum(r["seconds"][p] for r in rows.values()), 4) for p in ("fp32", prec)}
    total_cpu = {p: _r(sum(r["cpu_seconds"][p] for r in rows.values()), 4) for p in ("fp32", prec)}
    return {"precision": prec, "requested": precision, "device": str(dev), "frames": frames, "size": size,
            "repeats": repeats, "peaks": peak, "models": rows, "total_seconds": total, "total_cpu_seconds": total_cpu,
            "threads": torch.get_num_threads(),
            "max_abs_psnr_delta_db": _r(max(abs(r["psnr_delta_db"]) for r in rows.values()), 4) if rows else None,
            "method": "seconds = engine.run_model encode_s + decode_s (model wall time, no metrics); cpu_seconds = "
                      "this process's CPU time for the whole run_model call (stable when other jobs share the "
                      "cores); best of repeats after a warm-up, precisions interleaved; PSNR = mean over the held-out clips (first frames of "
                      "the last 20 % of each training clip) of the per-frame mean"}


def bench_train_steps(names: list[str], precision: str = "auto", steps: int = 3, threads: int | None = None,
                      batch: int | None = None, crop: int | None = None) -> dict[str, Any]:
    """Per family, at its recipe's batch / crop / frames: ``steps`` AdamW steps in fp32 and in ``precision``
    (autocast, fp32 master weights), from one initialisation and the same batches. Returns the step times
    (first step excluded as warm-up), their ratio and both loss curves. ``batch``/``crop`` override the recipe."""
    from ..train.data import Sampler, train_sources
    from ..train.loop import TrainConfig, build_for_training, forward_losses

    prec = resolve_precision(precision, "cpu")
    prev = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    rows = {}
    try:
        for name in names:
            recipe = models.training_record(name).get("recipe", {})
            cfg = TrainConfig(model=name, batch=batch or int(recipe.get("batch", 8)),
                              crop=crop or int(recipe.get("crop", 64)),
                              frames=int(recipe.get("frames", 1)))
            torch.manual_seed(0)
            base = build_for_training(cfg)
            sampler = Sampler(train_sources(), crop=cfg.crop, frames=cfg.frames, seed=0)
            batches = [sampler.sample(cfg.batch) for _ in range(steps + 1)]
            from ..models.base import reads_captions

            curves, times = {}, {}
            for p in ("fp32", prec):
                model = copy.deepcopy(base).train()
                opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=cfg.lr,
                                        betas=(0.9, 0.99))
                losses, secs = [], []
                for x, caps in batches:
                    t0 = time.process_time()
                    _, _, parts = forward_losses(model, x, caps, cfg, p, reads_captions(model))
                    total = sum(parts.values())
                    opt.zero_grad(set_to_none=True)
                    total.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
                    secs.append(time.process_time() - t0)
                    losses.append(float(total.detach()))
                curves[p], times[p] = losses, secs[1:]
            med = {p: statistics.median(v) for p, v in times.items()}
            rel = max(abs(a - b) / max(abs(a), 1e-8) for a, b in zip(curves["fp32"], curves[prec]))
            rows[name] = {"batch": cfg.batch, "crop": cfg.crop, "frames": cfg.frames,
                          "step_s": {p: _r(v, 4) for p, v in med.items()}, "speedup": _r(med["fp32"] / med[prec], 4),
                          "loss": {p: [_r(v, 5) for v in c] for p, c in curves.items()},
                          "max_rel_loss_diff": _r(rel, 4)}
    finally:
        torch.set_num_threads(prev)
    return {"precision": prec, "steps": steps, "threads": threads or prev, "models": rows,
            "method": "same initial weights and batches for both precisions; step = forward + losses + backward + "
                      "clip + AdamW, timed as this process's CPU time; median over steps after the first"}


def loss_curves(name: str, steps: int = 40, precision: str = "bf16", threads: int | None = None) -> dict[str, Any]:
    """A short training run in both precisions from the same start and batches (``bench_train_steps`` with more
    steps): the two loss curves and their largest relative difference."""
    res = bench_train_steps([name], precision=precision, steps=steps, threads=threads)
    return res | {"model": name}
