"""Structure x Dynamics: aligning two clips, the VidTwin swap as data, its figures and the tab's handler.

Shape, attention and "not a no-op" tests run on small randomly initialised VidTwins (they never skip); the
handler runs on stand-in weights written to a temporary assets folder (never the shipped one). Only the test
of trained behaviour (a swap keeps A's structure) needs the shipped lab weights.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from conftest import moving_gradient, require_lab_weights

from vaelab import engine, models, viz_swap
from vaelab.analysis import swap
from vaelab.engine import to_tensor, to_uint8
from vaelab.io import VideoDecodeError, probe
from vaelab.models.base import pad_to_rule

# a narrow VidTwin (the lab config's latent shapes: patch 8, n_q 4, d_S 8, d_D 2, 16-frame chunks)
TINY = {"width": 32, "heads": 2, "encoder_depth": 1, "decoder_depth": 1, "qformer_width": 16, "qformer_heads": 2,
        "structure_channels": 8}
DECODES = {n for names in swap.ROWS.values() for n in names if not n.startswith("clip ")}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def vidtwin():
    """A random tiny VidTwin whose structure latent is scaled up 100x.

    At initialisation the Q-Former's summaries hardly depend on the clip (its learned queries dominate), so
    two clips get nearly the same z_S and a swap would change a few pixel values by one level; a larger
    structure head output lets both parts shape the decode, as they do after training."""
    torch.manual_seed(0)
    model = models.build("vidtwin", TINY).eval()
    with torch.no_grad():
        model.encoder.structure_down[-1].weight.mul_(100)
        model.encoder.structure_down[-1].bias.mul_(100)
    return model


def _noise(t: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _mean_abs(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(x.astype(np.float32) - y.astype(np.float32)).mean())


@pytest.fixture(scope="module")
def swapped(vidtwin):
    """A swap of two different 6-frame 40 x 56 clips (not multiples of 16 px: padded and cropped back)."""
    a = moving_gradient(6, 40, 56)
    b = _noise(6, 40, 56, seed=1)
    return swap.swap_clips(vidtwin, a, b, fps=10.0, notes=["aligned"])


# --- alignment --------------------------------------------------------------------------------------

def test_fit_frame_scales_to_cover_then_centre_crops():
    b = np.zeros((2, 40, 80, 3), np.uint8)
    b[:, :, :20] = (255, 0, 0)  # red | green | blue thirds (by width 20 | 40 | 20)
    b[:, :, 20:60] = (0, 255, 0)
    b[:, :, 60:] = (0, 0, 255)
    out, note = swap.fit_frame(b, 32, 32)  # x0.8 -> 64 x 32, 16 px cut on each side: the green middle remains
    assert out.shape == (2, 32, 32, 3)
    assert out[..., 1].min() >= 200 and out[..., 0].max() <= 60 and out[..., 2].max() <= 60
    assert "80x40 to 64x32" in note and "centre-cropped" in note and "32 px of width" in note
    crop, note = swap.fit_frame(b, 40, 40)  # already covers: cut only
    assert np.array_equal(crop, b[:, :, 20:60]) and note == ("centre-cropped from 80x40 to 40x40 (40 px of width cut, "
                                                             "split between both sides)")
    same, none = swap.fit_frame(b, 40, 80)
    assert same is b and none is None
    up, note = swap.fit_frame(b[:, :10, :10], 30, 20)  # a small square B grows to cover a 20 x 30 frame
    assert up.shape == (2, 30, 20, 3) and "10x10 to 30x30" in note and "10 px of width" in note


def test_align_pair_loops_the_shorter_clip_and_says_so():
    a, b = _noise(5, 16, 24, seed=2), _noise(2, 16, 24, seed=3)
    pair = swap.align_pair(a, b, 12.0, 25.0)
    assert pair.a.shape == pair.b.shape == (5, 16, 24, 3) and pair.fps == 12.0
    assert np.array_equal(pair.a, a)
    assert np.array_equal(pair.b, b[[0, 1, 0, 1, 0]])
    text = " ".join(pair.notes)
    assert "both clips are 24x16" in text and "clip B has 2 frame(s)" in text and "looped" in text
    assert "B was 25 fps" in text
    # A a still image, B a clip: A's frame is held for B's length, B is fitted to A's frame
    still = swap.align_pair(a[:1], _noise(3, 32, 32, seed=4))
    assert still.a.shape == still.b.shape == (3, 16, 24, 3)
    assert all(np.array_equal(f, a[0]) for f in still.a)
    assert "single frame is held to 3 frames" in " ".join(still.notes) and "centre-cropped" in " ".join(still.notes)
    same = swap.align_pair(a, a.copy())
    assert "nothing to align" in same.notes[0] and "nothing to align" in same.notes[1]


def test_load_pair_examples_and_errors(tmp_path):
    pair = swap.load_pair(None, "bikes", None, "astronaut (photo)", frames=3, size=64)
    assert pair.a.shape == pair.b.shape and pair.a.shape[:2] == (3, 64) and pair.a.shape[2] > 64
    text = " ".join(pair.notes)
    assert text.startswith("Clip A:") and "centre-cropped" in text and "held" in text
    with pytest.raises(ValueError, match="^Clip B: Upload a video or image, or pick an example"):
        swap.load_pair(None, "bikes", None, None)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(VideoDecodeError, match="^Clip A:"):
        swap.load_pair(str(bad), None, None, "bikes")
    for kw in ({"frames": 0}, {"frames": swap.MAX_FRAMES + 1}, {"size": swap.MAX_SIZE + 16}, {"frames": "x"}):
        with pytest.raises(ValueError):
            swap.load_pair(None, "bikes", None, "bikes", **kw)


def test_check_work_caps_the_request():
    swap.check_work((swap.DEFAULT_FRAMES, swap.DEFAULT_SIZE, 228, 3), "cpu")  # the default request fits
    with pytest.raises(ValueError, match="too heavy for CPU"):
        swap.check_work((swap.MAX_FRAMES, swap.MAX_SIZE, 456, 3), "cpu")
    swap.check_work((swap.MAX_FRAMES, swap.MAX_SIZE, 456, 3), "cuda")


# --- distances --------------------------------------------------------------------------------------

def test_structure_and_dynamics_distances_measure_different_things():
    clip = moving_gradient(6, 32, 48)
    shuffled = clip[[3, 0, 5, 1, 4, 2]]  # same frames, other order: same time average, other changes
    assert swap.structure_distance(clip, clip) == 0 and swap.dynamics_distance(clip, clip) == 0
    assert swap.structure_distance(clip, shuffled) < 1e-9
    assert swap.dynamics_distance(clip, shuffled) > 5
    still_a, still_b = np.repeat(clip[:1], 4, 0), np.repeat(clip[-1:], 4, 0)
    assert swap.dynamics_distance(still_a, still_b) == 0 and swap.structure_distance(still_a, still_b) > 5
    assert swap.dynamics_distance(clip[:1], clip[1:2]) is None


# --- the swap ---------------------------------------------------------------------------------------

def test_swap_shapes_latent_sizes_and_attention(vidtwin, swapped):
    t, h, w = 6, 40, 56
    assert set(swapped.decodes) == DECODES and len(DECODES) == 8
    for name, names in swap.ROWS.items():
        assert names[0] == f"clip {name}" and len(names) == 5
    for y in swapped.decodes.values():
        assert y.shape == (t, h, w, 3) and y.dtype == np.uint8
    rows = swapped.rows(2)
    assert list(rows) == ["A", "B"] and all(img.shape == (h, w, 3) for r in rows.values() for img in r.values())
    assert np.array_equal(rows["A"]["clip A"], swapped.clips["A"][2])
    sizes = swapped.latents
    assert sizes.shapes == vidtwin.latent_shapes(t, h, w) == {"structure": (8, 4, 3, 4), "dynamics_h": (2, t, 3),
                                                               "dynamics_w": (2, t, 4)}
    assert sizes.input_shape == (3, t, h, w) and sizes.input_numel == 3 * t * h * w
    assert sizes.numel() == 8 * 4 * 3 * 4 + 2 * t * 3 + 2 * t * 4 == vidtwin.card.latent_numel(t, h, w)
    assert sizes.share("structure") == pytest.approx(384 / (3 * t * h * w))
    assert sizes.share() == pytest.approx(sum(sizes.share(p) for p in swap.LATENT_PARTS))
    for att in swapped.attention.values():
        assert att.shape == (4, t) and att.dtype == np.float32 and (att >= 0).all()
        assert np.allclose(att.sum(-1), 1.0, atol=1e-5)  # every query's weights over the frames sum to 1
    assert not np.allclose(swapped.attention["A"], swapped.attention["B"])  # each clip's own attention
    assert swapped.fps == 10.0 and swapped.notes == ["aligned"] and swapped.frames == t and swapped.seconds > 0
    with pytest.raises(ValueError, match="aligned"):
        swap.swap_clips(vidtwin, swapped.clips["A"], swapped.clips["B"][:3])


def test_swap_is_not_a_no_op_and_matches_the_model(vidtwin, swapped):
    d = swapped.decodes
    for own, other in (("A", "B"), ("B", "A")):
        y = d[f"structure {own} + dynamics {other}"]
        assert _mean_abs(y, d["A reconstructed"]) > 0.25 and _mean_abs(y, d["B reconstructed"]) > 0.25
        effect = swapped.swap_effect()[f"structure {own} + dynamics {other}"]
        assert effect == pytest.approx({"to_A": _mean_abs(y, d["A reconstructed"]),
                                        "to_B": _mean_abs(y, d["B reconstructed"])})
        assert _mean_abs(d[f"{own} structure only"], d[f"{own} reconstructed"]) > 1
        assert _mean_abs(d[f"{own} dynamics only"], d[f"{own} reconstructed"]) > 1
    # the wiring: which clip gives which part, against the model's own cross-reenactment
    x_a, x_b = to_tensor(swapped.clips["A"]), to_tensor(swapped.clips["B"])
    with torch.no_grad():
        ab, ba = to_uint8(vidtwin.cross_reenact(x_a, x_b)), to_uint8(vidtwin.cross_reenact(x_b, x_a))
        z_a = vidtwin.encode(pad_to_rule(x_a, 16, "any")[0])
        s_only = to_uint8(vidtwin.decode_parts(structure=z_a, frames=6)[:, :, :, :40, :56])
    for ours, theirs in ((d["structure A + dynamics B"], ab), (d["structure B + dynamics A"], ba),
                         (d["A structure only"], s_only)):
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_swap_over_two_chunks(vidtwin):
    """20 frames = a 16-frame chunk + a 4-frame chunk: 8 queries, each reading only its own chunk."""
    a, b = moving_gradient(20, 16, 32), _noise(20, 16, 32, seed=5)
    res = swap.swap_clips(vidtwin, a, b)
    assert all(y.shape == (20, 16, 32, 3) for y in res.decodes.values())
    assert res.latents.shapes["structure"] == (8, 8, 1, 2)
    att = res.attention["A"]
    assert att.shape == (8, 20) and np.allclose(att.sum(-1), 1.0, atol=1e-5)
    assert att[:4, 16:].max() == 0 and att[4:, :16].max() == 0


# --- figures ----------------------------------------------------------------------------------------

def test_figures(swapped):
    fig = viz_swap.attention_heatmaps(swapped.attention, swapped.chunk_frames)
    heat = [tr for tr in fig.data if isinstance(tr, go.Heatmap)]
    assert len(heat) == 2 and np.allclose(np.asarray(heat[0].z), swapped.attention["A"])
    assert list(heat[1].y) == [f"query {k}" for k in range(4)] and list(heat[1].x) == list(range(6))
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == pytest.approx(
        max(a.max() for a in swapped.attention.values()))
    assert "uniform = 1/6" in fig.layout.title.text
    long = viz_swap.attention_heatmaps({"A": np.full((8, 20), 1 / 20)}, 16)
    assert "chunks of 16" in long.layout.title.text

    grid = viz_swap.frame_grid(swapped.rows(3), 3)
    images = [tr for tr in grid.data if isinstance(tr, go.Image)]
    assert len(images) == 10 and all(im.source.startswith("data:image/png;base64,") for im in images)
    assert [a.text for a in grid.layout.annotations] == [n for names in swap.ROWS.values() for n in names]
    assert grid.layout.title.text == "frame 3"
    with pytest.raises(ValueError, match="same number"):
        viz_swap.frame_grid({"A": swapped.rows(0)["A"], "B": {"clip B": swapped.clips["B"][0]}}, 0)

    video = viz_swap.grid_video(swapped.rows())
    t, h, w = 6, 40, 56
    assert video.dtype == np.uint8 and video.shape[0] == t and video.shape[2] == 5 * w + 4 * 4
    assert video.shape[1] == 2 * (h + 14) + 4  # two labelled rows and a gap
    assert np.array_equal(video[:, 14:14 + h, :w], swapped.clips["A"])  # clip A top left, under its label
    assert np.array_equal(video[:, -h:, -w:], swapped.decodes["structure B + dynamics A"])  # bottom right


# --- the tab's handler -------------------------------------------------------------------------------

@pytest.fixture
def assets(isolated_assets):
    """An empty assets folder for this test, and an empty model cache (restored afterwards)."""
    return isolated_assets


def _call(upload_a=None, example_a="bikes", upload_b=None, example_b="astronaut (photo)", frames=4, size=64):
    from vaelab.ui import tab_swap

    return tab_swap.swap(upload_a, example_a, upload_b, example_b, frames, size, "cpu",
                         progress=lambda *a, **k: None)


def test_handler_without_weights_says_so_and_runs_nothing(assets, monkeypatch):
    import gradio as gr

    from vaelab.ui import tab_swap

    monkeypatch.setattr(swap, "swap_pair", lambda *a, **k: pytest.fail("must not run a model without weights"))
    assert "vidtwin" not in models.names()
    assert "not installed" in tab_swap.weights_status()
    with pytest.raises(gr.Error, match="VidTwin lab weights are not installed"):
        _call()


def test_handler_outputs_and_errors(assets, vidtwin):
    import gradio as gr

    from vaelab.ui import tab_swap

    models.save_weights(vidtwin, assets / "weights" / "vidtwin.safetensors")  # a stand-in, in a temp folder
    assert "lab weights" in tab_swap.weights_status()
    out = _call()
    video, slider, frame_fig, att_fig, latent_text, notes, state = (out[k] for k in tab_swap.OUTPUTS)
    info = probe(video)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert isinstance(state, swap.SwapResult) and state.frames == 4
    assert info["width"] >= 5 * state.clips["A"].shape[2]
    assert slider.maximum == 3 and slider.interactive
    assert len(frame_fig.data) == 10 and len(att_fig.data) == 2
    assert "whole latent" in latent_text and f"{state.latents.numel():,}" in latent_text
    assert "centre-cropped" in notes and "held to 4 frames" in notes and "structure A + dynamics B" in notes
    assert tab_swap.show_swap_frame(state, 99).layout.title.text == "frame 3"  # clamped to the last frame
    assert tab_swap.show_swap_frame(None, 0) is None
    for kwargs, message in [({"example_b": None}, "Clip B: Upload a video or image"),
                            ({"frames": 0}, "Frames must be between"),
                            ({"frames": 32, "size": 256}, "too heavy")]:
        with pytest.raises(gr.Error, match=message) as e:
            _call(**kwargs)
        assert "Traceback" not in str(e.value)
    with pytest.raises(gr.Error, match="What fits: 6 frames at this size; or working resolution 112 px at 32 frames"):
        _call(frames=32, size=256)  # the refusal says what would fit


# --- trained behaviour ------------------------------------------------------------------------------

def test_trained_swap_keeps_structure_of_a():
    """With the shipped weights, A's structure + B's dynamics has A's layout (and vice versa), not a copy of either,
    and the fast motion of a dynamics donor that has fast motion.

    On held-out frames (A = the last 20 % of bikes, B = of bigbuckbunny; never trained on). "Structure" is measured
    colour-free (``layout_similarity``: SSIM's structure term on the time-averaged brightness): the paper's swaps
    keep the structure donor's objects but take the dynamics donor's colours. Motion is split as the paper splits
    it: slow motion rides on the structure's keyframes, fast motion (``fast_motion_similarity``) on the dynamics."""
    from vaelab.train.data import heldout_clips

    require_lab_weights("vidtwin")
    model = engine.get_model("vidtwin", "lab", "cpu")
    held = heldout_clips(128)
    res = swap.swap_pair(model, swap.align_pair(held["bikes"][:16], held["bigbuckbunny"][:16]))
    a, b, d = res.clips["A"], res.clips["B"], res.decodes
    assert swap.layout_similarity(a, b) < 0  # the two clips have opposite layouts
    checked_motion = 0
    for own, other in (("A", "B"), ("B", "A")):
        y = d[f"structure {own} + dynamics {other}"]
        assert _mean_abs(y, d["A reconstructed"]) > 0.5 and _mean_abs(y, d["B reconstructed"]) > 0.5
        near, far = swap.layout_similarity(y, res.clips[own]), swap.layout_similarity(y, res.clips[other])
        print(f"\nstructure {own} + dynamics {other}: layout {near:.2f} with {own}, {far:.2f} with {other}")
        assert near > far + 0.1
        # the dynamics donor's fast motion, where its dynamics carry some (measured with the v2 weights: the bikes
        # dynamics alone 0.27; structure bigbuckbunny + dynamics bikes 0.24 with bikes vs 0.05)
        fast_other = swap.fast_motion_similarity(y, res.clips[other])
        fast_own = swap.fast_motion_similarity(y, res.clips[own])
        donor_fast = swap.fast_motion_similarity(d[f"{other} dynamics only"], res.clips[other])
        print(f"  fast motion {fast_other} with {other}, {fast_own} with {own}; {other}'s dynamics alone {donor_fast}")
        if donor_fast is not None and donor_fast > 0.1:
            assert fast_other > fast_own + 0.1
            checked_motion += 1
        # the structure latent alone keeps its clip's layout (dynamics dropout in training makes it carry it)
        s_only = d[f"{own} structure only"]
        assert swap.layout_similarity(s_only, res.clips[own]) > 0.6 > swap.layout_similarity(s_only, res.clips[other])
    assert checked_motion >= 1  # bikes' fast motion is carried by its dynamics latent
    att = res.attention["A"]  # (n_q, T): queries read different moments, not all frames alike
    assert len(set(att.argmax(1).tolist())) == att.shape[0] and att.max() > 2 / att.shape[1]


def test_notes_flag_a_swap_that_equals_a_reconstruction(swapped):
    """The tab says so when a swap is (nearly) the dynamics donor's reconstruction: the structure part is unused."""
    import dataclasses

    from vaelab.ui import tab_swap

    d = dict(swapped.decodes)
    d["structure A + dynamics B"] = d["B reconstructed"]
    d["structure B + dynamics A"] = np.clip(d["B reconstructed"].astype(int) + 60, 0, 255).astype(np.uint8)
    text = tab_swap.notes_md(dataclasses.replace(swapped, decodes=d), "cpu")
    assert "structure A + dynamics B: " in text and "0.0 from B reconstructed" in text
    assert text.count("Nearly identical") == 1
    assert "Nearly identical to B's reconstruction: with these weights B's dynamics latent" in text
    assert "| structure B + dynamics A |" in text and "Model time:" in text and "aligned" in text


def test_layout_similarity_ignores_colour_and_exposure():
    clip = moving_gradient(4, 32, 48)
    brighter_tinted = np.clip(clip.astype(int) * [0.5, 0.8, 0.3] + 60, 0, 255).astype(np.uint8)
    assert swap.layout_similarity(clip, clip) == pytest.approx(1.0, abs=1e-3)
    assert swap.layout_similarity(clip, brighter_tinted) > 0.95
    assert swap.layout_similarity(clip, 255 - clip) < -0.95


def _disc_clip(background: np.ndarray, path: list[tuple[int, int]], radius: int = 5) -> np.ndarray:
    """A bright disc moving along ``path`` ((y, x) per frame) over a still (H, W, 3) background."""
    h, w = background.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    frames = []
    for cy, cx in path:
        f = background.copy()
        f[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 255
        frames.append(f)
    return np.stack(frames)


def test_motion_similarity_follows_what_moves_not_what_is_shown():
    """The motion-transfer score: a clip with A's picture but B's moving object correlates with B's motion,
    and with A's layout; a still clip has no motion to compare; a clip matches its own motion exactly."""
    rng = np.random.default_rng(0)
    bg_a = moving_gradient(1, 48, 64)[0]
    bg_b = rng.integers(0, 120, (48, 64, 3), dtype=np.uint8)
    across = [(24, 8 + 6 * t) for t in range(8)]  # A's disc moves left to right
    down = [(6 + 5 * t, 40) for t in range(8)]  # B's disc moves top to bottom
    a, b = _disc_clip(bg_a, across), _disc_clip(bg_b, down)
    swapped = _disc_clip(bg_a, down)  # A's picture, B's motion
    assert swap.motion_similarity(a, a) == pytest.approx(1.0, abs=1e-6)
    assert swap.motion_similarity(swapped, b) > 0.5 > swap.motion_similarity(swapped, a)
    assert swap.layout_similarity(swapped, a) > swap.layout_similarity(swapped, b)
    still = np.repeat(bg_a[None], 8, axis=0)
    assert swap.motion_similarity(still, a) is None and swap.motion_similarity(a[:1], a[:1]) is None


def test_fast_motion_similarity_separates_slow_drift_from_fast_change():
    """A's left half brightens and darkens slowly (one period in 16 frames), B's right half blinks every other
    frame; a clip with both has A's *overall* motion (the larger change) but B's *fast* motion (change minus its
    4-frame moving average)."""
    t = np.arange(16)
    slow = (80 * np.sin(2 * np.pi * t / 16))[:, None, None, None]
    blink = (12 * (t % 2))[:, None, None, None]
    base = np.full((16, 48, 64, 3), 100.0)
    a, b, mix = base.copy(), base.copy(), base.copy()
    a[:, :, :32] += slow
    b[:, :, 32:] += blink
    mix[:, :, :32] += slow
    mix[:, :, 32:] += blink
    a, b, mix = (np.clip(v, 0, 255).astype(np.uint8) for v in (a, b, mix))
    assert swap.motion_similarity(mix, a) > swap.motion_similarity(mix, b)
    fast_b, fast_a = swap.fast_motion_similarity(mix, b), swap.fast_motion_similarity(mix, a)
    assert fast_b > 0.8 and fast_b > fast_a + 0.3, (fast_b, fast_a)
    assert swap.fast_motion_similarity(b, b) == pytest.approx(1.0, abs=1e-6)
    assert swap.fast_motion_similarity(b[:4], b[:4]) is None  # shorter than the window + 1
    ramp = np.stack([np.full((48, 64, 3), 40 + 8 * k, np.uint8) for k in range(16)])  # constant change: no fast part
    assert swap.fast_motion_similarity(ramp, b) is None


def test_verdict_judges_fast_motion_when_it_is_measured():
    from vaelab.ui import tab_swap

    base = {"layout_to_A": 0.9, "layout_to_B": 0.1, "structure_to_A": 10.0, "structure_to_B": 30.0,
            "dynamics_to_A": 5.0, "dynamics_to_B": 9.0, "motion_to_A": 0.3, "motion_to_B": 0.0}
    [line] = tab_swap.verdicts({"structure A + dynamics B": base | {"fast_motion_to_A": 0.02, "fast_motion_to_B": 0.4}})
    assert "the swap worked" in line and "fast motion like B (0.02 vs 0.40" in line
    assert "overall motion like A (0.30 vs 0.00) (slow motion rides on the structure keyframes)" in line
    [line] = tab_swap.verdicts({"structure A + dynamics B": base | {"fast_motion_to_A": 0.4, "fast_motion_to_B": 0.0}})
    assert "only partly a swap" in line and "✗ (expected B)" in line
    [line] = tab_swap.verdicts({"structure A + dynamics B": base | {"fast_motion_to_A": 0.01, "fast_motion_to_B": 0.04}})
    assert "no fast motion to transfer (0.01 vs 0.04" in line and "✓" in line and "✗" not in line


def test_verdict_reads_the_motion_transfer_score():
    from vaelab.ui import tab_swap

    base = {"layout_to_A": 0.9, "layout_to_B": 0.1, "structure_to_A": 10.0, "structure_to_B": 30.0,
            "dynamics_to_A": 5.0, "dynamics_to_B": 9.0}
    good = base | {"motion_to_A": 0.1, "motion_to_B": 0.7}  # B's motion, although the change distance says A
    bad = base | {"motion_to_A": 0.7, "motion_to_B": 0.1}
    [line] = tab_swap.verdicts({"structure A + dynamics B": good})
    assert "the swap worked" in line and "motion like B (0.10 vs 0.70" in line
    [line] = tab_swap.verdicts({"structure A + dynamics B": bad})
    assert "only partly a swap" in line and "✗ (expected B)" in line
