"""Each layer's backprop rule, checked by the kernel: proved for random geometries, and
one-slip variants of the rules (kernel not flipped, taps shifted) refuted.

The numeric passes (``layer_numeric.backward``) are compared with PyTorch in
tests/test_layer_numeric.py; here the rules themselves are the subject, and the
proved input-gradient matrix is also compared with the numeric backward pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from symnet.kernel import Context
from symnet.kernel import terms as T
from symnet.networks import layer_backprop as LB
from symnet.networks import layer_numeric as LN
from symnet.networks.layer_algebra import conv_matrix, conv_taps, entry_name, tap_name
from symnet.networks.layers import (
    Activation,
    AvgPool1d,
    AvgPool2d,
    BatchNorm,
    Conv1d,
    Conv2d,
    ConvTranspose1d,
    Flatten,
    Linear,
    Residual,
    Sequential,
)

rng = np.random.default_rng(20261201)
CONVS = []
for _ in range(8):
    k = int(rng.integers(1, 4))
    CONVS.append((Conv1d(k=k, out_channels=int(rng.integers(1, 3)), stride=int(rng.integers(1, 3)),
                         padding=int(rng.integers(0, 2)), dilation=int(rng.integers(1, 3))),
                  (int(rng.integers(1, 3)), int(rng.integers(6, 9)))))
CONVS += [(Conv2d(k=2, out_channels=2), (1, 4, 4)), (Conv2d(k=(2, 3), stride=2, padding=1), (2, 4, 5))]


@pytest.mark.parametrize("layer,shape", CONVS, ids=lambda v: str(v))
def test_convolution_rules_are_proved(layer, shape):
    net = Sequential([layer, Flatten(), Linear(2)], shape)
    d = LB.derive_backprop(net)
    assert d.ok, d.to_text()


@pytest.mark.parametrize("layer,shape", CONVS[:6], ids=lambda v: str(v))
def test_an_unflipped_kernel_is_refuted(layer, shape):
    if layer.k == 1:
        pytest.skip("a one-tap kernel is its own flip")
    out = layer.output_shape(shape)
    n_in, n_out = int(np.prod(shape)), int(np.prod(out))
    ctx = Context()
    Tl, h, delta = T.matrix("T1", n_in, n_out), T.matrix("h0", 1, n_in), T.matrix("delta1", 1, n_out)
    ctx.define(Tl, conv_matrix(layer, shape, "K1"))
    # the slip: delta correlated with the kernel as it is (not flipped), i.e. T itself reindexed
    flipped = LB._flipped_correlation(layer, shape, "K1")
    names = {tap_name("K1", j): tap_name("K1", layer.k - 1 - j) for j in range(layer.k)}
    names.update({tap_name("K1", o, c, j): tap_name("K1", o, c, layer.k - 1 - j) for o in range(layer.out_channels)
                  for c in range(shape[0]) for j in range(layer.k)})
    unflipped = T.substitute(flipped, {T.scalar(a): T.scalar(b) for a, b in names.items()})
    if unflipped == flipped:
        pytest.skip("a symmetric tap pattern")
    verdict = ctx.check(T.grad(T.mul(h, Tl, T.transpose(delta)), h), T.mul(delta, unflipped)).verdict
    assert verdict == "refuted"


def test_a_shifted_kernel_gradient_is_refuted():
    layer, shape = Conv1d(k=3), (1, 7)
    net = Sequential([layer], shape)
    d = LB.derive_backprop(net)
    assert d.ok
    ctx = Context()
    taps = conv_taps(layer, shape)
    d, x = (lambda i: T.scalar(entry_name("delta", i))), (lambda i: T.scalar(entry_name("x", i)))
    written = T.add(*[T.mul(T.scalar(tap_name("K1", j)), T.add(*[T.mul(d(p), x(q)) for p, q in pairs]))
                      for (_, _, j), pairs in taps.items()])
    shifted = T.add(*[T.mul(d(p), x(q + 1)) for p, q in taps[(0, 0, 0)]])
    assert ctx.check(T.diff(written, T.scalar(tap_name("K1", 0))), shifted).verdict == "refuted"


def test_the_proved_input_gradient_is_the_numeric_backward_pass():
    layer, shape = Conv1d(k=3, out_channels=2, stride=2, padding=1), (2, 7)
    net = Sequential([layer], shape)
    weights = net.random_weights(1)
    x = rng.normal(size=(1, *shape))
    dy = rng.normal(size=(1, *layer.output_shape(shape)))
    dx, _ = LN.backward(net, x, dy, weights)
    F = LB._flipped_correlation(layer, shape, "K1")
    K = weights["K1"]
    values = {}
    for o in range(K.shape[0]):
        for c in range(K.shape[1]):
            for j in range(K.shape[2]):
                values[tap_name("K1", o, c, j)] = K[o, c, j]
    Fn = np.array([[0.0 if e.op == "num" else values[e.value] for e in F.args[i * F.cols:(i + 1) * F.cols]]
                   for i in range(F.rows)])
    assert np.allclose(dy.reshape(1, -1) @ Fn, dx.reshape(1, -1), rtol=1e-12, atol=1e-12)


def test_other_layers_rules_are_proved_and_the_rest_named():
    net = Sequential([Linear(4), BatchNorm(), Activation("tanh"), Residual([Linear(4)]), Linear(3)], (3,))
    d = LB.derive_backprop(net)
    assert d.ok and len(d.steps) >= 9, d.to_text()
    d = LB.derive_backprop(Sequential([Conv1d(k=2), AvgPool1d(k=2), Activation("relu")], (1, 8)))
    assert d.ok and not any("numerically" in n for n in d.notes), d.notes  # relu: delta (.) relu'(z)


# ---------------------------------------------------------------------------
# Batch norm with batch statistics, layer norm, attention through the softmax, max
# pooling, embedding: proved for any sizes, one-slip variants refuted, and the proved
# rule evaluated at numbers equal to the numeric backward pass (which the tests of
# layer_numeric compare with PyTorch).

from symnet.kernel.judge import Judge  # noqa: E402
from symnet.networks.layers import Attention, Embedding, LayerNorm, MaxPool1d  # noqa: E402


@pytest.mark.parametrize("net", [
    Sequential([BatchNorm(training=True), Linear(2)], (3,)),
    Sequential([Conv1d(k=2), BatchNorm(training=True), Flatten(), Linear(1)], (1, 5)),
    Sequential([LayerNorm(), Linear(2)], (4,)),
    Sequential([Attention()], (3, 2)),
    Sequential([Attention(d_k=3)], (2, 4)),
    Sequential([MaxPool1d(k=2), Flatten(), Linear(1)], (1, 4)),
    Sequential([Embedding(5, 2), Flatten(), Linear(1)], (3,)),
], ids=lambda n: n.spec())
def test_the_nonaffine_layers_rules_are_proved(net):
    d = LB.derive_backprop(net)
    assert d.ok, d.to_text()
    assert not any("numerically" in n for n in d.notes), d.notes


def _check(ctx, lhs, rhs):
    return ctx.check(lhs, rhs).verdict


def test_one_slip_normalisation_rules_are_refuted():
    ctx = Context()
    LB._normalisation(ctx, 1, True, "batch norm")
    X, delta, gamma = T.matrix("X1", "m", "c"), T.matrix("delta1", "m", "c"), T.matrix("gamma1", 1, "c")
    s = T.matrix("s1", 1, "c")
    o = T.ones("m", 1)
    loss = T.grad(T.scalar("L1"), X)
    g = T.hadamard(delta, T.mul(o, gamma))
    # as if the statistics were constants (inference's rule used in training)
    assert _check(ctx, loss, T.hadamard(g, T.mul(o, s))) == "refuted"
    # the variance path forgotten
    inv = T.div(T.num(1), T.dimension("m"))
    dbeta = T.mul(T.transpose(o), delta)
    no_var = T.mul(inv, T.hadamard(T.mul(o, s), T.sub(T.mul(T.dimension("m"), g), T.mul(o, T.hadamard(dbeta, gamma)))))
    assert _check(ctx, loss, no_var) == "refuted"
    # dgamma without xhat
    assert _check(ctx, T.grad(T.scalar("L1"), gamma), T.mul(T.transpose(o), delta)) == "refuted"
    ctx2 = Context()
    LB._normalisation(ctx2, 1, False, "layer norm")
    X2, d2, g2 = T.matrix("X1", "m", "n"), T.matrix("delta1", "m", "n"), T.matrix("gamma1", 1, "n")
    s2 = T.matrix("s1", "m", 1)
    wrong = T.hadamard(T.hadamard(d2, T.mul(T.ones("m", 1), g2)), T.mul(s2, T.transpose(T.ones("n", 1))))
    assert _check(ctx2, T.grad(T.scalar("L1"), X2), wrong) == "refuted"


def test_attention_without_the_softmax_correction_is_refuted():
    layer, shape = Attention(), (3, 2)
    ctx = Context()
    LB._attention(ctx, layer, shape, 1)
    P, dP, K, X = T.matrix("P1", 3, 3), T.matrix("dP1", 3, 3), T.matrix("K1", 3, 2), T.matrix("X1", 3, 2)
    scale = T.div(T.num(1), T.prim("sqrt", T.num(2)))
    naive = T.mul(T.transpose(X), T.mul(scale, T.hadamard(P, dP), K))  # P (.) dP: no row correction
    assert _check(ctx, T.grad(T.scalar("L1"), T.matrix("W_Q1", 2, 2)), naive) == "refuted"
    unscaled = T.mul(T.transpose(X), T.matrix("dS1", 3, 3), K)  # the 1/sqrt(d_k) forgotten
    assert _check(ctx, T.grad(T.scalar("L1"), T.matrix("W_Q1", 2, 2)), unscaled) == "refuted"


def test_max_pooling_routed_to_the_smaller_entry_is_refuted():
    ctx = Context()
    LB._maxpool(ctx, 1)
    a, b, d = T.scalar("a1"), T.scalar("b1"), T.scalar("delta1")
    wrong = T.mul(d, LB._above(T.sub(a, b)))
    assert _check(ctx, T.diff(T.mul(d, T.scalar("m1")), b), wrong) == "refuted"


def _values(**arrays):
    return {k: np.asarray(v, dtype=float) for k, v in arrays.items()}


def test_the_proved_batch_norm_and_layer_norm_rules_are_the_numeric_backward_pass():
    for layer, rows_axis in [(BatchNorm(training=True), True), (LayerNorm(), False)]:
        net = Sequential([layer], (3,))
        weights = net.random_weights(2)
        x = rng.normal(size=(4, 3))
        dy = rng.normal(size=(4, 3))
        dx, grads = LN.backward(net, x, dy, weights)
        ctx = Context()
        chains = LB._normalisation(ctx, 1, rows_axis, "norm")
        cols = "c" if rows_axis else "n"
        values = _values(X1=x, delta1=dy, gamma1=weights["gamma1"].reshape(1, 3),
                         beta1=weights["beta1"].reshape(1, 3))
        values[T.scalar("epsilon", positive=True).value] = np.asarray(layer.eps)  # a positive name
        judge = Judge(ctx.term_definitions)
        rule = chains[0].steps[-1].expr
        got = np.array(judge.evaluate(rule, values, {"m": 4, cols: 3}))
        assert np.allclose(got, dx, rtol=1e-10, atol=1e-12)
        got_gamma = np.array(judge.evaluate(chains[1].steps[-1].expr, values, {"m": 4, cols: 3}))
        assert np.allclose(got_gamma.ravel(), grads["gamma1"], rtol=1e-10, atol=1e-12)


def test_the_proved_attention_rules_are_the_numeric_backward_pass():
    layer, shape = Attention(), (3, 2)
    net = Sequential([layer], shape)
    weights = net.random_weights(3)
    x = rng.normal(size=(1, *shape))
    dy = rng.normal(size=(1, *shape))
    dx, grads = LN.backward(net, x, dy, weights)
    ctx = Context()
    chains = LB._attention(ctx, layer, shape, 1)
    values = _values(X1=x[0], delta1=dy[0], W_Q1=weights["WQ1"], W_K1=weights["WK1"], W_V1=weights["WV1"])
    judge = Judge(ctx.term_definitions)
    expected = {"W_V": grads["WV1"], "W_Q": grads["WQ1"], "W_K": grads["WK1"], "X": dx[0]}
    for chain, name in zip(chains, ["W_V", "W_Q", "W_K", "X"]):
        got = np.array(judge.evaluate(chain.steps[-1].expr, values))
        assert np.allclose(got, expected[name], rtol=1e-10, atol=1e-12), name


def _catalogue():
    from symnet.networks.activations import names

    return names()


@pytest.mark.parametrize("name", _catalogue())
def test_every_catalogue_activation_s_rule_is_proved(name):
    d = LB.derive_backprop(Sequential([Activation(name)], (3,)))
    assert d.ok, d.to_text()
    (chain,) = d.chains
    assert f"{name}'" in chain.steps[-1].reason


TRANSPOSED = [(ConvTranspose1d(k=int(k), out_channels=int(o), stride=int(s), padding=int(p)), (int(c), int(n)))
              for k, o, s, p, c, n in np.random.default_rng(5).integers([1, 1, 1, 0, 1, 2], [4, 3, 3, 2, 3, 5], (6, 6))
              if (int(n) - 1) * int(s) - 2 * int(p) + int(k) >= 1]


def _numbers(term, values):
    return np.array([[0.0 if e.op == "num" else values[e.value] for e in term.args[i * term.cols:(i + 1) * term.cols]]
                     for i in range(term.rows)])


@pytest.mark.parametrize("layer,shape", TRANSPOSED, ids=lambda v: str(v))
def test_the_transposed_convolution_s_input_gradient_is_a_convolution(layer, shape):
    ctx = Context()
    (chain,) = LB._convtranspose(ctx, layer, shape, 1)
    assert chain.verdict == "proved", [s.check.detail for s in chain.steps]
    # M is the layer's own linear map and delta C its numeric input gradient
    net = Sequential([ConvTranspose1d(k=layer.k, out_channels=layer.out_channels, stride=layer.stride,
                                      padding=layer.padding, bias=False)], shape)
    weights = net.random_weights(4)
    K = weights["K1"]
    one = K.shape[:2] == (1, 1)
    values = {tap_name("K1", *((j,) if one else (c, o, j))): K[c, o, j]
              for c in range(K.shape[0]) for o in range(K.shape[1]) for j in range(K.shape[2])}
    M = _numbers(ctx.term_definitions[next(s for s in ctx.term_definitions if s.value == "M1")], values)
    C = _numbers(ctx.term_definitions[next(s for s in ctx.term_definitions if s.value == "C1")], values)
    x = rng.normal(size=(1, *shape))
    assert np.allclose(x.reshape(1, -1) @ M, LN.forward(net, x, weights).reshape(1, -1), rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=(1, *layer.output_shape(shape)))
    dx, _ = LN.backward(net, x, dy, weights)
    assert np.allclose(dy.reshape(1, -1) @ C, dx.reshape(1, -1), rtol=1e-12, atol=1e-12)


def test_a_transposed_convolution_s_gradient_with_a_flipped_kernel_is_refuted():
    from symnet.networks.layer_algebra import conv_matrix as cm

    layer, shape = ConvTranspose1d(k=3, stride=2), (1, 3)
    ctx = Context()
    LB._convtranspose(ctx, layer, shape, 1)
    o_ch, m = layer.output_shape(shape)
    flipped = cm(Conv1d(k=3, stride=2), (o_ch, m), "K1", taps=lambda o, c, j: T.scalar(tap_name("K1", 2 - j)))
    h, delta = T.matrix("h0", 1, 3), T.matrix("delta1", 1, o_ch * m)
    M = next(s for s in ctx.term_definitions if s.value == "M1")
    lhs = T.grad(LB._local(delta, T.mul(h, M)), h)
    assert ctx.check(lhs, T.mul(delta, flipped)).verdict == "refuted"


@pytest.mark.parametrize("block,shape", [
    ([Linear(3), Activation("relu"), Linear(3)], (3,)),
    ([Linear(4), Activation("tanh"), Linear(2), Activation("sigmoid"), Linear(3)], (3,)),
    ([Activation("softplus")], (3,)),
    ([Conv1d(k=3, padding=1), Activation("relu"), Conv1d(k=3, padding=1)], (1, 5)),
    ([Conv1d(k=2, out_channels=2, padding=1), BatchNorm(), Activation("tanh"), Conv1d(k=2)], (1, 4)),
    ([Conv2d(k=3, padding=1), Activation("relu")], (1, 3, 3)),
], ids=lambda b: " > ".join(x.spec() for x in b) if isinstance(b, list) else str(b))
def test_a_residual_block_s_rule_is_proved_and_without_the_skip_refuted(block, shape):
    import sympy as sp

    from symnet.kernel import Grad

    ctx = Context()
    (chain,) = LB._residual_block(ctx, block, shape, 1)
    assert chain.verdict == "proved"
    rule = chain.steps[-1].expr
    n = int(np.prod(shape))
    without_skip = rule.args[1] if rule.args[0] == sp.MatrixSymbol("delta1", 1, n) else rule.args[0]
    assert ctx.check(chain.lhs, without_skip).verdict == "refuted"
    assert isinstance(chain.lhs, Grad)


@pytest.mark.parametrize("convention", ["column", "torch"])
@pytest.mark.parametrize("net", [
    Sequential([Linear(2), Activation("tanh"), Linear(1)], (3,)),
    Sequential([Conv1d(k=2), Flatten(), Linear(1)], (1, 4)),
    Sequential([BatchNorm(training=True), Linear(2)], (3,)),
    Sequential([Attention()], (3, 2)),
    Sequential([Residual([Linear(3), Activation("relu"), Linear(3)])], (3,)),
    Sequential([ConvTranspose1d(k=2)], (1, 3)),
], ids=lambda n: n.spec())
def test_layer_backprop_in_the_column_and_torch_conventions_is_re_proved(net, convention):
    d = LB.derive_backprop(net, convention)
    assert d.ok and f"({convention} convention)" in d.title, d.to_text()


def test_torch_convention_weight_gradients_have_the_weight_s_shape():
    from symnet.render.printing import text

    d = LB.derive_backprop(Sequential([Linear(2)], (3,)), "torch")
    first = d.chains[0]
    assert text(first.steps[-1].expr) == "delta1^T h0"  # (out, in), as weight.grad
    col = LB.derive_backprop(Sequential([Linear(2)], (3,)), "column")
    assert text(col.chains[2].steps[-1].expr) == "W1^T delta1"


@pytest.mark.parametrize("layer,shape", [(AvgPool1d(k=2), (1, 4)), (AvgPool1d(k=3, stride=1), (2, 5)),
                                         (AvgPool2d(k=2), (1, 4, 4)), (AvgPool2d(k=(2, 1), stride=(1, 2)), (2, 3, 4))],
                         ids=lambda v: str(v))
def test_the_proved_average_pooling_spread_is_the_numeric_backward_pass(layer, shape):
    ctx = Context()
    (chain,) = LB._avgpool(ctx, layer, shape, 1)
    assert chain.verdict == "proved"
    net = Sequential([layer], shape)
    dy = rng.normal(size=(1, *layer.output_shape(shape)))
    dx, _ = LN.backward(net, rng.normal(size=(1, *shape)), dy, {})
    values = {entry_name("delta", i): v for i, v in enumerate(dy.ravel())}
    judge = Judge(ctx.term_definitions)
    got = np.array(judge.evaluate(chain.steps[-1].expr, values))
    assert np.allclose(got, dx.reshape(1, -1), rtol=1e-12, atol=1e-12)
