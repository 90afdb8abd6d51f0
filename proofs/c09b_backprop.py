"""C9: the delta recursion for any activations, proved by the kernel, and gradient checks."""
# seconds: 0.5  (a hint for spreading the proofs over processes)

import numpy as np

from symnet.networks.activations import Activation
from symnet.networks.backprop import gradients
from symnet.networks.composer import Network
from symnet.notes.deriv import unspecified_function
from symnet.notes.proofs import NUMERIC, Section, sci

CLAIM = "C9"
TITLE = "Backpropagation: the delta recursion"
STATEMENT = (
    "Backpropagation computes the gradient of the loss with respect to every "
    "$\\mathbf{W}_l$, $\\mathbf{b}_l$ by the delta recursion."
)

SEED = 9
NETWORKS = [
    ([3, 4, 2], ["tanh", "sigmoid"], "sse"),
    ([3, 5, 4, 2], ["relu", "softplus", "identity"], "mse"),
    ([4, 5, 3], ["tanh", "identity"], "xent"),
    ([2, 3, 3, 1], ["elu", "arctan", "tanh"], "sse"),
    ([3, 4, 4, 3], ["leaky_relu", "silu", "identity"], "xent"),
]


def _applier(fn):
    return lambda v: fn(v)


def generic_activations(n: int) -> list:
    """Unspecified activations f_1..f_n: a step proved with them holds for every f_l."""
    stand_ins = [np.sin, np.cos, np.tanh, np.arctan]
    out = []
    for i in range(n):
        fn = unspecified_function(f"f_{i + 1}", i)
        out.append(Activation(f"f_{i + 1}", _applier(fn), stand_ins[i % 4], latex=f"f_{i + 1}").bind())
    return out


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    s.text(
        "Three layers with unspecified activations $f_1, f_2, f_3$ (opaque functions: a step the "
        "kernel proves with them holds for every choice) and symbolic widths $n_0, \\ldots, n_3$. "
        "The kernel computes each gradient itself by reverse-mode adjoint rules and compares "
        "normal forms; finite differences give the numeric second opinion."
    )
    net = Network.dense(["n0", "n1", "n2", "n3"], generic_activations(3))
    g = gradients(net, "sse")
    s.derivation(g.derivation, "The delta recursion for a three-layer network")

    rows, ok = [], True
    rng = np.random.default_rng(SEED)
    for widths, acts, loss in NETWORKS:
        gr = gradients(Network.dense(widths, acts), loss)
        d = gr.derivation
        report = gr.check(gr.random_point(int(rng.integers(2**31)), batch=4))
        good = d.ok and report.ok
        ok = ok and good
        slope = report.taylor.slope if report.taylor is not None else float("nan")
        rows.append(["-".join(map(str, widths)), ", ".join(a.replace("_", " ") for a in acts), loss,
                     f"{len(d.steps)} {d.verdict}", str(report.checked), sci(report.max_rel_error, 2),
                     f"${slope:.2f}$"])
    s.table(
        ["widths", "activations", "loss", "kernel", "entries", "max rel. error", "Taylor order"],
        rows,
        "Concrete networks: the derivation of every gradient is proved by the kernel, then the "
        "compiled gradients are compared with finite differences at a seeded point (batch of 4; "
        "entries checked, largest relative error) and by the Taylor-remainder test, whose "
        "fitted order is 2 for a right gradient and 1 for a wrong one (symnet.testing.gradcheck).",
        kind=NUMERIC, ok=ok,
    )
    return s
