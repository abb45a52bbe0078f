"""vaelab.metrics against scikit-image references and hand-computed values."""

import json

import numpy as np
import pytest
import torch
from skimage import data, transform
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vaelab import metrics as m


def _sk_ssim(a, b):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=255, channel_axis=-1,
    )


def _random_pair(shape=(3, 37, 52, 3), seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8)


def _astronaut_pair(frames=2, seed=0):
    """Smooth natural image (downsized astronaut) vs. noisy copies, one per frame."""
    img = transform.resize(data.astronaut(), (96, 128), anti_aliasing=True)
    img = np.round(img * 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    ref = np.stack([img] * frames)
    noise = rng.normal(0, 6 * np.arange(1, frames + 1)[:, None, None, None], ref.shape)
    rec = np.clip(ref + np.round(noise), 0, 255).astype(np.uint8)
    return ref, rec


PAIRS = [_random_pair(), _astronaut_pair()]


@pytest.mark.parametrize("ref,rec", PAIRS, ids=["random", "astronaut"])
def test_psnr_matches_skimage(ref, rec):
    expected = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(ref, rec)]
    got = m.psnr_per_frame(ref, rec)
    assert got.shape == (len(ref),) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("ref,rec", PAIRS, ids=["random", "astronaut"])
def test_ssim_matches_skimage(ref, rec):
    expected = [_sk_ssim(a, b) for a, b in zip(ref, rec)]
    got = m.ssim_per_frame(ref, rec)
    assert got.shape == (len(ref),)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_ssim_distinguishes_frames():
    ref, rec = _astronaut_pair(frames=3)
    s = m.ssim_per_frame(ref, rec)
    assert s[0] > s[1] > s[2]  # noise grows with the frame index


def test_identical_frames():
    ref, _ = _random_pair()
    np.testing.assert_array_equal(m.psnr_per_frame(ref, ref), m.PSNR_CAP)
    assert m.pooled_psnr(ref, ref) == m.PSNR_CAP
    np.testing.assert_allclose(m.ssim_per_frame(ref, ref), 1.0, atol=1e-12)
    assert not np.any(m.error_maps(ref, ref))
    assert str(int(m.PSNR_CAP)) in m.CONVENTIONS["psnr"]


def test_error_maps_values():
    ref = np.zeros((2, 4, 5, 3), np.uint8)
    rec = ref.copy()
    rec[0, 1, 2] = (30, 0, 255)  # |diff| 30, 0, 255 -> mean 95
    rec[1, 3, 4] = (10, 10, 10)
    ref[1, 0, 0] = (200, 200, 201)  # rec darker than ref must still be positive
    e = m.error_maps(ref, rec)
    assert e.shape == (2, 4, 5) and e.dtype == np.float32
    expected = np.zeros((2, 4, 5), np.float32)
    expected[0, 1, 2], expected[1, 3, 4], expected[1, 0, 0] = 95, 10, 601 / 3
    np.testing.assert_allclose(e, expected, rtol=1e-6)


def test_pooled_vs_mean_psnr():
    ref = np.full((2, 16, 16, 3), 128, np.uint8)
    rec = ref.copy()
    rec[0] += 1  # MSE 1
    rec[1] += 10  # MSE 100
    per_frame = m.psnr_per_frame(ref, rec)
    np.testing.assert_allclose(per_frame, [10 * np.log10(255**2), 10 * np.log10(255**2 / 100)])
    pooled = m.pooled_psnr(ref, rec)
    assert pooled == pytest.approx(10 * np.log10(255**2 / 50.5))
    assert abs(pooled - per_frame.mean()) > 1.0


def test_temporal_flicker():
    clip = np.zeros((3, 4, 4, 3), np.uint8)
    clip[1] = 12
    clip[2, :2] = 12  # half of the pixels go back to 0
    np.testing.assert_allclose(m.temporal_flicker(clip), [0, 12, 6])


def test_rejects_bad_inputs():
    ref, rec = _random_pair()
    with pytest.raises(ValueError):
        m.psnr_per_frame(ref, rec[:, :-1])
    with pytest.raises(ValueError):
        m.ssim_per_frame(ref.astype(np.float32), rec.astype(np.float32))


def test_clip_metrics_without_lpips_is_json_safe():
    ref, rec = _astronaut_pair(frames=2)
    cm = m.clip_metrics(ref, rec, with_lpips=False)
    d = json.loads(json.dumps(cm.to_dict()))
    assert d["lpips"] is None and d["lpips_mean"] is None
    assert len(d["psnr"]) == len(d["ssim"]) == 2
    assert d["psnr_mean"] == pytest.approx(np.mean(d["psnr"]))
    assert d["ssim_mean"] == pytest.approx(np.mean(d["ssim"]))
    assert d["pooled_psnr"] == pytest.approx(m.pooled_psnr(ref, rec))


