"""Words shown in the app: model cards, conventions, limits. Formatting only, no maths."""
from __future__ import annotations

from typing import Any

from ..models.base import ModelCard

INTRO = """# VAE Lab
See what image and video VAEs do to a clip. Upload a video or an image (or pick a bundled example),
choose models, and compare **reconstructions**, **per-pixel error** (one fixed colour scale for every
model) and **per-frame PSNR / SSIM / LPIPS**. Every model here runs *lab-scale weights trained by VAE Lab*
on a CPU (see the **Models** tab for recipes and held-out numbers) - they show each family's idea, not the
quality of the published checkpoints.
"""


WAVELETS_HELP = (
    "The Haar transform is orthonormal, so each model's squared error splits exactly over the bands: the "
    "error bars of one model add up to its MSE. Low-pass bands (LL, LLL) hold the coarse image; the others hold "
    "edges (LH vertical, HL horizontal, HH diagonal) and, in 3D, change over time (bands starting with H). "
    "A VAE that blurs loses energy in the fine (level-1) detail bands. Levels 1-3 of the 2D transform of the "
    "input are exactly what LiteVAE's encoder receives (its 12-channel pyramid)."
)


def limits_text(max_frames: int, max_size: int, max_mb: int, max_seconds: float) -> str:
    return (f"**Limits:** files up to {max_mb} MB; up to {max_frames} frames from the start of the clip; "
            f"working resolution (short side) up to {max_size} px; decoding stops after {max_seconds:g} s of "
            "source video. Larger inputs are resized while decoding, never rejected for size alone.")


def conventions_md(conventions: dict[str, str], lpips_message: str) -> str:
    lines = ["**How the numbers are computed** (on decoded frames, not on the re-encoded MP4):"]
    lines += [f"- *{k}*: {v}" for k, v in conventions.items()]
    if lpips_message:
        lines.append(f"- {lpips_message}")
    return "\n".join(lines)


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def card_md(card: ModelCard, stats: dict[str, float] | None = None, input_shape: tuple[int, int, int] | None = None) -> str:
    """One model card: idea, paper, architecture, shapes, size, training recipe and measured numbers."""
    p = card.paper
    md = [f"### {card.name} - {card.family}",
          f"*{p.title}* ({p.venue} {p.year}){f' - [paper]({p.url})' if p.url else ''}",
          "", card.teaching, "",
          f"- **Idea:** {card.idea}",
          f"- **Architecture:** {card.architecture}",
          f"- **Compression:** {card.temporal_factor}x{card.spatial_factor}x{card.spatial_factor} (T x H x W), "
          f"{card.latent_channels} latent channels, frame rule `{card.frame_rule}`, "
          f"{'causal in time' if card.causal else 'not causal'}, {card.kind} model",
          f"- **Parameters:** {_fmt_params(card.params)}"]
    if stats:
        md.append(f"  - encoder {_fmt_params(int(stats['encoder_params']))}, {stats['encoder_gflops']:.2f} GFLOPs; "
                  f"decoder {_fmt_params(int(stats['decoder_params']))}, {stats['decoder_gflops']:.2f} GFLOPs "
                  f"(per {stats['size']}x{stats['size']} frame, counted with torch.utils.flop_counter on the meta device)")
    if input_shape:
        t, h, w = input_shape
        md.append(f"- **Latent for the current input** ({t}x{h}x{w}): {card.latent_shape(t, h, w)} "
                  f"(C, T', H', W'), compression x{card.compression(t, h, w):.1f}")
    md.append(f"- **Weights:** {card.weights}")
    md += _training_md(card.training)
    return "\n".join(md)


def _training_md(tr: dict[str, Any]) -> list[str]:
    if not tr:
        return ["- **Training:** not trained yet."]
    r = tr.get("recipe", {})
    held = tr.get("heldout", {})
    clips = {k: v for k, v in held.items() if isinstance(v, dict)}
    out = [f"- **Training recipe:** {tr.get('steps')} steps, batch {r.get('batch')}, {r.get('crop')} px crops, "
           f"lr {r.get('lr')}; {r.get('losses', '')}; {r.get('optimizer', '')}. Data: {r.get('data', '')}. "
           f"Wall time {tr.get('wall_time_s', 0) / 60:.0f} min on {tr.get('machine', '?')} ({tr.get('date', '')})."]
    if clips:
        rows = "; ".join(f"{k}: {v['psnr']:.2f} dB / SSIM {v.get('ssim', float('nan')):.3f} ({v.get('frames')} frames, "
                         f"{v.get('size')})" for k, v in clips.items())
        out.append(f"- **Held-out (measured):** mean PSNR {held.get('mean_psnr', float('nan')):.2f} dB, "
                   f"SSIM {held.get('mean_ssim', float('nan')):.3f}. {rows}. Protocol: {held.get('protocol', '')}")
    if ce := tr.get("caption_effect"):
        out.append(f"- **Caption effect (held-out, measured):** right caption {ce['right']:.2f} dB, no caption "
                   f"{ce['none']:.2f} dB, wrong caption {ce['wrong']:.2f} dB.")
    if tr.get("notes"):
        out.append(f"- **Notes:** {tr['notes']}")
    return out
