"""The probes measure what they claim: known filters give their analytic responses, identity gives gain 1 and a
diagonal receptive field, causal lab models are block-lower-triangular at their temporal groups, a 16x code has a
lower half-gain frequency than the same model at 8x; the CLI writes the documented JSON names."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import moving_gradient, require_lab_weights, requires_native_bf16
from torch import nn

from vaelab.analysis import probes
from vaelab.models.base import ModelCard, Paper
from vaelab.models.latent import Latent

SIZE, FRAMES = 64, 9
ANALYTIC_TOL = 0.005  # |measured - analytic| gain (float32 pipeline; the probe's projection itself is exact)


def _card(name: str, factor: int = 1) -> ModelCard:
    return ModelCard(name, name, Paper("", "", 0), "image", factor, 1, 3, False, "any", "")


class _Filter(nn.Module):
    """A 'model' whose encode is a known linear filter and decode the identity (or an upsampling)."""

    def __init__(self, name: str, factor: int = 1):
        super().__init__()
        self.card = _card(name, factor)
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # gives the probes a device

    def encode(self, x_bcthw):
        return Latent(self.filter(x_bcthw))

    def decode(self, z):
        return self.unfilter(z.main)

    def filter(self, x_bcthw):
        return x_bcthw

    def unfilter(self, z):
        return z


class BoxPool(_Filter):
    """f x f average pooling then nearest upsampling (a box-filter-and-hold 'VAE' of spatial factor f)."""

    def __init__(self, f: int):
        super().__init__(f"box{f}", f)
        self.f = f

    def filter(self, x):
        b, c, t, h, w = x.shape
        return F.avg_pool2d(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), self.f).reshape(b, t, c, h // self.f, w // self.f).permute(0, 2, 1, 3, 4)

    def unfilter(self, z):
        return z.repeat_interleave(self.f, -1).repeat_interleave(self.f, -2)


class GaussianBlur(_Filter):
    """Circular Gaussian blur of known sigma (kernel radius ceil(4 sigma), normalised)."""

    def __init__(self, sigma: float):
        super().__init__(f"blur{sigma}")
        r = math.ceil(4 * sigma)
        g = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float64) ** 2 / (2 * sigma ** 2))
        self.k, self.r = (g / g.sum()).float(), r

    def filter(self, x):
        b, c, t, h, w = x.shape
        y = x.permute(0, 2, 1, 3, 4).reshape(b * t * c, 1, h, w)
        y = F.conv2d(F.pad(y, (self.r, self.r, 0, 0), mode="circular"), self.k.view(1, 1, 1, -1))
        y = F.conv2d(F.pad(y, (0, 0, self.r, self.r), mode="circular"), self.k.view(1, 1, -1, 1))
        return y.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


def _box_response(f: float, n: int) -> float:
    """Amplitude response of an n-tap average at f cycles/px: sin(n pi f) / (n sin(pi f))."""
    return math.sin(n * math.pi * f) / (n * math.sin(math.pi * f))


def test_identity_has_unit_gain_and_a_diagonal_receptive_field():
    model = _Filter("identity")
    s = probes.spatial_probe(model, SIZE, FRAMES)
    assert np.allclose(s["gain"], 1.0, atol=1e-4) and s["aliasing_energy"] == 0.0
    assert not s["half_gain_reached"] and s["half_gain_freq"] == 0.5
    for o in s["by_orientation"].values():
        assert np.allclose(o["gain"], 1.0, atol=1e-4)
    t = probes.temporal_probe(model, SIZE, FRAMES)
    assert np.allclose(t["gain"], 1.0, atol=1e-4) and np.allclose(t["flicker"]["gain"], 1.0, atol=1e-4)
    assert t["static_flicker"] == 0.0
    rf = probes.receptive_field_probe(model, SIZE, FRAMES)
    change = np.asarray(rf["change"])
    assert change.shape == (FRAMES, FRAMES)
    assert np.all(np.diag(change) > 5.0)  # the perturbation itself (a +-0.25 pattern = ~30 units, less clamping)
    assert np.all(change[~np.eye(FRAMES, dtype=bool)] == 0.0)
    lat = np.asarray(rf["latent"]["change"])
    assert lat.shape == (FRAMES, FRAMES) and np.all(lat[~np.eye(FRAMES, dtype=bool)] == 0.0)
    assert probes.flat_field_probe(model, SIZE, FRAMES)["off_dc_energy"] == 0.0


def test_box_filter_matches_its_analytic_mtf_and_aliasing():
    s = probes.spatial_probe(BoxPool(8), SIZE, FRAMES)
    for deg, o in s["by_orientation"].items():
        kx, ky = probes.ORIENTATIONS[int(deg)]
        for f, g in zip(o["freq"], o["gain"]):
            fx = fy = f / math.hypot(kx, ky)
            want = (_box_response(fx * kx, 8) if kx else 1.0) ** 2 * (_box_response(fy * ky, 8) if ky else 1.0) ** 2
            assert abs(g - want) < ANALYTIC_TOL, (deg, f, g, want)
    for f, sp in zip(s["freq"], s["spurious"]):  # hold-after-average puts D^2 - D^4 of the energy into aliases
        d2 = _box_response(f, 8) ** 2
        assert abs(sp - (d2 - d2 * d2)) < ANALYTIC_TOL, (f, sp)
    # half gain of D(f)^2 = 0.5: solve on a fine grid, compare with the probe's interpolation on its coarse grid
    fine = np.linspace(1e-4, 0.12, 20000)
    want = fine[np.argmax(np.array([_box_response(f, 8) ** 2 for f in fine]) <= 0.5)]
    assert s["half_gain_reached"] and abs(s["half_gain_freq"] - want) < 0.01


def test_gaussian_blur_matches_its_analytic_mtf():
    sigma = 1.5
    s = probes.spatial_probe(GaussianBlur(sigma), SIZE, FRAMES)
    for o in s["by_orientation"].values():
        for f, g in zip(o["freq"], o["gain"]):
            assert abs(g - math.exp(-2 * math.pi ** 2 * sigma ** 2 * f ** 2)) < ANALYTIC_TOL, (f, g)
    assert s["aliasing_energy"] < 1e-6  # a linear shift-invariant filter creates no new frequencies
    want = math.sqrt(math.log(2) / (2 * math.pi ** 2 * sigma ** 2))  # exp(-2 pi^2 s^2 f^2) = 0.5
    assert abs(s["half_gain_freq"] - want) < 0.01


class TimeMean(_Filter):
    """Each output frame is the mean of input frames t-back..t+ahead (clamped at the clip's ends)."""

    def __init__(self, back: int, ahead: int):
        super().__init__(f"mean-{back}-{ahead}")
        self.back, self.ahead = back, ahead

    def filter(self, x):
        t = x.shape[2]
        return torch.stack([x[:, :, max(0, i - self.back):min(t, i + self.ahead + 1)].mean(2) for i in range(t)], 2)


def test_scene_cut_recovery_counts_the_frames_a_temporal_window_spans():
    short = probes.motion_probe(TimeMean(3, 0), SIZE, FRAMES)["scene_cut"]
    assert short["cut_frame"] == 6 and short["recovery_frames"] is None  # 6, 7, 8 all still see scene A
    causal = probes.motion_probe(TimeMean(3, 0), SIZE, 13)["scene_cut"]
    assert causal["cut_frame"] == 8
    assert causal["recovery_frames"] == 3 and causal["frames_changed_before_cut"] == 0
    centred = probes.motion_probe(TimeMean(1, 1), SIZE, 13)["scene_cut"]
    assert centred["recovery_frames"] == 1 and centred["frames_changed_before_cut"] == 1
    ident = probes.motion_probe(_Filter("identity"), SIZE, FRAMES)
    assert ident["scene_cut"]["output_change"] == [0.0] * FRAMES and ident["psnr"] == [100.0] * len(probes.PAN_SPEEDS)


def test_half_gain_falls_with_spatial_compression_box_family():
    hg8 = probes.spatial_probe(BoxPool(8), SIZE, FRAMES)["half_gain_freq"]
    hg16 = probes.spatial_probe(BoxPool(16), SIZE, FRAMES)["half_gain_freq"]
    assert hg16 < 0.6 * hg8


class _AtHalfResolution(nn.Module):
    """The same trained model coding the frame at half resolution: a 16x spatial code of the same family."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        import dataclasses

        self.card = dataclasses.replace(inner.card, spatial_factor=2 * inner.card.spatial_factor)

    def encode(self, x):
        b, c, t, h, w = x.shape
        small = F.avg_pool2d(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), 2)
        return self.inner.encode(small.reshape(b, t, c, h // 2, w // 2).permute(0, 2, 1, 3, 4))

    def decode(self, z):
        y = self.inner.decode(z)
        b, c, t, h, w = y.shape
        up = F.interpolate(y.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), scale_factor=2, mode="bilinear")
        return up.reshape(b, t, c, 2 * h, 2 * w).permute(0, 2, 1, 3, 4)


def test_trained_model_at_16x_has_a_lower_half_gain_than_at_8x(one_thread):
    require_lab_weights("sd-vae")
    from vaelab import models

    sd = models.load("sd-vae", device="cpu")
    at8 = probes.spatial_probe(sd, SIZE, FRAMES)
    at16 = probes.spatial_probe(_AtHalfResolution(sd), SIZE, FRAMES)
    assert at8["half_gain_reached"] and at16["half_gain_freq"] < at8["half_gain_freq"]
    band = [i for i, f in enumerate(at8["freq"]) if f <= at8["half_gain_freq"]]  # where sd-vae at 8x still passes
    assert np.mean([at16["gain"][i] for i in band]) < np.mean([at8["gain"][i] for i in band])


def _upper_blocks(change: np.ndarray, groups: list[int]) -> np.ndarray:
    g = np.asarray(groups)
    return change[g[:, None] < g[None, :]]  # output i in an earlier group than perturbed input j


@pytest.mark.parametrize("name", ["iv-vae", "walt"])
def test_causal_models_are_block_lower_triangular(name, one_thread):
    require_lab_weights(name)
    from vaelab import models

    model = models.load(name, device="cpu")
    rf = probes.receptive_field_probe(model, SIZE, FRAMES)
    change = np.asarray(rf["change"])
    assert rf["groups"] == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert change[:, 0].min() > 0.01 * change.max()  # frame 0 reaches every later frame (the map is not empty)
    assert np.all(_upper_blocks(change, rf["groups"]) <= 1e-3 * change.max()), change.round(3)
    if name == "iv-vae":  # its group-causal 3D convolutions mix the frames of a group (W.A.L.T's lab weights
        g = np.asarray(rf["groups"])  # barely use frames after 0 at all: see docs/DIAGNOSTICS.md)
        same_group = (g[:, None] == g[None, :]) & ~np.eye(FRAMES, dtype=bool)
        assert change[same_group].max() > 0.05 * change.max()


def test_non_causal_model_is_not_block_lower_triangular(one_thread):
    require_lab_weights("hvdm")
    from vaelab import models

    model = models.load("hvdm", device="cpu")
    rf = probes.receptive_field_probe(model, SIZE, FRAMES)
    change = np.asarray(rf["change"])
    groups = probes.temporal_groups(model.card, FRAMES)  # hvdm: every frame its own group
    assert _upper_blocks(change, groups).max() > 0.05 * change.max()


def test_settings_are_checked_in_one_line():
    for size, frames, text in ((40, 9, "multiple of 16"), (512, 9, "between 32 and 256"), (64, 2, "between 5"),
                               ("x", 9, "whole numbers")):
        with pytest.raises(ValueError, match=text):
            probes.check_settings(size, frames)
    with pytest.raises(ValueError, match="unknown probe"):
        probes.run_probes({"identity": _Filter("identity")}, SIZE, FRAMES, probes=("nope",))


def test_report_json_has_the_documented_names():
    report = probes.run_probes({"identity": _Filter("identity"), "box8": BoxPool(8)}, SIZE, FRAMES)
    j = json.loads(json.dumps(report.to_json()))  # JSON-serialisable, no arrays left in
    assert set(j) >= {"models", "conventions"}
    for name in ("identity", "box8"):
        m = j["models"][name]
        assert set(m["spatial_mtf"]) >= {"freq", "gain", "half_gain_freq"}
        assert set(m["temporal_mtf"]) >= {"freq", "gain"}
        assert "off_dc_energy" in m["flat_field"] and "delta_e_mean" in m["colour_chart"]
        rf = m["receptive_field"]
        assert len(rf["change"]) == len(rf["output_frames"]) and len(rf["change"][0]) == len(rf["input_frames"])
    assert j["models"]["box8"]["flat_field"]["off_dc_energy"] == 0.0  # box filter keeps flat fields flat
    assert j["models"]["identity"]["colour_chart"]["delta_e_mean"] == 0.0
    # 16 px patches on the 8 px grid: every block lies inside one patch, so the box model keeps each colour
    assert j["models"]["box8"]["colour_chart"]["delta_e_mean"] < 0.01
    assert j["models"]["box8"]["motion"]["psnr"][0] < 100


def test_views_on_a_clip():
    frames = moving_gradient(6, 64, 96)
    recons = {"same": frames.copy(), "noisy": np.clip(frames.astype(int) + 6, 0, 255).astype(np.uint8)}
    mre = probes.motion_resolved_error(frames, recons)
    assert sum(mre["counts"]) == 5 * 64 * 96
    assert all(v in (None, 0.0) for v in mre["error"]["same"])
    assert probes.pareto_front([1.0, 0.5, 0.5, 2.0], [30.0, 25.0, 20.0, 29.0]) == [True, True, False, False]


def test_figures_build_from_the_report_and_the_grid_overlay_lines_up():
    from vaelab import viz_diagnostics as vd

    report = probes.run_probes({"identity": _Filter("identity"), "box8": BoxPool(8)}, 32, 5)
    m = report.models
    for fn in (vd.spatial_mtf, vd.zone_plate, vd.temporal_mtf, vd.flat_field_spectra, vd.colour_chart, vd.motion,
               vd.frame_count, vd.receptive_fields):
        fig = fn(m)
        assert len(fig.data) >= 2, fn.__name__
    frames = moving_gradient(6, 64, 96)
    recons = {"box8": frames, "other": frames[::-1].copy()}
    rd = {"models": {"a": {"floats_per_pixel": 0.06, "bits_per_pixel": None, "psnr": 25.0, "ssim": 0.7,
                           "delta_e_mean": 3.0, "pareto": True},
                     "b": {"floats_per_pixel": 0.02, "bits_per_pixel": 0.14, "psnr": 22.0, "ssim": 0.6,
                           "delta_e_mean": 4.0, "pareto": True}}, "frames": 6, "width": 96, "height": 64}
    assert any(t.name == "Pareto front" for t in vd.rate_distortion(rd).data)
    assert len(vd.motion_resolved(probes.motion_resolved_error(frames, recons)).data) == 3
    from plotly import graph_objects as go
    from plotly.subplots import make_subplots

    panel = make_subplots(rows=2, cols=2)  # a heatmap in the bottom-right cell, as the error row of a panel
    panel.add_trace(go.Heatmap(z=np.zeros((64, 96))), row=2, col=2)
    fig = vd.grid_overlay(panel, 64, 96, latent_factor=8, tile=48, overlap=16, frame=5, chunks=[(0, 1), (1, 5), (5, 9)],
                          rows=[2], cols=[2])
    xs = sorted({s.x0 for s in fig.layout.shapes if s.x0 == s.x1})
    tiles = [s for s in fig.layout.shapes if s.line.width == 2]
    assert 7.5 in xs and 87.5 in xs  # latent cells every 8 px (x = 8k - 0.5, pixel centres at integers)
    # tiles as streaming.tile_starts lays them on 96 px: 0, 32, then the last one shifted back to 48
    assert sorted({s.x0 for s in tiles if s.x0 == s.x1}) == [31.5, 47.5]
    assert "chunk 2 (frames 5-8)" in fig.layout.annotations[-1].text


def test_cli_probe_writes_the_json_and_refuses_bad_settings(tmp_path):
    import os
    import subprocess
    import sys

    require_lab_weights("litevae")
    require_lab_weights("hvdm")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for k in ("VAELAB_PRECISION", "VAELAB_THREADS", "VAELAB_PROBE_POOL"):
        env.pop(k, None)  # the defaults are what this test checks
    out = tmp_path / "probe.json"
    run = subprocess.run([sys.executable, "-m", "vaelab.cli", "probe", "--models", "litevae,hvdm", "--frames", "5",
                          "--size", "32", "--probes", "spatial,flat,colour", "--pool", "process", "--json", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    j = json.loads(out.read_text())
    # two real models in forked workers (one per core; one core: one after another)
    assert j["input"]["pool"] == ("process" if (os.cpu_count() or 1) > 1 else "serial")
    assert set(j["models"]) == {"litevae", "hvdm"} and "pool_note" not in j["input"]
    m = j["models"]["litevae"]
    assert set(m) >= {"spatial_mtf", "flat_field", "colour_chart"} and "receptive_field" not in m
    assert 0 < m["spatial_mtf"]["half_gain_freq"] <= 0.5 and "spatial_mtf" in j["conventions"]
    assert "litevae" in run.stdout and "half-gain" in run.stdout
    assert (j["input"]["precision"], m["precision"], m["device"]) == ("fp32", "fp32", "cpu")  # the default
    assert "cpu fp32" in run.stdout and "precision" in j["conventions"]
    for args, text in ((["--size", "40"], "multiple of 16"), (["--frames", "2"], "between 5 and 33"),
                       (["--models", "nope"], "unknown model"), (["--probes", "zz"], "unknown probe"),
                       (["--weights", "sd-vae"], "NAME=SPEC"), (["--precision", "fp16", "--device", "cpu"],
                                                                 "fp16 runs only on a GPU")):
        bad = subprocess.run([sys.executable, "-m", "vaelab.cli", "probe", "--models", "litevae", *args],
                             capture_output=True, text=True, env=env, timeout=300)
        if args[0] == "--models":
            bad = subprocess.run([sys.executable, "-m", "vaelab.cli", "probe", *args], capture_output=True, text=True,
                                 env=env, timeout=300)
        assert bad.returncode == 2 and text in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1


class _AutocastSpy(_Filter):
    """Identity that records, at every encode and decode, whether autocast is on and in which format; with
    ``overflow_in`` it returns inf from decode while autocast runs in that format (an fp16 overflow)."""

    def __init__(self, overflow_in: torch.dtype | None = None):
        super().__init__("spy")
        self.seen: list[tuple[str, bool, torch.dtype]] = []
        self.overflow_in = overflow_in

    def _note(self, where: str) -> bool:
        on, dt = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")
        self.seen.append((where, on, dt))
        return on and dt == self.overflow_in

    def filter(self, x):
        self._note("encode")
        return x

    def unfilter(self, z):
        return z + float("inf") if self._note("decode") else z


def test_probes_run_in_the_chosen_precision_and_record_it(monkeypatch):
    from vaelab import device
    from vaelab.device import resolve_precision

    monkeypatch.setattr(device, "cpu_bf16_native", lambda: (True, "test"))  # the spy has no convolutions to emulate
    spy = _AutocastSpy()
    report = probes.run_probes({"spy": spy}, 32, 5, probes=("spatial", "receptive_field"), precision="bf16")
    assert {w for w, *_ in spy.seen} == {"encode", "decode"}
    assert all(on and dt == torch.bfloat16 for _, on, dt in spy.seen)  # every call, receptive-field latents too
    j = report.to_json()
    assert j["input"]["precision"] == "bf16" and "precision" in j["conventions"]
    assert (j["models"]["spy"]["device"], j["models"]["spy"]["precision"]) == ("cpu", "bf16")
    assert j["models"]["spy"]["precision_notes"] == []

    spy.seen.clear()
    j32 = probes.run_probes({"spy": spy}, 32, 5, probes=("spatial",), precision="fp32").to_json()
    assert spy.seen and not any(on for _, on, _ in spy.seen)  # fp32: no autocast at all
    assert j32["models"]["spy"]["precision"] == "fp32" and j32["input"]["precision"] == "fp32"
    assert probes.run_probes({"spy": spy}, 32, 5, probes=("spatial",)).precision == "fp32"  # the default
    auto = probes.run_probes({"spy": spy}, 32, 5, probes=("spatial",), precision="auto").to_json()
    assert auto["models"]["spy"]["precision"] == resolve_precision("auto", "cpu") and auto["input"]["precision"] == "auto"

    spy.seen.clear()
    with pytest.raises(ValueError, match="fp16 runs only on a GPU"):
        probes.run_probes({"spy": spy}, 32, 5, precision="fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        probes.run_probes({"spy": spy}, 32, 5, precision="fp8")
    assert spy.seen == []  # refused before any model call
    probes.code(spy, probes.grating(32, 2, 0, 1))  # outside run_probes: fp32
    assert spy.seen and not any(on for _, on, _ in spy.seen)


def test_an_fp16_overflow_is_recoded_in_fp32_and_noted():
    """The fp16 guard of the probes' own encode/decode (CPU autocast in fp16 stands in for a GPU here)."""
    spy = _AutocastSpy(overflow_in=torch.float16)
    x = probes.grating(32, 3, 0, 1)
    with probes._running("fp16") as run:
        y, _ = probes.code(spy, x)
    assert torch.isfinite(y).all() and torch.equal(y, x.clamp(-1, 1))
    assert len(run.notes) == 1 and "recoded in fp32" in run.notes[0]
    assert [on for w, on, _ in spy.seen] == [True, True, False, False]  # fp16 pass, then the fp32 rerun


@requires_native_bf16
def test_fp32_probes_are_the_plain_float32_path_and_bf16_stays_close():
    """fp32 codes exactly as model.decode(model.encode(.)) with no autocast; bf16 on a lab model moves the MTF
    by at most 0.03 gain (bf16 keeps 8 mantissa bits; the norms and softmax stay fp32)."""
    from vaelab.engine import get_model
    from vaelab.models.base import pad_to_rule

    require_lab_weights("litevae")
    model = get_model("litevae", "lab", "cpu")
    x = torch.cat([probes.grating(32, 3, 0, 1), probes.pan(32, 1, 0)], 0)
    with torch.inference_mode():
        xp, (t, h, w) = pad_to_rule(x, model.card.spatial_factor, model.card.frame_rule)
        want = model.decode(model.encode(xp))[:, :, :t, :h, :w].clamp(-1, 1).float()
        with probes._running("fp32"):
            got, _ = probes.code(model, x)
    assert torch.equal(got, want)
    s32 = probes.run_probes({"litevae": model}, 32, 5, probes=("spatial",), precision="fp32").models["litevae"]
    s16 = probes.run_probes({"litevae": model}, 32, 5, probes=("spatial",), precision="bf16").models["litevae"]
    g32, g16 = np.asarray(s32["spatial_mtf"]["gain"]), np.asarray(s16["spatial_mtf"]["gain"])
    assert not np.array_equal(g32, g16)  # bf16 did run
    assert np.abs(g32 - g16).max() < 0.03, (g32, g16)


def test_models_probed_at_once_give_the_same_report_as_one_after_another():
    """``workers``: several models probed concurrently (one torch thread each), in threads or in forked
    processes, measure exactly what a serial run does, in the input order, each with its own clips (the
    reconstruction memo is keyed per model), and report every probe's progress."""
    named = {"box8": BoxPool(8), "blur1": GaussianBlur(1.0), "identity": _Filter("identity")}
    chosen = ("spatial", "flat", "receptive_field")
    threads = torch.get_num_threads()
    serial = probes.run_probes(named, SIZE, FRAMES, probes=chosen, workers=1).to_json()
    assert serial["input"]["pool"] == "serial"
    for pool in ("thread", "process"):
        seen: list[tuple[float, str]] = []
        parallel = probes.run_probes(named, SIZE, FRAMES, probes=chosen, workers=3, pool=pool,
                                     progress=lambda f, msg, seen=seen: seen.append((f, msg))).to_json()
        assert parallel["input"]["pool"] == pool and "pool_note" not in parallel["input"]
        assert torch.get_num_threads() == threads  # the workers' one-thread setting is undone
        assert list(parallel["models"]) == list(named)
        for name in named:
            a = {k: v for k, v in serial["models"][name].items() if k not in ("seconds", "cpu_seconds")}
            b = {k: v for k, v in parallel["models"][name].items() if k not in ("seconds", "cpu_seconds")}
            assert a == b, (pool, name)
        assert parallel["models"]["box8"]["spatial_mtf"] != parallel["models"]["identity"]["spatial_mtf"]
        assert sorted(msg for _, msg in seen) == sorted(f"{n}: {p} (fp32)" for n in named for p in chosen), pool
        assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] < 1
    assert probes.probe_pool() == "thread"  # the default; VAELAB_PROBE_POOL=process opts in
    with pytest.raises(ValueError, match="pool must be"):
        probes.run_probes(named, SIZE, FRAMES, probes=chosen, workers=2, pool="gpu")
    assert probes.probe_workers({"one": _Filter("identity")}) == 1


