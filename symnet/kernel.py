"""The trusted checker: the only code that may mark a step ``proved``.

A step claims ``lhs = rhs`` for two SymPy matrix (or scalar) expressions.
The verdict is

* ``proved``   - both sides have the same normal form (below) *and* a numeric
  second opinion on random instances agrees;
* ``refuted``  - a random instance where the sides differ, confirmed at 50
  digits so that round-off never refutes a true step (the instance is returned);
* ``unproved`` - anything else.  Honest incompleteness; never a guess.

Normal form.  A matrix expression becomes a finite map ``word -> coefficient``:
a word is a tuple of atoms multiplied left to right (the empty word is the
identity of the expression's shape); a coefficient is a canonical scalar
(expanded, and cancelled when it has denominators).  Atoms:

* ``("sym", S, t)``          matrix symbol S, transposed iff t;
* ``("ones", r, c)``         the all-ones matrix;
* ``("unit", i, j, r, c)``   the matrix unit E_ij of an explicit matrix;
* ``("had", F, r, c)``       Hadamard product of the multiset F of words;
* ``("fn", f, A, r, c)``     elementwise f (a formula in ``_Z``) of the frozen
  normal form A of its argument.

Rules realised: distributivity, associativity, scalar bilinearity; transpose
pushed to atoms reversing words; identity vanishes in words; zero contributes
no terms; ``1[r x k] 1[k x c] = k 1[r x c]``; ``E_ij E_kl = [j = k] E_il``;
integer powers of square matrices unfold; Hadamard products are commutative,
associative, bilinear with unit ``1``; elementwise polynomials expand into
Hadamard powers and functions of constant matrices evaluate; ``trace`` is
linear, cyclic and transpose-invariant (a trace is a scalar atom).

Definitions (``define``) and proven lemmas are rewrites a step may cite in
``uses``; the numeric opinion always evaluates definitions, never lemmas.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.core.sympify import _sympify
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

from . import numeric
from .errors import BudgetError, ShapeError
from .numeric import matrix_atoms

PROVED, REFUTED, UNPROVED = "proved", "refuted", "unproved"

#: Refuse normal forms with more terms than this (the step becomes unproved).
MAX_TERMS = 50_000
#: Largest integer power or Hadamard power the normal form unfolds.
MAX_POWER = 64
#: Largest degree of an elementwise polynomial that is expanded.
MAX_POLY_DEGREE = 6
#: Seconds allowed for the scalar simplification ladder on one step.
SCALAR_BUDGET = 5.0
#: Seconds allowed for the whole symbolic decision of one step.
STEP_BUDGET = 20.0

_Z = sp.Dummy("z")


class Unsupported(Exception):
    """An expression outside the fragment the normal form decides."""


# ---------------------------------------------------------------------------
# Shapes


def _dim(d: Any) -> sp.Expr:
    return d if isinstance(d, sp.Basic) else _sympify(d)


def same_dim(a: Any, b: Any) -> bool:
    """True iff two dimensions are provably equal (as integers or symbols)."""
    if a is b:
        return True
    a, b = _dim(a), _dim(b)
    if a == b:
        return True
    return sp.expand(a - b) == 0


def fmt_shape(shape: tuple) -> str:
    return f"{shape[0]}x{shape[1]}"


# ---------------------------------------------------------------------------
# The normal form


class NF:
    """``terms`` maps words to scalar coefficients; ``rows x cols`` is the shape."""

    __slots__ = ("rows", "cols", "terms")

    def __init__(self, rows: Any, cols: Any, terms: dict | None = None):
        self.rows, self.cols = rows, cols
        self.terms = terms if terms is not None else {}

    @property
    def shape(self) -> tuple:
        return (self.rows, self.cols)

    def _guard(self) -> NF:
        if len(self.terms) > MAX_TERMS:
            raise BudgetError(f"expression expands to more than {MAX_TERMS} terms")
        return self


def _atom_shape(atom: tuple) -> tuple:
    kind = atom[0]
    if kind == "sym":
        r, c = atom[1].shape
        return (c, r) if atom[2] else (r, c)
    return atom[-2], atom[-1]


def _transpose_atom(atom: tuple) -> tuple:
    kind = atom[0]
    if kind == "sym":
        return ("sym", atom[1], not atom[2])
    if kind == "ones":
        return ("ones", atom[2], atom[1])
    if kind == "unit":
        return ("unit", atom[2], atom[1], atom[4], atom[3])
    if kind == "had":
        return ("had", frozenset((_transpose_word(w), m) for w, m in atom[1]), atom[3], atom[2])
    if kind == "fn":
        return ("fn", atom[1], _freeze(transpose(_thaw(atom[2]))), atom[4], atom[3])
    raise AssertionError(kind)


def _transpose_word(word: tuple) -> tuple:
    return tuple(_transpose_atom(a) for a in reversed(word))


def _concat(left: tuple, right: tuple) -> tuple[sp.Expr, tuple] | None:
    """The product of two normalised words: (scalar factor, word) or None for zero."""
    if not left:
        return sp.S.One, right
    if not right:
        return sp.S.One, left
    a, b = left[-1], right[0]
    if a[0] == "ones" and b[0] == "ones":
        merged = () if _is_one(a[1]) and _is_one(b[2]) else (("ones", a[1], b[2]),)
        return a[2], left[:-1] + merged + right[1:]
    if a[0] == "unit" and b[0] == "unit":
        if a[2] != b[1]:
            return None
        return sp.S.One, left[:-1] + (("unit", a[1], b[2], a[3], b[4]),) + right[1:]
    return sp.S.One, left + right


def add(x: NF, y: NF) -> NF:
    if not (same_dim(x.rows, y.rows) and same_dim(x.cols, y.cols)):
        raise ShapeError(f"shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)} cannot be added")
    terms = dict(x.terms)
    for w, c in y.terms.items():
        terms[w] = terms[w] + c if w in terms else c
    return NF(x.rows, x.cols, terms)._guard()


def scale(x: NF, c: sp.Expr) -> NF:
    if c == 0:
        return NF(x.rows, x.cols)
    if c == 1:
        return x
    return NF(x.rows, x.cols, {w: c * v for w, v in x.terms.items()})


def mul(x: NF, y: NF) -> NF:
    if not same_dim(x.cols, y.rows):
        raise ShapeError(
            f"shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)} cannot be multiplied"
        )
    if len(x.terms) * len(y.terms) > MAX_TERMS:
        raise BudgetError(f"product expands to more than {MAX_TERMS} terms")
    terms: dict = {}
    for w1, c1 in x.terms.items():
        for w2, c2 in y.terms.items():
            joined = _concat(w1, w2)
            if joined is None:
                continue
            k, w = joined
            c = c1 * c2 * k
            terms[w] = terms[w] + c if w in terms else c
    return NF(x.rows, y.cols, terms)._guard()


def transpose(x: NF) -> NF:
    return NF(x.cols, x.rows, {_transpose_word(w): c for w, c in x.terms.items()})


def identity(n: Any) -> NF:
    return NF(n, n, {(): sp.S.One})


def _is_one(d: Any) -> bool:
    return _dim(d) == 1


def ones(r: Any, c: Any) -> NF:
    if _is_one(r) and _is_one(c):
        return identity(1)  # the 1x1 ones matrix is the 1x1 identity
    return NF(r, c, {(("ones", r, c),): sp.S.One})


def _had_factors(word: tuple, r: Any, c: Any) -> Counter:
    """The multiset of Hadamard factors of a word (empty for the unit ``1``)."""
    if len(word) == 1 and word[0][0] == "had":
        return Counter(dict(word[0][1]))
    if len(word) == 1 and word[0][0] == "ones":
        return Counter()
    if not word and _is_one(r) and _is_one(c):
        return Counter()  # I_1 = 1[1x1], the unit
    return Counter({word: 1})


def _had_word(factors: Counter, r: Any, c: Any) -> tuple:
    if not factors:
        return next(iter(ones(r, c).terms))
    if len(factors) == 1:
        (w, m), = factors.items()
        if m == 1:
            return w
    return (("had", frozenset(factors.items()), r, c),)


def hadamard(x: NF, y: NF) -> NF:
    if not (same_dim(x.rows, y.rows) and same_dim(x.cols, y.cols)):
        raise ShapeError(
            f"shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)} cannot be multiplied elementwise"
        )
    if len(x.terms) * len(y.terms) > MAX_TERMS:
        raise BudgetError(f"Hadamard product expands to more than {MAX_TERMS} terms")
    r, c = x.shape
    terms: dict = {}
    for w1, c1 in x.terms.items():
        f1 = _had_factors(w1, r, c)
        for w2, c2 in y.terms.items():
            w = _had_word(f1 + _had_factors(w2, r, c), r, c)
            v = c1 * c2
            terms[w] = terms[w] + v if w in terms else v
    return NF(r, c, terms)._guard()


def canonical(c: sp.Expr) -> sp.Expr:
    """A canonical form of a scalar coefficient: expanded, cancelled if rational."""
    if c.is_Number:
        return c
    e = sp.expand(c)
    if any(p.exp.is_negative for p in e.atoms(sp.Pow)):
        e = sp.cancel(sp.together(e))
        e = sp.expand(e) if e.is_polynomial() else e
    return e


def clean(x: NF) -> NF:
    """Canonical coefficients, zero terms dropped."""
    terms = {}
    for w, c in x.terms.items():
        c = canonical(c)
        if c != 0:
            terms[w] = c
    return NF(x.rows, x.cols, terms)


def _freeze(x: NF) -> tuple:
    x = clean(x)
    return (x.rows, x.cols, frozenset(x.terms.items()))


def _thaw(frozen: tuple) -> NF:
    r, c, items = frozen
    return NF(r, c, dict(items))


def elementwise(body: sp.Expr, arg: NF) -> NF:
    """Normal form of ``f(arg)`` applied entry by entry, ``f`` a formula in ``_Z``."""
    r, c = arg.shape
    arg = clean(arg)
    # a constant matrix k * 1: f(k 1) = f(k) 1
    if not arg.terms:
        return scale(ones(r, c), body.subs(_Z, 0))
    if len(arg.terms) == 1:
        (w, k), = arg.terms.items()
        if w == next(iter(ones(r, c).terms)):
            return scale(ones(r, c), body.subs(_Z, k))
    # an elementwise polynomial: sum a_k arg^(.k)
    if not body.has(sp.Piecewise, sp.Max, sp.Min, sp.Heaviside, sp.Abs, sp.Function):
        try:
            poly = sp.Poly(sp.expand(body), _Z)
        except sp.PolynomialError:
            poly = None
        if poly is not None and poly.degree() <= MAX_POLY_DEGREE and not any(
            k.has(_Z) for k in poly.all_coeffs()
        ):
            result = NF(r, c)
            power = ones(r, c)
            for degree, coeff in enumerate(reversed(poly.all_coeffs())):
                if degree:
                    power = hadamard(power, arg)
                if coeff != 0:
                    result = add(result, scale(power, coeff))
            return result
    return NF(r, c, {(("fn", body, _freeze(arg), r, c),): sp.S.One})


# ---- trace: a scalar atom keyed by the canonical rotation of its word ----

_TRACE_SYMBOLS: dict[tuple, sp.Dummy] = {}
_TRACE_LOCK = threading.Lock()


def _akey(obj: Any) -> str:
    return repr(obj)


def _trace_word(word: tuple, n: Any) -> sp.Expr:
    if not word:
        return _dim(n)
    # merge ones at the two ends: tr(1 A 1') = tr(A 1' 1)
    while len(word) > 1 and word[0][0] == "ones" and word[-1][0] == "ones":
        k, merged = _concat(word[-1:], word[:1])
        word, factor = word[1:-1] + merged, k
        return factor * _trace_word(word, n)
    if len(word) == 1 and word[0][0] == "ones":
        return _dim(word[0][1])
    if all(a[0] == "unit" for a in word):
        (a,) = word
        return sp.S.One if a[1] == a[2] else sp.S.Zero
    candidates = []
    for w in (word, _transpose_word(word)):
        for i in range(len(w)):
            rot = w[i:] + w[:i]
            candidates.append((_akey(rot), rot))
    key = min(candidates, key=lambda kv: kv[0])[1]
    with _TRACE_LOCK:
        if key not in _TRACE_SYMBOLS:
            _TRACE_SYMBOLS[key] = sp.Dummy(f"tr{len(_TRACE_SYMBOLS)}")
        return _TRACE_SYMBOLS[key]


def trace(x: NF) -> sp.Expr:
    """The trace of a square normal form, as a scalar in trace atoms."""
    if not same_dim(x.rows, x.cols):
        raise ShapeError(f"trace of a non-square {fmt_shape(x.shape)} matrix")
    return sp.Add(*[c * _trace_word(w, x.rows) for w, c in x.terms.items()])


# ---------------------------------------------------------------------------
# Gradients: reverse mode from first principles


class Grad(sp.MatrixExpr):
    """``dL/dX``: the entrywise gradient of a 1x1 expression ``L`` with respect to
    a matrix symbol ``X`` (same shape as ``X``).

    The kernel decides steps about it by computing the gradient itself with the
    adjoint rules below; the numeric opinion uses finite differences.
    """

    def __new__(cls, loss: Any, wrt: sp.MatrixSymbol):
        if not isinstance(wrt, sp.MatrixSymbol):
            raise ShapeError("a gradient is taken with respect to a matrix symbol")
        return sp.Basic.__new__(cls, loss, wrt)

    @property
    def loss(self) -> Any:
        return self.args[0]

    @property
    def wrt(self) -> sp.MatrixSymbol:
        return self.args[1]

    @property
    def shape(self) -> tuple:
        return self.args[1].shape


def elementwise_derivative(lam: sp.Lambda) -> sp.Lambda:
    """``f'`` for an elementwise ``f``: SymPy's scalar ``diff`` (reliable on scalars)."""
    (var,) = lam.variables
    derivative = sp.diff(lam.expr, var)
    # Heaviside(u) (= 1/2 at 0) comes from d/dz max(0, z); use the catalogue's
    # subgradient convention relu'(0) = 0.  Only the value at the kink changes.
    derivative = derivative.replace(
        lambda e: isinstance(e, sp.Heaviside) and len(e.args) == 1,
        lambda e: sp.Heaviside(e.args[0], 0),
    )
    return sp.Lambda(var, derivative)


def _mm(*factors: Any) -> Any:
    factors = [f for f in factors if f is not None]
    return factors[0] if len(factors) == 1 else sp.MatMul(*factors, evaluate=False)


def adjoint(loss: Any, wrt: sp.MatrixSymbol, definitions: dict) -> Any:
    """The gradient of a 1x1 ``loss`` with respect to ``wrt`` as a matrix expression.

    Rules (``G`` the cotangent of a node):  sum: G to every term;
    ``c A_1 ... A_k``: ``c (A_1..A_{i-1})^T G (A_{i+1}..A_k)^T`` to ``A_i``;
    ``A^T``: ``G^T``;  ``A (.) B``: ``G (.) B`` to ``A``;  ``f(A)``: ``G (.) f'(A)``;
    ``A^k``: as a product;  a defined symbol: its accumulated cotangent to its
    definition (reverse topological order, so shared nodes are visited once).
    Symbols other than ``wrt`` and constants contribute nothing.
    """
    if isinstance(loss, sp.MatrixExpr) and not (_dim(loss.rows) == 1 and _dim(loss.cols) == 1):
        raise ShapeError(f"a gradient needs a 1x1 loss, got {fmt_shape(loss.shape)}")
    if wrt in definitions:
        raise Unsupported("gradient with respect to a defined symbol")
    depends_memo: dict = {}

    def depends(e: Any) -> bool:
        if e in depends_memo:
            return depends_memo[e]
        if e == wrt:
            out = True
        elif isinstance(e, sp.MatrixSymbol):
            out = e in definitions and depends(definitions[e])
        elif isinstance(e, sp.Basic):
            out = any(depends(a) for a in e.args)
        else:
            out = False
        depends_memo[e] = out
        return out

    pending: dict = {}  # defined symbol -> list of cotangent terms
    result: list = []

    def push(e: Any, g: Any) -> None:
        if not depends(e):
            return
        if e == wrt:
            result.append(g)
        elif isinstance(e, sp.MatrixSymbol):
            pending.setdefault(e, []).append(g)
        elif isinstance(e, sp.MatAdd):
            for t in e.args:
                push(t, g)
        elif isinstance(e, sp.MatMul):
            coeff = [a for a in e.args if not isinstance(a, sp.MatrixExpr)]
            mats = [a for a in e.args if isinstance(a, sp.MatrixExpr)]
            if any(depends(c) for c in coeff):
                raise Unsupported("a scalar coefficient that depends on the variable")
            c = sp.Mul(*coeff)
            for i, a in enumerate(mats):
                if not depends(a):
                    continue
                left = [sp.Transpose(m) for m in reversed(mats[:i])]
                right = [sp.Transpose(m) for m in reversed(mats[i + 1:])]
                push(a, _mm(*([c] if c != 1 else []), *left, g, *right))
        elif isinstance(e, sp.Transpose):
            push(e.arg, sp.Transpose(g))
        elif isinstance(e, HadamardProduct):
            for i, a in enumerate(e.args):
                if depends(a):
                    others = list(e.args[:i]) + list(e.args[i + 1:])
                    push(a, HadamardProduct(g, *others))
        elif isinstance(e, ElementwiseApplyFunction):
            derivative = sp.Basic.__new__(ElementwiseApplyFunction, elementwise_derivative(e.function), e.expr)
            push(e.expr, HadamardProduct(g, derivative))
        elif isinstance(e, sp.MatPow) and e.exp.is_Integer and 0 <= e.exp <= MAX_POWER:
            push(sp.MatMul(*([e.base] * int(e.exp)), evaluate=False), g)
        else:
            raise Unsupported(f"gradient through {type(e).__name__}")

    push(loss if isinstance(loss, sp.MatrixExpr) else sp.ImmutableMatrix([[loss]]), sp.Identity(1))
    order = _topological(definitions)
    for sym in order:  # users before what they use
        if sym in pending:
            terms = pending.pop(sym)
            push(definitions[sym], terms[0] if len(terms) == 1 else sp.MatAdd(*terms, evaluate=False))
    if not result:
        return sp.ZeroMatrix(*wrt.shape)
    return result[0] if len(result) == 1 else sp.MatAdd(*result, evaluate=False)


def _topological(definitions: dict) -> list:
    """Defined symbols ordered so that every symbol precedes the symbols it uses."""
    order, state = [], {}
    for root in definitions:
        stack = [(root, False)]
        while stack:
            sym, done = stack.pop()
            if done:
                state[sym] = 2
                order.append(sym)
                continue
            if state.get(sym):
                continue
            state[sym] = 1
            stack.append((sym, True))
            for dep in matrix_atoms(definitions[sym]):
                if dep in definitions and not state.get(dep):
                    stack.append((dep, False))
    return order[::-1]


# ---------------------------------------------------------------------------
# From SymPy expressions to normal forms


class Normalizer:
    """Converts SymPy expressions to normal forms, unfolding the given rewrites."""

    def __init__(
        self,
        rewrites: dict | None = None,
        definitions: dict | None = None,
        calculus: dict | None = None,
    ):
        self.rewrites = rewrites or {}
        self.definitions = definitions  # unfold all of these, recursively, if given
        # keep the caller's dict itself (it may still be empty and fill up later)
        self.calculus = calculus if calculus is not None else (definitions if definitions is not None else {})
        self.memo: dict = {}

    def scalar(self, e: sp.Expr) -> sp.Expr:
        """A scalar expression with traces replaced by trace atoms."""
        if isinstance(e, sp.MatrixExpr):
            raise ShapeError(f"expected a scalar, got a {fmt_shape(e.shape)} matrix")
        traces = [t for t in sp.preorder_traversal(e) if isinstance(t, sp.Trace)]
        if not traces:
            return e
        return e.xreplace({t: trace(self._nf(t.arg)) for t in traces})

    def __call__(self, e: Any) -> NF:
        if e not in self.memo and self.definitions and isinstance(e, sp.Basic):
            self._prepare(e)
        return self._nf(e)

    def _nf(self, e: Any) -> NF:
        hit = self.memo.get(e)
        if hit is None:
            hit = self.memo[e] = self._convert(e)
        return hit

    def _prepare(self, e: sp.Basic) -> None:
        """Normalise the definitions ``e`` depends on, dependencies first, so that
        unfolding a long chain of definitions never recurses deeply."""
        order, state = [], {}
        stack = [(m, False) for m in matrix_atoms(e) if m in self.definitions]
        while stack:
            sym, done = stack.pop()
            if done:
                order.append(sym)
                continue
            if sym in state or sym in self.memo:
                continue
            state[sym] = True
            stack.append((sym, True))
            for dep in matrix_atoms(self.definitions[sym]):
                if dep in self.definitions and dep not in state and dep not in self.memo:
                    stack.append((dep, False))
        for sym in order:  # dependencies were appended before their users
            if sym not in self.memo:
                self.memo[sym] = self._convert(sym)

    def _convert(self, e: Any) -> NF:
        if not isinstance(e, sp.MatrixExpr):
            if isinstance(e, sp.Basic) and not isinstance(e, sp.MatrixBase):
                return NF(1, 1, {(): self.scalar(e)})  # a scalar, as a 1x1 matrix
        if isinstance(e, sp.MatrixSymbol):
            if e in self.rewrites:
                return self._shape_checked(e, self._nf(self.rewrites[e]))
            if self.definitions is not None and e in self.definitions:
                return self._shape_checked(e, self._nf(self.definitions[e]))
            return NF(e.rows, e.cols, {(("sym", e, False),): sp.S.One})
        if isinstance(e, sp.MatAdd):
            args = [self._nf(a) for a in e.args]
            result = args[0]
            for a in args[1:]:
                result = add(result, a)
            return result
        if isinstance(e, sp.MatMul):
            coeff = sp.S.One
            result = None
            for a in e.args:
                if isinstance(a, sp.MatrixExpr):
                    n = self._nf(a)
                    result = n if result is None else mul(result, n)
                else:
                    coeff *= self.scalar(a)
            if result is None:
                raise Unsupported("a product without matrix factors")
            return scale(result, coeff)
        if isinstance(e, sp.Transpose):
            return transpose(self._nf(e.arg))
        if isinstance(e, sp.Identity):
            return identity(e.rows)
        if isinstance(e, sp.ZeroMatrix):
            return NF(e.rows, e.cols)
        if isinstance(e, sp.OneMatrix):
            return ones(e.rows, e.cols)
        if isinstance(e, sp.MatPow):
            base, exp = self._nf(e.base), e.exp
            if not (exp.is_Integer and 0 <= exp <= MAX_POWER):
                raise Unsupported(f"matrix power {exp}")
            if not same_dim(base.rows, base.cols):
                raise ShapeError(f"power of a non-square {fmt_shape(base.shape)} matrix")
            result = identity(base.rows)
            for _ in range(int(exp)):
                result = mul(result, base)
            return result
        if isinstance(e, HadamardProduct):
            args = [self._nf(a) for a in e.args]
            result = args[0]
            for a in args[1:]:
                result = hadamard(result, a)
            return result
        if isinstance(e, HadamardPower):
            base, exp = self._nf(e.base), e.exp
            if not (exp.is_Integer and 0 <= exp <= MAX_POWER):
                raise Unsupported(f"Hadamard power {exp}")
            result = ones(*base.shape)
            for _ in range(int(exp)):
                result = hadamard(result, base)
            return result
        if isinstance(e, ElementwiseApplyFunction):
            lam = e.function
            if not isinstance(lam, sp.Lambda) or len(lam.variables) != 1:
                raise Unsupported(f"elementwise function {lam}")
            body = lam.expr.xreplace({lam.variables[0]: _Z})
            return elementwise(self.scalar(body), self._nf(e.expr))
        if isinstance(e, Grad):
            return self._nf(adjoint(e.loss, e.wrt, self.calculus))
        if isinstance(e, sp.MatrixBase):  # an explicit matrix: sum of c_ij E_ij
            r, c = e.shape
            terms = {}
            for i in range(r):
                for j in range(c):
                    v = self.scalar(_sympify(e[i, j]))
                    if v != 0:
                        terms[(("unit", i, j, sp.Integer(r), sp.Integer(c)),)] = v
            return NF(sp.Integer(r), sp.Integer(c), terms)._guard()
        raise Unsupported(f"{type(e).__name__} is outside the decided fragment")

    @staticmethod
    def _shape_checked(sym: sp.MatrixSymbol, nf: NF) -> NF:
        if not (same_dim(sym.rows, nf.rows) and same_dim(sym.cols, nf.cols)):
            raise ShapeError(
                f"{sym.name} is {fmt_shape(sym.shape)} but its definition is {fmt_shape(nf.shape)}"
            )
        return nf


# ---------------------------------------------------------------------------
# Scalar zero tests: a fixed ladder of exact procedures; only a literal 0 counts.


_DEADLINES: list[float] = []


@contextmanager
def _time_limit(seconds: float):
    """Raise TimeoutError after ``seconds`` (main thread only; nests: the inner
    limit never extends an outer one, and the outer one is restored after)."""
    usable = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if not usable:
        yield
        return
    now = time.monotonic()
    deadline = now + seconds
    if _DEADLINES:
        deadline = min(deadline, _DEADLINES[-1])

    def _raise(signum, frame):
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, _raise)
    _DEADLINES.append(deadline)
    # the timer repeats: an alarm raised inside a gc callback is swallowed by
    # Python, so it must fire again until the limit is honoured
    signal.setitimer(signal.ITIMER_REAL, max(deadline - now, 1e-3), 0.05)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _DEADLINES.pop()
        signal.signal(signal.SIGALRM, old)
        if _DEADLINES:
            signal.setitimer(signal.ITIMER_REAL, max(_DEADLINES[-1] - time.monotonic(), 1e-3), 0.05)


def scalar_is_zero(d: sp.Expr, budget: float = SCALAR_BUDGET) -> bool:
    """True only when an exact procedure reduces ``d`` to the literal 0."""
    d = canonical(d)
    if d == 0:
        return True
    if not d.has(sp.Function, sp.Pow) or d.is_rational_function():
        return False  # cancel/expand decide rational functions: a nonzero one is nonzero
    attempts = (
        lambda e: sp.cancel(sp.expand(e.rewrite(sp.exp))),
        lambda e: sp.simplify(e.rewrite(sp.exp)),
        lambda e: sp.simplify(e),
    )
    try:
        with _time_limit(budget):
            for attempt in attempts:
                if attempt(d) == 0:
                    # simplify's zero tests can be wrong (sympy issue 23086): confirm at 50 digits
                    return _vanishes_at_50_digits(d)
    except (TimeoutError, RecursionError, sp.PolynomialError, TypeError, ValueError, AttributeError):
        return False
    return False


def _vanishes_at_50_digits(d: sp.Expr, samples: int = 3) -> bool:
    """``d`` evaluates to (almost exactly) 0 at random rational points, at 50 digits."""
    symbols = sorted(d.free_symbols, key=lambda s: s.name)
    rng = random.Random(20260101)
    for _ in range(samples if symbols else 1):
        subs = {}
        for s in symbols:
            lo = 0.5 if s.is_positive or s.is_nonnegative else -2.0
            subs[s] = sp.Rational(round(rng.uniform(lo, 2.0), 6)).limit_denominator(10**6)
        try:
            value = sp.N(d.xreplace(subs), 50)
        except (TypeError, ValueError, ZeroDivisionError, RecursionError):
            return False
        if not value.is_number or value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
            return False
        if abs(complex(value)) > 1e-40:
            return False
    return True


def _symmetrize_scalar(x: NF) -> NF:
    """A 1x1 matrix equals its transpose: key each word by the smaller of the two."""
    terms: dict = {}
    for w, c in x.terms.items():
        t = _transpose_word(w)
        key = w if _akey(w) <= _akey(t) else t
        terms[key] = terms[key] + c if key in terms else c
    return clean(NF(x.rows, x.cols, terms))


def _compare(a: NF, b: NF) -> tuple[bool, str]:
    """Whether two normal forms are equal; otherwise a short reason."""
    if not (same_dim(a.rows, b.rows) and same_dim(a.cols, b.cols)):
        return False, f"the sides have shapes {fmt_shape(a.shape)} and {fmt_shape(b.shape)}"
    a, b = clean(a), clean(b)
    if _dim(a.rows) == 1 and _dim(a.cols) == 1:
        a, b = _symmetrize_scalar(a), _symmetrize_scalar(b)
    hard = []
    for w in set(a.terms) | set(b.terms):
        ca, cb = a.terms.get(w, sp.S.Zero), b.terms.get(w, sp.S.Zero)
        if ca != cb and canonical(ca - cb) != 0:
            hard.append(ca - cb)
    if not hard:
        return True, "normal forms agree"
    if all(scalar_is_zero(d) for d in hard):
        return True, "normal forms agree up to scalar identities"
    return False, f"normal forms differ in {len(hard)} term(s)"


# ---------------------------------------------------------------------------
# Verdicts


@dataclass(frozen=True)
class NumericReport:
    """The numeric second opinion on one step."""

    trials: int = 0
    max_abs_error: float = 0.0
    agree: bool = True


@dataclass(frozen=True)
class Check:
    """The kernel's verdict on ``lhs = rhs``; only this module creates ``proved``."""

    verdict: str
    detail: str = ""
    numeric: NumericReport = field(default_factory=NumericReport)
    counterexample: dict | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == PROVED


