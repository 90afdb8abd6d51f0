"""The kernel decides steps: true identities are proved, false ones never are."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st
from sympy import HadamardProduct, Identity, MatrixSymbol, OneMatrix, Trace, ZeroMatrix
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from symnet.errors import ShapeError
from symnet.kernel import (
    PROVED,
    REFUTED,
    UNPROVED,
    Context,
    Grad,
    check,
    normal_form,
    scalar_is_zero,
)

n = sp.Symbol("n", integer=True, positive=True)
m = sp.Symbol("m", integer=True, positive=True)
A, B, C = (MatrixSymbol(s, n, n) for s in "ABC")
P = MatrixSymbol("P", n, m)
Q = MatrixSymbol("Q", m, n)
x = MatrixSymbol("x", 1, 3)
W1, W2 = MatrixSymbol("W1", 3, 4), MatrixSymbol("W2", 4, 2)
b1, b2 = MatrixSymbol("b1", 1, 4), MatrixSymbol("b2", 1, 2)
z = sp.Symbol("z")
a, c = sp.symbols("a c", real=True)


def f(body, X):
    return ElementwiseApplyFunction(sp.Lambda(z, body), X)


TRUE = [
    ("distributivity", (x * W1 + b1) * W2 + b2, x * W1 * W2 + b1 * W2 + b2),
    ("square of a sum", (A + B) ** 2, A**2 + A * B + B * A + B**2),
    ("transpose of product", (P * Q).T, Q.T * P.T),
    ("double transpose", A.T.T, A),
    ("trace cyclic", Trace(A * B * C), Trace(C * A * B)),
    ("trace of transpose", Trace(A * B.T), Trace(B * A.T)),
    ("trace rectangular", Trace(P * Q), Trace(Q * P)),
    ("identity", Identity(n) * A * Identity(n), A),
    ("zero", A + ZeroMatrix(n, n), A),
    ("ones product", OneMatrix(1, 3) * OneMatrix(3, 2), 3 * OneMatrix(1, 2)),
    ("symbolic ones product", OneMatrix(1, n) * OneMatrix(n, m), n * OneMatrix(1, m)),
    ("hadamard commutes", HadamardProduct(A, B), HadamardProduct(B, A)),
    ("hadamard distributes", HadamardProduct(A + B, C), HadamardProduct(A, C) + HadamardProduct(B, C)),
    ("hadamard unit", HadamardProduct(A, OneMatrix(n, n)), A),
    ("elementwise argument order", f(sp.tanh(z), x * W1 + b1), f(sp.tanh(z), b1 + x * W1)),
    ("elementwise affine", f(a * z + c, A), a * A + c * OneMatrix(n, n)),
    ("elementwise square", f(z**2, A), HadamardProduct(A, A)),
    ("scalar bilinearity", a * (A + B) * (2 * C), 2 * a * A * C + 2 * a * B * C),
    ("rational coefficient", (a / (a + 1)) * A + (1 / (a + 1)) * A, A),
    ("explicit matrices", sp.ImmutableMatrix([[1, 2], [3, 4]]) * sp.ImmutableMatrix([[0, 1], [1, 0]]),
     sp.ImmutableMatrix([[2, 1], [4, 3]])),
    ("tanh of zero matrix", f(sp.tanh(z), ZeroMatrix(n, n)), ZeroMatrix(n, n)),
    ("scalar identity", sp.sin(a) ** 2 + sp.cos(a) ** 2, sp.S.One),
]

FALSE = [
    ("swapped factors", A * B, B * A),
    ("dropped bias", (x * W1 + b1) * W2 + b2, x * W1 * W2 + b2),
    ("wrong transpose", (P * Q).T, P.T * Q.T),
    ("square as if commutative", (A + B) ** 2, A**2 + 2 * A * B + B**2),
    ("sign error", A - B, B - A),
    ("trace not symmetric in order", Trace(A * B * C), Trace(A * C * B)),
    ("elementwise not additive", f(sp.tanh(z), x * W1 + b1), f(sp.tanh(z), x * W1) + f(sp.tanh(z), b1)),
    ("ones count", OneMatrix(1, 3) * OneMatrix(3, 2), 2 * OneMatrix(1, 2)),
    ("A A^T vs A^T A", A * A.T, A.T * A),
    ("hadamard vs product", HadamardProduct(A, B), A * B),
    ("coefficient", 2 * A, 3 * A),
    ("explicit entry", sp.ImmutableMatrix([[1, 2], [3, 4]]), sp.ImmutableMatrix([[1, 2], [3, 5]])),
    ("scalar", sp.sin(a) ** 2, sp.cos(a) ** 2),
    ("different shapes", P, Q.T * Identity(n) if False else MatrixSymbol("P2", n, m)),
]


@pytest.mark.parametrize("name,lhs,rhs", TRUE, ids=[t[0] for t in TRUE])
def test_true_identities_are_proved(name, lhs, rhs):
    result = check(lhs, rhs)
    assert result.verdict == PROVED, result.detail
    assert result.numeric.trials >= 1


@pytest.mark.parametrize("name,lhs,rhs", FALSE, ids=[t[0] for t in FALSE])
def test_false_identities_are_refuted_with_a_counterexample(name, lhs, rhs):
    result = check(lhs, rhs)
    assert result.verdict == REFUTED, result.detail
    ce = result.counterexample
    assert ce is not None and "values" in ce and ce["lhs"] != ce["rhs"]
    if ce["difference"] is not None:
        assert ce["difference"] > 1e-6
        assert np.max(np.abs(np.array(ce["lhs"]) - np.array(ce["rhs"]))) == pytest.approx(ce["difference"])


def test_entrywise_scalar_identities_are_lifted_to_matrices():
    # sin^2 + cos^2 = 1 inside an elementwise function: a scalar identity, entry by entry
    result = check(f(sp.sin(z) ** 2 + sp.cos(z) ** 2, A), OneMatrix(n, n))
    assert result.verdict == PROVED
    assert check(f(sp.sin(z) ** 2 - sp.cos(z) ** 2, A), OneMatrix(n, n)).verdict == REFUTED


def test_inverse_is_never_proved_by_cancellation():
    # SymPy silently turns A*A.I into I; the kernel must not accept it symbolically
    result = check(sp.Inverse(A) * B, sp.Inverse(A) * B + ZeroMatrix(n, n))
    assert result.verdict in (UNPROVED, PROVED)
    wrong = check(sp.MatMul(A, sp.Inverse(B), evaluate=False), Identity(n))
    assert wrong.verdict != PROVED


def test_ill_shaped_sum_raises_shape_error_naming_shapes():
    X = MatrixSymbol("X", n, m)
    bad = sp.MatAdd(A, X, evaluate=False)  # SymPy accepts this with symbolic shapes
    with pytest.raises(ShapeError, match="cannot be added"):
        check(bad, A)


def test_definitions_are_unfolded_and_cited_uses_work():
    ctx = Context()
    h = MatrixSymbol("h", 1, 4)
    ctx.define(h, x * W1 + b1)
    assert ctx.check(h * W2, x * W1 * W2 + b1 * W2, uses=[h]).verdict == PROVED
    assert ctx.check(h * W2, x * W1 * W2, uses=[h]).verdict == REFUTED


def test_define_refuses_shape_mismatch_and_redefinition():
    ctx = Context()
    h = MatrixSymbol("h", 1, 4)
    with pytest.raises(ShapeError):
        ctx.define(h, x * W1 * W2)
    ctx.define(h, x * W1)
    with pytest.raises(ShapeError):
        ctx.define(h, b1)


def test_lemma_requires_a_proof():
    ctx = Context()
    h = MatrixSymbol("h", 1, 4)
    with pytest.raises(ValueError):
        ctx.lemma(h, x * W1 + b1)


def test_gradient_of_squared_error_is_proved_and_wrong_one_refuted():
    ctx = Context()
    t = MatrixSymbol("t", 1, 2)
    y = MatrixSymbol("y", 1, 2)
    L = MatrixSymbol("L", 1, 1)
    ctx.define(y, x * W1 * W2 + b2)
    ctx.define(L, sp.Rational(1, 2) * (y - t) * (y - t).T)
    assert ctx.check(Grad(L, b2), y - t).verdict == PROVED
    assert ctx.check(Grad(L, W2), (x * W1).T * (y - t)).verdict == PROVED
    assert ctx.check(Grad(L, W2), 2 * (x * W1).T * (y - t)).verdict == REFUTED


def test_wrong_activation_derivative_in_gradient_is_refuted():
    ctx = Context()
    t = MatrixSymbol("t", 1, 4)
    y = MatrixSymbol("y", 1, 4)
    L = MatrixSymbol("L", 1, 1)
    ctx.define(y, f(sp.tanh(z), x * W1 + b1))
    ctx.define(L, sp.Rational(1, 2) * (y - t) * (y - t).T)
    right = HadamardProduct(y - t, f(1 - sp.tanh(z) ** 2, x * W1 + b1))
    wrong = HadamardProduct(y - t, f(1 - sp.tanh(z), x * W1 + b1))
    assert ctx.check(Grad(L, b1), right).verdict == PROVED
    assert ctx.check(Grad(L, b1), wrong).verdict == REFUTED


def test_scalar_ladder_accepts_only_literal_zero():
    assert scalar_is_zero(sp.sin(a) ** 2 + sp.cos(a) ** 2 - 1)
    assert not scalar_is_zero(sp.sin(a) ** 2 - sp.cos(a) ** 2)
    # the value SymPy's equals() wrongly calls zero (sympy issue 23086)
    tricky = 180 * sp.acos(sp.Rational(7823207, 7823209)) / sp.pi
    assert not scalar_is_zero(tricky)


def test_normal_form_is_canonical_under_reassociation():
    left = normal_form(sp.MatMul(sp.MatMul(A, B, evaluate=False), C, evaluate=False))
    right = normal_form(sp.MatMul(A, sp.MatMul(B, C, evaluate=False), evaluate=False))
    assert left.terms == right.terms


words = st.lists(st.sampled_from([A, B, C, A.T, B.T]), min_size=1, max_size=4)


@given(st.lists(words, min_size=1, max_size=3), st.lists(words, min_size=1, max_size=3))
def test_product_of_sums_expands_like_numpy(left_terms, right_terms):
    left = sp.MatAdd(*[sp.MatMul(*w) if len(w) > 1 else w[0] for w in left_terms])
    right = sp.MatAdd(*[sp.MatMul(*w) if len(w) > 1 else w[0] for w in right_terms])
    product = left * right
    expanded = sp.expand(product)  # SymPy's own expansion is right for plain products
    assert check(product, expanded).verdict == PROVED
    # and dropping one term of the expansion is never proved
    if isinstance(expanded, sp.MatAdd) and len(expanded.args) > 1:
        dropped = sp.MatAdd(*expanded.args[1:])
        assert check(product, dropped).verdict != PROVED
