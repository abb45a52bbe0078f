"""Held-out frames of a video VAE coded as 1-frame images vs as video, for one or more weight files.

    python scripts/image_vs_video_eval.py walt assets/weights/walt.safetensors other.safetensors

Per held-out clip (last 20 % of bigbuckbunny / bikes, short side 128 px): the first 17 frames reconstructed as
one clip (mean per-frame PSNR) and every 4th of them reconstructed alone as an image; both averaged over clips.
This is how walt's record measures its joint image + video training.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from vaelab import metrics, models
from vaelab.engine import run_model
from vaelab.train.data import heldout_clips


def image_vs_video(name: str, weights: str, frames: int = 17) -> dict[str, float]:
    m = models.load(name, weights=weights, device="cpu").eval()
    img, vid = [], []
    for clip in heldout_clips(128).values():
        f = clip[:frames]
        vid.append(np.mean(metrics.psnr_per_frame(f, run_model(m, f).recon)))
        img.append(np.mean([metrics.psnr_per_frame(f[i:i + 1], run_model(m, f[i:i + 1]).recon)[0]
                            for i in range(0, len(f), 4)]))
    return {f"video_{frames}f": round(float(np.mean(vid)), 3), "image_1f": round(float(np.mean(img)), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("weights", nargs="+")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(json.dumps({w: image_vs_video(a.model, w) for w in a.weights}, indent=2))


if __name__ == "__main__":
    main()
