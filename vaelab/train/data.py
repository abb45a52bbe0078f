"""Offline training data, as listed in :mod:`vaelab.train.manifest`.

Every clip is split in time: the first 80 % of its frames are for training, the last 20 %
are held out for evaluation (``heldout_clips``). Photos become short clips through a
synthetic camera, which gives video models real motion on content the clips don't have;
image models just see random crops.

Two data mixes: ``v1`` (the two clips and scikit-image photos, a panning crop, no colour
augmentation: the mix the first lab weights were trained on, kept so their records
reproduce) and ``v2`` (the whole manifest: plus photographs from Debian's
plasma-workspace-wallpapers, procedural clips, colour jitter, and a camera that pans, zooms,
rotates and shakes; held-out photos and a colour-chart clip for evaluation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import manifest, procedural
from .augment import Camera, ColourJitter

TRAIN_FRACTION = 0.8
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
          "colorwheel", "logo", "motorcycle_left", "page")

# What each source shows, written by looking at it: VideoVAE+'s caption conditioning is trained on these
# (a caption can only help as much as it describes the picture). Held-out frames use the same captions.
CAPTIONS = {
    "bigbuckbunny": "a big grey cartoon rabbit by his burrow on a green grassy hill with rocks and trees",
    "bikes": "a grey city street with walls and a door, a van drives by and a person walks a bicycle on cobblestones",
    "astronaut": "a smiling astronaut in an orange space suit in front of the american flag and a space shuttle",
    "coffee": "a cup of coffee on a red saucer on a wooden table",
    "chelsea": "close up of a tabby cat face with green eyes",
    "rocket": "a white rocket on a launch pad at night with towers and lights",
    "immunohistochemistry": "microscope image of stained tissue, brown cells on a pale blue background",
    "hubble_deep_field": "many small galaxies and stars on a black sky",
    "retina": "an orange red photograph of a human retina with blood vessels on black",
    "colorwheel": "a smooth rainbow colour wheel on a black background",
    "logo": "a green and orange snake logo on white",
    "motorcycle_left": "a motorcycle in a studio",
    "page": "a scanned page of grey printed text",
}


def caption_for(name: str) -> str | None:
    """The caption of a source ("bikes@192" -> bikes'), None for sources without one."""
    key = name.split("@")[0]
    if key in CAPTIONS:
        return CAPTIONS[key]
    try:
        return manifest.by_name(key).caption or None
    except KeyError:
        return None


@dataclass
class Source:
    name: str
    frames: np.ndarray  # uint8 (T, H, W, 3)
    is_photo: bool

    @property
    def caption(self) -> str | None:
        return caption_for(self.name)


def _clip_frames(short_side: int) -> dict[str, np.ndarray]:
    from ..io import example_clips, read_clip

    return {name: read_clip(path, size=short_side, max_frames=10_000).frames for name, path in example_clips().items()}


def _split(n: int) -> int:
    return int(round(n * TRAIN_FRACTION))


def _shrink(img: np.ndarray, short_side: int) -> np.ndarray:
    """Area-downscale so the short side is at most ``short_side`` (never upscales)."""
    h, w = img.shape[:2]
    scale = short_side / min(h, w)
    if scale >= 1:
        return img
    t = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float()
    return F.interpolate(t, scale_factor=scale, mode="area")[0].permute(1, 2, 0).round().byte().numpy()


def train_sources(short_sides: tuple[int, ...] = (128, 192), mix: str = "v1") -> list[Source]:
    """Training split of every clip at a few scales, plus photos (``mix`` v2: the manifest's wallpapers too)."""
    if mix not in ("v1", "v2"):
        raise ValueError(f"unknown data mix {mix!r} (v1 or v2)")
    out = []
    for side in short_sides:
        for name, frames in _clip_frames(side).items():
            out.append(Source(f"{name}@{side}", frames[: _split(len(frames))], False))
    for name, img in photos().items():
        out.append(Source(name, _shrink(img, 256)[None], True))
    if mix == "v2":
        for name, img in wallpapers("train").items():
            out.append(Source(name, _shrink(img, 384)[None], True))
    return out


def missing_sources(mix: str) -> list[str]:
    """Training sources of ``mix`` that the manifest lists and this machine lacks (the Debian wallpapers)."""
    if mix != "v2":
        return []
    return [s.name for s in manifest.wallpaper_sources("train") if manifest.wallpaper_file(s) is None]


class DataMissingError(RuntimeError):
    """A source the data manifest lists for training is not on this machine."""


def wallpapers(use: str) -> dict[str, np.ndarray]:
    """The manifest's Debian wallpaper photographs for ``use`` ("train" or "heldout"), uint8 RGB at their file's
    size; empty when plasma-workspace-wallpapers is not installed (``apt-get install plasma-workspace-wallpapers``)."""
    from PIL import Image

    out = {}
    for src in manifest.wallpaper_sources(use):
        path = manifest.wallpaper_file(src)
        if path is not None:
            with Image.open(path) as im:
                out[src.name] = np.asarray(im.convert("RGB"))
    return out


def photos(names: tuple[str, ...] = PHOTOS) -> dict[str, np.ndarray]:
    """scikit-image's bundled photos as uint8 RGB; ones that need a download are skipped."""
    import skimage.data

    out = {}
    for name in names:
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except Exception:  # noqa: BLE001 - some datasets need the network; skip them offline
            continue
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float64) / max(float(img.max()), 1e-8))).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, -1)
        out[name] = np.ascontiguousarray(img[..., :3])
    return out