class _DiesInAWorker(_Filter):
    """Exits the process it runs in unless that is the one that built it: a worker killed (out of memory)."""

    def __init__(self):
        super().__init__("dies")
        self.parent = os.getpid()

    def filter(self, x):
        if os.getpid() != self.parent:
            os._exit(3)
        return x


class _HangsInAWorker(_DiesInAWorker):
    """Waits forever in any process but the one that built it: a child stuck on a lock held at the fork."""

    def filter(self, x):
        if os.getpid() != self.parent:
            import time

            time.sleep(3600)
        return x


@pytest.mark.parametrize("broken", [_DiesInAWorker, _HangsInAWorker])
def test_a_worker_process_that_dies_or_hangs_is_redone_in_threads_with_a_note(broken, monkeypatch):
    monkeypatch.setattr(probes, "STALL_S", 1.0)
    named = {"broken": broken(), "box8": BoxPool(8)}
    report = probes.run_probes(named, SIZE, FRAMES, probes=("flat",), workers=2, pool="process")
    j = report.to_json()
    assert j["input"]["pool"] == "thread" and "BrokenProcessPool" in j["input"]["pool_note"]
    assert j["models"]["broken"]["flat_field"]["off_dc_energy"] == 0.0  # measured, in this process
    assert set(j["models"]) == set(named)
