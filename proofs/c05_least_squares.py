"""C5: a linear network fits least squares: its optimum is the normal-equations solution."""

import numpy as np
import sympy as sp

from symnet.kernel import Context, Grad
from symnet.networks.backprop import gradients
from symnet.networks.composer import Network, matadd, matmul
from symnet.notes.proofs import NUMERIC, Section, sci

CLAIM = "C5"
TITLE = "A linear network is least-squares linear regression"
STATEMENT = (
    "A purely linear network is still a sensible model when the target is linear (linear "
    "regression, least squares): the collapsed network's least-squares optimum equals the "
    "ordinary least-squares solution of the normal equations."
)

SEED = 5
N = 40


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)

    # the normal equations: the gradient of the squared error of a linear model
    n_rows, n = sp.Symbol("N", integer=True, positive=True), sp.Symbol("n", integer=True, positive=True)
    A = sp.MatrixSymbol("A", n_rows, n)
    beta = sp.MatrixSymbol("beta", n, 1)
    y = sp.MatrixSymbol("y", n_rows, 1)
    L = sp.MatrixSymbol("L", 1, 1)
    ctx = Context()
    r = matadd(matmul(A, beta), -y)
    ctx.define(L, sp.MatMul(sp.Rational(1, 2), r.T, r, evaluate=False))
    s.text(
        "By C1 a linear network computes $\\mathbf{x}\\mathbf{W}' + \\mathbf{b}'$. Stack the "
        "$N$ inputs as the rows of $\\mathbf{X}$, write $\\mathbf{A} = [\\mathbf{X}\\ \\mathbf{1}]$ "
        "and $\\boldsymbol{\\beta} = [\\mathbf{W}'; \\mathbf{b}']$ (one output). The squared "
        "error $L = \\frac12(\\mathbf{A}\\boldsymbol{\\beta}-\\mathbf{y})^\\top"
        "(\\mathbf{A}\\boldsymbol{\\beta}-\\mathbf{y})$ is a convex quadratic in "
        "$\\boldsymbol{\\beta}$; its gradient, computed by the kernel's own reverse mode, is"
    )
    s.prove("", Grad(L, beta), [
        (matmul(A.T, r), "chain rule (kernel's reverse mode)"),
        (matadd(matmul(A.T, A, beta), -matmul(A.T, y)), "distributivity"),
    ], context=ctx)
    s.text(
        "so the optima are exactly the solutions of the normal equations "
        "$\\mathbf{A}^\\top\\mathbf{A}\\boldsymbol{\\beta} = \\mathbf{A}^\\top\\mathbf{y}$: the "
        "ordinary least-squares solution. The deep network can reach it (its product "
        "$\\mathbf{W}_1\\mathbf{W}_2\\mathbf{W}_3$ has rank up to 1 = the output width) and can "
        "do no better, since every network it computes is one of these affine maps."
    )

    # numeric evidence: train a 3-4-4-1 linear network by gradient descent with symnet's backprop
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((N, 3))
    targets = X @ np.array([[1.5], [-2.0], [0.5]]) + 0.7 + 0.3 * rng.standard_normal((N, 1))
    Aug = np.hstack([X, np.ones((N, 1))])
    ols = np.linalg.solve(Aug.T @ Aug, Aug.T @ targets)
    net = Network.dense([3, 4, 4, 1], "identity")
    fn = gradients(net, "sse").function()
    p = {}
    for layer in net.layers:
        p[layer.W.name] = 0.5 * rng.standard_normal((int(layer.fan_in), int(layer.fan_out)))
        p[layer.b.name] = np.zeros((1, int(layer.fan_out)))
    steps = 0
    while steps < 5000:
        out = fn(x=X, t=targets, **p)
        if max(float(np.max(np.abs(out[k]))) for k in p) < 1e-11:
            break
        for k in p:
            p[k] = p[k] - 0.01 / N * out[k]
        steps += 1
    Wc = p["W1"] @ p["W2"] @ p["W3"]
    bc = (p["b1"] @ p["W2"] + p["b2"]) @ p["W3"] + p["b3"]
    trained = np.vstack([Wc, bc]).ravel()
    loss_ols = 0.5 * float(np.sum((Aug @ ols - targets) ** 2))
    loss_net = float(fn(x=X, t=targets, **p)["loss"])
    gap = float(np.max(np.abs(trained - ols.ravel())))
    labels = ["$W'_1$", "$W'_2$", "$W'_3$", "$b'$"]
    rows = [[lab, f"${a:.10f}$", f"${b:.10f}$", sci(abs(a - b))]
            for lab, a, b in zip(labels, trained, ols.ravel())]
    rows.append(["loss $L$", f"${loss_net:.10f}$", f"${loss_ols:.10f}$", sci(abs(loss_net - loss_ols))])
    s.table(
        ["", "3-4-4-1 linear network (collapsed)", "normal equations", "difference"],
        rows,
        f"Seeded data (seed {SEED}): $N = {N}$ points in $\\mathbb{{R}}^3$ with a noisy linear "
        f"target. The network was trained by gradient descent ({steps} steps) with the gradients "
        "of symnet.networks.backprop, then collapsed to $\\mathbf{W}' = \\mathbf{W}_1\\mathbf{W}_2\\mathbf{W}_3$ "
        "and $\\mathbf{b}'$; the ordinary least-squares solution comes from "
        "$\\mathbf{A}^\\top\\mathbf{A}\\boldsymbol{\\beta} = \\mathbf{A}^\\top\\mathbf{y}$.",
        kind=NUMERIC, ok=gap < 1e-6 and abs(loss_net - loss_ols) < 1e-9 * max(1.0, loss_ols),
        detail=f"largest difference {gap:.3g}",
    )
    return s
