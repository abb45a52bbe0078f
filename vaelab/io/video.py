"""Reading user clips into RGB arrays and writing browser-playable MP4s, all with PyAV.

Conventions: frames are ``uint8`` arrays shaped ``(T, H, W, 3)`` in RGB order; sizes are
written ``(width, height)``. Everything that fails on user input raises
:class:`VideoDecodeError`, whose message can be shown in the UI as is.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import struct
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from os import PathLike
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc

__all__ = [
    "Clip",
    "VideoDecodeError",
    "VideoLimits",
    "probe",
    "read_clip",
    "write_mp4",
]


@dataclass(frozen=True)
class VideoLimits:
    """Bounds on what :func:`read_clip` accepts, so one upload cannot exhaust the server."""

    max_bytes: int = 200 * 1024**2  # file size
    max_frames: int = 300  # decoding stops after this many frames (truncated, with a note)
    max_seconds: float = 60.0  # of source time; decoding stops likewise
    max_side: int = 4096  # refuse a width or height above this, read from the stream header
    max_pixels: int = 4096 * 4096  # refuse width * height above this, before decoding frames
    min_side: int = 16  # refuse smaller videos
    timeout_s: float = 60.0  # wall-clock budget for decoding
    max_fps: float = 240.0  # a variable frame rate is resampled to at most this rate


class VideoDecodeError(ValueError):
    """A file could not be read as a clip. The message is short, human and safe to show:
    it never contains server paths or raw FFmpeg errors."""


class _UnreadableError(VideoDecodeError):
    """PyAV could not make sense of the file; an image reader may still manage."""


@dataclass
class Clip:
    """A decoded clip.

    ``frames`` is ``uint8`` ``(T, H, W, 3)`` RGB, after display rotation and resizing.
    ``fps`` is the constant frame rate of ``frames``.
    ``source_size`` is the ``(width, height)`` of the source as displayed, before resizing.
    ``source_frames`` is how many source frames were decoded for this clip (counted, not
    taken from the header; before any frame-rate resampling).
    ``truncated`` is True when the clip stops before the end of the source: a limit was
    hit, or the file is damaged.
    ``notes`` are human-readable remarks on what was done to the source.
    """

    frames: np.ndarray
    fps: float
    source_size: tuple[int, int]
    source_frames: int | None
    truncated: bool
    notes: list[str] = field(default_factory=list)


# Demuxers we let FFmpeg use. An allow-list, because FFmpeg probes by content: a text file
# otherwise opens as ANSI art ("tty"), and playlist formats (hls, concat) would make it open
# other files on the server.
_VIDEO_DEMUXERS = (
    "mov", "matroska", "avi", "flv", "mpegts", "mpeg", "mpegvideo", "ogg", "asf", "mxf",
    "nut", "dv", "ivf", "obu", "h264", "hevc", "m4v", "mjpeg", "yuv4mpegpipe", "gif",
    "apng", "rm",
)
_IMAGE_DEMUXERS = (
    "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "gif_pipe",
    "jpegxl_pipe", "qoi_pipe", "ppm_pipe", "pgm_pipe", "pbm_pipe", "pam_pipe",
)
# Audio demuxers are allowed only so that audio files get "no video stream" as their error.
_AUDIO_DEMUXERS = ("mp3", "wav", "aac", "flac", "w64")
_DEMUXER_WHITELIST = ",".join(_VIDEO_DEMUXERS + _IMAGE_DEMUXERS + _AUDIO_DEMUXERS)
_STILL_IMAGE_DEMUXERS = frozenset(_IMAGE_DEMUXERS)
# Codecs whose every packet is a whole image file with its own header (a MOV, AVI or NUT may carry them
# behind a stream header that claims any size): each packet's real size is read before it is decoded.
_STILL_IMAGE_CODECS = frozenset({"png", "apng", "mjpeg", "jpegls", "bmp", "tiff", "webp", "gif", "qoi", "ppm",
                                 "pgm", "pam", "pbm", "jpeg2000", "jpegxl", "sgi", "targa", "dpx", "exr", "pcx"})

# Decoders raise a zoo of exception types on malformed input (PIL: SyntaxError, struct.error).
_DECODER_ERRORS = (
    av.error.FFmpegError, OSError, EOFError, SyntaxError, ValueError, IndexError,
    struct.error, UnicodeDecodeError,
)

# Pillow formats used when FFmpeg cannot read an image (e.g. animated WebP).
_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")

_NOT_A_VIDEO = "Could not decode video: the file is not a video or image, or is damaged."
_DAMAGED = "Could not decode video: the file is damaged (no frame could be decoded)."
_NO_VIDEO = "No video stream found in the file."
_NO_DECODER = "Could not decode video: its codec is not supported, or the file is damaged."


# --------------------------------------------------------------------------- reading


@dataclass
class _Source:
    """An opened input: decoded frames (lazily) plus what its header says."""

    frames: Iterator[av.VideoFrame]
    width: int  # from the header, 0 when unknown
    height: int
    sample_aspect: Fraction | None
    fps: float | None  # the stream's average rate, when it has one
    header_frames: int | None
    rotate_tag: int  # clockwise degrees from a legacy "rotate" metadata tag
    is_still_image: bool
    notes: list[str]
    errors: int = 0  # packets or frames that failed to decode
    limits: VideoLimits | None = None  # checked against each still-image packet's own header


@dataclass(frozen=True)
class _Geometry:
    """How each decoded frame becomes an output frame."""

    display_size: tuple[int, int]  # (w, h) of the source as shown: rotated, square pixels
    decode_size: tuple[int, int]  # (w, h) handed to frame.reformat, before rotation
    quarter_turns: int  # counterclockwise, as np.rot90 counts them
    downscale: bool


def read_clip(
    path: str | PathLike,
    *,
    max_frames: int | None = None,
    size: int | None = None,
    limits: VideoLimits = VideoLimits(),
    start_frame: int = 0,
) -> Clip:
    """Decode a video or image file into a :class:`Clip` with ``uint8`` ``(T, H, W, 3)`` RGB frames.

    ``size`` is the target short side; the aspect ratio is kept and both output sides are
    rounded to even numbers. Frames are scaled while decoding, so a large source is never
    held at full resolution. ``max_frames`` caps the number of frames (never above
    ``limits.max_frames``); ``start_frame`` source frames are skipped first. Images are
    1-frame clips, animated GIF/PNG/WebP are clips. Display rotation is applied and a
    variable frame rate is resampled to a constant one.

    Raises :class:`VideoDecodeError` for anything wrong with the file.
    """
    if start_frame < 0:
        raise ValueError(f"start_frame must be >= 0, got {start_frame}")
    path, frame_cap = _checked(path, max_frames, size, limits)
    cap_reason = "limit" if max_frames is None or max_frames >= limits.max_frames else "requested"
    deadline = time.monotonic() + limits.timeout_s

    with contextlib.ExitStack() as stack:
        try:
            source = _open_with_pyav(path, stack, limits)
        except _UnreadableError:
            source = _open_with_pil(path, stack)
            if source is None:
                raise
        try:
            return _decode(source, frame_cap, cap_reason, size, limits, start_frame, deadline)
        except _UnreadableError:
            # FFmpeg opened the file but decoded nothing; Pillow knows a few formats better.
            fallback = _open_with_pil(path, stack) if source.is_still_image else None
            if fallback is None:
                raise
            return _decode(fallback, frame_cap, cap_reason, size, limits, start_frame, deadline)


def iter_chunks(
    path: str | PathLike,
    chunk: int,
    *,
    max_frames: int | None = None,
    size: int | None = None,
    limits: VideoLimits = VideoLimits(),
) -> Iterator[np.ndarray]:
    """Decode a video lazily: ``uint8`` ``(n <= chunk, H, W, 3)`` RGB arrays, ``chunk`` frames at a time.

    For clips too long to hold in memory (``vaelab.engine.stream_file``): only one chunk of frames
    exists at a time. Same checks, rotation and resizing as :func:`read_clip`, but frames are taken
    in decode order without variable-frame-rate resampling, and the file and frame limits apply
    (``limits.max_frames`` and ``max_frames``) while the time budget does not (a long clip is the point).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    path, cap = _checked(path, max_frames, size, limits)
    with contextlib.ExitStack() as stack:
        source = _open_with_pyav(path, stack, limits)
        _check_size(source.width, source.height, limits)
        geometry: _Geometry | None = None
        buf: list[np.ndarray] = []
        n = 0
        for frame in source.frames:
            if n == cap:
                break
            if geometry is None:
                _check_size(frame.width, frame.height, limits)
                geometry = _plan_geometry(frame, source, size, [])
            buf.append(_to_rgb(frame, geometry)[0])
            n += 1
            if len(buf) == chunk:
                yield np.stack(buf)
                buf = []
        if buf:
            yield np.stack(buf)
        if n == 0:
            raise VideoDecodeError(_DAMAGED)


