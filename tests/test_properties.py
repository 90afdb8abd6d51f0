"""Derived properties against an independent reference and against numerics.

``REFERENCE`` below is typed in here, from the comparison table on Wikipedia's
"Activation function" page and the usual definitions (the same facts as
shared/ACTIVATIONS-REFERENCE.md); symnet.networks.properties derives every one of them
from the formulas and never sees this table.  Derivatives are checked against
central finite differences of the NumPy forms (independent code), and at kinks
the derivative used must lie between the one-sided differences.  Every random
sample is seeded.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from symnet.networks import properties as P
from symnet.networks.activations import (
    LAMBDIFY_NUMPY,
    VECTOR_RECORDS,
    Z,
    lookup_vector,
    names,
    parse_spec,
)
from symnet.networks.properties import Y

OO = math.inf
LAMBDA = 1.0507009873554804934193349852946
ALPHA = 1.6732632423543772848170429916717

# name: (lower, upper, lower_closed, upper_closed, C^k, monotonic, f' monotonic,
#        identity near 0, squashing).  A lower bound given as (value, tol) was
#        published to that many digits.  C^k: OO smooth, -1 discontinuous.
REFERENCE = {
    "identity": (-OO, OO, False, False, OO, True, True, True, False),
    "step": (0, 1, True, True, -1, True, False, False, True),
    "sigmoid": (0, 1, False, False, OO, True, False, False, True),
    "tanh": (-1, 1, False, False, OO, True, False, True, False),
    "arctan": (-math.pi / 2, math.pi / 2, False, False, OO, True, False, True, False),
    "softsign": (-1, 1, False, False, 1, True, False, True, False),
    "isru": (-1, 1, False, False, OO, True, False, True, False),
    "relu": (0, OO, True, False, 0, True, True, False, False),
    "leaky_relu": (-OO, OO, False, False, 0, True, True, False, False),
    "prelu": (-OO, OO, False, False, 0, True, True, False, False),
    "elu": (-1, OO, False, False, 1, True, True, True, False),
    "selu": (-LAMBDA * ALPHA, OO, False, False, 0, True, False, False, False),
    "isrlu": (-1, OO, False, False, 2, True, True, True, False),
    "softplus": (0, OO, False, False, OO, True, True, False, False),
    "bent_identity": (-OO, OO, False, False, OO, True, True, True, False),
    "silu": ((-0.278464542761074, 1e-14), OO, True, False, OO, False, False, False, False),
    "gelu": ((-0.16997, 1e-5), OO, True, False, OO, False, False, False, False),
    "mish": ((-0.30884, 1e-5), OO, True, False, OO, False, False, False, False),
    "sin": (-1, 1, True, True, OO, False, False, True, False),
    "sinc": ((-0.217234, 1e-6), 1, True, True, OO, False, False, False, False),
    "gaussian": (0, 1, False, True, OO, False, False, False, False),
    "hard_tanh": (-1, 1, True, True, 0, True, False, True, False),
}

# Kinks and jumps: the point, and the derivative value the convention gives there.
KINKS = {
    "step": [(0, 0, True)],
    "relu": [(0, 0, False)],
    "leaky_relu": [(0, 1, False)],
    "prelu": [(0, 1, False)],
    "selu": [(0, LAMBDA, False)],
    "hard_tanh": [(-1, 0, False), (1, 0, False)],
    "hard_sigmoid": [(-3, 0, False), (3, 0, False)],
}

NUMERIC = [n for n in names() if n != "affine"]


def _close(value, expected, tol=1e-12):
    if expected in (OO, -OO):
        return value == expected
    return abs(value - expected) <= tol * max(1.0, abs(expected))


def _as_float(x: sp.Expr) -> float:
    if x == sp.oo:
        return OO
    if x == -sp.oo:
        return -OO
    return float(x)


def _cont(k) -> float:
    return OO if k == sp.oo else int(k)


# ---------------------------------------------------------------------------
# The reference table


def test_reference_covers_the_wikipedia_rows():
    assert set(REFERENCE) <= set(names())
    assert len(REFERENCE) == 22


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_properties_match_reference(name):
    lower, upper, lower_closed, upper_closed, cont, mono, dmono, ident, squash = REFERENCE[name]
    p = P.properties(parse_spec(name))
    r = p.range
    tol = 1e-12
    if isinstance(lower, tuple):
        lower, tol = lower
    assert _close(_as_float(r.lower), lower, tol), (r.lower, lower)
    assert _close(_as_float(r.upper), upper), (r.upper, upper)
    assert (r.lower_closed, r.upper_closed) == (lower_closed, upper_closed)
    assert _cont(p.continuity) == cont
    assert p.monotonic is mono
    assert p.derivative_monotonic is dmono
    assert p.identity_near_origin is ident
    assert p.squashing is squash
    assert p.bounded is (math.isfinite(lower) and math.isfinite(upper))


def test_step_range_is_the_two_point_set():
    r = P.value_range(parse_spec("step"))
    assert r.set == sp.FiniteSet(0, 1)
    assert str(r) == "{0, 1}"


def test_exact_endpoints_are_exact():
    assert P.value_range(parse_spec("arctan")).lower == -sp.pi / 2
    assert P.value_range(parse_spec("isru(alpha=4)")).upper == sp.Rational(1, 2)
    assert P.value_range(parse_spec("sin")).upper == 1
    selu = P.value_range(parse_spec("selu")).lower
    assert abs(float(sp.N(selu + sp.Float("1.7580993408473768599402175208123", 32), 40))) < 1e-28


def _grid_min(f, lo: float, hi: float) -> float:
    """Minimum of f on [lo, hi] by a dense grid and golden-section refinement (no symnet code)."""
    z = np.linspace(lo, hi, 200001)
    v = f(z)
    i = int(np.argmin(v))
    a, b = z[max(i - 1, 0)], z[min(i + 1, len(z) - 1)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        c, d = b - g * (b - a), a + g * (b - a)
        if f(np.array([c]))[0] < f(np.array([d]))[0]:
            b = d
        else:
            a = c
    return float(f(np.array([(a + b) / 2]))[0])


@pytest.mark.parametrize(
    "name, window", [("silu", (-5, 0)), ("gelu", (-3, 0)), ("mish", (-4, 0)), ("sinc", (0, 8))]
)
def test_numeric_minima_agree_with_an_independent_search(name, window):
    act = parse_spec(name)
    found = float(P.value_range(act).lower)
    assert found == pytest.approx(_grid_min(act.numpy, *window), abs=1e-12)
    assert P.value_range(act).numeric
    assert any("numerically" in note for note in P.properties(act).numeric)


# Parameters: the "iff" rows of the reference.


@pytest.mark.parametrize("alpha", [sp.Rational(-1, 2), 0, sp.Rational(1, 4), 1, 2])
def test_prelu_conditions(alpha):
    p = P.properties(parse_spec(f"prelu(alpha={alpha})"))
    assert p.monotonic is bool(alpha >= 0)
    assert p.derivative_monotonic is True
    assert p.identity_near_origin is bool(alpha == 1)
    assert _cont(p.continuity) == (OO if alpha == 1 else 0)


@pytest.mark.parametrize("alpha", [-1, 0, sp.Rational(1, 2), 1, 2])
def test_elu_conditions(alpha):
    p = P.properties(parse_spec(f"elu(alpha={alpha})"))
    assert p.monotonic is bool(alpha >= 0)
    assert p.derivative_monotonic is bool(0 <= alpha <= 1)
    assert p.identity_near_origin is bool(alpha == 1)
    assert _cont(p.continuity) == (1 if alpha == 1 else 0)
    if alpha > 0:
        assert p.range.lower == -alpha and not p.range.lower_closed


@pytest.mark.parametrize("alpha", [sp.Rational(1, 4), 1, 4, 9])
def test_isru_and_isrlu_ranges_scale_with_alpha(alpha):
    bound = 1 / sp.sqrt(alpha)
    isru = P.value_range(parse_spec(f"isru(alpha={alpha})"))
    assert (isru.lower, isru.upper) == (-bound, bound)
    assert not isru.lower_closed and not isru.upper_closed
    isrlu = P.properties(parse_spec(f"isrlu(alpha={alpha})"))
    assert (isrlu.range.lower, isrlu.range.upper) == (-bound, sp.oo)
    assert isrlu.continuity == 2


@pytest.mark.parametrize("slope", ["1/6", "1/5", "1/2"])
def test_hard_sigmoid_variants_are_squashing(slope):
    p = P.properties(parse_spec(f"hard_sigmoid(slope={slope})"))
    assert p.squashing is True and p.monotonic is True and p.derivative_monotonic is False
    assert (p.range.lower, p.range.upper, p.range.lower_closed, p.range.upper_closed) == (
        0,
        1,
        True,
        True,
    )
    assert p.continuity == 0 and not p.identity_near_origin


def test_symbolic_parameters_leave_what_depends_on_them_undecided():
    affine = P.properties(parse_spec("affine"))
    assert affine.affine is True and affine.monotonic is True and affine.continuity == sp.oo
    assert affine.identity_near_origin is None and affine.range is None and affine.bounded is None
    prelu = P.properties(parse_spec("prelu(alpha=a)"))
    assert prelu.continuity is None and prelu.monotonic is None
    hard = P.properties(parse_spec("hard_sigmoid(slope=s)"))
    assert hard.affine is not True  # its kinks are not ruled out
    assert P.properties(parse_spec("affine(a=1, c=0)")).identity_near_origin is True
    assert P.properties(parse_spec("affine(a=0, c=3)")).range.set == sp.FiniteSet(3)


# ---------------------------------------------------------------------------
# Derivatives against finite differences of the NumPy forms


def _derivative_np(act):
    return sp.lambdify(Z, P.derivative(act), modules=[LAMBDIFY_NUMPY, "numpy"])


def _kink_points(act) -> list[float]:
    return [float(k.point) for k in P.nondifferentiable(act)]


def _fd_mismatch(f, fprime, z: np.ndarray, avoid: list[float]) -> float:
    """Largest scaled |f'(z) - central difference|, away from the points to avoid."""
    keep = np.ones_like(z, dtype=bool)
    for k in avoid:
        keep &= np.abs(z - k) > 1e-3
    z = z[keep]
    h = 1e-6 * np.maximum(1.0, np.abs(z))
    fd = (f(z + h) - f(z - h)) / (2 * h)
    d = np.broadcast_to(np.asarray(fprime(z), dtype=float), z.shape)
    return float(np.max(np.abs(d - fd) / np.maximum(1.0, np.abs(fd))))


