"""Where does VidTwin lose colour? Linear probes of CIELAB L*, a*, b* (16-px block means, averaged over the clip)
from each stage of the shipped lab model's encoder: the patch embedding, the encoder's tokens and the structure
latent (8 channels x n_q query slots per 16-px cell).

    python scripts/vidtwin_colour_probe.py [--clips 32] [--json docs/measurements/vidtwin_colour_probe.json]

A stage that carries colour predicts a*, b* with R^2 near 1; a stage that dropped it gives R^2 <= 0. Clips come
from the training sampler (data mix v2, 16 frames at 128 px; the encoder's own data, so this asks what the
trained encoder keeps, not how it generalises); least squares on 70 % of the blocks, R^2 on the other 30 %.
Inference only; never run in CI.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
OUT = Path(__file__).resolve().parents[1] / "docs" / "measurements" / "vidtwin_colour_probe.json"


def r2_of_linear_probe(x: np.ndarray, y: np.ndarray) -> list[float]:
    n = len(x)
    a = np.c_[x, np.ones(n)]
    tr, te = slice(0, int(0.7 * n)), slice(int(0.7 * n), n)
    w, *_ = np.linalg.lstsq(a[tr], y[tr], rcond=1e-6)
    p = a[te] @ w
    return [round(float(v), 3) for v in 1 - ((p - y[te]) ** 2).sum(0) / ((y[te] - y[te].mean(0)) ** 2).sum(0)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--json", default=str(OUT))
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F
    from einops import rearrange

    from vaelab import metrics, models
    from vaelab.train.data import Sampler, train_sources

    torch.manual_seed(0)
    m = models.load("vidtwin", device="cpu")
    s = Sampler(train_sources(mix="v2"), crop=128, frames=16, photo_share=0.5, seed=5, mix="v2")
    p = m.config["patch_size"]
    cell = 2 * p  # the structure latent's cell (its down-sampling conv has stride 2 on the token grid)
    feats: dict[str, list[np.ndarray]] = {"patch_embed": [], "encoder_tokens": [], "structure_latent": []}
    labs, decoded = [], []

    def per_cell(t_bthwd: torch.Tensor) -> np.ndarray:  # (B, T, h, w, D) -> (B*h/2*w/2, D): clip mean, 2x2 cells
        t = F.avg_pool2d(rearrange(t_bthwd.mean(1), "b h w d -> b d h w"), 2)
        return rearrange(t, "b d h w -> (b h w) d").numpy()

    def lab_cells(x_bcthw: torch.Tensor) -> np.ndarray:
        img = F.avg_pool2d(((x_bcthw.clamp(-1, 1) + 1) / 2).mean(2), cell)
        return metrics.rgb_to_lab(rearrange(img, "b c h w -> (b h w) c").numpy())

    with torch.no_grad():
        for _ in range(args.clips // 2):
            x = s.batch(2)
            feats["patch_embed"].append(per_cell(m.encoder.patch_embed(x)))
            feats["encoder_tokens"].append(per_cell(m.encoder.tokens(x)))
            z = m.encode(x)
            feats["structure_latent"].append(rearrange(z.main, "b c q h w -> (b h w) (c q)").numpy())
            labs.append(lab_cells(x))
            decoded.append(lab_cells(m.decode(z)))
    y = np.concatenate(labs)
    out = {"protocol": __doc__.split("\n\n")[0].replace("\n", " "), "clips": args.clips, "blocks": int(len(y)),
           "cell_px": cell, "r2_L_a_b": {k: r2_of_linear_probe(np.concatenate(v), y) for k, v in feats.items()},
           "input_chroma_std_a_b": [round(float(v), 2) for v in y[:, 1:].std(0)],
           "decoded_chroma_std_a_b": [round(float(v), 2) for v in np.concatenate(decoded)[:, 1:].std(0)]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
