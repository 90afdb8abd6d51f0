"""The composer builds networks with the documented symbols and shapes."""

import numpy as np
import pytest
import sympy as sp

from symnet import Network
from symnet.errors import SpecError


def test_symbols_and_shapes_follow_the_row_convention():
    net = Network.dense([3, 4, 2])
    assert [m.name for m in net.parameters] == ["W1", "b1", "W2", "b2"]
    assert net.x.shape == (1, 3)
    assert net.layers[0].W.shape == (3, 4) and net.layers[0].b.shape == (1, 4)
    assert net.layers[1].W.shape == (4, 2) and net.y.shape == (1, 2)


def test_bare_affine_gets_per_layer_scalar_symbols():
    net = Network.dense([2, 2, 2], "affine")
    assert [s.name for s in net.scalar_parameters] == ["a1", "c1", "a2", "c2"]
    assert all(s.is_real for s in net.scalar_parameters)


def test_one_spec_per_layer_and_parameters():
    net = Network.dense([2, 3, 1], ["leaky_relu(alpha=0.2)", "affine(a=2, c=-1)"])
    assert net.layers[0].activation.params == (("alpha", sp.Rational(1, 5)),)
    assert net.layers[1].activation.affine_coefficients == (2, -1)


def test_symbolic_widths():
    net = Network.dense(["n0", "n1", "n2"])
    n0 = sp.Symbol("n0", integer=True, positive=True)
    assert net.x.shape == (1, n0)
    assert net.has_symbolic_widths


@pytest.mark.parametrize(
    "widths,activation,message",
    [
        ([3], "identity", "at least two widths"),
        ([3, 0, 2], "identity", "at least 1"),
        ([3, -1], "identity", "at least 1"),
        ([3, "4x"], "identity", "not a positive integer"),
        ([3, 10**7], "identity", "exceeds the limit"),
        ([3, 4, 2], "swishy", "unknown activation 'swishy'; known: identity"),
        ([3, 4, 2], ["tanh"], "1 activations given for 2 layers"),
        ([3, 4, 2], "tanh(a=1)", "has no parameter 'a'"),
        ([3, 4, 2], "affine(a=1/0)", "division by zero"),
        ([3, 4, 2], "affine(a=__import__('os'))", "not a number or a name"),
        ([3, 4, 2], "tanh(", "expected NAME"),
    ],
)
def test_bad_input_is_a_clear_spec_error(widths, activation, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Network.dense(widths, activation)


def test_forward_pass_matches_hand_written_numpy():
    net = Network.dense([3, 4, 2], ["tanh", "sigmoid"])
    w = net.random_weights(seed=1)
    x = np.random.default_rng(2).standard_normal((5, 3))
    h = np.tanh(x @ w["W1"] + w["b1"])
    y = 1 / (1 + np.exp(-(h @ w["W2"] + w["b2"])))
    assert np.allclose(net.forward(x, w), y)


def test_output_expression_nests_layers():
    net = Network.dense([2, 2, 2])
    out = net.output
    assert net.layers[1].W in out.atoms(sp.MatrixSymbol)
    assert net.x in out.atoms(sp.MatrixSymbol)
