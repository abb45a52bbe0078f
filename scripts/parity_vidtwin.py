"""Generate the VidTwin parity fixture and the full-size key manifest from the reference code.

Needs a checkout of microsoft/VidTok (the reference: ``vidtok/`` and ``vidtwin/``) and, on ``--deps``, the
reference's Python dependencies that VAE Lab does not install (transformers 4.46.3 with huggingface_hub
0.26.5 and tokenizers 0.20.3, timm 1.0.11, omegaconf 2.3.0 + antlr4-python3-runtime 4.9.3, installed with
``pip install --target DEPS --no-deps ...``). Never runs in CI; the tests only read what it writes:

    tests/fixtures/official/vidtwin/vidtwin_tiny.ckpt     Lightning-style checkpoint {"state_dict": ...}, fp32,
                                                          the released key layout (plus two ``loss.*`` keys,
                                                          as a training checkpoint carries, to be dropped)
    tests/fixtures/official/vidtwin/expected.safetensors  input clip, latents and reconstructions (see below)
    tests/fixtures/official/vidtwin/meta.json             reference commit, reduced config, seed, recipe
    tests/fixtures/official/vidtwin/released_keys.json    every key and shape of the released config

How the reference is run (all in a scratch copy; nothing of it enters VAE Lab):

* Two missing modules are stubbed: ``lightning.pytorch`` (``LightningModule`` = ``nn.Module``; inference only)
  and ``flash_attn.flash_attn_func`` (the released model's attention: exact ``scaled_dot_product_attention``
  with the same ``causal`` flag, so the temporal attention keeps its causal mask as on a GPU).
* The training loss (``loss_config``: LPIPS + PatchGAN, needs downloaded VGG weights) is replaced by
  ``torch.nn.Identity``; the regulariser is ``DiagonalGaussianRegularizer(sample=False)`` (posterior mode).
* Every parameter is re-randomised from ``--seed`` in name order (see ``rerandomise``); the sin-cos position
  buffers stay as the reference computes them.
* ``fp32`` outputs: the reference's ``STBlock`` casts attention inputs to bfloat16 explicitly, which fails on
  CPU without autocast. For an exact fp32 reference the name ``torch`` inside ``vidtwin.modules.st_transformer``
  is swapped for a proxy whose ``bfloat16`` is ``float32`` (no source edit); the rest of the reference runs as
  written (its float64 residual stream included).
* ``bf16`` outputs: the reference as written (flash stub, causal), under ``torch.autocast("cpu", bfloat16)``.
* ``cpupath`` outputs: the reference's own CPU path, ``enable_flashattn=False`` on every attention: its manual
  attention ignores ``causal`` (the temporal attention then sees future frames), under bf16 autocast.

Usage: python scripts/parity_vidtwin.py --ref /tmp/vtref --deps /tmp/refdeps [--out tests/fixtures/official/vidtwin]

``python scripts/parity_vidtwin.py bench`` (no reference needed) measures VAE Lab's released-size model on this CPU
(random weights, one 16x224x224 clip, encode + decode, fp32 and bf16, each in a fresh process: wall time of a
second run after a warm-up, and peak RSS) and writes vaelab/models/vidtwin_released_cost.json for the model card.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SEED = 20251201
# Reduced config (every width/depth the reference constructor takes, shrunk). Heads stay at the released
# counts (12 in the ST-Transformer, 8 in the Q-Former): head counts cannot be read off tensor shapes.
TINY = {
    "input_size": [4, 20, 20], "patch_size": [1, 4, 4], "hidden_size": 24, "encoder_depth": 2, "decoder_depth": 2,
    "num_heads": 12, "num_query_tokens": 3, "query_hidden_size": 16, "qformer_layers": 3, "qformer_heads": 8,
    "qformer_intermediate": 32, "init_ch": 8, "cont_num_blocks": 2, "motion_num_blocks": 2, "expect_ch": 4,
    "d_dim": 3,
}
RELEASED_YAML = "configs/vidtwin/vidtwin_structure_7_7_8_dynamics_7_8.yaml"

STUBS = {
    "lightning/__init__.py": "",
    "lightning/pytorch/__init__.py": "import torch.nn as nn\n\n\nclass LightningModule(nn.Module):\n    pass\n",
    "lightning/pytorch/utilities/__init__.py": "",
    "lightning/pytorch/utilities/rank_zero.py": "def rank_zero_only(fn):\n    return fn\n",
    "flash_attn/__init__.py": (
        "import torch.nn.functional as F\n\n\n"
        "def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False):\n"
        "    # (B, N, H, D) in and out, like flash-attn; exact attention with the same causal rule\n"
        "    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),\n"
        "                                       is_causal=causal, scale=softmax_scale)\n"
        "    return o.transpose(1, 2)\n"),
}


def setup_paths(ref: Path, deps: Path) -> None:
    stubs = Path(tempfile.mkdtemp(prefix="vidtwin_stubs_"))
    for rel, text in STUBS.items():
        (stubs / rel).parent.mkdir(parents=True, exist_ok=True)
        (stubs / rel).write_text(text)
    for pkg in ("vidtwin", "vidtwin/models", "vidtwin/modules"):  # the reference ships these without __init__
        init = ref / pkg / "__init__.py"
        if not init.exists():
            init.write_text("")
    sys.path[:0] = [str(ref), str(stubs), str(deps)]


def reference_config(tiny: bool):
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(str(REF / RELEASED_YAML)).model
    cfg.params.loss_config = {"target": "torch.nn.Identity"}
    cfg.params.regularizer_config.params.sample = False
    cfg.params.pop("ckpt_path", None)
    if tiny:
        t = TINY
        for part, depth in (("encoder_config", t["encoder_depth"]), ("decoder_config", t["decoder_depth"])):
            p = cfg.params[part].params
            p.input_size, p.patch_size = t["input_size"], t["patch_size"]
            p.hidden_size, p.depth, p.num_heads = t["hidden_size"], depth, t["num_heads"]
        q = cfg.params.temporal_qformer_config.params
        q.num_query_tokens, q.query_hidden_size, q.encoder_hidden_size = (
            t["num_query_tokens"], t["query_hidden_size"], t["hidden_size"])
        q.num_hidden_layers, q.num_attention_heads, q.intermediate_size = (
            t["qformer_layers"], t["qformer_heads"], t["qformer_intermediate"])
        for k in ("init_ch", "cont_num_blocks", "motion_num_blocks", "expect_ch", "d_dim"):
            cfg.params[k] = t[k]
    return cfg


def build(tiny: bool, meta: bool = False):
    from vidtok.modules.util import instantiate_from_config

    cfg = reference_config(tiny)
    with torch.device("meta") if meta else contextlib.nullcontext():
        return instantiate_from_config(cfg).eval()


@torch.no_grad()
def rerandomise(model: torch.nn.Module, seed: int) -> None:
    """Every parameter from one generator, in name order: N(0, 1/fan_in) for matrices and kernels, N(0, 0.1^2)
    for biases and tables, 1 + N(0, 0.1^2) for LayerNorm weights, N(0, 1) for the Q-Former's queries."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        r = torch.randn(p.shape, generator=g, dtype=torch.float64)
        if name.endswith("query_embeds"):
            v = r
        elif "LayerNorm" in name or "layernorm" in name:
            v = 1 + 0.1 * r if name.endswith("weight") else 0.1 * r
        elif p.ndim >= 2 and "scale_shift_table" not in name:
            v = r / math.sqrt(p[0].numel())
        else:
            v = 0.3 * r if "scale_shift_table" in name else 0.1 * r
        p.copy_(v.to(p.dtype))


