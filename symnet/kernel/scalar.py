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
from collections import Counter
from contextlib import contextmanager

import sympy as sp

from .normal import _Z, NF, _thaw, add, canonical, clean, ones, scale

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




# ---------------------------------------------------------------------------
# Identities with kinks, decided by cases: on each interval between the kinks the
# pieces are analytic (zero there means zero everywhere), and at each kink exactly.

_KINKY = (sp.Piecewise, sp.Max, sp.Min, sp.Abs, sp.Heaviside, sp.sign)


def _first_piece(pw: sp.Piecewise, v: sp.Symbol, q: sp.Expr) -> sp.Expr | None:
    for expr, cond in pw.args:
        truth = cond.subs(v, q) if cond not in (sp.true, sp.false) else cond
        if truth is sp.true:
            return expr
        if truth is not sp.false:
            return None
    return None


def _select(e: sp.Expr, v: sp.Symbol, q: sp.Expr) -> sp.Expr | None:
    """``e`` with every piecewise part replaced by the piece that holds at ``v = q``."""
    for _ in range(50):
        pws = [p for p in e.atoms(sp.Piecewise) if not p.args[0][0].has(sp.Piecewise)]
        if not pws:
            return e
        chosen = {}
        for pw in pws:
            piece = _first_piece(pw, v, q)
            if piece is None:
                return None
            chosen[pw] = piece
        e = e.xreplace(chosen)
    return None


def piecewise_zero(e: sp.Expr, v: sp.Symbol, budget: float = SCALAR_BUDGET, at_kinks: bool = True) -> bool:
    """True only when ``e``, a function of the real ``v`` with kinks at numeric points, is
    zero on every interval between its kinks and at every kink. With ``at_kinks`` False
    (the values at the kinks are a convention, as for a derivative taken at a kink) an
    ``e`` that has kinks is never zero: what holds at the kinks cannot be concluded."""
    try:
        with time_limit(budget):
            e = canonical(e)
            if e == 0:
                return True
            if not e.has(*_KINKY):
                return scalar_is_zero(e)
            pw = sp.piecewise_fold(e.rewrite(sp.Piecewise))
            points: set = set()
            for rel in pw.atoms(sp.core.relational.Relational):
                gap = rel.lhs - rel.rhs
                if gap.free_symbols - {v} or not gap.is_polynomial(v) or sp.degree(gap, v) > 2:
                    return False
                roots = sp.solve(gap, v)
                if any(not r.is_real for r in roots):
                    return False
                points |= set(roots)
            if points and not at_kinks:
                return False
            points = sorted(points, key=lambda r: float(r))
            samples = [sp.S.Zero] if not points else (
                [points[0] - 1] + [(p + q) / 2 for p, q in zip(points, points[1:])] + [points[-1] + 1])
            for q in samples:
                piece = _select(pw, v, q)
                if piece is None or piece.has(sp.Piecewise) or not scalar_is_zero(piece):
                    return False
            for p in points:
                value = pw.subs(v, p)
                if not (canonical(value) == 0 or scalar_is_zero(value)):
                    return False
            return True
    except (TimeoutError, RecursionError, TypeError, ValueError, NotImplementedError, AttributeError,
            sp.PolynomialError):
        return False


def entrywise_zero(d: sp.Expr, at_kinks: bool = True) -> bool:
    """A scalar with kinks in one real variable, decided by cases (else False)."""
    if not d.has(*_KINKY):
        return False
    free = [s for s in d.free_symbols if isinstance(s, sp.Symbol) and s.is_real]
    if len(free) != 1 or len(d.free_symbols) != 1:
        return False
    return piecewise_zero(d, free[0], at_kinks=at_kinks)


