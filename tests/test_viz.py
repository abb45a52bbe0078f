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


def test_frame_panel_structure_and_shared_scale():
    frame, recons, errors = _panel_inputs()
    fig = viz.frame_panel(frame, recons, errors, frame_index=7, titles={"m0": "Model zero"})
    images = [t for t in fig.data if isinstance(t, go.Image)]
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(images) == 4 and len(heatmaps) == 3
    for h in heatmaps:
        assert (h.zmin, h.zmax) == viz.ERROR_RANGE
        assert h.coloraxis == "coloraxis"
        assert "%{z" in h.hovertemplate and "downsampled" in h.hovertemplate
        assert max(np.shape(h.z)) <= viz.HEATMAP_MAX_SIDE
    ca = fig.layout.coloraxis
    assert (ca.cmin, ca.cmax) == viz.ERROR_RANGE and ca.colorscale
    assert str(viz.ERROR_RANGE[1]) in ca.colorbar.title.text and "saturat" in ca.colorbar.title.text
    assert "Model zero" in _titles(fig) and any("frame 7" in t for t in _titles(fig))
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.scaleanchor == "x"


def test_frame_panel_heatmap_block_mean_and_alignment():
    frame = np.zeros((10, 330, 3), np.uint8)
    err = np.zeros((10, 330), np.float32)
    err[:, :3] = 30  # exactly the first block at stride 3
    err[:, -1] = 9  # inside the last 3-px column block; rows: 10 = 3 * 3 + 1 (1-px last block)
    fig = viz.frame_panel(frame, {"a": frame}, {"a": err}, 0)
    (h,) = [t for t in fig.data if isinstance(t, go.Heatmap)]
    z = np.asarray(h.z)
    assert z.shape == (4, 110)  # stride ceil(330/160) = 3
    np.testing.assert_allclose(z[:, 0], 30)
    np.testing.assert_allclose(z[:, 1:-1], 0)
    np.testing.assert_allclose(z[:, -1], 3)  # block of 3 px, one at 9
    np.testing.assert_allclose(np.asarray(h.x)[[0, -1]], [1, 328])  # block centres in px
    np.testing.assert_allclose(np.asarray(h.y)[[0, -1]], [1, 9])  # last row block is 1 px


def test_frame_panel_payload_small():
    fig = viz.frame_panel(*_panel_inputs(), frame_index=0)
    assert len(fig.to_json()) < 1_500_000


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
