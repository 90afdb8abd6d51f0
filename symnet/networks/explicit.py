"""Collapse with explicit entries: ``W'`` and ``b'`` written out entry by entry.

Every weight is a scalar symbol (``w1_0_1`` is row 0, column 1 of ``W1``), so
each entry of ``W'`` is a polynomial.  SymPy's ``Matrix`` products followed by
``expand`` build and re-sort large expression trees; here a polynomial is a
dict ``monomial -> integer coefficient`` with a monomial a sorted tuple of
variable numbers, and the collapse follows the layer recursion

    W'_k = a_k W'_{k-1} W_k,     b'_k = a_k (b'_{k-1} W_k + b_k) + c_k 1,

which multiplies polynomials by single variables only.  The result is checked
exactly against an independent recomputation (the product associated from the
right) and numerically against NumPy; SymPy expressions are built only when
asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from symnet.errors import SpecError
from symnet.networks.composer import Network

#: Largest number of polynomial terms an entrywise collapse may produce.
MAX_TERMS = 200_000

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


@dataclass
class EntrywiseCollapse:
    """``W'`` and ``b'`` of an affine network with every weight a symbol."""

    network: Network
    symbols: list[sp.Symbol]
    W: list[list[Poly]]
    b: list[Poly]
    exact_check: bool
    numeric_max_abs_error: float

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


def collapse_entries(net: Network, seed: int = 0) -> EntrywiseCollapse:
    """``W'``, ``b'`` entry by entry for an affine network with integer widths."""
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

    def coefficient_poly(value: sp.Expr) -> Poly:
        if value.is_Integer:
            return {(): int(value)} if value else {}
        if value.is_Rational:
            return {(): value}
        if value.is_Symbol:
            return {(var(value),): 1}
        raise SpecError(f"activation parameter {value} must be a number or a symbol")

    Wvars, bvars = [], []
    for l, (n_in, n_out) in enumerate(zip(widths, widths[1:]), start=1):
        a, c = coeffs[l - 1]
        coefficient_poly(a), coefficient_poly(c)  # number the scalar symbols first
        Wvars.append([[var(sp.Symbol(f"w{l}_{i + 1}_{j + 1}")) for j in range(n_out)] for i in range(n_in)])
        bvars.append([var(sp.Symbol(f"b{l}_{j + 1}")) for j in range(n_out)])

    Wp = _forward(widths, coeffs, Wvars, bvars, coefficient_poly)
    exact = _exact_recheck(widths, coeffs, Wvars, bvars, coefficient_poly, Wp)
    numeric = _numeric_check(widths, coeffs, Wvars, bvars, symbols, Wp, seed)
    return EntrywiseCollapse(net, symbols, Wp[0], Wp[1], exact, numeric)


def _forward(widths, coeffs, Wvars, bvars, coefficient_poly):
    n0 = widths[0]
    W = [[{(): 1} if i == j else {} for j in range(n0)] for i in range(n0)]
    b = [{} for _ in range(n0)]
    for l, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        a, c = (coefficient_poly(v) for v in coeffs[l])
        newW = [[{} for _ in range(n_out)] for _ in W]
        newb = [{} for _ in range(n_out)]
        for j in range(n_out):
            for k in range(n_in):
                v = Wvars[l][k][j]
                for i, row in enumerate(W):
                    if row[k]:
                        _add_into(newW[i][j], _scale_var(row[k], v))
                if b[k]:
                    _add_into(newb[j], _scale_var(b[k], v))
            newb[j][(bvars[l][j],)] = newb[j].get((bvars[l][j],), 0) + 1
        if a != {(): 1}:
            newW = [[_mul(p, a) for p in row] for row in newW]
            newb = [_mul(p, a) for p in newb]
        if c:
            for j in range(n_out):
                _add_into(newb[j], c)
        W, b = newW, newb
    return W, b


def _exact_recheck(widths, coeffs, Wvars, bvars, coefficient_poly, result) -> bool:
    """Recompute with the product associated from the right and compare exactly."""
    L = len(widths) - 1
    nL = widths[-1]
    # suffix products S_k = a_k W_k a_{k+1} W_{k+1} ... a_L W_L, built from the right
    S = [[{(): 1} if i == j else {} for j in range(nL)] for i in range(nL)]
    b_total = [{} for _ in range(nL)]
    for l in range(L - 1, -1, -1):
        a, c = (coefficient_poly(v) for v in coeffs[l])
        # contribution of b_l and c_l through the suffix after layer l
        unit_a = a == {(): 1}
        for j in range(nL):
            for k in range(widths[l + 1]):
                if S[k][j]:
                    term = _scale_var(S[k][j], bvars[l][k])
                    _add_into(b_total[j], term if unit_a else _mul(term, a))
                    if c:
                        _add_into(b_total[j], _mul(c, S[k][j]))
        # S <- a_l W_l S
        n_in = widths[l]
        newS = [[{} for _ in range(nL)] for _ in range(n_in)]
        for i in range(n_in):
            for k in range(widths[l + 1]):
                v = Wvars[l][i][k]
                for j in range(nL):
                    if S[k][j]:
                        term = _scale_var(S[k][j], v)
                        _add_into(newS[i][j], term if unit_a else _mul(term, a))
        S = newS
    W, b = result
    return all(S[i][j] == W[i][j] for i in range(len(W)) for j in range(nL)) and all(
        b_total[j] == b[j] for j in range(nL)
    )


def _numeric_check(widths, coeffs, Wvars, bvars, symbols, result, seed) -> float:
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(len(symbols)) / np.sqrt(max(widths))).tolist()

    def ev(p: Poly) -> float:
        return float(sum(float(c) * math.prod([values[v] for v in m]) for m, c in p.items()))

    h_W = np.eye(widths[0])
    h_b = np.zeros((1, widths[0]))
    for l in range(len(widths) - 1):
        a, c = coeffs[l]
        a = float(a) if a.is_number else values[symbols.index(a)]
        c = float(c) if c.is_number else values[symbols.index(c)]
        Wl = np.array([[values[v] for v in row] for row in Wvars[l]])
        bl = np.array([[values[v] for v in bvars[l]]])
        h_W = a * (h_W @ Wl)
        h_b = a * (h_b @ Wl + bl) + c
    W, b = result
    got_W = np.array([[ev(p) for p in row] for row in W])
    got_b = np.array([[ev(p) for p in b]])
    return float(max(np.max(np.abs(got_W - h_W)), np.max(np.abs(got_b - h_b))))
