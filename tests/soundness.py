"""Wrong variants of checked steps, and an independent judge of whether they are wrong.

The soundness suite replays every checked step of a derivation with wrong
variants ("mutants") of its expression and asks the checker about each: a
sound checker never says ``proved`` about a false step.

* :func:`mutants` makes one-slip variants of a SymPy matrix expression: a
  dropped, duplicated or sign-flipped term, swapped factors, a wrong or missing
  transpose, a changed exponent or coefficient, a wrong elementwise function or
  derivative, an off-by-one shape (a same-named symbol with one more row or
  column, built without SymPy's shape validation: a trap for the checker).
* :func:`text_mutants` makes the same slips in the text of a ``.deriv`` step,
  by rewriting Python's ``ast`` of the expression (never evaluating it).
* :func:`differs` is the independent judge: it substitutes random explicit
  matrices (30-digit SymPy Floats) for every symbol, unfolds definitions,
  evaluates gradients ``Grad(L, W)`` by differentiating the explicit loss entry
  by entry, and compares the two sides.  It shares no code with the kernel's
  normal form or its numeric evaluator.
* :func:`audit` runs the checker on the mutants of a list of proved steps and
  returns the mutants it proved although the judge shows them false.  A mutant
  that happens to be *true* (``a*b`` swapped to ``b*a`` for scalars) may be
  proved; the judge tells the two apart.
"""

from __future__ import annotations

import ast
import copy
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardProduct

from symnet.errors import SymnetError

# ---------------------------------------------------------------------------
# Mutants of SymPy expressions

_SHAPE_ERRORS = (sp.matrices.exceptions.ShapeError, ValueError, TypeError, AttributeError, IndexError)


def _rebuild(e, args):
    try:
        return _rebuild_unchecked(e, args)
    except _SHAPE_ERRORS:
        return None


def _rebuild_unchecked(e, args):
    if isinstance(e, sp.Expr) and not isinstance(e, sp.MatrixExpr):
        return e.func(*args)
    if isinstance(e, (sp.MatAdd, sp.MatMul)):
        return type(e)(*args, evaluate=False)
    if isinstance(e, sp.Transpose):
        return sp.Transpose(args[0])
    if isinstance(e, ElementwiseApplyFunction):
        return sp.Basic.__new__(ElementwiseApplyFunction, e.function, args[1])
    if isinstance(e, HadamardProduct):
        return HadamardProduct(*args)
    if isinstance(e, sp.MatPow):
        return sp.MatPow(*args)
    if type(e).__name__ == "Grad":
        return type(e)(*args)
    return None


def _unchecked(cls, args):
    """``cls(*args)`` without SymPy's validation (what a careless constructor would build)."""
    return cls._from_args(tuple(args))


#: Wrong elementwise functions: each is a plausible slip for the one it replaces.
_WRONG_BODIES = (
    lambda z, f: f + z / 7,                  # a stray term
    lambda z, f: sp.diff(f, z) if f.has(z) else f + 1,  # the derivative instead of the function
    lambda z, f: f.subs(z, -z),              # the argument's sign
    lambda z, f: f**2 if f != z else sp.tanh(z),  # squared
)


def _square(m) -> bool:
    try:
        return sp.simplify(m.shape[0] - m.shape[1]) == 0
    except Exception:  # noqa: BLE001
        return False


def _scalar_local(e):
    """(kind, mutant) for one scalar node ``e``."""
    if isinstance(e, sp.Add):
        args = list(e.args)
        for i in range(len(args)):
            yield "drop term", sp.Add(*(args[:i] + args[i + 1:]))
            yield "flip sign", sp.Add(*(args[:i] + [-args[i]] + args[i + 1:]))
            yield "duplicate term", sp.Add(*args, args[i])
    elif isinstance(e, sp.Mul):
        coeff, rest = e.as_coeff_Mul()
        if coeff != 1:
            yield "change coefficient", (coeff + 1) * rest
        yield "flip sign", -e
        factors = list(e.args)
        if len(factors) > 1:
            for i in range(len(factors)):
                if not factors[i].is_Number:
                    yield "drop factor", sp.Mul(*(factors[:i] + factors[i + 1:]))
    elif isinstance(e, sp.Pow) and e.exp.is_Rational:
        yield "change exponent", sp.Pow(e.base, e.exp + 1)
        yield "change exponent", sp.Pow(e.base, e.exp - 1) if e.exp != 1 else sp.Pow(e.base, 2)
    elif isinstance(e, sp.Function) and len(e.args) == 1:
        (a,) = e.args
        yield "wrong function", e.func(2 * a)
        yield "wrong function", e + a / 7
        yield "wrong derivative", sp.diff(e, a) if a.is_Symbol else e.func(a) ** 2
    if isinstance(e, (sp.Symbol, sp.Function)):
        yield "change coefficient", 2 * e


