"""The app's API through gradio_client, against a live ``python app.py`` (see conftest.app_server).

Uses the default model assets (assets/weights, or VAELAB_ASSETS). Reconstructions are kept few
and tiny; no PSNR value is hard-coded (the weights may be anything that loads).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from conftest import require_lab_weights

from vaelab import models
from vaelab.io import probe

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

# tab_reconstruct.OUTPUTS without the two gr.State ones (not in the API)
OUTPUT_NAMES = ["status", "video", "slider", "gallery", "errors", "enlarge", "frame_plot", "curves", "table", "notes",
                "codebook", "groups"]


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server, verbose=False)


@pytest.fixture(scope="module")
def upload_result(client, small_clip):
    """One reconstruction of the uploaded clip with two models, shared by the tests below."""
    require_lab_weights("sd-vae", "litevae")
    return client.predict(handle_file(str(small_clip)), None, ["sd-vae", "litevae"], 4, 64, "cpu",
                          api_name="/reconstruct")


def _outputs(result):
    assert isinstance(result, (list, tuple)) and len(result) == len(OUTPUT_NAMES), result
    return dict(zip(OUTPUT_NAMES, result))


def test_api_outputs_follow_the_tab():
    from vaelab.ui import tab_reconstruct

    assert [k for k in tab_reconstruct.OUTPUTS if k not in ("state", "shown")] == [
        {"slider": "frame", "frame_plot": "enlarged"}.get(k, k) for k in OUTPUT_NAMES]


def _rows(table: dict) -> list[dict]:
    return [dict(zip(table["headers"], row)) for row in table["data"]]


def _assert_playable_mp4(path) -> dict:
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 0, path
    info = probe(path)
    assert info["codec"] == "h264", info
    assert info["pix_fmt"] == "yuv420p", info
    assert "mp4" in info["format"], info
    return info


# --------------------------------------------------------------------------- API shape


def test_api_lists_endpoints(client):
    api = client.view_api(return_format="dict", print_info=False)
    endpoints = api["named_endpoints"]
    assert {"/reconstruct", "/show_frame", "/wavelets", "/model_cards", "/swap", "/show_swap_frame",
            "/latent_space", "/latent_patch", "/caption_effect", "/branch_ablation"} <= set(endpoints)
    params = [p["parameter_name"] for p in endpoints["/reconstruct"]["parameters"]]
    assert params == ["upload", "example", "model_names", "frames", "size", "device", "tiling", "tile", "overlap",
                      "chunk", "custom_model", "custom_weights", "caption", "precision"]
    optional = {p["parameter_name"] for p in endpoints["/reconstruct"]["parameters"] if p["parameter_has_default"]}
    assert {"tiling", "tile", "overlap", "chunk", "custom_model", "custom_weights", "caption", "precision"} <= optional, \
        "old 6-argument clients keep working"


def test_model_cards_lists_every_model(client):
    html = client.predict(api_name="/model_cards")
    assert isinstance(html, str)
    for name in models.names():
        assert f'id="family-{name}"' in html, name
    assert html.count("<svg") == len(models.names())  # one block diagram per family
    assert "Parameters" in html and "Weights" in html  # the full card, in its closed section


# --------------------------------------------------------------------------- reconstruct


def test_reconstruct_upload_video(upload_result, small_clip):
    out = _outputs(upload_result)

    info = _assert_playable_mp4(out["video"])
    # input | sd-vae | litevae side by side, each 96x64 (the clip's own size at short side 64) + label strip
    assert info["width"] >= 3 * 96 and info["height"] > 64, info

    slider = out["slider"]
    assert slider.get("maximum") == 3 and slider.get("value") == 0  # 4 frames -> indices 0..3

    for key in ("frame_plot", "curves"):
        assert out[key] and out[key]["type"] == "plotly" and out[key]["plot"], key

    rows = _rows(out["table"])
    assert [r["model"] for r in rows] == ["sd-vae", "litevae"]
    for r in rows:
        for col in ("PSNR dB", "pooled PSNR dB", "SSIM"):
            v = r[col]
            assert isinstance(v, (int, float)) and math.isfinite(v), (col, v)
        assert 0 < r["PSNR dB"] <= 100
        assert -1 <= r["SSIM"] <= 1
        assert r["latent (C,T,H,W)"].count("x") == 3

    notes = out["notes"]
    assert "How the numbers are computed" in notes
    for key in ("psnr", "ssim", "lpips"):
        assert f"*{key}*" in notes, key
    assert "LPIPS" in notes  # available, or why not

    assert out["codebook"].get("visible") is False  # no VQGAN selected
    assert out["groups"].get("visible") is False  # no 4x temporal video model selected
    for name in ("input", "sd-vae", "litevae"):
        assert f'data-key="{name}"' in out["gallery"]
    assert out["gallery"].count("<img") == 3 and out["errors"].count("<img") == 2
    assert "On screen:" in out["status"] and "frames 4" in out["status"] and "ran cpu" not in out["status"]
    for r in rows:
        assert re.fullmatch(r"cpu (fp32|bf16)", r["ran on"]) and r["compression"].endswith("(float values)")
        mean, p95 = (float(v) for v in r["colour ΔE00 mean / p95"].split(" / "))
        assert 0 <= mean <= p95
        assert re.fullmatch(r"(\d+ %|-) · ([+-]\d+°|-)", r["chroma kept · hue shift"]), r["chroma kept · hue shift"]


def test_show_frame_uses_session_state(client, upload_result):
    gallery, errors, fig = client.predict(2, "litevae", "colour difference ΔE00 (CIELAB, per pixel)",
                                          api_name="/show_frame")
    assert "frame 2" in gallery and 'data-key="sd-vae"' in gallery
    assert "ΔE00" in errors
    assert fig and fig["type"] == "plotly" and "litevae" in fig["plot"] and "sd-vae" not in fig["plot"]


def test_reconstruct_example_without_upload(client):
    require_lab_weights("litevae")
    out = _outputs(client.predict(None, "bikes", ["litevae"], 2, 64, "cpu", api_name="/reconstruct"))
    _assert_playable_mp4(out["video"])
    rows = _rows(out["table"])
    assert [r["model"] for r in rows] == ["litevae"]
    assert math.isfinite(rows[0]["PSNR dB"])


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def bad_files(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 20)
    return {"empty": empty, "text": text}


@pytest.mark.parametrize("case, expected", [
    ("empty", "the file is empty"),
    ("text", "not a video or image"),
    ("no_models", "Select at least one model"),
    ("nothing", "Upload a video or image, or pick an example"),
    ("too_heavy", "too heavy"),
])
def test_bad_input_gives_clear_error(client, small_clip, bad_files, case, expected):
    args = {
        "empty": (handle_file(str(bad_files["empty"])), None, ["litevae"], 2, 64, "cpu"),
        "text": (handle_file(str(bad_files["text"])), None, ["litevae"], 2, 64, "cpu"),
        "no_models": (handle_file(str(small_clip)), None, [], 2, 64, "cpu"),
        "nothing": (None, None, ["litevae"], 2, 64, "cpu"),
        # 6 frames x 768x512 x 3 models is over the CPU work cap; refused before any model runs
        "too_heavy": (handle_file(str(small_clip)), None, models.names(), 6, 512, "cpu"),
    }[case]
    with pytest.raises(AppError) as info:
        client.predict(*args, api_name="/reconstruct")
    msg = str(info.value)
    assert expected in msg, msg
    if case == "too_heavy":
        assert "What fits:" in msg, msg
    assert "Traceback" not in msg and "/tmp/" not in msg and "Reconstruction failed" not in msg, msg


def test_server_survives_bad_input(client, small_clip, bad_files):
    require_lab_weights("litevae")
    with pytest.raises(AppError):
        client.predict(handle_file(str(bad_files["text"])), None, ["litevae"], 1, 32, "cpu",
                       api_name="/reconstruct")
    out = _outputs(client.predict(handle_file(str(small_clip)), None, ["litevae"], 1, 32, "cpu",
                                  api_name="/reconstruct"))
    _assert_playable_mp4(out["video"])
    assert [r["model"] for r in _rows(out["table"])] == ["litevae"]


def test_tiling_reports_seams(client, small_clip):
    require_lab_weights("sd-vae")
    out = client.predict(handle_file(str(small_clip)), None, ["sd-vae"], 2, 64, "cpu", True, 32, 0,
                         api_name="/reconstruct")
    notes = _outputs(out)["notes"]
    assert "tiles 32 px" in _outputs(out)["status"]
    assert "sd-vae tiling:" in notes and "seam score" in notes


def test_video_model_shows_group_positions(client, small_clip):
    """With a trained 4x-temporal video model, the per-position PSNR plot appears (6 frames -> padded to 9)."""
    video = [n for n in models.names() if models.card(n).kind == "video" and models.card(n).temporal_factor == 4
             and hasattr(models.model_class(n), "encode_chunk")]  # a causal streamed one (iv-vae, walt)
    if not video:
        pytest.skip("no trained 4x temporal video model ships yet")
    out = _outputs(client.predict(handle_file(str(small_clip)), None, video[:1], 6, 64, "cpu",
                                  api_name="/reconstruct"))
    groups = out["groups"]
    assert groups.get("visible") is not False
    fig = groups.get("value") or groups  # a component update carries the figure under "value"
    assert fig["type"] == "plotly" and '"3rd"' in fig["plot"] and video[0] in fig["plot"]
    rows = _rows(out["table"])
    assert rows[0]["model"] == video[0]
    assert "padded to 9" in out["notes"] and "streamed causally" in out["notes"]


def test_inside_the_model_experiments_use_the_last_input(app_server, small_clip):
    """Caption right/none/wrong (VideoVAE+) and zeroed branches (IV-VAE) on the last Reconstruct input; before
    any run they say what to do."""
    require_lab_weights("sd-vae", "videovae-plus", "iv-vae")
    c = Client(app_server, verbose=False)  # its own session: its own last result
    with pytest.raises(AppError, match="Run Reconstruct first"):
        c.predict("a street", "", 0, "cpu", api_name="/caption_effect")
    out = _outputs(c.predict(handle_file(str(small_clip)), None, ["sd-vae", "videovae-plus"], 5, 64, "cpu", False,
                             64, 16, 4, None, "", "a moving grey gradient", api_name="/reconstruct"))
    assert "a moving grey gradient" in out["notes"]
    curves, images, notes = c.predict("a moving grey gradient", "", 2, "cpu", api_name="/caption_effect")
    assert "right vs none" in notes and "scanned page" in notes  # the default wrong caption
    assert "wrong caption" in curves["plot"] and "frame 2" in images["plot"]
    images, bars, notes = c.predict(1, "cpu", api_name="/branch_ablation")
    assert "keyframe branch zeroed" in notes and "temporal branch zeroed" in notes
    assert '"4th"' in bars["plot"]
