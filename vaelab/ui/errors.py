"""One rule for what a visitor sees when a request fails, shared by every tab's handlers.

Expected failures (a file that does not decode, a setting out of range, weights that do not load) carry
a message written for the visitor and are shown as it is. Anything else is a bug: it goes to the server
log with its traceback, and the visitor gets a short toast that names the error type and says the
server is still fine (what is already on screen stays, since Gradio leaves outputs alone on an error).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import gradio as gr

from .. import models
from ..io import VideoDecodeError
from ..limits import Cancelled

log = logging.getLogger("vaelab.ui")


@contextmanager
def visitor_errors(what: str, hint: str = "try smaller settings") -> Iterator[None]:
    """``with visitor_errors("Reconstruction"):`` maps exceptions to ``gr.Error`` as described above."""
    try:
        yield
    except (gr.Error, Cancelled):
        raise
    except (VideoDecodeError, ValueError, models.WeightsError) as e:
        raise gr.Error(str(e)) from None
    except Exception as e:  # noqa: BLE001 - never show a traceback to a visitor; keep it in the log
        log.exception("%s failed", what)
        raise gr.Error(f"{what} failed ({type(e).__name__}). The server is fine; {hint}.") from None
