"""Backpropagation: gradients against an independent reference, the kernel's verdicts, the CLI.

The reference is complex-step differentiation of a forward pass written here from
scratch (its own activations and losses, no symnet code): ``dL/dp = Im L(p + i h) / h``
with ``h = 1e-30`` is exact to round-off for every activation that is analytic on
each side of its kinks, so symnet's compiled gradients must agree to 1e-8.
"""

import json

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symnet.cli import main
from symnet.errors import SpecError, SymnetError
from symnet.kernel import Context, Grad
from symnet.networks import losses
from symnet.networks.activations import Z
from symnet.networks.backprop import gradients
from symnet.networks.composer import Network

from .soundness import mutants

# ---------------------------------------------------------------------------
# The independent reference

REFERENCE_ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "relu": lambda z: np.where(z.real > 0, z, 0),
    "softplus": lambda z: np.log(1 + np.exp(z)),
    "identity": lambda z: z,
    "affine(a=2, c=-1)": lambda z: 2 * z - 1,
    "leaky_relu": lambda z: np.where(z.real < 0, 0.01 * z, z),
}


def reference_loss(name, y, t):
    if name == "sse":
        return 0.5 * np.sum((y - t) ** 2)
    if name == "mse":
        return np.sum((y - t) ** 2) / y.shape[1]
    m = np.max(y.real, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(y - m), axis=1, keepdims=True))
    return -np.sum(t * (y - lse))


def reference_forward(point, specs, loss):
    h = point["x"]
    for l, spec in enumerate(specs, start=1):
        h = REFERENCE_ACTIVATIONS[spec](h @ point[f"W{l}"] + point[f"b{l}"])
    return reference_loss(loss, h, point["t"])


def reference_gradients(point, specs, loss):
    """Complex-step derivative of the reference loss for every W_l, b_l entry."""
    out = {}
    for name in [f"{p}{l}" for l in range(1, len(specs) + 1) for p in ("W", "b")]:
        g = np.zeros_like(point[name])
        for idx in np.ndindex(g.shape):
            shifted = dict(point)
            shifted[name] = point[name].astype(complex)
            shifted[name][idx] += 1e-30j
            g[idx] = reference_forward(shifted, specs, loss).imag / 1e-30
        out[name] = g
    return out


def relative_error(a, b):
    scale = np.max(np.abs(b))
    if scale == 0:
        return float(np.max(np.abs(a)))
    return float(np.max(np.abs(a - b)) / scale)


def assert_matches_reference(widths, specs, loss, seed, batch=3):
    g = gradients(Network.dense(widths, specs), loss)
    point = g.random_point(seed, batch=batch)  # random: no ReLU unit sits exactly on its kink
    got = g.function()(**point)
    ref = reference_gradients(point, specs, loss)
    for name, want in ref.items():
        assert got[name].shape == want.shape
        assert relative_error(got[name], want) < 1e-8, (name, got[name], want)
    assert abs(got["loss"] - reference_forward(point, specs, loss)) < 1e-12 * max(1, abs(got["loss"]))
    return g, point


ACTIVATIONS = list(REFERENCE_ACTIVATIONS)
LOSSES = ["sse", "mse", "xent"]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("spec", ACTIVATIONS)
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6])
def test_gradients_agree_with_complex_step_reference(spec, loss, depth):
    rng = np.random.default_rng([depth, ACTIVATIONS.index(spec), LOSSES.index(loss)])
    widths = [int(w) for w in rng.integers(1, 5, size=depth + 1)]
    if loss == "xent":
        widths[-1] = max(widths[-1], 2)
    assert_matches_reference(widths, [spec] * depth, loss, seed=depth)


def test_mixed_activations_and_symbolic_affine_parameters():
    net = Network.dense([3, 4, 2, 2], ["affine", "tanh", "sigmoid"])
    g = gradients(net, "mse")
    assert [s.name for s in g.scalar_parameters] == ["a1", "c1"]
    point = g.random_point(5, batch=4)
    a, c = point["a1"], point["c1"]
    layers = [lambda z: a * z + c, np.tanh, REFERENCE_ACTIVATIONS["sigmoid"]]

    def forward(p):
        h = p["x"]
        for l, f in enumerate(layers, start=1):
            h = f(h @ p[f"W{l}"] + p[f"b{l}"])
        return np.sum((h - p["t"]) ** 2) / 2

    got = g.function()(**point)
    for name in g.parameters:
        want = np.zeros_like(point[name])
        for idx in np.ndindex(want.shape):
            shifted = dict(point)
            shifted[name] = point[name].astype(complex)
            shifted[name][idx] += 1e-30j
            want[idx] = forward(shifted).imag / 1e-30
        assert relative_error(got[name], want) < 1e-8, name


