"""Terms: what the user wrote, as immutable data.

Every input (a ``.deriv`` line, a Markdown fence, an API call, a catalogue
formula) becomes a :class:`Term` before anything judges it.  A term records the
operator, its arguments, names, exact numbers (a decimal literal is the
:class:`~fractions.Fraction` it spells) and, where it came from text, its
source position.  Nothing is evaluated or rewritten while terms are built:
``b*u/u`` stays a division by ``u``; ``abs(f(1))`` stays ``abs`` of an
application of the opaque ``f``.  The kernel translates terms into its normal
form under its own control (:mod:`symnet.kernel.normal`), the numeric judge
evaluates them directly (:mod:`symnet.kernel.judge`), and printers print them.

Shapes.  ``shape`` is ``None`` for a scalar and ``(rows, cols)`` for a matrix
(a 1x1 matrix is a matrix); a dimension is an ``int`` or the name of a declared
dimension.  Constructors check shapes and raise :class:`ShapeError`.

Operators (``op``) and their fields:

=============  =======================================================
``num``        ``value``: a Fraction
``const``      ``value``: ``"pi"`` or ``"e"``
``sym``        ``value``: the name (scalar if ``shape`` is None, else a matrix)
``dim``        ``value``: a dimension name used as a (positive integer) scalar
``var``        the bound variable ``z`` of a function formula (scalar)
``param``      ``value``: index ``i`` of a function parameter in a formula
``add``        n-ary sum (``args`` in the order written)
``sub``        ``a - b``
``neg``        ``-a``
``mul``        n-ary product, in order (scalars times matrices, matrix products)
``div``        ``a / b``, ``b`` a scalar
``pow``        ``a ** k``: scalar power, or a square matrix to an integer ``k``
``T``          transpose
``had``        n-ary Hadamard (entrywise) product
``hadpow``     ``a ** k`` entrywise, ``args = (a, k)``, ``k`` a ``num``
``prim``       ``value``: a primitive name (:data:`PRIMITIVES`); entrywise on a matrix
``apply``      ``value``: a :class:`Fn`; ``args = (arg, *parameters)``; entrywise
``ones``/``eye``/``zeros``  constant matrices of ``shape``
``trace``      ``tr(A)``, a scalar
``sum``        sum of all entries of a matrix, a scalar
``norm``       the Frobenius norm of a matrix, a scalar
``inv``        inverse of a matrix invertible by construction (:func:`is_invertible`)
``det``        determinant of a square matrix, a scalar
``diag``       the square matrix with a vector on its diagonal
``jacobian``   ``args = (y, x)``: ``J_ij = dy_i/dx_j`` for vectors y (m) and x (n), m x n
``hessian``    ``args = (L, x)``: second derivatives of a scalar in a vector, n x n
``grad``       ``dL/dX``, ``args = (L, X)``, ``L`` scalar or 1x1, ``X`` a symbol; shape of ``X``
``diff``       ``d^k/dv^k e``, ``args = (e, v)``, ``value = k``; ``v`` a scalar symbol
``matrix``     explicit matrix, entries row-major in ``args``
``piecewise``  ``args = (v1, c1, v2, c2, ...)``, conditions are relations, the last may be ``true``
``lt le gt ge eq ne``  relations between scalars; ``and or not true`` logic
=============  =======================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .errors import ShapeError

Dim = int | str

#: Scalar primitives the kernel and the judge both know (each entrywise on matrices).
PRIMITIVES = frozenset({
    "exp", "log", "sqrt", "abs", "sin", "cos", "tan", "tanh", "sinh", "cosh", "atan",
    "asinh", "erf", "erfc", "sign", "max", "min", "heaviside", "dirac", "sinc",
})
#: Partial primitives and the domain they need of their (first) argument.
DOMAINS = {"log": "> 0", "sqrt": ">= 0"}

#: What a function formula may not contain: it is closed in its variable and parameters.
_NOT_IN_FORMULAS = frozenset({"sym", "dim", "grad", "diff", "trace", "sum", "matrix", "ones", "eye", "zeros",
                              "norm", "inv", "det", "jacobian", "hessian", "diag"})

_RELATIONS = ("lt", "le", "gt", "ge", "eq", "ne")
_LOGIC = ("and", "or", "not", "true")


@dataclass(frozen=True)
class Fn:
    """A named scalar function applied by ``apply`` terms.

    ``formula`` is a scalar term in ``var`` (the argument) and ``param`` i (the
    i-th parameter), or ``None`` for a declared function, which stays opaque.
    ``order`` counts derivatives of a declared function (``f''`` has order 2).
    ``latex`` is how printers show the name.
    """

    name: str
    formula: Term | None = None
    nparams: int = 0
    order: int = 0
    latex: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name.isidentifier()):
            raise ValueError(f"a function name is letters, digits and _ (got {self.name!r})")
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 0:
            raise ValueError(f"derivative order {self.order!r}")
        if self.formula is not None:
            if self.order:
                raise ValueError("only a declared (opaque) function has derivative orders")
            for t in walk(self.formula):
                if t.op in _NOT_IN_FORMULAS or t.shape is not None or (
                        t.op == "param" and not 0 <= t.value < self.nparams):
                    raise ValueError(f"the formula of {self.name} may use only its variable, its "
                                     f"{self.nparams} parameter(s) and numbers (found '{t.op}')")

    @property
    def opaque(self) -> bool:
        return self.formula is None


class Term:
    """An immutable node: operator, arguments, a value and a shape (see the module doc)."""

    __slots__ = ("op", "args", "value", "shape", "_hash", "pos")

    def __init__(self, op: str, args: tuple = (), value: Any = None, shape: tuple | None = None,
                 pos: tuple | None = None):
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "args", tuple(args))
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "_hash", hash((op, self.args, value, shape)))
        object.__setattr__(self, "pos", pos)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("terms are immutable")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Term) or self._hash != other._hash:
            return False
        return (self.op == other.op and self.value == other.value and self.shape == other.shape
                and self.args == other.args)

    def __reduce__(self):
        return (Term, (self.op, self.args, self.value, self.shape, self.pos))

    def __repr__(self) -> str:
        from .printer import text

        return text(self)

    @property
    def is_matrix(self) -> bool:
        return self.shape is not None

    @property
    def rows(self) -> Dim:
        return self.shape[0]

    @property
    def cols(self) -> Dim:
        return self.shape[1]

    def at(self, pos: tuple | None) -> Term:
        """The same term with a source position ``(line, col, end_col)``."""
        return Term(self.op, self.args, self.value, self.shape, pos)


# ---------------------------------------------------------------------------
# Shapes


def fmt_shape(shape: tuple | None) -> str:
    return "scalar" if shape is None else f"{shape[0]}x{shape[1]}"


def _same(a: Dim, b: Dim) -> bool:
    return a == b


def _need_scalar(t: Term, what: str) -> None:
    if t.is_matrix:
        raise ShapeError(f"{what} needs a scalar, got a {fmt_shape(t.shape)} matrix")


def _need_matrix(t: Term, what: str) -> None:
    if not t.is_matrix:
        raise ShapeError(f"{what} needs a matrix, got a scalar")


def _dim(d: Any) -> Dim:
    if isinstance(d, bool):
        raise ShapeError(f"{d!r} is not a dimension")
    if isinstance(d, int):
        if d < 1:
            raise ShapeError(f"dimension {d} must be at least 1")
        return d
    if isinstance(d, str) and d and not d.isspace():
        return d
    raise ShapeError(f"{d!r} is not a dimension (a positive integer or a name)")


# ---------------------------------------------------------------------------
# Constructors (each checks shapes; none simplifies)


def num(value: int | Fraction) -> Term:
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise TypeError(f"an exact number is an int or a Fraction, got {value!r}")
    return Term("num", value=Fraction(value))


def const(name: str) -> Term:
    if name not in ("pi", "e"):
        raise ValueError(f"unknown constant {name!r}")
    return Term("const", value=name)


class _DeclaredName(str):
    """A name that carries a declared property: equal only to a name with the same one,
    so ``p`` declared positive and a plain ``p`` are different symbols."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((type(self).__name__, str(self)))

    def __reduce__(self):
        return (type(self), (str(self),))