def lifted_zero(a: NF, b: NF, at_kinks: bool = True) -> bool:
    """``a = b`` as an entrywise scalar identity: every entrywise function in ``a - b`` has
    one argument ``A``, and the rest is ``alpha A + beta 1``; then ``a - b = g(A)`` entry
    by entry, and ``g = 0`` is decided as a scalar identity by cases on its kinks
    (``sigmoid(-A) = 1 - sigmoid(A)``, ``abs(A) = relu(A) + relu(-A)``, ``tanh'(A) = 1 - tanh(A)^2``)."""
    r, c = a.shape
    diff = clean(add(a, scale(b, sp.S.NegativeOne)))
    argument = None
    g = sp.S.Zero
    rest = NF(r, c)
    for w, coeff in diff.terms.items():
        bodies = None
        if len(w) == 1 and w[0][0] == "fn":
            bodies = [(w[0][1], w[0][2])]
        elif len(w) == 1 and w[0][0] == "had":
            factors = Counter(dict(w[0][1]))
            if all(len(f) == 1 and f[0][0] == "fn" for f in factors):
                bodies = [(f[0][1], f[0][2]) for f in factors.elements()]
        if bodies is None:
            rest.terms[w] = coeff
            continue
        for _, arg in bodies:
            if argument is None:
                argument = arg
            elif arg != argument:
                return False
        product = sp.S.One
        for body, _ in bodies:
            product *= body
        if coeff.has(_Z):
            return False
        g += coeff * product
    if argument is None:
        return False
    unit = next(iter(ones(r, c).terms))
    beta = rest.terms.pop(unit, sp.S.Zero)
    alpha = sp.S.Zero
    if rest.terms:
        A = clean(_thaw(argument))
        lead = next(iter(sorted(A.terms, key=repr)))
        alpha = rest.terms.get(lead, sp.S.Zero) / A.terms[lead]
        if clean(add(rest, scale(A, -alpha))).terms:
            return False
    return piecewise_zero(g + alpha * _Z + beta, _Z, at_kinks=at_kinks)


class _Ambiguous(Exception):
    pass


def _slots(word: tuple) -> tuple[tuple, list]:
    """A word with each entrywise function blanked to a slot (at any depth inside
    Hadamard products), and the functions' bodies in the order of the slots."""
    skeleton, bodies = [], []
    for atom in word:
        if atom[0] == "fn":
            skeleton.append(("slot", atom[2], atom[3], atom[4]))
            bodies.append(atom[1])
        elif atom[0] == "diag" and len(atom[1][2]) == 1:
            ((w, c),) = atom[1][2]
            if c == 1 and len(w) == 1 and w[0][0] == "fn":
                skeleton.append(("dslot", w[0][2], atom[2], atom[3]))
                bodies.append(w[0][1])
            else:
                skeleton.append(atom)
        elif atom[0] == "had":
            parts = []
            for w, m in atom[1]:
                for _ in range(m):  # each copy its own slots: a sum that vanishes for
                    parts.append(_slots(w))  # independent values vanishes on the diagonal too
            parts.sort(key=lambda p: repr(p[0]))
            keys = [repr(p[0]) for p in parts]
            if len(set(keys)) != len(keys) and any(p[1] for p in parts):
                raise _Ambiguous  # two factors alike but for their functions
            skeleton.append(("had", tuple(p[0] for p in parts), atom[2], atom[3]))
            for p in parts:
                bodies += p[1]
        else:
            skeleton.append(atom)
    return tuple(skeleton), bodies


def functions_zero(a: NF, b: NF, at_kinks: bool = True) -> bool:
    """``a = b`` where the two differ only in entrywise functions: terms that agree but for
    the functions in their slots are summed slot by slot, ``sum_i c_i f_i(z_1) g_i(z_2) ...``,
    and every such sum must vanish as a scalar function of independent ``z_1, z_2, ...``
    (``sigmoid'(Z) = S (.) (1 - S)``, ``tanh'(Z) = 1 - tanh(Z) (.) tanh(Z)``)."""
    diff = clean(add(a, scale(b, sp.S.NegativeOne)))
    groups: dict = {}
    for w, coeff in diff.terms.items():
        try:
            skeleton, bodies = _slots(w)
        except _Ambiguous:
            return False
        if not bodies:
            return False  # a difference no function explains
        if coeff.has(_Z):
            return False
        groups.setdefault(skeleton, []).append((coeff, bodies))
    for members in groups.values():
        k = len(members[0][1])
        zs = [sp.Dummy(f"z{i}", real=True) for i in range(k)]
        total = sp.S.Zero
        for coeff, bodies in members:
            term = coeff
            for body, z in zip(bodies, zs):
                term *= body.xreplace({_Z: z})
            total += term
        if k == 1:
            if not piecewise_zero(total, zs[0], at_kinks=at_kinks):
                return False
        elif total.has(*_KINKY) or not scalar_is_zero(total):
            return False
    return True
