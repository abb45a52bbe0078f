"""Colour audit of the shipped lab weights: is colour kept (chroma ratio) and does any hue turn (hue shift), on
every held-out set, overall and for foliage, sky and skin blocks (``vaelab.metrics.HUE_CLASSES``).

    python scripts/colour_audit.py [--models all] [--json docs/measurements/colour_audit.json]

Issue #14's colour target says "no family shifts skin, sky or foliage to another hue": this measures it. Inference
only (fp32, CPU, the first 17 frames of each held-out set at short side 128, ``engine.run_model`` as the app runs
it); prints a markdown table for docs/TRAINING.md. Measurements live here, never in a test.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).resolve().parents[1] / "docs" / "measurements" / "colour_audit.json"
HUE_LIMIT_DEG = 10.0  # a mean turn beyond this reads as another hue (the audit's "shifts", stated in the JSON)


def _r(x, n=3):
    return None if x is None else round(float(x), n)


def _rounded(stats: dict) -> dict:
    """``chroma_and_hue`` / ``hue_classes`` numbers as the JSON keeps them (block counts as they are)."""
    return {k: v if k == "blocks" else _r(v, 1 if k == "hue_shift_deg" else 3) for k, v in stats.items()}


def _classes(a: np.ndarray, b: np.ndarray) -> dict:
    from vaelab import metrics

    return {k: _rounded(v) for k, v in metrics.hue_classes(a, b).items()}


def audit(name: str, sets: dict[str, dict[str, np.ndarray]]) -> dict:
    from vaelab import engine, metrics, models

    model = models.load(name, device="cpu")
    out: dict = {"weights": str(getattr(model, "weights_source", "lab")), "sets": {}}
    pooled_ref, pooled_rec = [], []
    for set_name, clips in sets.items():
        ref_l, rec_l, de = [], [], []
        for clip in clips.values():
            rec = engine.run_model(model, clip, precision="fp32").recon
            a, b = metrics.lab_blocks(clip), metrics.lab_blocks(rec)
            ref_l.append(a.reshape(-1, 3))
            rec_l.append(b.reshape(-1, 3))
            de.append(metrics.delta_e_ciede2000(a, b).ravel())
        a, b = np.concatenate(ref_l), np.concatenate(rec_l)
        pooled_ref.append(a)
        pooled_rec.append(b)
        out["sets"][set_name] = {"delta_e_mean": _r(np.concatenate(de).mean()),
                                 **_rounded(metrics.chroma_and_hue(a, b)), "classes": _classes(a, b)}
    a, b = np.concatenate(pooled_ref), np.concatenate(pooled_rec)
    out["all_sets"] = _classes(a, b) | {"all": _rounded({"blocks": int(len(a)), **metrics.chroma_and_hue(a, b)})}
    out["shifts_hue"] = [k for k in ("foliage", "sky", "skin") if out["all_sets"][k]["hue_shift_deg"] is not None
                         and abs(out["all_sets"][k]["hue_shift_deg"]) > HUE_LIMIT_DEG]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="all")
    ap.add_argument("--json", default=str(OUT))
    args = ap.parse_args()
    import torch

    from vaelab import metrics, models
    from vaelab.train.data import heldout_sets

    torch.set_num_threads(max(1, torch.get_num_threads()))
    names = ([n for n in models.all_names() if models.lab_weights_path(n).exists()] if args.models == "all"
             else args.models.split(","))
    sets = heldout_sets(128)
    path = Path(args.json)
    data = json.loads(path.read_text()) if path.exists() else {}
    data["protocol"] = ("shipped lab weights, fp32, CPU, engine.run_model; held-out sets of vaelab.train.data."
                        "heldout_sets(128) (17 frames each); CIELAB of 8x8 block means; chroma kept = mean C*ab out "
                        "/ in; hue shift = chroma-weighted circular mean of the hue-angle change (vaelab.metrics."
                        "chroma_and_hue); classes = vaelab.metrics.HUE_CLASSES; (n) = blocks in the class")
    data["hue_limit_deg"] = HUE_LIMIT_DEG
    data["hue_classes"] = metrics.HUE_CLASSES
    data.setdefault("models", {})
    for name in names:
        rec = models.training_record(name)
        data["models"][name] = {"version": "v2" if rec.get("recipe", {}).get("data_mix") == "v2" else "v1",
                                **audit(name, sets)}
        print(name, json.dumps(data["models"][name]["all_sets"]), flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from training_report import colour_audit_table

    print(colour_audit_table(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
