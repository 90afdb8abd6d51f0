"""Rank-one Hadamard products, diagonals, and entrywise functions beside their argument.

The kernel's rules under test (``kernel/normal.py``):

* ``(p q) (.) F = diag(p) F diag(q^T)`` for a column ``p`` and a row ``q`` (The Matrix
  Cookbook's rank-one rule), outer diagonals of a Hadamard factor come out;
* in a vector, a diagonal is a Hadamard product: ``u diag(v) = u (.) v`` for rows,
  ``diag(v) w = v (.) w`` for columns; ``diag(u) diag(v) = diag(u (.) v)``;
* ``diag`` of a square matrix is its diagonal part ``A (.) I``;
* ``A (.) f(A) = (z f(z))(A)`` (so ``A (.) step(A) = relu(A)``);
* beside other factors an entrywise function whose body is a sum distributes.

Every identity and every one-slip variant is classified by an independent reference
in this file: the expression is parsed with :mod:`ast` (never evaluated by Python) and
computed with NumPy at seeded random sizes and values.  True identities of the list
must be ``proved``; a variant the reference finds false must never be ``proved``; one
it finds true must never be ``refuted``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from symnet.notes.checkfile import check_text
from tests.matrix_reference import evaluate

HEADER = """\
dim n, m
matrix x: n x 1, y: m x 1, z: n x 1, u: 1 x n, v: 1 x n, w: 1 x m
matrix A: n x m, B: n x m, C: n x n, D: n x n, E: m x m
"""
SHAPES = {"x": ("n", 1), "y": ("m", 1), "z": ("n", 1), "u": (1, "n"), "v": (1, "n"), "w": (1, "m"),
          "A": ("n", "m"), "B": ("n", "m"), "C": ("n", "n"), "D": ("n", "n"), "E": ("m", "m")}

# ---------------------------------------------------------------------------
# the independent reference




def truth(claim: str) -> bool:
    """True when both sides agree at three seeded random instances (sizes 2-4)."""
    lhs, rhs = claim.split(" = ")
    rng = np.random.default_rng(20261201)
    for _ in range(3):
        dims = {"n": int(rng.integers(2, 5)), "m": int(rng.integers(2, 5))}
        values = {}
        for name, (r, c) in SHAPES.items():
            rows = dims[r] if isinstance(r, str) else r
            cols = dims[c] if isinstance(c, str) else c
            values[name] = rng.normal(size=(rows, cols))
        a, b = evaluate(lhs, values, dims), evaluate(rhs, values, dims)
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-9, atol=1e-9):
            return False
    return True


def verdict(claim: str) -> str:
    lhs, rhs = claim.split(" = ")
    r = check_text(f"{HEADER}\n  {lhs}\n= {rhs}\n", "rank1.deriv")
    if r.malformed:
        return "malformed"
    (step,) = [s for c in r.chains for s in c.steps]
    return step.verdict


# ---------------------------------------------------------------------------
# the identities

TRUE = [
    # the rank-one rule, in every orientation
    "hadamard(x*y.T, A) = diag(x)*A*diag(y)",
    "hadamard(A, x*y.T) = diag(x)*A*diag(y)",
    "hadamard(u.T*w, A) = diag(u)*A*diag(w)",
    "hadamard(x*w, A) = diag(x)*A*diag(w)",
    "hadamard(x*y.T, A).T = diag(y)*A.T*diag(x)",
    "hadamard(x*y.T, A, B) = diag(x)*hadamard(A, B)*diag(y)",
    "hadamard(x*y.T, z*w, A) = diag(hadamard(x, z))*A*diag(hadamard(y, w.T))",
    "hadamard(x*y.T, z*w) = hadamard(x, z)*hadamard(y.T, w)",
    "hadamard(A, ones(n, 1)*w) = A*diag(w)",
    "hadamard(x*ones(1, m), A) = diag(x)*A",
    "hadamard(x*x.T, C) = diag(x)*C*diag(x)",
    "hadamard(x*z.T, eye(n)) = diag(hadamard(x, z))",
    "hadamard(diag(x), C) = diag(x)*hadamard(C, eye(n))",
    "hadamard(diag(x)*C, D) = diag(x)*hadamard(C, D)",
    "hadamard(C*diag(x), D) = hadamard(C, D)*diag(x)",
    "hadamard(diag(x)*A*diag(y), B) = diag(x)*hadamard(A, B)*diag(y)",
    "ones(1, n)*hadamard(x*y.T, A)*ones(m, 1) = x.T*A*y",
    # diagonals in vectors
    "u*diag(v) = hadamard(u, v)",
    "diag(x)*z = hadamard(x, z)",
    "u*diag(v)*A = hadamard(u, v)*A",
    "A.T*diag(x)*z = A.T*hadamard(x, z)",
    "u*diag(v)*diag(v) = hadamard(u, v, v)",
    "diag(x)*diag(z) = diag(hadamard(x, z))",
    "diag(x)*diag(z) = diag(z)*diag(x)",
    "diag(x + z) = diag(x) + diag(z)",
    "diag(2*x) = 2*diag(x)",
    "diag(ones(n, 1)) = eye(n)",
    "ones(1, n)*diag(x) = x.T",
    "diag(tanh(x))*diag(ones(n, 1) - tanh(x)) = diag(tanh(x)) - diag(hadamard(tanh(x), tanh(x)))",
    # the diagonal part of a square matrix
    "diag(C) = hadamard(C, eye(n))",
    "diag(C.T) = diag(C)",
    "diag(C + D) = diag(C) + diag(D)",
    "trace(diag(C)) = trace(C)",
    "diag(diag(C)) = diag(C)",
    "hadamard(diag(C), D) = hadamard(C, diag(D))",
    "diag(x*z.T) = diag(hadamard(x, z))",
    # traces of diagonals, powers of a function that are powers of the argument
    "trace(diag(x)) = sum(x)",
    "trace(diag(u)) = u*ones(n, 1)",
    "trace(diag(x + z)) = sum(x) + sum(z)",
    "hadamard(abs(C), abs(C)) = hadamard(C, C)",
    "hadamard(abs(A), abs(A), B) = hadamard(A, A, B)",
    # a function beside its argument
    "hadamard(C, step(C)) = relu(C)",
    "hadamard(step(C), C) = relu(C)",
    "hadamard(C, step(-C)) = -relu(-C)",
    "hadamard(C, C, step(C)) = hadamard(C, relu(C))",
    "hadamard(A, step(A), B) = hadamard(relu(A), B)",
    # sums in function bodies distribute beside other factors
    "hadamard(tanh(A), tanh(B)) + tanh(A) = hadamard(tanh(A), tanh(B) + ones(n, m))",
    "hadamard(tanh(A), ones(n, m) - tanh(B)) = tanh(A) - hadamard(tanh(A), tanh(B))",
    "hadamard(B, ones(n, m) - hadamard(tanh(A), tanh(A))) = B - hadamard(B, tanh(A), tanh(A))",
    "hadamard(sigmoid(A), ones(n, m) - sigmoid(A), B) = hadamard(sigmoid(A), B) - hadamard(sigmoid(A), sigmoid(A), B)",
]


def _mutants(claim: str) -> list[str]:
    """One-slip variants: names swapped, a transpose added or dropped, a sign flipped,
    a factor doubled.  Some are still true; the reference decides."""
    lhs, rhs = claim.split(" = ")
    out = []
    for a, b in [("x", "z"), ("A", "B"), ("C", "D"), ("u", "v"), ("step(", "sign("), ("relu(", "abs("),
                 ("tanh(A)", "tanh(B)"), ("diag(x)*", "diag(z)*"), ("*diag(y)", "*diag(x)" )]:
        if a in rhs:
            out.append(f"{lhs} = {rhs.replace(a, b, 1)}")
    out.append(f"{lhs} = 2*({rhs})")
    out.append(f"{lhs} = -({rhs})")
    for name in ("C", "A"):
        if f"{name}," in rhs or f"{name})" in rhs or f"*{name}*" in rhs:
            for old in (f"{name},", f"{name})", f"*{name}*"):
                if old in rhs:
                    out.append(f"{lhs} = {rhs.replace(old, old.replace(name, name + '.T'), 1)}")
                    break
    return out


MUTANTS = sorted({m for c in TRUE for m in _mutants(c)} - set(TRUE))


@pytest.mark.parametrize("claim", TRUE)
def test_true_identity_is_proved(claim):
    assert truth(claim), "the reference says this identity is false: fix the test"
    assert verdict(claim) == "proved", claim


@pytest.mark.parametrize("claim", MUTANTS)
def test_one_slip_variant_gets_an_honest_verdict(claim):
    v = verdict(claim)
    if v == "malformed":
        return  # a shape slip: rejected at its line, never proved
    if truth(claim):
        assert v != "refuted", claim
    else:
        assert v != "proved", claim


def test_most_false_variants_are_refuted():
    # the numeric judge must find counterexamples, not merely withhold "proved"
    false = [m for m in MUTANTS if verdict(m) != "malformed" and not truth(m)]
    refuted = [m for m in false if verdict(m) == "refuted"]
    assert len(false) >= 40 and len(refuted) == len(false), sorted(set(false) - set(refuted))


@pytest.mark.parametrize("order", list(itertools.permutations(["x*y.T", "A", "B"])))
def test_the_order_of_hadamard_factors_does_not_matter(order):
    assert verdict(f"hadamard({', '.join(order)}) = diag(x)*hadamard(A, B)*diag(y)") == "proved"


def test_diag_of_a_non_square_matrix_is_an_error_at_its_column():
    r = check_text(HEADER + "\n  diag(A)\n= A\n", "bad.deriv")
    assert r.malformed
    assert "diag() needs a vector (1 x n or n x 1) or a square matrix" in r.error and r.error_line == 5 and r.error_col == 3
