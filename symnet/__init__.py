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
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> the submodule that defines it
_LAZY = {
    "gradients": "networks.backprop",
    "collapse": "networks.collapse",
    "induction": "networks.collapse",
    "Network": "networks.composer",
    "from_torch": "networks.torch_import",
    "Derivation": "notes.derivation",
    "ShapeError": "errors",
    "SpecError": "errors",
    "SymnetError": "errors",
    "PROVED": "kernel",
    "REFUTED": "kernel",
    "UNPROVED": "kernel",
    "Context": "kernel",
    "Grad": "kernel",
    "check": "kernel",
    "translate": "networks.conventions",
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
    "from_torch",
    "gradients",
    "induction",
    "translate",
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


if TYPE_CHECKING:  # for type checkers and editors
    from symnet.errors import ShapeError, SpecError, SymnetError
    from symnet.kernel import PROVED, REFUTED, UNPROVED, Context, Grad, check
    from symnet.networks.backprop import gradients
    from symnet.networks.collapse import collapse, induction
    from symnet.networks.composer import Network
    from symnet.networks.conventions import translate
    from symnet.networks.torch_import import from_torch
    from symnet.notes.derivation import Derivation
