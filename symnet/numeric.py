"""Numeric evaluation of SymPy matrix expressions, in float64 and at 50 digits.

``lambdify`` cannot print elementwise matrix functions, so symnet walks the
expression tree itself.  The same walk runs on two arithmetic backends:
NumPy float64 arrays, and NumPy object arrays of mpmath numbers for the
high-precision confirmation that guards against refuting a true step because
of round-off.

:class:`Samples` holds the random instances a derivation is checked on
(standard-normal matrices, scalars, and a random size in 1..5 for every
symbolic dimension) and compares the two sides of a step on them.
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
#: Largest dimension the 50-digit confirmation handles (object arrays are slow);
#: beyond it a float64 disagreement stays unconfirmed and the step unproved.
MAX_CONFIRM_DIM = 64
#: Relative tolerance of the float64 comparison.
RTOL = 1e-7
#: Relative tolerance of a float64 directional derivative against a claimed gradient.
GRADIENT_RTOL = 1e-6
#: Relative difference that, at 50 digits, confirms a refutation.
CONFIRM_RTOL = 1e-20


def matrix_atoms(expr: Any, kinds: tuple = (sp.MatrixSymbol,)) -> set:
    """The subexpressions of the given kinds (a traversal that visits shared nodes once)."""
    out, seen, stack = set(), set(), [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, kinds):
            out.add(e)
            continue
        for a in getattr(e, "args", ()):
            if isinstance(a, sp.Basic) and not a.is_Atom and a not in seen:
                seen.add(a)
                stack.append(a)
            elif isinstance(a, kinds):
                out.add(a)
    return out


class NoEvidence(Exception):
    """This instance cannot be evaluated (domain, overflow, unsupported form)."""


@functools.lru_cache(maxsize=4096)
def _compiled(expr: sp.Expr, symbols: tuple, module: str):
    if module == "numpy":
        from .activations import LAMBDIFY_NUMPY  # array erf/erfc, which NumPy lacks

        return sp.lambdify(symbols, expr, modules=[LAMBDIFY_NUMPY, "numpy"])
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


def _too_large_to_confirm(ev: Evaluator) -> bool:
    """Object-array products are O(n^3) mpmath operations: beyond MAX_CONFIRM_DIM, don't."""
    return any(v.ndim and max(v.shape) > MAX_CONFIRM_DIM for v in ev.values.values() if isinstance(v, np.ndarray))


def _gradient_side(lhs: Any, rhs: Any) -> tuple[Any, Any]:
    """(the side that is a bare gradient node, the other side), or (None, None)."""
    is_grad = lambda e: type(e).__name__ == "Grad"  # noqa: E731 - the kernel's node
    if is_grad(lhs) and not is_grad(rhs):
        return lhs, rhs
    if is_grad(rhs) and not is_grad(lhs):
        return rhs, lhs
    return None, None


def _mp_to_obj(m) -> np.ndarray:
    out = np.empty((m.rows, m.cols), dtype=object)
    for i in range(m.rows):
        for j in range(m.cols):
            out[i, j] = m[i, j]
    return out


def _finite(a: Any) -> bool:
    return bool(np.all(np.isfinite(np.asarray(a, dtype=float))))


def _as_matrix(a: Any) -> np.ndarray:
    a = np.asarray(a)
    return a.reshape(1, 1) if a.ndim == 0 else a


def _listify(a: Any) -> Any:
    return np.asarray(a, dtype=float).tolist()


