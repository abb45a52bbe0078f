"""Tab "Latent space": UMAP/PCA of image vs video latents (wiring only)."""
from __future__ import annotations

import gradio as gr


def build(state: gr.State) -> None:
    """Create the tab's components and events inside the current ``gr.Tab`` context.

    ``state`` is the Reconstruct tab's last :class:`vaelab.pipeline.Comparison` (or None)."""
    gr.Markdown("Latent space (being built).")


def warm() -> None:
    """Start-up warm-up run in a background thread by ``launch`` (e.g. UMAP's numba compilation)."""
