"""One training loop for every family: resumable, logged, and ending in shipped weights.

    vaelab train sd-vae --steps 4000 --threads 1

writes ``runs/<model>/ckpt.pt`` (resumable; read back with ``weights_only=True``) and
``runs/<model>/log.jsonl`` while it runs, then evaluates on the held-out 20 % of each clip,
and saves ``assets/weights/<model>.safetensors`` (fp16) plus ``<model>.json`` (recipe,
wall time, held-out PSNR/SSIM) which the model card shows.
"""
from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import models
from ..models.base import reads_captions
from .data import DataMissingError, Sampler, heldout_clips, heldout_sets, missing_sources, train_sources
from .losses import PatchDiscriminator, adaptive_gan_weight, hinge_d_loss, reconstruction_loss

DATA_MIX_TEXT = {
    "v1": "bigbuckbunny + bikes (first 80 % of frames, short side 128 and 192 px) and scikit-image photos with a "
          "synthetic panning camera; random crops, h-flips",
    "v2": "data manifest v2 (docs/DATA.md): the v1 sources plus 8 Debian wallpaper photographs, 20 % procedural "
          "clips, colour jitter, a camera that pans/zooms/rotates/shakes over photos; random crops, h-flips",
}


@dataclass
class TrainConfig:
    model: str
    steps: int = 4000
    batch: int = 8
    crop: int = 64
    frames: int = 1
    lr: float = 4e-4
    warmup: int = 100
    wavelet_weight: float = 0.5
    gan_weight: float = 0.0  # 0 = no discriminator
    disc_start: int = 2000
    photo_share: float = 0.3
    data_mix: str = "v1"  # v2: the whole manifest, colour jitter, procedural clips, full camera (docs/DATA.md)
    image_batch_share: float = 0.0  # video models: share of steps that train on a batch of single frames
    captions: bool = True  # models with a caption path (VideoVAE+) see each source's caption (data.CAPTIONS)
    dead_code_every: int = 100  # VQ only: re-seed codes unused in the last window from encoder outputs
    seed: int = 0
    threads: int = 1
    ckpt_every: int = 250
    eval_every: int = 500
    out_dir: str = "runs"
    model_config: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"  # auto|fp32|bf16: forward under autocast, fp32 master weights, losses in fp32


def pixel_frames_per_step(cfg: TrainConfig) -> int:
    """Pixel-frames (frames x height x width) one step trains on; image steps keep the count (batch x frames)."""
    return cfg.batch * cfg.frames * cfg.crop * cfg.crop


def steps_for_budget(cfg: TrainConfig, pixel_frames: float) -> int:
    """Steps that see ``pixel_frames`` at this batch, frame count and crop: the one budget every family shares."""
    return math.ceil(pixel_frames / pixel_frames_per_step(cfg))


def _lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


