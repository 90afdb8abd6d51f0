"""The kernel's one-sweep gradients (every dL/dX of a loss from one reverse sweep, shared
by the steps of a derivation) against its per-variable sweep, which it must equal exactly:
the same normal form, the same kink flag (a derivative taken at a kink is a convention)
and the same side conditions, or no shared sweep at all.

Generated class: random layer chains over tanh, a formula relu (kinks), a formula
sigmoid, softplus, sqrt (a side condition), an activation with a symbolic parameter (a
dependence the shared sweep cannot follow for that parameter), residual connections and
a weight shared by two layers, with sum-of-squares, trace and log losses.
"""

from __future__ import annotations

import random
from fractions import Fraction as F

import pytest

from symnet.kernel import terms as T
from symnet.kernel.errors import Unsupported
from symnet.kernel.normal import Translator, adjoint

n = "n"
ONE = T.num(1)
RELU = T.Fn("relu_", formula=T.piecewise((T.var(), T.relation("gt", T.var(), T.num(0))), (T.num(0), T.logic("true"))))
SIGMOID = T.Fn("sigmoid_", formula=T.div(ONE, T.add(ONE, T.prim("exp", T.neg(T.var())))))
SOFTPLUS = T.Fn("softplus_", formula=T.prim("log", T.add(ONE, T.prim("exp", T.var()))))
ALPHA = T.scalar("alpha")
SCALED = T.Fn("scaled_", formula=T.mul(T.param(0), T.prim("tanh", T.var())), nparams=1)


def _activation(rng: random.Random, z: T.Term) -> T.Term:
    kind = rng.choice(["tanh", "relu", "sigmoid", "softplus", "sqrt", "scaled", "identity"])
    if kind == "tanh":
        return T.prim("tanh", z)
    if kind == "relu":
        return T.apply(RELU, z)
    if kind == "sigmoid":
        return T.apply(SIGMOID, z)
    if kind == "softplus":
        return T.apply(SOFTPLUS, z)
    if kind == "sqrt":
        return T.prim("sqrt", T.add(T.hadamard(z, z), T.ones(1, n)))
    if kind == "scaled":
        return T.apply(SCALED, z, ALPHA)
    return z


def _chain(seed: int):
    rng = random.Random(seed)
    depth = rng.randrange(1, 7)
    x, t = T.matrix("x", 1, n), T.matrix("t", 1, n)
    defs: dict = {}
    hs = [x]
    weights = []
    shared = T.matrix("S", n, n)
    for layer in range(1, depth + 1):
        W = shared if rng.random() < 0.2 else T.matrix(f"W{layer}", n, n)
        b = T.matrix(f"b{layer}", 1, n)
        weights += [W, b]
        z = T.matrix(f"z{layer}", 1, n)
        defs[z] = T.add(T.mul(hs[-1], W), b)
        h = T.matrix(f"h{layer}", 1, n)
        body = _activation(rng, z)
        if len(hs) >= 2 and rng.random() < 0.3:
            body = T.add(body, hs[-2])  # a residual connection
        defs[h] = body
        hs.append(h)
    y = hs[-1]
    L = T.scalar("L")
    r = T.sub(y, t)
    kind = rng.choice(["sse", "trace", "log"])
    if kind == "sse":
        defs[L] = T.mul(T.num(F(1, 2)), T.mul(r, T.transpose(r)))
    elif kind == "trace":
        defs[L] = T.trace(T.mul(T.transpose(r), r))
    else:
        defs[L] = T.total(T.prim("log", T.add(T.hadamard(y, y), T.ones(1, n))))
    return defs, L, sorted(set(weights) | {x, t}, key=lambda s: s.value)


def _per_variable(defs, L, X):
    tr = Translator(calculus=defs)
    try:
        g = adjoint(tr, L, X)
    except Unsupported as exc:
        return "unsupported", str(exc)
    return g.terms, tr.kink_derivative, sorted(map(repr, tr.conditions))