DIFF_SPECS = NUMERIC + [
    "affine(a=-3, c=2)",
    "elu(alpha=2)",
    "prelu(alpha=-1/2)",
    "isru(alpha=3)",
    "selu(lambda=1, alpha=1)",
]


@pytest.mark.parametrize("spec", DIFF_SPECS)
def test_derivative_matches_central_differences(spec):
    act = parse_spec(spec)
    rng = np.random.default_rng(2024)
    z = np.concatenate([rng.normal(0, 2.5, 500), np.linspace(-8, 8, 321)])
    assert _fd_mismatch(act.numpy, _derivative_np(act), z, _kink_points(act)) < 1e-6


def test_the_finite_difference_check_rejects_a_wrong_derivative():
    act = parse_spec("tanh")
    z = np.random.default_rng(5).normal(0, 2, 200)
    assert _fd_mismatch(act.numpy, lambda x: 1 - np.tanh(x), z, []) > 0.1  # tanh' = 1 - tanh: wrong
    assert _fd_mismatch(act.numpy, lambda x: 1 - np.tanh(x) ** 2, z, []) < 1e-6


@pytest.mark.parametrize("spec", NUMERIC)
def test_derivative_agrees_with_sympy_diff_off_the_kinks(spec):
    act = parse_spec(spec)
    # SymPy's own derivative, with Dirac deltas read as 0 away from their support
    plain = sp.diff(act.body, Z).replace(sp.DiracDelta, lambda *args: sp.S.Zero)
    raw = sp.lambdify(Z, plain, modules=[LAMBDIFY_NUMPY, "numpy"])
    ours = _derivative_np(act)
    z = np.random.default_rng(11).uniform(-6, 6, 300)
    z = z[np.min(np.abs(z[:, None] - np.array(_kink_points(act) + [1e9])[None, :]), axis=1) > 1e-3]
    with np.errstate(all="ignore"):
        want = np.broadcast_to(np.asarray(raw(z), dtype=float), z.shape)
    np.testing.assert_allclose(ours(z), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(KINKS))