@torch.no_grad()
def evaluate(model: models.VAE, clips: dict[str, np.ndarray], max_frames: int | None = None,
             full: bool = False, captions: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Held-out numbers per clip (and their mean); ``full`` adds SSIM via vaelab.metrics; ``captions``
    (clip name -> caption) go to a caption model (VideoVAE+), otherwise it runs without one."""
    from ..engine import run_model

    was_training = model.training
    model.eval()
    out: dict[str, Any] = {}
    for name, frames in clips.items():
        frames = frames[:max_frames] if max_frames else frames
        cap = (captions or {}).get(name)
        # window=0: the whole clip in one call, as every record was measured (not the app's bounded-memory windows)
        res = run_model(model, frames, model_kwargs={"caption": cap} if cap else None, window=0)
        if full:
            from ..metrics import clip_metrics

            m = clip_metrics(frames, res.recon, with_lpips=False)
            out[name] = {"psnr": round(m.psnr_mean, 3), "ssim": round(m.ssim_mean, 4),
                         "delta_e_mean": round(m.delta_e_mean, 3), "delta_e_p95": round(m.delta_e_p95, 3),
                         "chroma_ratio": None if m.chroma_ratio is None else round(m.chroma_ratio, 3),
                         "hue_shift_deg": None if m.hue_shift_deg is None else round(m.hue_shift_deg, 1),
                         "frames": int(len(frames)), "size": f"{frames.shape[2]}x{frames.shape[1]}"}
        else:
            from ..metrics import psnr_per_frame

            out[name] = {"psnr": round(float(psnr_per_frame(frames, res.recon).mean()), 3)}
    out["mean_psnr"] = round(float(np.mean([v["psnr"] for v in out.values()])), 3)
    if full:
        per_clip = [v for v in out.values() if isinstance(v, dict)]
        for key in ("ssim", "delta_e_mean", "delta_e_p95"):
            out[f"mean_{key}"] = round(float(np.mean([v[key] for v in per_clip])), 4)
    model.train(was_training)
    return out


def forward_losses(model: models.VAE, x: torch.Tensor, caps: Any, cfg: TrainConfig, precision: str,
                   takes_caption: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(recon, reg, losses) of one training batch: the model's forward under ``precision``'s autocast (fp32
    master weights; nothing for fp32), the reconstruction losses and regularisers in float32."""
    from ..device import autocast

    with autocast(precision, x.device):
        recon, reg = model(x, caption=caps) if takes_caption else model(x)
    if precision != "fp32":
        recon = recon.float()
        reg = {k: (v.float() if k != "_indices" and torch.is_tensor(v) and v.is_floating_point() else v)
               for k, v in reg.items()}
    losses = reconstruction_loss(x, recon, cfg.wavelet_weight)
    losses.update({k: v for k, v in reg.items() if not k.startswith("_")})
    return recon, reg, losses


def _restart_dead_codes(model: models.VAE, usage: torch.Tensor, z_e: torch.Tensor) -> int:
    """Replace never-chosen codes with random recent encoder outputs (a standard VQ-VAE remedy for collapse)."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    pool = z_e.detach().permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
    pick = pool[torch.randint(len(pool), (len(dead),))]
    model.quantize.embedding.weight.data[dead] = pick + 0.01 * torch.randn_like(pick)
    return len(dead)


def build_for_training(cfg: TrainConfig) -> models.VAE:
    """A fresh model as training starts it (CV-VAE: inflated from the trained image VAE, whose frozen decoder
    regularises its latents)."""
    model = models.build(cfg.model, cfg.model_config or None)
    if model.parent is not None:
        model.start_from(models.load(model.parent, device="cpu"))
    return model


def train(cfg: TrainConfig, log=print) -> dict[str, Any]:
    from ..device import resolve_precision

    precision = resolve_precision(cfg.precision, "cpu", default="fp32")
    missing = missing_sources(cfg.data_mix)
    if missing:  # a run on part of the mix would be recorded as this mix and compared with runs on all of it
        raise DataMissingError(f"data mix {cfg.data_mix} needs {len(missing)} photographs that are not installed "
                               f"({', '.join(missing[:3])}, ...): apt-get install plasma-workspace-wallpapers")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run_dir = Path(cfg.out_dir) / cfg.model
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = run_dir / "ckpt.pt", run_dir / "log.jsonl"

    model = build_for_training(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    disc = PatchDiscriminator() if cfg.gan_weight > 0 else None
    opt_d = torch.optim.AdamW(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9)) if disc else None
    step, elapsed = 0, 0.0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        if disc and "disc" in ck:
            disc.load_state_dict(ck["disc"])
            opt_d.load_state_dict(ck["opt_d"])
        step, elapsed = int(ck["step"]), float(ck["elapsed"])
        log(f"resumed {cfg.model} at step {step}")

    sampler = Sampler(train_sources(mix=cfg.data_mix), crop=cfg.crop, frames=cfg.frames, photo_share=cfg.photo_share,
                      seed=cfg.seed + step, mix=cfg.data_mix)
    heldout = heldout_clips(128)
    is_vq = model.quantised
    takes_caption = cfg.captions and reads_captions(model)
    image_rng = np.random.default_rng(cfg.seed + 7919 + step)  # own stream: the video batches stay as before
    usage = torch.zeros(model.quantize.n_embed, dtype=torch.long) if is_vq else None
    model.train()
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.model}", dynamic_ncols=True, mininterval=5)
    t_start = time.perf_counter() - elapsed
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = _lr_at(cfg, step)
        # joint image + video training: an image is a 1-frame clip (W.A.L.T's causal first frame, VideoVAE+'s
        # image mode); batch * frames single frames keep the step's pixel count
        image_step = cfg.frames > 1 and image_rng.random() < cfg.image_batch_share
        x, caps = sampler.sample(cfg.batch * cfg.frames if image_step else cfg.batch, frames=1 if image_step else None)
        recon, reg, losses = forward_losses(model, x, caps, cfg, precision, takes_caption)
        if disc is not None and step >= cfg.disc_start:
            fake = disc(recon.transpose(1, 2).flatten(0, 1))
            g_loss = -fake.mean()
            rec = losses["l1"] + losses["wavelet"]
            losses["gan"] = cfg.gan_weight * adaptive_gan_weight(rec, g_loss, model.decoder.last_layer) * g_loss
        total = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if disc is not None and step >= cfg.disc_start:
            real = disc(x.transpose(1, 2).flatten(0, 1))
            fake = disc(recon.detach().transpose(1, 2).flatten(0, 1))
            d_loss = hinge_d_loss(real, fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        if is_vq:
            usage += torch.bincount(reg["_indices"].flatten(), minlength=len(usage))
            if cfg.dead_code_every and (step + 1) % cfg.dead_code_every == 0:
                if step < int(0.8 * cfg.steps):  # let the codebook settle before the end
                    with torch.no_grad():
                        z_e = model.quant_conv(model.encoder(x.transpose(1, 2).flatten(0, 1)))
                    _restart_dead_codes(model, usage, z_e)
                usage.zero_()
        step += 1
        bar.update(1)
        rec = {"step": step, "lr": round(_lr_at(cfg, step - 1), 7), **({"image_batch": 1} if image_step else {}),
               **{k: round(float(v.detach()) if torch.is_tensor(v) else float(v), 5) for k, v in losses.items()},
               "time_s": round(time.perf_counter() - t_start, 1)}
        if step % 25 == 0:
            bar.set_postfix(loss=f"{float(total):.4f}")
            with log_path.open("a") as f:
                f.write(json.dumps(rec) + "\n")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ev = evaluate(model, heldout, max_frames=8)
            with log_path.open("a") as f:
                f.write(json.dumps({"step": step, "heldout_psnr_8f": ev["mean_psnr"]}) + "\n")
            log(f"{cfg.model} step {step}: held-out PSNR (8 frames/clip) {ev['mean_psnr']:.2f} dB")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            ck = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                  "elapsed": time.perf_counter() - t_start}
            if disc:
                ck.update(disc=disc.state_dict(), opt_d=opt_d.state_dict())
            torch.save(ck, ckpt_path.with_suffix(".tmp"))
            ckpt_path.with_suffix(".tmp").replace(ckpt_path)
    bar.close()
    return finalize(model, cfg, time.perf_counter() - t_start, heldout, sampler)


def caption_effect(model: models.VAE, heldout: dict[str, np.ndarray], none_psnr: float) -> dict[str, Any]:
    """Held-out mean PSNR of a caption model with each clip's own caption, none (``none_psnr``: the plain
    held-out evaluation, already run), and a wrong one."""
    from ..analysis.ablations import wrong_caption_for
    from .data import caption_for

    right = {n: caption_for(n) for n in heldout}
    wrong = {n: wrong_caption_for(c) for n, c in right.items()}
    out = {"right": evaluate(model, heldout, captions=right)["mean_psnr"], "none": none_psnr,
           "wrong": evaluate(model, heldout, captions=wrong)["mean_psnr"]}
    return out | {"protocol": "held-out clips as above, PSNR only; right = data.CAPTIONS, wrong = "
                              "analysis.ablations.wrong_caption_for"}


@torch.no_grad()
def finalize(model: models.VAE, cfg: TrainConfig, wall_s: float, heldout: dict[str, np.ndarray],
             sampler: Sampler) -> dict[str, Any]:
    """Scaling factor (KL models), fp16 weights, held-out numbers, and the JSON record."""
    model.eval()
    if "scaling_factor" in model.config:
        # LDM recipe: 1 / std of the latents of a training batch, so latents have unit variance for a diffusion model
        z = model.encode(sampler.batch(32))
        # a latent with parts (VidTwin's structure and dynamics) is scaled as one: every part together
        model.config = dataclasses.replace(model.config, scaling_factor=round(float(1.0 / z.flatten().std()), 5))
    path = models.save_weights(model, models.lab_weights_path(cfg.model))
    parent_sha = None
    if model.parent is not None:  # trained against the parent's shipped weights: an older pinned copy is stale now
        import hashlib

        parent_sha = hashlib.sha256(models.lab_weights_path(model.parent).read_bytes()).hexdigest()
        models.weights.parent_weights_path(cfg.model).unlink(missing_ok=True)
    # evaluate what we ship: the fp16 file read back
    shipped = models.load(cfg.model, weights=str(path), device="cpu")
    ev = evaluate(shipped, heldout, full=True)
    reads = reads_captions(shipped)
    record = {
        "model": cfg.model,
        "config": models.config_dict(model.config),
        "params": model.num_params(),
        "recipe": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("out_dir", "model_config")}
                  | {"losses": "L1 + wavelet high-band L1 (weight %g) + model regulariser%s" % (
                      cfg.wavelet_weight, " + hinge PatchGAN" if cfg.gan_weight else ""),
                     "optimizer": "AdamW(betas=(0.9, 0.99)), linear warm-up then cosine to 10 %, grad-clip 1.0",
                     "data": DATA_MIX_TEXT[cfg.data_mix]},
        "steps": cfg.steps,
        "pixel_frames": cfg.steps * pixel_frames_per_step(cfg),
        "wall_time_s": round(wall_s, 1),
        "machine": f"{platform.machine()}, {cfg.threads} CPU thread(s), torch {torch.__version__}",
        "heldout": ev | {"protocol": "last 20 % of frames of each clip, short side 128 px, per-frame PSNR/SSIM "
                                     "(vaelab.metrics conventions), averaged over frames, then over clips"
                                     + (", no caption" if reads else "")},
        **({"caption_effect": caption_effect(shipped, heldout, ev["mean_psnr"])} if reads else {}),
        **({"heldout_sets": {name: evaluate(shipped, clips, full=True) for name, clips in heldout_sets(128).items()
                             if clips}} if cfg.data_mix == "v2" else {}),
        "weights_file": path.name,
        **({"parent": {"model": model.parent, "weights_sha256": parent_sha}} if parent_sha else {}),
        "date": time.strftime("%Y-%m-%d"),
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record
