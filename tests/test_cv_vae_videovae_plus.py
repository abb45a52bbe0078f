"""CV-VAE and VideoVAE+: shapes, inflation from sd-vae, causality, the compatibility loss, chunking,
joint image mode and caption conditioning.

Models are built by class at narrow widths (the registry adds them once trained); the sd-vae used
for inflation is built with the same narrow widths, random init, eval mode.
"""
from __future__ import annotations

import math

import pytest
import torch

from vaelab import models
from vaelab.models._text import TextEmbedder, as_caption_list, hash_ids
from vaelab.models.base import pad_to_rule
from vaelab.models.cv_vae import CVVAE, inflate_from_sd
from vaelab.models.latent import Latent
from vaelab.models.videovae_plus import (
    RelativeTemporalAttention,
    TemporalConvLayer,
    TemporalDecoder,
    TemporalEncoder,
    VideoVAEPlus,
)

SD_TINY = {"block_out_channels": [8, 16, 16, 16], "norm_num_groups": 4}
CV_TINY = dict(SD_TINY)
VV_TINY = {"block_out_channels": [8, 8, 8, 8], "norm_num_groups": 4, "temporal_hidden": 4, "text_dim": 16,
           "text_heads": 2, "text_layers": 1, "text_vocab": 256, "cross_heads": 2, "cross_head_dim": 8}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest and deterministic


@pytest.fixture(scope="module")
def sd():
    torch.manual_seed(0)
    return models.build("sd-vae", SD_TINY).eval()


@pytest.fixture(scope="module")
def cv_inflated(sd):
    torch.manual_seed(1)
    cv = CVVAE(CV_TINY).eval()
    cv.inflate_from_sd(sd.state_dict())
    return cv


@pytest.fixture(scope="module")
def built():
    torch.manual_seed(2)
    return {"cv-vae": CVVAE(CV_TINY).eval(), "videovae-plus": VideoVAEPlus(VV_TINY).eval()}


def _clip(t: int, h: int, w: int, seed: int = 0, b: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, h, w, generator=g) * 2 - 1


