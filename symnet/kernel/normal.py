"""The normal form: terms translated, under the kernel's control, into word maps.

A matrix term becomes a finite map ``word -> coefficient``: a word is a tuple of
atoms multiplied left to right (the empty word is the identity of the term's
shape); a coefficient is a canonical SymPy scalar that the kernel built itself
from a term (real symbols, exact rationals, opaque functions with no
assumptions).  Atoms:

* ``("sym", name, rows, cols, t)``  matrix symbol, transposed iff t;
* ``("ones", r, c)``         the all-ones matrix;
* ``("unit", i, j, r, c)``   the matrix unit E_ij of an explicit matrix;
* ``("had", F, r, c)``       Hadamard product of the multiset F of words;
* ``("fn", f, A, r, c)``     entrywise f (a formula in ``_Z``) of the frozen
  normal form A of its argument.

Rules realised: distributivity, associativity, scalar bilinearity; transpose
pushed to atoms reversing words; identity vanishes in words; zero contributes
no terms; ``1[r x k] 1[k x c] = k 1[r x c]``; ``E_ij E_kl = [j = k] E_il``;
integer powers of square matrices unfold; Hadamard products are commutative,
associative, bilinear with unit ``1``; entrywise polynomials expand into
Hadamard powers and functions of constant matrices evaluate; ``trace`` is
linear, cyclic and transpose-invariant (a trace is a scalar atom).

Partial operations record **side conditions** while they are translated:
division by ``d`` needs ``d != 0``, ``log(a)`` needs ``a > 0``, ``sqrt(a)``
needs ``a >= 0``; a negative power needs a nonzero base.  The translator
collects them (as terms, with the scalar the kernel built) so that a verdict
can carry them; SymPy's own cancellations (``u/u -> 1``) are then harmless.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections import Counter
from typing import Any

import sympy as sp
from sympy.core.function import UndefinedFunction

from . import terms as T
from .errors import BudgetError, ShapeError, Unsupported
from .terms import Term

#: Refuse normal forms with more terms than this (the step becomes unproved).
MAX_TERMS = 50_000
#: Largest integer power or Hadamard power the normal form unfolds.
MAX_POWER = 64
#: Largest degree of an entrywise polynomial that is expanded.
MAX_POLY_DEGREE = 6
#: Largest derivative (in SymPy operations) that ``diff`` may produce.
MAX_DIFF_OPS = 3_000

_Z = sp.Dummy("z", real=True)
_PRIM = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "sin": sp.sin, "cos": sp.cos,
    "tan": sp.tan, "tanh": sp.tanh, "sinh": sp.sinh, "cosh": sp.cosh, "atan": sp.atan,
    "asinh": sp.asinh, "erf": sp.erf, "erfc": sp.erfc, "sign": sp.sign, "sinc": sp.sinc,
    "dirac": sp.DiracDelta,
}


# ---------------------------------------------------------------------------
# Dimensions and kernel-built scalars


def dim_symbol(d: T.Dim) -> sp.Expr:
    return sp.Integer(d) if isinstance(d, int) else sp.Symbol(d, integer=True, positive=True)


def scalar_symbol(name: str) -> sp.Symbol:
    if isinstance(name, T.PositiveName):
        return sp.Symbol(str(name), positive=True)
    return sp.Symbol(str(name), real=True)


_FUNCTIONS: dict[tuple[str, int], Any] = {}


def opaque_function(name: str, order: int = 0) -> Any:
    """The kernel's opaque function ``name`` (or its ``order``-th derivative): no
    assumptions, no numeric value, so SymPy can decide nothing about it."""
    key = (name, order)
    if key not in _FUNCTIONS:
        shown = name + ("'" * order if order <= 3 else f"^({order})")
        _FUNCTIONS[key] = UndefinedFunction(shown)
    return _FUNCTIONS[key]


def _name_derivatives(e: sp.Expr) -> sp.Expr:
    """Derivatives of opaque functions, as SymPy leaves them, renamed to the
    kernel's derivative functions: ``Subs(Derivative(f(t), t), t, a) -> f'(a)``."""
    names = {v: k for k, v in _FUNCTIONS.items()}

    def derivative_of(d: sp.Derivative) -> Any:
        inner = d.expr
        if not (isinstance(inner.func, UndefinedFunction) and inner.func in names):
            return None
        (v, k), = d.variable_count
        if inner.args != (v,):
            return None
        base, order = names[inner.func]
        return opaque_function(base, order + int(k))(v)

    def fix(x: sp.Basic) -> sp.Basic:
        if isinstance(x, sp.Subs) and isinstance(x.expr, sp.Derivative):
            f = derivative_of(x.expr)
            if f is not None:
                return f.xreplace(dict(zip(x.variables, x.point)))
        if isinstance(x, sp.Derivative):
            f = derivative_of(x)
            if f is not None:
                return f
        return x

    return e.replace(lambda x: isinstance(x, (sp.Subs, sp.Derivative)), fix)


# ---------------------------------------------------------------------------
# Normal forms


class NF:
    """``terms`` maps words to scalar coefficients; ``rows x cols`` is the shape."""

    __slots__ = ("rows", "cols", "terms")

    def __init__(self, rows: T.Dim, cols: T.Dim, terms: dict | None = None):
        self.rows, self.cols = rows, cols
        self.terms = terms if terms is not None else {}

    @property
    def shape(self) -> tuple:
        return (self.rows, self.cols)

    def _guard(self) -> NF:
        if len(self.terms) > MAX_TERMS:
            raise BudgetError(f"expression expands to more than {MAX_TERMS} terms")
        return self


def fmt_shape(shape: tuple) -> str:
    return f"{shape[0]}x{shape[1]}"


def _atom_shape(atom: tuple) -> tuple:
    if atom[0] in ("sym", "inv"):
        r, c = atom[2], atom[3]
        return (c, r) if atom[4] else (r, c)
    return atom[-2], atom[-1]


def _dims_of(word: tuple) -> list:
    """The inner dimensions between the atoms of a word."""
    return [_atom_shape(a)[1] for a in word[:-1]]


def _transpose_atom(atom: tuple) -> tuple:
    kind = atom[0]
    if kind in ("sym", "inv"):
        return (kind, atom[1], atom[2], atom[3], not atom[4])
    if kind == "diag":
        return atom
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


def _cancels(a: tuple, b: tuple) -> bool:
    """``a b = I``: a declared-invertible matrix next to its inverse (same transposition)."""
    return {a[0], b[0]} == {"sym", "inv"} and a[1] == b[1] and a[4] == b[4] and a[2:4] == b[2:4]


def _concat(left: tuple, right: tuple) -> tuple[sp.Expr, tuple] | None:
    """The product of two normalised words: (scalar factor, word) or None for zero."""
    while left and right and _cancels(left[-1], right[0]):
        left, right = left[:-1], right[1:]
    if not left:
        return sp.S.One, right
    if not right:
        return sp.S.One, left
    a, b = left[-1], right[0]
    if a[0] == "ones" and b[0] == "ones":
        merged = () if a[1] == 1 and b[2] == 1 else (("ones", a[1], b[2]),)
        return dim_symbol(a[2]), left[:-1] + merged + right[1:]
    if a[0] == "unit" and b[0] == "unit":
        if a[2] != b[1]:
            return None
        return sp.S.One, left[:-1] + (("unit", a[1], b[2], a[3], b[4]),) + right[1:]
    if a[0] == "diag" and b[0] == "diag":  # diag(u) diag(v) = diag(u (.) v)
        d = clean(hadamard(_thaw(a[1]), _thaw(b[1])))
        if not d.terms:
            return None
        return sp.S.One, left[:-1] + (("diag", _freeze(d), a[2], a[3]),) + right[1:]
    return sp.S.One, left + right


def add(x: NF, y: NF) -> NF:
    if x.shape != y.shape:
        raise ShapeError(f"shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)} cannot be added")
    terms = dict(x.terms)
    for w, c in y.terms.items():
        terms[w] = terms[w] + c if w in terms else c
    return NF(x.rows, x.cols, _fold_functions(terms, x.rows, x.cols))._guard()


def _fold_functions(terms: dict, r: T.Dim, c: T.Dim) -> dict:
    """A sum of entrywise functions of one argument (and constants) is one entrywise
    function: ``1 - tanh(A) (.) tanh(A)`` is ``(z -> 1 - tanh(z)^2)(A)``, so that a
    Hadamard product distributes over it as over one factor."""
    fns = [w for w in terms if len(w) == 1 and w[0][0] == "fn"]
    if not fns or len({w[0][2] for w in fns}) != 1:
        return terms
    unit = next(iter(ones(r, c).terms)) if not (r == 1 and c == 1) else None
    constant = terms.get(unit, sp.S.Zero) if unit is not None else sp.S.Zero
    if len(fns) < 2 and constant == 0:
        return terms
    if any(terms[w].has(_Z) for w in fns) or (constant != 0 and constant.has(_Z)):
        return terms
    body = constant + sp.Add(*[terms[w] * w[0][1] for w in fns])
    out = {w: v for w, v in terms.items() if w not in fns and w != unit}
    _, _, arg, rr, cc = fns[0][0]
    if body != 0:
        key = (("fn", body, arg, rr, cc),)
        out[key] = out[key] + 1 if key in out else sp.S.One
    return out


def scale(x: NF, c: sp.Expr) -> NF:
    if c == 0:
        return NF(x.rows, x.cols)
    if c == 1:
        return x
    return NF(x.rows, x.cols, {w: c * v for w, v in x.terms.items()})


def scalar_segments(word: tuple, rows: T.Dim, cols: T.Dim) -> tuple[sp.Expr, tuple]:
    """A 1x1 stretch of a word is a scalar and commutes: ``a (x^T y) b^T = (x^T y) a b^T``.

    Every stretch between two places where the word's dimension is the integer 1 (its
    ends count when the word has 1 row or 1 column) becomes its trace, a scalar atom."""
    if len(word) < 2:
        return sp.S.One, word
    cuts = ([-1] if rows == 1 else []) + list(_inner_units(word)) + ([len(word) - 1] if cols == 1 else [])
    if len(cuts) < 2:
        return sp.S.One, word
    factor = sp.S.One
    for p, q in zip(cuts, cuts[1:]):
        factor *= _trace_word(word[p + 1:q + 1], 1)
    kept = word[:cuts[0] + 1] + word[cuts[-1] + 1:]
    return factor, kept


@functools.lru_cache(maxsize=1 << 16)
def _inner_units(word: tuple) -> tuple:
    """The places inside a word where its dimension is the integer 1 (memoised: deep
    products meet the same long words again and again)."""
    return tuple(i for i, d in enumerate(_dims_of(word)) if d == 1)


def mul(x: NF, y: NF) -> NF:
    if x.cols != y.rows:
        raise ShapeError(f"shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)} cannot be multiplied")
    if len(x.terms) * len(y.terms) > MAX_TERMS:
        raise BudgetError(f"product expands to more than {MAX_TERMS} terms")
    terms: dict = {}
    for w1, c1 in x.terms.items():
        for w2, c2 in y.terms.items():
            joined = _concat(w1, w2)
            if joined is None:
                continue
            k, w = joined
            if w1 and w2:
                k2, w = scalar_segments(w, x.rows, y.cols)
                k = k * k2
            c = c1 * c2 * k
            terms[w] = terms[w] + c if w in terms else c
    result = NF(x.rows, y.cols, terms)._guard()
    if _DIAGONALS[0]:  # only once a diagonal atom exists anywhere (a scan per product otherwise)
        if any(a[0] == "diag" and not _is_atomic(a) for w in terms for a in w):
            result = _atomic_diagonals(result)
        if x.rows == 1 or y.cols == 1:
            result = _absorb_diagonals(result)
    return result


#: set when the first diagonal atom is made: products scan their words for diagonals after
_DIAGONALS = [False]


def _absorb_diagonals(x: NF) -> NF:
    """In a vector, a diagonal factor is a Hadamard product: ``u diag(v) M = (u (.) v) M``
    for a row ``u``, ``M diag(v) w = M (v^T (.) w)`` for a column ``w``."""
    out = NF(x.rows, x.cols)
    changed = False
    for w, c in x.terms.items():
        if x.rows == 1:
            i = next((i for i, a in enumerate(w) if i and a[0] == "diag"), None)
        else:
            i = next((i for i in range(len(w) - 2, -1, -1) if w[i][0] == "diag"), None)
        if i is None:
            out = add(out, NF(x.rows, x.cols, {w: c}))
            continue
        changed = True
        v, n = _thaw(w[i][1]), w[i][2]
        if x.rows == 1:
            piece = hadamard(NF(1, n, {w[:i]: sp.S.One}), v)
            if w[i + 1:]:
                piece = mul(piece, NF(n, x.cols, {w[i + 1:]: sp.S.One}))
        else:
            piece = hadamard(transpose(v), NF(n, 1, {w[i + 1:]: sp.S.One}))
            if w[:i]:
                piece = mul(NF(x.rows, n, {w[:i]: sp.S.One}), piece)
        out = add(out, scale(piece, c))
    return out if changed else x


def transpose(x: NF) -> NF:
    return NF(x.cols, x.rows, {_transpose_word(w): c for w, c in x.terms.items()})


def identity(n: T.Dim) -> NF:
    return NF(n, n, {(): sp.S.One})


def ones(r: T.Dim, c: T.Dim) -> NF:
    if r == 1 and c == 1:
        return identity(1)  # the 1x1 ones matrix is the 1x1 identity
    return NF(r, c, {(("ones", r, c),): sp.S.One})


def _had_factors(word: tuple, r: T.Dim, c: T.Dim) -> Counter:
    """The multiset of Hadamard factors of a word (empty for the unit ``1``)."""
    if len(word) == 1 and word[0][0] == "had":
        return Counter(dict(word[0][1]))
    if len(word) == 1 and word[0][0] == "ones":
        return Counter()
    if not word and r == 1 and c == 1:
        return Counter()  # I_1 = 1[1x1], the unit
    return Counter({word: 1})


def _merge_functions(factors: Counter) -> Counter:
    """Entrywise functions of one argument multiply into one: f(A) (.) g(A) = (f g)(A),
    and so does the argument itself: A (.) f(A) = (z f(z))(A)."""
    fns: dict = {}
    for w, m in factors.items():
        if len(w) == 1 and w[0][0] == "fn":
            fns.setdefault(w[0][2], []).append((w[0], m))
    if not fns:
        return factors
    bare: dict = {}  # the argument of a function, as a plain factor
    r, c = next(iter(fns))[:2]  # every factor has the shape of the functions' arguments
    for w, m in factors.items():
        if not (len(w) == 1 and w[0][0] == "fn"):
            key = _freeze(NF(r, c, {w: sp.S.One}))
            if key in fns:
                bare[w] = (key, m)
    if not bare and not any(len(v) > 1 or v[0][1] > 1 for v in fns.values()):
        return factors
    out = Counter({w: m for w, m in factors.items() if not (len(w) == 1 and w[0][0] == "fn") and w not in bare})
    powers = Counter()
    for key, m in bare.values():
        powers[key] += m
    for arg, atoms in sorted(fns.items(), key=lambda kv: akey(kv[0])):
        body = _Z ** powers[arg]
        for atom, m in atoms:
            body *= atom[1] ** m
        _, _, _, r, c = atoms[0][0]
        words = arg[2]
        if body.is_Pow and body.base == _Z and body.exp.is_Integer and body.exp > 0 and len(words) == 1 \
                and next(iter(words))[1] == 1:
            # a power of the argument itself (|z|^2 = z^2): the argument as a repeated factor
            out[next(iter(words))[0]] += int(body.exp)
        elif body == _Z and len(words) == 1 and next(iter(words))[1] == 1:
            out[next(iter(words))[0]] += 1
        else:
            out[(("fn", body, arg, r, c),)] += 1
    return out


def _had_word(factors: Counter, r: T.Dim, c: T.Dim) -> tuple:
    factors = _merge_functions(factors)
    if factors.get((), 0) > 1:
        factors[()] = 1  # I (.) I = I
    if () in factors and r == c:
        # a product with the identity keeps only the diagonal, which a factor and its
        # transpose share: A (.) I = A^T (.) I
        oriented = Counter()
        for w, m in factors.items():
            t = _transpose_word(w)
            oriented[w if akey(w) <= akey(t) else t] += m
        factors = oriented
    if not factors:
        return next(iter(ones(r, c).terms))
    if len(factors) == 1:
        (w, m), = factors.items()
        if m == 1:
            return w
    return (("had", frozenset(factors.items()), r, c),)


def hadamard(x: NF, y: NF) -> NF:
    if x.shape != y.shape:
        raise ShapeError(f"shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)} cannot be multiplied elementwise")
    if len(x.terms) * len(y.terms) > MAX_TERMS:
        raise BudgetError(f"Hadamard product expands to more than {MAX_TERMS} terms")
    r, c = x.shape
    terms: dict = {}
    for w1, c1 in x.terms.items():
        f1 = _had_factors(w1, r, c)
        for w2, c2 in y.terms.items():
            for w, k in _had_terms(f1 + _had_factors(w2, r, c), r, c).items():
                v = c1 * c2 * k
                terms[w] = terms[w] + v if w in terms else v
    return NF(r, c, terms)._guard()


#: In the distributing translation (a second attempt, see :class:`Translator`), an
#: entrywise function whose body is a sum distributes over the Hadamard product beside it.
#: Not the default: in backprop's ``delta (.) (1 - tanh(z)^2)`` it doubles the terms per layer.
_DISTRIBUTE = contextvars.ContextVar("symnet_distribute", default=False)


def _had_terms(factors: Counter, r: T.Dim, c: T.Dim) -> dict:
    """The normal form of a Hadamard product of factors, as words and coefficients.

    A rank-one factor and a factor's outer diagonals come out as diagonals
    (``(p q) (.) F = diag(p) F diag(q^T)``); when distributing, an entrywise function
    whose body is a sum distributes (``f(A) (.) (1 + g)(B) = f(A) + f(A) (.) g(B)``)."""
    factors = _merge_functions(factors)
    if _DISTRIBUTE.get() and sum(factors.values()) >= 2:
        for w, m in factors.items():
            if len(w) == 1 and w[0][0] == "fn" and m == 1:
                body = sp.expand(w[0][1])
                if body.is_Add:
                    rest = factors.copy()
                    del rest[w]
                    out: dict = {}
                    for addend in body.args:
                        for pw, pc in elementwise(addend, _thaw(w[0][2])).terms.items():
                            for ww, k in _had_terms(rest + _had_factors(pw, r, c), r, c).items():
                                out[ww] = out[ww] + pc * k if ww in out else pc * k
                    return out
    outer = _rank_one(factors, r, c)
    if outer is not None:
        return outer.terms
    return {_had_word(factors, r, c): sp.S.One}


def _rank_one(factors: Counter, r: T.Dim, c: T.Dim) -> NF | None:
    """``(p q) (.) F = diag(p) F diag(q^T)`` and ``(diag(a) M) (.) F = diag(a) (M (.) F)``:
    the outer parts of every factor of a matrix (neither dimension 1), or None."""
    if r == 1 or c == 1:
        return None
    lefts, rights, inner = [], [], Counter()
    for w, m in factors.items():
        i, j = 0, len(w)
        left, right = [], []
        while i < j and w[i][0] == "diag":
            left.append(transpose(_thaw(w[i][1])))
            i += 1
        while j > i and w[j - 1][0] == "diag":
            right.append(_thaw(w[j - 1][1]))
            j -= 1
        core = w[i:j]
        cut = next((k for k, d in enumerate(_dims_of(core)) if d == 1), None) if len(core) > 1 else None
        if not left and not right and cut is None:
            inner[w] += m
            continue
        if cut is not None:
            left.append(NF(r, 1, {core[:cut + 1]: sp.S.One}))
            right.append(NF(1, c, {core[cut + 1:]: sp.S.One}))
        else:
            inner[core] += m
        lefts += left * m
        rights += right * m
    if not lefts and not rights:
        return None
    p = ones(r, 1)
    for v in lefts:
        p = hadamard(p, v)
    q = ones(1, c)
    for v in rights:
        q = hadamard(q, v)
    if not inner:
        return mul(p, q)
    result = NF(r, c, _had_terms(inner, r, c))
    if lefts:
        result = mul(diagonal(transpose(p)), result)
    if rights:
        result = mul(result, diagonal(q))
    return result


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
    if not arg.terms:  # f(0) everywhere
        return scale(ones(r, c), body.subs(_Z, 0))
    if len(arg.terms) == 1:
        (w, k), = arg.terms.items()
        if w == next(iter(ones(r, c).terms)):  # a constant matrix k 1: f(k) 1
            return scale(ones(r, c), body.subs(_Z, k))
    # a rational factor of the argument moves into the function: f(-A) is (z -> f(-z))(A),
    # so relu(A) and relu(-A) are functions of one argument (identities between them lift)
    lead = min(arg.terms, key=akey)
    k = arg.terms[lead]
    if k.is_Rational and k != 1:
        body, arg = body.xreplace({_Z: k * _Z}), scale(arg, 1 / k)
    if body.is_Pow and body.base == _Z and body.exp.is_Integer and len(arg.terms) == 1:
        (w, k), = arg.terms.items()
        if k == 1 and len(w) == 1 and w[0][0] == "fn":
            # an integer power of an entrywise function is one function, f(A)^k = (f^k)(A),
            # as the Hadamard product of k copies is (so 1/sqrt(A) is sqrt(A)^-1)
            return elementwise(w[0][1] ** body.exp, _thaw(w[0][2]))
    coeff, rest = body.as_coeff_Mul()
    if coeff != 1 and rest.has(_Z) and coeff.is_Rational:
        # a constant factor of the body comes out: (z -> c g(z))(A) = c g(A)
        return scale(elementwise(rest, arg), coeff)
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


def akey(obj: Any) -> str:
    """A deterministic sort key (independent of hash seeds)."""
    return repr(obj)


def _trace_word(word: tuple, n: T.Dim) -> sp.Expr:
    if not word:
        return dim_symbol(n)
    while len(word) > 1 and _cancels(word[-1], word[0]):  # tr(A X A^{-1}) = tr(X)
        word = word[1:-1]
    if not word:
        return dim_symbol(n)
    if len(word) > 1 and word[0][0] == "ones" and word[-1][0] == "ones":
        k, merged = _concat(word[-1:], word[:1])
        return k * _trace_word(word[1:-1] + merged, n)
    if len(word) == 1 and word[0][0] == "ones":
        return dim_symbol(word[0][1])
    if len(word) == 1 and word[0][0] == "diag":  # tr(diag(v)) = v 1, the sum of v's entries
        v = _thaw(word[0][1])
        return trace(mul(v, ones(v.cols, 1)))
    if all(a[0] == "unit" for a in word):
        (a,) = word
        return sp.S.One if a[1] == a[2] else sp.S.Zero
    hads = [i for i, a in enumerate(word) if a[0] == "had"]
    if len(hads) == 1:
        # tr(H R) = sum of the entries of H (.) R^T: one scalar per multiset of factors
        i = hads[0]
        H, R = word[i], word[i + 1:] + word[:i]
        factors = Counter(dict(H[1]))
        rest = _transpose_word(R)
        if not (len(rest) == 1 and rest[0][0] == "ones"):  # ones is the Hadamard unit
            factors[rest] += 1
        return hadamard_sum(factors, H[2], H[3])
    candidates = []
    for w in (word, _transpose_word(word)):
        for i in range(len(w)):
            rot = w[i:] + w[:i]
            candidates.append((akey(rot), rot))
    key = min(candidates, key=lambda kv: kv[0])[1]
    with _TRACE_LOCK:
        if key not in _TRACE_SYMBOLS:
            _TRACE_SYMBOLS[key] = sp.Dummy(f"tr{len(_TRACE_SYMBOLS)}", real=True)
        return _TRACE_SYMBOLS[key]


_HSUM_SYMBOLS: dict[tuple, sp.Dummy] = {}


def hadamard_sum(factors: Counter, r: T.Dim, c: T.Dim) -> sp.Expr:
    """``sum_ij (F_1 (.) F_2 (.) ...)_ij`` for a multiset of r x c words: with two factors
    it is ``tr(F_1^T F_2)``, with one ``tr(1 F_1)``; with more, a scalar atom keyed by the
    multiset (the sum is the same for the transposed factors)."""
    if factors.get((), 0) > 1:
        factors = Counter(factors)
        factors[()] = 1  # I (.) I = I
    items = sorted(factors.elements(), key=akey)
    if len(items) == 1:
        (w,) = items
        if not w:
            return dim_symbol(r)
        k, joined = _concat(w, (("ones", c, r),))
        return k * _trace_word(joined, r)
    if len(items) == 2:
        x, y = items
        joined = _concat(_transpose_word(x), y)
        if joined is None:
            return sp.S.Zero
        k, w = joined
        return k * _trace_word(w, c)
    flipped = sorted((_transpose_word(w) for w in items), key=akey)
    key = min((tuple(items), r, c), (tuple(flipped), c, r), key=akey)
    with _TRACE_LOCK:
        if key not in _HSUM_SYMBOLS:
            _HSUM_SYMBOLS[key] = sp.Dummy(f"hsum{len(_HSUM_SYMBOLS)}", real=True)
        return _HSUM_SYMBOLS[key]


def trace(x: NF) -> sp.Expr:
    """The trace of a square normal form, as a scalar in trace atoms."""
    if x.rows != x.cols:
        raise ShapeError(f"trace of a non-square {fmt_shape(x.shape)} matrix")
    return sp.Add(*[c * _trace_word(w, x.rows) for w, c in x.terms.items()])


def as_scalar(x: NF) -> sp.Expr:
    """A 1x1 normal form as a scalar (its trace)."""
    return trace(x)


# ---------------------------------------------------------------------------
# Derivatives of entrywise functions


@functools.lru_cache(maxsize=4096)
def derivative_body(body: sp.Expr) -> sp.Expr:
    """``f'`` of a formula in ``_Z``: SymPy's scalar ``diff`` on a kernel-built scalar
    (remembered: backprop differentiates the same activation once per layer and parameter).

    ``Heaviside(u)`` (1/2 at 0) from ``d/dz max(0, z)`` takes the catalogue's
    subgradient convention ``relu'(0) = 0``; only the value at the kink changes."""
    return _name_derivatives(_kink_convention(sp.diff(body, _Z)))


