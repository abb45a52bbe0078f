"""The UI only wires: each tab's model runs take its Precision and say what ran; the Reconstruct heatmaps' coding
grid comes from the run's own plan; start-up work lives in ``vaelab.analysis.warmup``, not in the UI package."""
from __future__ import annotations

import ast
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from conftest import moving_gradient, require_lab_weights, requires_native_bf16

from vaelab import pipeline
from vaelab import viz_diagnostics as vd
from vaelab.engine import get_model, run_model

UI = Path(__file__).resolve().parents[1] / "vaelab" / "ui"


def _no_progress(*args, **kwargs):
    return None


# --------------------------------------------------------------------------- the run's plan and the grid


def test_run_model_records_the_chunks_and_tiles_it_used():
    require_lab_weights("sd-vae", "iv-vae")
    frames = moving_gradient(9, 40, 52)  # 52 px wide: coded on 56 (a multiple of 8)
    image = run_model(get_model("sd-vae", "lab", "cpu"), frames, tile=30, overlap=10, precision="fp32")
    assert image.plan == {"coding": "per frame", "chunks": None, "spatial_factor": 8, "coded_size": [40, 56],
                          "tile": 24, "overlap": 8}  # rounded down to the latent grid, as the notes say
    assert "tiled: 24 px tiles, 8 px overlap" in image.notes[-1]
    video = run_model(get_model("iv-vae", "lab", "cpu"), frames, chunk_latents=1, precision="fp32")
    assert video.plan["coding"] == "streamed" and video.plan["tile"] is None and video.plan["overlap"] == 0
    assert video.plan["chunks"] == [[0, 1], [1, 5], [5, 9]]  # frame 0 alone, then 4-frame chunks
    assert run_model(get_model("iv-vae", "lab", "cpu"), frames[:7], chunk_latents=2).plan["chunks"] == [[0, 1], [1, 7]]


def test_grid_lines_follow_the_tiles_on_the_coded_frame():
    lines = vd.grid_lines(40, 52, latent_factor=8, tile=24, overlap=8, coded=(40, 56))
    # streaming.tile_starts on 56 px: 0, 16, then the last one moved back to 32; ends at 24 and 40
    assert lines["x"] == {"latent": [8, 16, 24, 32, 40, 48], "tile_start": [16, 32], "tile_end": [24, 40]}
    assert lines["y"]["tile_start"] == [16] and lines["y"]["tile_end"] == [24]
    assert vd.grid_lines(40, 52, latent_factor=8)["x"]["tile_start"] == []  # no tiles: latent cells only
    img = np.zeros((40, 52, 3), np.uint8)
    drawn = vd.grid_overlay_rgb(img, latent_factor=8, tile=24, overlap=8, coded=(40, 56))
    assert (drawn[:, 16] == vd.GRID_TILE_RGB).all() and (drawn[16, :] == vd.GRID_TILE_RGB).all()
    assert (drawn[::2, 24] == vd.GRID_TILE_RGB).all() and not (drawn[1::2, 24] == vd.GRID_TILE_RGB).all()
    assert tuple(drawn[3, 8]) == (64, 64, 64) and tuple(drawn[3, 9]) == (0, 0, 0)  # 25 % white latent lines
    assert img.max() == 0  # a copy
    assert vd.chunk_caption(3, [(0, 1), (1, 5)]) == "frame 3: chunk 1 (frames 1-4)"
    assert vd.chunk_caption(0, [(0, 1), (1, 5)]) == "frame 0: chunk 0 (frame 0)" and vd.chunk_caption(9, [(0, 1)]) is None


def test_reconstruct_heatmaps_show_the_grid_only_when_asked():
    from vaelab.ui import tab_reconstruct as R

    require_lab_weights("sd-vae", "iv-vae")
    comp = pipeline.reconstruct_clip(moving_gradient(5, 40, 52), ["sd-vae", "iv-vae"], device="cpu", tile=30,
                                     overlap=10, chunk_latents=1, precision="fp32", with_lpips=False)
    plain = R.show_frame(comp, 3, "iv-vae", None, False)
    grid = R.show_frame(comp, 3, "iv-vae", None, True)
    assert "chunk" not in plain["errors"] and not plain["enlarged"].layout.shapes
    assert "frames coded independently · 24 px tiles, overlap 8" in grid["errors"]  # sd-vae: per frame
    assert "streamed chunk 1 (frames 1-4) · 24 px tiles, overlap 8" in grid["errors"]  # iv-vae at frame 3
    assert "rec-grid-legend" in grid["errors"] and grid["errors"] != plain["errors"]
    fig = grid["enlarged"]
    xs = sorted({s.x0 for s in fig.layout.shapes if s.x0 == s.x1 and s.line.width == 2})
    assert xs == [15.5, 31.5]  # the tile starts, over the reconstruction and the error map
    assert {s.xref for s in fig.layout.shapes} == {"x2", "x3"}
    assert list(fig.layout.xaxis3.range) == [-0.5, 51.5]  # the pixel extent stays pinned under the lines
    assert any("streamed chunk 1" in a.text for a in fig.layout.annotations)
    assert R.show_frame(None, 0, None, None, True) == {}


# --------------------------------------------------------------------------- Inside the model: precision


