"""Wrong variants of checked steps, for the soundness suite.

``mutants(expr)`` yields expressions that differ from ``expr`` by one typical
slip: a dropped, duplicated or sign-flipped term, two swapped factors, a
transposed factor, a doubled coefficient, a wrong elementwise function.
``unsound(derivation, checker)`` replays every step of a derivation with each
mutant in place of the step's expression and returns the mutants the checker
called ``proved``: for a sound checker that list is empty.
"""

from __future__ import annotations

import itertools

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardProduct

from symnet.errors import SymnetError


def _rebuild(e, args):
    try:
        return _rebuild_unchecked(e, args)
    except (sp.matrices.exceptions.ShapeError, ValueError, TypeError):
        return None


def _rebuild_unchecked(e, args):
    if isinstance(e, (sp.MatAdd, sp.MatMul)):
        return type(e)(*args, evaluate=False)
    if isinstance(e, sp.Transpose):
        return sp.Transpose(args[0])
    if isinstance(e, ElementwiseApplyFunction):
        return ElementwiseApplyFunction(e.function, args[1])
    if isinstance(e, HadamardProduct):
        return HadamardProduct(*args)
    return None


def _local(e):
    if isinstance(e, sp.MatAdd) and len(e.args) >= 2:
        args = list(e.args)
        for i in range(len(args)):
            yield "drop term", sp.MatAdd(*(args[:i] + args[i + 1:]), evaluate=False) if len(args) > 2 else args[1 - i]
            yield "duplicate term", sp.MatAdd(*args, args[i], evaluate=False)
            yield "flip sign", sp.MatAdd(*(args[:i] + [sp.MatMul(-1, args[i], evaluate=False)] + args[i + 1:]), evaluate=False)
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
            if a.shape[0] == a.shape[1] and not isinstance(a, sp.Transpose) and a != a.T:
                args = list(e.args)
                args[i] = sp.Transpose(a)
                transposed = _rebuild(e, args)
                if transposed is not None:
                    yield "transpose factor", transposed
    if isinstance(e, ElementwiseApplyFunction):
        (z,) = e.function.variables
        yield "wrong function", ElementwiseApplyFunction(sp.Lambda(z, e.function.expr + z / 7), e.expr)
    if isinstance(e, sp.MatrixExpr):
        yield "double", sp.MatMul(2, e, evaluate=False)


def mutants(e, limit: int = 40):
    """One-slip variants of ``e`` (deterministic order, at most ``limit``)."""
    out = []

    def walk(node, wrap):
        for kind, m in _local(node):
            out.append((kind, wrap(m)))
        for k, arg in enumerate(node.args):
            if isinstance(arg, sp.MatrixExpr):
                def inner(m, k=k, node=node, wrap=wrap):
                    args = list(node.args)
                    args[k] = m
                    rebuilt = _rebuild(node, args)
                    return wrap(rebuilt) if rebuilt is not None else None
                walk(arg, inner)

    try:
        walk(e, lambda m: m)
    except (sp.matrices.exceptions.ShapeError, ValueError, TypeError):
        pass
    seen, result = set(), []
    for kind, m in out:
        if m is None or m == e or m in seen:
            continue
        seen.add(m)
        result.append((kind, m))
    return list(itertools.islice(result, limit))


def unsound(derivation, checker) -> list:
    """Mutated steps of ``derivation`` that ``checker(lhs, rhs, uses)`` calls proved."""
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
