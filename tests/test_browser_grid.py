"""The Reconstruct heatmaps' coding-grid toggle in headless Chromium: switched on, every error map shows the tile
grid its run used (from the run's plan, drawn into the picture) and names the chunk that coded the frame; switched
off, the plain heatmap comes back. One causal video model, tiled, 5 frames at 64 px."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from conftest import require_lab_weights
from test_browser import (  # noqa: F401
    RENDER_TIMEOUT_MS,
    browser,
    choose_cpu,
    choose_models,
    page,  # browser, page: fixtures used by name
    run_and_wait,
    set_slider,
)

from vaelab import viz_diagnostics as vd

pytestmark = pytest.mark.browser


def _first_heatmap(pg) -> np.ndarray:
    """The first error tile's picture as the page shows it (its PNG data URI), uint8 (H, W, 3)."""
    from PIL import Image

    src = pg.locator("#rec-errors img").first.get_attribute("src")
    assert src.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def test_grid_toggle_draws_the_tiles_and_chunk_the_run_used(page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    require_lab_weights("iv-vae")
    choose_models(page, ["iv-vae"])
    set_slider(page, "frames", 5)
    set_slider(page, "size", 64)
    choose_cpu(page)
    page.get_by_text("Streaming and tiling (memory vs artefacts)").click()
    page.locator("#tiling input").check()
    set_slider(page, "tile", 40)  # rounded down to 40 (a multiple of iv-vae's 8 px cells) by the engine
    set_slider(page, "overlap", 16)
    set_slider(page, "chunk", 1)
    run_and_wait(page)
    errors = page.locator("#rec-errors")
    expect(errors.locator("img")).to_have_count(1)
    plain = _first_heatmap(page)
    expect(errors).not_to_contain_text("chunk")

    page.locator("#error-grid input").check()
    expect(errors).to_contain_text("40 px tiles, overlap 16", timeout=60_000)
    expect(errors).to_contain_text("streamed chunk 0 (frame 0)")
    gridded = _first_heatmap(page)
    assert gridded.shape == plain.shape
    h, w = plain.shape[:2]
    lines = vd.grid_lines(h, w, latent_factor=8, tile=40, overlap=16, coded=(-(-h // 8) * 8, -(-w // 8) * 8))
    assert lines["x"]["tile_start"], lines
    for x in lines["x"]["tile_start"]:  # solid cyan where each tile begins, as the run laid them
        assert (gridded[:, x] == vd.GRID_TILE_RGB).all(), x
    changed = np.any(gridded != plain, axis=2)
    assert changed.any() and not changed.all()
    # the enlarged view carries the same grid as lines over the reconstruction and the error map
    drawn = page.evaluate("""() => { const g = document.querySelector('#frame-plot .js-plotly-plot');
        return {shapes: (g.layout.shapes || []).length, x: g._fullLayout.xaxis3.range, y: g._fullLayout.yaxis3.range}; }""")
    assert drawn["shapes"] > 0
    # the error map keeps its pixel extent under the lines (plotly would otherwise range on the shapes alone)
    # (y may grow a little: the panels keep square pixels)
    y0, y1 = drawn["y"]
    assert drawn["x"] == [-0.5, w - 0.5] and y0 >= h - 0.5 and y1 <= -0.5 and y0 - y1 < 1.5 * h, drawn
    expect(page.locator("#frame-plot")).to_contain_text("streamed chunk 0")
    page.screenshot(path=str(tmp_path / "grid_on.png"), full_page=True)

    set_slider(page, "frame", 3)  # frame 3 was coded in the second chunk (frames 1-4)
    expect(errors).to_contain_text("streamed chunk 1 (frames 1-4)", timeout=60_000)
    page.locator("#error-grid input").uncheck()
    expect(errors).not_to_contain_text("chunk", timeout=60_000)
    assert not np.array_equal(_first_heatmap(page), gridded)
    assert not page.js_errors, page.js_errors
