"""Test-suite integration: assertions, Hypothesis strategies, gradient checks, the pytest plugin.

``from symnet.testing import assert_collapses`` works as before; the names load on first
use, so the pytest plugin (``symnet.testing.pytest_plugin``) does not import SymPy.
"""

from __future__ import annotations

import importlib


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    assertions = importlib.import_module(".assertions", __name__)
    try:
        value = getattr(assertions, name)
    except AttributeError:
        raise AttributeError(f"module 'symnet.testing' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    assertions = importlib.import_module(".assertions", __name__)
    return sorted(set(globals()) | {n for n in vars(assertions) if not n.startswith("_")})
