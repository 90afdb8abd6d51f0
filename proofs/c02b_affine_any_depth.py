"""C2 for every depth: affine layers f(z) = a z + c collapse, with W' and b' in closed form."""
# seconds: 0.7  (a hint for spreading the proofs over processes)

from symnet.networks.collapse import collapse, induction
from symnet.networks.composer import Network
from symnet.notes.proofs import NUMERIC, Section, sci
from symnet.render.printing import latex

CLAIM = "C2"
TITLE = "Affine activations collapse too"
STATEMENT = (
    "The same holds for affine activations $f(z) = a z + c$ ($a, c$ scalars, applied "
    "elementwise): collapse with $a, c$ symbolic; $\\mathbf{W}'$ and $\\mathbf{b}'$ in closed form."
)


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    s.text(
        "Any depth, by induction, with one symbolic slope $a$ and offset $c$ shared by the "
        "layers ($\\mathbf{1}$ is the all-ones row): "
        "$\\mathbf{W}'_{k+1} = a\\,\\mathbf{W}'_k\\mathbf{W}_{k+1}$, "
        "$\\mathbf{b}'_{k+1} = a(\\mathbf{b}'_k\\mathbf{W}_{k+1} + \\mathbf{b}_{k+1}) + c\\,\\mathbf{1}$."
    )
    s.derivation(induction(affine=True), "General n-layer statement (induction on depth)")

    # three layers, each with its own symbolic a_l, c_l: the textbook chain and the closed form
    net = Network.dense(["n0", "n1", "n2", "n3"], "affine")
    result = collapse(net, style="induction")
    s.text(
        "Three layers with their own symbolic slopes and offsets $a_l, c_l$ "
        "(activation spec affine, widths $n_0, \\ldots, n_3$ symbolic):"
    )
    s.derivation(result.derivation, "")
    s.text(
        f"Closed form, as proved above: $\\mathbf{{W}}' = {latex(result.W)}$ and "
        f"$\\mathbf{{b}}' = {latex(result.b)}$."
    )

    rows, ok = [], True
    for depth in (1, 2, 4, 6, 8):
        widths = [f"n{i}" for i in range(depth + 1)]
        r = collapse(Network.dense(widths, "affine"), style="auto")
        good = r.derivation.ok and r.collapsible and r.numeric_max_abs_error < 1e-8
        ok = ok and good
        rows.append([str(depth), str(len(r.derivation.steps)), r.derivation.verdict,
                     f"{r.numeric_trials} / {sci(r.numeric_max_abs_error)}"])
    s.table(
        ["depth", "kernel steps", "verdict", "NumPy trials / max error"],
        rows,
        "Affine stacks with a symbolic $a_l, c_l$ per layer and symbolic widths; the last column "
        "compares $\\mathbf{x}\\mathbf{W}'+\\mathbf{b}'$ with a NumPy forward pass on random "
        "sizes, weights and $a_l, c_l$.",
        kind=NUMERIC, ok=ok,
    )
    return s