def probe(path: str | PathLike) -> dict:
    """Describe a video without decoding more than its first frame.

    Returns ``width``/``height`` as displayed (after rotation), ``fps`` (float or None),
    ``frames_header`` (the header's frame count, or None: not to be trusted),
    ``duration_s`` (or None), ``codec``, ``pix_fmt``, ``format`` (the demuxer),
    ``n_video_streams`` and ``rotation`` (clockwise degrees applied for display).
    Raises :class:`VideoDecodeError` when there is no readable video stream.
    """
    path = Path(path)
    _check_file(path, max_bytes=None)
    _check_image_header(path, VideoLimits())
    with contextlib.ExitStack() as stack:
        container = _open_container(path, stack)
        streams = _video_streams(container)
        stream = streams[0]
        ctx = stream.codec_context
        if ctx is None:
            raise VideoDecodeError(_NO_DECODER)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        quarter_turns = 0
        if 0 < ctx.width * ctx.height <= VideoLimits().max_pixels:
            source = _Source(iter(()), ctx.width, ctx.height, None, None, None, 0, False, [], limits=VideoLimits())
            try:
                first = next(_decode_packets(container, stream, source), None)
            except VideoDecodeError:
                raise  # a still-image packet larger than its stream header says
            except _DECODER_ERRORS:
                first = None
            if first is not None:
                quarter_turns = _quarter_turns(first, _rotate_tag(stream))
        width, height = (ctx.height, ctx.width) if quarter_turns % 2 else (ctx.width, ctx.height)
        return {
            "width": width,
            "height": height,
            "fps": float(stream.average_rate) if stream.average_rate else None,
            "frames_header": stream.frames or None,
            "duration_s": duration,
            "codec": ctx.name,
            "pix_fmt": ctx.pix_fmt,
            "format": container.format.name,
            "n_video_streams": len(streams),
            "rotation": (-90 * quarter_turns) % 360,
        }


