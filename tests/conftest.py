"""Shared fixtures: a live ``python app.py`` server, a small synthetic clip, Chromium lookup.

The app and CLI tests use the default model assets (``assets/weights``, or ``VAELAB_ASSETS``
when set, which the server subprocess inherits). Nothing here downloads anything.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import contextlib  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SERVER_START_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path, n_chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n_chars:]
    except OSError as e:
        return f"(log unreadable: {e})"


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _native_bf16() -> tuple[bool, str]:
    from vaelab.device import cpu_bf16_native

    return cpu_bf16_native()


# Tests that run models in bf16 on the CPU: only where the CPU has native bf16 units. Elsewhere explicit bf16 is
# refused (tests/test_precision.py checks that everywhere) and oneDNN's bf16 Conv3d does not run at all.
requires_native_bf16 = pytest.mark.skipif(not _native_bf16()[0],
                                          reason=f"no native bf16 on this CPU ({_native_bf16()[1]})")


def require_lab_weights(*names: str) -> None:
    """Skip the calling test, with the reason, when a model's lab weights are not shipped.

    The lab weights land in ``assets/weights/`` once trained; until then point ``VAELAB_ASSETS``
    at a directory holding stand-ins. Tests of error paths do not call this and always run.
    """
    from vaelab import models

    missing = [n for n in (names or ("vqgan", "sd-vae", "litevae")) if not models.lab_weights_path(n).is_file()]
    if missing:
        pytest.skip(f"no lab weights for {', '.join(missing)} in {models.ASSETS / 'weights'} "
                    "(train them, or set VAELAB_ASSETS)")


@pytest.fixture
def isolated_assets(tmp_path):
    """Lab weights read from an empty ``tmp_path/assets`` (``models.use_assets``) and no model loaded by an earlier
    test (``engine.forget_models``); both restored afterwards."""
    from vaelab import engine, models

    before = models.weights.ASSETS
    (tmp_path / "assets" / "weights").mkdir(parents=True, exist_ok=True)
    models.use_assets(tmp_path / "assets")
    engine.forget_models()
    yield tmp_path / "assets"
    models.use_assets(before)
    engine.forget_models()


def moving_gradient(t: int = 6, h: int = 64, w: int = 96) -> np.ndarray:
    """uint8 (t, h, w, 3): a colour gradient that slides a few px per frame, with a moving square."""
    yy, xx = np.mgrid[:h, :w]
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, ..., 0] = ((xx + 4 * i) * 255 // (w + 4 * t)) % 256
        frames[i, ..., 1] = yy * 255 // max(h - 1, 1)
        frames[i, ..., 2] = (128 + 40 * np.sin((xx + yy + 3 * i) / 9.0)).astype(np.uint8)
        x0 = 8 + 6 * i
        frames[i, 20:36, x0:x0 + 16] = (250, 250, 40)
    return frames


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's torch work on one thread (tiny test models gain nothing from more), then restore."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path of the system Chromium. Skips browser tests when it is missing, except under
    ``VAELAB_REQUIRE_BROWSER=1`` (set by scripts/test.sh, so CI can never skip them silently)."""
    missing = pytest.fail if os.environ.get("VAELAB_REQUIRE_BROWSER") == "1" else pytest.skip
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing(f"browser tests need Chromium at {CHROMIUM} (scripts/test.sh installs it; never `playwright install`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("browser tests need the playwright Python package")
    return CHROMIUM


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory) -> Path:
    """A 6-frame 96x64 H.264 MP4 of a moving gradient."""
    from vaelab.io import write_mp4

    path = tmp_path_factory.mktemp("clips") / "gradient.mp4"
    return write_mp4(moving_gradient(), path, fps=12.0)


@contextlib.contextmanager
def launch_app(env: dict[str, str], log_path: Path, timeout_s: float = SERVER_START_TIMEOUT_S):
    """Run ``python app.py`` from the repo with ``env`` (which must set GRADIO_SERVER_PORT) until HTTP 200 on
    ``/``; yields the base URL and terminates the server (kills it after 15 s) on exit."""
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while not _http_ok(url + "/"):
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with code {proc.returncode} before serving; log tail:\n"
                            f"{_log_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer HTTP 200 on {url}/ within {timeout_s:g} s; "
                            f"log tail:\n{_log_tail(log_path)}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def listen_sockets(port: int) -> dict[str, str]:
    """LISTEN sockets on ``port`` from /proc/net/tcp{,6}: {"socket:[inode]": local address (hex, as the kernel writes it)}."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":
                found[f"socket:[{fields[9]}]"] = address
    return found


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """``python app.py`` on a free port; yields its base URL ("http://127.0.0.1:PORT")."""
    env = dict(os.environ, GRADIO_SERVER_PORT=str(free_port()), GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with launch_app(env, tmp_path_factory.mktemp("server") / "app.log") as url:
        yield url
