"""Speed, FLOPs and memory of the VAE Lab models, and our sd-vae against diffusers' AutoencoderKL.

``vaelab bench`` calls :func:`run_bench` and writes the JSON it returns; docs/PERFORMANCE.md
explains every number. The short version (also in the report under ``"conventions"``):

* **time**: encode and decode are timed separately with ``time.perf_counter`` around one call
  on the whole clip (CUDA synchronised before and after), under ``torch.inference_mode``, after
  one untimed warm-up call; the reported value is the median over ``repeats`` calls.
* **FLOPs**: counted once by ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add of
  conv / matmul / attention; norms, activations, resampling and other elementwise ops are not
  counted) on a copy of the model on the meta device (shapes only: no compute, and attention is
  counted, which the fused CPU attention kernel is not), divided by the number of frames.
* **achieved GFLOP/s**: counted FLOPs / median seconds; **peak ratio**: that over this machine's
  fp32 matmul GFLOP/s (:func:`matmul_peak_gflops`, best of ``repeats``) measured in the same run.
* **memory**: on CUDA, ``torch.cuda.max_memory_allocated`` during the stage minus what was
  allocated before it. On CPU, the peak resident-set increase of the stage, measured in a fresh
  subprocess (``python -m vaelab.bench --one NAME ...``) from ``/proc/self/status``: the kernel's
  high-water mark ``VmHWM`` is reset (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0) before the
  stage and read after it, so the value is ``VmHWM_after - VmRSS_before``. Where the reset is not
  allowed each stage gets its own subprocess and a value that could not be separated from the
  set-up peak is flagged ``"exact": false`` (then it is an upper bound).

Modules: ``timing`` (peaks, timed pairs), ``flops`` (meta-device counting), ``memory`` (probes),
``per_model``, ``precision`` (fp32 vs reduced precision), ``reference`` (diffusers, Conv3d dispatch),
``scaling``, ``embedding`` (UMAP / PCA timing of the Latent space tab), ``cli`` (the report and
``python -m vaelab.bench``).
"""
from __future__ import annotations

from ._common import SCALING_TILE, VARIANTS, run_variant
from .cli import CONVENTIONS, main, run_bench
from .embedding import bench_umap, synthetic_latents
from .flops import count_flops, model_flops
from .memory import bench_stream_memory, measure_memory_cpu
from .per_model import DECODER_UPCAST, bench_model
from .reference import bench_conv3d_kernels, bench_reference_sd
from .scaling import bench_scaling
from .timing import machine_info, matmul_peak_gflops

__all__ = ["CONVENTIONS", "DECODER_UPCAST", "SCALING_TILE", "VARIANTS", "bench_conv3d_kernels", "bench_model",
           "bench_reference_sd", "bench_scaling", "bench_umap", "bench_stream_memory", "count_flops", "machine_info",
           "main", "matmul_peak_gflops", "measure_memory_cpu", "model_flops", "run_bench", "run_variant", "synthetic_latents"]
