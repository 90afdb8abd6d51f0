"""Properties of an activation, derived from its formula (never typed in).

Given a :class:`~symnet.networks.activations.BoundActivation`, this module computes its
derivative, the derivative written in the function's own output ``y = f(z)``,
its range, order of continuity, monotonicity and the rest of the columns of the
usual comparison table.  :func:`properties` gathers them in a frozen
:class:`Properties`; every function caches per record and parameter values.

Method
------
*Piecewise normal form.*  ``Abs``, ``Max``, ``Min``, ``Heaviside``, ``sign`` and
``sinc`` are rewritten as ``Piecewise`` and folded, and the real line is cut at
the breakpoints into open *cells* and the breakpoints themselves.  On each open
cell f is one elementary formula; at a breakpoint f takes the value of the piece
whose condition holds there.

*Subgradient convention.*  At a breakpoint f' is the derivative of the piece
that owns the point (so ``Max(0, z)``, which SymPy rewrites as ``0 for z <= 0``,
gets relu'(0) = 0; ``Piecewise((alpha z, z < 0), (z, True))`` gets 1).  A value
defined at an isolated point (``sinc(0) = 1``) gets the common limit of f' from
both sides when f is continuous there.  The derivative of a jump
(``Heaviside``) is a Dirac delta; it is recorded as 0 (its value away from the
jump, and the convention at it), and the jump is listed as non-differentiable.

*Exact where SymPy decides.*  Derivatives, one-sided limits at breakpoints
(substitution where the piece is finite there, else ``sympy.limit``), limits at
+-oo (``sympy.limit``), and the symbolic check of every derivative written in
the output.  Numbers are compared exactly, or at 40 digits when they carry
Floats (SELU's constants).

*Numeric where SymPy cannot* (each :class:`Properties` lists which of its facts
rest on this): critical points (zeros of f'), and the signs of f' and f'' on
each cell.  The formula is sampled on a fixed grid (uniform on [-20, 20] and
[-200, 200], geometric towards each breakpoint, and sinh-spaced out to +-1e8);
sign changes are bracketed, refined by bisection in float64, and the brackets
that decide an extremum are confirmed and refined with mpmath at 30 digits.  A
sign seen on the grid is confirmed at 30 digits before it is believed, so
round-off never makes a monotone function look non-monotone.  A feature
narrower than the grid spacing, or beyond 1e8, can be missed.  An extremum found
this way is reported exactly when ``nsimplify`` (with pi) proposes a value at
which f' simplifies to exactly 0, and otherwise to :data:`DIGITS` significant
digits.

*Parameters.*  All of this needs numeric parameter values.  With a symbolic
parameter (``affine`` leaves ``a``, ``c`` free) only what holds for every value
is decided; the rest is ``None`` ("depends on the parameters").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from sympy.core.sympify import _sympify

from symnet.kernel.scalar import time_limit
from symnet.networks.activations import BoundActivation, VectorActivation, Z, lambdify_numpy

#: The symbol derivatives are written in when expressed through the output.
Y = sp.Symbol("y", real=True)
#: Highest derivative order compared at a breakpoint.
MAX_ORDER = 8
#: Working precision (decimal digits) of the mpmath confirmations.
MP_DPS = 30
#: Significant digits of a range endpoint found numerically.
DIGITS = 15

_OO = sp.oo
_NEG_OO = -sp.oo


class _Undecided(Exception):
    """The piecewise analysis needs numbers where there are symbols."""


# ---------------------------------------------------------------------------
# Memoised SymPy calls (pure functions of their arguments; the analysis asks
# for the same derivative, simplification or solution set many times)


def _diff(expr: sp.Expr, k: int = 1) -> sp.Expr:
    """``sympy.diff(expr, Z, k)``, computed once per expression and order.

    ``diff(expr, Z)`` and ``diff(expr, Z, 1)`` are the same call to SymPy (both
    ask for one derivative in z), so they share a cache entry.
    """
    return _diff_cached(expr, k)


@functools.lru_cache(maxsize=4096)
def _diff_cached(expr: sp.Expr, k: int) -> sp.Expr:
    return sp.diff(expr, Z) if k == 1 else sp.diff(expr, Z, k)


@functools.lru_cache(maxsize=2048)
def _simplify(expr: sp.Expr) -> sp.Expr:
    """``sympy.simplify(expr)``, computed once per expression."""
    return sp.simplify(expr)


@functools.lru_cache(maxsize=512)
def _solve_for_z(eq_rhs: sp.Expr) -> tuple[sp.Expr, ...]:
    """``sympy.solve(Eq(y, eq_rhs), z, check=False)`` (empty when SymPy gives up), once per
    expression. The solutions are only candidates: :func:`_invert` keeps a form g only when
    g(f(z)) = f'(z) holds at sample points and simplifies to 0, so solve's own check of
    each solution (half its time) would decide nothing."""
    try:
        return tuple(sp.solve(sp.Eq(Y, eq_rhs), Z, check=False))
    except (NotImplementedError, ValueError, TypeError):
        return ()


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Range:
    """The image f(R): a SymPy set, with its endpoints and whether each is attained."""

    lower: sp.Expr
    upper: sp.Expr
    lower_closed: bool
    upper_closed: bool
    set: sp.Set
    numeric: bool = False  # an endpoint rests on the numeric method

    def __str__(self) -> str:
        if isinstance(self.set, sp.FiniteSet):
            return "{" + ", ".join(_plain_number(v) for v in self.set) + "}"
        left = "[" if self.lower_closed else "("
        right = "]" if self.upper_closed else ")"
        return f"{left}{_plain_number(self.lower)}, {_plain_number(self.upper)}{right}"

    @property
    def bounded(self) -> bool:
        return bool(self.lower.is_finite and self.upper.is_finite)


@dataclass(frozen=True)
class Kink:
    """A point where f is not differentiable, and the derivative value used there."""

    point: sp.Expr
    left: sp.Expr  # limit of f' from the left
    right: sp.Expr  # limit of f' from the right
    value: sp.Expr  # the subgradient convention: f'(point) as symnet uses it
    jump: bool  # f itself jumps here (its derivative is a Dirac delta)


@dataclass(frozen=True)
class Properties:
    """Everything :mod:`symnet.networks.properties` derives for one bound activation.

    ``None`` in a field means "depends on symbolic parameters" (or, for
    ``derivative_in_output``, that no verified expression in ``y`` was found).
    ``continuity`` is k for C^k, -1 for discontinuous, ``sympy.oo`` for smooth.
    ``derivative_in_output`` is derived on first use (inverting f is the slowest step,
    and most readers of a record never need it; it adds no numeric notes).
    """

    name: str
    spec: str
    formula: sp.Expr
    derivative: sp.Expr
    range: Range | None
    continuity: int | sp.Expr | None
    monotonic: bool | None
    nondecreasing: bool | None
    derivative_monotonic: bool | None
    identity_near_origin: bool | None
    bounded: bool | None
    affine: bool | None
    squashing: bool | None
    nondifferentiable: tuple[Kink, ...]
    subgradient: str
    numeric: tuple[str, ...]
    _analysis: Any = field(repr=False, compare=False)

    @property
    def derivative_in_output(self) -> sp.Expr | None:
        """f' written in the output y = f(z), verified, or None."""
        return self._analysis.derivative_in_output


# ---------------------------------------------------------------------------
# Piecewise normal form


@dataclass(frozen=True)
class _Cell:
    """An open interval (lo, hi), or the point lo == hi, and the formula there.

    At a point, ``expr`` is the piece owning it when that piece also covers a
    neighbouring cell, else None (an isolated value); ``value`` is f there.
    """

    lo: sp.Expr
    hi: sp.Expr
    expr: sp.Expr | None
    value: sp.Expr | None = None

    @property
    def is_point(self) -> bool:
        return self.value is not None


def piecewise_form(expr: sp.Expr) -> sp.Expr:
    """``expr`` with Abs, Max, Min, Heaviside, sign and sinc written as one folded Piecewise."""
    e = expr.replace(sp.sinc, lambda a: sp.Piecewise((sp.sin(a) / a, sp.Ne(a, 0)), (1, True)))
    e = e.rewrite(sp.Piecewise)
    return sp.piecewise_fold(e)


