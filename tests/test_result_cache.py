"""Per-model result cache (repeat requests, workshop mode) and the CPU default selection."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import moving_gradient, require_lab_weights

from vaelab import pipeline


@pytest.fixture(autouse=True)
def fresh_cache():
    pipeline._RESULTS.clear()
    yield
    pipeline._RESULTS.clear()


def test_identical_request_is_reused_and_marked(one_thread):
    require_lab_weights("sd-vae")
    clip = moving_gradient(3, 32, 48)
    first = pipeline.reconstruct_clip(clip, ["sd-vae"], device="cpu", with_lpips=False)
    again = pipeline.reconstruct_clip(clip, ["sd-vae"], device="cpu", with_lpips=False)
    assert not first.results["sd-vae"].cached and again.results["sd-vae"].cached
    assert np.array_equal(first.results["sd-vae"].run.recon, again.results["sd-vae"].run.recon)
    # another input, or other settings, is a different entry
    other = pipeline.reconstruct_clip(clip[::-1].copy(), ["sd-vae"], device="cpu", with_lpips=False)
    tiled = pipeline.reconstruct_clip(clip, ["sd-vae"], device="cpu", with_lpips=False, tile=16, overlap=8)
    assert not other.results["sd-vae"].cached and not tiled.results["sd-vae"].cached
    # overlap without tiling means nothing, so it does not split the cache
    assert pipeline.reconstruct_clip(clip, ["sd-vae"], device="cpu", with_lpips=False,
                                     overlap=16).results["sd-vae"].cached


def test_result_cache_is_bounded_by_entries_and_bytes():
    assert pipeline._RESULTS.size == 64 and pipeline._RESULTS.max_bytes == pipeline._result_cache_bytes()

    class Run:
        def __init__(self, n):
            self.recon = np.zeros(n, np.uint8)

    class Result:
        def __init__(self, n):
            self.run = Run(n)

    assert pipeline._result_nbytes(Result(1000)) == 1000 and pipeline._result_nbytes(3) == 0


def test_notes_say_when_a_result_was_reused(one_thread):
    from vaelab.ui.tab_reconstruct import notes_md as _notes

    require_lab_weights("sd-vae")
    clip = moving_gradient(2, 32, 48)
    pipeline.reconstruct_clip(clip, ["sd-vae"], device="cpu", with_lpips=False)
    notes = _notes(pipeline.reconstruct_clip(clip, ["sd-vae"], device="cpu", with_lpips=False))
    assert "**Cached:** sd-vae reused" in notes


def test_cpu_default_selection_is_the_trained_image_models():
    from vaelab import models
    from vaelab.ui.tab_reconstruct import default_models

    picked = default_models("cpu")
    assert picked and set(picked) <= set(models.names())
    image = [n for n in models.names() if models.model_class(n).card.kind == "image"]
    assert picked == (image or models.names())


def test_workshop_precomputation_fills_the_cache(one_thread, monkeypatch):
    from vaelab.ui import app

    require_lab_weights("sd-vae")
    monkeypatch.setattr(pipeline, "example_names", lambda: ["bikes", "coffee (photo)"])
    assert app.precompute_examples(["sd-vae"]) == 2
    clip = pipeline.load_input(None, "bikes", frames=pipeline.DEFAULT_FRAMES, size=pipeline.DEFAULT_SIZE)
    comp = pipeline.reconstruct_clip(clip.frames, ["sd-vae"], device="cpu", precision=app.page_precision())
    assert comp.results["sd-vae"].cached


def test_workshop_precomputation_uses_the_captions_the_page_sends(one_thread, monkeypatch):
    from vaelab.ui import app

    require_lab_weights("videovae-plus")
    monkeypatch.setattr(pipeline, "example_names", lambda: ["bikes"])
    assert app.precompute_examples(["videovae-plus"]) == 1
    clip = pipeline.load_input(None, "bikes", frames=pipeline.DEFAULT_FRAMES, size=pipeline.DEFAULT_SIZE)
    page = pipeline.reconstruct_clip(clip.frames, ["videovae-plus"], device="cpu",
                                     caption=pipeline.example_caption("bikes"), precision=app.page_precision())
    assert page.results["videovae-plus"].cached


def test_custom_weights_for_one_model(one_thread, monkeypatch):
    """A local weights file for one selected model is used (and said); a bad one or a public server refuses."""
    import gradio as gr

    from vaelab import models
    from vaelab.ui import tab_reconstruct as app

    require_lab_weights("sd-vae")
    monkeypatch.setenv("VAELAB_ALLOW_CUSTOM_WEIGHTS", "1")
    path = str(models.lab_weights_path("sd-vae"))
    out = app.reconstruct(None, "bikes", ["sd-vae"], 2, 64, "cpu", custom_model="sd-vae", custom_weights=path)
    assert f"weights from `{path}`" in out["notes"]
    with pytest.raises(gr.Error, match="not found|No such|missing"):
        app.reconstruct(None, "bikes", ["sd-vae"], 2, 64, "cpu", custom_model="sd-vae",
                        custom_weights="/nonexistent/vae.safetensors")
    with pytest.raises(gr.Error, match="Pick which selected model"):
        app.reconstruct(None, "bikes", ["sd-vae"], 2, 64, "cpu", custom_model="vqgan", custom_weights=path)
    monkeypatch.setenv("VAELAB_ALLOW_CUSTOM_WEIGHTS", "0")
    assert not app.custom_weights_allowed()
    with pytest.raises(gr.Error, match="switched off"):
        app.reconstruct(None, "bikes", ["sd-vae"], 2, 64, "cpu", custom_model="sd-vae", custom_weights=path)
    monkeypatch.delenv("VAELAB_ALLOW_CUSTOM_WEIGHTS")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert not app.custom_weights_allowed()
    monkeypatch.setenv("GRADIO_SERVER_NAME", "127.0.0.1")
    assert app.custom_weights_allowed()