def heldout_clips(short_side: int = 128) -> dict[str, np.ndarray]:
    """The last 20 % of each clip's frames, never seen in training."""
    return {name: frames[_split(len(frames)):] for name, frames in _clip_frames(short_side).items()}


def heldout_sets(short_side: int = 128, frames: int = 17) -> dict[str, dict[str, np.ndarray]]:
    """Every held-out set, reported separately: ``clips`` (last 20 % of each clip), ``photos`` (the manifest's
    held-out photographs as deterministic slow-pan clips, short side ``short_side``, 3:2; missing when the
    wallpaper package is not installed) and ``colour_chart`` (the ColorChecker clip)."""
    cam = Camera(max_pan=1.0, max_zoom=0.0, max_rotation=0.0, shake=0.0)
    photo_clips = {}
    for i, (name, img) in enumerate(sorted(wallpapers("heldout").items())):
        img = _shrink(img, 2 * short_side)
        pan = cam(img, frames, 2 * short_side, np.random.default_rng(1000 + i))  # square window, then 3:2 crop
        top = short_side // 2
        photo_clips[name] = _shrink_clip(pan[:, top:top + short_side * 4 // 3], short_side)
    return {
        "clips": {name: c[:frames] for name, c in heldout_clips(short_side).items()},
        "photos": photo_clips,
        "colour_chart": {"colour_chart_clip": procedural.colour_chart_clip(frames, short_side)},
    }


def _shrink_clip(clip: np.ndarray, short_side: int) -> np.ndarray:
    return np.stack([_shrink(f, short_side) for f in clip])


class Sampler:
    """Random (B, 3, T, crop, crop) batches in [-1, 1]; ``photo_share`` of samples come from photos.

    ``mix`` "v2" adds ``procedural_share`` procedural clips, colour jitter on every sample and the full synthetic
    camera (pan, zoom, rotation, shake) over photos; "v1" is the first lab weights' sampler, unchanged.
    """

    def __init__(self, sources: list[Source], crop: int = 64, frames: int = 1, photo_share: float = 0.3, seed: int = 0,
                 mix: str = "v1", procedural_share: float = 0.2):
        if mix not in ("v1", "v2"):
            raise ValueError(f"unknown data mix {mix!r} (v1 or v2)")
        self.clips = [s for s in sources if not s.is_photo]
        self.photos = [s for s in sources if s.is_photo]
        self.crop, self.frames, self.photo_share = crop, frames, photo_share
        self.mix, self.procedural_share = mix, procedural_share
        self.jitter, self.camera = ColourJitter(), Camera()
        self.rng = np.random.default_rng(seed)

    def _from_clip(self, frames: int) -> tuple[np.ndarray, str | None]:
        source = self.clips[self.rng.integers(len(self.clips))]
        src = source.frames
        stride = int(self.rng.integers(1, 3)) if frames > 1 else 1
        span = (frames - 1) * stride + 1
        t0 = int(self.rng.integers(0, max(1, len(src) - span + 1)))
        idx = np.minimum(np.arange(t0, t0 + span, stride), len(src) - 1)
        _, h, w, _ = src.shape
        y, x = self.rng.integers(0, h - self.crop + 1), self.rng.integers(0, w - self.crop + 1)
        return src[idx, y:y + self.crop, x:x + self.crop], source.caption

    def _from_photo(self, frames: int) -> tuple[np.ndarray, str | None]:
        """A synthetic camera: the crop window drifts by a random velocity (<= 3 px/frame); v2: also zoom,
        rotation and shake."""
        source = self.photos[self.rng.integers(len(self.photos))]
        img = source.frames[0]
        if self.mix == "v2":
            return self.camera(img, frames, self.crop, self.rng), source.caption
        h, w, _ = img.shape
        c = self.crop
        vy, vx = self.rng.uniform(-3, 3, size=2)
        y0 = self.rng.uniform(abs(vy) * frames, max(abs(vy) * frames, h - c - abs(vy) * frames))
        x0 = self.rng.uniform(abs(vx) * frames, max(abs(vx) * frames, w - c - abs(vx) * frames))
        out = []
        for t in range(frames):
            y = int(np.clip(round(y0 + vy * t), 0, h - c))
            x = int(np.clip(round(x0 + vx * t), 0, w - c))
            out.append(img[y:y + c, x:x + c])
        return np.stack(out), source.caption

    def sample(self, size: int, frames: int | None = None) -> tuple[torch.Tensor, list[str | None]]:
        """A batch (B, 3, T, crop, crop) in [-1, 1] and each sample's caption; ``frames`` overrides T
        (1 = an image batch: single frames of clips and photos, for joint image + video training)."""
        frames = self.frames if frames is None else frames
        clips, caps = [], []
        for _ in range(size):
            if self.mix == "v2" and self.rng.random() < self.procedural_share:
                c, cap = procedural.random_clip(self.rng, frames, self.crop), None
            else:
                use_photo = self.photos and (not self.clips or self.rng.random() < self.photo_share)
                c, cap = self._from_photo(frames) if use_photo else self._from_clip(frames)
            if self.mix == "v2":
                c = self.jitter(c, self.rng)
            if self.rng.random() < 0.5:
                c = c[:, :, ::-1]
            clips.append(c)
            caps.append(cap)
        x = torch.from_numpy(np.ascontiguousarray(np.stack(clips)))  # (B, T, H, W, 3)
        return x.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0, caps

    def batch(self, size: int, frames: int | None = None) -> torch.Tensor:
        return self.sample(size, frames)[0]
