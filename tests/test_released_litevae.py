"""open-LiteVAE checkpoints (RGenDiff/open-litevae, a community reimplementation) load exactly, without network.

Fixtures in ``tests/fixtures/official/litevae/`` come from ``scripts/parity_litevae.py`` run on the reference code
(commit and recipe in that script): a reduced-width reference ``LiteAutoencoderKL`` saved as a Lightning
checkpoint (with ``loss.*`` keys), its input images, the reference's posterior-mean latent and reconstruction,
and the key manifest of the released ``olitevaeB_im_f8c12`` config.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab import models
from vaelab.models import litevae, official
from vaelab.models.latent import Latent

FIX = Path(__file__).parent / "fixtures" / "official" / "litevae"
CKPT = FIX / "olitevae_tiny.ckpt"
ATOL = 1e-4


@pytest.fixture(scope="module")
def io():
    return torch.load(FIX / "olitevae_tiny_io.pt", weights_only=True)


@pytest.fixture(scope="module")
def model():
    return models.load("litevae", weights=str(CKPT), device="cpu")


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def test_lightning_checkpoint_loads_and_matches_the_reference(model, io):
    assert isinstance(model, litevae.ReleasedLiteVAE)
    assert model.card.latent_channels == 6 and model.card.spatial_factor == 8
    assert "community reimplementation" in model.card.weights and "NOT released by the LiteVAE authors" in model.card.weights
    x = io["x"].unsqueeze(2)  # (B, 3, H, W) images -> (B, 3, 1, H, W) one-frame clips
    with torch.no_grad():
        z = model.encode(x).main[:, :, 0]
        recon = model.decode(Latent(io["latent"].unsqueeze(2)))[:, :, 0]
    assert maxdiff(z, io["latent"]) <= ATOL
    assert maxdiff(recon, io["recon"]) <= ATOL
    assert io["latent"].std() > 0.1 and io["recon"].std() > 0.1


def test_frames_of_a_clip_are_coded_independently(model, io):
    clip = torch.stack([io["x"][0], io["x"][1], io["x"][0]], 1)[None]  # (1, 3, 3, H, W)
    with torch.no_grad():
        z = model.encode(clip).main
    assert maxdiff(z[0, :, 0], io["latent"][0]) <= ATOL and maxdiff(z[0, :, 1], io["latent"][1]) <= ATOL


def test_released_config_keys_and_shapes_are_the_references():
    manifest = json.loads((FIX / "manifest.json").read_text())
    ref = manifest["variants"]["olitevaeB_im_f8c12"]
    with torch.device("meta"):
        ours = litevae.ReleasedLiteVAE(litevae.RELEASED["olitevaeB_im_f8c12"])
    assert [[k, list(v.shape)] for k, v in ours.state_dict().items()] == ref
    state = {k: torch.empty(s, device="meta") for k, s in ref}
    assert litevae.released_config_from_state(state) == litevae.RELEASED["olitevaeB_im_f8c12"]
    n_enc = sum(int(np.prod(s)) for k, s in ref if k.startswith("encoder."))
    n_dec = sum(int(np.prod(s)) for k, s in ref if k.startswith("decoder."))
    assert 6.5e6 < n_enc < 6.7e6 and 53.2e6 < n_dec < 53.4e6  # open-litevae README: 6.60 M (B) / 53.33 M


def test_training_only_keys_are_dropped_and_the_rest_is_strict(tmp_path):
    raw = torch.load(CKPT, weights_only=True)["state_dict"]
    assert any(k.startswith("loss.") for k in raw)  # the fixture carries a discriminator stand-in
    bad = {k: v for k, v in raw.items() if k != "decoder.conv_norm.gain"}
    torch.save({"state_dict": bad}, tmp_path / "bad.ckpt")
    with pytest.raises(models.WeightsError) as info:
        models.load("litevae", weights=str(tmp_path / "bad.ckpt"), device="cpu")
    assert "decoder.conv_norm.gain" in str(info.value) and "\n" not in str(info.value)


def test_quantiser_convs_are_read_when_present(io):
    raw = litevae.released_state(torch.load(CKPT, weights_only=True)["state_dict"])
    cfg = litevae.released_config_from_state(raw)
    import dataclasses

    with_q = litevae.ReleasedLiteVAE(dataclasses.replace(cfg, use_quant=True))
    state = {k: v for k, v in with_q.state_dict().items()}
    assert litevae.released_config_from_state(state).use_quant
    assert litevae.released_config_from_state(state) == dataclasses.replace(cfg, use_quant=True)


def test_safetensors_state_dict_loads_too(tmp_path, io):
    from safetensors.torch import save_file

    raw = torch.load(CKPT, weights_only=True)["state_dict"]
    save_file({k: v.contiguous() for k, v in raw.items()}, str(tmp_path / "olitevae.safetensors"))
    m = models.load("litevae", weights=str(tmp_path / "olitevae.safetensors"), device="cpu")
    with torch.no_grad():
        assert maxdiff(m.decode(Latent(io["latent"].unsqueeze(2)))[:, :, 0], io["recon"]) <= ATOL


def test_engine_path_works_with_the_released_tree(model):
    from vaelab.engine import run_model

    clip = np.random.default_rng(0).integers(0, 256, (3, 20, 28, 3), dtype=np.uint8)  # padded to 24 x 32
    assert run_model(model, clip).recon.shape == clip.shape


def test_card_and_support_say_it_is_a_community_reimplementation():
    s = official.support("litevae")
    assert s.status == "supported"
    for word in ("community reimplementation", "RGenDiff/olitevaeB_im_f8c12", "AGPL-3.0", "parity-tested",
                 "loads exactly", "no official weights"):
        assert word in s.published + s.detail, word


def test_lab_weights_still_load_as_the_lab_tree():
    if not models.lab_weights_path("litevae").exists():
        pytest.skip("no lab weights")
    assert type(models.load("litevae", device="cpu")) is litevae.LiteVAE


def test_vaelab_eval_takes_the_checkpoint_with_weights(small_clip, tmp_path, capsys):
    from vaelab import cli

    out = tmp_path / "report.json"
    rc = cli.main(["eval", str(small_clip), "--models", "litevae", "--weights", f"litevae={CKPT}", "--frames", "2",
                   "--size", "32", "--device", "cpu", "--no-lpips", "--json", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert json.loads(out.read_text())["models"]["litevae"]["latent_shape"][0] == 6  # the file's 6, not the lab's 4
    rc = cli.main(["eval", str(small_clip), "--models", "litevae", "--weights", "litevae", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "expected NAME=FILE" in err