class PositiveName(_DeclaredName):
    """The name of a scalar declared positive (``sympy.Symbol("p", positive=True)``):
    the kernel may use ``p > 0`` and the judge samples it positive."""


class InvertibleName(_DeclaredName):
    """The name of a square matrix declared invertible (``matrix A: n x n invertible``)."""


def scalar(name: str, positive: bool = False) -> Term:
    return Term("sym", value=PositiveName(name) if positive else name)


def matrix(name: str, rows: Dim, cols: Dim, invertible: bool = False) -> Term:
    rows, cols = _dim(rows), _dim(cols)
    if invertible:
        if rows != cols:
            raise ShapeError(f"{name} is {rows}x{cols}: only a square matrix can be invertible")
        name = InvertibleName(name)
    return Term("sym", value=name, shape=(rows, cols))


def is_invertible(t: Term) -> bool:
    """Whether ``t`` is invertible by construction: a product of declared-invertible
    matrices, their transposes and inverses, identities and nonzero numbers."""
    if t.op == "sym":
        return isinstance(t.value, InvertibleName)
    if t.op == "eye":
        return True
    if t.op in ("T", "inv"):
        return is_invertible(t.args[0])
    if t.op == "mul":
        mats = [x for x in t.args if x.is_matrix]
        nums = [x for x in t.args if not x.is_matrix]
        return all(is_invertible(x) for x in mats) and all(
            x.op == "num" and x.value != 0 for x in nums) and all(x.rows == x.cols for x in mats)
    if t.op == "pow":
        return is_invertible(t.args[0])
    return False


