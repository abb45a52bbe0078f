"""How long the Latent space tab's 2D embeddings take: UMAP and PCA on synthetic latent sets.

``python -m vaelab.bench --umap [--points 5000,50000] [--channels 4] [--cold] [--parallel] [--json OUT]``
(docs/PERFORMANCE.md, "Latent space (UMAP)"). The embeddings themselves are
:func:`vaelab.analysis.latents.umap_2d` / :func:`~vaelab.analysis.latents.pca_2d`.
"""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from ..analysis.latents import pca_2d, umap_2d, warm_umap


def synthetic_latents(n: int, channels: int = 4, seed: int = 0) -> np.ndarray:
    """(n, channels) float32: a mixture of 6 anisotropic Gaussian clusters, a stand-in for pooled latents
    when timing the embeddings (UMAP's cost depends on n, neighbours and epochs, hardly on the values)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, channels)) * 3
    scales = rng.uniform(0.3, 1.5, (6, channels))
    k = rng.integers(0, 6, n)
    return (centres[k] + rng.standard_normal((n, channels)) * scales[k]).astype(np.float32)


def bench_umap(sizes: tuple[int, ...] = (5_000, 50_000), channels: int = 4, warm: bool = True,
               parallel: bool = False, seed: int = 0) -> dict[str, Any]:
    """Time :func:`umap_2d` and :func:`pca_2d` on :func:`synthetic_latents` of each size, in this process.

    ``warm``: run :func:`warm_umap` first (its step times are reported), so the fits exclude numba
    compilation; without it the first fit includes whatever compilation this process still needs
    (run it in a fresh process, with ``NUMBA_CACHE_DIR`` set to an empty folder for a fully cold start).
    Wall seconds (``*_s``) and process CPU seconds (``*_cpu_s``, summed over threads, so less affected by
    other processes on a shared machine)."""
    out: dict[str, Any] = {"sizes": list(sizes), "channels": channels, "parallel": parallel, "seed": seed,
                           "torch_threads": torch.get_num_threads(), "warm_up_s": {}, "warm_up_cpu_s": 0.0,
                           "umap_s": {}, "umap_cpu_s": {}, "pca_s": {}}
    if warm:
        c0 = time.process_time()
        out["warm_up_s"] = {k: round(v, 3) for k, v in warm_umap(parallel=parallel, approximate=True).items()}
        out["warm_up_cpu_s"] = round(time.process_time() - c0, 3)
    for n in sizes:
        v = synthetic_latents(n, channels, seed)
        t0, c0 = time.perf_counter(), time.process_time()
        umap_2d(v, seed=seed, parallel=parallel)
        out["umap_s"][n] = round(time.perf_counter() - t0, 3)
        out["umap_cpu_s"][n] = round(time.process_time() - c0, 3)  # all threads: less sensitive to other load
        t0 = time.perf_counter()
        pca_2d(v)
        out["pca_s"][n] = round(time.perf_counter() - t0, 4)
    out["load_avg"] = [round(v, 2) for v in os.getloadavg()]
    return out
