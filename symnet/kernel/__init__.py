"""The trusted base: the only code that may mark a step ``proved``.

It imports nothing else from symnet.  Its parts:

* :mod:`.terms`   what the user wrote, as immutable data;
* :mod:`.normal`  terms translated into a normal form, with side conditions;
* :mod:`.scalar`  the ladder of exact scalar zero tests;
* :mod:`.judge`   the independent numeric judge (NumPy and mpmath, no SymPy);
* :mod:`.bridge`  SymPy expressions built by symnet's own code, read as terms.

A step claims ``lhs = rhs``.  The verdict is

* ``proved``   - both sides have the same normal form (under the side conditions
  the verdict states, such as ``u != 0``) *and* the numeric judge agrees on
  evaluated instances;
* ``refuted``  - an instance where the sides differ by more than round-off can
  explain, confirmed at high precision (the instance is returned);
* ``unproved`` - anything else.  Honest incompleteness; never a guess.

Only this module constructs a proved :class:`Check` (as only HOL Light's
kernel builds a ``thm``): the constructor demands a token private to it, and
:func:`issued` tells a genuine verdict from a look-alike.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from . import normal, scalar, terms
from .bridge import Grad, Reader
from .errors import BudgetError, ShapeError, SymnetError, Unsupported
from .judge import Judge, Opinion
from .normal import MAX_TERMS, NF, Translator, Undefined, clean, elementwise_derivative, fmt_shape
from .scalar import SCALAR_BUDGET, scalar_is_zero, time_limit
from .terms import Term

PROVED, REFUTED, UNPROVED = "proved", "refuted", "unproved"

#: Seconds allowed for the whole symbolic decision of one step.
STEP_BUDGET = 20.0
#: Proved steps with at most this many matrix entries and nodes to evaluate (definitions
#: included) also get a 60-digit second opinion.
SMALL_STEP = 400

_SEAL = object()
_ISSUED: weakref.WeakSet = weakref.WeakSet()


@dataclass(frozen=True)
class NumericReport:
    """The numeric judge's opinion on one step, as plain data."""

    trials: int = 0
    max_abs_error: float = 0.0
    agree: bool = True
    detail: str = ""


class Check:
    """The kernel's verdict on ``lhs = rhs``; only the kernel creates ``proved``.

    ``conditions`` are the side conditions a proved step holds under (as text,
    such as ``u != 0``); ``counterexample`` is the confirmed instance of a
    refuted step.
    """

    __slots__ = ("verdict", "detail", "numeric", "counterexample", "conditions", "__weakref__")

    def __init__(self, verdict: str, detail: str = "", numeric: NumericReport | None = None,
                 counterexample: dict | None = None, conditions: tuple = (), *, _seal: object = None):
        if verdict not in (PROVED, REFUTED, UNPROVED):
            raise ValueError(f"unknown verdict {verdict!r}")
        if verdict == PROVED and _seal is not _SEAL:
            raise PermissionError("only the kernel can mark a step proved")
        for name, value in (("verdict", verdict), ("detail", detail),
                            ("numeric", numeric or NumericReport()), ("counterexample", counterexample),
                            ("conditions", tuple(conditions))):
            object.__setattr__(self, name, value)
        if verdict == PROVED:
            _ISSUED.add(self)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a verdict is immutable")

    def __reduce__(self):  # a proved verdict does not survive pickling as proved
        verdict = self.verdict if self.verdict != PROVED else UNPROVED
        detail = self.detail if self.verdict != PROVED else "proved in another process: " + self.detail
        return (Check, (verdict, detail, self.numeric, self.counterexample, self.conditions))

    # identity, not value: a look-alike of a genuine verdict is not that verdict
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"Check({self.verdict!r}, {self.detail!r})"

    @property
    def ok(self) -> bool:
        return self.verdict == PROVED and self in _ISSUED

    @property
    def shown(self) -> str:
        """The verdict as a reader sees it: ``proved, for u != 0``."""
        if self.verdict == PROVED and self.conditions:
            return "proved, for " + ", ".join(self.conditions)
        return self.verdict


