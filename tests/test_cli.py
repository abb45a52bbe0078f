"""``vaelab`` command line: eval report schema, one-line errors with exit code 2, ``models``.

Uses the default model assets (assets/weights, or VAELAB_ASSETS). No metric value is hard-coded.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import require_lab_weights

from vaelab import cli, models

REPO = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = {"psnr", "ssim", "lpips", "per_frame", "latent_shape", "compression", "encode_s", "decode_s"}


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub dir, so the AlexNet LPIPS backbone counts as not cached (restored afterwards)."""
    monkeypatch.setattr(torch.hub, "_hub_dir", torch.hub._hub_dir)  # restore exactly on teardown
    hub = tmp_path / "hub"
    hub.mkdir()
    torch.hub.set_dir(str(hub))
    return hub


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("vaelab: error:"), err
    assert "Traceback" not in err
    return lines[0]


def test_eval_writes_json_report(small_clip, tmp_path, empty_hub, capsys):
    require_lab_weights("litevae")
    out = tmp_path / "report.json"
    rc = cli.main(["eval", str(small_clip), "--models", "litevae", "--frames", "3", "--size", "64",
                   "--device", "cpu", "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "vaelab: error" not in captured.err
    assert "litevae" in captured.out and "PSNR" in captured.out

    report = json.loads(out.read_text())
    assert set(report["models"]) == {"litevae"}
    r = report["models"]["litevae"]
    assert SUMMARY_KEYS <= set(r), sorted(r)
    assert math.isfinite(r["psnr"]) and 0 < r["psnr"] <= 100
    assert -1 <= r["ssim"] <= 1
    assert r["lpips"] is None  # backbone not in the (empty) hub cache: reported as null, not guessed
    assert len(r["per_frame"]["psnr"]) == len(r["per_frame"]["ssim"]) == 3
    assert r["per_frame"]["lpips"] is None
    assert 0 <= r["delta_e_mean"] <= r["delta_e_p95"] and len(r["per_frame"]["delta_e"]) == 3
    assert r["chroma_ratio"] is None or r["chroma_ratio"] >= 0
    assert {"delta_e", "chroma_ratio", "hue_shift_deg"} <= set(report["conventions"])
    assert len(r["latent_shape"]) == 4 and all(isinstance(v, int) and v > 0 for v in r["latent_shape"])
    assert r["compression"] > 1
    assert r["encode_s"] >= 0 and r["decode_s"] >= 0

    assert {"psnr", "ssim", "lpips"} <= set(report["conventions"])
    assert report["input"]["frames"] == 3 and min(report["input"]["width"], report["input"]["height"]) == 64
    assert "LPIPS unavailable" in report["lpips_status"]
    assert "LPIPS unavailable" in captured.err  # told why LPIPS is n/a


@pytest.fixture
def bad_inputs(tmp_path, small_clip):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "readme.mp4"
    text.write_text("not a video at all\n" * 50)
    return {
        "missing": ([str(tmp_path / "nope.mp4")], "not found"),
        "empty": ([str(empty)], "empty"),
        "text": ([str(text)], "not a video or image"),
        "unknown_model": ([str(small_clip), "--models", "litevae,nosuchvae"], "unknown model"),
        "zero_frames": ([str(small_clip), "--frames", "0"], "--frames must be >= 1"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "text", "unknown_model", "zero_frames"])
def test_eval_bad_input_is_one_line_exit_2(case, bad_inputs, capsys):
    args, expected = bad_inputs[case]
    rc = cli.main(["eval", *args, "--size", "64", "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 2
    line = _one_line_error(captured.err)
    assert expected in line, line
    assert captured.out == ""


def test_eval_missing_weights_is_one_line_exit_2(small_clip, isolated_assets, capsys):
    # isolated_assets: no weights, and a model loaded by an earlier test must not hide the gap
    rc = cli.main(["eval", str(small_clip), "--models", "litevae", "--frames", "2", "--size", "64",
                   "--device", "cpu"])
    line = _one_line_error(capsys.readouterr().err)
    assert rc == 2
    assert "no lab weights" in line and "litevae" in line, line


def test_eval_unwritable_json_path_is_one_line_exit_2(small_clip, tmp_path, capsys):
    rc = cli.main(["eval", str(small_clip), "--models", "litevae", "--frames", "1", "--size", "32",
                   "--device", "cpu", "--no-lpips", "--json", str(tmp_path / "no-such-dir" / "r.json")])
    assert rc == 2
    _one_line_error(capsys.readouterr().err)


def test_eval_error_in_real_process_has_no_traceback(tmp_path):
    text = tmp_path / "clip.mp4"
    text.write_text("definitely not a video\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "vaelab.cli", "eval", str(text), "--models", "litevae",
                           "--frames", "2", "--size", "64"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    line = _one_line_error(proc.stderr)
    assert "not a video or image" in line
    assert str(tmp_path) not in line  # no server/user paths in the message


def test_models_lists_every_model(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for name in models.names():
        assert name in out, name
    assert cli.main(["models", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    names = [c["name"] for c in cards]
    assert names[:len(models.names())] == models.names(), "trained families first, in registry order"
    assert sorted(names) == sorted(models.all_names())
