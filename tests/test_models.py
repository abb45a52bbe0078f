"""Model contracts: shapes for every family and frame count, diffusers parity, VQ properties, weights safety."""
from __future__ import annotations

import pickle

import pytest
import torch

from vaelab import models
from vaelab.models.base import pad_frames_to_rule

NAMES = models.all_names()
FOUNDATION = ["vqgan", "sd-vae", "litevae"]  # the families that must ship trained weights


@pytest.fixture(scope="module")
def built():
    torch.manual_seed(0)
    return {n: models.build(n).eval() for n in NAMES}


def test_available_cards_have_public_fields():
    cards = models.available()
    assert sorted(c.name for c in cards) == sorted(NAMES)
    assert set(FOUNDATION) <= set(models.names()), "the app offers only trained families"
    for c in cards:
        assert c.kind in ("image", "video")
        assert c.paper.title and c.paper.year > 2000
        assert c.params > 0 and c.teaching
        assert c.frame_rule in ("any", "1+4k", "4k")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t,h,w", [(1, 64, 64), (2, 40, 56), (5, 33, 47)])
def test_reconstruct_keeps_shape_and_latent_matches_card(built, name, t, h, w):
    m = built[name]
    x = torch.rand(1, 3, t, h, w) * 2 - 1
    y = m.reconstruct(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all() and y.abs().max() <= 1
    from vaelab.models.base import pad_to_rule
    from vaelab.models.latent import Latent

    z = m.encode(pad_to_rule(x, m.card.spatial_factor, m.card.frame_rule)[0])
    assert isinstance(z, Latent) and z.names == (m.latent_parts or ("z",))  # one latent type for every family
    assert tuple(z.main.shape[1:]) == m.card.latent_shape(t, h, w)


def test_frame_rules():
    assert [pad_frames_to_rule(t, "1+4k") for t in (1, 2, 5, 6, 17)] == [1, 5, 5, 9, 17]
    assert [pad_frames_to_rule(t, "4k") for t in (1, 4, 5)] == [4, 4, 8]
    assert pad_frames_to_rule(7, "any") == 7


def test_image_models_treat_frames_independently(built):
    m = built["sd-vae"]
    x = torch.rand(1, 3, 3, 32, 32) * 2 - 1
    y_all = m.reconstruct(x)
    y_one = m.reconstruct(x[:, :, 1:2])
    assert torch.allclose(y_all[:, :, 1:2], y_one, atol=1e-5)


# --- sd-vae <-> diffusers parity ------------------------------------------------------------

def _diffusers_vae(cfg):
    diffusers = pytest.importorskip("diffusers")
    n = len(cfg["block_out_channels"])
    return diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(cfg["block_out_channels"]),
        layers_per_block=cfg["layers_per_block"], latent_channels=cfg["latent_channels"],
        norm_num_groups=cfg["norm_num_groups"], sample_size=64,
    ).eval()


