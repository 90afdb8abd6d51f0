"""The soundness suite: wrong variants of every kind of step are never proved.

A meta-test swaps in a checker that always says "proved" and asserts that the
suite then fails: a suite that cannot fail proves nothing.
"""

import pytest

from symnet import Network, collapse, induction
from symnet.kernel import Context

from .soundness import mutants, unsound

DERIVATIONS = {
    "identity 3 layers": lambda: collapse(Network.dense([2, 2, 2, 2])).derivation,
    "affine symbolic": lambda: collapse(Network.dense([2, 2, 2], "affine")).derivation,
    "affine numeric, induction": lambda: collapse(Network.dense([2, 2, 2, 2], "affine(a=2, c=-1)"), style="induction").derivation,
    "mixed": lambda: collapse(Network.dense([2, 2, 2, 2], ["identity", "tanh", "identity"])).derivation,
    "general induction": lambda: induction(affine=True),
}


def _kernel_checker(derivation):
    # replay in a context that knows the derivation's definitions
    ctx = Context(trials=2, seed=1)
    defs = {}
    for chain in derivation.chains:
        for sym, expr in chain.where:
            defs[sym] = expr
    return ctx, defs


@pytest.mark.parametrize("name", list(DERIVATIONS))
def test_no_mutant_of_a_checked_step_is_proved(name):
    derivation = DERIVATIONS[name]()
    assert derivation.verdict == "proved"
    total = sum(len(mutants(s.expr)) for s in derivation.steps)
    assert total >= 5, "the suite must actually generate wrong variants"
    ctx = Context(trials=2, seed=1)
    # the same definitions the derivation was built with: recover them from a rebuild
    source = _context_of(name)
    bad = unsound(derivation, lambda lhs, rhs: source.check(lhs, rhs).verdict)
    assert bad == [], f"mutants proved: {bad[:3]}"
    del ctx


def _context_of(name):
    """A context holding the definitions of the derivation ``name``."""
    import symnet.derivation as dmod

    captured = {}
    original = dmod.ChainBuilder.build

    def build(self):
        captured["ctx"] = self.context
        return original(self)

    dmod.ChainBuilder.build = build
    try:
        DERIVATIONS[name]()
    finally:
        dmod.ChainBuilder.build = original
    return captured["ctx"]


def test_meta_an_always_yes_checker_fails_the_suite():
    derivation = DERIVATIONS["identity 3 layers"]()
    bad = unsound(derivation, lambda lhs, rhs: "proved")
    assert len(bad) >= 5
    kinds = {kind for _, kind, _ in bad}
    assert {"drop term", "swap factors", "flip sign"} <= kinds