def _local(e):
    """(kind, mutant) for one node ``e``."""
    if isinstance(e, sp.Expr) and not isinstance(e, sp.MatrixExpr):
        yield from _scalar_local(e)
        return
    if isinstance(e, sp.MatAdd) and len(e.args) >= 2:
        args = list(e.args)
        for i in range(len(args)):
            rest = args[:i] + args[i + 1:]
            yield "drop term", sp.MatAdd(*rest, evaluate=False) if len(rest) > 1 else rest[0]
            yield "duplicate term", sp.MatAdd(*args, args[i], evaluate=False)
            yield "flip sign", sp.MatAdd(*(args[:i] + [sp.MatMul(-1, args[i], evaluate=False)] + args[i + 1:]),
                                         evaluate=False)
    if isinstance(e, sp.MatMul):
        mats = [i for i, a in enumerate(e.args) if isinstance(a, sp.MatrixExpr)]
        for i, j in zip(mats, mats[1:]):
            if e.args[i] != e.args[j]:
                args = list(e.args)
                args[i], args[j] = args[j], args[i]
                swapped = _rebuild(e, args)
                if swapped is not None:
                    yield "swap factors", swapped
        for i in mats:
            a = e.args[i]
            if _square(a) and a != a.T:
                args = list(e.args)
                args[i] = a.arg if isinstance(a, sp.Transpose) else sp.Transpose(a)
                transposed = _rebuild(e, args)
                if transposed is not None:
                    yield "wrong transpose", transposed
        scalars = [i for i, a in enumerate(e.args) if not isinstance(a, sp.MatrixExpr)]
        for i in scalars:
            c = e.args[i]
            for kind, new in (("change coefficient", c + 1), ("flip sign", -c),
                              ("change exponent", c**2 if c not in (0, 1, -1) else c + 2)):
                args = list(e.args)
                args[i] = new
                m = _rebuild(e, args)
                if m is not None:
                    yield kind, m
        if len(mats) > 1:
            for i in mats:  # drop one matrix factor when the shapes still fit
                args = [a for k, a in enumerate(e.args) if k != i]
                m = _rebuild(e, args)
                if m is not None and m.shape == e.shape:
                    yield "drop factor", m
    if isinstance(e, sp.MatPow) and e.exp.is_Integer:
        for k in (e.exp + 1, e.exp - 1):
            if k >= 0:
                yield "change exponent", sp.MatPow(e.base, k)
    if isinstance(e, ElementwiseApplyFunction):
        lam = e.function
        (z,) = lam.variables
        for wrong in _WRONG_BODIES:
            try:
                body = wrong(z, lam.expr)
            except Exception:  # noqa: BLE001
                continue
            if body != lam.expr:
                yield "wrong function", sp.Basic.__new__(ElementwiseApplyFunction, sp.Lambda(z, body), e.expr)
    if isinstance(e, HadamardProduct) and len(e.args) >= 2:
        for i in range(len(e.args)):
            rest = list(e.args[:i]) + list(e.args[i + 1:])
            yield "drop factor", rest[0] if len(rest) == 1 else HadamardProduct(*rest)
    if isinstance(e, sp.Transpose) and _square(e.arg):
        yield "wrong transpose", e.arg
    if isinstance(e, sp.MatrixSymbol):
        r, c = e.shape
        if not (r == 1 and c == 1):
            yield "off-by-one shape", sp.MatrixSymbol(e.name, r + 1, c)
            yield "off-by-one shape", sp.MatrixSymbol(e.name, r, c + 1)
        if _square(e):
            yield "wrong transpose", sp.Transpose(e)
    if isinstance(e, (sp.OneMatrix, sp.Identity, sp.ZeroMatrix)):
        r, c = e.shape
        yield "off-by-one shape", sp.OneMatrix(r, c + 1) if isinstance(e, sp.OneMatrix) else sp.ZeroMatrix(r + 1, c)
    if isinstance(e, sp.MatrixExpr):
        yield "change coefficient", sp.MatMul(2, e, evaluate=False)


def _rebuild_loose(node, args):
    """Rebuild ``node`` with ``args``; fall back to an unvalidated node (for off-by-one shapes)."""
    rebuilt = _rebuild(node, args)
    if rebuilt is not None:
        return rebuilt
    if isinstance(node, (sp.MatAdd, sp.MatMul, HadamardProduct)):
        return _unchecked(type(node), args)
    return None


def mutants(e, limit: int = 40, offset: int = 0):
    """One-slip variants ``(kind, expr)`` of ``e``: deterministic, kinds interleaved (from the
    ``offset``-th kind on), at most ``limit``."""
    out: list = []

    def walk(node, wrap, depth=0):
        if depth > 60:
            return
        for kind, m in _local(node):
            try:
                out.append((kind, wrap(m)))
            except _SHAPE_ERRORS:
                continue
        for k, arg in enumerate(node.args):
            if isinstance(arg, sp.MatrixExpr) or (isinstance(arg, sp.Expr) and not arg.is_Atom
                                                  and not isinstance(arg, (sp.Lambda, sp.Dummy))
                                                  and not isinstance(node, ElementwiseApplyFunction)):
                def inner(m, k=k, node=node, wrap=wrap):
                    args = list(node.args)
                    args[k] = m
                    rebuilt = _rebuild_loose(node, args)
                    return wrap(rebuilt) if rebuilt is not None else None
                walk(arg, inner, depth + 1)

    try:
        walk(e, lambda m: m) if isinstance(e, sp.Basic) else None
    except _SHAPE_ERRORS:
        pass
    seen, by_kind = set(), {}
    for kind, m in out:
        if m is None or m == e or m in seen:
            continue
        seen.add(m)
        by_kind.setdefault(kind, []).append((kind, m))
    # interleave the kinds so that a limit keeps every kind of slip
    groups = list(by_kind.values())
    if groups:
        k = offset % len(groups)
        groups = groups[k:] + groups[:k]
    result = [m for group in itertools.zip_longest(*groups) for m in group if m is not None]
    return result[:limit]


