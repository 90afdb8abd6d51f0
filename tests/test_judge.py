"""Tests of the numeric judge (symnet.kernel.judge)."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symnet.kernel import terms as T
from symnet.kernel.judge import Judge, Opinion, standin

n, m, k = "n", "m", "k"
A = T.matrix("A", n, n)
B = T.matrix("B", n, m)
Cm = T.matrix("C", n, m)
X = T.matrix("X", n, n)
x, y, z, a, R = (T.scalar(s) for s in ("x", "y", "z", "a", "R"))
ONE, TWO = T.num(1), T.num(2)


def agree(lhs, rhs, defs=None, trials=3, **kw):
    op = Judge(defs if defs is not None else {}, trials=trials).compare(lhs, rhs, **kw)
    assert isinstance(op, Opinion)
    assert op.agree and op.counterexample is None, op
    return op


def refuted(lhs, rhs, defs=None, trials=3, **kw):
    op = Judge(defs if defs is not None else {}, trials=trials).compare(lhs, rhs, **kw)
    assert not op.agree and op.counterexample is not None, op
    cex = op.counterexample
    assert set(cex) >= {"values", "dims", "lhs", "rhs", "difference", "reason"}
    assert "confirmed at 60 digits" in cex["reason"]
    return op


def tanh_formula(t):
    """2 / (1 + exp(-2 t)) - 1, a sigmoid-shaped way of writing tanh."""
    return T.sub(T.div(TWO, T.add(ONE, T.prim("exp", T.mul(T.num(-2), t)))), ONE)


TANH2 = T.Fn("tanh2", formula=tanh_formula(T.var()))


# ---------------------------------------------------------------------------
# True identities


def test_distributivity_and_transpose_of_products():
    op = agree(T.mul(A, T.add(B, Cm)), T.add(T.mul(A, B), T.mul(A, Cm)))
    assert op.trials == 3 and op.detail == "agrees on 3 instances"
    agree(T.transpose(T.mul(A, B)), T.mul(T.transpose(B), T.transpose(A)))


def test_trace_cyclicity():
    P, Q, S = T.matrix("P", n, m), T.matrix("Q", m, k), T.matrix("S", k, n)
    agree(T.trace(T.mul(P, Q, S)), T.trace(T.mul(S, P, Q)))
    agree(T.trace(A), T.trace(T.transpose(A)))


def test_tanh_as_sigmoid_formula():
    agree(T.prim("tanh", z), tanh_formula(z))
    agree(T.prim("tanh", B), T.apply(TANH2, B))  # entrywise catalogue function on a matrix


def test_constant_matrices_and_powers():
    agree(T.mul(T.eye(n), A), A)
    agree(T.add(A, T.zeros(n, n)), A)
    agree(T.total(T.ones(n, m)), T.mul(T.trace(T.eye(n)), T.trace(T.eye(m))))
    agree(T.power(A, T.num(3)), T.mul(A, A, A))
    agree(T.power(A, T.num(0)), T.eye(n))
    agree(T.hadamard_power(B, 2), T.hadamard(B, B))
    agree(T.hadamard_power(B, -1), T.hadamard_power(T.hadamard_power(B, 1), -1))
    agree(T.power(x, T.num(-2)), T.div(ONE, T.mul(x, x)))
    agree(T.power(T.prim("exp", x), T.num(F(1, 2))), T.prim("exp", T.div(x, TWO)))
    M = T.explicit([[x, y], [T.num(0), ONE]])
    agree(T.trace(M), T.add(x, ONE))
    refuted(T.trace(M), T.add(y, ONE))


def test_primitives_with_kinks():
    agree(T.prim("heaviside", T.sub(x, x), T.num(F(1, 2))), T.num(F(1, 2)))
    agree(T.prim("heaviside", T.mul(x, x), T.num(0)), ONE)
    agree(T.prim("sinc", T.sub(x, x)), ONE)
    agree(T.prim("sign", T.mul(x, x)), ONE)
    agree(T.mul(T.prim("sign", x), T.prim("abs", x)), x)
    agree(T.prim("max", x, y), T.neg(T.prim("min", T.neg(x), T.neg(y))))
    agree(T.prim("dirac", T.add(T.mul(x, x), ONE)), T.num(0))
    # dirac at exactly 0 is NaN: no evidence
    op = Judge({}).compare(T.prim("dirac", T.sub(x, x)), T.num(0))
    assert op.agree and op.trials == 0 and "dirac" in op.detail
    relu = T.piecewise((x, T.relation("gt", x, T.num(0))), (T.num(0), T.logic("true")))
    agree(relu, T.prim("max", x, T.num(0)))
    agree(T.piecewise((T.prim("log", x), T.relation("gt", x, T.num(0))), (T.num(0), T.logic("true"))),
          T.mul(T.prim("heaviside", x, T.num(0)), T.piecewise(
              (T.prim("log", T.prim("abs", x)), T.relation("ne", x, T.num(0))), (T.num(0), T.logic("true")))))
    # the first draws of seeds 0, 1, 2 are all positive: more trials find the kink's other side
    refuted(relu, x, trials=6)


def test_scalar_functions():
    agree(T.add(T.power(T.prim("sin", x), TWO), T.power(T.prim("cos", x), TWO)), ONE)
    agree(T.prim("erfc", x), T.sub(ONE, T.prim("erf", x)))
    agree(T.prim("sqrt", T.mul(x, x)), T.prim("abs", x))
    agree(T.prim("asinh", T.prim("sinh", x)), x)
    agree(T.prim("atan", T.prim("tan", T.div(x, T.num(4)))), T.div(x, T.num(4)))
    agree(T.sub(T.power(T.prim("cosh", x), TWO), T.power(T.prim("sinh", x), TWO)), ONE)
    agree(T.prim("log", T.prim("exp", x)), x)
    agree(T.mul(T.const("pi"), T.const("e")), T.prim("exp", T.add(ONE, T.prim("log", T.const("pi")))))


# ---------------------------------------------------------------------------
# False identities and counterexamples


def test_refutation_recomputes_with_numpy():
    op = refuted(T.mul(A, T.add(B, Cm)), T.add(T.mul(A, B), T.mul(A, B)))
    cex = op.counterexample
    vals = {k_: np.array(v) for k_, v in cex["values"].items()}
    lhs = vals["A"] @ (vals["B"] + vals["C"])
    rhs = vals["A"] @ vals["B"] + vals["A"] @ vals["B"]
    assert np.allclose(lhs, cex["lhs"]) and np.allclose(rhs, cex["rhs"])
    assert np.max(np.abs(lhs - rhs)) == pytest.approx(cex["difference"], rel=1e-9)
    assert cex["dims"]["n"] == 2  # the first trial already refutes, with small dimensions


def test_transpose_order_refuted():
    op = refuted(T.transpose(T.mul(A, X)), T.mul(T.transpose(A), T.transpose(X)))
    cex = op.counterexample
    va, vx = np.array(cex["values"]["A"]), np.array(cex["values"]["X"])
    assert np.max(np.abs((va @ vx).T - va.T @ vx.T)) > 1e-3


# ---------------------------------------------------------------------------
# Round-off: never refute what round-off explains; always refute tiny true differences


def test_large_cancellation_not_refuted():
    big = T.num(10 ** 8)
    agree(T.sub(T.add(x, T.mul(big, y)), T.mul(big, y)), x)
    e40 = T.prim("exp", T.num(40))
    agree(T.sub(T.add(e40, z), e40), z)
    # both sides ~0 after huge intermediates: (a + 1e8)^2 - a^2 - 2e8 a - 1e16 = 0
    huge = T.num(10 ** 8)
    lhs = T.sub(T.sub(T.sub(T.power(T.add(a, huge), TWO), T.power(a, TWO)), T.mul(TWO, huge, a)),
                T.num(10 ** 16))
    agree(lhs, T.num(0))
    agree(lhs, T.mul(T.num(F(19, 10 ** 19)), T.sub(a, a)))
    agree(T.sub(T.add(x, T.num(10 ** 30)), T.num(10 ** 30)), x, precise=True)


def test_tiny_differences_refuted():
    op = refuted(T.div(T.add(T.power(a, TWO), ONE), T.num(10 ** 34)), T.num(0))
    assert 0 < op.counterexample["difference"] < 1e-30
    op = refuted(R, T.add(R, T.num(F(1, 10 ** 35))), precise=True)
    assert op.counterexample["difference"] == pytest.approx(1e-35, rel=1e-6)
    c = F("1.0507009873554804934193349852946")
    refuted(T.num(c), T.num(c + F(1, 10 ** 35)), precise=True)
    agree(T.num(c), T.num(c), precise=True)
    agree(R, T.add(R, T.num(F(1, 10 ** 35))))  # float64 cannot see it without precise=True


def test_log_of_negative_is_no_evidence():
    op = Judge({}).compare(T.prim("log", T.neg(T.mul(x, x))), x)
    assert op.agree and op.trials == 0
    assert "log" in op.detail and op.detail.startswith("no instance could be evaluated")
    op = Judge({}).compare(T.prim("sqrt", x), T.prim("sqrt", x))  # resampled until x >= 0
    assert op.agree and op.trials == 3
    op = Judge({}).compare(T.div(ONE, T.sub(x, x)), x)
    assert op.trials == 0 and "division by zero" in op.detail


def _network(width=4, depth=64, alt=False):
    defs = {}
    h = T.matrix("x", 1, width)
    layers = []
    for i in range(1, depth + 1):
        W, b = T.matrix(f"W{i}", width, width), T.matrix(f"b{i}", 1, width)
        zt = T.add(T.mul(h, W), b)
        hn = T.matrix(f"{'g' if alt else 'h'}{i}", 1, width)
        defs[hn] = T.apply(TANH2, zt) if alt else T.prim("tanh", zt)
        layers.append((hn, W))
        h = hn
    return defs, layers


def test_deep_network_written_two_ways():
    d1, l1 = _network()
    d2, l2 = _network(alt=True)
    defs = {**d1, **d2}
    h64, g64 = l1[-1][0], l2[-1][0]
    agree(T.total(h64), T.total(g64), defs)
    W4 = l1[3][1]
    L1 = T.total(T.hadamard(h64, h64))
    L2 = T.total(T.hadamard(g64, g64))
    agree(T.grad(L1, W4), T.grad(L2, W4), defs)
    # the last layer's gradient in closed form: h63^T (1 - h64 o h64)
    W64, h63 = l1[-1][1], l1[-2][0]
    G = T.mul(T.transpose(h63), T.sub(T.ones(1, 4), T.hadamard(h64, h64)))
    agree(T.grad(T.total(h64), W64), G, defs)
    refuted(T.grad(T.total(h64), W64), T.mul(T.transpose(h63), T.ones(1, 4)), defs)


def test_definition_chain_500_deep_and_growing_dict():
    defs = {}
    j = Judge(defs)
    prev = x
    for i in range(1, 501):
        s = T.scalar(f"s{i}")
        defs[s] = T.add(prev, ONE)
        prev = s
    assert j.compare(prev, T.add(x, T.num(500))).agree
    assert not j.compare(prev, T.add(x, T.num(499))).agree
    op = j.compare(T.diff(prev, x), ONE)
    assert op.agree and op.trials == 3


def test_deterministic_across_hash_seeds(tmp_path):
    code = ("from symnet.kernel import terms as T\n"
            "from symnet.kernel.judge import Judge\n"
            "A=T.matrix('A','n','n'); B=T.matrix('B','n','m'); x=T.scalar('x')\n"
            "op=Judge({}).compare(T.mul(A,B,T.transpose(B)), T.mul(A,T.add(x,x),B,T.transpose(B)))\n"
            "print(op.counterexample)\n")
    outs = set()
    for seed in ("1", "2"):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, cwd=".")
        assert r.returncode == 0, r.stderr
        outs.add(r.stdout)
    assert len(outs) == 1


# ---------------------------------------------------------------------------
# Declared functions


def test_declared_function_standins():
    f = T.Fn("f")
    j = Judge({})
    vals = [j.evaluate(T.apply(f, x), {"x": 0.3}, trial=t) for t in range(3)]
    assert len(set(vals)) == 3
    assert len({standin("f", t) for t in range(3)}) == 3
    agree(T.apply(f, T.add(x, y)), T.apply(f, T.add(y, x)))
    refuted(T.apply(f, x), T.apply(f, y))
    f1, f2, f3 = (T.Fn("f", order=i) for i in (1, 2, 3))
    agree(T.diff(T.apply(f, x), x), T.apply(f1, x))
    agree(T.diff(T.apply(f, x), x, 2), T.apply(f2, x))
    agree(T.diff(T.apply(f1, x), x, 2), T.apply(f3, x))
    refuted(T.diff(T.apply(f, x), x), T.apply(f, x))
    # chain rule with the stand-in
    agree(T.diff(T.apply(f, T.mul(x, x)), x), T.mul(TWO, x, T.apply(f1, T.mul(x, x))))
    op = refuted(T.apply(f, x), T.apply(f1, x))
    assert "f" in op.counterexample["functions"] and "sin(" in op.counterexample["functions"]["f"]
    # entrywise on a matrix, with parameters
    g = T.Fn("g", nparams=1)
    agree(T.apply(g, T.transpose(B), y), T.transpose(T.apply(g, B, y)))


def test_diff_of_scalar_expressions():
    agree(T.diff(T.mul(T.prim("sin", x), x), x), T.add(T.mul(T.prim("cos", x), x), T.prim("sin", x)))
    agree(T.diff(T.prim("exp", x), x, 3), T.prim("exp", x))
    refuted(T.diff(T.mul(x, x), x), x)


# ---------------------------------------------------------------------------
# Gradients


def test_gradient_of_quadratic_form():
    L = T.trace(T.mul(T.transpose(X), A, X))
    agree(T.grad(L, X), T.mul(T.add(A, T.transpose(A)), X))
    op = refuted(T.grad(L, X), T.mul(A, X))
    cex = op.counterexample
    va, vx = np.array(cex["values"]["A"]), np.array(cex["values"]["X"])
    assert np.allclose(cex["lhs"], (va + va.T) @ vx, atol=1e-12)
    assert np.allclose(cex["rhs"], va @ vx)
    # a gradient inside a larger expression is computed entry by entry
    agree(T.trace(T.grad(L, X)), T.trace(T.mul(T.add(A, T.transpose(A)), X)))
    agree(T.grad(T.total(T.hadamard(B, B)), B), T.mul(TWO, B))
    agree(T.grad(T.mul(x, x, y), x), T.mul(TWO, x, y))


# ---------------------------------------------------------------------------
# Property: random polynomials agree with themselves distributed


def _poly(depth):
    leaf = st.sampled_from([a, x, y, z, T.num(2), T.num(-3), T.num(F(1, 3))])
    if depth == 0:
        return leaf
    sub = _poly(depth - 1)
    return st.one_of(leaf, st.tuples(st.sampled_from(["add", "mul", "sub"]), sub, sub))


def _build(spec):
    if isinstance(spec, T.Term):
        return spec
    op, l, r = spec
    return {"add": T.add, "mul": T.mul, "sub": T.sub}[op](_build(l), _build(r))


def _distribute(t):
    """Rewrite p*(q+r) -> p*q + p*r and (q+r)*p -> q*p + r*p everywhere (and a+b -> b+a)."""
    if not t.args:
        return t
    args = [_distribute(s) for s in t.args]
    if t.op == "mul" and len(args) == 2:
        p, q = args
        if q.op == "add":
            return T.add(*(T.mul(p, s) for s in q.args))
        if p.op == "add":
            return T.add(*(T.mul(s, q) for s in p.args))
    if t.op == "add":
        return T.add(*reversed(args))
    return T.Term(t.op, args, t.value, t.shape)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(_poly(3))
def test_property_distributed_polynomials_agree(spec):
    t = _build(spec)
    op = Judge({}).compare(t, _distribute(t))
    assert op.agree, op
    op = Judge({}).compare(t, T.add(_distribute(t), T.num(F(1, 1000))))
    assert not op.agree


# ---------------------------------------------------------------------------
# Limits and reporting


def test_size_limits():
    big = T.matrix("Big", 2000, 1)
    op = Judge({}).compare(big, big)
    assert op.agree and op.trials == 0 and "1024" in op.detail
    M = T.matrix("M", 100, 100)
    op = Judge({}, trials=1).compare(T.mul(M, M), T.mul(M, M), precise=True)
    assert op.agree and op.trials == 1 and "skipped" in op.detail


def test_deep_nesting_without_recursion():
    t = x
    for i in range(3000):
        t = T.add(t, ONE) if i % 2 else T.mul(ONE, t)
    agree(t, T.add(x, T.num(1500)), precise=True)


def test_float64_candidate_that_vanishes_is_not_evidence(monkeypatch):
    from symnet.kernel import judge as judge_module

    monkeypatch.setattr(judge_module, "_U64", 0.0)  # float64 now claims to be exact
    big = T.num(10 ** 8)
    op = Judge({}).compare(T.sub(T.add(x, T.mul(big, y)), T.mul(big, y)), x)
    assert op.agree and op.trials == 3
    assert "vanished at 60 digits" in op.detail and op.max_rel_error > 0