def test_kinks_and_their_conventions(name):
    act = parse_spec(name)
    kinks = P.nondifferentiable(act)
    got = [(float(k.point), float(k.value), k.jump) for k in kinks]
    assert len(got) == len(KINKS[name])
    for (point, value, jump), (want_point, want_value, want_jump) in zip(got, KINKS[name]):
        assert point == pytest.approx(want_point) and value == pytest.approx(want_value)
        assert jump == want_jump
    h = 1e-7
    for k in kinks:
        if k.jump:
            continue
        x = float(k.point)
        left = (act.numpy(np.array([x])) - act.numpy(np.array([x - h]))) / h
        right = (act.numpy(np.array([x + h])) - act.numpy(np.array([x]))) / h
        lo, hi = sorted([left[0], right[0]])
        assert (
            lo - 1e-6 <= float(k.value) <= hi + 1e-6
        )  # a subgradient: between the one-sided slopes
        assert float(k.left) == pytest.approx(left[0], abs=1e-5)
        assert float(k.right) == pytest.approx(right[0], abs=1e-5)


@pytest.mark.parametrize(
    "name", ["sigmoid", "tanh", "softsign", "elu", "isrlu", "gelu", "sinc", "bent_identity"]
)
def test_smooth_enough_functions_have_no_kinks(name):
    assert P.nondifferentiable(parse_spec(name)) == ()


