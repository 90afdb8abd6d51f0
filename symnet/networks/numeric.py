"""Numeric evaluation of SymPy matrix expressions, in float64 and at 50 digits.

``lambdify`` cannot print elementwise matrix functions, so symnet walks the
expression tree itself.  The same walk runs on two arithmetic backends:
NumPy float64 arrays, and NumPy object arrays of mpmath numbers for the
high-precision confirmation that guards against refuting a true step because
of round-off.

It serves the builders (collapse's cross-check against a NumPy forward pass, its
witnesses, the tests' references). The kernel does not use it: the trusted checker's
numeric judge is :mod:`symnet.kernel.judge`, which evaluates terms with its own code.
"""

from __future__ import annotations

import functools
from typing import Any

import mpmath
import numpy as np
import sympy as sp
from sympy.core.sympify import _sympify
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

#: Digits used to confirm a numeric disagreement before refuting.
CONFIRM_DIGITS = 50
#: Largest concrete dimension evaluated numerically (bigger: no evidence).
MAX_NUMERIC_DIM = 1024


class NoEvidence(Exception):
    """This instance cannot be evaluated (domain, overflow, unsupported form)."""


@functools.lru_cache(maxsize=4096)
def _compiled(expr: sp.Expr, symbols: tuple, module: str):
    if module == "numpy":
        from symnet.networks.activations import lambdify_numpy  # array erf/erfc, which NumPy lacks

        return lambdify_numpy(symbols, expr)
    return sp.lambdify(symbols, expr, modules=module)