def inverse(a: Term) -> Term:
    """``a^{-1}``; ``a`` must be invertible by construction (see :func:`is_invertible`)."""
    _need_matrix(a, "an inverse")
    if a.rows != a.cols:
        raise ShapeError(f"inverse of a non-square {fmt_shape(a.shape)} matrix")
    if not is_invertible(a):
        raise ShapeError("an inverse needs a matrix declared invertible ('matrix A: n x n invertible') "
                         "or a product of such matrices")
    return Term("inv", (a,), shape=a.shape)


def det(a: Term) -> Term:
    _need_matrix(a, "det")
    if a.rows != a.cols:
        raise ShapeError(f"det of a non-square {fmt_shape(a.shape)} matrix")
    return Term("det", (a,))


def diag(v: Term) -> Term:
    """The n x n matrix with the vector ``v`` (1 x n or n x 1) on its diagonal; of a square
    matrix, its diagonal part ``A (.) I`` (The Matrix Cookbook's ``diag(A)``)."""
    if not v.is_matrix or (1 not in v.shape and v.rows != v.cols):
        raise ShapeError("diag() needs a vector (1 x n or n x 1) or a square matrix")
    n = v.cols if v.rows == 1 else v.rows
    return Term("diag", (v,), shape=(n, n))


def norm(a: Term) -> Term:
    """The Frobenius norm ``||a||`` (the absolute value of a scalar)."""
    if not a.is_matrix:
        return prim("abs", a)
    return Term("norm", (a,))


def jacobian(y: Term, x: Term) -> Term:
    """``J`` with ``J_ij = dy_i/dx_j`` for a vector ``y`` (m entries) and a vector symbol ``x``
    (n entries), row or column vectors alike: an m x n matrix."""
    if x.op != "sym" or not x.is_matrix or 1 not in x.shape:
        raise ShapeError("jacobian(y, x) needs a declared vector x (1 x n or n x 1)")
    if not y.is_matrix or 1 not in y.shape:
        raise ShapeError("jacobian(y, x) needs a vector y (1 x m or m x 1)")
    m = y.cols if y.rows == 1 else y.rows
    n = x.cols if x.rows == 1 else x.rows
    return Term("jacobian", (y, x), shape=(m, n))


def hessian(loss: Term, x: Term) -> Term:
    """The n x n matrix of second derivatives of a scalar ``loss`` in a vector symbol ``x``."""
    if x.op != "sym" or not x.is_matrix or 1 not in x.shape:
        raise ShapeError("hessian(L, x) needs a declared vector x (1 x n or n x 1)")
    if loss.is_matrix and loss.shape != (1, 1):
        raise ShapeError(f"hessian(L, x) needs a scalar L, got a {fmt_shape(loss.shape)} matrix")
    n = x.cols if x.rows == 1 else x.rows
    return Term("hessian", (loss, x), shape=(n, n))


def dimension(name: str) -> Term:
    """A named dimension used as a scalar value (``n`` in ``n * A``)."""
    return Term("dim", value=_dim(name))


def var() -> Term:
    return Term("var")


def param(i: int) -> Term:
    return Term("param", value=i)


def ones(rows: Dim, cols: Dim) -> Term:
    return Term("ones", shape=(_dim(rows), _dim(cols)))


def zeros(rows: Dim, cols: Dim) -> Term:
    return Term("zeros", shape=(_dim(rows), _dim(cols)))


def eye(n: Dim) -> Term:
    n = _dim(n)
    return Term("eye", shape=(n, n))


def explicit(rows: list[list[Term]]) -> Term:
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise ShapeError("an explicit matrix needs rows of equal, nonzero length")
    entries = [e for r in rows for e in r]
    for e in entries:
        _need_scalar(e, "an entry of an explicit matrix")
    return Term("matrix", entries, shape=(len(rows), len(rows[0])))


def add(*terms: Term) -> Term:
    if len(terms) < 2:
        raise ValueError("a sum needs two or more terms")
    return Term("add", terms, shape=_sum_shape(terms, "added"))


