"""Batch evaluation: many clips x many models -> per-clip and aggregate tables (CSV + JSON), resumable.

``run_batch`` walks a list of clips (from folders, list files or paths), reconstructs each with every model
through :func:`vaelab.pipeline.reconstruct_clip` (so every number follows ``vaelab.metrics.CONVENTIONS``) and
writes, under the output folder::

    run.json                       the settings; a later run into the same folder must use the same ones
    results/<clip>/<model>.json    one result: summary, per-frame metrics, input info (written atomically)
    results/<clip>/_latents.json   image-vs-video latent distances of the clip (with latent_distances)
    side_by_side/<clip>.mp4        input | each model (with side_by_side)
    per_clip.csv, aggregate.csv, latent_distances.csv, report.json   rebuilt from results/ at the end

Resumable: a (clip, model) whose result file exists is not computed again, so an interrupted run (or one
extended with more clips or models) continues where it stopped. Failed clips are listed, never marked done.

Aggregates are plain means over clips of the per-clip values. ``psnr`` per clip is the mean of per-frame PSNR;
``pooled_psnr`` per clip is one MSE over all of its frames. TokenBench scores a video by exactly that pooled
PSNR and a dataset by the mean over videos, so ``pooled_psnr`` in ``aggregate.csv`` is TokenBench's number;
``pooled=True`` (``--pooled-psnr``) makes it the headline ``psnr_headline`` column too. Only PSNR follows
TokenBench: its SSIM uses skimage's default 7x7 uniform window and its LPIPS a VGG backbone (ours: Gaussian
11x11 SSIM, AlexNet LPIPS), and it guards identical videos with an epsilon (about 187 dB) where we cap at 100 dB.

Work is spread over local devices: one process per GPU (``device="cuda"``/``"auto"`` with several GPUs), or
``workers`` CPU processes that split the cores; ``workers=1`` runs in this process.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

MEDIA_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ogv", ".y4m",
                            ".gif", ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

PER_CLIP_COLUMNS = ["clip", "model", "frames", "width", "height", "psnr", "pooled_psnr", "ssim", "lpips",
                    "latent_shape", "compression", "encode_s", "decode_s", "device", "path"]
AGGREGATE_COLUMNS = ["model", "clips", "frames", "psnr_headline", "psnr", "pooled_psnr", "ssim", "lpips",
                     "psnr_std", "encode_s", "decode_s"]

AGGREGATE_CONVENTIONS = {
    "aggregate": ("per model, arithmetic means over clips of the per-clip values (every clip counts once, "
                  "whatever its length); psnr_std is the standard deviation over clips of per-clip psnr; "
                  "encode_s / decode_s are sums over clips"),
    "pooled_psnr_aggregate": ("mean over clips of per-clip pooled PSNR (one MSE over all frames of the clip): "
                              "TokenBench's PSNR (token_bench/metrics_cli.py: PSNR of each whole video, then the "
                              "mean over videos); identical clips: 100 dB cap here, an epsilon guard (~187 dB) "
                              "there; TokenBench's SSIM (skimage 7x7 uniform window) and LPIPS (VGG) differ from "
                              "ours, so only PSNR is comparable"),
}


class BatchError(ValueError):
    """Bad batch input or settings (one line, for the CLI)."""


@dataclass(frozen=True)
class Settings:
    frames: int
    size: int
    lpips: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClipJob:
    clip_id: str
    path: str


@dataclass
class BatchReport:
    out_dir: Path
    settings: dict[str, Any]
    models: list[str]
    per_clip: list[dict[str, Any]]
    aggregate: list[dict[str, Any]]
    latent_distances: list[dict[str, Any]]
    failed: list[dict[str, str]]
    computed: int
    skipped: int
    conventions: dict[str, str] = field(default_factory=dict)


# --- inputs -----------------------------------------------------------------------------------------------

def collect_inputs(inputs: list[str | Path], list_file: str | Path | None = None) -> list[ClipJob]:
    """Clips from paths: a folder (walked recursively for video/image files), a file, and the lines of a
    list file (one path per line, relative to the list file; '#' starts a comment). Ids are unique."""
    entries: list[tuple[Path, str]] = []  # (path, readable id source)
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise BatchError(f"no video or image files in folder {p.name}")
            entries += [(f, str(f.relative_to(p))) for f in found]
        elif p.is_file():
            entries.append((p, p.name))
        else:
            raise BatchError(f"input not found: {p.name}")
    if list_file is not None:
        lf = Path(list_file).expanduser()
        try:
            lines = lf.read_text().splitlines()
        except OSError as e:
            raise BatchError(f"cannot read list file {lf.name}: {e.strerror or e}") from None
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line:
                p = Path(line).expanduser()
                readable = p.name if p.is_absolute() or ".." in p.parts else line
                entries.append((p if p.is_absolute() else lf.parent / p, readable))
    if not entries:
        raise BatchError("no clips given: pass files, folders or --list FILE")
    seen: dict[Path, str] = {}
    unique = []
    for p, name in entries:
        key = p.resolve()
        if key not in seen:
            seen[key] = name
            unique.append((p, name))
    ids = [_sanitize(name) for _, name in unique]
    clashes = {i for i in ids if ids.count(i) > 1}
    return [ClipJob(i if i not in clashes else f"{i}-{hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:8]}",
                    str(p)) for (p, _), i in zip(unique, ids)]


def _sanitize(name: str) -> str:
    name = name.replace(os.sep, "__").replace("/", "__")
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "clip"


# --- layout ---------------------------------------------------------------------------------------------

def result_path(out_dir: Path, clip_id: str, model: str) -> Path:
    return out_dir / "results" / clip_id / f"{model}.json"


def latents_path(out_dir: Path, clip_id: str) -> Path:
    return out_dir / "results" / clip_id / "_latents.json"


def mp4_path(out_dir: Path, clip_id: str) -> Path:
    return out_dir / "side_by_side" / f"{clip_id}.mp4"


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a crash never leaves half a result that would count as done


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def check_run_settings(out_dir: Path, settings: Settings) -> None:
    """The folder's run.json must hold the same settings (else its results would mix protocols)."""
    manifest = out_dir / "run.json"
    old = _read_json(manifest) if manifest.exists() else None
    if old is not None and old.get("settings") != settings.to_dict():
        raise BatchError(f"{out_dir.name} holds results for other settings ({_fmt(old.get('settings'))}, now "
                         f"{_fmt(settings.to_dict())}): use another --out folder or the same settings")
    if old is None:
        from . import __version__

        _write_json(manifest, {"settings": settings.to_dict(), "vaelab_version": __version__,
                               "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _fmt(d: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()) if isinstance(d, dict) else str(d)


# --- one clip (runs in a worker) ---------------------------------------------------------------------------

def evaluate_clip(job: ClipJob, models: list[str], settings: Settings, out_dir: Path, *, device: str,
                  side_by_side: bool = False, latent_distances: bool = False,
                  latent_reference: str | None = None) -> dict[str, Any]:
    """Compute what is missing for one clip; returns {"clip", "computed": [...], "skipped": [...]} or raises."""
    from .engine import get_model
    from .io import read_clip
    from .pipeline import reconstruct_clip

    todo = [m for m in models if not result_path(out_dir, job.clip_id, m).exists()]
    need_mp4 = side_by_side and not mp4_path(out_dir, job.clip_id).exists()
    need_latents = latent_distances and not _latents_done(out_dir, job.clip_id, models, latent_reference)
    if need_mp4:
        todo = list(models)  # the panel needs every reconstruction
    if not todo and not need_latents:
        return {"clip": job.clip_id, "computed": [], "skipped": list(models)}
    clip = read_clip(job.path, max_frames=settings.frames, size=settings.size)
    computed = []
    if todo:
        comp = reconstruct_clip(clip.frames, todo, device=device, with_lpips=settings.lpips, fps=clip.fps,
                                clip_notes=clip.notes)
        report = comp.to_json()
        for name in todo:
            model = get_model(name, "lab", device)
            _write_json(result_path(out_dir, job.clip_id, name), {
                "clip": job.clip_id, "path": job.path, "model": name, "settings": settings.to_dict(),
                "weights": str(getattr(model, "weights_source", "lab")), "worker_pid": os.getpid(),
                "input": report["input"],
                "lpips_status": report["lpips_status"], "result": report["models"][name]})
            computed.append(name)
        if need_mp4:
            from .io import write_mp4
            from .viz_video import side_by_side as panel

            mp4 = mp4_path(out_dir, job.clip_id)
            mp4.parent.mkdir(parents=True, exist_ok=True)
            write_mp4(panel([comp.frames] + [comp.results[n].run.recon for n in models], ["input"] + list(models)),
                      mp4, fps=clip.fps)
    if need_latents:
        _write_json(latents_path(out_dir, job.clip_id),
                    clip_latent_distances(clip.frames, models, latent_reference, device) | {"clip": job.clip_id})
    return {"clip": job.clip_id, "computed": computed, "skipped": [m for m in models if m not in computed]}


def _latents_done(out_dir: Path, clip_id: str, models: list[str], reference: str | None) -> bool:
    old = _read_json(latents_path(out_dir, clip_id))
    return old is not None and old.get("video_models") == video_models(models) and old.get("reference") == reference


def video_models(models: list[str]) -> list[str]:
    from . import models as registry

    return [n for n in models if registry.model_class(n).card.kind == "video"]


def clip_latent_distances(frames: np.ndarray, models: list[str], reference: str | None, device: str) -> dict[str, Any]:
    """Image-vs-video latent distances of one clip (``vaelab.analysis.latents``): per video model, its latents of
    the clip vs of the frames coded one by one, and each vs the reference image model's when channels match."""
    from .analysis import latents
    from .engine import get_model

    names = video_models(models)
    if not names:
        return {"video_models": [], "reference": reference, "rows": [], "note": "no video model among --models"}
    lset = latents.collect(frames, [get_model(n, "lab", device) for n in names],
                           get_model(reference, "lab", device) if reference else None)
    rows = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
            for r in latents.distance_table(lset)]
    return {"video_models": names, "reference": reference, "rows": rows, "notes": list(lset.notes)}


# --- workers --------------------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(devices, threads: int, extras: dict[str, str], assets: str) -> None:
    import torch

    from . import models

    os.environ["VAELAB_ASSETS"] = assets
    models.use_assets(Path(assets))
    for name, weights in extras.items():
        models.register_extra(name, weights)
    torch.set_num_threads(threads)
    _WORKER["device"] = devices.get()


def _worker_clip(job: ClipJob, kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        return evaluate_clip(job, device=_WORKER["device"], **kwargs)
    except Exception as e:  # noqa: BLE001 - a bad clip must not stop the batch; reported per clip
        return {"clip": job.clip_id, "error": _one_line(e)}


def plan_devices(device: str, workers: int | None) -> list[str]:
    """One entry per worker: every visible GPU once (or ``workers`` of them), else ``workers`` CPU slots."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return gpus[: workers] if workers else gpus
    if device.startswith("cuda:"):
        return [device] * (workers or 1)
    return ["cpu"] * max(1, workers or 1)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


# --- the run ------------------------------------------------------------------------------------------------

def run_batch(jobs: list[ClipJob], models: list[str], out_dir: str | Path, *, frames: int = 16, size: int = 128,
              device: str = "auto", with_lpips: bool = True, workers: int | None = None, side_by_side: bool = False,
              latent_distances: bool = False, latent_reference: str | None = "sd-vae", pooled: bool = False,
              progress: Callable[[str], None] | None = None) -> BatchReport:
    """Evaluate ``jobs`` x ``models`` into ``out_dir`` (see the module doc), then write the tables."""
    from . import metrics
    from . import models as registry

    if frames < 1 or size < 2:
        raise BatchError("--frames must be >= 1 and --size >= 2")
    if not models:
        raise BatchError("no models to evaluate")
    out_dir = Path(out_dir)
    if not out_dir.parent.resolve().is_dir():
        raise BatchError(f"cannot write {out_dir.name}: its parent folder does not exist")
    if latent_distances and latent_reference and latent_reference not in registry.names():
        latent_reference = None  # no weights for the reference: compare video vs image latents only
    if latent_reference and latent_distances and registry.model_class(latent_reference).card.kind != "image":
        raise BatchError(f"the latent reference must be an image model, {latent_reference} is not")
    with_lpips = with_lpips and metrics.lpips_status()[0]
    settings = Settings(frames, size, with_lpips)
    out_dir.mkdir(exist_ok=True)
    check_run_settings(out_dir, settings)
    say = progress or (lambda _msg: None)
    kwargs = {"models": models, "settings": settings, "out_dir": out_dir, "side_by_side": side_by_side,
              "latent_distances": latent_distances, "latent_reference": latent_reference}
    devices = plan_devices(device, workers)
    outcomes = []
    if len(devices) == 1 or len(jobs) == 1:
        for i, job in enumerate(jobs):
            try:
                r = evaluate_clip(job, device=devices[0], **kwargs)
            except Exception as e:  # noqa: BLE001 - reported per clip, the batch goes on
                r = {"clip": job.clip_id, "error": _one_line(e)}
            outcomes.append(r)
            say(_progress_line(i + 1, len(jobs), r))
    else:
        outcomes = _run_parallel(jobs, devices, kwargs, say)
    failed = [{"clip": r["clip"], "path": next(j.path for j in jobs if j.clip_id == r["clip"]), "error": r["error"]}
              for r in outcomes if "error" in r]
    report = build_report(out_dir, jobs, models, settings, failed, pooled)
    report.computed = sum(len(r.get("computed", [])) for r in outcomes)
    report.skipped = sum(len(r.get("skipped", [])) for r in outcomes)
    write_report(report)
    return report


def _run_parallel(jobs: list[ClipJob], devices: list[str], kwargs: dict[str, Any],
                  say: Callable[[str], None]) -> list[dict[str, Any]]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from . import models as registry
    from .models.diffusers_adapters import configured

    ctx = mp.get_context("spawn")  # CUDA cannot be forked; spawn is also what macOS/Windows do
    queue = ctx.Queue()
    for d in devices:
        queue.put(d)
    cpu_workers = sum(d == "cpu" for d in devices)
    threads = max(1, (os.cpu_count() or 1) // max(cpu_workers, 1))
    outcomes = []
    with ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_init_worker,
                             initargs=(queue, threads, configured(), str(registry.ASSETS))) as pool:
        futures = [pool.submit(_worker_clip, job, kwargs) for job in jobs]
        for i, fut in enumerate(as_completed(futures)):
            r = fut.result()
            outcomes.append(r)
            say(_progress_line(i + 1, len(jobs), r))
    return outcomes


def _progress_line(i: int, n: int, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"[{i}/{n}] {r['clip']}: failed: {r['error']}"
    done = f"computed {', '.join(r['computed'])}" if r["computed"] else "all results already in the output"
    return f"[{i}/{n}] {r['clip']}: {done}"


# --- tables ------------------------------------------------------------------------------------------------

def build_report(out_dir: Path, jobs: list[ClipJob], models: list[str], settings: Settings,
                 failed: list[dict[str, str]], pooled: bool) -> BatchReport:
    """Per-clip rows and aggregates from the result files of ``jobs`` x ``models`` (what this run asked for)."""
    from . import metrics

    rows = []
    for job in jobs:
        for name in models:
            res = _read_json(result_path(out_dir, job.clip_id, name))
            if res is None:
                continue
            r, inp = res["result"], res["input"]
            rows.append({"clip": job.clip_id, "model": name, "frames": inp["frames"], "width": inp["width"],
                         "height": inp["height"], "psnr": r["psnr"], "pooled_psnr": r["pooled_psnr"],
                         "ssim": r["ssim"], "lpips": r["lpips"], "latent_shape": "x".join(map(str, r["latent_shape"])),
                         "compression": r["compression"], "encode_s": r["encode_s"], "decode_s": r["decode_s"],
                         "device": r.get("device", ""), "path": job.path})
    aggregate = []
    for name in models:
        mine = [r for r in rows if r["model"] == name]
        if not mine:
            continue
        psnr = np.array([r["psnr"] for r in mine])
        lp = [r["lpips"] for r in mine if r["lpips"] is not None]
        agg = {"model": name, "clips": len(mine), "frames": int(sum(r["frames"] for r in mine)),
               "psnr": round(float(psnr.mean()), 3),
               "pooled_psnr": round(float(np.mean([r["pooled_psnr"] for r in mine])), 3),
               "ssim": round(float(np.mean([r["ssim"] for r in mine])), 4),
               "lpips": round(float(np.mean(lp)), 4) if len(lp) == len(mine) else None,
               "psnr_std": round(float(psnr.std()), 3),
               "encode_s": round(float(sum(r["encode_s"] for r in mine)), 3),
               "decode_s": round(float(sum(r["decode_s"] for r in mine)), 3)}
        agg["psnr_headline"] = agg["pooled_psnr"] if pooled else agg["psnr"]
        aggregate.append(agg)
    conventions = dict(metrics.CONVENTIONS) | AGGREGATE_CONVENTIONS | {
        "psnr_headline": ("pooled_psnr (TokenBench convention, --pooled-psnr)" if pooled
                          else "psnr: per-clip mean of per-frame PSNR, then the mean over clips (VAE Lab default)")}
    return BatchReport(out_dir, settings.to_dict() | {"pooled_psnr_headline": pooled}, list(models), rows,
                       aggregate, _aggregate_latents(out_dir, jobs), failed, 0, 0, conventions)


def _aggregate_latents(out_dir: Path, jobs: list[ClipJob]) -> list[dict[str, Any]]:
    """Mean Frechet / sliced-W2 per (model, a, b) over the clips that have latent distances."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for job in jobs:
        res = _read_json(latents_path(out_dir, job.clip_id))
        for row in (res or {}).get("rows", []):
            groups.setdefault((row["model"], row["a"], row["b"]), []).append(row)
    out = []
    for (model, a, b), rows in groups.items():
        fr = [r["frechet"] for r in rows if r.get("frechet") is not None]
        sw = [r["sliced_w2"] for r in rows if r.get("sliced_w2") is not None]
        out.append({"model": model, "a": a, "b": b, "clips": len(rows), "channels": rows[0]["channels"],
                    "frechet": float(np.mean(fr)) if fr else None, "sliced_w2": float(np.mean(sw)) if sw else None,
                    **({"reason": rows[0]["reason"]} if not fr and rows[0].get("reason") else {})})
    return out


def write_report(report: BatchReport) -> None:
    out = report.out_dir
    _write_csv(out / "per_clip.csv", PER_CLIP_COLUMNS, report.per_clip)
    _write_csv(out / "aggregate.csv", AGGREGATE_COLUMNS, report.aggregate)
    if report.latent_distances:
        _write_csv(out / "latent_distances.csv", ["model", "a", "b", "clips", "channels", "frechet", "sliced_w2"],
                   report.latent_distances)
    _write_json(out / "report.json", {
        "settings": report.settings, "models": report.models, "conventions": report.conventions,
        "aggregate": report.aggregate, "per_clip": report.per_clip, "latent_distances": report.latent_distances,
        "failed": report.failed, "computed": report.computed, "skipped": report.skipped})


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    os.replace(tmp, path)


def print_summary(report: BatchReport, stream=None) -> None:
    stream = stream or sys.stdout
    head = "pooled PSNR (TokenBench)" if report.settings.get("pooled_psnr_headline") else "PSNR"
    for a in report.aggregate:
        lp = "n/a" if a["lpips"] is None else f"{a['lpips']:.4f}"
        print(f"{a['model']:16s} {a['clips']:4d} clips  {head} {a['psnr_headline']:6.2f} dB  "
              f"(per-frame mean {a['psnr']:.2f}, pooled {a['pooled_psnr']:.2f})  SSIM {a['ssim']:.4f}  LPIPS {lp}",
              file=stream)
    for d in report.latent_distances:
        if d["frechet"] is not None:
            print(f"{d['model']:16s} latents {d['a']} vs {d['b']}: Frechet {d['frechet']:.4g}  "
                  f"sliced-W2 {d['sliced_w2']:.4g}  ({d['clips']} clips)", file=stream)
