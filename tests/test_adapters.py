"""Production video VAEs (diffusers) under VAE Lab's API: cards, frame rules, save_pretrained round trips,
latent conventions, and that they are only offered when real weights are configured.

Every model here is a tiny random-init config (CPU, well under a second each); nothing is downloaded.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vaelab import models
from vaelab.models import diffusers_adapters as da
from vaelab.models.base import pad_to_rule

diffusers = pytest.importorskip("diffusers")

TINY: dict[str, dict] = {
    "AutoencoderKLWan": dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                             temperal_downsample=[False, True, True], latents_mean=[0.1, -0.2, 0.3, 0.0],
                             latents_std=[1.5, 0.5, 2.0, 1.0]),
    "AutoencoderKLCogVideoX": dict(block_out_channels=(8, 8, 16, 16), latent_channels=4, layers_per_block=1,
                                   norm_num_groups=4, temporal_compression_ratio=4, scaling_factor=0.7),
    "AutoencoderKLHunyuanVideo": dict(block_out_channels=(8, 8, 16, 16), latent_channels=4, layers_per_block=1,
                                      norm_num_groups=4),
    "AutoencoderKLLTXVideo": dict(block_out_channels=(8, 8, 16, 16), decoder_block_out_channels=(8, 8, 16, 16),
                                  latent_channels=8, layers_per_block=(1, 1, 1, 1, 1),
                                  decoder_layers_per_block=(1, 1, 1, 1, 1), scaling_factor=2.0),
    "AutoencoderKLCosmos": dict(encoder_block_out_channels=(8, 16, 16, 16), decode_block_out_channels=(16, 16, 16, 16),
                                attention_resolutions=(), resolution=64, num_layers=1, latent_channels=4,
                                latents_mean=None, latents_std=None, spatial_compression_ratio=8,
                                temporal_compression_ratio=4),
    "AutoencoderVidTok": dict(ch=8, ch_mult=[1, 2, 2, 2], z_channels=4, num_res_blocks=1),
}
# (frame rule, spatial, temporal, latent channels) the tiny configs must report
EXPECTED = {"AutoencoderKLWan": ("1+4k", 8, 4, 4), "AutoencoderKLCogVideoX": ("1+8k", 8, 4, 4),
            "AutoencoderKLHunyuanVideo": ("1+4k", 8, 4, 4), "AutoencoderKLLTXVideo": ("1+8k", 32, 8, 8),
            "AutoencoderKLCosmos": ("1+4k", 8, 4, 4), "AutoencoderVidTok": ("1+4k", 8, 4, 4)}
CLASSES = [c for c in TINY if c in da.supported_classes()]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """class name -> (the diffusers model, the folder it was save_pretrained to)."""
    out = {}
    for cls_name in CLASSES:
        torch.manual_seed(0)
        ref = getattr(diffusers, cls_name)(**TINY[cls_name]).eval()
        folder = tmp_path_factory.mktemp(cls_name)
        ref.save_pretrained(folder)
        out[cls_name] = (ref, folder)
    return out


@pytest.fixture(autouse=True)
def no_extras(monkeypatch):
    """Each test starts with no production VAE configured (and leaves none behind)."""
    monkeypatch.delenv(da.ENV, raising=False)
    monkeypatch.setattr(da, "_REGISTERED", {})
    monkeypatch.setattr(da, "_CLASSES", {})


def test_every_diffusers_class_named_in_the_issue_is_adapted():
    expected = {"AutoencoderKLWan", "AutoencoderKLCogVideoX", "AutoencoderKLHunyuanVideo", "AutoencoderKLLTXVideo",
                "AutoencoderKLCosmos"} | ({"AutoencoderVidTok"} if hasattr(diffusers, "AutoencoderVidTok") else set())
    assert expected <= set(da.supported_classes())


@pytest.mark.parametrize("cls_name", CLASSES)
def test_round_trip_through_save_pretrained_and_our_loader(saved, cls_name):
    ref, folder = saved[cls_name]
    model = da.from_pretrained(str(folder), device="cpu")
    assert set(model.state_dict()) == set(ref.state_dict()), "the adapter's state dict is diffusers' own"
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    rule, spatial, temporal, channels = EXPECTED[cls_name]
    c = model.card
    assert (c.frame_rule, c.spatial_factor, c.temporal_factor, c.latent_channels) == (rule, spatial, temporal, channels)
    assert c.kind == "video" and c.paper.title and c.teaching
    torch.manual_seed(1)
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1  # 9 frames meet every rule above
    with torch.no_grad():
        z = model.encode(x)
        y = model.decode(z)
        if cls_name == "AutoencoderVidTok":  # diffusers' own forward pads VidTok's front frames itself
            y_ref = ref(x, sample_posterior=False).sample
        else:
            y_ref = ref.decode(ref.encode(x).latent_dist.mode()).sample
    assert tuple(z.main.shape[1:]) == c.latent_shape(9, 32, 32)
    assert y.shape == x.shape and torch.allclose(y, y_ref, atol=1e-5)


@pytest.mark.parametrize("cls_name", CLASSES)
@pytest.mark.parametrize("t", [1, 2, 6])
def test_frame_rule_padding_keeps_shape_and_latent_matches_card(saved, cls_name, t):
    model = da.from_pretrained(str(saved[cls_name][1]), device="cpu")
    x = torch.rand(1, 3, t, 30, 34) * 2 - 1  # neither T nor H, W meet the rules
    y = model.reconstruct(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 1
    with torch.no_grad():
        z = model.encode(pad_to_rule(x, model.card.spatial_factor, model.card.frame_rule)[0])
    assert tuple(z.main.shape[1:]) == model.card.latent_shape(t, 30, 34)


def test_cogvideox_needs_1_plus_8k_frames_which_its_rule_says():
    """Decoding an even latent count up-samples every frame (2 latents -> 8 frames): why the rule is 1+8k."""
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKLCogVideoX(**TINY["AutoencoderKLCogVideoX"]).eval()
    with torch.no_grad():
        assert ref.decode(ref.encode(torch.zeros(1, 3, 5, 16, 16)).latent_dist.mode()).sample.shape[2] == 8
        assert ref.decode(ref.encode(torch.zeros(1, 3, 9, 16, 16)).latent_dist.mode()).sample.shape[2] == 9


@pytest.mark.parametrize("cls_name", CLASSES)
def test_latent_normalisation_follows_the_family_convention(saved, cls_name):
    model = da.from_pretrained(str(saved[cls_name][1]), device="cpu")
    torch.manual_seed(2)
    z = torch.randn(1, model.card.latent_channels, 3, 2, 2)
    n = model.normalize_latent(z)
    assert torch.allclose(model.denormalize_latent(n), z, atol=1e-5)
    if cls_name == "AutoencoderKLCogVideoX":
        assert torch.allclose(n, z * 0.7)
    elif cls_name == "AutoencoderKLWan":
        mean = torch.tensor(TINY[cls_name]["latents_mean"]).view(1, 4, 1, 1, 1)
        std = torch.tensor(TINY[cls_name]["latents_std"]).view(1, 4, 1, 1, 1)
        assert torch.allclose(n, (z - mean) / std)
    elif cls_name == "AutoencoderKLLTXVideo":  # buffers latents_mean = 0, latents_std = 1 at init
        assert torch.allclose(n, z * 2.0)


def test_cosmos_statistics_are_per_channel_and_latent_frame():
    if "AutoencoderKLCosmos" not in CLASSES:
        pytest.skip("no Cosmos in this diffusers")
    mean, std = [0.1 * i for i in range(8)], [1.0 + 0.5 * i for i in range(8)]  # 4 channels x 2 latent frames
    cfg = TINY["AutoencoderKLCosmos"] | {"latents_mean": mean, "latents_std": std}
    model = da.adapter_class("cosmos-test", "AutoencoderKLCosmos", cfg)(None)
    z = torch.ones(1, 4, 2, 3, 3)
    n = model.normalize_latent(z)
    for c in range(4):
        for t in range(2):
            assert torch.allclose(n[0, c, t], (z[0, c, t] - mean[2 * c + t]) / std[2 * c + t])


def test_latent_normalisation_survives_a_device_or_dtype_move(saved):
    """The LTX buffers live on the adapter and on the wrapped model: .to() must keep them one and the same."""
    if "AutoencoderKLLTXVideo" not in saved:
        pytest.skip("no LTX-Video in this diffusers")
    model = da.from_pretrained(str(saved["AutoencoderKLLTXVideo"][1]), device="cpu").to(torch.float64)
    assert model.diffusers_model.latents_mean.dtype == torch.float64
    assert model.diffusers_model.encoder.conv_in.conv.weight is model.encoder.conv_in.conv.weight


# --- offered only with real weights --------------------------------------------------------------------------

def test_not_offered_unless_configured_and_on_disk(saved, tmp_path, monkeypatch):
    folder = saved[CLASSES[0]][1]
    lab = models.names()
    assert not any(n not in models.all_names() for n in lab), "nothing but lab families without configuration"
    models.register_extra("wan-test", str(folder))
    assert models.names() == lab + ["wan-test"]
    assert "wan-test" in [c.name for c in models.available()]
    models.register_extra("not-downloaded", "acme/never-downloaded-vae:vae")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert "not-downloaded" not in models.names(), "weights not on disk: never offered"
    (tmp_path / "empty").mkdir()
    models.register_extra("empty-folder", str(tmp_path / "empty"))
    assert "empty-folder" not in models.names(), "a folder without config.json and weights is not weights"
    for name in ("wan-test", "not-downloaded", "empty-folder"):
        da.unregister_extra(name)
    assert models.names() == lab
    with pytest.raises(ValueError, match="VAE Lab family"):
        models.register_extra("sd-vae", str(folder))


def test_env_variable_configures_models(saved, monkeypatch):
    folders = [saved[c][1] for c in CLASSES[:2]]
    monkeypatch.setenv(da.ENV, f"prod-a={folders[0]}, prod-b={folders[1]}")
    assert models.names()[-2:] == ["prod-a", "prod-b"]
    card = models.card("prod-b")
    assert card.name == "prod-b" and card.params > 0 and str(folders[1]) in card.weights
    monkeypatch.setenv(da.ENV, "oops")
    with pytest.raises(ValueError, match="name=weights"):
        models.names()


def test_registered_model_loads_and_runs_through_the_pipeline(saved):
    from vaelab import engine, pipeline

    cls_name = "AutoencoderKLHunyuanVideo" if "AutoencoderKLHunyuanVideo" in saved else CLASSES[0]
    ref, folder = saved[cls_name]
    models.register_extra("prod-vae", str(folder))
    m = models.load("prod-vae", device="cpu")
    assert m.card.name == "prod-vae" and m.weights_source == str(folder)
    for k, v in ref.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 24, 40, 3), dtype=np.uint8)
    engine.forget_models("prod-vae")
    comp = pipeline.reconstruct_clip(frames, ["prod-vae"], device="cpu", with_lpips=False)
    r = comp.to_json()["models"]["prod-vae"]
    assert r["latent_shape"] == list(m.card.latent_shape(3, 24, 40)) and 0 < r["psnr"] <= 100
    engine.forget_models("prod-vae")


def test_class_mismatch_and_non_video_folders_are_refused(saved, tmp_path):
    if len(CLASSES) < 2:
        pytest.skip("needs two adapted classes")
    models.register_extra("prod-a", str(saved[CLASSES[0]][1]))
    with pytest.raises(models.WeightsError, match=f"prod-a is a {CLASSES[0]}"):
        models.load("prod-a", weights=str(saved[CLASSES[1]][1]), device="cpu")
    (tmp_path / "kl").mkdir()
    (tmp_path / "kl" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    (tmp_path / "kl" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    with pytest.raises(models.WeightsError, match="not one of the adapted production video VAEs"):
        da.from_pretrained(str(tmp_path / "kl"))
