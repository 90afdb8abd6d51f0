"""Losses of one example: a 1x1 matrix expression in the output row ``y`` and target ``t``.

Each loss keeps its formula and its gradient ``dL/dy`` side by side.  The
gradient is a *claim*: :mod:`symnet.networks.backprop` hands it to the kernel, which
differentiates the formula itself (``Grad(L, y)``) and proves or refutes it.
Both are written in the shape the kernel's reverse-mode rules produce, so the
normal forms meet without help:

* ``sse``  = 1/2 sum_i (y_i - t_i)^2        = (1/2) (y - t)(y - t)^T,
  ``dL/dy = y - t``;
* ``mse``  = (1/n) sum_i (y_i - t_i)^2      = (1/n) (y - t)(y - t)^T,
  ``dL/dy = (2/n)(y - t)`` (n the output width, a number or a symbol);
* ``bce``  = binary cross-entropy of ``sigmoid(y)`` (``y`` the logits, PyTorch's
  ``BCEWithLogitsLoss`` summed) = ``sum_i softplus(y_i) - t y^T``, ``dL/dy = sigmoid(y) - t``;
* ``hinge`` = ``sum_i max(0, 1 - t_i y_i)`` (targets -1, 1), ``dL/dy = -t (.) relu'(1 - t (.) y)``;
* ``xent`` = -sum_i t_i log softmax(y)_i    = -t y^T + t log(e^y 1)^T,
  with ``1`` the n x n ones matrix, so every entry of ``e^y 1`` is
  ``sum_j e^{y_j}``; ``dL/dy = softmax(y) sum(t) - t``, written as
  ``e^y (.) ((t (.) log'(e^y 1)) 1) - t`` (``log'(u) = 1/u``), which the printers
  show as ``sum(t) softmax(y) - t`` (the same expression).  For a one-hot (or any
  probability) target ``sum(t) = 1``: the familiar ``softmax(y) - t`` -- a reading
  under that assumption (``Loss.reading``), not a step the kernel checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp
from sympy.core.sympify import _sympify
from sympy.matrices.expressions.hadamard import HadamardProduct

from symnet.errors import SpecError
from symnet.kernel import elementwise_derivative
from symnet.networks.activations import Activation
from symnet.networks.composer import elementwise, matadd, matmul

# Elementwise exp and log as display-registered records (printed ``exp(y)``, ``log(...)``);
# they are not catalogue activations.
_EXP = Activation("exp", lambda z: sp.exp(z), np.exp, latex=r"\exp").bind()
_LOG = Activation("log", lambda z: sp.log(z), np.log, latex=r"\log").bind()
EXP: sp.Lambda = _EXP.lam
LOG: sp.Lambda = _LOG.lam
#: ``log'(u) = 1/u``, printed as ``log'``.
RECIPROCAL: sp.Lambda = elementwise_derivative(LOG)


@dataclass(frozen=True)
class Loss:
    """A loss of one example: ``formula(y, t)`` is 1x1, ``gradient(y, t)`` is ``dL/dy`` (1 x n)."""

    name: str
    title: str
    formula: Callable[[sp.MatrixExpr, sp.MatrixExpr], sp.MatrixExpr]
    gradient: Callable[[sp.MatrixExpr, sp.MatrixExpr], sp.MatrixExpr]
    doc: str = ""
    #: how to read ``gradient`` when its printed form is not the familiar one, with the
    #: assumption the reading needs (shown beside the checked step, not checked itself)
    reading: str = ""

    def __call__(self, y: sp.MatrixExpr, t: sp.MatrixExpr) -> sp.MatrixExpr:
        return self.formula(y, t)


def _residual(y: sp.MatrixExpr, t: sp.MatrixExpr) -> sp.MatrixExpr:
    return matadd(y, -t)


def _sse(y, t):
    r = _residual(y, t)
    return sp.MatMul(sp.Rational(1, 2), r, sp.Transpose(r), evaluate=False)


def _sse_grad(y, t):
    return _residual(y, t)


def _mse(y, t):
    r = _residual(y, t)
    return sp.MatMul(1 / _sympify(y.cols), r, sp.Transpose(r), evaluate=False)


def _mse_grad(y, t):
    return sp.MatMul(2 / _sympify(y.cols), _residual(y, t), evaluate=False)


def row_sums(y: sp.MatrixExpr) -> sp.MatrixExpr:
    """``e^y 1``: with ``1`` the n x n ones matrix, every entry is ``sum_j e^{y_j}`` (1 x n)."""
    return matmul(elementwise(EXP, y), sp.OneMatrix(y.cols, y.cols))


def _xent(y, t):
    # -sum_i t_i (y_i - log sum_j e^{y_j}) = -t y^T + t log(e^y 1)^T
    return matadd(
        sp.MatMul(-1, t, y.T, evaluate=False),
        matmul(t, sp.Transpose(elementwise(LOG, row_sums(y)))),
    )


def _xent_grad(y, t):
    # softmax(y) sum(t) - t, in the order reverse mode produces it:
    # e^y (.) ((t (.) log'(e^y 1)) 1)
    weighted = matmul(HadamardProduct(t, elementwise(RECIPROCAL, row_sums(y))), sp.OneMatrix(y.cols, y.cols))
    return matadd(HadamardProduct(weighted, elementwise(EXP, y)), -t)


_SOFTPLUS = Activation("softplus", lambda z: sp.log(1 + sp.exp(z)), np.logaddexp.reduce,
                       latex=r"\operatorname{softplus}").bind()
_SIGMOID = Activation("sigmoid", lambda z: 1 / (1 + sp.exp(-z)), lambda z: 1 / (1 + np.exp(-z)),
                      latex=r"\sigma").bind()
_RELU = Activation("relu", lambda z: sp.Max(0, z), lambda z: np.maximum(z, 0.0),
                   latex=r"\operatorname{relu}").bind()


def _entry_sum(m: sp.MatrixExpr) -> sp.MatrixExpr:
    """``m 1``: the sum of the entries of a row, as a 1x1 matrix."""
    return matmul(m, sp.OneMatrix(m.cols, 1))


def _bce(y, t):
    # binary cross-entropy of the probabilities sigmoid(y) (y the logits, as PyTorch's
    # BCEWithLogitsLoss): -sum_i [t_i log s_i + (1 - t_i) log(1 - s_i)] = sum_i softplus(y_i) - t y^T
    return matadd(_entry_sum(elementwise(_SOFTPLUS.lam, y)), sp.MatMul(-1, t, y.T, evaluate=False))


def _bce_grad(y, t):
    return matadd(elementwise(_SIGMOID.lam, y), -t)


def _hinge(y, t):
    # sum_i max(0, 1 - t_i y_i) for targets t_i in {-1, 1}
    return _entry_sum(elementwise(_RELU.lam, matadd(sp.OneMatrix(1, y.cols), -HadamardProduct(t, y))))


def _hinge_grad(y, t):
    # -t (.) relu'(1 - t (.) y): -t_i where the margin is violated, 0 elsewhere (relu'(0) = 0)
    margin = matadd(sp.OneMatrix(1, y.cols), -HadamardProduct(t, y))
    return -HadamardProduct(t, elementwise(elementwise_derivative(_RELU.lam), margin))


LOSSES: dict[str, Loss] = {
    "sse": Loss("sse", "sum of squared errors", _sse, _sse_grad, "1/2 sum_i (y_i - t_i)^2"),
    "mse": Loss("mse", "mean squared error", _mse, _mse_grad, "(1/n) sum_i (y_i - t_i)^2"),
    "xent": Loss(
        "xent", "softmax cross-entropy", _xent, _xent_grad, "-sum_i t_i log softmax(y)_i",
        "softmax(y) - t when the entries of t sum to 1 (one-hot or probability targets)",
    ),
    "bce": Loss(
        "bce", "binary cross-entropy of sigmoid outputs", _bce, _bce_grad,
        "-sum_i t_i log sigmoid(y_i) + (1 - t_i) log(1 - sigmoid(y_i)), y the logits",
    ),
    "hinge": Loss("hinge", "hinge loss", _hinge, _hinge_grad, "sum_i max(0, 1 - t_i y_i), t_i in {-1, 1}"),
}
_ALIASES = {"cross_entropy": "xent", "crossentropy": "xent", "squared": "sse"}


def names() -> list[str]:
    """The loss names ``symnet grad --loss`` accepts."""
    return list(LOSSES)


def get(loss: str | Loss) -> Loss:
    """The loss called ``loss`` (or the Loss itself); a SpecError lists the known names."""
    if isinstance(loss, Loss):
        return loss
    if not isinstance(loss, str):
        raise SpecError(f"a loss is named by a string, got {type(loss).__name__}")
    key = loss.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LOSSES:
        raise SpecError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    return LOSSES[key]


__all__ = ["LOSSES", "Loss", "get", "names", "row_sums"]
