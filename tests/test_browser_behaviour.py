"""What misled a new visitor, fixed, in headless Chromium: a refused request keeps the results and says what
fits, the button is disabled while running, captions belong to their clip, the Weights accordion's errors are
one line and its dropdown follows the ticked models, and the empty table has real headers. Never runs
``playwright install``.
"""
from __future__ import annotations

import re

import pytest
from conftest import require_lab_weights
from test_browser import (  # noqa: F401
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

pytestmark = pytest.mark.browser

SIZE = (1440, 1000)

def test_refused_request_keeps_results_and_says_what_fits(browser, app_server):  # noqa: F811
    from playwright.sync_api import expect

    require_lab_weights("sd-vae")
    with open_app(browser, app_server, *SIZE) as page:
        table = page.locator("#table")
        expect(table).to_contain_text("PSNR dB")  # headers before the first run, not "1 2 3"
        expect(table).not_to_contain_text(re.compile(r"^\s*1\s+2\s+3"))
        set_slider(page, "frames", 2)
        set_slider(page, "size", 64)
        choose_models(page, ["sd-vae"])
        choose_cpu(page)
        run_and_wait(page)
        expect(page.locator("#rec-gallery .vaelab-tile")).to_have_count(2)
        src = video_src(page)
        # over the work cap: 64 frames x 512 px x 3 models
        set_slider(page, "frames", 64)
        set_slider(page, "size", 512)
        choose_models(page, ["sd-vae", "litevae", "vqgan"])
        page.locator("#run").click()
        expect_error_toast(page, "What fits")
        status = page.locator("#rec-status")
        expect(status).to_contain_text("Not run", timeout=60_000)
        expect(status).to_contain_text("What fits")
        expect(status).to_contain_text("sd-vae")  # ...and which run is still on screen
        expect(page.locator("#rec-gallery .vaelab-tile")).to_have_count(2)
        expect(table).to_contain_text("sd-vae")
        assert video_src(page) == src
        expect(page.locator("#rec-gallery")).not_to_contain_text("Error")
        expect(page.locator("#curves")).not_to_contain_text("Error")
        expect(page.locator("#table")).not_to_contain_text("Error")
        expect(page.locator("#run")).to_be_enabled()
        assert not page.js_errors, page.js_errors


def test_button_is_disabled_while_running(browser, app_server):  # noqa: F811
    from playwright.sync_api import expect

    require_lab_weights("sd-vae")
    with open_app(browser, app_server, *SIZE) as page:
        set_slider(page, "frames", 2)
        set_slider(page, "size", 64)
        choose_models(page, ["sd-vae"])
        choose_cpu(page)
        page.locator("#run").click()
        expect(page.locator("#run")).to_be_disabled(timeout=5_000)
        expect(page.locator("#rec-status")).to_contain_text("Running")
        wait_for_plots(page, "#curves")
        expect(page.locator("#run")).to_be_enabled(timeout=60_000)
        expect(page.locator("#rec-status")).to_contain_text("frames 2")


def test_caption_follows_the_clip(browser, app_server, small_clip):  # noqa: F811
    """Example -> upload -> example: the caption box (Reconstruct) and the right caption (Inside the model)
    hold the example's caption, none for the upload, then the new example's."""
    from playwright.sync_api import expect

    def right_caption(page):
        page.get_by_role("tab", name="Inside the model").click()
        value = page.locator("#caption-right textarea").input_value(timeout=30_000)
        page.get_by_role("tab", name="Reconstruct").click()
        return value

    with open_app(browser, app_server, *SIZE) as page:
        caption = page.locator("#caption textarea")
        expect(caption).to_have_value(re.compile("rabbit"))
        assert "rabbit" in right_caption(page)
        page.set_input_files("#upload input[type=file]", str(small_clip))
        expect(caption).to_have_value("", timeout=60_000)
        assert right_caption(page) == ""
        page.locator("#upload button[aria-label='Clear']").click()
        expect(caption).to_have_value(re.compile("rabbit"), timeout=30_000)  # the example is the clip again
        combo = page.locator("#example input[role=combobox]")
        combo.click()
        page.get_by_role("option", name="bikes", exact=True).click()
        expect(caption).to_have_value(re.compile(r"\w"), timeout=30_000)
        expect(caption).not_to_have_value(re.compile("rabbit"))
        bikes = caption.input_value()
        assert right_caption(page) == bikes


def test_weights_accordion_defaults_and_one_line_errors(browser, app_server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    require_lab_weights("sd-vae")
    junk = tmp_path / "not-a-checkpoint.safetensors"
    junk.write_bytes(b"hello, I am not a checkpoint")
    with open_app(browser, app_server, *SIZE) as page:
        set_slider(page, "frames", 1)
        set_slider(page, "size", 64)
        choose_models(page, ["litevae"])
        choose_cpu(page)
        page.get_by_text("Weights", exact=True).click()
        expect(page.locator("#custom-model input")).to_have_value("litevae")  # follows the ticked models
        box = page.locator("#custom-weights textarea")
        box.click()
        box.fill(str(junk))
        box.press("Tab")
        expect(box).to_have_value(str(junk))
        page.wait_for_timeout(500)  # the textbox hands its value to the page state on input
        page.locator("#run").click()
        toast = page.locator("[data-testid=toast-body]").filter(has_text="did not load")
        expect(toast.first).to_be_visible(timeout=60_000)
        message = [line for line in toast.first.inner_text().splitlines() if "did not load" in line]
        assert len(message) == 1 and "IndexError" not in message[0] and "Traceback" not in message[0], message
        expect(page.locator("#rec-status")).to_contain_text("did not load")
        choose_models(page, ["sd-vae", "litevae"])
        expect(page.locator("#custom-model input")).to_have_value("litevae")  # kept while it stays ticked
        choose_models(page, ["sd-vae"])
        expect(page.locator("#custom-model input")).to_have_value("sd-vae")
