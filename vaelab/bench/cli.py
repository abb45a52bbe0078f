"""The whole report (``vaelab bench`` -> :func:`run_bench`) and ``python -m vaelab.bench``."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from ..engine import configure_threads
from ._common import VARIANTS, _device, _r
from .memory import _probe, _stream_probe, bench_stream_memory
from .per_model import bench_model
from .reference import bench_conv3d_kernels, bench_reference_sd
from .scaling import bench_scaling
from .timing import _loadavg, machine_info, matmul_peak_gflops

CONVENTIONS: dict[str, str] = {
    "median_s": "median wall-clock seconds of one call on the whole clip (1 x 3 x frames x size x size, float32), "
                "after one untimed warm-up call, under torch.inference_mode; CUDA is synchronised around each call",
    "times_s": "every timed call, in order",
    "frames_per_s": "frames / median_s for that stage alone; reconstruct_frames_per_s uses encode + decode",
    "flops_per_frame": "FLOPs counted by torch.utils.flop_counter.FlopCounterMode for one call on the clip, / frames, "
                       "on a meta-device copy of the model (same shapes, no compute; see flops_counted_on); "
                       "2 FLOPs per multiply-add of conv, matmul and attention; norms, activations, resampling, "
                       "the Haar transform and other elementwise ops are not counted, so it is a lower bound",
    "achieved_gflops": "counted FLOPs / median_s / 1e9",
    "peak_ratio": "achieved_gflops / matmul_peak.gflops of the same run (fp32 square matmul, best of repeats); "
                  "convolutions rarely reach it, so this is an efficiency indicator, not a hard limit",
    "peak_mem_mib": "CUDA: torch.cuda.max_memory_allocated during the stage minus memory allocated before it. "
                    "CPU: VmHWM after the stage minus VmRSS before it, in a fresh subprocess, with the high-water "
                    "mark reset through /proc/self/clear_refs; exact=false marks an upper bound",
    "threads": "torch intra-op threads used for every CPU number (matmul peak, timings and memory probes alike)",
    "reference_sd.ratio": "ours / diffusers median seconds for the same SD-config weights and input, timed "
                          "interleaved in one process (order alternates each repeat); < 1 means ours is faster",
    "loadavg": "1/5/15-minute load average at start and end: other work on the machine slows every number",
    "precision": "fp32 vs the reduced precision per model (engine.run_model, held-out frames): seconds, "
                 "cpu_seconds (process CPU time), speed-ups, PSNR of each and their difference, |uint8 diff| "
                 "distribution, achieved GFLOP/s over the fp32 and reduced matmul and conv3x3 peaks of the run",
}


def run_bench(names: list[str], size: int = 128, frames: int = 8, reference: bool = True, repeats: int = 3,
              weights: str = "lab", threads: int | None = None, memory: bool = True,
              device: str | torch.device | None = None, reference_size: int | None = None,
              reference_repeats: int = 2, precision: str | None = "auto", train_steps: int = 0) -> dict:
    """Everything ``vaelab bench`` reports: machine, matmul peak, one entry per model, the diffusers reference.

    ``threads`` sets torch's intra-op threads (None: the app's choice, ``engine.configure_threads``);
    the reference runs at ``reference_size`` (default ``size``). ``precision`` (resolved on the device; None or
    one resolving to fp32 skips it) adds ``"precision"``: fp32 vs that precision per model on the first ``frames``
    held-out frames at short side ``size`` (the issue's budget: 17 / 128), with the fp32 and reduced matmul/conv peaks of the same run (``bench.precision``);
    ``train_steps`` > 0 adds ``"training"``: that many AdamW steps per family in both precisions.
    """
    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    else:
        configure_threads()
    try:
        report = _run_bench(names, size, frames, reference, repeats, weights, memory, _device(device),
                            reference_size, reference_repeats)
        if precision:
            from .precision import bench_precision, bench_train_steps

            report["precision"] = bench_precision(names, precision, frames=frames, size=size,
                                                  repeats=max(1, min(repeats, 3)), device=_device(device))
            if train_steps:
                report["training"] = bench_train_steps(names, precision, steps=train_steps)
        return report
    finally:
        torch.set_num_threads(prev_threads)  # a library call should not leave the process's thread count changed


def _run_bench(names, size, frames, reference, repeats, weights, memory, dev, reference_size, reference_repeats):
    load_start = _loadavg()
    t0 = time.perf_counter()
    peak = matmul_peak_gflops(device=dev)
    report: dict[str, Any] = {
        "machine": {**machine_info(), "device": str(dev), "loadavg_start": load_start},
        "settings": {"size": size, "frames": frames, "repeats": repeats, "weights": weights, "memory": memory,
                     "reference_size": (reference_size or size) if reference else None,
                     "reference_repeats": reference_repeats if reference else None},
        "matmul_peak": peak,
        "models": {n: bench_model(n, size=size, frames=frames, repeats=repeats, weights=weights, device=dev,
                                  peak=peak, memory=memory) for n in names},
        "reference_sd": (bench_reference_sd(size=reference_size or size, repeats=reference_repeats, device=dev)
                         if reference else None),
        "conventions": CONVENTIONS,
    }
    report["machine"]["loadavg_end"] = _loadavg()
    report["wall_s"] = _r(time.perf_counter() - t0, 4)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaelab.bench",
                                description="Memory probe (--one), scaling sweep (--scaling), reference (--reference) "
                                            "or UMAP timing (--umap).")
    p.add_argument("--one", metavar="NAME", help="measure CPU peak RSS of one model in this fresh process")
    p.add_argument("--scaling", metavar="NAME", help="time/memory vs clip length and resolution")
    p.add_argument("--reference", action="store_true", help="our sd-vae vs diffusers at the SD config")
    p.add_argument("--conv3d", action="store_true", help="our Conv3d dispatch vs stock nn.Conv3d on the video models")
    p.add_argument("--stream", metavar="NAME", help="peak RSS of one streamed file reconstruction (fresh process)")
    p.add_argument("--stream-sweep", metavar="NAME", help="--stream at each of --lengths, one process each")
    p.add_argument("--path", help="video file for --stream (default: bundled bigbuckbunny.mp4)")
    p.add_argument("--chunk-latents", type=int, default=1)
    p.add_argument("--tile", type=int, default=0, help="--stream/--stream-sweep: spatial tile (px; 0 = untiled)")
    p.add_argument("--overlap", type=int, default=16, help="tile overlap (px)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--weights", default="lab")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--stages", default="encode,decode")
    p.add_argument("--mode", default="stages", choices=["stages", *VARIANTS])
    p.add_argument("--variants", default="engine", help="scaling: comma-separated paths among " + ", ".join(VARIANTS))
    p.add_argument("--lengths", default="17,33,65,129")
    p.add_argument("--sizes", default="128,256,480,720")
    p.add_argument("--umap", action="store_true", help="time the Latent space tab's UMAP / PCA embeddings "
                                                        "on synthetic latents of --points sizes")
    p.add_argument("--points", default="5000,50000", help="--umap: comma-separated point counts")
    p.add_argument("--channels", type=int, default=4, help="--umap: latent channels")
    p.add_argument("--cold", action="store_true", help="--umap: no warm-up, the first fit pays numba compilation")
    p.add_argument("--parallel", action="store_true", help="--umap: n_jobs=-1, no seed (not reproducible)")
    p.add_argument("--json", help="also write the result here")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.one:
        res = _probe(a.one, a.size, a.frames, a.weights, a.threads or torch.get_num_threads(),
                     a.stages.split(","), a.mode)
    elif a.scaling:
        res = bench_scaling(a.scaling, lengths=tuple(int(v) for v in a.lengths.split(",")),
                            sizes=tuple(int(v) for v in a.sizes.split(",")), weights=a.weights,
                            repeats=a.repeats, length_size=a.size, size_frames=a.frames,
                            variants=tuple(a.variants.split(",")))
    elif a.reference:
        res = bench_reference_sd(size=a.size, repeats=a.repeats)
    elif a.conv3d:
        res = bench_conv3d_kernels(frames=a.frames if a.frames != 8 else 9, repeats=a.repeats)
    elif a.stream:
        from ..io import example_path

        res = _stream_probe(a.stream, a.path or str(example_path("bigbuckbunny")), a.frames, a.size or None,
                            a.weights, a.threads or torch.get_num_threads(), a.chunk_latents,
                            tuple(int(v) for v in a.lengths.split(",")), tile=a.tile or None, overlap=a.overlap)
    elif a.stream_sweep:
        res = bench_stream_memory(a.stream_sweep, a.path, lengths=tuple(int(v) for v in a.lengths.split(",")),
                                  size=a.size or None, weights=a.weights, threads=a.threads or None,
                                  chunk_latents=a.chunk_latents, tile=a.tile or None, overlap=a.overlap)
    elif a.umap:
        from .embedding import bench_umap

        res = bench_umap(tuple(int(n) for n in a.points.split(",")), a.channels, warm=not a.cold,
                         parallel=a.parallel)
    else:
        p.error("give --one NAME, --scaling NAME, --reference, --conv3d, --stream NAME, --stream-sweep NAME or --umap")
    text = json.dumps(res)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    print(text)
    return 0

