"""Same clip, one thing changed inside a model: VideoVAE+'s caption and IV-VAE's latent branches.

Plain data for the "Inside the model" tab (figures in ``vaelab.viz``):

* ``caption_effect``: VideoVAE+ reconstructs the clip three times, with the right caption, with no
  caption (the learned null token) and with a wrong one. Cross-attention reads the caption in both the
  encoder and the decoder, so the caption is part of the code: what changes between the three is what
  the caption carries.
* ``branch_ablation``: IV-VAE decodes its own latent with the keyframe half or the temporal half of the
  channels set to zero (``zero_branch``), and the per-frame PSNR is split by position inside each
  4-frame group: the keyframe branch should carry the group's first frames, the temporal one the rest.

Caption variants go through ``engine.run_model`` (padding and cropping as in Reconstruct); the branch variants
share one streamed encode and differ only in the decode. Both take a ``precision`` (``auto|fp32|bf16|fp16``,
resolved for the model's device as ``engine.run_model`` does); ``Ablation.device``/``precision`` say what ran.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import metrics
from ..engine import run_model
from ..models.base import reads_captions

WRONG_CAPTIONS = ("a scanned page of grey printed text", "many small galaxies and stars on a black sky")


@dataclass
class Variant:
    label: str
    recon: np.ndarray  # uint8 (T, H, W, 3)
    psnr: list[float]  # per frame, dB

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr))


@dataclass
class Ablation:
    model: str
    frames: np.ndarray  # the input, uint8 (T, H, W, 3)
    variants: dict[str, Variant]  # label -> variant; the first one is the model as trained
    by_position: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> group position -> dB
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"  # where the model ran
    precision: str = "fp32"  # what actually ran (fp32, bf16 or fp16; "fp16 + fp32" when a variant fell back)

    def difference(self, a: str, b: str) -> np.ndarray:
        """Mean absolute difference between two variants' reconstructions, per frame (uint8 levels)."""
        ra, rb = self.variants[a].recon.astype(np.float32), self.variants[b].recon.astype(np.float32)
        return np.abs(ra - rb).mean(axis=(1, 2, 3))


def wrong_caption_for(caption: str | None) -> str:
    """A caption about something else entirely (not this one)."""
    return next(c for c in WRONG_CAPTIONS if c != (caption or "").strip())


def _variant(label: str, model, frames: np.ndarray, ran: set[str], **kwargs) -> Variant:
    run = run_model(model, frames, **kwargs)
    ran.add(run.precision)
    return Variant(label, run.recon, metrics.psnr_per_frame(frames, run.recon).tolist())


def caption_effect(model, frames_thwc: np.ndarray, caption: str, wrong: str | None = None,
                   precision: str | None = None) -> Ablation:
    """VideoVAE+ on a uint8 clip with the right caption, none, and a wrong one (posterior means, no sampling),
    each run in ``precision`` (default: the model's, else fp32; see ``engine.run_model``)."""
    if not reads_captions(model):
        raise ValueError(f"{model.card.name} has no caption path; the caption effect needs videovae-plus")
    caption = (caption or "").strip()
    if not caption:
        raise ValueError("Type a caption that describes the clip (the example clips come with one).")
    wrong = (wrong or "").strip() or wrong_caption_for(caption)
    conds = {"right caption": caption, "no caption": None, "wrong caption": wrong}
    ran: set[str] = set()
    variants = {k: _variant(k, model, frames_thwc, ran, model_kwargs={"caption": c}, precision=precision)
                for k, c in conds.items()}
    out = Ablation(model.card.name, frames_thwc, variants, device=str(next(model.parameters()).device),
                   precision=" + ".join(sorted(ran)))
    d_none = float(out.difference("right caption", "no caption").mean())
    d_wrong = float(out.difference("right caption", "wrong caption").mean())
    gain_none = variants["right caption"].mean_psnr - variants["no caption"].mean_psnr
    gain_wrong = variants["right caption"].mean_psnr - variants["wrong caption"].mean_psnr
    out.notes = [
        f"right caption: \u201c{caption}\u201d; wrong caption: \u201c{wrong}\u201d",
        f"right vs none: {gain_none:+.2f} dB; right vs wrong: {gain_wrong:+.2f} dB (mean per-frame PSNR)",
        f"pixels change by {d_none:.2f} (none) and {d_wrong:.2f} (wrong) uint8 levels on average",
    ]
    return out


def branch_ablation(model, frames_thwc: np.ndarray, chunk_latents: int = 4, precision: str | None = None) -> Ablation:
    """IV-VAE on a uint8 clip: full decode, keyframe half zeroed, temporal half zeroed; PSNR by group position.

    The clip is encoded once (streamed, as ``run_model`` does) and its latent decoded three times, under
    ``precision``'s autocast (default: the model's, else fp32; fp32 is no autocast at all)."""
    import torch

    from ..device import autocast, resolve_precision
    from ..engine import _model_lock, to_tensor, to_uint8
    from ..models.base import pad_to_rule
    from ..streaming import decode_streaming, encode_streaming

    if not model.latent_branches:
        raise ValueError(f"{model.card.name} has no latent branches; the branch ablation needs iv-vae")
    t, h, w, _ = frames_thwc.shape
    conds = {"full latent": None} | {f"{b} branch zeroed": b for b in model.latent_branches}
    device = next(model.parameters()).device
    prec = resolve_precision(precision or getattr(model, "precision", None), device, default="fp32")
    x = to_tensor(frames_thwc, device)
    x_pad, _ = pad_to_rule(x, model.card.spatial_factor, model.card.frame_rule)  # last frame repeated, edges replicated
    variants = {}
    with torch.inference_mode(), _model_lock(model), autocast(prec, device):
        z = encode_streaming(model, x_pad, chunk_latents)
        for k, b in conds.items():
            rec = to_uint8(decode_streaming(model, z, chunk_latents, zero_branch=b)[:, :, :t, :h, :w])
            variants[k] = Variant(k, rec, metrics.psnr_per_frame(frames_thwc, rec).tolist())
    by_pos = {k: metrics.psnr_by_group_position(v.psnr) for k, v in variants.items()}
    out = Ablation(model.card.name, frames_thwc, variants, by_pos, device=str(device), precision=prec)
    for k, v in variants.items():
        pos = ", ".join(f"{p} {db:.1f}" for p, db in by_pos[k].items())
        out.notes.append(f"{k}: {v.mean_psnr:.2f} dB mean (by group position: {pos})")
    return out