@settings(derandomize=True, deadline=None, max_examples=25)
@given(
    widths=st.lists(st.integers(1, 4), min_size=2, max_size=5),
    data=st.data(),
    loss=st.sampled_from(LOSSES),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 4),
)
def test_property_random_networks_match_the_reference(widths, data, loss, seed, batch):
    if loss == "xent":
        widths[-1] = max(2, widths[-1])
    specs = data.draw(st.lists(st.sampled_from(ACTIVATIONS), min_size=len(widths) - 1,
                               max_size=len(widths) - 1))
    assert_matches_reference(widths, specs, loss, seed, batch=batch)


def test_gradients_are_summed_over_the_batch():
    g = gradients(Network.dense([3, 4, 2], "tanh"), "xent")
    point = g.random_point(3, batch=5)
    f = g.function()
    whole = f(**point)
    rows = [f(**dict(point, x=point["x"][i:i + 1], t=point["t"][i:i + 1])) for i in range(5)]
    for name in g.parameters:
        assert np.allclose(whole[name], sum(r[name] for r in rows), rtol=1e-12, atol=1e-14)
    assert np.isclose(whole["loss"], sum(r["loss"] for r in rows), rtol=1e-12)
    assert np.isclose(g.loss_value(**point), whole["loss"], rtol=1e-14)


def test_step_network_gradients_vanish_almost_everywhere():
    # C6: the step's derivative is 0 away from 0, so every gradient through it is 0
    g = gradients(Network.dense([2, 3, 2], "step"), "sse")
    out = g.function()(**g.random_point(0, batch=6))
    assert out["loss"] > 0
    for name in g.parameters:
        assert np.all(out[name] == 0), name
    sig = gradients(Network.dense([2, 3, 2], "sigmoid"), "sse").function()(**g.random_point(0, batch=6))
    assert any(np.any(sig[name] != 0) for name in g.parameters)


# ---------------------------------------------------------------------------
# Expressions and the derivation


def test_expressions_follow_the_delta_recursion():
    from symnet.render import printing

    g = gradients(Network.dense([2, 3, 3, 1], ["tanh", "relu", "sigmoid"]), "sse")
    text = {k: printing.text(v) for k, v in g.expressions.items()}
    assert text == {"W1": "x^T delta1", "b1": "delta1", "W2": "h1^T delta2", "b2": "delta2",
                    "W3": "h2^T delta3", "b3": "delta3"}
    defs = {s.name: printing.text(e) for s, e in g.definitions.items()}
    assert defs["delta3"] == "(y - t) ⊙ sigmoid'(z3)"
    assert defs["delta2"] == "(delta3 W3^T) ⊙ relu'(z2)"
    assert defs["delta1"] == "(delta2 W2^T) ⊙ tanh'(z1)"
    assert defs["z2"] == "h1 W2 + b2" and defs["h2"] == "relu(z2)"
    assert list(defs)[:6] == ["z1", "h1", "z2", "h2", "z3", "y"]
    assert printing.latex(Grad(g.L, g.net.layer(1).W)) == r"\frac{\partial L}{\partial \mathbf{W}_{1}}"
    assert printing.sstr(Grad(g.L, g.net.layer(1).W)) == "grad(L, W1)"


def test_constant_derivatives_become_scalars():
    from symnet.render import printing

    g = gradients(Network.dense([2, 2, 2], ["affine(a=3, c=1)", "identity"]), "sse")
    defs = {s.name: printing.text(e) for s, e in g.definitions.items()}
    assert defs["delta2"] == "y - t"
    assert defs["delta1"] == "3 delta2 W2^T"


def test_work_is_linear_in_depth():
    # every definition has the same bounded size at depth 4 and 64: nothing nests or expands
    def largest(depth):
        g = gradients(Network.dense([3] * (depth + 1), "tanh"), "sse")
        exprs = [*g.definitions.values(), *g.expressions.values()]
        assert len(g.definitions) == 3 * depth + 1
        return max(sum(1 for _ in sp.preorder_traversal(e)) for e in exprs)

    assert largest(64) == largest(4) <= 40


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("spec", ACTIVATIONS + ["affine"])
def test_derivation_is_proved(spec, loss):
    g = gradients(Network.dense([2, 3, 2], spec), loss)
    d = g.derivation
    assert d.verdict == "proved", [(s.reason, s.verdict, s.check.detail) for s in d.steps if not s.ok]
    chains = {c.title: c for c in d.chains}
    for name in ("W1", "b1", "W2", "b2"):
        chain = chains[f"Gradient for {name}"]
        assert isinstance(chain.lhs, Grad) and chain.lhs.wrt.name == name
        assert chain.steps[0].reason == "chain rule" and chain.steps[0].check.numeric.trials > 0
    assert g.derivation is d  # built once


