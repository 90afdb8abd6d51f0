"""Scalar zero tests: a fixed ladder of exact procedures; only a literal 0 counts.

Zero-equivalence of scalars mixing exp, log, abs and pi is undecidable
(Richardson), so the ladder is incomplete on purpose: each attempt has a time
budget, and a zero that ``simplify`` claims must also vanish at 50 digits at
random rational points (``simplify`` can be wrong: sympy issue 23086).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from contextlib import contextmanager

import sympy as sp

from .normal import canonical

#: Seconds allowed for the scalar simplification ladder on one step.
SCALAR_BUDGET = 5.0

_DEADLINES: list[float] = []


@contextmanager
def time_limit(seconds: float):
    """Raise TimeoutError after ``seconds`` (main thread only; nests: the inner
    limit never extends an outer one, and the outer one is restored after)."""
    usable = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if not usable:
        yield
        return
    now = time.monotonic()
    deadline = now + seconds
    if _DEADLINES:
        deadline = min(deadline, _DEADLINES[-1])

    def _raise(signum, frame):
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, _raise)
    _DEADLINES.append(deadline)
    # the timer repeats: an alarm raised inside a gc callback is swallowed by
    # Python, so it must fire again until the limit is honoured
    signal.setitimer(signal.ITIMER_REAL, max(deadline - now, 1e-3), 0.05)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _DEADLINES.pop()
        signal.signal(signal.SIGALRM, old)
        if _DEADLINES:
            signal.setitimer(signal.ITIMER_REAL, max(_DEADLINES[-1] - time.monotonic(), 1e-3), 0.05)


def scalar_is_zero(d: sp.Expr, budget: float = SCALAR_BUDGET) -> bool:
    """True only when an exact procedure reduces ``d`` to the literal 0."""
    d = canonical(d)
    if d == 0:
        return True
    if not d.has(sp.Function, sp.Pow) or d.is_rational_function():
        return False  # cancel/expand decide rational functions: a nonzero one is nonzero
    attempts = (
        lambda e: sp.cancel(sp.expand(e.rewrite(sp.exp))),
        lambda e: sp.simplify(e.rewrite(sp.exp)),
        lambda e: sp.simplify(e),
    )
    try:
        with time_limit(budget):
            for attempt in attempts:
                if attempt(d) == 0:
                    # simplify's zero tests can be wrong (sympy issue 23086): confirm at 50 digits
                    return vanishes_at_50_digits(d)
    except (TimeoutError, RecursionError, sp.PolynomialError, TypeError, ValueError, AttributeError):
        return False
    return False


def vanishes_at_50_digits(d: sp.Expr, samples: int = 3) -> bool:
    """``d`` evaluates to (almost exactly) 0 at random rational points, at 50 digits."""
    symbols = sorted(d.free_symbols, key=lambda s: s.name)
    rng = random.Random(20260101)
    for _ in range(samples if symbols else 1):
        subs = {}
        for s in symbols:
            lo = 0.5 if s.is_positive or s.is_nonnegative else -2.0
            subs[s] = sp.Rational(round(rng.uniform(lo, 2.0), 6)).limit_denominator(10**6)
        try:
            value = sp.N(d.xreplace(subs), 50)
        except (TypeError, ValueError, ZeroDivisionError, RecursionError):
            return False
        if not value.is_number or value.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
            return False
        if abs(complex(value)) > 1e-40:
            return False
    return True


