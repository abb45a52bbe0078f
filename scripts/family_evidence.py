"""Measured evidence that each trained lab family shows its paper's idea, on held-out content only.

    python scripts/family_evidence.py --models hvdm,vidtwin,walt   # -> docs/measurements/family_evidence.json

Per family (the shipped weights, fp32, CPU), on the last 20 % of bikes.mp4 and bigbuckbunny.mp4 (never trained
on) at short side 128, 16 frames:

* hvdm: mean PSNR of the fused decoder and of each branch alone (``analysis.hvdm_view``);
* vidtwin: the Structure x Dynamics swap of the two held-out clips (layout score with each clip, motion-transfer
  score and fast-motion score with each clip, ``analysis.swap``), and how far the Q-Former attention is from uniform (per query: its
  peak frame, its peak weight, uniform being 1/T);
* walt: max |image latent - first-frame latent of a clip starting with that image| (the joint image-video
  latent: exactly 0 by the causal design), and PSNR of every 4th frame coded alone as an image vs the same
  frames coded inside the clip;
* every family: held-out PSNR per clip (``metrics.psnr_per_frame`` of ``engine.run_model``).

Existing entries for other families in the JSON are kept. TRAINING.md's "What each family shows" reads it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "measurements" / "family_evidence.json"


def _r(x: float | None, n: int = 3) -> float | None:
    return None if x is None else round(float(x), n)


def evidence(name: str, clips: dict[str, np.ndarray]) -> dict:
    import torch

    from vaelab import engine, metrics, models

    model = engine.get_model(name, "lab", "cpu")
    rec = models.training_record(name)
    out: dict = {"weights": rec.get("recipe", {}).get("data_mix", "?"),
                 "pixel_frames": rec.get("pixel_frames"), "psnr": {}}
    psnr_per_frame = {k: metrics.psnr_per_frame(clip, engine.run_model(model, clip, precision="fp32").recon)
                      for k, clip in clips.items()}
    for k, per_frame in psnr_per_frame.items():
        out["psnr"][k] = _r(np.mean(per_frame), 2)
    if name == "hvdm":
        from vaelab.analysis.hvdm_view import hvdm_view

        out["branches"] = {k: {m: _r(v, 2) for m, v in hvdm_view(model, clip).ablation_psnr.items()}
                           for k, clip in clips.items()}
    if name == "vidtwin":
        from vaelab.analysis import swap

        res = swap.swap_pair(model, swap.align_pair(clips["bikes"], clips["bigbuckbunny"]))
        ev = {}
        for own, other in (("A", "B"), ("B", "A")):
            y = res.decodes[f"structure {own} + dynamics {other}"]
            ev[f"structure {own} + dynamics {other}"] = {
                f"layout_with_{own}": _r(swap.layout_similarity(y, res.clips[own])),
                f"layout_with_{other}": _r(swap.layout_similarity(y, res.clips[other])),
                f"motion_with_{other}": _r(swap.motion_similarity(y, res.clips[other])),
                f"motion_with_{own}": _r(swap.motion_similarity(y, res.clips[own])),
                f"fast_motion_with_{other}": _r(swap.fast_motion_similarity(y, res.clips[other])),
                f"fast_motion_with_{own}": _r(swap.fast_motion_similarity(y, res.clips[own])),
                f"fast_motion_of_{other}_dynamics_alone": _r(swap.fast_motion_similarity(
                    res.decodes[f"{other} dynamics only"], res.clips[other]))}
        out["swap"] = {"A": "bikes (held-out)", "B": "bigbuckbunny (held-out)", **ev}
        att = {}
        for k, m in res.attention.items():  # (Q, T)
            att[k] = {"peak_frame": [int(i) for i in m.argmax(1)], "peak_weight": [_r(v) for v in m.max(1)],
                      "uniform": _r(1.0 / m.shape[1], 4), "max_abs_from_uniform": _r(np.abs(m - 1 / m.shape[1]).max(), 4)}
        out["qformer_attention"] = att
    if name == "walt":
        clip = clips["bikes"]
        x = engine.to_tensor(clip[:9])
        with torch.inference_mode():
            z_video = model.encode(x).main
            z_image = model.encode(x[:, :, :1]).main
        out["image_equals_first_frame_latent_max_abs"] = float((z_video[:, :, :1] - z_image).abs().max())
        # the joint image-video tokenizer: the same frames coded alone as images and inside the clip
        joint = {}
        for k, clip in clips.items():
            idx = list(range(0, len(clip), 4))
            as_video = psnr_per_frame[k][idx]  # the whole-clip run above
            as_image = [metrics.psnr_per_frame(clip[i:i + 1], engine.run_model(model, clip[i:i + 1],
                                                                               precision="fp32").recon)[0]
                        for i in idx]
            joint[k] = {"frames": idx, "as_image_db": _r(np.mean(as_image), 2), "in_video_db": _r(np.mean(as_video), 2)}
        out["image_vs_video"] = joint
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="hvdm,vidtwin,walt")
    ap.add_argument("--frames", type=int, default=16)
    args = ap.parse_args()
    import torch

    from vaelab.train.data import heldout_clips

    torch.set_num_threads(max(1, torch.get_num_threads()))
    clips = {k: v[: args.frames] for k, v in heldout_clips(128).items()}
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data.setdefault("protocol", f"shipped lab weights, fp32, CPU; the first {args.frames} held-out frames (last 20 %) "
                                "of bikes.mp4 and bigbuckbunny.mp4 at short side 128")
    data.setdefault("models", {})
    for name in [n for n in args.models.split(",") if n]:
        data["models"][name] = evidence(name, clips)
        print(name, json.dumps(data["models"][name]), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
