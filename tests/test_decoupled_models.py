"""Decoupled-latent video VAEs (VidTwin, HVDM): shapes, latent structure, swaps, ablations, training contract.

Models are built directly by class at narrow widths (the registry adds them once trained); only the
parameter-count test builds the lab configs. Clips are at most 16 frames of 32 x 32 (or 48 pixels on one side).
"""
from __future__ import annotations

import math

import pytest
import torch

from vaelab.models.base import pad_to_rule
from vaelab.models.hvdm import HVDM, MODES, HVDMConfig
from vaelab.models.latent import Latent
from vaelab.models.vidtwin import VidTwin, VidTwinConfig
from vaelab.models.wavelets import BANDS_3D, idwt3

VIDTWIN_TINY = {"width": 32, "heads": 2, "encoder_depth": 1, "decoder_depth": 1, "qformer_width": 16,
                "qformer_heads": 2, "structure_channels": 8}
HVDM_TINY = {"width": 32, "heads": 2, "encoder_depth": 1, "decoder_depth": 1, "wavelet_channels": [8, 16, 32]}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest and deterministic


@pytest.fixture(scope="module")
def vidtwin():
    torch.manual_seed(0)
    return VidTwin(VIDTWIN_TINY).eval()


@pytest.fixture(scope="module")
def hvdm():
    torch.manual_seed(0)
    return HVDM(HVDM_TINY).eval()


def _clip(t: int, h: int, w: int, seed: int = 0, b: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, h, w, generator=g) * 2 - 1


