"""Collapse with explicit entries: ``W'`` and ``b'`` written out entry by entry.

Every weight is a scalar symbol (``w1_1_2`` is row 1, column 2 of ``W1``), so
each entry of ``W'`` is a polynomial.  SymPy's ``Matrix`` products followed by
``expand`` build and re-sort large expression trees; here the entries come from
one pass of the network itself, on polynomials, at the input of ones:

    g_0 = 1^T,     g_l = a_l (g_{l-1} W_l + b_l) + c_l 1^T.

Column j of ``g_L`` is ``sum_i W'_ij + b'_j``, and nothing is lost in the sum:
every term of ``W'_ij`` holds exactly one entry of row i of ``W_1`` and no term of
``b'_j`` holds any, so each entry is read back from the terms by that variable.
One pass of vector-matrix products instead of matrix-matrix ones; in python-flint's
ring, by the block encoding below, one polynomial product per layer
(:func:`_encoded_forward`).

The polynomials live in one of two rings with the same operations
(:class:`_FlintRing`, python-flint's multivariate polynomials written in C, when
python-flint is installed, the optional extra ``symnet[flint]``; else
:class:`_DictRing`, plain dicts ``monomial -> coefficient`` with a monomial a
sorted tuple of variable numbers).  Three checks, none computing the way the pass
does:

* **exact recheck** (every entry): the output columns are tagged by powers of a
  fresh variable (column j's entries of the last layer carry ``y^j``).  After the
  encoded pass, the dot-product pass (each weight's own element, no factorisation)
  must give the same columns exactly; after the dot-product pass, the map associated
  from the right, ``rho_{L+1} = (y, y^2, ...)``, ``rho_l = a_l W_l rho_{l+1}``, must
  equal ``sum_j g_L[j]`` exactly (the tags pin every term to its column).  Reading a
  column out checks its tag;
* **exact point check**: one column evaluated exactly at a random integer point
  against the network's forward pass in Python integers (no polynomial code);
* **numeric check** (every entry, when the entries are read out): the decoded
  entries at a random point against NumPy's products.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property, lru_cache
from itertools import chain
from operator import getitem, mul
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
    """Polynomials as dicts ``monomial -> coefficient`` (pure Python); the column tag
    ``y`` is variable number ``tag`` (one past the network's symbols)."""

    name = "python"
    zero: Poly = {}
    one: Poly = {(): 1}

    def __init__(self, nvars: int):
        self.nvars = nvars
        self.layers: dict = {}  # see _layer

    def var(self, v: int) -> Poly:
        return {(v,): 1}

    def tag(self, j: int) -> Poly:
        return {(self.nvars,) * (j + 1): 1}

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

    def sum(self, ps: list) -> Poly:
        """A fresh polynomial: the sum of ``ps``."""
        acc: Poly = {}
        for p in ps:
            _add_into(acc, p)
        return acc

    def to_dict(self, p: Poly) -> Poly:
        return p

    def integer_point(self, rng: random.Random) -> tuple[list[int], list[int]]:
        """Random integers below 2^16, one per variable: (the argument of
        :meth:`evaluate_exact`, with the tag at 1; the value of each variable)."""
        values = [rng.randrange(2, 2 ** 16) for _ in range(self.nvars)]
        return values + [1], values

    def evaluate_exact(self, p: Poly, values: list[int]) -> int | Fraction:
        return sum(c * math.prod(values[v] for v in m) for m, c in p.items())


class _FlintRing:
    """Polynomials in C: python-flint's ``fmpz_mpoly`` (``fmpq_mpoly`` when a coefficient
    is a fraction), with one generator per *block* of variables.

    A block is a weight matrix ``W_l`` or a bias ``b_l``; its k-th variable is the
    generator's power ``x^k``.  Writing a monomial with one generator per variable costs
    a machine word per eight variables, hundreds of words per term of a deep network;
    here it costs one byte per block.  This is exact because the map ``v -> x_block^k``
    is a ring homomorphism and, on polynomials whose terms hold at most one variable of
    each block, one to one: a term of ``g_l`` is a path through the layers and takes at
    most one entry from each block, and each step multiplies by a block not yet on the
    path.  :meth:`to_dict` reads a term back and refuses an exponent past its block.
    Scalar symbols (``a_l``, ``c_l``) are blocks of one variable, ordinary generators,
    and so is the column tag ``y`` (the last generator).
    """

    name = "flint"

    def __init__(self, blocks: tuple[tuple[int, ...], ...], rational: bool):
        kind = flint.fmpq_mpoly_ctx if rational else flint.fmpz_mpoly_ctx
        # the first generator is the most significant in lex order: the last blocks (the
        # deepest layers) first, so a new layer's terms sort ahead of the old ones
        self.ctx = kind.get(("x", len(blocks) + 1), "lex")
        gens = self.ctx.gens()
        self.blocks = blocks
        self.rational = rational
        self.ngens = len(gens)
        self._consts: dict[Any, Any] = {}
        self.layers: dict = {}  # see _layer
        self.zero = self.ctx.from_dict({})
        self.one = self.const(1)
        self.gen_of = list(range(len(blocks) - 1, -1, -1))  # block number -> generator
        self.vars: dict[int, Any] = {}
        self.place: dict[int, tuple[int, int]] = {}  # variable -> (generator, power)
        for g, block in zip(self.gen_of, blocks):
            for k, v in enumerate(block, start=1):
                self.vars[v] = gens[g] ** k
                self.place[v] = (g, k)
        self.tags = gens[-1]

    def var(self, v: int) -> Any:
        return self.vars[v]

    def tag(self, j: int) -> Any:
        return self.tags ** (j + 1)

    def const(self, c: Any) -> Any:
        if c not in self._consts:
            q = sp.Rational(c)
            value = flint.fmpq(int(q.p), int(q.q)) if self.rational else flint.fmpz(int(q))
            self._consts[c] = self.ctx.from_dict({(0,) * self.ngens: value} if q else {})
        return self._consts[c]  # shared: nothing adds into a constant in place

    def dot(self, ps: list, qs: list) -> Any:
        terms = map(mul, ps, qs)
        acc = next(terms, None)  # a fresh polynomial: adding into it in place is safe
        if acc is None:
            return self.zero
        for term in terms:
            acc.iadd(term)
        return acc

    def add(self, p: Any, q: Any) -> Any:
        return p + q

    def mul(self, p: Any, q: Any) -> Any:
        return p * q

    def sum(self, ps: list) -> Any:
        """A fresh polynomial: the sum of ``ps``, added in pairs (a sum of n polynomials of
        about equal size copies each term about log2(n) times, not n/2)."""
        ps = list(ps)
        if len(ps) < 2:
            return self.ctx.from_dict({}) + (ps[0] if ps else self.zero)
        while len(ps) > 1:
            ps = [ps[k] + ps[k + 1] if k + 1 < len(ps) else ps[k] for k in range(0, len(ps), 2)]
        return ps[0]

    @cached_property
    def _decode(self) -> list[list[tuple[int, ...]]]:
        """Per generator, per exponent: the variables that power stands for (a block of
        one variable is an ordinary generator: the exponent is its power)."""
        out: list[list[tuple[int, ...]]] = [[()]] * self.ngens
        for g, block in zip(self.gen_of, self.blocks):
            if len(block) == 1:
                # a scalar's power is at most the number of layers, fewer than the blocks
                out[g] = [block * e for e in range(len(self.blocks) + 1)]
            else:
                out[g] = [()] + [(v,) for v in block]
        # the column tag y: variable number len(place), one past the network's symbols
        out[-1] = [(len(self.place),) * e for e in range(max(map(len, self.blocks), default=0) + 1)]
        return out

    def to_dict(self, p: Any) -> Poly:
        decode = self._decode
        out: Poly = {}
        try:
            for exponents, c in zip(p.monoms(), p.coeffs()):
                m = tuple(sorted(chain.from_iterable(map(getitem, decode, exponents))))
                if self.rational:
                    n, d = int(c.p), int(c.q)
                    out[m] = n if d == 1 else sp.Rational(n, d)
                else:
                    out[m] = int(c)
        except IndexError:  # an exponent past its block: two of its variables met
            raise AssertionError("a term holds two variables of one block: the block encoding does not apply") from None
        return out

    def integer_point(self, rng: random.Random) -> tuple[list, list[int]]:
        """A random integer per generator (below 16: its powers are the block's values,
        distinct already), and what that makes each variable: a block's k-th variable is
        its generator's value to the k."""
        at = [rng.randrange(2, 16) for _ in range(self.ngens - 1)] + [1]  # the column tag at 1
        values = [0] * len(self.place)
        for g, block in zip(self.gen_of, self.blocks):
            power = 1
            for v in block:
                power *= at[g]
                values[v] = power
        number = flint.fmpq if self.rational else flint.fmpz
        return [number(x) for x in at], values

    def evaluate_exact(self, p: Any, at: list) -> int | Fraction:
        value = p(*at)
        return Fraction(int(value.p), int(value.q)) if self.rational else int(value)


_FLINT_RINGS: dict[tuple, _FlintRing] = {}  # see _ring (flint keeps its contexts anyway)


def _ring(backend: str | None, blocks: tuple[tuple[int, ...], ...], rational: bool, scalars: int) -> Any:
    """The ring for this layout.  Flint rings are kept per (layout, rational, number of
    scalar blocks): a scalar, a 1x1 weight and a width-1 bias are all blocks of one
    variable, so the blocks alone do not tell two networks apart, and a ring keeps
    per-layer elements (:func:`_layer`)."""
    if backend is None:
        backend = "flint" if flint is not None else "python"
    if backend not in BACKENDS:
        raise SpecError(f"unknown entrywise backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "flint":
        if flint is None:
            raise SpecError("the flint backend needs python-flint (pip install 'symnet[flint]')")
        key = (blocks, rational, scalars)
        if key not in _FLINT_RINGS:
            if len(_FLINT_RINGS) >= 64:
                _FLINT_RINGS.clear()
            _FLINT_RINGS[key] = _FlintRing(blocks, rational)
        return _FLINT_RINGS[key]
    return _DictRing(sum(len(b) for b in blocks))


@dataclass
class EntrywiseCollapse:
    """``W'`` and ``b'`` of an affine network with every weight a symbol.

    ``W`` and ``b`` hold each entry as a dict ``monomial -> coefficient`` (a monomial a
    sorted tuple of indices into ``symbols``), read on first use from the ring's own
    polynomials (``native``: the columns of ``g_L``); reading them out also runs the
    numeric check of every entry (:attr:`numeric_max_abs_error`).
    """

    network: Network
    symbols: list[sp.Symbol]
    exact_check: bool  # a second pass, computed another way, agrees exactly (every entry)
    point_check: bool  # one column agrees exactly at a random integer point with integer arithmetic
    native: list = field(repr=False)  # g_L's columns in the ring's polynomials
    ring: Any = field(repr=False)
    layout: Any = field(repr=False)  # (coeffs, Wvars, seed): what reading out and the numeric check need

    @cached_property
    def _entries(self) -> tuple[list[list[Poly]], list[Poly]]:
        _, Wvars, _ = self.layout
        row_of = {v: i for i, row in enumerate(Wvars[0]) for v in row}
        tag = len(self.symbols)  # the column tag's variable number
        W: list[list[Poly]] = [[{} for _ in self.native] for _ in Wvars[0]]
        b: list[Poly] = [{} for _ in self.native]
        for j, column in enumerate(self.native):
            terms = self.ring.to_dict(column)
            if len(terms) != len(column):  # a term lost, or two read as one monomial
                raise AssertionError(f"column {j + 1} has {len(column)} terms but reads out as {len(terms)}")
            for m, c in terms.items():
                if not isinstance(c, (int, sp.Rational)):
                    raise AssertionError(f"a coefficient of column {j + 1} reads out as {type(c).__name__}")
                if m.count(tag) != j + 1:
                    raise AssertionError(f"a term of column {j + 1} carries the tag of column {m.count(tag)}")
                m = m[:-(j + 1)]  # the tag sorts last
                # the one entry of W_1 in a term of W'_ij is in row i; a term of b'_j has none
                rows = [row_of[v] for v in m if v in row_of]
                if len(rows) > 1:
                    raise AssertionError(f"a term of column {j + 1} holds {len(rows)} entries of W_1")
                (W[rows[0]][j] if rows else b[j])[m] = c
        return W, b

    @property
    def W(self) -> list[list[Poly]]:
        return self._entries[0]

    @property
    def b(self) -> list[Poly]:
        return self._entries[1]

    @cached_property
    def _numeric(self) -> tuple[float, float]:
        coeffs, _, seed = self.layout
        return _numeric_check(self.network, self.W, self.b, coeffs, self.symbols, seed)

    @property
    def numeric_max_abs_error(self) -> float:
        """Every entry, as read out, at a random point against NumPy's products there."""
        return self._numeric[0]

    @property
    def numeric_max_rel_error(self) -> float:
        """The same, each entry's difference over 1 + the sum of its terms' sizes there
        (the rounding a float64 evaluation of it can make)."""
        return self._numeric[1]

    @property
    def ok(self) -> bool:
        """All three checks pass (the numeric one reads every entry out)."""
        return self.exact_check and self.point_check and self.numeric_max_rel_error < 1e-10

    def entry(self, p: Poly) -> sp.Expr:
        """One entry as a SymPy expression (built on demand)."""
        terms = []
        for m, c in p.items():
            terms.append(sp.Mul(sp.Integer(c) if isinstance(c, int) else c, *[self.symbols[v] for v in m]))
        return sp.Add(*terms)

    def _expr(self, p: Poly) -> sp.Expr:
        """:meth:`entry`, with every term of ``p`` one term of it (distinct monomials do
        not merge, so a lost or merged term is a fault, refused)."""
        expr = self.entry(p)
        if (0 if expr == 0 else len(sp.Add.make_args(expr))) != len(p):
            raise AssertionError(f"an entry of {len(p)} terms came out as {expr}")
        return expr

    def W_matrix(self) -> sp.Matrix:
        return sp.Matrix([[self._expr(p) for p in row] for row in self.W])

    def b_matrix(self) -> sp.Matrix:
        return sp.Matrix([[self._expr(p) for p in self.b]])

    def to_dict(self) -> dict:
        return {
            "W": [[str(self._expr(p)) for p in row] for row in self.W],
            "b": [[str(self._expr(p)) for p in self.b]],
            "exact_check": self.exact_check,
            "point_check": self.point_check,
            "numeric_max_abs_error": self.numeric_max_abs_error,
            "numeric_max_rel_error": self.numeric_max_rel_error,
        }

    def latex(self) -> str:
        """``W'`` and ``b'`` as bmatrix environments (one ``align*``)."""
        names = {}
        for sym in self.symbols:
            if not re.fullmatch(r"[wb][0-9]+(_[0-9]+){1,2}", sym.name):
                continue  # an activation's own parameter keeps SymPy's name
            parts = sym.name.split("_")
            if len(parts) == 3:  # w{l}_{i}_{j}
                names[sym] = f"{parts[0][0]}^{{({parts[0][1:]})}}_{{{parts[1]}{parts[2]}}}"
            else:  # b{l}_{j}
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
        lines.append(f"({_check_line(self)})")
        return "\n".join(lines)


def _check_line(result: EntrywiseCollapse) -> str:
    exact = "exact recomputation agrees" if result.exact_check else "EXACT RECOMPUTATION DISAGREES"
    point = "exact at a random integer point" if result.point_check else "WRONG AT A RANDOM INTEGER POINT"
    return (f"{exact}; {point}; numeric check of every entry: max abs error "
            f"{result.numeric_max_abs_error:.3g}")


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


def _has_fractions(coeffs: list) -> bool:
    """Whether an activation's slope or offset is a fraction (then the rings are over Q)."""
    return any(v.is_Rational and not v.is_Integer for a, c in coeffs for v in (a, c))


@lru_cache(maxsize=1024)
def _layer_symbols(l: int, n_in: int, n_out: int) -> tuple[tuple[sp.Symbol, ...], tuple[sp.Symbol, ...]]:
    """Layer l's weight symbols ``w{l}_{i}_{j}`` row by row and bias symbols ``b{l}_{j}``
    (SymPy's constructor is slow next to the polynomial work)."""
    return (tuple(sp.Symbol(f"w{l}_{i + 1}_{j + 1}") for i in range(n_in) for j in range(n_out)),
            tuple(sp.Symbol(f"b{l}_{j + 1}") for j in range(n_out)))


def collapse_entries(net: Network, seed: int = 0, backend: str | None = None) -> EntrywiseCollapse:
    """``W'``, ``b'`` entry by entry for an affine network with integer widths.

    ``backend``: ``"flint"`` (python-flint's polynomials; the default when installed) or
    ``"python"`` (plain dicts); both give the same polynomials and the same checks.
    """
    if net.has_symbolic_widths:
        raise SpecError("entrywise collapse needs integer widths")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer, not {seed!r}")
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
    for a, c in coeffs:  # the scalar symbols first
        for value in (a, c):
            if value.is_Symbol:
                if value not in index:
                    index[value] = len(symbols)
                    symbols.append(value)
            elif not value.is_Rational:
                raise SpecError(f"activation parameter {value} must be a number or a symbol")
    blocks: list[tuple[int, ...]] = [(v,) for v in range(len(symbols))]
    Wvars, bvars = [], []
    for l, (n_in, n_out) in enumerate(zip(widths, widths[1:]), start=1):
        weights, biases = _layer_symbols(l, n_in, n_out)
        start = len(symbols)
        symbols += weights
        Wvars.append([list(range(start + i * n_out, start + (i + 1) * n_out)) for i in range(n_in)])
        blocks.append(tuple(range(start, len(symbols))))
        start = len(symbols)
        symbols += biases
        bvars.append(list(range(start, len(symbols))))
        blocks.append(tuple(bvars[-1]))
    clash = {s.name for s in index}.intersection(s.name for s in symbols[len(index):]) if index else ()
    if clash:
        raise SpecError(f"activation parameter {min(clash)} has the name of a weight or bias; "
                        "rename it for --entries")
    rational = _has_fractions(coeffs)
    ring = _ring(backend, tuple(blocks), rational, len(index))

    def element(value: sp.Expr) -> Any:
        return ring.var(index[value]) if value.is_Symbol else ring.const(value)

    layers = [(element(a), element(c), Wvars[l], bvars[l]) for l, (a, c) in enumerate(coeffs)]
    g = _forward(ring, widths, layers)
    exact = _exact_recheck(ring, widths, layers, g)
    point = _point_check(ring, coeffs, index, Wvars, bvars, g, seed)
    return EntrywiseCollapse(net, symbols, exact, point, g, ring, (coeffs, Wvars, seed))


def _layer(ring: Any, l: int, Wv: list, bv: list, tagged: bool) -> tuple[list, list, list]:
    """Layer l's entries as ring elements: (columns of W_l, rows of W_l, b_l), the columns
    and biases times the column tags when ``tagged``.  Kept by the ring (one per block
    layout, so per shape), like its generators' powers."""
    key = (l, tagged)
    if key not in ring.layers:
        var, tag, times = ring.var, ring.tag, ring.mul
        columns = [[var(row[j]) for row in Wv] for j in range(len(bv))]
        biases = [var(v) for v in bv]
        if tagged:
            columns = [[times(e, tag(j)) for e in column] for j, column in enumerate(columns)]
            biases = [times(e, tag(j)) for j, e in enumerate(biases)]
        ring.layers[key] = (columns, [[var(v) for v in row] for row in Wv], biases)
    return ring.layers[key]


def _forward(ring: Any, widths: list[int], layers: list) -> list:
    """``g_0 = 1^T``, ``g_l = a_l (g_{l-1} W_l + b_l) + c_l 1^T``: the columns of ``g_L``,
    each term of column j tagged ``y^j`` (the last layer's entries of column j carry it).

    In python-flint's ring, by the block encoding (:func:`_encoded_forward`); else (and
    wherever a layer's variables are not laid out as that needs) by the vector-matrix
    products, one dot product per column."""
    if _encoded(ring, layers):
        return _encoded_forward(ring, layers)
    return _dot_forward(ring, widths, layers)


def _encoded(ring: Any, layers: list) -> bool:
    """Whether the pass runs by the block encoding (and the recheck by dot products)."""
    return isinstance(ring, _FlintRing) and _encoded_plan(ring, layers) is not None


def _encoded_forward(ring: _FlintRing, layers: list) -> list:
    """The pass with one product per layer, from the block encoding.

    With ``w_l[i, j] = x_l^(i n + j + 1)`` (n the layer's width) a column of ``g W`` is
    ``sum_i g[i] x^(i n + j + 1) = x^(j + 1) H`` for the one polynomial
    ``H = sum_i g[i] x^(i n)``, the same for every column.  So the pass carries H alone:

        H_1 = sum_i x_1^(i n_1)                                  (g_0 = 1^T)
        H_(l+1) = a_l (H_l P_l + B_l) + c_l E_(l+1),
        P_l = sum_j x_l^(j+1) x_(l+1)^(j n_(l+1)),  B_l = sum_j b_l[j] x_(l+1)^(j n_(l+1)),
        E_l = sum_i x_l^(i n_l),

    and the columns are ``g_L[j] = a_L (x_L^(j+1) H_L + b_L[j]) y^j + c_L y^j``.  Each term
    is made once, by python-flint's multiplication, instead of by n dot products whose
    partial sums are merged again and again.  Only where :func:`_encoded_plan` finds every
    layer's variables laid out as the powers this needs."""
    H, transitions, columns = _encoded_plan(ring, layers)

    def affine(p: Any, m: Any, b: Any, a: Any, c: Any, e: Any) -> Any:
        """``a (p m + b) + c e``, ``p m`` a fresh polynomial added into in place."""
        out = p * m
        out.iadd(b)
        if a != ring.one:
            out = out * a
        if c != ring.zero:
            out.iadd(c * e)
        return out

    for (a, c, _, _), (P, B, E) in zip(layers, transitions):
        H = affine(H, P, B, a, c, E)
    a, c = layers[-1][0], layers[-1][1]
    return [affine(H, m, b, a, c, y) for m, b, y in columns]


def _encoded_plan(ring: _FlintRing, layers: list) -> tuple | None:
    """The structural polynomials of :func:`_encoded_forward` (kept by the ring, like its
    generators' powers): ``H_1``; per step ``(P_l, B_l, E_(l+1))``; per output column
    ``(x_L^(j+1) y^j, b_L[j] y^j, y^j)``.  None unless every layer's variables are the
    powers ``x^(i n + j + 1)`` and ``x_b^(j + 1)`` of its two generators."""
    key = ("encoded", len(layers))
    if key in ring.layers:
        return ring.layers[key]
    gens = ring.ctx.gens()
    places = []
    for _, _, Wv, bv in layers:
        n = len(bv)
        gw, gb = ring.place[Wv[0][0]][0], ring.place[bv[0]][0]
        if any(ring.place[v] != (gw, i * n + j + 1) for i, row in enumerate(Wv) for j, v in enumerate(row)) \
                or any(ring.place[v] != (gb, j + 1) for j, v in enumerate(bv)):
            ring.layers[key] = None
            return None
        places.append((gens[gw], gens[gb], len(Wv), n))
    x, _, n_in, n = places[0]
    H = ring.sum([x ** (i * n) for i in range(n_in)])
    transitions = []
    for (x, xb, _, n), (x_next, _, _, n_next) in zip(places, places[1:]):
        steps = [x_next ** (j * n_next) for j in range(n)]
        transitions.append((ring.sum([x ** (j + 1) * s for j, s in enumerate(steps)]),
                            ring.sum([xb ** (j + 1) * s for j, s in enumerate(steps)]),
                            ring.sum(steps)))
    x, xb, _, n = places[-1]
    columns = [(x ** (j + 1) * ring.tag(j), xb ** (j + 1) * ring.tag(j), ring.tag(j)) for j in range(n)]
    ring.layers[key] = (H, transitions, columns)
    return ring.layers[key]


def _dot_forward(ring: Any, widths: list[int], layers: list) -> list:
    """:func:`_forward` by one dot product per column and layer (any ring)."""
    add, dot, mul, one, zero = ring.add, ring.dot, ring.mul, ring.one, ring.zero
    last = len(layers) - 1
    g = None  # 1^T: the first layer's columns are summed
    for l, (a, c, Wv, bv) in enumerate(layers):
        columns, _, biases = _layer(ring, l, Wv, bv, l == last)
        if g is None:
            g = [add(ring.sum(column), bias) for column, bias in zip(columns, biases)]
        else:
            g = [add(dot(g, column), bias) for column, bias in zip(columns, biases)]
        if a != one:
            g = [mul(p, a) for p in g]
        if c != zero:
            g = [add(p, mul(c, ring.tag(j)) if l == last else c) for j, p in enumerate(g)]
    return g


def _exact_recheck(ring: Any, widths: list[int], layers: list, g: list) -> bool:
    """The pass recomputed another way and compared exactly: where the pass was the block
    encoding's one product per layer, by the dot products (each weight's own element,
    no factorisation), column by column; where the pass was the dot products, by the
    map associated from the right (:func:`_right_recheck`)."""
    if _encoded(ring, layers):
        again = _dot_forward(ring, widths, layers)
        return len(again) == len(g) and all(p == q for p, q in zip(g, again))
    return _right_recheck(ring, widths, layers, g)


def _right_recheck(ring: Any, widths: list[int], layers: list, g: list) -> bool:
    """The map associated from the right, against ``sum_j g_L[j]`` (tagged columns).

    ``rho_{L+1} = t`` (``t_j = y^j``) and ``rho_l = a_l W_l rho_{l+1}``; then
    ``sum_j g_L[j] = 1^T rho_1 + sum_l (a_l b_l + c_l 1^T) rho_{l+1}``.  Equal as
    polynomials, every column of ``g_L`` is right: a term of column j carries ``y^j``
    in both, so no term can move between columns unseen (and reading a column out
    checks that its terms carry its own tag)."""
    add, dot, mul, one, zero = ring.add, ring.dot, ring.mul, ring.one, ring.zero
    rho = [ring.tag(j) for j in range(widths[-1])]
    parts = []
    for l, (a, c, Wv, bv) in reversed(list(enumerate(layers))):
        _, rows, biases = _layer(ring, l, Wv, bv, False)
        bias = dot(biases, rho)
        if a != one:
            bias = mul(bias, a)
        if c != zero:
            bias = add(bias, mul(c, ring.sum(rho)))
        parts.append(bias)
        rho = [dot(row, rho) for row in rows]
        if a != one:
            rho = [mul(p, a) for p in rho]
    return ring.sum(g) == ring.sum(rho + parts[::-1])


def _point_check(ring: Any, coeffs: list, index: dict, Wvars: list, bvars: list, g: list, seed: int) -> bool:
    """One column of ``g_L``, evaluated exactly at a random integer point (the column tag
    ``y`` at 1), against the network's forward pass at the input of ones in Python
    integers (fractions where a coefficient is one).  A spot check by arithmetic that
    shares no code with the polynomials; the exact recheck is the one that covers
    every entry."""
    rng = random.Random(seed)
    at, values = ring.integer_point(rng)
    rational = _has_fractions(coeffs)

    def number(v: sp.Expr) -> Any:
        if v.is_Symbol:
            return values[index[v]]
        return Fraction(int(v.p), int(v.q)) if rational else int(v)

    h: list[Any] = [1] * len(Wvars[0])
    for (a, c), Wl, bl in zip(coeffs, Wvars, bvars):
        a, c = number(a), number(c)
        h = [a * sum((x * values[row[j]] for x, row in zip(h, Wl)), values[bl[j]]) + c for j in range(len(bl))]
    j = rng.randrange(len(g))
    return ring.evaluate_exact(g[j], at) == h[j]


def _numeric_affine(act: Any) -> tuple[float, float] | None:
    """``(f(1) - f(0), f(0))`` of an activation with numeric parameters, by its NumPy form
    (not by the symbolic coefficients the polynomials were built from); None otherwise."""
    if any(not v.is_number for _, v in act.params):
        return None
    with np.errstate(all="ignore"):
        f0, f1 = (float(np.asarray(act.numpy(np.array([[z]]))).ravel()[0]) for z in (0.0, 1.0))
    return (f1 - f0, f0) if math.isfinite(f0) and math.isfinite(f1) else None


def _numeric_check(network: Network, W: list, b: list, coeffs: list, symbols: list,
                   seed: int) -> tuple[float, float]:
    """(max abs, max relative difference) between every entry evaluated at a random point
    and NumPy's products there (values multiples of 1/64, none zero, so a misplaced
    variable shows).  The reference takes each weight by its printed name
    (``w{l}_{i}_{j}``, ``b{l}_{j}``), so a name given to the wrong variable shows too.
    Where a coefficient is too large for floats the comparison is made in exact
    fractions."""
    rng = np.random.default_rng(seed + 1)
    widths = [int(w) for w in network.widths]
    sixty_fourths = np.round(64 * rng.standard_normal(len(symbols)) / np.sqrt(max(widths)))
    sixty_fourths[sixty_fourths == 0] = 1
    named = {sym.name: i for i, sym in enumerate(symbols)}
    position = {sym: i for i, sym in enumerate(symbols)}
    slopes = [_numeric_affine(layer.activation) for layer in network.layers]

    def reference(value: Any, convert: Any) -> tuple[Any, Any]:
        def number(v: sp.Expr) -> Any:
            return convert(v) if v.is_number else value(position[v])

        h_W = h_b = None  # the identity and zero before the first layer
        for l, ((a, c), n_out) in enumerate(zip(coeffs, widths[1:]), start=1):
            if slopes[l - 1] is not None and convert is float:
                a, c = slopes[l - 1]  # f(1) - f(0), f(0) from the activation's own NumPy form
            else:
                a, c = number(a), number(c)
            Wl = [[value(named[f"w{l}_{i + 1}_{j + 1}"]) for j in range(n_out)] for i in range(widths[l - 1])]
            bl = [value(named[f"b{l}_{j + 1}"]) for j in range(n_out)]
            if h_W is None:
                h_W, h_b = Wl, [bl]
            else:
                h_W = _matmul(h_W, Wl)
                h_b = [[x + y for x, y in zip(_matmul(h_b, Wl)[0], bl)]]
            h_W = [[a * x for x in row] for row in h_W]
            h_b = [[a * x + c for x in h_b[0]]]
        return h_W, h_b

    def evaluate(p: Poly, value: Any, convert: Any) -> tuple[Any, Any]:
        total = size = 0
        for m, c in p.items():
            term = convert(c) * math.prod([value(v) for v in m])
            total += term
            size += abs(term)
        return total, size

    try:
        values = (sixty_fourths / 64).tolist()
        want_W, want_b = reference(values.__getitem__, float)
        got = [evaluate(p, values.__getitem__, float) for row in W for p in row]
        got += [evaluate(p, values.__getitem__, float) for p in b]
    except OverflowError:  # a coefficient beyond floats: the same in exact fractions
        exact = [Fraction(int(k), 64) for k in sixty_fourths]

        def to_fraction(v: Any) -> Fraction:
            return Fraction(int(v)) if isinstance(v, int) or getattr(v, "is_Integer", False) else \
                Fraction(int(sp.Rational(v).p), int(sp.Rational(v).q))

        want_W, want_b = reference(exact.__getitem__, to_fraction)
        got = [evaluate(p, exact.__getitem__, to_fraction) for row in W for p in row]
        got += [evaluate(p, exact.__getitem__, to_fraction) for p in b]
    want = [x for row in want_W for x in row] + list(want_b[0])
    worst_abs = worst_rel = 0.0
    for (value, size), reference_value in zip(got, want):
        diff = abs(value - reference_value)
        worst_abs = max(worst_abs, float(diff))
        worst_rel = max(worst_rel, float(diff / (1 + size)))
    return worst_abs, worst_rel


def _matmul(A: list, B: list) -> list:
    """A B for lists of rows (floats or fractions alike)."""
    columns = list(zip(*B))
    return [[sum(x * y for x, y in zip(row, column)) for column in columns] for row in A]
