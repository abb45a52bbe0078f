"""Tab "Models": one compact table of measured numbers, then per family a block diagram and a few lines.

The diagrams are drawn from each family's module (``vaelab.analysis.module_trace`` runs a small clip through
the lab configuration with random weights and reads the block shapes; ``vaelab.viz_diagram`` draws them).
The long card text (recipe, notes) sits in a closed "More" section. Endpoint: ``/model_cards``.
"""
from __future__ import annotations

import html
import logging

import gradio as gr
import pandas as pd

from .. import models, pipeline
from ..analysis.warmup import COUNTING  # FLOP counts and shape traces never run at once (start-up included)
from . import text

log = logging.getLogger("vaelab.ui.models")

TABLE_HEADERS = ["model", "kind", "compression T×H×W", "channels", "params", "encoder GFLOPs / frame",
                 "decoder GFLOPs / frame", "held-out PSNR dB", "held-out SSIM", "training"]


def _stats(name: str):
    from ..analysis.complexity import encoder_decoder_stats

    if name not in models.all_names():  # production adapters: no FLOP count (full size)
        return None
    try:
        with COUNTING:
            return encoder_decoder_stats(name)
    except Exception:  # noqa: BLE001 - stats are a nicety; the table must still render
        log.warning("FLOP count of %s failed", name, exc_info=True)
        return None


def measured_table(state=None) -> pd.DataFrame:
    """One row per offered model: shapes from the card, parameters and FLOPs counted, held-out numbers
    from its training record; plus the latent for the last Reconstruct input when there is one."""
    shape = state.frames.shape[:3] if isinstance(state, pipeline.Comparison) else None
    rows = []
    for c in models.available():
        st = _stats(c.name)
        held = (c.training or {}).get("heldout", {})
        row = [c.name, c.kind, f"{c.temporal_factor}×{c.spatial_factor}×{c.spatial_factor}", c.latent_channels,
               f"{c.params / 1e6:.2f} M" if c.params else "—",
               f"{st['encoder_gflops']:.2f}" if st else "—", f"{st['decoder_gflops']:.2f}" if st else "—",
               round(held["mean_psnr"], 2) if "mean_psnr" in held else "—",
               round(held["mean_ssim"], 3) if "mean_ssim" in held else "—",
               f"{c.training.get('steps')} steps" if c.training else "not trained"]
        if shape is not None:
            row.append("×".join(map(str, c.latent_shape(*shape))))
        rows.append(row)
    headers = TABLE_HEADERS + ([f"latent for the current input ({'×'.join(map(str, shape))})"] if shape else [])
    return pd.DataFrame(rows, columns=headers)


def _diagram(name: str) -> str:
    from ..analysis.module_trace import trace
    from ..viz_diagram import block_diagram_svg

    if name not in models.all_names():
        return "<p><i>No diagram: a production VAE loaded through an adapter.</i></p>"
    try:
        with COUNTING:
            tr = trace(name)
        return block_diagram_svg(tr)
    except Exception as e:  # noqa: BLE001 - one family's trace failing must not hide the others
        log.warning("diagram of %s failed", name, exc_info=True)
        return f"<p><i>Diagram unavailable ({html.escape(type(e).__name__)}).</i></p>"


def _md_html(md: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(md)


def family_html(card) -> str:
    """Heading, paper, the idea in a line or two, the diagram, and the full card in a closed section."""
    p = card.paper
    link = f' · <a href="{html.escape(p.url)}" target="_blank" rel="noopener">paper</a>' if p.url else ""
    stats = _stats(card.name)
    return (f'<section class="vaelab-family" id="family-{html.escape(card.name)}" style="margin:18px 0">'
            f'<h3 style="margin-bottom:2px">{html.escape(card.name)} · {html.escape(card.family)}</h3>'
            f'<div class="vaelab-small"><i>{html.escape(p.title)}</i> ({html.escape(str(p.venue))} {p.year}){link}</div>'
            f'<p>{html.escape(card.idea)}</p>{_diagram(card.name)}'
            f'<details><summary>More: how it works, training recipe and notes</summary>'
            f'{_md_html(text.card_md(card, stats))}</details></section>')


def model_cards(state=None) -> str:
    """Every offered family as HTML: heading, idea, block diagram, and the full card (closed)."""
    return "".join(family_html(c) for c in models.available())


def build() -> tuple[gr.Dataframe, gr.HTML]:
    """Components inside the current ``gr.Tab``; returns (table, cards) for the app to fill on page load and
    (the table's latent column) after each Reconstruct run."""
    gr.Markdown("Every family offered here: its measured numbers first (parameters and FLOPs counted on the "
                "module, held-out PSNR/SSIM from its training record), then one diagram per family drawn from "
                "its code: each block and the shape of what it hands on.")
    table = gr.Dataframe(pd.DataFrame([], columns=TABLE_HEADERS), label="Measured numbers (per family)",
                         elem_id="models-table", interactive=False, wrap=True)
    cards = gr.HTML(elem_id="cards")
    return table, cards