class _Fp32Torch:
    """``torch`` as seen by the reference's st_transformer, but with ``bfloat16`` meaning ``float32``."""

    bfloat16 = torch.float32

    def __getattr__(self, name):
        return getattr(torch, name)


@torch.no_grad()
def run(model, x, variant: str):
    import vidtwin.modules.st_transformer as stt

    attn = [m for m in model.modules() if type(m).__name__ == "Attention"]
    saved_torch, saved_flash = stt.torch, [m.enable_flashattn for m in attn]
    try:
        if variant == "fp32":
            stt.torch = _Fp32Torch()
            ctx = contextlib.nullcontext()
        else:
            ctx = torch.autocast("cpu", dtype=torch.bfloat16)
            if variant == "cpupath":
                for m in attn:
                    m.enable_flashattn = False
        with ctx:
            z, z_content, zx, zy = model.encode(x)
            rec = model.decode(z, z_content, zx, zy)
            rec_s = model.decode(z, z_content, zx, zy, only_part="content")
    finally:
        stt.torch = saved_torch
        for m, f in zip(attn, saved_flash):
            m.enable_flashattn = f
    parts = {"structure_bfhwc": z_content, "dynamics_x": zx, "dynamics_y": zy, "recon": rec,
             "recon_structure_only": rec_s}
    return {f"{variant}.{k}": v.detach().float().contiguous() for k, v in parts.items()}