def _checked(path: str | PathLike, max_frames: int | None, size: int | None, limits: VideoLimits) -> tuple[Path, int]:
    """The checks both readers make before opening a file: arguments, file size, image header.
    Returns the path and the frame cap (``max_frames`` never above ``limits.max_frames``)."""
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if size is not None and size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    path = Path(path)
    _check_file(path, limits.max_bytes)
    _check_image_header(path, limits)
    return path, limits.max_frames if max_frames is None else min(max_frames, limits.max_frames)


def _check_file(path: Path, max_bytes: int | None) -> None:
    try:
        n_bytes = path.stat().st_size
    except OSError:
        raise VideoDecodeError("Could not decode video: the file was not found.") from None
    if not path.is_file():
        raise VideoDecodeError("Could not decode video: not a file.")
    if n_bytes == 0:
        raise VideoDecodeError("Could not decode video: the file is empty.")
    if max_bytes is not None and n_bytes > max_bytes:
        raise VideoDecodeError(
            f"The file is too large ({_megabytes(n_bytes)}); the limit is {_megabytes(max_bytes)}."
        )


def _check_image_header(path: Path, limits: VideoLimits) -> None:
    """Refuse an oversized still image from its header alone.

    FFmpeg's image demuxers learn an image's size by decoding it while the file is opened,
    so a 2 MB PNG claiming 16000x16000 would cost ~2 GB and seconds before ``_check_size``
    sees it. Pillow reads only the header here; anything it does not know is left to FFmpeg.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=_PIL_FORMATS) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise VideoDecodeError(
            f"The image is too large; the limit is {limits.max_side} pixels per side "
            f"and {limits.max_pixels / 1e6:.1f} megapixels."
        ) from None
    except (*_DECODER_ERRORS, Image.UnidentifiedImageError):
        return  # not an image Pillow knows: FFmpeg decides
    _check_size(width, height, limits)


def _check_packet_image(packet, limits: VideoLimits) -> None:
    """Refuse a still-image packet whose own header is over the size limits (Pillow reads only the header)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(packet)), formats=_PIL_FORMATS) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise VideoDecodeError(
            f"The video holds an image too large to decode; the limit is {limits.max_side} pixels per side "
            f"and {limits.max_pixels / 1e6:.1f} megapixels."
        ) from None
    except (*_DECODER_ERRORS, Image.UnidentifiedImageError):
        return  # not a header Pillow knows: the decoded frame is checked instead
    _check_size(width, height, limits)


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1024**2:.1f} MB"


