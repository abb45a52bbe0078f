"""``vaelab eval`` over folders and lists: per-clip / aggregate tables, resume, pooled PSNR, MP4s, workers,
latent distances, failures. Tiny clips (32 px, 3 frames) and the shipped litevae lab weights; the video model
is a tiny diffusers Wan VAE configured as a production VAE (random weights saved with save_pretrained)."""
from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
from conftest import moving_gradient, require_lab_weights

from vaelab import cli, models
from vaelab.io import read_clip, write_mp4

ARGS = ["--models", "litevae", "--frames", "3", "--size", "32", "--device", "cpu", "--no-lpips"]


@pytest.fixture
def clips(tmp_path):
    """A folder with two videos (one in a sub-folder) and an image."""
    require_lab_weights("litevae")
    root = tmp_path / "clips"
    (root / "sub").mkdir(parents=True)
    write_mp4(moving_gradient(4, 48, 64), root / "a.mp4", fps=12.0)
    write_mp4(moving_gradient(4, 48, 64)[:, ::-1].copy(), root / "sub" / "b.mp4", fps=12.0)
    from PIL import Image

    Image.fromarray(moving_gradient(1, 40, 40)[0]).save(root / "still.png")
    return root


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(capsys, *argv):
    rc = cli.main(["eval", *map(str, argv)])
    return rc, capsys.readouterr()


def test_folder_batch_writes_tables_consistent_with_single_clip_eval(clips, tmp_path, capsys):
    out = tmp_path / "out"
    rc, cap = run(capsys, clips, "--out", out, *ARGS)
    assert rc == 0, cap.err
    rows = read_csv(out / "per_clip.csv")
    assert sorted(r["clip"] for r in rows) == ["a.mp4", "still.png", "sub__b.mp4"]
    assert {r["model"] for r in rows} == {"litevae"}
    agg = read_csv(out / "aggregate.csv")
    assert len(agg) == 1 and agg[0]["clips"] == "3"
    for col in ("psnr", "pooled_psnr", "ssim"):
        assert math.isclose(float(agg[0][col]), np.mean([float(r[col]) for r in rows]), abs_tol=1e-3), col
    assert agg[0]["psnr_headline"] == agg[0]["psnr"], "default headline: mean of per-frame PSNR"
    assert agg[0]["lpips"] == ""  # --no-lpips: empty, never a made-up number

    report = json.loads((out / "report.json").read_text())
    expected = {"psnr", "ssim", "lpips", "aggregate", "pooled_psnr_aggregate", "psnr_headline"}
    assert expected <= set(report["conventions"])
    assert "TokenBench" in report["conventions"]["pooled_psnr_aggregate"]
    assert report["settings"] == {"frames": 3, "size": 32, "lpips": False, "pooled_psnr_headline": False}

    # the same clip through the single-clip path gives the same numbers
    single = tmp_path / "single.json"
    rc, cap = run(capsys, clips / "a.mp4", "--json", single, *ARGS)
    assert rc == 0, cap.err
    one = json.loads(single.read_text())["models"]["litevae"]
    row = next(r for r in rows if r["clip"] == "a.mp4")
    assert math.isclose(float(row["psnr"]), one["psnr"], abs_tol=1e-6)
    assert math.isclose(float(row["pooled_psnr"]), one["pooled_psnr"], abs_tol=1e-6)


def test_pooled_psnr_is_one_mse_per_clip_and_can_be_the_headline(clips, tmp_path, capsys):
    out = tmp_path / "out"
    rc, cap = run(capsys, clips / "a.mp4", clips / "sub" / "b.mp4", "--out", out, "--pooled-psnr", *ARGS)
    assert rc == 0, cap.err
    for row in read_csv(out / "per_clip.csv"):
        res = json.loads((out / "results" / row["clip"] / "litevae.json").read_text())["result"]
        mse = [255.0 ** 2 / 10 ** (p / 10) for p in res["per_frame"]["psnr"]]  # frames of one clip: same size
        assert math.isclose(res["pooled_psnr"], 10 * math.log10(255.0 ** 2 / np.mean(mse)), abs_tol=2e-3)
        assert res["pooled_psnr"] <= res["psnr"] + 1e-9  # Jensen: pooling never beats the per-frame mean
    agg = read_csv(out / "aggregate.csv")[0]
    assert agg["psnr_headline"] == agg["pooled_psnr"] != agg["psnr"]
    assert "pooled PSNR (TokenBench)" in cap.out


def test_resume_skips_finished_results_and_recomputes_missing_ones(clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, clips, "--out", out, *ARGS)[0] == 0
    result = out / "results" / "a.mp4" / "litevae.json"
    stamp = result.stat().st_mtime_ns
    (out / "results" / "still.png" / "litevae.json").unlink()
    rc, cap = run(capsys, clips, "--out", out, *ARGS)
    assert rc == 0, cap.err
    report = json.loads((out / "report.json").read_text())
    assert (report["computed"], report["skipped"]) == (1, 2)
    assert result.stat().st_mtime_ns == stamp, "a finished result is never recomputed"
    assert len(read_csv(out / "per_clip.csv")) == 3
    assert "all results already in the output" in cap.err


def test_other_settings_in_the_same_folder_are_refused(clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, clips / "a.mp4", "--out", out, *ARGS)[0] == 0
    rc, cap = run(capsys, clips / "a.mp4", "--out", out, *[a if a != "32" else "48" for a in ARGS])
    assert rc == 2
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and "other settings" in lines[0] and "size=32" in lines[0], cap.err


