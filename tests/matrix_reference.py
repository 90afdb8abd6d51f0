"""An independent reference for matrix claims written in the .deriv syntax.

The expression is parsed with :mod:`ast` (never evaluated by Python) and computed with
NumPy: ``*`` is the matrix product (a 1x1 factor scales), ``hadamard``, ``diag`` (of a
vector: the diagonal matrix; of a square matrix: its diagonal part), ``ones``, ``zeros``,
``eye``, ``trace``, ``sum`` and entrywise functions.  A shape that does not fit raises
ValueError.  Exact at integer entries, so kinks at 0 are evaluated exactly.
"""

from __future__ import annotations

import ast

import numpy as np


def _step(a):
    return (a >= 0).astype(float)


#: the catalogue's conventions at the kinks: step(0) = 1, relu(0) = 0
FUNCTIONS = {"relu": lambda a: np.maximum(a, 0.0), "step": _step, "abs": np.abs, "sign": np.sign,
             "tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "exp": np.exp}


def evaluate(text: str, values: dict, dims: dict) -> np.ndarray:
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Name):
            return dims[node.id] if node.id in dims else values[node.id]
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Attribute) and node.attr == "T":
            return ev(node.value).T
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Pow):
                return a ** b
            if isinstance(node.op, ast.Mult):
                if np.ndim(a) == 2 and np.ndim(b) == 2:
                    if a.shape[1] == b.shape[0]:
                        return a @ b
                    if a.shape == (1, 1):  # a 1x1 factor scales
                        return a[0, 0] * b
                    if b.shape == (1, 1):
                        return a * b[0, 0]
                    raise ValueError("shapes")
                return a * b
        if isinstance(node, ast.Call):
            name, args = node.func.id, [ev(a) for a in node.args]
            if name == "hadamard":
                out = args[0]
                for q in args[1:]:
                    if q.shape != out.shape:
                        raise ValueError("shapes")
                    out = out * q
                return out
            if name == "diag":
                q = args[0]
                if q.shape[0] == q.shape[1] and q.shape[0] > 1:
                    return np.diag(np.diag(q))  # the diagonal part of a square matrix
                if 1 not in q.shape:
                    raise ValueError("shapes")
                return np.diag(q.ravel())
            if name == "ones":
                return np.ones((int(args[0]), int(args[1])))
            if name == "zeros":
                return np.zeros((int(args[0]), int(args[1])))
            if name == "eye":
                return np.eye(int(args[0]))
            if name == "trace":
                return np.array([[np.trace(args[0])]])
            if name == "sum":
                return np.array([[np.sum(args[0])]])
            return FUNCTIONS[name](args[0])
        raise AssertionError(ast.dump(node))

    return ev(ast.parse(text, mode="eval"))