def issued(check: Any) -> bool:
    """True iff ``check`` is a proved verdict this kernel issued (not a look-alike)."""
    return isinstance(check, Check) and check.verdict == PROVED and check in _ISSUED


@dataclass(frozen=True)
class Lemma:
    """A proven equation ``sym = expr`` that later steps may cite in ``uses``."""

    sym: Term
    expr: Term


def as_term(e: Any, reader: Reader | None = None) -> Term:
    """A term for a term, or for a SymPy expression built by symnet's own code."""
    if isinstance(e, Term):
        return e
    return (reader or Reader())(e)


class Context:
    """Definitions, proven facts and the random instances a derivation is checked on.

    ``define`` introduces a fresh symbol for an expression (a conservative
    extension); ``check`` decides a step; ``lemma`` hands back a proven
    equation ``sym = expr`` once the facts checked so far connect the two.
    """

    def __init__(self, trials: int = 3, seed: int = 0):
        #: the definitions as the caller gave them (symbol -> expression)
        self.definitions: dict = {}
        #: the same definitions as terms: what the kernel and the judge use
        self.term_definitions: dict[Term, Term] = {}
        self.judge = Judge(self.term_definitions, trials=trials, seed=seed)
        self._parent: dict = {}
        self._full = Translator(definitions=self.term_definitions)
        self._mentioned: set = set()  # every symbol some definition's body mentions
        self._sweeps: dict = {}  # every gradient of a loss from one sweep, shared by the steps
        # the last step's rewriting translator, and how many definitions there were when it
        # was made (a definition added later may change what it memoised)
        self._rewriter: tuple[Translator, int] | None = None
        self._reader = Reader()  # one per context: two SymPy symbols may not share a name

    # -- facts: union-find over terms proven equal ------------------------------
    def _find(self, e: Any) -> Any:
        parent = self._parent
        root = e
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(e, e) != root:
            parent[e], e = root, parent[e]
        return root

    def _union(self, a: Any, b: Any) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self._parent[ra] = rb

    def define(self, sym: Any, expr: Any) -> Any:
        """Introduce ``sym := expr``; ``sym`` must be new and of the same shape."""
        try:
            s, e = as_term(sym, self._reader), as_term(expr, self._reader)
        except Unsupported as exc:
            raise ShapeError(f"cannot define {sym}: {exc}") from None
        if s.op != "sym":
            raise ShapeError("only a name can be defined")
        if s in self.term_definitions:
            raise ShapeError(f"{s.value} is already defined")
        if s.shape != e.shape and not ({s.shape, e.shape} <= {None, (1, 1)}):
            raise ShapeError(f"{s.value} is {terms.fmt_shape(s.shape)} but its definition is "
                             f"{terms.fmt_shape(e.shape)}")
        body = terms.symbols(e)
        # a new name can be reached from e only through e itself or a definition that
        # mentions it: the full search is needed only then
        if (s in body or s in self._mentioned) and s in normal.closure_symbols(e, self.term_definitions):
            raise ShapeError(f"definition of {s.value} refers to itself")
        if isinstance(s.value, terms.InvertibleName) and not terms.is_invertible(e):
            raise ShapeError(f"{s.value} is declared invertible, so it can be defined only as a product of "
                             "invertible matrices")
        self.term_definitions[s] = e
        self._mentioned |= body
        self.definitions[sym] = expr
        self._union(s, e)
        return sym

    def lemma(self, sym: Any, expr: Any) -> Lemma:
        """The proven equation ``sym = expr``; raises unless a proved chain links them."""
        s, e = as_term(sym, self._reader), as_term(expr, self._reader)
        if self._find(s) != self._find(e):
            raise ValueError(f"{s} = {e} has not been proved in this context")
        return Lemma(s, e)

    # -- deciding a step ----------------------------------------------------
    def check(self, lhs: Any, rhs: Any, uses: Iterable[Any] | None = None) -> Check:
        """Decide ``lhs = rhs``, unfolding the cited definitions and lemmas."""
        try:
            left, right = as_term(lhs, self._reader), as_term(rhs, self._reader)
        except Unsupported as exc:
            return Check(UNPROVED, f"outside the decided fragment: {exc}")
        if left.shape != right.shape and not ({left.shape, right.shape} <= {None, (1, 1)}):
            # two things of different shapes are not equal (where named dimensions
            # happen to coincide the judge may find different values as well)
            shapes = f"the sides have shapes {terms.fmt_shape(left.shape)} and {terms.fmt_shape(right.shape)}"
            if not all(isinstance(d, int) for d in left.shape + right.shape):
                try:  # where the named dimensions coincide, the values may differ too
                    opinion = self.judge._compare(left, right, False)
                except Exception:  # noqa: BLE001 - sizes that differ: no values to show
                    opinion = None
                if opinion is not None and opinion.counterexample is not None:
                    return Check(REFUTED, opinion.counterexample["reason"], _report(opinion),
                                 opinion.counterexample)
            counter = {"reason": shapes, "values": {}, "lhs": None, "rhs": None, "difference": None}
            return Check(REFUTED, shapes, NumericReport(detail=shapes), counter)
        # numbers first: a confirmed counterexample settles the step at once
        opinion = self.judge.compare(left, right)
        if opinion.counterexample is not None:
            return Check(REFUTED, opinion.counterexample.get("reason", opinion.detail),
                         _report(opinion), opinion.counterexample)
        same, detail, conditions, definite = self._symbolic(left, right, uses)
        if not same:
            if definite:  # the normal forms differ exactly: look closer for a tiny difference
                closer = self.judge.compare(left, right, precise=True)
                if closer.counterexample is not None:
                    return Check(REFUTED, closer.counterexample.get("reason", closer.detail),
                                 _report(closer), closer.counterexample)
            return Check(UNPROVED, detail + _opinion_note(opinion), _report(opinion))
        if opinion.trials < min(2, self.judge.trials):
            seen = ("no numeric instance could be evaluated" if not opinion.trials else
                    f"the numeric judge could evaluate {opinion.trials} instance only")
            return Check(UNPROVED, f"{detail}; {seen}" + (f" ({opinion.detail})" if opinion.detail else ""),
                         _report(opinion))
        if not opinion.agree:
            return Check(UNPROVED, detail + "; a numeric disagreement could not be resolved", _report(opinion))
        if self._small(left, right):
            # a small step is also evaluated at 60 digits: an exact-arithmetic slip of the
            # symbolic side (a constant absorbed, a tiny term lost) cannot hide in float64
            closer = self.judge.compare(left, right, precise=True)
            if closer.counterexample is not None:
                return Check(REFUTED, closer.counterexample.get("reason", closer.detail),
                             _report(closer), closer.counterexample)
        self._union(left, right)
        return Check(PROVED, detail, _report(opinion), conditions=conditions, _seal=_SEAL)

    def _small(self, lhs: Term, rhs: Term) -> bool:
        """Little to evaluate (definitions included: at most SMALL_STEP matrix entries and
        nodes), no gradient: cheap at 60 digits."""
        seen: set = set()
        work = 0
        stack = [lhs, rhs]
        while stack:
            for t in terms.walk(stack.pop()):
                if t in seen:
                    continue
                seen.add(t)
                if t.op in ("grad", "jacobian", "hessian", "diff"):
                    return False
                if t.shape:
                    r, c = (d if isinstance(d, int) else 5 for d in t.shape)
                    work += r * c
                else:
                    work += 1
                if work > SMALL_STEP:
                    return False
                if t.op == "sym" and t in self.term_definitions:
                    stack.append(self.term_definitions[t])
        return True

    def _symbolic(self, lhs: Term, rhs: Term, uses: Iterable[Any] | None) -> tuple:
        try:
            with time_limit(STEP_BUDGET):
                return self._symbolic_unbounded(lhs, rhs, uses)
        except TimeoutError:
            return False, f"no symbolic decision within {STEP_BUDGET:g} s", (), False

    def _symbolic_unbounded(self, lhs: Term, rhs: Term, uses: Iterable[Any] | None) -> tuple:
        if lhs == rhs and not _partial(lhs):  # reflexivity (with no side condition to state)
            return True, "the two sides are the same expression", (), False
        try:
            attempts = [Translator(calculus=self.term_definitions, sweeps=self._sweeps)]
            if uses is not None:
                rewrites = {}
                for u in uses:
                    if isinstance(u, Lemma):
                        if self._find(u.sym) != self._find(u.expr):
                            return False, f"lemma {u.sym} was not proved", (), False
                        rewrites[u.sym] = u.expr
                        continue
                    t = as_term(u, self._reader)
                    if t in self.term_definitions:
                        rewrites[t] = self.term_definitions[t]
                    else:
                        return False, f"{t} is neither defined nor a proven lemma", (), False
                attempts.append(self._rewriting(rewrites))
            attempts.append(self._full)
            detail, definite = "", False
            forms = []
            # the cheap comparison on every attempt first, then the scalar ladder: a step that
            # holds once definitions are unfolded never waits for simplify on the folded form
            for quick in (True, False):
                for i, tr in enumerate(attempts):
                    if len(forms) <= i:
                        forms.append((tr(lhs), tr(rhs)))
                    left, right = forms[i]
                    same, detail, definite = compare(left, right, at_kinks=not tr.kink_derivative,
                                                     quick=quick)
                    if same:
                        return True, detail, self._conditions(list(tr.conditions.values())), False
            if any(_hadamard_of_functions(f) for f in forms[-1]):
                # last: entrywise functions with sums for bodies distributed over the
                # Hadamard products beside them (costly in general, so only now)
                tr = Translator(calculus=self.term_definitions, definitions=self._full.definitions,
                                distribute=True)
                left, right = tr(lhs), tr(rhs)
                for quick in (True, False):
                    same, detail2, definite2 = compare(left, right, at_kinks=not tr.kink_derivative, quick=quick)
                    if same:
                        return True, detail2, self._conditions(list(tr.conditions.values())), False
            return False, detail, (), definite
        except ShapeError:
            raise
        except Undefined as exc:
            return False, f"undefined: {exc.term} {exc.rel} 0 does not hold", (), False
        except Unsupported as exc:
            return False, f"outside the decided fragment: {exc}", (), False
        except BudgetError as exc:
            return False, str(exc), (), False
        except RecursionError:
            return False, "expression nested too deeply", (), False

    def _rewriting(self, rewrites: dict) -> Translator:
        """A translator unfolding ``rewrites``: the previous step's, with its memo, when
        that is exactly a fresh one's (its rewrites a subset of these with the same
        values, none of the new ones met by anything it translated, no definition added
        since, and no side condition or kink derivative recorded that this step would
        inherit); else a fresh one.
        Derivations citing a growing list of definitions (backprop's deltas) then
        translate each definition once instead of once per step."""
        old, made = self._rewriter or (None, -1)
        count = len(self.term_definitions)
        if (old is not None and made == count and not old.conditions and not old.kink_derivative
                and all(k in rewrites and rewrites[k] == v for k, v in old.rewrites.items())
                and not any(k in old.seen for k in rewrites if k not in old.rewrites)):
            old.rewrites = dict(rewrites)
            return old
        tr = Translator(rewrites=dict(rewrites), calculus=self.term_definitions, sweeps=self._sweeps)
        self._rewriter = (tr, count)
        return tr

    def _conditions(self, found: list) -> tuple:
        """The side conditions still open, as text; raises Undefined for a false one."""
        out = []
        for c in sorted(found, key=lambda c: repr(c.term)):
            s = self._full.scalar(c.term) if not c.term.is_matrix else None
            if s is not None:
                s = normal.canonical(s)
                if s.is_Number or (c.rel == "!=" and scalar_is_zero(s)):
                    ok = s != 0 if c.rel == "!=" else (s > 0 if c.rel == ">" else s >= 0)
                    if s.is_Number and ok:
                        continue
                    raise Undefined(c.term, c.rel)
                if (c.rel == "!=" and (s.is_positive or s.is_negative)) or (
                        c.rel == ">" and s.is_positive) or (c.rel == ">=" and s.is_nonnegative):
                    continue  # discharged (exp(a) > 0, 1 + a**2 != 0, ...)
            shown = str(c.term)
            out.append(f"{shown} {c.rel} 0" if c.term.is_matrix is False else f"entries of {shown} {c.rel} 0")
        return tuple(dict.fromkeys(out))