def _is_real_number(x: sp.Expr) -> bool:
    return bool(x.is_number and x.is_real and x.is_finite)


def _inside(lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    """A point strictly inside (lo, hi)."""
    if lo == _NEG_OO and hi == _OO:
        return sp.Integer(0)
    if lo == _NEG_OO:
        return hi - 1
    if hi == _OO:
        return lo + 1
    return (lo + hi) / 2


@functools.lru_cache(maxsize=512)
def _cells(expr: sp.Expr) -> tuple[_Cell, ...]:
    """Cut the real line at the breakpoints of ``expr``: open cells and points, in order."""
    e = piecewise_form(expr)
    if not isinstance(e, sp.Piecewise):
        if e.has(sp.Piecewise):
            raise _Undecided("a Piecewise that does not fold")
        return (_Cell(_NEG_OO, _OO, e),)
    try:
        pairs = [(x, s) for x, s in e.as_expr_set_pairs(sp.S.Reals) if s != sp.S.EmptySet]
    except Exception as exc:  # symbolic conditions SymPy cannot solve
        raise _Undecided(str(exc)) from None
    points = set()
    for _, s in pairs:
        boundary = s.boundary
        if not isinstance(boundary, sp.FiniteSet):
            raise _Undecided("breakpoints are not a finite set of numbers")
        for p in boundary:
            if p in (_OO, _NEG_OO):
                continue
            if not _is_real_number(p):
                raise _Undecided(f"breakpoint {p} is not a number")
            points.add(p)
    breaks = sorted(points, key=lambda p: float(p))

    def owner(at: sp.Expr) -> sp.Expr:
        for x, s in pairs:
            if _contains(s, at):
                return x
        raise _Undecided(f"no piece covers z = {at}")

    edges = [_NEG_OO, *breaks, _OO]
    cells: list[_Cell] = []
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        cells.append(_Cell(lo, hi, owner(_inside(lo, hi))))
        if i < len(breaks):
            b = breaks[i]
            x = owner(b)
            value = x.subs(Z, b)
            if not (value.is_finite and value.is_real):
                raise _Undecided(f"the formula is undefined at z = {b}")
            cells.append(_Cell(b, b, x, value))
    return tuple(_mark_isolated(cells))


def _is_rational_or_oo(x: sp.Expr) -> bool:
    return bool(x.is_Rational) or x in (_OO, _NEG_OO)


def _contains(s: sp.Set, at: sp.Expr) -> bool:
    """``s.contains(at) == true``.

    For an interval with rational (or infinite) ends and a rational point the
    comparison is done directly (it is exact, and it is what ``contains``
    evaluates there); anything else is left to ``contains``.
    """
    if (isinstance(s, sp.Interval) and at.is_Rational
            and _is_rational_or_oo(s.start) and _is_rational_or_oo(s.end)):
        above = (at > s.start) if s.left_open else (at >= s.start)
        below = (at < s.end) if s.right_open else (at <= s.end)
        return bool(above == sp.true and below == sp.true)
    return s.contains(at) == sp.true


def _mark_isolated(cells: list[_Cell]) -> list[_Cell]:
    out = []
    for i, c in enumerate(cells):
        if c.is_point and c.expr is not None:
            if c.expr != cells[i - 1].expr and c.expr != cells[i + 1].expr:
                c = _Cell(c.lo, c.hi, None, c.value)
        out.append(c)
    return out


@functools.lru_cache(maxsize=4096)
def _side_limit(expr: sp.Expr, at: sp.Expr, direction: str) -> sp.Expr:
    """lim expr as z -> at from ``direction`` ('+' or '-'); at may be +-oo."""
    if at in (_OO, _NEG_OO):
        # substituting +-oo is exact when SymPy's extended arithmetic gives a
        # definite value (tanh(oo) = 1); indeterminate forms (nan, oo - oo,
        # AccumBounds) fall back to ``limit``
        try:
            value = expr.subs(Z, at)
        except (TypeError, ValueError):
            value = sp.nan
        if (value.is_number and not value.has(sp.nan, sp.zoo, sp.AccumBounds)
                and (value.is_extended_real is True)):
            return value
        return _refloat(sp.limit(expr, Z, at), expr)
    value = expr.subs(Z, at)
    if value.is_finite and not value.has(sp.nan, sp.zoo):
        return value
    return _refloat(sp.limit(expr, Z, at, direction), expr)


def _refloat(value: sp.Expr, expr: sp.Expr) -> sp.Expr:
    """``sympy.limit`` turns Floats into Rationals; give a Float back if expr had Floats."""
    floats = expr.atoms(sp.Float)
    if floats and value.is_Rational and not value.is_Integer:
        digits = max(mpmath.libmp.prec_to_dps(f._prec) for f in floats)
        return sp.Float(value, digits)
    return value


def _diff_cells(cells: tuple[_Cell, ...]) -> tuple[_Cell, ...]:
    """The cells of f' from those of f, applying the subgradient convention at points."""
    out: list[_Cell] = []
    for i, c in enumerate(cells):
        if not c.is_point:
            out.append(_Cell(c.lo, c.hi, _diff(c.expr)))
            continue
        b = c.lo
        if c.expr is not None:
            d = _diff(c.expr)
            left_d = _diff(cells[i - 1].expr)
            right_d = _diff(cells[i + 1].expr)
            side = "-" if c.expr == cells[i - 1].expr else "+"
            value = _side_limit(d, b, side)
            owner = d if d in (left_d, right_d) else None
            out.append(_Cell(b, b, owner, value))
            continue
        # an isolated value: f'(b) is the common limit of f' when f is continuous at b
        left, right = cells[i - 1].expr, cells[i + 1].expr
        value = sp.Integer(0)
        if _same(_side_limit(left, b, "-"), c.value) and _same(_side_limit(right, b, "+"), c.value):
            dl = _side_limit(_diff(left), b, "-")
            dr = _side_limit(_diff(right), b, "+")
            if _same(dl, dr):
                value = dl
        out.append(_Cell(b, b, None, value))
    return tuple(_mark_isolated(out))


# ---------------------------------------------------------------------------
# Exact and numeric comparison


def _same(a: Any, b: Any) -> bool | None:
    """True/False when a == b is decided (exactly, or at 40 digits for numbers); None if not."""
    a, b = _sympify(a), _sympify(b)
    if a == b:
        return True
    if isinstance(a, sp.AccumBounds) or isinstance(b, sp.AccumBounds):
        return False
    if a.has(sp.oo, -sp.oo, sp.zoo, sp.nan) or b.has(sp.oo, -sp.oo, sp.zoo, sp.nan):
        return False
    if a.is_number and b.is_number:
        da, db = sp.N(a, 40), sp.N(b, 40)
        scale = max(1.0, abs(float(da)), abs(float(db)))
        return abs(float(sp.N(da - db, 40))) <= 1e-25 * scale
    d = _simplify(a - b)
    if d == 0:
        return True
    if d.is_number:
        return False
    return None


def _le(a: sp.Expr, b: sp.Expr) -> bool | None:
    """a <= b for numbers (tolerant to 40-digit round-off); None with symbols."""
    if _same(a, b):
        return True
    if not (a.is_number and b.is_number) or a.has(sp.nan, sp.zoo):
        return None
    return bool(sp.N(a, 40) <= sp.N(b, 40))


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def _float(x: sp.Expr) -> float:
    return float(sp.N(x, 30))


# ---------------------------------------------------------------------------
# The numeric method


def _make_grid() -> np.ndarray:
    far = np.sinh(np.linspace(0.0, math.asinh(1e8), 1201))
    parts = [np.linspace(-20.0, 20.0, 8001), np.linspace(-200.0, 200.0, 4001), far, -far]
    return np.unique(np.concatenate(parts))


GRID = _make_grid()


def _cell_points(lo: sp.Expr, hi: sp.Expr) -> np.ndarray:
    """Sample points strictly inside the cell (lo, hi)."""
    a = -math.inf if lo == _NEG_OO else float(lo)
    b = math.inf if hi == _OO else float(hi)
    return _cell_points_float(a, b).copy()


@functools.lru_cache(maxsize=256)
def _cell_points_float(a: float, b: float) -> np.ndarray:
    """:func:`_cell_points` for the float bounds a < b (cached; callers get a copy)."""
    parts = [GRID[(GRID > a) & (GRID < b)]]
    offsets = np.geomspace(1e-9, 1.0, 60)
    if math.isfinite(a):
        parts.append(a + offsets)
    if math.isfinite(b):
        parts.append(b - offsets)
    if math.isfinite(a) and math.isfinite(b):
        parts.append(np.linspace(a, b, 403)[1:-1])
    pts = np.unique(np.concatenate(parts))
    return pts[(pts > a) & (pts < b)]


@functools.lru_cache(maxsize=2048)
def _np_fn(expr: sp.Expr):
    return lambdify_numpy(Z, expr, docstring_limit=0)


@functools.lru_cache(maxsize=2048)
def _mp_fn(expr: sp.Expr):
    return sp.lambdify(Z, expr, modules="mpmath", docstring_limit=0)


def _np_eval(expr: sp.Expr, pts: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        v = np.asarray(_np_fn(expr)(pts), dtype=float)
    return np.broadcast_to(v, pts.shape)


def _mp_eval(expr: sp.Expr, x: Any) -> mpmath.mpf:
    with mpmath.workdps(MP_DPS):
        v = _mp_fn(expr)(mpmath.mpf(x))
        return mpmath.mpf(v.real) if isinstance(v, mpmath.mpc) else mpmath.mpf(v)


def _mp_sign(expr: sp.Expr, x: float) -> int:
    """The sign of expr(x), believed only once two working precisions agree on it.

    Evaluated at 30, 60, 120 and 240 digits; a sign is returned when two
    successive values agree to 1e-3 relative (round-off in a cancelling formula
    changes with the precision, the true value does not).  0 if never stable.
    """
    previous = None
    for dps in (MP_DPS, 2 * MP_DPS, 4 * MP_DPS, 8 * MP_DPS):
        with mpmath.workdps(dps):
            v = _mp_fn(expr)(mpmath.mpf(x))
            v = mpmath.mpf(v.real) if isinstance(v, mpmath.mpc) else mpmath.mpf(v)
            if previous is not None and mpmath.isfinite(v):
                if v == 0 and previous == 0:
                    return 0
                if abs(v - previous) <= abs(v) * mpmath.mpf("1e-3"):
                    return 1 if v > 0 else -1
            previous = v
    return 0


@functools.lru_cache(maxsize=1024)
def _signs(expr: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> tuple[bool, bool]:
    """(takes a positive value, takes a negative value) on the open cell (lo, hi).

    Exact for constants and when SymPy's assumptions decide the sign; otherwise
    numeric: the grid's signs, each side confirmed by :func:`_mp_sign`.
    """
    if not expr.has(Z):
        v = sp.N(expr, 40)
        return bool(v > 0), bool(v < 0)
    if expr.is_positive:
        return True, False
    if expr.is_negative:
        return False, True
    pts = _cell_points(lo, hi)
    vals = _np_eval(expr, pts)
    ok = np.isfinite(vals)
    pts, vals = pts[ok], vals[ok]

    def confirmed(mask: np.ndarray, sign: int) -> bool:
        idx = np.nonzero(mask)[0]
        order = idx[np.argsort(-sign * vals[idx])][:40]
        if len(order) < len(idx):  # also try a spread of the rest
            order = np.concatenate([order, idx[:: max(1, len(idx) // 20)]])
        return any(_mp_sign(expr, float(pts[i])) == sign for i in order)

    return confirmed(vals > 0, 1), confirmed(vals < 0, -1)


def _bisect_np(expr: sp.Expr, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Vectorised float64 bisection of sign-change brackets [a, b]."""
    fa = np.sign(_np_eval(expr, a))
    for _ in range(64):
        m = (a + b) / 2
        fm = np.sign(_np_eval(expr, m))
        left = fm == fa
        a = np.where(left, m, a)
        b = np.where(left, b, m)
    return (a + b) / 2


def _mp_root(expr: sp.Expr, a: float, b: float) -> mpmath.mpf | None:
    """A zero of expr in [a, b] at 30 digits, if the bracket's sign change is real."""
    fa, fb = _mp_eval(expr, a), _mp_eval(expr, b)
    if fa == 0:
        return mpmath.mpf(a)
    if fb == 0:
        return mpmath.mpf(b)
    if (fa > 0) == (fb > 0):
        return None  # round-off, not a sign change
    with mpmath.workdps(MP_DPS):
        lo, hi = mpmath.mpf(a), mpmath.mpf(b)
        flo = fa
        for _ in range(200):
            mid = (lo + hi) / 2
            fm = _mp_eval(expr, mid)
            if fm == 0:
                return mid
            if (fm > 0) == (flo > 0):
                lo, flo = mid, fm
            else:
                hi = mid
            if hi - lo <= mpmath.mpf(10) ** (-MP_DPS + 2) * max(1, abs(lo)):
                break
        return (lo + hi) / 2


@dataclass(frozen=True)
class _Bound:
    value: sp.Expr
    attained: bool
    numeric: bool = False


def _identify(d: sp.Expr, root: mpmath.mpf) -> sp.Expr | None:
    """An exact zero of d equal to the numeric root: 0, p/q or p pi/q with q <= 1000.

    A candidate must match the 30-digit root, vanish at 60 digits, and then
    make ``simplify(d(candidate))`` exactly 0.
    """
    x = float(root)
    candidates = [sp.Rational(x).limit_denominator(1000)]
    candidates.append(sp.Rational(x / math.pi).limit_denominator(1000) * sp.pi)
    for cand in candidates:
        with mpmath.workdps(60):
            if abs(mpmath.mpf(sp.N(cand, 60)) - root) > mpmath.mpf(10) ** (-MP_DPS + 5) * max(
                1, abs(root)
            ):
                continue
            try:
                residual = _mp_fn(d)(mpmath.mpf(sp.N(cand, 60)))
            except (TypeError, ValueError, ZeroDivisionError):
                continue
            if abs(residual) > mpmath.mpf(10) ** -45:
                continue
        try:
            if _simplify(d.subs(Z, cand)) == 0:
                return cand
        except Exception:
            continue
    return None


def _critical_values(expr: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> list[_Bound]:
    """Values of ``expr`` at the smallest and largest of its local extrema in (lo, hi)."""
    d = _diff(expr)
    if not d.has(Z):
        return []
    pts = _cell_points(lo, hi)
    dv = _np_eval(d, pts)
    ok = np.isfinite(dv) & (dv != 0)
    idx = np.nonzero(ok)[0]
    s = np.sign(dv[idx])
    change = np.nonzero(s[:-1] != s[1:])[0]
    if len(change) == 0:
        return []
    a, b = pts[idx[change]], pts[idx[change + 1]]
    roots = _bisect_np(d, a.copy(), b.copy())
    vals = _np_eval(expr, roots)
    good = np.isfinite(vals)
    if not good.any():
        return []
    a, b, roots, vals = a[good], b[good], roots[good], vals[good]
    found: list[_Bound] = []
    for order in (np.argsort(vals, kind="stable"), np.argsort(-vals, kind="stable")):
        # try the most extreme root first (nearest the origin among equals);
        # a bracket that 30 digits show to be round-off is skipped
        tries = 0
        position = 0
        while position < len(order) and tries < 30:
            best = vals[order[position]]
            tie = [i for i in order[position:] if abs(vals[i] - best) <= 1e-9 * max(1.0, abs(best))]
            position += len(tie)
            tie.sort(key=lambda i: abs(roots[i]))
            bound = None
            for i in tie[:3]:
                tries += 1
                root = _mp_root(d, float(a[i]), float(b[i]))
                if root is not None:
                    bound = _critical_bound(expr, d, root)
                    break
            if bound is not None:
                found.append(bound)
                break
    return found


def _critical_bound(expr: sp.Expr, d: sp.Expr, root: mpmath.mpf) -> _Bound:
    """expr at a zero of its derivative: exact if the zero is identified, else DIGITS digits."""
    numeric = _mp_eval(expr, root)
    exact = _identify(d, root)
    if exact is not None:
        value = _simplify(expr.subs(Z, exact))
        if value.is_number and _close(_float(value), float(numeric), 1e-12):
            return _Bound(value, True)
    return _Bound(sp.Float(mpmath.nstr(numeric, DIGITS), DIGITS), True, numeric=True)


def _image(cell: _Cell) -> tuple[sp.Set, bool, list[_Bound]]:
    """f(cell) as a SymPy set; whether the numeric method was used; the end limits."""
    if cell.is_point:
        return sp.FiniteSet(cell.value), False, []
    e = cell.expr
    if not e.has(Z):
        return sp.FiniteSet(e), False, []
    ends: list[_Bound] = []
    for at, side in ((cell.lo, "+"), (cell.hi, "-")):
        lim = _side_limit(e, at, side)
        if isinstance(lim, sp.AccumBounds):
            ends += [_Bound(lim.min, False), _Bound(lim.max, False)]
        elif isinstance(lim, sp.Limit) or lim.has(sp.Limit):
            raise _Undecided(f"SymPy cannot find the limit of {e} at {at}")
        else:
            ends.append(_Bound(lim, False))
    crit = _critical_values(e, cell.lo, cell.hi)
    cands = ends + crit
    low = min(_float(c.value) for c in cands)
    high = max(_float(c.value) for c in cands)

    def pick(target: float) -> _Bound:
        hits = [c for c in cands if _close(_float(c.value), target, 1e-12)]
        attained = any(c.attained for c in hits)
        exact = [c for c in hits if not c.numeric]
        chosen = exact[0] if exact else hits[0]
        return _Bound(chosen.value, attained, chosen.numeric)

    lo_b, hi_b = pick(low), pick(high)
    numeric = lo_b.numeric or hi_b.numeric
    if _close(low, high, 1e-15):
        return sp.FiniteSet(lo_b.value), numeric, ends
    interval = sp.Interval(lo_b.value, hi_b.value, not lo_b.attained, not hi_b.attained)
    return interval, numeric, ends


# ---------------------------------------------------------------------------
# Derivative in terms of the output


def _sign_aware_simplify(g: sp.Expr, image: sp.Set | None) -> sp.Expr:
    """Simplify g(y) using the sign of its polynomial pieces on the image of f."""
    if image is None or not isinstance(image, sp.Interval):
        return g
    lo, hi = _float(image.inf), _float(image.sup)
    lo = max(lo, -1e6)
    hi = min(hi, 1e6)
    ys = np.linspace(lo, hi, 203)[1:-1]
    repl, back = {}, {}
    for k, p in enumerate(sorted(g.atoms(sp.Add), key=sp.default_sort_key)):
        if p.free_symbols != {Y} or not p.is_polynomial(Y):
            continue
        vals = _np_eval_y(p, ys)
        if np.all(vals > 0) or np.all(vals < 0):
            w = sp.Symbol(f"_w{k}", positive=True)
            sign = 1 if vals[0] > 0 else -1
            repl[p] = sign * w
            back[w] = sign * p
    if not repl:
        return g
    h = _simplify(g.xreplace(repl))
    return h.xreplace({w: sp.expand(v) for w, v in back.items()})


def _np_eval_y(expr: sp.Expr, ys: np.ndarray) -> np.ndarray:
    f = lambdify_numpy(Y, expr, docstring_limit=0)
    with np.errstate(all="ignore"):
        return np.broadcast_to(np.asarray(f(ys), dtype=float), ys.shape)


def _tidy(g: sp.Expr) -> sp.Expr:
    """Write -y (y - 1) as y (1 - y): flip one odd factor to absorb a leading minus."""
    if not isinstance(g, sp.Mul):
        return g
    coeff, factors = g.as_coeff_mul()
    if coeff != -1:
        return g
    for i, f in enumerate(factors):
        if isinstance(f, sp.Add):
            flipped = list(factors)
            flipped[i] = sp.expand(-f)
            return sp.Mul(*flipped)
    return g


#: Seconds allowed for finding one piece's derivative in terms of its output (the
#: catalogue's take at most 0.3 s; SymPy can simplify a composition for minutes).
INVERT_BUDGET = 5.0


def _invert(e: sp.Expr, d: sp.Expr, image: sp.Set | None) -> sp.Expr | None:
    """g with g(e(z)) = d(z) identically, proved by simplify; None if none found
    within :data:`INVERT_BUDGET` seconds."""
    try:
        with time_limit(INVERT_BUDGET):
            return _invert_unbounded(e, d, image)
    except (TimeoutError, RecursionError):
        return None


def _invert_unbounded(e: sp.Expr, d: sp.Expr, image: sp.Set | None) -> sp.Expr | None:
    floats = sorted(e.atoms(sp.Float) | d.atoms(sp.Float), key=float)
    names = {}
    for k, f in enumerate(floats):
        names[f] = sp.Symbol(f"_p{k}", positive=bool(f > 0), negative=bool(f < 0))
    back = {v: k for k, v in names.items()}
    e0, d0 = e.xreplace(names), d.xreplace(names)
    candidates = []
    # f' in f directly; or in -f, which is how SymPy writes an odd function of a negated
    # argument (tanh(-u) is -tanh(u), so d0 holds tanh(u) and e0 is -tanh(u))
    for direct in (d0.subs(e0, Y), d0.subs(-e0, -Y)):
        if not direct.has(Z):
            candidates.append(direct)
            break
    if not candidates:
        candidates += [d0.subs(Z, s) for s in _solve_for_z(e0)]
    for g in candidates:
        if sp.count_ops(g) > 2 * sp.count_ops(d0) + 12:
            continue  # much longer than f' itself: no use to anyone, and slow to prove
        forms = []
        simple = _simplify(g)
        forms.append(simple)
        image0 = image
        if image is not None and back:
            image0 = None  # the image is in terms of the floats; skip the sign trick
        forms.append(_sign_aware_simplify(simple, image0))
        for h in sorted(forms, key=sp.count_ops):
            if h.has(Z) or h.has(sp.I) or not _numerically_inverse(h.xreplace(back), e, d):
                continue
            if _simplify(h.subs(Y, e0) - d0) == 0:
                factored = sp.factor(h)
                if sp.count_ops(factored) <= sp.count_ops(h):
                    h = _tidy(factored)
                return h.xreplace(back)
    return None


def _numerically_inverse(g: sp.Expr, e: sp.Expr, d: sp.Expr) -> bool:
    """g(e(z)) agrees with d(z) at a few points (a cheap filter before simplify)."""
    if g.free_symbols - {Y} or e.free_symbols - {Z}:
        return True  # symbolic parameters: leave it to simplify
    composed = g.subs(Y, e)
    for x in (-2.5, -0.75, -0.1, 0.3, 1.1, 3.7):
        try:
            want = _mp_eval(d, x)
            got = _mp_eval(composed, x)
        except (TypeError, ValueError, ZeroDivisionError):
            return False
        if not mpmath.isfinite(want):
            continue
        if not mpmath.isfinite(got) or abs(got - want) > 1e-20 * max(1, abs(want)):
            return False
    return True


# ---------------------------------------------------------------------------
# Assembling a Piecewise from cells


def _condition(s: sp.Set, var: sp.Symbol) -> sp.Basic:
    return s.as_relational(var)


def _assemble(runs: list[tuple[sp.Expr, sp.Set]], var: sp.Symbol) -> sp.Expr:
    """One expression from (formula, set) runs covering R: a Piecewise when they differ."""
    groups: dict[sp.Expr, list[sp.Set]] = {}
    for expr, s in runs:
        for key in groups:
            if key == expr:
                groups[key].append(s)
                break
        else:
            groups[expr] = [s]
    if len(groups) == 1:
        return next(iter(groups))
    keys = list(groups)
    unions = {k: sp.Union(*groups[k]) for k in keys}

    def components(k: sp.Expr) -> int:
        u = unions[k]
        return len(u.args) if isinstance(u, sp.Union) else 1

    # "otherwise" is the formula on most connected pieces (ties: the rightmost)
    default = max(reversed(keys), key=components)
    pieces = [(k, _condition(unions[k], var)) for k in keys if k != default]
    return sp.Piecewise(*pieces, (default, True))


def _runs_from_cells(cells: tuple[_Cell, ...], nice) -> list[tuple[sp.Expr, sp.Set]]:
    """(formula, set) per cell; a point joins the formula of the piece owning it."""
    runs: list[tuple[sp.Expr, sp.Set]] = []
    for i, c in enumerate(cells):
        if not c.is_point:
            runs.append((nice(c.expr), sp.Interval.open(c.lo, c.hi)))
            continue
        b = c.lo
        left, right = cells[i - 1].expr, cells[i + 1].expr
        if c.expr is not None:
            owner = left if c.expr == left else right
            runs.append((nice(owner), sp.FiniteSet(b)))
            continue
        at = left.subs(Z, b)
        if left == right and at.is_finite and _same(at, c.value):
            runs.append((nice(left), sp.FiniteSet(b)))
        else:
            runs.append((c.value, sp.FiniteSet(b)))
    return runs


@functools.lru_cache(maxsize=1024)
def _nice(expr: sp.Expr) -> sp.Expr:
    """The shortest of expr and its ``factor(together(...))`` form (by operation count).

    Deliberately no ``simplify``: it is slow, and it turns the textbook
    ``e^-z / (1 + e^-z)^2`` into ``1 / (4 cosh^2(z/2))``.
    """
    if not expr.has(Z) or sp.count_ops(expr) <= 2:
        return expr
    try:
        tidy = sp.factor(sp.together(expr))
    except Exception:
        return expr
    return tidy if sp.count_ops(tidy) < sp.count_ops(expr) else expr


# ---------------------------------------------------------------------------
# The analysis of one bound activation


def _key(act: BoundActivation) -> tuple:
    return (act.record, act.params)


class _Analysis:
    """Lazily derived facts about one activation; each attribute computed once."""

    def __init__(self, act: BoundActivation):
        self.act = act
        self.body = act.body
        self.numeric_notes: list[str] = []
        self.symbolic_params = bool(self.body.free_symbols - {Z})
        try:
            self.cells: tuple[_Cell, ...] | None = _cells(self.body)
        except _Undecided:
            self.cells = None
        self._dcells = [self.cells]

    # -- derivatives -------------------------------------------------------
    def dcells(self, k: int) -> tuple[_Cell, ...]:
        """Cells of the k-th derivative (computed on demand, then kept)."""
        while len(self._dcells) <= k:
            self._dcells.append(_diff_cells(self._dcells[-1]))
        return self._dcells[k]

    @cached_property
    def derivative(self) -> sp.Expr:
        if self.cells is None:
            return _diff(piecewise_form(self.body))
        folded = self._even_fold(self.dcells(1))
        if folded is not None:
            return folded
        return _assemble(_runs_from_cells(self.dcells(1), _nice), Z)

    def _even_fold(self, cells: tuple[_Cell, ...]) -> sp.Expr | None:
        """g(|z|) when a formula written with Abs has f' = g(z) for z > 0, g(-z) for z < 0."""
        if not self.body.has(sp.Abs) or len(cells) != 3 or cells[1].lo != 0:
            return None
        left, right = cells[0].expr, cells[2].expr
        if _same(left, right.subs(Z, -Z)) is not True:
            return None
        if _same(right.subs(Z, 0), cells[1].value) is not True:
            return None
        return _nice(right).subs(Z, sp.Abs(Z))

    # -- continuity ---------------------------------------------------------
    @cached_property
    def breakpoint_orders(self) -> list[tuple[sp.Expr, int | sp.Expr | None]]:
        """(breakpoint, k) with f of class C^k near it (sympy.oo: smooth)."""
        if self.cells is None:
            return []
        result = []
        for i, c in enumerate(self.cells):
            if c.is_point:
                result.append((c.lo, self._order_at(i)))
        return result

    def _order_at(self, i: int) -> int | sp.Expr | None:
        b = self.cells[i].lo
        left, right = self.cells[i - 1].expr, self.cells[i + 1].expr
        l0, r0 = _side_limit(left, b, "-"), _side_limit(right, b, "+")
        agree = [_same(l0, self.cells[i].value), _same(r0, self.cells[i].value)]
        if False in agree:
            return -1
        if None in agree:
            return None
        if left == right:
            # the same formula on both sides, with f(b) its limit: a removable
            # singularity of an analytic formula (no negative powers in its
            # Laurent series at b) is smooth by Riemann's theorem
            series = sp.series(left, Z, b, 4).removeO()
            if not any(t.as_coeff_exponent(Z - b)[1] < 0 for t in sp.Add.make_args(series)):
                return _OO
        for k in range(1, MAX_ORDER + 1):
            lk = _side_limit(_diff(left, k), b, "-")
            rk = _side_limit(_diff(right, k), b, "+")
            same = _same(lk, rk)
            if same is None:
                return None
            if not same:
                return k - 1
        if _same(left, right):
            return _OO
        return MAX_ORDER  # agrees through MAX_ORDER derivatives: reported as C^MAX_ORDER

    @cached_property
    def smooth_inside(self) -> int | sp.Expr:
        """k such that every piece is C^k inside its open cell (oo normally)."""
        for c in self.cells:
            if c.is_point or not c.expr.has(Z):
                continue
            for k in range(3):
                d = _diff(c.expr, k)
                if not self._continuous_on(d, c.lo, c.hi):
                    return k - 1
        return _OO

    def _continuous_on(self, expr: sp.Expr, lo: sp.Expr, hi: sp.Expr) -> bool:
        interval = sp.Interval.open(lo, hi)
        decided = _continuous_domain_is(expr, interval)
        if decided is not None:
            return decided
        self.numeric_notes.append("continuity inside pieces (sampled at 30 digits)")
        pts = _cell_points(lo, hi)
        pts = pts[np.abs(pts) <= 50][::20]
        return all(mpmath.isfinite(_mp_eval(expr, x)) for x in pts)

    @cached_property
    def continuity(self) -> int | sp.Expr | None:
        if self.cells is None:
            if not self.body.has(sp.Piecewise, sp.Abs, sp.Max, sp.Min, sp.Heaviside, sp.sign) and (
                self.body.is_polynomial(Z)
            ):
                return _OO
            return None
        orders = [k for _, k in self.breakpoint_orders]
        if None in orders:
            return None
        if self.symbolic_params:
            inside = _OO if all(c.is_point or c.expr.is_polynomial(Z) for c in self.cells) else None
            if inside is None:
                return None
        else:
            inside = self.smooth_inside
        return min([inside, *orders], key=lambda k: math.inf if k == _OO else k)

    # -- kinks ----------------------------------------------------------------
    @cached_property
    def kinks(self) -> tuple[Kink, ...]:
        if self.cells is None:
            return ()
        out = []
        d = self.dcells(1)
        for (b, k), i in zip(
            self.breakpoint_orders, [i for i, c in enumerate(self.cells) if c.is_point]
        ):
            if k is None or k == _OO or k >= 1:
                continue
            left = _side_limit(d[i - 1].expr, b, "-")
            right = _side_limit(d[i + 1].expr, b, "+")
            out.append(Kink(b, left, right, d[i].value, jump=(k == -1)))
        return tuple(out)

    # -- range ------------------------------------------------------------------
    @cached_property
    def images(self) -> list[tuple[sp.Set, bool, list[_Bound]]]:
        return [_image(c) for c in self.cells]

    @cached_property
    def range(self) -> Range | None:
        if self.cells is None or self.symbolic_params:
            return None
        try:
            images = self.images
        except _Undecided:
            return None
        s = sp.Union(*[im for im, _, _ in images])
        numeric = any(n for _, n, _ in images)
        if numeric:
            self.numeric_notes.append("range: extrema located numerically")
        lower, upper = s.inf, s.sup
        lower_closed = lower.is_finite is True and s.contains(lower) == sp.true
        upper_closed = upper.is_finite is True and s.contains(upper) == sp.true
        return Range(lower, upper, bool(lower_closed), bool(upper_closed), s, numeric)

    @cached_property
    def limits_at_infinity(self) -> tuple[sp.Expr, sp.Expr] | None:
        if self.cells is None:
            return None
        first, last = self.cells[0].expr, self.cells[-1].expr
        return _side_limit(first, _NEG_OO, "+"), _side_limit(last, _OO, "-")

    # -- monotonicity ------------------------------------------------------------
    def _direction(self, k: int) -> tuple[bool | None, bool | None]:
        """(f^(k) non-decreasing, f^(k) non-increasing), ignoring values at points."""
        cells = self.dcells(k)
        up, down = True, True
        for c in cells:
            if c.is_point:
                continue
            # f^(k+1) on the open cell: the derivative of the piece, exactly what
            # ``dcells(k + 1)`` holds there.  Only open cells are read, so the
            # values of f^(k+1) at the breakpoints (one-sided limits) are not needed
            d = _diff(c.expr)
            pos, neg = _signs(d, c.lo, c.hi)
            if d.has(Z):
                self.numeric_notes.append(
                    f"sign of f{chr(39) * (k + 1)} (sampled, confirmed at 30-240 digits)"
                )
            up = up and not neg
            down = down and not pos
        for i, c in enumerate(cells):
            if not c.is_point:
                continue
            b = c.lo
            left = _side_limit(cells[i - 1].expr, b, "-")
            right = _side_limit(cells[i + 1].expr, b, "+")
            steps = [(left, right)] if k > 0 else [(left, c.value), (c.value, right)]
            for a, z in steps:
                le, ge = _le(a, z), _le(z, a)
                if le is None or ge is None:
                    return None, None
                up = up and le
                down = down and ge
        return up, down

    @cached_property
    def direction(self) -> tuple[bool | None, bool | None]:
        """(f non-decreasing, f non-increasing) on R; None where undecided."""
        if self.cells is not None and not self.symbolic_params:
            return self._direction(0)
        d = _diff(self.body)
        if self._constant_derivative and d.is_number:
            return _le(0, d), _le(d, 0)
        return None, None

    @cached_property
    def monotonic(self) -> bool | None:
        if (self.symbolic_params or self.cells is None) and self._constant_derivative:
            return True  # f' constant: f is monotone whatever its sign
        up, down = self.direction
        if up is None or down is None:
            return None
        return up or down

    @cached_property
    def _constant_derivative(self) -> bool:
        return self.cells is not None and len(self.cells) == 1 and not _diff(self.body).has(Z)

    @cached_property
    def derivative_monotonic(self) -> bool | None:
        if self.cells is None:
            return None
        if len(self.cells) == 1 and not _diff(self.body, 2).has(Z):
            return True  # f' affine in z
        if self.symbolic_params:
            return None
        if self.continuity == -1:
            return False  # the derivative of a jump is a Dirac delta: not monotone
        up, down = self._direction(1)
        if up is None or down is None:
            return None
        return up or down

    # -- the rest -----------------------------------------------------------------
    @cached_property
    def identity_near_origin(self) -> bool | None:
        """f(0) = 0 and f'(0) = 1, f differentiable at 0 (both one-sided derivatives 1)."""
        if self.cells is None:
            f0 = self.body.subs(Z, 0)
            d0 = _diff(self.body).subs(Z, 0)
            return _and3(_same(f0, 0), _same(d0, 1))
        f0 = self._value_at_zero(self.cells)
        checks = [_same(f0, 0)]
        d = self.dcells(1)
        i = self._cell_index_of_zero()
        if self.cells[i].is_point:
            checks.append(_same(_side_limit(self.cells[i - 1].expr, 0, "-"), 0))
            checks.append(_same(_side_limit(self.cells[i + 1].expr, 0, "+"), 0))
            checks.append(_same(_side_limit(d[i - 1].expr, 0, "-"), 1))
            checks.append(_same(_side_limit(d[i + 1].expr, 0, "+"), 1))
        else:
            checks.append(_same(_side_limit(d[i].expr, 0, "+"), 1))
        return _and3(*checks)

    def _cell_index_of_zero(self) -> int:
        for i, c in enumerate(self.cells):
            if c.is_point and c.lo == 0:
                return i
        for i, c in enumerate(self.cells):
            if not c.is_point and _float(c.lo) < 0 < _float(c.hi):
                return i
        raise AssertionError("0 lies in no cell")

    def _value_at_zero(self, cells: tuple[_Cell, ...]) -> sp.Expr:
        c = cells[self._cell_index_of_zero()]
        return c.value if c.is_point else _side_limit(c.expr, 0, "+")

    @cached_property
    def affine(self) -> bool | None:
        """f'' = 0 identically (as a distribution: no kinks or jumps)."""
        if self.cells is None:  # breakpoints not numbers: a kink cannot be ruled out
            if self.body.has(sp.Piecewise, sp.Abs, sp.Max, sp.Min, sp.Heaviside, sp.sign):
                return None
            return True if _simplify(_diff(self.body, 2)) == 0 else None
        flat = [_identically_zero(_diff(c.expr, 2), c) for c in self.cells if not c.is_point]
        if False in flat:
            return False
        if len(self.cells) == 1:
            return _and3(*flat)
        cont = self.continuity
        if cont is None:
            return None
        return _and3(*flat, cont == _OO or cont >= 1)

    @cached_property
    def bounded(self) -> bool | None:
        r = self.range
        if r is not None:
            return r.bounded
        return None

    @cached_property
    def squashing(self) -> bool | None:
        """Hornik, Stinchcombe & White (1989): non-decreasing, 0 at -oo, 1 at +oo."""
        if self.symbolic_params or self.cells is None:
            return None
        up, _ = self.direction
        lims = self.limits_at_infinity
        if up is None or lims is None:
            return None
        low, high = lims
        return bool(up and _same(low, 0) is True and _same(high, 1) is True)

    # -- the derivative through the output ----------------------------------------
    @cached_property
    def derivative_in_output(self) -> sp.Expr | None:
        d = _diff(self.body)
        if self.cells is not None and len(self.cells) == 1 and not d.has(Z):
            return d
        if self.cells is None or self.symbolic_params:
            if self.cells is not None and len(self.cells) == 1:
                return _invert(self.cells[0].expr, _diff(self.cells[0].expr), None)
            return None
        try:
            images = self.images
        except _Undecided:
            return None
        dcells = self.dcells(1)
        pieces: list[tuple[sp.Expr, sp.Set]] = []
        for c, dc, (image, _, _) in zip(self.cells, dcells, images):
            if c.is_point:
                pieces.append((dc.value, image))  # joined to its owner's piece below
                continue
            if not dc.expr.has(Z):
                pieces.append((dc.expr, image))
                continue
            pos, neg = _signs(dc.expr, dc.lo, dc.hi)
            if pos and neg:
                return None  # f is not one-to-one on this piece
            g = _invert(c.expr, dc.expr, image)
            if g is None:
                return None
            pieces.append((g, image))
        for i, c in enumerate(self.cells):
            if c.is_point and c.expr is not None:
                j = i - 1 if c.expr == self.cells[i - 1].expr else i + 1
                g, s = pieces[j]
                if _same(g.subs(Y, c.value), dcells[i].value):
                    pieces[j] = (g, sp.Union(s, sp.FiniteSet(c.value)))
                    pieces[i] = (g, sp.FiniteSet(c.value))
        # the pieces must agree where their images overlap
        for i in range(len(pieces)):
            for j in range(i + 1, len(pieces)):
                gi, si = pieces[i]
                gj, sj = pieces[j]
                common = sp.Intersection(si, sj)
                if common == sp.S.EmptySet or gi == gj:
                    continue
                if not isinstance(common, sp.FiniteSet):
                    return None
                for yv in common:
                    if not _same(gi.subs(Y, yv), gj.subs(Y, yv)):
                        return None
        runs = _merge_y_runs(pieces)
        result = _assemble(runs, Y)
        if not self._check_in_output(result):
            return None
        return result

    def _check_in_output(self, g: sp.Expr) -> bool:
        """g(f(z)) = f'(z) numerically at sample points of every cell (a guard)."""
        rng = np.random.default_rng(0)
        gf = lambdify_numpy(Y, g, docstring_limit=0)
        for c, dc in zip(self.cells, self.dcells(1)):
            if c.is_point:
                zs = [float(c.lo)]
                want = [_float(dc.value)]
                ys = [_float(c.value)]
            else:
                lo = max(_float(c.lo), -30.0) if c.lo != _NEG_OO else -30.0
                hi = min(_float(c.hi), 30.0) if c.hi != _OO else 30.0
                zs = rng.uniform(lo, hi, 25)
                ys = [float(_mp_eval(c.expr, x)) for x in zs]
                want = [float(_mp_eval(dc.expr, x)) for x in zs]
            with np.errstate(all="ignore"):
                got = np.broadcast_to(np.asarray(gf(np.array(ys)), dtype=float), (len(ys),))
            if not np.allclose(got, want, rtol=1e-7, atol=1e-10):
                return False
        return True


def _merge_y_runs(pieces: list[tuple[sp.Expr, sp.Set]]) -> list[tuple[sp.Expr, sp.Set]]:
    """Turn (g, image) pieces into disjoint runs over y, the outer ones widened to +-oo."""
    ordered = sorted(pieces, key=lambda p: (_float(p[1].inf), _float(p[1].sup)))
    runs: list[tuple[sp.Expr, sp.Set]] = []
    taken: sp.Set = sp.S.EmptySet
    for g, s in ordered:
        rest = sp.Complement(s, taken)
        if rest == sp.S.EmptySet:
            continue  # overlaps were checked to agree
        runs.append((g, rest))
        taken = sp.Union(taken, rest)
    if len(runs) > 1:
        others = sp.Union(*[t for _, t in runs[1:]])
        g, s = runs[0]
        runs[0] = (g, sp.Complement(sp.Union(sp.Interval(_NEG_OO, s.inf), s), others))
        others = sp.Union(*[t for _, t in runs[:-1]])
        g, s = runs[-1]
        runs[-1] = (g, sp.Complement(sp.Union(s, sp.Interval(s.sup, _OO)), others))
    return runs


@functools.lru_cache(maxsize=1024)
def _continuous_domain_is(expr: sp.Expr, interval: sp.Interval) -> bool | None:
    """``continuous_domain(expr, z, interval) == interval``; None when SymPy cannot tell."""
    try:
        dom = sp.calculus.util.continuous_domain(expr, Z, interval)
        return dom == interval
    except Exception:
        return None


def _identically_zero(expr: sp.Expr, cell: _Cell) -> bool | None:
    """expr = 0 on the open cell: proved by simplify, refuted by a nonzero 30-digit value."""
    if expr == 0:
        return True
    if not expr.free_symbols - {Z}:
        for x in _cell_points(cell.lo, cell.hi)[::997]:
            if _mp_eval(expr, x) != 0:
                return False
    return True if _simplify(expr) == 0 else None


def _and3(*values: bool | None) -> bool | None:
    if any(v is False for v in values):
        return False
    if any(v is None for v in values):
        return None
    return True


@functools.lru_cache(maxsize=256)
def _analysis_for(key: tuple) -> _Analysis:
    record, params = key
    return _Analysis(BoundActivation(record, params))


def _analysis(act: BoundActivation) -> _Analysis:
    return _analysis_for(_key(act))


# ---------------------------------------------------------------------------
# Public functions


def derivative(act: BoundActivation) -> sp.Expr:
    """f'(z): SymPy's derivative of each piece, as one Piecewise with the subgradient convention.

    The derivative of a jump (a Dirac delta) is recorded as 0.
    """
    return _analysis(act).derivative


def derivative_in_output(act: BoundActivation) -> sp.Expr | None:
    """g with f'(z) = g(f(z)), in :data:`Y`, or None.

    Found by writing f' through f directly (tanh' = 1 - tanh^2), or by solving
    y = f(z) for z on each monotone piece (``sympy.solve``) and substituting;
    accepted only when ``simplify(g(f(z)) - f'(z))`` is exactly 0 and a
    numeric check at 30 digits agrees.  A candidate more than twice as long as
    f' (plus 12 operations) is not tried: no one would use it, and proving it
    is slow.  So bent_identity, whose inverse is a nested radical, gets None.
    """
    return _analysis(act).derivative_in_output


def value_range(act: BoundActivation) -> Range | None:
    """f(R), with each endpoint and whether it is attained (None with symbolic parameters).

    Limits at the ends of every piece are exact (``sympy.limit``); interior
    extrema come from the numeric method in the module docstring.
    """
    return _analysis(act).range


def continuity(act: BoundActivation) -> int | sp.Expr | None:
    """k with f in C^k (-1: discontinuous, ``sympy.oo``: smooth), None if undecided.

    At each breakpoint the one-sided limits of f, f', ..., f^(8) are compared;
    inside each piece continuity comes from ``continuous_domain``, or from
    30-digit sampling where SymPy cannot tell.
    """
    return _analysis(act).continuity


def monotonic(act: BoundActivation) -> bool | None:
    """f is non-decreasing or non-increasing on R (sign of f' per piece, plus the jumps)."""
    return _analysis(act).monotonic


def derivative_monotonic(act: BoundActivation) -> bool | None:
    """f' (off the breakpoints) is monotone; False whenever f jumps (f' has a Dirac delta)."""
    return _analysis(act).derivative_monotonic


def identity_near_origin(act: BoundActivation) -> bool | None:
    """f(0) = 0 and f'(0) = 1, with f differentiable at 0."""
    return _analysis(act).identity_near_origin


def bounded(act: BoundActivation) -> bool | None:
    """f(R) is bounded above and below."""
    return _analysis(act).bounded


def affine(act: BoundActivation) -> bool | None:
    """f'' = 0 identically (in the sense of distributions: no kink or jump)."""
    return _analysis(act).affine


def squashing(act: BoundActivation) -> bool | None:
    """Non-decreasing with limit 0 at -oo and 1 at +oo (Hornik, Stinchcombe & White 1989)."""
    return _analysis(act).squashing


def nondifferentiable(act: BoundActivation) -> tuple[Kink, ...]:
    """The points where f is not differentiable, with the derivative value used at each."""
    return _analysis(act).kinks


@dataclass(frozen=True)
class KinkConvention:
    """f' at one non-differentiable point as symnet, PyTorch and JAX take it.

    ``symnet`` is derived (the :class:`Kink` value, what ``gradients(...)`` compiles by
    default); ``torch`` / ``jax`` come from the record's :class:`~symnet.networks.activations.FrameworkKink`
    data, None when the record has none for this point.
    """

    point: sp.Expr
    left: sp.Expr
    right: sp.Expr
    jump: bool
    symnet: sp.Expr
    torch: sp.Expr | None
    jax: sp.Expr | None
    torch_source: str = ""
    jax_source: str = ""


def kink_conventions(act: BoundActivation) -> tuple[KinkConvention, ...]:
    """For each point where ``act`` is not differentiable: f' there in symnet, PyTorch and JAX."""
    data = {}
    for k, (point, torch), (_, jax) in zip(
        act.record.kinks, act.framework_kinks("torch"), act.framework_kinks("jax")
    ):
        data[point] = (torch, jax, k.torch_source, k.jax_source)
    out = []
    for k in nondifferentiable(act):
        torch, jax, ts, js = next(
            (v for p, v in data.items() if _same(p, k.point)), (None, None, "", "")
        )
        out.append(KinkConvention(k.point, k.left, k.right, k.jump, k.value, torch, jax, ts, js))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _properties_for(key: tuple) -> Properties:
    a = _analysis_for(key)
    act = a.act
    up, _ = (None, None) if a.cells is None else a.direction
    props = Properties(
        name=act.name,
        spec=act.spec,
        formula=act.body,
        derivative=a.derivative,
        range=a.range,
        continuity=a.continuity,
        monotonic=a.monotonic,
        nondecreasing=up,
        derivative_monotonic=a.derivative_monotonic,
        identity_near_origin=a.identity_near_origin,
        bounded=a.bounded,
        affine=a.affine,
        squashing=a.squashing,
        nondifferentiable=a.kinks,
        subgradient=act.record.subgradient,
        numeric=tuple(dict.fromkeys(a.numeric_notes)),
        _analysis=a,
    )
    return props


def properties(act: BoundActivation) -> Properties:
    """Every derived property of ``act`` (cached per record and parameter values)."""
    return _properties_for(_key(act))


# ---------------------------------------------------------------------------
# Vector functions (softmax)


def vector_jacobian(record: VectorActivation, n: int) -> sp.Matrix:
    """The n x n Jacobian d f_i / d z_j of a vector activation, by differentiation."""
    return record.outputs(n).jacobian(record.inputs(n))


def output_symbols(n: int) -> tuple[sp.Symbol, ...]:
    """The output symbols ``y1, ..., yn`` used by :func:`jacobian_in_output`."""
    return tuple(sp.Symbol(f"y{i}", positive=True) for i in range(1, n + 1))


def jacobian_in_output(record: VectorActivation, n: int) -> sp.Matrix | None:
    """The Jacobian written in the outputs ``y_i = f_i(z)``, or None.

    Method: substitute e^{z_k} = y_k s (s a free positive symbol: the outputs
    of a normalised exponential are such ratios) and cancel; then use that the
    outputs sum to 1 (``y_1 + ... + y_n -> 1`` and ``sum_{k != i} y_k -> 1 - y_i``).
    Accepted only if s and every z_k drop out and substituting y_k = f_k(z)
    back gives the Jacobian exactly (``simplify`` of each difference is 0).
    For softmax this derives ``y_i (delta_ij - y_j)``: ``y_i (1 - y_i)`` and ``-y_i y_j``.
    """
    zs = record.inputs(n)
    ys = output_symbols(n)
    s = sp.Symbol("s", positive=True)
    jac = vector_jacobian(record, n)
    total = sp.Add(*ys)

    def in_outputs(i: int, j: int) -> sp.Expr:
        e = sp.cancel(jac[i, j].subs({sp.exp(z): y * s for z, y in zip(zs, ys)}))
        e = sp.factor(e).subs(total, 1)
        if i == j and n > 1:
            e = e.subs(total - ys[i], 1 - ys[i])
        return _tidy(sp.factor(e))

    out = sp.Matrix(n, n, lambda i, j: in_outputs(i, j))
    if any(e.has(s) or e.has(*zs) for e in out):
        return None
    back = dict(zip(ys, record.outputs(n)))
    for i in range(n):
        for j in range(n):
            if sp.simplify(out[i, j].xreplace(back) - jac[i, j]) != 0:
                return None
    return out


@dataclass(frozen=True)
class VectorProperties:
    """What :func:`vector_properties` derives for a vector activation such as softmax.

    ``jacobian`` / ``jacobian_in_output`` are general entries in indexed
    symbols (``f[i]``, ``y[i]``, ``KroneckerDelta(i, j)``), each checked against
    the derived n x n Jacobians for n = 1..3.  ``range``/``continuity``/``affine``
    are those of one output as a function of the inputs, found through the
    reduction ``f_1(z) = g(z_1 - log(sum_{k>1} e^{z_k}))`` with
    ``g(t) = f_1(t, 0)`` for n = 2 (the reduction is verified symbolically for
    n = 3, and the inner map takes every real value).
    """

    name: str
    formula: sp.Expr
    jacobian: sp.Expr
    jacobian_in_output: sp.Expr
    range: Range | None
    continuity: int | sp.Expr | None
    affine: bool | None
    checked_sizes: tuple[int, ...]


#: Index symbols of the general Jacobian entry.
I_INDEX, J_INDEX = sp.symbols("i j", integer=True, positive=True)


def _general_entry(
    matrix: sp.Matrix, symbols: tuple[sp.Symbol, ...], base: sp.IndexedBase
) -> sp.Expr:
    """Read the (i, j) entry off a derived 3 x 3 matrix: off-diagonal + (diagonal rest) delta_ij."""
    i, j = I_INDEX, J_INDEX
    diag = matrix[0, 0].xreplace({symbols[0]: base[i]})
    off = matrix[0, 1].xreplace({symbols[0]: base[i], symbols[1]: base[j]})
    rest = sp.expand(diag - off.xreplace({base[j]: base[i]}))
    return sp.factor(off + rest * sp.KroneckerDelta(i, j))


def _entry_matrix(
    entry: sp.Expr, base: sp.IndexedBase, symbols: tuple[sp.Symbol, ...]
) -> sp.Matrix:
    n = len(symbols)

    def at(a: int, b: int) -> sp.Expr:
        e = entry.subs({I_INDEX: a + 1, J_INDEX: b + 1})
        return e.xreplace({base[k + 1]: symbols[k] for k in range(n)})

    return sp.Matrix(n, n, at)


@functools.lru_cache(maxsize=16)
def vector_properties(record: VectorActivation) -> VectorProperties:
    """The derived Jacobian (in z and in the outputs) and the range of one output."""
    from symnet.networks.activations import Activation

    y, f = sp.IndexedBase("y"), sp.IndexedBase("f")
    ys3 = output_symbols(3)
    in_output = jacobian_in_output(record, 3)
    if in_output is None:
        raise ValueError(f"{record.name}: no Jacobian in the outputs")
    entry_y = _general_entry(in_output, ys3, y)
    sizes = []
    for n in (1, 2, 3):
        # compare modulo the outputs summing to 1: y_n = 1 - (y_1 + ... + y_{n-1})
        ys = output_symbols(n)
        last = {ys[-1]: 1 - sp.Add(*ys[:-1])}
        derived = jacobian_in_output(record, n)
        if derived is None:
            raise ValueError(f"{record.name}: no Jacobian in the outputs at n = {n}")
        difference = (derived - _entry_matrix(entry_y, y, ys)).xreplace(last).applyfunc(sp.expand)
        if difference != sp.zeros(n, n):
            raise ValueError(f"{record.name}: the general Jacobian entry fails at n = {n}")
        sizes.append(n)
    entry_f = entry_y.xreplace({y: f})

    # one output as a scalar function: f_1(z1, z2) = g(z1 - z2) with g(t) = f_1(t, 0)
    z1, z2 = record.inputs(2)
    g = record.outputs(2)[0].subs({z2: 0, z1: Z})
    zs3 = record.inputs(3)
    inner = zs3[0] - sp.log(sp.exp(zs3[1]) + sp.exp(zs3[2]))
    reduced = sp.simplify(record.outputs(3)[0] - g.subs(Z, inner)) == 0
    rng = cont = aff = None
    if reduced:
        scalar = Activation(f"{record.name}_1", lambda z: g.subs(Z, z), lambda z: z, latex="")
        props = properties(scalar.bind())
        rng, cont, aff = props.range, props.continuity, props.affine
    zs = sp.IndexedBase("z")
    n, k = sp.symbols("n k", integer=True, positive=True)
    formula = sp.exp(zs[I_INDEX]) / sp.Sum(sp.exp(zs[k]), (k, 1, n))
    if record.name != "softmax":
        formula = record.outputs(3)[0]
    return VectorProperties(
        name=record.name,
        formula=formula,
        jacobian=entry_f,
        jacobian_in_output=entry_y,
        range=rng,
        continuity=cont,
        affine=aff,
        checked_sizes=tuple(sizes),
    )


# ---------------------------------------------------------------------------
# Plain-text numbers (shared by the printers)


def _plain_number(v: sp.Expr) -> str:
    if v == _OO:
        return "oo"
    if v == _NEG_OO:
        return "-oo"
    if isinstance(v, sp.Float):
        return sp.sstr(sp.Float(v, DIGITS)) if v._prec > 60 else sp.sstr(v)
    return sp.sstr(v)
