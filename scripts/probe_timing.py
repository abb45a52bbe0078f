"""Budget benchmark of the Diagnostics suite: every probe at the default size on every lab model, timed.

    python scripts/probe_timing.py --json probe_timing.json [--models all] [--size 64] [--frames 9] [--repeat 1]

Writes per-model and per-probe seconds, the total, the torch thread count, the load average before and after
and the CPU seconds this process used (these machines are shared: under load the wall time grows with the other
jobs, the CPU time does not; on an idle machine wall ~ CPU / threads used)
and the precision the probes ran in (``--precision``, default auto). Timing lives here, never
in a test.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cpu_with_children() -> float:
    """CPU seconds of this process and of its children that have ended (forked probe workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="all")
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--repeat", type=int, default=1, help="runs; the report keeps the fastest per model")
    p.add_argument("--json", default="probe_timing.json")
    p.add_argument("--precision", default="auto", help="auto|fp32|bf16|fp16 (the probes' precision)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = the engine's choice)")
    p.add_argument("--workers", type=int, default=1,
                   help="models probed at once (0 = what the tab and `vaelab probe` use: probes.probe_workers); "
                        "above 1 the suite is one run_probes call and the per-probe split is not reported")
    p.add_argument("--pool", choices=("thread", "process"), default=None,
                   help="with --workers above 1: worker threads or forked worker processes (default: "
                        "probes.probe_pool, what the tab uses)")
    args = p.parse_args(argv)

    import torch

    from vaelab import engine, models
    from vaelab.analysis import probes

    engine.configure_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.size or probes.DEFAULT_SIZE
    frames = args.frames or probes.DEFAULT_FRAMES
    names = models.names() if args.models == "all" else args.models.split(",")
    names = [n for n in names if n in models.all_names()]  # lab models (production adapters are full size)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    loaded = {n: engine.get_model(n, "lab", "cpu") for n in names}
    load_s = time.perf_counter() - t0
    per_model: dict[str, dict] = {}
    workers = probes.probe_workers(loaded) if args.workers == 0 else args.workers
    if workers > 1:
        best = None
        for _ in range(max(1, args.repeat)):
            cpu0, t = _cpu_with_children(), time.perf_counter()
            rep = probes.run_probes(loaded, size, frames, precision=args.precision, workers=workers,
                                   pool=args.pool)
            wall, cpu = time.perf_counter() - t, _cpu_with_children() - cpu0
            if best is None or wall < best[0]:
                best = (wall, cpu, rep)
        wall, cpu, rep = best
        report = {"size": size, "frames": frames, "workers": workers, "pool": rep.pool, "precision": args.precision,
                  "models": {n: {"total_s": round(rep.seconds[n], 3), "cpu_s": round(rep.cpu_seconds[n], 3)} for n in rep.models},
                  "suite_total_s": round(wall, 3), "suite_cpu_s": round(cpu, 3), "model_load_s": round(load_s, 3),
                  "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                  "load_average_before": [round(v, 2) for v in load0],
                  "load_average_after": [round(v, 2) for v in os.getloadavg()],
                  "note": f"one run_probes call, {workers} models at once ({rep.pool} pool) with one torch thread "
                          "each; suite_total_s is its wall time, per-model total_s overlap; suite_cpu_s counts this "
                          "process and its finished worker processes"}
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"suite {wall:.1f} s wall, {cpu:.1f} s CPU for {len(rep.models)} models at {size} px, {frames} frames, "
              f"{workers} workers in a {rep.pool} pool (load average {load0[0]:.1f}); wrote {args.json}")
        return 0
    for _ in range(max(1, args.repeat)):
        for n, m in loaded.items():
            marks: list[tuple[str, float]] = []
            cpu0 = time.process_time()
            t = time.perf_counter()
            probes.run_probes({n: m}, size, frames, precision=args.precision,
                              progress=lambda _p, msg: marks.append((msg.split(": ")[-1], time.perf_counter())))
            marks.append(("end", time.perf_counter()))
            cpu = round(time.process_time() - cpu0, 3)
            times = {a[0]: round(b[1] - a[1], 3) for a, b in zip(marks[:-1], marks[1:])}
            times["setup"] = round(marks[0][1] - t, 3)
            total = round(sum(times.values()), 3)
            if n not in per_model or total < per_model[n]["total_s"]:
                per_model[n] = {"total_s": total, "cpu_s": cpu, "probes_s": times}
            print(f"{n:14s} {total:7.2f} s wall, {cpu:7.2f} s CPU  " + " ".join(f"{k} {v:.2f}" for k, v in times.items()), flush=True)
    report = {
        "size": size, "frames": frames, "models": per_model,
        "suite_total_s": round(sum(v["total_s"] for v in per_model.values()), 3),
        "suite_cpu_s": round(sum(v["cpu_s"] for v in per_model.values()), 3),
        "model_load_s": round(load_s, 3), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load0], "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "precision": args.precision,
        "note": "one run_probes call per model (clips shared between probes coded once); probes_s from its "
                "progress marks",
    }
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"suite total {report['suite_total_s']:.1f} s wall, {report['suite_cpu_s']:.1f} s CPU for {len(per_model)} models at {size} px, {frames} frames "
          f"(load average {load0[0]:.1f} -> {report['load_average_after'][0]:.1f}); wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
