"""Who may do what on this server: custom weights only on a loopback bind, Host/Origin checked while they
are on (DNS rebinding), and an upload budget per client address.

``bind(host)`` is called by ``launch`` with the address the server actually listens on; custom weights
follow that, not an environment variable (``vaelab serve --host 0.0.0.0`` turns them off whatever
``GRADIO_SERVER_NAME`` says). ``middleware()`` returns the ASGI middleware ``launch`` installs:

* while custom weights are on, every request whose ``Host`` (or ``Origin``, when sent) is not a loopback
  name is answered 403: a page on another site that re-points its DNS name at 127.0.0.1 cannot drive the
  server into loading a file;
* uploads (``POST .../upload``) are counted per client address over ``limits.UPLOAD_WINDOW_S``; past
  ``limits.UPLOAD_BUDGET_MB`` they are answered 429 before Gradio writes anything to disk.
"""
from __future__ import annotations

import collections
import ipaddress
import json
import os
import threading
import time
from urllib.parse import urlsplit

from .. import limits

_BOUND: dict[str, str | None] = {"host": None}


def bind(host: str | None) -> None:
    """Record the address the server listens on (``launch`` calls this before it binds)."""
    _BOUND["host"] = host


def bound_host() -> str:
    """The address bound by ``launch``; before launch (tests, ``build_app`` alone), GRADIO_SERVER_NAME or loopback."""
    return _BOUND["host"] or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"


def is_loopback(host: str | None) -> bool:
    """Whether a host name or address (optionally with a port or [brackets]) names this machine only."""
    if not host:
        return False
    h = host.strip().lower()
    if h.startswith("["):
        h = h[1:h.find("]")] if "]" in h else h[1:]
    elif h.count(":") == 1:
        h = h.split(":")[0]
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def custom_weights_allowed() -> bool:
    """Loading weights a visitor names (a server path or a Hugging Face repo) is for your own machine: on when
    the server is bound to loopback only, off on any other bind unless VAELAB_ALLOW_CUSTOM_WEIGHTS=1 (and off
    with VAELAB_ALLOW_CUSTOM_WEIGHTS=0)."""
    flag = os.environ.get("VAELAB_ALLOW_CUSTOM_WEIGHTS")
    if flag is not None:
        return flag == "1"
    return is_loopback(bound_host())


def host_check_on() -> bool:
    """Host/Origin are checked while custom weights are on for a loopback server (the DNS-rebinding shape)."""
    return custom_weights_allowed() and is_loopback(bound_host())


def refused_host(headers: dict[str, str]) -> str | None:
    """Why a request's Host/Origin is refused (one line), or None when it may pass."""
    host = headers.get("host", "")
    if not is_loopback(host):
        return f"Refused: this server only answers requests addressed to loopback (Host {host[:60]!r})."
    origin = headers.get("origin")
    if origin and origin != "null" and not is_loopback(urlsplit(origin).netloc or origin):
        return f"Refused: requests from {origin[:60]!r} are not accepted by this loopback server."
    return None


class UploadBudget:
    """Bytes uploaded per client address over a sliding window."""

    def __init__(self, budget_bytes: int, window_s: float):
        self.budget, self.window = budget_bytes, window_s
        self._seen: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def take(self, client: str, n_bytes: int, now: float | None = None) -> bool:
        """Count ``n_bytes`` for ``client``; False (nothing counted) when that would go over the budget."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._seen[client]
            while q and now - q[0][0] > self.window:
                q.popleft()
            used = sum(n for _, n in q)
            if used + n_bytes > self.budget:
                return False
            q.append((now, n_bytes))
            if len(self._seen) > 10_000:  # forget idle clients
                for k in [k for k, v in self._seen.items() if not v][:5_000]:
                    del self._seen[k]
            return True


class Guard:
    """ASGI middleware: the Host/Origin check and the upload budget (see the module docstring)."""

    def __init__(self, app, budget: UploadBudget | None = None):
        self.app = app
        self.budget = budget or UploadBudget(limits.UPLOAD_BUDGET_MB * 2**20, limits.UPLOAD_WINDOW_S)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if host_check_on():
            why = refused_host(headers)
            if why:
                return await _refuse(scope, send, 403, why)
        if scope["type"] == "http" and scope.get("method") == "POST" and scope.get("path", "").endswith("/upload"):
            try:
                n = int(headers.get("content-length", ""))
            except ValueError:
                n = limits.MAX_FILE_MB * 2**20  # unknown length (chunked): counted as the largest allowed file
            if not self.budget.take(_client(scope, headers), n):
                return await _refuse(scope, send, 429, f"Upload budget used up: at most {limits.UPLOAD_BUDGET_MB} MB "
                                                       f"per {limits.UPLOAD_WINDOW_S / 3600:g} h per visitor; "
                                                       "try again later.")
        return await self.app(scope, receive, send)


def _client(scope, headers: dict[str, str]) -> str:
    """The visitor's address: the one the nearest proxy saw (last X-Forwarded-For entry), else the socket peer."""
    fwd = headers.get("x-forwarded-for")
    if fwd:
        return fwd.split(",")[-1].strip()
    client = scope.get("client")
    return client[0] if client else "?"


async def _refuse(scope, send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def middleware() -> list:
    """The middleware list for ``launch(app_kwargs={"middleware": ...})``."""
    from starlette.middleware import Middleware

    return [Middleware(Guard)]
