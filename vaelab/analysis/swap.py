"""Structure x Dynamics: VidTwin latent swaps between two clips, as plain data (no figures, no UI).

VidTwin codes a clip as a *structure* latent (a Q-Former keeps n_q representative moments per place,
spatially down-sampled) and a *dynamics* latent (per frame, one profile over the rows and one over the
columns). Its decoder adds the two embeddings, so the parts of two clips can be recombined:

    z_A = encode(A), z_B = encode(B)          A, B: aligned clips of the same T x H x W
    decode(S_A + D_A)  = A's reconstruction    decode(S_A) = A's structure alone (dynamics part omitted)
    decode(S_A + D_B)  = A's structure, B's dynamics (the paper's cross-reenactment)

``load_pair`` reads and aligns two clips (B is scaled and centre-cropped to A's frame, the shorter clip is
looped to the longer one's length; each step is written into ``notes``); ``swap_clips`` runs the model
once per clip and returns every decode, the Q-Former's attention over frames and the latent sizes as a
:class:`SwapResult`. ``structure_distance`` / ``dynamics_distance`` compare clips by their slow, coarse
content and by their frame-to-frame change, the two things a swap should separate.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .. import limits
from ..engine import to_tensor, to_uint8
from ..models.base import pad_to_rule

# Per-request bounds live in vaelab.limits (SWAP); the names stay here for the tab and the tests.
# frames x pixels per request: the default 16 x 128 x 228 is ~0.47 M (about 9 s on one busy CPU thread)
_F = limits.SWAP
DEFAULT_FRAMES, MAX_FRAMES, DEFAULT_SIZE, MIN_SIZE, MAX_SIZE = (_F.default_frames, _F.max_frames, _F.default_size,
                                                                _F.min_size, _F.max_size)
MAX_WORK_CPU, MAX_WORK_GPU = _F.work_cpu, _F.work_gpu
STRUCTURE_POOL = 4  # px: the structure distance compares 4 x 4 block means of the time-averaged frame

CLIPS = ("A", "B")
# Grid rows of the view, left to right; the first entry of each row is the (aligned) input clip.
ROWS: dict[str, tuple[str, ...]] = {
    "A": ("clip A", "A reconstructed", "A structure only", "A dynamics only", "structure A + dynamics B"),
    "B": ("clip B", "B reconstructed", "B structure only", "B dynamics only", "structure B + dynamics A"),
}
LATENT_PARTS = ("structure", "dynamics_h", "dynamics_w")


@dataclass
class AlignedPair:
    """Two clips on one grid: ``a`` and ``b`` are uint8 (T, H, W, 3) of the same shape."""

    a: np.ndarray
    b: np.ndarray
    fps: float
    notes: list[str] = field(default_factory=list)


@dataclass
class LatentSizes:
    """Per clip: ``shapes[part]`` without the batch axis, for the (padded) clip; ``input_shape`` is (3, T, H, W)."""

    shapes: dict[str, tuple[int, ...]]
    input_shape: tuple[int, int, int, int]

    @property
    def input_numel(self) -> int:
        return math.prod(self.input_shape)

    def numel(self, part: str | None = None) -> int:
        """Values of one part, or of the whole latent (``None``)."""
        parts = LATENT_PARTS if part is None else (part,)
        return sum(math.prod(self.shapes[p]) for p in parts)

    def share(self, part: str | None = None) -> float:
        """Latent values / input values (0.0039 = 0.39 %)."""
        return self.numel(part) / self.input_numel


@dataclass
class SwapResult:
    """Everything the Structure x Dynamics view shows.

    ``clips["A"|"B"]``: the aligned inputs, uint8 (T, H, W, 3). ``decodes[name]``: uint8 (T, H, W, 3) for every
    non-input name in :data:`ROWS`. ``attention["A"|"B"]``: float (Q, T), the last Q-Former layer's
    cross-attention averaged over heads and positions, each row sums to 1 (Q = n_q per chunk of
    ``chunk_frames`` frames; a chunk's queries only see its frames). ``latents``: sizes, the same for both
    clips. ``seconds``: wall time of the model work.
    """

    clips: dict[str, np.ndarray]
    decodes: dict[str, np.ndarray]
    attention: dict[str, np.ndarray]
    latents: LatentSizes
    fps: float
    chunk_frames: int
    num_queries: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.clips["A"])

    def panel(self, name: str) -> np.ndarray:
        """uint8 (T, H, W, 3) of any name in :data:`ROWS` (inputs included)."""
        return self.clips[name[-1]] if name.startswith("clip ") else self.decodes[name]

    def rows(self, t: int | None = None) -> dict[str, dict[str, np.ndarray]]:
        """``{row: {panel name: clip}}`` in :data:`ROWS` order; with ``t``, the (H, W, 3) frame ``t`` of each."""
        return {r: {n: (self.panel(n) if t is None else self.panel(n)[t]) for n in names} for r, names in ROWS.items()}

    def swap_effect(self) -> dict[str, dict[str, float]]:
        """For each swap: mean |difference| (0-255) to A's and to B's reconstruction. A value near 0 means the
        swap is (almost) a no-op: that reconstruction's donor part carries (almost) the whole clip."""
        return {n: {f"to_{k}": float(np.abs(self.decodes[n].astype(np.float32)
                                            - self.decodes[f"{k} reconstructed"].astype(np.float32)).mean())
                    for k in CLIPS}
                for n in ("structure A + dynamics B", "structure B + dynamics A")}

    def distances(self) -> dict[str, dict[str, float | None]]:
        """For every decode: structure and dynamics distance to clip A and to clip B (0-255 units)."""
        a, b = self.clips["A"], self.clips["B"]
        return {n: {"layout_to_A": layout_similarity(y, a), "layout_to_B": layout_similarity(y, b),
                    "structure_to_A": structure_distance(y, a), "structure_to_B": structure_distance(y, b),
                    "dynamics_to_A": dynamics_distance(y, a), "dynamics_to_B": dynamics_distance(y, b),
                    "motion_to_A": motion_similarity(y, a), "motion_to_B": motion_similarity(y, b),
                    "fast_motion_to_A": fast_motion_similarity(y, a), "fast_motion_to_B": fast_motion_similarity(y, b)}
                for n, y in self.decodes.items()}


# --- comparing clips -------------------------------------------------------------------------------

def structure_distance(x_thwc: np.ndarray, y_thwc: np.ndarray, pool: int = STRUCTURE_POOL) -> float:
    """Mean |difference| (0-255) of two clips' time-averaged frames, after ``pool`` x ``pool`` block means.

    Averaging over time keeps what stays put; the block mean keeps the coarse layout and colour: the
    content VidTwin's structure latent is meant to carry."""
    def coarse(clip: np.ndarray) -> np.ndarray:
        m = clip.astype(np.float64).mean(0)  # (H, W, 3)
        p = pool if min(m.shape[:2]) >= pool else 1
        h, w = m.shape[0] // p * p, m.shape[1] // p * p
        return m[:h, :w].reshape(h // p, p, w // p, p, 3).mean((1, 3))

    return float(np.abs(coarse(x_thwc) - coarse(y_thwc)).mean())


def layout_similarity(x_thwc: np.ndarray, y_thwc: np.ndarray) -> float:
    """Correlation (-1..1) of two clips' time-averaged luminance after removing each one's mean and contrast.

    SSIM's "structure" term over the whole frame: where things are bright or dark, whatever their colour and
    exposure. The paper's swaps keep the structure donor's objects but the dynamics donor's colours, so this is
    the measure that asks "whose layout is it?"; :func:`structure_distance` mixes in colour."""
    def layout(clip: np.ndarray) -> np.ndarray:
        g = (clip.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).mean(0)
        return (g - g.mean()) / (g.std() + 1e-6)

    return float((layout(x_thwc) * layout(y_thwc)).mean())


MOTION_FLOOR = 0.05  # grey levels: a clip whose pooled frame-to-frame change has less spread is still


def _pooled_change(clip_thwc: np.ndarray, pool: int) -> np.ndarray:
    """(T-1, H/pool, W/pool) frame-to-frame change of the luminance, in ``pool`` x ``pool`` block means."""
    g = clip_thwc.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # (T, H, W)
    p = pool if min(g.shape[1:]) >= pool else 1
    h, w = g.shape[1] // p * p, g.shape[2] // p * p
    g = g[:, :h, :w].reshape(len(g), h // p, p, w // p, p).mean((2, 4))
    return np.diff(g, axis=0)


def motion_similarity(x_thwc: np.ndarray, y_thwc: np.ndarray, pool: int = STRUCTURE_POOL) -> float | None:
    """Motion-transfer score: correlation (-1..1) of two clips' frame-to-frame luminance changes, in
    ``pool`` x ``pool`` block means over every frame; None for one frame or when either clip is still.

    The twin of :func:`layout_similarity` for what moves: where and when the picture changes, whatever it
    shows. A structure-A + dynamics-B swap that carries B's motion correlates with B's change more than A's."""
    if len(x_thwc) < 2:
        return None
    return _change_correlation(_pooled_change(x_thwc, pool), _pooled_change(y_thwc, pool))


def _change_correlation(dx: np.ndarray, dy: np.ndarray) -> float | None:
    """Correlation (-1..1) of two change fields of one shape; None when either is still (spread < MOTION_FLOOR)."""
    if dx.std() < MOTION_FLOOR or dy.std() < MOTION_FLOOR:
        return None
    return float(((dx - dx.mean()) / dx.std() * (dy - dy.mean()) / dy.std()).mean())


FAST_WINDOW = 4  # frames: the lab structure latent's temporal factor (16 frames -> 4 keyframes)


def _fast_part(change: np.ndarray, window: int) -> np.ndarray:
    """``change`` (T-1, h, w) minus its centred moving average over ``window`` frames (edges replicated): the
    part of the motion that varies faster than the structure latent's keyframes can follow."""
    pad = window // 2
    padded = np.concatenate([change[:1].repeat(pad, 0), change, change[-1:].repeat(window - 1 - pad, 0)], 0)
    c = np.cumsum(np.concatenate([np.zeros_like(change[:1]), padded], 0), axis=0)
    return change - (c[window:] - c[:-window]) / window


def fast_motion_similarity(x_thwc: np.ndarray, y_thwc: np.ndarray, pool: int = STRUCTURE_POOL,
                           window: int = FAST_WINDOW) -> float | None:
    """Fast-motion transfer score: :func:`motion_similarity` of the frame-to-frame changes after removing
    their moving average over ``window`` frames; None for clips shorter than ``window`` + 1 frames or without fast
    change. The paper splits motion in two: slow motion rides on the structure latent (n_q keyframes per chunk),
    fast motion on the dynamics latent; a swap's *fast* motion should follow the dynamics donor."""
    if len(x_thwc) < window + 1:
        return None
    return _change_correlation(_fast_part(_pooled_change(x_thwc, pool), window),
                               _fast_part(_pooled_change(y_thwc, pool), window))


def dynamics_distance(x_thwc: np.ndarray, y_thwc: np.ndarray) -> float | None:
    """Mean |difference| (0-255) of two clips' frame-to-frame changes x[t+1] - x[t]; None for one frame.

    A still clip has zero change everywhere, so two still clips are at distance 0 whatever they show."""
    if len(x_thwc) < 2:
        return None
    dx = np.diff(x_thwc.astype(np.float32), axis=0)
    dy = np.diff(y_thwc.astype(np.float32), axis=0)
    return float(np.abs(dx - dy).mean())


# --- inputs ---------------------------------------------------------------------------------------

def _resize(frames_thwc: np.ndarray, h: int, w: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, h, w, 3), bilinear with antialiasing when shrinking."""
    x_tchw = torch.from_numpy(np.ascontiguousarray(frames_thwc)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x_tchw, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def fit_frame(frames_thwc: np.ndarray, h: int, w: int) -> tuple[np.ndarray, str | None]:
    """Scale a clip so it covers an h x w frame (aspect kept), then centre-crop to it. Returns the clip and a
    note saying what was done (None when the clip already was h x w)."""
    th, tw = frames_thwc.shape[1:3]
    if (th, tw) == (h, w):
        return frames_thwc, None
    s = max(h / th, w / tw)
    nh, nw = max(h, round(th * s)), max(w, round(tw * s))
    scaled = _resize(frames_thwc, nh, nw) if (nh, nw) != (th, tw) else frames_thwc
    top, left = (nh - h) // 2, (nw - w) // 2
    cut = " and ".join(c for c in (f"{nw - w} px of width" if nw > w else "",
                                    f"{nh - h} px of height" if nh > h else "") if c)
    if (nh, nw) == (th, tw):
        note = f"centre-cropped from {tw}x{th} to {w}x{h} ({cut} cut, split between both sides)"
    else:
        note = f"scaled from {tw}x{th} to {nw}x{nh} (x{s:.3g}) to cover {w}x{h}"
        if cut:
            note += f", then centre-cropped ({cut} cut, split between both sides)"
    return scaled[:, top:top + h, left:left + w], note


def loop_to(frames_thwc: np.ndarray, t: int) -> np.ndarray:
    """Repeat a clip from its start until it has ``t`` frames (frame i is source frame i mod T)."""
    return frames_thwc[np.arange(t) % len(frames_thwc)]


def align_pair(a_thwc: np.ndarray, b_thwc: np.ndarray, fps_a: float = 12.0, fps_b: float | None = None
               ) -> AlignedPair:
    """Put two uint8 (T, H, W, 3) clips on one grid, and say how.

    Space: B is scaled to cover A's frame (aspect kept) and centre-cropped to A's W x H: A is never changed.
    Time: both keep their own frames; the shorter one is looped from its start to the longer one's length
    (a still image is simply held). The pair plays at A's frame rate."""
    notes = []
    b_fit, how = fit_frame(b_thwc, *a_thwc.shape[1:3])
    h, w = a_thwc.shape[1:3]
    notes.append(f"Size: clip B {how}." if how else f"Size: both clips are {w}x{h}; nothing to align.")
    ta, tb = len(a_thwc), len(b_fit)
    t = max(ta, tb)
    for name, n, other in (("A", ta, tb), ("B", tb, ta)):
        if n == t:
            continue
        what = "its single frame is held" if n == 1 else f"looped from its start ({n} frames, repeated)"
        notes.append(f"Length: clip {name} has {n} frame(s), clip {'B' if name == 'A' else 'A'} has {other}: "
                     f"{what} to {t} frames.")
    if ta == tb:
        notes.append(f"Length: both clips have {t} frame(s); nothing to align.")
    if fps_b is not None and abs(fps_b - fps_a) > 1e-3:
        notes.append(f"Frame rate: both play at A's {fps_a:g} fps (B was {fps_b:g} fps; its frames are not resampled).")
    return AlignedPair(loop_to(a_thwc, t), loop_to(b_fit, t), fps_a, notes)


def load_pair(upload_a: str | None, example_a: str | None, upload_b: str | None, example_b: str | None, *,
              frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE) -> AlignedPair:
    """Read clip A and clip B (an upload wins over an example), first ``frames`` frames at short side ``size``,
    and align them (:func:`align_pair`). Raises ``VideoDecodeError`` or ``ValueError`` naming the clip."""
    from .. import pipeline
    from ..io import VideoDecodeError

    frames, size = limits.check_form(frames, size, limits.SWAP)
    clips = {}
    for name, upload, example in (("A", upload_a, example_a), ("B", upload_b, example_b)):
        try:
            clips[name] = pipeline.load_input(upload, example, frames=frames, size=size)
        except VideoDecodeError as e:
            raise VideoDecodeError(f"Clip {name}: {e}") from None
        except ValueError as e:
            raise ValueError(f"Clip {name}: {e}") from None
    a, b = clips["A"], clips["B"]
    pair = align_pair(a.frames, b.frames, a.fps, b.fps)
    read = [f"Clip {n}: " + "; ".join(c.notes) + "." for n, c in clips.items() if c.notes]
    pair.notes = read + pair.notes
    return pair


def check_work(shape_thwc: tuple[int, ...], device: str | torch.device = "cpu") -> None:
    """ValueError when T x H x W of the aligned clips is over the per-request cap for ``device``."""
    t, h, w = shape_thwc[:3]
    on_gpu = torch.device(device).type == "cuda"
    cap = MAX_WORK_GPU if on_gpu else MAX_WORK_CPU
    if t * h * w > cap:
        raise ValueError(f"This swap is too heavy for {'GPU' if on_gpu else 'CPU'}: {t} frames x {w}x{h} px "
                         f"= {t * h * w / 1e6:.2f} M pixels (limit {cap / 1e6:g} M). Lower the frames or the "
                         "working resolution.")


# --- the swap --------------------------------------------------------------------------------------

def fit_fixed_input(model, a_thwc: np.ndarray, b_thwc: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None]:
    """For a model with one fixed input size (the released VidTwin: 16 x 224 x 224): both aligned clips scaled to
    cover its frame and centre-cropped, then cut to (or looped to) its frame count; a note says what was done.
    Other models: the clips unchanged and no note."""
    arch = getattr(model, "arch", None)
    if arch is None:
        return a_thwc, b_thwc, None
    t, s = arch.frames, arch.size
    (a, how), (b, _) = fit_frame(a_thwc, s, s), fit_frame(b_thwc, s, s)
    n = len(a)
    length = (f"cut to its first {t} of {n} frames" if n > t else f"looped from {n} to {t} frames" if n < t
              else f"{t} frames as they are")
    size = f"both {how}" if how else f"both already {s}x{s}"
    note = (f"Released VidTwin: it reads {t} x {s} x {s} clips only (fixed position tables), so {size}, and "
            f"{length}.")
    return loop_to(a, t), loop_to(b, t), note


@torch.inference_mode()
def swap_clips(model, a_thwc: np.ndarray, b_thwc: np.ndarray, *, fps: float = 12.0,
               notes: list[str] | None = None) -> SwapResult:
    """Encode two aligned clips with a VidTwin model and decode every combination of their parts.

    ``a_thwc``/``b_thwc``: uint8 (T, H, W, 3) of one shape (see :func:`align_pair`). Both are
    replicate-padded to the model's size rule (a multiple of 16 px) and every decode is cropped back.
    Returns a :class:`SwapResult`; the model runs 2 encodes, 2 attention passes and 8 decodes.
    """
    if a_thwc.shape != b_thwc.shape:
        raise ValueError(f"clips must be aligned to one shape first (got {a_thwc.shape} and {b_thwc.shape})")
    a_thwc, b_thwc, fitted = fit_fixed_input(model, a_thwc, b_thwc)
    notes = list(notes or []) + ([fitted] if fitted else [])
    t, h, w, _ = a_thwc.shape
    device = next(model.parameters()).device
    f = 1 if fitted else model.card.spatial_factor  # a fixed-size model's clips already have its exact size
    t0 = time.perf_counter()
    x_a = pad_to_rule(to_tensor(a_thwc, device), f, "any")[0]  # (1, 3, T, H', W'), H' and W' multiples of f
    x_b = pad_to_rule(to_tensor(b_thwc, device), f, "any")[0]
    z = {"A": model.encode(x_a), "B": model.encode(x_b)}

    def decode(structure: str | None, dynamics: str | None) -> np.ndarray:
        y_bcthw = model.decode_parts(structure=z[structure] if structure else None,
                                     dynamics=z[dynamics] if dynamics else None, frames=t)
        return to_uint8(y_bcthw[:, :, :t, :h, :w])

    decodes = {}
    for own, other in (("A", "B"), ("B", "A")):
        decodes[f"{own} reconstructed"] = decode(own, own)
        decodes[f"{own} structure only"] = decode(own, None)
        decodes[f"{own} dynamics only"] = decode(None, own)
        decodes[f"structure {own} + dynamics {other}"] = decode(own, other)
    attention = {"A": model.qformer_attention(x_a)[0], "B": model.qformer_attention(x_b)[0]}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    shapes = {k: tuple(v.shape[1:]) for k, v in z["A"].items()}
    return SwapResult(
        clips={"A": a_thwc, "B": b_thwc}, decodes=decodes,
        attention={k: v.float().cpu().numpy() for k, v in attention.items()},
        latents=LatentSizes(shapes, (3, t, h, w)), fps=fps, chunk_frames=int(model.config["chunk_frames"]),
        num_queries=int(model.config["num_queries"]), seconds=seconds, notes=list(notes or []))


def swap_pair(model, pair: AlignedPair) -> SwapResult:
    """:func:`swap_clips` on an :class:`AlignedPair` (its notes and frame rate travel along)."""
    return swap_clips(model, pair.a, pair.b, fps=pair.fps, notes=pair.notes)


__all__ = ["AlignedPair", "LatentSizes", "SwapResult", "ROWS", "CLIPS", "LATENT_PARTS", "align_pair", "fit_frame",
           "loop_to", "load_pair", "fit_fixed_input", "check_work", "swap_clips", "swap_pair", "structure_distance", "layout_similarity", "dynamics_distance", "motion_similarity", "fast_motion_similarity",
           "DEFAULT_FRAMES", "MAX_FRAMES", "DEFAULT_SIZE", "MIN_SIZE", "MAX_SIZE", "MAX_WORK_CPU", "MAX_WORK_GPU"]
