"""symnet.testing: the assertion helpers pass on true claims and fail readably on false ones."""

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symnet import Network, collapse
from symnet.networks.activations import Z
from symnet.networks.backprop import gradients
from symnet.testing import (
    SymnetAssertionError,
    assert_collapses,
    assert_derivation,
    assert_gradients_match,
    assert_not_affine,
    assert_proved,
)

ROOT = Path(__file__).resolve().parent
DERIV = ROOT / "deriv"
WRONG_TANH = lambda act: sp.Lambda(Z, 1 - sp.tanh(Z)) if act.name == "tanh" else None  # noqa: E731


def test_the_error_is_an_assertion_error_whose_message_is_the_report():
    err = SymnetAssertionError("headline", "details\nmore")
    assert isinstance(err, AssertionError)
    assert str(err) == err.report == "headline\ndetails\nmore"
    assert err.headline == "headline"
    assert str(SymnetAssertionError("a", report="x\ny\n")) == "x\ny"


# ---------------------------------------------------------------------------
# assert_collapses / assert_not_affine


@pytest.mark.parametrize("widths, acts", [
    ([3, 4, 2], "identity"),
    ([2, 3, 3, 2], "affine"),
    ([2, 2, 2], ["affine(a=2, c=-1)", "leaky_relu(alpha=1)"]),
    (["n0", "n1", "n2"], "identity"),
])
def test_assert_collapses_passes_and_returns_the_collapse(widths, acts):
    result = assert_collapses(Network.dense(widths, acts))
    assert result.collapsible and result.derivation.ok
    assert result.W is not None and result.b is not None


def test_assert_collapses_fails_with_the_layer_and_a_witness():
    net = Network.dense([3, 4, 2], ["relu", "identity"])
    with pytest.raises(SymnetAssertionError) as info:
        assert_collapses(net)
    text = str(info.value)
    assert text.startswith("Network.dense([3,4,2], [relu,identity]) does not collapse: nonlinear layer 1 (relu)")
    assert "witness (confirmed at 50 digits)" in text
    assert "F(t a + (1-t) b)" in text and "W1 = [[" in text


def test_assert_collapses_accepts_collapse_options():
    result = assert_collapses(Network.dense([2, 2, 2, 2], "affine"), style="induction", seed=3)
    assert result.derivation.ok and len(result.derivation.chains) > 1


@pytest.mark.parametrize("widths, acts", [
    ([2, 3, 1], "tanh"),
    ([2, 2], "relu"),
    ([1, 1], "step"),
    ([2, 3, 2], ["affine", "sigmoid"]),
    (["n0", "n1"], "softplus"),
])
def test_assert_not_affine_returns_a_recomputed_witness(widths, acts):
    w = assert_not_affine(Network.dense(widths, acts))
    assert w.gap > 0 and w.confirmed_digits >= 20
    assert np.max(np.abs(w.lhs - w.rhs)) > 0


def test_assert_not_affine_fails_on_an_affine_network_showing_the_collapsed_map():
    with pytest.raises(SymnetAssertionError) as info:
        assert_not_affine(Network.dense([3, 4, 2], "affine"))
    text = str(info.value)
    assert "is affine: it collapses to x W' + b'" in text
    assert "W' = a1 a2 W1 W2" in text and "b' =" in text


# ---------------------------------------------------------------------------
# assert_gradients_match


@pytest.mark.parametrize("acts, loss", [
    ("tanh", "sse"), (["relu", "identity"], "mse"), (["sigmoid", "softplus"], "xent"),
    (["leaky_relu", "tanh"], "sse"), ("affine", "sse"), (["step", "tanh"], "sse"),
])
def test_assert_gradients_match_passes_on_backprop(acts, loss):
    reports = assert_gradients_match(Network.dense([3, 4, 2], acts), loss, points=2)
    assert len(reports) == 2 and all(r.ok for r in reports)


def test_symbolic_widths_are_checked_at_a_concrete_size():
    (report,) = assert_gradients_match(Network.dense(["n0", 2, "n2"], ["tanh", "affine"]), points=1)
    assert report.ok and report.checked == 3 * 2 + 2 + 2 * 3 + 3


