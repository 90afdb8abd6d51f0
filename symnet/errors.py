"""The one exception type users see, and its few refinements."""

from __future__ import annotations

from symnet.kernel.errors import BudgetError, ShapeError, SymnetError


class SpecError(SymnetError):
    """An activation spec or a layer list that cannot be understood."""


__all__ = ["BudgetError", "ShapeError", "SpecError", "SymnetError"]
