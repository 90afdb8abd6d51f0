"""Derivation files (``.deriv``): text -> declarations, definitions and chains.

A derivation file is read line by line::

    # Three layers without activations collapse to one affine map
    matrix x: 1x3, W1: 3x4, b1: 1x4, W2: 4x4, b2: 1x4, W3: 4x2, b3: 1x2
    define h1 = x*W1 + b1

      h1*W2 + b2
    = (x*W1 + b1)*W2 + b2           by definition of h1
    = x*W1*W2 + b1*W2 + b2          by distributivity

* ``matrix NAME: R x C, ...`` (``A, B: n x n`` shares one shape), ``dim n, m``,
  ``scalar a, c``, ``function f`` and ``define NAME = EXPR`` declare names;
* an expression line starts a chain, each following line ``= EXPR [by REASON]``
  adds a step (``A = B = C`` on one line works too); ``#`` starts a comment.

Expressions are read by a whitelist over Python's :mod:`ast`: the text of a
file never reaches ``eval``, ``exec``, ``sympify`` or ``parse_expr``.  Every
node is checked before anything is built, shapes are checked as terms are
combined, and every problem is a :class:`DerivError` whose message starts with
``FILE:LINE:COL:``.  Parsing only *builds* expressions; the kernel
(:mod:`symnet.kernel`, called from :mod:`symnet.notes.checkfile`) decides the steps.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from symnet.errors import ShapeError, SymnetError
from symnet.kernel import terms as T
from symnet.kernel.terms import Term, fmt_shape
from symnet.networks import activations

#: Largest file read, in characters.
MAX_FILE_CHARS = 2_000_000
#: Longest line, and longest single expression, in characters.
MAX_LINE_CHARS = 5_000
MAX_EXPR_CHARS = 2_000
#: Deepest nesting of an expression (brackets, operators, calls).
MAX_DEPTH = 100
#: Most syntax nodes in one expression.
MAX_NODES = 2_000
#: Largest integer exponent (matrix powers, scalar powers with a numeric exponent).
MAX_EXPONENT = 64
#: Largest integer dimension (steps with dimensions over 512 get no numeric check).
MAX_DIM = 10**6
#: Largest number literal, in decimal digits, and the largest power of ten in ``1e..``.
MAX_DIGITS = 100
MAX_DECIMAL_EXPONENT = 300
#: Largest exact number (in bits) that arithmetic on literals may produce.
MAX_NUMBER_BITS = 4_096
#: Most terms a scalar expression may expand to (the kernel expands polynomials).
MAX_EXPANSION = 20_000
#: Highest derivative order in ``diff(EXPR, z, k)``, and the largest derivative (in tree nodes).
MAX_DIFF_ORDER = 8
MAX_DIFF_NODES = 3_000
#: Longest name.
MAX_NAME_CHARS = 64

#: First words of declaration lines (plural forms are accepted too).
DECLARATIONS = {
    "matrix": "matrix", "matrices": "matrix",
    "dim": "dim", "dims": "dim",
    "scalar": "scalar", "scalars": "scalar",
    "function": "function", "functions": "function",
    "define": "define",
}
#: Functions every file may call (besides catalogue activations and declared functions).
BUILTINS = ("exp", "log", "sqrt", "abs", "hadamard", "diff", "grad", "jacobian", "hessian", "ones", "eye",
            "zeros", "trace", "sum", "norm", "inv", "det", "diag")
#: Words that cannot be declared as names.
RESERVED = frozenset(DECLARATIONS) | frozenset(BUILTINS) | {"by"}

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_INT = re.compile(r"[0-9]+\Z")
_FLOAT = re.compile(r"([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?\Z")
_WORD_CHAR = re.compile(r"[A-Za-z0-9_.]")

_ELEMENTWISE = {"exp": "exp", "log": "log", "sqrt": "sqrt", "abs": "abs"}
_OPS = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@",
    ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|",
    ast.BitXor: "^", ast.BitAnd: "&", ast.USub: "-", ast.UAdd: "+", ast.Not: "not",
    ast.Invert: "~",
}
_ALLOWED_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.MatMult)
_FORBIDDEN = {
    ast.Lambda: "lambda expressions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Subscript: "indexing with [...] is not allowed",
    ast.Compare: "comparisons are not allowed (a step is written '= EXPR' on its own)",
    ast.BoolOp: "'and' and 'or' are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.NamedExpr: "':=' is not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.List: "lists are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.JoinedStr: "strings are not allowed",
    ast.FormattedValue: "strings are not allowed",
    ast.Starred: "'*' unpacking is not allowed",
    ast.Slice: "slices are not allowed",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
}


class DerivError(SymnetError):
    """A malformed derivation file; ``str()`` is ``FILE:LINE:COL: what is wrong``.

    ``line`` and ``col`` are 1-based (``col`` counts characters); ``end_col``
    (exclusive, 1-based) marks the end of the offending text when known.
    """

    def __init__(self, path: str, line: int, col: int, message: str, end_col: int | None = None):
        self.path, self.line, self.col, self.message = path, line, max(col, 1), message
        self.end_col = end_col if end_col is not None and end_col > self.col else None
        super().__init__(f"{path}:{line}:{self.col}: {message}")


class _Fail(Exception):
    """A problem inside one piece of text: (start, end) character offsets into it."""

    def __init__(self, start: int, end: int | None, message: str):
        super().__init__(message)
        self.start, self.end, self.message = start, end, message


# ---------------------------------------------------------------------------
# The parsed file


@dataclass(frozen=True)
class Declaration:
    """A declared name: its kind (dim, scalar, matrix, function, define) and value."""

    name: str
    kind: str
    value: Any
    line: int
    col: int


@dataclass(frozen=True)
class Definition:
    """``define NAME = EXPR`` for a matrix: the kernel may unfold ``symbol`` to ``expr``."""

    symbol: Term
    expr: Any
    line: int
    col: int


@dataclass(frozen=True)
class StepSpec:
    """``= expr [by reason]``: ``line``/``col`` locate its ``=``, ``start``/``end`` the expression."""

    expr: Any
    reason: str
    line: int
    col: int
    start: int
    end: int
    text: str
    display: Any = None


@dataclass(frozen=True)
class ChainSpec:
    """An expression and the steps that follow it; ``title`` is the comment just above it."""

    lhs: Any
    steps: tuple[StepSpec, ...]
    line: int
    col: int
    end: int
    text: str
    title: str = ""
    display: Any = None


@dataclass
class DerivFile:
    """A parsed derivation file: names, and definitions and chains in file order."""

    path: str
    title: str
    names: dict[str, Declaration]
    items: list = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def chains(self) -> list[ChainSpec]:
        return [i for i in self.items if isinstance(i, ChainSpec)]

    @property
    def definitions(self) -> list[Definition]:
        return [i for i in self.items if isinstance(i, Definition)]


# ---------------------------------------------------------------------------
# Expressions


def _is_matrix(v: Term) -> bool:
    return v.is_matrix


def _describe(v: Term) -> str:
    return f"a {fmt_shape(v.shape)} matrix" if v.is_matrix else "a scalar"


def _byte_to_char(text: str, offset: int | None) -> int:
    if offset is None:
        return 0
    return len(text.encode("utf-8")[:offset].decode("utf-8", errors="ignore"))


def constant_value(t: Term) -> Fraction | None:
    """The exact value of a term built from number literals only (else None)."""
    op, a = t.op, t.args
    if op == "num":
        return t.value
    if op in ("neg", "add", "sub", "mul", "div", "pow"):
        vals = [constant_value(x) for x in a]
        if any(v is None for v in vals):
            return None
        if op == "neg":
            return -vals[0]
        if op == "add":
            return sum(vals, Fraction(0))
        if op == "sub":
            return vals[0] - vals[1]
        if op == "mul":
            out = Fraction(1)
            for v in vals:
                out *= v
            return out
        if op == "div":
            return None if vals[1] == 0 else vals[0] / vals[1]
        base, k = vals
        if k.denominator != 1 or abs(k) > MAX_EXPONENT or (base == 0 and k < 0):
            return None
        if max(base.numerator.bit_length(), base.denominator.bit_length()) * abs(k) > MAX_NUMBER_BITS:
            return None
        return base ** int(k)
    return None


def expanded_size(t: Term, memo: dict) -> int:
    """An upper estimate of the number of terms of a scalar term once expanded."""
    hit = memo.get(t)
    if hit is not None:
        return hit
    op, a = t.op, t.args
    if op in ("add", "sub"):
        n = sum(expanded_size(x, memo) for x in a)
    elif op in ("mul", "div"):
        n = 1
        for x in a:
            n = min(n * expanded_size(x, memo), 10**9)
    elif op == "neg":
        n = expanded_size(a[0], memo)
    elif op == "pow":
        k = constant_value(a[1])
        base = expanded_size(a[0], memo)
        if k is not None and k.denominator == 1 and k > 0 and base > 1:
            n = min(math.comb(base + int(k) - 1, int(k)), 10**9)
        else:
            n = base
    else:
        n = 1
    memo[t] = n
    return n


class _Builder:
    """Builds one expression from its text, through the whitelist."""

    def __init__(self, scope: dict[str, Declaration], used: set[str]):
        self.scope = scope
        self.used = used
        self.text = ""
        self.sizes: dict = {}

    # -- entry ---------------------------------------------------------------
    def build(self, text: str) -> Any:
        if len(text) > MAX_EXPR_CHARS:
            raise _Fail(0, None, f"expression longer than {MAX_EXPR_CHARS} characters")
        self.text = text
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            offset = (exc.offset or 1) - 1
            offset = min(max(offset, 0), max(len(text) - 1, 0))
            raise _Fail(offset, None, f"syntax error: {exc.msg}") from None
        except (ValueError, MemoryError, RecursionError, OverflowError) as exc:
            raise _Fail(0, None, f"cannot read this expression ({type(exc).__name__}: {exc})") from None
        self._validate(tree.body)
        return self._convert(tree.body)

    def span(self, node: ast.AST) -> tuple[int, int | None]:
        start = _byte_to_char(self.text, getattr(node, "col_offset", 0))
        end = getattr(node, "end_col_offset", None)
        return start, (_byte_to_char(self.text, end) if end is not None else None)

    def fail(self, node: ast.AST, message: str) -> _Fail:
        start, end = self.span(node)
        return _Fail(start, end, message)

    # -- the whitelist, checked before anything is built ---------------------
    def _validate(self, root: ast.AST) -> None:
        stack = [(root, 1)]
        count = 0
        while stack:
            node, depth = stack.pop()
            count += 1
            if depth > MAX_DEPTH:
                raise self.fail(node, f"expression nested deeper than {MAX_DEPTH} levels")
            if count > MAX_NODES:
                raise self.fail(node, f"expression has more than {MAX_NODES} parts")
            children: list[ast.AST] = []
            if isinstance(node, ast.BinOp):
                if not isinstance(node.op, _ALLOWED_BINOPS):
                    raise self.fail(node, f"operator '{_OPS.get(type(node.op), '?')}' is not allowed")
                children = [node.left, node.right]
            elif isinstance(node, ast.UnaryOp):
                if not isinstance(node.op, (ast.USub, ast.UAdd)):
                    raise self.fail(node, f"operator '{_OPS.get(type(node.op), '?')}' is not allowed")
                children = [node.operand]
            elif isinstance(node, ast.Constant):
                value = node.value
                if isinstance(value, bool) or value is None or value is Ellipsis:
                    raise self.fail(node, f"{value!r} is not allowed")
                if isinstance(value, (str, bytes)):
                    raise self.fail(node, "strings are not allowed")
                if isinstance(value, complex):
                    raise self.fail(node, "complex numbers are not allowed")
                if not isinstance(value, (int, float)):
                    raise self.fail(node, "this constant is not allowed")
            elif isinstance(node, ast.Name):
                if not isinstance(node.ctx, ast.Load):
                    raise self.fail(node, "assignment is not allowed")
            elif isinstance(node, ast.Attribute):
                if node.attr != "T":
                    raise self.fail(node, f"attribute '.{node.attr}' is not allowed (only .T, the transpose)")
                children = [node.value]
            elif isinstance(node, ast.Call):
                if not isinstance(node.func, ast.Name):
                    raise self.fail(node.func, "only named functions can be called, as in tanh(x)")
                if node.keywords:
                    raise self.fail(node.keywords[0], "keyword arguments are not allowed; "
                                                      "pass parameters by position")
                for a in node.args:
                    if isinstance(a, ast.Starred):
                        raise self.fail(a, "'*' unpacking is not allowed")
                children = list(node.args)
            else:
                message = _FORBIDDEN.get(type(node), f"{type(node).__name__} expressions are not allowed")
                raise self.fail(node, message)
            stack.extend((c, depth + 1) for c in reversed(children))

    # -- conversion ----------------------------------------------------------
    def _convert(self, node: ast.AST) -> Term:
        try:
            t = self._convert_node(node)
        except ShapeError as exc:
            raise self.fail(node, str(exc)) from None
        line_col = self.span(node)
        return t.at(line_col)

    def _convert_node(self, node: ast.AST) -> Term:
        if isinstance(node, ast.Constant):
            return self._number(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp):
            v = self._convert(node.operand)
            if isinstance(node.op, ast.UAdd):
                return v
            return self._scalar_checked(T.neg(v), node)
        if isinstance(node, ast.Attribute):
            v = self._convert(node.value)
            if not v.is_matrix:
                raise self.fail(node, "'.T' (transpose) needs a matrix, got a scalar")
            return T.transpose(v)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise self.fail(node, f"{type(node).__name__} expressions are not allowed")  # pragma: no cover

    def _number(self, node: ast.Constant) -> Term:
        value = node.value
        if isinstance(value, int):
            if value.bit_length() > MAX_DIGITS * 10 // 3:
                raise self.fail(node, f"number with more than {MAX_DIGITS} digits")
            return T.num(value)
        start, end = self.span(node)
        source = self.text[start:end].replace("_", "")
        m = _FLOAT.match(source)
        if not m or not (m.group(1) or m.group(2)):
            raise self.fail(node, f"cannot read the number {source!r}")
        whole, frac, exp = m.group(1) or "", m.group(2) or "", m.group(3)
        if len(whole) + len(frac) > MAX_DIGITS or (exp is not None and len(exp) > 6):
            raise self.fail(node, f"number with more than {MAX_DIGITS} digits")
        e = int(exp) if exp is not None else 0
        if abs(e) > MAX_DECIMAL_EXPONENT:
            raise self.fail(node, f"number with a power of ten beyond 1e±{MAX_DECIMAL_EXPONENT}")
        # the exact rational the decimal spells
        return T.num(Fraction(int(whole + frac or "0"), 10 ** len(frac)) * Fraction(10) ** e)

    def _name(self, node: ast.Name) -> Term:
        name = node.id
        entry = self.scope.get(name)
        if entry is None:
            if name in BUILTINS or name in activations.CATALOGUE:
                raise self.fail(node, f"'{name}' is a function; write {name}(...)")
            raise self.fail(node, f"unknown name '{name}' (declare it with matrix, scalar, dim or define)")
        if entry.kind == "function":
            raise self.fail(node, f"'{name}' is a function; write {name}(...)")
        self.used.add(name)
        return entry.value

    # -- arithmetic with shape checks ----------------------------------------
    def _scalar_checked(self, value: Term, node: ast.AST) -> Term:
        if not value.is_matrix and expanded_size(value, self.sizes) > MAX_EXPANSION:
            raise self.fail(node, f"this expression expands to more than {MAX_EXPANSION} terms")
        return value

    def _binop(self, node: ast.BinOp) -> Term:
        left = self._convert(node.left)
        right = self._convert(node.right)
        op = node.op
        lm, rm = left.is_matrix, right.is_matrix
        sym = _OPS[type(op)]
        if isinstance(op, (ast.Add, ast.Sub)):
            if lm != rm and (1, 1) not in (left.shape, right.shape):
                raise self.fail(node, f"cannot {'add' if sym == '+' else 'subtract'} {_describe(left)} "
                                      f"and {_describe(right)}")
            if lm and rm and left.shape != right.shape:
                raise self.fail(node, f"shapes {fmt_shape(left.shape)} and {fmt_shape(right.shape)} cannot be "
                                      f"{'added' if sym == '+' else 'subtracted'}")
            return self._scalar_checked(T.add(left, right) if sym == "+" else T.sub(left, right), node)
        if isinstance(op, (ast.Mult, ast.MatMult)):
            if lm and rm and left.cols != right.rows and (1, 1) not in (left.shape, right.shape):
                raise self.fail(node, f"shapes {fmt_shape(left.shape)} and {fmt_shape(right.shape)} "
                                      "cannot be multiplied")
            if sym == "@" and not (lm and rm):
                raise self.fail(node, f"'@' multiplies matrices; got {_describe(left)} and {_describe(right)}")
            return self._scalar_checked(T.mul(left, right), node)
        if isinstance(op, ast.Div):
            if rm:
                raise self.fail(node.right, f"division by {_describe(right)}: only division by scalars is allowed")
            if constant_value(right) == 0:
                raise self.fail(node.right, "division by zero")
            return self._scalar_checked(T.div(left, right), node)
        if isinstance(op, ast.Pow):
            if rm:
                raise self.fail(node.right, "the exponent must be a scalar")
            if lm:
                return self._matpow(left, right, node)
            return self._scalar_pow(left, right, node)
        raise self.fail(node, f"operator '{sym}' is not allowed")  # pragma: no cover

    def _matpow(self, base: Term, k: Term, node: ast.BinOp) -> Term:
        value = constant_value(k)
        if value is None or value.denominator != 1:
            raise self.fail(node.right, "a matrix power needs a whole-number exponent such as A**2")
        if value == -1:
            if not T.is_invertible(base):
                raise self.fail(node, "an inverse needs a matrix declared invertible "
                                      "('matrix A: n x n invertible')")
            return T.inverse(base)
        if value < 0:
            raise self.fail(node.right, "negative matrix powers other than -1 are not supported; "
                                        "write inv(A)**k")
        if value > MAX_EXPONENT:
            raise self.fail(node.right, f"matrix power {value} exceeds the limit of {MAX_EXPONENT}")
        if base.rows != base.cols:
            raise self.fail(node, f"power of a non-square {fmt_shape(base.shape)} matrix")
        return T.power(base, T.num(value))

    def _scalar_pow(self, base: Term, k: Term, node: ast.BinOp) -> Term:
        value = constant_value(k)
        if value is not None:
            if abs(value.numerator) > MAX_EXPONENT or value.denominator > MAX_EXPONENT:
                raise self.fail(node.right, f"exponent {value} exceeds the limit of {MAX_EXPONENT}")
            b = constant_value(base)
            if b is not None:
                if b == 0 and value < 0:
                    raise self.fail(node, "division by zero")
                bits = max(b.numerator.bit_length(), b.denominator.bit_length())
                if bits * abs(value.numerator) > MAX_NUMBER_BITS * value.denominator:
                    raise self.fail(node, f"number too large (more than {MAX_NUMBER_BITS} bits)")
        return self._scalar_checked(T.power(base, k), node)

    # -- calls -----------------------------------------------------------------
    def _call(self, node: ast.Call) -> Term:
        name = node.func.id
        entry = self.scope.get(name)
        if entry is not None:
            if entry.kind != "function":
                raise self.fail(node.func, f"'{name}' is {'a ' + entry.kind if entry.kind != 'define' else 'defined'}, "
                                           "not a function")
            self.used.add(name)
            self._arity(node, 1, 1)
            return T.apply(entry.value, self._convert(node.args[0]))
        if name in _ELEMENTWISE:
            self._arity(node, 1, 1)
            arg = self._convert(node.args[0])
            c = constant_value(arg)
            if c is not None and name == "log" and c <= 0:
                raise self.fail(node, "this expression is undefined (log of a number that is not positive)")
            if c is not None and name == "sqrt" and c < 0:
                raise self.fail(node, "this expression has a complex value; only real values are supported")
            return T.prim(_ELEMENTWISE[name], arg)
        if name == "hadamard":
            return self._hadamard(node)
        if name == "diff":
            if len(node.args) >= 2 and isinstance(node.args[1], ast.Name):
                entry = self.scope.get(node.args[1].id)
                if entry is not None and entry.kind == "matrix":
                    return self._grad(node)  # d/dX of a scalar: the gradient, shaped like X
            return self._diff(node)
        if name == "grad":
            return self._grad(node)
        if name in ("jacobian", "hessian"):
            return self._second(node, name)
        if name in ("sum", "norm", "inv", "det", "diag"):
            self._arity(node, 1, 1)
            m = self._convert(node.args[0])
            if name != "norm" and not m.is_matrix:
                raise self.fail(node.args[0], f"{name}() needs a matrix, got a scalar")
            return {"sum": T.total, "norm": T.norm, "inv": T.inverse, "det": T.det, "diag": T.diag}[name](m)
        if name in ("ones", "zeros"):
            self._arity(node, 2, 2)
            r, c = (self._dim_arg(a) for a in node.args)
            return T.ones(r, c) if name == "ones" else T.zeros(r, c)
        if name == "eye":
            self._arity(node, 1, 1)
            return T.eye(self._dim_arg(node.args[0]))
        if name == "trace":
            self._arity(node, 1, 1)
            m = self._convert(node.args[0])
            if not m.is_matrix:
                raise self.fail(node.args[0], "trace needs a square matrix, got a scalar")
            if m.rows != m.cols:
                raise self.fail(node.args[0], f"trace of a non-square {fmt_shape(m.shape)} matrix")
            return T.trace(m)
        if name in activations.CATALOGUE:
            return self._activation(node, name)
        raise self.fail(node.func, f"unknown function '{name}'")

    def _arity(self, node: ast.Call, low: int, high: int) -> None:
        n = len(node.args)
        if not low <= n <= high:
            want = str(low) if low == high else f"{low} to {high}"
            raise self.fail(node, f"{node.func.id}() takes {want} argument{'s' if high > 1 else ''}, got {n}")

    def _activation(self, node: ast.Call, name: str) -> Term:
        record = activations.lookup(name)
        params = record.parameters
        n = len(node.args)
        required = sum(1 for p in params if p.default is None)
        if not 1 + required <= n <= 1 + len(params):
            names = ", ".join(p.name for p in params)
            if not params:
                message = f"{name}() takes one argument, got {n}"
            else:
                message = f"{name}() takes the argument and then its parameters ({names}) in order; got {n} argument(s)"
            raise self.fail(node, message)
        arg = self._convert(node.args[0])
        values = []
        for i, p in enumerate(params):
            if i + 1 < n:
                a = node.args[i + 1]
                v = self._convert(a)
                if v.is_matrix:
                    raise self.fail(a, f"parameter {p.name} of {name} must be a scalar")
                c = constant_value(v)
                if p.positive and c is not None and c <= 0:
                    raise self.fail(a, f"parameter {p.name} of {name} must be positive, got {c}")
                values.append(v)
            else:
                values.append(activations.default_term(p))
        fn = activations.function_of(record)
        if fn.name == "identity":
            return T.apply(fn, arg)
        return T.apply(fn, arg, *values)

    def _hadamard(self, node: ast.Call) -> Term:
        if len(node.args) < 2:
            raise self.fail(node, "hadamard() takes two or more matrices")
        args = [self._convert(a) for a in node.args]
        for a, v in zip(node.args, args):
            if not v.is_matrix:
                raise self.fail(a, "hadamard() multiplies matrices entry by entry; got a scalar")
        for a, v in zip(node.args[1:], args[1:]):
            if v.shape != args[0].shape:
                raise self.fail(a, f"shapes {fmt_shape(args[0].shape)} and {fmt_shape(v.shape)} "
                                   "cannot be multiplied entry by entry")
        return T.hadamard(*args)

    def _diff(self, node: ast.Call) -> Term:
        self._arity(node, 2, 3)
        expr = self._convert(node.args[0])
        if expr.is_matrix:
            raise self.fail(node.args[0], "diff() differentiates scalar expressions; got a matrix")
        var = node.args[1]
        entry = self.scope.get(var.id) if isinstance(var, ast.Name) else None
        if entry is None or entry.kind != "scalar":
            raise self.fail(var, "the variable of diff() must be a declared scalar")
        self.used.add(var.id)
        order = 1
        if len(node.args) == 3:
            k = node.args[2]
            if not (isinstance(k, ast.Constant) and type(k.value) is int and 1 <= k.value <= MAX_DIFF_ORDER):
                raise self.fail(k, f"the order of diff() must be a whole number from 1 to {MAX_DIFF_ORDER}")
            order = k.value
        if any(t.op == "trace" for t in T.walk(expr)):
            raise self.fail(node.args[0], "diff() of an expression with trace(...) is not supported")
        return T.diff(expr, entry.value, order)

    def _variable(self, node: ast.Call, a: ast.AST, what: str) -> Term:
        entry = self.scope.get(a.id) if isinstance(a, ast.Name) else None
        if entry is None or entry.kind != "matrix":
            raise self.fail(a, f"the variable of {what}() must be a declared matrix or vector")
        self.used.add(a.id)
        return entry.value

    def _grad(self, node: ast.Call) -> Term:
        """``grad(L, X)`` (or ``diff(L, X)``): dL/dX for a scalar or 1x1 ``L``, shaped like ``X``."""
        self._arity(node, 2, 2)
        loss = self._convert(node.args[0])
        if loss.is_matrix and loss.shape != (1, 1):
            raise self.fail(node.args[0], f"a gradient needs a scalar (or 1x1) expression, got a "
                                          f"{fmt_shape(loss.shape)} matrix; use jacobian() for vectors")
        return T.grad(loss, self._variable(node, node.args[1], node.func.id))

    def _second(self, node: ast.Call, name: str) -> Term:
        self._arity(node, 2, 2)
        first = self._convert(node.args[0])
        x = self._variable(node, node.args[1], name)
        return (T.jacobian if name == "jacobian" else T.hessian)(first, x)

    def _dim_arg(self, a: ast.AST) -> T.Dim:
        if isinstance(a, ast.Constant) and type(a.value) is int:
            if not 1 <= a.value <= MAX_DIM:
                raise self.fail(a, f"a dimension must be a whole number from 1 to {MAX_DIM}")
            return a.value
        if isinstance(a, ast.Name):
            entry = self.scope.get(a.id)
            if entry is not None and entry.kind == "dim":
                self.used.add(a.id)
                return a.id
            raise self.fail(a, f"'{a.id}' is not a declared dim")
        raise self.fail(a, "a dimension must be a whole number or a declared dim")


# ---------------------------------------------------------------------------
# Lines


def _strip_comment(line: str) -> tuple[str, str | None]:
    i = line.find("#")
    if i < 0:
        return line, None
    return line[:i], line[i + 1:].strip()


def _split_steps(code: str, start: int) -> tuple[list[tuple[int, int, int]], tuple[int, str] | None]:
    """Split ``code[start:]`` at top-level ``=`` signs and a trailing ``by REASON``.

    Returns pieces ``(eq_col, start, end)`` (``eq_col`` is -1 for the first piece,
    else the offset of the ``=`` before it) and the reason ``(offset, text)``.
    """
    pieces = []
    depth = 0
    begin, eq = start, -1
    reason = None
    i, n = start, len(code)
    while i < n:
        ch = code[i]
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _Fail(i, i + 1, f"brackets nested deeper than {MAX_DEPTH} levels")
        elif ch in ")]}":
            depth -= 1
        elif depth <= 0 and ch == "=":
            nxt = code[i + 1] if i + 1 < n else ""
            prev = code[i - 1] if i > 0 else ""
            if nxt == "=":
                raise _Fail(i, i + 2, "'==' is not allowed; write each step as '= EXPR'")
            if prev and prev in "<>!:+-*/%@&|^~":
                raise _Fail(i - 1, i + 1, f"'{prev}=' is not allowed")
            pieces.append((eq, begin, i))
            begin, eq = i + 1, i
        elif depth <= 0 and ch == "b" and code.startswith("by", i):
            before = code[i - 1] if i > 0 else " "
            after = code[i + 2] if i + 2 < n else " "
            if not _WORD_CHAR.match(before) and not _WORD_CHAR.match(after):
                reason = (i, code[i + 2:].strip())
                n = i
                break
        i += 1
    pieces.append((eq, begin, n))
    return pieces, reason


def _trim(code: str, start: int, end: int) -> tuple[int, int]:
    while start < end and code[start].isspace():
        start += 1
    while end > start and code[end - 1].isspace():
        end -= 1
    return start, end


def _find_control(line: str) -> int:
    for i, ch in enumerate(line):
        o = ord(ch)
        if (o < 32 and ch != "\t") or o == 127 or 0xD800 <= o <= 0xDFFF or ch in "\u2028\u2029\ufeff":
            return i
    return -1


class _Reader:
    """Reads a derivation file line by line into a :class:`DerivFile`."""

    def __init__(self, text: str, path: str):
        self.path = path
        self.text = text
        self.names: dict[str, Declaration] = {}
        self.used: set[str] = set()
        self.items: list = []
        self.functions = 0
        self.chain: dict | None = None
        self.comments: list[str] = []
        self.title = ""
        self.lineno = 0
        self.line = ""

    # -- errors --------------------------------------------------------------
    def error(self, col0: int, message: str, end0: int | None = None) -> DerivError:
        """An error at 0-based character offset ``col0`` of the current line."""
        return DerivError(self.path, self.lineno, col0 + 1, message, end0 + 1 if end0 is not None else None)

    def build(self, code: str, start: int, end: int) -> Any:
        builder = _Builder(self.names, self.used)
        try:
            return builder.build(code[start:end])
        except _Fail as f:
            raise self.error(start + f.start, f.message, start + f.end if f.end is not None else None) from None
        except DerivError:
            raise
        except (RecursionError, MemoryError):
            raise self.error(start, "expression too deeply nested or too large") from None
        except Exception as exc:  # SymPy refusing an expression (its ShapeError, TypeError, ...)
            raise self.error(start, f"cannot build this expression ({type(exc).__name__}: {exc})", end) from None

    # -- reading -------------------------------------------------------------
    def read(self) -> DerivFile:
        if len(self.text) > MAX_FILE_CHARS:
            raise DerivError(self.path, 1, 1, f"file longer than {MAX_FILE_CHARS} characters")
        text = self.text.replace("\r\n", "\n")
        lines = text.split("\n")
        seen_code = False
        for self.lineno, self.line in enumerate(lines, start=1):
            line = self.line
            bad = _find_control(line)
            if bad >= 0:
                raise self.error(bad, f"control character U+{ord(line[bad]):04X} is not allowed")
            if len(line) > MAX_LINE_CHARS:
                raise self.error(MAX_LINE_CHARS, f"line longer than {MAX_LINE_CHARS} characters")
            code, comment = _strip_comment(line)
            if not code.strip():
                if comment is not None:
                    if not seen_code and comment.lower().startswith("title:"):
                        self.title = comment[len("title:"):].strip()  # a header says it outright
                    elif not seen_code and not self.title and comment:
                        self.title = comment
                    else:
                        self.comments.append(comment)
                else:
                    self.comments = []
                continue
            seen_code = True
            self.dispatch(code)
            self.comments = []
        self.end_chain()
        return DerivFile(self.path, self.title, dict(self.names), self.items, lines)

    def dispatch(self, code: str) -> None:
        start = len(code) - len(code.lstrip())
        if code[start] == "=":
            self.step_line(code, start)
            return
        word = re.match(r"[A-Za-z_]+", code[start:])
        if word and word.group(0) in DECLARATIONS:
            rest = start + word.end()
            if rest == len(code) or code[rest].isspace() or code[rest] == ":":
                self.end_chain()
                kind = DECLARATIONS[word.group(0)]
                if kind == "define":
                    self.define(code, rest)
                elif kind == "matrix":
                    self.matrices(code, rest)
                else:
                    self.plain_names(code, rest, kind)
                return
        self.expression_line(code, start)

    # -- chains --------------------------------------------------------------
    def end_chain(self) -> None:
        chain, self.chain = self.chain, None
        if chain is None:
            return
        if not chain["steps"]:
            raise DerivError(self.path, chain["line"], chain["col"] + 1,
                             "an expression needs at least one '= EXPR' step after it",
                             chain["end"] + 1)
        lhs = chain["lhs"]
        self.items.append(ChainSpec(lhs, tuple(chain["steps"]), chain["line"], chain["col"] + 1,
                                    chain["end"] + 1, chain["text"], chain["title"], lhs))

    def split(self, code: str, start: int):
        try:
            return _split_steps(code, start)
        except _Fail as f:
            raise self.error(f.start, f.message, f.end) from None

    def expression_line(self, code: str, start: int) -> None:
        pieces, reason = self.split(code, start)
        if len(pieces) == 1 and self.chain is not None and self.chain.get("last") == self.lineno - 1:
            raise self.error(start, "this line continues the chain above but has no '=': did you forget '='? "
                                    "(leave a blank line to start a new chain)")
        self.end_chain()
        eq, s, e = pieces[0]
        s, e = _trim(code, s, e)
        if s == e:
            raise self.error(start, "missing expression")
        lhs = self.build(code, s, e)
        self.chain = {"lhs": lhs, "steps": [], "line": self.lineno, "col": s, "end": e,
                      "text": code[s:e], "title": " ".join(c for c in self.comments if c)}
        if len(pieces) == 1 and reason is not None:
            raise self.error(reason[0], "'by REASON' belongs to a step: write it after '= EXPR'")
        self.add_steps(code, pieces[1:], reason)

    def step_line(self, code: str, start: int) -> None:
        if self.chain is None:
            raise self.error(start, "a step '= EXPR' must follow an expression line")
        pieces, reason = self.split(code, start)
        self.add_steps(code, pieces[1:], reason)

    def add_steps(self, code: str, pieces: list, reason: tuple[int, str] | None) -> None:
        for k, (eq, s, e) in enumerate(pieces):
            s, e = _trim(code, s, e)
            if s == e:
                raise self.error(eq, "missing expression after '='")
            expr = self.build(code, s, e)
            why = reason[1] if reason is not None and k == len(pieces) - 1 else ""
            self.chain["last"] = self.lineno
            self.chain["steps"].append(StepSpec(expr, why, self.lineno, eq + 1, s + 1, e + 1,
                                                code[s:e], expr))

    # -- declarations --------------------------------------------------------
    def check_name(self, name: str, col: int, kind: str, allow_declared_matrix: bool = False) -> None:
        end = col + len(name)
        if not name:
            raise self.error(col, f"missing name after '{kind}'")
        if not _NAME.match(name):
            raise self.error(col, f"'{name}' is not a valid name (letters, digits and _, starting with a letter)", end)
        if len(name) > MAX_NAME_CHARS:
            raise self.error(col, f"name longer than {MAX_NAME_CHARS} characters", end)
        if keyword.iskeyword(name) or name in RESERVED or "__" in name:
            raise self.error(col, f"'{name}' is a reserved word and cannot be declared", end)
        old = self.names.get(name)
        if old is not None and not (allow_declared_matrix and old.kind == "matrix"):
            raise self.error(col, f"'{name}' is already declared (line {old.line})", end)

    def items_of(self, code: str, start: int) -> list[tuple[int, int]]:
        """Comma-separated items of ``code[start:]`` as trimmed (start, end) spans."""
        spans, begin = [], start
        for i in range(start, len(code) + 1):
            if i == len(code) or code[i] == ",":
                s, e = _trim(code, begin, i)
                if s == e:
                    raise self.error(min(i, len(code) - 1) if code else 0, "missing name")
                spans.append((s, e))
                begin = i + 1
        return spans

    def declare(self, name: str, kind: str, value: Any, col: int) -> None:
        self.names[name] = Declaration(name, kind, value, self.lineno, col + 1)

    def plain_names(self, code: str, start: int, kind: str) -> None:
        if not code[start:].strip():
            raise self.error(start, f"'{kind}' needs at least one name")
        for s, e in self.items_of(code, start):
            name = code[s:e]
            self.check_name(name, s, kind)
            if kind == "dim":
                value: Any = T.dimension(name)
            elif kind == "scalar":
                value = T.scalar(name)
            else:
                value = T.Fn(name)
                self.functions += 1
            self.declare(name, kind, value, s)

    def matrices(self, code: str, start: int) -> None:
        if not code[start:].strip():
            raise self.error(start, "'matrix' needs NAME: ROWS x COLS")
        pending: list[tuple[str, int]] = []
        for s, e in self.items_of(code, start):
            item = code[s:e]
            colon = item.find(":")
            if colon < 0:
                self.check_name(item, s, "matrix")
                pending.append((item, s))
                continue
            ns, ne = _trim(code, s, s + colon)
            name = code[ns:ne]
            self.check_name(name, ns, "matrix")
            end = e
            invertible = re.search(r"\binvertible\s*$", code[s + colon + 1:e])
            if invertible:
                end = s + colon + 1 + invertible.start()
            shape = self.shape(code, s + colon + 1, end)
            if invertible and shape[0] != shape[1]:
                raise self.error(s + colon + 1, f"only a square matrix can be invertible, not "
                                                f"{shape[0]}x{shape[1]}", e)
            for pname, pcol in pending + [(name, ns)]:
                if pname in self.names:
                    raise self.error(pcol, f"'{pname}' is already declared", pcol + len(pname))
                self.declare(pname, "matrix", T.matrix(pname, *shape, invertible=bool(invertible)), pcol)
            pending = []
        if pending:
            name, col = pending[-1]
            raise self.error(col, f"no shape given for '{name}' (write {name}: ROWS x COLS)", col + len(name))

    def shape(self, code: str, start: int, end: int) -> tuple[T.Dim, T.Dim]:
        s, e = _trim(code, start, end)
        text = code[s:e]
        if not text:
            raise self.error(start, "missing shape (write ROWS x COLS)")
        candidates, problems = [], []
        for i, ch in enumerate(text):
            if ch not in "x×":
                continue
            left, right = text[:i].strip(), text[i + 1:].strip()
            if not all(_INT.match(p) or _NAME.match(p) for p in (left, right)):
                continue
            dims = []
            for part in (left, right):
                if _INT.match(part):
                    if len(part) > 7 or not 1 <= int(part) <= MAX_DIM:
                        problems.append(f"a dimension must be a whole number from 1 to {MAX_DIM}")
                        break
                    dims.append(int(part))
                else:
                    entry = self.names.get(part)
                    if entry is None or entry.kind != "dim":
                        problems.append(f"unknown dimension '{part}' (declare it with 'dim {part}')")
                        break
                    dims.append(part)
            if len(dims) == 2:
                candidates.append((dims[0], dims[1]))
        if len(candidates) == 1:
            for d in candidates[0]:
                if isinstance(d, str):
                    self.used.add(d)
            return candidates[0]
        if len(candidates) > 1:
            raise self.error(s, f"ambiguous shape '{text}': write it with spaces, as ROWS x COLS", e)
        if problems:
            raise self.error(s, problems[0], e)
        raise self.error(s, f"'{text}' is not a shape; write ROWS x COLS (whole numbers or declared dims)", e)

    def define(self, code: str, start: int) -> None:
        pieces, reason = self.split(code, start)
        if reason is not None:
            raise self.error(reason[0], "a definition takes no 'by REASON'")
        if len(pieces) != 2:
            where = pieces[2][0] if len(pieces) > 2 else len(code.rstrip())
            raise self.error(where, "write a definition as: define NAME = EXPR")
        _, ns, ne = pieces[0]
        ns, ne = _trim(code, ns, ne)
        name = code[ns:ne]
        self.check_name(name, ns, "define", allow_declared_matrix=True)
        eq, s, e = pieces[1]
        s, e = _trim(code, s, e)
        if s == e:
            raise self.error(eq, "missing expression after '='")
        declared = self.names.get(name)
        if declared is not None and name in self.used:
            raise self.error(ns, f"'{name}' is used before its definition", ne)
        expr = self.build(code, s, e)
        if declared is not None and name in self.used:
            raise self.error(ns, f"the definition of '{name}' refers to itself", ne)
        if not expr.is_matrix:
            if declared is not None:
                raise self.error(s, f"'{name}' was declared a {fmt_shape(declared.value.shape)} matrix, "
                                    "but this is a scalar", e)
            symbol = T.scalar(name)
            self.declare(name, "define", symbol, ns)
            self.items.append(Definition(symbol, expr, self.lineno, ns + 1))
            return
        if declared is not None:
            symbol = declared.value
            if symbol.shape != expr.shape:
                raise self.error(s, f"'{name}' was declared {fmt_shape(symbol.shape)}, "
                                    f"but this is a {fmt_shape(expr.shape)} matrix", e)
        else:
            symbol = T.matrix(name, *expr.shape)
        self.declare(name, "define", symbol, ns)
        self.items.append(Definition(symbol, expr, self.lineno, ns + 1))


def parse(text: str, path: str = "<string>") -> DerivFile:
    """Read a derivation file's text; raises :class:`DerivError` (``FILE:LINE:COL: ...``)."""
    if not isinstance(text, str):
        raise SymnetError(f"{path}: expected text, got {type(text).__name__}")
    reader = _Reader(text, path)
    try:
        return reader.read()
    except DerivError:
        raise
    except (RecursionError, MemoryError):
        raise DerivError(path, max(reader.lineno, 1), 1, "input too deeply nested or too large") from None
    except Exception as exc:  # a defect; still reported with its place, never a traceback
        raise DerivError(path, max(reader.lineno, 1), 1,
                         f"internal error while reading this line ({type(exc).__name__}: {exc})") from None


def decode(data: bytes, path: str) -> str:
    """UTF-8 text of a file's bytes; an error names the line and column of the first bad byte."""
    try:
        return data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8")
    except UnicodeDecodeError as exc:
        head = data[: exc.start]
        line = head.count(b"\n") + 1
        col = len(head[head.rfind(b"\n") + 1:].decode("utf-8", errors="replace")) + 1
        raise DerivError(path, line, col, f"not UTF-8 text (byte 0x{data[exc.start]:02x})") from None


def unspecified_function(name: str, index: int = 0) -> Any:
    """An opaque scalar function ``name`` for SymPy-built derivations (no
    assumptions, no numeric value: the kernel treats it as opaque and the judge
    evaluates its own stand-in)."""
    import sympy as sp

    return sp.Function(name)


__all__ = [
    "BUILTINS",
    "ChainSpec",
    "Declaration",
    "DerivError",
    "DerivFile",
    "Definition",
    "StepSpec",
    "decode",
    "parse",
    "unspecified_function",
]
