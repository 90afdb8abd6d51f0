"""The judge's forward and reverse modes (dual numbers and one reverse sweep, in float64
with error bounds) against an independent method: central finite differences in mpmath
at 75 digits.

Generated classes, each seeded: random terms over every primitive forward mode has a
rule for (sums, matrix and Hadamard products, scalings, quotients, powers, transposes,
traces, sums, diag, inverses, determinants, norms, the catalogue of primitives,
formula functions with and without pieces, max/min), differentiated along a random
direction of one symbol, free or defined. Forward mode must either decline (None: the
judge then takes finite differences) or give a value within its own bound of the
high-precision difference. Kinks, ties and boundaries must make it decline, never guess.
"""

from __future__ import annotations

import random
from fractions import Fraction as F

import numpy as np
import pytest

from symnet.kernel import terms as T
from symnet.kernel.judge import Judge, _Dual, _NoTangent, _Reverse

n = "n"
ONE, TWO = T.num(1), T.num(2)
RELU = T.Fn("relu_", formula=T.piecewise((T.var(), T.relation("gt", T.var(), T.num(0))), (T.num(0), T.logic("true"))))
SOFTPLUS = T.Fn("softplus_", formula=T.prim("log", T.add(ONE, T.prim("exp", T.var()))))

SAFE_PRIMS = ("exp", "tanh", "sin", "cos", "atan", "asinh", "sinh", "cosh", "erf", "erfc")


def _grow(rng: random.Random, depth: int, leaves: list[T.Term], square: bool) -> T.Term:
    """A random term of the leaves' shape (n x n when ``square``, else n x 1 for vectors)."""
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(leaves)
    kind = rng.randrange(11)
    a = _grow(rng, depth - 1, leaves, square)
    if kind == 0:
        return T.add(a, _grow(rng, depth - 1, leaves, square))
    if kind == 1:
        return T.sub(a, _grow(rng, depth - 1, leaves, square))
    if kind == 2:
        return T.hadamard(a, _grow(rng, depth - 1, leaves, square))
    if kind == 3 and square:
        return T.mul(a, _grow(rng, depth - 1, leaves, square))
    if kind == 4:
        return T.prim(rng.choice(SAFE_PRIMS), T.mul(T.num(F(1, 2)), a))
    if kind == 5 and square:
        return T.transpose(a)
    if kind == 6:
        return T.mul(T.num(F(rng.choice([-3, 2, 5]), rng.choice([1, 7]))), a)
    if kind == 7:
        return T.apply(rng.choice([RELU, SOFTPLUS]), a)
    if kind == 8:
        return T.div(a, T.add(TWO, T.total(T.hadamard(a, a))))
    if kind == 9:
        return T.hadamard_power(a, rng.choice([2, 3]))
    return T.mul(T.trace(a) if square else T.total(a), a)


def _by_reverse(ctx, X, V, L):
    """<V, grad(L, X)> from the reverse sweep, as the forward pass's (value, bound) pair."""
    adj = _Reverse(ctx, L).grads.get(X)
    if adj is None:
        return None
    return ctx.ev_sum(ctx.emul((V, np.zeros(V.shape)), adj))