@pytest.fixture
def no_download(monkeypatch):
    """Any attempt to download through torch.hub fails the test."""

    def boom(*args, **kwargs):
        raise AssertionError("network download attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", boom)


def test_lpips_unavailable(tmp_path, monkeypatch, no_download):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    ok, msg = m.lpips_status()
    assert not ok
    assert msg.startswith("LPIPS unavailable") and str(tmp_path / "checkpoints") in msg
    ref, rec = _random_pair((2, 64, 64, 3))
    assert m.lpips_per_frame(ref, rec) is None
    cm = m.clip_metrics(ref, rec)
    assert cm.lpips is None and cm.lpips_mean is None


@pytest.fixture(scope="module")
def random_alexnet_hub(tmp_path_factory):
    """A torch hub dir holding a *randomly initialised* AlexNet under torchvision's filename."""
    import torchvision

    hub = tmp_path_factory.mktemp("hub")
    name = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    (hub / "checkpoints").mkdir()
    torch.manual_seed(0)
    state = torchvision.models.alexnet().state_dict()
    torch.save(state, hub / "checkpoints" / name)
    return hub, state


def test_lpips_available_code_path(random_alexnet_hub, monkeypatch, no_download):
    """Exercises the LPIPS code path only: the backbone is random, so values are not LPIPS."""
    hub, state = random_alexnet_hub
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    ok, msg = m.lpips_status()
    assert ok, msg
    ref, rec = _random_pair((3, 64, 64, 3))
    d = m.lpips_per_frame(ref, rec, batch=2)  # batch < T exercises batching
    assert d.shape == (3,) and np.all(np.isfinite(d)) and np.all(d > 0)
    np.testing.assert_allclose(m.lpips_per_frame(ref, ref), 0.0, atol=1e-7)
    # The trunk really holds the cached file's weights (not torchvision's own init).
    trunk = m.pixel._get_lpips("cpu").net.state_dict()
    assert len(trunk) == 10  # 5 conv layers x (weight, bias)
    for key in ("slice1.0.weight", "slice3.6.bias", "slice5.10.weight"):
        layer = key.split(".", 1)[1]
        torch.testing.assert_close(trunk[key], state[f"features.{layer}"])
    cm = m.clip_metrics(ref, rec)
    assert cm.lpips == pytest.approx(d.tolist()) and cm.lpips_mean == pytest.approx(d.mean())


def test_psnr_by_group_position():
    from vaelab.metrics import psnr_by_group_position

    out = psnr_by_group_position([30, 20, 21, 22, 23, 20, 21, 22, 23, 20])
    assert out == {"frame 0": 30.0, "1st": 20.0, "2nd": 21.0, "3rd": 22.0, "4th": 23.0}
    assert list(psnr_by_group_position([30, 10])) == ["frame 0", "1st"]


# --- colour (CIEDE2000 on block means) ---------------------------------------------------


def test_rgb_to_lab_matches_skimage():
    from skimage.color import rgb2lab

    rgb = np.random.default_rng(0).random((64, 64, 3))
    np.testing.assert_allclose(m.rgb_to_lab(rgb), rgb2lab(rgb), atol=1e-6)


def test_ciede2000_matches_skimage_on_random_and_neutral_colours():
    from skimage.color import deltaE_ciede2000, rgb2lab

    rng = np.random.default_rng(1)
    a, b = rng.random((500, 3)), rng.random((500, 3))
    b[:50] = a[:50] + rng.normal(0, 0.01, (50, 3)).clip(-a[:50], 1 - a[:50])  # near-identical pairs
    grey = rng.random((20, 1)).repeat(3, axis=1)  # chroma 0: the hue terms must vanish
    a, b = np.concatenate([a, grey]), np.concatenate([b, grey[::-1]])
    ours = m.delta_e_ciede2000(m.rgb_to_lab(a), m.rgb_to_lab(b))
    np.testing.assert_allclose(ours, deltaE_ciede2000(rgb2lab(a), rgb2lab(b)), atol=1e-6)
    assert ours.max() > 10  # random pairs are far apart: the check is not on a trivial range


