"""The one exception type users see, and its few refinements."""

from __future__ import annotations


class SymnetError(Exception):
    """A user-facing error: bad input, a shape mismatch, an unknown name.

    The command line prints ``str(error)`` on one line to stderr and exits 2;
    messages name the place (file, line, step) where one is known.
    """


class ShapeError(SymnetError):
    """Two matrix shapes that an operation needs to agree do not."""


class SpecError(SymnetError):
    """An activation spec or a layer list that cannot be understood."""


class BudgetError(SymnetError):
    """A computation would exceed a resource budget (size, depth or time)."""
