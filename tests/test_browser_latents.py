"""The "Latent space" tab in headless Chromium (system binary) driving ``python app.py``.

Runs with whatever is shipped: with a trained video model it compares that model's video and image
latents with sd-vae's; without one it checks that the tab says so and shows sd-vae's latents alone.
Kept tiny (2 frames, 64 px, the default 5,000-point cap is not reached). Never runs ``playwright install``.
"""
from __future__ import annotations

import pytest
from conftest import require_lab_weights
from test_browser import (  # noqa: F401
    PNG_MAGIC,
    browser,
    choose_cpu,
    choose_models,
    expect_error_toast,  # browser: the shared fixture
    open_app,
    run_and_wait,
    set_slider,
    wait_for_plots,
)

from vaelab import models

pytestmark = pytest.mark.browser

PLOTS = ("#latent-umap", "#latent-pca")


@pytest.fixture
def page(browser, app_server):  # noqa: F811 - the shared browser fixture, by name
    with open_app(browser, app_server, 1500, 1200) as pg:
        pg.get_by_role("tab", name="Latent space").click()
        pg.wait_for_selector("#latent-run", state="visible")
        yield pg


def _shipped_video_models() -> list[str]:
    return [n for n in models.names() if models.model_class(n).card.kind == "video"]


def _choose_video_models(page, keep: list[str]) -> None:
    choose_models(page, keep, "#latent-models")


def _run_and_wait(page) -> None:
    page.locator("#latent-run").click()
    wait_for_plots(page, *PLOTS)


def _traces(page, sel: str) -> list[dict]:
    """(type, name, number of points) of each trace plotly.js actually drew in the figure (``_fullData``:
    the typed arrays decoded from the base64 the server sent)."""
    return page.evaluate(
        """(sel) => document.querySelector(sel + ' .js-plotly-plot')._fullData.map(
               t => ({type: t.type, name: t.name, n: t.x ? t.x.length : 0}))""", sel)


def test_latent_space_renders_scattergl_and_numbers(page, tmp_path):
    from playwright.sync_api import expect

    require_lab_weights("sd-vae")
    video = _shipped_video_models()[:1]  # the first trained video model, when one ships
    page.locator("#latent-clip-source input[value='Example or upload below']").check()
    set_slider(page, "latent-frames", 2)
    set_slider(page, "latent-size", 64)
    _choose_video_models(page, video)
    expect(page.locator("#latent-reference input[type=checkbox]")).to_be_checked()

    _run_and_wait(page)

    status = page.locator("#latent-status")
    expect(status).to_contain_text("Clip:")
    expect(status).to_contain_text("the example")
    expect(status).to_contain_text("random_state 0, one thread (reproducible)")
    expect(status).to_contain_text("UMAP's")  # the warm-up line: compiled at start-up, or still running
    expected = (["sd-vae · reference"] if not video else
                [f"{video[0]} · video", f"{video[0]} · image", "sd-vae · reference"])
    for sel in PLOTS:
        traces = _traces(page, sel)
        assert [t["name"] for t in traces] == expected, traces
        assert all(t["type"] == "scattergl" and t["n"] > 0 for t in traces), traces
        # WebGL really drew: plotly's gl canvas exists and has a size
        assert page.evaluate("(sel) => { const c = document.querySelector(sel + ' canvas');"
                             " return !!c && c.width > 0 && c.height > 0; }", sel)
    expect(page.locator("#latent-table")).to_contain_text("sd-vae")
    if video:
        expect(page.locator("#latent-table")).to_contain_text("video vs image")
        expect(page.locator("#latent-compat")).to_contain_text(video[0])
    else:
        expect(status).to_contain_text("no video VAE ships trained weights yet")
        expect(page.locator("#latent-no-video")).to_contain_text("No video VAE ships trained weights yet")
    expect(page.locator("#latent-bars .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#latent-teach")).to_be_hidden()  # the long guide is one click away...
    page.get_by_text("How to read the latent space").click()
    expect(page.locator("#latent-teach")).to_contain_text("Good overlap")  # ...and there

    # A mouse click on a plotted point fills its number and shows the input patch it came from.
    page.locator("#latent-pca").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    spot = page.evaluate("""() => { const gd = document.querySelector('#latent-pca .js-plotly-plot');
        const t = gd._fullData[gd._fullData.length - 1], i = Math.floor(t.x.length / 2);
        const xa = gd._fullLayout[t.xaxis.replace('x', 'xaxis')], ya = gd._fullLayout[t.yaxis.replace('y', 'yaxis')];
        const r = gd.getBoundingClientRect();
        return {x: r.left + xa._offset + xa.l2p(t.x[i]), y: r.top + ya._offset + ya.l2p(t.y[i])}; }""")
    page.mouse.move(spot["x"], spot["y"])
    page.mouse.click(spot["x"], spot["y"])
    caption = page.locator("#latent-patch-caption")
    expect(caption).to_contain_text("Point #", timeout=60_000)
    number = page.locator("#latent-point input[type=number]").input_value()
    expect(caption).to_contain_text(f"Point #{number}:")  # the clicked point (nearest to the mouse)
    expect(caption).to_contain_text("input frame")
    page.wait_for_selector("#latent-patch img", state="attached", timeout=60_000)
    # ...and typing a number works too
    box = page.locator("#latent-point input[type=number]")
    box.fill("0")
    page.locator("#latent-show-patch").click()
    expect(caption).to_contain_text("Point #0:", timeout=60_000)

    shot = tmp_path / "latents.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(PNG_MAGIC)
    assert not page.js_errors, page.js_errors


def test_reconstruct_input_then_error_keeps_plots(page):
    from playwright.sync_api import expect

    require_lab_weights("sd-vae")
    # a Reconstruct run first: its input is what this tab uses by default
    page.get_by_role("tab", name="Reconstruct").click()
    set_slider(page, "frames", 1)
    set_slider(page, "size", 64)
    choose_models(page, ["sd-vae"])
    choose_cpu(page)
    run_and_wait(page)
    page.get_by_role("tab", name="Latent space").click()
    expect(page.locator("#latent-clip-source input[value=\"Reconstruct tab's input\"]")).to_be_checked()
    _choose_video_models(page, [])
    _run_and_wait(page)
    status = page.locator("#latent-status")
    expect(status).to_contain_text("the Reconstruct tab's last input, first 1 frame(s) at")

    # Nothing selected: a readable error toast, and what is on screen stays.
    page.locator("#latent-reference input[type=checkbox]").uncheck()
    page.locator("#latent-run").click()
    expect_error_toast(page, "Select at least one video model")
    for sel in PLOTS:
        expect(page.locator(f"{sel} .js-plotly-plot")).to_have_count(1)
    expect(status).to_contain_text("the Reconstruct tab's last input")
    assert not page.js_errors, page.js_errors