def _open_container(path: Path, stack: contextlib.ExitStack) -> av.container.InputContainer:
    # A file object rather than a path: FFmpeg then probes by content only, so names with
    # '%' (image-sequence patterns) or ':' (protocols) mean nothing to it.
    handle = stack.enter_context(path.open("rb"))
    try:
        # max_pixels for the decoders FFmpeg opens while probing (find_stream_info): a PNG/MJPEG stream in a
        # MOV/AVI/NUT whose header says 64x64 would otherwise be decoded at its real 16000x16000 right here.
        # (PyAV copies these options into every stream's probe decoder when the container lists its streams.)
        container = av.open(handle, "r", options={"format_whitelist": _DEMUXER_WHITELIST,
                                                  "max_pixels": str(VideoLimits.max_pixels)})
    except _DECODER_ERRORS:
        raise _UnreadableError(_NOT_A_VIDEO) from None
    return stack.enter_context(container)


def _video_streams(container: av.container.InputContainer) -> list:
    """The container's video streams; VideoDecodeError when there are none."""
    if not container.streams.video and not container.streams.audio:
        raise _UnreadableError(_NOT_A_VIDEO)  # e.g. an MP4 cut inside its header
    # Cover art in audio files is a "video stream" holding one picture; it is not a video.
    streams = [
        s for s in container.streams.video
        if not s.disposition & av.stream.Disposition.attached_pic
    ]
    if not streams:
        raise VideoDecodeError(_NO_VIDEO)
    return streams


def _open_with_pyav(path: Path, stack: contextlib.ExitStack, limits: VideoLimits | None = None) -> _Source:
    container = _open_container(path, stack)
    streams = _video_streams(container)
    stream = streams[0]
    if stream.codec_context is None:
        raise VideoDecodeError(_NO_DECODER)
    stream.thread_type = "AUTO"
    notes = []
    if len(streams) > 1:
        notes.append(f"the file has {len(streams)} video streams: using the first")
    sar = stream.sample_aspect_ratio
    source = _Source(
        frames=iter(()),
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        sample_aspect=sar if sar and sar > 0 else None,
        fps=float(stream.average_rate) if stream.average_rate else None,
        header_frames=stream.frames or None,
        rotate_tag=_rotate_tag(stream),
        is_still_image=container.format.name in _STILL_IMAGE_DEMUXERS,
        notes=notes,
        limits=limits,
    )
    source.frames = _decode_packets(container, stream, source)
    return source


