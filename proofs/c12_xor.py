"""C12: no affine map plus a threshold computes XOR; a 2-2-1 network with a nonlinearity does."""

import itertools

import numpy as np
import sympy as sp

from symnet.kernel import PROVED, Context
from symnet.networks.activations import Z
from symnet.networks.composer import Network
from symnet.notes.proofs import EXACT, NUMERIC, Section, Series, plot, sci

CLAIM = "C12"
TITLE = "XOR: a linear network cannot draw a nonlinear decision boundary"
STATEMENT = (
    "Without nonlinearity a network cannot draw a nonlinear decision boundary (the classic "
    "witness: XOR): no affine map followed by a threshold separates XOR, and a 2-2-1 network "
    "with a nonlinear activation does, with explicit weights."
)

POINTS = [(0, 0), (0, 1), (1, 0), (1, 1)]
XOR = (0, 1, 1, 0)
R = sp.Rational


def exact_forward(net: Network, weights: dict, x: sp.Matrix) -> tuple[sp.Matrix, ...]:
    """h_l = f_l(h_{l-1} W_l + b_l) in exact arithmetic, entry by entry; returns every h_l."""
    h, out = x, []
    for layer in net.layers:
        z = h * weights[layer.W.name] + weights[layer.b.name]
        h = z.applyfunc(lambda v, act=layer.activation: act.body.xreplace({Z: v}))
        out.append(h)
    return tuple(out)


