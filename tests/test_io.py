"""vaelab.io: decoding user clips, writing playable MP4s, tiling.

All media is generated in tmp_path with PyAV and Pillow; nothing binary is committed.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vaelab.io import (
    Clip,
    VideoDecodeError,
    VideoLimits,
    example_clips,
    example_images,
    example_path,
    probe,
    read_clip,
    write_mp4,
)

# The display matrix of a phone video shot in portrait (QuickTime tkhd, 16.16 fixed point):
# players show it turned 90 degrees clockwise (its legacy tag is rotate=90).
PORTRAIT_MATRIX = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30]


def pattern(t: int, h: int, w: int) -> np.ndarray:
    """Smooth test frames, uint8 (t, h, w, 3), each frame a bit different."""
    yy, xx = np.mgrid[:h, :w]
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, ..., 0] = (xx * 200 // max(w - 1, 1) + 5 * i) % 256
        frames[i, ..., 1] = yy * 200 // max(h - 1, 1)
        frames[i, ..., 2] = (60 + 10 * i) % 256
    return frames


def flat_frames(levels: list[int], h: int = 32, w: int = 48) -> np.ndarray:
    """One flat grey frame per level, uint8 (len(levels), h, w, 3): frames identifiable by mean."""
    return np.stack([np.full((h, w, 3), level, np.uint8) for level in levels])


def encode(
    path: Path,
    frames: np.ndarray,
    *,
    fps: int = 10,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    display_matrix: list[int] | None = None,
    streams: int = 1,
    faststart: bool = True,
) -> Path:
    """Encode uint8 (T, H, W, 3) frames into ``path``, with knobs write_mp4 does not have."""
    options = {"movflags": "+faststart"} if faststart and path.suffix == ".mp4" else {}
    with av.open(str(path), "w", container_options=options) as out:
        video_streams = []
        for _ in range(streams):
            stream = out.add_stream("libx264", rate=fps)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            if time_base is not None:
                stream.time_base = time_base
                stream.codec_context.time_base = time_base
            if display_matrix is not None:
                stream.set_display_matrix(display_matrix)
            video_streams.append(stream)
        for index, image in enumerate(frames):
            for k, stream in enumerate(video_streams):
                content = 255 - image if k else image  # later streams are inverted
                frame = av.VideoFrame.from_ndarray(content, format="rgb24")
                frame.pts = index if pts is None else pts[index]
                if time_base is not None:
                    frame.time_base = time_base
                out.mux(stream.encode(frame))
        for stream in video_streams:
            out.mux(stream.encode(None))
    return path


def frame_levels(clip: Clip) -> list[int]:
    return [int(round(frame.mean())) for frame in clip.frames]


# --------------------------------------------------------------------------- writing + reading


def test_round_trip(tmp_path):
    frames = pattern(8, 48, 64)
    path = write_mp4(frames, tmp_path / "clip.mp4", fps=10)
    clip = read_clip(path)
    assert clip.frames.shape == (8, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == pytest.approx(10)
    assert clip.source_size == (64, 48)
    assert clip.source_frames == 8
    assert not clip.truncated and clip.notes == []
    assert np.abs(clip.frames.astype(int) - frames).mean() < 3


def test_odd_size_is_padded_to_even_and_browser_playable(tmp_path):
    frames = pattern(3, 131, 257)
    path = write_mp4(frames, tmp_path / "odd.mp4")
    info = probe(path)
    assert (info["width"], info["height"]) == (258, 132)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["n_video_streams"] == 1 and info["rotation"] == 0
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "faststart: moov must come first"

    clip = read_clip(path)
    assert clip.frames.shape == (3, 132, 258, 3)
    # Padding repeats the edge instead of adding a black border.
    assert np.abs(clip.frames[:, -1].astype(int) - clip.frames[:, -2]).mean() < 4
    assert np.abs(clip.frames[:, :, -1].astype(int) - clip.frames[:, :, -2]).mean() < 4


def test_write_single_image_with_fractional_fps(tmp_path):
    path = write_mp4(pattern(1, 32, 32)[0], tmp_path / "still.mp4", fps=29.97)
    info = probe(path)
    assert info["fps"] == pytest.approx(29.97, abs=0.01)
    assert read_clip(path).frames.shape == (1, 32, 32, 3)


def test_write_rejects_float_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(np.zeros((2, 16, 16, 3), np.float32), tmp_path / "bad.mp4")


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((48, 80), 32, (54, 32)),
        ((80, 48), 32, (32, 54)),
        ((48, 80), 25, (42, 26)),  # odd size: sides rounded to even
        ((48, 80), 96, (160, 96)),  # upscaling works too
    ],
)
def test_resize_keeps_aspect_with_even_sides(tmp_path, shape, size, expected):
    h, w = shape
    path = write_mp4(pattern(2, h, w), tmp_path / "clip.mp4")
    clip = read_clip(path, size=size)
    out_w, out_h = expected
    assert clip.frames.shape == (2, out_h, out_w, 3)
    assert clip.source_size == (w, h)
    assert f"resized {w}x{h} -> {out_w}x{out_h}" in clip.notes


# --------------------------------------------------------------------------- limits


def test_max_frames_truncates_with_note(tmp_path):
    path = write_mp4(flat_frames(list(range(20, 240, 20))), tmp_path / "clip.mp4")  # 11 frames
    requested = read_clip(path, max_frames=4)
    assert len(requested.frames) == 4 and requested.truncated
    assert "stopped at 4 frames (requested)" in requested.notes

    limited = read_clip(path, max_frames=50, limits=VideoLimits(max_frames=3))
    assert len(limited.frames) == 3 and limited.truncated
    assert "stopped at 3 frames (limit)" in limited.notes

    exact = read_clip(path, max_frames=11)
    assert len(exact.frames) == 11 and not exact.truncated


def test_start_frame_skips(tmp_path):
    levels = [30, 60, 90, 120, 150, 180]
    path = write_mp4(flat_frames(levels), tmp_path / "clip.mp4")
    clip = read_clip(path, start_frame=2, max_frames=3)
    assert frame_levels(clip) == pytest.approx(levels[2:5], abs=3)
    assert clip.source_frames == 3
    with pytest.raises(VideoDecodeError, match="only 6 frames"):
        read_clip(path, start_frame=6)


def test_max_seconds_stops_early(tmp_path):
    path = write_mp4(flat_frames([100] * 20), tmp_path / "clip.mp4", fps=10)
    clip = read_clip(path, limits=VideoLimits(max_seconds=1.0))
    assert len(clip.frames) == 10 and clip.truncated
    assert "stopped at 1 s of video (limit)" in clip.notes


def test_file_size_limit_checked_before_opening(tmp_path):
    path = tmp_path / "big.mp4"
    path.write_bytes(b"\0" * 2048)  # not a video: only the size check can produce this message
    with pytest.raises(VideoDecodeError, match="too large"):
        read_clip(path, limits=VideoLimits(max_bytes=1024))


def test_huge_header_refused_before_decoding(tmp_path):
    # A 100-byte Y4M file whose header claims 8000x8000.
    path = tmp_path / "huge.y4m"
    path.write_bytes(b"YUV4MPEG2 W8000 H8000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\x80" * 50)
    with pytest.raises(VideoDecodeError, match=r"too large \(8000x8000\)"):
        read_clip(path)


def test_pixel_and_min_side_limits(tmp_path):
    path = write_mp4(pattern(1, 32, 48), tmp_path / "clip.mp4")
    with pytest.raises(VideoDecodeError, match="too large"):
        read_clip(path, limits=VideoLimits(max_pixels=1000))
    with pytest.raises(VideoDecodeError, match="too small"):
        read_clip(path, limits=VideoLimits(min_side=40))


def test_timeout_without_frames_is_an_error(tmp_path):
    path = write_mp4(pattern(2, 32, 32), tmp_path / "clip.mp4")
    with pytest.raises(VideoDecodeError, match="time limit"):
        read_clip(path, limits=VideoLimits(timeout_s=-1.0))


# --------------------------------------------------------------------------- rotation, frame rate


def test_portrait_phone_video_is_turned_clockwise(tmp_path):
    frames = np.zeros((2, 32, 64, 3), np.uint8)
    frames[:, :, :32] = 255  # stored left half white
    path = encode(tmp_path / "portrait.mp4", frames, display_matrix=PORTRAIT_MATRIX)

    info = probe(path)
    assert (info["width"], info["height"], info["rotation"]) == (32, 64, 90)

    clip = read_clip(path)
    assert clip.frames.shape == (2, 64, 32, 3)
    assert clip.source_size == (32, 64)
    # Turned clockwise, the stored left half ends up on top.
    assert clip.frames[:, :28].mean() > 230 and clip.frames[:, 36:].mean() < 25
    assert "rotated 90° clockwise (display rotation in the file)" in clip.notes

    small = read_clip(path, size=16)
    assert small.frames.shape == (2, 32, 16, 3)
    assert small.frames[:, :14].mean() > 230 and small.frames[:, 18:].mean() < 25


def test_upside_down_video(tmp_path):
    frames = np.zeros((1, 32, 48, 3), np.uint8)
    frames[:, :16] = 255  # stored top half white
    path = tmp_path / "flipped.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.set_display_rotation(180)
        out.mux(stream.encode(av.VideoFrame.from_ndarray(frames[0], format="rgb24")))
        out.mux(stream.encode(None))
    clip = read_clip(path)
    assert clip.frames.shape == (1, 32, 48, 3)
    assert clip.frames[:, 18:].mean() > 230 and clip.frames[:, :14].mean() < 25


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_jpeg_exif_orientation_matches_pillow(tmp_path, orientation):
    # FFmpeg turns EXIF orientation into a display matrix; Pillow's exif_transpose is an
    # independent reference for how browsers show the photo.
    from PIL import ImageOps

    image = np.zeros((24, 40, 3), np.uint8)
    image[:8, :16] = 255  # a white block in the top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(image).save(path, exif=exif, quality=95)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    clip = read_clip(path)
    assert clip.frames[0].shape == expected.shape
    assert np.abs(clip.frames[0].astype(int) - expected).mean() < 4


def test_variable_frame_rate_is_resampled(tmp_path):
    levels = [20, 50, 80, 110, 140, 170, 200]
    pts_ms = [0, 100, 200, 400, 500, 600, 900]
    path = encode(
        tmp_path / "vfr.mp4", flat_frames(levels), pts=pts_ms, time_base=Fraction(1, 1000)
    )
    clip = read_clip(path)
    assert clip.fps == pytest.approx(10)
    assert clip.source_frames == 7
    # Ticks every 100 ms; each shows the latest frame at or before it.
    expected = [20, 50, 80, 80, 110, 140, 170, 170, 170, 200]
    assert frame_levels(clip) == pytest.approx(expected, abs=3)
    assert "variable frame rate: resampled to 10 fps by timestamps" in clip.notes


def test_non_square_pixels_are_stretched(tmp_path):
    path = tmp_path / "anamorphic.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(2, 1)
        out.mux(stream.encode(av.VideoFrame.from_ndarray(pattern(1, 32, 32)[0], format="rgb24")))
        out.mux(stream.encode(None))
    clip = read_clip(path)
    assert clip.frames.shape == (1, 32, 64, 3) and clip.source_size == (64, 32)
    assert "non-square pixels (aspect 2:1): stretched to 64x32" in clip.notes


def test_10bit_yuv444(tmp_path):
    path = tmp_path / "deep.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv444p10le"
        for index, image in enumerate(flat_frames([0, 100, 200], 32, 32)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv444p10le")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert probe(path)["pix_fmt"] == "yuv444p10le"
    clip = read_clip(path)
    assert frame_levels(clip) == pytest.approx([0, 100, 200], abs=2)
    assert "10-bit: converted to 8-bit" in clip.notes


# --------------------------------------------------------------------------- images


def test_png_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 15:, 3] = 255  # left half fully transparent, right half opaque red
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    clip = read_clip(path)
    assert clip.frames.shape == (1, 20, 30, 3)
    assert (clip.frames[0, :, :15] == 255).all()
    assert (clip.frames[0, :, 15:] == [255, 0, 0]).all()
    assert "RGBA: alpha composited on white" in clip.notes
    assert "image: treated as a 1-frame clip" in clip.notes


def test_palette_png_transparency(tmp_path):
    image = Image.new("P", (20, 20), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (10, 0, 20, 20))
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)  # palette entry 0 (left half) is transparent
    clip = read_clip(path)
    assert (clip.frames[0, :, :10] == 255).all()
    assert (clip.frames[0, :, 10:] == [0, 0, 255]).all()


def test_16bit_grayscale_png(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 40).astype(np.uint16), (24, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    clip = read_clip(path)
    assert clip.frames.shape == (1, 24, 40, 3)
    assert "16-bit: converted to 8-bit" in clip.notes
    row = clip.frames[0, 0, :, 0].astype(int)
    assert row[0] < 3 and row[-1] > 252 and (np.diff(row) >= 0).all()
    assert (clip.frames[..., 0] == clip.frames[..., 2]).all()


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tiff", ".webp"])
def test_still_images(tmp_path, suffix):
    image = pattern(1, 24, 40)[0]
    path = tmp_path / f"image{suffix}"
    Image.fromarray(image).save(path)
    clip = read_clip(path, size=16)
    assert clip.frames.shape == (1, 16, 26, 3)
    assert "image: treated as a 1-frame clip" in clip.notes


def test_file_names_are_not_patterns_or_protocols(tmp_path):
    # FFmpeg would read "%03d" as an image-sequence pattern and "x:" as a protocol.
    for name in ("frame%03d.png", "x:y.png"):
        path = tmp_path / name
        Image.fromarray(pattern(1, 20, 20)[0]).save(path, format="PNG")
        assert read_clip(path).frames.shape == (1, 20, 20, 3)


def test_grayscale_image(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.full((20, 20), 77, np.uint8)).save(path)
    clip = read_clip(path)
    assert (clip.frames == 77).all()


def test_animated_gif_becomes_frames(tmp_path):
    levels = [0, 100, 200, 50]
    images = [Image.fromarray(frame) for frame in flat_frames(levels, 20, 30)]
    path = tmp_path / "anim.gif"
    images[0].save(path, save_all=True, append_images=images[1:], duration=[100, 200, 100, 100])
    clip = read_clip(path)
    assert clip.fps == pytest.approx(10)
    assert frame_levels(clip) == pytest.approx([0, 100, 100, 200, 50], abs=3)


def test_animated_webp_uses_pillow_fallback(tmp_path):
    images = [Image.fromarray(frame) for frame in flat_frames([0, 120, 240], 20, 30)]
    path = tmp_path / "anim.webp"
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, lossless=True)
    clip = read_clip(path)
    assert frame_levels(clip) == pytest.approx([0, 120, 240], abs=3)


# --------------------------------------------------------------------------- broken inputs


def assert_safe_error(exc_info, tmp_path):
    message = str(exc_info.value)
    assert str(tmp_path) not in message and "Errno" not in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.mp4", b"", "the file is empty"),
        ("noise.mp4", np.random.default_rng(0).bytes(4096), "not a video"),
        ("notes.txt", b"hello, this is not a video\n" * 40, "not a video"),
    ],
    ids=["empty", "random-bytes", "text"],
)
def test_non_videos_give_clear_errors(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(VideoDecodeError, match=expected) as exc_info:
        read_clip(path)
    assert_safe_error(exc_info, tmp_path)
    if content:
        with pytest.raises(VideoDecodeError):
            probe(path)


def test_missing_file(tmp_path):
    with pytest.raises(VideoDecodeError, match="not found") as exc_info:
        read_clip(tmp_path / "nope.mp4")
    assert_safe_error(exc_info, tmp_path)


@pytest.mark.parametrize(
    ("faststart", "keep", "gives_frames"),
    [
        (True, 0.05, False),  # cut inside the header
        (True, 0.3, False),  # header complete, first frame incomplete
        (True, 0.7, True),
        (True, 0.95, True),
        (False, 0.5, False),  # the header comes last: nothing to go on
        (False, 0.95, False),
    ],
)
def test_truncated_mp4(tmp_path, faststart, keep, gives_frames):
    full = encode(tmp_path / "full.mp4", pattern(30, 48, 64), faststart=faststart)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    if gives_frames:
        clip = read_clip(cut)
        assert 0 < len(clip.frames) < 30 and clip.truncated
        assert any("damaged or cut short" in note for note in clip.notes)
    else:
        with pytest.raises(VideoDecodeError, match="Could not decode video") as exc_info:
            read_clip(cut)
        assert_safe_error(exc_info, tmp_path)


@pytest.mark.parametrize("cover_art", [False, True])
def test_audio_only_file(tmp_path, cover_art):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        if cover_art:  # a picture stream in an audio file is not a video
            cover = out.add_stream("png")
            cover.width, cover.height, cover.pix_fmt = 32, 32, "rgb24"
            cover.disposition = av.stream.Disposition.attached_pic
            picture = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            out.mux(cover.encode(picture))
        for i in range(5):
            samples = np.zeros((1, 1024), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(VideoDecodeError, match="No video stream found in the file."):
        read_clip(path)
    with pytest.raises(VideoDecodeError, match="No video stream"):
        probe(path)


def test_two_video_streams_uses_first(tmp_path):
    path = encode(tmp_path / "two.mkv", flat_frames([40, 40, 40]), streams=2)
    assert probe(path)["n_video_streams"] == 2
    clip = read_clip(path)
    assert frame_levels(clip) == pytest.approx([40, 40, 40], abs=3)  # the second is inverted
    assert "the file has 2 video streams: using the first" in clip.notes


# --------------------------------------------------------------------------- tiling, examples


def test_side_by_side_tiles_with_white_gaps():
    from vaelab.viz_video import side_by_side

    a = np.zeros((3, 10, 8, 3), np.uint8)
    b = np.zeros((3, 6, 5, 3), np.uint8)
    tiled = side_by_side([a, b], gap=4)
    assert tiled.shape == (3, 10, 8 + 4 + 5, 3)
    assert (tiled[:, :, 8:12] == 255).all()  # gap
    assert (tiled[:, 6:, 12:] == 255).all()  # shorter clip padded below
    assert (tiled[:, :6, 12:] == 0).all()

    labelled = side_by_side([a, b], labels=["in", "out"], gap=4)
    strip = labelled.shape[1] - 10
    assert strip > 0 and labelled.shape[2] == 17
    assert (labelled[:, :strip] < 128).any(), "label text is drawn"
    assert (labelled[:, strip:, :8] == 0).all()

    with pytest.raises(ValueError, match="same number of frames"):
        side_by_side([a, b[:2]])


def test_example_clips_decode():
    clips = example_clips()
    assert set(clips) == {"bigbuckbunny", "bikes"}
    for name, path in clips.items():
        assert example_path(name) == path
        clip = read_clip(path, max_frames=5, size=64)
        assert clip.frames.shape[0] == 5 and min(clip.frames.shape[1:3]) == 64
        assert clip.truncated


def test_example_path_unknown_name():
    with pytest.raises(KeyError, match="bigbuckbunny"):
        example_path("nope")


def test_example_images():
    images = example_images()
    assert {"astronaut", "coffee", "chelsea", "rocket"} <= set(images)
    for image in images.values():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


# --------------------------------------------------------------------------- frame-rate resampling bounds


def test_resampling_rate_is_clamped_and_ticks_follow_the_frame_cap():
    """Microsecond timestamps asked for a million ticks a second (and a 59.9 s clip of them): the rate is clamped
    to max_fps and only cap + 1 ticks are built, whatever the claimed duration."""
    from vaelab.io.video import _constant_rate

    times = [i * 1e-6 for i in range(30)] + [59.9]
    fps, picks = _constant_rate(times, None, max_fps=240.0, max_ticks=64)
    assert fps == 240.0
    assert picks is not None and len(picks) == 65
    fps, picks = _constant_rate(times, None, max_fps=240.0)  # no cap: the whole 59.9 s at 240 fps, not 6e7 ticks
    assert len(picks) == int(59.9 * 240) + 1
    # an ordinary variable rate is untouched by the clamp
    fps, picks = _constant_rate([0, 0.1, 0.2, 0.4, 0.5, 0.6, 0.9, 1.0], None, max_fps=240.0, max_ticks=64)
    assert fps == 10.0 and len(picks) == 11


def test_windowed_non_causal_video_models():
    """VidTwin and HVDM code 16-frame chunks independently anyway: their windowed run is bit-identical to one
    shot. CV-VAE's 17-frame windows are its paper's long-video recipe: each window is coded on its own."""
    import torch

    from vaelab import engine, models

    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (20, 32, 48, 3), dtype=np.uint8)
    torch.manual_seed(0)
    for name in ("vidtwin", "hvdm"):
        m = models.build(name).eval()
        windowed = engine.run_model(m, clip)
        assert any("windows" in n for n in windowed.notes)
        assert np.array_equal(windowed.recon, engine.run_model(m, clip, window=0).recon), name
    m = models.build("cv-vae").eval()
    res = engine.run_model(m, clip)
    assert any("17-frame windows" in n for n in res.notes)
    assert np.array_equal(res.recon[17:], engine.run_model(m, clip[17:], window=0).recon)
    assert np.array_equal(res.recon[:17], engine.run_model(m, clip[:17], window=0).recon)
