"""Fetch LPIPS' AlexNet backbone once, in the background, where the network may be used.

A fresh install (a hosted Space, a laptop) has the lpips package's linear layers but not torchvision's
ImageNet AlexNet weights, so LPIPS would read "unavailable" everywhere. :func:`start` downloads the file
into the torch hub cache with torchvision's own URL and its own checksum (the sha256 prefix in the file name,
checked by ``torch.hub.download_url_to_file``, which writes to a temporary file and moves it into place
only when the hash matches), in a daemon thread. Offline (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE`` or
``VAELAB_OFFLINE`` set to 1/true/yes) it never touches the network and LPIPS stays as it was.

:func:`status` says where it stands: ``present``, ``offline``, ``downloading``, ``done`` or ``failed``
(with the reason), for the status lines in the app and the CLI.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("vaelab.lpips_fetch")

OFFLINE_FLAGS = ("VAELAB_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass(frozen=True)
class FetchStatus:
    state: str  # "idle", "present", "offline", "downloading", "done", "failed"
    reason: str = ""
    path: str = ""
    seconds: float | None = None


_LOCK = threading.Lock()
_STATUS = FetchStatus("idle")
_THREAD: threading.Thread | None = None


def network_allowed() -> bool:
    """False when any offline switch is on."""
    return not any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in OFFLINE_FLAGS)


def backbone_source() -> tuple[str, str]:
    """torchvision's URL of the ImageNet AlexNet weights and the sha256 prefix its file name carries."""
    from torch.hub import HASH_REGEX
    from torchvision.models import AlexNet_Weights

    url = AlexNet_Weights.IMAGENET1K_V1.url
    match = HASH_REGEX.search(os.path.basename(url))
    return url, match.group(1) if match else ""


def backbone_path(hub_dir: str | None = None) -> str:
    """Where torchvision caches the backbone (``<torch hub>/checkpoints/alexnet-owt-<hash>.pth``)."""
    import torch

    url, _ = backbone_source()
    return os.path.join(hub_dir or torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def status() -> FetchStatus:
    with _LOCK:
        return _STATUS


def _set(st: FetchStatus) -> None:
    global _STATUS
    with _LOCK:
        _STATUS = st


def fetch(url: str | None = None, hash_prefix: str | None = None, dst: str | None = None) -> FetchStatus:
    """Download the backbone now (blocking); the default URL and hash are torchvision's own. Returns and
    records the outcome; never raises. A file that fails the checksum is not left in the cache."""
    import torch

    default_url, default_hash = backbone_source()
    url, hash_prefix = url or default_url, default_hash if hash_prefix is None else hash_prefix
    dst = dst or backbone_path()
    if os.path.isfile(dst):
        return _record(FetchStatus("present", path=dst))
    if not network_allowed():
        return _record(FetchStatus("offline", "an offline switch is on (HF_HUB_OFFLINE / VAELAB_OFFLINE)",
                                   path=dst))
    _set(FetchStatus("downloading", path=dst))
    t0 = time.perf_counter()
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:  # no timeout of our own: a slow download only keeps this daemon thread (and "downloading") alive
        torch.hub.download_url_to_file(url, dst, hash_prefix=hash_prefix or None, progress=False)
        torch.load(dst, map_location="cpu", weights_only=True)  # a readable state dict, not an HTML page
    except Exception as e:  # noqa: BLE001 - any failure becomes the reason shown next to "unavailable"
        if os.path.isfile(dst):
            os.remove(dst)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "hash" in reason.lower():
            reason = "the download was corrupted (checksum mismatch)"
        log.warning("LPIPS backbone download from %s failed: %s", url, reason)
        return _record(FetchStatus("failed", f"download failed: {reason}", dst, time.perf_counter() - t0))
    return _record(FetchStatus("done", path=dst, seconds=time.perf_counter() - t0))


def _record(st: FetchStatus) -> FetchStatus:
    _set(st)
    return st


def start(**kwargs) -> threading.Thread | None:
    """Fetch in a daemon thread unless the file is there or the network is off (then only the status is set);
    at most one fetch per process. Returns the thread (None when nothing was started)."""
    global _THREAD
    dst = kwargs.get("dst") or backbone_path()
    if os.path.isfile(dst):
        _set(FetchStatus("present", path=dst))
        return None
    if not network_allowed():
        _set(FetchStatus("offline", "an offline switch is on (HF_HUB_OFFLINE / VAELAB_OFFLINE)", path=dst))
        return None
    with _LOCK:
        if _THREAD is not None and _THREAD.is_alive():
            return _THREAD
        _THREAD = threading.Thread(target=fetch, kwargs=kwargs, daemon=True, name="vaelab-lpips-fetch")
    _set(FetchStatus("downloading", path=dst))
    _THREAD.start()
    return _THREAD


def reset_for_tests() -> None:
    """Forget the recorded outcome (tests only)."""
    _set(FetchStatus("idle"))


__all__ = ["FetchStatus", "backbone_path", "backbone_source", "fetch", "network_allowed", "start", "status"]
