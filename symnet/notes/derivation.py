"""Derivations as data: immutable steps grouped in chains, checked by the kernel.

A :class:`Chain` reads ``lhs = e_1 = e_2 = ...``; each :class:`Step` holds the
expression ``e_i``, the stated reason and the kernel's :class:`~symnet.kernel.Check`
of ``e_{i-1} = e_i`` (``lhs = e_1`` for the first step).  A :class:`Derivation`
is a titled sequence of chains.  Printers (:mod:`symnet.render.printing`) are views of
these objects; nothing here computes while printing.

Steps are created only through :class:`ChainBuilder`, which asks the kernel for
every verdict: no other code sets a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from symnet.kernel import PROVED, REFUTED, UNPROVED, Check, Context, issued


@dataclass(frozen=True)
class Step:
    """One equality step: the new expression, why it holds, and the kernel's verdict."""

    expr: Any
    reason: str
    check: Check

    @property
    def verdict(self) -> str:
        return self.check.verdict

    @property
    def ok(self) -> bool:
        """Proved by this kernel: a verdict it issued, not one that merely says so."""
        return issued(self.check)

    @property
    def counterexample(self) -> dict | None:
        return self.check.counterexample


def combine(verdicts: Iterable[str]) -> str:
    """``refuted`` if any is, else ``unproved`` if any is, else ``proved``
    (vacuously for no steps: an empty derivation claims nothing)."""
    verdicts = set(verdicts)
    if REFUTED in verdicts:
        return REFUTED
    if UNPROVED in verdicts:
        return UNPROVED
    return PROVED


@dataclass(frozen=True)
class Chain:
    """``lhs = steps[0].expr = steps[1].expr = ...``, with optional ``where`` definitions."""

    lhs: Any
    steps: tuple[Step, ...]
    title: str = ""
    where: tuple[tuple[Any, Any], ...] = ()

    @property
    def verdict(self) -> str:
        return combine(s.verdict for s in self.steps)

    @property
    def rhs(self) -> Any:
        return self.steps[-1].expr if self.steps else self.lhs


@dataclass(frozen=True)
class Derivation:
    """A titled sequence of checked chains, plus free-text notes."""

    title: str
    chains: tuple[Chain, ...]
    notes: tuple[str, ...] = ()

    @property
    def steps(self) -> list[Step]:
        """All steps of all chains, in order."""
        return [s for c in self.chains for s in c.steps]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def verdict(self) -> str:
        return combine(c.verdict for c in self.chains)

    @property
    def ok(self) -> bool:
        """Every step proved by this kernel (vacuously true for no steps)."""
        return all(s.ok for s in self.steps)

    # views -------------------------------------------------------------
    def to_text(self) -> str:
        from symnet.render.printing import derivation_text

        return derivation_text(self)

    def to_latex(self) -> str:
        from symnet.render.printing import derivation_latex

        return derivation_latex(self)

    def to_markdown(self) -> str:
        from symnet.render.printing import derivation_markdown

        return derivation_markdown(self)

    def to_dict(self) -> dict:
        from symnet.render.printing import derivation_dict

        return derivation_dict(self)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        from symnet.render.display import derivation_repr

        return derivation_repr(self)

    # Jupyter: chains stacked vertically, a verdict mark on every step
    def _repr_latex_(self) -> str:
        from symnet.render.display import derivation_repr_latex

        return derivation_repr_latex(self)

    def _repr_html_(self) -> str:
        from symnet.render.display import derivation_html

        return derivation_html(self)

    def _repr_markdown_(self) -> str:
        from symnet.render.display import derivation_markdown

        return derivation_markdown(self)


@dataclass
class ChainBuilder:
    """Builds a chain step by step; the kernel decides each step as it is added."""

    context: Context
    lhs: Any
    title: str = ""
    steps: list[Step] = field(default_factory=list)
    where: list[tuple[Any, Any]] = field(default_factory=list)

    @property
    def current(self) -> Any:
        return self.steps[-1].expr if self.steps else self.lhs

    def step(self, expr: Any, reason: str, uses: Iterable[Any] | None = None) -> Step:
        """Add ``= expr`` (by ``reason``); ``uses`` cites definitions or lemmas to unfold."""
        check = self.context.check(self.current, expr, uses=uses)
        step = Step(expr, reason, check)
        self.steps.append(step)
        return step

    def build(self) -> Chain:
        return Chain(self.lhs, tuple(self.steps), self.title, tuple(self.where))