def test_derivation_with_symbolic_widths_and_a_width_one_output():
    g = gradients(Network.dense(["n0", "n1", "n2"], "tanh"), "xent")
    assert g.derivation.verdict == "proved"
    with pytest.raises(SpecError):
        g.random_point(0)
    assert gradients(Network.dense([2, 3, 1], "relu"), "sse").derivation.verdict == "proved"


def test_a_wrong_derivative_is_refuted_by_the_kernel():
    wrong = lambda act: sp.Lambda(Z, 1 - sp.tanh(Z)) if act.name == "tanh" else None  # noqa: E731
    g = gradients(Network.dense([2, 3, 2], "tanh"), "sse", derivative=wrong)
    d = g.derivation
    chain_rule = [s for s in d.steps if s.reason == "chain rule"]
    assert len(chain_rule) == 4
    assert all(s.verdict == "refuted" for s in chain_rule)
    assert all(s.counterexample is not None for s in chain_rule)
    assert d.verdict == "refuted"
    right = gradients(Network.dense([2, 3, 2], "tanh"), "sse")
    assert right.derivation.verdict == "proved"


def test_wrong_gradient_claims_are_never_proved():
    g = gradients(Network.dense([2, 3, 2], "sigmoid"), "sse")
    ctx = g.context(trials=2, seed=3)
    deltas = [d for d, _ in g.deltas]
    count = 0
    for param in g.net.parameters:
        for kind, wrong in mutants(g.expressions[param.name]):
            try:
                verdict = ctx.check(Grad(g.L, param), wrong, uses=deltas).verdict
            except SymnetError:
                verdict = "rejected"  # ill-shaped
            assert verdict != "proved", (param, kind, wrong)
            count += 1
    assert count >= 8
    # classic slips: a derivative factor dropped, the wrong layer's signal
    h1, W2 = g.net.h(1), g.net.layer(2).W
    slips = {
        "W2": sp.MatMul(sp.Transpose(h1), sp.MatAdd(g.net.y, -g.t)),
        "b1": sp.MatMul(g.delta(2), sp.Transpose(W2)),
        "W1": sp.MatMul(sp.Transpose(g.net.x), sp.MatMul(g.delta(2), sp.Transpose(W2))),
    }
    for name, wrong in slips.items():
        param = next(p for p in g.net.parameters if p.name == name)
        assert ctx.check(Grad(g.L, param), wrong, uses=deltas).verdict == "refuted", name


def test_mutated_delta_definitions_are_caught():
    """Each one-slip change of a delta definition makes some gradient step fail."""
    g = gradients(Network.dense([2, 2, 2], "tanh"), "sse")
    deltas = [d for d, _ in g.deltas]
    tried = 0
    for target, expr in g.deltas:
        for kind, wrong in mutants(expr, limit=8):
            ctx = Context(trials=2, seed=1)
            try:
                for sym, e in g.definitions.items():
                    ctx.define(sym, wrong if sym == target else e)
            except SymnetError:
                continue  # an ill-shaped mutant is rejected outright
            verdicts = {ctx.check(Grad(g.L, p), g.expressions[p.name], uses=deltas).verdict
                        for p in g.net.parameters}
            assert verdicts != {"proved"}, (target, kind, wrong)
            tried += 1
    assert tried >= 6


def test_a_false_zero_gradient_is_not_proved():
    # regression: the kernel once normalised Grad(L, W) to 0 in its full-unfolding
    # pass, and the numeric opinion's absolute floor let a 1e-9 gradient pass as 0
    g = gradients(Network.dense([2, 2], "identity"), "sse")
    ctx = Context()
    for sym, expr in g.definitions.items():
        ctx.define(sym, sp.MatMul(sp.Rational(1, 10**9), expr) if sym == g.L else expr)
    W1 = g.net.layer(1).W
    assert ctx.check(Grad(g.L, W1), sp.ZeroMatrix(*W1.shape)).verdict == "refuted"


def test_loss_gradients_are_proved_for_free_outputs():
    n = sp.Symbol("n", integer=True, positive=True)
    for name in losses.names():
        loss = losses.get(name)
        y, t, L = sp.MatrixSymbol("y", 1, n), sp.MatrixSymbol("t", 1, n), sp.MatrixSymbol("L", 1, 1)
        ctx = Context()
        ctx.define(L, loss(y, t))
        assert ctx.check(Grad(L, y), loss.gradient(y, t)).verdict == "proved", name
        assert ctx.check(Grad(L, y), sp.MatMul(2, loss.gradient(y, t))).verdict != "proved", name


def test_unknown_loss_and_bad_arguments():
    with pytest.raises(SpecError, match="unknown loss 'huber'; known: sse, mse, xent, bce, hinge"):
        gradients(Network.dense([2, 2]), "huber")
    with pytest.raises(SpecError):
        gradients("not a network")
    assert losses.get("cross_entropy") is losses.get("xent")
    g = gradients(Network.dense([2, 2]), "sse")
    with pytest.raises(SymnetError, match="missing t"):
        g.function()(x=np.zeros((1, 2)), W1=np.zeros((2, 2)), b1=np.zeros((1, 2)))