def _kink_convention(d: sp.Expr) -> sp.Expr:
    """SymPy's ``Heaviside(u)`` (``Heaviside(u, 1/2)``) from differentiating a kink, with
    the catalogue's value at the kink: ``relu'(0) = 0``."""
    return d.replace(lambda e: isinstance(e, sp.Heaviside) and (len(e.args) == 1 or e.args[1] == sp.S.Half),
                     lambda e: sp.Heaviside(e.args[0], 0))


def elementwise_derivative(lam: sp.Lambda) -> sp.Lambda:
    """``f'`` for an entrywise ``f`` given as a SymPy ``Lambda`` (for symnet's builders)."""
    (v,) = lam.variables
    return sp.Lambda(v, _kink_convention(sp.diff(lam.expr, v)))


# ---------------------------------------------------------------------------
# Side conditions


class Condition:
    """``term REL 0`` (REL one of ``!=``, ``>``, ``>=``) that a partial operation needs."""

    __slots__ = ("term", "rel", "scalar")

    def __init__(self, term: Term, rel: str, scalar: sp.Expr):
        self.term, self.rel, self.scalar = term, rel, scalar

    def key(self) -> tuple:
        return (self.term, self.rel)


# ---------------------------------------------------------------------------
# From terms to normal forms


class Translator:
    """Translates terms to normal forms (and scalars), unfolding the given rewrites.

    ``rewrites`` (symbol term -> term) are unfolded where they occur;
    ``definitions``, if given, are all unfolded, recursively; ``calculus`` are
    the definitions the gradient rules may follow.  ``conditions`` collects the
    side conditions of every partial operation met.
    """

    def __init__(self, rewrites: dict | None = None, definitions: dict | None = None,
                 calculus: dict | None = None, distribute: bool = False, sweeps: dict | None = None):
        self.distribute = distribute
        #: gradients of whole losses remembered across translators of one context
        self.sweeps = sweeps
        self.rewrites = rewrites or {}
        self.definitions = definitions
        self.calculus = calculus if calculus is not None else (definitions if definitions is not None else {})
        self.memo: dict = {}
        self.smemo: dict = {}
        self.seen: set = set()  # every symbol whose unfolding was asked for
        self.conditions: dict = {}
        #: a derivative of a function with kinks was taken: its values at the kinks are a
        #: convention, not the derivative of what was differentiated, so no identity may be
        #: concluded from them
        self.kink_derivative = False

    # -- entry points ---------------------------------------------------------
    def __call__(self, t: Term) -> NF:
        token = _DISTRIBUTE.set(self.distribute)
        try:
            self._prepare(t)
            if not t.is_matrix:
                return NF(1, 1, {(): self.scalar(t)})
            return self.nf(t)
        finally:
            _DISTRIBUTE.reset(token)

    def _unfold(self, t: Term) -> Term | None:
        self.seen.add(t)  # what a memo entry may depend on: a later rewrite of t would change it
        if t in self.rewrites:
            return self.rewrites[t]
        if self.definitions is not None and t in self.definitions:
            return self.definitions[t]
        return None

    def _prepare(self, root: Term) -> None:
        """Translate the definitions ``root`` depends on, dependencies first, so
        that unfolding a long chain of definitions never recurses deeply."""
        order, state = [], set()
        stack = [(s, False) for s in T.symbols(root) if self._unfold(s) is not None]
        while stack:
            sym, done = stack.pop()
            if done:
                order.append(sym)
                continue
            if sym in state or sym in self.memo or sym in self.smemo:
                continue
            state.add(sym)
            stack.append((sym, True))
            for dep in T.symbols(self._unfold(sym)):
                if self._unfold(dep) is not None and dep not in state:
                    stack.append((dep, False))
        for sym in order:
            if sym.is_matrix:
                self.nf(sym)
            else:
                self.scalar(sym)

    def _condition(self, t: Term, rel: str) -> None:
        s = self.scalar(t)
        if s.is_Number:
            ok = (s != 0) if rel == "!=" else (s > 0) if rel == ">" else (s >= 0)
            if not ok:
                raise Undefined(t, rel)
            return
        c = Condition(t, rel, s)
        self.conditions.setdefault(c.key(), c)

    # -- scalars --------------------------------------------------------------
    def scalar(self, t: Term) -> sp.Expr:
        hit = self.smemo.get(t)
        if hit is None:
            hit = self.smemo[t] = self._scalar(t)
        return hit

    def _scalar(self, t: Term) -> sp.Expr:
        if t.is_matrix:
            x = self.nf(t)
            if x.shape != (1, 1):
                raise ShapeError(f"expected a scalar, got a {fmt_shape(x.shape)} matrix")
            return as_scalar(x)
        op, a = t.op, t.args
        if op == "num":
            return sp.Rational(t.value.numerator, t.value.denominator)
        if op == "const":
            return sp.pi if t.value == "pi" else sp.E
        if op == "sym":
            unfolded = self._unfold(t)
            if unfolded is not None:
                return self.scalar(unfolded)
            return scalar_symbol(t.value)
        if op == "var":
            return _Z
        if op == "dim":
            return dim_symbol(t.value)
        if op == "add":
            return sp.Add(*[self.scalar(x) for x in a])
        if op == "sub":
            return self.scalar(a[0]) - self.scalar(a[1])
        if op == "neg":
            return -self.scalar(a[0])
        if op == "mul":
            return sp.Mul(*[self.scalar(x) for x in a])
        if op == "div":
            self._condition(a[1], "!=")
            return self.scalar(a[0]) / self.scalar(a[1])
        if op == "pow":
            base, k = self.scalar(a[0]), self.scalar(a[1])
            if k.is_Integer and k < 0:
                self._condition(a[0], "!=")
            elif k.is_Rational and not k.is_Integer:
                self._condition(a[0], ">" if k < 0 else ">=")
            elif not k.is_Integer:
                self._condition(a[0], ">")
            return base**k
        if op == "prim":
            return self._prim(t, [self.scalar(x) for x in a])
        if op == "apply":
            return self._apply_scalar(t)
        if op == "trace":
            return trace(self.nf(a[0]))
        if op == "sum":
            x = self.nf(a[0])
            return as_scalar(mul(mul(ones(1, x.rows), x), ones(x.cols, 1)))
        if op == "norm":
            x = self.nf(a[0])
            return sp.sqrt(trace(mul(transpose(x), x)))
        if op == "det":
            return determinant(self.nf(a[0]))
        if op == "diff":
            # differentiate what the expression means: every definition unfolded (a
            # defined scalar is no constant), and nothing the variable hides inside
            # (a trace or entrywise atom would be differentiated as a constant)
            if a[1] in self.calculus:  # as for grad: which of its uses would vary is not said
                raise Unsupported("a derivative with respect to a defined symbol")
            unfolding = Translator(definitions=self.calculus)
            body = _unfold_all(a[0], self.calculus)
            self.kink_derivative = True if _has_kinks(body) else self.kink_derivative
            if any(x.is_matrix and a[1] in T.symbols(x) for x in T.walk(body)):
                raise Unsupported("diff of an expression whose matrices depend on the variable")
            e = unfolding.scalar(body)
            for k, c in unfolding.conditions.items():
                self.conditions.setdefault(k, c)
            v = scalar_symbol(a[1].value)
            for _ in range(int(t.value)):  # one order at a time: a swelling derivative stops early
                e = _kink_convention(sp.diff(e, v))
                if sp.count_ops(e) > MAX_DIFF_OPS:
                    raise BudgetError(f"this derivative grows beyond {MAX_DIFF_OPS} operations")
            return _name_derivatives(e)
        if op == "piecewise":
            pieces = [(self.scalar(a[i]), self._cond(a[i + 1])) for i in range(0, len(a), 2)]
            return sp.Piecewise(*pieces)
        raise Unsupported(f"'{op}' is outside the decided fragment")

    def _cond(self, t: Term) -> Any:
        rel = {"lt": sp.Lt, "le": sp.Le, "gt": sp.Gt, "ge": sp.Ge, "eq": sp.Eq, "ne": sp.Ne}
        if t.op in rel:
            return rel[t.op](self.scalar(t.args[0]), self.scalar(t.args[1]))
        if t.op == "true":
            return sp.true
        if t.op in ("and", "or", "not"):
            f = {"and": sp.And, "or": sp.Or, "not": sp.Not}[t.op]
            return f(*[self._cond(x) for x in t.args])
        raise Unsupported(f"condition '{t.op}'")

    def _prim(self, t: Term, args: list) -> sp.Expr:
        name = t.value
        if name == "log":
            self._condition(t.args[0], ">") if not t.is_matrix else None
        elif name == "sqrt":
            self._condition(t.args[0], ">=") if not t.is_matrix else None
        if name == "max":
            return sp.Max(*args)
        if name == "min":
            return sp.Min(*args)
        if name == "heaviside":
            return sp.Heaviside(args[0], args[1])
        return _PRIM[name](args[0])

    def _apply_scalar(self, t: Term) -> sp.Expr:
        fn, arg = t.value, t.args[0]
        x = self.scalar(arg)
        if fn.opaque:
            return opaque_function(fn.name, fn.order)(x)
        params = [self.scalar(p) for p in t.args[1:]]
        return self.formula(fn, params).xreplace({_Z: x})

    def formula(self, fn: T.Fn, params: list) -> sp.Expr:
        """The body of a function in ``_Z`` with its parameters substituted."""
        # catalogue formulas are total on the reals (tested for every record), so
        # the domain conditions met inside them are not the user's conditions
        return Translator()._formula(fn.formula, params)

    def _formula(self, f: Term, params: list) -> sp.Expr:
        mapping = {T.param(i): p for i, p in enumerate(params)}
        for p, v in mapping.items():
            self.smemo[p] = v
        return self.scalar(f)

    # -- matrices -------------------------------------------------------------
    def nf(self, t: Term) -> NF:
        hit = self.memo.get(t)
        if hit is None:
            hit = self.memo[t] = self._nf(t)
        return hit

    def _nf(self, t: Term) -> NF:
        if not t.is_matrix:
            return NF(1, 1, {(): self.scalar(t)})
        op, a = t.op, t.args
        r, c = t.shape
        if op == "sym":
            unfolded = self._unfold(t)
            if unfolded is not None:
                x = self.nf(unfolded)
                if x.shape != t.shape:
                    raise ShapeError(f"{t.value} is {fmt_shape(t.shape)} but its definition is {fmt_shape(x.shape)}")
                return x
            return NF(r, c, {(("sym", t.value, r, c, False),): sp.S.One})
        if op == "add":
            result = self.nf(a[0])
            for x in a[1:]:
                result = add(result, self.nf(x))
            return result
        if op == "sub":
            return add(self.nf(a[0]), scale(self.nf(a[1]), sp.S.NegativeOne))
        if op == "neg":
            return scale(self.nf(a[0]), sp.S.NegativeOne)
        if op == "mul":
            coeff, result = sp.S.One, None
            for x, matrix_factor in zip(a, T.factor_roles(a)):
                if matrix_factor:
                    n = self.nf(x)
                    result = n if result is None else mul(result, n)
                else:
                    coeff *= self.scalar(x)
            return scale(result if result is not None else identity(1), coeff)
        if op == "div":
            self._condition(a[1], "!=")
            return scale(self.nf(a[0]), 1 / self.scalar(a[1]))
        if op == "T":
            return transpose(self.nf(a[0]))
        if op == "eye":
            return identity(r)
        if op == "zeros":
            return NF(r, c)
        if op == "ones":
            return ones(r, c)
        if op == "pow":
            base, k = self.nf(a[0]), int(a[1].value)
            if k > MAX_POWER:
                raise Unsupported(f"matrix power {k}")
            result = identity(r)
            for _ in range(k):
                result = mul(result, base)
            return result
        if op == "had":
            result = self.nf(a[0])
            for x in a[1:]:
                result = hadamard(result, self.nf(x))
            return result
        if op == "hadpow":
            base, k = self.nf(a[0]), int(a[1].value)
            if k > MAX_POWER:
                raise Unsupported(f"Hadamard power {k}")
            if k < 0:  # an entrywise negative power: the function z^k of each entry
                self._nonzero_entries(a[0])
                return elementwise(_Z ** k, base)
            result = ones(r, c)
            for _ in range(k):
                result = hadamard(result, base)
            return result
        if op == "prim":
            if t.value in T.DOMAINS:
                self._entrywise_condition(t)
            if t.value in ("max", "min", "heaviside"):
                raise Unsupported(f"{t.value} of a matrix")
            return elementwise(_PRIM[t.value](_Z), self.nf(a[0]))
        if op == "apply":
            fn = t.value
            if fn.opaque:
                body = opaque_function(fn.name, fn.order)(_Z)
            else:
                body = self.formula(fn, [self.scalar(p) for p in a[1:]])
            return elementwise(body, self.nf(a[0]))
        if op == "matrix":
            terms = {}
            for i in range(r):
                for j in range(c):
                    v = self.scalar(a[i * c + j])
                    if v != 0:
                        terms[(("unit", i, j, r, c),)] = v
            return NF(r, c, terms)._guard()
        if op == "grad":
            return adjoint(self, a[0], a[1])
        if op == "inv":
            return inverse(self.nf(a[0]))
        if op == "diag":
            v = self.nf(a[0])
            if 1 not in v.shape:  # of a square matrix: its diagonal part
                return hadamard(v, identity(v.rows))
            return diagonal(v if v.rows == 1 else transpose(v))
        if op == "jacobian":
            return jacobian(self, a[0], a[1])
        if op == "hessian":
            return jacobian(self, nf_term(adjoint(self, a[0], a[1])), a[1])
        raise Unsupported(f"'{op}' is outside the decided fragment")

    def _nonzero_entries(self, t: Term) -> None:
        """A negative entrywise power: every entry of ``t`` must be nonzero (stated)."""
        self.conditions.setdefault((t, "!="), Condition(t, "!=", sp.Symbol("_entries")))

    def _entrywise_condition(self, t: Term) -> None:
        # an entrywise log/sqrt: every entry of the argument must be in the domain;
        # recorded as a condition on the argument (stated, never discharged here)
        rel = ">" if t.value == "log" else ">="
        key = (t.args[0], rel)
        self.conditions.setdefault(key, Condition(t.args[0], rel, sp.Symbol("_entries")))