@dataclass(frozen=True)
class Lemma:
    """A proven equation ``sym = expr`` that later steps may cite in ``uses``."""

    sym: sp.MatrixSymbol
    expr: sp.Expr


class Context:
    """Definitions, proven facts and the random instances a derivation is checked on.

    ``define`` introduces a fresh symbol for an expression (a conservative
    extension); ``check`` decides a step; ``lemma`` hands back a proven
    equation ``sym = expr`` once the facts checked so far connect the two.
    """

    def __init__(self, trials: int = 3, seed: int = 0):
        self.definitions: dict[sp.MatrixSymbol, sp.Expr] = {}
        self.samples = numeric.Samples(self.definitions, trials=trials, seed=seed)
        self._parent: dict = {}
        self._used: set = set()
        self._full = Normalizer(definitions=self.definitions)

    # -- facts: union-find over expressions proven equal --------------------
    def _find(self, e: Any) -> Any:
        parent = self._parent
        root = e
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(e, e) != root:
            parent[e], e = root, parent[e]
        return root

    def _union(self, a: Any, b: Any) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self._parent[ra] = rb

    def define(self, sym: sp.MatrixSymbol, expr: sp.Expr) -> sp.MatrixSymbol:
        """Introduce ``sym := expr``; ``sym`` must be new and of the same shape."""
        if sym in self.definitions:
            raise ShapeError(f"{sym.name} is already defined")
        shape = _shape_of(expr)
        if not (same_dim(sym.rows, shape[0]) and same_dim(sym.cols, shape[1])):
            raise ShapeError(
                f"{sym.name} is {fmt_shape(sym.shape)} but its definition is {fmt_shape(shape)}"
            )
        used = matrix_atoms(expr)
        # a cycle needs sym inside expr, or sym already used by some definition
        if sym in used or (sym in self._used and sym in _free_matrix_symbols(expr, self.definitions)):
            raise ShapeError(f"definition of {sym.name} refers to itself")
        self._used |= used
        self.definitions[sym] = expr
        self._union(sym, expr)
        return sym

    def lemma(self, sym: sp.MatrixSymbol, expr: sp.Expr) -> Lemma:
        """The proven equation ``sym = expr``; raises unless a proved chain links them."""
        if self._find(sym) != self._find(expr):
            raise ValueError(f"{sym.name} = {expr} has not been proved in this context")
        return Lemma(sym, expr)

    # -- deciding a step ----------------------------------------------------
    def check(self, lhs: Any, rhs: Any, uses: Iterable[Any] | None = None) -> Check:
        """Decide ``lhs = rhs``, unfolding the cited definitions and lemmas."""
        if isinstance(lhs, sp.Basic) and isinstance(rhs, sp.Basic):
            _shape_of(lhs), _shape_of(rhs)  # an ill-formed side is an error, not a verdict
        # numbers first: a confirmed counterexample settles the step at once (a
        # false step never waits for the symbolic ladder's time budget)
        report, counter = self.samples.compare(lhs, rhs)
        if counter is not None:
            return Check(REFUTED, counter["reason"], report, counter)
        symbolic, detail = self._symbolic(lhs, rhs, uses)
        if symbolic and report.trials == 0:
            return Check(UNPROVED, detail + "; no numeric instance could be evaluated", report)
        if symbolic and not report.agree:
            return Check(UNPROVED, detail + "; a numeric disagreement could not be resolved at 50 digits", report)
        if symbolic:
            self._union(lhs, rhs)
            return Check(PROVED, detail, report)
        return Check(UNPROVED, detail, report)

    def _symbolic(self, lhs: Any, rhs: Any, uses: Iterable[Any] | None) -> tuple[bool, str]:
        try:
            with _time_limit(STEP_BUDGET):
                return self._symbolic_unbounded(lhs, rhs, uses)
        except TimeoutError:
            return False, f"no symbolic decision within {STEP_BUDGET:g} s"

    def _symbolic_unbounded(self, lhs: Any, rhs: Any, uses: Iterable[Any] | None) -> tuple[bool, str]:
        try:
            attempts = [Normalizer(calculus=self.definitions)]
            if uses is not None:
                rewrites = {}
                for u in uses:
                    if isinstance(u, Lemma):
                        if self._find(u.sym) != self._find(u.expr):
                            return False, f"lemma {u.sym.name} was not proved"
                        rewrites[u.sym] = u.expr
                    elif u in self.definitions:
                        rewrites[u] = self.definitions[u]
                    else:
                        return False, f"{u} is neither defined nor a proven lemma"
                attempts.append(Normalizer(rewrites=rewrites, calculus=self.definitions))
            attempts.append(self._full)
            detail = ""
            for normalizer in attempts:
                same, detail = _compare(normalizer(lhs), normalizer(rhs))
                if same:
                    return True, detail
            return False, detail
        except ShapeError:
            raise
        except Unsupported as exc:
            return False, f"outside the decided fragment: {exc}"
        except BudgetError as exc:
            return False, str(exc)
        except RecursionError:
            return False, "expression nested too deeply"