# ---------------------------------------------------------------------------
# Mutants of .deriv step texts (ast in, ast.unparse out: nothing is evaluated)

#: Plausible wrong functions (one argument each).
FUNCTION_SLIPS = {
    "tanh": "sigmoid", "sigmoid": "tanh", "softplus": "sigmoid", "relu": "softplus", "arctan": "tanh",
    "softsign": "tanh", "gaussian": "sigmoid", "silu": "softplus", "mish": "silu", "exp": "sigmoid",
    "log": "softplus", "sqrt": "softplus", "abs": "relu", "step": "sigmoid", "elu": "relu",
    "gelu": "silu", "sin": "tanh", "softmax": "sigmoid",
}
_SHAPE_CALLS = ("ones", "zeros", "eye")


def _nodes(tree):
    return list(ast.walk(tree))


def text_mutants(text: str, matrices: Iterable[str] = (), functions: Iterable[str] = (),
                 limit: int = 12, offset: int = 0) -> list[tuple[str, str]]:
    """One-slip variants ``(kind, text)`` of an expression's text, kinds interleaved
    (starting ``offset`` kinds further, so that a small limit varies from step to step)."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return []
    matrices = set(matrices)
    declared = list(functions)
    count = len(_nodes(tree))
    # numbers that are sizes or derivative orders get their own slips, not "change coefficient"
    special = {id(a) for n in _nodes(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
               and n.func.id in _SHAPE_CALLS + ("diff",) for a in n.args if isinstance(a, (ast.Constant, ast.Name))}
    special |= {id(n.func) for n in _nodes(tree) if isinstance(n, ast.Call)}
    out: dict[str, list[str]] = {}

    def add(kind, new_tree):
        try:
            s = ast.unparse(ast.fix_missing_locations(new_tree))
        except Exception:  # noqa: BLE001
            return
        if s.replace(" ", "") != text.replace(" ", "") and s not in out.get(kind, []):
            out.setdefault(kind, []).append(s)

    def replace(i, make):
        t = copy.deepcopy(tree)
        node = _nodes(t)[i]
        parent_field = None
        for p in ast.walk(t):
            for name, value in ast.iter_fields(p):
                if value is node:
                    parent_field = (p, name, None)
                elif isinstance(value, list) and any(v is node for v in value):
                    parent_field = (p, name, next(k for k, v in enumerate(value) if v is node))
        new = make(node)
        if new is None:
            return None
        if parent_field is None:
            t.body = new
        else:
            p, name, k = parent_field
            if k is None:
                setattr(p, name, new)
            else:
                getattr(p, name)[k] = new
        return t

    for i in range(count):
        node = _nodes(tree)[i]
        local: list[tuple[str, Callable]] = []
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, (ast.Mult, ast.MatMult)):
                if ast.dump(node.left) != ast.dump(node.right):
                    local.append(("swap factors", lambda n: ast.BinOp(n.right, n.op, n.left)))
                local.append(("drop factor", lambda n: n.left))
                local.append(("drop factor", lambda n: n.right))
            if isinstance(node.op, (ast.Add, ast.Sub)):
                local.append(("drop term", lambda n: n.left))
                local.append(("drop term", lambda n: n.right if isinstance(n.op, ast.Add)
                              else ast.UnaryOp(ast.USub(), n.right)))
                local.append(("flip sign", lambda n: ast.BinOp(n.left, ast.Sub() if isinstance(n.op, ast.Add)
                                                              else ast.Add(), n.right)))
                local.append(("duplicate term", lambda n: ast.BinOp(n, n.op, copy.deepcopy(n.right))))
            if isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant) \
                    and isinstance(node.right.value, (int, float)) and not isinstance(node.right.value, bool):
                k = node.right.value
                local.append(("change exponent", lambda n, k=k: ast.BinOp(n.left, n.op, ast.Constant(k + 1))))
                if k - 1 >= 0:
                    local.append(("change exponent", lambda n, k=k: ast.BinOp(n.left, n.op, ast.Constant(k - 1))))
            if isinstance(node.op, ast.Div):
                local.append(("change coefficient", lambda n: ast.BinOp(n.left, ast.Mult(), n.right)))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            local.append(("flip sign", lambda n: n.operand))
        elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool) and id(node) not in special:
            v = node.value
            local.append(("change coefficient", lambda n, v=v: ast.Constant(v + 1)))
            if v != 0:
                local.append(("change coefficient", lambda n, v=v: ast.Constant(2 * v)))
        elif isinstance(node, ast.Attribute) and node.attr == "T":
            local.append(("wrong transpose", lambda n: n.value))
        elif isinstance(node, ast.Name) and id(node) not in special:
            if node.id in matrices:
                local.append(("wrong transpose", lambda n: ast.Attribute(n, "T", ast.Load())))
            local.append(("flip sign", lambda n: ast.UnaryOp(ast.USub(), n)))
            local.append(("change coefficient", lambda n: ast.BinOp(ast.Constant(2), ast.Mult(), n)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in _SHAPE_CALLS:
                for j, a in enumerate(node.args):
                    if isinstance(a, ast.Constant) and type(a.value) is int:
                        def bump(n, j=j):
                            n = copy.deepcopy(n)
                            n.args[j] = ast.Constant(n.args[j].value + 1)
                            return n
                        local.append(("off-by-one shape", bump))
            elif name == "diff":
                def order(n):
                    n = copy.deepcopy(n)
                    if len(n.args) == 3 and isinstance(n.args[2], ast.Constant):
                        n.args[2] = ast.Constant(n.args[2].value + 1)
                    else:
                        n.args.append(ast.Constant(2))
                    return n
                local.append(("wrong derivative", order))
                local.append(("wrong derivative", lambda n: n.args[0]))  # forgot to differentiate
            else:
                slips = [FUNCTION_SLIPS[name]] if name in FUNCTION_SLIPS else []
                slips += [f for f in declared if f != name][:1] if name in declared else []
                for other in slips:
                    local.append(("wrong function", lambda n, other=other: ast.Call(
                        ast.Name(other, ast.Load()), n.args, [])))
        for kind, make in local:
            t = replace(i, make)
            if t is not None:
                add(kind, t)
    groups = list(out.items())
    if groups:
        k = offset % len(groups)
        groups = groups[k:] + groups[:k]
    result = [(kind, s) for batch in itertools.zip_longest(*[[(k, s) for s in v] for k, v in groups])
              for kind, s in (x for x in batch if x is not None)]
    return result[:limit]


# ---------------------------------------------------------------------------
# The independent judge: explicit matrices, 30 digits, no symnet code


class Undecided(Exception):
    """This instance cannot be evaluated (a domain error, an opaque value)."""


_DIGITS = 30


def _unfold(expr: Any, definitions: dict, limit: int = 200) -> Any:
    for _ in range(limit):
        if not isinstance(expr, sp.Basic):
            return expr
        found = [s for s in expr.atoms(sp.MatrixSymbol) if s in definitions]
        if not found:
            return expr
        expr = expr.xreplace({s: definitions[s] for s in found})
    raise Undecided("definitions nested too deeply")


@dataclass
class Instance:
    """Random values for every symbol: dims first, then matrices (keyed by their concrete shape)."""

    seed: int
    dims: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)

    def __post_init__(self):
        self.rng = random.Random(self.seed)

    def dim(self, d: sp.Symbol) -> sp.Integer:
        if d not in self.dims:
            self.dims[d] = sp.Integer(self.rng.choice([2, 3]))
        return self.dims[d]

    def number(self, positive: bool = False) -> sp.Float:
        v = self.rng.uniform(0.5, 2.0) if positive else self.rng.gauss(0.0, 1.0)
        return sp.Float(round(v, 12), _DIGITS)

    def value(self, s: Any) -> Any:
        if s not in self.values:
            if isinstance(s, sp.MatrixSymbol):
                r, c = (int(d) for d in s.shape)
                self.values[s] = sp.ImmutableMatrix(r, c, [self.number() for _ in range(r * c)])
            else:
                self.values[s] = self.number(bool(s.is_positive))
        return self.values[s]


def _concrete_dims(expr: Any, inst: Instance) -> Any:
    dims = {}
    for m in itertools.chain(expr.atoms(sp.MatrixSymbol), expr.atoms(sp.OneMatrix, sp.ZeroMatrix, sp.Identity)):
        for d in m.shape:
            for s in sp.sympify(d).free_symbols:
                dims[s] = inst.dim(s)
    return expr.xreplace(dims) if dims else expr


def _explicit(expr: Any, inst: Instance) -> Any:
    """``expr`` (definitions unfolded) evaluated on the instance: an explicit matrix or a number."""
    expr = _concrete_dims(expr, inst)
    grads = [g for g in sp.preorder_traversal(expr) if type(g).__name__ == "Grad"]
    if grads:
        expr = expr.xreplace({g: _gradient(g, inst) for g in grads})
    subs = {}
    for s in expr.free_symbols:
        if isinstance(s, sp.MatrixSymbol):
            subs[s] = inst.value(s)
        elif isinstance(s, sp.Symbol):
            subs[s] = inst.value(s)
    value = expr.xreplace(subs)
    value = value.doit() if hasattr(value, "doit") else value
    if isinstance(value, sp.MatrixExpr) and not isinstance(value, sp.MatrixBase):
        value = value.as_explicit()
    return value.evalf(_DIGITS) if hasattr(value, "evalf") else value


def _gradient(g: Any, inst: Instance) -> sp.ImmutableMatrix:
    """``Grad(L, W)`` at the instance: differentiate the explicit loss by each entry of ``W``."""
    loss, wrt = g.args
    r, c = (int(d) for d in wrt.shape)
    entries = sp.symbols(f"_e0:{r * c}", real=True)
    W = sp.ImmutableMatrix(r, c, entries)
    subs = {wrt: W}
    for s in loss.free_symbols:
        if s != wrt and isinstance(s, (sp.MatrixSymbol, sp.Symbol)):
            subs[s] = inst.value(s)
    value = loss.xreplace(subs)
    value = value.doit()
    if isinstance(value, sp.MatrixExpr) and not isinstance(value, sp.MatrixBase):
        value = value.as_explicit()
    if isinstance(value, sp.MatrixBase):
        if value.shape != (1, 1):
            raise Undecided("the loss is not 1x1")
        value = value[0, 0]
    point = {e: v for e, v in zip(entries, inst.value(wrt))}
    return sp.ImmutableMatrix(r, c, [sp.diff(value, e).xreplace(point).evalf(_DIGITS) for e in entries])


def _numbers(value: Any) -> list:
    items = list(value) if isinstance(value, sp.MatrixBase) else [value]
    out = []
    for v in items:
        v = sp.sympify(v)
        if not v.is_number or v.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
            raise Undecided(f"not a number: {v}")
        c = complex(v)
        if abs(c.imag) > 1e-20 * max(1.0, abs(c.real)):
            raise Undecided("a complex value")
        out.append(c.real)
    return out


# ---- terms (what .deriv files parse to) as explicit SymPy, for this reference only ----

_REF_Z = sp.Symbol("_ref_z", real=True)
_REF_PRIMS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "sin": sp.sin, "cos": sp.cos,
    "tan": sp.tan, "tanh": sp.tanh, "sinh": sp.sinh, "cosh": sp.cosh, "atan": sp.atan,
    "asinh": sp.asinh, "erf": sp.erf, "erfc": sp.erfc, "sign": sp.sign, "sinc": sp.sinc,
    "dirac": sp.DiracDelta,
}


def _ref_standin(name: str, order: int) -> sp.Expr:
    """A concrete smooth function for a declared one (the reference's own choice)."""
    k = sum(map(ord, name)) % 7
    f = sp.cos(sp.Rational(3 + k, 5) * _REF_Z - sp.Rational(1, 4)) + _REF_Z**3 / (5 + k)
    return sp.diff(f, _REF_Z, order) if order else f


def _ref_dim(d: Any) -> Any:
    return sp.Integer(d) if isinstance(d, int) else sp.Symbol(str(d), integer=True, positive=True)


def to_sympy(t: Any, definitions: dict, memo: dict | None = None, env: tuple | None = None) -> Any:
    """A term as a SymPy expression: scalar definitions inlined, matrix ones kept as
    symbols (``_unfold`` replaces them), declared functions by a concrete stand-in."""
    memo = {} if memo is None else memo
    key = (t, env is not None)
    if env is None and key in memo:
        return memo[key]
    r = lambda x: to_sympy(x, definitions, memo, env)  # noqa: E731
    op, a = t.op, t.args
    if op == "num":
        out = sp.Rational(t.value.numerator, t.value.denominator)
    elif op == "const":
        out = sp.pi if t.value == "pi" else sp.E
    elif op == "dim":
        out = _ref_dim(t.value)
    elif op == "var":
        out = env[0]
    elif op == "param":
        out = env[1][t.value]
    elif op == "sym":
        if t.shape is not None:
            out = sp.MatrixSymbol(str(t.value), _ref_dim(t.shape[0]), _ref_dim(t.shape[1]))
        elif t in definitions:
            out = r(definitions[t])
        else:
            out = sp.Symbol(str(t.value), positive=True) if type(t.value) is not str else sp.Symbol(t.value, real=True)
    elif op == "add":
        out = sp.Add(*map(r, a)) if t.shape is None else sp.MatAdd(*map(r, a)).doit()
    elif op == "sub":
        out = r(a[0]) - r(a[1])
    elif op == "neg":
        out = -r(a[0])
    elif op == "mul":
        # the notation's rule: a 1x1 matrix whose neighbours do not fit it is a scalar
        out = r(a[0])
        for x in a[1:]:
            v = r(x)
            lm, rm = isinstance(out, sp.MatrixExpr), isinstance(v, sp.MatrixExpr)
            if lm and rm and out.shape[1] != v.shape[0]:
                if v.shape == (1, 1):
                    v = v[0, 0]
                elif out.shape == (1, 1):
                    out = out[0, 0]
            out = out * v
    elif op == "div":
        out = r(a[0]) * (1 / r(a[1])) if t.shape is not None else r(a[0]) / r(a[1])
    elif op == "pow":
        out = sp.MatPow(r(a[0]), r(a[1])).doit() if t.shape is not None else r(a[0]) ** r(a[1])
    elif op == "T":
        out = r(a[0]).T
    elif op == "had":
        out = sp.hadamard_product(*map(r, a))
    elif op == "hadpow":
        out = sp.HadamardPower(r(a[0]), r(a[1]))
    elif op in ("prim", "apply"):
        if op == "prim":
            if t.value in ("max", "min"):
                out = (sp.Max if t.value == "max" else sp.Min)(*map(r, a))
                memo[key] = out
                return out
            if t.value == "heaviside":
                body = sp.Heaviside(_REF_Z, r(a[1]))
            else:
                body = _REF_PRIMS[t.value](_REF_Z)
        else:
            fn = t.value
            if fn.formula is None:
                body = _ref_standin(fn.name, fn.order)
            else:
                params = [r(p) for p in a[1:]]
                body = to_sympy(fn.formula, definitions, {}, (_REF_Z, params))
        arg = r(a[0])
        if t.shape is None:
            out = body.xreplace({_REF_Z: arg})
        else:
            from symnet.networks.composer import elementwise

            out = elementwise(sp.Lambda(_REF_Z, body), arg)
    elif op == "ones":
        out = sp.OneMatrix(*map(_ref_dim, t.shape))
    elif op == "zeros":
        out = sp.ZeroMatrix(*map(_ref_dim, t.shape))
    elif op == "eye":
        out = sp.Identity(_ref_dim(t.shape[0]))
    elif op == "trace":
        out = sp.Trace(r(a[0]))
    elif op == "sum":
        m = r(a[0])
        out = sp.Trace(sp.OneMatrix(m.cols, m.rows) * m)
    elif op == "diff":
        out = sp.Derivative(r(a[0]), (r(a[1]), t.value)).doit()
    elif op == "matrix":
        rows, cols = t.shape
        out = sp.ImmutableMatrix(rows, cols, list(map(r, a)))
    elif op == "grad":
        from symnet.kernel import Grad

        loss = r(a[0])
        out = Grad(loss if isinstance(loss, sp.MatrixExpr) else sp.ImmutableMatrix([[loss]]), r(a[1]))
    elif op == "inv":
        out = sp.Inverse(r(a[0]))
    elif op == "det":
        out = sp.Determinant(r(a[0]))
    elif op == "norm":
        m = r(a[0])
        out = sp.sqrt(sp.Trace(m.T * m))
    elif op == "piecewise":
        out = sp.Piecewise(*[(r(a[i]), r(a[i + 1])) for i in range(0, len(a), 2)])
    elif op in ("lt", "le", "gt", "ge", "eq", "ne"):
        rel = {"lt": sp.Lt, "le": sp.Le, "gt": sp.Gt, "ge": sp.Ge, "eq": sp.Eq, "ne": sp.Ne}[op]
        out = rel(r(a[0]), r(a[1]))
    elif op == "true":
        out = sp.true
    elif op in ("and", "or", "not"):
        out = {"and": sp.And, "or": sp.Or, "not": sp.Not}[op](*map(r, a))
    else:
        raise Undecided(f"term {op}")
    if env is None:
        memo[key] = out
    return out


def _from_terms(lhs: Any, rhs: Any, definitions: dict) -> tuple:
    memo: dict = {}
    defs = {to_sympy(k, definitions, memo): to_sympy(v, definitions, memo)
            for k, v in definitions.items() if k.shape is not None}
    return to_sympy(lhs, definitions, memo), to_sympy(rhs, definitions, memo), defs


def differs(lhs: Any, rhs: Any, definitions: dict | None = None, trials: int = 4, seed: int = 0) -> bool | None:
    """Whether ``lhs = rhs`` is false, decided independently of symnet's kernel.

    True: an instance where the sides differ (or cannot both exist: shapes that do
    not fit); False: equal on every instance tried; None: no instance could be evaluated.
    """
    definitions = definitions or {}
    from symnet.kernel.terms import Term

    if isinstance(lhs, Term) and isinstance(rhs, Term) and lhs == rhs:  # positions are not compared
        return False  # the same expression on both sides (SymPy's explicit powers can take minutes)
    if isinstance(lhs, Term) or isinstance(rhs, Term):
        try:
            lhs, rhs, definitions = _from_terms(lhs, rhs, definitions)
        except (Undecided, TypeError, ValueError, sp.matrices.exceptions.ShapeError):
            return None
    try:
        lhs, rhs = _unfold(lhs, definitions), _unfold(rhs, definitions)
    except sp.matrices.exceptions.ShapeError:
        return True  # an ill-shaped side: the claim is false
    except Undecided:
        return None
    shape_l = lhs.shape if isinstance(lhs, sp.MatrixExpr) else (1, 1)
    shape_r = rhs.shape if isinstance(rhs, sp.MatrixExpr) else (1, 1)
    if any(sp.simplify(a - b) != 0 for a, b in zip(shape_l, shape_r)):
        return True
    evaluated = 0
    for k in range(trials):
        inst = Instance(seed * 1000 + k)
        try:
            a = _explicit(lhs, inst)
            b = _explicit(rhs, inst)
        except sp.matrices.exceptions.ShapeError:
            return True  # an ill-shaped side: the claim is false
        except (Undecided, TypeError, ValueError, ZeroDivisionError, AttributeError, NotImplementedError,
                RecursionError):
            continue
        sa = a.shape if isinstance(a, sp.MatrixBase) else (1, 1)
        sb = b.shape if isinstance(b, sp.MatrixBase) else (1, 1)
        if sa != sb:
            return True
        try:
            xa, xb = _numbers(a), _numbers(b)
        except (Undecided, TypeError, ValueError):
            continue
        evaluated += 1
        scale = max([1.0] + [abs(v) for v in xa + xb])
        if max(abs(u - v) for u, v in zip(xa, xb)) > 1e-12 * scale:
            return True
    return False if evaluated else None


# ---------------------------------------------------------------------------
# Auditing a checker


@dataclass(frozen=True)
class StepRecord:
    """A proved step ``prev = expr`` in a context: what a mutant replaces ``expr`` in."""

    prev: Any
    expr: Any
    uses: Any = None
    context: Any = None
    label: str = ""


@dataclass
class Audit:
    """What the checker said about the mutants; ``unsound`` holds the false ones it proved."""

    verdicts: dict = field(default_factory=dict)  # verdict -> count
    kinds: dict = field(default_factory=dict)  # kind -> count
    unsound: list = field(default_factory=list)  # (label, kind, mutant, verdict)
    equivalent: int = 0  # proved mutants the judge found true (harmless)
    undecided: list = field(default_factory=list)  # proved mutants the judge could not evaluate

    @property
    def total(self) -> int:
        return sum(self.verdicts.values())

    @property
    def rejected(self) -> int:
        return self.total - self.verdicts.get("proved", 0)

    def merge(self, other: Audit) -> Audit:
        for k, v in other.verdicts.items():
            self.verdicts[k] = self.verdicts.get(k, 0) + v
        for k, v in other.kinds.items():
            self.kinds[k] = self.kinds.get(k, 0) + v
        self.unsound += other.unsound
        self.equivalent += other.equivalent
        self.undecided += other.undecided
        return self

    def summary(self) -> str:
        return (f"{self.total} mutants: " + ", ".join(f"{n} {v}" for v, n in sorted(self.verdicts.items()))
                + f"; kinds {dict(sorted(self.kinds.items()))}; {self.equivalent} equivalent")


def kernel_checker(record: StepRecord, mutant: Any) -> str:
    """The kernel's verdict on ``prev = mutant`` in the step's own context."""
    return record.context.check(record.prev, mutant, uses=record.uses).verdict


def always_proved(record: StepRecord, mutant: Any) -> str:
    """A checker that accepts everything: the suite must catch it."""
    return "proved"


#: An audit stops after this many unsound mutants: the verdict is clear by then.
ENOUGH = 10


def audit(records: Iterable[StepRecord], checker: Callable[[StepRecord, Any], str] = kernel_checker,
          per_step: int = 8) -> Audit:
    """Ask ``checker`` about the mutants of every record; judge the proved ones independently."""
    result = Audit()
    for index, record in enumerate(records):
        if len(result.unsound) >= ENOUGH:
            break
        definitions = getattr(record.context, "definitions", {}) if record.context is not None else {}
        for kind, m in mutants(record.expr, limit=per_step, offset=index):
            try:
                verdict = checker(record, m)
            except (SymnetError, sp.matrices.exceptions.ShapeError):
                verdict = "rejected"  # an ill-formed mutant is refused: fine
            result.verdicts[verdict] = result.verdicts.get(verdict, 0) + 1
            result.kinds[kind] = result.kinds.get(kind, 0) + 1
            if verdict == "proved":
                judged = differs(record.prev, m, definitions)
                if judged:
                    result.unsound.append((record.label, kind, m, verdict))
                elif judged is None:
                    result.undecided.append((record.label, kind, m))
                else:
                    result.equivalent += 1
    return result


def spread(items: list, n: int) -> list:
    """At most ``n`` items, evenly spread over the list (first and last included)."""
    if len(items) <= n:
        return list(items)
    step = (len(items) - 1) / (n - 1)
    return [items[round(i * step)] for i in range(n)]


# ---------------------------------------------------------------------------
# Recording the steps a piece of code builds


class Recorder:
    """Records every ``ChainBuilder.step`` call (context, previous expression, uses, verdict)."""

    def __init__(self):
        self.records: list[StepRecord] = []
        self.verdicts: list[str] = []

    def __enter__(self) -> Recorder:
        import symnet.notes.derivation as dmod

        self._module = dmod
        self._original = original = dmod.ChainBuilder.step
        recorder = self

        def step(builder, expr, reason, uses=None):
            prev = builder.current
            s = original(builder, expr, reason, uses)
            recorder.verdicts.append(s.verdict)
            if s.verdict == "proved":
                recorder.records.append(StepRecord(prev, expr, uses, builder.context, reason))
            return s

        dmod.ChainBuilder.step = step
        return self

    def __exit__(self, *exc) -> None:
        self._module.ChainBuilder.step = self._original


def unsound(derivation, checker) -> list:
    """Mutated steps of ``derivation`` that ``checker(lhs, rhs)`` calls proved (no judge: any proof counts)."""
    bad = []
    for chain in derivation.chains:
        prev = chain.lhs
        for step in chain.steps:
            for kind, m in mutants(step.expr):
                try:
                    verdict = checker(prev, m)
                except (SymnetError, sp.matrices.exceptions.ShapeError):
                    continue  # an ill-shaped mutant is rejected
                if verdict == "proved":
                    bad.append((step.reason, kind, m))
            prev = step.expr
    return bad


def show(e: Any) -> str:
    """``str(e)``, or SymPy's ``srepr`` for an expression too ill-shaped to print."""
    try:
        return str(e)
    except Exception:  # noqa: BLE001
        return sp.srepr(e)




# ---------------------------------------------------------------------------
# Steps of .deriv files, replayed one at a time


@dataclass(frozen=True)
class DerivStep:
    """One proved-or-not step of a ``.deriv`` file, ready to be replayed with a mutant.

    ``base`` is the file with every chain blanked out; the step is replayed as the
    one-line chain ``prev = mutant`` on line ``line`` (where its chain started), so
    every declaration and definition before it, and none after it, is in scope.
    """

    path: str
    base: tuple[str, ...]
    line: int
    prev: str
    expr: str
    matrices: frozenset
    functions: tuple[str, ...]

    def text(self, expr: str) -> str:
        lines = list(self.base)
        lines[self.line - 1] = f"{self.prev} = {expr}"
        return "\n".join(lines) + "\n"


def deriv_steps(text: str, path: str = "<string>") -> list[DerivStep]:
    """Every step of a derivation file's text (which must parse)."""
    from symnet.notes.deriv import parse

    parsed = parse(text, path)
    lines = text.replace("\r\n", "\n").split("\n")
    base = list(lines)
    for chain in parsed.chains:
        last = max([chain.line] + [s.line for s in chain.steps])
        for i in range(chain.line, last + 1):
            base[i - 1] = ""
    matrices = frozenset(n for n, d in parsed.names.items()
                         if d.kind == "matrix" or (d.kind == "define" and getattr(d.value, "is_matrix", False)))
    functions = tuple(n for n, d in parsed.names.items() if d.kind == "function")
    out = []
    for chain in parsed.chains:
        prev = chain.text
        for s in chain.steps:
            out.append(DerivStep(path, tuple(base), chain.line, prev, s.text, matrices, functions))
            prev = s.text
    return out


def replay(step: DerivStep, expr: str, checker: Callable | None = None, trials: int = 2):
    """``(verdict, lhs, rhs, definitions)`` of ``prev = expr``; verdict ``rejected`` if malformed.

    ``checker(lhs, rhs)`` replaces the kernel (for the meta-test).
    """
    from symnet.notes.checkfile import check_parsed
    from symnet.notes.deriv import parse

    try:
        parsed = parse(step.text(expr), step.path)
    except SymnetError:
        return "rejected", None, None, {}
    chain = parsed.chains[-1]
    lhs, rhs = chain.lhs, chain.steps[0].expr
    definitions = {d.symbol: d.expr for d in parsed.definitions}
    if checker is not None:
        return checker(lhs, rhs), lhs, rhs, definitions
    result = check_parsed(parsed, trials=trials, seed=1)
    if result.malformed:
        return "rejected", lhs, rhs, definitions
    return result.chains[-1].steps[0].verdict, lhs, rhs, definitions


def audit_deriv(steps: Iterable[DerivStep], checker: Callable | None = None, per_step: int = 10) -> Audit:
    """Replay every step with its text mutants; judge the proved ones independently."""
    result = Audit()
    for index, step in enumerate(steps):
        if len(result.unsound) >= ENOUGH:
            break
        for kind, text in text_mutants(step.expr, step.matrices, step.functions, limit=per_step, offset=index):
            verdict, lhs, rhs, definitions = replay(step, text, checker)
            result.verdicts[verdict] = result.verdicts.get(verdict, 0) + 1
            result.kinds[kind] = result.kinds.get(kind, 0) + 1
            if verdict == "proved":
                judged = differs(lhs, rhs, definitions)
                label = f"{step.path}:{step.line}: {step.prev} = {text}"
                if judged:
                    result.unsound.append((label, kind, text, verdict))
                elif judged is None:
                    result.undecided.append((label, kind, text))
                else:
                    result.equivalent += 1
    return result


def audit_file(text: str, path: str = "<string>", trials: int = 2) -> Audit:
    """Check a whole file with the kernel; every step it proves must be true for the judge."""
    from symnet.notes.checkfile import check_parsed
    from symnet.notes.deriv import parse

    result = Audit()
    try:
        parsed = parse(text, path)
    except SymnetError:
        result.verdicts["rejected"] = 1
        return result
    checked = check_parsed(parsed, trials=trials, seed=1)
    if checked.malformed:
        result.verdicts["rejected"] = 1
        return result
    definitions = {d.symbol: d.expr for d in parsed.definitions}
    for spec, chain in zip(parsed.chains, checked.chains):
        prev = spec.lhs
        for s_spec, s in zip(spec.steps, chain.steps):
            result.verdicts[s.verdict] = result.verdicts.get(s.verdict, 0) + 1
            if s.verdict == "proved":
                judged = differs(prev, s_spec.expr, definitions)
                if judged:
                    result.unsound.append((f"{path}:{s.line}", "file", s.expr, s.verdict))
                elif judged is None:
                    result.undecided.append((f"{path}:{s.line}", "file", s.expr))
                else:
                    result.equivalent += 1
            prev = s_spec.expr
    return result


__all__ = [
    "Audit",
    "DerivStep",
    "Recorder",
    "StepRecord",
    "always_proved",
    "audit",
    "audit_deriv",
    "audit_file",
    "deriv_steps",
    "differs",
    "kernel_checker",
    "mutants",
    "replay",
    "show",
    "spread",
    "text_mutants",
    "unsound",
]