_KINK_PRIMS = frozenset({"abs", "sign", "max", "min", "heaviside", "dirac"})


def _has_kinks(t: Term) -> bool:
    """Whether a term has a function with kinks (in it or in a formula it applies)."""
    for x in T.walk(t):
        if x.op == "prim" and x.value in _KINK_PRIMS:
            return True
        if x.op == "apply" and x.value.formula is not None and _has_kinks(x.value.formula):
            return True
        if x.op == "piecewise":
            return True
    return False


def _unfold_all(t: Term, definitions: dict, limit: int = 10_000) -> Term:
    """``t`` with every defined symbol replaced by its definition, recursively."""
    for _ in range(limit):
        found = {s: definitions[s] for s in T.symbols(t) if s in definitions}
        if not found:
            return t
        t = T.substitute(t, found)
    raise BudgetError("definitions nested too deeply")


def inverse(x: NF) -> NF:
    """``x^{-1}`` for a product of declared-invertible matrices: reversed, each inverted."""
    if len(x.terms) != 1:
        raise Unsupported("the inverse of a sum")
    (w, c), = x.terms.items()
    out = []
    for atom in reversed(w):
        if atom[0] not in ("sym", "inv") or not isinstance(atom[1], T.InvertibleName):
            raise Unsupported("the inverse of a matrix not declared invertible")
        out.append(("inv" if atom[0] == "sym" else "sym",) + atom[1:])
    return NF(x.rows, x.cols, {tuple(out): 1 / c})


