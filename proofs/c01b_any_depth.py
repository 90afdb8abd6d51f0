"""C1 for every depth: the general n-layer statement by induction, and deep stacks collapsed."""
# seconds: 0.4  (a hint for spreading the proofs over processes)

from symnet.networks.collapse import collapse, induction
from symnet.networks.composer import Network
from symnet.notes.proofs import NUMERIC, Section, sci

CLAIM = "C1"
TITLE = "Identity activations: a stack of layers is one affine map"
STATEMENT = (
    "With identity activations, any stack of layers computes a single linear/affine map "
    "$\\mathbf{y} = \\mathbf{x}\\mathbf{W}' + \\mathbf{b}'$, for any depth: "
    "$\\mathbf{W}'_{k+1} = \\mathbf{W}'_k \\mathbf{W}_{k+1}$, "
    "$\\mathbf{b}'_{k+1} = \\mathbf{b}'_k \\mathbf{W}_{k+1} + \\mathbf{b}_{k+1}$."
)

DEPTHS = (1, 2, 4, 6, 8, 12)


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    s.text(
        "Any depth, by induction on the number of layers. The widths "
        "$n_0, n_1, n_k, n_{k+1}$ are symbolic, so each step holds for all sizes; the "
        "induction hypothesis is the meaning of $\\mathbf{h}_k$ in the step."
    )
    s.derivation(induction(affine=False), "General n-layer statement (induction on depth)")

    rows, ok = [], True
    for depth in DEPTHS:
        widths = [f"n{i}" for i in range(depth + 1)]
        result = collapse(Network.dense(widths, "identity"), style="auto")
        good = (result.derivation.ok and result.collapsible
                and result.numeric_max_abs_error < 1e-9 * max(1, depth))
        ok = ok and good
        style = "textbook chain" if depth <= 6 else "per-layer induction"
        rows.append([
            str(depth), style, str(len(result.derivation.steps)),
            result.derivation.verdict,
            f"{result.numeric_trials} / {sci(result.numeric_max_abs_error)}",
        ])
    s.table(
        ["depth", "derivation", "kernel steps", "verdict", "NumPy trials / max error"],
        rows,
        "Stacks of identity layers with symbolic widths $n_0, \\ldots, n_L$, collapsed by "
        "symnet.networks.collapse: every step is decided by the kernel; the last column compares "
        "$\\mathbf{x}\\mathbf{W}'+\\mathbf{b}'$ with a plain NumPy forward pass on random "
        "sizes and weights.",
        kind=NUMERIC, ok=ok,
    )
    return s