class Evaluator:
    """Evaluate expressions on one instance: symbol values plus definitions."""

    def __init__(self, values: dict, dims: dict, definitions: dict, precise: bool = False):
        self.values = values  # MatrixSymbol/Symbol -> ndarray/float (float64 samples)
        self.dims = dims  # dimension Symbol -> int
        self.definitions = definitions
        self.precise = precise
        self.memo: dict = {}
        self.suffix: dict = {}

    # -- scalars ---------------------------------------------------------
    def dim(self, d: Any) -> int:
        d = _sympify(d)
        if d.is_Integer:
            n = int(d)
        else:
            n = d.xreplace({s: sp.Integer(self.dims[s]) for s in d.free_symbols})
            if not n.is_Integer:
                raise NoEvidence(f"dimension {d}")
            n = int(n)
        if n < 0 or n > MAX_NUMERIC_DIM:
            raise NoEvidence(f"dimension {n} too large for numeric evaluation")
        return n

    def number(self, v: float):
        return mpmath.mpf(v) if self.precise else float(v)

    def scalar(self, e: sp.Expr):
        if e.is_Number:
            return mpmath.mpf(sp.Float(e, CONFIRM_DIGITS + 10)) if self.precise else float(e)
        traces = [t for t in sp.preorder_traversal(e) if isinstance(t, sp.Trace)]
        subs = {}
        for i, t in enumerate(traces):
            subs[t] = sp.Dummy(f"t{i}")
        e2 = e.xreplace(subs)
        symbols = tuple(sorted(e2.free_symbols, key=lambda s: s.name))
        args = []
        for s in symbols:
            for t, d in subs.items():
                if d == s:
                    m = self(t.arg)
                    args.append(sum(m[i, i] for i in range(m.shape[0])))
                    break
            else:
                args.append(self.scalar_value(s))
        if self.precise:
            with mpmath.workdps(CONFIRM_DIGITS):
                value = _sympify(e2).evalf(
                    CONFIRM_DIGITS, subs={s: sp.Float(str(a), CONFIRM_DIGITS) for s, a in zip(symbols, args)}
                )
            if not value.is_number:
                raise NoEvidence(f"scalar {e}")
            try:
                return mpmath.mpf(sp.Float(value, CONFIRM_DIGITS))
            except TypeError:
                raise NoEvidence(f"non-real value of {e}") from None
        with np.errstate(all="ignore"):
            value = _compiled(e2, symbols, "numpy")(*args)
        value = complex(value)
        if value.imag != 0:
            raise NoEvidence(f"non-real value of {e}")
        return value.real

    def scalar_value(self, s: sp.Symbol):
        if s in self.dims:
            return self.number(self.dims[s])
        if s not in self.values:
            raise NoEvidence(f"no value for {s}")
        return self.number(self.values[s])

    # -- matrices --------------------------------------------------------
    def array(self, a: np.ndarray) -> np.ndarray:
        if self.precise:
            out = np.empty(a.shape, dtype=object)
            for idx, v in np.ndenumerate(a):
                out[idx] = mpmath.mpf(float(v))
            return out
        return a

    def __call__(self, e: Any):
        if isinstance(e, sp.MatrixSymbol):
            if e in self.memo:
                return self.memo[e]
            if e in self.definitions:
                value = self(self.definitions[e])
            elif e in self.values:
                value = self.array(self.values[e])
            else:
                raise NoEvidence(f"no value for {e.name}")
            self.memo[e] = value
            return value
        if not isinstance(e, (sp.MatrixExpr, sp.MatrixBase)):
            return self.scalar(_sympify(e))
        if isinstance(e, sp.MatAdd):
            parts = [self(a) for a in e.args]
            shapes = {p.shape for p in parts}
            if len(shapes) != 1:
                raise NoEvidence("shapes differ in a sum")
            out = parts[0]
            for p in parts[1:]:
                out = out + p
            return out
        if isinstance(e, sp.MatMul):
            coeff, mats = None, []
            for a in e.args:
                if isinstance(a, sp.MatrixExpr):
                    mats.append(a)
                else:
                    v = self.scalar(a)
                    coeff = v if coeff is None else coeff * v
            out = self.product(tuple(mats))
            return out if coeff is None else coeff * out
        if isinstance(e, sp.Transpose):
            return self(e.arg).T
        if isinstance(e, sp.Identity):
            n = self.dim(e.rows)
            return self.array(np.eye(n))
        if isinstance(e, sp.ZeroMatrix):
            return self.array(np.zeros((self.dim(e.rows), self.dim(e.cols))))
        if isinstance(e, sp.OneMatrix):
            return self.array(np.ones((self.dim(e.rows), self.dim(e.cols))))
        if isinstance(e, sp.MatPow):
            base = self(e.base)
            if not e.exp.is_Integer or e.exp < 0 or base.shape[0] != base.shape[1]:
                raise NoEvidence(f"matrix power {e.exp}")
            out = self.array(np.eye(base.shape[0]))
            for _ in range(int(e.exp)):
                out = out @ base
            return out
        if isinstance(e, sp.Inverse):
            if self.precise:
                return _mp_to_obj(mpmath.inverse(mpmath.matrix(self(e.arg).tolist())))
            return np.linalg.inv(self(e.arg))
        if isinstance(e, HadamardProduct):
            parts = [self(a) for a in e.args]
            out = parts[0]
            for p in parts[1:]:
                if p.shape != out.shape:
                    raise NoEvidence("shapes differ in a Hadamard product")
                out = out * p
            return out
        if isinstance(e, HadamardPower):
            base = self(e.base)
            return base ** self.scalar(e.exp)
        if isinstance(e, ElementwiseApplyFunction):
            return self.elementwise(e.function, self(e.expr))
        if isinstance(e, sp.MatrixBase):
            out = np.empty(e.shape, dtype=object if self.precise else float)
            for i in range(e.rows):
                for j in range(e.cols):
                    out[i, j] = self.scalar(_sympify(e[i, j]))
            return out
        if isinstance(e, sp.Trace):
            m = self(e.arg)
            return sum(m[i, i] for i in range(m.shape[0]))
        if type(e).__name__ == "Grad":
            return self.gradient(e.args[0], e.args[1])
        raise NoEvidence(f"cannot evaluate {type(e).__name__}")

    def loss_at(self, loss: Any, wrt: sp.MatrixSymbol, point: np.ndarray) -> Any:
        """The 1x1 ``loss`` with ``wrt`` set to ``point`` (definitions recomputed)."""
        values = dict(self.values)
        values[wrt] = point
        ev = Evaluator(values, self.dims, self.definitions, self.precise)
        if self.precise:
            ev.memo[wrt] = point
        value = np.asarray(ev(loss))
        if value.size != 1:
            raise NoEvidence("the loss is not 1x1")
        return value.reshape(-1)[0]

    def gradient(self, loss: Any, wrt: sp.MatrixSymbol):
        """``dL/dX`` by finite differences: a fourth-order stencil in float64,
        a central difference with step 1e-20 at 50 digits."""
        if wrt in self.definitions or wrt not in self.values:
            raise NoEvidence(f"gradient with respect to {wrt}")
        base = np.array(self.values[wrt], dtype=float)
        out = np.empty(base.shape, dtype=object if self.precise else float)

        def at(point) -> Any:
            return self.loss_at(loss, wrt, point)

        if self.precise:
            point = self.array(base)
            h = mpmath.mpf("1e-20")
            for idx in np.ndindex(base.shape):
                up, down = point.copy(), point.copy()
                up[idx] += h
                down[idx] -= h
                out[idx] = (at(up) - at(down)) / (2 * h)
            return out
        for idx in np.ndindex(base.shape):
            h = 1e-3 * max(1.0, abs(base[idx]))
            f = []
            for k in (2, 1, -1, -2):
                p = base.copy()
                p[idx] += k * h
                f.append(at(p))
            out[idx] = (8 * (f[1] - f[2]) - (f[0] - f[3])) / (12 * h)
        return out

    def directional(self, loss: Any, wrt: sp.MatrixSymbol, direction: np.ndarray):
        """``d/ds L(X + s V)`` at ``s = 0``: four loss evaluations in float64
        (fourth-order stencil), a central difference with step 1e-20 at 50 digits."""
        if wrt in self.definitions or wrt not in self.values:
            raise NoEvidence(f"gradient with respect to {wrt}")
        base = np.array(self.values[wrt], dtype=float)

        def at(point) -> Any:
            return self.loss_at(loss, wrt, point)

        if self.precise:
            point, v = self.array(base), self.array(direction)
            h = mpmath.mpf("1e-20")
            return (at(point + h * v) - at(point - h * v)) / (2 * h)
        h = 1e-3 * max(1.0, float(np.max(np.abs(base)))) / max(1.0, float(np.max(np.abs(direction))))
        f = [at(base + k * h * direction) for k in (2, 1, -1, -2)]
        return (8 * (f[1] - f[2]) - (f[0] - f[3])) / (12 * h)

    def product(self, mats: tuple):
        """``M_1 M_2 ... M_k``, evaluated from the right with every suffix product
        remembered (the terms of a collapsed ``b'`` share their suffixes); a suffix
        is named by the pair (first factor, name of the rest), so lookups are O(1)."""
        if not mats:
            raise NoEvidence("a product without matrix factors")
        sid, out = None, None
        for m in reversed(mats):
            key = (m, sid)
            hit = self.suffix.get(key)
            if hit is not None:
                sid, out = hit
                continue
            value = self(m)
            if out is not None:
                if value.shape[1] != out.shape[0]:
                    raise NoEvidence("shapes differ in a product")
                value = value @ out
            sid, out = len(self.suffix), value
            self.suffix[key] = (sid, out)
        return out

    def elementwise(self, lam: sp.Lambda, arg: np.ndarray):
        (var,) = lam.variables
        params = tuple(sorted(lam.expr.free_symbols - {var}, key=lambda s: s.name))
        values = [self.scalar_value(p) for p in params]
        if self.precise:
            f = _compiled(lam.expr, (var, *params), "mpmath")
            out = np.empty(arg.shape, dtype=object)
            with mpmath.workdps(CONFIRM_DIGITS):
                for idx, v in np.ndenumerate(arg):
                    try:
                        out[idx] = mpmath.mpf(f(v, *values))
                    except (TypeError, ValueError, ZeroDivisionError):
                        subs = {var: sp.Float(str(v), CONFIRM_DIGITS)}
                        subs.update({p: sp.Float(str(x), CONFIRM_DIGITS) for p, x in zip(params, values)})
                        value = lam.expr.evalf(CONFIRM_DIGITS, subs=subs)
                        if not value.is_real:
                            raise NoEvidence(f"non-real value of {lam}") from None
                        out[idx] = mpmath.mpf(sp.Float(value, CONFIRM_DIGITS))
            return out
        f = _compiled(lam.expr, (var, *params), "numpy")
        with np.errstate(all="ignore"):
            out = f(arg, *values)
        out = np.broadcast_to(np.asarray(out, dtype=float), arg.shape)
        return np.array(out)


def _mp_to_obj(m) -> np.ndarray:
    out = np.empty((m.rows, m.cols), dtype=object)
    for i in range(m.rows):
        for j in range(m.cols):
            out[i, j] = m[i, j]
    return out