_DET_SYMBOLS: dict = {}


def _det_symbol(key: Any) -> sp.Expr:
    with _TRACE_LOCK:
        if key not in _DET_SYMBOLS:
            _DET_SYMBOLS[key] = sp.Dummy(f"det{len(_DET_SYMBOLS)}", real=True)
        return _DET_SYMBOLS[key]


def determinant(x: NF) -> sp.Expr:
    """``det(x)``: multiplicative over products of square atoms, ``det(c A) = c^n det(A)``,
    ``det(A^T) = det(A)``, ``det(A^{-1}) = 1/det(A)``; any other matrix is an atom."""
    n = x.rows
    x = clean(x)
    if not x.terms:
        return sp.S.Zero
    if len(x.terms) == 1:
        (w, c), = x.terms.items()
        if all(a[0] in ("sym", "inv") and a[2] == a[3] == n for a in w):
            out = c ** dim_symbol(n)
            for a in w:
                d = _det_symbol(("sym", a[1], n))
                out *= d if a[0] == "sym" else 1 / d
            return out
    return _det_symbol(("nf", _freeze(x)))


def diagonal(v: NF) -> NF:
    """``diag(v)`` for a row vector ``v`` (1 x n): the n x n matrix with v on its diagonal.

    Linear in ``v``: one diagonal atom per word of ``v`` (an entrywise function whose body
    is a sum counts as its addends), ``diag(1) = I``."""
    n = v.cols
    if n == 1:
        return v  # a 1x1 diagonal matrix is its entry
    unit = next(iter(ones(1, n).terms))
    out = NF(n, n)
    for w, c in clean(v).terms.items():
        for pw, pc in _addends(w, 1, n):
            if pw == unit:
                atom = identity(n)
            else:
                _DIAGONALS[0] = True
                atom = NF(n, n, {(("diag", _freeze(NF(1, n, {pw: sp.S.One})), n, n),): sp.S.One})
            out = add(out, scale(atom, c * pc))
    return out


