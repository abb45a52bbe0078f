"""The web app as a visitor sees it: headless Chromium (system binary) driving ``python app.py``.

Skipped with a clear reason when /usr/bin/chromium is missing. Never runs ``playwright install``.
Each reconstruction is kept tiny (few frames, 64 px, one or two models): the point is the wiring
(upload -> run -> video, plots, table; errors as toasts that keep earlier outputs), not the models.
"""
from __future__ import annotations

import contextlib
import re

import pytest
from conftest import require_lab_weights

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
RENDER_TIMEOUT_MS = 180_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser(chromium_executable):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def open_app(browser, url: str, width: int = 1400, height: int = 1100):
    """A fresh browser context on the app's page, loaded; ``page.js_errors`` collects uncaught JS errors."""
    context = browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url + "/", wait_until="domcontentloaded")
    pg.wait_for_selector("#run", state="visible")
    pg.js_errors = errors  # for failure messages
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def page(browser, app_server):
    with open_app(browser, app_server) as pg:
        yield pg


# --------------------------------------------------------------------------- helpers


def set_slider(page, elem_id: str, value: int) -> None:
    """Type a value into a gr.Slider's number box and commit it with Enter."""
    from playwright.sync_api import expect

    box = page.locator(f"#{elem_id} input[type=number]")
    slider = page.locator(f"#{elem_id} input[type=range]")
    box.fill(str(value))
    box.press("Enter")
    try:
        expect(slider).to_have_value(str(value), timeout=5000)
    except AssertionError:  # a late re-render of the tab (its defaults arriving) reset the slider: type it again
        box.fill(str(value))
        box.press("Enter")
        expect(slider).to_have_value(str(value), timeout=15000)


def choose_models(page, keep: list[str], group: str = "#models") -> None:
    """Tick exactly the ``keep`` boxes of a CheckboxGroup (``group`` selects it)."""
    from playwright.sync_api import expect

    boxes = page.locator(f"{group} input[type=checkbox]")
    for i in range(boxes.count()):
        box = boxes.nth(i)
        name = box.get_attribute("name")
        if name in keep:
            box.check()
            expect(box).to_be_checked()
        else:
            box.uncheck()
            expect(box).not_to_be_checked()


def choose_cpu(page) -> None:
    page.locator("#device input[value=cpu]").check()


def wait_for_plots(page, *selectors: str) -> None:
    """Wait until each selector's Plotly plot is attached; on a timeout, fail with the toasts and JS errors."""
    for sel in selectors:
        try:
            page.wait_for_selector(f"{sel} .js-plotly-plot", state="attached", timeout=RENDER_TIMEOUT_MS)
        except Exception as e:  # noqa: BLE001 - re-raise with what the page shows
            toasts = page.locator("[data-testid=toast-body]").all_inner_texts()
            raise AssertionError(f"{sel} never rendered; toasts: {toasts}; JS errors: {page.js_errors}") from e


def expect_error_toast(page, text: str) -> None:
    """A toast containing ``text`` shows, written for a visitor (no traceback)."""
    from playwright.sync_api import expect

    toast = page.locator("[data-testid=toast-body]").filter(has_text=text)
    expect(toast.first).to_be_visible(timeout=60_000)
    expect(toast.first).not_to_contain_text("Traceback")


def run_and_wait(page) -> None:
    page.locator("#run").click()
    wait_for_plots(page, "#curves", "#frame-plot")


def video_src(page) -> str:
    video = page.locator("#side-by-side video")
    video.first.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)
    return video.first.get_attribute("src") or ""


# --------------------------------------------------------------------------- tests


def test_upload_run_renders_everything(page, small_clip, tmp_path):
    from playwright.sync_api import expect

    require_lab_weights("sd-vae", "litevae")
    page.set_input_files("#upload input[type=file]", str(small_clip))
    # upload finished: the file row shows the name (Gradio renders stem and extension apart: "gradient .mp4")
    expect(page.locator("#upload")).to_contain_text(
        re.compile(re.escape(small_clip.stem) + r"\s*" + re.escape(small_clip.suffix)), timeout=60_000)
    set_slider(page, "frames", 4)
    set_slider(page, "size", 64)
    choose_models(page, ["sd-vae", "litevae"])
    choose_cpu(page)

    run_and_wait(page)

    src = video_src(page)
    assert src, "the side-by-side <video> has no src"
    # The file the <video> points at is served and is an MP4 ('ftyp' box first).
    resp = page.request.get(src)
    assert resp.status == 200, resp.status
    assert resp.body()[4:8] == b"ftyp"
    # ...and this browser can actually decode it (H.264 yuv420p): metadata gives a frame size.
    page.wait_for_function("() => { const v = document.querySelector('#side-by-side video');"
                           " return v && v.videoWidth > 0 && v.videoHeight > 0; }", timeout=60_000)

    table = page.locator("#table")
    expect(table).to_contain_text("sd-vae")
    expect(table).to_contain_text("litevae")
    expect(table).not_to_contain_text("vqgan")
    expect(table).to_contain_text("PSNR")
    expect(page.locator("#vaelab-notes")).to_contain_text("How the numbers are computed")
    expect(page.locator("#rec-gallery .vaelab-tile")).to_have_count(3)  # input, sd-vae, litevae

    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)
    assert not page.js_errors, page.js_errors


