"""One process-wide compute slot and a cancel that cancels, for every tab's compute handler.

Gradio cancels a job by cancelling the asyncio task awaiting it; a plain (sync) handler runs on in its
worker thread, and Gradio's concurrency slot is free again at once, so cancelled jobs used to pile up
next to new ones. ``@compute`` turns a handler into an async one that runs the work in its own thread
*holding* ``SLOT`` for the whole computation, inside a ``limits.cancel_scope``: when Gradio cancels the
task the token is set, the engine's next ``limits.check_cancelled`` (between models and chunks) raises
``Cancelled`` and the thread lets the slot go. The next request waits for that, so at most one
computation runs per process, cancelled or not.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import threading
import time

from ..limits import Cancelled, CancelToken, cancel_scope

log = logging.getLogger("vaelab.ui")

SLOT = threading.Lock()  # held by the thread doing the work, from its first step to its last
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="vaelab-compute")
STATS = {"started": 0, "finished": 0, "cancelled": 0, "busy": False, "last_stop_s": None}


def compute(fn):
    """Decorator: run ``fn`` in the compute slot, cancellable between chunks (see the module docstring).

    The wrapper keeps ``fn``'s signature (Gradio reads it for ``gr.Progress`` and ``gr.Request``)."""

    def work(token: CancelToken, args, kwargs):
        with SLOT:
            STATS["busy"] = True
            STATS["started"] += 1
            try:
                if token.cancelled:  # cancelled while waiting for the slot
                    raise Cancelled()
                with cancel_scope(token):
                    return fn(*args, **kwargs)
            except Cancelled:
                STATS["cancelled"] += 1
                if token.cancelled_at:
                    STATS["last_stop_s"] = round(time.monotonic() - token.cancelled_at, 3)
                raise
            finally:
                STATS["finished"] += 1
                STATS["busy"] = False

    @functools.wraps(fn)
    async def handler(*args, **kwargs):
        token = _Token()
        # copy the context, as asyncio.to_thread does: gr.Progress and gr.Warning find their event through it
        ctx = contextvars.copy_context()
        future = asyncio.get_running_loop().run_in_executor(_POOL, ctx.run, work, token, args, kwargs)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            token.cancel()
            log.info("%s cancelled; its work stops at the next chunk", fn.__name__)
            raise

    return handler


class _Token(CancelToken):
    def __init__(self) -> None:
        super().__init__()
        self.cancelled_at: float | None = None

    def cancel(self) -> None:
        self.cancelled_at = time.monotonic()
        super().cancel()


def busy() -> bool:
    """Whether a computation (possibly a cancelled one still stopping) holds the slot."""
    return SLOT.locked()