def test_relu_derivative_is_the_step_with_value_zero_at_zero():
    d = P.derivative(parse_spec("relu"))
    assert d.subs(Z, 0) == 0 and d.subs(Z, 1) == 1 and d.subs(Z, -1) == 0
    assert not d.has(sp.Heaviside, sp.DiracDelta)


def test_step_derivative_is_zero_not_a_dirac_delta():
    assert P.derivative(parse_spec("step")) == 0


def test_sinc_derivative_is_zero_at_zero():
    d = P.derivative(parse_spec("sinc"))
    assert d.subs(Z, 0) == 0
    assert sp.simplify(d.subs(Z, sp.pi) - (-1 / sp.pi)) == 0


# ---------------------------------------------------------------------------
# The derivative in terms of the output


EXPECTED_IN_OUTPUT = {
    "identity": sp.Integer(1),
    "tanh": 1 - Y**2,
    "sigmoid": Y * (1 - Y),
    "softplus": 1 - sp.exp(-Y),
    "isru": (1 - Y**2) ** sp.Rational(3, 2),
    "arctan": sp.cos(Y) ** 2,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_IN_OUTPUT))
def test_derivative_in_output_closed_forms(name):
    g = P.derivative_in_output(parse_spec(name))
    assert sp.simplify(g - EXPECTED_IN_OUTPUT[name]) == 0


def test_piecewise_derivatives_in_output():
    elu = P.derivative_in_output(parse_spec("elu(alpha=2)"))
    assert elu.subs(Y, sp.Rational(-1, 2)) == sp.Rational(3, 2) and elu.subs(Y, 5) == 1
    relu = P.derivative_in_output(parse_spec("relu"))
    assert relu.subs(Y, 0) == 0 and relu.subs(Y, 3) == 1
    assert P.derivative_in_output(parse_spec("step")) == 0


@pytest.mark.parametrize("name", ["silu", "gelu", "mish", "sin", "sinc", "gaussian"])
def test_no_derivative_in_output_for_functions_that_are_not_one_to_one(name):
    assert P.derivative_in_output(parse_spec(name)) is None


