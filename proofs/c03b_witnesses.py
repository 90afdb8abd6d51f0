"""C3: linear stacks satisfy the affine identity; every nonlinear activation breaks it (witnesses)."""
# seconds: 0.25  (a hint for spreading the proofs over processes)

import sympy as sp

from symnet.kernel import REFUTED, Context
from symnet.networks import activations
from symnet.networks.collapse import collapse
from symnet.networks.composer import Network, matadd, matmul
from symnet.notes.proofs import NUMERIC, Section, sci

CLAIM = "C3"
TITLE = "Linear networks cannot represent a nonlinear function"
STATEMENT = (
    "Adding layers adds no approximation power to a linear network; such a network is one "
    "matrix multiplication and cannot represent a nonlinear function."
)


def _affine_identity(net: Network, t: sp.Symbol, a: sp.MatrixSymbol, b: sp.MatrixSymbol):
    """Both sides of F(t a + (1-t) b) = t F(a) + (1-t) F(b) for the network's output F."""
    F = net.output

    def at(v):
        return F.xreplace({net.x: v})

    mix = matadd(matmul(t, a), matmul(1 - t, b))
    return at(mix), matadd(matmul(t, at(a)), matmul(1 - t, at(b)))


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    t = sp.Symbol("t", real=True)

    # 1. a deep linear network satisfies the affine identity, decided on the network itself
    net = Network.dense(["n0", "n1", "n2", "n3"], "identity")
    n0 = net.widths[0]
    a, b = sp.MatrixSymbol("a", 1, n0), sp.MatrixSymbol("b", 1, n0)
    u = sp.MatrixSymbol("u", 1, n0)
    outputs = {name: sp.MatrixSymbol(name, 1, net.widths[-1]) for name in ("y_u", "y_a", "y_b")}
    ctx = Context()
    where = [(u, matadd(matmul(t, a), matmul(1 - t, b)))]
    for name, v in (("y_u", u), ("y_a", a), ("y_b", b)):
        where.append((outputs[name], net.output.xreplace({net.x: v})))
    for sym, expr in where:
        ctx.define(sym, expr)
    s.text(
        "The affine identity holds for the three-layer identity network $F$ itself, with symbolic "
        "widths and all weights and biases symbolic, and no collapse done first: with "
        "$\\mathbf{u} = t\\mathbf{a} + (1-t)\\mathbf{b}$ and $\\mathbf{y}_v = F(\\mathbf{v})$,"
    )
    s.prove("", outputs["y_u"], [
        (matadd(matmul(t, outputs["y_a"]), matmul(1 - t, outputs["y_b"])),
         "unfolding the definitions: both sides have one normal form (C1: F is affine)"),
    ], context=ctx, where=where)

    # 2. the kernel refutes it for a tanh network, with a counterexample
    tnet = Network.dense([2, 3, 1], ["tanh", "identity"])
    a2, b2 = sp.MatrixSymbol("a", 1, 2), sp.MatrixSymbol("b", 1, 2)
    lhs, rhs = _affine_identity(tnet, t, a2, b2)
    check = Context(seed=1).check(lhs, rhs)
    ce = check.counterexample or {}
    s.fact(
        "The kernel refutes the same identity for a 2-3-1 network with a tanh hidden layer: "
        f"verdict {check.verdict}, the sides differ by {sci(ce.get('difference', float('nan')))} "
        "on a random instance confirmed at 50 digits",
        check.verdict == REFUTED, kind=NUMERIC, detail=check.detail,
    )

    # 3. a witness for every nonlinear activation of the catalogue
    rows, ok = [], True
    for name in activations.names():
        act = activations.lookup(name).bind()
        if name == "affine" or act.is_affine:
            continue
        result = collapse(Network.dense([2, 3, 1], [act, "identity"]))
        w = result.witness
        good = w is not None and not result.collapsible and w.gap > 0 and w.confirmed_digits >= 50
        ok = ok and good
        if w is None:
            rows.append([name, "none found", "", "", ""])
            continue
        rows.append([name.replace("_", " "), f"{w.t:g}", sci(float(w.lhs.flat[0]), 5),
                     sci(float(w.rhs.flat[0]), 5), sci(w.gap)])
    s.table(
        ["activation", "$t$", "$F(t\\mathbf{a}+(1-t)\\mathbf{b})$",
         "$tF(\\mathbf{a})+(1-t)F(\\mathbf{b})$", "gap"],
        rows,
        "Witnesses, one per nonlinear catalogue activation: a 2-3-1 network (the activation in the "
        "hidden layer, a linear output layer) with seeded weights and inputs "
        "$\\mathbf{a}, \\mathbf{b}$ where the affine identity fails; each found by "
        "symnet.networks.collapse and recomputed at 50 digits. By the identity above, no linear "
        "network, of any depth, computes any of these functions.",
        kind=NUMERIC, ok=ok,
    )
    return s