class Samples:
    """Seeded random instances shared by all steps of one derivation."""

    def __init__(self, definitions: dict, trials: int = 3, seed: int = 0, max_attempts: int = 4):
        self.definitions = definitions
        self.trials = trials
        self.seed = seed
        self.max_attempts = max_attempts
        self._instances: list[tuple[dict, dict, np.random.Generator]] = []
        self._known: set = set()
        self._dims: set = set()
        self._order: list = []
        self._seen_exprs: set = set()
        self._filled: dict[int, int] = {}
        self._evaluators: dict[int, Evaluator] = {}

    def _instance(self, k: int) -> tuple[dict, dict, np.random.Generator]:
        while len(self._instances) <= k:
            rng = np.random.default_rng([self.seed, len(self._instances)])
            self._instances.append(({}, {}, rng))
        return self._instances[k]

    def _discover(self, exprs: list) -> None:
        """Record, in a fixed order, every symbol the expressions depend on."""
        stack = list(exprs)
        while stack:
            e = stack.pop()
            if not isinstance(e, sp.Basic) or e in self._seen_exprs:
                continue
            self._seen_exprs.add(e)
            new = []
            for const in matrix_atoms(e, (sp.OneMatrix, sp.Identity, sp.ZeroMatrix)):
                for d in const.shape:
                    for dim in sorted(_sympify(d).free_symbols, key=_sort_key):
                        if dim not in self._known:
                            self._known.add(dim)
                            self._dims.add(dim)
                            self._order.append(dim)
            for s in e.free_symbols:
                if s in self._known:
                    continue
                self._known.add(s)
                if isinstance(s, sp.MatrixSymbol):
                    for d in s.shape:
                        for dim in sorted(_sympify(d).free_symbols, key=_sort_key):
                            if dim not in self._known:
                                self._known.add(dim)
                                self._dims.add(dim)
                                self._order.append(dim)
                    if s in self.definitions:
                        stack.append(self.definitions[s])
                        continue
                new.append(s)
            self._order.extend(sorted(new, key=_sort_key))

    def _populate(self, k: int, exprs: list) -> Evaluator:
        self._discover(exprs)
        values, dims, rng = self._instance(k)
        # one evaluator per instance: values of defined symbols are computed once
        # (definitions are only ever added, never changed)
        ev = self._evaluators.get(k)
        if ev is None:
            ev = self._evaluators[k] = Evaluator(values, dims, self.definitions)
        filled = self._filled.get(k, 0)
        fresh = self._order[filled:]
        for s in fresh:  # sizes and scalars first: matrices need their sizes
            if isinstance(s, sp.MatrixSymbol):
                continue
            if s in self._dims or s.is_integer:
                dims[s] = int(rng.integers(1, 6))
            else:
                values[s] = float(rng.uniform(0.5, 2.0)) if s.is_positive else float(rng.normal())
        for s in fresh:
            if isinstance(s, sp.MatrixSymbol):
                values[s] = rng.standard_normal((ev.dim(s.rows), ev.dim(s.cols)))
        self._filled[k] = len(self._order)
        return ev

    def _instance_or_none(self, k: int, exprs: list) -> Evaluator | None:
        """The evaluator of instance k, or None when it cannot be built (no evidence)."""
        try:
            return self._populate(k, exprs)
        except Exception:  # noqa: BLE001 - no instance, no evidence
            return None

    def compare(self, lhs: Any, rhs: Any) -> tuple[Any, dict | None]:
        """Evaluate both sides on the instances: (report, counterexample or None)."""
        from .kernel import NumericReport

        grad, other = _gradient_side(lhs, rhs)
        if grad is not None:
            return self._compare_gradient(grad, other, lhs is grad)

        evaluated, worst, disputed = 0, 0.0, False
        for k in range(self.trials * self.max_attempts):
            if evaluated >= self.trials:
                break
            ev = self._instance_or_none(k, [lhs, rhs])
            if ev is None:
                continue
            try:
                with np.errstate(all="ignore"):
                    a, b = _as_matrix(ev(lhs)), _as_matrix(ev(rhs))
            except Exception:  # noqa: BLE001 - any failure to evaluate is "no evidence", never a verdict
                continue
            if not (_finite(a) and _finite(b)):
                continue
            evaluated += 1
            if a.shape != b.shape:
                return NumericReport(evaluated, float("inf"), False), self._counter(
                    ev, a, b, f"the sides have shapes {a.shape[0]}x{a.shape[1]} and {b.shape[0]}x{b.shape[1]}"
                )
            err = float(np.max(np.abs(a - b))) if a.size else 0.0
            # relative to the values themselves: no absolute floor, so a tiny
            # nonzero value is never taken for zero (the 50-digit check decides)
            scale = max(float(np.max(np.abs(a))) if a.size else 0.0, float(np.max(np.abs(b))) if b.size else 0.0)
            if err > RTOL * scale:
                confirmed = self._confirm(ev, lhs, rhs)
                if confirmed is True:
                    return NumericReport(evaluated, err, False), self._counter(
                        ev, a, b, f"the sides differ by {err:.3g} at a random instance"
                    )
                if confirmed is None:  # cannot tell round-off from a difference
                    evaluated -= 1
                    disputed = True
                    continue
                # equal at 50 digits: the float difference was round-off
            worst = max(worst, err)
        return NumericReport(evaluated, worst, not disputed), None

    def _compare_gradient(self, grad: Any, other: Any, grad_on_left: bool) -> tuple[Any, dict | None]:
        """``dL/dX = G`` checked along random directions V: the directional derivative
        of L (finite differences) against ``<G, V>``; O(1) loss evaluations per trial."""
        from .kernel import NumericReport

        loss, wrt = grad.args
        evaluated, worst, disputed = 0, 0.0, False
        for k in range(self.trials * self.max_attempts):
            if evaluated >= self.trials:
                break
            ev = self._instance_or_none(k, [grad, other])
            if ev is None:
                continue
            rng = np.random.default_rng([self.seed, k, 7])
            try:
                with np.errstate(all="ignore"):
                    g = _as_matrix(ev(other))
                    X = np.asarray(ev.values[wrt], dtype=float)
                    if g.shape != X.shape:
                        evaluated += 1
                        pair = (X, g) if grad_on_left else (g, X)
                        return NumericReport(evaluated, float("inf"), False), self._counter(
                            ev, *pair, f"the gradient is {X.shape[0]}x{X.shape[1]} but the other side is "
                            f"{g.shape[0]}x{g.shape[1]}")
                    V = rng.standard_normal(X.shape)
                    fd = float(ev.directional(loss, wrt, V))
                    claim = float(np.sum(g * V))
            except Exception:  # noqa: BLE001 - no evidence
                continue
            if not (np.isfinite(fd) and np.isfinite(claim)):
                continue
            evaluated += 1
            err = abs(fd - claim)
            if err > GRADIENT_RTOL * max(abs(fd), abs(claim)):
                confirmed = self._confirm_directional(ev, loss, wrt, other, V)
                if confirmed is True:
                    a, b = (np.array([[fd]]), np.array([[claim]]))
                    if not grad_on_left:
                        a, b = b, a
                    counter = self._counter(ev, a, b, f"along a random direction V the derivative of "
                                            f"{loss} is {fd:.6g} but the claimed gradient gives {claim:.6g}")
                    counter["direction"] = V.tolist()
                    return NumericReport(evaluated, err, False), counter
                if confirmed is None:
                    evaluated -= 1
                    disputed = True
                    continue
            worst = max(worst, err)
        return NumericReport(evaluated, worst, not disputed), None

    def _confirm_directional(self, ev: Evaluator, loss: Any, wrt: Any, other: Any, V: np.ndarray) -> bool | None:
        if _too_large_to_confirm(ev):
            return None
        precise = Evaluator(ev.values, ev.dims, self.definitions, precise=True)
        try:
            with mpmath.workdps(CONFIRM_DIGITS):
                fd = precise.directional(loss, wrt, V)
                g = _as_matrix(precise(other))
                claim = sum((x * mpmath.mpf(float(v)) for x, v in zip(g.flat, V.flat)), mpmath.mpf(0))
                diff = abs(fd - claim)
                return bool(diff > mpmath.mpf("1e-15") * max(abs(fd), abs(claim)) and diff > mpmath.mpf("1e-40"))
        except Exception:  # noqa: BLE001
            return None

    def _confirm(self, ev: Evaluator, lhs: Any, rhs: Any) -> bool | None:
        """Re-evaluate at 50 digits: True (they differ), False (equal), None (cannot tell)."""
        if _too_large_to_confirm(ev):
            return None
        precise = Evaluator(ev.values, ev.dims, self.definitions, precise=True)
        try:
            with mpmath.workdps(CONFIRM_DIGITS):
                a, b = _as_matrix(precise(lhs)), _as_matrix(precise(rhs))
                if a.shape != b.shape:
                    return True
                diff = max((abs(x - y) for x, y in zip(a.flat, b.flat)), default=mpmath.mpf(0))
                scale = max([abs(x) for x in a.flat] + [abs(y) for y in b.flat], default=mpmath.mpf(0))
                return bool(diff > CONFIRM_RTOL * scale and diff > mpmath.mpf("1e-40"))
        except Exception:  # noqa: BLE001 - no confirmation, no refutation
            return None

    @staticmethod
    def _counter(ev: Evaluator, a: np.ndarray, b: np.ndarray, reason: str) -> dict:
        values = {}
        for s, v in sorted(ev.values.items(), key=lambda kv: _sort_key(kv[0])):
            values[s.name] = _listify(v) if isinstance(v, np.ndarray) else float(v)
        return {
            "values": values,
            "dims": {s.name: n for s, n in sorted(ev.dims.items(), key=lambda kv: kv[0].name)},
            "lhs": _listify(a),
            "rhs": _listify(b),
            "difference": float(np.max(np.abs(a - b))) if a.shape == b.shape else None,
            "reason": reason,
        }


def _sort_key(s: Any) -> tuple:
    return (0 if isinstance(s, sp.MatrixSymbol) else 1, str(s.name))