@pytest.fixture(scope="module")
def inside_state():
    require_lab_weights("iv-vae")
    return pipeline.Comparison(moving_gradient(5, 32, 48), 12.0, {}, [], "")


@requires_native_bf16
def test_branch_ablation_runs_in_the_chosen_precision_and_says_so(inside_state):
    from vaelab.ui import tab_inside

    fp32 = tab_inside.branch_ablation(inside_state, 1, "cpu", "fp32", progress=_no_progress)
    bf16 = tab_inside.branch_ablation(inside_state, 1, "cpu", "bf16", progress=_no_progress)
    assert "- ran on cpu fp32" in fp32["bnotes"] and "autocast" not in fp32["bnotes"]
    assert "- ran on cpu bf16 (autocast" in bf16["bnotes"]
    with pytest.raises(gr.Error, match="fp16 runs only on a GPU"):
        tab_inside.branch_ablation(inside_state, 1, "cpu", "fp16", progress=_no_progress)


@requires_native_bf16
def test_ablations_take_the_precision():
    from vaelab.analysis import ablations

    require_lab_weights("iv-vae", "videovae-plus")
    clip = moving_gradient(5, 32, 48)
    iv = get_model("iv-vae", "lab", "cpu")
    a32, a16 = (ablations.branch_ablation(iv, clip, precision=p) for p in ("fp32", "bf16"))
    assert (a32.device, a32.precision, a16.precision) == ("cpu", "fp32", "bf16")
    full32, full16 = a32.variants["full latent"], a16.variants["full latent"]
    assert not np.array_equal(full32.recon, full16.recon)  # bf16 did run
    assert abs(full32.mean_psnr - full16.mean_psnr) < 0.5
    vvp = get_model("videovae-plus", "lab", "cpu")
    c16 = ablations.caption_effect(vvp, clip, "a moving grey gradient", precision="bf16")
    assert c16.precision == "bf16" and len(c16.variants) == 3
    assert ablations.caption_effect(vvp, clip, "a moving grey gradient").precision == "fp32"  # the default


# --------------------------------------------------------------------------- start-up work is not in the UI


def test_start_up_work_lives_outside_the_ui_package():
    """No module of vaelab/ui starts threads or keeps warm-up state: ``ui.app`` calls ``analysis.warmup``."""
    offenders = []
    for path in UI.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "Thread":
                offenders.append(f"{path.name}: threading.Thread")
            if isinstance(node, (ast.FunctionDef, ast.Assign)):
                names = [node.name] if isinstance(node, ast.FunctionDef) else [
                    t.id for t in node.targets if isinstance(t, ast.Name)]
                offenders += [f"{path.name}: {n}" for n in names if n.lower().lstrip("_") in ("warm", "warm_text")]
    assert not offenders, offenders
    app_src = (UI / "app.py").read_text()
    assert "warmup.start(" in app_src and "warmup.warm_models(" in app_src


def test_warmup_start_runs_the_umap_and_model_warm_ups(monkeypatch):
    from vaelab.analysis import warmup

    ran = []
    monkeypatch.setattr(warmup, "warm_umap", lambda: ran.append("umap"))
    monkeypatch.setattr(warmup, "warm_models", lambda precision=None: ran.append(("models", precision)))
    for t in warmup.start(models_too=True, precision="bf16"):
        t.join(10)
        assert t.daemon
    assert sorted(map(str, ran)) == sorted(["umap", str(("models", "bf16"))])
    ran.clear()
    for t in warmup.start(models_too=False):
        t.join(10)
    assert ran == ["umap"]


def test_the_latent_handler_returns_every_output_by_name():
    """Its outputs are named (``OUTPUTS``) like the other tabs'; ``keyed`` refuses a name that is not wired."""
    from vaelab.ui import tab_latents as TL
    from vaelab.ui.outputs import keyed

    assert TL.OUTPUTS == ["status", "umap", "pca", "table", "compat", "bars", "view"]
    wired = keyed(lambda: {"status": "x", "nope": 1}, {"status": object()})
    with pytest.raises(KeyError, match="nope"):
        wired()


# --------------------------------------------------------------------------- Diagnostics: the precision control


@requires_native_bf16
def test_diagnostics_tab_probes_in_the_chosen_precision(tmp_path):
    import json

    from vaelab.ui import tab_diagnostics as D

    require_lab_weights("vqgan")
    out = D.run_diagnostics(["vqgan"], 5, 32, "cpu", "bf16", progress=_no_progress)
    assert list(out) == D.PROBE_OUTPUTS and all(out[k] is not None for k in D.PROBE_OUTPUTS)
    assert "**Ran on:** cpu bf16 (asked bf16)." in out["summary"]
    j = json.loads(Path(out["report"]).read_text())
    assert j["input"]["precision"] == "bf16" and j["models"]["vqgan"]["precision"] == "bf16"
    with pytest.raises(gr.Error, match="fp16 runs only on a GPU"):
        D.run_diagnostics(["vqgan"], 5, 32, "cpu", "fp16", progress=_no_progress)
    clip = D.clip_diagnostics(None, "bikes", ["vqgan"], 2, 32, "cpu", "fp32", progress=_no_progress)
    assert list(clip) == D.CLIP_OUTPUTS and "**Ran on:** cpu fp32." in clip["cnotes"]
