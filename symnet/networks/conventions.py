"""Vector conventions: a derivation translated from rows to columns or to PyTorch's layout.

symnet composes in the row convention (``h = f(x W + b)``, W is in x out).  Textbooks
(Goodfellow et al., Nielsen, Bishop) write columns, ``h = f(W x + b)`` with W out x in;
PyTorch stores ``nn.Linear`` weights as (out, in) and computes ``x W^T + b``.

:func:`translate` rewrites every expression of a derivation (definitions included) and
asks the kernel again for every translated step:

* ``column``: every matrix ``S`` becomes the transpose of the column-convention ``S``
  (vectors become columns, weights out x in) and every expression is transposed, the
  transposes pushed inwards: ``x W1 W2 + b1 W2 + b2`` becomes ``W2 W1 x + W2 b1 + b2``;
* ``torch``: weights ``W`` become ``W^T`` of an (out, in) ``W``; rows stay rows.  A
  weight's gradient chain is transposed as a whole, so it reads ``dL/dW = delta^T h``
  as PyTorch's ``weight.grad``.
"""

from __future__ import annotations

import re
from typing import Any

from symnet.errors import SpecError
from symnet.kernel import Context, Reader, as_term
from symnet.kernel import terms as T
from symnet.notes.derivation import ChainBuilder, Derivation

CONVENTIONS = ("row", "column", "torch")
_WEIGHT = re.compile(r"^(W|M|T)\d*'?(_\{?\d+\}?)?$|^W'")


def _is_weight(t: T.Term) -> bool:
    return t.op == "sym" and t.is_matrix and bool(_WEIGHT.match(str(t.value)))


def push_transpose(t: T.Term) -> T.Term:
    """Transposes moved inwards: ``(A B)^T = B^T A^T``, ``(A + B)^T = A^T + B^T``,
    ``(A^T)^T = A``, ``f(A)^T = f(A^T)`` for entrywise f, ``1^T`` a ones matrix of the
    other shape.  The same expression, written as a textbook writes it."""
    if not t.args:
        return t
    if t.op != "T":
        args = tuple(push_transpose(a) if isinstance(a, T.Term) else a for a in t.args)
        return t if args == t.args else T.Term(t.op, args, t.value, t.shape, t.pos)
    (a,) = t.args
    if not a.is_matrix:
        return push_transpose(a)
    op = a.op
    if op == "T":
        return push_transpose(a.args[0])
    if op in ("add", "sub"):
        parts = [push_transpose(T.transpose(x)) for x in a.args]
        return T.add(*parts) if op == "add" else T.sub(*parts)
    if op == "neg":
        return T.neg(push_transpose(T.transpose(a.args[0])))
    if op == "mul":
        return T.mul(*[push_transpose(T.transpose(x)) if x.is_matrix else x for x in reversed(a.args)])
    if op == "div":
        return T.div(push_transpose(T.transpose(a.args[0])), a.args[1])
    if op == "had":
        return T.hadamard(*[push_transpose(T.transpose(x)) for x in a.args])
    if op in ("prim", "apply") and a.args[0].is_matrix:
        inner = push_transpose(T.transpose(a.args[0]))
        return T.Term(op, (inner, *a.args[1:]), a.value, (a.shape[1], a.shape[0]))
    if op == "ones":
        return T.ones(a.shape[1], a.shape[0])
    if op == "zeros":
        return T.zeros(a.shape[1], a.shape[0])
    if op in ("eye", "diag"):
        return push_transpose(a)
    return T.transpose(push_transpose(a))


class _Translator:
    def __init__(self, convention: str):
        self.convention = convention
        self.symbols: dict = {}

    def symbol(self, t: T.Term) -> T.Term:
        """The target convention's matrix for a row-convention matrix symbol."""
        if t not in self.symbols:
            r, c = t.shape
            if (r, c) == (1, 1):
                self.symbols[t] = t  # a 1x1 matrix (a loss) is its own transpose
            elif self.convention == "column" or _is_weight(t):
                self.symbols[t] = T.transpose(T.Term("sym", value=t.value, shape=(c, r)))
            else:
                self.symbols[t] = t
        return self.symbols[t]

    def __call__(self, t: T.Term) -> T.Term:
        mapping = {}
        for s in T.walk(t):
            if s.op == "sym" and s.is_matrix:
                mapping[s] = self.symbol(s)
        out = T.substitute(t, mapping)
        out = _gradients(out)
        if self.convention == "column" and out.is_matrix and out.shape != (1, 1):
            out = T.transpose(out)
        return _tidy(push_transpose(out))