def _addends(w: tuple, r: T.Dim, c: T.Dim) -> list:
    """A word as a sum of words: an entrywise function whose body is a sum, split."""
    if len(w) == 1 and w[0][0] == "fn":
        body = sp.expand(w[0][1])
        if body.is_Add:
            arg = _thaw(w[0][2])
            return [(pw, pc) for addend in body.args for pw, pc in elementwise(addend, arg).terms.items()]
    return [(w, sp.S.One)]


def _atomic_diagonals(x: NF) -> NF:
    """Every diagonal atom of a word holds one word (``diag(u + v) = diag(u) + diag(v)``)."""
    out, changed = NF(x.rows, x.cols), False
    for w, c in x.terms.items():
        i = next((i for i, a in enumerate(w) if a[0] == "diag" and not _is_atomic(a)), None)
        if i is None:
            out = add(out, NF(x.rows, x.cols, {w: c}))
            continue
        changed = True
        piece = diagonal(_thaw(w[i][1]))
        if w[:i]:
            piece = mul(NF(x.rows, w[i][2], {w[:i]: sp.S.One}), piece)
        if w[i + 1:]:
            piece = mul(piece, NF(w[i][3], x.cols, {w[i + 1:]: sp.S.One}))
        out = add(out, scale(piece, c))
    return out if changed else x