@pytest.mark.parametrize("block", range(10))
def test_one_sweep_equals_the_per_variable_sweep(block):
    shared_used = 0
    for case in range(12):
        defs, L, variables = _chain(block * 100 + case)
        sweeps: dict = {}
        for X in variables:
            expected = _per_variable(defs, L, X)
            tr = Translator(calculus=defs, sweeps=sweeps)
            try:
                g = adjoint(tr, L, X)
                got = (g.terms, tr.kink_derivative, sorted(map(repr, tr.conditions)))
            except Unsupported as exc:
                got = ("unsupported", str(exc))
            assert got == expected, (block, case, X)
        shared_used += sum(1 for s in sweeps.values() if s.grads is not None)
    assert shared_used > 0  # the generated class does exercise the shared sweep


def test_a_definition_added_for_a_symbol_the_sweep_took_as_free_renews_it():
    x, W, u = T.matrix("x", 1, n), T.matrix("W", n, n), T.matrix("u", 1, n)
    L = T.scalar("L")
    defs = {L: T.total(T.hadamard(T.mul(x, W), u))}
    sweeps: dict = {}
    before = adjoint(Translator(calculus=defs, sweeps=sweeps), L, W)
    defs[u] = T.mul(x, W)  # u was free; now L is quadratic in W
    after = adjoint(Translator(calculus=defs, sweeps=sweeps), L, W)
    assert after.terms == adjoint(Translator(calculus=defs), L, W).terms
    assert after.terms != before.terms


def test_rewrites_of_symbols_the_loss_reaches_do_not_use_the_shared_sweep():
    x, W, h = T.matrix("x", 1, n), T.matrix("W", n, n), T.matrix("h", 1, n)
    L = T.scalar("L")
    defs = {h: T.prim("tanh", T.mul(x, W)), L: T.total(h)}
    sweeps: dict = {}
    plain = adjoint(Translator(calculus=defs, sweeps=sweeps), L, W)
    rewritten = adjoint(Translator(rewrites={h: defs[h]}, calculus=defs, sweeps=sweeps), L, W)
    assert rewritten.terms == adjoint(Translator(rewrites={h: defs[h]}, calculus=defs), L, W).terms
    assert plain.terms == adjoint(Translator(calculus=defs), L, W).terms


# ---------------------------------------------------------------------------
# The rewriting translator kept from step to step (Context._rewriting): every step's
# verdict and detail exactly as with a fresh translator per step.

def _fresh(self, rewrites):
    return Translator(rewrites=dict(rewrites), calculus=self.term_definitions, sweeps=self._sweeps)


@pytest.mark.parametrize("widths,acts,loss", [
    ([3, 4, 2], "tanh", "sse"), ([2, 3, 3, 2], "relu", "sse"), ([3, 3, 2], "sigmoid", "sse"),
    ([2, 4, 3], "softplus", "mse"), ([3, 2, 3], "elu", "sse"), ([4, 3, 3], "tanh", "cross_entropy"),
])
def test_a_kept_rewriting_translator_decides_every_step_as_a_fresh_one(widths, acts, loss, monkeypatch):
    from symnet import Network
    from symnet.kernel import Context
    from symnet.networks.backprop import gradients

    def steps(g):
        return [(c.title, s.check.verdict, s.check.detail) for c in g.derivation.chains for s in c.steps]

    kept = steps(gradients(Network.dense(widths, acts), loss=loss))
    monkeypatch.setattr(Context, "_rewriting", _fresh)
    assert steps(gradients(Network.dense(widths, acts), loss=loss)) == kept


def test_a_rewriting_translator_is_not_kept_across_a_new_definition_or_a_rewrite_it_has_met():
    from symnet.kernel import Context

    ctx = Context()
    x, W, h, u = T.matrix("x", 1, n), T.matrix("W", n, n), T.matrix("h", 1, n), T.matrix("u", 1, n)
    ctx.define(h, T.mul(x, W))
    first = ctx._rewriting({h: ctx.term_definitions[h]})
    first(T.mul(u, W))  # meets u, still free
    assert ctx._rewriting({h: ctx.term_definitions[h]}) is first
    ctx.define(u, T.mul(h, W))
    assert ctx._rewriting({h: ctx.term_definitions[h], u: ctx.term_definitions[u]}) is not first