# ---------------------------------------------------------------------------
# The command line


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_text(capsys):
    code, out, err = run(capsys, "grad", "--layers", "2,3,1", "--activation", "tanh")
    assert code == 0 and err == ""
    assert "dL/dW1 = x^T delta1" in out and "delta1 = (delta2 W2^T) ⊙ tanh'(z1)" in out
    assert "All 8 steps proved" in out
    assert "At the random point" not in out


def test_cli_json_at_a_seed(capsys):
    code, out, _ = run(capsys, "grad", "--layers", "2,3,2", "--activations", "tanh,sigmoid",
                       "--loss", "xent", "--format", "json", "--at", "7")
    assert code == 0
    data = json.loads(out)
    assert data["loss"] == "xent" and data["verdict"] == "proved"
    assert data["gradients"] == {"W1": "x.T*delta1", "b1": "delta1", "W2": "h1.T*delta2", "b2": "delta2"}
    assert data["derivation"]["verdict"] == "proved"
    assert set(data["point"]) == {"x", "t", "W1", "b1", "W2", "b2"}
    assert np.shape(data["point"]["W1"]) == (2, 3) and np.shape(data["values"]["W2"]) == (3, 2)
    assert data["check"]["ok"] is True and data["check"]["kinks"] == 0
    assert data["check"]["max_abs_error"] < 1e-8
    # the values are the gradients at the printed point (recomputed independently)
    point = {k: np.array(v) for k, v in data["point"].items()}
    ref = reference_gradients(point, ["tanh", "sigmoid"], "xent")
    for name, want in ref.items():
        assert relative_error(np.array(data["values"][name]), want) < 1e-8
    assert abs(data["loss_value"] - reference_forward(point, ["tanh", "sigmoid"], "xent")) < 1e-12
    # reproducible
    assert run(capsys, "grad", "--layers", "2,3,2", "--activations", "tanh,sigmoid",
               "--loss", "xent", "--format", "json", "--at", "7")[1] == out


def test_cli_latex_markdown_and_file(capsys, tmp_path):
    code, out, _ = run(capsys, "grad", "--layers", "2,2,2", "--activation", "tanh", "--format", "latex", "--at", "1")
    assert code == 0
    assert r"\frac{\partial L}{\partial \mathbf{W}_{1}} &= \mathbf{x}^{\top} \boldsymbol{\delta}_{1}" in out
    assert r"\tanh'" in out and r"\begin{bmatrix}" in out
    target = tmp_path / "g.md"
    code, out, _ = run(capsys, "grad", "--layers", "2,2", "--format", "markdown", "--loss", "mse", "-o", str(target))
    assert code == 0 and out == ""
    assert "### Gradients" in target.read_text()


def test_cli_exit_1_when_the_derivative_is_wrong(capsys, monkeypatch):
    import symnet.networks.backprop as backprop

    real = backprop.gradients
    wrong = lambda act: sp.Lambda(Z, 1 - sp.tanh(Z))  # noqa: E731
    monkeypatch.setattr(backprop, "gradients", lambda net, loss: real(net, loss, derivative=wrong))
    code, out, _ = run(capsys, "grad", "--layers", "2,2,1", "--activation", "tanh", "--format", "json", "--at", "0")
    data = json.loads(out)
    assert code == 1
    assert data["derivation"]["verdict"] == "refuted"
    assert data["check"]["ok"] is False and data["check"]["failures"]


@pytest.mark.parametrize("argv, message", [
    (["--layers", "2,2", "--loss", "huber"], "unknown loss"),
    (["--layers", "2"], "at least two"),
    (["--layers", "n,2", "--at", "0"], "integer widths"),
    (["--layers", "2,2", "--activation", "nosuch"], "unknown activation"),
    (["--layers", "2,2", "--at", "0", "--batch", "0"], "batch"),
])
def test_cli_bad_input_exits_2(capsys, argv, message):
    code, out, err = run(capsys, "grad", *argv)
    assert code == 2 and out == ""
    assert err.startswith("symnet: error:") and message in err and "Traceback" not in err


def test_docs_examples_run(capsys):
    """Every Python block of docs/backprop.md runs, in order, in one namespace."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "backprop.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 4  # the 4th: comparing with PyTorch at kinks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/backprop.md", "exec"), namespace)  # the docs' own examples
    assert namespace["report"].ok is False and namespace["wrong"].derivation.verdict == "refuted"
    out = capsys.readouterr().out
    assert "x^T delta1\n" in out and "\nproved\nrefuted\n" in out
