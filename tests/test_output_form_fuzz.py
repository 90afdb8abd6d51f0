"""Generated one-to-one activations: a derivative written in the output, g with
f'(z) = g(f(z)), is right wherever it is given.

``symnet.networks.properties`` finds g from SymPy's solutions of y = f(z) taken without
SymPy's own check of each solution, so every candidate must be refused unless it is an
identity; and within a time budget (SymPy can simplify a composition for minutes).
The reference here shares nothing with that code: f is evaluated by mpmath from a
formula built here, f' by mpmath's numerical differentiation at 30 digits.
"""

import random

import mpmath
import pytest
import sympy as sp

from symnet.networks import activations as A
from symnet.networks import properties as P
from symnet.networks.activations import Activation, Z


@pytest.fixture(autouse=True)
def _registries_restored():
    """A generated formula can equal a catalogue one (sigmoid itself): binding it must not
    leave its name in the display registry for the tests that run after."""
    display, derivatives, differentiated = dict(A._DISPLAY), dict(A._DERIVATIVES), list(A._DIFFERENTIATED)
    yield
    A._DISPLAY.clear()
    A._DISPLAY.update(display)
    A._DERIVATIVES.clear()
    A._DERIVATIVES.update(derivatives)
    A._DIFFERENTIATED[:] = differentiated


# increasing functions, each with an mpmath twin: their compositions are one-to-one
_OUTER = [
    ("exp", sp.exp, mpmath.exp),
    ("atan", sp.atan, mpmath.atan),
    ("tanh", sp.tanh, mpmath.tanh),
    ("sinh", sp.sinh, mpmath.sinh),
    ("asinh", sp.asinh, mpmath.asinh),
    ("softplus", lambda u: sp.log(1 + sp.exp(u)), lambda u: mpmath.log(1 + mpmath.exp(u))),
    ("cube", lambda u: u**3 + u, lambda u: u**3 + u),
    ("wobble", lambda u: u + sp.sin(u) / 2, lambda u: u + mpmath.sin(u) / 2),
    ("sigmoid", lambda u: 1 / (1 + sp.exp(-u)), lambda u: 1 / (1 + mpmath.exp(-u))),
]


def _composed(outer, a: sp.Rational, c: sp.Rational, inner):
    """z -> outer(a inner(z) + c) in mpmath."""
    ma, mc = mpmath.mpf(a.p) / a.q, mpmath.mpf(c.p) / c.q
    return lambda z: outer(ma * inner(z) + mc)


def _generated(seed: int):
    """A random composition of one or two increasing functions of affine arguments:
    its SymPy formula, its mpmath reference and a label."""
    rng = random.Random(seed)
    expr, ref, names = Z, (lambda z: z), []
    for _ in range(rng.randint(1, 2)):
        name, f, g = rng.choice(_OUTER)
        a = sp.Rational(rng.choice([1, 2, 3, -1, -2]), rng.choice([1, 2, 3]))
        c = sp.Rational(rng.randint(-2, 2), rng.choice([1, 2]))
        expr, ref = f(a * expr + c), _composed(g, a, c, ref)
        names.append(f"{name}({a}*.+{c})")
    return expr, ref, " o ".join(reversed(names))


def _activation(expr: sp.Expr) -> Activation:
    f = sp.lambdify(Z, expr, modules="numpy")
    return Activation("fuzz", lambda z: expr.xreplace({Z: z}), f, latex="f").bind()


@pytest.mark.parametrize("seed", range(30))
def test_output_form_is_right_where_given(seed, monkeypatch):
    monkeypatch.setattr(P, "INVERT_BUDGET", 1.0)  # a form not found in time is no form: honest
    expr, ref, label = _generated(seed)
    g = P.derivative_in_output(_activation(expr))
    if g is not None:  # no form is honest
        _assert_right(g, ref, label, seed)


def _assert_right(g: sp.Expr, ref, label: str, seed: int) -> None:
    gf = sp.lambdify(P.Y, g, modules="mpmath")
    rng = random.Random(1000 + seed)
    checked = 0
    with mpmath.workdps(30):
        for _ in range(25):
            z = mpmath.mpf(rng.uniform(-3, 3))
            try:
                y = ref(z)
                want = mpmath.diff(ref, z)
            except (ValueError, ZeroDivisionError, OverflowError):
                continue
            if not (mpmath.isfinite(y) and mpmath.isfinite(want)) or abs(want) > 1e12:
                continue
            got = gf(y)
            assert abs(got - want) <= 1e-12 * (1 + abs(want)), (label, g, z)
            checked += 1
    assert checked >= 10, label


@pytest.mark.parametrize("seed", [1, 3, 8])
def test_a_wrong_form_fails_the_reference(seed):
    """Meta: the reference catches a form that is off (a factor, a sign, a constant)."""
    expr, ref, label = _generated(seed)
    g = P.derivative_in_output(_activation(expr))
    for wrong in (g * sp.Rational(101, 100), -g, g + sp.Rational(1, 1000)):
        with pytest.raises(AssertionError):
            _assert_right(wrong, ref, label, seed)


def test_a_search_over_budget_is_no_form(monkeypatch):
    """SymPy taking too long for one piece gives no form (honest), not a hang."""
    def forever(e, d, image):
        while True:
            sp.simplify(sp.sin(Z) ** 2 + sp.cos(Z) ** 2)

    monkeypatch.setattr(P, "INVERT_BUDGET", 0.2)
    monkeypatch.setattr(P, "_invert_unbounded", forever)
    e = sp.tanh(Z / 3 + 2)
    assert P._invert(e, sp.diff(e, Z), None) is None


@pytest.mark.parametrize("expr,want", [
    (sp.tanh(-2 * Z / 3 - 1), 2 * (P.Y**2 - 1) / 3),  # SymPy writes it -tanh(2z/3 + 1)
    (sp.atan(1 - Z), -sp.cos(P.Y) ** 2),
    (sp.tanh(-Z), P.Y**2 - 1),
])
def test_an_odd_function_of_a_negated_argument_has_its_form(expr, want):
    assert sp.simplify(P._invert(expr, sp.diff(expr, Z), None) - want) == 0
