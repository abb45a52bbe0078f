"""vaelab.viz figures built from small synthetic data."""

import numpy as np
import plotly.graph_objects as go

from vaelab import viz


def _per_model(n_models=3, T=6, lpips=True, flicker=False):
    rng = np.random.default_rng(0)
    return {
        f"model{i}": {
            "psnr": list(30 + rng.normal(size=T)),
            "ssim": list(0.9 + 0.01 * rng.normal(size=T)),
            "lpips": list(0.1 + 0.01 * rng.random(T)) if lpips else None,
            **({"flicker": list(rng.random(T))} if flicker else {}),
        }
        for i in range(n_models)
    }


def _rows(fig):
    return sorted({tr.yaxis for tr in fig.data})


def _titles(fig):
    return [a.text for a in fig.layout.annotations]


def test_metric_curves_all_rows():
    fig = viz.metric_curves(_per_model(flicker=True), input_flicker=[0.0] * 6)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 3 * 4 + 1  # 3 models x 4 rows + input flicker
    assert _rows(fig) == ["y", "y2", "y3", "y4"]
    assert "LPIPS unavailable" not in _titles(fig)
    assert fig.layout.hovermode == "x unified"
    for i in range(3):
        traces = [t for t in fig.data if t.name == f"model{i}"]
        assert len(traces) == 4
        assert {t.legendgroup for t in traces} == {f"model{i}"}
        assert {t.line.color for t in traces} == {viz.colour(i)}
        assert sum(bool(t.showlegend) for t in traces) == 1  # one legend entry per model
    assert list(fig.data[0].x) == list(range(6))


def test_metric_curves_without_lpips_or_flicker():
    fig = viz.metric_curves(_per_model(lpips=False))
    assert len(fig.data) == 3 * 2
    assert _rows(fig) == ["y", "y2"]
    assert any(t.startswith("LPIPS unavailable") for t in _titles(fig))
    assert not any("LPIPS (" in t for t in _titles(fig))
    assert 300 <= fig.layout.height <= 600


def test_metric_curves_lpips_row_when_any_model_has_it():
    pm = _per_model(lpips=False)
    pm["model1"]["lpips"] = [0.2] * 6
    fig = viz.metric_curves(pm, input_flicker=[0.0] * 6)
    assert _rows(fig) == ["y", "y2", "y3", "y4"]
    assert [t.name for t in fig.data if t.yaxis == "y3"] == ["model1"]
    assert [t.name for t in fig.data if t.yaxis == "y4"] == ["input"]


def _panel_inputs(n_models=3, size=256, seed=0):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)  # noise: worst-case PNG size
    recons = {f"m{i}": rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for i in range(n_models)}
    errors = {k: np.abs(frame.astype(np.float32) - v).mean(-1) for k, v in recons.items()}
    return frame, recons, errors


def test_enlarged_frame_structure_and_shared_scale():
    frame, recons, errors = _panel_inputs(1)
    fig = viz.enlarged_frame(frame, recons["m0"], errors["m0"], "Model zero", 7, psnr=21.5)
    images = [t for t in fig.data if isinstance(t, go.Image)]
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(images) == 2 and len(heatmaps) == 1
    (h,) = heatmaps
    assert (h.zmin, h.zmax) == viz.ERROR_RANGE and h.coloraxis == "coloraxis"
    assert "%{z" in h.hovertemplate and "downsampled" in h.hovertemplate
    assert max(np.shape(h.z)) <= viz.HEATMAP_MAX_SIDE
    ca = fig.layout.coloraxis
    assert (ca.cmin, ca.cmax) == viz.ERROR_RANGE and ca.colorscale
    assert str(viz.ERROR_RANGE[1]) in ca.colorbar.title.text and "saturat" in ca.colorbar.title.text
    titles = _titles(fig)
    assert "Model zero<br>21.50 dB" in titles and any("frame 7" in t for t in titles)  # name and dB: two lines
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis2.matches == "y"
    de = viz.enlarged_frame(frame, recons["m0"], errors["m0"] / 10, "m", 0, vrange=viz.DELTA_E_RANGE,
                            colorbar_title=viz.DELTA_E_COLORBAR_TITLE, error_name="ΔE00")
    assert (de.layout.coloraxis.cmin, de.layout.coloraxis.cmax) == viz.DELTA_E_RANGE
    assert "ΔE00" in de.layout.coloraxis.colorbar.title.text and any("ΔE00" in t for t in _titles(de))


def test_enlarged_frame_heatmap_block_mean_and_alignment():
    frame = np.zeros((10, 330, 3), np.uint8)
    err = np.zeros((10, 330), np.float32)
    err[:, :3] = 30  # exactly the first block at stride 3
    err[:, -1] = 9  # inside the last 3-px column block; rows: 10 = 3 * 3 + 1 (1-px last block)
    fig = viz.enlarged_frame(frame, frame, err, "a", 0)
    (h,) = [t for t in fig.data if isinstance(t, go.Heatmap)]
    z = np.asarray(h.z)
    assert z.shape == (4, 110)  # stride ceil(330/160) = 3
    np.testing.assert_allclose(z[:, 0], 30)
    np.testing.assert_allclose(z[:, 1:-1], 0)
    np.testing.assert_allclose(z[:, -1], 3)  # block of 3 px, one at 9
    np.testing.assert_allclose(np.asarray(h.x)[[0, -1]], [1, 328])  # block centres in px
    np.testing.assert_allclose(np.asarray(h.y)[[0, -1]], [1, 9])  # last row block is 1 px


