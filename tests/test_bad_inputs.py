"""Bad and awkward inputs, generated here (PyAV, numpy, Pillow, a few raw bytes): nothing binary
is committed.

One corpus of 40 files goes through ``vaelab.pipeline.load_input`` and ``vaelab.io.read_clip``:
each either gives a valid clip (uint8 ``(T, H, W, 3)``, even sides, a note when something was
done to it) or raises ``VideoDecodeError``/``ValueError`` with a short, path-free message,
within a time bound and without leaving temp files behind. A handful then go through the live
app (gradio_client) and the CLI. Checkpoints (NaN/Inf, wrong architecture, pickles that try to
run code, damaged safetensors) go through ``vaelab.models.load``.

``tests/test_io.py`` has the precise pixel-level checks for most of these; this file checks the
contract every input must meet. docs/RELIABILITY.md has the resulting table.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest
from PIL import Image

from vaelab.io import Clip, VideoDecodeError, VideoLimits, read_clip
from vaelab.pipeline import load_input

REPO = Path(__file__).resolve().parents[1]
SIZE = 32  # working resolution (short side) for every read: pipeline.MIN_SIZE
FRAMES = 3  # frames requested per read
TIME_BOUND_S = 20.0  # per read, on a busy 2-core machine
MAX_MESSAGE = 200


# --------------------------------------------------------------------------- generators


def pattern(t: int, h: int, w: int) -> np.ndarray:
    """Smooth uint8 (t, h, w, 3) frames, each a bit different."""
    yy, xx = np.mgrid[:h, :w]
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, ..., 0] = (xx * 200 // max(w - 1, 1) + 7 * i) % 256
        frames[i, ..., 1] = yy * 200 // max(h - 1, 1)
        frames[i, ..., 2] = (60 + 11 * i) % 256
    return frames


def encode(
    path: Path,
    frames: np.ndarray,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    fps: int = 10,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
    streams: int = 1,
    audio: bool = False,
    faststart: bool = True,
    fmt: str | None = None,
) -> Path:
    """Encode uint8 (T, H, W, 3) frames into ``path`` with the knobs the corpus needs."""
    options = {"movflags": "+faststart"} if faststart and path.suffix == ".mp4" else {}
    with av.open(str(path), "w", format=fmt, container_options=options) as out:
        videos = []
        for _ in range(streams):
            quiet = {"x265-params": "log-level=error"} if codec == "libx265" else None
            stream = out.add_stream(codec, rate=fps, options=quiet)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
            if time_base is not None:
                stream.time_base = time_base
                stream.codec_context.time_base = time_base
            if rotation is not None:
                stream.set_display_rotation(rotation)
            videos.append(stream)
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=16000)
            sound.layout = "mono"
        for index, image in enumerate(frames):
            for k, stream in enumerate(videos):
                frame = av.VideoFrame.from_ndarray(255 - image if k else image, format="rgb24")
                if pix_fmt != "yuv420p":
                    frame = frame.reformat(format=pix_fmt)
                frame.pts = index if pts is None else pts[index]
                if time_base is not None:
                    frame.time_base = time_base
                out.mux(stream.encode(frame))
        for stream in videos:
            out.mux(stream.encode(None))
        if sound is not None:
            for i in range(4):
                samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                                     layout="mono")
                samples.sample_rate, samples.pts = 16000, i * 1024
                out.mux(sound.encode(samples))
            out.mux(sound.encode(None))
    return path


def audio_only(path: Path, fmt: str) -> Path:
    with av.open(str(path), "w", format=fmt) as out:
        codec = "aac" if fmt == "mp4" else "pcm_s16le"
        stream = out.add_stream(codec, rate=16000)
        stream.layout = "mono"
        for i in range(4):
            samples = np.zeros((1, 1024), np.float32 if codec == "aac" else np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp" if codec == "aac" else "s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def raw_png(width: int, height: int, bit_depth: int, color_type: int, bytes_per_px: int,
            rows: np.ndarray | None = None) -> bytes:
    """A PNG written by hand: Pillow cannot write 16-bit RGB, nor a tiny file that claims a
    huge size. ``rows`` (big-endian samples) defaults to all zeros, which deflate to almost
    nothing: a 12000x12000 image is ~150 KB."""
    compressor = zlib.compressobj(9)
    if rows is None:
        row = bytes(1 + width * bytes_per_px)
        data = b"".join(compressor.compress(row) for _ in range(height))
    else:
        data = b"".join(compressor.compress(b"\x00" + rows[y].tobytes()) for y in range(height))
    idat = data + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def small_mp4(path: Path, t: int = 12, h: int = 48, w: int = 64, faststart: bool = True) -> Path:
    return encode(path, pattern(t, h, w), faststart=faststart)


def truncated_mp4(keep: float, faststart: bool = True) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        full = small_mp4(d / "full.mp4", t=30, faststart=faststart)
        data = full.read_bytes()
        full.unlink()
        return write(d / "cut.mp4", data[: int(len(data) * keep)])
    return make


def png_with_alpha(d: Path) -> Path:
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[:, 30:, 3] = 255  # left half transparent
    Image.fromarray(rgba, "RGBA").save(d / "alpha.png")
    return d / "alpha.png"


def png_16bit_rgb(d: Path) -> Path:
    h, w = 36, 50
    ramp = (np.linspace(0, 65535, w)[None, :, None] * np.ones((h, 1, 3))).astype(">u2")
    return write(d / "deep16.png", raw_png(w, h, 16, 2, 6, ramp))


def png_gray(d: Path) -> Path:
    Image.fromarray(pattern(1, 40, 40)[0, ..., 0]).save(d / "gray.png")
    return d / "gray.png"


def animated_gif(d: Path) -> Path:
    images = [Image.fromarray(frame) for frame in pattern(4, 40, 60)]
    images[0].save(d / "anim.gif", save_all=True, append_images=images[1:], duration=100, loop=0)
    return d / "anim.gif"


def gif_huge_screen(d: Path) -> Path:
    """A 5x5 GIF frame on a logical screen that claims 65535x65535."""
    path = d / "screen.gif"
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    data[6:10] = struct.pack("<HH", 65535, 65535)
    return write(path, bytes(data))


def jpeg_as_mp4(d: Path) -> Path:
    Image.fromarray(pattern(1, 40, 56)[0]).save(d / "photo.mp4", format="JPEG")  # wrong extension
    return d / "photo.mp4"


def jpeg_truncated(d: Path) -> Path:
    Image.fromarray(pattern(1, 64, 64)[0]).save(d / "full.jpg", format="JPEG", quality=90)
    data = (d / "full.jpg").read_bytes()
    (d / "full.jpg").unlink()
    return write(d / "half.jpg", data[: len(data) // 2])


def mp4_as_png(d: Path) -> Path:
    return small_mp4(d / "clip.mp4", t=3).rename(d / "clip.png")  # wrong extension: content decides


def ten_bit(d: Path) -> Path:
    try:
        return encode(d / "ten.mp4", pattern(3, 48, 64), pix_fmt="yuv420p10le")
    except (av.error.FFmpegError, ValueError):  # an 8-bit-only libx264 build
        return encode(d / "ten.mkv", pattern(3, 48, 64), codec="ffv1", pix_fmt="yuv444p10le")


def vfr(d: Path) -> Path:
    pts_ms = [0, 100, 200, 400, 500, 600, 900, 1000]
    return encode(d / "vfr.mp4", pattern(8, 48, 64), pts=pts_ms, time_base=Fraction(1, 1000))


def vfr_microseconds(d: Path) -> Path:
    """2-3 KB: 30 frames 1 us apart, then one at 59.9 s (``resampled to 1e+06 fps`` before the clamp)."""
    pts_us = list(range(30)) + [59_900_000]
    return encode(d / "vfr_us.mp4", pattern(31, 16, 16), pts=pts_us, time_base=Fraction(1, 1_000_000))


def still_codec_lying_header(fmt: str, suffix: str, side: int = 16000) -> Callable[[Path], Path]:
    """A video container (MOV, AVI, NUT) whose PNG stream header says 64x64 but whose one packet is a
    16000x16000 PNG (~0.75 MB on disk, 732 MiB once decoded; FFmpeg's probe alone decoded it)."""
    def make(d: Path) -> Path:
        path = d / f"lying{side}.{suffix}"
        with av.open(str(path), "w", format=fmt) as out:
            stream = out.add_stream("png", rate=1)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "rgb24"
            packet = av.Packet(raw_png(side, side, 8, 2, 3))
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, 0, 0, Fraction(1, 1)
            out.mux(packet)
        return path
    return make


def long_clip(d: Path) -> Path:
    return encode(d / "long.mp4", pattern(40, 32, 32), fps=25)


def non_ascii(d: Path) -> Path:
    return small_mp4(d / "vidéo été – 日本語 🎬 (copy).mp4", t=3)


def dotdot_existing(d: Path) -> Path:
    """``.../b/../a/clip.mp4``: ``..`` segments that lead to a real file."""
    (d / "a").mkdir()
    (d / "b").mkdir()
    small_mp4(d / "a" / "clip.mp4", t=3)
    return d / "b" / ".." / "a" / "clip.mp4"


def dotdot_missing(d: Path) -> Path:
    """An upload-like name with ``..`` segments pointing outside: nothing there, nothing read."""
    (d / "uploads").mkdir()
    return d / "uploads" / ".." / ".." / "etc" / "passwd.mp4"


def hls_playlist(d: Path) -> Path:
    # If FFmpeg's hls demuxer were allowed, this would make the server read a local file.
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    return write(d / "playlist.mp4", text.encode())


def concat_script(d: Path) -> Path:
    return write(d / "list.mp4", b"ffconcat version 1.0\nfile '/etc/passwd'\nfile '/etc/hostname'\n")


def directory(d: Path) -> Path:
    (d / "folder.mp4").mkdir()
    return d / "folder.mp4"


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], Path]
    expect: str  # "clip", "error", or "either" (a damaged file that may still give a few frames)
    match: str = ""  # in the error message, or in one of the clip's notes
    frames: int = FRAMES
    limits: VideoLimits | None = None  # for the read_clip call only
    shape: tuple[int, int, int, int] | None = None  # of read_clip's frames, where it is worth pinning