def _check(judge: Judge, L: T.Term, X: T.Term, trial: int, seed: int, mode: str = "forward") -> str:
    inst, ctx = judge._instance(trial, 0)
    shape = inst.shape(X.shape)
    V = np.random.default_rng([seed, trial]).standard_normal(shape)
    try:
        fwd = _Dual(ctx, X, V).of(L) if mode == "forward" else _by_reverse(ctx, X, V, L)
    except _NoTangent:
        return "declined"
    except Exception as exc:  # noqa: BLE001 - a domain error is no evidence, like the values'
        if type(exc).__name__ == "_NoEvidence":
            return "no evidence"
        raise
    value = 0.0 if fwd is None else float(fwd[0][0, 0])
    bound = 0.0 if fwd is None else float(fwd[1][0, 0])
    ref, ref_err = ctx._fd(L, X, V)
    gap = abs(value - float(ref))
    assert gap <= bound + ref_err + 1e-300, (L, value, float(ref), bound, ref_err)
    # the bound is a bound, not a shrug: within a factor of the value's size
    assert bound <= 1e-6 * (1 + abs(value)), (L, value, bound)
    return "agrees"


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("block", range(8))
def test_forward_and_reverse_modes_agree_with_high_precision_differences_on_random_terms(block, mode):
    rng = random.Random(1000 + block)
    A, B, C = (T.matrix(s, n, n) for s in "ABC")
    outcomes = []
    for case in range(25):
        body = _grow(rng, 4, [A, B, C, T.eye(n)], square=True)
        L = T.trace(T.mul(body, T.transpose(C))) if rng.random() < 0.5 else T.total(body)
        X = rng.choice([A, B, C])
        judge = Judge({})
        for trial in range(2):
            outcomes.append(_check(judge, L, X, trial, block * 100 + case, mode))
    assert outcomes.count("agrees") >= len(outcomes) // 2, outcomes


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("block", range(6))
def test_forward_and_reverse_modes_through_chains_of_definitions(block, mode):
    """Layers as definitions: z_l = h_{l-1} W_l + b_l, h_l = f(z_l), a loss at the end; the
    direction is one weight or one defined intermediate (overridden, as grad(L, z_l) means)."""
    rng = random.Random(2000 + block)
    depth = rng.randrange(2, 9)
    x = T.matrix("x", 1, n)
    t = T.matrix("t", 1, n)
    defs: dict = {}
    h = x
    names = []
    for layer in range(1, depth + 1):
        W, b = T.matrix(f"W{layer}", n, n), T.matrix(f"b{layer}", 1, n)
        z = T.matrix(f"z{layer}", 1, n)
        defs[z] = T.add(T.mul(h, W), b)
        hl = T.matrix(f"h{layer}", 1, n)
        fn = rng.choice(["tanh", "relu", "softplus", "sin", "identity"])
        defs[hl] = {"tanh": T.prim("tanh", z), "relu": T.apply(RELU, z), "softplus": T.apply(SOFTPLUS, z),
                    "sin": T.prim("sin", z), "identity": z}[fn]
        names += [W, b, z, hl]
        h = hl
    r = T.sub(h, t)
    Lsym = T.scalar("L")
    defs[Lsym] = T.mul(T.num(F(1, 2)), T.trace(T.mul(r, T.transpose(r))))
    judge = Judge(defs)
    outcomes = []
    for X in rng.sample(names, min(6, len(names))):
        for trial in range(3):
            outcomes.append(_check(judge, Lsym, X, trial, block, mode))
    assert "agrees" in outcomes, outcomes


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_forward_and_reverse_rules_for_inverse_det_norm_diag_and_extrema(mode):
    A, B = T.matrix("A", n, n), T.matrix("B", n, n)
    M = T.matrix("M", n, n, invertible=True)
    v = T.matrix("v", n, 1)
    cases = [
        (T.trace(T.mul(T.inverse(M), B)), M),
        (T.det(M), M),
        (T.prim("log", T.prim("abs", T.det(T.mul(M, M)))), M),
        (T.norm(T.add(A, B)), B),
        (T.total(T.mul(T.diag(v), A)), v),
        (T.trace(T.mul(T.diag(A), B)), A),
        (T.prim("max", T.trace(A), T.trace(B)), A),
        (T.prim("min", T.trace(A), T.num(0), T.trace(B)), A),
        (T.total(T.prim("abs", A)), A),
        (T.total(T.prim("sqrt", T.add(T.hadamard(A, A), T.ones(n, n)))), A),
        (T.total(T.prim("log", T.add(T.hadamard(A, A), T.ones(n, n)))), A),
        (T.total(T.div(A, T.add(ONE, T.trace(T.mul(B, T.transpose(B)))))), B),
    ]
    judge = Judge({})
    results = [_check(judge, L, X, trial, 7, mode) for L, X in cases for trial in range(3)]
    assert results.count("agrees") >= len(results) - 3, results


