"""The released CV-VAE (AILab-CVC/CV-VAE ``vae3d_v1-1``) loads exactly: parity with the reference, key manifest.

Fixtures (tests/fixtures/official/cv_vae/, made by scripts/parity_cv_vae.py from the reference CVVAEModel):
``<case>/config.json`` as the reference's ``save_pretrained`` wrote it; ``<case>.json`` the reference commit,
seed and released key/shape list (the weights are regenerated here by ``recipe_tensor`` and written as the
folder's ``diffusion_pytorch_model.safetensors``); ``<case>.safetensors`` the reference's posterior mean and
reconstruction (a strided subset for the large clip, plus per-frame sums of all of it).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import shutil
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vaelab import models
from vaelab.models import cv_vae

FIX = Path(__file__).parent / "fixtures" / "official" / "cv_vae"
TOL = 1e-4


def recipe_tensor(key: str, shape: list[int], seed: int) -> torch.Tensor:
    """Deterministic stand-in weights: a normal draw seeded by (seed, crc32(key)), fan-in scaled for kernels,
    around 1 for norm scales, small for biases."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    v = torch.randn(shape, generator=g, dtype=torch.float32)
    if len(shape) >= 2:
        return v / math.sqrt(math.prod(shape[1:]))
    return 1.0 + 0.1 * v if key.endswith("weight") else 0.1 * v


