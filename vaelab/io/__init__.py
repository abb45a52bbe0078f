"""Video and image input/output: decoding user clips, writing browser-playable MP4s."""

from vaelab.io.examples import example_clips, example_images, example_path
from vaelab.io.video import (
    Clip,
    VideoDecodeError,
    VideoLimits,
    iter_chunks,
    probe,
    read_clip,
    write_mp4,
    write_mp4_chunks,
)

__all__ = [
    "Clip",
    "VideoDecodeError",
    "VideoLimits",
    "example_clips",
    "example_images",
    "example_path",
    "iter_chunks",
    "probe",
    "read_clip",
    "write_mp4",
    "write_mp4_chunks",
]
