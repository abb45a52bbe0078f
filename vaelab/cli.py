"""``vaelab`` command line: serve, eval, train, models, bench.

Errors a user can cause (bad clip, unknown model, missing weights) end in one line on stderr
and a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _fail(msg: str, code: int = 2) -> int:
    print(f"vaelab: error: {msg}", file=sys.stderr)
    return code


def _write_failure(path: str, text: str) -> str | None:
    """Write ``text`` to ``path``; the one-line reason when that fails (None when written)."""
    try:
        Path(path).write_text(text)
    except OSError as e:
        return f"could not write {path}: {e.strerror or e}"
    return None


def _model_list(spec: str, given: tuple[str, ...] = ()) -> list[str]:
    from . import models

    if spec in ("all", ""):
        return models.names()
    names = [s.strip() for s in spec.split(",") if s.strip()]
    extras = models.extra_names()  # configured production VAEs with weights on disk
    unknown = [n for n in names if n not in models.all_names() and n not in extras]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(models.names())}")
    untrained = [n for n in names if n not in models.names() and n not in given]
    if untrained:
        raise ValueError(f"no lab weights shipped for {', '.join(untrained)} yet (train with `vaelab train NAME`); "
                         f"trained: {', '.join(models.names())}")
    return names


def _weights_specs(items: list[str]) -> dict[str, str]:
    """``--weights NAME=SPEC`` (repeatable): a published checkpoint (file, folder or repo id) for one model."""
    out = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ValueError(f"--weights {item!r}: expected NAME=FILE, NAME=FOLDER or NAME=OWNER/REPO[:FILE]")
        out[name.strip()] = spec.strip()
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    """One clip (the report as JSON, optionally a side-by-side MP4), or a batch (see ``vaelab.batch``)."""
    from . import models
    from .io import VideoDecodeError, read_clip
    from .pipeline import reconstruct_clip

    if args.frames < 1 or args.size < 2:
        return _fail("--frames must be >= 1 and --size >= 2")
    if args.workers is not None and args.workers < 1:
        return _fail("--workers must be >= 1")
    if not args.inputs and args.list is None:
        return _fail("give a clip, a folder or --list FILE")
    batch = (args.out is not None or args.list is not None or len(args.inputs) != 1
             or Path(args.inputs[0]).is_dir())
    try:
        weights = _weights_specs(args.weights)
    except ValueError as e:
        return _fail(str(e))
    if batch:
        if weights:
            return _fail("--weights is a one-clip option (a batch runs the lab weights)")
        return _eval_batch(args)
    for flag, on in (("--side-by-side", args.side_by_side), ("--latent-distances", args.latent_distances),
                     ("--pooled-psnr", args.pooled_psnr), ("--workers", args.workers is not None)):
        if on:
            return _fail(f"{flag} is a batch option: add --out DIR (one clip or many)")
    args.clip = args.inputs[0]
    for out in (args.json, args.output):
        if out and not Path(out).resolve().parent.is_dir():
            return _fail(f"cannot write {out}: its directory does not exist")
    try:
        names = _model_list(args.models, tuple(weights))
        stray = [m for m in weights if m not in names]
        if stray:
            return _fail(f"--weights for {', '.join(stray)}, which --models does not run")
        clip = read_clip(args.clip, max_frames=args.frames, size=args.size)
        comp = reconstruct_clip(clip.frames, names, device=args.device, with_lpips=not args.no_lpips,
                                fps=clip.fps, clip_notes=clip.notes, precision=args.precision,
                                weights=weights or "lab")
    except (VideoDecodeError, ValueError, models.WeightsError, OSError) as e:
        return _fail(str(e))
    report = comp.to_json()
    if args.json and (err := _write_failure(args.json, json.dumps(report, indent=2) + "\n")):
        return _fail(err)
    for name, r in report["models"].items():
        lp = "n/a" if r["lpips"] is None else f"{r['lpips']:.4f}"
        print(f"{name:14s} PSNR {r['psnr']:6.2f} dB  SSIM {r['ssim']:.4f}  LPIPS {lp}  latent {r['latent_shape']}  "
              f"x{r['compression']:.0f}  enc {r['encode_s']:.2f}s dec {r['decode_s']:.2f}s  {r['device']} {r['precision']}")
    if report["lpips_status"] and not any(r["lpips"] is not None for r in report["models"].values()):
        print(report["lpips_status"], file=sys.stderr)
    if args.output:
        from .io import write_mp4
        from .viz_video import side_by_side

        try:
            write_mp4(side_by_side([comp.frames] + [r.run.recon for r in comp.results.values()],
                                   ["input"] + list(comp.results)), args.output, fps=clip.fps)
        except OSError as e:
            return _fail(f"could not write {args.output}: {e.strerror or e}")
    return 0


def _eval_batch(args: argparse.Namespace) -> int:
    """``vaelab eval`` over folders / list files / several clips into ``--out DIR`` (resumable)."""
    from . import models
    from .batch import BatchError, collect_inputs, print_summary, run_batch

    if args.out is None:
        return _fail("evaluating a folder or several clips needs --out DIR (tables, per-clip results, MP4s)")
    if args.output:
        return _fail("--output is for one clip; in a batch use --side-by-side (MP4s go to DIR/side_by_side/)")
    before = os.environ.get(ENV_PRECISION)
    if args.precision:  # batch workers (other processes) read the setting from the environment
        os.environ[ENV_PRECISION] = args.precision
    try:
        names = _model_list(args.models)
        jobs = collect_inputs(args.inputs, args.list)
        report = run_batch(jobs, names, args.out, frames=args.frames, size=args.size, device=args.device,
                           with_lpips=not args.no_lpips, workers=args.workers, side_by_side=args.side_by_side,
                           latent_distances=args.latent_distances,
                           latent_reference=None if args.latent_reference in ("none", "") else args.latent_reference,
                           pooled=args.pooled_psnr, progress=lambda line: print(line, file=sys.stderr))
    except (BatchError, ValueError, models.WeightsError, OSError) as e:
        return _fail(str(e))
    finally:  # the setting is this call's, not the process's (a library caller keeps its own default)
        if before is None:
            os.environ.pop(ENV_PRECISION, None)
        else:
            os.environ[ENV_PRECISION] = before
    print_summary(report)
    print(f"wrote {Path(args.out) / 'aggregate.csv'}, per_clip.csv and report.json: {len(jobs)} clip(s), "
          f"{report.computed} result(s) computed, {report.skipped} already there", file=sys.stderr)
    if args.json:
        try:
            Path(args.json).write_text((Path(args.out) / "report.json").read_text())
        except OSError as e:
            return _fail(f"could not write {args.json}: {e.strerror or e}")
    for f in report.failed:
        print(f"vaelab: failed: {f['clip']}: {f['error']}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_train(args: argparse.Namespace) -> int:
    from . import models
    from .train.loop import TrainConfig, train

    if args.model not in models.all_names():
        return _fail(f"unknown model {args.model!r}; choose from {', '.join(models.all_names())}")
    import dataclasses

    from .train.loop import steps_for_budget

    cfg = TrainConfig(model=args.model, steps=args.steps, batch=args.batch, crop=args.crop, lr=args.lr,
                      threads=args.threads, out_dir=args.out, gan_weight=args.gan_weight, warmup=args.warmup,
                      ckpt_every=args.ckpt_every, image_batch_share=args.image_batch_share,
                      captions=not args.no_captions, frames=args.frames or TrainConfig.frames,
                      data_mix=args.data_mix, photo_share=args.photo_share, precision=args.precision)
    if args.pixel_frames:
        cfg = dataclasses.replace(cfg, steps=steps_for_budget(cfg, args.pixel_frames))
        print(f"vaelab: {args.pixel_frames:.3g} pixel-frames at batch {cfg.batch} x {cfg.frames} frames x "
              f"{cfg.crop}^2 = {cfg.steps} steps", file=sys.stderr)
    from .train.data import DataMissingError

    try:
        record = train(cfg)
    except DataMissingError as e:
        return _fail(str(e))
    print(json.dumps({"model": record["model"], "heldout": record["heldout"], "wall_time_s": record["wall_time_s"]},
                     indent=2))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import models

    cards = [c.to_dict() for c in models.available()]
    lab = set(models.all_names())
    if args.json:
        print(json.dumps(cards, indent=2))
        return 0
    for c in cards:
        held = c["training"].get("heldout", {})
        psnr = (f"{held['mean_psnr']:.2f} dB held-out" if "mean_psnr" in held
                else "published weights" if c["name"] not in lab else "no lab weights yet")
        print(f"{c['name']:14s} {c['kind']:5s} {c['temporal_factor']}x{c['spatial_factor']}x{c['spatial_factor']} "
              f"C={c['latent_channels']:<3d} params {c['params'] / 1e6:5.2f} M  {psnr}  ({c['family']})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .ui.app import launch

    if args.precision:  # the app's default Precision choice
        os.environ[ENV_PRECISION] = args.precision
    launch(host=args.host, port=args.port, workshop=args.workshop)
    return 0


def models_kind(name: str) -> str:
    from . import models

    return models.card(name).kind


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    try:
        names = _model_list(args.models)
    except ValueError as e:
        return _fail(str(e))
    try:
        report = run_bench(names, size=args.size, frames=args.frames, reference=not args.no_reference,
                           precision=args.precision, train_steps=args.train_steps,
                           **({"threads": args.threads} if args.threads else {}))
    except ValueError as e:  # e.g. an unknown or unsupported precision
        return _fail(str(e))
    if args.stream_memory:
        from .bench import bench_stream_memory

        video = [n for n in names if models_kind(n) == "video"]
        if not video:
            return _fail("--stream-memory needs a video model among --models")
        lengths = tuple(int(v) for v in args.stream_lengths.split(","))
        report["stream_memory"] = bench_stream_memory(video[0], lengths=lengths, size=args.stream_size or None,
                                                      tile=args.stream_tile or None, overlap=args.stream_overlap)
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def cmd_latents(args: argparse.Namespace) -> int:
    """Collect video / image / reference latents of a clip, write them with 2D coordinates, print distances."""
    import numpy as np

    from . import models
    from .analysis import latents
    from .engine import get_model
    from .io import VideoDecodeError, read_clip

    if args.frames < 1 or args.size < 2 or args.cap < 1:
        return _fail("--frames and --cap must be >= 1 and --size >= 2")
    if not Path(args.out).resolve().parent.is_dir():
        return _fail(f"cannot write {args.out}: its directory does not exist")
    try:
        names = _model_list(args.models)
        if args.models in ("all", ""):
            names = [n for n in names if models.model_class(n).card.kind == "video"]
        image = [n for n in names if models.model_class(n).card.kind != "video"]
        if image:
            raise ValueError(f"{', '.join(image)}: image model(s); --models takes video models "
                             "(the image model is --reference)")
        if not names:
            raise ValueError("no video model with lab weights to compare")
        ref = None if args.reference in ("none", "") else _model_list(args.reference)
        if ref and (len(ref) != 1 or models.model_class(ref[0]).card.kind != "image"):
            raise ValueError(f"--reference must be one image model or 'none', got {args.reference!r}")
        clip = read_clip(args.clip, max_frames=args.frames, size=args.size)
        lset = latents.collect(clip.frames, [get_model(n, device=args.device) for n in names],
                               get_model(ref[0], device=args.device) if ref else None)
        table = latents.distance_table(lset)
        sub = lset.subsample(args.cap, args.seed)
        coords = latents.embed(sub, args.method, seed=args.seed)
        out = sub.to_npz(args.out, coords=np.asarray(coords), method=np.array(args.method),
                         distances=np.array(json.dumps(table)), n_full=np.array(len(lset)))
    except (VideoDecodeError, ValueError, models.WeightsError, OSError) as e:
        return _fail(str(e))
    for note in lset.notes:
        print(f"note: {note}", file=sys.stderr)
    for d in table:
        if d["frechet"] is None:
            print(f"{d['model']:14s} {d['a']} vs {d['b']:18s} C={d['channels']}  n/a ({d['reason']})")
        else:
            print(f"{d['model']:14s} {d['a']} vs {d['b']:18s} C={d['channels']}  Frechet {d['frechet']:.4g}  "
                  f"sliced-W2 {d['sliced_w2']:.4g}  (n {d['n_a']}/{d['n_b']})")
    print(f"wrote {out}: {len(sub)} of {len(lset)} vectors with {args.method} coordinates "
          "(distances use all vectors)")
    return 0


def _precision_flag(p: argparse.ArgumentParser, what: str, default: str | None = None) -> None:
    from .device import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default=os.environ.get(ENV_PRECISION) or default or "auto",
                   help=f"auto|fp32|bf16|fp16: {what} (default: ${ENV_PRECISION} or "
                        f"{default or 'auto'}; auto = bf16 on a GPU with bf16 or a CPU with native bf16 units, "
                        "fp16 on other GPUs, fp32 on other CPUs)")


def cmd_probe(args: argparse.Namespace) -> int:
    """The Diagnostics probe suite (``vaelab.analysis.probes``) on each model; JSON report, one line per model."""
    from . import models
    from .analysis import probes
    from .engine import get_model

    if args.json and not Path(args.json).resolve().parent.is_dir():
        return _fail(f"cannot write {args.json}: its directory does not exist")
    try:
        size, frames = probes.check_settings(args.size, args.frames)
        names = _model_list(args.models)
        chosen = tuple(p.strip() for p in args.probes.split(",") if p.strip()) if args.probes else probes.PROBES
        if any("=" not in w for w in args.weights):
            raise ValueError("--weights takes NAME=SPEC (e.g. sd-vae=stabilityai/sd-vae-ft-mse)")
        weights = dict(w.split("=", 1) for w in args.weights)  # released checkpoints: NAME=path-or-repo
        bad = [n for n in weights if n not in names]
        if bad:
            raise ValueError(f"--weights for {', '.join(bad)}, which is not among --models")
        loaded = {n: get_model(n, weights.get(n, "lab"), args.device) for n in names}
        report = probes.run_probes(loaded, size, frames, probes=chosen, precision=args.precision, pool=args.pool,
                                   progress=lambda p, msg: print(f"[{100 * p:3.0f}%] {msg}", file=sys.stderr))
    except (ValueError, models.WeightsError, OSError) as e:
        return _fail(str(e))
    out = report.to_json()
    if args.json and (err := _write_failure(args.json, json.dumps(out, indent=1) + "\n")):
        return _fail(err)
    for name, m in out["models"].items():
        parts = [f"{name:14s}"]
        if "spatial_mtf" in m:
            s = m["spatial_mtf"]
            parts.append(f"half-gain {s['half_gain_freq']:.3f}{'' if s['half_gain_reached'] else '+'} cyc/px")
        if "temporal_mtf" in m:
            parts.append(f"static flicker {m['temporal_mtf']['static_flicker']:.2f}")
        if "flat_field" in m:
            parts.append(f"flat off-DC {m['flat_field']['off_dc_energy']:.3g}")
        if "colour_chart" in m:
            parts.append(f"chart dE00 {m['colour_chart']['delta_e_mean']:.2f}")
        print("  ".join(parts + [f"{m['device']} {m['precision']}", f"{m['seconds']:.1f}s"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vaelab", description="See what image and video VAEs do to a clip.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="start the web app (same as python app.py)")
    s.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    s.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    s.add_argument("--workshop", action="store_true", help="preload models and the examples' results")
    _precision_flag(s, "the app's default Precision choice")
    s.set_defaults(func=cmd_serve)

    e = sub.add_parser("eval", help="reconstruct a clip (or a folder / list of clips) and report metrics",
                       description="One clip: metrics on stdout, --json report, --output side-by-side MP4. "
                                   "Folders, several clips or --list: a resumable batch into --out DIR with "
                                   "per_clip.csv, aggregate.csv and report.json (metric conventions included).")
    e.add_argument("inputs", nargs="*", metavar="CLIP", help="video/image files or folders (walked recursively)")
    e.add_argument("--list", help="text file with one clip path per line (relative to the file; # comments)")
    e.add_argument("--models", default="all", help="'all' or comma-separated names")
    e.add_argument("--frames", type=int, default=16, help="first N frames (default 16)")
    e.add_argument("--size", type=int, default=128, help="short side in px, aspect kept (default 128)")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="batch: auto/cuda use every visible GPU (one worker each)")
    e.add_argument("--json", help="write the full report here")
    e.add_argument("--output", help="one clip: write a side-by-side MP4 here")
    e.add_argument("--no-lpips", action="store_true")
    e.add_argument("--weights", action="append", default=[], metavar="MODEL=WEIGHTS",
                   help="one clip: published weights for MODEL (a file, a diffusers folder or OWNER/NAME[:PATH], "
                        "e.g. cv-vae=AILab-CVC/CV-VAE:vae3d_v1-1); repeatable")
    e.add_argument("--out", help="batch output folder (resumable: clips already in it are skipped)")
    e.add_argument("--workers", type=int, help="batch: parallel worker processes (CPU: they split the cores; "
                                                "GPU: at most one per GPU)")
    e.add_argument("--side-by-side", action="store_true", help="batch: write DIR/side_by_side/<clip>.mp4")
    e.add_argument("--pooled-psnr", action="store_true",
                   help="batch: headline PSNR = TokenBench's pooled PSNR (one MSE per clip, mean over clips)")
    e.add_argument("--latent-distances", action="store_true",
                   help="batch: Frechet / sliced-W2 between image and video latents of each video model")
    e.add_argument("--latent-reference", default="sd-vae",
                   help="image model for --latent-distances, or 'none' (default sd-vae)")
    _precision_flag(e, "what the models run in")
    e.set_defaults(func=cmd_eval)

    t = sub.add_parser("train", help="train a model's lab weights on the offline data")
    t.add_argument("model")
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--crop", type=int, default=64)
    t.add_argument("--frames", type=int, default=0, help="frames per sample (0 = model default)")
    t.add_argument("--lr", type=float, default=4e-4)
    t.add_argument("--warmup", type=int, default=100, help="linear warm-up steps (default 100)")
    t.add_argument("--ckpt-every", type=int, default=250, help="checkpoint period in steps (default 250); "
                   "re-running with --steps at or below the checkpoint's step just finalises it")
    t.add_argument("--gan-weight", type=float, default=0.0)
    t.add_argument("--image-batch-share", type=float, default=0.0,
                   help="video models: share of steps trained on single frames (joint image + video training)")
    t.add_argument("--no-captions", action="store_true", help="train a caption model (videovae-plus) without captions")
    t.add_argument("--data-mix", choices=("v1", "v2"), default="v1",
                   help="v1: the first lab weights' data; v2: the whole data manifest with colour jitter, "
                   "procedural clips and the full synthetic camera (docs/DATA.md)")
    t.add_argument("--photo-share", type=float, default=0.3, help="share of non-procedural samples from photos")
    t.add_argument("--pixel-frames", type=float, default=0.0,
                   help="training budget in pixel-frames (frames x height x width seen, e.g. 5e8); sets --steps")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--out", default="runs")
    _precision_flag(t, "autocast for forward/backward, fp32 master weights; default fp32", default="fp32")
    t.set_defaults(func=cmd_train)

    m = sub.add_parser("models", help="list the model cards")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)

    b = sub.add_parser("bench", help="measure speed, FLOPs and memory; write JSON")
    b.add_argument("--models", default="all")
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--frames", type=int, default=8)
    b.add_argument("--no-reference", action="store_true", help="skip the diffusers reference comparison")
    b.add_argument("--json", help="write the report here")
    b.add_argument("--stream-memory", action="store_true",
                   help="also: peak RSS of a streamed reconstruction of bigbuckbunny.mp4 (first video model in "
                        "--models) at each of --stream-lengths frames, one fresh process each (slow: minutes at 720p)")
    b.add_argument("--stream-lengths", default="33,66,132")
    b.add_argument("--stream-tile", type=int, default=0, help="--stream-memory: spatial tile in px (0 = untiled)")
    b.add_argument("--stream-overlap", type=int, default=16, help="--stream-memory: tile overlap in px")
    b.add_argument("--stream-size", type=int, default=0, help="short side for --stream-memory (0 = native 720p)")
    _precision_flag(b, "the reduced precision compared with fp32 (per-model times, PSNR, peaks)")
    b.add_argument("--train-steps", type=int, default=0,
                   help="also time this many AdamW steps per family at its recipe in fp32 and --precision")
    b.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = every core)")
    b.set_defaults(func=cmd_bench)

    lt = sub.add_parser("latents", help="UMAP/PCA of image-vs-video latents of a clip; write an npz, print distances")
    lt.add_argument("clip", help="video or image file")
    lt.add_argument("--models", default="all", help="'all' (every video model with weights) or comma-separated")
    lt.add_argument("--reference", default="sd-vae", help="image model to compare with, or 'none' (default sd-vae)")
    lt.add_argument("--frames", type=int, default=8, help="first N frames (default 8)")
    lt.add_argument("--size", type=int, default=128, help="short side in px, aspect kept (default 128)")
    lt.add_argument("--out", default="latents.npz", help="npz to write (default latents.npz)")
    lt.add_argument("--method", default="umap", choices=["umap", "pca"])
    lt.add_argument("--cap", type=int, default=5000, help="max vectors embedded and written (stratified; default 5000)")
    lt.add_argument("--seed", type=int, default=0)
    lt.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    lt.set_defaults(func=cmd_latents)
    pr = sub.add_parser("probe", help="diagnostics on generated probe clips (MTF, time, colour, motion, "
                                      "receptive fields); write JSON")
    pr.add_argument("--models", default="all", help="'all' or comma-separated names")
    pr.add_argument("--frames", type=int, default=9, help="probe length T (5-33, default 9)")
    pr.add_argument("--size", type=int, default=64, help="probe side S in px (multiple of 16, 32-256; default 64)")
    pr.add_argument("--probes", default="", help="comma-separated subset of spatial,temporal,flat,colour,motion,"
                                                 "frame_count,receptive_field (default: all)")
    pr.add_argument("--weights", action="append", default=[], metavar="NAME=SPEC",
                    help="probe a released checkpoint for NAME (a local file/folder or Hugging Face repo id)")
    pr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    _precision_flag(pr, "what the models run in (the JSON records it per model)", default="fp32")
    pr.add_argument("--pool", choices=["thread", "process"], default=None,
                    help="how models run at once on a CPU: worker threads (default) or forked worker processes "
                         "(also VAELAB_PROBE_POOL); the numbers are the same, the seconds may differ")
    pr.add_argument("--json", help="write the report here")
    pr.set_defaults(func=cmd_probe)
    return p


ENV_PRECISION = "VAELAB_PRECISION"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