def manifest(model) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def main() -> None:
    global REF
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", type=Path, required=True, help="microsoft/VidTok checkout (vidtok/, vidtwin/, configs/)")
    ap.add_argument("--deps", type=Path, required=True, help="folder with transformers/timm/omegaconf (see doc)")
    ap.add_argument("--git-dir", type=Path, default=None, help="git dir of the reference, to record its commit")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/fixtures/official/vidtwin")
    args = ap.parse_args()
    REF = args.ref.resolve()
    setup_paths(REF, args.deps.resolve())
    from safetensors.torch import save_file

    commit = "unknown"
    git = ["git", f"--git-dir={args.git_dir}"] if args.git_dir else ["git", "-C", str(REF)]
    with contextlib.suppress(Exception):
        commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)

    full = build(tiny=False)  # on CPU: the reference calls .item() in __init__, which a meta device refuses
    keys = manifest(full)
    n_params = sum(p.numel() for p in full.parameters())
    (args.out / "released_keys.json").write_text(json.dumps(
        {"reference_commit": commit, "config": RELEASED_YAML, "params": n_params, "keys": keys},
        separators=(",", ":")))

    model = build(tiny=True)
    rerandomise(model, SEED)
    g = torch.Generator().manual_seed(SEED + 1)
    t, h, w = TINY["input_size"]
    x = (torch.rand((1, 3, t, h, w), generator=g) * 2 - 1).float()
    expected = {"input": x.contiguous()}
    for variant in ("fp32", "bf16", "cpupath"):
        expected.update(run(model, x, variant))
    save_file(expected, str(args.out / "expected.safetensors"))

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # a training checkpoint also holds the loss's modules (LPIPS, discriminator, learned logvar): two stand-ins
    state["loss.logvar"] = torch.zeros(())
    state["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 4, 4)
    torch.save({"state_dict": state, "epoch": 0, "global_step": 0, "pytorch-lightning_version": "2.2.4"},
               str(args.out / "vidtwin_tiny.ckpt"))
    (args.out / "meta.json").write_text(json.dumps({
        "reference": "https://github.com/microsoft/VidTok", "reference_commit": commit,
        "class": "vidtwin.models.vidtwin_ae.VidAutoEncoderQformerCompactSymVidVAE", "base_config": RELEASED_YAML,
        "reduced": TINY, "seed": SEED, "input": f"torch.rand generator seed {SEED + 1}, *2-1, shape (1,3,{t},{h},{w})",
        "variants": {"fp32": "exact fp32 reference (bfloat16 casts of STBlock read as float32), causal temporal "
                             "attention via the flash_attn stub",
                     "bf16": "reference as written, flash_attn stub (causal), torch.autocast('cpu', bfloat16)",
                     "cpupath": "reference CPU path enable_flashattn=False (no causal mask), bf16 autocast"},
        "released_params": n_params, "torch": torch.__version__}, indent=1))
    print(f"reference {commit}: released config {n_params:,} parameters, {len(keys)} keys; fixture in {args.out}")


def _bench_one(precision: str) -> None:
    import resource
    import time

    from vaelab.models.vidtwin import ReleasedVidTwin

    torch.manual_seed(0)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    model = ReleasedVidTwin().eval().requires_grad_(False).to(dtype)
    x = (torch.rand(1, 3, 16, 224, 224) * 2 - 1).to(dtype)
    times = []
    with torch.inference_mode():
        for _ in range(2):
            t0 = time.perf_counter()
            model.decode(model.encode(x))
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB
    print(json.dumps({"seconds": times[-1], "first_seconds": times[0], "peak_rss_gib": peak}))


def _meta_model():
    from vaelab.models.vidtwin import ReleasedVidTwin

    with torch.device("meta"):
        return ReleasedVidTwin()


def bench() -> None:
    import os
    import platform

    out = Path(__file__).resolve().parents[1] / "vaelab/models/vidtwin_released_cost.json"
    runs, load = {}, [os.getloadavg()[0]]
    for precision in ("fp32", "bf16"):
        res = subprocess.run([sys.executable, __file__, "bench-one", precision], capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONPATH": str(out.parents[2])})
        runs[precision] = json.loads(res.stdout.strip().splitlines()[-1])
        load.append(os.getloadavg()[0])
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    cost = {"clip": "16x224x224", "threads": torch.get_num_threads(), "cpu": cpu, "torch": torch.__version__,
            "params": sum(p.numel() for p in _meta_model().parameters()), "weights": "random (seed 0)", "runs": runs,
            "command": "python scripts/parity_vidtwin.py bench",
            "load_average": f"{min(load):.0f}-{max(load):.0f} (1-min, sampled before and after each run)",
            "peak_note": "peak RSS of a fresh process that builds the model in fp32 (1.25 GB of parameters), casts "
                         "it, and runs one clip twice"}
    out.write_text(json.dumps(cost, indent=1) + "\n")
    print(json.dumps(cost, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["bench"]:
        bench()
    elif sys.argv[1:2] == ["bench-one"]:
        _bench_one(sys.argv[2])
    else:
        main()
