"""C6: the 0/1 step cannot be trained by gradients; the steep sigmoid s(kz) can."""
# seconds: 0.3  (a hint for spreading the proofs over processes)

import numpy as np
import sympy as sp

from symnet.kernel import Context
from symnet.networks import activations, properties
from symnet.networks.activations import Activation
from symnet.networks.backprop import gradients
from symnet.networks.composer import Network, matmul
from symnet.notes.deriv import unspecified_function
from symnet.notes.proofs import EXACT, NUMERIC, Section, Series, plot, sci

CLAIM = "C6"
TITLE = "A step activation cannot be trained by gradients"
STATEMENT = (
    "A 0/1 step \u201cdecision\u201d activation cannot be trained by gradients: small weight changes "
    "do not change its output. The step's derivative is 0 away from 0, so every backprop "
    "gradient through it vanishes almost everywhere; the logistic sigmoid $s(kz)$ tends to the "
    "step as $k$ grows, with nonzero gradient."
)

SEED = 6


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    z = activations.Z
    step = activations.lookup("step").bind()

    # 1. the derivative of the step
    zp, zn = sp.Symbol("z", positive=True), sp.Symbol("z", negative=True)
    d = sp.diff(step.body, z)
    s.fact(
        f"SymPy differentiates $\\operatorname{{step}}(z)$ to ${sp.latex(d)}$ (a Dirac delta), which "
        "is $0$ for every $z > 0$ and every $z < 0$",
        d == sp.DiracDelta(z) and d.subs(z, zp) == 0 and d.subs(z, zn) == 0, kind=EXACT,
    )
    kinks = properties.nondifferentiable(step)
    s.fact(
        "symnet.networks.properties derives $\\operatorname{step}' = "
        f"{sp.latex(properties.derivative(step))}$ off its one jump, at $z = "
        f"{', '.join(sp.latex(k.point) for k in kinks)}$",
        properties.derivative(step) == 0 and [k.point for k in kinks] == [0] and kinks[0].jump,
        kind=EXACT,
    )

    # 2. backprop through any hidden activation f: the gradient carries the factor f'(z1)
    f = unspecified_function("f")
    generic = Activation("f", lambda v: f(v), np.sin, latex="f").bind()
    net = Network.dense(["n0", "n1", "n2"], [generic, "identity"])
    g = gradients(net, "sse")
    s.text(
        "Backpropagation through a hidden layer with an unspecified activation $f$ (symbolic "
        "widths; every step decided by the kernel, which differentiates by itself): the "
        "gradients of the first layer carry the factor $f'(\\mathbf{z}_1)$ entry by entry."
    )
    s.derivation(g.derivation, "Backpropagation with a generic hidden activation $f$")

    # instantiate the proved formula with f = step: off its jump, step'(z1) = D = 0
    ctx = Context()
    n1 = net.widths[1]
    D = sp.MatrixSymbol("D", 1, n1)
    ctx.define(D, sp.ZeroMatrix(1, n1))
    d1 = sp.MatrixSymbol("delta1", 1, n1)
    upstream = matmul(g.delta(2), net.layer(2).W.T)
    ctx.define(d1, sp.HadamardProduct(upstream, D))
    s.text(
        "Now let $f$ be the step. Off the measure-zero set where an entry of $\\mathbf{z}_1$ is "
        "exactly 0, $\\operatorname{step}'(\\mathbf{z}_1) = \\mathbf{D} = \\mathbf{0}$, so the "
        "error signal is $\\boldsymbol{\\delta}_1 = (\\boldsymbol{\\delta}_2\\mathbf{W}_2^\\top) "
        "\\odot \\mathbf{D}$ and"
    )
    s.prove("", g.expressions["W1"], [
        (matmul(net.x.T, sp.HadamardProduct(upstream, D)), "definition of delta1", [d1]),
        (sp.ZeroMatrix(*net.layer(1).W.shape), "D = 0", [D]),
    ], context=ctx, title="The gradient for W1 through a step layer")
    s.prove("", g.expressions["b1"], [
        (sp.HadamardProduct(upstream, D), "definition of delta1", [d1]),
        (sp.ZeroMatrix(1, n1), "D = 0", [D]),
    ], context=ctx, title="The gradient for b1 through a step layer")
    s.text(
        "Every gradient that reaches the weights below a step layer passes through this factor, "
        "so gradient descent never moves them (almost everywhere)."
    )

    # 3. numeric evidence: small weight changes do not change a step network's output
    rng = np.random.default_rng(SEED)
    rows, frozen = [], True
    for name, spec in (("step", "step"), ("sigmoid", "sigmoid")):
        net2 = Network.dense([2, 4, 1], [spec, "identity"])
        changed = total = 0
        for _ in range(20):
            weights = net2.random_weights(seed=int(rng.integers(2**31)))
            x = rng.standard_normal((50, 2))
            base = net2.forward(x, weights)
            for key in ("W1", "b1"):
                for idx in np.ndindex(weights[key].shape):
                    for h in (1e-6, -1e-6):
                        w2 = {k: v.copy() for k, v in weights.items()}
                        w2[key][idx] += h
                        diff = net2.forward(x, w2) != base
                        changed += int(np.count_nonzero(diff))
                        total += diff.size
        if name == "step":
            frozen = changed == 0
        rows.append([name, str(total), str(changed)])
    s.table(
        ["hidden activation", "outputs compared", "outputs changed"],
        rows,
        f"A 2-4-1 network, 20 seeded weight draws (seed {SEED}) x 50 inputs; every entry of "
        "$\\mathbf{W}_1$ and $\\mathbf{b}_1$ moved by $\\pm 10^{-6}$ in turn. With the step no "
        "output changes at all (bit for bit), so a finite-difference gradient is exactly 0; with "
        "the sigmoid every output moves.",
        kind=NUMERIC, ok=frozen,
    )

    # 4. the steep sigmoid tends to the step, with a nonzero gradient
    k = sp.Symbol("k", positive=True)
    sk = 1 / (1 + sp.exp(-k * z))
    lim_pos = sp.limit(sk.subs(z, zp), k, sp.oo)
    lim_neg = sp.limit(sk.subs(z, zn), k, sp.oo)
    s.fact(
        "$\\lim_{k\\to\\infty} s(kz) = "
        f"{sp.latex(lim_pos)}$ for every $z > 0$ and ${sp.latex(lim_neg)}$ for every $z < 0$ "
        "(sympy.limit): $s(kz) \\to \\operatorname{step}(z)$ off 0",
        lim_pos == 1 and lim_neg == 0, kind=EXACT,
    )
    s.prove("Derivative of the steep sigmoid", sp.diff(sk, z), [
        (k * sk * (1 - sk), "written in the sigmoid's own output"),
    ])
    positive = sp.diff(sk, z).is_positive
    s.fact(
        f"$\\frac{{d}}{{dz}} s(kz) = {sp.latex(sp.diff(sk, z))} > 0$ for all real $z$ and $k > 0$ "
        "(SymPy's assumptions): the gradient never vanishes, and equals $k/4$ at $z = 0$",
        positive is True and sp.simplify(sp.diff(sk, z).subs(z, 0) - k / 4) == 0, kind=EXACT,
    )
    zs = np.concatenate([np.linspace(-3, -0.25, 200), np.linspace(0.25, 3, 200)])
    rows, errs = [], []
    for kv in (1, 4, 16, 64):
        sig = activations.np_sigmoid(kv * zs)
        err = float(np.max(np.abs(sig - (zs >= 0))))
        errs.append(err)
        rows.append([str(kv), sci(err), sci(kv / 4)])
    s.table(
        ["$k$", "$\\max_{0.25 \\le |z| \\le 3} |s(kz) - \\operatorname{step}(z)|$", "$s'(0) = k/4$"],
        rows,
        "The steep sigmoid approaches the step away from 0 while its gradient stays nonzero.",
        kind=NUMERIC, ok=all(a > b for a, b in zip(errs, errs[1:])) and errs[-1] < 1e-6,
    )
    xs = np.linspace(-3, 3, 241)
    series = [Series(xs, (xs >= 0).astype(float), "solid", "black")]
    for kv, color in ((1, "blue"), (4, "teal"), (16, "red")):
        series.append(Series(xs, activations.np_sigmoid(kv * xs), "thin", color))
    pic = plot(series, (-3, 3), (-0.1, 1.1), width=80, height=35, xticks=(-3, 0, 3), yticks=(0, 1))
    s.figure(pic, "The step (black) and $s(kz)$ for $k = 1$ (blue), $4$ (teal), $16$ (red).")
    return s
