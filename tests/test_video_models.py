"""Causal video VAEs (W.A.L.T tokenizer, IV-VAE): shapes, causality, exact streaming, tiling, training contract.

Models are built directly by class at narrow widths (the registry adds them once trained). Exactness
checks (streaming == one-shot, image == first frame) run in float64: the algorithms are exact, and
float64 keeps float32 summation-order noise (amplified by per-position RMSNorm over the few channels
of these tiny test widths) from masking a real bug; one float32 check guards the everyday path.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vaelab.models._causal import CausalConv3d, cache_numel, is_streaming, streaming
from vaelab.models.base import pad_to_rule
from vaelab.models.iv_vae import IVVAE, GroupCausalConv3d
from vaelab.models.latent import Latent
from vaelab.models.walt import WALTTokenizer
from vaelab.streaming import (
    decode_streaming,
    encode_streaming,
    frame_chunks,
    iter_encode_streaming,
    seam_score,
    tile_starts,
    tiled,
)

WALT_TINY = {"block_out_channels": [8, 16, 16, 16]}
IV_TINY = {"dim": 4}
BUILDERS = {"walt": lambda: WALTTokenizer(WALT_TINY), "iv-vae": lambda: IVVAE(IV_TINY)}
NAMES = list(BUILDERS)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest and deterministic


@pytest.fixture(scope="module")
def built():
    torch.manual_seed(0)
    return {n: b().eval() for n, b in BUILDERS.items()}


@pytest.fixture(scope="module")
def built64(built):
    torch.manual_seed(0)
    return {n: b().eval().double() for n, b in BUILDERS.items()}


def _clip(t: int, h: int, w: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, t, h, w, generator=g) * 2 - 1).to(dtype)


def _smooth_clip(t: int = 5, size: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    frame = 0.8 * torch.stack([torch.sin(3 * xx + yy), torch.cos(2 * yy - xx), 0.5 * xx * yy])
    return torch.stack([frame.roll(i, -1) for i in range(t)], 1)[None]


# --- cards and shapes -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_card(built, name):
    c = built[name].card
    assert c.name == name and c.kind == "video" and c.causal and c.frame_rule == "1+4k"
    assert (c.spatial_factor, c.temporal_factor, c.latent_channels) == (8, 4, 8)
    assert c.paper.year >= 2024 and c.teaching and c.idea and c.architecture


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t,h,w", [(1, 17, 23), (2, 9, 15), (5, 31, 25), (16, 8, 9), (17, 15, 16), (33, 7, 9)])
def test_reconstruct_shape_and_latent_shape_formula(built, name, t, h, w):
    m = built[name]
    x = _clip(t, h, w)
    y = m.reconstruct(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 1
    x_pad = pad_to_rule(x, 8, "1+4k")[0]
    assert x_pad.shape[2] == 1 + 4 * math.ceil((t - 1) / 4)
    with torch.no_grad():
        z = m.encode(x_pad)
        assert tuple(z.main.shape[1:]) == m.card.latent_shape(t, h, w) == (8, 1 + math.ceil((t - 1) / 4),
                                                                       math.ceil(h / 8), math.ceil(w / 8))
        assert m.decode(z).shape == x_pad.shape


@pytest.mark.parametrize("name", NAMES)
def test_encode_refuses_frame_counts_off_the_rule(built, name):
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        built[name].encode(_clip(16, 8, 8))


# --- causality ------------------------------------------------------------------------------------

def _first_changed(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-9) -> int:
    """Index of the first frame (dim 2) where a and b differ by more than tol (len if none)."""
    d = (a - b).abs().amax(dim=(0, 1, 3, 4))
    idx = (d > tol).nonzero()
    return int(idx[0]) if len(idx) else a.shape[2]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("t", [1, 3, 4, 5, 8, 13])
def test_encoder_is_causal_between_groups(built64, name, t):
    """Perturbing frame t (group ceil(t/4)) leaves latents 0 .. ceil(t/4) - 1 unchanged and changes latent ceil(t/4).

    For IV-VAE this is exactly what group causality promises: latent j depends on frames <= 4j, the
    whole of its own group included. (Inside a group IV-VAE is two-sided; see the GCConv test.)
    """
    m = built64[name]
    x = _clip(17, 16, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :, t] += 0.5
    with torch.no_grad():
        z, z2 = m.encode(x), m.encode(x2)
    assert _first_changed(z.main, z2.main) == math.ceil(t / 4)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("j", [1, 2, 4])
def test_decoder_is_causal_between_groups(built64, name, j):
    """Perturbing latent j changes decoded frames from 4j - 3 (its group's first frame) on, never earlier."""
    m = built64[name]
    with torch.no_grad():
        z = m.encode(_clip(17, 16, 16, dtype=torch.float64))
        z2 = z.main.clone()
        z2[:, :, j] += 0.5
        assert _first_changed(m.decode(z), m.decode(z.with_main(z2))) == 4 * j - 3


def test_causal_conv_vs_group_causal_conv():
    """CausalConv3d: output t never reads inputs > t. GCConv: two-sided inside a group of 4, causal between groups."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 9, 4, 4, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :, 4] += 1.0  # frame 4 = last frame of group 1 (frames 1..4); group 2 = frames 5..8
    cc = CausalConv3d(2, 2, 3).double()
    gc = GroupCausalConv3d(2, 2, 3, t_c=4).double()
    with torch.no_grad():
        assert _first_changed(cc(x), cc(x2)) == 4
        d = (gc(x) - gc(x2)).abs().amax(dim=(0, 1, 3, 4))
    assert d[:3].max() == 0  # earlier frames of other groups / beyond the kernel: unchanged
    assert d[3] > 0 and d[4] > 0  # frame 3 sees frame 4: two-sided inside the group
    assert d[5] > 0 and d[6:].max() == 0  # the next group sees group 1 only through its one-frame front pad


@pytest.mark.parametrize("name", NAMES)
def test_image_is_the_first_frame_of_a_video(built64, name):
    m = built64[name]
    x = _clip(9, 16, 24, dtype=torch.float64)
    with torch.no_grad():
        z = m.encode(x)
        assert torch.allclose(m.encode(x[:, :, :1]).main, z.main[:, :, :1], atol=1e-10, rtol=0)
        assert torch.allclose(m.decode(z.time_slice(0, 1)), m.decode(z)[:, :, :1], atol=1e-10, rtol=0)


def test_walt_image_equals_first_frame_in_float32(built):
    m = built["walt"]
    x = _clip(17, 32, 32)
    with torch.no_grad():
        assert (m.encode(x[:, :, :1]).main - m.encode(x).main[:, :, :1]).abs().max() <= 1e-5


# --- streaming ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_streaming_equals_one_shot(built64, name, chunk):
    m = built64[name]
    x = _clip(17, 16, 24, dtype=torch.float64)
    with torch.no_grad():
        z = m.encode(x)
        y = m.decode(z)
    zs = encode_streaming(m, x, chunk)
    ys = decode_streaming(m, z, chunk)
    assert zs.main.shape == z.main.shape and ys.shape == y.shape
    assert (zs.main - z.main).abs().max() <= 1e-5 and (ys - y).abs().max() <= 1e-5
    assert not is_streaming(m), "caches must be released after streaming"


@pytest.mark.parametrize("name", NAMES)
def test_streaming_float32_close(built, name):
    m = built[name]
    x = _clip(13, 16, 16)
    with torch.no_grad():
        z = m.encode(x)
        y = m.decode(z)
    assert (encode_streaming(m, x, 1).main - z.main).abs().max() <= 1e-4
    assert (decode_streaming(m, z, 2) - y).abs().max() <= 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_streaming_memory_is_constant_in_clip_length(built, name):
    m = built[name]
    sizes = {}
    for t in (9, 17):
        x = _clip(t, 16, 16)
        per_chunk = []
        for _ in iter_encode_streaming(m, x, 1):
            per_chunk.append(cache_numel(m))  # generator is paused inside `with streaming(m)`
        sizes[t] = per_chunk
    assert len(set(sizes[9] + sizes[17])) == 1 and sizes[9][0] > 0
    assert cache_numel(m) == 0


@pytest.mark.parametrize("name", NAMES)
def test_streaming_caches_do_not_pin_the_chunk(built, name):
    """Each cache owns just its few frames: a view of the chunk's activation would keep the whole chunk alive
    (the 720p peak went 6.7 -> 4.6 GiB when caches became copies)."""
    from vaelab.models._causal import Streamable

    m = built[name]
    for _ in iter_encode_streaming(m, _clip(9, 16, 16), 2):
        for mod in m.modules():
            c = getattr(mod, "_cache", None) if isinstance(mod, Streamable) else None
            if isinstance(c, torch.Tensor):
                assert c.untyped_storage().nbytes() == c.numel() * c.element_size(), type(mod).__name__


def test_streaming_context_rules(built):
    m = built["walt"]
    with streaming(m):
        assert is_streaming(m)
        with pytest.raises(RuntimeError):
            with streaming(m):
                pass
    assert not is_streaming(m)
    assert frame_chunks(17, 2) == [(0, 1), (1, 9), (9, 17)]
    assert frame_chunks(13, 2) == [(0, 1), (1, 9), (9, 13)]
    with pytest.raises(ValueError):
        frame_chunks(16, 1)


# --- tiling ---------------------------------------------------------------------------------------

def test_tile_starts_cover_and_end_at_edge():
    assert tile_starts(32, 16, 0) == [0, 16]
    assert tile_starts(32, 16, 8) == [0, 8, 16]
    assert tile_starts(40, 16, 4) == [0, 12, 24]
    assert tile_starts(8, 16, 4) == [0]


def test_tiled_blending_is_exact_for_local_free_maps():
    """Pointwise / block maps with any scale: blending weights sum to one, so tiling changes nothing."""
    x = _clip(3, 24, 40)
    up = lambda v: F.interpolate(v[:, :, 0], scale_factor=8, mode="nearest")[:, :, None] * 0.5  # noqa: E731
    down = lambda v: F.avg_pool3d(v, (1, 8, 8))  # noqa: E731
    for overlap in (0, 8):
        assert torch.allclose(tiled(down, x, 16, overlap), down(x), atol=1e-6)
    z = _clip(1, 5, 7)
    for overlap in (0, 1, 2):
        assert torch.allclose(tiled(up, z, 3, overlap), up(z), atol=1e-6)


def test_tiled_with_overlap_is_close_for_a_local_conv():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    x = _smooth_clip(1, 32)[:, :, 0]
    with torch.no_grad():
        ref = conv(x)
        err0 = (tiled(conv, x, 16, 0) - ref).abs().max()
        err8 = (tiled(conv, x, 16, 8) - ref).abs().max()
    assert err8 < 0.15 * err0  # a tile edge pixel keeps weight 0.5/8 per axis


@pytest.mark.parametrize("name", NAMES)
def test_tiled_model_overlap_reduces_seams(built, name):
    """Random-init model, smooth clip: overlap brings the tiled decode/encode closer to untiled and removes seams.

    At 32 px the tiles (16 px) are smaller than the random network's receptive field, so "close"
    is only relative here; the seam score is the robust signal.
    """
    m = built[name]
    x = _smooth_clip(5, 32)
    with torch.no_grad():
        z = m.encode(x)
        y = m.decode(z)
        dec, enc = (lambda t: m.decode(Latent(t))), (lambda t: m.encode(t).main)  # tiles are tensors
        y0, y1 = tiled(dec, z.main, 2, 0), tiled(dec, z.main, 2, 1)
        z0, z1 = tiled(enc, x, 16, 0), tiled(enc, x, 16, 8)
        z = z.main
    assert y0.shape == y1.shape == y.shape and z0.shape == z1.shape == z.shape
    assert (y1 - y).abs().mean() < (y0 - y).abs().mean()
    assert (z1 - z).abs().mean() < (z0 - z).abs().mean()
    s0, s1 = seam_score(y0, 16, 0), seam_score(y1, 16, 8)
    assert s0 > 1.15 and s0 > s1 + 0.1, (s0, s1)
    assert seam_score(y, 16, 0) < s0


# --- training contract and branches ---------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_forward_losses_finite_and_gradients_reach_encoder(name):
    torch.manual_seed(0)
    m = BUILDERS[name]().train()
    x = _clip(5, 16, 16)
    recon, losses = m(x)
    assert recon.shape == x.shape and set(losses) == {"kl"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    (F.l1_loss(recon, x) + sum(losses.values())).backward()
    enc_grads = [p.grad for p in m.encoder.parameters()]
    assert all(g is not None for g in enc_grads) and sum(g.abs().sum() for g in enc_grads) > 0
    recon16, _ = m(_clip(16, 16, 16))  # off-rule clips are padded and cropped in training too
    assert recon16.shape[2] == 16


def test_iv_vae_zeroed_branches_and_frame_selection(built):
    m = built["iv-vae"]
    with torch.no_grad():
        z = m.encode(_clip(9, 16, 16))
        full = m.decode(z)
        for branch in ("keyframe", "temporal"):
            assert (m.decode(z, zero_branch=branch) - full).abs().mean() > 1e-3
        kf, tp = m.decode_heads(z)
    key = [0, 1, 5]  # frame 0 and the first frame of each 4-frame group come from the keyframe head
    rest = [i for i in range(9) if i not in key]
    assert torch.equal(full[:, :, key], kf[:, :, key]) and torch.equal(full[:, :, rest], tp[:, :, rest])
    with pytest.raises(ValueError):
        m.decode(z, zero_branch="both")


def test_iv_vae_streaming_decode_with_a_zeroed_branch(built):
    m = built["iv-vae"]
    with torch.no_grad():
        z = m.encode(_clip(5, 8, 8))
        assert torch.allclose(decode_streaming(m, z, 1, zero_branch="temporal"),
                              m.decode(z, zero_branch="temporal"), atol=1e-4)