def test_list_file_side_by_side_and_failed_clips(clips, tmp_path, capsys):
    (tmp_path / "other").mkdir()
    write_mp4(moving_gradient(3, 32, 32), tmp_path / "other" / "a.mp4", fps=12.0)  # same name as clips/a.mp4
    (tmp_path / "bad.mp4").write_text("not a video\n")
    (tmp_path / "list.txt").write_text(f"# clips to evaluate\n{clips / 'a.mp4'}\nother/a.mp4  # relative\nbad.mp4\n")
    out = tmp_path / "out"
    rc, cap = run(capsys, "--list", tmp_path / "list.txt", "--out", out, "--side-by-side", *ARGS)
    assert rc == 1, "a failed clip makes the exit code 1; the others are still evaluated"
    assert "vaelab: failed: bad.mp4" in cap.err
    report = json.loads((out / "report.json").read_text())
    assert [f["clip"] for f in report["failed"]] == ["bad.mp4"]
    ids = sorted(r["clip"] for r in report["per_clip"])
    assert ids == ["a.mp4", "other__a.mp4"], "list entries: relative paths as written, absolute ones by name"
    for clip_id in ids:
        mp4 = out / "side_by_side" / f"{clip_id}.mp4"
        panel = read_clip(mp4).frames
        width = next(r["width"] for r in report["per_clip"] if r["clip"] == clip_id)
        assert panel.shape[0] == 3 and panel.shape[2] >= 2 * width, "input | litevae"
    assert not (out / "results" / "bad.mp4").exists(), "failures are not results: a rerun retries them"


def test_clip_ids_are_unique_and_readable(clips, tmp_path):
    from vaelab.batch import collect_inputs

    (tmp_path / "other").mkdir()
    write_mp4(moving_gradient(3, 32, 32), tmp_path / "other" / "a.mp4", fps=12.0)
    jobs = collect_inputs([clips / "a.mp4", tmp_path / "other" / "a.mp4", clips / "a.mp4", clips])
    ids = [j.clip_id for j in jobs]
    assert len(ids) == len(set(ids)) == 4, "duplicates (the same file twice) are dropped, same names get a hash"
    assert [i for i in ids if i.startswith("a.mp4")] == [ids[0], ids[1]] and ids[0] != ids[1]
    assert all(i.startswith("a.mp4-") for i in ids[:2]) and ids[2:] == ["still.png", "sub__b.mp4"]
    assert str(tmp_path) not in "".join(ids)


def test_batch_only_flags_need_an_output_folder(clips, capsys):
    rc, cap = run(capsys, clips / "a.mp4", "--pooled-psnr", *ARGS)
    assert rc == 2 and "batch option" in cap.err and "--out" in cap.err
    rc, cap = run(capsys, clips, *ARGS)
    assert rc == 2 and "--out DIR" in cap.err


@pytest.fixture
def wan_extra(tmp_path, monkeypatch):
    """A tiny diffusers Wan VAE configured through VAELAB_EXTRA_MODELS (which worker processes inherit)."""
    diffusers = pytest.importorskip("diffusers")
    import torch

    from vaelab.models import diffusers_adapters as da

    torch.manual_seed(0)
    diffusers.AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                               latents_mean=[0.0] * 4, latents_std=[1.0] * 4).save_pretrained(tmp_path / "wan")
    monkeypatch.setenv(da.ENV, f"tiny-wan={tmp_path / 'wan'}")
    monkeypatch.setattr(da, "_CLASSES", {})
    assert "tiny-wan" in models.names()
    return "tiny-wan"


def test_latent_distances_for_video_models(clips, tmp_path, capsys, wan_extra):
    require_lab_weights("sd-vae")
    out = tmp_path / "out"
    args = [a if a != "litevae" else f"litevae,{wan_extra}" for a in ARGS]
    rc, cap = run(capsys, clips / "a.mp4", clips / "sub" / "b.mp4", "--out", out, "--latent-distances", *args)
    assert rc == 0, cap.err
    rows = read_csv(out / "latent_distances.csv")
    pairs = {(r["model"], r["a"], r["b"]) for r in rows}
    assert pairs == {(wan_extra, "video", "image"), (wan_extra, "video", "reference sd-vae"),
                     (wan_extra, "image", "reference sd-vae")}, "video models only; sd-vae is the reference"
    for r in rows:
        assert r["clips"] == "2" and float(r["frechet"]) >= 0 and float(r["sliced_w2"]) >= 0
    per_clip = json.loads((out / "results" / "a.mp4" / "_latents.json").read_text())
    assert per_clip["video_models"] == [wan_extra] and per_clip["reference"] == "sd-vae"
    assert "Frechet" in cap.out


def test_workers_split_the_clips_and_give_the_same_numbers(clips, tmp_path, capsys, wan_extra):
    one, two = tmp_path / "one", tmp_path / "two"
    args = [a if a != "litevae" else f"litevae,{wan_extra}" for a in ARGS]
    assert run(capsys, clips, "--out", one, *args)[0] == 0
    rc, cap = run(capsys, clips, "--out", two, "--workers", "2", *args)
    assert rc == 0, cap.err
    a, b = read_csv(one / "per_clip.csv"), read_csv(two / "per_clip.csv")
    assert len(a) == len(b) == 6
    key = lambda r: (r["clip"], r["model"])  # noqa: E731
    for ra, rb in zip(sorted(a, key=key), sorted(b, key=key)):
        assert key(ra) == key(rb) and ra["latent_shape"] == rb["latent_shape"]
        for col, tol in (("psnr", 1e-2), ("pooled_psnr", 1e-2), ("ssim", 1e-3)):  # thread counts differ
            assert math.isclose(float(ra[col]), float(rb[col]), abs_tol=tol), (key(ra), col)
    pids = {json.loads(f.read_text())["worker_pid"] for f in (two / "results").glob("*/*.json")
            if not f.name.startswith("_")}
    assert len(pids) == 2 and os.getpid() not in pids, "two worker processes shared the clips"
