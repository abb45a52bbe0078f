"""Latent-space comparison (``vaelab.analysis.latents``, ``vaelab.viz_latents``, ``vaelab latents``).

Random-init small models (``models.build``): the checks are about shapes, labels, bookkeeping and the
maths of the distances, not about what trained models' latents look like. UMAP runs once on ~300
points (plus a repeat for determinism); the first call pays numba compilation (tens of seconds cold).
"""
from __future__ import annotations

import json
import math

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from conftest import moving_gradient, requires_native_bf16

from vaelab import cli, engine, models
from vaelab import viz_latents as VL
from vaelab.analysis import latents as L
from vaelab.models.base import pad_to_rule

H, W = 32, 48  # not square, so a y/x swap would show
VIDEO = ("walt", "iv-vae", "hvdm", "vidtwin", "cv-vae", "videovae-plus")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest and deterministic


@pytest.fixture(scope="module")
def built():
    torch.manual_seed(0)
    return {n: models.build(n).eval().requires_grad_(False) for n in VIDEO + ("sd-vae",)}


def _frames(name: str) -> int:
    return 8 if models.model_class(name).card.frame_rule == "4k" else 5


def _x(frames: np.ndarray) -> torch.Tensor:
    return engine.to_tensor(frames)


# --- collection ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", VIDEO)
def test_collect_shapes_and_labels(built, name):
    model, sd = built[name], built["sd-vae"]
    card = model.card
    t = _frames(name)
    frames = moving_gradient(t, H, W)
    s = L.collect(frames, [model], sd)
    c = card.latent_channels
    assert s.vectors.dtype == np.float32 and s.vectors.shape == (len(s), max(c, 4))
    for (m, src), width in {(name, "video"): c, (name, "image"): c, ("sd-vae", "reference"): 4}.items():
        i = s.group_index(m, src)
        assert (s.channels[i] == width).all() and np.isfinite(s.vectors[i, :width]).all()
        assert s.vectors_of(m, src).shape == (len(i), width)
    assert s.groups() == [(name, "video"), (name, "image"), ("sd-vae", "reference")]
    for k in ("source", "model", "t", "frame", "y", "x"):
        assert getattr(s, k).shape == (len(s),)
    assert s.patch.shape == (len(s), 4)

    sf = card.spatial_factor
    hl, wl = math.ceil(H / sf), math.ceil(W / sf)
    _, tl, _, _ = card.latent_shape(t, H, W)
    n_img = 1 if not hasattr(card, "num_queries") else card.num_queries  # VidTwin keeps its n_q slots
    assert len(s.group_index(name, "video")) == tl * hl * wl
    assert len(s.group_index(name, "image")) == t * n_img * hl * wl
    assert len(s.group_index("sd-vae", "reference")) == t * (H // 8) * (W // 8)

    # labels: positions in range, boxes = the latent cell in input pixels (y0, x0, y1, x1)
    for src in ("video", "image"):
        i = s.group_index(name, src)
        assert s.y[i].max() == hl - 1 and s.x[i].max() == wl - 1
        box = np.stack([s.y[i] * sf, s.x[i] * sf, np.minimum(s.y[i] * sf + sf, H), np.minimum(s.x[i] * sf + sf, W)], 1)
        np.testing.assert_array_equal(s.patch[i], box)
        assert 0 <= s.frame[i].min() and s.frame[i].max() < t
    iv = s.group_index(name, "video")
    assert sorted(set(s.t[iv].tolist())) == list(range(tl))
    ii = s.group_index(name, "image")
    assert sorted(set(s.frame[ii].tolist())) == list(range(t))
    if card.frame_rule == "1+4k":
        assert dict(zip(s.t[iv].tolist(), s.frame[iv].tolist())) == {0: 0, 1: 1}
    if card.frame_rule == "4k":
        assert dict(zip(s.t[iv].tolist(), s.frame[iv].tolist())) == {0: 0, 1: 4}

    # vectors are the latent at (t, y, x) with channels as features (checked against encode directly)
    with torch.inference_mode():
        xp, _ = pad_to_rule(_x(frames), sf, card.frame_rule)
        z = model.encode(xp).main  # VidTwin: its structure part
        row = iv[(s.t[iv] == tl - 1) & (s.y[iv] == hl - 1) & (s.x[iv] == 0)][0]
        np.testing.assert_allclose(s.vectors[row], z[0, :, tl - 1, hl - 1, 0].numpy(), atol=2e-4, rtol=1e-3)
        # "image": frame 3 alone as a 1-frame clip (padded per the rule), latent frame 0
        x3, _ = pad_to_rule(_x(frames[3:4]), sf, card.frame_rule)
        z3 = model.encode(x3).main
        row = ii[(s.frame[ii] == 3) & (s.t[ii] == 0) & (s.y[ii] == 0) & (s.x[ii] == wl - 1)][0]
        np.testing.assert_allclose(s.vectors[row], z3[0, :, 0, 0, wl - 1].numpy(), atol=2e-4, rtol=1e-3)


def test_mixed_channels_are_kept_apart(built):
    frames = moving_gradient(5, H, W)
    s = L.collect(frames, [built["walt"], built["hvdm"]], built["sd-vae"])
    assert {c: len(i) for c, i in s.channel_groups().items()} == {
        8: len(s.group_index("walt", "video")) + len(s.group_index("walt", "image")),
        4: len(s) - len(s.group_index("walt", "video")) - len(s.group_index("walt", "image"))}
    four = s.channels == 4
    assert s.vectors.shape[1] == 8 and np.isnan(s.vectors[four, 4:]).all() and np.isfinite(s.vectors[four, :4]).all()
    assert any("channel counts differ" in n for n in s.notes)
    rows = {(d["model"], d["a"], d["b"]): d for d in L.distance_table(s)}
    assert rows[("walt", "video", "reference sd-vae")]["frechet"] is None
    assert "C=8" in rows[("walt", "video", "reference sd-vae")]["reason"]
    for key in [("walt", "video", "image"), ("hvdm", "video", "image"), ("hvdm", "image", "reference sd-vae")]:
        assert rows[key]["frechet"] >= 0 and rows[key]["sliced_w2"] >= 0
    coords = L.embed(s, "pca")
    assert coords.shape == (len(s), 2) and np.isfinite(coords).all()
    stats = L.channel_stats(s)
    assert stats[("walt", "video")]["mean"].shape == (8,) and stats[("sd-vae", "reference")]["std"].shape == (4,)


def test_collect_rejects_bad_input(built):
    with pytest.raises(ValueError, match="uint8"):
        L.collect(np.zeros((2, 8, 8, 3), np.float32), [built["hvdm"]], None)
    with pytest.raises(ValueError, match="image_reference"):
        L.collect(moving_gradient(1, 16, 16), [built["sd-vae"]], None)


# --- subsampling -------------------------------------------------------------------------------

def _synthetic(sizes: dict[tuple[str, str], int], c: int = 4, seed: int = 0, shift: float = 0.0) -> L.LatentSet:
    rng = np.random.default_rng(seed)
    parts = []
    for k, ((model, source), n) in enumerate(sizes.items()):
        v = (rng.standard_normal((n, c)) + shift * k).astype(np.float32)
        z = np.zeros(n, np.int32)
        parts.append(L.LatentSet(v, np.full(n, c), np.full(n, source), np.full(n, model), z, z, z, z,
                                 np.zeros((n, 4), np.int32)))
    return L.concat(parts)


def test_subsample_keeps_every_group_and_the_cap():
    sizes = {("a", "video"): 5, ("a", "image"): 1000, ("b", "video"): 90, ("sd-vae", "reference"): 700}
    s = _synthetic(sizes)
    sub = s.subsample(300, seed=1)
    assert len(sub) == 300
    got = {g: len(sub.group_index(*g)) for g in sub.groups()}
    assert set(got) == set(sizes)
    assert got[("a", "video")] == 5 and got[("b", "video")] == 90  # small groups whole
    assert abs(got[("a", "image")] - got[("sd-vae", "reference")]) <= 1  # the rest share equally
    again = s.subsample(300, seed=1)
    np.testing.assert_array_equal(sub.vectors, again.vectors)
    assert not np.array_equal(sub.vectors, s.subsample(300, seed=2).vectors)
    assert len(s.subsample(10_000)) == len(s)
    with pytest.raises(ValueError, match="groups"):
        s.subsample(3)
    # rows of the subsample are rows of the set, labels aligned
    full = {tuple(v) for v in s.vectors.tolist()}
    assert all(tuple(v) in full for v in sub.vectors.tolist())


def test_npz_round_trip(tmp_path):
    s = _synthetic({("a", "video"): 20, ("a", "image"): 30})
    path = s.to_npz(tmp_path / "x.npz", coords=np.zeros((50, 2), np.float32))
    with np.load(path) as f:  # no pickle needed
        assert f["vectors"].shape == (50, 4) and f["coords"].shape == (50, 2)
        assert list(f["source"][:1]) == ["video"] and f["patch"].shape == (50, 4)
        assert "notes" in json.loads(str(f["meta"]))


# --- distances ---------------------------------------------------------------------------------

def test_distances_zero_for_identical_and_growing_with_shift():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 4)) @ rng.standard_normal((4, 4))
    assert L.frechet_distance(a, a) < 1e-8
    assert L.sliced_wasserstein(a, a) == 0.0
    d = np.array([1.0, -0.5, 0.25, 0.0])
    f1, f2 = L.frechet_distance(a, a + 0.5 * d), L.frechet_distance(a, a + 2 * d)
    s1, s2 = L.sliced_wasserstein(a, a + 0.5 * d), L.sliced_wasserstein(a, a + 2 * d)
    assert 0 < f1 < f2 and 0 < s1 < s2
    assert f1 == pytest.approx(0.25 * d @ d, rel=1e-6)  # a pure mean shift: |d|^2, covariances cancel
    b = rng.standard_normal((150, 4)) * 2 + 1
    assert L.frechet_distance(a, b) == pytest.approx(L.frechet_distance(b, a), rel=1e-12)  # symmetric
    assert L.sliced_wasserstein(a, b) == pytest.approx(L.sliced_wasserstein(b, a))
    with pytest.raises(ValueError):
        L.frechet_distance(a, b[:, :3])