def _hadamard_of_functions(x: NF) -> bool:
    """Whether a word of ``x`` has an entrywise function inside a Hadamard product."""
    return any(a[0] == "had" and any(len(w) == 1 and w[0][0] == "fn" for w, _ in a[1])
               for word in x.terms for a in word)


def compare(a: NF, b: NF, at_kinks: bool = True, quick: bool = False) -> tuple[bool, str, bool]:
    """Whether two normal forms are equal: (same, reason, definite).

    ``definite`` means the difference is exact and certain (a nonzero rational
    or polynomial coefficient), so a closer numeric look is worth it. ``at_kinks`` False:
    identities with kinks are not concluded at the kinks (derivatives were taken there)."""
    if a.shape != b.shape:
        return False, f"the sides have shapes {fmt_shape(a.shape)} and {fmt_shape(b.shape)}", False
    a, b = clean(a), clean(b)
    if a.shape == (1, 1):  # a 1x1 matrix is its scalar (its trace): x x^T = tr(x^T x)
        d = normal.canonical(normal.as_scalar(a) - normal.as_scalar(b))
        if d == 0:
            return True, "normal forms agree", False
        if quick:
            return False, "normal forms differ", False
        if scalar_is_zero(d):
            return True, "normal forms agree up to scalar identities", False
        if scalar.entrywise_zero(d, at_kinks) or scalar.functions_zero(a, b, at_kinks) or scalar.lifted_zero(
                a, b, at_kinks):
            return True, "normal forms agree up to a scalar identity (decided by cases where it has kinks)", False
        return False, "normal forms differ", d.is_rational_function() and not d.has(sp.Function)
    hard = []
    for w in set(a.terms) | set(b.terms):
        ca, cb = a.terms.get(w, sp.S.Zero), b.terms.get(w, sp.S.Zero)
        if ca != cb:
            d = normal.canonical(ca - cb)
            if d != 0:
                hard.append(d)
    if not hard:
        return True, "normal forms agree", False
    if quick:
        return False, f"normal forms differ in {len(hard)} term(s)", False
    if all(scalar_is_zero(d) for d in hard):
        return True, "normal forms agree up to scalar identities", False
    if scalar.functions_zero(a, b, at_kinks) or scalar.lifted_zero(a, b, at_kinks):
        return True, "normal forms agree up to an entrywise scalar identity", False
    definite = any(d.is_rational_function() and not d.has(sp.Function) for d in hard)
    return False, f"normal forms differ in {len(hard)} term(s)", definite


