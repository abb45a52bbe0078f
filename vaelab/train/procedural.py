"""Procedural training clips (colour charts, gradients, textures, moving shapes, text) and the held-out chart clip.

Generated here, deterministic per random generator, uint8 (T, S, S, 3). They make every hue, hard edges, thin
lines and known motion common in training, which two clips and a few photos cannot. The held-out
:func:`colour_chart_clip` uses the fixed 24 ColorChecker colours; training charts draw random colours.
"""

from __future__ import annotations

import numpy as np

# X-Rite ColorChecker Classic, sRGB D65 (BabelColor averages, 8-bit), row by row.
COLORCHECKER_SRGB = np.array([
    [115, 82, 68], [194, 150, 130], [98, 122, 157], [87, 108, 67], [133, 128, 177], [103, 189, 170],
    [214, 126, 44], [80, 91, 166], [193, 90, 99], [94, 60, 108], [157, 188, 64], [224, 163, 46],
    [56, 61, 150], [70, 148, 73], [175, 54, 60], [231, 199, 31], [187, 86, 149], [8, 133, 161],
    [243, 243, 242], [200, 200, 200], [160, 160, 160], [122, 122, 121], [85, 85, 85], [52, 52, 52],
], dtype=np.uint8)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:size, 0:size].astype(np.float64)


def _random_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 3)).astype(np.float64)


def chart(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """A grid of random colour patches on a grey border, panning at a constant velocity."""
    n = int(rng.integers(3, 9))
    cell = max(4, 2 * size // n)
    colours = _random_colours(rng, n * n).reshape(n, n, 3)
    big = np.kron(colours, np.ones((cell, cell, 1)))
    gap = max(1, cell // 8)
    mask = np.ones((cell, cell))
    mask[:gap], mask[:, :gap] = 0, 0
    big = big * np.kron(np.ones((n, n)), mask)[..., None] + 60.0 * (1 - np.kron(np.ones((n, n)), mask))[..., None]
    return _pan(big, rng, frames, size)


def _pan(big: np.ndarray, rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    h, w, _ = big.shape
    if h < size or w < size:
        big = np.pad(big, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="wrap")
        h, w, _ = big.shape
    vy, vx = rng.uniform(-2, 2, size=2)
    y0, x0 = rng.uniform(0, h - size), rng.uniform(0, w - size)
    out = []
    for t in range(frames):
        y = int(round(y0 + vy * t)) % max(1, h - size + 1)
        x = int(round(x0 + vx * t)) % max(1, w - size + 1)
        out.append(big[y:y + size, x:x + size])
    return np.stack(out)


def gradient(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """A smooth linear or radial blend between two random colours whose direction turns over time."""
    yy, xx = _grid(size) / size
    c0, c1 = _random_colours(rng, 2)
    theta, omega = rng.uniform(0, 2 * np.pi), rng.uniform(-0.05, 0.05)
    radial = rng.random() < 0.4
    out = []
    for t in range(frames):
        a = theta + omega * t
        u = np.hypot(yy - 0.5, xx - 0.5) * 1.4 if radial else (np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5)) + 0.5
        u = np.clip(u, 0, 1)[..., None]
        out.append((1 - u) * c0 + u * c1)
    return np.stack(out)


def texture(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """A sum of random oriented sinusoids (1-40 px periods) in two colours, drifting."""
    yy, xx = _grid(size)
    k = int(rng.integers(2, 6))
    freqs = rng.uniform(1 / 40, 1 / 2.5, k)
    angles = rng.uniform(0, np.pi, k)
    phases = rng.uniform(0, 2 * np.pi, k)
    speed = rng.uniform(-0.6, 0.6, k)
    c0, c1 = _random_colours(rng, 2)
    out = []
    for t in range(frames):
        v = sum(np.sin(2 * np.pi * f * (np.cos(a) * xx + np.sin(a) * yy) + p + s * t)
                for f, a, p, s in zip(freqs, angles, phases, speed))
        u = (v / k * 0.5 + 0.5)[..., None]
        out.append((1 - u) * c0 + u * c1)
    return np.stack(out)


def shapes(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """Discs and rectangles of random colours moving at constant velocities over a random background."""
    yy, xx = _grid(size)
    bg = _random_colours(rng, 1)[0]
    n = int(rng.integers(2, 7))
    objs = [(rng.random() < 0.5, rng.uniform(0, size, 2), rng.uniform(-3, 3, 2), rng.uniform(size / 16, size / 4),
             _random_colours(rng, 1)[0]) for _ in range(n)]
    out = []
    for t in range(frames):
        img = np.broadcast_to(bg, (size, size, 3)).copy()
        for is_disc, p, v, r, col in objs:
            cy, cx = p + v * t
            m = np.hypot(yy - cy, xx - cx) < r if is_disc else (np.abs(yy - cy) < r) & (np.abs(xx - cx) < 0.6 * r)
            img[m] = col
        out.append(img)
    return np.stack(out)


def text(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """Random characters in a random colour on a random background, scrolling (PIL's built-in font)."""
    from PIL import Image, ImageDraw, ImageFont

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,;:!?"
    fg, bg = (tuple(int(v) for v in c) for c in _random_colours(rng, 2))
    font_size = int(rng.integers(8, 24))
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        font = ImageFont.load_default()
    page = Image.new("RGB", (2 * size, 2 * size), bg)
    draw = ImageDraw.Draw(page)
    for row in range(0, 2 * size, font_size + 2):
        line = "".join(alphabet[i] for i in rng.integers(0, len(alphabet), 2 * size // max(4, font_size // 2)))
        draw.text((int(rng.integers(-8, 1)), row), line, fill=fg, font=font)
    return _pan(np.asarray(page, dtype=np.float64), rng, frames, size)


GENERATORS = (chart, gradient, texture, shapes, text)


def random_clip(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """One procedural clip (T, size, size, 3) uint8 from a generator chosen at random."""
    clip = GENERATORS[int(rng.integers(len(GENERATORS)))](rng, frames, size)
    return np.clip(np.rint(clip), 0, 255).astype(np.uint8)


def colour_chart_clip(frames: int = 17, size: int = 128) -> np.ndarray:
    """Held-out: the 24 ColorChecker patches (6 x 4) on a dark border, panning 1 px per frame (T, size, 1.5 size, 3)."""
    cell = size // 4
    w = int(round(1.5 * size))
    board = np.full((4 * cell + frames, 6 * cell + frames, 3), 40, np.uint8)
    gap = max(1, cell // 10)
    for i, rgb in enumerate(COLORCHECKER_SRGB):
        r, c = divmod(i, 6)
        board[r * cell + gap:(r + 1) * cell - gap, c * cell + gap:(c + 1) * cell - gap] = rgb
    board = np.pad(board, ((0, max(0, size + frames - board.shape[0])), (0, max(0, w + frames - board.shape[1])),
                           (0, 0)), constant_values=40)
    return np.stack([board[t // 2:t // 2 + size, t:t + w] for t in range(frames)])
