"""Hypothesis strategies for networks, activations and numeric weights.

    from hypothesis import given
    from symnet.testing.strategies import affine_networks, networks, weights
    from symnet.testing import assert_collapses

    @given(affine_networks(max_depth=5))
    def test_affine_stacks_collapse(net):
        assert_collapses(net)

Everything shrinks towards small, simple examples: depth to ``min_depth``,
widths to their minimum, activations to the first name in the list
(``identity`` for the defaults), weights to zero.  A failing property is
therefore reported on the smallest network that still fails it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import strategies as st

from symnet.errors import SpecError
from symnet.networks.composer import MAX_DEPTH, MAX_WIDTH, Network

__all__ = [
    "AFFINE_SPECS",
    "NONLINEAR_SPECS",
    "activations",
    "affine_networks",
    "networks",
    "nonlinear_networks",
    "weights",
]

#: Activations whose networks stay affine (identity first: shrinking goes there).
AFFINE_SPECS = ("identity", "affine", "affine(a=2, c=-1)", "affine(a=1/2, c=1)", "leaky_relu(alpha=1)")
#: Nonlinear activations that are differentiable almost everywhere and numerically tame.
NONLINEAR_SPECS = ("tanh", "sigmoid", "relu", "softplus", "leaky_relu", "step")


def activations(names: Sequence[str] | None = None, affine: bool | None = None) -> st.SearchStrategy[str]:
    """Activation specs: from ``names``, or the affine ones (``affine=True``), the
    nonlinear ones (``affine=False``), or both (default).  Shrinks to the first."""
    if names is None:
        if affine is True:
            names = AFFINE_SPECS
        elif affine is False:
            names = NONLINEAR_SPECS
        else:
            names = AFFINE_SPECS[:1] + NONLINEAR_SPECS + AFFINE_SPECS[1:]
    elif isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise SpecError("activations() needs at least one name")
    from symnet.networks.activations import parse_spec

    for name in names:  # fail when the strategy is built, not in the middle of a test
        parse_spec(name)
    return st.sampled_from(names)


def _widths(widths, depth: int):
    if widths is None:
        widths = st.integers(1, 4)
    return st.lists(widths, min_size=depth + 1, max_size=depth + 1)


@st.composite
def _networks(draw, min_depth, max_depth, widths, acts) -> Network:
    if isinstance(widths, (list, tuple)):
        sizes = list(widths)
    else:
        depth = draw(st.integers(min_depth, max_depth))
        sizes = draw(_widths(widths, depth))
    specs = [draw(acts) for _ in range(len(sizes) - 1)]
    return Network.dense(sizes, specs)


def networks(
    min_depth: int = 1,
    max_depth: int = 4,
    widths: st.SearchStrategy[int] | Sequence[int] | None = None,
    activations: st.SearchStrategy[str] | Sequence[str] | None = None,
) -> st.SearchStrategy[Network]:
    """Dense networks with integer widths.

    Args:
        min_depth, max_depth: the number of layers, ``1 <= min_depth <= max_depth``.
        widths: a strategy for one width (default ``integers(1, 4)``), or a fixed
            list ``[n0, ..., nL]`` (which also fixes the depth).
        activations: a strategy for one layer's spec (see :func:`activations`) or
            a list of specs; default: a mix of affine and nonlinear ones.
    """
    if isinstance(widths, (list, tuple)):
        if len(widths) < 2:
            raise SpecError("networks(widths=[...]) needs at least two widths")
        Network.dense(list(widths))  # validate now
    else:
        if not (isinstance(min_depth, int) and isinstance(max_depth, int)):
            raise SpecError("min_depth and max_depth must be whole numbers")
        if not 1 <= min_depth <= max_depth <= MAX_DEPTH:
            raise SpecError(f"need 1 <= min_depth <= max_depth <= {MAX_DEPTH}, got {min_depth}, {max_depth}")
        if widths is not None and not isinstance(widths, st.SearchStrategy):
            raise SpecError("widths must be a strategy for one width or a list of widths")
    if activations is None:
        acts = globals()["activations"]()
    elif isinstance(activations, st.SearchStrategy):
        acts = activations
    else:
        acts = globals()["activations"](list(activations))
    return _networks(min_depth, max_depth, widths, acts)


def affine_networks(
    min_depth: int = 1,
    max_depth: int = 4,
    widths: st.SearchStrategy[int] | Sequence[int] | None = None,
) -> st.SearchStrategy[Network]:
    """Networks whose every activation is affine: they always collapse."""
    return networks(min_depth, max_depth, widths, activations(affine=True))


def nonlinear_networks(
    min_depth: int = 1,
    max_depth: int = 4,
    widths: st.SearchStrategy[int] | Sequence[int] | None = None,
) -> st.SearchStrategy[Network]:
    """Networks with at least one nonlinear layer: they never collapse to one affine map."""
    networks(min_depth, max_depth, widths)  # validate the arguments now
    return _with_a_nonlinear_layer(min_depth, max_depth, widths)


@st.composite
def _with_a_nonlinear_layer(draw, min_depth, max_depth, widths) -> Network:
    net = draw(networks(min_depth, max_depth, widths))
    if net.is_affine:  # make one layer nonlinear instead of filtering (filters shrink badly)
        layer = draw(st.integers(1, net.depth))
        spec = draw(activations(affine=False))
        specs = [spec if l.index == layer else l.activation for l in net.layers]
        net = Network.dense(list(net.widths), specs)
    return net


@st.composite
def weights(
    draw,
    net: Network,
    elements: st.SearchStrategy[float] | None = None,
    batch: int = 1,
    target: bool = False,
) -> dict:
    """Numeric instances for ``net``: arrays ``x`` (batch x n0), ``W1, b1, ...``.

    Entries come from ``elements`` (default: floats in [-2, 2], shrinking to 0);
    values of symbolic activation parameters (``a1, c1, ...``) are drawn too,
    keyed by name, from [0.25, 2].  With ``target=True`` a target ``t``
    (batch x nL) is drawn as well, so the dict is a point for
    :func:`symnet.testing.assert_gradients_match`.
    """
    if net.has_symbolic_widths:
        raise SpecError("weights() needs integer widths")
    if not isinstance(batch, int) or not 1 <= batch <= MAX_WIDTH:
        raise SpecError(f"batch must be a whole number from 1 to {MAX_WIDTH}")
    elements = elements if elements is not None else st.floats(-2, 2, allow_nan=False, allow_infinity=False)

    def array(rows: int, cols: int) -> np.ndarray:
        flat = draw(st.lists(elements, min_size=rows * cols, max_size=rows * cols))
        return np.array(flat, dtype=float).reshape(rows, cols)

    out = {"x": array(batch, int(net.widths[0]))}
    for layer in net.layers:
        out[layer.W.name] = array(int(layer.fan_in), int(layer.fan_out))
        out[layer.b.name] = array(1, int(layer.fan_out))
    if target:
        out["t"] = array(batch, int(net.widths[-1]))
    for s in net.scalar_parameters:
        out[s.name] = draw(st.floats(0.25, 2.0))
    return out