def _partial(t: Term) -> bool:
    """Whether a term has a partial operation (a division, log, sqrt, non-integer or
    negative power) whose side condition a proof would have to state."""
    for x in terms.walk(t):
        if x.op == "div" or (x.op == "prim" and x.value in terms.DOMAINS):
            return True
        if x.op == "pow" and not (x.args[1].op == "num" and x.args[1].value.denominator == 1
                                  and x.args[1].value >= 0):
            return True
    return False



def _report(op: Opinion) -> NumericReport:
    return NumericReport(op.trials, op.max_rel_error, op.agree, op.detail)


def _opinion_note(op: Opinion) -> str:
    if op.trials and op.agree:
        return f" (the numeric judge agrees on {op.trials} instance{'s' if op.trials != 1 else ''})"
    return ""


def normal_form(expr: Any) -> NF:
    """The normal form of an expression (no definitions unfolded), for inspection."""
    return clean(Translator()(as_term(expr)))


def check(lhs: Any, rhs: Any, trials: int = 3, seed: int = 0) -> Check:
    """Decide ``lhs = rhs`` in a fresh context."""
    return Context(trials=trials, seed=seed).check(lhs, rhs)


__all__ = [
    "MAX_TERMS", "PROVED", "REFUTED", "SCALAR_BUDGET", "STEP_BUDGET", "UNPROVED", "BudgetError",
    "Check", "Context", "Grad", "Lemma", "NumericReport", "ShapeError", "SymnetError", "Term",
    "Unsupported", "as_term", "check", "elementwise_derivative", "fmt_shape", "issued",
    "normal_form", "scalar_is_zero", "terms",
]
