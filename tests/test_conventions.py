"""Column and PyTorch conventions: translated derivations, every step re-proved.

The textbook formulas are checked as text (Goodfellow et al.: ``W' = W_L ... W_1``,
``dL/dW_l = delta_l h_{l-1}^T``; PyTorch: ``weight.grad = delta^T h``), and each
translated gradient against PyTorch's autograd where installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import symnet
from symnet.cli import main
from symnet.networks.conventions import translate


@pytest.mark.parametrize("widths", [[3, 4, 2], [2, 3, 3, 2], ["n0", "n1", "n2"]])
def test_collapse_in_the_column_convention_is_the_textbook_s(widths):
    net = symnet.Network.dense(widths)
    d = translate(symnet.collapse(net), "column", dict(net.definitions()))
    assert d.ok, d.to_text()
    text = d.to_text()
    L = len(widths) - 1
    assert "W' = " + " ".join(f"W{l}" for l in range(L, 0, -1)) in text
    assert f"y = W{L} h{L - 1} + b{L}" in text


def test_collapse_in_the_torch_convention_uses_transposed_weights():
    net = symnet.Network.dense([3, 4, 2])
    d = translate(symnet.collapse(net), "torch", dict(net.definitions()))
    assert d.ok and "x W1^T W2^T + b1 W2^T + b2" in d.to_text()


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("convention,formula", [("column", "dL/dW2 = delta2 h1^T"), ("torch", "dL/dW2 = delta2^T h1")])
def test_gradients_translate_and_stay_proved(activation, convention, formula):
    g = symnet.gradients(symnet.Network.dense([3, 4, 2], activation), "sse")
    d = translate(g, convention, dict(g.definitions))
    assert d.ok, d.to_text()
    assert formula in d.to_text()


def test_a_wrongly_translated_step_is_not_proved():
    # the translation is re-checked: a row formula left untranslated does not pass
    from symnet.kernel import Context
    from symnet.kernel import terms as T

    W, h, delta = T.matrix("W2", 2, 4), T.matrix("h1", 4, 1), T.matrix("delta2", 2, 1)
    L = T.mul(T.transpose(delta), T.mul(W, h))  # <delta, W h>: its gradient is delta h^T
    assert Context().check(T.grad(L, W), T.mul(delta, T.transpose(h))).verdict == "proved"
    assert Context().check(T.grad(L, W), T.transpose(T.mul(delta, T.transpose(h)))).verdict == "refuted"


def test_torch_weight_gradient_matches_autograd():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    # the translated formula dL/dW = delta^T h, evaluated by hand, against weight.grad
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    t = torch.randn(5, 2, dtype=torch.float64)
    y = lin(x)
    loss = 0.5 * ((y - t) ** 2).sum()
    loss.backward()
    delta = (y - t).detach().numpy()
    assert np.allclose(delta.T @ x.numpy(), lin.weight.grad.numpy())


def test_the_command_line_prints_the_convention(capsys):
    assert main(["collapse", "--layers", "3,4,2", "--convention", "column"]) == 0
    assert "W' = W2 W1" in capsys.readouterr().out
    assert main(["grad", "--layers", "3,4,2", "--activation", "tanh", "--convention", "torch"]) == 0
    out = capsys.readouterr().out
    assert "dL/dW2 = delta2^T h1" in out and "torch convention" in out


@pytest.mark.parametrize("convention", ["column", "torch"])
def test_a_layer_network_s_collapse_translates_and_stays_proved(convention, capsys):
    from symnet.networks.layer_algebra import collapse_layers, translated
    from symnet.networks.layers import BatchNorm, Conv1d, Flatten, Linear, Residual, Sequential

    for layers, shape in [([Linear(3), BatchNorm(), Residual([Linear(3)]), Linear(2)], (4,)),
                          ([Conv1d(k=3), Conv1d(k=2), Flatten(), Linear(2)], (1, 7))]:
        d = translated(collapse_layers(Sequential(layers, shape)), convention)
        assert d.ok, d.to_text()
    text = d.to_text()
    assert ("M4 M3 M2 M1 x" in text) if convention == "column" else ("x M1^T M2^T M3^T M4^T" in text)
    assert main(["collapse", "--net", "linear(3) > residual(linear(3))", "--input-shape", "2",
                 "--convention", convention]) == 0
    assert f"({convention} convention)" in capsys.readouterr().out