def _decode_packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, source: _Source
) -> Iterator[av.VideoFrame]:
    """Decoded frames of ``stream``, in presentation order.

    Unlike ``container.decode``, a bad packet does not end decoding (frames the decoder
    still holds would be lost); it is skipped and counted in ``source.errors``.
    """
    packets = container.demux(stream)
    still_codec = stream.codec_context.name in _STILL_IMAGE_CODECS
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except _DECODER_ERRORS:
            source.errors += 1
            break
        if still_codec and source.limits is not None:
            _check_packet_image(packet, source.limits)  # before the decoder allocates the real size
        try:
            frames = stream.decode(packet)
        except _DECODER_ERRORS:
            source.errors += 1
            continue
        yield from frames
    try:  # the demuxer gave up: drain the decoder
        yield from stream.decode(None)
    except _DECODER_ERRORS:
        source.errors += 1


def _open_with_pil(path: Path, stack: contextlib.ExitStack) -> _Source | None:
    """Open an image FFmpeg cannot decode (animated WebP, odd TIFFs) with Pillow, or None."""
    from PIL import Image, ImageOps

    try:
        image = stack.enter_context(Image.open(path, formats=_PIL_FORMATS))
    except (*_DECODER_ERRORS, Image.DecompressionBombError):
        return None
    n_frames = getattr(image, "n_frames", 1)

    def frames() -> Iterator[av.VideoFrame]:
        start_ms = 0
        for index in range(n_frames):
            image.seek(index)
            # EXIF orientation is baked into the pixels here, unlike FFmpeg's display matrix.
            still = ImageOps.exif_transpose(image)
            has_alpha = "A" in still.getbands() or "transparency" in still.info
            rgb = np.asarray(still.convert("RGBA" if has_alpha else "RGB"))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgba" if has_alpha else "rgb24")
            frame.pts = start_ms
            frame.time_base = Fraction(1, 1000)
            start_ms += int(image.info.get("duration") or 100)
            yield frame

    width, height = image.size
    return _Source(
        frames=frames(),
        width=width,
        height=height,
        sample_aspect=None,
        fps=None,
        header_frames=n_frames,
        rotate_tag=0,
        is_still_image=n_frames == 1,
        notes=[],
    )


def _rotate_tag(stream) -> int:
    """Clockwise degrees from the legacy ``rotate`` metadata tag (old FFmpeg muxers wrote it)."""
    try:
        return int(float(stream.metadata.get("rotate", 0)))
    except ValueError:
        return 0


def _quarter_turns(frame: av.VideoFrame, rotate_tag: int) -> int:
    """Counterclockwise quarter turns that show ``frame`` upright (np.rot90's ``k``).

    ``frame.rotation`` is the display matrix's counterclockwise angle (a phone's portrait
    video reads -90: turn it 90 degrees clockwise). Mirroring in the matrix is ignored.
    """
    ccw = getattr(frame, "rotation", 0) or -rotate_tag
    return round(ccw / 90) % 4


def _check_size(width: int, height: int, limits: VideoLimits) -> None:
    if width <= 0 or height <= 0:
        return  # not in the header; the first decoded frame is checked instead
    if max(width, height) > limits.max_side or width * height > limits.max_pixels:
        raise VideoDecodeError(
            f"The video is too large ({width}x{height}); the limit is {limits.max_side} "
            f"pixels per side and {limits.max_pixels / 1e6:.1f} megapixels."
        )
    if min(width, height) < limits.min_side:
        raise VideoDecodeError(
            f"The video is too small ({width}x{height}); "
            f"each side must be at least {limits.min_side} pixels."
        )


