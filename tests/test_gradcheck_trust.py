"""Gradient checks that mean what they say: wrong gradients fail at every dtype and loss scale.

Reference gradients are analytic formulas written here with NumPy, independent of symnet.
"""

import warnings

import numpy as np
import pytest

from symnet import Network
from symnet.networks.backprop import gradients
from symnet.testing import SymnetAssertionError, assert_gradients_match
from symnet.testing.gradcheck import VacuousCheckWarning, check

RNG = np.random.default_rng(20240601)
A = RNG.standard_normal((3, 5))
C = RNG.standard_normal(3)
W0 = RNG.standard_normal(5)

DTYPES = [np.float16, np.float32, np.float64]
SCALES = [1.0, 1e-30, 1e30]
WRONG = {
    "zero": lambda g: 0 * g,
    "doubled": lambda g: 2 * g,
    "+0.1%": lambda g: g * (1 + 1e-3),
    "+1e-6 relative": lambda g: g * (1 + 1e-6),
    "sign flip": lambda g: -g,
}


def smooth(scale):
    """L = s (c . tanh(A w) + |w|^2 / 2) and its gradient s (A^T (c (1 - tanh^2)) + w)."""
    def loss(p):
        w = p["w"]
        return scale * float(C @ np.tanh(A @ w) + 0.5 * w @ w)

    def grad(w):
        w = np.asarray(w, dtype=np.float64)
        return scale * (A.T @ (C * (1 - np.tanh(A @ w) ** 2)) + w)
    return loss, grad


def relu_loss(scale):
    """L = s (c . relu(w[:3]) + |w|^2 / 2), a kink along w[0] when w[0] = 0."""
    def loss(p):
        w = p["w"]
        return scale * float(C @ np.maximum(w[:3], 0) + 0.5 * w @ w)

    def grad(w):  # the subgradient with relu'(0) = 0
        w = np.asarray(w, dtype=np.float64)
        out = w.copy()
        out[:3] += C * (w[:3] > 0)
        return scale * out
    return loss, grad


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_right_gradient_passes(dtype, scale):
    loss, grad = smooth(scale)
    w = W0.astype(dtype)
    report = check(loss, {"w": grad(w)}, {"w": w})
    assert report.ok and not report.vacuous, str(report)
    assert report.dtype == np.dtype(dtype).name and report.computed_in == "float64"
    assert report.taylor.verdict == "pass"


@pytest.mark.parametrize("wrong", list(WRONG))
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_wrong_gradient_fails(dtype, scale, wrong):
    loss, grad = smooth(scale)
    w = W0.astype(dtype)
    report = check(loss, {"w": WRONG[wrong](grad(w))}, {"w": w})
    assert not report.ok, str(report)
    assert report.failures  # entry by entry, whatever the Taylor test says


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_at_a_kink_the_right_subgradient_passes_and_wrong_ones_fail(dtype, scale):
    loss, grad = relu_loss(scale)
    w = W0.astype(dtype)
    w[0] = 0  # exactly on the kink of relu(w[0])
    right = grad(w)
    report = check(loss, {"w": right}, {"w": w})
    assert report.ok and report.kinks == 1 and report.kink_entries[0].index == (0,), str(report)
    for name, perturb in WRONG.items():
        assert not check(loss, {"w": perturb(right)}, {"w": w}).ok, name
    outside = right.copy()
    outside[0] = scale * (max(C[0], 0) + abs(C[0]))  # beyond the one-sided derivatives 0 and c0
    bad = check(loss, {"w": outside}, {"w": w}, taylor=False)
    assert [f.index for f in bad.failures] == [(0,)]


def test_float16_and_float32_points_are_not_given_their_own_epsilon():
    # with float16 steps the old check accepted an all-zero or doubled gradient (tolerance ~31%)
    loss, grad = smooth(1.0)
    for dtype in (np.float16, np.float32):
        w = W0.astype(dtype)
        report = check(loss, {"w": grad(w)}, {"w": w})
        assert report.step < 1e-5 and max(e.tolerance for e in report.kink_entries + report.failures or
                                          [type("E", (), {"tolerance": 0})()]) < 1e-6
        worst = check(loss, {"w": grad(w) * (1 + 1e-5)}, {"w": w})
        assert not worst.ok


def test_a_tiny_loss_of_a_confident_classifier_is_checked_not_floored_away():
    # binary cross-entropy log(1 + e^-m), m = w . x ~ 69: the loss is ~1e-30, computed stably
    x = np.array([3.0, -2.0, 1.5])
    w = np.array([15.0, -9.0, 4.0])

    def loss(p):
        return float(np.log1p(np.exp(-(p["w"] @ x))))

    right = -x * np.exp(-(w @ x)) / (1 + np.exp(-(w @ x)))
    assert 1e-31 < loss({"w": w}) < 1e-29
    report = check(loss, {"w": right}, {"w": w})
    assert report.ok and report.kinks == 0 and not report.vacuous, str(report)
    for name, perturb in WRONG.items():
        assert not check(loss, {"w": perturb(right)}, {"w": w}).ok, name


