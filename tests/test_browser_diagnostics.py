"""The Diagnostics tab as a visitor sees it: headless Chromium (system binary) driving ``python app.py``.

Uses the ``app_server`` of conftest and the browser/page fixtures of test_browser.py. A small probe run (two fast
models, 5 frames, 32 px) must show all eight probe plots, the summary table and the JSON report; bad settings
(no model, a request too heavy for the CPU, a still image for the clip views) give readable toasts and leave the
plots in place; the clip views (rate-distortion, motion-resolved error) render on an example clip.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import require_lab_weights
from test_browser import (  # noqa: F401
    RENDER_TIMEOUT_MS,
    browser,
    choose_models,
    expect_error_toast,
    page,
    set_slider,  # browser, page: fixtures used by name
    wait_for_plots,
)

pytestmark = pytest.mark.browser

PROBE_PLOTS = ("#diag-spatial", "#diag-zone", "#diag-temporal", "#diag-flat", "#diag-colour", "#diag-motion",
               "#diag-frame-count", "#diag-rf")
SHOTS = Path(os.environ.get("VAELAB_SHOTS", "/tmp/vaelab-shots"))  # PNGs to look at, outside the repo


def test_diagnostics_tab_runs_every_probe_and_explains_bad_settings(page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    require_lab_weights("litevae", "hvdm")
    page.get_by_role("tab", name="Diagnostics").click()
    choose_models(page, ["litevae", "hvdm"], group="#diag-models")
    set_slider(page, "diag-frames", 5)
    set_slider(page, "diag-size", 32)
    page.locator("#diag-device input[value=cpu]").check()
    page.locator("#diag-run").click()
    wait_for_plots(page, *PROBE_PLOTS)

    notes = page.locator("#diag-notes")
    expect(notes).to_contain_text("half-gain")
    expect(notes).to_contain_text("litevae")
    expect(notes).to_contain_text("hvdm")
    expect(page.locator("#diag-spatial")).to_contain_text("cycles / pixel")
    expect(page.locator("#diag-rf")).to_contain_text("hvdm: input frame")
    expect(page.locator("#diag-colour")).to_contain_text("mean ΔE00")
    link = page.locator("#diag-json a").first
    link.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)
    body = page.request.get(link.get_attribute("href")).body()
    report = json.loads(body)
    assert set(report["models"]) == {"litevae", "hvdm"}
    assert len(report["models"]["hvdm"]["receptive_field"]["change"]) == 5
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "diagnostics.png"), full_page=True)

    # bad settings: readable toasts, and the plots already shown stay
    choose_models(page, [], group="#diag-models")
    page.locator("#diag-run").click()
    expect_error_toast(page, "Select at least one model")
    boxes = page.locator("#diag-models input[type=checkbox]")
    for i in range(boxes.count()):
        boxes.nth(i).check()
    set_slider(page, "diag-frames", 33)
    set_slider(page, "diag-size", 256)
    page.locator("#diag-run").click()
    expect_error_toast(page, "too heavy for CPU")
    for sel in PROBE_PLOTS:
        expect(page.locator(f"{sel} .js-plotly-plot")).to_have_count(1)

    # the clip views: a photo has no motion, then a short example clip
    choose_models(page, ["litevae", "hvdm"], group="#diag-models")
    combo = page.locator("#diag-example input[role=combobox]")
    combo.click()
    page.get_by_role("option", name="coffee (photo)", exact=True).click()
    page.locator("#diag-clip-run").click()
    expect_error_toast(page, "needs a video")
    combo.click()
    page.get_by_role("option", name="bikes", exact=True).click()
    set_slider(page, "diag-clip-frames", 4)
    set_slider(page, "diag-clip-size", 64)
    page.locator("#diag-clip-run").click()
    wait_for_plots(page, "#diag-rd", "#diag-mre")
    expect(page.locator("#diag-clip-notes")).to_contain_text("floats/px")
    expect(page.locator("#diag-rd")).to_contain_text("Pareto")
    page.screenshot(path=str(SHOTS / "diagnostics-clip.png"), full_page=True)
    assert not page.js_errors, page.js_errors