def _is_atomic(atom: tuple) -> bool:
    items = atom[1][2]
    if len(items) != 1:
        return False
    ((w, c),) = items
    return c == 1 and _addends(w, 1, atom[2]) == [(w, sp.S.One)]


def nf_term(x: NF) -> Term:
    """A normal form written back as a term (for a Jacobian of a gradient): symbols,
    transposes, inverses and ones, with coefficients in declared scalars only."""
    from .bridge import Reader

    reader = Reader()
    out = []
    for w, c in clean(x).terms.items():
        if any(isinstance(s, sp.Dummy) or s.is_integer for s in c.free_symbols):
            raise Unsupported("a second derivative through a scalar that depends on the variable "
                              "(a trace or a 1x1 product)")
        factors = [] if c == 1 else [reader(c)]
        for atom in w:
            kind = atom[0]
            if kind in ("sym", "inv"):
                m = T.Term("sym", value=atom[1], shape=(atom[2], atom[3]))
                m = T.inverse(m) if kind == "inv" else m
                factors.append(T.transpose(m) if atom[4] else m)
            elif kind == "ones":
                factors.append(T.ones(atom[1], atom[2]))
            else:
                raise Unsupported(f"a second derivative through a {kind} atom")
        if not w:
            factors.append(T.eye(x.rows))
        out.append(factors[0] if len(factors) == 1 else T.mul(*factors))
    if not out:
        return T.zeros(x.rows, x.cols)
    return out[0] if len(out) == 1 else T.add(*out)


