"""Bounded load test of the web app against loopback only: cancels, large allowed requests and crafted files.

Starts ``python app.py`` on a free loopback port (or uses ``--url``, which must be loopback), waits until its
start-up work is over, then runs ``--clients`` gradio_client sessions at once, each going ``--rounds`` times
through a mix:

* a large allowed request (Reconstruct, ``--large-models`` on the bikes example, ``--large-frames`` frames at
  ``--large-size`` px: inside the work cap and the memory rule);
* a submit-then-cancel of the same request after ``--cancel-after`` s;
* crafted uploads: a 2.6 KB MP4 with microsecond timestamps whose last frame is at 59.9 s, a MOV whose PNG
  stream claims 64x64 but holds a 16000x16000 image, a PNG claiming 12000x12000;
* NaN settings.

A sampler reads the server's VmRSS every 0.2 s. The result (JSON on stdout, ``--json`` file) has the server's
RSS before the load, its peak during it (sampled and VmHWM), per-kind outcomes and latencies, and whether the
peak stayed within ``--bound-mib`` above the RSS before the load; the exit code is 1 when it did not.

    PYTHONPATH=$PWD nice python scripts/load_test.py [--clients 4 --rounds 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]


# --- crafted files ------------------------------------------------------------------------------

def _png(width: int, height: int, channels: int = 1) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = bytes(1 + width * channels)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, {1: 0, 3: 2}[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def crafted_files(d: Path) -> dict[str, Path]:
    import av
    import numpy as np

    d.mkdir(parents=True, exist_ok=True)
    vfr = d / "vfr_microseconds.mp4"
    with av.open(str(vfr), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1_000_000)
        for i, pts in enumerate(list(range(30)) + [59_900_000]):
            f = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 8 * i % 256, np.uint8), format="rgb24")
            f.pts, f.time_base = pts, Fraction(1, 1_000_000)
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    lying = d / "png_16000_says_64.mov"
    with av.open(str(lying), "w", format="mov") as out:
        s = out.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = 64, 64, "rgb24"
        p = av.Packet(_png(16000, 16000, 3))
        p.stream, p.pts, p.dts, p.time_base = s, 0, 0, Fraction(1, 1)
        out.mux(p)
    bomb = d / "bomb_12000.png"
    bomb.write_bytes(_png(12000, 12000))
    return {"vfr-microseconds": vfr, "png-in-mov-lying-header": lying, "png-bomb": bomb}


# --- the server ---------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(url: str | None, log: Path, timeout: float):
    if url:
        yield url, _pid_for_port(int(urlsplit(url).port))
        return
    port = _free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", PYTHONPATH=str(ROOT),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url + "/config", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"app.py did not start; log: {log}") from None
                time.sleep(0.5)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _pid_for_port(port: int) -> int:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":
                inodes.add(f"socket:[{f[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
    raise SystemExit(f"no process listens on port {port}")


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c0 = cpu_s(pid)
        time.sleep(1.0)
        if cpu_s(pid) - c0 < 0.1:
            return


class Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples, self.stop_event = pid, 0, 0, threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
                self.samples += 1
            self.stop_event.wait(0.2)


# --- one client ---------------------------------------------------------------------------------

def session(url: str, a: argparse.Namespace, files: dict[str, Path], scratch: Path, index: int) -> list[dict]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=str(scratch / f"dl{index}"),
                    httpx_kwargs={"timeout": 300})  # a busy 2-core machine answers slowly
    large = (None, "bikes", a.large_models.split(","), a.large_frames, a.large_size, "cpu")
    events = []

    def timed(kind: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            fn()
            outcome = "ok"
        except Exception as e:  # noqa: BLE001 - every outcome is recorded
            outcome = f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
        events.append({"kind": kind, "client": index, "seconds": round(time.perf_counter() - t0, 2),
                       "outcome": outcome})

    for _ in range(a.rounds):
        timed("large", lambda: client.predict(*large, api_name="/reconstruct"))

        def cancel() -> None:
            job = client.submit(*large, api_name="/reconstruct")
            time.sleep(a.cancel_after)
            job.cancel()

        timed("cancel", cancel)
        for name, path in files.items():
            timed(name, lambda p=path: client.predict(handle_file(str(p)), None, ["sd-vae"], 64, 32, "cpu",
                                                      api_name="/reconstruct"))
        timed("nan-frames", lambda: client.predict(None, "bikes", ["sd-vae"], float("nan"), 32, "cpu",
                                                   api_name="/reconstruct"))
    return events


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="an already running server on loopback (default: start one)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--large-models", default="sd-vae,cv-vae")
    p.add_argument("--large-frames", type=int, default=32)
    p.add_argument("--large-size", type=int, default=128)
    p.add_argument("--cancel-after", type=float, default=2.0)
    p.add_argument("--bound-mib", type=float, default=2048.0,
                   help="allowed peak RSS above the idle server's (one request's memory rule + margin)")
    p.add_argument("--start-timeout", type=float, default=600.0)
    p.add_argument("--json")
    a = p.parse_args()
    if a.url and urlsplit(a.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load tests run against loopback only")
    scratch = Path(tempfile.mkdtemp(prefix="vaelab-load-"))
    files = crafted_files(scratch / "crafted")
    with server(a.url, scratch / "app.log", a.start_timeout) as (url, pid):
        wait_idle(pid, a.start_timeout)
        rss0 = status_kib(pid, "VmRSS")
        sampler = Sampler(pid)
        sampler.start()
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(a.clients) as pool:
            events = [e for f in [pool.submit(session, url, a, files, scratch, i) for i in range(a.clients)]
                      for e in f.result()]
        wall = time.perf_counter() - t0
        time.sleep(2.0)
        c0 = cpu_s(pid)
        time.sleep(2.0)
        cpu_after = (cpu_s(pid) - c0) / 2.0
        sampler.stop_event.set()
        sampler.join()
        hwm, rss_end = status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS")
    kinds: dict[str, dict] = {}
    for e in events:
        k = kinds.setdefault(e["kind"], {"n": 0, "outcomes": {}, "seconds": []})
        k["n"] += 1
        k["outcomes"][e["outcome"]] = k["outcomes"].get(e["outcome"], 0) + 1
        k["seconds"].append(e["seconds"])
    for k in kinds.values():
        s = sorted(k.pop("seconds"))
        k["seconds_p50"], k["seconds_max"] = s[len(s) // 2], s[-1]
    peak_above = (sampler.peak - rss0) / 1024
    result = {"clients": a.clients, "rounds": a.rounds, "requests": len(events), "wall_s": round(wall, 1),
              "large_request": {"models": a.large_models, "frames": a.large_frames, "size": a.large_size},
              "rss_idle_mib": round(rss0 / 1024), "rss_peak_sampled_mib": round(sampler.peak / 1024),
              "vmhwm_lifetime_mib": round(hwm / 1024), "rss_end_mib": round(rss_end / 1024),
              "peak_above_idle_mib": round(peak_above), "bound_mib": a.bound_mib,
              "within_bound": peak_above <= a.bound_mib, "server_cpu_after_s_per_s": round(cpu_after, 3),
              "samples": sampler.samples, "kinds": kinds,
              "load_average": os.getloadavg()}
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    return 0 if result["within_bound"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