def test_frechet_survives_degenerate_covariance():
    a = np.zeros((50, 4))
    a[:, 0] = np.linspace(0, 1, 50)  # rank 1
    assert L.frechet_distance(a, a) < 1e-8
    assert L.frechet_distance(a[:1], a[:1] + 1) == pytest.approx(4.0)


# --- embeddings ---------------------------------------------------------------------------------

def _blobs(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    lab = np.arange(n) % 2
    return (rng.standard_normal((n, 4)) * 0.3 + lab[:, None] * 3).astype(np.float32), lab


def test_pca_2d():
    v, lab = _blobs()
    p = L.pca_2d(v)
    assert p.shape == (300, 2) and p.dtype == np.float32
    np.testing.assert_array_equal(p, L.pca_2d(v.copy()))
    assert p[:, 0].var() >= p[:, 1].var()
    assert abs(p[lab == 0, 0].mean() - p[lab == 1, 0].mean()) > 4  # the blobs split along axis 1
    assert L.pca_2d(v[:, :1]).shape == (300, 2) and L.pca_2d(v[:1]).shape == (1, 2)


def test_umap_2d_shape_and_determinism():
    v, lab = _blobs()
    threads = torch.get_num_threads()
    a = L.umap_2d(v, seed=0)
    assert torch.get_num_threads() == threads  # numba's OpenMP start-up must not change torch's threads
    assert a.shape == (300, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(L.umap_2d(v, seed=0), a)
    centre0, centre1 = a[lab == 0].mean(0), a[lab == 1].mean(0)
    assert np.linalg.norm(centre0 - centre1) > a[lab == 0].std(0).max()  # two blobs stay apart
    assert L.umap_2d(v[:10]).shape == (10, 2)  # too few points: PCA fallback


def test_embed_cache():
    s = _synthetic({("a", "video"): 40, ("a", "image"): 60}, shift=2.0)
    c1 = L.embed(s, "pca")
    assert L.embed(s, "pca") is c1 and not c1.flags.writeable
    s2 = s.take(np.arange(len(s)))
    s2.vectors = s2.vectors + 1
    assert L.embed(s2, "pca") is not c1  # same key, different vectors: no stale hit
    with pytest.raises(ValueError):
        L.embed(s, "tsne")


# --- figures and table ----------------------------------------------------------------------------

def test_scatter_table_and_bars(built):
    frames = moving_gradient(5, H, W)
    s = L.collect(frames, [built["hvdm"], built["walt"]], built["sd-vae"])
    fig = VL.latent_scatter(L.embed(s, "pca"), s, "latents")
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == len(s.groups()) == 5 and all(isinstance(tr, go.Scattergl) for tr in fig.data)
    by = {tr.name: tr for tr in fig.data}
    assert by["hvdm · video"].marker.color == by["hvdm · image"].marker.color != by["walt · video"].marker.color
    assert by["hvdm · image"].marker.symbol == "circle-open" and by["hvdm · video"].marker.symbol == "circle"
    assert by["sd-vae · reference"].marker.color == VL.REFERENCE_COLOUR
    assert "latent frame" in by["walt · video"].hovertemplate and "position" in by["walt · video"].hovertemplate
    assert by["walt · video"].xaxis != by["hvdm · video"].xaxis  # C=8 and C=4 in separate panels
    rows = VL.latent_stats_table(L.distance_table(s), L.channel_stats(s))
    assert rows and all(len(r) == len(VL.LATENT_TABLE_HEADERS) for r in rows)
    assert any(r[1] == "video vs image" for r in rows) and rows[-1][0] == "sd-vae"
    bars = VL.channel_bars(L.channel_stats(s))
    assert all(isinstance(tr, go.Bar) for tr in bars.data) and len(bars.data) == 2 + 3  # walt: 2, hvdm: 2 + ref
    with pytest.raises(ValueError):
        VL.latent_scatter(np.zeros((3, 2)), s)


# --- compatibility --------------------------------------------------------------------------------

def test_compatibility(built):
    frames = moving_gradient(5, H, W)
    sd = built["sd-vae"]
    cv = L.compatibility(frames, built["cv-vae"], sd)
    assert cv["method"].startswith("cv-vae") and math.isfinite(cv["psnr"]) and cv["frames"] == [0, 4]
    assert built["cv-vae"].image_vae is None  # attached only for the call
    hv = L.compatibility(frames, built["hvdm"], sd)
    assert math.isfinite(hv["psnr"]) and hv["frames"] == list(range(5)) and len(hv["per_frame"]) == 5
    assert {"video_psnr", "image_vae_psnr"} <= set(hv)
    walt = L.compatibility(frames, built["walt"], sd)
    assert walt["psnr"] is None and "channels" in walt["reason"]
    assert L.compatibility(frames, built["vidtwin"], sd)["psnr"] is None
    assert L.compatibility(frames, built["hvdm"], None)["psnr"] is None


# --- CLI ------------------------------------------------------------------------------------------

def make_standin_assets(tmp_path, monkeypatch, names):
    """VAELAB_ASSETS with random-init stand-in weights for ``names`` (and a fresh engine cache). Tests of
    wiring only: these latents mean nothing, and the directory lives in tmp_path (never committed)."""
    weights = tmp_path / "assets" / "weights"
    weights.mkdir(parents=True)
    torch.manual_seed(0)
    for name in names:
        m = models.build(name)
        models.save_weights(m, weights / f"{name}.safetensors")
        (weights / f"{name}.json").write_text(json.dumps(
            {"config": m.config.to_dict(), "params": m.num_params(), "heldout": {"mean_psnr": 0}}))
    monkeypatch.setenv("VAELAB_ASSETS", str(tmp_path / "assets"))
    monkeypatch.setattr(models.weights, "ASSETS", tmp_path / "assets")  # read at import; set both
    monkeypatch.setattr(engine, "_CACHE", {})
    return weights


@pytest.fixture
def standin_assets(tmp_path, monkeypatch):
    """Stand-in weights for walt, hvdm and sd-vae."""
    return make_standin_assets(tmp_path, monkeypatch, ("walt", "hvdm", "sd-vae"))


def test_cli_latents_writes_npz(small_clip, standin_assets, tmp_path, capsys):
    assert {"walt", "hvdm", "sd-vae"} <= set(models.names())
    out = tmp_path / "lat.npz"
    rc = cli.main(["latents", str(small_clip), "--models", "walt,hvdm", "--frames", "5", "--size", "32",
                   "--out", str(out), "--method", "pca", "--cap", "150", "--device", "cpu"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "hvdm" in cap.out and "Frechet" in cap.out and "video vs image" in cap.out and "wrote" in cap.out
    with np.load(out) as f:
        n = len(f["vectors"])
        assert n <= 150 and f["coords"].shape == (n, 2) and np.isfinite(f["coords"]).all()
        assert set(f["source"].tolist()) == {"video", "image", "reference"}
        assert set(f["model"].tolist()) == {"walt", "hvdm", "sd-vae"}
        assert int(f["n_full"]) > n and str(f["method"]) == "pca"
        table = json.loads(str(f["distances"]))
        assert any(d["model"] == "hvdm" and d["frechet"] is not None for d in table)


@pytest.mark.parametrize("argv, message", [
    (["--models", "nope"], "unknown model"),
    (["--models", "sd-vae"], "image model"),
    (["--models", "walt", "--reference", "hvdm"], "--reference"),
    (["--models", "walt", "--cap", "0"], "--cap"),
    (["--models", "walt", "--out", "/nonexistent-dir/x.npz"], "directory does not exist"),
])
def test_cli_latents_errors(small_clip, standin_assets, capsys, argv, message):
    rc = cli.main(["latents", str(small_clip), "--frames", "2", "--size", "32", *argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("vaelab: error:") and message in lines[0], err


def test_cli_latents_missing_clip(standin_assets, tmp_path, capsys):
    rc = cli.main(["latents", str(tmp_path / "nope.mp4"), "--models", "walt"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("vaelab: error:") and "Traceback" not in err


# --- image families as the reference ------------------------------------------------------------------

@pytest.mark.parametrize("name", ("sd-vae", "litevae", "vqgan"))
def test_collect_image_reference_shapes(name):
    torch.manual_seed(0)
    model = models.build(name).eval().requires_grad_(False)
    frames = moving_gradient(3, H, W)
    s = L.collect(frames, [], model)
    c = model.card.latent_channels
    assert s.groups() == [(name, "reference")]
    assert s.vectors.shape == (3 * (H // 8) * (W // 8), c) and np.isfinite(s.vectors).all()
    assert (s.channels == c).all() and (s.t == 0).all()
    assert sorted(set(s.frame.tolist())) == [0, 1, 2] and s.y.max() == H // 8 - 1 and s.x.max() == W // 8 - 1


# --- the full-set report and its cache ------------------------------------------------------------------

def test_analyse_report_and_cache(built):
    frames = moving_gradient(5, H, W)
    models_ = [built["cv-vae"], built["walt"]]
    r = L.analyse(frames, models_, built["sd-vae"])
    assert not r.cached and len(r.lset) == len(L.collect(frames, models_, built["sd-vae"]))
    assert {(d["model"], d["a"], d["b"]) for d in r.distances} >= {("cv-vae", "video", "image"),
                                                                    ("walt", "video", "image")}
    assert set(r.stats) == set(r.lset.groups())
    assert [c["model"] for c in r.compatibility] == ["cv-vae", "walt"]
    assert math.isfinite(r.compatibility[0]["psnr"]) and r.compatibility[1]["psnr"] is None
    assert set(r.seconds) == {"collect", "numbers", "compatibility"}
    again = L.analyse(frames, models_, built["sd-vae"])
    assert again.cached and again.lset is r.lset and again.seconds == r.seconds
    assert not L.analyse(frames[:4], models_, built["sd-vae"]).cached  # another clip
    assert not L.analyse(frames, models_[:1], built["sd-vae"]).cached  # other models
    assert L.analyse(frames, models_[:1], None).compatibility == []  # no reference: nothing to decode with
    other = models.build("walt").eval().requires_grad_(False)  # same name, other weights: no stale hit
    torch.nn.init.normal_(next(other.parameters()))
    assert not L.analyse(frames, [built["cv-vae"], other], built["sd-vae"]).cached


def test_bench_umap_reports_times():
    from vaelab.bench.embedding import bench_umap, synthetic_latents

    res = bench_umap(sizes=(30, 12), warm=False)
    assert set(res["umap_s"]) == set(res["umap_cpu_s"]) == set(res["pca_s"]) == {30, 12}
    assert all(v >= 0 for v in res["umap_s"].values()) and res["warm_up_s"] == {}
    v = synthetic_latents(100, 8, seed=1)
    assert v.shape == (100, 8) and v.dtype == np.float32
    np.testing.assert_array_equal(v, synthetic_latents(100, 8, seed=1))


# --- figures: hover number, reference-only bars, patch thumbnails ------------------------------------

def test_hover_names_the_point_and_bars_without_video_models(built):
    frames = moving_gradient(2, H, W)
    s = L.collect(frames, [], built["sd-vae"])
    fig = VL.latent_scatter(L.embed(s, "pca"), s)
    assert len(fig.data) == 1 and "point #%{customdata[0]}" in fig.data[0].hovertemplate
    np.testing.assert_array_equal(np.asarray(fig.data[0].customdata)[:, 0], np.arange(len(s)))
    bars = VL.channel_bars(L.channel_stats(s))
    assert len(bars.data) == 1 and bars.data[0].name == "sd-vae (reference)" and len(bars.data[0].x) == 4


def test_patch_view():
    frame = np.zeros((32, 48, 3), np.uint8)
    frame[8:16, 16:24] = 200  # the latent cell (y 1, x 2 of an 8x grid)
    img = VL.patch_view(frame, (8, 16, 16, 24), height=96, gap=4)
    left_w = 96 * 48 // 32
    assert img.dtype == np.uint8 and img.shape == (96, left_w + 4 + 96, 3)  # crop: 3x3 cells, square
    left, right = img[:, :left_w], img[:, left_w + 4:]
    assert (img[:, left_w:left_w + 4] == 255).all()
    # left: the frame at 3x with the cell outlined in red; inside the outline, the cell's grey
    assert tuple(left[24, 60]) == VL.PATCH_OUTLINE and tuple(left[36, 60]) == (200, 200, 200)
    assert tuple(left[0, 0]) == (0, 0, 0)
    # right: the cell in the middle third, outlined; its neighbours (black) around it
    assert tuple(right[32, 48]) == VL.PATCH_OUTLINE and tuple(right[48, 48]) == (200, 200, 200)
    assert tuple(right[10, 10]) == (0, 0, 0)
    corner = VL.patch_view(frame, (0, 0, 8, 8), height=64)  # context clipped at the border
    assert corner.shape[0] == 64
    with pytest.raises(ValueError):
        VL.patch_view(frame, (30, 0, 38, 8))


# --- the "Latent space" tab's handlers (no server) ----------------------------------------------------

def _no_progress(*args, **kwargs):
    return None


def _run_tab(*, clip_source=None, upload=None, example=None, frames=5, size=32, names=(), reference=True,
             cap=500, seed=0, parallel=False, state=None, device="cpu", precision="fp32"):
    """The tab's handler; its {output name: value} in the order of ``tab_latents.OUTPUTS``."""
    from vaelab.ui import tab_latents as TL

    out = TL.latent_space(clip_source or TL.CLIP_FROM_HERE, upload, example, frames, size, list(names), reference,
                          cap, seed, parallel, state, device, precision, progress=_no_progress)
    assert list(out) == TL.OUTPUTS
    return tuple(out.values())


@pytest.fixture
def tab_assets(tmp_path, monkeypatch):
    """Stand-ins for cv-vae (compatibility meter, C=4), walt (C=8) and sd-vae; fresh report cache."""
    L.clear_caches()
    return make_standin_assets(tmp_path, monkeypatch, ("cv-vae", "walt", "sd-vae"))


def test_tab_latent_space(tab_assets, small_clip):
    import pandas as pd

    from vaelab.ui import tab_latents as TL

    assert TL.video_model_names() == ["cv-vae", "walt"]
    status, umap_fig, pca_fig, table, compat, bars, view = _run_tab(upload=str(small_clip), size=64,
                                                                    names=["cv-vae", "walt"], cap=500)
    sub = view["set"]
    assert len(sub) == 500 and view["frames"].shape == (5, 64, 96, 3)
    assert "**Clip:** your upload *gradient.mp4*, first 5 frame(s) at 96x64 px" in status
    full = int(status.split("**Vectors:** ")[1].split(" ")[0].replace(",", ""))
    assert full > 500 and "**Plotted: 500**" in status and "stratified" in status
    assert "random_state 0, one thread (reproducible)" in status and "channel counts differ" in status
    for fig in (umap_fig, pca_fig):
        assert [tr.name for tr in fig.data] == ["cv-vae · video", "cv-vae · image", "walt · video", "walt · image",
                                                "sd-vae · reference"]
        assert all(isinstance(tr, go.Scattergl) for tr in fig.data)
        assert sum(len(tr.x) for tr in fig.data) == 500
    assert "UMAP" in umap_fig.layout.title.text and "PCA" in pca_fig.layout.title.text
    assert isinstance(table, pd.DataFrame) and list(table.columns) == VL.LATENT_TABLE_HEADERS
    assert {"video vs image", "video vs reference sd-vae"} <= set(table["comparison"])
    assert compat["visible"] is True
    rows = compat["value"].set_index("model")
    assert rows.loc["cv-vae", "how / why not"] == "cv-vae compatibility_psnr"
    assert isinstance(rows.loc["cv-vae", "image decoder on the video latent (dB)"], float)
    assert "channels" in rows.loc["walt", "how / why not"]
    assert len(bars.data) > 0

    # same request again: latents, numbers and embeddings come from the caches
    status2, umap2, *_, view2 = _run_tab(upload=str(small_clip), size=64, names=["cv-vae", "walt"], cap=500)
    assert "(cached: same clip and models" in status2
    np.testing.assert_array_equal(umap2.data[0].x, umap_fig.data[0].x)
    # a point's patch: what the hover number leads to
    row = int(np.flatnonzero(sub.source == "video")[3])
    out = TL.latent_patch(view2, row)
    assert set(out) == set(TL.PATCH_OUTPUTS)
    img, caption = out["patch"], out["patch_caption"]
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert f"**Point #{row}:** {sub.model[row]} · video" in caption and f"input frame {sub.frame[row]}" in caption
    for bad in (-1, len(sub), "x", None):
        with pytest.raises(gr.Error, match="Point number"):
            TL.latent_patch(view2, bad)
    with pytest.raises(gr.Error, match="Run the latent space first"):
        TL.latent_patch(None, 0)


def test_tab_clip_from_reconstruct(tab_assets):
    from vaelab import pipeline
    from vaelab.ui import tab_latents as TL

    frames = moving_gradient(6, 32, 48)
    comp = pipeline.Comparison(frames, 12.0, {}, [], "")
    status, *_, view = _run_tab(clip_source=TL.CLIP_FROM_RECONSTRUCT, state=comp, frames=4, names=["cv-vae"])
    assert "the Reconstruct tab's last input, first 4 frame(s) at 48x32 px" in status
    np.testing.assert_array_equal(view["frames"], frames[:4])
    # no Reconstruct run yet: the clip chosen in this tab, and the status says so
    examples = pipeline.example_names()
    status, *_ = _run_tab(clip_source=TL.CLIP_FROM_RECONSTRUCT, state=None, example=examples[0], frames=2,
                          names=["cv-vae"])
    assert f"the example *{examples[0]}*" in status and "no Reconstruct run in this session yet" in status


def test_tab_without_video_weights_shows_the_reference_alone(tmp_path, monkeypatch, small_clip):
    from vaelab.ui import tab_latents as TL

    make_standin_assets(tmp_path, monkeypatch, ("sd-vae",))
    assert TL.video_model_names() == []
    status, umap_fig, pca_fig, table, compat, bars, view = _run_tab(upload=str(small_clip), names=[])
    assert "sd-vae's image latents on their own:** no video VAE ships trained weights yet" in status
    assert "No video VAE ships trained weights yet" in TL._no_video_md()
    assert [tr.name for tr in umap_fig.data] == ["sd-vae · reference"] and umap_fig.layout.showlegend
    assert compat["visible"] is False and len(compat["value"]) == 0
    assert list(table["model"]) == ["sd-vae"] and bars.data[0].name == "sd-vae (reference)"


@pytest.mark.parametrize("kwargs, message", [
    (dict(names=[], reference=False), "Select at least one video model"),
    (dict(names=["sd-vae"]), "Not a video model with trained weights: sd-vae"),
    (dict(names=["hvdm"]), "Not a video model with trained weights: hvdm"),  # implemented, no weights here
    (dict(names=["cv-vae"], cap=10), "Point cap must be between 500 and 50,000"),
    (dict(names=["cv-vae"], cap=60_000), "Point cap"),
    (dict(names=["cv-vae"], frames=0), "Frames must be between 1 and 32"),
    (dict(names=["cv-vae"], size=1000), "Working resolution"),
    (dict(names=["cv-vae"], seed=-1), "Seed"),
    (dict(names=["cv-vae"], seed="abc"), "Seed must be a whole number"),
    (dict(names=["cv-vae"], clip_source="nope"), "Clip must be"),
    (dict(names=["cv-vae"], example=None), "Upload a video or image, or pick an example"),
    (dict(names=["cv-vae", "walt"], frames=32, size=256), "too heavy for CPU"),
])
def test_tab_bad_input_gives_clear_error(tab_assets, monkeypatch, kwargs, message):
    from vaelab.ui import tab_latents as TL

    monkeypatch.setattr(TL, "auto_device", lambda *_: torch.device("cpu"))  # the CPU work cap, on any machine
    kwargs.setdefault("example", "bikes")
    with pytest.raises(gr.Error, match=message) as info:
        _run_tab(**kwargs)
    assert "Traceback" not in str(info.value)


def test_tab_bad_upload_gives_clear_error(tab_assets, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    with pytest.raises(gr.Error) as info:
        _run_tab(upload=str(bad), names=["cv-vae"])
    assert str(info.value) and "Traceback" not in str(info.value)


def test_tab_internal_failure_is_a_short_message(tab_assets, monkeypatch, small_clip):
    def broken(*args, **kwargs):
        raise RuntimeError("boom: internal detail")

    monkeypatch.setattr(L, "analyse", broken)
    with pytest.raises(gr.Error, match=r"analysis failed \(RuntimeError\)\. The server is fine") as info:
        _run_tab(upload=str(small_clip), names=["cv-vae"])
    assert "internal detail" not in str(info.value)


def test_tab_warm_records_its_outcome(monkeypatch):
    """The UMAP warm-up state machine (``analysis.warmup``; the tab only shows its line)."""
    from vaelab.analysis import warmup

    calls = []
    fresh = dict(state="not started", seconds={}, started=None, finished=None, error=None)
    monkeypatch.setattr(warmup, "UMAP_WARM", dict(fresh))
    monkeypatch.setattr(L, "warm_umap", lambda **kw: calls.append(kw) or {"exact_s": 2.0, "nndescent_s": 5.0})
    warmup.warm_umap()
    assert warmup.UMAP_WARM["state"] == "done" and warmup.UMAP_WARM["seconds"] == {"exact_s": 2.0, "nndescent_s": 5.0}
    assert calls == [{"parallel": True, "approximate": True}]
    assert "at start-up (7 s); requests do not pay it" in warmup.umap_text() and not warmup.umap_running()
    warmup.warm_umap()  # once per process
    assert len(calls) == 1

    def boom(**kw):
        raise RuntimeError("no numba")

    monkeypatch.setattr(warmup, "UMAP_WARM", dict(fresh))
    monkeypatch.setattr(L, "warm_umap", boom)
    warmup.warm_umap()  # must not raise: it runs in a daemon thread
    assert warmup.UMAP_WARM["state"] == "failed" and "no numba" in warmup.umap_text()
    monkeypatch.setattr(warmup, "UMAP_WARM", dict(warmup.UMAP_WARM, state="running", started=0.0))
    assert "running in the background" in warmup.umap_text() and warmup.umap_running()


@requires_native_bf16
def test_tab_precision_is_used_and_said(tab_assets, small_clip, monkeypatch):
    """The tab's Precision reaches the encoders (autocast seen inside them), the status says which device and
    precision ran, the cache keeps precisions apart, and fp16 on a CPU is one line before any work."""
    from vaelab.engine import get_model

    seen: list[tuple[bool, object]] = []
    model = get_model("cv-vae", "lab", "cpu")
    original = type(model).encode

    def spy(self, *a, **k):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(self, *a, **k)

    monkeypatch.setattr(type(model), "encode", spy)
    status32, *_ = _run_tab(upload=str(small_clip), names=["cv-vae"], reference=False, precision="fp32")
    assert seen and not any(on for on, _ in seen)
    seen.clear()
    status16, *_ = _run_tab(upload=str(small_clip), names=["cv-vae"], reference=False, precision="bf16")
    assert seen and all(on and dt == torch.bfloat16 for on, dt in seen)
    assert "**Ran on:** cpu fp32." in status32
    assert "**Ran on:** cpu bf16 (autocast" in status16 and "(cached" not in status16
    with pytest.raises(gr.Error, match="fp16 runs only on a GPU"):
        _run_tab(upload=str(small_clip), names=["cv-vae"], precision="fp16")