def _sum_shape(terms, verb: str) -> tuple | None:
    """The shape of a sum: all alike, or scalars and 1x1 matrices (a 1x1 matrix is a scalar)."""
    shapes = {t.shape for t in terms}
    if len(shapes) == 1:
        return terms[0].shape
    if shapes == {None, (1, 1)}:
        return (1, 1)
    first = terms[0].shape
    other = next(t.shape for t in terms if t.shape != first)
    raise ShapeError(f"shapes {fmt_shape(first)} and {fmt_shape(other)} cannot be {verb}")


def sub(a: Term, b: Term) -> Term:
    return Term("sub", (a, b), shape=_sum_shape((a, b), "subtracted"))


def neg(a: Term) -> Term:
    return Term("neg", (a,), shape=a.shape)


def mul(*factors: Term) -> Term:
    """A product in the order written: scalars scale, neighbouring matrices multiply."""
    if len(factors) < 2:
        raise ValueError("a product needs two or more factors")
    roles = factor_roles(factors)
    shape = None
    for f, matrix_factor in zip(factors, roles):
        if matrix_factor:
            shape = f.shape if shape is None else (shape[0], f.shape[1])
    if shape is None and any(f.is_matrix for f in factors):
        shape = (1, 1)
    return Term("mul", factors, shape=shape)


def factor_roles(factors) -> list[bool]:
    """Which factors of a product multiply as matrices (True) and which scale (False).

    Scalars scale; so does a 1x1 matrix whose neighbours do not fit it (a 1x1 matrix is a
    scalar: ``b^T (x^T a)`` is ``(x^T a) b^T``). Anything else that does not fit is an error."""
    roles, shape, last = [], None, None
    for f in factors:
        if f.shape is None:
            roles.append(False)
            continue
        if shape is None or _same(shape[1], f.shape[0]):
            roles.append(True)
            shape = f.shape if shape is None else (shape[0], f.shape[1])
            last = len(roles) - 1
        elif f.shape == (1, 1):
            roles.append(False)
        elif shape == (1, 1) and factors[last].shape == (1, 1) and sum(roles) == 1:
            roles[last] = False  # the 1x1 factor so far scales what follows
            roles.append(True)
            shape = f.shape
            last = len(roles) - 1
        else:
            raise ShapeError(f"shapes {fmt_shape(shape)} and {fmt_shape(f.shape)} cannot be multiplied")
    return roles


def div(a: Term, b: Term) -> Term:
    _need_scalar(b, "division")
    return Term("div", (a, b), shape=a.shape)


def power(a: Term, k: Term) -> Term:
    _need_scalar(k, "an exponent")
    if a.is_matrix:
        if not _same(a.rows, a.cols):
            raise ShapeError(f"power of a non-square {fmt_shape(a.shape)} matrix")
        if k.op != "num" or k.value.denominator != 1 or k.value < 0:
            raise ShapeError("a matrix power needs a whole-number exponent such as A**2")
    return Term("pow", (a, k), shape=a.shape)


def transpose(a: Term) -> Term:
    _need_matrix(a, "a transpose")
    return Term("T", (a,), shape=(a.cols, a.rows))


def hadamard(*terms: Term) -> Term:
    if len(terms) < 2:
        raise ValueError("a Hadamard product needs two or more matrices")
    for t in terms:
        _need_matrix(t, "an entrywise product")
        if t.shape != terms[0].shape:
            raise ShapeError(f"shapes {fmt_shape(terms[0].shape)} and {fmt_shape(t.shape)} "
                             "cannot be multiplied entry by entry")
    return Term("had", terms, shape=terms[0].shape)


def hadamard_power(a: Term, k: int) -> Term:
    _need_matrix(a, "an entrywise power")
    if isinstance(k, Fraction) and k.denominator == 1:
        k = int(k)
    if isinstance(k, bool) or not isinstance(k, int):
        raise ShapeError(f"an entrywise power needs a whole number, got {k}")
    return Term("hadpow", (a, num(k)), shape=a.shape)


def prim(name: str, *args: Term) -> Term:
    """A primitive applied to scalars, or entrywise to one matrix (``max``/``min`` of scalars)."""
    if name not in PRIMITIVES:
        raise ValueError(f"unknown primitive {name!r}")
    if name in ("max", "min"):
        if len(args) < 2:
            raise ValueError(f"{name} needs two or more arguments")
        for a in args:
            _need_scalar(a, name)
        return Term("prim", args, value=name)
    if name == "heaviside":  # heaviside(x, value at 0)
        if len(args) != 2 or args[1].op != "num":
            raise ValueError("heaviside(x, h0) needs its value at 0 as a number")
    elif len(args) != 1:
        raise ValueError(f"{name} takes one argument")
    return Term("prim", args, value=name, shape=args[0].shape)


