"""Hypothesis strategies for networks, activations and numeric weights.

    from hypothesis import given
    from symnet.strategies import affine_networks, networks, weights

    @given(affine_networks(max_depth=5))
    def test_affine_stacks_collapse(net):
        assert_collapses(net)

Everything shrinks towards small, simple examples: depth to ``min_depth``,
widths to their minimum, activations to the first name in the list
(``identity`` for the defaults).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from hypothesis import strategies as st

from .composer import Network

#: Activations whose networks stay affine (identity first: shrinking goes there).
AFFINE_SPECS = ("identity", "affine", "affine(a=2, c=-1)", "affine(a=1/2, c=1)", "leaky_relu(alpha=1)")
#: Nonlinear activations that are differentiable almost everywhere and numerically tame.
NONLINEAR_SPECS = ("tanh", "sigmoid", "relu", "softplus", "leaky_relu", "step")


def activations(names: Sequence[str] | None = None, affine: bool | None = None) -> st.SearchStrategy[str]:
    """Activation specs: from ``names``, or the affine ones, the nonlinear ones, or both."""
    if names is None:
        if affine is True:
            names = AFFINE_SPECS
        elif affine is False:
            names = NONLINEAR_SPECS
        else:
            names = AFFINE_SPECS[:1] + NONLINEAR_SPECS + AFFINE_SPECS[1:]
    names = list(names)
    if not names:
        raise ValueError("activations() needs at least one name")
    return st.sampled_from(names)


def _widths(widths, depth: int):
    if widths is None:
        widths = st.integers(1, 4)
    if isinstance(widths, (list, tuple)):
        return st.just(list(widths))
    return st.lists(widths, min_size=depth + 1, max_size=depth + 1)


@st.composite
def networks(
    draw,
    min_depth: int = 1,
    max_depth: int = 4,
    widths: st.SearchStrategy[int] | Sequence[int] | None = None,
    activations: st.SearchStrategy[str] | None = None,
) -> Network:
    """Dense networks: depth in [min_depth, max_depth], each width from ``widths``
    (a strategy for one width, default 1..4, or a fixed list), one activation per
    layer drawn from ``activations`` (default: a mix of affine and nonlinear)."""
    if isinstance(widths, (list, tuple)):
        depth = len(widths) - 1
    else:
        depth = draw(st.integers(min_depth, max_depth))
    sizes = draw(_widths(widths, depth))
    acts = activations if activations is not None else globals()["activations"]()
    specs = [draw(acts) for _ in range(len(sizes) - 1)]
    return Network.dense(sizes, specs)


def affine_networks(
    min_depth: int = 1,
    max_depth: int = 4,
    widths: st.SearchStrategy[int] | Sequence[int] | None = None,
) -> st.SearchStrategy[Network]:
    """Networks whose every activation is affine: they always collapse."""
    return networks(min_depth, max_depth, widths, activations(affine=True))


@st.composite
def weights(draw, net: Network, elements: st.SearchStrategy[float] | None = None, batch: int = 1) -> dict:
    """Numeric instances for ``net``: arrays ``x`` (batch x n0), ``W1, b1, ...``.

    Entries come from ``elements`` (default: floats in [-2, 2]); values of
    symbolic activation parameters (``a1, c1, ...``) are drawn too, keyed by name.
    """
    if net.has_symbolic_widths:
        raise ValueError("weights() needs integer widths")
    elements = elements if elements is not None else st.floats(-2, 2, allow_nan=False, allow_infinity=False)

    def array(rows: int, cols: int) -> np.ndarray:
        flat = draw(st.lists(elements, min_size=rows * cols, max_size=rows * cols))
        return np.array(flat, dtype=float).reshape(rows, cols)

    out = {"x": array(batch, int(net.widths[0]))}
    for layer in net.layers:
        out[layer.W.name] = array(int(layer.fan_in), int(layer.fan_out))
        out[layer.b.name] = array(1, int(layer.fan_out))
    for s in net.scalar_parameters:
        out[s.name] = draw(st.floats(0.25, 2.0))
    return out
