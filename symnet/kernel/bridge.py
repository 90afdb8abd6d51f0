"""SymPy expressions built by symnet's own code, read as terms (structure only).

The composer, collapse and backprop build SymPy matrix expressions without
evaluation (``MatMul(..., evaluate=False)``, ``ElementwiseApplyFunction`` of a
catalogue formula).  :func:`from_sympy` reads such an expression node by node
into a :class:`~symnet.kernel.terms.Term`; it evaluates nothing.  User text
never comes this way: files and notes are parsed straight into terms.

:class:`Grad` is the SymPy-side marker for ``dL/dX`` that backprop builds.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

from . import terms as T
from .errors import ShapeError, Unsupported

_PRIMS = {
    sp.exp: "exp", sp.log: "log", sp.Abs: "abs", sp.sin: "sin", sp.cos: "cos", sp.tan: "tan",
    sp.tanh: "tanh", sp.sinh: "sinh", sp.cosh: "cosh", sp.atan: "atan", sp.asinh: "asinh",
    sp.erf: "erf", sp.erfc: "erfc", sp.sign: "sign", sp.sinc: "sinc", sp.DiracDelta: "dirac",
}


class Grad(sp.MatrixExpr):
    """``dL/dX`` for a 1x1 ``L`` and a matrix symbol ``X`` (shape of ``X``), as SymPy."""

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


def dim(d: Any) -> T.Dim:
    """A SymPy dimension as a term dimension (an int or a name)."""
    d = sp.Integer(d) if isinstance(d, int) else d
    if isinstance(d, sp.Integer):
        return int(d)
    if isinstance(d, sp.Symbol):
        return d.name
    raise Unsupported(f"dimension {d} (only numbers and names are decided)")


def _name(s: sp.Symbol) -> str:
    if isinstance(s, sp.Dummy):
        return f"{s.name}#{s.dummy_index}"  # '#' is never part of a name in a file
    return s.name


class Reader:
    """Converts SymPy expressions to terms, remembering shared subexpressions."""

    def __init__(self) -> None:
        self.memo: dict = {}
        self.fns: dict = {}
        self.names: dict = {}  # term name -> the one SymPy symbol read under it

    def _named(self, name: str, e: sp.Basic) -> str:
        seen = self.names.setdefault(name, e)
        if seen != e:
            raise Unsupported(f"two different symbols are both called {name!r} ({sp.srepr(seen)} and "
                              f"{sp.srepr(e)})")
        return name

    def __call__(self, e: Any, bound: sp.Symbol | None = None) -> T.Term:
        if isinstance(e, T.Term):
            return e
        if isinstance(e, (int, Fraction)) and not isinstance(e, bool):
            return T.num(e)
        if not isinstance(e, sp.Basic):
            raise Unsupported(f"{type(e).__name__} is not an expression")
        key = (e, bound)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = self._read(e, bound)
        return hit

    def _read(self, e: sp.Basic, bound: sp.Symbol | None) -> T.Term:
        r = lambda a: self(a, bound)  # noqa: E731
        if bound is not None and e == bound:
            return T.var()
        if isinstance(e, sp.MatrixSymbol):
            return T.matrix(self._named(e.name, e), dim(e.rows), dim(e.cols))
        if isinstance(e, sp.Symbol):
            return T.scalar(self._named(_name(e), e), positive=bool(e.is_positive))
        if isinstance(e, sp.Rational):
            return T.num(Fraction(int(e.p), int(e.q)))
        if isinstance(e, sp.Float):
            q = sp.Rational(e)  # the exact binary value SymPy holds
            return T.num(Fraction(int(q.p), int(q.q)))
        if e is sp.pi:
            return T.const("pi")
        if e is sp.E:
            return T.const("e")
        if e is sp.true:
            return T.logic("true")
        if isinstance(e, (sp.MatAdd, sp.Add)):
            return T.add(*[r(a) for a in e.args]) if len(e.args) > 1 else r(e.args[0])
        if isinstance(e, (sp.MatMul, sp.Mul)):
            args = [r(a) for a in e.args]
            return T.mul(*args) if len(args) > 1 else args[0]
        if isinstance(e, sp.Transpose):
            return T.transpose(r(e.arg))
        if isinstance(e, sp.Identity):
            return T.eye(dim(e.rows))
        if isinstance(e, sp.ZeroMatrix):
            return T.zeros(dim(e.rows), dim(e.cols))
        if isinstance(e, sp.OneMatrix):
            return T.ones(dim(e.rows), dim(e.cols))
        if isinstance(e, sp.MatPow):
            k = e.exp
            if not (isinstance(k, sp.Integer) and k >= 0):
                raise Unsupported(f"matrix power {k} (inverses are not decided)")
            return T.power(r(e.base), r(k))
        if isinstance(e, HadamardProduct):
            return T.hadamard(*[r(a) for a in e.args])
        if isinstance(e, HadamardPower):
            k = e.exp
            if not (isinstance(k, sp.Integer) and k >= 0):
                raise Unsupported(f"Hadamard power {k}")
            return T.hadamard_power(r(e.base), int(k))
        if isinstance(e, sp.Trace):
            return T.trace(r(e.arg))
        if isinstance(e, Grad):
            return T.grad(r(e.loss), r(e.wrt))
        if isinstance(e, ElementwiseApplyFunction):
            fn, params = self.formula_fn(e.function)
            return T.apply(fn, r(e.expr), *[r(p) for p in params])
        if isinstance(e, sp.MatrixBase):
            rows = [[r(e[i, j]) for j in range(e.cols)] for i in range(e.rows)]
            return T.explicit(rows)
        if isinstance(e, sp.Pow):
            base, k = r(e.base), e.exp
            if k == sp.S.Half:
                return T.prim("sqrt", base)
            if k == -sp.S.Half:
                return T.div(T.num(1), T.prim("sqrt", base))
            return T.power(base, r(k))
        if isinstance(e, sp.Heaviside):
            h0 = e.args[1] if len(e.args) > 1 else sp.S.Half
            if not isinstance(h0, sp.Rational):
                raise Unsupported(f"Heaviside with value {h0} at 0")
            return T.prim("heaviside", r(e.args[0]), T.num(Fraction(int(h0.p), int(h0.q))))
        if isinstance(e, (sp.Max, sp.Min)):
            return T.prim("max" if isinstance(e, sp.Max) else "min", *[r(a) for a in e.args])
        if isinstance(e, sp.Piecewise):
            return T.piecewise(*[(r(v), r(c)) for v, c in e.args])
        if isinstance(e, sp.core.relational.Relational):
            kind = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}[e.rel_op]
            return T.relation(kind, r(e.lhs), r(e.rhs))
        if isinstance(e, (sp.And, sp.Or, sp.Not)):
            kind = {sp.And: "and", sp.Or: "or", sp.Not: "not"}[type(e)]
            return T.logic(kind, *[r(a) for a in e.args])
        if isinstance(e, sp.Derivative):
            (v, k), = e.variable_count
            inner = e.expr
            if isinstance(inner, AppliedUndef) and inner.args == (v,):  # f'(v): an opaque derivative
                return T.apply(self._opaque(inner.func, int(k)), r(v))
            return T.diff(r(e.expr), r(v), int(k))
        if isinstance(e, sp.Subs) and isinstance(e.expr, sp.Derivative) and len(e.variables) == 1:
            d = e.expr
            (v, k), = d.variable_count
            if isinstance(d.expr, AppliedUndef) and d.expr.args == (v,) and e.variables == (v,):
                return T.apply(self._opaque(d.expr.func, int(k)), r(e.point[0]))
        if isinstance(e, AppliedUndef) and len(e.args) == 1:
            return T.apply(self._opaque(e.func), r(e.args[0]))
        fn = type(e)
        if fn in _PRIMS and len(e.args) == 1:
            return T.prim(_PRIMS[fn], r(e.args[0]))
        if isinstance(e, sp.DiracDelta) and len(e.args) == 1:
            return T.prim("dirac", r(e.args[0]))
        raise Unsupported(f"{type(e).__name__} is outside the decided fragment")

    def _opaque(self, func: Any, order: int = 0) -> T.Fn:
        name = str(func)
        if not name.isidentifier():
            raise Unsupported(f"a function named {name!r} (names are letters, digits and _)")
        self._named("function " + name, func)
        return T.Fn(name, None, order=order)

    def formula_fn(self, lam: sp.Lambda, name: str = "f") -> tuple[T.Fn, list]:
        """The function ``z -> body`` of an entrywise application as a closed term
        formula, and the parameters lifted out of it: every subexpression of the
        body that has free symbols but not the variable (``alpha = trace(W)``)
        becomes a parameter, so that what it depends on stays visible."""
        hit = self.fns.get(lam)
        if hit is None:
            if not isinstance(lam, sp.Lambda) or len(lam.variables) != 1:
                raise Unsupported(f"elementwise function {lam}")
            (v,) = lam.variables
            lifted: dict = {}

            def lift(x: sp.Basic) -> sp.Basic:
                if not x.has(v) and (x.free_symbols or x.atoms(sp.MatrixSymbol)):
                    if x not in lifted:
                        lifted[x] = sp.Dummy(f"p{len(lifted)}")
                    return lifted[x]
                if not x.args or not x.has(v):
                    return x
                return x.func(*[lift(a) for a in x.args], evaluate=False) if isinstance(
                    x, (sp.Add, sp.Mul, sp.Pow)) else x.func(*[lift(a) for a in x.args])

            body = lift(lam.expr)
            params = list(lifted)
            reader = Reader()
            for i, p in enumerate(params):
                reader.memo[(lifted[p], v)] = T.param(i)
            hit = self.fns[lam] = (T.Fn(name, reader(body, v), len(params)), params)
        return hit


_READER = Reader()


def from_sympy(e: Any) -> T.Term:
    """The term of a SymPy expression built by symnet (structure only; nothing evaluated)."""
    if len(_READER.memo) > 200_000:
        _READER.memo.clear()
        _READER.fns.clear()
    return _READER(e)


def formula(body: Any, variable: sp.Symbol, params: tuple = ()) -> T.Term:
    """A catalogue formula in ``variable`` (and the given parameter symbols) as a term."""
    mapping = {p: T.param(i) for i, p in enumerate(params)}
    reader = Reader()
    for p, t in mapping.items():
        reader.memo[(p, variable)] = t
    return reader(body, variable)


__all__ = ["Grad", "Reader", "dim", "formula", "from_sympy"]
