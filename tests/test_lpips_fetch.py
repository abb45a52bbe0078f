"""LPIPS' AlexNet backbone fetched once where the network may be used: against a loopback HTTP server that
serves a stand-in (a randomly initialised AlexNet state dict), never the internet."""
from __future__ import annotations

import hashlib
import http.server
import os
import threading

import pytest

from vaelab import lpips_fetch, metrics


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> bytes:
    import io

    import torch
    from torchvision.models import alexnet

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save(alexnet(weights=None).state_dict(), buf)
    return buf.getvalue()


@pytest.fixture
def server(standin):
    """``(base url, request log)``: /ok serves the stand-in, /corrupt the stand-in with flipped bytes,
    anything else is a 404."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            body = {"/ok/alexnet.pth": standin,
                    "/corrupt/alexnet.pth": standin[:1000] + bytes(b ^ 0xFF for b in standin[1000:2000])
                    + standin[2000:]}.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def online(monkeypatch):
    for k in lpips_fetch.OFFLINE_FLAGS:
        monkeypatch.delenv(k, raising=False)
    lpips_fetch.reset_for_tests()
    yield
    lpips_fetch.reset_for_tests()


def _sha8(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def test_default_source_is_torchvisions_own():
    url, sha = lpips_fetch.backbone_source()
    assert url.endswith(f"alexnet-owt-{sha}.pth") and len(sha) == 8
    assert lpips_fetch.backbone_path().endswith(os.path.join("checkpoints", os.path.basename(url)))


def test_fetch_downloads_checks_and_caches(server, standin, online, tmp_path):
    import torch

    url, hits = server
    dst = str(tmp_path / "hub" / "checkpoints" / "alexnet-owt-test.pth")
    thread = lpips_fetch.start(url=url + "/ok/alexnet.pth", hash_prefix=_sha8(standin), dst=dst)
    assert thread is not None and lpips_fetch.status().state in ("downloading", "done")
    thread.join(60)
    st = lpips_fetch.status()
    assert st.state == "done" and st.path == dst, st
    assert open(dst, "rb").read() == standin
    assert "features.0.weight" in torch.load(dst, weights_only=True)
    assert lpips_fetch.start(url=url + "/ok/alexnet.pth", dst=dst) is None  # once: it is there now
    assert lpips_fetch.status().state == "present" and hits == ["/ok/alexnet.pth"]


def test_failed_download_says_why_and_leaves_nothing(server, online, tmp_path):
    url, hits = server
    dst = str(tmp_path / "checkpoints" / "alexnet.pth")
    st = lpips_fetch.fetch(url=url + "/missing/alexnet.pth", hash_prefix="", dst=dst)
    assert st.state == "failed" and "404" in st.reason, st
    assert not os.path.exists(dst) and hits == ["/missing/alexnet.pth"]


def test_unreachable_server_fails_quickly(online, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    st = lpips_fetch.fetch(url=f"http://127.0.0.1:{port}/alexnet.pth", dst=str(tmp_path / "a.pth"))
    assert st.state == "failed" and "refused" in st.reason.lower(), st


def test_corrupted_download_is_rejected(server, standin, online, tmp_path):
    url, _ = server
    dst = str(tmp_path / "checkpoints" / "alexnet.pth")
    st = lpips_fetch.fetch(url=url + "/corrupt/alexnet.pth", hash_prefix=_sha8(standin), dst=dst)
    assert st.state == "failed" and "checksum" in st.reason, st
    assert not os.path.exists(dst) and not os.listdir(os.path.dirname(dst)), "no partial or temporary file stays"


def test_offline_never_touches_the_network(server, standin, monkeypatch, tmp_path):
    url, hits = server
    lpips_fetch.reset_for_tests()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dst = str(tmp_path / "alexnet.pth")
    assert lpips_fetch.start(url=url + "/ok/alexnet.pth", hash_prefix=_sha8(standin), dst=dst) is None
    assert lpips_fetch.status().state == "offline"
    assert lpips_fetch.fetch(url=url + "/ok/alexnet.pth", dst=dst).state == "offline"
    assert hits == [] and not os.path.exists(dst)
    lpips_fetch.reset_for_tests()


def test_status_line_while_downloading_and_after_a_failure(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no backbone in this hub cache
    lin = metrics.pixel._lpips_linear_path()
    if lin is None or not os.path.isfile(lin):
        pytest.skip("the lpips package (its linear layers) is not installed")
    monkeypatch.setattr(lpips_fetch, "_STATUS", lpips_fetch.FetchStatus("downloading"))
    ok, msg = metrics.lpips_status()
    assert not ok and msg.startswith("LPIPS: downloading")
    monkeypatch.setattr(lpips_fetch, "_STATUS", lpips_fetch.FetchStatus("failed", "download failed: HTTP Error 404"))
    ok, msg = metrics.lpips_status()
    assert not ok and "unavailable" in msg and "HTTP Error 404" in msg