def recipe_input(shape: list[int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    b, c, t, h, w = shape
    low = torch.rand(b, c, t, h // 8, w // 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=(t, h, w), mode="trilinear", align_corners=False)
    x = (x + 0.15 * torch.rand(shape, generator=g)).clamp(0, 1)
    return torch.round(x * 255) / 127.5 - 1.0


def released_folder(tmp_path: Path, name: str, edit=None) -> tuple[Path, dict]:
    """The case as the released folder: config.json + diffusion_pytorch_model.safetensors (recipe weights)."""
    meta = json.loads((FIX / f"{name}.json").read_text())
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(FIX / name / "config.json", folder / "config.json")
    state = {k: recipe_tensor(k, s, meta["seed"]) for k, s in meta["keys"]}
    if edit:
        edit(state)
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
    return folder, meta


def run(model, meta: dict) -> tuple[torch.Tensor, torch.Tensor]:
    x = recipe_input(meta["input_shape"], meta["seed"])
    with torch.no_grad():
        mean = model.encode(x)
        return mean.main, model.decode(mean)


@pytest.mark.parametrize("name", ["v1_1_width32", "tiled_chunked"])
def test_released_folder_matches_the_reference(tmp_path, name):
    folder, meta = released_folder(tmp_path, name)
    assert meta["reference"] == "AILab-CVC/CV-VAE" and len(meta["commit"]) == 40
    assert meta["saved_files"] == ["config.json", "diffusion_pytorch_model.safetensors"]
    ref = load_file(str(FIX / f"{name}.safetensors"))
    model = models.load("cv-vae", weights=str(folder), device="cpu")
    if "x" in ref:
        assert torch.equal(recipe_input(meta["input_shape"], meta["seed"]), ref["x"])
    mean, recon = run(model, meta)
    k = meta["recon_stride"]
    assert mean.shape == ref["mean"].shape and (mean - ref["mean"]).abs().max() <= TOL
    assert (recon[:, :, :, ::k, ::k] - ref["recon"]).abs().max() <= TOL
    sums = recon.sum((0, 1, 3, 4))
    assert (sums - ref["recon_frame_sums"]).abs().max() <= TOL * recon[0, 0, 0].numel() * 3 / 10
    assert model.config["scaling_factor"] == 0.18215 and "quant_conv.weight" not in model.state_dict()


def test_tiling_and_chunking_are_what_makes_the_large_case_match(tmp_path):
    """The check can fail: the same weights without the reference's tiling/chunking give another latent."""
    folder, meta = released_folder(tmp_path, "tiled_chunked")
    ref = load_file(str(FIX / "tiled_chunked.safetensors"))
    model = models.load("cv-vae", weights=str(folder), device="cpu")
    assert model.config["tile_size"] == 72 and model.config["frames_per_chunk"] == 16
    model.config = model.config.replace(tile_size=None, frames_per_chunk=None)
    x = recipe_input(meta["input_shape"], meta["seed"])
    with torch.no_grad():
        mean = model.encode(x).main
    assert mean.shape == ref["mean"].shape and (mean - ref["mean"]).abs().max() > 1e-3


def test_bare_safetensors_infers_the_architecture_from_shapes(tmp_path):
    folder, meta = released_folder(tmp_path, "v1_1_width32")
    ref = load_file(str(FIX / "v1_1_width32.safetensors"))
    model = models.load("cv-vae", weights=str(folder / "diffusion_pytorch_model.safetensors"), device="cpu")
    assert model.config["block_out_channels"] == (32, 64, 128, 128) and model.config["layers_per_block"] == 2
    assert model.config["tile_size"] == 576 and model.config["frames_per_chunk"] == 16  # CVVAEModel defaults
    mean, recon = run(model, meta)
    assert (mean - ref["mean"]).abs().max() <= TOL and (recon - ref["recon"]).abs().max() <= TOL


def test_hf_repo_id_with_subfolder_loads_from_the_offline_cache(tmp_path, monkeypatch):
    folder, meta = released_folder(tmp_path, "v1_1_width32")
    cache = tmp_path / "hf-cache"
    repo_dir = cache / "models--AILab-CVC--CV-VAE"
    commit = hashlib.sha1(b"AILab-CVC/CV-VAE").hexdigest()
    for f in ("config.json", "diffusion_pytorch_model.safetensors"):  # huggingface_hub's cache layout
        data = (folder / f).read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo_dir / "snapshots" / commit / "vae3d_v1-1" / f
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../../../blobs") / blob.name)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = models.load("cv-vae", weights="AILab-CVC/CV-VAE:vae3d_v1-1", device="cpu")
    ref = load_file(str(FIX / "v1_1_width32.safetensors"))
    mean, _ = run(model, meta)
    assert (mean - ref["mean"]).abs().max() <= TOL


def test_full_size_model_has_exactly_the_released_keys():
    with gzip.open(FIX / "manifest_vae3d_v1-1.json.gz", "rt") as f:
        manifest = json.load(f)
    released = {k: torch.empty(s, device="meta") for k, s in manifest["keys"]}
    config = cv_vae.config_from_released(json.loads((FIX / "v1_1_width32" / "config.json").read_text()) | {"ch": 128})
    assert config == cv_vae.RELEASED_CONFIG == cv_vae.config_from_state(released)
    converted = cv_vae.released_to_lab(released)
    assert len(converted) == len(released)  # one to one
    with torch.device("meta"):
        ours = models.build("cv-vae", cv_vae.RELEASED_CONFIG)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in converted.items()}
    assert sum(p.numel() for p in ours.parameters()) == manifest["params"] == 182_446_475
    assert "decoder.mid.attn_1.q_t.weight" in released and "encoder.mid.attn_1.q.weight" in released


def test_mismatches_get_one_line_errors_naming_the_keys(tmp_path):
    folder, _ = released_folder(tmp_path, "v1_1_width32", edit=lambda s: s.pop("decoder.up.1.upsample.conv.weight"))
    with pytest.raises(models.WeightsError) as e:
        models.load("cv-vae", weights=str(folder), device="cpu")
    assert "\n" not in str(e.value) and "decoder.up_blocks.2.upsamplers.0.conv.weight" in str(e.value)
    cfg = json.loads((FIX / "v1_1_width32" / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(cfg | {"causal_decoder": True, "half_3d": False}))
    with pytest.raises(models.WeightsError, match=r"cv-vae: this CV-VAE config has half_3d=False, causal_decoder=True"):
        models.load("cv-vae", weights=str(folder), device="cpu")


def test_lab_weights_still_load_and_the_lab_design_is_unchanged():
    lab = models.load("cv-vae", device="cpu")
    assert lab.config["decoder_attention"] == "separate" and lab.config["tile_size"] is None
    assert "quant_conv.weight" in lab.state_dict()


def test_vaelab_eval_weights_runs_the_released_folder(tmp_path, small_clip, capsys):
    from vaelab import cli

    folder, _ = released_folder(tmp_path, "v1_1_width32")
    out = tmp_path / "report.json"
    rc = cli.main(["eval", str(small_clip), "--models", "cv-vae", "--weights", f"cv-vae={folder}", "--frames", "5",
                   "--size", "32", "--no-lpips", "--device", "cpu", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads(out.read_text())["models"]["cv-vae"]
    assert report["latent_shape"][:2] == [4, 2]  # 5 frames -> 2 latent frames, 4 channels
    assert cli.main(["eval", str(small_clip), "--models", "vqgan", "--weights", f"cv-vae={folder}",
                     "--no-lpips"]) == 2
    assert "which --models does not run" in capsys.readouterr().err


def test_released_model_does_not_claim_compatibility_through_the_lab_image_vae(tmp_path):
    folder, meta = released_folder(tmp_path, "v1_1_width32")
    model = models.load("cv-vae", weights=str(folder), device="cpu")
    assert model.released_architecture and not models.load("cv-vae", device="cpu").released_architecture
    lab_sd = models.load("sd-vae", device="cpu")
    out = model.diagnostics(recipe_input(meta["input_shape"], meta["seed"]), lambda name: lab_sd)
    assert out["compatibility"]["psnr"] is None and "Stable Diffusion 2.1" in out["compatibility"]["reason"]