def _free_matrix_symbols(expr: Any, definitions: dict) -> set:
    seen, stack, out = set(), [expr], set()
    while stack:
        e = stack.pop()
        if not isinstance(e, sp.Basic):
            continue
        for s in matrix_atoms(e):
            if s in seen:
                continue
            seen.add(s)
            out.add(s)
            if s in definitions:
                stack.append(definitions[s])
    return out


def _shape_of(expr: Any) -> tuple:
    """The shape of an expression, checking every sum and product on the way
    (SymPy accepts some mismatched symbolic shapes); linear in its size."""
    memo: dict = {}
    stack = [(expr, False)]
    while stack:
        e, ready = stack.pop()
        if e in memo:
            continue
        if not isinstance(e, (sp.MatrixExpr, sp.MatrixBase)):
            memo[e] = (sp.S.One, sp.S.One)
            continue
        kids = [a for a in e.args if isinstance(a, (sp.MatrixExpr, sp.MatrixBase))]
        if isinstance(e, (sp.MatrixSymbol, sp.MatrixBase)) or not kids:
            memo[e] = e.shape
            continue
        if not ready:
            stack.append((e, True))
            stack.extend((k, False) for k in kids if k not in memo)
            continue
        shapes = [memo[k] for k in kids]
        if isinstance(e, (sp.MatAdd, HadamardProduct)):
            for sh in shapes[1:]:
                if not (same_dim(sh[0], shapes[0][0]) and same_dim(sh[1], shapes[0][1])):
                    op = "added" if isinstance(e, sp.MatAdd) else "multiplied elementwise"
                    raise ShapeError(f"shapes {fmt_shape(shapes[0])} and {fmt_shape(sh)} cannot be {op}")
            memo[e] = shapes[0]
        elif isinstance(e, sp.MatMul):
            for left, right in zip(shapes, shapes[1:]):
                if not same_dim(left[1], right[0]):
                    raise ShapeError(f"shapes {fmt_shape(left)} and {fmt_shape(right)} cannot be multiplied")
            memo[e] = (shapes[0][0], shapes[-1][1])
        elif isinstance(e, sp.Transpose):
            memo[e] = (shapes[0][1], shapes[0][0])
        else:
            memo[e] = e.shape
    return memo[expr]


def normal_form(expr: Any) -> NF:
    """The normal form of an expression (no definitions unfolded), for inspection."""
    return clean(Normalizer()(expr))


def check(lhs: Any, rhs: Any, trials: int = 3, seed: int = 0) -> Check:
    """Decide ``lhs = rhs`` in a fresh context."""
    return Context(trials=trials, seed=seed).check(lhs, rhs)


__all__ = [
    "PROVED",
    "REFUTED",
    "UNPROVED",
    "Check",
    "Context",
    "Grad",
    "Lemma",
    "NumericReport",
    "check",
    "normal_form",
    "scalar_is_zero",
]
