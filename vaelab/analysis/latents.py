"""Latent-space comparison of image and video VAEs: collect latents, measure distributions, embed in 2D.

Plain data only (no figures; see :mod:`vaelab.viz_latents`). The question it answers: does a video VAE
put a *video* somewhere else in latent space than the same frames coded as *images*, and how far is
either from an image VAE's (sd-vae) latents?

Collection (:func:`collect`), for a uint8 clip (T, H, W, 3):

* ``"video"``     each video model on the whole clip, padded to its frame/size rule (last frame and edge
                  pixels replicated, as :func:`vaelab.models.base.pad_to_rule`). Causal models with
                  ``encode_chunk`` are streamed (frame 0, then 16-frame chunks with layer caches), which
                  equals the one-shot latent to float rounding and bounds memory.
* ``"image"``     the same model on every frame fed as a 1-frame clip. For causal models ("1+4k") an image
                  *is* a 1-frame video (latent 0 sees frame 0 alone). For "4k" models (videovae-plus) the
                  single frame is padded per the rule (repeated to 4 frames, a still clip) and latent frame
                  0 is kept -- not videovae-plus's separate spatial-only image mode. For "any"-rule models
                  the 1-frame clip goes in as is; VidTwin then returns n_q structure slots for the frame, all
                  of which are kept (its video latent also has n_q slots per chunk).
* ``"reference"`` the image model (sd-vae) on every frame.

One vector per latent position with the channels as features, (N, C), taken from the latent's main
tensor (:class:`~vaelab.models.latent.Latent` ``.main``). For VidTwin that is its ``structure`` part
(d_S, n_q per chunk, H/16, W/16): the dynamics are per row / per column profiles, not per position, so they are not vectors of
the same kind. Latents are raw posterior means (no ``scaling_factor``).

Channel groups. Distances and embeddings only make sense between vectors with the same channel count
(walt and iv-vae have 8, sd-vae and most others 4). A :class:`LatentSet` may hold several channel
counts: ``vectors`` is then NaN-padded to the largest C and ``channels`` says how many columns each row
uses. Every computation here (:func:`embed`, :func:`distance_table`, :func:`channel_stats`) works per
channel group, so a 2D embedding is computed separately per group (coordinates of different groups are
not comparable), and the reference is compared only with models of its channel count.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cache import LRU, clip_hash
from ..metrics.latent import frechet_distance, sliced_wasserstein, vector_stats
from ..models.latent import Latent

SOURCES = ("video", "image", "reference")
UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean", "n_components": 2}
UMAP_MIN_POINTS = 20  # below this a channel group is embedded with PCA instead (UMAP needs a neighbourhood)
_IMAGE_BATCH = 8  # frames per batch for the image / reference passes


# --- the collected set ----------------------------------------------------------------------------

@dataclass
class LatentSet:
    """Latent vectors with one label row each (all arrays have length N).

    vectors   float32 (N, C_max): one latent position, channels as features; NaN past ``channels[i]``
    channels  int (N,): how many columns of ``vectors`` row i uses (its model's latent channels)
    source    str (N,): "video", "image" or "reference"
    model     str (N,): the model's card name
    t         int (N,): latent frame in the latent that produced the vector (video: index in the clip
              latent; image / reference: 0, or VidTwin's query slot)
    frame     int (N,): input frame the vector stands for (image / reference: that frame; video: first
              frame of the latent frame's window, e.g. 0, 1, 5, 9 for "1+4k", 0, 4, 8 for "4k"; VidTwin
              slot q of a chunk: chunk start + q * chunk / n_q, approximate since slots attend to every
              frame of the chunk)
    y, x      int (N,): latent position
    patch     int (N, 4): the input pixel box (y0, x0, y1, x1) of that latent cell (spatial factor sized,
              cropped to the frame; the encoder's receptive field is larger), for thumbnails
    key       what identifies the collection (clip hash, models, settings) for caches
    """

    vectors: np.ndarray
    channels: np.ndarray
    source: np.ndarray
    model: np.ndarray
    t: np.ndarray
    frame: np.ndarray
    y: np.ndarray
    x: np.ndarray
    patch: np.ndarray
    key: tuple = ()
    notes: list[str] = field(default_factory=list)

    _ARRAYS = ("vectors", "channels", "source", "model", "t", "frame", "y", "x", "patch")

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def take(self, index: np.ndarray) -> LatentSet:
        """The rows ``index`` (int indices or a boolean mask), labels kept aligned."""
        return replace(self, **{k: getattr(self, k)[index] for k in self._ARRAYS}, notes=list(self.notes))

    def groups(self) -> list[tuple[str, str]]:
        """(model, source) pairs present, in collection order."""
        seen = dict.fromkeys(zip(self.model.tolist(), self.source.tolist()))
        return list(seen)

    def group_index(self, model: str, source: str) -> np.ndarray:
        return np.flatnonzero((self.model == model) & (self.source == source))

    def channel_groups(self) -> dict[int, np.ndarray]:
        """Channel count -> row indices (in order of first appearance)."""
        return {int(c): np.flatnonzero(self.channels == c) for c in dict.fromkeys(self.channels.tolist())}

    def vectors_of(self, model: str, source: str) -> np.ndarray:
        """(n, C) float32 vectors of one group, without NaN padding."""
        idx = self.group_index(model, source)
        if len(idx) == 0:
            return np.zeros((0, 0), np.float32)
        return self.vectors[idx, : int(self.channels[idx[0]])]

    def subsample(self, cap: int, seed: int = 0) -> LatentSet:
        """At most ``cap`` rows, stratified per (model, source): every group keeps min(its size, share),
        where the share is an equal split of the cap among the groups still larger than it (so small
        groups are kept whole and large ones are cut to the same size). Rows keep their order; the
        choice is deterministic for a given ``seed``. Raises if ``cap`` < number of groups."""
        groups = self.groups()
        if len(self) <= cap:
            return self.take(np.arange(len(self)))
        if cap < len(groups):
            raise ValueError(f"cap {cap} is smaller than the number of (model, source) groups ({len(groups)})")
        sizes = {g: len(self.group_index(*g)) for g in groups}
        quota, left, open_ = {}, cap, sorted(groups, key=lambda g: sizes[g])
        while open_:
            share = left // len(open_)
            g = open_[0]
            if sizes[g] <= share:  # smallest group fits entirely
                quota[g] = sizes[g]
                left -= sizes[g]
                open_.pop(0)
                continue
            for i, g in enumerate(open_):  # the rest share what is left (remainder to the first ones)
                quota[g] = share + (1 if i < left - share * len(open_) else 0)
            break
        rng = np.random.default_rng(seed)
        keep = [np.sort(rng.choice(self.group_index(*g), quota[g], replace=False)) for g in groups]
        out = self.take(np.sort(np.concatenate(keep)))
        out.key = self.key + (("subsample", int(cap), int(seed)),)
        return out

    def to_npz(self, path: str | Path, **extra: np.ndarray) -> Path:
        """Write every array (plus ``extra`` arrays, e.g. ``coords``) and a JSON ``meta`` string to ``path``.

        Strings are stored as numpy unicode arrays, so ``np.load(path)`` needs no pickle."""
        path = Path(path)
        meta = {"key": repr(self.key), "notes": self.notes, "patch": "(y0, x0, y1, x1) input pixels",
                "vectors": "NaN-padded to the largest channel count; see channels"}
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        np.savez_compressed(path, **arrays, **extra, meta=np.array(json.dumps(meta)))
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def from_npz(cls, path: str | Path) -> LatentSet:
        """Read what :meth:`to_npz` wrote (extra arrays such as ``coords`` are ignored; ``key`` is the repr)."""
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"])) if "meta" in f else {}
            return cls(**{k: f[k] for k in cls._ARRAYS}, key=(meta.get("key", ""),), notes=meta.get("notes", []))


def _empty_set() -> LatentSet:
    z = np.zeros(0, np.int32)
    return LatentSet(np.zeros((0, 0), np.float32), z, np.zeros(0, "<U9"), np.zeros(0, "<U16"), z, z, z, z,
                     np.zeros((0, 4), np.int32))


def concat(sets: list[LatentSet]) -> LatentSet:
    """Rows of several sets, NaN-padding ``vectors`` to the widest channel count."""
    sets = [s for s in sets if len(s)]
    if not sets:
        return _empty_set()
    width = max(s.vectors.shape[1] for s in sets)
    vecs = [np.pad(s.vectors, ((0, 0), (0, width - s.vectors.shape[1])), constant_values=np.nan) for s in sets]
    out = {k: np.concatenate([getattr(s, k) for s in sets]) for k in LatentSet._ARRAYS if k != "vectors"}
    return LatentSet(np.concatenate(vecs).astype(np.float32), **out,
                     notes=[n for s in sets for n in s.notes])


# --- collection ----------------------------------------------------------------------------------

def _video_latent(model: Any, x_bcthw: torch.Tensor) -> Latent:
    """Latent of a clip padded to the model's rule (streamed for causal models: same result, bounded memory)."""
    from ..engine import _model_lock
    from ..models.base import pad_to_rule

    card = model.card
    x_pad, _ = pad_to_rule(x_bcthw, card.spatial_factor, card.frame_rule)
    with _model_lock(model):
        if model.streams_causally and x_pad.shape[2] > 1:
            from ..streaming import encode_streaming

            return encode_streaming(model, x_pad, chunk_latents=4)
        return model.encode(x_pad)


def _frame_of_latent(card: Any, t_lat: int, n_frames: int, chunk: int | None = None, n_q: int | None = None
                     ) -> np.ndarray:
    """Input frame each latent frame stands for (see :class:`LatentSet` ``frame``)."""
    j = np.arange(t_lat)
    if n_q:  # VidTwin: n_q slots per chunk of `chunk` frames
        c, q = j // n_q, j % n_q
        start = c * chunk
        length = np.minimum(chunk, n_frames - start)
        f = start + (q * length) // n_q
    elif card.frame_rule.startswith("1+"):  # "1+4k", and "1+8k" for production adapters (CogVideoX, LTX)
        f = np.where(j == 0, 0, 1 + card.temporal_factor * (j - 1))
    else:
        f = card.temporal_factor * j
    return np.minimum(f, n_frames - 1).astype(np.int32)


def _rows(z: torch.Tensor, name: str, source: str, spatial: int, h: int, w: int, t_index: np.ndarray,
          frame_index: np.ndarray) -> LatentSet:
    """Vectors of a (1, C, T', h', w') latent with labels; ``t_index``/``frame_index`` are per latent frame."""
    z = z[0].float().cpu().numpy()  # (C, T', h', w')
    c, tl, hl, wl = z.shape
    vec = np.ascontiguousarray(z.reshape(c, -1).T, dtype=np.float32)  # (T'*h'*w', C), order t, y, x
    tt, yy, xx = (a.ravel() for a in np.meshgrid(np.arange(tl), np.arange(hl), np.arange(wl), indexing="ij"))
    y0, x0 = yy * spatial, xx * spatial
    patch = np.stack([np.minimum(y0, h), np.minimum(x0, w), np.minimum(y0 + spatial, h),
                      np.minimum(x0 + spatial, w)], 1).astype(np.int32)
    n = len(vec)
    return LatentSet(vec, np.full(n, c, np.int32), np.full(n, source), np.full(n, name),
                     np.asarray(t_index)[tt].astype(np.int32), np.asarray(frame_index)[tt].astype(np.int32),
                     yy.astype(np.int32), xx.astype(np.int32), patch)


def _video_rows(model: Any, x: torch.Tensor) -> LatentSet:
    card = model.card
    t, h, w = x.shape[2:]
    z = _video_latent(model, x).main  # (1, C, T', h', w')
    frame = _frame_of_latent(card, z.shape[2], t, getattr(card, "chunk_frames", None), getattr(card, "num_queries", None))
    return _rows(z, card.name, "video", card.spatial_factor, h, w, np.arange(z.shape[2]), frame)


def _image_rows(model: Any, x: torch.Tensor, source: str) -> LatentSet:
    """Every frame as a 1-frame clip (batched); for image models ``encode`` folds time itself."""
    from ..engine import _model_lock
    from ..models.base import pad_to_rule

    card = model.card
    t, h, w = x.shape[2:]
    out = []
    for a in range(0, t, _IMAGE_BATCH):
        xb = x[0, :, a:a + _IMAGE_BATCH].transpose(0, 1).unsqueeze(2)  # (b, 3, 1, H, W)
        xb, _ = pad_to_rule(xb, card.spatial_factor, "any" if card.kind == "image" else card.frame_rule)
        with _model_lock(model):
            z = model.encode(xb).main  # (b, C, T1, h', w')
        if card.frame_rule == "4k":
            z = z[:, :, :1]  # the padded still clip: keep latent frame 0
        for i in range(z.shape[0]):
            out.append(_rows(z[i:i + 1], card.name, source, card.spatial_factor, h, w,
                             np.arange(z.shape[2]), np.full(z.shape[2], a + i)))
    return concat(out)


@torch.inference_mode()
def collect(frames_thwc: np.ndarray, video_models: list, image_reference: Any = None) -> LatentSet:
    """Latent vectors of a uint8 clip (T, H, W, 3) from ``video_models`` ("video" and "image" rows each)
    and ``image_reference`` (an image VAE such as sd-vae, "reference" rows; None to skip).

    Models are loaded ``VAE`` instances (``engine.get_model`` / ``models.load`` / ``models.build``); they run
    on their own device. See the module docstring for what each source means.
    """
    frames_thwc = np.asarray(frames_thwc)
    if frames_thwc.ndim != 4 or frames_thwc.shape[-1] != 3 or frames_thwc.dtype != np.uint8 or not frames_thwc.shape[0]:
        raise ValueError(f"expected a non-empty uint8 (T, H, W, 3) clip, got {frames_thwc.dtype} {frames_thwc.shape}")
    from ..engine import to_tensor

    parts, notes = [], []
    names = []
    for model in video_models:
        card = model.card
        if card.kind != "video":
            raise ValueError(f"{card.name} is an {card.kind} model; pass it as image_reference")
        x = to_tensor(frames_thwc, next(model.parameters()).device)
        parts += [_video_rows(model, x), _image_rows(model, x, "image")]
        names.append((card.name, str(getattr(model, "weights_source", ""))))
        if model.latent_parts:
            notes.append(f"{card.name}: main latent only ({model.latent_parts[0]}); "
                         f"{', '.join(model.latent_parts[1:])} not included")
    if image_reference is not None:
        card = image_reference.card
        if card.kind != "image":
            raise ValueError(f"the reference must be an image model, {card.name} is a {card.kind} model")
        x = to_tensor(frames_thwc, next(image_reference.parameters()).device)
        parts.append(_image_rows(image_reference, x, "reference"))
        names.append((card.name + " (reference)", str(getattr(image_reference, "weights_source", ""))))
    out = concat(parts)
    out.key = (clip_hash(frames_thwc), tuple(names))
    widths = sorted(set(out.channels.tolist()))
    if len(widths) > 1:
        notes.append("channel counts differ (" + ", ".join(f"C={c}" for c in widths)
                     + "): distances and embeddings are computed per channel group")
    out.notes = notes
    return out


# --- statistics and distances (full sets) -----------------------------------------------------

def channel_stats(lset: LatentSet) -> dict[tuple[str, str], dict[str, Any]]:
    """(model, source) -> {"n", "channels", "mean" (C,), "std" (C,)} over every vector of the group
    (:func:`vaelab.metrics.latent.vector_stats`)."""
    return {g: vector_stats(lset.vectors_of(*g)) for g in lset.groups()}


def distance_table(lset: LatentSet, n_proj: int = 128, seed: int = 0) -> list[dict[str, Any]]:
    """Per video model: video vs image, and each of them vs the reference when channel counts match,
    on the full vectors. Rows: {"model", "a", "b", "n_a", "n_b", "channels", "frechet", "sliced_w2"}
    (a reference row with a different C has frechet/sliced_w2 None and a "reason")."""
    groups = lset.groups()
    refs = [g for g in groups if g[1] == "reference"]
    rows = []
    for model in dict.fromkeys(m for m, s in groups if s != "reference"):
        pairs = [((model, "video"), (model, "image"))] + [((model, s), r) for s in ("video", "image") for r in refs]
        for ga, gb in pairs:
            if ga not in groups or gb not in groups:
                continue
            a, b = lset.vectors_of(*ga), lset.vectors_of(*gb)
            row = {"model": model, "a": ga[1], "b": gb[1] if gb[1] != "reference" else f"reference {gb[0]}",
                   "n_a": len(a), "n_b": len(b), "channels": int(a.shape[1])}
            if a.shape[1] != b.shape[1]:
                row |= {"frechet": None, "sliced_w2": None,
                        "reason": f"C={a.shape[1]} vs C={b.shape[1]}: different latent spaces"}
            else:
                row |= {"frechet": frechet_distance(a, b), "sliced_w2": sliced_wasserstein(a, b, n_proj, seed)}
            rows.append(row)
    return rows


# --- 2D embeddings -------------------------------------------------------------------------------

def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """(N, C) -> (N, 2) float32: projection on the first two principal axes (numpy SVD of the centred
    data; each axis' sign fixed so its largest-magnitude loading is positive: deterministic). Missing
    axes (C < 2 or rank < 2) are zeros."""
    v = np.asarray(vectors, np.float64)
    out = np.zeros((len(v), 2), np.float32)
    if len(v) < 2 or v.shape[1] == 0:
        return out
    v = v - v.mean(0)
    _, _, vt = np.linalg.svd(v, full_matrices=False)
    comps = vt[:2]
    comps = comps * np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])[:, None]
    out[:, : len(comps)] = (v @ comps.T).astype(np.float32)
    return out


@contextlib.contextmanager
def _quiet_and_keep_torch_threads():
    """Silence umap's small-data notices and restore torch's thread count afterwards: numba's OpenMP layer,
    started on the first umap call, resets the calling thread's OpenMP thread count (measured: torch back at
    2 threads after ``torch.set_num_threads(1)``, and torch ops ~10x slower on a busy 2-core box)."""
    n = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def _umap(n: int, seed: int, parallel: bool, **kw: Any):
    import umap

    params = dict(UMAP_PARAMS, n_neighbors=min(UMAP_PARAMS["n_neighbors"], max(2, n - 1)), **kw)
    if parallel:
        return umap.UMAP(**params, n_jobs=-1)
    return umap.UMAP(**params, random_state=seed, n_jobs=1)


def umap_2d(vectors: np.ndarray, seed: int = 0, parallel: bool = False) -> np.ndarray:
    """(N, C) -> (N, 2) float32 with umap-learn: euclidean, ``n_neighbors=15`` (capped at N - 1),
    ``min_dist=0.1``, spectral init. Default: ``random_state=seed`` and one thread, so the same input and
    seed give the same output. ``parallel=True``: ``n_jobs=-1`` and no random_state (numba-parallel SGD;
    faster on many cores, not reproducible). Fewer than :data:`UMAP_MIN_POINTS` points: :func:`pca_2d`.
    The first call in a process pays numba compilation (see :func:`warm_umap`)."""
    v = np.asarray(vectors, np.float32)
    if len(v) < UMAP_MIN_POINTS:
        return pca_2d(v)
    with _quiet_and_keep_torch_threads():
        return _umap(len(v), seed, parallel).fit_transform(v).astype(np.float32)


_WARM: dict[str, float] = {}
_WARM_LOCK = threading.Lock()


def warm_umap(parallel: bool = True, approximate: bool = True) -> dict[str, float]:
    """Compile umap's numba code once per process by fitting a tiny random set (64 points, 20 epochs):
    the exact-kNN path (what < 4096 points use), with ``approximate`` the NN-descent path
    (``force_approximation_algorithm``; what >= 4096 points use) and with ``parallel`` the parallel
    layout (``umap_2d(parallel=True)``). Cold, this costs tens of seconds of CPU (most of it NN-descent);
    call it from a background thread at start-up. Thread-safe; steps already done are skipped.
    Returns the seconds each step took in this call."""
    steps = [("import_s", None, {}), ("exact_s", False, {})]
    steps += [("nndescent_s", False, {"force_approximation_algorithm": True})] if approximate else []
    steps += [("parallel_s", True, {"force_approximation_algorithm": approximate})] if parallel else []
    done: dict[str, float] = {}
    with _WARM_LOCK, _quiet_and_keep_torch_threads():
        x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
        for step, par, kw in steps:
            if step in _WARM:
                continue
            t0 = time.perf_counter()
            if par is None:
                import umap  # noqa: F401  (the import itself compiles part of pynndescent)
            else:
                _umap(len(x), 0, par, n_epochs=20, **kw).fit_transform(x)
            _WARM[step] = done[step] = time.perf_counter() - t0
    return done


def warm_status() -> dict[str, float]:
    """Seconds each :func:`warm_umap` step took in this process (a step missing: not compiled yet)."""
    return dict(_WARM)


_EMBED_CACHE: LRU[np.ndarray] = LRU(8)


def embed(lset: LatentSet, method: str = "umap", seed: int = 0, parallel: bool = False) -> np.ndarray:
    """(N, 2) float32 coordinates, embedded separately per channel group ("umap" or "pca").

    Cached (LRU, 8 entries) by (the set's key: clip hash, models, subsample settings; a digest of the
    vectors, so re-collected latents from changed weights never hit a stale entry; method, seed,
    parallel). Returns a read-only array."""
    if method not in ("umap", "pca"):
        raise ValueError(f"method must be 'umap' or 'pca', got {method!r}")
    key = (lset.key, clip_hash(lset.vectors, lset.channels), method, int(seed), bool(parallel) and method == "umap")
    hit = _EMBED_CACHE.get(key)
    if hit is not None:
        return hit
    coords = np.zeros((len(lset), 2), np.float32)
    for c, idx in lset.channel_groups().items():
        v = lset.vectors[idx, :c]
        coords[idx] = umap_2d(v, seed, parallel) if method == "umap" else pca_2d(v)
    coords.flags.writeable = False
    _EMBED_CACHE.put(key, coords)
    return coords


# --- decoder compatibility -------------------------------------------------------------------------

@torch.inference_mode()
def compatibility(frames_thwc: np.ndarray, video_model: Any, image_model: Any) -> dict[str, Any]:
    """How well the image model's decoder reads the video model's latent.

    * Models with ``compatibility_psnr`` (CV-VAE): its own meter (the image model is attached as its
      frozen image decoder for the call if none is attached), ``"method": "cv-vae compatibility_psnr"``;
      its PSNRs are on float [-1, 1] with peak-to-peak 2 (the uint8 convention up to quantisation).
    * Otherwise, when latent channels and spatial factors match: every latent frame of the video latent
      through ``image_model.decode``, PSNR (uint8, :mod:`vaelab.metrics`) against the matching input
      frame, frame ``j * temporal_factor`` (0, 4, 8, ... for 4x; for "1+4k" that is the last frame of
      latent j's group, for "4k" the first). Also ``video_psnr`` (the video model's own decoder on those
      frames) and ``image_vae_psnr`` (the image model coding those frames itself: the ceiling).
    * Else ``{"psnr": None, "reason": ...}``.
    Always has "model", "image_model", "psnr" (float or None).
    """
    from .. import metrics
    from ..engine import _model_lock, to_tensor, to_uint8
    from ..models.base import pad_to_rule

    card = video_model.card
    base = {"model": card.name, "image_model": getattr(getattr(image_model, "card", None), "name", None)}
    t, h, w, _ = frames_thwc.shape
    dev = next(video_model.parameters()).device
    x = to_tensor(frames_thwc, dev)
    with _model_lock(video_model):
        own = video_model.compatibility_with(x, image_model)
    if own is not None:
        return base | own
    if image_model is None:
        return base | {"psnr": None, "reason": "no image model given"}
    icard = image_model.card
    if icard.kind != "image":
        return base | {"psnr": None, "reason": f"{icard.name} is not an image VAE"}
    if video_model.latent_parts:
        return base | {"psnr": None, "reason": f"{card.name}'s structure latent has query slots, not frames, "
                                               f"and a {card.spatial_factor}x spatial factor"}
    if card.latent_channels != icard.latent_channels:
        return base | {"psnr": None, "reason": f"latent channels differ ({card.name} C={card.latent_channels}, "
                                               f"{icard.name} C={icard.latent_channels})"}
    if card.spatial_factor != icard.spatial_factor:
        return base | {"psnr": None, "reason": f"spatial factors differ ({card.name} {card.spatial_factor}x, "
                                               f"{icard.name} {icard.spatial_factor}x)"}
    z = _video_latent(video_model, x)
    tf = card.temporal_factor
    lat = [j for j in range(z.main.shape[2]) if j * tf < t]
    idx = [j * tf for j in lat]
    zi = Latent(z.main[:, :, lat].to(next(image_model.parameters()).device))
    with _model_lock(image_model):
        img = to_uint8(image_model.decode(zi)[:, :, :, :h, :w])
        xi, _ = pad_to_rule(to_tensor(frames_thwc[idx], zi.main.device), icard.spatial_factor, "any")
        ceiling = to_uint8(image_model.reconstruct(xi)[:, :, :, :h, :w])
    with _model_lock(video_model):
        video = to_uint8(video_model.decode(z)[:, :, idx, :h, :w])
    ref = frames_thwc[idx]
    per = metrics.psnr_per_frame(ref, img)
    return base | {"psnr": float(per.mean()), "per_frame": [float(v) for v in per], "frames": idx,
                   "video_psnr": float(metrics.psnr_per_frame(ref, video).mean()),
                   "image_vae_psnr": float(metrics.psnr_per_frame(ref, ceiling).mean()),
                   "method": f"{icard.name} decoder on {card.name} latent frames"}


# --- everything computed on the full set, cached ---------------------------------------------------

@dataclass
class LatentReport:
    """What the Latent space tab shows that is computed on the full (not subsampled) set.

    lset           the collected :class:`LatentSet` (every vector)
    distances      :func:`distance_table` rows
    stats          :func:`channel_stats`
    compatibility  one :func:`compatibility` dict per video model (empty without a reference)
    seconds        wall time of each step when it was computed: "collect", "numbers", "compatibility"
    cached         True when this came from the cache (``seconds`` are then the original run's)
    """

    lset: LatentSet
    distances: list[dict[str, Any]]
    stats: dict[tuple[str, str], dict[str, Any]]
    compatibility: list[dict[str, Any]]
    seconds: dict[str, float]
    cached: bool = False


_REPORT_CACHE: LRU[LatentReport] = LRU(4)


def clear_caches() -> None:
    """Forget every cached report and embedding (tests; after weights changed in place)."""
    _REPORT_CACHE.clear()
    _EMBED_CACHE.clear()


def _weights_digest(model: Any) -> str:
    """Content hash of a model's state dict, computed once per model object (loaded models are read-only)."""
    digest = model.__dict__.get("_vaelab_weights_digest")
    if digest is None:
        h = hashlib.blake2b(digest_size=12)
        for k, v in model.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        digest = model.__dict__["_vaelab_weights_digest"] = h.hexdigest()
    return digest


def _model_id(model: Any) -> tuple[str, str, str]:
    """(name, device, weights digest): two models with these equal give the same latents."""
    return (model.card.name, str(next(model.parameters()).device), _weights_digest(model))


def analyse(frames_thwc: np.ndarray, video_models: list, image_reference: Any = None,
            with_compatibility: bool = True, precision: str = "fp32") -> LatentReport:
    """:func:`collect`, then :func:`distance_table`, :func:`channel_stats` and (with a reference and
    ``with_compatibility``) :func:`compatibility` for each video model, all on the full set.

    ``precision`` (a resolved one: fp32, bf16 or fp16) is the autocast the encoders and decoders run under
    (``vaelab.device.autocast``; fp32: none, the unchanged path); latents are read back as float32.

    Cached (LRU, 4 entries) per (clip hash, each model's name / device / weights digest, reference,
    with_compatibility, precision); a hit returns the stored results with ``cached=True``. The weights digest is
    computed once per model object, so callers must not change a model's weights after its first call."""
    frames_thwc = np.asarray(frames_thwc)
    key = None
    if frames_thwc.dtype == np.uint8 and frames_thwc.ndim == 4:  # collect() explains anything else
        key = (clip_hash(frames_thwc), tuple(_model_id(m) for m in video_models),
               _model_id(image_reference) if image_reference is not None else None, bool(with_compatibility),
               precision)
        hit = _REPORT_CACHE.get(key)
        if hit is not None:
            return replace(hit, cached=True)
    from ..device import autocast

    first = next(iter(video_models), image_reference)
    device = next(first.parameters()).device if first is not None else "cpu"
    t0 = time.perf_counter()
    with autocast(precision, device):
        lset = collect(frames_thwc, video_models, image_reference)
    t1 = time.perf_counter()
    distances, stats = distance_table(lset), channel_stats(lset)
    t2 = time.perf_counter()
    compat = []
    if with_compatibility and image_reference is not None:
        with autocast(precision, device):
            compat = [compatibility(frames_thwc, m, image_reference) for m in video_models]
    t3 = time.perf_counter()
    report = LatentReport(lset, distances, stats, compat,
                          {"collect": t1 - t0, "numbers": t2 - t1, "compatibility": t3 - t2})
    if key is not None:
        _REPORT_CACHE.put(key, report)
    return report


def summary(lset: LatentSet) -> dict[str, Any]:
    """Counts per (model, source) and per channel group (for logs and the CLI)."""
    return {"n": len(lset), "groups": {f"{m}/{s}": len(lset.group_index(m, s)) for m, s in lset.groups()},
            "channels": {int(c): len(i) for c, i in lset.channel_groups().items()}, "notes": lset.notes}


__all__ = ["LatentSet", "SOURCES", "UMAP_PARAMS", "collect", "concat", "clip_hash", "channel_stats",
           "frechet_distance", "sliced_wasserstein", "distance_table", "pca_2d", "umap_2d", "warm_umap", "embed",
           "compatibility", "summary", "LatentReport", "analyse", "warm_status", "clear_caches"]
