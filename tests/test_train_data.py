"""The training data: manifest, v2 mix, augmentation and held-out sets (offline, no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vaelab.train import augment, data, manifest, procedural

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_rows_are_complete_and_documented():
    names = [s.name for s in manifest.MANIFEST]
    assert len(names) == len(set(names))
    for s in manifest.MANIFEST:
        assert s.licence and s.origin, s.name
    doc = (ROOT / "docs" / "DATA.md").read_text()
    assert manifest.markdown_table() in doc, "docs/DATA.md: the manifest table is stale (python -m vaelab.train.manifest)"
    with pytest.raises(ValueError, match="use must be"):
        manifest.DataSource("x", "photo", "o", "l", "sometimes")


def test_training_reads_only_manifest_sources_and_never_heldout_photos():
    train_names = {s.name for s in manifest.training_sources()}
    for mix in ("v1", "v2"):
        for src in data.train_sources(short_sides=(128,), mix=mix):
            assert src.name.split("@")[0] in train_names, f"{src.name} ({mix}) is not a manifest training source"
    held = {s.name for s in manifest.heldout_sources() if s.use == "heldout"}
    assert held and not held & train_names


def test_heldout_sets_are_reported_separately():
    sets = data.heldout_sets(short_side=64, frames=5)
    assert set(sets) == {"clips", "photos", "colour_chart"}
    assert set(sets["clips"]) == {"bigbuckbunny", "bikes"}
    chart = sets["colour_chart"]["colour_chart_clip"]
    assert chart.shape == (5, 64, 96, 3) and chart.dtype == np.uint8
    # the chart's patches are the fixed ColorChecker colours, which random training charts never draw on purpose
    assert {tuple(c) for c in chart[0].reshape(-1, 3)} >= {tuple(c) for c in procedural.COLORCHECKER_SRGB[:6]}
    for clip in sets["photos"].values():  # present where plasma-workspace-wallpapers is installed
        assert clip.shape[0] == 5 and min(clip.shape[1:3]) == 64


def test_colour_jitter_keeps_range_and_moves_hue():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    jit = augment.ColourJitter(p=1.0, p_hue=1.0, p_permute=0.0)
    out = jit(clip, rng)
    assert out.dtype == np.uint8 and out.shape == clip.shape
    red = np.zeros((1, 8, 8, 3), np.uint8)
    red[..., 0] = 200
    hues = {tuple(jit(red, np.random.default_rng(s))[0, 0, 0]) for s in range(20)}
    assert len(hues) > 10, "hue rotation should give many different colours for one red"
    # per clip, one draw: every frame gets the same transform
    same = np.repeat(clip[:1], 3, axis=0)
    o = jit(same, np.random.default_rng(3))
    assert (o[0] == o[1]).all() and (o[1] == o[2]).all()
    assert (augment.ColourJitter(p=0.0)(clip, rng) == clip).all()


def test_camera_pans_zooms_rotates_within_range():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    clip = augment.Camera()(img, 9, 64, rng)
    assert clip.shape == (9, 64, 64, 3) and clip.dtype == np.uint8
    assert np.abs(clip[0].astype(int) - clip[-1]).mean() > 5  # it moves
    still = augment.Camera(max_pan=0, max_zoom=0, max_rotation=0, shake=0)(img, 3, 64, rng)
    assert (still[0] == still[2]).all()


@pytest.mark.parametrize("gen", procedural.GENERATORS, ids=lambda g: g.__name__)
def test_procedural_generators_are_deterministic_clips(gen):
    a = np.clip(np.rint(gen(np.random.default_rng(5), 4, 48)), 0, 255)
    b = np.clip(np.rint(gen(np.random.default_rng(5), 4, 48)), 0, 255)
    assert a.shape == (4, 48, 48, 3) and (a == b).all() and a.std() > 1


def test_v2_sampler_batches_in_range_with_captions():
    src = data.train_sources(short_sides=(128,), mix="v2")
    x, caps = data.Sampler(src, crop=32, frames=3, mix="v2", seed=0).sample(12)
    assert x.shape == (12, 3, 3, 32, 32) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert len(caps) == 12
    with pytest.raises(ValueError, match="data mix"):
        data.Sampler(src, mix="v3")


def test_one_pixel_frame_budget_sets_steps():
    from vaelab.train.loop import TrainConfig, pixel_frames_per_step, steps_for_budget

    image = TrainConfig(model="sd-vae", batch=8, crop=128)
    video = TrainConfig(model="iv-vae", batch=2, frames=9, crop=128)
    assert pixel_frames_per_step(image) == 8 * 128 * 128
    assert steps_for_budget(image, 5e8) == 3815 and steps_for_budget(video, 5e8) == 1696
    assert steps_for_budget(video, 5e8) * pixel_frames_per_step(video) >= 5e8


@pytest.mark.slow
def test_v2_training_run_records_budget_colour_and_every_heldout_set(tmp_path):
    """Two real steps of `vaelab train` on the v2 mix end in a record with the budget and each held-out set."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, VAELAB_ASSETS=str(tmp_path / "assets"), PYTHONPATH=str(ROOT))
    (tmp_path / "assets" / "weights").mkdir(parents=True)
    out = subprocess.run(
        [sys.executable, "-m", "vaelab.cli", "train", "sd-vae", "--data-mix", "v2", "--pixel-frames", "2048",
         "--batch", "1", "--crop", "32", "--warmup", "1", "--out", str(tmp_path / "runs")],
        env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads((tmp_path / "assets" / "weights" / "sd-vae.json").read_text())
    assert rec["steps"] == 2 and rec["pixel_frames"] == 2048 and rec["recipe"]["data_mix"] == "v2"
    assert "manifest v2" in rec["recipe"]["data"]
    sets = rec["heldout_sets"]
    assert {"clips", "colour_chart"} <= set(sets)
    chart = sets["colour_chart"]["colour_chart_clip"]
    assert chart["delta_e_mean"] > 0 and chart["delta_e_p95"] >= chart["delta_e_mean"]
    assert rec["heldout"]["mean_delta_e_mean"] > 0


def test_v2_run_without_the_wallpapers_refuses_in_one_line(tmp_path, monkeypatch, capsys):
    """A v2 run on a machine without plasma-workspace-wallpapers would train on part of the mix and still call it
    v2: it stops before building anything, with the package to install."""
    from vaelab import cli

    monkeypatch.setattr(manifest, "wallpaper_file", lambda src: None)
    assert data.missing_sources("v1") == []
    assert len(data.missing_sources("v2")) == sum(
        s.name.startswith("wallpaper:") and s.use == "train" for s in manifest.MANIFEST) > 0
    code = cli.main(["train", "sd-vae", "--data-mix", "v2", "--steps", "1", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "apt-get install plasma-workspace-wallpapers" in err[0], err
    assert not (tmp_path / "runs").exists()
