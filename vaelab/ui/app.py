"""The VAE Lab page: assembles the tabs (each tab module builds its components and wires its events).

Endpoints (named after their functions, usable with gradio_client): ``/reconstruct``, ``/show_frame``
(tab_reconstruct), ``/wavelets`` (tab_wavelets), ``/model_cards`` (tab_models), ``/swap``, ``/show_swap_frame``,
``/weights_status`` (tab_swap), ``/caption_effect``, ``/branch_ablation`` (tab_inside) and the Latent space
tab's own (tab_latents). This file also launches the server and starts the start-up work
(``vaelab.analysis.warmup``: UMAP compilation, model warm-up, workshop pre-computation).
"""
from __future__ import annotations

import functools
import logging
import os

import gradio as gr

from .. import limits
from ..analysis import warmup
from ..engine import configure_threads
from . import (
    security,
    tab_diagnostics,
    tab_inside,
    tab_latents,
    tab_models,
    tab_reconstruct,
    tab_swap,
    tab_wavelets,
    text,
)
from .tab_reconstruct import MAX_FILE_MB
from .widgets import page_precision

log = logging.getLogger("vaelab.ui")

QUEUE_SIZE = limits.QUEUE_SIZE

CSS = """
#vaelab-notes {font-size: 0.9em}
.vaelab-small {font-size: 0.85em; opacity: 0.85}
"""


def build_app() -> gr.Blocks:
    with gr.Blocks(title="VAE Lab", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(text.INTRO)
        state = gr.State(None, time_to_live=limits.STATE_TTL_S)  # a session's last result; see limits
        with gr.Tab("Reconstruct"):
            rec = tab_reconstruct.build(state)
        with gr.Tab("Wavelets"):
            wavelet_frame = tab_wavelets.build(state)
        with gr.Tab("Inside the model"):
            inside_frame = tab_inside.build(state, rec.example, rec.upload)
        with gr.Tab("Structure x Dynamics"):
            tab_swap.build()
        with gr.Tab("Latent space"):
            tab_latents.build(state)
        with gr.Tab("Diagnostics"):
            tab_diagnostics.build()
        with gr.Tab("Models"):
            model_table, cards = tab_models.build()

        for fit, target in ((tab_inside.frame_range, inside_frame), (tab_wavelets.frame_range, wavelet_frame),
                            (tab_models.measured_table, model_table)):
            rec.done.then(functools.partial(tab_reconstruct.fitted, fit=fit), [rec.ran, state], target,
                          queue=False, api_name=False)
        demo.load(tab_models.model_cards, None, cards, api_name="model_cards")
        demo.load(tab_models.measured_table, None, model_table, api_name=False)
        demo.load(None, None, None, js=tab_reconstruct.TILE_CLICK_JS)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return demo


def precompute_examples(names: list[str] | None = None) -> int:
    """Workshop mode: every bundled example with every trained model, at the precision the page sends
    (``vaelab.analysis.warmup.precompute_examples``). Returns how many (example, model) pairs ran."""
    return warmup.precompute_examples(names, precision=page_precision())


def launch(host: str = "127.0.0.1", port: int = 7860, workshop: bool = False, **kwargs):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    security.bind(host)  # custom weights follow the address actually bound, not an environment variable
    configure_threads()
    from .. import lpips_fetch

    if workshop:  # a room of laptops: pay every load and every example before the first visitor arrives
        warmup.warm_models(workshop=True, precision=page_precision())
    demo = build_app()
    block = not kwargs.pop("prevent_thread_lock", False)
    result = demo.launch(server_name=host, server_port=port, max_file_size=f"{MAX_FILE_MB}mb",
                         theme=gr.themes.Soft(), css=CSS, show_error=True, prevent_thread_lock=True,
                         state_session_capacity=limits.STATE_SESSIONS,
                         app_kwargs={"middleware": security.middleware()}, **kwargs)
    # Background work starts once the server is up: Gradio checks that it answers within 3 s of starting,
    # and on a loaded machine a warm-up thread competing for the GIL made that check fail.
    lpips_fetch.start()  # once, in the background, only where the network may be used (see lpips_fetch)
    warmup.start(models_too=not workshop, precision=page_precision())
    if block:
        demo.block_thread()
    return result