def _even(x: float) -> int:
    """Nearest even integer >= 2, halves rounded up."""
    return max(2, 2 * math.floor(x / 2 + 0.5))


def _plan_geometry(
    frame: av.VideoFrame, source: _Source, size: int | None, notes: list[str]
) -> _Geometry:
    """Decide output sizes from the first frame; appends notes on what will be done."""
    width, height = frame.width, frame.height
    if source.sample_aspect is not None and source.sample_aspect != 1:
        sar = source.sample_aspect
        width = max(1, round(width * sar))
        notes.append(
            f"non-square pixels (aspect {sar.numerator}:{sar.denominator}): "
            f"stretched to {width}x{height}"
        )
    turns = _quarter_turns(frame, source.rotate_tag)
    if turns:
        notes.append(f"rotated {(-90 * turns) % 360}° clockwise (display rotation in the file)")
    display = (height, width) if turns % 2 else (width, height)
    if size is None:
        out = display
    else:
        scale = size / min(display)
        out = (_even(display[0] * scale), _even(display[1] * scale))
        if out != display:
            notes.append(f"resized {display[0]}x{display[1]} -> {out[0]}x{out[1]}")
    return _Geometry(
        display_size=display,
        decode_size=(out[1], out[0]) if turns % 2 else out,
        quarter_turns=turns,
        downscale=out[0] * out[1] < display[0] * display[1],
    )


def _to_rgb(frame: av.VideoFrame, geometry: _Geometry) -> tuple[np.ndarray, bool]:
    """Scale and convert one frame: ``uint8`` ``(H, W, 3)`` RGB, and whether it had
    transparent pixels (composited on white)."""
    width, height = geometry.decode_size
    # Palettes can hold alpha too (PNG tRNS), but pal8 reports no alpha component.
    has_alpha = frame.format.name == "pal8" or any(c.is_alpha for c in frame.format.components)
    scaled = frame.reformat(
        width=width,
        height=height,
        format="rgba" if has_alpha else "rgb24",
        interpolation="AREA" if geometry.downscale else "BICUBIC",
    )
    pixels = scaled.to_ndarray()
    transparent = False
    if has_alpha:
        alpha = pixels[..., 3:].astype(np.uint16)
        transparent = bool((alpha < 255).any())
        rgb = pixels[..., :3].astype(np.uint16)
        pixels = ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    if geometry.quarter_turns:
        pixels = np.rot90(pixels, k=geometry.quarter_turns)
    return np.ascontiguousarray(pixels), transparent


def _format_notes(frame: av.VideoFrame) -> list[str]:
    fmt = frame.format
    notes = []
    bits = max(c.bits for c in fmt.components)
    if bits > 8:
        notes.append(f"{bits}-bit: converted to 8-bit")
    if fmt.name.startswith(("gray", "ya")):
        notes.append("grayscale: copied to R, G and B")
    return notes


