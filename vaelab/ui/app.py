"""The VAE Lab page: assembles the tabs (each tab module builds its components and wires its events).

Endpoints (named after their functions, usable with gradio_client): ``/reconstruct``, ``/show_frame``
(tab_reconstruct), ``/wavelets`` (tab_wavelets), ``/model_cards`` (tab_models), ``/swap``, ``/show_swap_frame``,
``/weights_status`` (tab_swap), ``/caption_effect``, ``/branch_ablation`` (tab_inside) and the Latent space
tab's own (tab_latents). This file also holds start-up work (warm-up, workshop pre-computation) and launch.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
import time

import gradio as gr

from .. import limits, models, pipeline
from ..engine import auto_device, configure_threads
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
    """Workshop mode: reconstruct every bundled example with every trained model at the default settings,
    so those requests are answered from the result cache. Returns how many (example, model) pairs ran."""
    names = names or models.names()
    dev = str(auto_device("auto"))
    done = 0
    for ex in pipeline.example_names():
        clip = pipeline.load_input(None, ex, frames=pipeline.DEFAULT_FRAMES, size=pipeline.DEFAULT_SIZE)
        for name in names:
            try:
                pipeline.reconstruct_clip(clip.frames, [name], device=dev, fps=clip.fps, clip_notes=clip.notes,
                                          caption=pipeline.example_caption(ex),  # what the page sends
                                          precision=page_precision())
                done += 1
            except Exception as e:  # noqa: BLE001 - one failing model must not stop the others
                log.warning("workshop pre-computation of %s on %s failed: %s", name, ex, e)
    return done


def _warm(workshop: bool = False) -> None:
    """Load models and count FLOPs in the background so the first request doesn't pay for it; in workshop
    mode also pre-compute the examples' results."""
    from ..analysis.complexity import encoder_decoder_stats
    from ..engine import get_model

    for name in models.names():
        try:
            get_model(name, "lab", "auto")
            if name in models.all_names():
                with tab_models.COUNTING:
                    encoder_decoder_stats(name)
        except Exception as e:  # noqa: BLE001 - a missing weight file is reported when a user picks the model
            log.warning("warm-up of %s failed: %s", name, e)
    tab_models.model_cards()  # the remaining cards' parameter counts and the block diagrams
    if workshop:
        t0 = time.perf_counter()
        n = precompute_examples()
        log.warning("workshop mode: %d example results cached in %.0f s", n, time.perf_counter() - t0)


def launch(host: str = "127.0.0.1", port: int = 7860, workshop: bool = False, **kwargs):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    security.bind(host)  # custom weights follow the address actually bound, not an environment variable
    configure_threads()
    from .. import lpips_fetch

    if workshop:  # a room of laptops: pay every load and every example before the first visitor arrives
        _warm(workshop=True)
    demo = build_app()
    block = not kwargs.pop("prevent_thread_lock", False)
    result = demo.launch(server_name=host, server_port=port, max_file_size=f"{MAX_FILE_MB}mb",
                         theme=gr.themes.Soft(), css=CSS, show_error=True, prevent_thread_lock=True,
                         state_session_capacity=limits.STATE_SESSIONS,
                         app_kwargs={"middleware": security.middleware()}, **kwargs)
    # Background work starts once the server is up: Gradio checks that it answers within 3 s of starting,
    # and on a loaded machine a warm-up thread competing for the GIL made that check fail.
    lpips_fetch.start()  # once, in the background, only where the network may be used (see lpips_fetch)
    threading.Thread(target=tab_latents.warm, daemon=True, name="vaelab-warm-latents").start()
    if not workshop:
        threading.Thread(target=_warm, daemon=True, name="vaelab-warm").start()
    if block:
        demo.block_thread()
    return result