def _tidy(t: T.Term) -> T.Term:
    """``a + (-1) b`` as ``a - b`` and ``(-1) b`` as ``-b``: SymPy's reading, as written."""
    if not t.args:
        return t
    args = tuple(_tidy(a) if isinstance(a, T.Term) else a for a in t.args)
    minus = [i for i, a in enumerate(args) if a.op == "num" and a.value == -1]
    if t.op == "mul" and len(minus) == 1:
        rest = args[:minus[0]] + args[minus[0] + 1:]
        return T.neg(rest[0] if len(rest) == 1 else T.mul(*rest))
    if t.op == "add" and len(args) == 2 and args[1].op == "neg":
        return T.sub(args[0], args[1].args[0])
    if t.op == "diag" and args[0].op == "T" and 1 in args[0].shape:  # diag(v^T) is diag(v)
        return T.diag(args[0].args[0])
    return t if args == t.args else T.Term(t.op, args, t.value, t.shape, t.pos)


def _name_functions(reader: Reader, exprs: list) -> None:
    """Entrywise functions keep their catalogue names (``tanh``, ``tanh'``) in the terms."""
    import sympy as sp
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    from symnet.networks.activations import Z, describe, describe_derivative

    for e in exprs:
        if not isinstance(e, sp.Basic):
            continue
        for node in sp.preorder_traversal(e):
            if isinstance(node, ElementwiseApplyFunction) and isinstance(node.function, sp.Lambda) \
                    and len(node.function.variables) == 1 and node.function not in reader.fns:
                body = node.function.expr.xreplace({node.function.variables[0]: Z})
                act, suffix = describe(body), ""
                if act is None:
                    act, suffix = describe_derivative(body), "_prime"
                if act is not None and act.name.isidentifier():
                    reader.formula_fn(node.function, name=act.name + suffix)


def _grad_variables(terms: list) -> set:
    return {s.args[1] for t in terms for s in T.walk(t) if s.op == "grad"}


def _gradients(t: T.Term) -> T.Term:
    """``grad(L, S^T)`` (a translated variable) is ``grad(L, S)^T``."""
    if not t.args:
        return t
    args = tuple(_gradients(a) if isinstance(a, T.Term) else a for a in t.args)
    if t.op == "grad" and args[1].op == "T":
        return T.transpose(T.grad(args[0], args[1].args[0]))
    return t if args == t.args else T.Term(t.op, args, t.value, t.shape, t.pos)


def translate(derivation: Any, convention: str, definitions: dict | None = None) -> Derivation:
    """``derivation`` in the ``convention`` (row, column or torch), every step re-checked.

    ``definitions`` (symbol -> expression, as the derivation's context had them) are
    translated too; a collapse or gradients result passes its own."""
    if convention not in CONVENTIONS:
        raise SpecError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    derivation = getattr(derivation, "derivation", derivation)
    if convention == "row":
        return derivation
    reader = Reader()
    _name_functions(reader, [*(definitions or {}).values(),
                             *(s.expr for c in derivation.chains for s in c.steps),
                             *(c.lhs for c in derivation.chains), *(e for c in derivation.chains for _, e in c.where)])
    tr = _Translator(convention)

    def pair(sym: Any, expr: Any) -> tuple[T.Term, T.Term]:
        s, e = tr(as_term(sym, reader)), tr(as_term(expr, reader))
        if s.op == "T":  # a defined row in the column convention: define the column itself
            s, e = s.args[0], _tidy(push_transpose(T.transpose(e)))
        return s, e

    defined = [pair(s, e) for s, e in (definitions or {}).items()]
    chains = []
    for chain in derivation.chains:
        where = [pair(s, e) for s, e in chain.where]
        lhs = tr(as_term(chain.lhs, reader))
        exprs = [tr(as_term(step.expr, reader)) for step in chain.steps]
        if convention == "torch" and lhs.op == "T":  # a weight's gradient: as weight.grad
            lhs = lhs.args[0]
            exprs = [_tidy(push_transpose(T.transpose(e))) for e in exprs]
        # one context per chain: a variable a gradient is taken with respect to stays free
        free = _grad_variables([lhs, *exprs])
        ctx = Context()
        for s, e in defined + where:
            if s.op == "sym" and s not in free and s not in ctx.term_definitions:
                ctx.define(s, e)
        builder = ChainBuilder(ctx, lhs, title=chain.title)
        for step, e in zip(chain.steps, exprs):
            builder.step(e, step.reason)
        builder.where.extend(where)
        chains.append(builder.build())
    note = {"column": "Column convention: h_l = f(W_l h_(l-1) + b_l) with W_l of shape out x in and "
                      "column vectors (each W_l is the transpose of the row convention's).",
            "torch": "PyTorch's convention: h_l = f(h_(l-1) W_l^T + b_l) with W_l of shape (out, in) as "
                     "nn.Linear stores it; a weight's gradient has W_l's shape (weight.grad)."}[convention]
    return Derivation(f"{derivation.title} ({convention} convention)", tuple(chains),
                      (note, *derivation.notes))
