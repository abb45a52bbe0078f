"""The Structure x Dynamics tab as a visitor sees it: headless Chromium (system binary) driving ``python app.py``.

Uses the ``app_server`` of conftest and the browser/page fixtures of test_browser.py. One small swap (8 frames,
64 px): an example clip A and an uploaded clip B of another size and length, so the alignment notes show; then
the frame slider, and a broken upload whose error toast leaves the results in place.
"""
from __future__ import annotations

import re

import pytest
from conftest import require_lab_weights
from test_browser import (  # noqa: F401
    RENDER_TIMEOUT_MS,
    browser,
    expect_error_toast,
    page,
    set_slider,
    wait_for_plots,  # browser, page: fixtures used by name
)

pytestmark = pytest.mark.browser


def _wait_for_plots(pg) -> None:
    wait_for_plots(pg, "#swap-frame-plot", "#swap-attention")


def test_swap_tab_runs_and_keeps_results_on_error(page, small_clip, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    require_lab_weights("vidtwin")
    page.get_by_role("tab", name="Structure x Dynamics").click()
    expect(page.locator("#swap-status")).to_contain_text("lab weights", timeout=60_000)
    combo = page.locator("#swap-example-a input[role=combobox]")
    combo.click()
    page.get_by_role("option", name="bikes", exact=True).click()
    expect(combo).to_have_value("bikes")
    page.set_input_files("#swap-upload-b input[type=file]", str(small_clip))  # 6 frames of 96x64
    # the file row may wrap the name ("gradient" / ".mp4") in a narrow column
    expect(page.locator("#swap-upload-b")).to_contain_text(re.compile(r"gradient\s*\.mp4"), timeout=60_000)
    set_slider(page, "swap-frames", 8)
    set_slider(page, "swap-size", 64)
    page.locator("#swap-device input[value=cpu]").check()

    page.locator("#swap-run").click()
    _wait_for_plots(page)

    video = page.locator("#swap-video video")
    video.first.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)
    src = video.first.get_attribute("src") or ""
    resp = page.request.get(src)
    assert resp.status == 200 and resp.body()[4:8] == b"ftyp"
    page.wait_for_function("() => { const v = document.querySelector('#swap-video video');"
                           " return v && v.videoWidth > 0; }", timeout=60_000)
    frame_plot = page.locator("#swap-frame-plot")
    for title in ("clip A", "structure A + dynamics B", "structure B + dynamics A", "B dynamics only"):
        expect(frame_plot).to_contain_text(title)
    attention = page.locator("#swap-attention")
    expect(attention).to_contain_text("query 3")
    expect(attention).to_contain_text("each row sums to 1")
    notes = page.locator("#swap-notes")
    expect(notes).to_contain_text("centre-cropped")  # B (96x64) fitted to A's 114x64
    expect(notes).to_contain_text("looped from its start (6 frames, repeated) to 8 frames")
    expect(page.locator("#swap-latents")).to_contain_text("whole latent")

    set_slider(page, "swap-frame", 5)
    expect(frame_plot).to_contain_text("frame 5", timeout=60_000)
    page.screenshot(path=str(tmp_path / "swap.png"), full_page=True)

    # A broken clip B: a readable toast, and the previous results stay on the page.
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    page.locator("#swap-upload-b button[aria-label=Clear]").click()  # the file input returns once cleared
    page.set_input_files("#swap-upload-b input[type=file]", str(bad))
    expect(page.locator("#swap-upload-b")).to_contain_text("broken.mp4", timeout=60_000)
    page.locator("#swap-run").click()
    expect_error_toast(page, "Clip B:")
    expect(page.locator("#swap-frame-plot .js-plotly-plot")).to_have_count(1)
    expect(page.locator("#swap-attention .js-plotly-plot")).to_have_count(1)
    expect(notes).to_contain_text("centre-cropped")
    assert page.locator("#swap-video video").first.get_attribute("src")
    assert not page.js_errors, page.js_errors
