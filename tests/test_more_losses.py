"""Binary cross-entropy with a sigmoid output and the hinge loss: derived, proved, compiled,
and checked against gradients written independently with NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from symnet import Network, gradients
from symnet.testing import assert_gradients_match


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("loss", ["bce", "hinge"])
def test_the_derivation_is_proved(loss):
    g = gradients(Network.dense([2, 3, 2], ["tanh", "identity"]), loss)
    assert g.derivation.ok


def test_bce_output_error_is_prediction_minus_target():
    net = Network.dense([3, 2], "identity")
    g = gradients(net, "bce")
    rng = np.random.default_rng(4)
    point = {"x": rng.standard_normal((1, 3)), "t": rng.random((1, 2)),
             "W1": rng.standard_normal((3, 2)), "b1": rng.standard_normal((1, 2))}
    out = g.function()(**point)
    y = point["x"] @ point["W1"] + point["b1"]
    delta = _sigmoid(y) - point["t"]  # dL/dz = sigmoid(z) - t, by hand
    assert np.allclose(out["b1"], delta) and np.allclose(out["W1"], point["x"].T @ delta)
    loss = g.loss_value(**point)
    s = _sigmoid(y)
    by_hand = -np.sum(point["t"] * np.log(s) + (1 - point["t"]) * np.log(1 - s))
    assert np.isclose(float(np.asarray(loss["loss"] if isinstance(loss, dict) else loss)), by_hand)


def test_hinge_gradient_by_hand():
    net = Network.dense([3, 2], "identity")
    g = gradients(net, "hinge")
    rng = np.random.default_rng(5)
    point = {"x": rng.standard_normal((1, 3)), "t": np.array([[1.0, -1.0]]),
             "W1": rng.standard_normal((3, 2)), "b1": rng.standard_normal((1, 2))}
    out = g.function()(**point)
    y = point["x"] @ point["W1"] + point["b1"]
    delta = np.where(1 - point["t"] * y > 0, -point["t"], 0.0)
    assert np.allclose(out["b1"], delta)


@pytest.mark.parametrize("loss", ["bce", "hinge"])
def test_gradients_match_finite_differences(loss):
    assert_gradients_match(Network.dense([2, 3, 2], ["tanh", "identity"]), loss, allow_vacuous=True)
