"""What a visitor of the live app can and cannot reach.

Against the session's ``app_server`` (``python app.py``): Gradio's file route refuses every path
outside its own cache (system files, the repository, the model weights, our raw output dir), with
or without ``..`` tricks, while files it did hand out are still served (so the refusals are not
just a dead server). A second instance, started here with ``VAELAB_MAX_FILE_MB=1``, no
``GRADIO_ANALYTICS_ENABLED`` and no ``GRADIO_SERVER_NAME`` in its environment, shows that the
upload limit is enforced, that app.py turns analytics off by itself and binds to loopback only.

Pickled checkpoints are covered by tests/test_models.py and tests/test_bad_inputs.py.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import free_port, launch_app, listen_sockets

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------- helpers


def http(method: str, url: str, *, data: bytes | None = None, headers: dict | None = None,
         timeout: float = 30) -> tuple[int, dict, bytes]:
    """(status, lower-cased headers, body) without raising on 4xx/5xx."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def raw_get(base_url: str, raw_path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (urllib would not normalise it, but be explicit)."""
    host, port = urllib.parse.urlsplit(base_url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"GET {raw_path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload(base_url: str, filename: str, content: bytes) -> tuple[int, bytes]:
    body, ctype = multipart(filename, content)
    status, _, text = http("POST", base_url + "/gradio_api/upload", data=body, headers={"Content-Type": ctype})
    return status, text


# --------------------------------------------------------------------------- the session's app


SECRET_PATHS = {
    "etc-passwd": ("/etc/passwd", b"root:"),
    "proc-environ": ("/proc/self/environ", b"PATH="),
    "pyproject-absolute": (str(REPO / "pyproject.toml"), b"[build-system]"),
    "app-py-relative": ("app.py", b"launch("),
    "source-relative": ("vaelab/models/__init__.py", b"read_checkpoint"),
}


def weight_files() -> list[Path]:
    from vaelab import models

    folder = models.ASSETS / "weights"
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.json"))
    return files or [folder / "vqgan.safetensors"]


@pytest.mark.parametrize("name", list(SECRET_PATHS))
def test_file_route_refuses_paths_outside_the_cache(app_server, name):
    path, marker = SECRET_PATHS[name]
    for raw in (f"/gradio_api/file={path}", f"/gradio_api/file={urllib.parse.quote(path, safe='')}"):
        status, body = raw_get(app_server, raw)
        assert status in (403, 404), (raw, status, body[:200])
        assert marker not in body, (raw, body[:200])


def test_file_route_refuses_model_weights(app_server):
    for path in weight_files():
        status, _, body = http("GET", f"{app_server}/gradio_api/file={path}")
        assert status in (403, 404), (path, status)
        if path.exists():
            assert path.read_bytes()[:64] not in body


@pytest.mark.parametrize("raw", [
    "/gradio_api/file=/tmp/gradio/../../etc/passwd",
    "/gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/gradio_api/file=/tmp/gradio/..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=//etc/passwd",
    "/file=/etc/passwd",
    "/static/../../../etc/passwd",
    "/assets/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=/tmp/gradio",
])
def test_traversal_tricks_are_refused(app_server, raw):
    status, body = raw_get(app_server, raw)
    assert status in (400, 403, 404), (raw, status, body[:200])
    assert b"root:" not in body


def test_cached_files_are_served_but_raw_outputs_are_not(app_server, small_clip, tmp_path, monkeypatch):
    """Positive control: what Gradio handed out is served (200), so the 403s above are real refusals.
    Our own output dir (vaelab-out) is not servable; only Gradio's cached copy is."""
    from gradio_client import Client, handle_file

    status, text = upload(app_server, "clip.mp4", small_clip.read_bytes())
    assert status == 200, text
    cached = json.loads(text)[0]
    status, _, body = http("GET", f"{app_server}/gradio_api/file={cached}")
    assert status == 200 and body == small_clip.read_bytes()

    # gradio_client leaves an empty directory per download in tempfile.gettempdir(): keep it in tmp_path.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    client = Client(app_server, verbose=False, download_files=str(tmp_path / "downloads"))
    out = client.predict(handle_file(str(small_clip)), None, ["sd-vae"], 1, 32, "cpu", api_name="/reconstruct")
    from vaelab.ui.tab_reconstruct import OUTPUTS

    video = Path(dict(zip([k for k in OUTPUTS if k not in ("state", "shown")], out))["video"])
    assert video.is_file() and video.stat().st_size > 0
    out_dir = Path(tempfile.gettempdir()) / "vaelab-out"  # vaelab.ui.app.OUT_DIR, without importing gradio
    raw_outputs = sorted(out_dir.glob("*.mp4"), key=lambda p: p.stat().st_mtime)
    if raw_outputs:
        status, _, _ = http("GET", f"{app_server}/gradio_api/file={raw_outputs[-1]}")
        assert status in (403, 404), raw_outputs[-1]


def test_no_cross_origin_access(app_server):
    # the test server listens on loopback, so custom weights are on and a foreign Origin is refused outright
    # (the DNS-rebinding guard, ui/security.py); either way no CORS header may let that origin read a response
    status, headers, _ = http("GET", app_server + "/config", headers={"Origin": "https://evil.example"})
    assert status == 403
    assert headers.get("access-control-allow-origin") not in ("*", "https://evil.example"), headers
    status, headers, _ = http("OPTIONS", app_server + "/gradio_api/upload",
                              headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert headers.get("access-control-allow-origin") not in ("*", "https://evil.example"), headers


def test_config_has_no_analytics_nor_mcp(app_server):
    status, _, body = http("GET", app_server + "/config")
    config = json.loads(body)
    assert status == 200
    assert config["analytics_enabled"] is False
    assert not config.get("mcp_server")
    assert http("GET", app_server + "/gradio_api/mcp/sse", timeout=10)[0] == 404


# --------------------------------------------------------------------------- a limited second instance


@pytest.fixture(scope="module")
def limited_app(tmp_path_factory):
    """``python app.py`` with a 1 MB upload limit, its own Gradio cache, no weights (so its warm-up is
    instant) and neither GRADIO_ANALYTICS_ENABLED nor GRADIO_SERVER_NAME set."""
    root = tmp_path_factory.mktemp("limited")
    cache, assets = root / "gradio-cache", root / "no-assets"
    cache.mkdir()
    assets.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_ANALYTICS_ENABLED", "GRADIO_SERVER_NAME")}
    env.update(GRADIO_SERVER_PORT=str(port), VAELAB_MAX_FILE_MB="1", VAELAB_UPLOAD_BUDGET_MB="3", GRADIO_TEMP_DIR=str(cache),
               VAELAB_ASSETS=str(assets), VAELAB_THREADS="1", PYTHONUNBUFFERED="1")
    with launch_app(env, root / "app.log", START_TIMEOUT_S) as url:
        yield {"url": url, "port": port, "cache": cache, "root": root}


def test_upload_over_the_limit_is_refused(limited_app):
    url, cache = limited_app["url"], limited_app["cache"]
    status, _, body = http("GET", url + "/config")
    assert json.loads(body)["max_file_size"] == 1024**2

    big = os.urandom(2 * 1024**2)
    status, text = upload(url, "big.mp4", big)
    assert status == 413, (status, text[:200])
    assert b"maximum" in text.lower()
    stored = [p for p in cache.rglob("*") if p.is_file() and p.stat().st_size >= 1024**2]
    assert stored == [], f"a refused upload was kept: {stored}"

    status, text = upload(url, "small.mp4", os.urandom(300_000))  # under the limit: accepted
    assert status == 200, text
    assert Path(json.loads(text)[0]).stat().st_size == 300_000


def test_upload_file_name_cannot_escape_the_cache(limited_app):
    url, cache, root = limited_app["url"], limited_app["cache"], limited_app["root"]
    marker = f"escape-{uuid.uuid4().hex}.mp4"
    status, text = upload(url, f"../../../{marker}", b"\x00" * 1000)
    assert status == 200, text
    stored = Path(json.loads(text)[0]).resolve()
    assert stored.is_relative_to(cache.resolve()), stored
    assert stored.name == marker
    for parent in [cache, *cache.parents][:5]:
        assert not (parent / marker).exists(), parent / marker
    assert not (root / marker).exists()


def test_analytics_off_and_loopback_only_without_env(limited_app):
    """app.py itself defaults GRADIO_ANALYTICS_ENABLED to False and binds to 127.0.0.1."""
    _, _, body = http("GET", limited_app["url"] + "/config")
    assert json.loads(body)["analytics_enabled"] is False
    if not Path("/proc/net/tcp").exists():
        pytest.skip("reading listening sockets needs Linux /proc")
    addresses = set(listen_sockets(limited_app["port"]).values())
    assert addresses, "no listening socket found"
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    assert addresses <= loopback, f"listening beyond loopback: {addresses}"


def test_upload_budget_per_visitor(limited_app):
    """Past VAELAB_UPLOAD_BUDGET_MB (3 MB on this instance) uploads from one address are answered 429, before
    Gradio writes them to disk; the other tests' uploads on this instance count against the same budget."""
    url, cache = limited_app["url"], limited_app["cache"]
    statuses = []
    for i in range(10):
        status, text = upload(url, f"chunk{i}.mp4", os.urandom(400_000))
        statuses.append(status)
        if status == 429:
            break
    assert statuses[-1] == 429, statuses
    assert b"Upload budget used up" in text, text[:200]
    assert set(statuses[:-1]) <= {200}, statuses
    stored = [p for p in cache.rglob(f"chunk{len(statuses) - 1}.mp4")]
    assert stored == [], f"a refused upload was kept: {stored}"


# --------------------------------------------------------------------------- custom weights and the bound host


def test_host_and_origin_must_be_loopback_while_custom_weights_are_on(app_server):
    """The session's server is bound to loopback, so custom weights are on: a request addressed to another name
    (the DNS-rebinding shape: evil.example resolving to 127.0.0.1) or sent from another origin is refused."""
    port = app_server.rsplit(":", 1)[1]
    assert http("GET", app_server + "/config")[0] == 200  # positive controls
    assert http("GET", app_server + "/config", headers={"Host": f"localhost:{port}"})[0] == 200
    assert http("GET", app_server + "/config", headers={"Origin": f"http://127.0.0.1:{port}"})[0] == 200
    for headers in ({"Host": f"evil.example:{port}"}, {"Host": "evil.example"}, {"Host": f"192.168.1.5:{port}"},
                    {"Origin": "http://evil.example"}, {"Origin": f"http://evil.example:{port}"}):
        status, _, body = http("GET", app_server + "/config", headers=headers)
        assert status == 403, (headers, status)
        assert b"Refused" in body and b"components" not in body, body[:200]
    body, ctype = multipart("x.mp4", b"\x00" * 100)
    status, _, _ = http("POST", app_server + "/gradio_api/upload", data=body,
                        headers={"Content-Type": ctype, "Host": "evil.example"})
    assert status == 403


@pytest.fixture(scope="module")
def public_app(tmp_path_factory):
    """``vaelab serve --host 0.0.0.0`` with GRADIO_SERVER_NAME and VAELAB_ALLOW_CUSTOM_WEIGHTS unset, no weights."""
    import subprocess
    import sys
    import time

    from conftest import _http_ok

    root = tmp_path_factory.mktemp("public")
    (root / "no-assets").mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_SERVER_NAME", "VAELAB_ALLOW_CUSTOM_WEIGHTS")}
    env.update(VAELAB_ASSETS=str(root / "no-assets"), GRADIO_TEMP_DIR=str(root / "cache"), VAELAB_THREADS="1",
               PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    log = open(root / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", "from vaelab.cli import main; raise SystemExit(main())", "serve",
                             "--host", "0.0.0.0", "--port", str(port)], cwd=root, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _http_ok(url + "/"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"vaelab serve did not start: {(root / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "port": port}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_public_bind_turns_custom_weights_off(public_app):
    """``vaelab serve --host 0.0.0.0`` with GRADIO_SERVER_NAME unset: the Weights box is not interactive and says
    why, the /reconstruct endpoint refuses a custom-weights spec (it used to read /etc/passwd as a checkpoint),
    and there is no Host check (a public server answers whatever name it is reached by)."""
    if Path("/proc/net/tcp").exists():
        assert set(listen_sockets(public_app["port"]).values()) & {"00000000", "00000000000000000000000000000000"}
    status, _, body = http("GET", public_app["url"] + "/config", headers={"Host": "vaelab.example.org"})
    assert status == 200
    config = json.loads(body)
    box = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "custom-weights")
    assert box["props"]["interactive"] is False
    assert "Switched off on this server" in body.decode()


def test_custom_weights_follow_the_bound_host(monkeypatch):
    """The decision itself: the bound address wins over GRADIO_SERVER_NAME; the explicit flag wins over both."""
    from vaelab.ui import security

    monkeypatch.delenv("VAELAB_ALLOW_CUSTOM_WEIGHTS", raising=False)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "127.0.0.1")
    try:
        for host, allowed in (("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("127.0.0.1", True),
                              ("localhost", True), ("::1", True), ("127.0.0.2", True)):
            security.bind(host)
            assert security.custom_weights_allowed() is allowed, host
        security.bind("0.0.0.0")
        monkeypatch.setenv("VAELAB_ALLOW_CUSTOM_WEIGHTS", "1")
        assert security.custom_weights_allowed() and not security.host_check_on()
        security.bind("127.0.0.1")
        monkeypatch.setenv("VAELAB_ALLOW_CUSTOM_WEIGHTS", "0")
        assert not security.custom_weights_allowed() and not security.host_check_on()
    finally:
        security.bind(None)
    assert security.refused_host({"host": "127.0.0.1:7860"}) is None
    assert security.refused_host({"host": "[::1]:7860", "origin": "http://localhost:7860"}) is None
    assert security.refused_host({"host": "evil.example:7860"})
    assert security.refused_host({"host": "127.0.0.1:7860", "origin": "https://evil.example"})
    assert security.refused_host({"host": ""})


def test_weights_choice_refuses_custom_weights_when_off(monkeypatch):
    import gradio as gr

    from vaelab.ui import security, tab_reconstruct

    monkeypatch.delenv("VAELAB_ALLOW_CUSTOM_WEIGHTS", raising=False)
    security.bind("0.0.0.0")
    try:
        with pytest.raises(gr.Error, match="switched off"):
            tab_reconstruct.weights_choice("sd-vae", "/etc/passwd", ["sd-vae"])
    finally:
        security.bind(None)


# --------------------------------------------------------------------------- what a session keeps


@pytest.fixture(scope="module")
def short_state_app(tmp_path_factory):
    """``python app.py`` whose per-session state lives 3 s (VAELAB_STATE_TTL_S=3), with the shipped weights."""
    root = tmp_path_factory.mktemp("ttl")
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", VAELAB_STATE_TTL_S="3",
               GRADIO_TEMP_DIR=str(root / "cache"), VAELAB_THREADS="1", PYTHONUNBUFFERED="1")
    with launch_app(env, root / "app.log", START_TIMEOUT_S) as url:
        yield url


def test_session_state_expires(short_state_app, tmp_path, monkeypatch):
    """A session's last result (gr.State) is dropped after its time-to-live: the tabs that read it (Wavelets here)
    then ask for a new Reconstruct run, instead of the server keeping it for an hour."""
    from conftest import require_lab_weights
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    require_lab_weights("sd-vae")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    client = Client(short_state_app, verbose=False, download_files=str(tmp_path / "dl"))
    from vaelab.ui.tab_reconstruct import OUTPUTS

    out = client.predict(None, "bikes", ["sd-vae"], 2, 32, "cpu", api_name="/reconstruct")
    assert Path(dict(zip([k for k in OUTPUTS if k not in ("state", "shown")], out))["video"]).is_file()
    bands = client.predict("2D per frame (3 levels)", 0, api_name="/wavelets")  # reads the session's state
    assert bands is not None and bands[0]  # the state is there: the mosaic is drawn
    import time

    time.sleep(3 + 2.5)  # TTL, then Gradio's once-a-second sweep
    with pytest.raises(AppError, match="Run Reconstruct first"):
        client.predict("2D per frame (3 levels)", 0, api_name="/wavelets")
