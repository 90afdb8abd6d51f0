"""The numeric gradient check: dtype-aware steps, named mismatches, kinks, the Taylor test."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symnet.errors import SymnetError
from symnet.networks.activations import Z
from symnet.networks.backprop import gradients
from symnet.networks.composer import Network
from symnet.testing.gradcheck import check, check_gradients

WRONG_TANH = lambda act: sp.Lambda(Z, 1 - sp.tanh(Z)) if act.name == "tanh" else None  # noqa: E731


@pytest.mark.parametrize("spec, loss", [
    ("tanh", "sse"), ("sigmoid", "xent"), ("softplus", "mse"), ("relu", "sse"),
    ("leaky_relu", "xent"), ("affine", "mse"), ("identity", "sse"),
])
def test_right_gradients_pass_with_order_two(spec, loss):
    g = gradients(Network.dense([3, 4, 4, 2], spec), loss)
    report = check_gradients(g, g.random_point(1, batch=5))
    assert report.ok and not report.failures and report.kinks == 0
    assert report.checked == sum(np.size(v) for k, v in g.random_point(1).items() if k in g.parameters)
    assert report.max_abs_error < 1e-7 and report.dtype == "float64"
    assert report.taylor.verdict in ("pass", "flat")
    if report.taylor.verdict == "pass":
        assert 1.8 < report.taylor.slope < 2.3


def test_a_float32_point_is_differenced_in_float64():
    # the point is cast to float64: the step and tolerances are float64's, not float32's
    g = gradients(Network.dense([3, 4, 4, 2], "tanh"), "sse")
    point = {k: v.astype(np.float32) for k, v in g.random_point(1, batch=5).items()}
    report = check_gradients(g, point)
    assert report.ok, str(report)
    assert report.dtype == "float32" and report.computed_in == "float64"
    assert report.step == pytest.approx(np.finfo(np.float64).eps ** (1 / 3))
    assert "float32 point, differenced in float64" in str(report)


def test_a_wrong_derivative_is_caught_by_both_tests():
    g = gradients(Network.dense([3, 4, 4, 2], "tanh"), "sse", derivative=WRONG_TANH)
    report = check_gradients(g, g.random_point(1, batch=5))
    assert not report.ok
    assert report.taylor.verdict == "fail" and 0.8 < report.taylor.slope < 1.3
    assert len(report.failures) > 10
    first = report.failures[0]
    assert first.param in g.parameters and len(first.index) == 2
    assert abs(first.analytic - first.numeric) > first.tolerance
    assert f"{first.where}: analytic" in str(report) and "FAILED" in str(report)


def test_one_wrong_entry_is_named_exactly():
    g = gradients(Network.dense([3, 4, 2], "sigmoid"), "mse")
    point = g.random_point(4, batch=3)
    grads = g.function()(**point)
    bad = {k: np.array(grads[k]) for k in g.parameters}
    bad["W2"][2, 1] *= 1 + 1e-4
    loss = g.loss_function()
    report = check(lambda p: loss(**p)["loss"], bad, point)
    assert [(f.param, f.index) for f in report.failures] == [("W2", (2, 1))]
    f = report.failures[0]
    assert f.analytic == pytest.approx(bad["W2"][2, 1]) and f.numeric == pytest.approx(grads["W2"][2, 1], rel=1e-8)
    assert report.to_dict()["failures"][0]["param"] == "W2"


def relu_point_on_a_kink():
    g = gradients(Network.dense([3, 4, 2], "relu"), "sse")
    point = g.random_point(2, batch=1)
    z = point["x"] @ point["W1"] + point["b1"]
    point["b1"][0, 1] -= z[0, 1]  # the pre-activation of unit 2 is now exactly 0
    assert (point["x"] @ point["W1"] + point["b1"])[0, 1] == 0
    return g, point


def test_relu_exactly_at_zero_is_a_kink_not_a_failure():
    g, point = relu_point_on_a_kink()
    report = check_gradients(g, point)
    assert report.ok and not report.failures
    assert report.kinks == 4  # W1[:, 1] (3 entries) and b1[0, 1]
    assert {(e.param, e.index[1]) for e in report.kink_entries} == {("W1", 1), ("b1", 1)}
    for e in report.kink_entries:
        assert min(e.forward, e.backward) <= e.analytic <= max(e.forward, e.backward)
        assert abs(e.forward - e.backward) > 1e-3
    assert report.taylor.verdict in ("kink", "pass")


def test_a_value_outside_the_one_sided_differences_fails_at_a_kink():
    g, point = relu_point_on_a_kink()
    grads = {k: np.array(v) for k, v in g.function()(**point).items() if k != "loss"}
    grads["b1"][0, 1] += 5.0
    loss = g.loss_function()
    report = check(lambda p: loss(**p)["loss"], grads, point, taylor=False)
    assert not report.ok
    assert [(f.param, f.index) for f in report.failures] == [("b1", (0, 1))]
    assert report.kinks == 3


def test_generic_check_on_a_quadratic_and_a_linear_loss():
    A = np.arange(6.0).reshape(2, 3) / 7
    quad = lambda p: 0.5 * float(np.sum(p["A"] ** 2))  # noqa: E731
    assert check(quad, {"A": A}, {"A": A}).ok
    wrong = check(quad, {"A": 1.01 * A}, {"A": A})
    assert not wrong.ok and wrong.taylor.verdict == "fail"
    C = np.ones((2, 3))
    linear = lambda p: float(np.sum(C * p["A"]))  # noqa: E731
    exact = check(linear, {"A": C}, {"A": A})  # the remainder is round-off: the loss is linear
    assert exact.ok and exact.taylor.verdict == "linear" and not exact.vacuous
    assert not check(linear, {"A": 0 * C}, {"A": A}).ok


def test_sampling_and_errors():
    g = gradients(Network.dense([4, 5, 3], "tanh"), "sse")
    report = check_gradients(g, g.random_point(0), max_entries=3, taylor=False)
    assert report.checked == 3 + 3 + 3 + 3 and report.taylor is None and report.ok
    with pytest.raises(SymnetError, match="shape"):
        check(lambda p: 0.0, {"A": np.zeros(3)}, {"A": np.zeros((1, 3))})
    with pytest.raises(SymnetError, match="no value for B"):
        check(lambda p: 0.0, {"B": np.zeros(3)}, {"A": np.zeros(3)})


@settings(derandomize=True, deadline=None, max_examples=25)
@given(
    widths=st.lists(st.integers(1, 4), min_size=2, max_size=4),
    spec=st.sampled_from(["tanh", "sigmoid", "softplus"]),
    seed=st.integers(0, 10_000),
    rel=st.sampled_from([1e-3, 1e-2, 0.5]),
    pick=st.integers(0, 10_000),
)
def test_property_right_passes_and_a_perturbed_entry_fails(widths, spec, seed, rel, pick):
    g = gradients(Network.dense(widths, spec), "sse")
    point = g.random_point(seed, batch=2)
    grads = {k: np.array(v) for k, v in g.function()(**point).items() if k != "loss"}
    loss = g.loss_function()
    fn = lambda p: loss(**p)["loss"]  # noqa: E731
    assert check(fn, grads, point, taylor=False).ok
    entries = [(k, i) for k in g.parameters for i in np.ndindex(grads[k].shape)]
    name, idx = entries[pick % len(entries)]
    grads[name][idx] += rel * max(abs(grads[name][idx]), 1e-2)
    report = check(fn, grads, point, taylor=False)
    assert (name, tuple(int(i) for i in idx)) in [(f.param, f.index) for f in report.failures]
