"""Switching Precision in the Reconstruct tab: the table and notes say which precision ran, fp16 on a CPU (and
bf16 on a CPU without native bf16 units) is refused with one line and the earlier result stays on screen.

Uses the ``app_server`` of conftest and the browser/page fixtures of test_browser.py; one image model, 2 frames
at 64 px, so it is about the wiring, not the model."""
from __future__ import annotations

import pytest
from conftest import _native_bf16, require_lab_weights
from test_browser import (  # noqa: F401
    browser,
    choose_cpu,
    choose_models,
    expect_error_toast,
    page,
    run_and_wait,
    set_slider,  # browser, page: fixtures used by name
)

pytestmark = pytest.mark.browser
NATIVE_BF16 = _native_bf16()[0]  # without it bf16 is refused (one line), so the tests check that instead
EMULATED = "bf16 would be emulated on this CPU"


def test_switching_precision_shows_what_ran(page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    require_lab_weights("vqgan")
    choose_models(page, ["vqgan"])
    set_slider(page, "frames", 2)
    set_slider(page, "size", 64)
    choose_cpu(page)
    page.locator("#precision input[value=fp32]").check()
    run_and_wait(page)
    table = page.locator("#table")
    expect(table).to_contain_text("cpu fp32", timeout=60_000)

    page.locator("#precision input[value=bf16]").check()
    page.locator("#run").click()
    if NATIVE_BF16:
        expect(table).to_contain_text("cpu bf16", timeout=180_000)
        expect(page.locator("#vaelab-notes")).to_contain_text("ran in bf16")
        shown = "cpu bf16"
    else:  # emulated bf16 would take ~100x longer: refused, the fp32 result stays
        expect_error_toast(page, EMULATED)
        expect(table).to_contain_text("cpu fp32")
        shown = "cpu fp32"
    page.screenshot(path=str(tmp_path / "precision_bf16.png"), full_page=True)

    page.locator("#precision input[value=fp16]").check()  # GPU-only: one clear line, the last result stays
    page.locator("#run").click()
    expect_error_toast(page, "fp16 runs only on a GPU")
    expect(table).to_contain_text(shown)


def test_inside_the_model_precision_changes_what_ran(page, tmp_path):  # noqa: F811
    """The Inside the model tab has its own Precision next to Device; its notes say which device and precision
    the experiment ran in, and follow the choice; fp16 on a CPU is one clear line."""
    from playwright.sync_api import expect

    require_lab_weights("iv-vae")
    choose_models(page, ["iv-vae"])
    set_slider(page, "frames", 5)
    set_slider(page, "size", 64)
    choose_cpu(page)
    page.locator("#precision input[value=fp32]").check()
    run_and_wait(page)

    page.get_by_role("tab", name="Inside the model").click()
    page.locator("#inside-device input[value=cpu]").check()
    notes = page.locator("#branch-notes")
    page.locator("#inside-precision input[value=fp32]").check()
    page.locator("#branch-run").click()
    expect(notes).to_contain_text("ran on cpu fp32", timeout=180_000)
    page.locator("#inside-precision input[value=bf16]").check()
    page.locator("#branch-run").click()
    if NATIVE_BF16:
        expect(notes).to_contain_text("ran on cpu bf16", timeout=180_000)
        expect(notes).not_to_contain_text("ran on cpu fp32")
    else:
        expect_error_toast(page, EMULATED)
        expect(notes).to_contain_text("ran on cpu fp32")
    page.screenshot(path=str(tmp_path / "inside_bf16.png"), full_page=True)
    page.locator("#inside-precision input[value=fp16]").check()
    page.locator("#branch-run").click()
    expect_error_toast(page, "fp16 runs only on a GPU")
    assert not page.js_errors, page.js_errors
