"""Latent-distribution metrics on sets of latent vectors (n, C): per-channel moments and set distances.

Used by :mod:`vaelab.analysis.latents` (image-vs-video latents of one clip) and the folder evaluation. Inputs
are plain arrays, one latent position per row with the channels as features.
"""

from __future__ import annotations

import numpy as np


def vector_stats(v: np.ndarray) -> dict:
    """{"n", "channels", "mean" (C,), "std" (C,)} of a vector set (n, C), in float64 (population std)."""
    v = np.asarray(v, np.float64)
    return {"n": int(len(v)), "channels": int(v.shape[1]), "mean": v.mean(0), "std": v.std(0)}


def _sqrtm_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr sqrtm(s1 s2) via the symmetric PSD product sqrt(s1) s2 sqrt(s1) (same spectrum as s1 s2)."""
    r = _sqrtm_psd(s1)
    m = r @ s2 @ r
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (n, C) sets with the same C, got {a.shape} and {b.shape}")
    if not len(a) or not len(b):
        raise ValueError("empty set")
    return a, b


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two vector sets (n, C) (as FID, squared units):
    ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)). The matrix square root's trace comes from the
    eigenvalues of the symmetric product S_a^(1/2) S_b S_a^(1/2) (negative rounding clipped), averaged
    over both orders so the result is exactly symmetric; >= 0. One-vector sets have zero covariance."""
    a, b = _check_pair(a, b)
    mu = a.mean(0) - b.mean(0)
    s1 = np.cov(a, rowvar=False).reshape(a.shape[1], a.shape[1]) if len(a) > 1 else np.zeros((a.shape[1],) * 2)
    s2 = np.cov(b, rowvar=False).reshape(b.shape[1], b.shape[1]) if len(b) > 1 else np.zeros((b.shape[1],) * 2)
    tr_cross = (_trace_sqrt_product(s1, s2) + _trace_sqrt_product(s2, s1)) / 2
    return max(0.0, float(mu @ mu + np.trace(s1) + np.trace(s2) - 2 * tr_cross))


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, n_proj: int = 128, seed: int = 0,
                       n_quantiles: int = 512) -> float:
    """Sliced 2-Wasserstein distance: sqrt of the mean over ``n_proj`` random unit directions (fixed by
    ``seed``) of the squared W2 between the two projected 1D distributions, compared at ``n_quantiles``
    evenly spaced quantile levels (linear interpolation), so the sets may differ in size.
    A pure mean shift d gives about |d| / sqrt(C)."""
    a, b = _check_pair(a, b)
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((a.shape[1], n_proj))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    q = (np.arange(n_quantiles) + 0.5) / n_quantiles
    qa, qb = np.quantile(a @ dirs, q, axis=0), np.quantile(b @ dirs, q, axis=0)
    return float(np.sqrt(np.mean((qa - qb) ** 2)))
