"""Start-up work, so a visitor's first request does not pay it: UMAP's numba compilation, model loads, FLOP counts
and shape traces, and (workshop mode) every bundled example reconstructed into the result cache.

Plain functions and one small state machine (:data:`UMAP_WARM`); the app only starts them (``ui.app.launch``) and
shows :func:`umap_text`. Everything here is safe to run in a daemon thread: a failure is logged and recorded, never
raised.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("vaelab.warmup")

# FLOP counting installs process-wide module hooks; a shape trace running at the same time in another thread trips
# over them. Both run under this lock (the Models tab's table and diagrams, and :func:`warm_models`).
COUNTING = threading.Lock()

UMAP_WARM: dict[str, Any] = {"state": "not started", "seconds": {}, "started": None, "finished": None, "error": None}
_UMAP_LOCK = threading.Lock()


def warm_umap() -> None:
    """Compile UMAP's numba code once per process (``analysis.latents.warm_umap``); records the outcome in
    :data:`UMAP_WARM`: "not started" -> "running" -> "done" | "failed". A second call while running or done
    does nothing."""
    from . import latents

    with _UMAP_LOCK:
        if UMAP_WARM["state"] in ("running", "done"):
            return
        UMAP_WARM.update(state="running", started=time.time(), finished=None, error=None)
    try:
        seconds = latents.warm_umap(parallel=True, approximate=True)
    except Exception as e:  # noqa: BLE001 - a failed warm-up only means the first request pays compilation
        log.warning("UMAP warm-up failed: %s", e)
        with _UMAP_LOCK:
            UMAP_WARM.update(state="failed", finished=time.time(), error=f"{type(e).__name__}: {e}")
        return
    with _UMAP_LOCK:
        UMAP_WARM.update(state="done", seconds=seconds, finished=time.time())


def umap_running() -> bool:
    """Whether the start-up compilation is running now (a UMAP started meanwhile waits for it)."""
    with _UMAP_LOCK:
        return UMAP_WARM["state"] == "running"


def umap_text() -> str:
    """One line on UMAP's one-time numba compilation in this process."""
    from . import latents

    with _UMAP_LOCK:
        w = dict(UMAP_WARM)
    if w["state"] == "done":
        return (f"UMAP's one-time numba compilation ran in the background at start-up "
                f"({sum(w['seconds'].values()):.0f} s); requests do not pay it.")
    if w["state"] == "running":
        return (f"UMAP's one-time numba compilation has been running in the background for "
                f"{time.time() - w['started']:.0f} s; a UMAP started before it ends waits for it.")
    if w["state"] == "failed":
        return f"UMAP warm-up failed ({w['error']}); the first UMAP in this process pays the compilation."
    if latents.warm_status():
        return "UMAP's numba code is compiled in this process."
    return "UMAP warm-up was not started in this process: the first UMAP pays numba compilation (tens of seconds)."


def precompute_examples(names: list[str] | None = None, precision: str | None = None) -> int:
    """Workshop mode: reconstruct every bundled example with every trained model at the default settings and
    ``precision`` (what the page sends: pass the page's default), so those requests are answered from the result
    cache. Returns how many (example, model) pairs ran."""
    from .. import models, pipeline
    from ..device import auto_device

    names = names or models.names()
    dev = str(auto_device("auto"))
    done = 0
    for ex in pipeline.example_names():
        clip = pipeline.load_input(None, ex, frames=pipeline.DEFAULT_FRAMES, size=pipeline.DEFAULT_SIZE)
        for name in names:
            try:
                pipeline.reconstruct_clip(clip.frames, [name], device=dev, fps=clip.fps, clip_notes=clip.notes,
                                          caption=pipeline.example_caption(ex), precision=precision)
                done += 1
            except Exception as e:  # noqa: BLE001 - one failing model must not stop the others
                log.warning("workshop pre-computation of %s on %s failed: %s", name, ex, e)
    return done


def warm_models(workshop: bool = False, precision: str | None = None) -> None:
    """Load every trained model, count its FLOPs and trace its block shapes (the Models tab's numbers and
    diagrams), so the first request does not pay for it; in workshop mode also :func:`precompute_examples`."""
    from .. import models
    from ..engine import get_model
    from .complexity import encoder_decoder_stats
    from .module_trace import trace

    for name in models.names():
        try:
            get_model(name, "lab", "auto")
        except Exception as e:  # noqa: BLE001 - a missing weight file is reported when a user picks the model
            log.warning("warm-up of %s failed: %s", name, e)
    for card in models.available():  # every family's numbers and diagram, trained or not
        if card.name not in models.all_names():  # production adapters: no count, no diagram
            continue
        try:
            with COUNTING:
                encoder_decoder_stats(card.name)
                trace(card.name)
        except Exception as e:  # noqa: BLE001 - the Models tab says "unavailable" itself
            log.warning("FLOP count / shape trace of %s failed: %s", card.name, e)
    if workshop:
        t0 = time.perf_counter()
        n = precompute_examples(precision=precision)
        log.warning("workshop mode: %d example results cached in %.0f s", n, time.perf_counter() - t0)


def start(models_too: bool = True, precision: str | None = None) -> list[threading.Thread]:
    """Start the background warm-ups (daemon threads): UMAP's compilation, and with ``models_too`` the model
    warm-up. Returns the threads."""
    threads = [threading.Thread(target=warm_umap, daemon=True, name="vaelab-warm-latents")]
    if models_too:
        threads.append(threading.Thread(target=warm_models, kwargs={"precision": precision}, daemon=True,
                                        name="vaelab-warm"))
    for t in threads:
        t.start()
    return threads