def test_a_relu_kink_is_not_a_failure():
    net = Network.dense([3, 4, 2], "relu")
    point = gradients(net, "sse").random_point(2, batch=1)
    z = point["x"] @ point["W1"] + point["b1"]
    point["b1"][0, 1] -= z[0, 1]  # the pre-activation of unit 2 is exactly 0
    (report,) = assert_gradients_match(net, point=point)
    assert report.kinks >= 1 and not report.failures


def test_a_wrong_derivative_fails_naming_the_entries():
    net = Network.dense([2, 3, 1], "tanh")
    with pytest.raises(SymnetAssertionError) as info:
        assert_gradients_match(net, derivative=WRONG_TANH)
    text = str(info.value)
    assert text.startswith("backprop's gradients of the sse loss for Network.dense([2,3,1], [tanh,tanh]) "
                           "do not match finite differences at point 0 (seed 0)")
    assert "mismatch W1[0, 0]: analytic" in text
    assert "Taylor remainder test: fail" in text
    assert "at the point" in text and "x = [[" in text


def _numpy_backprop(bug: bool = False):
    """A hand-written backprop for one tanh layer and a linear output, squared error."""
    def grad(x, t, W1, b1, W2, b2):
        h1 = np.tanh(x @ W1 + b1)
        d2 = h1 @ W2 + b2 - t
        d1 = (d2 @ W2.T) * ((1 - h1) if bug else (1 - h1**2))  # the bug: tanh' = 1 - tanh
        return {"W1": x.T @ d1, "b1": d1.sum(0, keepdims=True), "W2": h1.T @ d2, "b2": d2.sum(0, keepdims=True)}
    return grad


def test_the_callers_own_gradients_are_checked():
    net = Network.dense([3, 4, 2], ["tanh", "identity"])
    reports = assert_gradients_match(net, gradient=_numpy_backprop())
    assert len(reports) == 3
    with pytest.raises(SymnetAssertionError, match="the given gradients of the sse loss"):
        assert_gradients_match(net, gradient=_numpy_backprop(bug=True))


def test_gradients_given_as_a_dict_and_missing_entries():
    net = Network.dense([2, 2], "tanh")
    g = gradients(net)
    point = g.random_point(5)
    grads = {k: v for k, v in g.function()(**point).items() if k != "loss"}
    assert assert_gradients_match(net, point=point, gradient=grads)[0].ok
    with pytest.raises(SymnetAssertionError, match="no entry for b1"):
        assert_gradients_match(net, point=point, gradient={"W1": grads["W1"]})
    with pytest.raises(SymnetAssertionError, match="has shape"):
        assert_gradients_match(net, point=point, gradient={"W1": grads["W1"].T[:1], "b1": grads["b1"]})


def test_a_point_without_every_value_is_a_usage_error():
    from symnet.errors import SymnetError

    with pytest.raises(SymnetError, match="no value for t, b1"):
        assert_gradients_match(Network.dense([2, 2], "tanh"), point={"x": [[1.0, 2.0]], "W1": np.eye(2)})


def test_prove_also_requires_the_kernel_to_prove_the_derivation():
    reports = assert_gradients_match(Network.dense([2, 3, 2], ["tanh", "sigmoid"]), prove=True, points=1)
    assert reports[0].ok


def test_an_overflowing_point_fails_clearly_instead_of_a_nan_verdict():
    net = Network.dense([3, 4, 2], ["relu", "softplus"])
    # logits near 1e5 are fine now (xent is computed with the log-sum-exp shift) ...
    point = gradients(net, "xent").random_point(1, batch=2, scale=300.0)
    assert_gradients_match(net, "xent", point=point)
    # ... weights near 1e200 overflow float64 whatever the formula
    point = gradients(net, "xent").random_point(1, batch=2, scale=1e200)
    with pytest.raises(SymnetAssertionError) as info, np.errstate(all="ignore"):
        assert_gradients_match(net, "xent", point=point)
    assert "not finite" in str(info.value) and "overflow" in str(info.value)


