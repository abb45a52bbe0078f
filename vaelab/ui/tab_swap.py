"""Tab "Structure x Dynamics": VidTwin latent swaps between two clips (wiring only)."""
from __future__ import annotations

import gradio as gr


def build() -> None:
    """Create the tab's components and events inside the current ``gr.Tab`` context."""
    gr.Markdown("VidTwin structure/dynamics swaps (being built).")