def _differ(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> bool:
    return a.shape == b.shape and (a - b).abs().max().item() > tol


SIZES = [(1, 17, 23), (5, 31, 25), (8, 32, 32), (3, 9, 40), (16, 16, 16)]


# --- parameter counts (lab configs, models.md section 12) ---------------------------------------------

def test_lab_param_counts_in_range():
    vt, hv = VidTwin(), HVDM()
    n_vt, n_hv = vt.num_params(), hv.num_params()
    print(f"\nVidTwin lab params: {n_vt:,}   HVDM lab params: {n_hv:,}")
    assert 1.5e6 <= n_vt <= 2.7e6, n_vt  # models.md: ~1.5-2.7 M
    assert 2.0e6 <= n_hv <= 3.0e6, n_hv  # models.md: ~0.6 M at width 64; the lab config is width 128 (hvdm.py)
    assert VidTwinConfig().num_queries < VidTwinConfig().chunk_frames == 16
    # lab latents for a 16 x 64 x 64 clip: z_S 8x4x4x4 + z_D 2 x (2 x 16 x 4), structure 2x dynamics as in the
    # released model (3.5x); HVDM 4 x 16 x 8 x 8
    assert vt.latent_shapes(16, 64, 64) == {"structure": (8, 4, 4, 4), "dynamics_h": (2, 16, 4),
                                            "dynamics_w": (2, 16, 4)}
    assert vt.card.latent_numel(16, 64, 64) == 768
    assert hv.card.latent_shape(16, 64, 64) == (HVDMConfig().latent_channels, 16, 8, 8)


# --- VidTwin ------------------------------------------------------------------------------------------

def test_vidtwin_card(vidtwin):
    c = vidtwin.card
    assert c.kind == "video" and c.frame_rule == "any" and not c.causal
    assert (c.spatial_factor, c.temporal_factor, c.latent_channels) == (16, 4, 8)
    assert c.paper.year == 2025 and c.teaching and c.idea and c.architecture
    assert c.latent_shape(16, 64, 64) == (8, 4, 4, 4)  # the structure latent
    assert c.compression(16, 64, 64) == pytest.approx(3 * 16 * 64 * 64 / 768)
    assert hasattr(vidtwin.decoder, "last_layer")


@pytest.mark.parametrize("t,h,w", SIZES)
def test_vidtwin_reconstruct_shapes_and_latent_shapes(vidtwin, t, h, w):
    x = _clip(t, h, w)
    y = vidtwin.reconstruct(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 1
    x_pad = pad_to_rule(x, 16, "any")[0]
    assert x_pad.shape[2] == t  # frame rule "any": frames never padded
    with torch.no_grad():
        z = vidtwin.encode(x_pad)
    assert isinstance(z, Latent) and z.names == vidtwin.latent_parts and z.main_name == "structure"
    hs, ws = math.ceil(h / 16), math.ceil(w / 16)
    assert {k: tuple(v.shape[1:]) for k, v in z.items()} == vidtwin.latent_shapes(t, h, w) == {
        "structure": (8, 4, hs, ws), "dynamics_h": (2, t, hs), "dynamics_w": (2, t, ws)}
    assert tuple(z.main.shape[1:]) == vidtwin.card.latent_shape(t, h, w)  # main = the structure
    assert z.token_grid == (2 * hs, 2 * ws)
    assert z["structure"] is z.main and z["dynamics_h"].shape[2] == z["dynamics_w"].shape[2] == t


def test_vidtwin_odd_token_grid_direct_encode(vidtwin):
    """A 24 x 40 clip (patch multiple, not 16): 3 x 5 tokens -> latent grid 2 x 3 -> decoded back to 3 x 5."""
    x = _clip(4, 24, 40)
    with torch.no_grad():
        z = vidtwin.encode(x)
        y = vidtwin.decode(z)
    assert z.token_grid == (3, 5) and z.main.shape[-2:] == (2, 3)
    assert y.shape == x.shape
    with pytest.raises(ValueError, match="multiple"):
        vidtwin.encode(_clip(4, 20, 20))


def test_vidtwin_swap_structure_and_dynamics(vidtwin):
    torch.manual_seed(0)
    xa, xb = _clip(16, 32, 32, seed=1), _clip(16, 32, 32, seed=2)
    with torch.no_grad():
        za, zb = vidtwin.encode(xa), vidtwin.encode(xb)
        ya, yb = vidtwin.decode(za), vidtwin.decode(zb)
        y_swap = vidtwin.decode(za.with_parts_from(zb, ("dynamics_h", "dynamics_w")))
        y_parts = vidtwin.decode_parts(structure=za["structure"], dynamics=(zb["dynamics_h"], zb["dynamics_w"]))
        y_dict = vidtwin.decode(zb.replace(structure=za["structure"]))
    assert y_swap.shape == xa.shape
    assert _differ(y_swap, ya) and _differ(y_swap, yb)
    assert torch.allclose(y_swap, y_parts, atol=1e-6) and torch.allclose(y_swap, y_dict, atol=1e-6)
    y_cross = vidtwin.cross_reenact(xa, xb)
    assert torch.allclose(y_cross, y_swap.clamp(-1, 1), atol=1e-6)


def test_vidtwin_swap_across_frame_counts_and_size_mismatch(vidtwin):
    """Structure has n_q frames whatever T is, so an 8-frame clip's structure drives a 16-frame clip's dynamics."""
    xa, xb = _clip(8, 32, 32, seed=3), _clip(16, 32, 32, seed=4)
    y = vidtwin.cross_reenact(xa, xb)
    assert y.shape == xb.shape and torch.isfinite(y).all()
    with torch.no_grad():
        za, zc = vidtwin.encode(xa), vidtwin.encode(_clip(8, 16, 32, seed=5))
    with pytest.raises(ValueError, match="same"):
        vidtwin.decode_parts(structure=za, dynamics=zc)
    with pytest.raises(ValueError):
        vidtwin.cross_reenact(xa, _clip(8, 48, 32))


def test_vidtwin_structure_only_and_dynamics_only(vidtwin):
    x = _clip(16, 32, 32, seed=6)
    with torch.no_grad():
        z = vidtwin.encode(x)
        full = vidtwin.decode(z)
        s_only = vidtwin.decode_parts(structure=z)
        d_only = vidtwin.decode_parts(dynamics=z)
        d_only_raw = vidtwin.decode_parts(dynamics=(z["dynamics_h"], z["dynamics_w"]))
        s_short = vidtwin.decode_parts(structure=z.main, frames=5)
        bare = vidtwin.decode_parts(structure=z.main)  # raw structure tensor: the nominal 16 frames
    for y in (s_only, d_only):
        assert y.shape == x.shape and torch.isfinite(y).all()
    assert _differ(s_only, d_only) and _differ(s_only, full) and _differ(d_only, full)
    assert torch.allclose(d_only, d_only_raw)
    assert s_short.shape == (1, 3, 5, 32, 32)
    assert torch.allclose(bare, s_only, atol=1e-6)
    with pytest.raises(ValueError):
        vidtwin.decode_parts()


def test_vidtwin_qformer_attention(vidtwin):
    n_q = VIDTWIN_TINY.get("num_queries", VidTwinConfig().num_queries)
    for t, h, w in [(16, 32, 32), (6, 16, 48)]:
        x = _clip(t, h, w, b=2)
        att = vidtwin.qformer_attention(x)
        assert att.shape == (2, n_q, t)
        assert torch.allclose(att.sum(-1), torch.ones(2, n_q), atol=1e-5) and (att >= 0).all()
        per = vidtwin.qformer_attention(x, per_position=True)
        assert per.shape == (2 * (h // 8) * (w // 8), n_q, t)
        assert torch.allclose(per.sum(-1), torch.ones(per.shape[:2]), atol=1e-5)


def test_vidtwin_keyframe_weights_interpolate_between_slots():
    from vaelab.models.vidtwin import keyframe_weights

    w = keyframe_weights(16, 4)
    assert torch.allclose(w.sum(1), torch.ones(16))
    assert w.argmax(1).tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4  # each slot owns its quarter
    assert (w > 0).sum(1).max() == 2  # a frame mixes its two nearest slots only
    assert torch.equal(keyframe_weights(5, 1), torch.ones(5, 1))
    assert torch.allclose(keyframe_weights(7, 3).sum(1), torch.ones(7))


def test_vidtwin_queries_start_with_distinct_temporal_preferences():
    """With the temporal prior each query attends most to its own part of the chunk, from the first step; without
    it (the paper's plain queries) the attention starts near uniform and all queries alike."""
    x = _clip(16, 32, 32, seed=3)
    peaks = {}
    for prior in (True, False):
        torch.manual_seed(0)
        m = VidTwin({**VIDTWIN_TINY, "temporal_prior": prior}).eval()
        with torch.no_grad():
            att = m.qformer_attention(x)[0]  # (n_q, T)
        peaks[prior] = att.argmax(1).tolist()
        if prior:
            assert peaks[prior] == sorted(peaks[prior]) and len(set(peaks[prior])) == att.shape[0]
            assert att.max() > 2.0 / 16
        else:
            assert (att - 1 / 16).abs().max() < 0.03
    q = VidTwin(VIDTWIN_TINY).encoder.qformer
    assert q.time_bias(16, torch.device("cpu")).shape == (q.queries.shape[0], 16)


def test_attention_bias_same_in_both_paths():
    """The additive logit bias means the same in the fused path and the path that returns the weights."""
    from vaelab.models._transformer import Attention

    torch.manual_seed(0)
    a = Attention(32, 4, kv_dim=16).eval()
    q, kv, bias = torch.randn(3, 4, 32), torch.randn(3, 9, 16), torch.randn(4, 9)
    with torch.no_grad():
        fused = a(q, kv, bias=bias)
        explicit, probs = a(q, kv, bias=bias, need_weights=True)
        plain = a(q, kv)
    assert torch.allclose(fused, explicit, atol=1e-5) and not torch.allclose(fused, plain, atol=1e-3)
    assert torch.allclose(probs.sum(-1), torch.ones(3, 4), atol=1e-5)
    with pytest.raises(ValueError, match="causal"):
        Attention(32, 4)(q, bias=torch.zeros(4, 4), causal=True)


def test_vidtwin_two_input_sizes_same_weights(vidtwin):
    """RoPE and normalised-time features: no fixed-size table, so one set of weights runs at any size."""
    for t, h, w in [(16, 32, 32), (8, 16, 48)]:
        x = _clip(t, h, w, seed=7)
        with torch.no_grad():
            z = vidtwin.encode(x)
            y = vidtwin.decode(z)
        assert y.shape == x.shape and torch.isfinite(y).all()
        assert z.main.shape[2] == 4 and z["dynamics_h"].shape[2] == t


def test_vidtwin_chunks_are_independent():
    """Long clips are coded as independent chunks of ``chunk_frames`` (here 8): n_q structure frames per chunk."""
    torch.manual_seed(0)
    m = VidTwin({**VIDTWIN_TINY, "chunk_frames": 8, "num_queries": 2}).eval()
    x = _clip(13, 16, 32, seed=9)  # chunks of 8 + 5 frames
    with torch.no_grad():
        z = m.encode(x)
        y = m.decode(z)
        first = m.decode(m.encode(x[:, :, :8]))
        s_only = m.decode_parts(structure=z.main)  # raw structure tensor: 2 chunks x 8 frames
    assert {k: tuple(v.shape[1:]) for k, v in z.items()} == m.latent_shapes(13, 16, 32) == {
        "structure": (8, 4, 1, 2), "dynamics_h": (2, 13, 1), "dynamics_w": (2, 13, 2)}
    assert m.card.temporal_factor == 4 and tuple(z.main.shape[1:]) == m.card.latent_shape(13, 16, 32)
    assert y.shape == x.shape and torch.allclose(y[:, :, :8], first, atol=1e-5)
    assert s_only.shape == (1, 3, 16, 16, 32)
    att = m.qformer_attention(x)
    assert att.shape == (1, 4, 13) and torch.allclose(att.sum(-1), torch.ones(1, 4), atol=1e-5)
    assert att[:, :2, 8:].abs().max() == 0 and att[:, 2:, :8].abs().max() == 0  # block-diagonal
    with pytest.raises(ValueError, match="chunk"):
        m.decode_parts(structure=z.main[:, :, :2], dynamics=z)
    assert m.cross_reenact(x, x[:, :, :6]).shape == (1, 3, 6, 16, 32)  # 2 chunks vs 1: both cut to 6 frames


def test_vidtwin_forward_losses_and_gradients():
    torch.manual_seed(0)
    m = VidTwin(VIDTWIN_TINY).train()
    x = _clip(8, 32, 32, b=2)
    recon, losses = m(x)
    assert recon.shape == x.shape
    assert set(k for k in losses if not k.startswith("_")) == {"kl"}
    assert all(torch.isfinite(v).all() for v in losses.values())
    ((recon - x).abs().mean() + losses["kl"]).backward()
    enc = m.encoder
    for name, p in [("patch_embed", enc.patch_embed.proj.weight), ("qformer.queries", enc.qformer.queries),
                    ("structure_down", enc.structure_down[0].weight), ("dynamics_down", enc.dynamics_down[0].weight),
                    ("dynamics_head", enc.dynamics_head.weight)]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# --- HVDM ---------------------------------------------------------------------------------------------

def test_hvdm_card(hvdm):
    c = hvdm.card
    assert c.kind == "video" and c.frame_rule == "any" and not c.causal
    assert (c.spatial_factor, c.temporal_factor, c.latent_channels) == (8, 1, 4)
    assert c.paper.year == 2024 and c.teaching and c.idea and c.architecture
    assert hasattr(hvdm.decoder, "last_layer")


@pytest.mark.parametrize("t,h,w", SIZES)
def test_hvdm_reconstruct_shapes_and_latent(hvdm, t, h, w):
    x = _clip(t, h, w)
    y = hvdm.reconstruct(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 1
    with torch.no_grad():
        z = hvdm.encode(pad_to_rule(x, 8, "any")[0])
    assert tuple(z.main.shape[1:]) == hvdm.card.latent_shape(t, h, w) == (4, t, math.ceil(h / 8), math.ceil(w / 8))


def test_hvdm_planes(hvdm):
    x = _clip(6, 16, 32)  # T, H', W' all different: 6, 2, 4
    with torch.no_grad():
        pl = hvdm.planes(x)
    d = HVDM_TINY["width"]
    assert {k: tuple(v.shape) for k, v in pl.items()} == {"hw": (1, d, 2, 4), "tw": (1, d, 6, 4), "th": (1, d, 6, 2)}
    assert all(torch.isfinite(v).all() for v in pl.values())


def test_hvdm_wavelet_bands_exact_haar(hvdm):
    x = _clip(4, 16, 24).double()
    bands = hvdm.wavelet_bands(x)
    assert tuple(bands) == BANDS_3D and len(bands) == 8 and bands["LLL"].shape == (1, 3, 2, 8, 12)
    assert torch.allclose(idwt3(bands), x, atol=1e-12)
    energy = sum(b.pow(2).sum() for b in bands.values())
    assert torch.allclose(energy, x.pow(2).sum())  # orthonormal
    x5 = _clip(5, 16, 16).double()  # odd T: last frame replicated first
    rec = idwt3(hvdm.wavelet_bands(x5))
    assert rec.shape[2] == 6 and torch.allclose(rec[:, :, :5], x5) and torch.allclose(rec[:, :, 5], x5[:, :, 4])


def test_hvdm_latent_bounded_by_tanh(hvdm):
    x = _clip(4, 16, 16) * 50  # far outside [-1, 1]: tanh must still bound the latent
    with torch.no_grad():
        for mode in MODES:
            z = hvdm.encode(x, mode=mode)
            assert z.main.abs().max() <= 1 and torch.isfinite(z.main).all()


def test_hvdm_ablation_modes_differ(hvdm):
    x = _clip(4, 32, 32, seed=8)
    outs = {m: hvdm.reconstruct(x, mode=m) for m in MODES}
    assert _differ(outs["fused"], outs["triplane"]) and _differ(outs["fused"], outs["wavelet"])
    assert _differ(outs["triplane"], outs["wavelet"])
    # the config flag gives the same model as the method argument
    abl = HVDM({**HVDM_TINY, "mode": "triplane"}).eval()
    abl.load_state_dict(hvdm.state_dict())
    assert torch.allclose(abl.reconstruct(x), outs["triplane"], atol=1e-6)
    with pytest.raises(ValueError):
        hvdm.encode(x, mode="both")


def test_hvdm_chunks_are_independent():
    torch.manual_seed(0)
    m = HVDM({**HVDM_TINY, "chunk_frames": 4}).eval()
    x = _clip(10, 16, 16, seed=10)  # chunks 4 + 4 + 2
    with torch.no_grad():
        z = m.encode(x)
        y = m.decode(z)
        z_mid = m.encode(x[:, :, 4:8])
        y_mid = m.decode(z_mid)
    assert z.main.shape == (1, 4, 10, 2, 2) and y.shape == x.shape
    assert torch.allclose(z.main[:, :, 4:8], z_mid.main, atol=1e-6) and torch.allclose(y[:, :, 4:8], y_mid, atol=1e-5)


def test_hvdm_forward_losses_and_gradients():
    torch.manual_seed(0)
    m = HVDM(HVDM_TINY).train()
    x = _clip(4, 32, 32, b=2)
    recon, losses = m(x)
    assert recon.shape == x.shape
    assert set(k for k in losses if not k.startswith("_")) == {"wavelet3d"}
    assert all(torch.isfinite(v).all() for v in losses.values())
    ((recon - x).abs().mean() + losses["wavelet3d"]).backward()
    enc = m.encoder
    for name, p in [("patch_embed", enc.patch_embed.proj.weight), ("pool_t.cls", enc.pool_t.cls),
                    ("low_stack", enc.low_stack[0].weight), ("high_stack", enc.high_stack[0].weight)]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # triplane-only: the zeroed wavelet branch receives no gradient
    m.zero_grad(set_to_none=True)
    recon, losses = m(x, mode="triplane")
    (recon - x).abs().mean().backward()
    assert enc.low_stack[0].weight.grad is None and enc.patch_embed.proj.weight.grad.abs().sum() > 0


def test_vidtwin_dynamics_dropout_drops_the_dynamics_embedding_per_clip(vidtwin):
    """Training's dynamics dropout: a clip whose keep flag is 0 decodes exactly as structure-only."""
    x = _clip(8, 32, 32, b=2, seed=3)
    with torch.no_grad():
        z = vidtwin.encode(x)
        mixed = vidtwin.decode_parts(z, z, dynamics_keep=torch.tensor([1.0, 0.0]))
        both = vidtwin.decode_parts(z, z)
        s_only = vidtwin.decode_parts(z.main, frames=8, token_grid=z.token_grid)
    assert torch.allclose(mixed[0], both[0], atol=1e-5) and torch.allclose(mixed[1], s_only[1], atol=1e-5)
    assert _differ(mixed[1], both[1])
    assert 0 < VidTwin().config["dynamics_dropout"] < 1
    vidtwin.train()
    try:  # in training the forward pass draws the flags: it runs, and eval mode never drops
        recon, _ = vidtwin(x)
        assert recon.shape == x.shape
    finally:
        vidtwin.eval()