CORPUS = [
    # --- not videos at all
    Case("zero-byte", lambda d: write(d / "empty.mp4", b""), "error", "the file is empty"),
    Case("random-bytes.mp4", lambda d: write(d / "noise.mp4", np.random.default_rng(1).bytes(50_000)),
         "error", "not a video or image"),
    Case("text.txt", lambda d: write(d / "notes.txt", b"just some notes\n" * 100), "error", "not a video"),
    Case("text-named.mp4", lambda d: write(d / "readme.mp4", b"# README\n\nnot a video\n" * 50), "error",
         "not a video"),
    Case("etc-passwd", lambda d: Path("/etc/passwd"), "error", "not a video"),
    Case("hls-playlist", hls_playlist, "error", "not a video"),
    Case("ffconcat-script", concat_script, "error", "not a video"),
    Case("directory", directory, "error", "not a file"),
    Case("audio-only.m4a", lambda d: audio_only(d / "sound.m4a", "mp4"), "error", "No video stream"),
    Case("audio-only-as.mp4", lambda d: audio_only(d / "sound.mp4", "mp4"), "error", "No video stream"),
    Case("audio-only.wav", lambda d: audio_only(d / "sound.wav", "wav"), "error", "No video stream"),
    # --- damaged videos
    Case("mp4-cut-5%", truncated_mp4(0.05), "error", "Could not decode video", frames=64),
    Case("mp4-cut-30%", truncated_mp4(0.30), "either", "Could not decode video|damaged or cut short", frames=64),
    Case("mp4-cut-70%", truncated_mp4(0.70), "clip", "damaged or cut short", frames=64),
    Case("mp4-cut-95%", truncated_mp4(0.95), "clip", "damaged or cut short", frames=64),
    Case("mp4-moov-last-cut-60%", truncated_mp4(0.60, faststart=False), "error", "Could not decode video", frames=64),
    Case("jpeg-cut-half", jpeg_truncated, "either", "Could not decode video|image"),
    # --- size limits
    Case("tiny-8x8", lambda d: encode(d / "tiny.mp4", pattern(3, 8, 8)), "error", "too small"),
    Case("y4m-claims-8000x8000", lambda d: write(
        d / "huge.y4m", b"YUV4MPEG2 W8000 H8000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 64),
        "error", "too large"),
    Case("gif-screen-65535x65535", gif_huge_screen, "error", "too large|damaged"),
    Case("png-claims-12000x12000", lambda d: write(d / "bomb.png", raw_png(12000, 12000, 8, 0, 1)),
         "error", "too large"),
    Case("mov-png-16000-says-64", still_codec_lying_header("mov", "mov"), "error", "image too large to decode"),
    Case("avi-png-16000-says-64", still_codec_lying_header("avi", "avi"), "error", "image too large to decode"),
    Case("nut-png-16000-says-64", still_codec_lying_header("nut", "nut"), "error", "image too large to decode"),
    Case("mov-png-5000-says-64", still_codec_lying_header("mov", "mov", 5000), "error", "too large (5000x5000)"),
    # --- awkward but valid images
    Case("png-alpha", png_with_alpha, "clip", "alpha composited on white"),
    Case("png-16bit-rgb", png_16bit_rgb, "clip", "16-bit: converted to 8-bit"),
    Case("png-grayscale", png_gray, "clip", "grayscale"),
    Case("gif-animated", animated_gif, "clip", "resized"),
    Case("jpeg-named.mp4", jpeg_as_mp4, "clip", "image: treated as a 1-frame clip"),
    # --- awkward but valid videos
    Case("mp4-named.png", mp4_as_png, "clip", "resized"),
    Case("1-frame", lambda d: encode(d / "one.mp4", pattern(1, 48, 64)), "clip", "resized", shape=(1, 32, 42, 3)),
    Case("2-frame", lambda d: encode(d / "two.mp4", pattern(2, 48, 64)), "clip", "resized", shape=(2, 32, 42, 3)),
    Case("odd-257x131", lambda d: encode(d / "odd.mp4", pattern(3, 131, 257), pix_fmt="yuv444p"),
         "clip", "resized 257x131 -> 62x32", shape=(3, 32, 62, 3)),
    # Stored 64x32 (landscape), shown portrait: the clip comes out 32 wide, 64 high.
    Case("rotated-90", lambda d: encode(d / "rot90.mp4", pattern(3, 32, 64), rotation=90), "clip", "rotated",
         shape=(3, 64, 32, 3)),
    Case("rotated-270", lambda d: encode(d / "rot270.mp4", pattern(3, 32, 64), rotation=270), "clip", "rotated",
         shape=(3, 64, 32, 3)),
    Case("variable-frame-rate", vfr, "clip", "variable frame rate", frames=8),
    Case("vfr-microsecond-steps", vfr_microseconds, "clip", "resampled to 240 fps", frames=64),
    Case("10-bit", ten_bit, "clip", "10-bit: converted to 8-bit"),
    Case("two-video-streams", lambda d: encode(d / "two.mkv", pattern(3, 48, 64), streams=2), "clip",
         "2 video streams"),
    Case("video-plus-audio", lambda d: encode(d / "av.mp4", pattern(3, 48, 64), audio=True), "clip", "resized"),
    Case("hevc-mkv", lambda d: encode(d / "hevc.mkv", pattern(3, 48, 64), codec="libx265"), "clip", "resized"),
    Case("vp9-webm", lambda d: encode(d / "vp9.webm", pattern(3, 48, 64), codec="libvpx-vp9", fmt="webm"),
         "clip", "resized"),
    Case("beyond-frame-limit", long_clip, "clip", "stopped at 5 frames (limit)", frames=64,
         limits=VideoLimits(max_frames=5), shape=(5, 32, 32, 3)),
    Case("non-ascii-name", non_ascii, "clip", "resized"),
    # --- names
    Case("dotdot-to-real-file", dotdot_existing, "clip", "resized"),
    Case("dotdot-to-nothing", dotdot_missing, "error", "not found"),
]
CASES = {case.id: case for case in CORPUS}


# --------------------------------------------------------------------------- the contract


def assert_valid_clip(clip: Clip, case: Case, *, frame_cap: int) -> None:
    frames = clip.frames
    assert isinstance(frames, np.ndarray) and frames.dtype == np.uint8, (case.id, frames.dtype)
    assert frames.ndim == 4 and frames.shape[-1] == 3, (case.id, frames.shape)
    t, h, w, _ = frames.shape
    assert 1 <= t <= frame_cap, (case.id, t)
    assert h % 2 == 0 and w % 2 == 0, (case.id, "odd sides", frames.shape)
    assert min(h, w) == SIZE, (case.id, "short side is the working resolution", frames.shape)
    assert np.isfinite(clip.fps) and clip.fps > 0, (case.id, clip.fps)
    assert all(isinstance(note, str) and note for note in clip.notes), clip.notes


def assert_safe_message(message: str, path: Path, tmp_path: Path) -> None:
    assert message and len(message) < MAX_MESSAGE, message
    assert "\n" not in message.strip() and "Traceback" not in message, message
    for secret in {str(tmp_path), str(path.parent), str(Path(os.path.abspath(path)).parent), "/tmp/"}:
        assert secret not in message, (secret, message)
    assert "Errno" not in message and "root:x:0" not in message, message


def matches(text: str, alternatives: str) -> bool:
    return any(alt in text for alt in alternatives.split("|"))


_IGNORED_TMP = ("pytest-of-", "pytest-", "gradio", "vaelab-out")
# gradio_client leaves an empty $TMPDIR/<40 hex> directory per downloaded file; other test
# sessions on the machine may create them while a case runs.
_CLIENT_DOWNLOAD_DIR = re.compile(r"[0-9a-f]{40}")


def tmp_listing(directory: str) -> set[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return set()
    return {n for n in names if not n.startswith(_IGNORED_TMP) and not _CLIENT_DOWNLOAD_DIR.fullmatch(n)}


def quiet_client(base_url: str, tmp_path: Path, monkeypatch):
    """A gradio_client.Client whose downloads (and the empty directory it leaves per download in
    tempfile.gettempdir()) stay under tmp_path instead of the system temp dir."""
    from gradio_client import Client

    scratch = tmp_path / "client-tmp"
    scratch.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return Client(base_url, verbose=False, download_files=str(scratch / "downloads"))


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Point Python's tempfile (and C libraries honouring TMPDIR) at an empty directory."""
    system_tmp = tempfile.gettempdir()
    private = tmp_path / "private-tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    monkeypatch.setenv("TMPDIR", str(private))
    return system_tmp, private


def read_both(case: Case, path: Path) -> dict[str, Clip | Exception]:
    """The outcome of load_input and read_clip on ``path``, each timed."""
    outcomes = {}
    for via in ("load_input", "read_clip"):
        start = time.monotonic()
        try:
            if via == "load_input":
                outcomes[via] = load_input(str(path), None, frames=case.frames, size=SIZE)
            else:
                outcomes[via] = read_clip(path, max_frames=case.frames, size=SIZE,
                                          limits=case.limits or VideoLimits())
        except (VideoDecodeError, ValueError) as e:
            outcomes[via] = e
        elapsed = time.monotonic() - start
        assert elapsed < TIME_BOUND_S, f"{case.id} via {via} took {elapsed:.1f} s"
    return outcomes


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_corpus_gives_a_valid_clip_or_a_short_clear_error(case, tmp_path, private_tmp):
    system_tmp, private = private_tmp
    src = tmp_path / "in"
    src.mkdir()
    path = case.make(src)

    before = tmp_listing(system_tmp)
    outcomes = read_both(case, path)
    after = tmp_listing(system_tmp)

    for via, outcome in outcomes.items():
        cap = min(case.frames, (case.limits or VideoLimits()).max_frames) if via == "read_clip" else case.frames
        if isinstance(outcome, Exception):
            assert case.expect in ("error", "either"), f"{case.id} via {via}: unexpected error {outcome!r}"
            assert_safe_message(str(outcome), path, tmp_path)
            assert matches(str(outcome), case.match), (case.id, via, str(outcome))
        else:
            assert case.expect in ("clip", "either"), f"{case.id} via {via}: expected an error, got a clip"
            assert_valid_clip(outcome, case, frame_cap=cap)
            if via == "read_clip" or case.limits is None:
                assert any(matches(note, case.match) for note in outcome.notes), (case.id, via, outcome.notes)
            if via == "read_clip" and case.shape is not None:
                assert outcome.frames.shape == case.shape, (case.id, outcome.frames.shape)
            if case.id == "beyond-frame-limit":
                assert outcome.truncated == (via == "read_clip"), (via, outcome.notes)
    # Both entry points agree on accepting or refusing (limits aside).
    if case.limits is None:
        kinds = {type(o).__name__ if isinstance(o, Exception) else "clip" for o in outcomes.values()}
        assert len(kinds) == 1, (case.id, outcomes)

    assert list(private.iterdir()) == [], f"{case.id}: temp files left: {list(private.iterdir())}"
    leaked = after - before
    assert not leaked, f"{case.id}: new entries in {system_tmp}: {sorted(leaked)}"


def test_corpus_is_big_and_distinct():
    assert len(CORPUS) >= 25 and len(CASES) == len(CORPUS)


def test_dotdot_name_reads_only_the_named_file(tmp_path):
    """``..`` in a name is resolved by the OS like any path: the clip read is the file it names,
    and a name that points nowhere is 'not found' without the directory in the message."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    real = small_mp4(tmp_path / "a" / "clip.mp4", t=2)
    via_dotdot = read_clip(tmp_path / "b" / ".." / "a" / "clip.mp4", size=SIZE)
    direct = read_clip(real, size=SIZE)
    assert np.array_equal(via_dotdot.frames, direct.frames)

    outside = tmp_path / "b" / ".." / ".." / ".." / ".." / ".." / ".." / "etc" / "passwd.mp4"
    with pytest.raises(VideoDecodeError) as info:
        read_clip(outside)
    assert str(info.value) == "Could not decode video: the file was not found."


def test_unsafe_names_are_not_read_by_ffmpeg_as_urls(tmp_path):
    """Names FFmpeg would treat as protocols or patterns are opened as plain files."""
    for name in ("file:etc.mp4", "concat:a.mp4|b.mp4", "img%d.mp4", "subfile,,start,0,end,10,,:x.mp4"):
        small_mp4(tmp_path / name, t=2)
        clip = read_clip(tmp_path / name, size=SIZE)
        assert clip.frames.shape[0] == 2, name


_PEAK_RSS_SCRIPT = r"""
import sys
import av, numpy, PIL.Image  # imported before the baseline
from vaelab.io import VideoDecodeError, read_clip

def peak_kb():  # VmHWM, not ru_maxrss: that one keeps the parent's peak across exec
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])