def jacobian(tr: Translator, y: Term, x: Term) -> NF:
    """``J_ij = dy_i/dx_j``: the gradient of ``<U, y>`` for a fresh U is ``u J`` in row layout,
    and J is read off each of its words (U first); U inside an entrywise product is a
    diagonal: ``(U (.) d) M = U diag(d) M``."""
    if y.shape == (1, 1):  # one output: J is the gradient, as a row
        g = adjoint(tr, y, x)
        return g if g.rows == 1 else transpose(g)
    u = T.matrix("#u", *y.shape)
    g = adjoint(tr, T.total(T.hadamard(u, y)), x)
    if g.rows != 1:
        g = transpose(g)  # row layout: 1 x n
    u_atom = ("sym", "#u", y.shape[0], y.shape[1], y.shape[0] != 1)  # u as a row
    m = y.cols if y.rows == 1 else y.rows
    out = NF(m, g.cols)
    for w, c in clean(g).terms.items():
        if w and w[0] == u_atom:
            rest = w[1:]
        elif w and w[0][0] == "had" and Counter(dict(w[0][1]))[(u_atom,)] == 1:
            others = Counter(dict(w[0][1]))
            others[(u_atom,)] -= 1
            others = +others
            d = NF(1, m, {_had_word(others, 1, m): sp.S.One})
            rest = w[1:]
        else:
            raise Unsupported("a Jacobian whose form the kernel cannot read off")
        if any("#u" in repr(a) for a in rest):
            raise Unsupported("a Jacobian of a nonlinear use of y")
        piece = identity(m) if w[0] == u_atom else diagonal(d)
        if rest:
            piece = mul(piece, NF(m, g.cols, {rest: sp.S.One}))
        out = add(out, scale(piece, c))
    return out


class Undefined(Exception):
    """A partial operation applied where it is undefined everywhere (``1/0``)."""

    def __init__(self, term: Term, rel: str):
        super().__init__(f"{T.fmt_shape(term.shape)} value {rel} 0 fails")
        self.term, self.rel = term, rel


# ---------------------------------------------------------------------------
# Gradients: reverse mode from first principles


def _depends(t: Term, wrt: Term, definitions: dict, memo: dict) -> bool:
    order = T.walk(t)
    for node in order:
        if node in memo:
            continue
        if node == wrt:
            memo[node] = True
        elif node.op == "sym":
            d = definitions.get(node)
            if d is not None and d not in memo:
                memo[node] = _depends(d, wrt, definitions, memo)
            else:
                memo[node] = d is not None and memo.get(d, False)
        else:
            memo[node] = any(memo.get(k, False) for k in node.args)
    return memo[t]


def adjoint(tr: Translator, loss: Term, wrt: Term) -> NF:
    """``dL/dX`` as a normal form, by reverse-mode rules on the terms.

    Rules (``G`` the cotangent of a node, an NF of the node's shape): a sum gives
    G to every term; ``c A_1 ... A_k`` gives ``c (A_1..A_{i-1})^T G (A_{i+1}..A_k)^T``
    to ``A_i``; ``A^T`` gives ``G^T``; ``A (.) B`` gives ``G (.) B`` to ``A``;
    ``f(A)`` gives ``G (.) f'(A)``; ``tr(A)`` gives ``g I``; a defined symbol
    passes its accumulated cotangent to its definition (reverse topological
    order).  Any dependence these rules cannot follow (a scalar factor, an
    activation parameter or an exponent that depends on ``X``) is Unsupported:
    never dropped.
    """
    definitions = tr.calculus
    if wrt in definitions:
        raise Unsupported("gradient with respect to a defined symbol")
    if not wrt.is_matrix:
        raise Unsupported("gradient with respect to a scalar (use diff)")
    every = _all_gradients(tr, loss)
    if every is not None:  # one sweep for every variable, shared by the steps about this loss
        g, kink = every.get(wrt, (None, False))
        tr.kink_derivative = tr.kink_derivative or kink
        return g if g is not None else NF(*wrt.shape)
    memo: dict = {}
    reached = _sweep(tr, loss, lambda e: _depends(e, wrt, definitions, memo), lambda e: e == wrt)
    result = [g for g, _ in reached.get(wrt, [])]
    if not result:
        return NF(*wrt.shape)
    out = result[0]
    for x in result[1:]:
        out = add(out, x)
    return out