def _smooth_clip(t: int, size: int = 16, speed: float = 0.05) -> torch.Tensor:
    """Low-frequency pattern drifting slowly: neighbouring frames nearly equal."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    frames = [0.7 * torch.stack([torch.sin(2 * xx + yy + speed * i), torch.cos(1.5 * yy - xx + speed * i),
                                 0.5 * torch.sin(xx * yy + speed * i)]) for i in range(t)]
    return torch.stack(frames, 1)[None]


# --- cards and shapes ---------------------------------------------------------------------------------

def test_cards(built):
    cv, vv = built["cv-vae"].card, built["videovae-plus"].card
    assert (cv.name, cv.kind, cv.frame_rule, cv.causal) == ("cv-vae", "video", "1+4k", True)
    assert (vv.name, vv.kind, vv.frame_rule, vv.causal) == ("videovae-plus", "video", "4k", False)
    for c in (cv, vv):
        assert (c.spatial_factor, c.temporal_factor, c.latent_channels) == (8, 4, 4)
        assert c.paper.year >= 2024 and c.teaching and c.idea and c.architecture
    # no encode_chunk: the engine must not stream these (exact streaming is not what they offer)
    assert not hasattr(built["cv-vae"], "encode_chunk") and not hasattr(built["videovae-plus"], "encode_chunk")


@pytest.mark.parametrize("name", ["cv-vae", "videovae-plus"])
@pytest.mark.parametrize("t,h,w", [(1, 17, 23), (2, 9, 15), (5, 31, 25), (16, 8, 9), (17, 15, 16), (33, 7, 9)])
def test_reconstruct_shape_and_latent_shape(built, name, t, h, w):
    m = built[name]
    x = _clip(t, h, w)
    y = m.reconstruct(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 1
    x_pad = pad_to_rule(x, 8, m.card.frame_rule)[0]
    with torch.no_grad():
        z = m.encode(x_pad)
        assert tuple(z.main.shape[1:]) == m.card.latent_shape(t, h, w)
        assert m.decode(z).shape == x_pad.shape
        z = z.main
    if name == "cv-vae":
        assert z.shape[2] == 1 + math.ceil((t - 1) / 4)
    else:
        assert z.shape[2] == math.ceil(t / 4)


def test_wrong_frame_counts_are_refused_with_a_clear_message(built):
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        built["cv-vae"].encode(_clip(4, 16, 16))
    with pytest.raises(ValueError, match="4k frames"):
        built["videovae-plus"].encode(_clip(5, 16, 16))


# --- CV-VAE: inflation ----------------------------------------------------------------------------------

def test_inflation_keeps_sd_names_and_reports_new_keys(sd, cv_inflated):
    sd_keys, cv_keys = set(sd.state_dict()), set(cv_inflated.state_dict())
    assert sd_keys <= cv_keys, "every sd-vae parameter name must exist in cv-vae"
    assert all(".temporal_attentions." in k for k in cv_keys - sd_keys)
    report = inflate_from_sd(CVVAE(CV_TINY), sd.state_dict())
    assert set(report["new"]) == cv_keys - sd_keys
    assert "encoder.down_blocks.0.resnets.0.conv1.weight" in report["inflated"]
    assert "encoder.down_blocks.0.resnets.0.conv2.weight" in report["copied"]  # half-3D: conv2 stays 2D
    st, w2d = cv_inflated.state_dict(), sd.state_dict()
    w = st["encoder.down_blocks.0.resnets.0.conv1.weight"]  # causal: last slice
    assert torch.equal(w[:, :, 2], w2d["encoder.down_blocks.0.resnets.0.conv1.weight"]) and not w[:, :, :2].any()
    w = st["decoder.up_blocks.1.resnets.0.conv1.weight"]  # symmetric: centre slice
    assert torch.equal(w[:, :, 1], w2d["decoder.up_blocks.1.resnets.0.conv1.weight"]) and not w[:, :, 0].any()
    w = st["decoder.up_blocks.0.upsamplers.0.conv.weight"]  # time up-sampler: both halves
    c = w2d["decoder.up_blocks.0.upsamplers.0.conv.weight"].shape[0]
    assert w.shape[0] == 2 * c and torch.equal(w[:c, :, 1], w[c:, :, 1])


def test_inflated_latent_of_frames_0_4_8_is_the_sd_latent(sd, cv_inflated):
    x = _clip(9, 24, 16, seed=3, b=2)
    with torch.no_grad():
        z = cv_inflated.encode(x)
        z_sd = sd.encode(x[:, :, [0, 4, 8]])
        assert z.main.shape == z_sd.main.shape
        assert (z.main - z_sd.main).abs().max() <= 1e-4
        # and the inflated decoder decodes each latent like SD, holding it for its group of 4 frames
        y, y_sd = cv_inflated.decode(z_sd), sd.decode(z_sd)
    held = torch.tensor([0, 1, 1, 1, 1, 2, 2, 2, 2])
    assert (y - y_sd[:, :, held]).abs().max() <= 1e-4


def test_inflation_refuses_other_widths(sd):
    with pytest.raises(ValueError, match="does not inflate"):
        CVVAE({"block_out_channels": [8, 16, 32, 32], "norm_num_groups": 4}).inflate_from_sd(sd.state_dict())


# --- CV-VAE: causality, compat loss, chunking ---------------------------------------------------------------

def test_encoder_is_causal(built):
    m = built["cv-vae"]  # random init: every temporal slice is live
    x = _clip(13, 16, 16, seed=4)
    with torch.no_grad():
        z = m.encode(x).main
        for frame, first_changed in ((6, 2), (1, 1), (12, 3)):
            x2 = x.clone()
            x2[:, :, frame] += 0.5
            z2 = m.encode(x2).main
            assert torch.equal(z2[:, :, :first_changed], z[:, :, :first_changed]), frame
            assert (z2[:, :, first_changed] - z[:, :, first_changed]).abs().max() > 1e-4, frame


def test_compat_loss_trains_the_encoder_only(sd):
    torch.manual_seed(5)
    cv = CVVAE(CV_TINY).train()
    cv.inflate_from_sd(sd.state_dict())
    cv.attach_image_decoder(sd)
    assert cv.image_vae is sd
    own = {id(p) for p in cv.parameters()}
    assert not any(id(p) in own for p in sd.parameters()), "the image decoder must not be a submodule"
    assert set(cv.state_dict()) == set(CVVAE(CV_TINY).state_dict())
    x = _clip(9, 16, 16, seed=6, b=2)
    recon, losses = cv(x)
    assert recon.shape == x.shape and set(losses) >= {"kl", "compat"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["compat"] > 0
    losses["compat"].backward()
    g = cv.encoder.conv_in.weight.grad
    assert g is not None and g.abs().sum() > 0, "compat must reach the 3D encoder through z"
    assert all(p.grad is None for p in cv.decoder.parameters()), "compat must not touch the 3D decoder"
    assert all(p.grad is None and not p.requires_grad for p in sd.parameters()), "image decoder must stay frozen"
    cv.detach_image_decoder()
    with pytest.warns(UserWarning, match="without its image decoder"):
        _, losses = cv(x)
    assert "compat" not in losses


def test_compat_targets():
    cv = CVVAE(CV_TINY)
    x = torch.arange(9.0).view(1, 1, 9, 1, 1).expand(2, 3, 9, 8, 8)
    tgt, idx = cv.compat_targets(x, 3, "slice")
    assert idx.tolist() == [[0, 4, 8]] * 2 and tgt[:, 0, :, 0, 0].tolist() == [[0, 4, 8]] * 2
    torch.manual_seed(0)
    tgt, idx = cv.compat_targets(x, 3, "random")
    assert (idx[:, 0] == 0).all()
    assert ((idx[:, 1] >= 1) & (idx[:, 1] <= 4)).all() and ((idx[:, 2] >= 5) & (idx[:, 2] <= 8)).all()
    assert torch.equal(tgt[:, 0, :, 0, 0], idx.float())
    tgt, _ = cv.compat_targets(x, 3, "mean")
    assert tgt[0, 0, :, 0, 0].tolist() == [0.0, 2.5, 6.5]


def test_compatibility_psnr(sd, cv_inflated):
    cv_inflated.attach_image_decoder(sd)
    try:
        res = cv_inflated.compatibility_psnr(_clip(7, 15, 13, seed=7))
    finally:
        cv_inflated.detach_image_decoder()
    assert res["frames"] == [0, 4] and len(res["per_frame"]) == 2
    assert all(math.isfinite(res[k]) for k in ("psnr", "video_psnr", "image_vae_psnr"))
    # inflated from this very sd-vae: the image decoder reads the video latent exactly as SD's own
    assert abs(res["psnr"] - res["image_vae_psnr"]) < 1e-2
    with pytest.raises(RuntimeError, match="attach_image_decoder"):
        cv_inflated.compatibility_psnr(_clip(5, 16, 16))


def test_encode_chunked_first_window_exact_and_smooth_input_close(built):
    """Later windows replace the real past by copies of their first frame, so the error grows with the motion
    inside the receptive field at a window start: zero for a static clip, small for slow drift. (A random-init
    encoder is sensitive: its latents change about as much as the error does over the same drift.)"""
    m = built["cv-vae"]
    errs = {}
    with torch.no_grad():
        for speed in (0.0, 0.002, 0.02):
            x = _smooth_clip(33, speed=speed)
            z, zc = m.encode(x).main, m.encode_chunked(x, window=16).main
            assert zc.shape == z.shape == (1, 4, 9, 2, 2)
            assert (zc[:, :, :5] - z[:, :, :5]).abs().max() <= 1e-6, "window 0 must equal one-shot (causal encoder)"
            errs[speed] = float((zc - z).norm() / z.norm())
        y, yc = m.decode(Latent(z)), m.decode_chunked(Latent(z), window=4)
    # float32 rounding only (oneDNN's blocking depends on the window's length)
    assert errs[0.0] <= 1e-5, "a static clip is exact: the replicated first frame *is* the past"
    assert 1e-4 < errs[0.002] < 0.1 and errs[0.002] < errs[0.02], errs
    assert yc.shape == y.shape and torch.isfinite(yc).all()


# --- VideoVAE+ --------------------------------------------------------------------------------------------

def _count_temporal_calls(m: VideoVAEPlus) -> tuple[list[int], list]:
    calls = [0]
    hooks = [mod.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1)) for mod in m.modules()
             if isinstance(mod, (TemporalConvLayer, RelativeTemporalAttention, TemporalEncoder, TemporalDecoder))]
    return calls, hooks


def test_videovae_plus_image_mode_skips_the_temporal_path(built):
    m = built["videovae-plus"]
    x = _clip(4, 16, 24, seed=8)
    calls, hooks = _count_temporal_calls(m)
    try:
        with torch.no_grad():
            z1 = m.encode(x[:, :, :1])
            y1 = m.decode(z1, image=True)
            r1 = m.reconstruct(x[:, :, :1])
            assert calls[0] == 0, "image mode must not run any temporal layer"
            # image mode codes frames independently: a 4-frame image-mode pass = 4 one-frame passes
            z4 = m.encode(x, image=True)
            assert torch.allclose(z4.main[:, :, 2:3], m.encode(x[:, :, 2:3]).main, atol=1e-5)
            assert calls[0] == 0
            m.encode(x)
            assert calls[0] > 0, "the video path must use the temporal layers"
    finally:
        for h in hooks:
            h.remove()
    assert z1.main.shape == (1, 4, 1, 2, 3) and y1.shape == (1, 3, 1, 16, 24) and r1.shape == (1, 3, 1, 16, 24)
    assert torch.allclose(r1, y1.clamp(-1, 1))


def test_videovae_plus_captions_change_the_output(built):
    m = built["videovae-plus"]
    x = _clip(8, 16, 16, seed=9)
    with torch.no_grad():
        z = m.encode(x)
        y_none, y_cat, y_dog = m.decode(z), m.decode(z, "a photo of a cat"), m.decode(z, "a photo of a dog")
        assert torch.equal(m.decode(z, "a photo of a cat"), y_cat), "same caption, same output"
        assert torch.equal(m.decode(z, ""), y_none), "empty caption = no caption"
        for a, b in ((y_none, y_cat), (y_cat, y_dog), (y_none, y_dog)):
            assert (a - b).abs().max() > 1e-3
        assert (m.encode(x, "a photo of a cat").main - z.main).abs().max() > 1e-4, "the encoder is conditioned too"
        # per-sample captions in one batch = one call per sample
        x2 = torch.cat([x, x.flip(-1)])
        zb = m.encode(x2, ["a cat", None]).main
        assert torch.allclose(zb[:1], m.encode(x, "a cat").main, atol=1e-5)
        assert torch.allclose(zb[1:], m.encode(x.flip(-1)).main, atol=1e-5)
    with pytest.raises(ValueError, match="captions for a batch"):
        m.encode(x, ["a", "b", "c"])


def test_text_embedder():
    assert hash_ids("A cat, a CAT!", 256, 8) == hash_ids("a cat a cat", 256, 8)
    assert all(2 <= i < 256 for i in hash_ids("words of a caption 123", 256, 32))
    assert len(hash_ids("a b c", 256, 2)) == 2
    assert as_caption_list("x", 3) == ["x"] * 3 and as_caption_list(None, 2) == [None, None]
    assert as_caption_list(["x", ""], 2) == ["x", None]
    torch.manual_seed(0)
    te = TextEmbedder(dim=16, layers=1, heads=2, vocab=256, max_tokens=8)
    tok, valid = te(["a photo of a cat", None, "!!"])
    assert tok.shape == (3, 5, 16)  # "a photo of a cat" = 5 words; rows without words = the null token
    assert valid.tolist() == [[True] * 5, [True, False, False, False, False], [True, False, False, False, False]]
    assert torch.allclose(tok[1, 0], te.null) and torch.allclose(tok[2, 0], te.null) and torch.isfinite(tok).all()


def test_videovae_plus_forward_losses_and_gradients():
    torch.manual_seed(10)
    m = VideoVAEPlus({**VV_TINY, "joint_image_prob": 0.0, "caption_dropout": 0.0}).train()
    x = _clip(6, 16, 16, seed=11, b=2)
    recon, losses = m(x, ["a cat on a sofa", "bikes"])
    assert recon.shape == x.shape and losses["_image_mode"] == 0
    assert all(torch.isfinite(v) for v in losses.values())
    ((recon - x).abs().mean() + sum(v for k, v in losses.items() if not k.startswith("_"))).backward()
    for name, p in (("encoder", m.encoder.conv_in.weight), ("temporal encoder", m.temporal_encoder.conv_in.weight),
                    ("text", m.text.embed.weight),
                    ("cross-attention", m.encoder.down_blocks[0].text_attentions[0].to_q.weight)):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the joint image step: frames coded as images, temporal path unused
    m.zero_grad(set_to_none=True)
    m.config = m.config.replace(joint_image_prob=1.0)
    recon, losses = m(x)
    assert recon.shape == x.shape and losses["_image_mode"] == 1 and torch.isfinite(losses["kl"])
    ((recon - x).abs().mean() + losses["kl"]).backward()
    assert m.temporal_encoder.conv_in.weight.grad is None and m.encoder.conv_in.weight.grad.abs().sum() > 0


def test_videovae_plus_independent_chunks(built):
    m = built["videovae-plus"]
    x = _smooth_clip(16)
    with torch.no_grad():
        y = m.reconstruct(x)
        assert torch.allclose(m.reconstruct_chunked(x, chunk=16), y, atol=1e-5), "one chunk = one-shot"
        yc = m.reconstruct_chunked(x, chunk=8)
        assert m.encode_chunked(x, chunk=8).main.shape == m.encode(x).main.shape
    assert yc.shape == y.shape and (yc - y).abs().max() > 1e-5, "chunks are coded without each other"
