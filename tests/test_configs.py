"""Typed frozen model configs: strict keys, the lab defaults, card factors derived from the config, metadata round trip."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from vaelab import models
from vaelab.models.config import ConfigError, ModelConfig

FAMILIES = models.all_names()


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_has_a_frozen_typed_config(name):
    cls = models.model_class(name)
    assert issubclass(cls.config_class, ModelConfig) and cls.config_class.family == name
    with torch.device("meta"):
        model = models.build(name)
    assert model.config == cls.config_class()  # the lab defaults are the dataclass defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.config.kl_weight = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        model.config["scaling_factor"] = 2.0  # type: ignore[index]
    # the JSON form (what a checkpoint carries) reads back to the same config
    assert cls.config_class.from_dict(json.loads(json.dumps(model.config.to_dict()))) == model.config


@pytest.mark.parametrize("name", FAMILIES)
def test_a_misspelt_key_names_the_family_and_the_valid_keys(name):
    cls = models.model_class(name).config_class
    key = cls.keys_valid()[0]
    typo = key[:-1] + ("x" if key[-1] != "x" else "y")
    with pytest.raises(ConfigError) as info:
        models.build(name, {typo: 1})
    msg = str(info.value)
    assert name in msg and repr(typo) in msg and f"did you mean {key!r}" in msg
    assert all(k in msg for k in cls.keys_valid()), msg
    with pytest.raises(ConfigError, match="no key 'not_a_key'"):
        cls().replace(not_a_key=1)


@pytest.mark.parametrize("name", FAMILIES)
def test_card_factors_come_from_the_config(name):
    cls = models.model_class(name)
    for k, v in cls.config_class().card_factors().items():
        assert getattr(cls.card, k) == v, f"{name}: card {k} {getattr(cls.card, k)} != config's {v}"


_CLIP = {"any": 5, "1+4k": 5, "4k": 8}


@pytest.mark.parametrize("name", FAMILIES)
def test_card_latent_shape_is_what_encode_returns(name):
    """The derived factors are the real ones: a lab model's latent has the card's shape (random weights)."""
    torch.manual_seed(0)
    model = models.build(name).eval()
    t = 16 if name == "vidtwin" else _CLIP[model.card.frame_rule]
    x = torch.rand(1, 3, t, 32, 48) * 2 - 1
    with torch.no_grad():
        z = model.encode(x)
    if not isinstance(z, torch.Tensor):  # a decoupled latent: the card's shape is its main part (the structure)
        z = getattr(z, "main", None) if isinstance(getattr(z, "main", None), torch.Tensor) else dict(z.items())["structure"]
    assert tuple(z.shape[1:]) == model.card.latent_shape(t, 32, 48)


def test_a_different_config_gives_the_instance_its_own_card():
    with torch.device("meta"):
        small = models.build("sd-vae", {"block_out_channels": [32, 64, 64], "latent_channels": 6})
        from vaelab.models.vqgan import RELEASED_CONFIGS

        taming = models.build("vqgan", RELEASED_CONFIGS["vqgan_imagenet_f16_16384"])
    assert (small.card.spatial_factor, small.card.latent_channels) == (4, 6)
    assert (taming.card.spatial_factor, taming.card.latent_channels) == (16, 256)
    assert models.model_class("sd-vae").card.spatial_factor == 8 and models.model_class("vqgan").card.spatial_factor == 8


def test_released_variants_are_instances_of_the_family_config():
    from vaelab.models import cv_vae, sd_vae, vqgan

    assert isinstance(sd_vae.SD_CONFIG, sd_vae.SDVAEConfig) and sd_vae.SD_CONFIG.norm_num_groups == 32
    assert all(isinstance(c, vqgan.VQGANConfig) for c in vqgan.RELEASED_CONFIGS.values())
    assert isinstance(cv_vae.RELEASED_CONFIG, cv_vae.CVVAEConfig)
    assert cv_vae.RELEASED_CONFIG.replace(quant_convs=True).quant_convs and not cv_vae.RELEASED_CONFIG.quant_convs


def test_config_travels_in_the_metadata_and_an_unknown_key_there_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = models.build("sd-vae", {"block_out_channels": [8, 16], "norm_num_groups": 4})
    model.config = dataclasses.replace(model.config, scaling_factor=0.5)  # as train.loop's finalize does
    path = models.save_weights(model, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["config"])
    assert meta == model.config.to_dict() and meta["block_out_channels"] == [8, 16]  # plain JSON, as before
    back = models.load("sd-vae", weights=str(path), device="cpu")
    assert back.config == model.config and back.card.spatial_factor == 2

    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "bad.safetensors"), metadata={"config": json.dumps({**meta, "norm_groups": 4})})
    with pytest.raises(models.WeightsError, match=r"sd-vae config has no key 'norm_groups'.*valid keys: in_channels"):
        models.load("sd-vae", weights=str(tmp_path / "bad.safetensors"), device="cpu")


def test_assets_seam_moves_the_lab_weights_lookup(tmp_path):
    before = models.lab_weights_path("sd-vae")
    try:
        models.use_assets(tmp_path)
        assert models.lab_weights_path("sd-vae") == tmp_path / "weights" / "sd-vae.safetensors"
        assert models.ASSETS == tmp_path and "sd-vae" not in models.names()
    finally:
        models.use_assets(before.parents[1])
    assert models.lab_weights_path("sd-vae") == before
