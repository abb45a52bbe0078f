"""The released HVDM autoencoder (hxngiee/HVDM ``ViTAutoencoder``) loads exactly, proven without network.

The reference hard-codes 384 channels and 16 x 256 x 256 clips, so it cannot be shrunk: the parity fixture
(tests/fixtures/official/hvdm/, made by scripts/parity_hvdm.py from the reference code) holds the reference's
full-size key manifest, its constructed buffers, and subsets / per-frame sums of its latent and reconstruction
for a seeded input; the weights are rebuilt here from the recipe (``official.hashed_weights``: crc32 of each key
seeds its tensor) and written as the released ``model_[EPOCH].pth`` (a plain state dict).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vaelab import models
from vaelab.models import official
from vaelab.models.hvdm import (
    ReleasedHVDM,
    is_released_state,
    released_config_from_state,
)
from vaelab.models.latent import Latent

FIX = Path(__file__).parent / "fixtures" / "official" / "hvdm"
TOL = 1e-4
_spec = importlib.util.spec_from_file_location("parity_hvdm", Path(__file__).parents[1] / "scripts" / "parity_hvdm.py")
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)  # only its input recipe and summary (no reference import at module level)


def _manifest() -> list[list]:
    return json.loads((FIX / "manifest_released.json").read_text())["keys"]


@pytest.fixture(scope="module")
def released_pth(tmp_path_factory) -> Path:
    fx = load_file(str(FIX / "parity_released.safetensors"))
    buffers = {k[len("buffer."):]: v for k, v in fx.items() if k.startswith("buffer.")}
    shapes = {k: tuple(s) for k, s in _manifest() if k not in buffers}
    path = tmp_path_factory.mktemp("hvdm") / "model_250000.pth"
    torch.save(official.hashed_weights(shapes) | buffers, str(path))
    return path


def test_full_size_key_manifest_matches_the_reference():
    with torch.device("meta"):
        model = ReleasedHVDM()
    assert sorted([k, list(v.shape)] for k, v in model.state_dict().items()) == _manifest()
    meta = {k: torch.empty(s, device="meta") for k, s in _manifest()}
    assert is_released_state(meta) and released_config_from_state(meta) == model.released


def test_our_buffers_are_the_reference_constants():
    fx = load_file(str(FIX / "parity_released.safetensors"))
    own = ReleasedHVDM().state_dict()
    for k, v in fx.items():
        if k.startswith("buffer."):
            assert torch.equal(own[k[len("buffer."):]], v), k


def test_full_size_parity_from_a_released_pth(released_pth):
    fx = load_file(str(FIX / "parity_released.safetensors"))
    (released_pth.parent / "model_1000.pth").symlink_to(released_pth.name)  # an older save in the same folder
    model = models.load("hvdm", weights=str(released_pth.parent), device="cpu")  # results/first_stage_ae_*/
    assert any("model_250000.pth (the highest of 2" in n for n in model.weights_notes)
    assert isinstance(model, ReleasedHVDM)
    x = parity.parity_input()
    with torch.no_grad():
        z = model.encode(x)
        assert z.main.shape == (1, 4, 16, 32, 32)
        rec = model.decode(z)
    ours = parity.summarise(z.main, rec)
    for k in ("latent_frames", "recon_frames"):
        assert (ours[k] - fx[k]).abs().max() <= TOL, k
    # every element, through per-frame float64 sums: within 1e-4 each, a frame's sum is within 1e-4 x its size
    for k, n in (("latent_sum", 4 * 32 * 32), ("latent_abs_sum", 4 * 32 * 32), ("recon_sum", 3 * 256 * 256),
                 ("recon_abs_sum", 3 * 256 * 256)):
        assert (ours[k] - fx[k]).abs().max() <= TOL * n, k
    assert any("16 x 256 x 256" in n for n in model.weights_notes)
    w = model.card.weights
    assert "no licence file" in w and "loads exactly (parity-tested" in w and "hxngiee/HVDM" in w
    assert "CPU cost at full size: 16 x 256 x 256, fp32" in w
    assert official.support("hvdm").status == "supported"


def test_other_clip_sizes_are_fitted_and_said(monkeypatch):
    """The fitting plumbing (resize to 256, 16-frame chunks, resize back); the compute is the parity test's."""
    model = ReleasedHVDM().eval()
    seen = []

    def fake_encode(x, mode="fused"):
        seen.append(tuple(x.shape))
        return torch.tanh(x[:, :1, :, ::8, ::8].repeat(1, 4, 1, 1, 1))

    monkeypatch.setattr(model, "encode_fixed", fake_encode)
    monkeypatch.setattr(model, "decode_fixed", lambda z: z[:, :3].repeat_interleave(8, 3).repeat_interleave(8, 4))
    x = torch.rand(1, 3, 20, 40, 56) * 2 - 1
    assert model.reconstruct(x).shape == x.shape
    assert seen == [(1, 3, 16, 256, 256)] * 2  # 20 frames -> two chunks, the second padded
    assert model.encode(x).main.shape == (1, 4, 32, 32, 32)
    with pytest.raises(ValueError, match="chunks of 16"):
        model.decode(Latent(torch.zeros(1, 4, 3, 32, 32)))
    with pytest.raises(ValueError, match="exactly 16 x 256 x 256"):
        ReleasedHVDM._check(model, x)
    assert model.card.latent_shape(20, 40, 56) == (4, 32, 32, 32) and model.card.frame_rule == "16k"
    # the app's engine: one-shot run, the clip's own size back, and the fitting said in the run notes
    from vaelab.engine import run_model

    frames = (torch.rand(20, 40, 56, 3) * 255).to(torch.uint8).numpy()
    res = run_model(model, frames, tile=32)
    assert res.recon.shape == frames.shape and any("16 x 256 x 256" in n and "tiling off" in n for n in res.notes)


def test_mismatched_checkpoint_gets_one_line_naming_the_keys(released_pth, tmp_path):
    state = torch.load(str(released_pth), weights_only=True)
    del state["decoder.layers.4.2.fn.net.3.bias"]
    state["pre_freq.bias"] = torch.zeros(5)
    state = {f"module.{k}": v for k, v in state.items()}  # a DDP-wrapped save: the prefix is dropped
    torch.save(state, str(tmp_path / "model_1.pth"))
    with pytest.raises(models.WeightsError) as e:
        models.load("hvdm", weights=str(tmp_path / "model_1.pth"), device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and "pre_freq.bias" in msg and "decoder.layers.4.2.fn.net.3.bias" in msg