before = peak_kb()
try:
    read_clip(sys.argv[1], size=32)
    print("clip")
except VideoDecodeError as e:
    print("error:", e)
print((peak_kb() - before) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="measures VmHWM in /proc")
def test_image_claiming_a_huge_size_is_refused_before_it_is_decoded(tmp_path):
    """A 150 KB PNG that claims 12000x12000 (144 MB of pixels) must be refused from its header,
    not after FFmpeg has decoded it. 16-bit RGBA at 16000x16000 would cost ~2 GB and 13 s."""
    path = write(tmp_path / "bomb.png", raw_png(12000, 12000, 8, 0, 1))
    assert path.stat().st_size < 300_000
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS_SCRIPT, str(path)], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome, growth_mb = proc.stdout.strip().splitlines()
    assert outcome.startswith("error:") and "too large" in outcome, outcome
    assert int(growth_mb) < 40, f"peak RSS grew by {growth_mb} MB while refusing a {path.stat().st_size} B file"


# --------------------------------------------------------------------------- checkpoints


def _state(name: str) -> dict:
    import torch

    from vaelab import models

    torch.set_num_threads(1)
    torch.manual_seed(0)
    return {k: v.clone() for k, v in models.build(name).state_dict().items()}


class _ExecGadget:
    """Unpickling this runs ``exec``: it would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def ckpt_inf_pt(d: Path) -> Path:
    import torch

    state = _state("vqgan")
    state[next(k for k, v in state.items() if v.is_floating_point())].view(-1)[0] = float("inf")
    torch.save(state, d / "inf.pt")
    return d / "inf.pt"


def ckpt_wrong_arch_pt(d: Path) -> Path:
    import torch

    torch.save({"state_dict": _state("litevae")}, d / "litevae-as-vqgan.pt")
    return d / "litevae-as-vqgan.pt"


def ckpt_exec_zip(d: Path) -> Path:
    import torch

    torch.save({"state_dict": {"w": _ExecGadget(d / "PWNED")}}, d / "evil.pt")
    return d / "evil.pt"


def ckpt_exec_legacy(d: Path) -> Path:
    with (d / "evil_legacy.ckpt").open("wb") as f:
        pickle.dump({"w": _ExecGadget(d / "PWNED")}, f, protocol=2)
    return d / "evil_legacy.ckpt"


def ckpt_safetensors_huge_header(d: Path) -> Path:
    return write(d / "huge-header.safetensors", struct.pack("<Q", 1 << 62) + b"{}")


def ckpt_safetensors_truncated(d: Path) -> Path:
    from safetensors.torch import save_file

    save_file(_state("litevae"), str(d / "full.safetensors"))
    data = (d / "full.safetensors").read_bytes()
    (d / "full.safetensors").unlink()
    return write(d / "cut.safetensors", data[: len(data) // 3])


def ckpt_not_tensors(d: Path) -> Path:
    import torch

    torch.save({"weights": [1, 2, 3], "note": "hello"}, d / "list.pt")
    return d / "list.pt"


CHECKPOINTS = [
    ("inf-values.pt", ckpt_inf_pt, "NaN/Inf"),
    ("wrong-architecture.pt", ckpt_wrong_arch_pt, "does not fit vqgan"),
    ("pickle-exec-torch-zip", ckpt_exec_zip, "could not read checkpoint|refused"),
    ("pickle-exec-legacy", ckpt_exec_legacy, "could not read checkpoint|refused"),
    ("safetensors-header-2^62", ckpt_safetensors_huge_header, "could not read checkpoint"),
    ("safetensors-truncated", ckpt_safetensors_truncated, "could not read checkpoint"),
    ("random-bytes.pt", lambda d: write(d / "noise.pt", np.random.default_rng(2).bytes(4096)),
     "could not read checkpoint|refused"),
    ("empty.safetensors", lambda d: write(d / "empty.safetensors", b""), "could not read checkpoint"),
    ("non-tensor-values.pt", ckpt_not_tensors, "not a state dict of tensors"),
    ("directory", lambda d: (d / "dir.safetensors").mkdir() or d / "dir.safetensors", "checkpoint not found"),
]


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in CHECKPOINTS], ids=[c[0] for c in CHECKPOINTS])
def test_bad_checkpoints_are_refused_and_run_no_code(make, expected, tmp_path, monkeypatch):
    from vaelab import models

    monkeypatch.chdir(tmp_path)
    path = make(tmp_path)
    start = time.monotonic()
    with pytest.raises(models.WeightsError) as info:
        models.load("vqgan", weights=str(path), device="cpu")
    assert time.monotonic() - start < TIME_BOUND_S
    message = str(info.value)
    assert matches(message, expected), message
    assert str(tmp_path) not in message, message
    assert not (tmp_path / "PWNED").exists(), "unpickling ran code"
    if "pickle" not in path.name and "evil" not in path.name:
        assert "\n" not in message and len(message) < 300, message


def test_exec_gadget_is_live(tmp_path):
    """The gadget above really runs code when unpickled the unsafe way, so the tests above prove something."""
    pickle.loads(pickle.dumps(_ExecGadget(tmp_path / "ran")))  # noqa: S301 - our own harmless payload
    assert (tmp_path / "ran").read_text() == "pwned"


@pytest.mark.parametrize("make", [ckpt_exec_zip, ckpt_exec_legacy], ids=["torch-zip", "legacy"])
def test_pickle_refusal_message_is_one_plain_line(make, tmp_path):
    """The refusal must be one plain line, and must not tell the user how to turn the safety off."""
    from vaelab import models

    with pytest.raises(models.WeightsError) as info:
        models.load("vqgan", weights=str(make(tmp_path)), device="cpu")
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and len(message) < 300, repr(message)
    assert "weights_only=False" not in message and "trust the source" not in message, message


# --------------------------------------------------------------------------- the live app


APP_CASES = [  # (case id, what the visitor must be told)
    ("random-bytes.mp4", "not a video or image"),
    ("mp4-cut-5%", "Could not decode video"),
    ("audio-only-as.mp4", "No video stream found"),
    ("tiny-8x8", "too small"),
    ("png-claims-12000x12000", "too large"),
    ("text.txt", "Invalid file type"),  # refused by Gradio's own file-type check, before vaelab
]


def _answers(base_url: str) -> bool:
    with urllib.request.urlopen(base_url + "/config", timeout=30) as r:
        return r.status == 200


def test_bad_uploads_through_the_live_app(app_server, tmp_path, small_clip, monkeypatch):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = quiet_client(app_server, tmp_path, monkeypatch)
    for case_id, expected in APP_CASES:
        d = tmp_path / case_id
        d.mkdir()
        path = CASES[case_id].make(d)
        start = time.monotonic()
        with pytest.raises(AppError) as info:
            client.predict(handle_file(str(path)), None, ["sd-vae"], 2, SIZE, "cpu", api_name="/reconstruct")
        elapsed = time.monotonic() - start
        message = str(info.value)
        print(f"app, {case_id}: {message} ({elapsed:.2f} s)")
        assert expected in message, (case_id, message)
        assert "Traceback" not in message and "/tmp/" not in message and len(message) < 300, (case_id, message)
        assert "Reconstruction failed" not in message, (case_id, message)  # a known error, not a crash
        assert elapsed < 60, (case_id, elapsed)
        assert _answers(app_server), f"server stopped answering after {case_id}"

    # Bad settings a hand-written API call can send (the UI's sliders never would).
    for args, expected in [
        ((handle_file(str(small_clip)), None, ["sd-vae"], 0, SIZE, "cpu"), "less than minimum|Frames must be"),
        ((handle_file(str(small_clip)), None, ["sd-vae"], 2, 100_000, "cpu"), "greater than maximum|resolution must"),
        ((None, "no-such-example", ["sd-vae"], 2, SIZE, "cpu"), "not in the list of choices|Unknown example"),
        ((None, "bikes", ["no-such-model"], 2, SIZE, "cpu"), "not in the list of choices|unknown model"),
    ]:
        with pytest.raises(AppError) as info:
            client.predict(*args, api_name="/reconstruct")
        message = str(info.value)
        print(f"app, bad settings {args[1:]!r}: {message}")
        assert matches(message, expected), message
        assert "Traceback" not in message and "/tmp/" not in message and len(message) < 300, message

    # Still serving real work: a valid upload with a non-ASCII name.
    good = non_ascii(tmp_path)
    out = client.predict(handle_file(str(good)), None, ["sd-vae"], 2, SIZE, "cpu", api_name="/reconstruct")
    from vaelab.ui.tab_reconstruct import OUTPUTS

    named = dict(zip([k for k in OUTPUTS if k not in ("state", "shown")], out))  # gr.State is not in the API
    assert Path(named["video"]).is_file() and Path(named["video"]).stat().st_size > 0
    assert [row[0] for row in named["table"]["data"]] == ["sd-vae"]


# --------------------------------------------------------------------------- the CLI


CLI_CASES = ["random-bytes.mp4", "mp4-cut-5%", "audio-only.wav", "tiny-8x8", "y4m-claims-8000x8000",
             "hls-playlist", "directory"]


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_cli_eval_bad_input_exits_2_with_one_line(case_id, tmp_path, capsys):
    from vaelab import cli

    path = CASES[case_id].make(tmp_path)
    rc = cli.main(["eval", str(path), "--models", "sd-vae", "--frames", "2", "--size", str(SIZE),
                   "--device", "cpu", "--no-lpips"])
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaelab: error: "), captured.err
    # a folder is a batch evaluation, which needs somewhere to write its tables
    expected = "needs --out DIR" if case_id == "directory" else CASES[case_id].match
    assert matches(lines[0], expected), lines[0]
    assert str(tmp_path) not in lines[0] and "Traceback" not in captured.err
    assert captured.out == ""


def test_cli_eval_absurd_size_exits_2_with_one_line(tmp_path, capsys):
    """``--size`` is not bounded by the CLI; FFmpeg refuses 20000 px (6000 px would be accepted and
    allocate ~160 MB per frame: see RELIABILITY.md, hardening H2)."""
    from vaelab import cli

    path = small_mp4(tmp_path / "clip.mp4", t=2)
    rc = cli.main(["eval", str(path), "--models", "sd-vae", "--frames", "1", "--size", "20000",
                   "--device", "cpu", "--no-lpips"])
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaelab: error: "), captured.err


# --------------------------------------------------------------------------- checkpoint metadata (untrusted config)


def ckpt_with_config(config_text: str, model: str = "sd-vae") -> Callable[[Path], Path]:
    """A tiny safetensors file whose metadata carries ``config_text`` as its VAE Lab config."""
    def make(d: Path) -> Path:
        import torch
        from safetensors.torch import save_file

        path = d / "crafted.safetensors"
        save_file({"x": torch.zeros(1)}, str(path), metadata={"config": config_text, "vaelab_model": model})
        return path
    return make


CONFIG_CHECKPOINTS = [
    # 308 bytes that used to allocate 2 GB: counted on the meta device first
    ("channels-1024x4", ckpt_with_config(json.dumps({"block_out_channels": [1024] * 4, "layers_per_block": 4})),
     "parameters (at most"),
    ("negative-channels", ckpt_with_config(json.dumps({"block_out_channels": [32, -64, 128, 128]})),
     "block_out_channels must not be negative"),
    ("zero-latent-channels", ckpt_with_config(json.dumps({"latent_channels": 0})), "latent_channels must be positive"),
    ("string-channels", ckpt_with_config(json.dumps({"latent_channels": "4; rm -rf"})), "must be a number"),
    ("bool-for-int", ckpt_with_config(json.dumps({"layers_per_block": True})), "layers_per_block must be"),
    ("nan-value", ckpt_with_config('{"kl_weight": NaN}'), "kl_weight must be finite"),
    ("huge-int", ckpt_with_config(json.dumps({"latent_channels": 10**12})), "latent_channels is too large"),
    ("long-list", ckpt_with_config(json.dumps({"block_out_channels": [8] * 1000})), "entries (at most"),
    ("unknown-key-object", ckpt_with_config(json.dumps({"__class__": {"module": "os", "name": "system"}})),
     "sd-vae config has no key '__class__'; valid keys: in_channels"),
    ("not-an-object", ckpt_with_config("[1, 2, 3]"), "not a JSON object"),
    ("not-json", ckpt_with_config("{config"), "not valid JSON"),
    ("metadata-too-long", ckpt_with_config(json.dumps({"latent_channels": 4, "pad": "x" * 70_000})),
     "at most 64,000 characters"),
    ("no-blocks", ckpt_with_config(json.dumps({"block_out_channels": []})), "does not build a model"),
]


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in CONFIG_CHECKPOINTS], ids=[c[0] for c in CONFIG_CHECKPOINTS])
def test_checkpoint_config_is_validated_before_anything_is_built(make, expected, tmp_path):
    """The config in a checkpoint's metadata is untrusted: each crafted one is refused with one line naming the
    problem, before a model is built from it (so quickly, and nothing is allocated for its tensors)."""
    from vaelab import models

    path = make(tmp_path)
    start = time.monotonic()
    with pytest.raises(models.WeightsError) as info:
        models.load("sd-vae", weights=path, device="cpu")
    message = str(info.value)
    assert expected in message, message
    assert "\n" not in message and len(message) < 300 and str(tmp_path) not in message, message
    assert time.monotonic() - start < 20


_CONFIG_PEAK_SCRIPT = """
import sys
from vaelab import models  # imported before the baseline
def peak_kb():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
before = peak_kb()
try:
    models.load("sd-vae", weights=sys.argv[1], device="cpu")
    print("loaded")
