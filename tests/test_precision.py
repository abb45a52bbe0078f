"""Precision plumbing: auto per capability, explicit fp32 unchanged, bf16 close to fp32 per model, convolutions
really in bf16, causal streaming == one-shot in bf16, and the precision that ran shown in the JSON / CLI.

Tolerances (bf16 keeps 8 mantissa bits; statistics stay fp32): on the fixed clip of test_digests, per model
|PSNR(bf16) - PSNR(fp32)| <= 0.1 dB (the bench's held-out budget is 0.05 dB at 128 px, where the PSNR is
averaged over more pixels) and the mean |uint8 difference| <= 1.5; streamed vs one-shot in bf16: PSNR of one
against the other >= 40 dB (fp32: bit-identical up to float rounding, tested in test_engine)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import requires_native_bf16
from test_digests import fixed_clip

from vaelab import device as D
from vaelab import engine, models

PSNR_TOL_DB = 0.1
MEAN_DIFF_TOL = 1.5
STREAM_PSNR_DB = 40.0


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b) ** 2).mean()
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


# --- resolution ---------------------------------------------------------------------------------

def test_auto_on_cpu_follows_native_bf16(monkeypatch):
    monkeypatch.setattr(D, "cpu_bf16_native", lambda: (True, "test"))
    assert D.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(D, "cpu_bf16_native", lambda: (False, "test"))
    assert D.resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(D.PrecisionError, match="bf16 would be emulated on this CPU .test.*choose auto or fp32"):
        D.resolve_precision("bf16", "cpu")  # explicit bf16 without native units: refused in one line
    monkeypatch.setattr(D, "cpu_bf16_native", lambda: (True, "test"))
    assert D.resolve_precision("bf16", "cpu") == "bf16"


def test_auto_on_cuda_prefers_bf16_else_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(D, "_cuda_bf16", lambda dev: True)
    assert D.resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(D, "_cuda_bf16", lambda dev: False)
    assert D.resolve_precision("auto", "cuda") == "fp16"
    with pytest.raises(D.PrecisionError, match="bf16 is not supported"):
        D.resolve_precision("bf16", "cuda")


def test_cpu_detection_reads_flags_and_times_when_unsure(monkeypatch):
    D.cpu_bf16_native.cache_clear()
    try:
        monkeypatch.setattr(D, "_cpu_flags", lambda: {"avx512f", "avx512_bf16"})
        assert D.cpu_bf16_native() == (True, "CPU flags avx512_bf16")
        D.cpu_bf16_native.cache_clear()
        monkeypatch.setattr(D, "_cpu_flags", lambda: {"avx2", "fma"})
        assert D.cpu_bf16_native()[0] is False
        D.cpu_bf16_native.cache_clear()
        monkeypatch.setattr(D, "_cpu_flags", lambda: None)  # no /proc/cpuinfo: time both once
        monkeypatch.setattr(D, "_bf16_faster_by_timing", lambda: True)
        assert D.cpu_bf16_native() == (True, "timed: bf16 matmul faster than fp32")
    finally:
        D.cpu_bf16_native.cache_clear()


def test_bad_choices_get_one_clear_line(monkeypatch):
    with pytest.raises(D.PrecisionError, match="fp16 runs only on a GPU"):
        D.resolve_precision("fp16", "cpu")
    with pytest.raises(D.PrecisionError, match="unknown precision 'int8'"):
        D.resolve_precision("int8", "cpu")
    monkeypatch.setattr(D, "cpu_bf16_native", lambda: (True, "test"))
    monkeypatch.setenv("VAELAB_PRECISION", "bf16")
    assert D.resolve_precision(None, "cpu", default="fp32") == "bf16"
    assert D.requested_precision("BFloat16") == "bf16"


def test_models_package_does_not_import_the_engine():
    code = "import sys, vaelab.models, vaelab.hub; assert 'vaelab.engine' not in sys.modules, 'cycle'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- runs ---------------------------------------------------------------------------------------

def test_explicit_fp32_is_the_default_path(monkeypatch):
    monkeypatch.delenv("VAELAB_PRECISION", raising=False)
    model = engine.get_model("litevae", "lab", "cpu")
    a = engine.run_model(model, fixed_clip()[:2])
    b = engine.run_model(model, fixed_clip()[:2], precision="fp32")
    assert a.precision == b.precision == "fp32"
    assert np.array_equal(a.recon, b.recon)


@requires_native_bf16
def test_environment_sets_the_default_precision(monkeypatch):
    model = engine.get_model("litevae", "lab", "cpu")
    monkeypatch.setenv("VAELAB_PRECISION", "bf16")  # the environment sets the library default
    c = engine.run_model(model, fixed_clip()[:2])
    assert c.precision == "bf16" and any("ran in bf16" in n for n in c.notes)


@requires_native_bf16
def test_load_precision_becomes_the_models_default():
    model = models.load("vqgan", device="cpu", precision="bf16")
    assert model.precision == "bf16"
    assert engine.run_model(model, fixed_clip()[:1]).precision == "bf16"
    with pytest.raises(ValueError, match="unknown precision"):
        models.load("vqgan", device="cpu", precision="fp8")


@requires_native_bf16
@pytest.mark.parametrize("name", models.names())
def test_bf16_close_to_fp32_and_every_conv_in_bf16(name):
    model = engine.get_model(name, "lab", "cpu")
    clip = fixed_clip()
    seen: dict[str, set] = {"conv": set()}

    def hook(mod, args, out):
        if isinstance(out, torch.Tensor):
            seen["conv"].add(out.dtype)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear))]
    try:
        ref = engine.run_model(model, clip, precision="fp32")
        assert seen["conv"] <= {torch.float32}
        seen["conv"].clear()
        low = engine.run_model(model, clip, precision="bf16")
    finally:
        for h in handles:
            h.remove()
    assert low.precision == "bf16"
    # the fix for the five slow families: no convolution / linear layer falls back to fp32 under bf16
    assert seen["conv"] == {torch.bfloat16}, f"{name}: layers ran in {seen['conv']}"
    d = abs(_psnr(clip, low.recon) - _psnr(clip, ref.recon))
    assert d <= PSNR_TOL_DB, f"{name}: PSNR moved {d:.3f} dB in bf16"
    assert np.abs(low.recon.astype(int) - ref.recon).mean() <= MEAN_DIFF_TOL


@requires_native_bf16
@pytest.mark.parametrize("name", [n for n in models.names() if models.model_class(n).card.causal
                                  and hasattr(models.model_class(n), "encode_chunk")])
def test_bf16_streaming_matches_one_shot(name):
    model = engine.get_model(name, "lab", "cpu")
    clip = fixed_clip()  # 9 frames: frame 0, then two 4-frame chunks with chunk_latents=1
    streamed = engine.run_model(model, clip, chunk_latents=1, precision="bf16")
    assert any("streamed" in n for n in streamed.notes)
    with torch.inference_mode(), D.autocast("bf16", "cpu"):
        x = engine.to_tensor(clip)[:, :, :, :48, :64]
        from vaelab.models.base import pad_to_rule

        xp, _ = pad_to_rule(x, model.card.spatial_factor, model.card.frame_rule)
        one = engine.to_uint8(model.decode(model.encode(xp))[:, :, :9, :48, :64])
    assert _psnr(one, streamed.recon) >= STREAM_PSNR_DB


def test_fp16_guard_marks_the_sd_decoder():
    assert engine._decode_precision(models.model_class("sd-vae"), "fp16") == "fp32"
    assert engine._decode_precision(models.model_class("sd-vae"), "bf16") == "bf16"
    assert engine._decode_precision(models.model_class("walt"), "fp16") == "fp16"


def test_cli_json_says_what_ran(tmp_path, small_clip):
    from vaelab import cli

    out = tmp_path / "r.json"
    assert cli.main(["eval", str(small_clip), "--models", "vqgan", "--frames", "2", "--size", "32", "--no-lpips",
                     "--precision", "auto", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())["models"]["vqgan"]
    assert rep["precision"] == D.resolve_precision("auto", "cpu") and rep["device"] == "cpu"
    assert cli.main(["eval", str(small_clip), "--models", "vqgan", "--frames", "2", "--size", "32", "--no-lpips",
                     "--precision", "fp16"]) != 0  # one clear line, no traceback


def test_peaks_measure_bf16_even_where_it_is_emulated():
    """The bench's fp32 / bf16 peaks run on every CPU: they are how a machine without bf16 units shows it."""
    from vaelab.bench.precision import peaks

    pk = peaks("bf16", repeats=1, n=128, channels=16, size=16, device="cpu")
    assert set(pk["matmul"]) == set(pk["conv3x3"]) == {"fp32", "bf16"}
    assert all(v > 0 for k in ("matmul", "conv3x3") for v in pk[k].values())


@requires_native_bf16
def test_bench_precision_and_train_steps_tiny():
    from vaelab.bench.precision import bench_precision, bench_train_steps, peaks

    pk = peaks("bf16", repeats=1, n=128, channels=16, size=16, device="cpu")
    rep = bench_precision(["vqgan"], "bf16", frames=2, size=32, repeats=1, device="cpu", peak=pk)
    row = rep["models"]["vqgan"]
    assert rep["precision"] == "bf16" and row["device"] == "cpu" and row["precisions"] == ["fp32", "bf16"]
    assert abs(sum(row["uint8_diff"]["share"].values()) - 1) < 1e-3
    assert set(row["peak_share_bf16"]) == {"matmul_fp32", "matmul_bf16", "conv3x3_fp32", "conv3x3_bf16"}
    tr = bench_train_steps(["vqgan"], "bf16", steps=2, batch=2, crop=32)
    t = tr["models"]["vqgan"]
    assert len(t["loss"]["fp32"]) == len(t["loss"]["bf16"]) == 3
    assert t["loss"]["fp32"][0] == pytest.approx(t["loss"]["bf16"][0], rel=0.05)  # same start, same batch