def test_large_but_finite_weights_saturate_without_nan():
    for acts in (["tanh", "identity"], ["elu", "tanh"], ["softsign", "gaussian"]):
        net = Network.dense([3, 4, 2], acts)
        point = gradients(net, "sse").random_point(1, batch=2, scale=300.0)
        (report,) = assert_gradients_match(net, point=point)
        assert np.isfinite(report.max_abs_error)


def test_sigmoid_gradients_saturate_without_nan():
    # the compiled code writes sigmoid' as y (1 - y) with the catalogue's stable sigmoid
    net = Network.dense([1, 1], "sigmoid")
    point = {"x": [[1.0]], "t": [[0.0]], "W1": [[-800.0]], "b1": [[0.0]]}
    assert_gradients_match(net, point=point)


# ---------------------------------------------------------------------------
# assert_derivation / assert_proved


def test_assert_derivation_on_text_files_paths_and_markdown():
    result = assert_derivation("matrix A: 2x2, B: 2x2\n  (A*B).T\n= B.T*A.T\n")
    assert result.ok and len(result.steps) == 1
    assert assert_derivation(DERIV / "good" / "collapse.deriv").ok
    assert assert_derivation(str(DERIV / "good" / "scalar.deriv")).ok
    assert assert_derivation(DERIV / "good" / "notes.md").ok  # its symnet blocks
    text = (DERIV / "good" / "notes.md").read_text()
    assert assert_derivation(text, markdown=True).ok


def test_assert_derivation_failure_reads_like_symnet_check():
    with pytest.raises(SymnetAssertionError) as info:
        assert_derivation(DERIV / "refuted" / "swapped_factors.deriv")
    text = str(info.value)
    first = text.split("\n")[0]
    assert first.startswith(str(DERIV / "refuted" / "swapped_factors.deriv") + ":")
    assert ": step refuted: the sides differ by" in first
    assert "counterexample:" in text and "left side" in text and "right side" in text
    assert "|   ^" in text  # the marker under the step
    assert info.value.headline == first


def test_assert_derivation_on_text_names_the_line():
    with pytest.raises(SymnetAssertionError) as info:
        assert_derivation("matrix A: 2x2, B: 2x2\n  (A*B).T\n= A.T*B.T\n")
    assert str(info.value).startswith("<string>:3: step refuted")
    assert "  3 | = A.T*B.T" in str(info.value)


def test_assert_derivation_malformed_and_missing_files():
    with pytest.raises(SymnetAssertionError) as info:
        assert_derivation(DERIV / "malformed" / "bad_product.deriv")
    assert ": error: shapes" in info.value.headline and "malformed, not checked" in str(info.value)
    with pytest.raises(SymnetAssertionError, match="no such derivation file"):
        assert_derivation("does/not/exist.deriv")
    with pytest.raises(SymnetAssertionError, match="no steps to check"):
        assert_derivation("matrix A: 2x2\n")
    with pytest.raises(SymnetAssertionError, match="unproved"):
        assert_derivation("scalar a, b\nlog(a*b) = log(a) + log(b)\n")


def test_assert_proved_takes_derivations_and_results():
    assert assert_proved(collapse(Network.dense([2, 2, 2]))).ok
    assert assert_proved(gradients(Network.dense([2, 2], "tanh"))).ok
    with pytest.raises(SymnetAssertionError, match="steps not proved") as info:
        assert_proved(gradients(Network.dense([2, 3, 2], "tanh"), derivative=WRONG_TANH))
    assert "step refuted" in str(info.value) and "counterexample:" in str(info.value)
    with pytest.raises(TypeError):
        assert_proved(42)


def test_helpers_hide_their_frames_from_pytest():
    import symnet.testing as testing

    for name in ("assert_collapses", "assert_not_affine", "assert_gradients_match", "assert_derivation",
                 "assert_proved"):
        assert "__tracebackhide__" in getattr(testing, name).__code__.co_varnames, name
