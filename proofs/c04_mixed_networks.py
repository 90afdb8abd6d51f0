"""C4: in a mixed network each maximal run of affine layers collapses; the whole does not."""

from symnet.networks.collapse import collapse
from symnet.networks.composer import Network
from symnet.notes.proofs import NUMERIC, Section, sci

CLAIM = "C4"
TITLE = "A linear output layer is fine if another layer is nonlinear"
STATEMENT = (
    "A linear output layer is fine, as long as some other layer is nonlinear: in a mixed "
    "network each maximal run of affine layers collapses, and the rest does not."
)

NETWORKS = [
    ([3, 5, 2], ["tanh", "identity"]),
    ([3, 4, 4, 2], ["sigmoid", "identity", "identity"]),
    ([3, 4, 4, 4, 2], ["identity", "identity", "relu", "identity"]),
    (["n0", "n1", "n2", "n3", "n4"], ["identity", "tanh", "identity", "affine"]),
    ([2, 3, 3, 3, 1], ["affine(a=2, c=-1)", "softplus", "identity", "tanh"]),
]


def _runs(result) -> str:
    return ", ".join(f"{s.first}" if s.first == s.last else f"{s.first}-{s.last}"
                     for s in result.segments) or "none"


def run() -> Section:
    s = Section(CLAIM, TITLE, STATEMENT)
    s.text(
        "symnet.networks.collapse finds the maximal runs of affine layers, collapses each one with a "
        "kernel-checked derivation, and looks for a witness that the whole network is not affine. "
        "The network below has a relu in its third layer and a linear output layer: layers 1-2 "
        "collapse to one affine map of $\\mathbf{x}$, layer 4 is already one, and layer 3 "
        "stops the collapse."
    )
    shown = collapse(Network.dense(*NETWORKS[2]))
    s.derivation(shown.derivation, "Collapse of the runs of a 3-4-4-4-2 network (identity, identity, relu, identity)")

    rows, ok = [], True
    for widths, acts in NETWORKS:
        net = Network.dense(widths, acts)
        r = collapse(net)
        w = r.witness
        good = r.derivation.ok and not r.collapsible and w is not None
        ok = ok and good
        rows.append([
            "-".join(str(x) for x in widths), ", ".join(a.split("(")[0] for a in acts),
            _runs(r), str(len(r.derivation.steps)) + " " + r.derivation.verdict,
            sci(w.gap) if w is not None else "none",
        ])
    s.table(
        ["widths", "activations", "affine runs", "kernel steps", "witness gap"],
        rows,
        "Mixed networks: every affine run is collapsed with every step proved by the kernel; "
        "the witness gap is $|F(t\\mathbf{a}+(1-t)\\mathbf{b}) - tF(\\mathbf{a})-(1-t)F(\\mathbf{b})|$ "
        "for seeded weights and inputs (symbolic widths are set to 2), confirmed at 50 digits: "
        "the network as a whole is not affine, so a linear output layer leaves its "
        "nonlinearity intact.",
        kind=NUMERIC, ok=ok,
    )
    return s