def _decode(
    source: _Source,
    frame_cap: int,
    cap_reason: str,
    size: int | None,
    limits: VideoLimits,
    start_frame: int,
    deadline: float,
) -> Clip:
    _check_size(source.width, source.height, limits)
    notes = list(source.notes)
    frames: list[np.ndarray] = []
    times: list[float | None] = []
    geometry: _Geometry | None = None
    n_seen = 0  # source frames decoded, skipped ones included
    first_time: float | None = None
    stop_note: str | None = None
    damaged = False
    any_transparent = False

    while True:
        if time.monotonic() > deadline:
            stop_note = f"stopped after {limits.timeout_s:g} s of decoding (time limit)"
            break
        try:
            frame = next(source.frames)
        except StopIteration:
            break
        except VideoDecodeError:
            raise  # a limit, from a packet's own header: not damage
        except _DECODER_ERRORS:
            damaged = True
            break
        n_seen += 1
        if n_seen <= start_frame:
            continue
        if geometry is None:
            _check_size(frame.width, frame.height, limits)  # the header may have lied
            geometry = _plan_geometry(frame, source, size, notes)
            out_w, out_h = geometry.decode_size
            if max(out_w, out_h) > limits.max_side or out_w * out_h > limits.max_pixels:
                raise VideoDecodeError(
                    f"The requested size is too large ({out_w}x{out_h} after resizing); the limit is "
                    f"{limits.max_side} pixels per side and {limits.max_pixels / 1e6:.1f} megapixels."
                )
            notes.extend(_format_notes(frame))
        if len(frames) == frame_cap:
            stop_note = f"stopped at {frame_cap} frames ({cap_reason})"
            break
        t = frame.time
        if t is not None:
            first_time = t if first_time is None else first_time
            if t - first_time >= limits.max_seconds:
                stop_note = f"stopped at {limits.max_seconds:g} s of video (limit)"
                break
        pixels, transparent = _to_rgb(frame, geometry)
        any_transparent |= transparent
        frames.append(pixels)
        times.append(t)

    if not frames:
        if stop_note is not None:
            raise VideoDecodeError(
                f"Could not decode video: no frame within the limits ({stop_note})."
            )
        if n_seen and start_frame:
            raise VideoDecodeError(
                f"Could not decode video: it has only {n_seen} frames, "
                f"so it cannot start at frame {start_frame}."
            )
        raise _UnreadableError(_DAMAGED)

    if start_frame:
        notes.append(f"skipped the first {start_frame} frames")
    if any_transparent:
        notes.append("RGBA: alpha composited on white")
    if source.is_still_image and len(frames) == 1:
        notes.append("image: treated as a 1-frame clip")
    if stop_note is not None:
        notes.append(stop_note)
    elif damaged or source.errors or (source.header_frames and n_seen < source.header_frames):
        stop_note = f"the file seems damaged or cut short: decoding stopped after {n_seen} frames"
        notes.append(stop_note)

    fps, picks = _constant_rate(times, source.fps, limits.max_fps, frame_cap)
    video = np.stack(frames)
    if picks is not None:
        notes.append(f"variable frame rate: resampled to {fps:g} fps by timestamps")
        if len(picks) > frame_cap:
            picks = picks[:frame_cap]
            stop_note = stop_note or f"stopped at {frame_cap} frames ({cap_reason})"
            notes.append(f"stopped at {frame_cap} frames after resampling ({cap_reason})")
        video = video[picks]
    return Clip(
        frames=video,
        fps=fps,
        source_size=geometry.display_size,
        source_frames=len(frames),
        truncated=stop_note is not None,
        notes=notes,
    )


