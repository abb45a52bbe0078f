"""The released IV-VAE (ali-vilab/iv-vae ``models/vae3d.py``) loads exactly, without network.

Fixtures in ``tests/fixtures/official/iv_vae/`` come from ``scripts/parity_iv_vae.py`` run on the reference code
(commit and recipe in that script): a reduced-width reference model's state dict saved as the released ``.pth``
files are, its input clip, the reference's posterior-mean latent and reconstruction, and the full-size key
manifests of the four released files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelab import models
from vaelab.models import iv_vae, official
from vaelab.models.latent import Latent
from vaelab.streaming import decode_streaming, encode_streaming

FIX = Path(__file__).parent / "fixtures" / "official" / "iv_vae"
PTH = FIX / "ivvae_tiny.pth"
ATOL = 1e-4


@pytest.fixture(scope="module")
def io():
    return torch.load(FIX / "ivvae_tiny_io.pt", weights_only=True)


@pytest.fixture(scope="module")
def manifest():
    return json.loads((FIX / "manifest.json").read_text())


@pytest.fixture(scope="module")
def model():
    return models.load("iv-vae", weights=str(PTH), device="cpu")


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def test_reference_file_loads_as_the_released_tree_and_matches_the_reference(model, io):
    assert isinstance(model, iv_vae.ReleasedIVVAE)
    assert model.released.dim == 2 and model.released.z_dim == 8 and model.released.variant == ""
    assert model.card.latent_channels == 8 and "parity-tested" in model.card.weights
    assert any("posterior mean" in n for n in model.weights_notes)
    with torch.no_grad():
        z = model.encode(io["x"])
        recon = model.decode(Latent(io["latent"]))
    assert maxdiff(z.main, io["latent"]) <= ATOL
    assert maxdiff(recon, io["recon"]) <= ATOL
    assert io["recon"].abs().max() > 0.1 and io["latent"].std() > 0.1  # the fixture is not degenerate


def test_latent_scale_and_shift_are_the_references(io):
    state, _ = models.read_checkpoint(PTH)
    cfg = iv_vae.released_config_from_state(state)
    scale, shift = io["scaled"].tolist()
    m = iv_vae.ReleasedIVVAE(dataclasses.replace(cfg, scale_factor=scale, shift_factor=shift)).eval()
    models.load_weights(m, state)
    with torch.no_grad():
        z = m.encode(io["x"])
        recon = m.decode(z)
    assert maxdiff(z.main, io["latent_scaled"]) <= ATOL
    assert maxdiff(recon, io["recon"]) <= ATOL  # decode undoes exactly what encode applied
    assert maxdiff(io["latent_scaled"], io["latent"]) > 0.1


@pytest.mark.parametrize("chunk", [1, 2])
def test_streaming_equals_one_shot_and_the_reference(model, io, chunk):
    with torch.no_grad():
        z = encode_streaming(model, io["x"], chunk)
        recon = decode_streaming(model, Latent(io["latent"]), chunk)
    assert maxdiff(z.main, io["latent"]) <= ATOL
    assert maxdiff(recon, io["recon"]) <= ATOL


def test_engine_path_and_branch_decoding_work_with_the_released_tree(model, io):
    from vaelab.engine import run_model, to_uint8

    clip = to_uint8(io["x"])[0] if to_uint8(io["x"]).ndim == 5 else to_uint8(io["x"])
    res = run_model(model, np.ascontiguousarray(clip[:7]), chunk_latents=1)  # 7 frames: padded to 9, cropped
    assert res.recon.shape == clip[:7].shape
    with torch.no_grad():
        full = model.decode(Latent(io["latent"]))
        no_kf = model.decode(Latent(io["latent"]), zero_branch="keyframe")
        kf, tp = model.decode_heads(Latent(io["latent"]))
    assert model.latent_branches == ("keyframe", "temporal")  # the Inside-the-model branch ablation offers it
    assert maxdiff(no_kf, full) > 1e-3
    assert kf.shape == tp.shape == full.shape
    assert maxdiff(kf[:, :, :1], full[:, :, :1]) == 0  # frame 0 comes from the keyframe head


@pytest.mark.parametrize("variant", sorted(iv_vae.RELEASED))
def test_full_size_keys_and_shapes_are_the_references(manifest, variant):
    with torch.device("meta"):
        ours = iv_vae.ReleasedIVVAE(iv_vae.RELEASED[variant])
    got = [[k, list(v.shape)] for k, v in ours.state_dict().items()]
    assert got == manifest["variants"][variant]
    state = {k: torch.empty(s, device="meta") for k, s in manifest["variants"][variant]}
    assert iv_vae.released_config_from_state(state) == iv_vae.RELEASED[variant]  # shapes give the size and scale


@pytest.mark.parametrize("name", ["dim8_z4_mult1224_res1_attn0.5", "dim4_z16_mult1111_res3"])
def test_other_sizes_the_reference_accepts_are_read_off_the_shapes(manifest, name):
    ref = manifest["other"][name]
    state = {k: torch.empty(s, device="meta") for k, s in ref["keys"]}
    cfg = iv_vae.released_config_from_state(state)
    kw = ref["config"]
    assert (cfg.dim, cfg.z_dim, list(cfg.dim_mult), cfg.num_res_blocks) == (
        kw["dim"], kw["z_dim"], kw["dim_mult"], kw["num_res_blocks"])
    assert list(cfg.attn_scales) == kw.get("attn_scales", [])
    with torch.device("meta"):
        ours = iv_vae.ReleasedIVVAE(cfg)
    assert [[k, list(v.shape)] for k, v in ours.state_dict().items()] == ref["keys"]


def test_parameter_counts_match_the_paper(manifest):
    counts = {v: sum(int(np.prod(s)) for _, s in keys) for v, keys in manifest["variants"].items()}
    assert 100e6 < counts["ivvae_z16_dim64"] < 115e6  # "~107 M"
    assert 235e6 < counts["ivvae_z16_dim96"] < 250e6


def test_a_file_that_does_not_fit_names_the_keys(tmp_path):
    state, _ = models.read_checkpoint(PTH)
    bad = dict(state)
    del bad["decoder.head.2.conv_3d.bias"]
    bad["encoder.middle.0.residual.2.conv.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(models.WeightsError) as info:
        models.load("iv-vae", weights=str(tmp_path / "bad.pth"), device="cpu")
    msg = str(info.value)
    assert "\n" not in msg
    assert "encoder.middle.0.residual.2.conv.weight" in msg and "decoder.head.2.conv_3d.bias" in msg


def test_broken_layout_is_one_line(tmp_path):
    state, _ = models.read_checkpoint(PTH)
    bad = {k: v for k, v in state.items() if not k.startswith("encoder.downsamples.1")}
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(models.WeightsError) as info:
        models.load("iv-vae", weights=str(tmp_path / "bad.pth"), device="cpu")
    assert "\n" not in str(info.value) and "iv-vae" in str(info.value).lower()


def test_pickled_code_in_a_pth_is_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "PWNED",))

    torch.save({"encoder.conv1.conv_2d.weight": Boom()}, tmp_path / "evil.pth")
    with pytest.raises(models.WeightsError, match="refused|could not read"):
        models.load("iv-vae", weights=str(tmp_path / "evil.pth"), device="cpu")
    assert not (tmp_path / "PWNED").exists()


def test_folder_with_one_checkpoint_and_folder_with_several(tmp_path, io):
    one = tmp_path / "modelscope"
    one.mkdir()
    (one / "ivvae_tiny.pth").write_bytes(PTH.read_bytes())
    m = models.load("iv-vae", weights=str(one), device="cpu")
    with torch.no_grad():
        assert maxdiff(m.encode(io["x"]).main, io["latent"]) <= ATOL
    (one / "ivvae_other.pth").write_bytes(PTH.read_bytes())
    with pytest.raises(models.WeightsError, match="holds 2 checkpoints .*ivvae_other.pth.*: name the file"):
        models.load("iv-vae", weights=str(one), device="cpu")


def test_hub_repo_and_file_offline(tmp_path, monkeypatch, io):
    # Copied from tests/test_official.py::fake_hub_cache (the Hugging Face cache layout), one file only
    cache = tmp_path / "hf-cache"
    repo_dir = cache / "models--acme--iv-vae"
    data = PTH.read_bytes()
    blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    commit = "0" * 40
    link = repo_dir / "snapshots" / commit / "ivvae_tiny.pth"
    link.parent.mkdir(parents=True)
    link.symlink_to(Path("../../blobs") / blob.name)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = models.load("iv-vae", weights="acme/iv-vae:ivvae_tiny.pth", device="cpu")
    with torch.no_grad():
        assert maxdiff(m.decode(Latent(io["latent"])), io["recon"]) <= ATOL


def test_card_and_support_say_what_loads():
    s = official.support("iv-vae")
    assert s.status == "supported"
    for word in ("ivvae_z16_dim96.pth", "MIT", "parity-tested", "ali-vilab/iv-vae"):
        assert word in s.published + s.detail, word
    assert "loads exactly" in models.card("iv-vae").weights


def test_lab_weights_still_load_as_the_lab_tree():
    if not models.lab_weights_path("iv-vae").exists():
        pytest.skip("no lab weights")
    m = models.load("iv-vae", device="cpu")
    assert type(m) is iv_vae.IVVAE


def test_the_apps_weights_path_runs_a_released_file(io):
    """What the Weights accordion does: ``pipeline.reconstruct_clip`` with {model: weights spec}."""
    from vaelab.engine import to_uint8
    from vaelab.pipeline import reconstruct_clip

    clip = np.ascontiguousarray(to_uint8(io["x"]))
    comp = reconstruct_clip(clip, ["iv-vae"], device="cpu", weights={"iv-vae": str(PTH)}, with_lpips=False)
    r = comp.results["iv-vae"]
    assert r.run.recon.shape == clip.shape and r.run.latent_shape == (8, 3, 2, 3)
