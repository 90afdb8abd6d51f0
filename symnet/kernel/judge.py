"""The numeric judge: an independent second opinion on ``lhs = rhs``.

The judge evaluates :class:`~symnet.kernel.terms.Term` objects directly, with
its own implementations of every primitive in NumPy float64 and in mpmath.  It
shares no code with the symbolic side (it imports only the standard library,
NumPy, mpmath and its sibling modules ``terms`` and ``errors``).

Instances.  Every named dimension gets a size (2 on trial 0, 1 on trial 1,
random 1..5 afterwards), every free symbol standard-normal values drawn from
``numpy.random.default_rng(seed + trial)`` in sorted order, and symbols with a
definition are evaluated from it, in topological order (no recursion along
definition chains).  An instance where a value is NaN/inf or a primitive leaves
its domain is no evidence and is resampled (up to 8 attempts per trial).

Round-off.  Every node carries, beside its value, a bound on its distance from
the exact value of the node (given exact inputs), in the standard model
``|fl(x op y) - x op y| <= u |x op y| + eta``; library functions are assumed
accurate to ``4u``.  The propagated error of a function is ``e * max|f'|`` over
``[x - e, x + e]`` (computed with outward padding); kinks and jumps inside that
interval (``abs`` is fine, ``sign``/``heaviside``/piecewise conditions are not)
contribute the size of the jump.  A difference counts only when
``|L - R| > C (errL + errR)`` with ``C = 16``, first in float64 and then,
confirming, in mpmath at 60 significant digits (``u = 1e-60``).  The
confirmation is *careful error bounds*, not interval arithmetic: it rests on
mpmath's functions being accurate to a few units in the last place and on the
error bounds (held in float64) not underflowing below ``1e-300``.  Derivatives
(``grad``, first ``diff``, ``jacobian``) are taken in float64 by forward mode
(dual numbers: each node's tangent carries a bound formed by the same rules as
the values', so there is no truncation error); where forward mode has no rule
(kinks, piecewise boundaries, opaque functions, nested derivatives) and in the
high-precision confirmation they are central finite differences in mpmath at
extra precision, whose truncation error is *estimated* (from the step ``h``
against ``2h``), not bounded: a refutation through a derivative is confirmed
by that second, independent method and is as reliable as its estimate.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from fractions import Fraction
from math import comb

import mpmath
import numpy as np

from .errors import ShapeError
from .terms import Fn, PositiveName, Term, factor_roles, walk

C_SAFETY = 16.0
_LAZY = frozenset({"piecewise", "grad", "diff", "lt", "le", "gt", "ge", "eq", "ne", "and", "or", "not"})
MP_DPS = 60
MAX_ATTEMPTS = 8
MAX_DIM_FLOAT = 1024
MAX_DIM_MP = 64
_ETA = 1e-300
_U64 = 2.0 ** -53
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi) * (1 + 1e-9)


# ---------------------------------------------------------------------------
# Failures


class _NoEvidence(Exception):
    """This instance says nothing (domain, NaN/inf, unusable round-off bound)."""


class _Fail:
    __slots__ = ("exc",)

    def __init__(self, exc: Exception):
        self.exc = exc


# ---------------------------------------------------------------------------
# Backends: how values are stored and primitives computed.  Error bounds are
# always float64 arrays; values are 2-D arrays (a scalar is 1x1).


class _F64:
    mp = False
    grad_P = 30

    def __init__(self):
        self.u = _U64
        self.ufn = 4 * _U64
        self.dps = 16

    def frac(self, q: Fraction):
        try:
            v = float(q)
        except OverflowError:
            raise _NoEvidence("a number too large for float64") from None
        exact = Fraction(v) == q
        return np.full((1, 1), v), np.full((1, 1), 0.0 if exact else self.u * abs(v) + _ETA)

    def const(self, name: str):
        v = math.pi if name == "pi" else math.e
        return np.full((1, 1), v), np.full((1, 1), self.u * v)

    def lift(self, v):
        if v.dtype == object:
            return v.astype(float)
        return v

    def absf(self, v):
        return np.abs(v)

    def tofloat(self, v):
        return v

    def finite(self, v) -> bool:
        return bool(np.all(np.isfinite(v)))

    def full(self, shape, x):
        return np.full(shape, float(x))

    def fn(self, name: str, x):
        if name == "erf":
            return np.vectorize(math.erf, otypes=[float])(x)
        if name == "erfc":
            return np.vectorize(math.erfc, otypes=[float])(x)
        if name == "sinc":
            safe = np.where(x == 0, 1.0, x)
            return np.where(x == 0, 1.0, np.sin(safe) / safe)
        return _NP_FUNCS[name](x)


_NP_FUNCS = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "tanh": np.tanh, "sinh": np.sinh, "cosh": np.cosh, "atan": np.arctan, "asinh": np.arcsinh,
}


def _mp_sinc(x):
    return mpmath.mpf(1) if x == 0 else mpmath.sin(x) / x


_MP_FUNCS = {
    "exp": mpmath.exp, "log": mpmath.log, "sqrt": mpmath.sqrt, "sin": mpmath.sin,
    "cos": mpmath.cos, "tan": mpmath.tan, "tanh": mpmath.tanh, "sinh": mpmath.sinh,
    "cosh": mpmath.cosh, "atan": mpmath.atan, "asinh": mpmath.asinh, "erf": mpmath.erf,
    "erfc": mpmath.erfc, "sinc": _mp_sinc,
}
_MP_VEC = {k: np.frompyfunc(f, 1, 1) for k, f in _MP_FUNCS.items()}
_TO_MPF = np.frompyfunc(mpmath.mpf, 1, 1)
_MP_SIGN = np.frompyfunc(lambda v: mpmath.mpf(mpmath.sign(v)), 1, 1)
_IS_FINITE_MP = np.frompyfunc(mpmath.isfinite, 1, 1)


class _MP:
    mp = True

    def __init__(self, dps: int):
        self.dps = dps
        self.grad_P = dps
        self.u = 10.0 ** -dps
        self.ufn = 4 * self.u

    def frac(self, q: Fraction):
        v = mpmath.mpf(q.numerator) / q.denominator
        a = np.empty((1, 1), dtype=object)
        a[0, 0] = v
        exact = q.denominator == 1 and abs(q.numerator) < 2 ** 150
        return a, np.full((1, 1), 0.0 if exact else 2 * self.u * _absf_scalar(v) + _ETA)

    def const(self, name: str):
        v = +mpmath.pi if name == "pi" else +mpmath.e
        a = np.empty((1, 1), dtype=object)
        a[0, 0] = v
        return a, np.full((1, 1), 2 * self.u * float(v))

    def lift(self, v):
        if v.dtype == object:
            return v
        return _TO_MPF(v).astype(object)

    def absf(self, v):
        return np.abs(v).astype(float)

    def tofloat(self, v):
        return v.astype(float)

    def finite(self, v) -> bool:
        return bool(np.all(_IS_FINITE_MP(v).astype(bool)))

    def full(self, shape, x):
        a = np.empty(shape, dtype=object)
        a.fill(mpmath.mpf(x))
        return a

    def fn(self, name: str, x):
        return _MP_VEC[name](x).astype(object)


def _absf_scalar(v) -> float:
    try:
        return abs(float(v))
    except OverflowError:
        return math.inf


# ---------------------------------------------------------------------------
# Declared-function stand-ins


def _name_code(name: str) -> int:
    return sum((i + 1) * ord(ch) for i, ch in enumerate(name))


def standin(name: str, trial: int):
    """The constants ``(a, c, g)`` of the stand-in ``sin(a t + c) + t^2/g`` for ``name`` on ``trial``."""
    s = _name_code(name)
    a = Fraction(5 + (s + 3 * trial) % 7, 7)
    c = Fraction((s + trial) % 5, 3)
    g = 2 + (s + 2 * trial) % 3
    return a, c, g


def describe_standin(fn: Fn, trial: int) -> str:
    a, c, g = standin(fn.name, trial)
    inner = f"{a} t + {c}" + "".join(f" + {Fraction(i + 1, i + 2)} p{i + 1}" for i in range(fn.nparams))
    text = f"sin({inner}) + t^2/{g}" + "".join(f" + p{i + 1}^2/{i + 3}" for i in range(fn.nparams))
    if fn.order:
        text = f"derivative {fn.order} in t of {text}"
    return text


# ---------------------------------------------------------------------------
# Opinion


@dataclass(frozen=True)
class Opinion:
    trials: int
    agree: bool
    max_rel_error: float
    counterexample: dict | None
    detail: str


# ---------------------------------------------------------------------------
# Instances and evaluation contexts


def _sign(trial: int, index: int) -> float:
    """The sign of the ``index``-th scalar in a trial: all negative in trial 0, all
    positive in trial 1, alternating in trial 2, then bits of the trial number, so
    that identities false only for some signs (relu(a) = a, sqrt(a^2) = a,
    |a b| = a b) meet a refuting instance within a few trials."""
    if trial == 0:
        return -1.0
    if trial == 1:
        return 1.0
    if trial == 2:
        return 1.0 if index % 2 == 0 else -1.0
    return 1.0 if (trial >> (index % 5)) & 1 else -1.0


def _stable_code(name: str) -> int:
    """A code of a name that does not depend on hash seeds (and tells ``ab`` from ``ba``)."""
    return zlib.crc32(str(name).encode("utf-8"))


class _LazyDims(dict):
    """Sizes of named dimensions in one trial: 2 in trial 0, 1 in trial 1, then 1..5 at random."""

    def __init__(self, seed: int, trial: int):
        super().__init__()
        self.seed, self.trial = seed, trial

    def __missing__(self, name: str) -> int:
        if self.trial == 0:
            n = 2
        elif self.trial == 1:
            n = 1
        else:
            n = int(np.random.default_rng([self.seed, self.trial, _stable_code(name)]).integers(1, 6))
        self[name] = n
        return n


class _LazyValues(dict):
    """Values of free symbols in one (trial, attempt), drawn on first use from a generator
    seeded by the symbol's name: the same symbol has the same value in every comparison."""

    def __init__(self, seed: int, trial: int, attempt: int, inst: _Instance):
        super().__init__()
        self.seed, self.trial, self.attempt, self.inst = seed, trial, attempt, inst

    def get(self, t: Term, default=None):
        if t in self:
            return self[t]
        if t.op != "sym":
            return default
        code = _stable_code(t.value)
        rng = np.random.default_rng([self.seed, self.trial, self.attempt, code])
        v = rng.standard_normal(self.inst.shape(t.shape))
        if t.shape is not None and v.shape[0] > 1:
            # entries of size 1/sqrt(rows): a product of hundreds of matrices stays in range
            # (any values are valid instances; these keep x W1 ... W500 away from overflow)
            v = v / np.sqrt(v.shape[0])
        if t.shape is None and isinstance(t.value, PositiveName):
            v = np.abs(v) + 1e-3  # declared positive
        elif t.shape is None and self.attempt < 2:  # scalars: every sign pattern has its
            # trial; a retry (a domain missed) tries all positive, then any signs
            v = np.abs(v) * (_sign(self.trial, code) if self.attempt == 0 else 1.0)
        self[t] = v
        return v