def test_ciede2000_sharma_reference_pairs():
    # Sharma, Wu, Dalal (2005), Table 1: pairs 1, 7, 17 and 25 with their published differences.
    lab1 = np.array([[50.0, 2.6772, -79.7751], [50.0, 0.0, 0.0], [50.0, 2.5, 0.0], [60.2574, -34.0099, 36.2677]])
    lab2 = np.array([[50.0, 0.0, -82.7485], [50.0, -1.0, 2.0], [73.0, 25.0, -18.0], [60.4626, -34.1751, 39.4387]])
    np.testing.assert_allclose(m.delta_e_ciede2000(lab1, lab2), [2.0425, 2.3669, 27.1492, 1.2644], atol=1e-4)


def test_colour_stats_blocks_and_shift():
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 256, (3, 32, 40, 3), dtype=np.uint8)
    same = m.colour_stats(ref, ref)
    assert same["delta_e_mean"] == 0.0 and same["delta_e_p95"] == 0.0 and len(same["delta_e"]) == 3
    # a pure green cast on flat grey frames: every block moves by the same, clearly visible amount
    grey = np.full((2, 16, 16, 3), 128, np.uint8)
    green = grey.copy()
    green[..., 1] = 170
    st = m.colour_stats(grey, green)
    assert st["delta_e_mean"] == pytest.approx(st["delta_e_p95"]) and st["delta_e_mean"] > 10
    assert m.delta_e_blocks(grey, green).shape == (2, 2, 2)
    # per-pixel noise that averages out inside 8x8 blocks costs little block colour error
    noisy = np.clip(grey.astype(int) + rng.choice([-20, 20], grey.shape), 0, 255).astype(np.uint8)
    assert m.colour_stats(grey, noisy)["delta_e_mean"] < 0.5 * m.delta_e_map(grey, noisy).mean()


def _lab_clip(lab: np.ndarray) -> np.ndarray:
    from skimage.color import lab2rgb

    return np.rint(np.clip(lab2rgb(lab), 0, 1) * 255).astype(np.uint8)


