"""symnet: derive, check and typeset the mathematics of neural networks.

The public API::

    from symnet import Network, collapse, check
    result = collapse(Network.dense([3, 4, 4, 2]))
    print(result.derivation)
"""

from __future__ import annotations

from .backprop import gradients
from .collapse import collapse, induction
from .composer import Network
from .derivation import Derivation
from .errors import ShapeError, SpecError, SymnetError
from .kernel import PROVED, REFUTED, UNPROVED, Context, Grad, check

__version__ = "0.1.0"

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
