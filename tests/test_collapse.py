"""Collapse: checked derivations, closed forms that match NumPy, witnesses that hold."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from symnet import Network, collapse
from symnet.kernel import PROVED
from symnet.networks.collapse import induction
from symnet.networks.numeric import Evaluator
from symnet.render.printing import text


def test_three_layer_chain_is_exactly_the_textbook_chain():
    result = collapse(Network.dense([3, 4, 4, 2]))
    lines = [text(s.expr) for s in result.derivation.steps]
    assert lines == [
        "h2 W3 + b3",
        "(h1 W2 + b2) W3 + b3",
        "h1 W2 W3 + b2 W3 + b3",
        "(x W1 + b1) W2 W3 + b2 W3 + b3",
        "x W1 W2 W3 + b1 W2 W3 + b2 W3 + b3",
        "x W' + b'",
    ]
    assert all(s.verdict == PROVED for s in result.derivation.steps)
    assert text(result.W) == "W1 W2 W3"
    assert text(result.b) == "b1 W2 W3 + b2 W3 + b3"
    assert result.rank_bound == 2
    assert result.collapsible and result.witness is None


def _numeric_collapsed(net, W, b, values, scalars):
    ev = Evaluator({**values, **scalars}, {}, {})
    return ev(sp.MatAdd(sp.MatMul(net.x, W), b))


def _forward(net, values, scalars):
    h = values[net.x]
    for layer in net.layers:
        a, c = layer.activation.affine_coefficients
        a, c = float(a.xreplace(scalars)), float(c.xreplace(scalars))
        h = a * (h @ values[layer.W] + values[layer.b]) + c
    return h


affine_specs = st.sampled_from(["identity", "affine", "affine(a=2, c=-1)", "affine(a=1/2, c=3)",
                                "leaky_relu(alpha=1)"])


@given(
    st.lists(st.integers(1, 6), min_size=2, max_size=11),
    st.data(),
)
def test_random_affine_stacks_agree_with_numpy_forward(widths, data):
    specs = [data.draw(affine_specs) for _ in widths[1:]]
    net = Network.dense(widths, specs)
    result = collapse(net, trials=2)
    assert result.collapsible and result.verdict == PROVED
    rng = np.random.default_rng(len(widths))
    values = {net.x: rng.standard_normal((1, widths[0]))}
    for layer, n_in, n_out in zip(net.layers, widths, widths[1:]):
        values[layer.W] = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
        values[layer.b] = rng.standard_normal((1, n_out))
    scalars = {s: float(rng.uniform(0.5, 1.5)) for s in net.scalar_parameters}
    expected = _forward(net, values, scalars)
    got = _numeric_collapsed(net, result.W, result.b, values, scalars)
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert result.rank_bound == min(widths)


def test_affine_closed_form_with_symbols():
    net = Network.dense([2, 3, 2], "affine")
    result = collapse(net)
    a1, c1, a2, c2 = net.scalar_parameters
    assert text(result.W) == text(a1 * a2 * net.layers[0].W * net.layers[1].W)
    assert "c2 ones(1, 2)" in text(result.b) and "a2 c1 ones(1, 3) W2" in text(result.b)
    assert result.verdict == PROVED


def test_deep_stack_uses_induction_and_stays_proved():
    result = collapse(Network.dense([2] * 13))
    titles = [c.title for c in result.derivation.chains]
    assert titles[0] == "Layer 1" and titles[-1] == "Closed form"
    assert result.verdict == PROVED
    assert text(result.W) == " ".join(f"W{k}" for k in range(1, 13))


def test_chain_and_induction_styles_give_the_same_closed_form():
    net = Network.dense([2, 3, 3, 2, 2], "affine(a=3, c=1)")
    a = collapse(net, style="chain")
    b = collapse(net, style="induction")
    assert a.verdict == b.verdict == PROVED
    assert text(a.W) == text(b.W) and text(a.b) == text(b.b)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "softplus", "step", "leaky_relu"])
def test_nonlinear_networks_get_a_witness_that_holds_when_recomputed(activation):
    net = Network.dense([3, 4, 2], activation)
    result = collapse(net)
    assert not result.collapsible and result.W is None and result.b is None
    w = result.witness
    assert w is not None

    # recompute independently with a hand-written forward pass
    def act(z):
        return {
            "tanh": np.tanh,
            "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
            "relu": lambda v: np.maximum(v, 0),
            "softplus": lambda v: np.log1p(np.exp(v)),
            "step": lambda v: (v >= 0).astype(float),
            "leaky_relu": lambda v: np.where(v < 0, 0.01 * v, v),
        }[activation](z)

    def F(x):
        h = np.asarray(x)
        for l in (1, 2):
            h = act(h @ np.array(w.weights[f"W{l}"]) + np.array(w.weights[f"b{l}"]))
        return h

    a, b, t = np.array(w.input_a), np.array(w.input_b), w.t
    assert 0 < t < 1
    lhs, rhs = F(t * a + (1 - t) * b), t * F(a) + (1 - t) * F(b)
    assert np.allclose(lhs, w.lhs) and np.allclose(rhs, w.rhs)
    assert np.max(np.abs(lhs - rhs)) > 1e-3


def test_mixed_network_segments():
    net = Network.dense([2, 3, 3, 3, 3, 2], ["identity", "affine", "tanh", "identity", "relu"])
    result = collapse(net)
    assert [s.layers for s in result.segments] == [(1, 2), (4, 4)]
    assert not result.collapsible and result.witness is not None
    assert result.verdict == PROVED
    assert text(result.segments[0].W) == "a2 W1 W2"


def test_nonlinear_output_layer_only_and_linear_output_layer():
    # C4: a linear output layer is fine when another layer is nonlinear
    result = collapse(Network.dense([2, 3, 1], ["tanh", "identity"]))
    assert [s.layers for s in result.segments] == [(2, 2)]
    assert not result.collapsible and result.witness is not None


@pytest.mark.parametrize("affine", [False, True])
def test_general_statement_by_induction_is_proved(affine):
    d = induction(affine=affine)
    assert d.verdict == PROVED
    assert [c.title.split(" ")[0] for c in d.chains] == ["Base", "Induction"]
    reasons = [s.reason for s in d.chains[1].steps]
    assert "induction hypothesis" in reasons


def test_symbolic_widths_collapse():
    result = collapse(Network.dense(["n0", "n1", "n2"]))
    assert result.verdict == PROVED
    assert result.to_dict()["rank_bound"] is None
    assert "Min(n0, n1, n2)" == result.to_dict()["rank_bound_expr"]


def test_json_shape_of_a_collapse():
    d = collapse(Network.dense([3, 4, 4, 2])).to_dict()
    assert d["collapsible"] is True and d["W"] == "W1*W2*W3"
    assert d["b"] == "b1*W2*W3 + b2*W3 + b3"
    assert d["rank_bound"] == 2
    assert d["segments"] == [{"layers": [1, 3], "W": "W1*W2*W3", "b": "b1*W2*W3 + b2*W3 + b3"}]
    assert d["derivation"]["verdict"] == "proved"
    assert {"expr", "latex", "reason", "verdict"} <= set(d["derivation"]["steps"][0])
    assert d["numeric"]["trials"] >= 1 and d["numeric"]["max_abs_error"] < 1e-9
    assert d["witness"] is None


@pytest.mark.parametrize("activation", ["relu", "step", "tanh"])
def test_width_one_layers_work(activation):
    # SymPy's ElementwiseApplyFunction calls f on a 1x1 matrix itself; symnet must not
    result = collapse(Network.dense([2, 1, 1], activation))
    assert result.witness is not None


def test_beyond_the_closed_form_depth_the_result_is_stated_in_the_named_intermediates():
    from symnet.networks.collapse import CLOSED_FORM_MAX

    net = Network.dense([2] * (CLOSED_FORM_MAX + 2))
    result = collapse(net)
    assert result.verdict == "proved" and result.collapsible
    last = result.derivation.chains[-1]
    assert last.title == "Collapsed map"
    assert f"W'_{{{CLOSED_FORM_MAX + 1}}}" in str(last.steps[-1].expr)
    # the closed forms are still the result's W' and b', cross-checked numerically
    assert result.numeric_ok and len(result.b.args) == CLOSED_FORM_MAX + 1
    unfolded = collapse(Network.dense([2] * 8), style="induction", unfold=False)
    assert unfolded.derivation.chains[-1].title == "Collapsed map" and unfolded.verdict == "proved"
    assert collapse(Network.dense([2] * 8), style="induction").derivation.chains[-1].title == "Closed form"
