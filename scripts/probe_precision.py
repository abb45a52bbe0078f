"""Probe suite in fp32 vs bf16 on a few lab models, interleaved in one run: wall time per precision (best of 2
after a warm-up) and how far the measurements move (half-gain frequency, max |MTF gain| change, chart ΔE00).

    python scripts/probe_precision.py --json docs/measurements/probe_precision.json
"""
from __future__ import annotations

import argparse
import json
import time

from vaelab.analysis import probes
from vaelab.engine import configure_threads, get_model

PLAN = (("sd-vae", ("spatial", "flat", "colour")), ("litevae", ("spatial", "flat", "colour")),
        ("iv-vae", ("spatial", "receptive_field")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    configure_threads()
    out = {}
    for name, which in PLAN:
        m = get_model(name, "lab", "cpu")
        probes.run_probes({name: m}, 32, 5, probes=which, precision="bf16")  # warm-up
        res: dict[str, dict] = {}
        for _ in range(a.repeats):
            for prec in ("fp32", "bf16"):
                t0 = time.perf_counter()
                r = probes.run_probes({name: m}, a.size, a.frames, probes=which, precision=prec)
                res.setdefault(prec, {"s": [], "m": r.models[name]})["s"].append(time.perf_counter() - t0)
        f32, b16 = res["fp32"]["m"], res["bf16"]["m"]
        d = {"probes": which, "size": a.size, "frames": a.frames, "fp32_s": min(res["fp32"]["s"]),
             "bf16_s": min(res["bf16"]["s"])}
        d["speedup"] = d["fp32_s"] / d["bf16_s"]
        if "spatial_mtf" in f32:
            d["half_gain_fp32"], d["half_gain_bf16"] = (f32["spatial_mtf"]["half_gain_freq"],
                                                        b16["spatial_mtf"]["half_gain_freq"])
            d["max_gain_diff"] = max(abs(x - y) for x, y in zip(f32["spatial_mtf"]["gain"], b16["spatial_mtf"]["gain"]))
        if "colour_chart" in f32:
            d["dE_fp32"], d["dE_bf16"] = f32["colour_chart"]["delta_e_mean"], b16["colour_chart"]["delta_e_mean"]
        out[name] = d
        print(name, json.dumps(d), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