def _constant_rate(
    times: list[float | None], stream_fps: float | None, max_fps: float = 240.0,
    max_ticks: int | None = None,
) -> tuple[float, np.ndarray | None]:
    """Return the clip's fps and, for a variable frame rate, the indices of the frames to
    show at each tick of a constant-rate clock (None when the rate is already constant).

    The new rate is the median frame interval, at most ``max_fps`` (a file stamped in
    microsecond steps would otherwise ask for a million ticks a second); each tick shows the
    latest frame whose timestamp is not after it, as a player would. Only the first
    ``max_ticks`` + 1 ticks are built (the caller keeps ``max_ticks`` and needs to know whether
    there were more), so memory never follows the file's claimed duration.
    """
    fallback = stream_fps or 25.0
    if len(times) < 3 or any(t is None for t in times):
        return fallback, None
    t = np.asarray(times, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t = t[order]
    steps = np.diff(t)
    positive = steps[steps > 0]
    if positive.size == 0:
        return fallback, None
    median = float(np.median(positive))
    if np.all(np.abs(steps - median) <= 0.1 * median):
        return stream_fps or 1.0 / median, None
    fps = min(float(Fraction(1.0 / median).limit_denominator(1001)), float(max_fps))
    n_ticks = math.floor((t[-1] - t[0]) * fps + 1e-6) + 1
    if max_ticks is not None:
        n_ticks = min(n_ticks, max_ticks + 1)
    ticks = t[0] + np.arange(n_ticks) / fps
    # A little slack so a frame stamped a hair after its tick (rounded pts) still counts.
    latest = np.searchsorted(t, ticks + 1e-3 / fps, side="right") - 1
    return fps, order[latest]


# --------------------------------------------------------------------------- writing


_AVCOL_SPC_BT709 = 1  # FFmpeg's AVColorSpace value; PyAV has no enum for it


@functools.cache
def _h264_encoder() -> str:
    """The name of an H.264 encoder this PyAV build can open."""
    for name in ("libx264", "libopenh264", "h264"):
        if name not in av.codecs_available:
            continue
        try:
            av.Codec(name, "w")
        except av.error.FFmpegError:
            continue
        except ValueError:  # "unknown codec" for decoders-only names
            continue
        return name
    raise RuntimeError("This PyAV build has no H.264 encoder; cannot write browser-playable MP4.")


def write_mp4(frames: np.ndarray, path: str | PathLike, fps: float = 12.0, crf: int = 20) -> Path:
    """Write ``uint8`` RGB frames, ``(T, H, W, 3)`` or one ``(H, W, 3)`` image, as an MP4 that
    browsers play: H.264, yuv420p, BT.709 tagged, moov atom first (faststart).

    Odd widths/heights are padded to even by repeating the last row/column. Returns the path.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    return write_mp4_chunks([frames], path, fps=fps, crf=crf)


def write_mp4_chunks(chunks: Iterable[np.ndarray], path: str | PathLike, fps: float = 12.0,
                     crf: int = 20) -> Path:
    """:func:`write_mp4` for a clip that arrives in pieces: ``uint8`` ``(n, H, W, 3)`` arrays of one size.

    Only one piece is in memory at a time, so a streamed reconstruction of any length can be written."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    encoder = _h264_encoder()
    options = {"crf": str(crf), "preset": "fast"} if encoder == "libx264" else {}
    rate = Fraction(fps).limit_denominator(1001)
    faststart = {"movflags": "+faststart"}  # moov first: playback starts before the download ends
    index, stream, size = 0, None, None
    try:
        with av.open(str(path.resolve()), "w", format="mp4", container_options=faststart) as out:
            for frames in chunks:
                frames = np.asarray(frames)
                if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
                    raise ValueError(
                        f"write_mp4 expects uint8 frames shaped (T, H, W, 3); got {frames.dtype} {frames.shape}"
                    )
                if size is None:
                    size = frames.shape[1:3]
                    stream = out.add_stream(encoder, rate=rate, options=options)
                    stream.width, stream.height = size[1] + size[1] % 2, size[0] + size[0] % 2
                    stream.pix_fmt = "yuv420p"
                    # Tagged BT.709 and converted with it, so browsers and our reader agree on colours.
                    ctx = stream.codec_context
                    ctx.colorspace = _AVCOL_SPC_BT709
                    ctx.color_primaries = ColorPrimaries.BT709
                    ctx.color_trc = ColorTrc.BT709
                    ctx.color_range = ColorRange.MPEG
                elif frames.shape[1:3] != size:
                    raise ValueError(f"write_mp4: frame size changed from {size} to {frames.shape[1:3]}")
                pad_h, pad_w = size[0] % 2, size[1] % 2
                if pad_h or pad_w:
                    frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
                for image in frames:
                    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
                        format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG"
                    )
                    frame.pts = index
                    index += 1
                    out.mux(stream.encode(frame))
            if stream is None:
                raise ValueError("write_mp4 expects uint8 frames shaped (T, H, W, 3); got no frames")
            out.mux(stream.encode(None))
    except BaseException:
        path.unlink(missing_ok=True)  # never leave a half-written file behind
        raise
    return path


# --------------------------------------------------------------------------- display


