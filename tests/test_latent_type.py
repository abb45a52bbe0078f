"""The one latent type (models.latent.Latent) and the shared layout moves (models.layout): contracts and bit-identity."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from vaelab.models.latent import Latent
from vaelab.models.layout import (
    depth_to_time,
    fold_time,
    from_time_sequences,
    per_frame,
    time_sequences,
    to_channels_first,
    to_channels_last,
    unfold_time,
    upsample_nearest_2x,
)


def _twin(t: int = 6, seed: int = 0) -> Latent:
    g = torch.Generator().manual_seed(seed)
    return Latent(torch.randn(2, 8, 4, 3, 5, generator=g),
                  {"dynamics_h": torch.randn(2, 2, t, 3, generator=g), "dynamics_w": torch.randn(2, 2, t, 5, generator=g)},
                  main_name="structure", token_grid=(6, 10))


def test_parts_names_and_lookup():
    z = _twin()
    assert z.names == ("structure", "dynamics_h", "dynamics_w") and z.has_parts
    assert z["structure"] is z.main and z["dynamics_w"] is z.extra["dynamics_w"]
    assert list(z.parts) == list(z.names) and [k for k, _ in z.items()] == list(z.names)
    assert z.numel() == 8 * 4 * 3 * 5 + 2 * 6 * 3 + 2 * 6 * 5
    assert torch.equal(z.flatten(), torch.cat([z.main.flatten(), z["dynamics_h"].flatten(), z["dynamics_w"].flatten()]))
    with pytest.raises(KeyError, match="dynamics_h, dynamics_w"):
        z["dynamics"]
    plain = Latent(torch.zeros(1, 4, 2, 3, 3))
    assert plain.names == ("z",) and not plain.has_parts and plain.numel() == 4 * 2 * 3 * 3


def test_frozen_and_validated():
    z = _twin()
    with pytest.raises(dataclasses.FrozenInstanceError):
        z.main = torch.zeros(1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        z.extra["dynamics_h"] = torch.zeros(1)  # type: ignore[index]
    with pytest.raises(TypeError, match="must be a tensor"):
        Latent([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="given twice"):
        Latent(torch.zeros(1), {"z": torch.zeros(1)})


def test_new_latents_keep_metadata_and_only_change_what_they_say():
    z, other = _twin(seed=0), _twin(seed=1)
    moved = z.to(torch.float64)
    assert moved.dtype == torch.float64 and all(v.dtype == torch.float64 for v in moved.parts.values())
    assert moved.token_grid == z.token_grid == (6, 10) and moved.names == z.names
    swapped = z.with_parts_from(other, ("dynamics_h", "dynamics_w"))
    assert swapped.main is z.main and swapped["dynamics_h"] is other["dynamics_h"]
    assert swapped["dynamics_w"] is other["dynamics_w"] and swapped.token_grid == z.token_grid
    assert z.replace(structure=other.main).main is other.main
    with pytest.raises(KeyError):
        z.replace(motion=other.main)
    assert z.with_main(other.main)["dynamics_h"] is z["dynamics_h"]


def test_cat_and_time_slice_are_inverse_and_match_torch_cat():
    a, b = _twin(6, seed=2), _twin(6, seed=3)
    c = Latent.cat([a, b])
    for k in a.names:
        assert torch.equal(c[k], torch.cat([a[k], b[k]], 2))
    back = c.time_slice(0, a.main.shape[2])
    assert torch.equal(back.main, a.main)
    assert Latent.cat([a, b], dim=0).main.shape[0] == 4
    with pytest.raises(ValueError, match="same parts"):
        Latent.cat([a, Latent(a.main)])


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape and a.stride() == b.stride() and torch.equal(a, b)


def test_layout_moves_equal_the_hand_written_ones_bit_for_bit_and_stride_for_stride():
    """What every family used to write by hand; the shared helpers must give the same values *and* memory layout
    (the layout decides the summation order of later reductions, so the digests depend on it)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 3, 4, 5, generator=g)
    b, c, t, h, w = x.shape
    _same(fold_time(x), x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
    n = fold_time(x)
    _same(unfold_time(n, b, t), n.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4))
    _same(depth_to_time(x), x.view(b, 2, 3, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, 3, 2 * t, h, w))
    _same(upsample_nearest_2x(x), x[:, :, :, :, None, :, None].expand(b, c, t, h, 2, w, 2).reshape(b, c, t, 2 * h, 2 * w))
    tok = torch.randn(2, 3, 4, 5, 6, generator=g)
    B, T, H, W, D = tok.shape
    _same(time_sequences(tok), tok.permute(0, 2, 3, 1, 4).reshape(B * H * W, T, D))
    s = time_sequences(tok)
    _same(from_time_sequences(s, B, H, W), s.reshape(B, H, W, T, D).permute(0, 3, 1, 2, 4))
    _same(to_channels_first(tok), tok.permute(0, 4, 1, 2, 3))
    _same(to_channels_last(x), x.permute(0, 2, 3, 4, 1))
    conv = torch.nn.Conv2d(6, 4, 3, padding=1)
    with torch.no_grad():
        y = conv(x.transpose(1, 2).reshape(b * t, c, h, w))
        _same(per_frame(conv, x), y.reshape(b, t, *y.shape[1:]).transpose(1, 2))


def test_engine_tiles_one_part_latents_and_says_when_a_latent_has_parts():
    import numpy as np

    from vaelab import engine, models
    from vaelab.models.vidtwin import VidTwin

    clip = np.random.default_rng(0).integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    torch.manual_seed(0)
    vt = VidTwin({"width": 32, "heads": 2, "encoder_depth": 1, "decoder_depth": 1, "qformer_width": 16,
                  "qformer_heads": 2, "structure_channels": 8}).eval()
    res = engine.run_model(vt, clip, tile=16, overlap=0)
    assert res.recon.shape == clip.shape and any("tiling off" in n for n in res.notes) and "tile" not in res.extras
    sd = models.build("sd-vae").eval()
    res = engine.run_model(sd, clip, tile=16, overlap=8)
    assert res.recon.shape == clip.shape and res.extras["tile"] == 16
