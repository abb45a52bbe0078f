"""The released VideoVAE+ checkpoints (VideoVerses/VideoVAEPlus) load exactly, proven without network.

Fixtures (tests/fixtures/official/videovae_plus/, made by scripts/parity_videovae_plus.py from the reference code):
``manifest_sota-*.json`` the reference's full-size key/shape lists per released config; ``manifest_{plain,text}.json``
and ``parity_{plain,text}.safetensors`` a reduced-width reference model's keys and its input / latent (posterior
mode) / reconstruction. Weights are not committed: both sides fill the same keys with
``official.hashed_weights`` (crc32 of each key seeds its tensor), and the test writes them in the released file
format (a Lightning ``.ckpt`` with ``state_dict`` and ``loss.*`` keys, or a community ``.safetensors``).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from vaelab import models
from vaelab.models import official
from vaelab.models.latent import Latent
from vaelab.models.videovae_plus import (
    RELEASED_CONFIGS,
    ReleasedVideoVAEPlus,
    is_released_state,
    released_config_from_state,
)

FIX = Path(__file__).parent / "fixtures" / "official" / "videovae_plus"
TOL = 1e-4


def _manifest(name: str) -> list[list]:
    return json.loads((FIX / f"manifest_{name}.json").read_text())["keys"]


def _recipe_state(variant: str) -> dict[str, torch.Tensor]:
    return official.hashed_weights({k: tuple(s) for k, s in _manifest(variant)})


def _lightning_ckpt(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """The layout of a Lightning checkpoint of AutoencoderKL2plus1D_1dcnn: training-only loss.* keys included."""
    full = dict(state) | {"loss.logvar": torch.zeros(()), "loss.discriminator.main.0.weight": torch.zeros(8, 3, 4, 4, 4)}
    torch.save({"epoch": 3, "global_step": 1200, "state_dict": full}, str(path))
    return path


@pytest.mark.parametrize("name", sorted(RELEASED_CONFIGS))
def test_full_size_key_manifest_matches_the_reference(name):
    with torch.device("meta"):
        model = ReleasedVideoVAEPlus(RELEASED_CONFIGS[name])
    ours = sorted([k, list(v.shape)] for k, v in model.state_dict().items())
    assert ours == _manifest(name)
    # and the architecture is read back off the reference's shapes alone
    assert released_config_from_state({k: torch.empty(s, device="meta") for k, s in _manifest(name)}) == \
        RELEASED_CONFIGS[name]


@pytest.mark.parametrize("variant", ["plain", "text"])
def test_reduced_reference_parity_from_a_lightning_ckpt(tmp_path, variant):
    fx = load_file(str(FIX / f"parity_{variant}.safetensors"))
    path = _lightning_ckpt(tmp_path / "sota-reduced.ckpt", _recipe_state(variant))
    model = models.load("videovae-plus", weights=str(path), device="cpu")
    assert isinstance(model, ReleasedVideoVAEPlus)
    kw = {"text_embeddings": fx["text_embeddings"], "text_mask": fx["text_mask"]} if variant == "text" else {}
    with torch.no_grad():
        z = model.encode(fx["input"], **kw).main
        assert z.shape == fx["latent"].shape
        assert (z - fx["latent"]).abs().max() <= TOL
        assert (model.decode(Latent(fx["latent"]), **kw) - fx["recon"]).abs().max() <= TOL
    if variant == "text":  # the caption really steers it: without embeddings the output differs
        with torch.no_grad():
            assert (model.encode(fx["input"]).main - fx["latent"]).abs().max() > 1e-3
        assert any("flan-t5-large" in n for n in model.weights_notes)


def test_image_mode_parity_and_community_safetensors(tmp_path):
    fx = load_file(str(FIX / "parity_plain.safetensors"))
    save_file(_recipe_state("plain"), str(tmp_path / "sota-4z.safetensors"))
    model = models.load("videovae-plus", weights=str(tmp_path / "sota-4z.safetensors"), device="cpu")
    with torch.no_grad():
        zi = model.encode(fx["input"][:, :, :1])  # 1 frame: the reference's mask_temporal path
        assert (zi.main - fx["image_latent"]).abs().max() <= TOL
        assert (model.decode(zi, image=True) - fx["image_recon"]).abs().max() <= TOL
        x = fx["input"][:, :, :6, :28, :20]  # any clip: padded to 4k frames / 8 px and cropped back
        assert model.reconstruct(x).shape == x.shape
    from vaelab.engine import run_model  # the app's path

    frames = ((fx["input"][0].permute(1, 2, 3, 0)[:6, :28, :20] + 1) * 127.5).to(torch.uint8).numpy()
    res = run_model(model, frames)
    assert res.recon.shape == frames.shape and res.latent_shape == (4, 2, 4, 3)


def test_card_states_release_licence_and_parity(tmp_path):
    (tmp_path / "ckpt").mkdir()
    _lightning_ckpt(tmp_path / "ckpt" / "sota-reduced-text.ckpt", _recipe_state("text"))
    model = models.load("videovae-plus", weights=str(tmp_path / "ckpt"), device="cpu")  # the reference's ckpt/ folder
    assert any("sota-reduced-text.ckpt" in n for n in model.weights_notes)
    w = model.card.weights
    assert "CC BY-NC-ND 4.0" in w and "non-commercial" in w and "no derivatives" in w
    assert "loads exactly (parity-tested" in w and "VideoVerses/VideoVAEPlus" in w
    assert "CPU cost" not in w  # reduced widths: not a released config, no full-size cost claimed
    assert model.card.latent_channels == 8 and model.card.spatial_factor == 8 and model.card.temporal_factor == 4
    assert official.support("videovae-plus").status == "supported"


def test_text_variant_caption_without_t5_is_one_clear_line(tmp_path):
    model = models.load("videovae-plus", weights=str(_lightning_ckpt(tmp_path / "m.ckpt", _recipe_state("text"))),
                        device="cpu")
    x = torch.zeros(1, 3, 4, 32, 32)
    with pytest.raises(ValueError, match="flan-t5-large") as e:
        model.encode(x, caption="a dog runs")
    assert "\n" not in str(e.value)
    assert not models.base.reads_captions(model)  # views offer no caption box until model.text is set
    model.text = lambda caps: (torch.zeros(len(caps), 3, 1024), torch.ones(len(caps), 3))
    assert models.base.reads_captions(model) and model.encode(x, caption="a dog").main.shape == (1, 8, 1, 4, 4)


def test_mismatched_checkpoint_gets_one_line_naming_the_keys(tmp_path):
    state = _recipe_state("plain")
    assert is_released_state(state)
    state.pop("encoder.mid.attn_1_tmp.proj_out.bias")
    state["decoder.conv_out.weight"] = state["decoder.conv_out.weight"][:, :16]
    torch.save({"state_dict": state}, str(tmp_path / "bad.ckpt"))
    with pytest.raises(models.WeightsError) as e:
        models.load("videovae-plus", weights=str(tmp_path / "bad.ckpt"), device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and "decoder.conv_out.weight" in msg and "encoder.mid.attn_1_tmp.proj_out.bias" in msg


def test_lab_weights_still_load_as_the_lab_model():
    if not models.lab_weights_path("videovae-plus").exists():
        pytest.skip("no lab weights")
    m = models.load("videovae-plus", device="cpu")
    assert type(m).__name__ == "VideoVAEPlus"
