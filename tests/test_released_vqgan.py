"""The released taming VQGAN f16 checkpoints load exactly: parity with the reference code, full-size key manifests.

Fixtures (tests/fixtures/official/vqgan/, made by scripts/parity_vqgan.py from CompVis/taming-transformers):
``<case>.json`` has the reference commit, config and the released-layout key/shape list of a reduced model;
the weights are regenerated here by ``recipe_tensor`` (the same per-key seeded draw the script loaded into the
reference), written as a Lightning ``last.ckpt`` like the released one, and loaded by ``models.load``;
``<case>.safetensors`` has the input and the reference's outputs. ``manifest_*.json.gz``: keys and shapes of the
reference ``VQModel`` at ``configs/imagenet_vqgan.yaml`` (1024 and 16384 codes).
"""
from __future__ import annotations

import gzip
import json
import math
import sys
import types
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vaelab import models
from vaelab.models import official
from vaelab.models.vqgan import RELEASED_CONFIGS

FIX = Path(__file__).parent / "fixtures" / "official" / "vqgan"
CASES = ["f16_level4_attention", "f8_levels23_attention"]
TOL = 1e-4


def recipe_tensor(key: str, shape: list[int], seed: int) -> torch.Tensor:
    """Deterministic stand-in weights: a normal draw seeded by (seed, crc32(key)), fan-in scaled for kernels,
    around 1 for norm scales, small for biases, unit for the codebook."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    v = torch.randn(shape, generator=g, dtype=torch.float32)
    if "embedding" in key:
        return v
    if len(shape) >= 2:
        return v / math.sqrt(math.prod(shape[1:]))
    return 1.0 + 0.1 * v if key.endswith("weight") else 0.1 * v


def recipe_input(shape: list[int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(shape[0], shape[1], shape[2] // 8, shape[3] // 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=shape[2:], mode="bilinear", align_corners=False)
    x = (x + 0.15 * torch.rand(shape, generator=g)).clamp(0, 1)
    return torch.round(x * 255) / 127.5 - 1.0


def lightning_ckpt(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """Save like taming's PL 1.0.8 ``last.ckpt``: callback states keyed by the callback *class*, GAN/LPIPS loss keys."""
    mod = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")
    cls = type("ModelCheckpoint", (), {"__module__": mod.__name__, "__qualname__": "ModelCheckpoint"})
    mod.ModelCheckpoint = cls
    saved = {k: sys.modules.get(k) for k in ("pytorch_lightning", "pytorch_lightning.callbacks", mod.__name__)}
    sys.modules.update({"pytorch_lightning": types.ModuleType("pytorch_lightning"),
                        "pytorch_lightning.callbacks": types.ModuleType("pytorch_lightning.callbacks"), mod.__name__: mod})
    try:
        loss = {"loss.discriminator.main.0.weight": torch.zeros(64, 3, 4, 4),
                "loss.perceptual_loss.lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}
        torch.save({"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.0.8",
                    "state_dict": {**state, **loss},
                    "callbacks": {cls: {"best_model_score": torch.tensor(0.5), "best_model_path": "x.ckpt"}},
                    "optimizer_states": [{"state": {}, "param_groups": [{"lr": 4.5e-6, "params": [0, 1]}]}],
                    "lr_schedulers": []}, path)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path


def case(name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    return json.loads((FIX / f"{name}.json").read_text()), load_file(str(FIX / f"{name}.safetensors"))


@pytest.mark.parametrize("name", CASES)
def test_released_layout_checkpoint_matches_the_reference(tmp_path, name):
    meta, ref = case(name)
    assert meta["reference"] == "CompVis/taming-transformers" and len(meta["commit"]) == 40
    assert any(".attn." in k and k.startswith("encoder.down.") for k, _ in meta["keys"])  # in-level attention
    x = recipe_input(meta["input_shape"], meta["seed"])
    assert torch.equal(x, ref["x"])  # the recipe input is the clip the reference saw
    state = {k: recipe_tensor(k, s, meta["seed"]) for k, s in meta["keys"]}
    model = models.load("vqgan", weights=str(lightning_ckpt(tmp_path / "last.ckpt", state)), device="cpu")
    cfg = meta["config"]
    assert model.config["n_embed"] == cfg["n_embed"] and model.config["embed_dim"] == cfg["embed_dim"]
    assert model.card.spatial_factor == 2 ** (len(cfg["ddconfig"]["ch_mult"]) - 1)
    x_bcthw = x[:, :, None]
    with torch.no_grad():
        h = model.quant_conv(model.encoder(x))
        idx = model.encode_indices(x_bcthw)[:, 0]
        z_q = model.encode(x_bcthw).main[:, :, 0]
        recon = model.decode(model.encode(x_bcthw))[:, :, 0]
    assert (h - ref["h"]).abs().max() <= TOL
    assert torch.equal(idx, ref["indices"].long())
    assert (z_q - ref["z_q"]).abs().max() <= TOL
    assert (recon - ref["recon"]).abs().max() <= TOL
    assert ref["indices"].unique().numel() > 1  # the check sees more than one code


def test_a_perturbed_attention_weight_breaks_parity(tmp_path):
    """The parity check can fail: a wrong in-level attention weight moves the reconstruction."""
    meta, ref = case(CASES[0])
    state = {k: recipe_tensor(k, s, meta["seed"]) for k, s in meta["keys"]}
    state["decoder.up.4.attn.0.proj_out.weight"] = state["decoder.up.4.attn.0.proj_out.weight"] * 1.5
    model = models.load("vqgan", weights=str(lightning_ckpt(tmp_path / "last.ckpt", state)), device="cpu")
    with torch.no_grad():
        recon = model.decode(model.encode(ref["x"][:, :, None]))[:, :, 0]
    assert (recon - ref["recon"]).abs().max() > 1e-2


@pytest.mark.parametrize("variant", ["imagenet_f16_1024", "imagenet_f16_16384"])
def test_full_size_model_has_exactly_the_released_keys(variant):
    with gzip.open(FIX / f"manifest_{variant}.json.gz", "rt") as f:
        manifest = json.load(f)
    released = {k: torch.empty(s, device="meta") for k, s in manifest["keys"]}
    assert len(released) == len(manifest["keys"])
    ours_from_released = official.to_lab_names(released, in_level_attention=True)
    config = RELEASED_CONFIGS[f"vqgan_{variant}"]
    assert official.vqgan_config_from_state(ours_from_released) == {
        k: config.to_dict()[k] for k in official._ARCH_KEYS["vqgan"]} | {"norm_num_groups": 32}
    with torch.device("meta"):
        ours = models.build("vqgan", config)
    own = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert own == {k: tuple(v.shape) for k, v in ours_from_released.items()}
    assert sum(p.numel() for p in ours.parameters()) == manifest["params"]
    # attention inside level 4, encoder and decoder, as configs/imagenet_vqgan.yaml says
    assert "encoder.down.4.attn.1.q.weight" in released and "decoder.up.4.attn.2.proj_out.weight" in released


def test_converted_state_is_one_to_one():
    """Every released key lands on its own key of ours (no two collapse), so 'exact' is a bijection."""
    with gzip.open(FIX / "manifest_imagenet_f16_1024.json.gz", "rt") as f:
        keys = [k for k, _ in json.load(f)["keys"]]
    converted = official.to_lab_names({k: torch.empty(1, 1, 1, 1, device="meta") for k in keys},
                                      in_level_attention=True)
    assert len(converted) == len(keys)


def test_mismatched_attention_gets_one_line_error_naming_keys(tmp_path):
    meta, _ = case(CASES[0])
    state = {k: recipe_tensor(k, s, meta["seed"]) for k, s in meta["keys"]}
    del state["encoder.down.4.attn.1.k.weight"]
    with pytest.raises(models.WeightsError) as e:
        models.load("vqgan", weights=str(lightning_ckpt(tmp_path / "last.ckpt", state)), device="cpu")
    assert "\n" not in str(e.value) and "encoder.down_blocks.4.attentions.1.to_k.weight" in str(e.value)
    state = {k: recipe_tensor(k, s, meta["seed"]) for k, s in meta["keys"] if not k.startswith("decoder.up.4.attn.")}
    with pytest.raises(models.WeightsError, match=r"encoder levels \[4\] but decoder levels \[\]"):
        models.load("vqgan", weights=str(lightning_ckpt(tmp_path / "last.ckpt", state)), device="cpu")


def test_lightning_placeholders_admit_only_lightning_names(tmp_path):
    """The class-keyed callback states are read as inert placeholders; any other global is still refused."""
    mod = types.ModuleType("evil_mod")
    mod.Payload = type("Payload", (), {"__module__": "evil_mod", "__qualname__": "Payload"})
    sys.modules["evil_mod"] = mod
    try:
        torch.save({"state_dict": {"w": torch.zeros(1)}, "x": {mod.Payload: 1}}, tmp_path / "bad.ckpt")
    finally:
        sys.modules.pop("evil_mod")
    with pytest.raises(models.WeightsError, match="refused checkpoint bad.ckpt: it references evil_mod.Payload"):
        models.read_checkpoint(tmp_path / "bad.ckpt")


def test_vaelab_extra_models_offers_a_released_checkpoint_under_its_own_name(tmp_path, monkeypatch):
    """VAELAB_EXTRA_MODELS="NAME=FAMILY:WEIGHTS": the released file becomes a model of its own in names()."""
    meta, ref = case(CASES[0])
    path = lightning_ckpt(tmp_path / "last.ckpt", {k: recipe_tensor(k, s, meta["seed"]) for k, s in meta["keys"]})
    monkeypatch.setenv("VAELAB_EXTRA_MODELS", f"taming-f16=vqgan:{path}")
    assert "taming-f16" in models.names()
    card = models.card("taming-f16")
    assert card.name == "taming-f16" and "loads exactly (parity-tested" in card.weights
    assert card.params == sum(math.prod(s) for k, s in meta["keys"])
    model = models.load("taming-f16", device="cpu")
    assert model.card.name == "taming-f16" and model.card.spatial_factor == 16
    with torch.no_grad():
        recon = model.decode(model.encode(ref["x"][:, :, None]))[:, :, 0]
    assert (recon - ref["recon"]).abs().max() <= TOL