def separating_line(labels: tuple[int, ...]) -> tuple[int, int, int] | None:
    """Small integers (w1, w2, b) with step(w1 x1 + w2 x2 + b) = label at the four points."""
    for w1, w2, b in itertools.product(range(-2, 3), range(-2, 3), range(-3, 3)):
        if all((w1 * x1 + w2 * x2 + b >= 0) == bool(lab) for (x1, x2), lab in zip(POINTS, labels)):
            return w1, w2, b
    return None


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    w1, w2, b = sp.symbols("w_1 w_2 b", real=True)
    s.text(
        "By C1 every linear network computes $z = \\mathbf{x}\\mathbf{W}' + \\mathbf{b}'$; with one "
        "output and a threshold (a threshold $\\theta$ is absorbed into $b$) it says 1 when "
        "$z = w_1x_1 + w_2x_2 + b \\ge 0$. Computing XOR needs four inequalities: "
        "$(0,0)\\mapsto 0$: $b < 0$; $(1,1)\\mapsto 0$: $w_1 + w_2 + b < 0$; "
        "$(0,1)\\mapsto 1$: $w_2 + b \\ge 0$; $(1,0)\\mapsto 1$: $w_1 + b \\ge 0$. "
        "Add the last two and the first two: the sums are the same expression,"
    )
    s.prove("", sp.Add(w1 + b, w2 + b, evaluate=False), [
        (sp.Add(w1 + w2 + b, b, evaluate=False), "regrouping the four terms"),
    ], title="the two 1-outputs sum to the two 0-outputs")
    s.text(
        "yet the left side is $\\ge 0$ (a sum of two numbers $\\ge 0$) and the right side is "
        "$< 0$ (a sum of two negative numbers): no $w_1, w_2, b$ satisfy all four. The same "
        "argument with the roles of $<$ and $\\ge$ swapped covers the other threshold convention."
    )

    # all sixteen Boolean functions of two inputs: a verified line, or a kernel-checked certificate
    rows, ok = [], True
    p1, p2, p3, p4 = (sp.Symbol(n, real=True) for n in ("z00", "z01", "z10", "z11"))
    for labels in itertools.product((0, 1), repeat=4):
        line = separating_line(labels)
        name = {XOR: "XOR", (1, 0, 0, 1): "XNOR", (0, 0, 0, 1): "AND", (0, 1, 1, 1): "OR"}.get(labels, "")
        if line is not None:
            rows.append(["".join(map(str, labels)), name, f"$({line[0]}, {line[1]}, {line[2]})$", "checked at the 4 points"])
            continue
        # Farkas: the labels-1 outputs minus the labels-0 outputs sum to 0 identically
        zs = [w1 * x1 + w2 * x2 + b for x1, x2 in POINTS]
        signs = [1 if lab else -1 for lab in labels]
        check = Context().check(sp.Add(*[c * zz for c, zz in zip(signs, zs)]), sp.S.Zero)
        good = check.verdict == PROVED and sum(labels) == 2
        ok = ok and good and labels in (XOR, (1, 0, 0, 1))
        rows.append(["".join(map(str, labels)), name, "none",
                     "certificate $z_{01}+z_{10}-z_{00}-z_{11} \\equiv 0$: " + check.verdict
                     if labels == XOR else
                     "certificate $z_{00}+z_{11}-z_{01}-z_{10} \\equiv 0$: " + check.verdict])
    s.table(
        ["outputs at 00, 01, 10, 11", "", "$(w_1, w_2, b)$", "how"],
        rows,
        "All sixteen Boolean functions of two inputs. Fourteen are computed by a threshold of an "
        "affine map, with the small integer weights shown (checked exactly at the four points). "
        "Exactly XOR and XNOR have none: for them the kernel proves that the outputs that must be "
        "$\\ge 0$ and those that must be $< 0$ have the same sum, which is impossible.",
        kind=EXACT, ok=ok, align="llll",
    )

    # a 2-2-1 network with step activations, explicit weights, exact arithmetic
    net = Network.dense([2, 2, 1], ["step", "step"])
    weights = {"W1": sp.Matrix([[1, 1], [1, 1]]), "b1": sp.Matrix([[-R(1, 2), -R(3, 2)]]),
               "W2": sp.Matrix([[1], [-2]]), "b2": sp.Matrix([[-R(1, 2)]])}
    rows, exact_ok = [], True
    for (x1, x2), want in zip(POINTS, XOR):
        h, y = exact_forward(net, weights, sp.Matrix([[x1, x2]]))
        exact_ok = exact_ok and y[0, 0] == want
        rows.append([f"$({x1}, {x2})$", f"$({h[0, 0]}, {h[0, 1]})$", f"${y[0, 0]}$", str(want)])
    s.text(
        "A 2-2-1 network with the step activation does it: "
        "$\\mathbf{W}_1 = \\begin{bmatrix}1 & 1\\\\ 1 & 1\\end{bmatrix}$, "
        "$\\mathbf{b}_1 = [-\\tfrac12,\\ -\\tfrac32]$ (hidden units OR and AND), "
        "$\\mathbf{W}_2 = \\begin{bmatrix}1\\\\ -2\\end{bmatrix}$, $\\mathbf{b}_2 = -\\tfrac12$."
    )
    s.table(["$\\mathbf{x}$", "$\\mathbf{h}_1$", "$y$", "XOR"], rows,
            "Forward pass of Network.dense([2, 2, 1], [step, step]) in exact rational arithmetic.",
            kind=EXACT, ok=exact_ok, align="llll")

    # the same with a trainable (smooth) activation: sigmoid hidden and output units
    smooth = Network.dense([2, 2, 1], ["sigmoid", "sigmoid"])
    wf = {k: 10.0 * np.asarray(v, dtype=float) for k, v in weights.items()}
    X = np.array(POINTS, dtype=float)
    y = smooth.forward(X, wf).ravel()
    rows = [[f"$({x1}, {x2})$", sci(float(v), 4), str(int(v > 0.5)), str(t)]
            for (x1, x2), v, t in zip(POINTS, y, XOR)]
    s.table(["$\\mathbf{x}$", "$y$", "$y > \\frac12$", "XOR"], rows,
            "The same weights times 10 with the sigmoid in both layers (a network backprop can "
            "train): thresholding the output at $\\frac12$ gives XOR.",
            kind=NUMERIC, ok=all(int(v > 0.5) == t for v, t in zip(y, XOR)), align="llll")

    xs = np.linspace(-0.5, 1.5, 3)
    series = [
        Series(xs, 0.5 - xs, "thin", "blue"), Series(xs, 1.5 - xs, "thin", "blue"),
        Series([0, 1], [1, 0], "dots", "black"), Series([0, 1], [0, 1], "circles", "black"),
    ]
    pic = plot(series, (-0.5, 1.5), (-0.5, 1.5), width=45, height=45, xticks=(0, 1), yticks=(0, 1))
    s.figure(pic, "XOR: filled points are 1, open points 0. The hidden units' lines "
             "$x_1 + x_2 = \\frac12$ and $x_1 + x_2 = \\frac32$ (blue) cut out the band where the "
             "network says 1; no single line separates the filled from the open points.")
    return s