class _Instance:
    def __init__(self, dims: dict, values: dict, trial: int):
        self.dims = dims          # name -> int
        self.values = values      # sym Term -> float64 2-D array
        self.trial = trial

    def shape(self, shape) -> tuple:
        if shape is None:
            return (1, 1)
        return tuple(d if isinstance(d, int) else self.dims[d] for d in shape)


def _outward(xf, e):
    pad = 4 * _U64 * (np.abs(xf) + e)
    return xf - e - pad, xf + e + pad


class _Ctx:
    """Evaluation of terms on one instance with one backend (and optional overrides)."""

    def __init__(self, judge: Judge, inst: _Instance, B, over: dict | None = None,
                 base: _Ctx | None = None):
        self.J = judge
        self.inst = inst
        self.B = B
        self.over = dict(over or {})
        self.base = base          # a context without the extra overrides, to share definitions
        self.new_keys = set()     # overrides this context adds beyond ``base``
        self.defs: dict = {}
        self.memo: dict = {}
        self.free: dict = {}
        self.fd_bases: dict = {}  # working precision -> context shared by finite differences
        self.reverse: dict = {}   # loss -> its reverse sweep on this instance (or _NO_SWEEP)

    # -- symbols and definitions -------------------------------------------------

    def sym(self, t: Term):
        if t in self.over:
            return self.over[t]
        defs = self.J.definitions
        if t in defs:
            if self.base is not None and not any(self.J._depends(t, k) for k in self.new_keys):
                return self.base.sym(t)
            r = self.defs.get(t)
            if r is None:
                self._prepare(t)
                r = self.defs[t]
            if isinstance(r, _Fail):
                raise r.exc
            return r
        r = self.free.get(t)
        if r is None:
            raw = self.inst.values.get(t)
            if raw is None:
                raise _NoEvidence(f"no value for {t.value}")
            r = (self.B.lift(raw), np.zeros(raw.shape))
            self.free[t] = r
        return r

    def _prepare(self, t: Term) -> None:
        def known(s):  # evaluated already, overridden, or shared from the base context
            return s in self.defs or s in self.over or (
                self.base is not None and not any(self.J._depends(s, k) for k in self.new_keys))

        for s in self.J._topo_until(t, known):
            if known(s):
                continue
            try:
                self.defs[s] = self.ev(self.J.definitions[s])
            except (_NoEvidence, ShapeError) as exc:
                self.defs[s] = _Fail(exc if isinstance(exc, _NoEvidence) else _NoEvidence(str(exc)))

    def child(self, extra: dict) -> _Ctx:
        c = _Ctx(self.J, self.inst, self.B, {**self.over, **extra}, base=self)
        c.new_keys = set(extra)
        c.free = self.free
        return c

    def convert(self, val):
        v, e = val
        return self.B.lift(v), e

    # -- arithmetic on (value, error) pairs --------------------------------------

    def _check(self, v, e):
        if not self.B.finite(v):
            raise _NoEvidence("a value overflowed or is undefined (not a finite number)")
        return v, e

    def add(self, vals):
        v = vals[0][0]
        for x in vals[1:]:
            v = v + x[0]
        e = sum(x[1] for x in vals) + (len(vals) - 1) * self.B.u * sum(self.B.absf(x[0]) for x in vals) + _ETA
        return self._check(v, e)

    def neg(self, a):
        return -a[0], a[1]

    def emul(self, a, b):
        (va, ea), (vb, eb) = a, b
        v = va * vb
        Aa, Ab = self.B.absf(va), self.B.absf(vb)
        e = Aa * eb + ea * Ab + ea * eb + self.B.u * Aa * Ab + _ETA
        return self._check(v, e)

    def matmul(self, a, b):
        (va, ea), (vb, eb) = a, b
        n = va.shape[1]
        v = va @ vb
        Aa, Ab = self.B.absf(va), self.B.absf(vb)
        e = Aa @ eb + ea @ Ab + ea @ eb + (n + 1) * self.B.u * (Aa @ Ab) + n * _ETA
        return self._check(v, e)

    def div(self, a, b):
        (va, ea), (vb, eb) = a, b
        if bool(np.any(vb == 0)):
            raise _NoEvidence("division by zero")
        Aa, Ab = self.B.absf(va), self.B.absf(vb)
        v = va / vb
        with np.errstate(all="ignore"):
            den = Ab * (Ab - eb)
            e = np.where(eb < Ab, (Aa * eb + Ab * ea) / np.where(den > 0, den, 1.0), np.inf)
        e = e + self.B.u * self.B.absf(v) + _ETA
        return self._check(v, e)

    def ipow(self, a, k: int):
        x, e = a
        if k == 0:
            return self.B.full(x.shape, 1), np.zeros(x.shape)
        if k < 0 and bool(np.any(x == 0)):
            raise _NoEvidence("division by zero (a negative power of 0)")
        v = x ** k
        self._check(v, e)
        xf = self.B.tofloat(x)
        lo, hi = _outward(xf, e)
        with np.errstate(all="ignore"):
            if k > 0:
                D = k * np.maximum(np.abs(lo), np.abs(hi)) ** (k - 1)
            else:
                m = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))
                D = np.where(m > 0, -k / np.where(m > 0, m, 1.0) ** (1 - k), np.inf)
            dev = np.where(e == 0, 0.0, e * D * (1 + 1e-9))
        err = dev + (abs(k) + 1) * self.B.ufn * self.B.absf(v) + _ETA
        return v, err

    def prim(self, name: str, args):
        B = self.B
        if name in ("max", "min"):  # entrywise; 1-Lipschitz, so the largest error bounds it
            vals = np.broadcast_arrays(*[a[0] for a in args])
            errs = np.broadcast_arrays(*[a[1] for a in args])
            stacked = np.stack(vals)
            v = stacked.max(axis=0) if name == "max" else stacked.min(axis=0)
            return np.array(v), np.maximum.reduce(errs)
        x, e = args[0]
        if name == "abs":
            return np.abs(x), e
        xf = B.tofloat(x)
        lo, hi = _outward(xf, e)
        straddle = (lo <= 0) & (hi >= 0) & (e > 0)
        if name == "sign":
            v = _MP_SIGN(x).astype(object) if B.mp else np.sign(x)
            return v, np.where(straddle, np.where(xf == 0, 1.0, 2.0), 0.0)
        if name == "heaviside":
            h0v, h0e = args[1]
            h0 = float(B.tofloat(h0v)[0, 0])
            vf = np.where(xf > 0, 1.0, np.where(xf < 0, 0.0, h0))
            if B.mp:
                v = np.empty(x.shape, dtype=object)
                for idx in np.ndindex(x.shape):
                    v[idx] = mpmath.mpf(1) if x[idx] > 0 else (mpmath.mpf(0) if x[idx] < 0 else h0v[0, 0])
            else:
                v = vf
            jump = np.maximum(np.maximum(np.abs(1 - vf), np.abs(vf)), np.abs(h0 - vf))
            return v, np.where(straddle, jump, 0.0) + np.where(xf == 0, h0e[0, 0], 0.0)
        if name == "dirac":
            if bool(np.any(x == 0)):
                raise _NoEvidence("dirac at 0")
            return B.full(x.shape, 0), np.where(straddle, np.inf, 0.0)
        if name == "log" and bool(np.any(x <= 0)):
            raise _NoEvidence("log of a non-positive number")
        if name == "sqrt" and bool(np.any(x < 0)):
            raise _NoEvidence("sqrt of a negative number")
        v = B.fn(name, x)
        self._check(v, e)
        with np.errstate(all="ignore"):
            m = np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))
            M = np.maximum(np.abs(lo), np.abs(hi))
            if name == "exp":
                D = np.exp(hi)
            elif name == "log":
                D = np.where(lo > 0, 1.0 / np.where(lo > 0, lo, 1.0), np.inf)
            elif name == "sqrt":
                D = np.where(lo > 0, 0.5 / np.sqrt(np.where(lo > 0, lo, 1.0)), np.inf)
            elif name == "sin":
                D = np.minimum(1.0, np.abs(np.cos(xf)) + e)
            elif name == "cos":
                D = np.minimum(1.0, np.abs(np.sin(xf)) + e)
            elif name == "tan":
                pole = (np.sign(np.cos(lo)) != np.sign(np.cos(hi))) | (hi - lo >= math.pi) | (np.cos(lo) == 0)
                D = np.where(pole, np.inf, 1.0 + np.maximum(np.tan(lo) ** 2, np.tan(hi) ** 2))
            elif name == "tanh":
                D = 1.0 / np.cosh(m) ** 2
            elif name == "sinh":
                D = np.cosh(M)
            elif name == "cosh":
                D = np.sinh(M)
            elif name == "atan":
                D = 1.0 / (1.0 + m * m)
            elif name == "asinh":
                D = 1.0 / np.sqrt(1.0 + m * m)
            elif name in ("erf", "erfc"):
                D = _TWO_OVER_SQRT_PI * np.exp(-m * m)
            elif name == "sinc":
                D = np.ones_like(xf)
            else:  # pragma: no cover - PRIMITIVES is closed
                raise _NoEvidence(f"unknown primitive {name}")
            dev = np.where(e == 0, 0.0, e * D * (1 + 1e-9))
            if name == "sqrt":  # at or near 0 the value lies in [0, sqrt(hi)]
                dev = np.where((lo <= 0) & (e > 0), np.sqrt(np.maximum(hi, 0.0)), dev)
        dev = np.where(np.isnan(dev), np.inf, dev)
        return v, dev + B.ufn * B.absf(v) + _ETA

    # -- relations ---------------------------------------------------------------

    def truth(self, t: Term, env, memo):
        op = t.op
        if op == "true":
            return True
        if op == "not":
            r = self.truth(t.args[0], env, memo)
            return None if r is None else (not r)
        if op in ("and", "or"):
            rs = [self.truth(a, env, memo) for a in t.args]
            if op == "and":
                return False if False in rs else (None if None in rs else True)
            return True if True in rs else (None if None in rs else False)
        a = self.ev(t.args[0], env, memo)
        b = self.ev(t.args[1], env, memo)
        d, e = self.add([a, self.neg(b)])
        d = float(self.B.tofloat(d)[0, 0])
        e = float(e[0, 0])
        if op == "eq":
            if e == 0:
                return d == 0
            return False if abs(d) > e else None
        if op == "ne":
            r = self.truth(Term("eq", t.args), env, memo)
            return None if r is None else (not r)
        if op in ("gt", "ge"):
            d = -d
            op = "lt" if op == "gt" else "le"
        if op == "lt":
            return True if d + e < 0 else (False if d - e >= 0 else None)
        return True if d + e <= 0 else (False if d - e > 0 else None)  # le

    # -- the evaluator -------------------------------------------------------------

    def ev(self, t: Term, env=None, memo=None):
        """Value and error bound of ``t``: children first, by an explicit stack (pieces of a
        piecewise and the bodies of ``grad``/``diff`` are evaluated lazily by their parent)."""
        if memo is None:
            memo = self.memo
        r = memo.get(t)
        if r is not None:
            return r
        stack = [(t, False)]
        while stack:
            node, ready = stack.pop()
            if node in memo:
                continue
            if ready:
                memo[node] = self._ev(node, env, memo)
                continue
            stack.append((node, True))
            if node.op not in _LAZY:
                stack.extend((c, False) for c in reversed(node.args) if c not in memo)
        return memo[t]

    def _ev(self, t: Term, env, memo):
        op = t.op
        B = self.B
        if op == "num":
            return B.frac(t.value)
        if op == "const":
            return B.const(t.value)
        if op == "sym":
            return self.sym(t)
        if op == "dim":
            return B.frac(Fraction(self.inst.dims[t.value]))
        if op == "var":
            if env is None:
                raise _NoEvidence("a function variable outside a formula")
            return env[0]
        if op == "param":
            if env is None:
                raise _NoEvidence("a function parameter outside a formula")
            return env[1][t.value]
        if op in ("ones", "zeros", "eye"):
            shape = self.inst.shape(t.shape)
            if op == "eye":
                v = B.lift(np.eye(shape[0]))
            else:
                v = B.full(shape, 1 if op == "ones" else 0)
            return v, np.zeros(shape)
        if op == "matrix":
            shape = self.inst.shape(t.shape)
            ents = [self.ev(a, env, memo) for a in t.args]
            v = np.empty(shape, dtype=object if B.mp else float)
            e = np.zeros(shape)
            for i, (ev_, ee) in enumerate(ents):
                v[divmod(i, shape[1])] = ev_[0, 0]
                e[divmod(i, shape[1])] = ee[0, 0]
            return v, e
        if op == "piecewise":
            return self._piecewise(t, env, memo)
        if op == "grad":
            return self._grad(t.args[0], t.args[1])
        if op in ("jacobian", "hessian"):
            y = t.args[0] if op == "jacobian" else Term("grad", t.args, shape=t.args[1].shape)
            return self._jacobian(y, t.args[1])
        if op == "diff":
            return self._diff(t.args[0], t.args[1], t.value)
        if op == "apply":
            return self._apply(t, env, memo)
        if op == "hadpow":
            k = t.args[1].value
            a = self.ev(t.args[0], env, memo)
            if k.denominator == 1:
                return self.ipow(a, int(k))
            return self._realpow(a, self.ev(t.args[1], env, memo), t.args[1])
        args = [self.ev(a, env, memo) for a in t.args]
        if op == "add":
            return self.add(args)
        if op == "sub":
            return self.add([args[0], self.neg(args[1])])
        if op == "neg":
            return self.neg(args[0])
        if op == "mul":
            # the same roles as the kernel's: a 1x1 matrix that does not fit scales
            scale_by, acc = [], None
            for f, matrix_factor in zip(args, factor_roles(t.args)):
                if not matrix_factor:
                    scale_by.append(f)
                elif acc is None:
                    acc = f
                else:
                    acc = self.matmul(acc, f)
            if acc is None:
                acc = scale_by.pop(0)
            for f in scale_by:
                acc = self.emul(acc, f)
            return acc
        if op == "had":
            acc = args[0]
            for f in args[1:]:
                acc = self.emul(acc, f)
            return acc
        if op == "div":
            return self.div(args[0], args[1])
        if op == "pow":
            base, kt = args[0], t.args[1]
            if t.args[0].is_matrix:
                return self._matpow(base, int(kt.value))
            if kt.op == "num" and kt.value.denominator == 1:
                return self.ipow(base, int(kt.value))
            return self._realpow(base, args[1], kt)
        if op == "T":
            return args[0][0].T, args[0][1].T
        if op == "trace":
            return self.trace_of(args[0])
        if op == "sum":
            return self._check(*self.ev_sum(args[0]))
        if op == "prim":
            return self.prim(t.value, args)
        if op in ("inv", "det"):
            return self._inv_det(op, args[0])
        if op == "norm":
            v, e = args[0]
            s = sum(x * x for x in v.ravel())
            nv = mpmath.sqrt(s) if B.mp else math.sqrt(s)
            A = B.absf(v)
            nf = float(nv)
            if nf == 0:
                raise _NoEvidence("the norm of a zero matrix (a kink)")
            err = float(np.sum(A * e)) / nf + (v.size + 1) * B.u * nf + _ETA
            out = np.empty((1, 1), dtype=object if B.mp else float)
            out[0, 0] = nv
            return self._check(out, np.full((1, 1), err))
        if op == "diag":
            return self.diag_of(args[0])
        raise _NoEvidence(f"the judge cannot evaluate {op!r}")

    def _inv_det(self, op: str, arg):
        B = self.B
        v, e = arg
        n = v.shape[0]
        vf = B.tofloat(v)
        try:
            inv_f = np.linalg.inv(vf)
        except np.linalg.LinAlgError:
            raise _NoEvidence("a singular matrix") from None
        A = np.abs(inv_f)
        kappa = float(np.linalg.norm(vf, 1) * np.linalg.norm(A, 1))
        if not math.isfinite(kappa) or kappa * B.u * n * 1e3 > 1e-3:
            raise _NoEvidence("a nearly singular matrix")
        if op == "inv":
            if B.mp:
                vi = np.array((mpmath.matrix(v.tolist()) ** -1).tolist(), dtype=object)
            else:
                vi = inv_f
            err = A @ e @ A + 8 * n * kappa * B.u * A + _ETA
            return self._check(vi, err)
        d = mpmath.det(mpmath.matrix(v.tolist())) if B.mp else float(np.linalg.det(vf))
        df = abs(float(d))
        err = df * float(np.sum(A.T * e)) + 8 * n * kappa * B.u * df + _ETA
        out = np.empty((1, 1), dtype=object if B.mp else float)
        out[0, 0] = d
        return self._check(out, np.full((1, 1), err))

    def _jacobian(self, y: Term, x: Term):
        """``J_ij = dy_i/dx_j`` by central differences of each entry of y along each entry of x."""
        yshape, xshape = self.inst.shape(y.shape), self.inst.shape(x.shape)
        m, n = yshape[0] * yshape[1], xshape[0] * xshape[1]
        columns = []
        for xj in np.ndindex(xshape):  # forward mode: one pass per entry of x gives a column
            d = np.zeros(xshape)
            d[xj] = 1.0
            fwd = self._forward(y, x, d)
            if fwd is None:
                break
            columns.append((fwd[0].ravel(), fwd[1].ravel()))
        else:
            return (np.column_stack([c[0] for c in columns]).reshape(m, n),
                    np.column_stack([c[1] for c in columns]).reshape(m, n))
        vals, errs = {}, np.zeros((m, n))
        for i, yi in enumerate(np.ndindex(yshape)):
            unit = [[Term("num", value=Fraction(int(idx == yi))) for idx in
                     [(r, c) for c in range(yshape[1])]] for r in range(yshape[0])]
            pick = Term("sum", (Term("had", (Term("matrix", [u for row in unit for u in row], shape=yshape), y),
                                     shape=yshape),))
            for j, xj in enumerate(np.ndindex(xshape)):
                d = np.zeros(xshape)
                d[xj] = 1.0
                vals[(i, j)], errs[i, j] = self._fd(pick, x, d)
        return self._as_val(vals, errs, (m, n))

    def _matpow(self, a, k: int):
        n = a[0].shape[0]
        result = (self.B.lift(np.eye(n)), np.zeros((n, n)))
        first = True
        base = a
        while k:
            if k & 1:
                result = base if first else self.matmul(result, base)
                first = False
            k >>= 1
            if k:
                base = self.matmul(base, base)
        return result

    def _realpow(self, a, b, bt: Term):
        x, e = a
        if bool(np.any(x < 0)):
            raise _NoEvidence("a non-integer power of a negative number")
        if bool(np.any(x == 0)):
            if bt.op == "num" and bt.value > 0 and bool(np.all(x == 0)):
                q = float(bt.value)
                return self.B.full(x.shape, 0), e ** q + _ETA
            raise _NoEvidence("a non-integer power of 0")
        lg = self.prim("log", [a])
        return self.prim("exp", [self.emul(b, lg)])

    def _piecewise(self, t: Term, env, memo):
        cands = []
        definite = False
        for i in range(0, len(t.args), 2):
            r = self.truth(t.args[i + 1], env, memo)
            if r is False:
                continue
            cands.append(t.args[i])
            if r is True:
                definite = True
                break
        if not cands:
            raise _NoEvidence("no piece of a piecewise applies")
        if len(cands) == 1 and definite:
            return self.ev(cands[0], env, memo)
        vals = []
        for c in cands:
            try:
                vals.append(self.ev(c, env, memo))
            except _NoEvidence:
                vals.append(None)
        first = next((v for v in vals if v is not None), None)
        if first is None:
            raise _NoEvidence("no piece of a piecewise could be evaluated")
        if any(v is None for v in vals) or not definite:
            return first[0], np.full(first[1].shape, np.inf)
        f0 = self.B.tofloat(first[0])
        spread = max(float(np.max(np.abs(self.B.tofloat(v[0]) - f0) + v[1])) for v in vals)
        return first[0], first[1] + spread

    def _apply(self, t: Term, env, memo):
        fn: Fn = t.value
        args = [self.ev(a, env, memo) for a in t.args]
        arg, params = args[0], args[1:]
        if fn.formula is None:
            return self._standin(fn, arg, params)
        has_pieces = self.J._has_pieces(fn.formula)
        if arg[0].shape == (1, 1) or not has_pieces:
            v, e = self.ev(fn.formula, (arg, params), {})
            if v.shape != arg[0].shape:  # a formula free of its variable: a constant function
                v, e = np.broadcast_to(v, arg[0].shape).copy(), np.broadcast_to(e, arg[0].shape).copy()
            return v, e
        v = np.empty(arg[0].shape, dtype=arg[0].dtype)
        e = np.zeros(arg[0].shape)
        for idx in np.ndindex(arg[0].shape):
            entry = (np.full((1, 1), arg[0][idx], dtype=arg[0].dtype), np.full((1, 1), arg[1][idx]))
            r = self.ev(fn.formula, (entry, params), {})
            v[idx], e[idx] = r[0][0, 0], r[1][0, 0]
        return v, e

    def _standin(self, fn: Fn, t, params):
        a, c, g = standin(fn.name, self.inst.trial)
        k = fn.order
        B = self.B
        theta = self.add([self.emul(B.frac(a), t), B.frac(c)]
                         + [self.emul(B.frac(Fraction(i + 1, i + 2)), p) for i, p in enumerate(params)])
        trig = self.prim("sin" if k % 2 == 0 else "cos", [theta])
        if k % 4 in (2, 3):
            trig = self.neg(trig)
        terms = [self.emul(B.frac(a ** k), trig) if k else trig]
        if k == 0:
            terms.append(self.emul(B.frac(Fraction(1, g)), self.emul(t, t)))
            for i, p in enumerate(params):
                terms.append(self.emul(B.frac(Fraction(1, i + 3)), self.emul(p, p)))
        elif k == 1:
            terms.append(self.emul(B.frac(Fraction(2, g)), t))
        elif k == 2:
            terms.append(self.emul(B.frac(Fraction(2, g)), (B.full(t[0].shape, 1), np.zeros(t[0].shape))))
        return self.add(terms) if len(terms) > 1 else terms[0]

    # -- derivatives (central differences in mpmath) -----------------------------

    def _fd_setup(self, k: int = 1):
        P = self.B.grad_P
        hexp = P // 2
        dps = P + k * hexp + 30
        return hexp, dps

    def _fd(self, L: Term, X: Term, direction, k: int = 1):
        """k-th central difference of L along ``direction`` (an array of X's shape) at the
        current value of X: returns (value as mpf, error bound as float)."""
        hexp, dps = self._fd_setup(k)
        with mpmath.workdps(dps):
            Bi = _MP(dps)
            base = self.fd_bases.get(dps)
            if base is None:
                over = {s: (Bi.lift(v), e) for s, (v, e) in self.over.items()}
                base = self.fd_bases[dps] = _Ctx(self.J, self.inst, Bi, over)
            x0 = base.sym(X)
            dirv = Bi.lift(direction)
            h = mpmath.mpf(10) ** -hexp
            results = []
            for step in (h, 2 * h):
                total = mpmath.mpf(0)
                rnd = 0.0
                for j in range(k + 1):
                    shift = mpmath.mpf(k) / 2 - j
                    pt = x0[0] + dirv * (shift * step)
                    ctx = base.child({X: (pt, x0[1])})
                    lv, le = ctx.ev(L)
                    w = (-1) ** j * comb(k, j)
                    total += w * lv[0, 0]
                    rnd += abs(w) * float(le[0, 0])
                results.append((total / step ** k, rnd / float(step) ** k))
            (d1, r1), (d2, _) = results
            if k == 1 and self.J._kinky(L):
                # a kink: the one-sided differences disagree (a central difference there is
                # the mean of the two sides, which h against 2h cannot see)
                lv, le = base.child({X: x0}).ev(L)
                ahead = base.child({X: (x0[0] + dirv * h, x0[1])}).ev(L)
                jump = abs(float((ahead[0][0, 0] - lv[0, 0]) / h - d1)) * 2
                noise = (float(le[0, 0]) + float(ahead[1][0, 0])) / float(h) * 4 + r1
                if jump > noise + 10.0 ** -(hexp // 2) * (1 + _absf_scalar(d1)):
                    raise _NoEvidence("the one-sided derivatives differ (a kink)")
            trunc = abs(float(d1 - d2))
            err = r1 + trunc + 10.0 ** -(self.B.grad_P) * _absf_scalar(d1) + _ETA
            return d1, err

    def _as_val(self, vals, errs, shape):
        v = np.empty(shape, dtype=object)
        for idx in np.ndindex(shape):
            v[idx] = vals[idx]
        if self.B.mp:
            return v, errs
        vf = v.astype(float)
        return self._check(vf, errs + self.B.u * np.abs(vf) + _ETA)

    def _forward(self, y: Term, X: Term, direction):
        """The derivative of ``y`` along ``direction`` of X by forward mode in float64 (with
        error bounds, no truncation), or None where forward mode has no rule (then the
        caller takes finite differences in mpmath). The high-precision backend always takes
        finite differences: a refutation is confirmed by a method independent of this one."""
        if self.B.mp:
            return None
        try:
            out = _Dual(self, X, direction).of(y)
        except _NoTangent:
            return None
        shape = self.inst.shape(y.shape)
        if out is None:
            return np.zeros(shape), np.zeros(shape)
        return self._check(np.broadcast_to(out[0], shape).copy(), np.broadcast_to(out[1], shape).copy())

    def _reverse(self, L: Term):
        """The reverse sweep of ``L`` on this instance (remembered: every chain-rule step
        of a derivation about the same loss shares it), or None where it has no rule."""
        if self.B.mp:
            return None
        cache = self.reverse
        hit = cache.get(L)
        if hit is not None and (hit is _NO_SWEEP or not hit.stale()):
            return None if hit is _NO_SWEEP else hit
        try:
            hit = _Reverse(self, L)
        except _NoTangent:
            cache[L] = _NO_SWEEP
            return None
        cache[L] = hit
        return hit

    def _adjoint(self, L: Term, X: Term):
        """grad(L, X) on this instance from the reverse sweep, or None."""
        if X.op != "sym" or (L.shape is not None and L.shape != (1, 1)):
            return None
        rev = self._reverse(L)
        if rev is None:
            return None
        shape = self.inst.shape(X.shape)
        return rev.grads.get(X) or (np.zeros(shape), np.zeros(shape))

    def _grad(self, L: Term, X: Term):
        shape = self.inst.shape(X.shape)
        adj = self._adjoint(L, X)
        if adj is not None:
            return adj
        vals, errs = {}, np.zeros(shape)
        for idx in np.ndindex(shape):
            d = np.zeros(shape)
            d[idx] = 1.0
            fwd = self._forward(L, X, d)
            if fwd is not None:
                vals[idx], errs[idx] = fwd[0][0, 0], fwd[1][0, 0]
            else:
                vals[idx], errs[idx] = self._fd(L, X, d)
        return self._as_val(vals, errs, shape)

    def _diff(self, e: Term, v: Term, k: int):
        if k == 0:
            return self.ev(e)
        if k == 1:
            fwd = self._forward(e, v, np.ones((1, 1)))
            if fwd is not None:
                return fwd
        val, err = self._fd(e, v, np.ones((1, 1)), k)
        return self._as_val({(0, 0): val}, np.full((1, 1), err), (1, 1))

    def directional(self, g: Term, V):
        """<V, grad(L, X)>: from the reverse sweep of L, or forward mode along V, or one
        directional difference of L."""
        adj = self._adjoint(g.args[0], g.args[1])
        if adj is not None:
            return self._check(*self.ev_sum(self.emul((np.asarray(V, dtype=float), np.zeros(np.shape(V))), adj)))
        fwd = self._forward(g.args[0], g.args[1], V)
        if fwd is not None:
            return fwd
        val, err = self._fd(g.args[0], g.args[1], V)
        return self._as_val({(0, 0): val}, np.full((1, 1), err), (1, 1))

    def inner(self, val, V):
        return self.ev_sum(self.emul((self.B.lift(V), np.zeros(V.shape)), val))

    def ev_sum(self, a):
        v, e = a
        flat = v.ravel()
        s = flat[0]
        for x in flat[1:]:
            s = s + x
        err = np.sum(e) + (flat.size - 1) * self.B.u * np.sum(self.B.absf(v)) + _ETA
        return np.full((1, 1), s, dtype=v.dtype), np.full((1, 1), err)

    def trace_of(self, a):
        v, e = a
        d = np.diagonal(v)
        s = d[0]
        for x in d[1:]:
            s = s + x
        err = np.sum(np.diagonal(e)) + (len(d) - 1) * self.B.u * np.sum(np.diagonal(self.B.absf(v))) + _ETA
        return self._check(np.full((1, 1), s, dtype=v.dtype), np.full((1, 1), err))

    def diag_of(self, a):
        """diag(): a square matrix's diagonal part, or the diagonal matrix of a vector's entries."""
        v, e = a
        if v.shape[0] == v.shape[1] and v.shape[0] > 1:
            out, err = self.B.full(v.shape, 0), np.zeros(v.shape)
            for i in range(v.shape[0]):
                out[i, i], err[i, i] = v[i, i], e[i, i]
            return out, err
        flat, ef = v.ravel(), e.ravel()
        n = flat.size
        out = self.B.full((n, n), 0)
        err = np.zeros((n, n))
        for i in range(n):
            out[i, i], err[i, i] = flat[i], ef[i]
        return out, err


# ---------------------------------------------------------------------------
# Forward mode: derivatives along a direction in float64, with error bounds


class _NoTangent(Exception):
    """Forward mode has no rule here (a kink, a nested derivative, an opaque function):
    the caller falls back to finite differences."""


_TWO_OVER_SQRT_PI_PAIR = (np.full((1, 1), 2.0 / math.sqrt(math.pi)), np.full((1, 1), 2 * _U64 * 1.2))
_KINKY = frozenset({"abs", "sign", "max", "min", "heaviside", "dirac"})
_NO_SWEEP = object()  # a remembered "this loss has no reverse sweep"
_TANGENT_FREE = frozenset({"num", "const", "dim", "ones", "zeros", "eye"})
_NESTED = frozenset({"grad", "diff", "jacobian", "hessian"})


class _Dual:
    """The derivative of terms along a direction ``V`` of one symbol ``X``, at the values of
    a float64 context ``P``: forward-mode automatic differentiation (dual numbers).

    Every node's tangent is a pair (value, bound) like a value: the product rule's terms
    are formed with the context's own operations (``emul``, ``matmul``, ``div``, ...) on
    (value, bound) pairs of the primal values and the tangents, so each bound is a bound on
    the distance from the *exact* derivative, by the same round-off model as the values.
    There is no truncation error (unlike a finite difference). ``None`` is an exact zero
    tangent (the node does not depend on ``X``). A kink, a piecewise condition that is not
    decided strictly, an opaque function or a nested derivative raises :class:`_NoTangent`.
    """

    def __init__(self, ctx: _Ctx, X: Term | None, V=None):
        """``X`` None: only for formulas' tangents given their arguments' (``apply_with``)."""
        if X is not None and X.op != "sym":
            raise _NoTangent("the variable is not a symbol")
        self.P = ctx
        self.J = ctx.J
        self.X = X
        V = np.zeros((1, 1)) if V is None else np.asarray(V, dtype=float)
        self.V = (V, np.zeros(V.shape))
        self.defs: dict = {}
        self.memo: dict = {}

    # -- driving -------------------------------------------------------------------

    def of(self, t: Term):
        """The tangent of ``t`` (a top-level term, no formula variables)."""
        for s in self.J._topo(t):          # definitions first, dependencies first
            if s not in self.defs:
                self.defs[s] = self._definition(s)
        return self.tan(t, None, None, self.P.memo, self.memo)

    def _definition(self, s: Term):
        if s == self.X:
            return self.V
        if s in self.P.over or not self.J._depends(s, self.X):
            return None
        return self.tan(self.J.definitions[s], None, None, self.P.memo, self.memo)

    def tan(self, t: Term, env_p, env_t, pmemo, tmemo):
        if t in tmemo:
            return tmemo[t]
        stack = [(t, False)]
        while stack:
            node, ready = stack.pop()
            if node in tmemo:
                continue
            if ready:
                tmemo[node] = self._tan(node, env_p, env_t, pmemo, tmemo)
                continue
            stack.append((node, True))
            if node.op not in _LAZY:
                stack.extend((c, False) for c in reversed(node.args) if c not in tmemo)
        return tmemo[t]

    # -- the rules -----------------------------------------------------------------

    def _tan(self, t: Term, env_p, env_t, pmemo, tmemo):
        op = t.op
        P = self.P
        if op in _TANGENT_FREE:
            return None
        if op == "sym":
            if t == self.X:
                return self.V
            if t in P.over:
                return None
            if t in self.J.definitions:
                if t not in self.defs:
                    self.defs[t] = self._definition(t)
                return self.defs[t]
            return None
        if op == "var":
            return env_t[0] if env_t is not None else None
        if op == "param":
            return env_t[1][t.value] if env_t is not None else None
        if op in _NESTED:
            if self._mentions_x(t, env_t):
                raise _NoTangent(f"a nested {op}")
            return None
        if op == "piecewise":
            return self._piecewise(t, env_p, env_t, pmemo, tmemo)
        if op == "apply":
            return self._apply(t, env_p, env_t, pmemo, tmemo)
        if op in _LAZY:
            raise _NoTangent(f"no forward rule for {op!r}")
        T = [tmemo[a] for a in t.args]
        if all(x is None for x in T):
            return None
        ev = lambda a: P.ev(a, env_p, pmemo)  # noqa: E731 - the primal value of a child
        out = self._rule(t, T, ev)
        if out is None:
            return None
        shape = ev(t)[0].shape
        if out[0].shape != shape:
            try:
                out = (np.broadcast_to(out[0], shape).copy(), np.broadcast_to(out[1], shape).copy())
            except ValueError:
                raise _NoTangent("a tangent of another shape") from None
        return out

    def _mentions_x(self, t: Term, env_t) -> bool:
        if env_t is not None and (env_t[0] is not None or any(p is not None for p in env_t[1])):
            return True
        return any(x.op == "sym" and (x == self.X or (x in self.J.definitions and x not in self.P.over
                                                      and self.J._depends(x, self.X)))
                   for x in walk(t))

    def _sum(self, parts):
        parts = [p for p in parts if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else self.P.add(parts)

    def _product(self, a, b, times):
        """(value, tangent) of a product of (value, tangent) factors, by the product rule."""
        (pa, ta), (pb, tb) = a, b
        return times(pa, pb), self._sum([times(ta, pb) if ta is not None else None,
                                         times(pa, tb) if tb is not None else None])

    def _rule(self, t: Term, T, ev):
        op = t.op
        P = self.P
        B = P.B
        if op == "add":
            return self._sum(T)
        if op == "sub":
            return self._sum([T[0], P.neg(T[1]) if T[1] is not None else None])
        if op == "neg":
            return P.neg(T[0])
        if op == "T":
            return T[0][0].T, T[0][1].T
        if op == "trace":
            return P.trace_of(T[0])
        if op == "sum":
            return P.ev_sum(T[0])
        if op == "diag":
            return P.diag_of(T[0])
        if op == "matrix":
            shape = P.inst.shape(t.shape)
            v, e = np.zeros(shape), np.zeros(shape)
            for i, ti in enumerate(T):
                if ti is not None:
                    v[divmod(i, shape[1])], e[divmod(i, shape[1])] = ti[0][0, 0], ti[1][0, 0]
            return v, e
        if op in ("mul", "had"):
            factors = [(ev(a), ta) for a, ta in zip(t.args, T)]
            roles = factor_roles(t.args) if op == "mul" else [False] * len(factors)
            scale_by, acc = [], None
            if op == "had":
                acc, scale_by = factors[0], factors[1:]
            else:
                for f, matrix_factor in zip(factors, roles):
                    if not matrix_factor:
                        scale_by.append(f)
                    elif acc is None:
                        acc = f
                    else:
                        acc = self._product(acc, f, P.matmul)
                if acc is None:
                    acc = scale_by.pop(0)
            for f in scale_by:
                acc = self._product(acc, f, P.emul)
            return acc[1]
        if op == "div":
            parts = []
            if T[0] is not None:
                parts.append(P.div(T[0], ev(t.args[1])))
            if T[1] is not None:
                parts.append(P.neg(P.emul(ev(t), P.div(T[1], ev(t.args[1])))))
            return self._sum(parts)
        if op in ("pow", "hadpow"):
            base, kt = t.args
            if T[1] is not None:
                raise _NoTangent("a variable exponent")
            if op == "pow" and base.is_matrix:
                raise _NoTangent("a matrix power")
            k = kt.value if kt.op == "num" else None
            if k is None:
                raise _NoTangent("an exponent that is not a number")
            if k == 0:
                return None
            if k.denominator == 1:
                d = P.emul(B.frac(k), P.ipow(ev(base), int(k) - 1))
            else:  # x^k with x > 0 (the value's rule refused the rest): k x^k / x
                d = P.emul(B.frac(k), P.div(ev(t), ev(base)))
            return P.emul(d, T[0])
        if op == "prim":
            return self._prim(t, T, ev)
        if op == "inv":
            inv = ev(t)
            return P.neg(P.matmul(P.matmul(inv, T[0]), inv))
        if op == "det":
            inv = P._inv_det("inv", ev(t.args[0]))
            return P.emul(ev(t), P.trace_of(P.matmul(inv, T[0])))
        if op == "norm":
            a = ev(t.args[0])
            return P.div(P.ev_sum(P.emul(a, T[0])), ev(t))
        raise _NoTangent(f"no forward rule for {op!r}")

    def _prim(self, t: Term, T, ev):
        if t.value in ("max", "min"):
            return self._extremum(t, T, ev)
        d = prim_derivative(self.P, t, ev)
        return None if d is None else self.P.emul(d, T[0])

    def _extremum(self, t: Term, T, ev):
        shape, masks = extreme_masks(t, ev)
        parts = [self.P.emul((m, np.zeros(shape)), ti) for m, ti in zip(masks, T) if ti is not None]
        return self._sum(parts)

    def _strict(self, c: Term, env_p, pmemo):
        return strict_truth(self.P, c, env_p, pmemo)

    def _piecewise(self, t: Term, env_p, env_t, pmemo, tmemo):
        piece = chosen_piece(self.P, t, env_p, pmemo)
        return self.tan(piece, env_p, env_t, pmemo, tmemo)

    def _apply(self, t: Term, env_p, env_t, pmemo, tmemo):
        T = [self.tan(a, env_p, env_t, pmemo, tmemo) for a in t.args]
        return self.apply_with(t, T, env_p, pmemo)

    def apply_with(self, t: Term, T, env_p, pmemo):
        """The tangent of a call ``f(arg; params)`` given its arguments' tangents ``T``."""
        fn: Fn = t.value
        if all(x is None for x in T):
            return None
        if fn.formula is None:
            raise _NoTangent("an opaque function")
        P = self.P
        args = [P.ev(a, env_p, pmemo) for a in t.args]
        arg, params = args[0], args[1:]
        shape = arg[0].shape
        zero = (np.zeros(shape), np.zeros(shape))
        if shape == (1, 1) or not self.J._has_pieces(fn.formula):
            out = self.tan(fn.formula, (arg, params), (T[0], T[1:]), {}, {})
            if out is None:
                return None
            if out[0].shape != shape:
                out = (np.broadcast_to(out[0], shape).copy(), np.broadcast_to(out[1], shape).copy())
            return out
        v, e = np.zeros(shape), np.zeros(shape)
        ta = T[0] if T[0] is not None else zero
        for idx in np.ndindex(shape):
            entry = (np.full((1, 1), arg[0][idx]), np.full((1, 1), arg[1][idx]))
            tentry = (np.full((1, 1), ta[0][idx]), np.full((1, 1), ta[1][idx]))
            r = self.tan(fn.formula, (entry, params), (tentry, T[1:]), {}, {})
            if r is not None:
                v[idx], e[idx] = r[0][0, 0], r[1][0, 0]
        return v, e


def prim_derivative(P: _Ctx, t: Term, ev):
    """f'(x) of a primitive call as a (value, bound) pair, None where it is exactly 0 (a
    step away from its jump); :class:`_NoTangent` at a kink or a jump."""
    B = P.B
    name = t.value
    x = ev(t.args[0])
    xf = B.tofloat(x[0])
    lo, hi = _outward(xf, x[1])
    near_zero = bool(np.any((lo <= 0) & (hi >= 0)))
    if name in ("sign", "heaviside"):
        if near_zero:
            raise _NoTangent(f"{name} at its jump")
        return None
    if name == "abs":
        if near_zero:
            raise _NoTangent("abs at its kink")
        return np.sign(xf), np.zeros(xf.shape)
    one = (B.full(xf.shape, 1), np.zeros(xf.shape))
    out = ev(t)
    if name == "exp":
        d = out
    elif name == "log":
        d = P.div(one, x)
    elif name == "sqrt":
        if bool(np.any(xf <= 0)):
            raise _NoTangent("sqrt at 0")
        d = P.div(B.frac(Fraction(1, 2)), out)
    elif name == "sin":
        d = P.prim("cos", [x])
    elif name == "cos":
        d = P.neg(P.prim("sin", [x]))
    elif name == "tan":
        d = P.add([one, P.emul(out, out)])
    elif name == "tanh":
        d = P.add([one, P.neg(P.emul(out, out))])
    elif name == "sinh":
        d = P.prim("cosh", [x])
    elif name == "cosh":
        d = P.prim("sinh", [x])
    elif name == "atan":
        d = P.div(one, P.add([one, P.emul(x, x)]))
    elif name == "asinh":
        d = P.div(one, P.prim("sqrt", [P.add([one, P.emul(x, x)])]))
    elif name in ("erf", "erfc"):
        d = P.emul(_TWO_OVER_SQRT_PI_PAIR, P.prim("exp", [P.neg(P.emul(x, x))]))
        if name == "erfc":
            d = P.neg(d)
    elif name == "sinc":
        if near_zero:
            raise _NoTangent("sinc near 0")
        d = P.div(P.add([P.prim("cos", [x]), P.neg(out)]), x)
    else:
        raise _NoTangent(f"no forward rule for {name}")
    return d


def extreme_masks(t: Term, ev) -> tuple[tuple, list]:
    """For max/min, entry by entry (a formula applied to a matrix takes it entrywise):
    the result's shape and, per argument, the 0/1 mask of the entries where it is strictly
    the extreme one; a tie within the bounds anywhere is :class:`_NoTangent`."""
    sign = 1.0 if t.value == "max" else -1.0
    vals = [ev(a) for a in t.args]
    shape = np.broadcast_shapes(*[v[0].shape for v in vals])
    los, his = [], []
    for v, e in vals:
        lo, hi = _outward(np.broadcast_to(np.asarray(v, dtype=float), shape) * sign, np.broadcast_to(e, shape))
        los.append(lo)
        his.append(hi)
    his_all, los_all = np.stack(his), np.stack(los)
    best = np.argmax(his_all, axis=0)
    best_lo = np.take_along_axis(los_all, best[None], axis=0)[0]
    rivals = np.where(np.arange(len(vals))[:, None, None] == best[None], -np.inf, his_all)
    if bool(np.any(rivals >= best_lo[None])):
        raise _NoTangent(f"{t.value} at a tie")
    return shape, [(best == i).astype(float) for i in range(len(vals))]


def strict_truth(P: _Ctx, c: Term, env_p, pmemo):
    """A condition's truth on a neighbourhood of the exact point, or None."""
    op = c.op
    if op == "true":
        return True
    if op == "not":
        r = strict_truth(P, c.args[0], env_p, pmemo)
        return None if r is None else not r
    if op in ("and", "or"):
        rs = [strict_truth(P, a, env_p, pmemo) for a in c.args]
        if op == "and":
            return False if False in rs else (None if None in rs else True)
        return True if True in rs else (None if None in rs else False)
    d, e = P.add([P.ev(c.args[0], env_p, pmemo), P.neg(P.ev(c.args[1], env_p, pmemo))])
    d = float(P.B.tofloat(d)[0, 0])
    e = float(e[0, 0]) + 4 * _U64 * abs(d)
    if op in ("eq", "ne"):
        return (op == "ne") if abs(d) > e else None   # equality never holds on a neighbourhood
    if op in ("gt", "ge"):
        d = -d
    return True if d + e < 0 else (False if d - e > 0 else None)


def chosen_piece(P: _Ctx, t: Term, env_p, pmemo) -> Term:
    """The piece of a piecewise that applies on a neighbourhood of the point."""
    for i in range(0, len(t.args), 2):
        r = strict_truth(P, t.args[i + 1], env_p, pmemo)
        if r is None:
            raise _NoTangent("a piecewise condition at its boundary")
        if r:
            return t.args[i]
    raise _NoTangent("no piece of a piecewise applies")


class _Reverse:
    """All derivatives of one scalar ``L`` at once, by one reverse sweep (reverse-mode
    automatic differentiation) over the terms and definitions ``L`` reaches, in float64
    with bounds: each adjoint is formed with the context's own operations on (value,
    bound) pairs, transposing the forward rules (``A Y^T`` and ``X^T A`` for ``X Y``,
    ``A ∘ f'(z)`` for ``f(z)``, the strictly chosen piece of a piecewise, ...).

    ``grads[s]`` is the adjoint of every symbol ``s`` the sweep reached: for a defined
    symbol, the derivative of ``L`` through the uses of ``s`` with ``s``'s own definition
    held fixed, which is what ``grad(L, s)`` means. A construct without a rule raises
    :class:`_NoTangent` (the caller then goes forward, one direction at a time)."""

    def __init__(self, ctx: _Ctx, L: Term):
        self.P = ctx
        self.J = ctx.J
        self.count = len(self.J.definitions)
        self.free: set = set()
        self.grads: dict = {}
        self._sweep(L)

    def stale(self) -> bool:
        """Has a symbol the sweep took as free been defined since?"""
        keys = list(self.J.definitions)[self.count:]
        return any(k in self.free for k in keys)

    def _children(self, t: Term) -> list:
        op = t.op
        P = self.P
        if op == "sym":
            if t in P.over or t not in self.J.definitions:
                return []
            return [self.J.definitions[t]]
        if op == "piecewise":
            return [chosen_piece(P, t, None, P.memo)]
        if op in _LAZY or op in ("var", "param"):
            raise _NoTangent(f"no reverse rule for {op!r}")
        if op == "apply" and (t.value.formula is None or any(x.op == "sym" for x in walk(t.value.formula))):
            raise _NoTangent("an opaque function")
        return list(t.args)

    def _order(self, root: Term) -> list:
        """Every node reachable from ``root``, users before what they use."""
        post, state = [], {root: 0}
        stack = [(root, iter(self._children(root)))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                post.append(node)
                continue
            if nxt not in state:
                state[nxt] = 0
                stack.append((nxt, iter(self._children(nxt))))
        post.reverse()
        return post

    def _sweep(self, L: Term) -> None:
        P = self.P
        order = self._order(L)
        adj = {L: (np.ones((1, 1)), np.zeros((1, 1)))}
        ev = lambda a: P.ev(a, None, P.memo)  # noqa: E731 - a node's value

        def push(child: Term, a) -> None:
            a = self._fit(a, ev(child)[0].shape)
            old = adj.get(child)
            adj[child] = a if old is None else P.add([old, a])

        for node in order:
            A = adj.pop(node, None)
            if node.op == "sym":
                if node not in self.J.definitions or node in P.over:
                    self.free.add(node)
                if A is not None:
                    self.grads[node] = A
                    kids = self._children(node)
                    if kids:
                        push(kids[0], A)
                continue
            if A is None or node.op in _TANGENT_FREE:
                continue
            self._push(node, A, ev, push)

    def _fit(self, a, shape):
        if a[0].shape == shape:
            return a
        if shape == (1, 1):
            return self.P.ev_sum(a)
        try:
            return np.broadcast_to(a[0], shape).copy(), np.broadcast_to(a[1], shape).copy()
        except ValueError:
            raise _NoTangent("an adjoint of another shape") from None

    def _push(self, t: Term, A, ev, push) -> None:
        op = t.op
        P = self.P
        B = P.B
        args = t.args
        if op == "add":
            for a in args:
                push(a, A)
        elif op == "sub":
            push(args[0], A)
            push(args[1], P.neg(A))
        elif op == "neg":
            push(args[0], P.neg(A))
        elif op == "T":
            push(args[0], (A[0].T, A[1].T))
        elif op == "trace":
            n = ev(args[0])[0].shape[0]
            push(args[0], (np.eye(n) * A[0][0, 0], np.eye(n) * A[1][0, 0]))
        elif op == "sum":
            shape = ev(args[0])[0].shape
            push(args[0], (np.full(shape, A[0][0, 0]), np.full(shape, A[1][0, 0])))
        elif op == "diag":
            shape = ev(args[0])[0].shape
            if shape[0] == shape[1] and shape[0] > 1:
                push(args[0], P.diag_of(A))
            else:
                push(args[0], (np.diagonal(A[0]).reshape(shape).copy(), np.diagonal(A[1]).reshape(shape).copy()))
        elif op == "matrix":
            shape = A[0].shape
            for i, a in enumerate(args):
                idx = divmod(i, shape[1])
                push(a, (np.full((1, 1), A[0][idx]), np.full((1, 1), A[1][idx])))
        elif op in ("mul", "had"):
            self._product(t, A, ev, push)
        elif op == "div":
            b = ev(args[1])
            push(args[0], P.div(A, b))
            push(args[1], P.neg(P.emul(A, P.div(ev(t), b))))
        elif op in ("pow", "hadpow"):
            base, kt = args
            if kt.op != "num" or (op == "pow" and base.is_matrix):
                raise _NoTangent("a power without a reverse rule")
            k = kt.value
            if k == 0:
                return
            if k.denominator == 1:
                d = P.emul(B.frac(k), P.ipow(ev(base), int(k) - 1))
            else:
                d = P.emul(B.frac(k), P.div(ev(t), ev(base)))
            push(base, P.emul(A, d))
        elif op == "prim":
            if t.value in ("max", "min"):
                shape, masks = extreme_masks(t, ev)
                for a, m in zip(args, masks):
                    push(a, P.emul(A, (m, np.zeros(shape))))
                return
            d = prim_derivative(P, t, ev)
            if d is not None:
                push(args[0], P.emul(A, d))
        elif op == "inv":
            inv = ev(t)
            it = (inv[0].T, inv[1].T)
            push(args[0], P.neg(P.matmul(P.matmul(it, A), it)))
        elif op == "det":
            inv = P._inv_det("inv", ev(args[0]))
            push(args[0], P.emul(P.emul(A, ev(t)), (inv[0].T, inv[1].T)))
        elif op == "norm":
            push(args[0], P.emul(A, P.div(ev(args[0]), ev(t))))
        elif op == "apply":
            dual = _Dual(P, None)
            for i, a in enumerate(args):
                if not any(x.op == "sym" for x in walk(a)):
                    continue  # a constant argument needs no adjoint
                shape = ev(a)[0].shape
                T = [None] * len(args)
                T[i] = (np.ones(shape), np.zeros(shape))
                d = dual.apply_with(t, T, None, P.memo)
                if d is not None:
                    push(a, P.emul(A, d))
        else:
            raise _NoTangent(f"no reverse rule for {op!r}")

    def _product(self, t: Term, A, ev, push) -> None:
        """A fold of matrix products and scalings, run backwards."""
        P = self.P
        args = list(t.args)
        if t.op == "had":
            seq = [(i, False) for i in range(1, len(args))]
            first = 0
        else:
            roles = factor_roles(args)
            mats = [i for i, r in enumerate(roles) if r]
            scales = [i for i, r in enumerate(roles) if not r]
            if not mats:
                mats, scales = [scales[0]], scales[1:]
            first = mats[0]
            seq = [(i, True) for i in mats[1:]] + [(i, False) for i in scales]
        accs = [ev(args[first])]
        for i, matrix_product in seq[:-1]:
            accs.append((P.matmul if matrix_product else P.emul)(accs[-1], ev(args[i])))
        adj_acc = A
        for (i, matrix_product), acc in zip(reversed(seq), reversed(accs)):
            f = ev(args[i])
            if matrix_product:
                push(args[i], P.matmul((acc[0].T, acc[1].T), adj_acc))
                adj_acc = P.matmul(adj_acc, (f[0].T, f[1].T))
            else:
                push(args[i], P.emul(adj_acc, acc))
                adj_acc = self._fit(P.emul(adj_acc, f), acc[0].shape)
        push(args[first], adj_acc)


# ---------------------------------------------------------------------------
# The judge


def _nested(v, scalar: bool):
    f = np.asarray(v, dtype=object).astype(float)
    return float(f[0, 0]) if scalar else f.tolist()


class Judge:
    """Numeric second opinion on equalities of terms (see the module docstring)."""

    def __init__(self, definitions: dict, trials: int = 3, seed: int = 0):
        self.definitions = definitions     # kept by reference: it may grow
        self.trials = trials
        self.seed = seed
        self._direct_cache: dict = {}
        self._dep_cache: dict = {}
        self._pieces_cache: dict = {}
        self._kinky_cache: dict = {}
        # instances are shared by every comparison of this judge: a symbol has one value per
        # (trial, attempt), drawn on first use, and definitions are evaluated once per instance
        self._dim_cache: dict = {}
        self._instances: dict = {}
        self._scan_cache: dict = {}
        self._closure_cache: dict = {}
        self._closure_free: set = set()
        self._known_definitions = 0

    def _dims(self, trial: int) -> _LazyDims:
        dims = self._dim_cache.get(trial)
        if dims is None:
            dims = self._dim_cache[trial] = _LazyDims(self.seed, trial)
        return dims

    def _instance(self, trial: int, attempt: int) -> tuple[_Instance, _Ctx]:
        hit = self._instances.get((trial, attempt))
        if hit is None:
            inst = _Instance(self._dims(trial), None, trial)
            inst.values = _LazyValues(self.seed, trial, attempt, inst)
            hit = self._instances[(trial, attempt)] = (inst, _Ctx(self, inst, _F64()))
        return hit

    # -- definition graph ----------------------------------------------------------

    def _direct(self, s: Term) -> list:
        d = self.definitions[s]
        hit = self._direct_cache.get(s)
        if hit is not None and hit[0] is d:
            return hit[1]
        deps = sorted({x for x in walk(d) if x.op == "sym" and x in self.definitions},
                      key=_sym_key)
        self._direct_cache[s] = (d, deps)
        self._dep_cache.clear()
        return deps

    def _topo(self, root: Term) -> list:
        """Defined symbols needed by ``root`` (a defined symbol or any term), dependencies first."""
        if root.op == "sym" and root in self.definitions:
            starts = [root]
        else:
            starts = sorted({x for x in walk(root) if x.op == "sym" and x in self.definitions}, key=_sym_key)
        order: list = []
        placed: set = set()
        for s0 in starts:
            for s in self._topo_until(s0, placed.__contains__):
                placed.add(s)
                order.append(s)
        return order

    def _depends(self, s: Term, x: Term) -> bool:
        """Does defined symbol ``s`` depend (through definitions) on the symbol ``x``?"""
        key = (s, x)
        r = self._dep_cache.get(key)
        if r is not None:
            return r
        order = self._topo(s)
        found: dict = {}
        for t in order:
            k2 = (t, x)
            if k2 in self._dep_cache:
                found[t] = self._dep_cache[k2]
                continue
            direct = t == x or any(y == x for y in walk(self.definitions[t]) if y.op == "sym")
            found[t] = direct or any(found.get(y, False) for y in self._direct(t))
        for t, flag in found.items():
            self._dep_cache[(t, x)] = flag
        return found[s]

    def _kinky(self, t: Term) -> bool:
        """Whether ``t`` (through its definitions and formulas) has a function that may not
        be differentiable: abs, sign, max/min, heaviside, dirac, a piecewise (remembered)."""
        cache = self._kinky_cache
        hit = cache.get(t)
        if hit is None:
            roots = [t] + [self.definitions[s] for s in self._topo(t)]
            hit = False
            stack = list(roots)
            seen: set = set()
            while stack and not hit:
                for x in walk(stack.pop()):
                    if x.op == "piecewise" or (x.op == "prim" and x.value in _KINKY):
                        hit = True
                        break
                    if x.op == "apply" and x.value.formula is not None and x.value.formula not in seen:
                        seen.add(x.value.formula)
                        stack.append(x.value.formula)
                    if x.op == "apply" and x.value.formula is None:
                        hit = True  # an opaque function: anything
                        break
            cache[t] = hit
        return hit

    def _has_pieces(self, formula: Term) -> bool:
        r = self._pieces_cache.get(formula)
        if r is None:
            r = any(x.op == "piecewise" for x in walk(formula))
            self._pieces_cache[formula] = r
        return r

    def _scan(self, roots):
        """Free symbols (sorted), named dims (sorted), opaque functions, all shapes."""
        free, dims, fns, shapes = self._scan_sets(roots)
        return sorted(free, key=_sym_key), sorted(dims), fns, shapes

    def _scan_sets(self, roots):
        """What ``_scan`` gives, as sets (sorting a deep network's symbols on every step
        would cost more than the step)."""
        self._note_new_definitions()
        free, dims, fns, shapes = set(), set(), {}, set()
        for root in roots:
            syms, d, f, sh = self._scan_one(root)
            free.update(x for x in syms if x not in self.definitions)
            dims |= d
            fns.update(f)
            shapes |= sh
            for s in syms:
                if s in self.definitions:
                    cfree, d, f, sh = self._closure(s)
                    free |= cfree
                    dims |= d
                    fns.update(f)
                    shapes |= sh
        return free, dims, fns, shapes

    def _note_new_definitions(self) -> None:
        """Forget what the closures said of a symbol that has been defined since."""
        keys = list(self.definitions)
        new = keys[self._known_definitions:]
        self._known_definitions = len(keys)
        if new and any(s in self._closure_free for s in new):
            self._closure_cache.clear()
            self._closure_free.clear()

    def _closure(self, s: Term) -> tuple:
        """What a defined symbol's definition mentions, through its definitions (remembered)."""
        hit = self._closure_cache.get(s)
        if hit is not None:
            return hit
        # dependencies first, stopping at those already known: each definition is scanned
        # once, however deep the chain of definitions above it
        for t in self._topo_until(s, self._closure_cache.__contains__):
            ts, dims, fns, shapes = self._scan_one(self.definitions[t])
            free, dims, fns, shapes = set(x for x in ts if x not in self.definitions), set(dims), dict(fns), set(shapes)
            for dep in self._direct(t):
                cf, d, f, sh = self._closure_cache[dep]
                free |= cf
                dims |= d
                fns.update(f)
                shapes |= sh
            hit = (frozenset(free), frozenset(dims), fns, frozenset(shapes))
            self._closure_cache[t] = hit
            self._closure_free.update(hit[0])
        return self._closure_cache[s]

    def _topo_until(self, root: Term, known) -> list:
        """The defined symbols ``root`` needs (itself included), dependencies first, not
        descending into those ``known`` says are done."""
        if known(root):
            return []
        order, state = [], {root: 1}
        stack = [(root, iter(self._direct(root)))]
        while stack:
            s, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                state[s] = 2
                order.append(s)
            elif nxt not in state:
                if known(nxt):
                    state[nxt] = 2
                    continue
                state[nxt] = 1
                stack.append((nxt, iter(self._direct(nxt))))
            elif state[nxt] == 1:
                raise _NoEvidence(f"the definitions of {nxt.value} are circular")
        return order

    def _scan_one(self, root: Term) -> tuple:
        """The symbols, named dims, opaque functions and shapes of one term (remembered:
        a definition is scanned once, however many steps use it)."""
        hit = self._scan_cache.get(root)
        if hit is not None:
            return hit
        syms, dims, fns, shapes = set(), set(), {}, set()
        stack, seen_formulas = [root], set()
        while stack:
            for x in walk(stack.pop()):
                if x.shape is not None:
                    shapes.add(x.shape)
                    dims.update(d for d in x.shape if isinstance(d, str))
                if x.op == "sym":
                    syms.add(x)
                if x.op == "dim":
                    dims.add(x.value)
                if x.op == "apply":
                    fn = x.value
                    if fn.formula is None:
                        fns[fn.name] = fn
                    elif fn.formula not in seen_formulas:
                        seen_formulas.add(fn.formula)
                        stack.append(fn.formula)
        hit = (frozenset(syms), frozenset(dims), fns, frozenset(shapes))
        if len(self._scan_cache) < 100_000:
            self._scan_cache[root] = hit
        return hit

    # -- public ----------------------------------------------------------------------

    def evaluate(self, term: Term, values: dict, dims: dict | None = None, trial: int = 0,
                 precise: bool = False):
        """``term`` at given values (name -> float or nested list), as a float or a list of
        lists; raises ``ValueError`` when the instance is no evidence (for tests and reports)."""
        free, _dn, _fns, _shapes = self._scan([term])
        vals = {s: np.asarray(values[s.value], dtype=float).reshape(1, 1) if s.shape is None
                else np.asarray(values[s.value], dtype=float) for s in free}
        inst = _Instance(dict(dims or {}), vals, trial)
        try:
            with np.errstate(all="ignore"):
                if precise:
                    with mpmath.workdps(MP_DPS):
                        v, _ = _Ctx(self, inst, _MP(MP_DPS)).ev(term)
                else:
                    v, _ = _Ctx(self, inst, _F64()).ev(term)
        except _NoEvidence as exc:
            raise ValueError(str(exc)) from None
        return _nested(v, term.shape is None)

    def compare(self, lhs: Term, rhs: Term, precise: bool = False) -> Opinion:
        if lhs.shape != rhs.shape and {lhs.shape, rhs.shape} != {None, (1, 1)}:
            raise ShapeError("the two sides have different shapes")
        with np.errstate(all="ignore"):
            return self._compare(lhs, rhs, precise)

    def _compare(self, lhs: Term, rhs: Term, precise: bool) -> Opinion:
        try:
            free, dimnames, fns, shapes = self._scan_sets([lhs, rhs])
        except _NoEvidence as exc:
            return Opinion(0, True, 0.0, None, f"no instance could be evaluated: {exc}")
        directional = lhs.op == "grad" or rhs.op == "grad"
        ok = 0
        disputed = False
        max_rel = 0.0
        reasons: list[str] = []
        notes: list[str] = []
        for trial in range(self.trials):
            rng = np.random.default_rng([self.seed, trial])
            dims = self._dims(trial)
            sizes = [d if isinstance(d, int) else dims[d] for sh in shapes for d in sh]
            biggest = max(sizes, default=1)
            if biggest > MAX_DIM_FLOAT:
                reasons.append(f"a dimension of {biggest} exceeds {MAX_DIM_FLOAT}")
                continue
            for attempt in range(MAX_ATTEMPTS):
                inst, ctx = self._instance(trial, attempt)
                V = None
                if directional:
                    g = lhs if lhs.op == "grad" else rhs
                    gs = g.args[1].shape
                    V = rng.standard_normal((1, 1) if gs is None else
                                            tuple(d if isinstance(d, int) else dims[d] for d in gs))
                try:
                    (vl, el), (vr, er) = self._sides(ctx, lhs, rhs, V)
                except _NoEvidence as exc:
                    reasons.append(str(exc))
                    continue
                diff = np.abs(vl - vr)
                bound = C_SAFETY * (el + er)
                if not np.all(np.isfinite(bound)):
                    reasons.append("the round-off bound is unbounded (a value near a kink, pole or zero divisor)")
                    continue
                scale = max(float(np.max(np.abs(vl))), float(np.max(np.abs(vr))))
                rel = float(np.max(diff)) / scale if scale > 0 else (0.0 if float(np.max(diff)) == 0 else math.inf)
                max_rel = max(max_rel, rel)
                candidate = bool(np.any(diff > bound))
                ok += 1
                if candidate or precise:
                    if biggest > MAX_DIM_MP:
                        notes.append(f"high-precision confirmation skipped: a dimension of {biggest} exceeds {MAX_DIM_MP}")
                        if candidate:  # a difference that cannot be confirmed is no agreement
                            disputed = True
                        break
                    cex = self._confirm(inst, lhs, rhs, V, fns, free, dimnames)
                    if isinstance(cex, dict):
                        return Opinion(ok, False, max_rel, cex, cex["reason"])
                    if candidate:
                        notes.append(f"a float64 difference vanished at {MP_DPS} digits" if cex is None
                                     else f"a float64 difference could not be confirmed: {cex}")
                break
        if ok == 0:
            why = _most_common(reasons) or "no trials"
            return Opinion(0, True, max_rel, None, f"no instance could be evaluated: {why}")
        detail = f"agrees on {ok} instance{'s' if ok != 1 else ''}"
        if disputed:
            detail = f"a float64 difference on {ok} instance(s) could not be confirmed"
        extra = sorted(set(notes))
        if extra:
            detail += " (" + "; ".join(extra) + ")"
        return Opinion(ok, not disputed, max_rel, None, detail)

    def _sides(self, ctx: _Ctx, lhs: Term, rhs: Term, V):
        out = []
        for side in (lhs, rhs):
            if V is None:
                out.append(ctx.ev(side))
            elif side.op == "grad":
                out.append(ctx.directional(side, V))
            else:
                out.append(ctx.inner(ctx.ev(side), V))
        return out

    def _confirm(self, inst, lhs, rhs, V, fns, free=(), dimnames=()):
        """A counterexample dict, None (difference vanished) or a reason string."""
        with mpmath.workdps(MP_DPS):
            try:
                (vl, el), (vr, er) = self._sides(_Ctx(self, inst, _MP(MP_DPS)), lhs, rhs, V)
            except _NoEvidence as exc:
                return str(exc)
            dmp = np.abs(vl - vr)
            diff = dmp.astype(float)
            bound = C_SAFETY * (el + er)
            if not np.any(diff > bound):
                return None
            what = "the sides differ"
            if V is not None:  # report the full sides if they can be evaluated
                try:
                    ctx = _Ctx(self, inst, _MP(MP_DPS))
                    (fl, fel), (fr, fer) = ctx.ev(lhs), ctx.ev(rhs)
                    fd = np.abs(fl - fr).astype(float)
                    if np.any(fd > C_SAFETY * (fel + fer)):
                        vl, vr, diff = fl, fr, fd
                    else:
                        what = "the sides' derivatives along a random direction differ"
                except _NoEvidence:
                    what = "the sides' derivatives along a random direction differ"
            directional_only = V is not None and what.startswith("the sides'")
            scalar = directional_only or lhs.shape is None
            d = float(np.max(diff))
            cex = {
                "values": {s.value: _nested(inst.values.get(s), s.shape is None)
                           for s in sorted(free, key=_sym_key)},
                "dims": {d: inst.dims[d] for d in sorted(dimnames)},
                "lhs": _nested(vl, scalar),
                "rhs": _nested(vr, scalar),
                "difference": d,
                "reason": f"{what} by {d:.6g} at the instance shown (confirmed at {MP_DPS} digits)",
            }
            if directional_only:
                cex["direction"] = V.tolist()
            if fns:
                cex["functions"] = {n: describe_standin(fns[n], inst.trial) for n in sorted(fns)}
            return cex


def _sym_key(t: Term):
    return (str(t.value), repr(t.shape))


def _most_common(items: list[str]) -> str:
    if not items:
        return ""
    counts: dict[str, int] = {}
    for x in items:
        counts[x] = counts.get(x, 0) + 1
    return max(sorted(counts), key=lambda k: counts[k])


__all__ = ["Judge", "Opinion", "describe_standin", "standin"]
