"""A picture of a layer network: one box per layer with its shapes, skip connections as arcs.

Plain SVG written here (no dependency): boxes top to bottom, the example's shape on
each arrow, a residual block drawn as its inner layers with an arc around them and
a ``+`` where the skip joins.  Colours follow the layer's role (affine or not).
"""

from __future__ import annotations

from html import escape

BOX_W, BOX_H, GAP, MARGIN = 260, 34, 30, 24
AFFINE_FILL, NONLINEAR_FILL, INPUT_FILL = "#e8f0fe", "#fde8e8", "#f1f3f4"


def _shape(shape: tuple) -> str:
    return " x ".join(map(str, shape))


def network_svg(net) -> str:
    """The SVG picture of a :class:`~symnet.networks.layers.Sequential` network."""
    from symnet.networks.layers import Residual

    rows: list[tuple] = []  # (label, fill, shape after, depth of residual nesting, kind)
    arcs: list[tuple[int, int]] = []  # (row index where the skip leaves, row index where it joins)

    def walk(layers, shape, depth):
        for layer in layers:
            if isinstance(layer, Residual):
                start = len(rows)
                walk(layer.block, shape, depth + 1)
                rows.append(("+ (skip connection)", "#ffffff", shape, depth, "join"))
                arcs.append((start - 1, len(rows) - 1))
            else:
                shape = layer.output_shape(shape)
                fill = AFFINE_FILL if layer.affine else NONLINEAR_FILL
                rows.append((layer.spec(), fill, shape, depth, "layer"))

    rows.append((f"input {_shape(net.input_shape)}", INPUT_FILL, net.input_shape, 0, "input"))
    walk(net.layers, net.input_shape, 0)
    width = BOX_W + 2 * MARGIN + 120
    height = MARGIN * 2 + len(rows) * (BOX_H + GAP) - GAP + 20
    x0 = MARGIN + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">',
           f'<title>{escape(net.spec())}</title>',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/>'
           '</marker></defs>',
           f'<rect width="{width}" height="{height}" fill="white"/>']

    def top(i: int) -> int:
        return MARGIN + i * (BOX_H + GAP)

    for i, (label, fill, shape, depth, kind) in enumerate(rows):
        y = top(i)
        inset = 14 * depth
        if kind == "join":
            cx, cy = x0 + BOX_W // 2, y + BOX_H // 2
            out.append(f'<circle cx="{cx}" cy="{cy}" r="13" fill="white" stroke="#333" stroke-width="1.5"/>')
            out.append(f'<text x="{cx}" y="{cy + 5}" text-anchor="middle" font-size="18">+</text>')
        else:
            out.append(f'<rect x="{x0 + inset}" y="{y}" width="{BOX_W - 2 * inset}" height="{BOX_H}" rx="6" '
                       f'fill="{fill}" stroke="#333" stroke-width="1.2"/>')
            out.append(f'<text x="{x0 + BOX_W // 2}" y="{y + BOX_H // 2 + 5}" text-anchor="middle">'
                       f'{escape(label)}</text>')
        if i + 1 < len(rows):
            ya, yb = y + BOX_H, top(i + 1)
            if rows[i + 1][4] == "join":
                yb += BOX_H // 2 - 13
            if kind == "join":
                ya = y + BOX_H // 2 + 13
            out.append(f'<line x1="{x0 + BOX_W // 2}" y1="{ya}" x2="{x0 + BOX_W // 2}" y2="{yb}" '
                       'stroke="#555" stroke-width="1.3" marker-end="url(#arrow)"/>')
            out.append(f'<text x="{x0 + BOX_W // 2 + 8}" y="{(ya + yb) // 2 + 4}" fill="#555" '
                       f'font-size="11">{escape(_shape(shape))}</text>')
    for start, join in arcs:
        ya, yb = top(start) + BOX_H // 2, top(join) + BOX_H // 2
        xl = x0 + BOX_W + 10
        out.append(f'<path d="M {x0 + BOX_W} {ya} C {xl + 50} {ya}, {xl + 50} {yb}, {x0 + BOX_W // 2 + 13} {yb}" '
                   'fill="none" stroke="#1a73e8" stroke-width="1.5" marker-end="url(#arrow)"/>')
        out.append(f'<text x="{xl + 44}" y="{(ya + yb) // 2}" fill="#1a73e8" font-size="11">skip</text>')
    legend_y = height - 14
    out.append(f'<rect x="{MARGIN}" y="{legend_y - 10}" width="12" height="12" fill="{AFFINE_FILL}" stroke="#333"/>')
    out.append(f'<text x="{MARGIN + 18}" y="{legend_y}" font-size="11">affine</text>')
    out.append(f'<rect x="{MARGIN + 80}" y="{legend_y - 10}" width="12" height="12" fill="{NONLINEAR_FILL}" stroke="#333"/>')
    out.append(f'<text x="{MARGIN + 98}" y="{legend_y}" font-size="11">not affine</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
