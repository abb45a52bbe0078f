"""Inside the model: VideoVAE+'s caption, IV-VAE's zeroed branches, and the caption through the pipeline."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vaelab import engine, models, pipeline
from vaelab.analysis import ablations


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (1, 36, 44, 3))
    return np.clip(base + np.arange(6)[:, None, None, None] * 5, 0, 255).astype(np.uint8)  # odd sizes


@pytest.fixture(scope="module")
def vvp():
    torch.manual_seed(0)
    return models.build("videovae-plus").eval()


@pytest.fixture(scope="module")
def ivvae():
    torch.manual_seed(0)
    return models.build("iv-vae").eval()


def test_caption_effect_runs_three_conditions(vvp, clip):
    ab = ablations.caption_effect(vvp, clip, "a grey street", "")
    assert list(ab.variants) == ["right caption", "no caption", "wrong caption"]
    for v in ab.variants.values():
        assert v.recon.shape == clip.shape and len(v.psnr) == len(clip)
    # the caption is read in encoder and decoder: even random weights give different pixels for each condition
    assert ab.difference("right caption", "no caption").mean() > 0
    assert ab.difference("right caption", "wrong caption").mean() > 0
    # an empty wrong caption falls back to one about something else
    assert ablations.wrong_caption_for("a grey street") in ab.notes[0]
    # the right-caption variant is exactly what run_model gives with that caption
    direct = engine.run_model(vvp, clip, model_kwargs={"caption": "a grey street"}).recon
    assert np.array_equal(direct, ab.variants["right caption"].recon)


def test_caption_effect_refuses_what_it_cannot_do(vvp, clip, ivvae):
    with pytest.raises(ValueError, match="Type a caption"):
        ablations.caption_effect(vvp, clip, "   ")
    with pytest.raises(ValueError, match="no caption path"):
        ablations.caption_effect(ivvae, clip, "a street")


def test_wrong_caption_is_never_the_right_one():
    for c in ablations.WRONG_CAPTIONS:
        assert ablations.wrong_caption_for(c) != c


def test_branch_ablation_zeroes_each_half(ivvae, clip):
    ab = ablations.branch_ablation(ivvae, clip[:5], chunk_latents=1)
    assert list(ab.variants) == ["full latent", "keyframe branch zeroed", "temporal branch zeroed"]
    full = ab.variants["full latent"].recon  # one shared encode: the Reconstruct pixels to float rounding
    assert np.abs(full.astype(int) - engine.run_model(ivvae, clip[:5], chunk_latents=1).recon).max() <= 1
    for k in ("keyframe branch zeroed", "temporal branch zeroed"):
        assert ab.difference("full latent", k).mean() > 0
    # streamed decode with a zeroed branch == one-shot decode of the zeroed latent
    x = engine.to_tensor(clip[:5])
    x_pad, _ = models.base.pad_to_rule(x, 8, "any")
    with torch.inference_mode():
        one_shot = engine.to_uint8(ivvae.decode_chunk(ivvae.encode(x_pad), zero_branch="keyframe")[..., :36, :44])
    assert np.abs(one_shot.astype(int) - ab.variants["keyframe branch zeroed"].recon).max() <= 1
    assert set(ab.by_position["full latent"]) == {"frame 0", "1st", "2nd", "3rd", "4th"}
    assert ab.notes[0].startswith("full latent:")


def test_branch_ablation_needs_iv_vae(vvp, clip):
    with pytest.raises(ValueError, match="no latent branches"):
        ablations.branch_ablation(vvp, clip)


def test_pipeline_passes_the_caption_to_caption_models_only(clip, monkeypatch):
    """The caption changes VideoVAE+'s pixels and is part of its cache key; image models ignore it."""
    torch.manual_seed(0)
    built = {"videovae-plus": models.build("videovae-plus").eval(), "sd-vae": models.build("sd-vae").eval()}
    monkeypatch.setattr(pipeline, "get_model", lambda name, w, d: built[name])
    pipeline._RESULTS.clear()
    kw = dict(with_lpips=False, device="cpu")
    a = pipeline.reconstruct_clip(clip, ["videovae-plus", "sd-vae"], caption="a grey street", **kw)
    b = pipeline.reconstruct_clip(clip, ["videovae-plus", "sd-vae"], caption="", **kw)
    assert not b.results["videovae-plus"].cached and b.results["sd-vae"].cached
    assert not np.array_equal(a.results["videovae-plus"].run.recon, b.results["videovae-plus"].run.recon)
    assert any("a grey street" in n for n in a.results["videovae-plus"].run.notes)
    assert any("no caption" in n for n in b.results["videovae-plus"].run.notes)
    pipeline._RESULTS.clear()


def test_example_captions():
    assert "rabbit" in pipeline.example_caption("bigbuckbunny")
    assert "coffee" in pipeline.example_caption("coffee" + pipeline.EXAMPLE_PHOTO_SUFFIX)
    assert pipeline.example_caption("nope") == "" and pipeline.example_caption(None) == ""
