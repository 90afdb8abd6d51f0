"""Collapse with explicit entries: ``W'`` and ``b'`` written out entry by entry.

Every weight is a scalar symbol (``w1_0_1`` is row 0, column 1 of ``W1``), so
each entry of ``W'`` is a polynomial.  SymPy's ``Matrix`` products followed by
``expand`` build and re-sort large expression trees; here the collapse follows
the layer recursion

    W'_k = a_k W'_{k-1} W_k,     b'_k = a_k (b'_{k-1} W_k + b_k) + c_k 1,

on polynomials in numbered variables, in one of two rings with the same
operations (:class:`_FlintRing`, python-flint's multivariate polynomials over Q
written in C, when python-flint is installed, the optional extra
``symnet[flint]``; else :class:`_DictRing`, plain dicts ``monomial ->
coefficient`` with a monomial a sorted tuple of variable numbers).  The result
is checked exactly against an independent recomputation (the product associated
from the right) and numerically against NumPy at a random point; the entries
become dicts, and SymPy expressions, only when asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import sympy as sp

from symnet.errors import SpecError
from symnet.networks.composer import Network

try:  # the optional extra symnet[flint]
    import flint
except ImportError:  # pragma: no cover - exercised where python-flint is missing
    flint = None

#: Largest number of polynomial terms an entrywise collapse may produce.
MAX_TERMS = 200_000

#: The polynomial rings :func:`collapse_entries` can compute in ("flint" needs python-flint).
BACKENDS = ("flint", "python")

Poly = dict  # monomial (sorted tuple of variable numbers) -> coefficient


def _scale_var(p: Poly, v: int) -> Poly:
    return {tuple(sorted(m + (v,))): c for m, c in p.items()}


def _add_into(acc: Poly, p: Poly) -> None:
    for m, c in p.items():
        v = acc.get(m, 0) + c
        if v:
            acc[m] = v
        else:
            acc.pop(m, None)


def _mul(p: Poly, q: Poly) -> Poly:
    out: Poly = {}
    for m1, c1 in p.items():
        for m2, c2 in q.items():
            m = tuple(sorted(m1 + m2))
            v = out.get(m, 0) + c1 * c2
            if v:
                out[m] = v
            else:
                out.pop(m, None)
    return out


class _DictRing:
    """Polynomials as dicts ``monomial -> coefficient`` (pure Python)."""

    name = "python"
    zero: Poly = {}
    one: Poly = {(): 1}

    def var(self, v: int) -> Poly:
        return {(v,): 1}

    def const(self, c: Any) -> Poly:
        q = sp.Rational(c)
        return {(): int(q) if q.q == 1 else q} if q else {}

    def dot(self, ps: list, qs: list) -> Poly:
        """``sum_k p_k q_k``; a ``q_k`` that is one variable scales ``p_k`` by it."""
        acc: Poly = {}
        for p, q in zip(ps, qs):
            if not p:
                continue
            if len(q) == 1:
                (m, c), = q.items()
                if c == 1 and len(m) == 1:
                    _add_into(acc, _scale_var(p, m[0]))
                    continue
            _add_into(acc, _mul(p, q))
        return acc

    def add(self, p: Poly, q: Poly) -> Poly:
        out = dict(p)
        _add_into(out, q)
        return out

    def mul(self, p: Poly, q: Poly) -> Poly:
        return _mul(p, q)

    def to_dict(self, p: Poly) -> Poly:
        return p

    def point(self, values: list[float]) -> list[float]:
        return values

    def evaluate(self, p: Poly, point: list[float]) -> float:
        return float(sum(float(c) * math.prod([point[v] for v in m]) for m, c in p.items()))


class _FlintRing:
    """Polynomials over Q in C: python-flint's ``fmpq_mpoly`` in ``nvars`` variables."""

    name = "flint"

    def __init__(self, nvars: int):
        self.ctx = flint.fmpq_mpoly_ctx.get(("v", max(nvars, 1)), "lex")
        self.gens = self.ctx.gens()
        self.nvars = len(self.gens)
        self.zero = self.ctx.from_dict({})
        self.one = self.const(1)

    def var(self, v: int) -> Any:
        return self.gens[v]

    def const(self, c: Any) -> Any:
        q = sp.Rational(c)
        return self.ctx.from_dict({(0,) * self.nvars: flint.fmpq(int(q.p), int(q.q))} if q else {})

    def dot(self, ps: list, qs: list) -> Any:
        acc = None
        for p, q in zip(ps, qs):
            if p:
                term = p * q
                if acc is None:
                    acc = term  # a fresh polynomial: adding into it in place is safe
                else:
                    acc.iadd(term)
        return self.zero if acc is None else acc

    def add(self, p: Any, q: Any) -> Any:
        return p + q

    def mul(self, p: Any, q: Any) -> Any:
        return p * q

    def to_dict(self, p: Any) -> Poly:
        out: Poly = {}
        for exponents, c in p.to_dict().items():
            m = tuple(v for v, e in enumerate(exponents) for _ in range(e))
            n, d = int(c.p), int(c.q)
            out[m] = n if d == 1 else sp.Rational(n, d)
        return out

    def point(self, values: list[float]) -> list:
        exact = [flint.fmpq(*float(v).as_integer_ratio()) for v in values]
        return exact + [flint.fmpq(0)] * (self.nvars - len(values))

    def evaluate(self, p: Any, point: list) -> float:
        return float(p(*point))  # exact at the point, rounded once