@pytest.mark.parametrize("cfg", [
    {"block_out_channels": [32, 64], "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 8},
    {"block_out_channels": [32, 32, 64, 64], "layers_per_block": 2, "latent_channels": 4, "norm_num_groups": 16},
])
def test_sd_vae_loads_diffusers_state_dict_and_matches_output(cfg):
    torch.manual_seed(1)
    ref = _diffusers_vae(cfg)
    ours = models.build("sd-vae", cfg).eval()
    state = ref.state_dict()
    assert set(state) == set(ours.state_dict()), "module tree must match diffusers exactly"
    ours.load_diffusers_state_dict(state)
    x = torch.rand(2, 3, 48, 40) * 2 - 1
    with torch.no_grad():
        ref_out = ref(x, sample_posterior=False).sample
        z_ref = ref.encode(x).latent_dist.mode()
        z = ours.encode_frames(x)
        out = ours.decode_frames(z)
    assert (z.main - z_ref).abs().max() <= 1e-4
    assert (out - ref_out).abs().max() <= 1e-4


def test_sd_vae_accepts_legacy_attention_names():
    cfg = {"block_out_channels": [32, 64], "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 8}
    torch.manual_seed(2)
    src = models.build("sd-vae", cfg)
    legacy = {}
    for k, v in src.state_dict().items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
            k = k.replace(f"attentions.0.{new}.", f"attentions.0.{old}.")
        # CompVis-era files store attention projections as 1x1 convs
        legacy[k] = v[:, :, None, None] if ("attentions" in k and k.endswith("weight") and v.ndim == 2) else v
    assert any(".query." in k for k in legacy)
    dst = models.build("sd-vae", cfg)
    dst.load_diffusers_state_dict(legacy)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


# --- VQ ---------------------------------------------------------------------------------------

def test_vq_indices_in_range_and_straight_through_gradient(built):
    m = models.build("vqgan").train()
    x = torch.rand(2, 3, 1, 32, 32) * 2 - 1
    recon, losses = m(x)
    idx = losses["_indices"]
    assert idx.dtype == torch.int64 and idx.min() >= 0 and idx.max() < m.quantize.n_embed
    (recon - x).abs().mean().backward()
    g = m.encoder.conv_in.weight.grad
    assert g is not None and g.abs().sum() > 0, "STE must pass the decoder gradient to the encoder"


def test_vq_legacy_flag_moves_beta():
    from vaelab.models.vqgan import VectorQuantizer

    torch.manual_seed(0)
    z = torch.randn(1, 8, 4, 4)
    vq = VectorQuantizer(16, 8, beta=0.25, legacy=True)
    _, loss_legacy, _ = vq(z)
    vq.legacy = False
    _, loss_new, _ = vq(z)
    # forward values are equal (both terms have the same value), but gradients to the encoder differ
    assert torch.allclose(loss_legacy, loss_new)
    z1 = z.clone().requires_grad_()
    vq.legacy = True
    vq(z1)[1].backward()
    z2 = z.clone().requires_grad_()
    vq.legacy = False
    vq(z2)[1].backward()
    assert torch.allclose(z1.grad, 4 * z2.grad, atol=1e-6), "legacy: commitment weight 1 vs beta=0.25"


def test_codebook_stats():
    from vaelab.models.vqgan import codebook_stats

    s = codebook_stats(torch.tensor([0, 0, 1, 1]), 8)
    assert s["used"] == 2 and abs(s["perplexity"] - 2.0) < 1e-9 and len(s["counts"]) == 8


# --- LiteVAE ------------------------------------------------------------------------------------

def test_litevae_encoder_is_several_times_smaller_than_sd_vae_encoder(built):
    from torch.utils.flop_counter import FlopCounterMode

    lite, sd = built["litevae"], built["sd-vae"]
    p_lite = sum(p.numel() for p in lite.encoder.parameters())
    p_sd = sum(p.numel() for p in sd.encoder.parameters()) + sum(p.numel() for p in sd.quant_conv.parameters())
    x = torch.rand(1, 3, 64, 64)
    flops = []
    for enc in (lambda v: lite.encoder(v), lambda v: sd.quant_conv(sd.encoder(v))):
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            enc(x)
        flops.append(fc.get_total_flops())
    assert p_sd / p_lite >= 3, (p_sd, p_lite)
    assert flops[1] / flops[0] >= 2, flops
    assert lite.encode_frames(x).main.shape == sd.encode_frames(x).main.shape


def test_litevae_pyramid_is_the_haar_transform(built):
    lite = built["litevae"]
    x = torch.rand(1, 3, 32, 32)
    pyr = lite.encoder.pyramid(x)
    assert [tuple(p.shape) for p in pyr] == [(1, 12, 16, 16), (1, 12, 8, 8), (1, 12, 4, 4)]
    # orthonormal: level-1 bands hold all of the input's energy
    assert torch.allclose(pyr[0].pow(2).sum(), x.pow(2).sum(), rtol=1e-5)


# --- weights ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FOUNDATION)
def test_lab_weights_ship_and_load(name):
    path = models.lab_weights_path(name)
    assert path.exists(), f"{path} missing: lab weights must ship in assets/"
    assert path.stat().st_size < 20 * 1024**2
    m = models.load(name, device="cpu")
    rec = models.training_record(name)
    assert rec["heldout"]["mean_psnr"] > 18, "shipped weights must be trained (random weights give ~5-10 dB)"
    assert not m.training and m.num_params() == rec["params"]


def test_save_and_load_round_trip(tmp_path):
    m = models.build("litevae")
    p = models.save_weights(m, tmp_path / "w.safetensors")
    m2 = models.load("litevae", weights=str(p), device="cpu")
    for k, v in m.state_dict().items():
        assert torch.allclose(m2.state_dict()[k], v.half().float()), k


def test_wrong_architecture_checkpoint_is_refused_with_a_clear_message(tmp_path):
    p = models.save_weights(models.build("sd-vae"), tmp_path / "sd.safetensors")
    with pytest.raises(models.WeightsError, match="does not fit litevae|litevae config has no key"):
        models.load("litevae", weights=str(p), device="cpu")


def test_nan_checkpoint_is_refused(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in models.build("vqgan").state_dict().items()}
    state["decoder.conv_out.bias"][0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    with pytest.raises(models.WeightsError, match="NaN/Inf"):
        models.load("vqgan", weights=str(tmp_path / "nan.safetensors"), device="cpu")


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_MARKER",))


def test_malicious_pickle_checkpoint_is_refused_and_runs_no_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"state_dict": _Boom()}, f)
    with pytest.raises(models.WeightsError):
        models.load("vqgan", weights=str(path), device="cpu")
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_missing_lab_weights_message(isolated_assets):
    with pytest.raises(models.WeightsError, match="vaelab train"):
        models.load("sd-vae", device="cpu")