def test_forward_mode_declines_at_kinks_ties_and_boundaries():
    """At an exact kink the derivative does not exist: forward mode must say so (the judge
    then has no evidence there, or takes finite differences), never pick a side."""
    zero = T.num(0)
    x = T.scalar("x")
    for L in [T.apply(RELU, T.sub(x, x)), T.prim("abs", T.sub(x, x)), T.prim("max", x, x),
              T.piecewise((x, T.relation("eq", T.sub(x, x), zero)), (zero, T.logic("true"))),
              T.piecewise((x, T.relation("ge", T.sub(x, x), zero)), (T.neg(x), T.logic("true")))]:
        j = Judge({})
        inst, ctx = j._instance(0, 0)
        with pytest.raises(_NoTangent):
            _Dual(ctx, x, np.ones((1, 1))).of(L)
        with pytest.raises(_NoTangent):
            _Reverse(ctx, L)


def test_forward_mode_is_exact_zero_for_a_term_free_of_the_variable():
    A, B = T.matrix("A", n, n), T.matrix("B", n, n)
    j = Judge({})
    inst, ctx = j._instance(0, 0)
    assert _Dual(ctx, A, np.ones(inst.shape(A.shape))).of(T.trace(T.mul(B, B))) is None


def test_a_wide_gradient_step_is_decided_by_forward_mode_in_float64():
    """The judge's directional derivative of a 300-wide layer's loss: forward mode (quick),
    agreeing with mpmath differences at 75 digits on a random direction."""
    x = T.matrix("x", 1, 300)
    W = T.matrix("W", 300, 300)
    L = T.total(T.prim("tanh", T.mul(x, W)))
    j = Judge({})
    inst, ctx = j._instance(0, 0)
    V = np.random.default_rng(3).standard_normal((300, 300))
    fwd = ctx._forward(L, W, V)
    assert fwd is not None and fwd[1][0, 0] < 1e-9 * (1 + abs(fwd[0][0, 0]))
    x4, W4 = T.matrix("x", 1, 4), T.matrix("W", 4, 4)
    small = T.total(T.prim("tanh", T.mul(x4, W4)))
    ref, err = ctx._fd(small, W4, V[:4, :4])
    fwd_small = ctx._forward(small, W4, V[:4, :4])
    assert abs(float(ref) - fwd_small[0][0, 0]) <= err + fwd_small[1][0, 0]


def test_a_wrong_product_rule_is_caught_by_these_tests(monkeypatch):
    """Meta-test: forward mode that drops the product rule's second term must fail here."""
    def broken(self, a, b, times):
        (pa, ta), (pb, _) = a, b
        return times(pa, pb), (times(ta, pb) if ta is not None else None)

    monkeypatch.setattr(_Dual, "_product", broken)
    A = T.matrix("A", n, n)
    with pytest.raises(AssertionError):
        _check(Judge({}), T.trace(T.mul(A, A)), A, 0, 0)


def test_a_wrong_reverse_rule_is_caught_by_these_tests(monkeypatch):
    """Meta-test: a reverse sweep that forgets to transpose a matrix product's cotangent
    must fail here."""
    original = _Reverse._product

    def broken(self, t, A, ev, push):
        return original(self, t, A, ev, lambda child, a: push(child, (a[0] * 1.001, a[1])))

    monkeypatch.setattr(_Reverse, "_product", broken)
    A, B = T.matrix("A", n, n), T.matrix("B", n, n)
    with pytest.raises(AssertionError):
        _check(Judge({}), T.trace(T.mul(A, B, A)), A, 0, 0, "reverse")


def test_the_reverse_sweep_is_shared_by_the_steps_of_one_loss_and_renewed_by_a_new_definition():
    x, W1, W2 = T.matrix("x", 1, n), T.matrix("W1", n, n), T.matrix("W2", n, n)
    h = T.matrix("h", 1, n)
    Lsym = T.scalar("L")
    defs = {h: T.prim("tanh", T.mul(x, W1)), Lsym: T.total(T.mul(h, W2))}
    judge = Judge(defs)
    inst, ctx = judge._instance(0, 0)
    first = ctx._reverse(Lsym)
    assert ctx._reverse(Lsym) is first and W1 in first.grads and W2 in first.grads
    u = T.matrix("u", 1, n)
    defs[u] = T.mul(x, W1)        # a definition the loss does not reach: the sweep stands
    assert ctx._reverse(Lsym) is first