_FLINT_RINGS: dict[int, _FlintRing] = {}  # one per number of variables (contexts are kept anyway)


def _ring(backend: str | None, nvars: int) -> Any:
    if backend is None:
        backend = "flint" if flint is not None else "python"
    if backend not in BACKENDS:
        raise SpecError(f"unknown entrywise backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "flint":
        if flint is None:
            raise SpecError("the flint backend needs python-flint (pip install 'symnet[flint]')")
        if nvars not in _FLINT_RINGS:
            _FLINT_RINGS[nvars] = _FlintRing(nvars)
        return _FLINT_RINGS[nvars]
    return _DictRing()


@dataclass
class EntrywiseCollapse:
    """``W'`` and ``b'`` of an affine network with every weight a symbol.

    ``W`` and ``b`` hold each entry as a dict ``monomial -> coefficient`` (a monomial a
    sorted tuple of indices into ``symbols``), converted from the ring's own polynomials
    (``native``) on first use.
    """

    network: Network
    symbols: list[sp.Symbol]
    exact_check: bool
    numeric_max_abs_error: float
    native: tuple = field(repr=False)  # (W', b') in the ring's polynomials
    ring: Any = field(repr=False)

    @cached_property
    def W(self) -> list[list[Poly]]:
        return [[self.ring.to_dict(p) for p in row] for row in self.native[0]]

    @cached_property
    def b(self) -> list[Poly]:
        return [self.ring.to_dict(p) for p in self.native[1]]

    def entry(self, p: Poly) -> sp.Expr:
        """One entry as a SymPy expression (built on demand)."""
        terms = []
        for m, c in p.items():
            terms.append(sp.Mul(sp.Integer(c) if isinstance(c, int) else c, *[self.symbols[v] for v in m]))
        return sp.Add(*terms)

    def W_matrix(self) -> sp.Matrix:
        return sp.Matrix([[self.entry(p) for p in row] for row in self.W])

    def b_matrix(self) -> sp.Matrix:
        return sp.Matrix([[self.entry(p) for p in self.b]])

    def to_dict(self) -> dict:
        return {
            "W": [[str(self.entry(p)) for p in row] for row in self.W],
            "b": [[str(self.entry(p)) for p in self.b]],
            "exact_check": self.exact_check,
            "numeric_max_abs_error": self.numeric_max_abs_error,
        }

    def latex(self) -> str:
        """``W'`` and ``b'`` as bmatrix environments (one ``align*``)."""
        names = {}
        for sym in self.symbols:
            parts = sym.name.split("_")
            if len(parts) == 3:  # w{l}_{i}_{j}
                names[sym] = f"{parts[0][0]}^{{({parts[0][1:]})}}_{{{parts[1]}{parts[2]}}}"
            elif len(parts) == 2:  # b{l}_{j}
                names[sym] = f"{parts[0][0]}^{{({parts[0][1:]})}}_{{{parts[1]}}}"
        W = sp.latex(self.W_matrix(), mat_delim="", mat_str="bmatrix", symbol_names=names)
        b = sp.latex(self.b_matrix(), mat_delim="", mat_str="bmatrix", symbol_names=names)
        return "\\begin{align*}\n\\mathbf{W}' &= " + W + " \\\\\n\\mathbf{b}' &= " + b + "\n\\end{align*}"

    def text(self) -> str:
        lines = []
        for i, row in enumerate(self.W):
            for j, p in enumerate(row):
                lines.append(f"W'[{i + 1},{j + 1}] = {_poly_text(p, self.symbols)}")
        for j, p in enumerate(self.b):
            lines.append(f"b'[1,{j + 1}] = {_poly_text(p, self.symbols)}")
        check = "exact recomputation agrees" if self.exact_check else "EXACT RECOMPUTATION DISAGREES"
        lines.append(f"({check}; numeric max abs error {self.numeric_max_abs_error:.3g})")
        return "\n".join(lines)


def _poly_text(p: Poly, symbols: list) -> str:
    parts = []
    for m, c in sorted(p.items(), key=lambda mc: (len(mc[0]), mc[0])):
        names = " ".join(symbols[v].name for v in m)
        coeff = "" if c == 1 and names else ("-" if c == -1 and names else str(c) + (" " if names else ""))
        parts.append(coeff + names)
    return " + ".join(parts).replace("+ -", "- ") or "0"


def _affine_coefficients(net: Network) -> list[tuple[Any, Any]]:
    out = []
    for layer in net.layers:
        coeffs = layer.activation.affine_coefficients
        if coeffs is None:
            raise SpecError(f"layer {layer.index} ({layer.activation.spec}) is not affine: no entrywise collapse")
        out.append(coeffs)
    return out


@lru_cache(maxsize=4096)
def _symbol(name: str) -> sp.Symbol:
    """The weight symbol ``name`` (SymPy's constructor is slow next to the polynomial work)."""
    return sp.Symbol(name)


def collapse_entries(net: Network, seed: int = 0, backend: str | None = None) -> EntrywiseCollapse:
    """``W'``, ``b'`` entry by entry for an affine network with integer widths.

    ``backend``: ``"flint"`` (python-flint's polynomials; the default when installed) or
    ``"python"`` (plain dicts); both give the same polynomials and the same checks.
    """
    if net.has_symbolic_widths:
        raise SpecError("entrywise collapse needs integer widths")
    coeffs = _affine_coefficients(net)
    widths = [int(w) for w in net.widths]
    # every entry of W' has prod(inner widths) terms (times 2 per symbolic a_l)
    terms = widths[0] * widths[-1] * math.prod(widths[1:-1]) * 2 ** len(net.scalar_parameters)
    if terms > MAX_TERMS:
        raise SpecError(
            f"writing W' out entry by entry takes about {terms:,} terms, over the budget of "
            f"{MAX_TERMS:,}; use smaller widths or drop --entries"
        )
    symbols: list[sp.Symbol] = []
    index: dict[sp.Symbol, int] = {}

    def var(sym: sp.Symbol) -> int:
        if sym not in index:
            index[sym] = len(symbols)
            symbols.append(sym)
        return index[sym]

    for a, c in coeffs:  # the scalar symbols first
        for value in (a, c):
            if value.is_Symbol:
                var(value)
            elif not value.is_Rational:
                raise SpecError(f"activation parameter {value} must be a number or a symbol")
    Wvars, bvars = [], []
    for l, (n_in, n_out) in enumerate(zip(widths, widths[1:]), start=1):
        Wvars.append([[var(_symbol(f"w{l}_{i + 1}_{j + 1}")) for j in range(n_out)] for i in range(n_in)])
        bvars.append([var(_symbol(f"b{l}_{j + 1}")) for j in range(n_out)])

    ring = _ring(backend, len(symbols))

    def element(value: sp.Expr) -> Any:
        return ring.var(index[value]) if value.is_Symbol else ring.const(value)

    layers = [(element(a), element(c), Wvars[l], bvars[l]) for l, (a, c) in enumerate(coeffs)]
    Wp = _forward(ring, widths, layers)
    exact = _exact_recheck(ring, widths, layers, Wp)
    numeric = _numeric_check(ring, widths, coeffs, Wvars, bvars, symbols, Wp, seed)
    return EntrywiseCollapse(net, symbols, exact, numeric, Wp, ring)


def _forward(ring: Any, widths: list[int], layers: list) -> tuple[list, list]:
    """``W'_k = a_k W'_{k-1} W_k``, ``b'_k = a_k (b'_{k-1} W_k + b_k) + c_k 1``, layer by layer."""
    W = b = None  # the identity and zero before the first layer
    for (a, c, Wv, bv), n_out in zip(layers, widths[1:]):
        if W is None:
            W = [[ring.var(v) for v in row] for row in Wv]
            b = [ring.var(v) for v in bv]
        else:
            columns = [[ring.var(row[j]) for row in Wv] for j in range(n_out)]
            W = [[ring.dot(row, column) for column in columns] for row in W]
            b = [ring.add(ring.dot(b, column), ring.var(v)) for column, v in zip(columns, bv)]
        if a != ring.one:
            W = [[ring.mul(p, a) for p in row] for row in W]
            b = [ring.mul(p, a) for p in b]
        if c != ring.zero:
            b = [ring.add(p, c) for p in b]
    return W, b


def _exact_recheck(ring: Any, widths: list[int], layers: list, result: tuple) -> bool:
    """Recompute with the product associated from the right and compare exactly."""
    nL = widths[-1]
    # suffix products S = a_k W_k a_{k+1} W_{k+1} ... a_L W_L, built from the right (None: I)
    S = None
    b_total = [ring.zero] * nL
    for a, c, Wv, bv in reversed(layers):
        # b_l and c_l 1 carried through the suffix after layer l
        for j in range(nL):
            column = None if S is None else [S[k][j] for k in range(len(bv))]
            through = ring.var(bv[j]) if S is None else ring.dot(column, [ring.var(v) for v in bv])
            term = through if a == ring.one else ring.mul(through, a)
            if c != ring.zero:
                ones = ring.one if S is None else ring.dot(column, [ring.one] * len(bv))
                term = ring.add(term, ring.mul(c, ones))
            b_total[j] = ring.add(b_total[j], term)
        # S <- a_l W_l S
        if S is None:
            S = [[ring.var(v) for v in row] for row in Wv]
        else:
            S = [[ring.dot([S[k][j] for k in range(len(row))], [ring.var(v) for v in row]) for j in range(nL)]
                 for row in Wv]
        if a != ring.one:
            S = [[ring.mul(p, a) for p in row] for row in S]
    W, b = result
    return all(S[i][j] == W[i][j] for i in range(len(W)) for j in range(nL)) and all(
        b_total[j] == b[j] for j in range(nL)
    )


def _numeric_check(ring, widths, coeffs, Wvars, bvars, symbols, result, seed) -> float:
    """Max abs difference between the entries evaluated at a random point and NumPy's
    products at that point (values multiples of 1/64, none zero, so a misplaced
    variable shows)."""
    rng = np.random.default_rng(seed)
    sixty_fourths = np.round(64 * rng.standard_normal(len(symbols)) / np.sqrt(max(widths)))
    sixty_fourths[sixty_fourths == 0] = 1
    values = sixty_fourths / 64
    point = ring.point(values.tolist())
    position = {sym: i for i, sym in enumerate(symbols)}

    def number(v: sp.Expr) -> float:
        return float(v) if v.is_number else float(values[position[v]])

    h_W = h_b = None  # the identity and zero before the first layer
    for (a, c), Wl, bl in zip(coeffs, Wvars, bvars):
        Wl, bl = values[np.array(Wl)], values[np.array(bl)][None, :]
        h_W = Wl if h_W is None else h_W @ Wl
        h_b = bl if h_b is None else h_b @ Wl + bl
        h_W, h_b = number(a) * h_W, number(a) * h_b + number(c)
    W, b = result
    got_W = np.array([[ring.evaluate(p, point) for p in row] for row in W])
    got_b = np.array([[ring.evaluate(p, point) for p in b]])
    return float(max(np.max(np.abs(got_W - h_W)), np.max(np.abs(got_b - h_b))))
