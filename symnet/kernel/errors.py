"""The exceptions of the trusted base (re-exported by :mod:`symnet.errors`)."""

from __future__ import annotations


class SymnetError(Exception):
    """A user-facing error: bad input, a shape mismatch, an unknown name.

    The command line prints ``str(error)`` on one line to stderr and exits 2;
    messages name the place (file, line, step) where one is known.
    """


class ShapeError(SymnetError):
    """Two matrix shapes that an operation needs to agree do not."""


class BudgetError(SymnetError):
    """A computation would exceed a resource budget (size, depth or time)."""


class Unsupported(Exception):
    """A construct outside the fragment the kernel decides (the step stays unproved)."""