def _sweep(tr: Translator, loss: Term, depends, target) -> dict:
    """The reverse sweep from ``loss``: pushes cotangents into every node ``depends`` admits
    and collects, for each node ``target`` admits, its contributions as (NF, kink) pairs;
    ``kink`` says whether the path crossed the derivative of a function with kinks."""
    definitions = tr.calculus

    def derivative(e: Term):
        before = tr.kink_derivative
        tr.kink_derivative = False
        try:
            body = _derivative_of_call(tr, e, depends)
            local = tr.kink_derivative
        finally:
            tr.kink_derivative = before or tr.kink_derivative
        return body, local

    pending: dict = {}
    reached: dict = {}

    def push(e: Term, g: NF, kink: bool = False) -> None:
        if not depends(e):
            return
        if target(e):
            reached.setdefault(e, []).append((g, kink))
            return
        op, a = e.op, e.args
        if op == "sym":
            pending.setdefault(e, []).append((g, kink))
        elif op == "add":
            for x in a:
                push(x, g, kink)
        elif op == "sub":
            push(a[0], g, kink)
            push(a[1], scale(g, sp.S.NegativeOne), kink)
        elif op == "neg":
            push(a[0], scale(g, sp.S.NegativeOne), kink)
        elif op == "mul":
            roles = T.factor_roles(a)
            scalars = [x for x, m in zip(a, roles) if not m]
            mats = [x for x, m in zip(a, roles) if m]
            coeff = sp.Mul(*[tr.scalar(x) for x in scalars])
            if not mats:  # a product of scalars
                for i, x in enumerate(scalars):
                    if depends(x):
                        others = sp.Mul(*[tr.scalar(y) for j, y in enumerate(scalars) if j != i])
                        push(x, scale(g, others), kink)
                return
            nfs = [tr.nf(m) for m in mats]
            if any(depends(x) for x in scalars):
                # c M with c depending on X: c receives <G, M'> (M' the rest of the product)
                product = nfs[0]
                for f in nfs[1:]:
                    product = mul(product, f)
                pairing = trace(mul(transpose(g), product))
                for i, x in enumerate(scalars):
                    if depends(x):
                        others = sp.Mul(*[tr.scalar(y) for j, y in enumerate(scalars) if j != i])
                        push(x, NF(1, 1, {(): pairing * others}), kink)
            for i, m in enumerate(mats):
                if not depends(m):
                    continue
                left = g
                for f in nfs[:i]:  # (A_1 .. A_{i-1})^T G = A_{i-1}^T .. A_1^T G
                    left = mul(transpose(f), left)
                for f in reversed(nfs[i + 1:]):
                    left = mul(left, transpose(f))
                push(m, scale(left, coeff), kink)
        elif op == "div":
            b = tr.scalar(a[1])
            push(a[0], scale(g, 1 / b), kink)
            if depends(a[1]):  # d(u/b) = -u/b^2 db
                pairing = trace(mul(transpose(g), tr.nf(a[0])))
                push(a[1], NF(1, 1, {(): -pairing / b**2}), kink)
        elif op == "T":
            push(a[0], transpose(g), kink)
        elif op == "had":
            for i, x in enumerate(a):
                if depends(x):
                    other = g
                    for j, y in enumerate(a):
                        if j != i:
                            other = hadamard(other, tr.nf(y))
                    push(x, other, kink)
        elif op == "hadpow":
            k = int(a[1].value)
            if k == 0:
                return
            base = tr.nf(a[0])
            if k < 0:  # k A^(k-1), entry by entry
                tr._nonzero_entries(a[0])
                power = elementwise(_Z ** (k - 1), base)
            else:
                power = ones(*base.shape)
                for _ in range(k - 1):
                    power = hadamard(power, base)
            push(a[0], scale(hadamard(g, power), k), kink)
        elif op == "pow" and not e.is_matrix:
            if depends(a[1]):
                raise Unsupported("an exponent that depends on the variable")
            base, k = tr.scalar(a[0]), tr.scalar(a[1])
            push(a[0], scale(g, k * base ** (k - 1)), kink)
        elif op in ("prim", "apply") and not e.is_matrix:
            body, local = derivative(e)
            push(a[0], scale(g, body.xreplace({_Z: tr.scalar(a[0])})), kink or local)
        elif op == "norm":
            x = tr.nf(a[0])
            push(a[0], scale(x, as_scalar(g) / tr.scalar(e)), kink)
        elif op == "det":
            x = tr.nf(a[0])
            push(a[0], scale(transpose(inverse(x)), as_scalar(g) * determinant(x)), kink)
        elif op == "inv":
            inv_t = transpose(tr.nf(e))
            push(a[0], scale(mul(mul(inv_t, g), inv_t), sp.S.NegativeOne), kink)
        elif op == "pow" and e.is_matrix:
            k = int(a[1].value)
            if k:
                push(T.mul(*([a[0]] * k)) if k > 1 else a[0], g, kink)
        elif op in ("prim", "apply") and e.is_matrix:
            body, local = derivative(e)
            push(a[0], hadamard(g, elementwise(body, tr.nf(a[0]))), kink or local)
        elif op == "trace":
            push(a[0], scale(identity(a[0].rows), as_scalar(g)), kink)
        elif op == "sum":
            push(a[0], scale(ones(*a[0].shape), as_scalar(g)), kink)
        else:
            raise Unsupported(f"gradient through '{op}'")

    start = NF(1, 1, {(): sp.S.One})
    push(loss, start)
    for sym in _topological(definitions):
        if sym in pending:
            terms = pending.pop(sym)
            total = terms[0][0]
            for x, _ in terms[1:]:
                total = add(total, x)
            push(definitions[sym], total, any(k for _, k in terms))
    return reached


class _Gradients:
    """Every gradient of one loss from one sweep (see :func:`_all_gradients`)."""

    __slots__ = ("grads", "count", "free")

    def __init__(self, grads: dict | None, count: int, free: frozenset):
        self.grads, self.count, self.free = grads, count, free


def _all_gradients(tr: Translator, loss: Term) -> dict | None:
    """``{X: (dL/dX, kink)}`` for every free matrix symbol X of ``loss``, from one sweep in a
    translator of its own, remembered in ``tr.sweeps`` (shared by the translators of one
    context); None where that is not exactly what the per-variable sweep would give: a
    translator that unfolds definitions or rewrites symbols the loss reaches, a sweep that
    met a side condition (the per-variable sweep records only those on its own paths) or a
    dependence the rules cannot follow for some variable."""
    sweeps = tr.sweeps
    if sweeps is None or tr.definitions is not None or tr.distribute:
        return None
    definitions = tr.calculus
    hit = sweeps.get(loss)
    if hit is not None:
        new = list(definitions)[hit.count:] if len(definitions) > hit.count else []
        if any(s in hit.free for s in new):
            hit = None
    if hit is None:
        free = frozenset(closure_symbols(loss, definitions))
        if any(s in free for s in tr.rewrites):
            return None
        # remembered as "no sweep" first: a sweep cut off by the step's time limit is not
        # tried again by every later step
        hit = sweeps[loss] = _Gradients(None, len(definitions), free)
        own = Translator(calculus=definitions)
        memo: dict = {}
        try:
            reached = _sweep(own, loss, lambda e: _mentions_free(e, definitions, memo),
                             lambda e: e.op == "sym" and e not in definitions)
        except (Unsupported, BudgetError, RecursionError, Undefined, ShapeError):
            reached = None  # the per-variable sweep decides (and reports) what it meets
        if reached is not None and not own.conditions:
            grads = {}
            for x, parts in reached.items():
                total = parts[0][0]
                for g, _ in parts[1:]:
                    total = add(total, g)
                grads[x] = (total, any(k for _, k in parts))
            hit = sweeps[loss] = _Gradients(grads, len(definitions), free)
    if tr.rewrites and any(s in hit.free for s in tr.rewrites):
        return None
    return hit.grads


def closure_symbols(t: Term, definitions: dict) -> set:
    """The symbols ``t`` reaches through definitions (the defined ones included)."""
    seen, stack = set(), [t]
    while stack:
        for x in T.symbols(stack.pop()):
            if x not in seen:
                seen.add(x)
                if x in definitions:
                    stack.append(definitions[x])
    return seen


def _mentions_free(t: Term, definitions: dict, memo: dict) -> bool:
    """Does ``t`` reach a free symbol (through definitions)? Constants receive nothing."""
    for node in T.walk(t):
        if node in memo:
            continue
        if node.op == "sym":
            d = definitions.get(node)
            memo[node] = True if d is None else _mentions_free(d, definitions, memo)
        else:
            memo[node] = any(memo.get(k, False) for k in node.args)
    return memo[t]


def _derivative_of_call(tr: Translator, e: Term, depends) -> sp.Expr:
    """``f'`` (a formula in ``_Z``) of a call ``f(u; params)`` for the gradient rules; records
    the domain ``log``/``sqrt`` need and whether ``f`` has kinks (its derivative there is a
    convention); refuses a parameter that depends on the variable."""
    a = e.args
    if any(depends(p) for p in a[1:]):
        raise Unsupported(f"a parameter of {_fname(e)} that depends on the variable")
    if e.op == "prim":
        if e.value in ("max", "min", "heaviside"):
            raise Unsupported(f"gradient through {e.value}")
        body = _PRIM[e.value](_Z)
        if e.value in ("log", "sqrt"):  # the derivative needs the argument inside the domain
            if e.is_matrix:
                tr._entrywise_condition(e)
            else:
                tr._condition(a[0], ">")
    elif e.value.opaque:
        body = opaque_function(e.value.name, e.value.order)(_Z)
    else:
        body = tr.formula(e.value, [tr.scalar(p) for p in a[1:]])
    if body.has(sp.Piecewise, sp.Max, sp.Min, sp.Abs, sp.Heaviside, sp.sign):
        tr.kink_derivative = True
    return derivative_body(body)


def _fname(t: Term) -> str:
    return t.value if t.op == "prim" else t.value.name


def _topological(definitions: dict) -> list:
    """Defined symbols ordered so that every symbol precedes the symbols it uses."""
    order, state = [], {}
    for root in sorted(definitions, key=lambda s: s.value):
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
            for dep in sorted(T.symbols(definitions[sym]), key=lambda s: s.value):
                if dep in definitions and not state.get(dep):
                    stack.append((dep, False))
    return order[::-1]

