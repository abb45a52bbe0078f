"""Haar transforms are exact and match PyWavelets; band errors split the MSE exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vaelab.analysis import wavelet_view as wv
from vaelab.models.wavelets import BANDS_3D, dwt2, dwt2_multilevel, dwt3, idwt2, idwt2_multilevel, idwt3, pad_even


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.randn(2, 3, 6, 16, 24, dtype=torch.float64)


def test_2d_inverse_is_exact(x):
    assert (idwt2(dwt2(x)) - x).abs().max() < 1e-12
    assert (idwt2_multilevel(dwt2_multilevel(x, 3)) - x).abs().max() < 1e-12


def test_3d_inverse_is_exact_and_has_8_bands(x):
    bands = dwt3(x)
    assert tuple(bands) == BANDS_3D
    assert all(b.shape == (2, 3, 3, 8, 12) for b in bands.values())
    assert (idwt3(bands) - x).abs().max() < 1e-12


def test_float32_round_trip_to_float_precision():
    x = torch.rand(1, 3, 4, 32, 32)
    assert (idwt3(dwt3(x)) - x).abs().max() < 1e-6


def test_orthonormal_energy(x):
    assert torch.allclose(sum(b.pow(2).sum() for b in dwt3(x).values()), x.pow(2).sum())


def test_one_level_matches_pywavelets(x):
    pywt = pytest.importorskip("pywt")
    img = x[0, 0, 0].numpy()
    ca, (ch, cv, cd) = pywt.dwt2(img, "haar")
    ours = dwt2(x[0, 0, 0])
    for name, ref in (("LL", ca), ("HL", ch), ("LH", cv), ("HH", cd)):
        np.testing.assert_allclose(ours[name].numpy(), ref, atol=1e-12, err_msg=name)
    # 3D: PyWavelets' dwtn names axes in order too ('a' = low, 'd' = high)
    vol = x[0, 0, :4, :8, :8].numpy()
    ref3 = pywt.dwtn(vol, "haar")
    ours3 = dwt3(x[0, 0, :4, :8, :8])
    for name in BANDS_3D:
        key = name.replace("L", "a").replace("H", "d")
        np.testing.assert_allclose(ours3[name].numpy(), ref3[key], atol=1e-12, err_msg=name)


def test_pad_even_replicates():
    y = pad_even(torch.arange(15.0).reshape(1, 3, 5), (-2, -1))
    assert y.shape == (1, 4, 6) and y[0, 3, 5] == 14.0


@pytest.mark.parametrize("mode", ["2d", "3d"])
def test_band_errors_sum_to_mse(mode):
    rng = np.random.default_rng(0)
    a = (rng.random((4, 32, 48, 3)) * 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
    rep = wv.band_report(a, {"m": b, "same": a}, mode=mode)
    mse = ((a / 255.0 - b / 255.0) ** 2).mean()
    assert abs(sum(rep.error["m"]) - mse) < 1e-12
    assert sum(rep.error["same"]) == 0
    assert abs(sum(rep.error_share("m")) - 1) < 1e-12


def test_blur_loses_fine_detail_energy():
    rng = np.random.default_rng(1)
    a = (rng.random((2, 32, 32, 3)) * 255).astype(np.uint8)
    blurred = ((a[:, 0::2, 0::2].repeat(2, 1).repeat(2, 2)).astype(np.uint8))
    rep = wv.band_report(a, {"blur": blurred}, mode="2d")
    i = rep.names.index("L1 HH")
    assert rep.recon_energy["blur"][i] < 1e-12 < rep.input_energy[i]


def test_mosaics_have_frame_layout():
    frame = np.full((40, 56, 3), 128, np.uint8)
    m = wv.mallat_mosaic(frame)
    assert m.shape == (40, 56, 3) and m.dtype == np.uint8
    assert abs(int(m[0, 0, 0]) - 128) <= 1  # LL shows the image itself
    m3, names = wv.subband_mosaic_3d(np.repeat(frame[None], 4, 0))
    assert m3.shape == (40, 112, 3) and names[0] == "LLL"


def test_hvdm_view_planes_and_ablations():
    """HVDM's planes come out as RGB pictures of the right geometry; the trained fused model beats a branch off."""
    from conftest import moving_gradient, require_lab_weights

    from vaelab import models
    from vaelab.analysis.hvdm_view import hvdm_view, pca_rgb

    clip = moving_gradient(6, 40, 56)
    view = hvdm_view(models.build("hvdm").eval(), clip)
    hw, tw, th = view.planes.values()
    assert hw.shape == (5, 7, 3) and tw.shape == (6, 7, 3) and th.shape == (6, 5, 3)  # 40x56 padded to 40x56, /8
    assert all(p.dtype == np.uint8 for p in view.planes.values())
    assert set(view.ablation_psnr) == {"fused", "triplane", "wavelet"} and view.frames == 6
    assert pca_rgb(torch.zeros(4, 3, 3)).shape == (3, 3, 3)  # a constant plane does not divide by zero

    require_lab_weights("hvdm")
    from vaelab import pipeline

    real = pipeline.load_input(None, "bikes", frames=8, size=64).frames
    trained = hvdm_view(models.load("hvdm"), real).ablation_psnr
    assert trained["fused"] > trained["wavelet"] + 1.0
    assert trained["fused"] > trained["triplane"]
