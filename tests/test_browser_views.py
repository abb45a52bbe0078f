"""Every view with all nine models, and the behaviours a new visitor trips over, in headless Chromium.

One nine-model Reconstruct run (3 frames, 64 px: the layout is the point, not the models) is checked at
1440x1000 and 1024x768: tiles at least 200 px wide at 1440 px, titles whose boxes never overlap, a side-by-side
video laid out as a grid of rows. Screenshots of every view go to the test's tmp dir. Never runs
``playwright install``.
"""
from __future__ import annotations

import re

import pytest
from conftest import require_lab_weights
from test_browser import (  # noqa: F401
    RENDER_TIMEOUT_MS,
    browser,
    choose_cpu,
    choose_models,
    expect_error_toast,
    open_app,
    run_and_wait,
    set_slider,
    video_src,
    wait_for_plots,
)

from vaelab import models

pytestmark = pytest.mark.browser

NINE = ["vqgan", "sd-vae", "litevae", "cv-vae", "iv-vae", "videovae-plus", "hvdm", "vidtwin", "walt"]
SIZES = [(1440, 1000), (1024, 768)]


def _boxes(page, selector: str) -> list[dict]:
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null)
        .map(e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height,
                                                                  text: e.innerText}; })""", selector)


def _overlaps(boxes: list[dict]) -> list[tuple[str, str]]:
    out = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a["x"] < b["x"] + b["w"] - 0.5 and b["x"] < a["x"] + a["w"] - 0.5 and \
               a["y"] < b["y"] + b["h"] - 0.5 and b["y"] < a["y"] + a["h"] - 0.5:
                out.append((a["text"], b["text"]))
    return out


def _nine_model_run(page) -> None:
    set_slider(page, "frames", 3)
    set_slider(page, "size", 64)
    choose_models(page, NINE)
    choose_cpu(page)
    run_and_wait(page)


@pytest.fixture(scope="module")
def nine(browser, app_server):  # noqa: F811
    """One page per viewport size with a nine-model run on screen (the run happens once per size)."""
    require_lab_weights(*NINE)
    pages = {}
    with open_app(browser, app_server, *SIZES[0]) as big, open_app(browser, app_server, *SIZES[1]) as small:
        for (w, h), pg in zip(SIZES, (big, small)):
            _nine_model_run(pg)
            pages[(w, h)] = pg
        yield pages


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_nine_models_reconstruct_layout(nine, size, tmp_path):
    from playwright.sync_api import expect

    page = nine[size]
    tiles = _boxes(page, "#rec-gallery .vaelab-tile")
    assert len(tiles) == 10, tiles  # input + nine models
    if size[0] == 1440:
        assert min(t["w"] for t in tiles) >= 200, [round(t["w"]) for t in tiles]
    rows = sorted({round(t["y"]) for t in tiles})
    assert len(rows) >= 2, "ten tiles must wrap into rows"
    for sel in ("#rec-gallery .vaelab-tile figcaption", "#rec-errors .vaelab-tile figcaption",
                "#rec-gallery .vaelab-tile img"):
        boxes = _boxes(page, sel)
        assert boxes and not _overlaps(boxes), (sel, _overlaps(boxes))
    # name and numbers on separate lines, inside the tile
    for t in _boxes(page, "#rec-gallery .vaelab-tile figcaption")[1:]:
        assert "dB" in t["text"] and "\n" in t["text"], t
    err_tiles = _boxes(page, "#rec-errors .vaelab-tile")
    assert len(err_tiles) == 9 and (size[0] != 1440 or min(t["w"] for t in err_tiles) >= 200)
    expect(page.locator("#rec-errors .vaelab-colourbar")).to_contain_text("0-255")
    # the side-by-side video is a grid of rows, not a 900x73 strip
    page.wait_for_function("() => { const v = document.querySelector('#side-by-side video');"
                           " return v && v.videoWidth > 0; }", timeout=60_000)
    vw, vh = page.evaluate("() => { const v = document.querySelector('#side-by-side video');"
                           " return [v.videoWidth, v.videoHeight]; }")
    assert vw / vh < 6, (vw, vh)
    # the table says where and in what precision each model ran, and VQGAN's code size in bits
    table = page.locator("#table")
    expect(table).to_contain_text(re.compile(r"cpu (fp32|bf16)"))
    expect(table).to_contain_text("bits/px")
    expect(page.locator("#rec-status")).to_contain_text("On screen:")
    page.screenshot(path=str(tmp_path / f"reconstruct-9-{size[0]}x{size[1]}.png"), full_page=True)


def test_nine_models_enlarge_by_click(nine):
    from playwright.sync_api import expect

    page = nine[SIZES[0]]
    page.locator("#rec-gallery .vaelab-tile[data-key=walt]").click()
    expect(page.locator("#enlarge input[value=walt]")).to_be_checked()
    expect(page.locator("#frame-plot")).to_contain_text("walt", timeout=60_000)
    set_slider(page, "frame", 2)
    expect(page.locator("#rec-gallery")).to_contain_text("frame 2", timeout=60_000)
    expect(page.locator("#frame-plot")).to_contain_text("walt")


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_nine_models_other_views(nine, size, tmp_path):
    """Wavelets, Inside the model, Models and the curves with nine models: no overlapping titles, screenshots."""
    from playwright.sync_api import expect

    page = nine[size]
    page.screenshot(path=str(tmp_path / f"curves-{size[0]}.png"), full_page=True)
    page.get_by_role("tab", name="Wavelets").click()
    expect(page.locator("#wavelet-frame input[type=range]")).to_have_attribute("max", "2")  # fitted to 3 frames
    page.locator("#wavelet-run").click()
    wait_for_plots(page, "#wavelet-bars")
    tiles = _boxes(page, "#wavelet-mosaic .vaelab-tile")
    assert len(tiles) == 10 and not _overlaps(_boxes(page, "#wavelet-mosaic figcaption"))
    if size[0] == 1440:
        assert min(t["w"] for t in tiles) >= 200
    # a frame change re-renders without another click
    set_slider(page, "wavelet-frame", 1)
    expect(page.locator("#wavelet-mosaic")).to_contain_text("frame 1", timeout=RENDER_TIMEOUT_MS)
    _no_overlapping_plot_titles(page, "#wavelet-hvdm")
    page.screenshot(path=str(tmp_path / f"wavelets-9-{size[0]}.png"), full_page=True)

    page.get_by_role("tab", name="Models").click()
    expect(page.locator(".vaelab-diagram")).to_have_count(len(models.available()), timeout=120_000)
    expect(page.locator("#models-table")).to_contain_text("held-out PSNR dB")
    expect(page.locator("#models-table")).to_contain_text("latent for the current input")
    page.screenshot(path=str(tmp_path / f"models-{size[0]}.png"), full_page=True)
    page.get_by_role("tab", name="Reconstruct").click()


def _no_overlapping_plot_titles(page, sel: str) -> None:
    boxes = _boxes(page, f"{sel} .annotation-text, {sel} .gtitle")
    assert not _overlaps(boxes), _overlaps(boxes)


def test_latent_space_many_models(browser, app_server, tmp_path):  # noqa: F811
    """Every shipped video model in the Latent space tab: square-ish plots, readable panel titles."""
    from playwright.sync_api import expect

    video = [n for n in models.names() if models.model_class(n).card.kind == "video"]
    if len(video) < 2:
        pytest.skip("needs two or more trained video models")
    for w, h in SIZES:
        with open_app(browser, app_server, w, h) as page:
            page.get_by_role("tab", name="Latent space").click()
            set_slider(page, "latent-frames", 2)
            set_slider(page, "latent-size", 64)
            choose_models(page, video, "#latent-models")
            page.locator("#latent-run").click()
            wait_for_plots(page, "#latent-umap", "#latent-pca")
            for sel in ("#latent-umap", "#latent-pca"):
                box = _boxes(page, f"{sel} .js-plotly-plot")[0]
                assert box["h"] / box["w"] < 1.6, box
                _no_overlapping_plot_titles(page, sel)
            expect(page.locator("#latent-teach")).to_be_hidden()  # the reading guide is one click away
            page.screenshot(path=str(tmp_path / f"latents-{w}.png"), full_page=True)


def test_swap_verdict_and_size_follows_frames(browser, app_server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    require_lab_weights("vidtwin")
    with open_app(browser, app_server, *SIZES[0]) as page:
        page.get_by_role("tab", name="Structure x Dynamics").click()
        set_slider(page, "swap-frames", 32)
        size_range = page.locator("#swap-size input[type=range]")
        expect(size_range).not_to_have_attribute("max", "256", timeout=30_000)
        assert int(size_range.get_attribute("max")) < 256
        set_slider(page, "swap-frames", 4)
        set_slider(page, "swap-size", 64)
        page.locator("#swap-device input[value=cpu]").check()
        page.locator("#swap-run").click()
        expect(page.locator("#swap-notes")).to_contain_text("Verdict", timeout=RENDER_TIMEOUT_MS)
        expect(page.locator("#swap-notes")).to_contain_text(re.compile("the swap worked|only partly a swap"))
        page.screenshot(path=str(tmp_path / "swap.png"), full_page=True)