def apply(fn: Fn, arg: Term, *params: Term) -> Term:
    """``fn(arg; params)``: on a scalar, or entrywise on a matrix ``arg``."""
    if len(params) != fn.nparams:
        raise ValueError(f"{fn.name} takes {fn.nparams} parameter(s), got {len(params)}")
    for p in params:
        _need_scalar(p, f"a parameter of {fn.name}")
    return Term("apply", (arg, *params), value=fn, shape=arg.shape)


def trace(a: Term) -> Term:
    _need_matrix(a, "trace")
    if not _same(a.rows, a.cols):
        raise ShapeError(f"trace of a non-square {fmt_shape(a.shape)} matrix")
    return Term("trace", (a,))


def total(a: Term) -> Term:
    """The sum of all entries of a matrix."""
    _need_matrix(a, "sum")
    return Term("sum", (a,))


def grad(loss: Term, wrt: Term) -> Term:
    if wrt.op != "sym":
        raise ShapeError("a gradient is taken with respect to a declared matrix or scalar")
    if loss.is_matrix and loss.shape != (1, 1):
        raise ShapeError(f"a gradient needs a scalar or 1x1 loss, got a {fmt_shape(loss.shape)} matrix")
    return Term("grad", (loss, wrt), shape=wrt.shape)


def diff(expr: Term, v: Term, order: int = 1) -> Term:
    _need_scalar(expr, "diff()")
    if v.op != "sym" or v.is_matrix:
        raise ShapeError("the variable of diff() must be a declared scalar")
    return Term("diff", (expr, v), value=order)


def relation(kind: str, a: Term, b: Term) -> Term:
    if kind not in _RELATIONS:
        raise ValueError(kind)
    _need_scalar(a, "a comparison")
    _need_scalar(b, "a comparison")
    return Term(kind, (a, b))


def logic(kind: str, *args: Term) -> Term:
    if kind not in _LOGIC:
        raise ValueError(kind)
    return Term(kind, args)


def piecewise(*pairs: tuple[Term, Term]) -> Term:
    if not pairs:
        raise ValueError("piecewise needs a piece")
    shape = pairs[0][0].shape
    args: list[Term] = []
    for value, cond in pairs:
        _need_scalar(value, "a piece")
        args += [value, cond]
    return Term("piecewise", args, shape=shape)


# ---------------------------------------------------------------------------
# Traversal helpers


def walk(root: Term):
    """Every distinct subterm once (shared nodes visited once), children before parents.

    Function formulas (``Fn.formula``) are not entered: they are closed terms in
    ``var``/``param`` and are walked on their own."""
    seen: set[int] = set()
    order: list[Term] = []
    stack: list[tuple[Term, bool]] = [(root, False)]
    while stack:
        t, ready = stack.pop()
        if ready:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        stack.extend((k, False) for k in reversed(t.args) if id(k) not in seen)
    return order


def symbols(root: Term) -> set[Term]:
    """The ``sym`` leaves of a term."""
    return {t for t in walk(root) if t.op == "sym"}


def dims(root: Term) -> set[str]:
    """The named dimensions a term mentions."""
    out: set[str] = set()
    for t in walk(root):
        if t.shape is not None:
            out.update(d for d in t.shape if isinstance(d, str))
    return out


def substitute(root: Term, mapping: dict[Term, Term]) -> Term:
    """``root`` with every occurrence of a key replaced (shapes must agree)."""
    memo: dict[int, Term] = {}
    for t in walk(root):
        if t in mapping:
            memo[id(t)] = mapping[t]
            continue
        if not t.args:
            memo[id(t)] = t
            continue
        args = tuple(memo[id(a)] for a in t.args)
        memo[id(t)] = t if all(a is b for a, b in zip(args, t.args)) else Term(t.op, args, t.value, t.shape, t.pos)
    return memo[id(root)]


__all__ = [
    "DOMAINS", "PRIMITIVES", "Dim", "Fn", "InvertibleName", "PositiveName", "Term", "add", "apply",
    "const", "det", "diag", "diff", "dimension", "dims", "div", "hessian", "inverse", "is_invertible", "jacobian",
    "norm",
    "explicit", "eye", "fmt_shape", "grad", "hadamard", "hadamard_power", "logic", "matrix", "mul",
    "neg", "num", "ones", "param", "piecewise", "power", "prim", "relation", "scalar", "sub",
    "substitute", "symbols", "total", "trace", "transpose", "var", "walk", "zeros",
]
