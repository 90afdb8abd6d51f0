"""The shortcuts in symnet.networks.properties compute exactly what they replace.

Each speed-up there rests on a claim checked here: a memoised SymPy call returns what
SymPy returns, the direct interval test agrees with ``Set.contains``, the open cells
of f^(k+1) are the derivatives of the open cells of f^(k), and the cached sample
points cannot be changed by a caller.
"""

import itertools

import pytest
import sympy as sp

from symnet.networks import activations
from symnet.networks import properties as P
from symnet.networks.activations import Z

CATALOGUE = [activations.lookup(n).bind() for n in activations.names()]
EXTRA = [activations.parse_spec(s) for s in ("leaky_relu(alpha=0.2)", "elu(alpha=2)")]


def _pieces(acts=CATALOGUE):
    for act in acts:
        try:
            cells = P._cells(act.body)
        except P._Undecided:
            continue
        for c in cells:
            if not c.is_point:
                yield act.name, c.expr


def test_contains_agrees_with_set_contains():
    oo = sp.oo
    ends = [-oo, sp.Integer(-3), sp.Rational(-1, 2), sp.Integer(0), sp.Rational(1, 3), oo]
    points = [sp.Integer(-4), sp.Integer(-3), sp.Rational(-1, 2), sp.Integer(0),
              sp.Rational(1, 3), sp.Rational(1, 6), sp.Integer(5), sp.sqrt(2), sp.pi]
    for a, b in itertools.product(ends, ends):
        for left_open, right_open in itertools.product((False, True), repeat=2):
            s = sp.Interval(a, b, left_open, right_open)
            for p in points:
                assert P._contains(s, p) == (s.contains(p) == sp.true), (s, p)
    s = sp.Union(sp.Interval.open(-oo, 0), sp.Interval.open(0, oo))
    for p in points:
        assert P._contains(s, p) == (s.contains(p) == sp.true)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_memoised_diff_is_sympy_diff(k):
    for name, expr in _pieces():
        want = sp.diff(expr, Z) if k == 1 else sp.diff(expr, Z, k)
        assert sp.srepr(P._diff(expr, k)) == sp.srepr(want), name
        if k == 1:
            assert sp.srepr(P._diff(expr)) == sp.srepr(sp.diff(expr, Z, 1)), name


def test_memoised_simplify_and_solve_are_sympy():
    y = P.Y
    for e in (1 / (1 + sp.exp(-Z)), sp.atan(Z), Z / sp.sqrt(Z**2 + 1), sp.exp(Z) - 1):
        assert list(P._solve_for_z(e)) == sp.solve(sp.Eq(y, e), Z, check=False)
        assert list(P._solve_for_z(e)) == sp.solve(sp.Eq(y, e), Z, check=False)  # cached
        g = sp.diff(e, Z)
        assert sp.srepr(P._simplify(g)) == sp.srepr(sp.simplify(g))


def test_unchecked_solutions_give_the_checked_forms(monkeypatch):
    """solve's check is left out: on every piece of the catalogue (and of variants with
    other parameters) the output form found from the unchecked solutions is exactly the
    one the checked solutions gave."""
    def checked(e):
        try:
            return tuple(sp.solve(sp.Eq(P.Y, e), Z))
        except (NotImplementedError, ValueError, TypeError):
            return ()

    variants = [activations.parse_spec(s) for s in ("isru(alpha=3)", "isrlu(alpha=2)", "prelu(alpha=0.5)")]
    for name, expr in _pieces(CATALOGUE + EXTRA + variants):
        d = sp.diff(expr, Z)
        if not d.has(Z):
            continue
        fast = P._invert(expr, d, None)
        with monkeypatch.context() as m:
            m.setattr(P, "_solve_for_z", checked)
            slow = P._invert(expr, d, None)
        assert sp.srepr(fast) == sp.srepr(slow), name


def test_a_spurious_solution_gives_no_form(monkeypatch):
    """A candidate z(y) that is not an inverse (what an unchecked solve may return) is
    refused: the form must pass the numeric and the simplify test."""
    wrong = (P.Y + 1,)
    monkeypatch.setattr(P, "_solve_for_z", lambda e: wrong)
    e = 1 / (1 + sp.exp(-Z))
    assert P._invert(e, sp.diff(e, Z), None) is None
    monkeypatch.setattr(P, "_solve_for_z", lambda e: wrong + (sp.log(P.Y / (1 - P.Y)),))
    assert sp.simplify(P._invert(e, sp.diff(e, Z), None) - P.Y * (1 - P.Y)) == 0


@pytest.mark.parametrize("act", CATALOGUE + EXTRA, ids=lambda a: a.spec)
def test_open_cells_of_the_next_derivative(act):
    """What ``_direction`` reads of dcells(k + 1) is the derivative of each open cell."""
    a = P._Analysis(act)
    if a.cells is None or a.symbolic_params:
        pytest.skip("no numeric cells")
    for k in (0, 1):
        here, there = a.dcells(k), a.dcells(k + 1)
        assert len(here) == len(there)
        for c, dc in zip(here, there):
            assert c.is_point == dc.is_point
            if not c.is_point:
                assert (dc.lo, dc.hi) == (c.lo, c.hi)
                assert sp.srepr(dc.expr) == sp.srepr(P._diff(c.expr))


def test_cell_points_are_a_fresh_copy():
    first = P._cell_points(sp.Integer(0), sp.oo)
    keep = first.copy()
    first[:] = -1.0
    again = P._cell_points(sp.Integer(0), sp.oo)
    assert (again == keep).all()
    assert (again > 0).all()


def test_continuous_domain_shortcut_matches_sympy():
    interval = sp.Interval.open(0, sp.oo)
    for e in (Z, 1 / Z, sp.log(Z), sp.sin(Z) / Z):
        assert P._continuous_domain_is(e, interval) == (
            sp.calculus.util.continuous_domain(e, Z, interval) == interval)
    gelu = Z * (sp.erf(sp.sqrt(2) * Z / 2) + 1) / 2  # SymPy cannot decide: sampled instead
    assert P._continuous_domain_is(gelu, sp.Interval(-sp.oo, sp.oo)) is None
