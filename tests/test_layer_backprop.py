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
    BatchNorm,
    Conv1d,
    Conv2d,
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
    assert d.ok and any("relu" in n and "numerically" in n for n in d.notes)