def test_example_run_then_error_keeps_outputs(page):
    from playwright.sync_api import expect

    require_lab_weights("litevae")
    combo = page.locator("#example input[role=combobox]")
    combo.click()
    page.get_by_role("option", name="bikes", exact=True).click()
    expect(combo).to_have_value("bikes")
    set_slider(page, "frames", 2)
    set_slider(page, "size", 64)
    choose_models(page, ["litevae"])
    choose_cpu(page)

    run_and_wait(page)
    assert video_src(page)
    expect(page.locator("#table")).to_contain_text("litevae")

    # No model selected: a readable error toast, and the previous results stay on the page.
    choose_models(page, [])
    page.locator("#run").click()
    expect_error_toast(page, "Select at least one model")
    expect(page.locator("#curves .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#frame-plot .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#table")).to_contain_text("litevae")
    assert video_src(page)
    assert not page.js_errors, page.js_errors


def test_models_tab_shows_cards(page):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Models").click()
    cards = page.locator("#cards")
    expect(cards).to_be_visible()
    expect(cards).to_contain_text("LiteVAE", timeout=60_000)
    expect(cards).to_contain_text("VQGAN")
    expect(cards).to_contain_text("Parameters")


def test_wavelets_tab_after_a_run(page, tmp_path):
    from playwright.sync_api import expect

    require_lab_weights("sd-vae", "hvdm")
    set_slider(page, "frames", 4)
    set_slider(page, "size", 64)
    choose_models(page, ["sd-vae", "hvdm"])
    choose_cpu(page)
    run_and_wait(page)

    page.get_by_role("tab", name="Wavelets").click()
    page.locator("#wavelet-run").click()
    page.wait_for_selector("#wavelet-bars .js-plotly-plot", state="attached", timeout=RENDER_TIMEOUT_MS)
    expect(page.locator("#wavelet-mosaic .vaelab-tile")).to_have_count(3)  # input, sd-vae, hvdm
    expect(page.locator("#wavelet-notes")).to_contain_text("of its error is in band")
    # HVDM's own panel: its triplane planes and the branch ablations
    page.wait_for_selector("#wavelet-hvdm .js-plotly-plot", state="attached", timeout=RENDER_TIMEOUT_MS)
    expect(page.locator("#wavelet-hvdm")).to_contain_text("wavelet only")
    expect(page.locator("#wavelet-notes")).to_contain_text("hvdm branches")
    # the 3D transform over time, on the same result
    page.locator("#wavelet-mode input[value^='3D']").check()
    page.locator("#wavelet-run").click()
    expect(page.locator("#wavelet-bars")).to_contain_text("HHH", timeout=RENDER_TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "wavelets.png"), full_page=True)
    assert not page.js_errors, page.js_errors


def test_video_models_and_inside_the_model(page, tmp_path):
    """Two video VAEs (IV-VAE streamed causally, VideoVAE+ with a caption) run in the browser, then the Inside
    the model tab compares captions and zeroes IV-VAE's branches on the same input."""
    from playwright.sync_api import expect

    require_lab_weights("iv-vae", "videovae-plus")
    set_slider(page, "frames", 5)
    set_slider(page, "size", 64)
    choose_models(page, ["iv-vae", "videovae-plus"])
    choose_cpu(page)
    expect(page.locator("#caption textarea")).to_have_value(re.compile("rabbit"))  # the example's caption
    run_and_wait(page)
    expect(page.locator("#group-psnr .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#vaelab-notes")).to_contain_text("streamed causally")
    expect(page.locator("#vaelab-notes")).to_contain_text("rabbit")

    page.get_by_role("tab", name="Inside the model").click()
    expect(page.locator("#inside-frame input[type=range]")).to_have_attribute("max", "4")  # fitted to 5 frames
    set_slider(page, "inside-frame", 3)
    expect(page.locator("#caption-right textarea")).to_have_value(re.compile("rabbit"))
    page.locator("#caption-run").click()
    expect(page.locator("#caption-notes")).to_contain_text("right vs none", timeout=RENDER_TIMEOUT_MS)
    expect(page.locator("#caption-images .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#caption-images")).to_contain_text("frame 3")
    page.locator("#branch-run").click()
    expect(page.locator("#branch-notes")).to_contain_text("temporal branch zeroed", timeout=RENDER_TIMEOUT_MS)
    expect(page.locator("#branch-bars .js-plotly-plot")).to_have_count(1)
    page.screenshot(path=str(tmp_path / "inside.png"), full_page=True)
    assert not page.js_errors, page.js_errors
