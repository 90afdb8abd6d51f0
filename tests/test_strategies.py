"""symnet.testing.strategies: networks, activations and weights that shrink to small examples."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import find, given, settings
from hypothesis import strategies as st

from symnet import Network
from symnet.errors import SpecError
from symnet.networks.numeric import Evaluator
from symnet.testing import assert_collapses, assert_gradients_match, assert_not_affine
from symnet.testing.strategies import (
    AFFINE_SPECS,
    NONLINEAR_SPECS,
    activations,
    affine_networks,
    networks,
    nonlinear_networks,
    weights,
)

FIND = settings(database=None, max_examples=2000)


# ---------------------------------------------------------------------------
# Shrinking: the minimal counterexample of a property is a small network


def test_a_minimal_nonlinear_network_is_one_unit_wide():
    net = find(networks(), lambda n: not n.is_affine, settings=FIND)
    assert net.depth == 1 and [int(w) for w in net.widths] == [1, 1]
    assert net.layers[0].activation.spec == NONLINEAR_SPECS[0]


def test_a_minimal_deep_counterexample_is_narrow_and_mostly_identity():
    net = find(networks(max_depth=6), lambda n: n.depth >= 3 and any(
        layer.activation.name == "relu" for layer in n.layers), settings=FIND)
    assert net.depth == 3
    assert [int(w) for w in net.widths] == [1, 1, 1, 1]
    specs = [layer.activation.spec for layer in net.layers]
    assert specs.count("relu") == 1 and specs.count("identity") == 2


def test_widths_shrink_to_the_smallest_that_fail():
    net = find(networks(), lambda n: int(n.widths[0]) >= 3, settings=FIND)
    assert net.depth == 1 and [int(w) for w in net.widths] == [3, 1]


def test_weights_shrink_to_zero():
    net = Network.dense([2, 2], "tanh")
    w = find(weights(net), lambda w: abs(w["W1"][1, 0]) >= 1, settings=FIND)
    assert w["W1"][1, 0] in (1.0, -1.0)
    assert not np.any(w["x"]) and not np.any(w["b1"])


# ---------------------------------------------------------------------------
# What the strategies generate


@settings(max_examples=15, deadline=None)
@given(affine_networks(max_depth=4))
def test_affine_networks_always_collapse(net):
    assert net.is_affine
    assert_collapses(net)


@settings(max_examples=10, deadline=None)
@given(nonlinear_networks(max_depth=3))
def test_nonlinear_networks_are_never_affine(net):
    assert not net.is_affine
    assert_not_affine(net)


@settings(max_examples=10, deadline=None)
@given(networks(max_depth=3, widths=st.integers(1, 3),
                activations=activations(["tanh", "sigmoid", "relu", "identity", "affine(a=2, c=-1)"])))
def test_backprop_gradients_match_on_generated_networks(net):
    assert_gradients_match(net, points=1, batch=2)


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_collapse_agrees_with_a_numpy_forward_pass_on_generated_weights(data):
    net = data.draw(affine_networks(max_depth=4, widths=st.integers(1, 3)))
    values = data.draw(weights(net, batch=2))
    result = assert_collapses(net)
    symbols = {s: values[s.name] for s in net.parameters}
    scalars = {s: values[s.name] for s in net.scalar_parameters}
    ev = Evaluator({**symbols, **scalars, net.x: values["x"][:1]}, {}, {})
    with np.errstate(all="ignore"):
        W, b = np.asarray(ev(result.W), float), np.asarray(ev(result.b), float)
    concrete = Network.dense(list(net.widths), [
        layer.activation.record.bind(**{k: v.xreplace({s: sp.Float(x) for s, x in scalars.items()})
                                        for k, v in layer.activation.params})
        for layer in net.layers])
    expected = concrete.forward(values["x"], values)
    np.testing.assert_allclose(values["x"] @ W + b, expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_weights_have_the_shapes_of_the_network(data):
    net = data.draw(networks(max_depth=4))
    batch = data.draw(st.integers(1, 3))
    w = data.draw(weights(net, batch=batch, target=True))
    assert w["x"].shape == (batch, int(net.widths[0]))
    assert w["t"].shape == (batch, int(net.widths[-1]))
    for layer in net.layers:
        assert w[layer.W.name].shape == (int(layer.fan_in), int(layer.fan_out))
        assert w[layer.b.name].shape == (1, int(layer.fan_out))
    for s in net.scalar_parameters:
        assert 0.25 <= w[s.name] <= 2.0
    assert all(np.all(np.isfinite(np.asarray(v))) for v in w.values())
    assert np.all(np.isfinite(Network.dense(list(net.widths), [
        layer.activation.record.bind(**{k: v.xreplace({s: sp.Float(w[s.name]) for s in net.scalar_parameters})
                                        for k, v in layer.activation.params})
        for layer in net.layers]).forward(w["x"], w)))


@settings(max_examples=20, deadline=None)
@given(networks(min_depth=2, max_depth=3, widths=[2, 3, 2]))
def test_fixed_widths_fix_the_depth(net):
    assert [int(w) for w in net.widths] == [2, 3, 2]


@settings(max_examples=20, deadline=None)
@given(activations(affine=True))
def test_affine_activations_are_affine(spec):
    assert Network.dense([1, 1], spec).is_affine


@settings(max_examples=20, deadline=None)
@given(activations(affine=False))
def test_nonlinear_activations_are_not(spec):
    assert spec in NONLINEAR_SPECS and not Network.dense([1, 1], spec).is_affine


def test_the_catalogue_names_all_parse():
    for spec in AFFINE_SPECS + NONLINEAR_SPECS:
        Network.dense([1, 1], spec)


def test_bad_arguments_are_refused_when_the_strategy_is_built():
    with pytest.raises(SpecError, match="unknown activation"):
        activations(["tanh", "no_such_thing"])
    with pytest.raises(SpecError, match="at least one"):
        activations([])
    with pytest.raises(SpecError, match="min_depth"):
        networks(min_depth=3, max_depth=2)
    with pytest.raises(SpecError, match="min_depth"):
        networks(min_depth=0)
    with pytest.raises(SpecError):
        networks(widths=[3])
    with pytest.raises(SpecError):
        networks(widths=[3, 0])
    with pytest.raises(SpecError, match="integer widths"):
        find(weights(Network.dense(["n", 2])), lambda w: True, settings=FIND)
