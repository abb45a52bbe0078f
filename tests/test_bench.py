"""vaelab.bench: matmul peak, FLOP counting, per-model numbers, diffusers reference, the CLI's JSON.

Everything runs at toy sizes (32 px, 1-2 frames, 1 repeat) so the file stays fast on a busy 2-core
machine; the numbers are checked for sanity (positive, finite, consistent), not for speed.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from vaelab import bench


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Functional tests: one intra-op thread avoids OpenMP barrier stalls when other jobs share the cores.
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_matmul_peak_is_positive():
    peak = bench.matmul_peak_gflops(n=256, repeats=2, device="cpu")
    assert peak["gflops"] > 0 and math.isfinite(peak["gflops"])
    assert peak["gflops"] >= peak["median_gflops"]  # best of repeats
    assert peak["n"] == 256 and peak["threads"] == torch.get_num_threads() == 1


def test_count_flops_matches_analytic_conv_and_linear():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, stride=2)
    x = torch.randn(2, 3, 16, 16)
    # output 8 x 8 x 8 per image; 2 FLOPs per multiply-add, bias not counted
    assert bench.count_flops(conv, x) == 2 * 2 * 8 * 8 * 8 * (3 * 3 * 3)
    lin = torch.nn.Linear(20, 30)
    assert bench.count_flops(lin, torch.randn(5, 20)) == 2 * 5 * 20 * 30
    with torch.inference_mode():  # counting works on inference tensors too
        assert bench.count_flops(lin, torch.randn(5, 20)) == 2 * 5 * 20 * 30


def test_bench_model_litevae_tiny():
    r = bench.bench_model("litevae", size=32, frames=2, repeats=1, device="cpu", memory=False,
                          peak=bench.matmul_peak_gflops(n=256, repeats=2, device="cpu"))
    assert r["weights"] in ("lab", "random")
    if r["weights"] == "random":
        assert any("random weights" in n for n in r["notes"])
    assert r["input_shape"] == [1, 3, 2, 32, 32] and r["latent_shape"] == [1, 4, 2, 4, 4]
    for stage in ("encode", "decode"):
        s = r[stage]
        assert s["frames_per_s"] > 0 and s["flops_per_frame"] > 0 and s["median_s"] > 0
        assert 0 < s["peak_ratio"] < 10
        assert s["achieved_gflops"] == pytest.approx(2 * s["flops_per_frame"] / s["median_s"] / 1e9, rel=1e-3)
    # LiteVAE's point: a much cheaper encoder than decoder
    assert r["encode"]["flops_per_frame"] < r["decode"]["flops_per_frame"]


def test_reference_sd_tiny_config_matches_diffusers():
    pytest.importorskip("diffusers")
    cfg = {"block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8}
    r = bench.bench_reference_sd(size=32, repeats=1, config=cfg, device="cpu")
    assert r["config"]["block_out_channels"] == [32, 64]
    assert r["parity_ok"] and r["max_abs_diff"] <= 1e-4
    assert r["ratio"]["encode"] > 0 and r["ratio"]["decode"] > 0
    assert r["flops_equal"], "same architecture must count the same FLOPs"
    assert len(r["times_s"]["ours"]["encode"]) == len(r["times_s"]["diffusers"]["decode"]) == 1


def test_cli_bench_writes_json_with_memory(tmp_path, monkeypatch):
    from vaelab import cli

    monkeypatch.setenv("VAELAB_THREADS", "1")
    out = tmp_path / "out.json"
    rc = cli.main(["bench", "--models", "litevae", "--size", "32", "--frames", "2", "--no-reference",
                   "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert set(report) >= {"machine", "matmul_peak", "models", "reference_sd", "conventions"}
    assert report["reference_sd"] is None and list(report["models"]) == ["litevae"]
    assert report["machine"]["torch"] == torch.__version__ and report["machine"]["threads"] == 1
    assert report["matmul_peak"]["gflops"] > 0
    m = report["models"]["litevae"]
    for stage in ("encode", "decode"):
        assert m[stage]["frames_per_s"] > 0
        mem = m[stage]["memory"]
        assert "error" not in mem, mem
        assert mem["peak_mem_mib"] is not None and mem["peak_mem_mib"] >= 0
    assert torch.get_num_threads() == 1, "run_bench must restore the caller's thread count"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bench_model_on_cuda():
    r = bench.bench_model("litevae", size=64, frames=2, repeats=2, device="cuda")
    assert r["device"].startswith("cuda")
    for stage in ("encode", "decode"):
        assert r[stage]["frames_per_s"] > 0 and r[stage]["flops_per_frame"] > 0
        assert r[stage]["peak_mem_mib"] > 0 and r[stage]["memory"]["absolute_peak_mib"] > 0
    for label in ("fp16", "bf16"):
        v = r["precisions"][label]
        if "skipped" not in v:
            assert v["encode_median_s"] > 0 and v["finite"]
    sd = bench.bench_model("sd-vae", size=64, frames=2, repeats=1, device="cuda")
    assert sd["precisions"]["fp16+fp32-decoder"]["decoder_fp32"] is True


def test_stream_memory_probe_reports_flat_peaks(small_clip):
    """The streamed whole-file path: one fresh process per length, peak RSS at each length, a flatness ratio."""
    from vaelab.bench import bench_stream_memory

    rep = bench_stream_memory("walt", path=str(small_clip), lengths=(1, 5), size=32, weights="random", threads=1)
    assert [r["requested_frames"] for r in rep["rows"]] == [1, 5]
    for r in rep["rows"]:
        assert "error" not in r, r
        assert r["frames"] == r["requested_frames"] and r["cut"].startswith("causal")
        assert r["peak_rss_mib"] >= r["rss_after_load_mib"] > 0
        assert str(r["frames"]) in r["peak_rss_at"]
    assert rep["peak_ratio_longest_vs_shortest"] > 0


def test_stream_memory_passes_size_and_tiles_to_the_child(small_clip):
    """The child process gets the requested size (0 = native, not the probe's own default) and the tiles."""
    from vaelab.bench import bench_stream_memory

    rep = bench_stream_memory("walt", path=str(small_clip), lengths=(5,), size=None, weights="random", threads=1,
                              tile=32, overlap=8)
    (row,) = rep["rows"]
    assert "error" not in row, row
    assert (row["height"], row["width"]) == (64, 96)  # small_clip's native size
    assert row["tile"] == 32 and row["overlap"] == 8 and rep["tile"] == 32


def test_conv3d_dispatch_bench_compares_in_one_process():
    from vaelab import bench
    from vaelab.models._blocks import Conv3d

    before = Conv3d._conv_forward
    rep = bench.bench_conv3d_kernels(names=("walt",), frames=5, size=(32, 48), repeats=1, weights="random")
    (row,) = rep["rows"]
    assert row["ours_s"] > 0 and row["stock_s"] > 0 and row["speedup"] > 0
    assert row["max_abs_diff"] < 1e-4  # float rounding only
    assert Conv3d._conv_forward is before  # restored
