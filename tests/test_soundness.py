"""The soundness suite: wrong variants of every kind of step are never proved.

Each derivation below is rebuilt while its steps are recorded (the kernel
context, the previous expression, the cited definitions); every proved step is
then replayed with wrong variants of its expression (``tests/soundness.py``).
A mutant the kernel proves must be true for the independent judge.

A meta-test swaps in a checker that always says "proved" and asserts that the
suite then fails: a suite that cannot fail proves nothing.
"""

import pytest

from symnet import Network, collapse, induction
from symnet.networks.backprop import gradients

from .soundness import Recorder, always_proved, audit, mutants, show, spread, unsound

DERIVATIONS = {
    "identity 3 layers": lambda: collapse(Network.dense([2, 2, 2, 2])).derivation,
    "affine symbolic": lambda: collapse(Network.dense([2, 2, 2], "affine")).derivation,
    "affine numeric, induction": lambda: collapse(Network.dense([2, 2, 2, 2], "affine(a=2, c=-1)"), style="induction").derivation,
    "mixed": lambda: collapse(Network.dense([2, 2, 2, 2], ["identity", "tanh", "identity"])).derivation,
    "symbolic widths": lambda: collapse(Network.dense(["n0", "n1", "n2"], "affine")).derivation,
    "general induction": lambda: induction(affine=True),
    "backprop tanh/sigmoid": lambda: gradients(Network.dense([2, 3, 2], ["tanh", "sigmoid"]), "sse").derivation,
    "backprop relu/xent": lambda: gradients(Network.dense([3, 2, 2], ["relu", "identity"]), "xent").derivation,
}


def _recorded(name):
    with Recorder() as recorder:
        derivation = DERIVATIONS[name]()
    return derivation, recorder.records


@pytest.mark.parametrize("name", list(DERIVATIONS))
def test_no_mutant_of_a_checked_step_is_proved(name):
    derivation, records = _recorded(name)
    assert derivation.verdict == "proved"
    assert records, "no kernel steps were recorded"
    result = audit(spread(records, 12), per_step=8)
    assert result.total >= 5, "the suite must actually generate wrong variants"
    assert not result.unsound, "false steps proved:\n" + "\n".join(
        f"  {label}: {kind}: {show(m)}" for label, kind, m, _ in result.unsound[:5])
    assert not result.undecided, result.undecided[:5]
    assert result.rejected >= result.total // 2, result.summary()


def test_mutants_are_wrong_variants_of_many_kinds():
    derivation, records = _recorded("identity 3 layers")
    kinds = {kind for r in records for kind, _ in mutants(r.expr)}
    assert {"drop term", "duplicate term", "flip sign", "swap factors", "change coefficient",
            "off-by-one shape"} <= kinds


def test_meta_an_always_yes_checker_fails_the_suite():
    derivation, records = _recorded("identity 3 layers")
    result = audit(records[:1], always_proved, per_step=8)
    for record in records[1:]:  # one audit per step: an audit stops at ENOUGH unsound mutants
        result.merge(audit([record], always_proved, per_step=8))
    assert len(result.unsound) >= 5
    kinds = {kind for _, kind, _, _ in result.unsound}
    assert {"drop term", "swap factors", "flip sign"} <= kinds
    # and without the judge, too: every mutant it proves counts
    bad = unsound(derivation, lambda lhs, rhs: "proved")
    assert len(bad) >= 5