def test_a_loss_computed_by_cancellation_is_smooth_not_a_kink():
    # symnet's softmax cross-entropy log sum e^y - y_t of a confident 2-class net: L ~ 3.5e-5 whose
    # round-off is that of its terms (~17); the old check called it a kink and failed the Taylor test
    net = Network.dense([2, 2], "identity")
    point = {"x": np.array([[1.0, 0.5]]), "t": np.array([[1.0, 0.0]]),
             "W1": np.array([[5.0, -5.0], [0.3, -0.2]]), "b1": np.zeros((1, 2))}
    (report,) = assert_gradients_match(net, "xent", point=point)
    assert report.ok and report.taylor.verdict == "pass" and report.measured_noise > 0
    z = point["x"] @ point["W1"]
    s = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    d = s - point["t"]  # an independent reference: dL/dz = softmax - t
    wrong = {"W1": 2 * (point["x"].T @ d), "b1": d}
    with pytest.raises(SymnetAssertionError):
        assert_gradients_match(net, "xent", point=point, gradient=wrong)


def test_a_flat_loss_does_not_pass_a_nonzero_claim():
    const = lambda p: 3.0  # noqa: E731
    w = W0.copy()
    report = check(const, {"w": 1e-3 * np.ones(5)}, {"w": w})
    assert not report.ok and report.taylor.verdict == "fail" and not report.vacuous
    # the Taylor test alone: the loss is flat along v but <g, v> is not
    alone = check(const, {"w": 1e-3 * np.ones(5)}, {"w": w}, max_entries=0)
    assert alone.taylor.verdict == "fail" and not alone.ok
    # a right linear loss is "linear", not "flat"
    lin = check(lambda p: float(C @ (A @ p["w"])), {"w": A.T @ C}, {"w": w})
    assert lin.ok and lin.taylor.verdict == "linear" and not lin.vacuous


def test_an_all_zero_check_reports_vacuous():
    w = W0.copy()
    report = check(lambda p: 0.0 * float(p["w"].sum()), {"w": np.zeros(5)}, {"w": w})
    assert report.ok and report.vacuous and report.resolved == 0
    assert report.taylor.verdict == "flat"
    assert "VACUOUS" in str(report) and "nothing was tested" in str(report)
    assert report.to_dict()["vacuous"] is True
    assert not check(lambda p: float(p["w"].sum()), {"w": np.ones(5)}, {"w": w}).vacuous


def dead_relu_point():
    net = Network.dense([2, 1], "relu")  # relu output: dead for every example at this point
    point = {"x": np.array([[1.0, 2.0], [0.5, 1.0]]), "t": np.array([[0.3], [-0.2]]),
             "W1": np.array([[-1.0], [-1.0]]), "b1": np.array([[-0.5]])}
    return net, point


def test_assert_gradients_match_and_vacuous_checks():
    net, point = dead_relu_point()
    with pytest.raises(SymnetAssertionError, match="vacuous"):
        assert_gradients_match(net, point=point, allow_vacuous=False)
    (report,) = assert_gradients_match(net, point=point, allow_vacuous=True)
    assert report.vacuous
    with pytest.warns(VacuousCheckWarning):
        (report,) = assert_gradients_match(net, point=point)  # the caller's point: a warning
    # a net whose gradients vanish everywhere fails at random points unless allowed
    flat_net = Network.dense([2, 1], "step")
    with pytest.raises(SymnetAssertionError, match="vacuous"):
        assert_gradients_match(flat_net, points=1)
    assert assert_gradients_match(flat_net, points=1, allow_vacuous=True)[0].vacuous
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(not r.vacuous for r in assert_gradients_match(Network.dense([2, 3, 1], "relu"), points=3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_assert_gradients_match_at_low_precision_points(dtype):
    net = Network.dense([2, 3, 2], "tanh")
    point = {k: np.asarray(v, dtype=dtype) for k, v in gradients(net).random_point(3, batch=2).items()}
    (report,) = assert_gradients_match(net, point=point)
    assert report.ok and report.dtype == np.dtype(dtype).name
    g = gradients(net).function()(**{k: v.astype(np.float64) for k, v in point.items()})
    for _name, perturb in WRONG.items():
        bad = {k: perturb(np.asarray(g[k])) for k in ("W1", "b1", "W2", "b2")}
        with pytest.raises(SymnetAssertionError):
            assert_gradients_match(net, point=point, gradient=bad)


def test_nan_never_passes():
    w = W0.copy()
    report = check(lambda p: float("nan") if p["w"][0] != W0[0] else 1.0, {"w": np.zeros(5)}, {"w": w})
    assert not report.ok and not report.vacuous