except models.WeightsError as e:
    print("error:", e)
print((peak_kb() - before) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="measures VmHWM in /proc")
def test_checkpoint_asking_for_gigabytes_allocates_nothing(tmp_path):
    """The 308-byte file asking for block_out_channels [1024] x 4: refused with the process's peak RSS almost
    unchanged (it used to allocate 2 GB of parameters before the state dict was compared)."""
    path = ckpt_with_config(json.dumps({"block_out_channels": [1024] * 4, "layers_per_block": 4}))(tmp_path)
    assert path.stat().st_size < 1000
    proc = subprocess.run([sys.executable, "-c", _CONFIG_PEAK_SCRIPT, str(path)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome, growth_mb = proc.stdout.strip().splitlines()[-2:]
    assert outcome.startswith("error:") and "parameters" in outcome, outcome
    assert int(growth_mb) < 100, f"peak RSS grew by {growth_mb} MB while refusing a {path.stat().st_size} B file"


def test_shipped_lab_configs_pass_the_validation():
    """Positive control: every shipped weight file's own config is accepted (and still loads)."""
    from vaelab import models
    from vaelab.models import metadata

    for name in models.all_names():
        config = models.training_record(name).get("config")
        if config is not None:
            cls = models.model_class(name)
            checked = metadata.checked_config(name, cls, config)
            assert isinstance(checked, cls.config_class)  # the typed config, what the model is built from
            assert checked.to_dict() == {**cls.config_class().to_dict(), **config}


# --------------------------------------------------------------------------- form values (one validation path)


@pytest.mark.parametrize(("call", "expected"), [
    (lambda L: L.check_form(float("nan"), 128), "Frames must be a finite number"),
    (lambda L: L.check_form(8, float("inf")), "Working resolution must be a finite number"),
    (lambda L: L.check_form(8.5, 128), "Frames must be a whole number"),
    (lambda L: L.check_form(None, 128), "Frames must be a whole number"),
    (lambda L: L.check_form(True, 128), "Frames must be a whole number"),
    (lambda L: L.check_form("x", 128), "Frames must be a whole number"),
    (lambda L: L.check_form(0, 128), "Frames must be between 1 and 64"),
    (lambda L: L.check_form(8, 10**30), "Working resolution must be between 32 and 512"),
    (lambda L: L.check_reconstruct(None, 8, 128, True, float("nan"), 16, 4), "Tile size must be a finite number"),
    (lambda L: L.check_reconstruct(None, 8, 128, False, 64, 16, float("nan")), "Chunk must be a finite number"),
    (lambda L: L.check_reconstruct("/tmp/gradio/abc/..", 8, 128), "no usable name"),
    (lambda L: L.check_reconstruct("  ", 8, 128), "no usable name"),
    (lambda L: L.number(float("nan"), "Seed", 0, 10), "Seed must be a finite number"),
])
def test_form_values_get_one_clear_line(call, expected):
    """NaN, infinities, booleans, text and out-of-range values: one line naming the setting (it used to be
    "cannot convert float NaN to integer"), from the one validation path every tab uses."""
    from vaelab import limits

    with pytest.raises(ValueError) as info:
        call(limits)
    assert expected in str(info.value), str(info.value)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_every_tab_uses_the_one_validation_path():
    """Reconstruct, Structure x Dynamics and Latent space refuse NaN with the same wording."""
    from vaelab import pipeline
    from vaelab.analysis import swap
    from vaelab.ui import tab_latents

    for call in (lambda: pipeline.load_input(None, "bikes", frames=float("nan"), size=32),
                 lambda: swap.load_pair(None, "bikes", None, "bikes", frames=float("nan"), size=64),
                 lambda: tab_latents._int(float("nan"), "Frames", 1, 32)):
        with pytest.raises(ValueError, match="Frames must be a finite number"):
            call()


def test_nan_settings_and_bad_frames_in_the_handlers():
    """The handlers themselves (what a hand-written API call reaches; gradio_client cannot even send NaN): NaN
    settings are refused before any decoding, and a NaN frame in Inside the model before its three
    reconstructions run (the model is never loaded: the state's clip is all it sees)."""
    import gradio as gr

    from vaelab import pipeline
    from vaelab.ui import tab_inside
    from vaelab.ui import tab_reconstruct as app

    def no_progress(*args, **kwargs):
        return None

    for frames, size, expected in ((float("nan"), SIZE, "Frames must be a finite number"),
                                   (2, float("nan"), "Working resolution must be a finite number"),
                                   (2, float("inf"), "Working resolution must be a finite number")):
        with pytest.raises(gr.Error, match=expected):
            app.reconstruct(None, "bikes", ["sd-vae"], frames, size, "cpu", progress=no_progress)
    with pytest.raises(gr.Error, match="Tile size must be a finite number"):
        app.reconstruct(None, "bikes", ["sd-vae"], 2, SIZE, "cpu", True, float("nan"), progress=no_progress)
    state = pipeline.Comparison(np.zeros((3, 32, 32, 3), np.uint8), 12.0, {}, [0.0] * 3, "")
    start = time.monotonic()
    with pytest.raises(gr.Error, match="Frame to show must be a finite number"):
        tab_inside.caption_effect(state, "a caption", "another", float("nan"), "cpu", progress=no_progress)
    with pytest.raises(gr.Error, match="Frame to show must be a finite number"):
        tab_inside.branch_ablation(state, float("nan"), "cpu", progress=no_progress)
    assert time.monotonic() - start < 5
    with pytest.raises(gr.Error, match="Frame must be a finite number"):
        app.show_frame(state, float("nan"))


def test_vidtwin_card_stats():
    """The VidTwin card's parameter/FLOP counts used to fail on every start ("Expected gradient function to be
    set": FlopCounterMode hooks module inputs that require grad, and the Q-Former's expanded queries are a view
    of a parameter without a grad_fn)."""
    from vaelab.analysis.complexity import encoder_decoder_stats

    stats = encoder_decoder_stats("vidtwin")
    assert stats["encoder_params"] > 0 and stats["decoder_params"] > 0
    assert stats["encoder_gflops"] > 0 and stats["decoder_gflops"] > 0


def test_memory_rule_refuses_before_work_and_allows_the_defaults():
    """The rule reads each family's measured cost: the page's default request fits for every model with a
    measurement, the issue's cv-vae request (bikes, 64 frames at 376x160: +4.45 GB before windows) is refused
    with one line, and a GPU request is left to the work cap."""
    from vaelab import limits

    costs = limits.memory_cost()
    assert {"sd-vae", "cv-vae", "videovae-plus"} <= set(costs), sorted(costs)
    for name, c in costs.items():
        assert c["window"] >= 0 and c["per_mpx"] >= 0 and c["per_clip_mpx"] > 0, (name, c)
        limits.check_memory([name], 8, 128, 228, "cpu")  # the page's defaults
    with pytest.raises(ValueError) as info:
        limits.check_memory(["sd-vae", "cv-vae"], 64, 160, 376, "cpu")
    message = str(info.value)
    assert message.startswith("This request needs too much memory for this server: cv-vae") and "\n" not in message
    limits.check_memory(["cv-vae"], 64, 160, 376, "cuda")
    tiled = limits.estimate_mib("cv-vae", 64, 160, 376, tile=64)
    assert tiled < limits.estimate_mib("cv-vae", 64, 160, 376)
