"""A family's block diagram as SVG, drawn from :class:`vaelab.analysis.module_trace.Trace` (no torch here).

Boxes run left to right and wrap into rows: the input clip, each encoder block, the latent, each decoder
block, the output. Each box names the block (its module path and class) and the shape of what it hands on
for the traced clip; the bar under it grows with the spatial size (how far the block has down- or upsampled).
"""
from __future__ import annotations

import html
import math

STAGE_COLOURS = {"input": "#e8e8e8", "encode": "#dbe9f7", "latent": "#fde2b8", "decode": "#dcefd9"}
BOX_W, BOX_H, GAP, PER_ROW = 168, 62, 22, 6


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def _box(x: float, y: float, title: str, sub: str, shape: str, colour: str, frac: float) -> str:
    e = html.escape
    bar = max(4.0, (BOX_W - 16) * frac)
    return (f'<g><title>{e(title)} · {e(sub)} · {e(shape)}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{colour}" stroke="#888"/>'
            f'<text x="{x + 8}" y="{y + 16}" font-size="12" font-weight="600">{e(title[:24])}</text>'
            f'<text x="{x + 8}" y="{y + 31}" font-size="11" fill="#444">{e(sub[:26])}</text>'
            f'<text x="{x + 8}" y="{y + 46}" font-size="11" font-family="monospace">{e(shape[:24])}</text>'
            f'<rect x="{x + 8}" y="{y + 52}" width="{bar:.0f}" height="4" fill="#777"/></g>')


def block_diagram_svg(trace, per_row: int = PER_ROW) -> str:
    """SVG (a string) of ``trace``'s blocks; shapes are (C, [T,] H, W) for one traced clip, batch dropped."""
    items = [("input clip", "C×T×H×W", trace.input_shape, "input")]
    enc = [b for b in trace.blocks if b.stage == "encode"]
    dec = [b for b in trace.blocks if b.stage == "decode"]
    items += [(".".join(b.name.split(".")[-2:]), b.kind, b.out_shape, "encode") for b in enc]
    items.append(("latent", "what the decoder reads", trace.latent_shape, "latent"))
    items += [(".".join(b.name.split(".")[-2:]), b.kind, b.out_shape, "decode") for b in dec]
    items.append(("output clip", "reconstruction", trace.output_shape, "input"))
    side = max(trace.input_shape[-1], 1)

    def frac(shape: tuple[int, ...]) -> float:  # spatial size (last axis) on a log scale, 1 = input size
        w = shape[-1] if len(shape) >= 3 else 1
        return max(0.05, 1 + math.log2(max(w, 1) / side) / max(math.log2(side), 1))

    rows = math.ceil(len(items) / per_row)
    width = per_row * (BOX_W + GAP) - GAP + 20
    height = rows * (BOX_H + GAP) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="vaelab-diagram" viewBox="0 0 {width} {height}" '
             f'width="100%" style="max-width:{width}px" role="img" aria-label="{html.escape(trace.model)} blocks">',
             '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>']
    pos = []
    for i, (title, sub, shape, stage) in enumerate(items):
        r, k = divmod(i, per_row)
        x, y = 10 + k * (BOX_W + GAP), 10 + r * (BOX_H + GAP)
        pos.append((x, y))
        parts.append(_box(x, y, title, sub, _shape(shape), STAGE_COLOURS[stage], frac(shape)))
    for (x0, y0), (x1, y1) in zip(pos, pos[1:]):
        if y0 == y1:
            parts.append(f'<line x1="{x0 + BOX_W}" y1="{y0 + BOX_H / 2}" x2="{x1 - 2}" y2="{y1 + BOX_H / 2}" '
                         'stroke="#666" marker-end="url(#arr)"/>')
        else:  # next row: down from the row end, back to its start
            parts.append(f'<path d="M{x0 + BOX_W / 2},{y0 + BOX_H} V{y0 + BOX_H + GAP / 2} H{x1 + BOX_W / 2} '
                         f'V{y1 - 2}" fill="none" stroke="#666" marker-end="url(#arr)"/>')
    legend = " · ".join(f'<tspan fill="{c}" font-size="14">■</tspan> {s}' for s, c in STAGE_COLOURS.items()
                        if s != "input")
    parts.append(f'<text x="10" y="{height - 8}" font-size="11" fill="#444">{legend} · shapes are channels × '
                 f'[frames ×] height × width for a {trace.input_shape[1]}-frame {trace.input_shape[-1]} px clip; '
                 'grey bar = spatial size</text></svg>')
    return "".join(parts)