@pytest.mark.parametrize("spec", NUMERIC + ["elu(alpha=2)", "isrlu(alpha=4)"])
def test_derivative_in_output_holds_numerically(spec):
    act = parse_spec(spec)
    g = P.derivative_in_output(act)
    if g is None:  # only where f is not one-to-one, or the inverse is a nested radical
        assert spec in {"silu", "gelu", "mish", "sin", "sinc", "gaussian", "bent_identity"}
        return
    gy = sp.lambdify(Y, g, modules=[LAMBDIFY_NUMPY, "numpy"])
    z = np.random.default_rng(99).uniform(-6, 6, 400)
    z = z[np.min(np.abs(z[:, None] - np.array(_kink_points(act) + [1e9])[None, :]), axis=1) > 1e-6]
    with np.errstate(all="ignore"):
        got = np.broadcast_to(np.asarray(gy(act.numpy(z)), dtype=float), z.shape)
    want = _derivative_np(act)(z)
    np.testing.assert_allclose(got, np.broadcast_to(want, z.shape), rtol=1e-8, atol=1e-10)


def test_in_output_forms_exist_for_the_monotone_rows():
    have = {n for n in NUMERIC if P.derivative_in_output(parse_spec(n)) is not None}
    assert {"sigmoid", "tanh", "arctan", "softsign", "isru", "relu", "leaky_relu", "elu", "selu",
            "isrlu", "softplus", "hard_tanh", "hard_sigmoid", "step", "identity"} <= have  # fmt: skip


# ---------------------------------------------------------------------------
# Consistency


@pytest.mark.parametrize("spec", NUMERIC + ["affine(a=2, c=1)", "prelu(alpha=1)"])
def test_affine_agrees_with_the_records_own_test(spec):
    act = parse_spec(spec)
    assert P.affine(act) is act.is_affine


def test_properties_are_cached():
    a = P.properties(parse_spec("tanh"))
    b = P.properties(parse_spec("tanh"))
    assert a is b


def test_whole_catalogue_is_analysed_from_a_cold_cache():
    P._properties_for.cache_clear()
    P._analysis_for.cache_clear()
    for name in names():
        assert P.properties(parse_spec(name)) is not None


# ---------------------------------------------------------------------------
# Softmax


def _softmax_check(n: int) -> None:
    record = lookup_vector("softmax")
    ys = P.output_symbols(n)
    derived = P.jacobian_in_output(record, n)
    expected = sp.Matrix(n, n, lambda i, j: ys[i] * ((1 if i == j else 0) - ys[j]))
    constraint = {ys[-1]: 1 - sp.Add(*ys[:-1])}  # outputs sum to 1
    assert (derived - expected).xreplace(constraint).applyfunc(sp.expand) == sp.zeros(n, n)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_softmax_jacobian_in_outputs_is_f_i_delta_minus_f_j(n):
    _softmax_check(n)


def test_softmax_jacobian_matches_finite_differences():
    record = lookup_vector("softmax")
    n = 4
    zs = record.inputs(n)
    jac = sp.lambdify(zs, P.vector_jacobian(record, n), modules="numpy")
    rng = np.random.default_rng(3)
    for _ in range(10):
        z = rng.normal(0, 2, n)
        h = 1e-6
        fd = np.column_stack(
            [(record.numpy(z + h * e) - record.numpy(z - h * e)) / (2 * h) for e in np.eye(n)]
        )
        np.testing.assert_allclose(np.asarray(jac(*z), dtype=float), fd, atol=1e-9)
        y = record.numpy(z)
        np.testing.assert_allclose(np.diag(y) - np.outer(y, y), fd, atol=1e-9)


def test_softmax_vector_properties():
    v = P.vector_properties(lookup_vector("softmax"))
    i, j = P.I_INDEX, P.J_INDEX
    y = sp.IndexedBase("y")
    assert sp.expand(v.jacobian_in_output - y[i] * (sp.KroneckerDelta(i, j) - y[j])) == 0
    assert (v.range.lower, v.range.upper, v.range.lower_closed, v.range.upper_closed) == (
        0,
        1,
        False,
        False,
    )
    assert v.continuity == sp.oo and v.affine is False
    assert [r.name for r in VECTOR_RECORDS] == ["softmax"]
