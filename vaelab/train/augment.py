"""Training augmentation: colour jitter (so no colour is rare) and a synthetic camera over photos.

Both work on uint8 (T, H, W, 3) clips and keep every value in range; one draw of parameters per clip, so the
motion and colours inside a clip stay consistent over time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# RGB -> YIQ: hue is an angle in the IQ plane, saturation its radius; luma stays where it was.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


@dataclass(frozen=True)
class ColourJitter:
    """Probabilities and ranges of the colour augmentation (the recipe records these)."""

    p: float = 0.7  # share of clips changed at all (the rest keep natural colour statistics)
    p_hue: float = 0.5
    p_permute: float = 0.15
    saturation: tuple[float, float] = (0.6, 1.4)
    brightness: tuple[float, float] = (0.75, 1.25)

    def __call__(self, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return clip
        x = clip.astype(np.float64) / 255.0
        if rng.random() < self.p_permute:
            x = x[..., rng.permutation(3)]
        m = np.eye(3)
        if rng.random() < self.p_hue:
            a = rng.uniform(-math.pi, math.pi)
            m = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]]) @ m
        s = rng.uniform(*self.saturation)
        m = np.diag([1.0, s, s]) @ m
        x = x @ (_YIQ_TO_RGB @ m @ _RGB_TO_YIQ).T
        x = x * rng.uniform(*self.brightness)
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Camera:
    """A synthetic camera over a still photo: pan, zoom, rotation and hand shake, per frame."""

    max_pan: float = 3.0  # px per frame at the output scale
    max_zoom: float = 0.015  # relative change per frame
    max_rotation: float = 0.6  # degrees per frame
    shake: float = 0.6  # px of random jitter per frame

    def __call__(self, img: np.ndarray, frames: int, crop: int, rng: np.random.Generator) -> np.ndarray:
        """(H, W, 3) uint8 photo -> (frames, crop, crop, 3) uint8 clip."""
        h, w, _ = img.shape
        vy, vx = rng.uniform(-self.max_pan, self.max_pan, size=2)
        zoom_rate = rng.uniform(-self.max_zoom, self.max_zoom)
        rot_rate = math.radians(rng.uniform(-self.max_rotation, self.max_rotation))
        # start so the whole path stays inside the photo: leave room for the pan and a rotated crop
        margin = crop * 0.75 + (abs(vy) + abs(vx) + self.shake) * frames
        cy = rng.uniform(min(margin, h / 2), max(h - margin, h / 2))
        cx = rng.uniform(min(margin, w / 2), max(w - margin, w / 2))
        theta = np.zeros((frames, 2, 3))
        for t in range(frames):
            s = crop * (1.0 + zoom_rate) ** t  # side of the source window in px
            a = rot_rate * t
            jy, jx = rng.normal(0, self.shake, 2) if self.shake else (0.0, 0.0)
            py, px = cy + vy * t + jy, cx + vx * t + jx
            # affine_grid maps output [-1, 1] to input [-1, 1] (align_corners=False)
            theta[t] = [[s / w * math.cos(a), -s / w * math.sin(a), 2 * px / w - 1],
                        [s / h * math.sin(a), s / h * math.cos(a), 2 * py / h - 1]]
        src = torch.from_numpy(img).permute(2, 0, 1)[None].float().expand(frames, -1, -1, -1)
        grid = F.affine_grid(torch.from_numpy(theta).float(), (frames, 3, crop, crop), align_corners=False)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        return out.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