def test_chroma_ratio_and_hue_shift_name_greying_and_turning():
    # a smooth field of colourful blocks (L 60, chroma 30-45, every hue), built in CIELAB so the truth is known
    rng = np.random.default_rng(4)
    hue = rng.uniform(0, 2 * np.pi, (2, 4, 5))
    chroma = rng.uniform(30, 45, (2, 4, 5))

    def clip(rot_deg: float = 0.0, scale: float = 1.0) -> np.ndarray:
        h = hue + np.radians(rot_deg)
        lab = np.stack([np.full_like(h, 60.0), scale * chroma * np.cos(h), scale * chroma * np.sin(h)], -1)
        return _lab_clip(lab.repeat(8, axis=1).repeat(8, axis=2))  # (2, 32, 40, 3): one colour per 8x8 block

    ref = clip()
    same = m.colour_stats(ref, ref)
    assert same["chroma_ratio"] == pytest.approx(1.0) and same["hue_shift_deg"] == pytest.approx(0.0, abs=1e-9)
    turned = m.colour_stats(ref, clip(rot_deg=25.0))
    assert turned["hue_shift_deg"] == pytest.approx(25.0, abs=1.5) and turned["chroma_ratio"] == pytest.approx(1, abs=0.05)
    assert m.colour_stats(ref, clip(rot_deg=-40.0))["hue_shift_deg"] == pytest.approx(-40.0, abs=1.5)
    greyed = m.colour_stats(ref, clip(scale=0.25))
    assert greyed["chroma_ratio"] == pytest.approx(0.25, abs=0.03) and abs(greyed["hue_shift_deg"]) < 2
    # the hue of a fully greyed block is undefined: it is weighted out, not counted as a random turn
    grey_out = np.repeat(ref.mean(axis=-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    st = m.colour_stats(ref, grey_out)
    assert st["chroma_ratio"] < 0.05 and st["delta_e_mean"] > 10
    # a grey input has no colour to keep or turn
    grey = np.full((1, 16, 16, 3), 128, np.uint8)
    assert m.colour_stats(grey, grey)["chroma_ratio"] is None and m.colour_stats(grey, grey)["hue_shift_deg"] is None
    # ClipMetrics carries both
    d = m.clip_metrics(ref, clip(rot_deg=25.0), with_lpips=False).to_dict()
    assert d["hue_shift_deg"] == pytest.approx(turned["hue_shift_deg"]) and "chroma_ratio" in m.CONVENTIONS


def test_hue_classes_find_foliage_and_measure_its_turn():
    # green foliage-like blocks (h 130, C 40) and blue sky-like blocks (h 250, C 30, light), nothing skin-like
    h = np.where(np.arange(20).reshape(4, 5) < 10, 130.0, 250.0)[None].repeat(2, 0)
    c = np.where(h == 130.0, 40.0, 30.0)
    L = np.where(h == 130.0, 50.0, 75.0)

    def lab(turn_foliage: float) -> np.ndarray:
        hh = np.radians(h + np.where(h == 130.0, turn_foliage, 0.0))
        return np.stack([L, c * np.cos(hh), c * np.sin(hh)], -1)

    ref, rec = lab(0.0), lab(-30.0)  # foliage turned towards yellow, sky kept
    k = m.hue_classes(ref, rec)
    assert k["foliage"]["blocks"] == 20 and k["sky"]["blocks"] == 20 and k["skin"]["blocks"] == 0
    assert k["foliage"]["hue_shift_deg"] == pytest.approx(-30.0) and k["sky"]["hue_shift_deg"] == pytest.approx(0.0)
    assert k["skin"]["hue_shift_deg"] is None and k["skin"]["chroma_ratio"] is None


def test_delta_e_map_shape_and_clip_metrics_fields():
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 256, (2, 12, 20, 3), dtype=np.uint8)
    rec = rng.integers(0, 256, (2, 12, 20, 3), dtype=np.uint8)
    emap = m.delta_e_map(ref, rec)
    assert emap.shape == (2, 12, 20) and emap.dtype == np.float32 and emap.min() >= 0
    d = m.clip_metrics(ref, rec, with_lpips=False).to_dict()
    assert d["delta_e_mean"] == pytest.approx(m.colour_stats(ref, rec)["delta_e_mean"])
    with pytest.raises(ValueError, match="at least 8x8"):
        m.colour_stats(ref[:, :4, :4], rec[:, :4, :4])


def test_psnr_from_mse_is_the_one_formula():
    mse = np.array([0.0, 1.0, 100.0])
    np.testing.assert_allclose(m.psnr_from_mse(mse), [m.PSNR_CAP, 10 * np.log10(255**2), 10 * np.log10(255**2 / 100)])
    # float [-1, 1] values (peak-to-peak 2) give the uint8 number of the same picture
    np.testing.assert_allclose(m.psnr_from_mse(mse[1:] / 127.5**2, data_range=2.0), m.psnr_from_mse(mse[1:]))
    assert m.psnr_from_mse(torch.tensor([4.0, 0.0])).dtype == np.float64


def test_no_other_psnr_formula_in_the_package():
    """Every PSNR ends in metrics.pixel.psnr_from_mse: no module writes log10(peak ** 2 / mse) itself."""
    import re
    from pathlib import Path

    pkg = Path(m.__file__).resolve().parents[1]
    formula = re.compile(r"log10\(\s*[\d.]+\s*(\*\*\s*2)?\s*/")
    own = pkg / "metrics" / "pixel.py"
    hits = [str(p.relative_to(pkg)) for p in sorted(pkg.rglob("*.py")) if p != own and formula.search(p.read_text())]
    assert not hits, f"PSNR computed outside vaelab.metrics: {hits}"
    old = "mse = ((a - b) ** 2).mean()\nreturn 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))"
    assert formula.search(old) and formula.search("10 * torch.log10(4.0 / mse)")  # the check sees the old copies


@pytest.mark.parametrize("ref,rec", PAIRS, ids=["random", "astronaut"])
def test_float32_ssim_matches_the_float64_formula(ref, rec):
    """The float32, centred SSIM the app computes equals the plain float64 reading of the formula (and so
    skimage, above) to 1e-6; a prepared reference gives the same numbers."""
    slow = m.pixel.ssim_per_frame_f64(ref, rec)
    np.testing.assert_allclose(m.ssim_per_frame(ref, rec), slow, atol=1e-6, rtol=0)
    prepared = m.SSIMReference(ref)
    np.testing.assert_allclose(m.ssim_per_frame(ref, rec, prepared), slow, atol=1e-6, rtol=0)
    # a reconstruction that differs must score differently through the prepared reference too
    assert prepared.score(ref)[0] == pytest.approx(1.0, abs=1e-6) and prepared.score(rec)[0] < 0.999


def test_clip_reference_gives_the_same_clip_metrics():
    ref, rec = _astronaut_pair(frames=3)
    plain = m.clip_metrics(ref, rec, with_lpips=False)
    shared = m.ClipReference(ref)
    for other in (rec, np.flip(rec, axis=2).copy()):
        a, b = m.clip_metrics(ref, other, with_lpips=False), m.clip_metrics(ref, other, with_lpips=False, reference=shared)
        assert a == b
    assert m.clip_metrics(ref, rec, with_lpips=False, reference=shared) == plain
    with pytest.raises(ValueError, match="another clip"):
        m.clip_metrics(ref.copy(), rec, with_lpips=False, reference=shared)
