"""symnet: derive, check and typeset the mathematics of neural networks.

The public API::

    from symnet import Network, collapse, check
    result = collapse(Network.dense([3, 4, 4, 2]))
    print(result.derivation)

The names are imported on first use (PEP 562), so ``import symnet.cli`` for
``symnet --version`` / ``--help`` and the pytest plugin do not load SymPy.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> the submodule that defines it
_LAZY = {
    "gradients": "backprop",
    "collapse": "collapse",
    "induction": "collapse",
    "Network": "composer",
    "Derivation": "derivation",
    "ShapeError": "errors",
    "SpecError": "errors",
    "SymnetError": "errors",
    "PROVED": "kernel",
    "REFUTED": "kernel",
    "UNPROVED": "kernel",
    "Context": "kernel",
    "Grad": "kernel",
    "check": "kernel",
}

__all__ = [
    "PROVED",
    "REFUTED",
    "UNPROVED",
    "Context",
    "Derivation",
    "Grad",
    "Network",
    "ShapeError",
    "SpecError",
    "SymnetError",
    "check",
    "collapse",
    "gradients",
    "induction",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'symnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """``symnet.collapse`` is the function even after the submodule ``symnet.collapse`` loads.

    Importing a submodule binds it as an attribute of the package; for a public name that
    is also a submodule's name (``collapse``) the function is bound instead, as the eager
    ``from .collapse import collapse`` did.
    """

    def __setattr__(self, name: str, value) -> None:
        if (isinstance(value, types.ModuleType) and _LAZY.get(name) == name
                and value.__name__ == f"{__name__}.{name}" and hasattr(value, name)):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # for type checkers and editors
    from .backprop import gradients
    from .collapse import collapse, induction
    from .composer import Network
    from .derivation import Derivation
    from .errors import ShapeError, SpecError, SymnetError
    from .kernel import PROVED, REFUTED, UNPROVED, Context, Grad, check