def test_enlarged_frame_payload_small():
    frame, recons, errors = _panel_inputs(1)
    assert len(viz.enlarged_frame(frame, recons["m0"], errors["m0"], "m0", 0).to_json()) < 1_000_000


def test_heatmap_rgb_uses_the_fixed_scale():
    err = np.array([[0, 32, 64, 200, -5]], np.float32)
    rgb = viz.heatmap_rgb(err)
    lut = viz._lut()
    assert rgb.shape == (1, 5, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == lut[0]).all() and (rgb[0, 2] == lut[255]).all()
    assert (rgb[0, 3] == lut[255]).all() and (rgb[0, 4] == lut[0]).all()  # saturates at both ends
    assert (rgb[0, 1] == lut[128]).all()
    assert tuple(lut[0]) != tuple(lut[255])


def test_tile_gallery_wraps_and_escapes():
    img = np.zeros((8, 12, 3), np.uint8)
    tiles = [{"key": f"m{i}", "image": img, "title": f"m{i}", "lines": ["1.00 dB"]} for i in range(9)]
    tiles.append({"key": "<x>", "image": img, "title": "<script>", "lines": []})
    html = viz.tile_gallery_html(tiles, clickable=True)
    assert html.count("<figure") == 10 and html.count("<img") == 10
    assert f"minmax({viz.TILE_MIN_PX}px,1fr)" in html and "auto-fill" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and 'data-key="&lt;x&gt;"' in html
    assert "cursor:pointer" in html
    bar = viz.colourbar_html("ΔE00", viz.DELTA_E_RANGE)
    assert "linear-gradient" in bar and ">0<" in bar and ">20+<" in bar


def test_clip_grid_wraps_into_rows():
    from vaelab.viz_video import LABEL_HEIGHT, clip_grid, grid_columns

    assert [grid_columns(n) for n in (1, 3, 4, 5, 9, 10, 13)] == [1, 3, 4, 3, 3, 4, 4]
    clips = {f"c{i}": np.full((2, 16, 24, 3), i * 20, np.uint8) for i in range(10)}
    grid = clip_grid(clips, gap=2)
    # 10 clips -> 4 columns, 3 rows
    assert grid.shape == (2, 3 * (LABEL_HEIGHT + 16) + 2 * 2, 4 * 24 + 3 * 2, 3)
    assert (grid[:, LABEL_HEIGHT:LABEL_HEIGHT + 16, :24] == 0).all()  # first clip, top left
    last_row = 2 * (LABEL_HEIGHT + 16 + 2) + LABEL_HEIGHT
    assert (grid[:, last_row:last_row + 16, 26:50] == 9 * 20).all()  # clip 9: row 3, column 2
    assert (grid[:, last_row:, 2 * 26:] == 255).all()  # the rest of the last row is white


def test_block_diagram_from_a_trace():
    from vaelab.analysis.module_trace import Block, Trace
    from vaelab.viz_diagram import block_diagram_svg

    tr = Trace("toy", (3, 1, 32, 32), (4, 1, 4, 4), (3, 1, 32, 32),
               (Block("encoder.conv_in", "Conv2d", 10, (8, 32, 32), "encode"),
                Block("encoder.down.0", "Down", 10, (8, 16, 16), "encode"),
                Block("decoder.up.0", "Up", 10, (8, 32, 32), "decode")))
    svg = block_diagram_svg(tr, per_row=3)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 2 * 6  # six boxes (input, 2 encoder, latent, decoder, output), each with a bar
    for text in ("input clip", "latent", "output clip", "down.0", "Conv2d", "4×1×4×4", "8×16×16"):
        assert text in svg, text
    assert svg.count('fill="none" stroke') == 1  # one wrap to the second row
    assert svg.count("<line") == 4  # the other arrows run along a row


def test_png_encoder_roundtrip():
    import base64
    import io

    from PIL import Image  # test-only check that the stdlib PNG encoder is valid

    img = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    uri = viz.png_data_uri(img)
    assert uri.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    np.testing.assert_array_equal(decoded, img)


def test_codebook_usage():
    counts = np.array([0, 5, 2, 9, 0])
    fig = viz.codebook_usage(counts, perplexity=3.14159, used=3)
    (bar,) = fig.data
    assert list(bar.y) == [9, 5, 2, 0, 0] and list(bar.customdata) == [3, 1, 2, 0, 4]
    assert "used 3 of 5 codes" in fig.layout.title.text and "perplexity 3.1" in fig.layout.title.text


def test_bars():
    fig = viz.bars(["psnr", "ssim"], {"a": [1.0, 2.0], "b": [3.0, 4.0]}, "Summary", "value")
    assert [t.name for t in fig.data] == ["a", "b"]
    assert fig.layout.barmode == "group" and fig.layout.title.text == "Summary"
    assert [t.marker.color for t in fig.data] == [viz.colour(0), viz.colour(1)]
    assert fig.layout.yaxis.title.text == "value"
