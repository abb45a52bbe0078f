"""Helpers every tab uses for what it hands back: files it writes, and the line saying what is on screen.

Kept apart from ``app.py`` so that the tab modules never import the app (which imports them).
"""
from __future__ import annotations

import functools
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

OUT_DIR = Path(tempfile.gettempdir()) / "vaelab-out"
OUT_TTL_S = 3600


def fresh_output_path(suffix: str) -> Path:
    """A new file in our output dir; files older than an hour are removed (Gradio keeps its own cached copy)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in OUT_DIR.glob("*"):
        try:
            if now - old.stat().st_mtime > OUT_TTL_S:
                old.unlink()
        except OSError:
            pass
    return OUT_DIR / f"{uuid.uuid4().hex}{suffix}"


def showing_md(what: str, settings: dict[str, object]) -> str:
    """The line above a tab's results: which request produced what is on screen."""
    parts = ", ".join(f"{k} {v}" for k, v in settings.items() if v not in (None, ""))
    return f"**On screen:** {what}" + (f" ({parts})" if parts else "") + "."


def refused_md(message: str, previous: str | None) -> str:
    """The status line after a refused request: the reason first, then what is still on screen."""
    keep = f" {previous}" if previous else ""
    return f"⚠️ **Not run:** {message}{keep}"


def keyed(fn: Callable[..., dict[str, Any]], components: dict[str, Any]) -> Callable[..., dict[Any, Any]]:
    """Wire a handler that returns ``{output name: value}`` to Gradio, which wants ``{component: value}``.

    Outputs a handler leaves out keep what they show. The wrapper keeps ``fn``'s signature (Gradio reads
    it for the API parameters, ``gr.Request`` and ``gr.Progress``), so the handler stays a plain function
    that tests can call without building the page."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        unknown = set(out) - set(components)
        if unknown:
            raise KeyError(f"{fn.__name__} returned outputs that are not wired: {sorted(unknown)}")
        return {components[k]: v for k, v in out.items()}

    return wrapper
