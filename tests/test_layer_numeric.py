"""Batched forward and backward passes of layer networks (symnet.networks.layer_numeric).

Two independent references: PyTorch's functional ops and autograd (float64, skipped without
torch), and central finite differences in float64 (always run).  Every layer alone, then
seeded random stacks of them (random shapes, strides, paddings, dilations, channels).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from symnet.errors import ShapeError, SpecError
from symnet.networks import layer_numeric as ln
from symnet.networks.layers import (
    Activation,
    Attention,
    AvgPool1d,
    AvgPool2d,
    BatchNorm,
    Conv1d,
    Conv2d,
    ConvTranspose1d,
    Dropout,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool1d,
    MaxPool2d,
    Reshape,
    Residual,
    Sequential,
)

try:
    import torch
except ImportError:  # the PyTorch comparisons skip; the finite-difference checks still run
    torch = None
HAVE_TORCH = torch is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch not installed (pip install 'symnet[torch]')")

# ---- a PyTorch reference built from torch.nn.functional, layer by layer ------------------

TORCH_ACTIVATIONS = {
    "identity": lambda z, F, torch: z,
    "relu": lambda z, F, torch: F.relu(z),
    "tanh": lambda z, F, torch: torch.tanh(z),
    "sigmoid": lambda z, F, torch: torch.sigmoid(z),
    "softplus": lambda z, F, torch: F.softplus(z, threshold=1000.0),
    "gelu": lambda z, F, torch: F.gelu(z),
    "silu": lambda z, F, torch: F.silu(z),
    "elu": lambda z, F, torch: F.elu(z),
    "elu(alpha=0.5)": lambda z, F, torch: F.elu(z, alpha=0.5),
    "leaky_relu": lambda z, F, torch: F.leaky_relu(z),
    "leaky_relu(alpha=0.2)": lambda z, F, torch: F.leaky_relu(z, 0.2),
    "softsign": lambda z, F, torch: F.softsign(z),
    "hard_tanh": lambda z, F, torch: F.hardtanh(z),
    "arctan": lambda z, F, torch: torch.atan(z),
    "sin": lambda z, F, torch: torch.sin(z),
    "gaussian": lambda z, F, torch: torch.exp(-z * z),
}


def torch_forward(layers, shapes, x, p, prefix=""):
    """The network in PyTorch functional form, parameters p (name -> tensor)."""
    import torch
    import torch.nn.functional as F

    for i, layer in enumerate(layers, 1):
        ix = f"{prefix}{i}"

        def get(stem, ix=ix):
            return p.get(f"{stem}{ix}")

        if isinstance(layer, Residual):
            inner = [shapes[i - 1]]
            for block_layer in layer.block:
                inner.append(block_layer.output_shape(inner[-1]))
            x = x + torch_forward(layer.block, inner, x, p, f"{ix}_")
        elif isinstance(layer, Linear):
            x = x @ get("W") + (get("b") if layer.bias else 0)
        elif isinstance(layer, Conv1d):
            x = F.conv1d(x, get("K"), get("b"), layer.stride, layer.padding, layer.dilation)
        elif isinstance(layer, Conv2d):
            x = F.conv2d(x, get("K"), get("b"), layer.stride, layer.padding, layer.dilation)
        elif isinstance(layer, ConvTranspose1d):
            x = F.conv_transpose1d(x, get("K"), get("b"), layer.stride, layer.padding)
        elif isinstance(layer, AvgPool1d):
            x = F.avg_pool1d(x, layer.k, layer.stride)
        elif isinstance(layer, AvgPool2d):
            x = F.avg_pool2d(x, layer.k, layer.stride)
        elif isinstance(layer, MaxPool1d):
            x = F.max_pool1d(x, layer.k, layer.stride)
        elif isinstance(layer, MaxPool2d):
            x = F.max_pool2d(x, layer.k, layer.stride)
        elif isinstance(layer, BatchNorm):
            if layer.training:
                x = F.batch_norm(x, None, None, get("gamma"), get("beta"), True, 0.0, layer.eps)
            else:  # written out, so that mu and var get gradients too
                view = (1, -1) + (1,) * (x.dim() - 2)
                x = ((x - get("mu").reshape(view)) / torch.sqrt(get("var").reshape(view) + layer.eps)
                     * get("gamma").reshape(view) + get("beta").reshape(view))
        elif isinstance(layer, LayerNorm):
            x = F.layer_norm(x, (x.shape[-1],), get("gamma"), get("beta"), layer.eps)
        elif isinstance(layer, Attention):
            x = F.scaled_dot_product_attention(x @ get("WQ"), x @ get("WK"), x @ get("WV"))
        elif isinstance(layer, Embedding):
            x = F.embedding(x, get("E"))
        elif isinstance(layer, Activation):
            x = TORCH_ACTIVATIONS[layer.name](x, F, torch)
        elif isinstance(layer, Dropout):
            x = F.dropout(x, layer.p, training=False)
        elif isinstance(layer, Flatten):
            x = x.flatten(1)
        elif isinstance(layer, Reshape):
            x = x.reshape(x.shape[0], *layer.shape)
        else:  # pragma: no cover
            raise AssertionError(layer)
    return x


def make_input(net, batch, rng):
    if isinstance(net.layers[0], Embedding):
        return rng.integers(0, net.layers[0].vocabulary, size=(batch, *net.input_shape))
    return rng.normal(size=(batch, *net.input_shape))


def close(a, b, what):
    scale = max(1.0, float(np.max(np.abs(b))) if np.size(b) else 1.0)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10 * scale, err_msg=what)


def check_against_torch(net, seed=0, batch=3):
    import torch

    rng = np.random.default_rng(seed)
    weights = net.random_weights(seed)
    x = make_input(net, batch, rng)
    y, cache = ln.forward_with_cache(net, x, weights)
    dy = rng.normal(size=y.shape)
    dx, grads = ln.backward(net, x, dy, weights, cache=cache)

    p = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in weights.items()}
    xt = torch.tensor(x) if isinstance(net.layers[0], Embedding) else torch.tensor(x, requires_grad=True)
    yt = torch_forward(net.layers, net.shapes(), xt, p)
    close(y, yt.detach().numpy(), f"{net.spec()}: forward")
    (yt * torch.tensor(dy)).sum().backward()
    if xt.requires_grad:
        close(dx, xt.grad.numpy(), f"{net.spec()}: dx")
    else:
        assert dx is None
    for name, tensor in p.items():
        got = tensor.grad.numpy() if tensor.grad is not None else np.zeros(tensor.shape)
        close(grads[name], got, f"{net.spec()}: d{name}")


# ---- finite differences (no torch) ------------------------------------------------------


def check_finite_differences(net, seed=0, batch=2, h=1e-6):
    """<grad, v> against the central difference of L = sum(y * dy) along a random v, for the
    input and for each parameter separately."""
    rng = np.random.default_rng(seed)
    weights = net.random_weights(seed)
    x = make_input(net, batch, rng)
    y = ln.forward(net, x, weights)
    dy = rng.normal(size=y.shape)
    dx, grads = ln.backward(net, x, dy, weights)

    def loss(xx, ww):
        return float(np.sum(ln.forward(net, xx, ww) * dy))

    def check(direction_dot, shift_x, shift_w, what):
        numeric = (loss(*shift(+h, shift_x, shift_w)) - loss(*shift(-h, shift_x, shift_w))) / (2 * h)
        assert abs(numeric - direction_dot) <= 1e-6 * max(1.0, abs(direction_dot)), \
            f"{net.spec()}: {what}: finite difference {numeric}, backprop {direction_dot}"

    def shift(eps, vx, vw):
        xx = x if vx is None else x + eps * vx
        ww = dict(weights)
        for name, v in vw.items():
            ww[name] = weights[name] + eps * v
        return xx, ww

    if dx is not None:
        v = rng.normal(size=x.shape)
        check(float(np.sum(dx * v)), v, {}, "dx")
    for name, g in grads.items():
        if name.startswith("var"):  # keep variances positive
            v = rng.uniform(0.0, 0.1, size=g.shape)
        else:
            v = rng.normal(size=g.shape)
        check(float(np.sum(g * v)), None, {name: v}, f"d{name}")


# ---- every layer alone ------------------------------------------------------------------

SINGLE = [
    ([Linear(4)], (5,)),
    ([Linear(3, bias=False)], (2, 5)),
    ([Conv1d(3)], (1, 9)),
    ([Conv1d(3, out_channels=4, stride=2, padding=1, dilation=2)], (3, 11)),
    ([Conv1d(2, out_channels=2, stride=3, bias=False)], (2, 10)),
    ([Conv2d(3, out_channels=2)], (1, 6, 7)),
    ([Conv2d((2, 3), out_channels=3, stride=(2, 1), padding=(1, 2), dilation=(2, 1))], (2, 7, 6)),
    ([ConvTranspose1d(3)], (1, 5)),
    ([ConvTranspose1d(4, out_channels=3, stride=2, padding=1)], (2, 6)),
    ([ConvTranspose1d(2, out_channels=2, stride=3, bias=False)], (3, 4)),
    ([AvgPool1d(2)], (2, 7)),
    ([AvgPool1d(3, stride=2)], (2, 8)),
    ([AvgPool2d(2)], (2, 5, 6)),
    ([AvgPool2d((2, 3), stride=(1, 2))], (1, 5, 7)),
    ([MaxPool1d(2)], (2, 7)),
    ([MaxPool1d(3, stride=1)], (2, 8)),
    ([MaxPool2d(2)], (2, 5, 6)),
    ([MaxPool2d((3, 2), stride=(2, 1))], (1, 7, 5)),
    ([BatchNorm()], (4,)),
    ([BatchNorm()], (3, 5)),
    ([BatchNorm(eps=1e-3)], (2, 3, 4)),
    ([BatchNorm(training=True)], (4,)),
    ([BatchNorm(training=True)], (3, 5)),
    ([BatchNorm(training=True, eps=0.1)], (2, 3, 4)),
    ([LayerNorm()], (6,)),
    ([LayerNorm(eps=1e-3)], (3, 5)),
    ([Attention()], (4, 3)),
    ([Attention(d_k=2)], (5, 4)),
    ([Embedding(7, 3)], (5,)),
    ([Dropout(0.3)], (2, 3)),
    ([Flatten()], (2, 3, 4)),
    ([Reshape((4, 6))], (2, 3, 4)),
    ([Residual([Linear(4)])], (4,)),
    ([Residual([Conv1d(3, out_channels=2, padding=1), Activation("tanh")])], (2, 6)),
] + [([Activation(name)], (2, 5)) for name in TORCH_ACTIVATIONS]


def _id(case):
    layers, shape = case
    return " > ".join(layer.spec() for layer in layers) + f" @ {shape}"


@needs_torch
@pytest.mark.parametrize("case", SINGLE, ids=[_id(c) for c in SINGLE])
def test_each_layer_agrees_with_torch(case):
    layers, shape = case
    check_against_torch(Sequential(layers, shape))


@pytest.mark.parametrize("case", SINGLE, ids=[_id(c) for c in SINGLE])
def test_each_layer_agrees_with_finite_differences(case):
    layers, shape = case
    if any(isinstance(layer, Activation) and layer.name in ("relu", "leaky_relu", "hard_tanh")
           for layer in layers):
        check_finite_differences(Sequential(layers, shape), seed=3)
    else:
        check_finite_differences(Sequential(layers, shape))


# ---- seeded random stacks ---------------------------------------------------------------

SMOOTH = ["tanh", "sigmoid", "softplus", "gelu", "silu", "elu", "sin"]
ALL_ACTS = SMOOTH + ["relu", "leaky_relu(alpha=0.2)", "identity"]


def _try(layers, shape, layer):
    try:
        out = Sequential([*layers, layer], shape).output_shape
    except (ShapeError, SpecError):
        return None
    return out if math.prod(out) <= 400 else None


def _candidates_signal(rng, shape, acts):
    c, n = shape
    k = int(rng.integers(1, 5))
    d = int(rng.integers(1, 3))
    odd = int(rng.choice([1, 3]))
    return [
        Conv1d(k, out_channels=int(rng.integers(1, 4)), stride=int(rng.integers(1, 3)),
               padding=int(rng.integers(0, 3)), dilation=d, bias=bool(rng.integers(0, 2))),
        ConvTranspose1d(k, out_channels=int(rng.integers(1, 4)), stride=int(rng.integers(1, 3)),
                        padding=int(rng.integers(0, (k + 1) // 2))),
        AvgPool1d(int(rng.integers(1, 4)), stride=int(rng.integers(1, 3))),
        MaxPool1d(int(rng.integers(2, 4)), stride=int(rng.integers(1, 3))),
        BatchNorm(training=bool(rng.integers(0, 2))),
        LayerNorm(),
        Activation(str(rng.choice(acts))),
        Dropout(),
        Residual([Conv1d(odd, out_channels=c, padding=(odd - 1) // 2 * d, dilation=d),
                  Activation(str(rng.choice(acts)))]),
    ]


def _candidates_image(rng, shape, acts):
    def pair(lo, hi):
        return (int(rng.integers(lo, hi)), int(rng.integers(lo, hi)))

    return [
        Conv2d(pair(1, 4), out_channels=int(rng.integers(1, 4)), stride=pair(1, 3),
               padding=pair(0, 2), dilation=pair(1, 3), bias=bool(rng.integers(0, 2))),
        AvgPool2d(pair(1, 3), stride=pair(1, 3)),
        MaxPool2d(pair(2, 3), stride=pair(1, 3)),
        BatchNorm(training=bool(rng.integers(0, 2))),
        Activation(str(rng.choice(acts))),
        Residual([Conv2d(3, out_channels=shape[0], padding=1), Activation(str(rng.choice(acts)))]),
    ]


def _candidates_vector(rng, shape, acts):
    n = shape[-1]
    return [
        Linear(int(rng.integers(1, 6)), bias=bool(rng.integers(0, 2))),
        BatchNorm(training=bool(rng.integers(0, 2))),
        LayerNorm(),
        Activation(str(rng.choice(acts))),
        Residual([Linear(n), Activation(str(rng.choice(acts))), Linear(n)]),
    ]


def _candidates_sequence(rng, shape, acts):
    t, d = shape
    return [
        Attention(d_k=int(rng.integers(1, 4))),
        LayerNorm(),
        Linear(int(rng.integers(2, 5))),
        Activation(str(rng.choice(acts))),
        Residual([Attention()]),
        Residual([LayerNorm(), Linear(d), Activation(str(rng.choice(acts)))]),
    ]


def random_stack(seed, acts=ALL_ACTS):
    rng = np.random.default_rng(seed)
    domain = ["signal", "image", "vector", "sequence"][seed % 4]
    if domain == "signal":
        shape, pick = (int(rng.integers(1, 4)), int(rng.integers(6, 14))), _candidates_signal
        layers = []
    elif domain == "image":
        shape, pick = (int(rng.integers(1, 3)), int(rng.integers(5, 9)), int(rng.integers(5, 9))), _candidates_image
        layers = []
    elif domain == "vector":
        shape, pick = (int(rng.integers(2, 6)),), _candidates_vector
        layers = []
    else:
        t, d = int(rng.integers(2, 5)), int(rng.integers(2, 5))
        if rng.integers(0, 2):
            shape, layers = (t,), [Embedding(int(rng.integers(3, 8)), d)]
        else:
            shape, layers = (t, d), []
        pick = _candidates_sequence
    current = Sequential(layers, shape).output_shape if layers else shape
    for _ in range(int(rng.integers(2, 6))):
        options = pick(rng, current, acts)
        layer = options[int(rng.integers(0, len(options)))]
        out = _try(layers, shape, layer)
        if out is not None:
            layers.append(layer)
            current = out
    if len(current) > 1:
        layers.append(Flatten())
    layers.append(Linear(int(rng.integers(1, 4))))
    return Sequential(layers, shape)


@needs_torch
@pytest.mark.parametrize("seed", range(40))
def test_random_stacks_agree_with_torch(seed):
    check_against_torch(random_stack(seed), seed=seed, batch=int(1 + seed % 3) + 1)


@given(st.integers(0, 10_000))
def test_random_smooth_stacks_agree_with_finite_differences(seed):
    check_finite_differences(random_stack(seed, acts=SMOOTH), seed=seed)


# ---- the convenience API ----------------------------------------------------------------


def test_forward_uses_attached_weights_and_compile_binds_them():
    net = Sequential([Conv1d(3, out_channels=2), Activation("tanh"), Flatten(), Linear(2)], (1, 8))
    weights = net.random_weights(1)
    attached = net.with_weights(weights)
    x = np.random.default_rng(0).normal(size=(4, 1, 8))
    y = ln.forward(attached, x)
    assert y.shape == (4, 2)
    np.testing.assert_array_equal(y, ln.forward(net, x, weights))
    f = ln.compile(attached)
    weights["K1"][...] = 0.0  # compile copied the weights
    np.testing.assert_array_equal(f(x), y)
    assert ln.function is ln.compile


def test_no_weights_is_a_clear_error():
    net = Sequential([Linear(2)], (3,))
    with pytest.raises(SpecError, match="no weights"):
        ln.forward(net, np.zeros((1, 3)))
    with pytest.raises(SpecError, match="no weights"):
        ln.compile(net)


def test_wrong_input_shape_names_the_expected_layout():
    net = Sequential([Conv1d(2)], (1, 5)).with_weights(Sequential([Conv1d(2)], (1, 5)).random_weights())
    with pytest.raises(ShapeError, match=r"\(batch, 1, 5\)"):
        ln.forward(net, np.zeros((1, 5)))


def test_float32_in_float32_out():
    net = Sequential([Conv2d(2, out_channels=2), BatchNorm(), Activation("gelu"), Flatten(), Linear(3)],
                     (1, 4, 4))
    weights = net.random_weights(2)
    x = np.random.default_rng(2).normal(size=(2, 1, 4, 4))
    y32 = ln.forward(net, x.astype(np.float32), weights)
    y64 = ln.forward(net, x, weights)
    assert y32.dtype == np.float32 and y64.dtype == np.float64
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    dx, grads = ln.backward(net, x.astype(np.float32), np.ones_like(y32), weights)
    assert dx.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())


def test_max_pool_ties_route_to_the_first_index():
    net = Sequential([MaxPool1d(3)], (1, 6)).with_weights({})
    x = np.array([[[1.0, 1.0, 0.0, 2.0, 5.0, 5.0]]])
    dx, _ = ln.backward(net, x, np.ones((1, 1, 2)))
    np.testing.assert_array_equal(dx, [[[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]]])


@needs_torch
def test_max_pool_ties_match_torch():
    import torch

    x = np.array([[[0.0, 0.0, 0.0, 1.0], [3.0, 3.0, 3.0, 3.0]]])
    for layer, ref in [(MaxPool1d(2, stride=1), lambda t: torch.nn.functional.max_pool1d(t, 2, 1))]:
        net = Sequential([layer], (2, 4)).with_weights({})
        dx, _ = ln.backward(net, x, np.ones((1, 2, 3)))
        xt = torch.tensor(x, requires_grad=True)
        ref(xt).sum().backward()
        np.testing.assert_array_equal(dx, xt.grad.numpy())
    x2 = np.zeros((1, 1, 4, 4))
    net = Sequential([MaxPool2d(2)], (1, 4, 4)).with_weights({})
    dx, _ = ln.backward(net, x2, np.ones((1, 1, 2, 2)))
    xt = torch.tensor(x2, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 2).sum().backward()
    np.testing.assert_array_equal(dx, xt.grad.numpy())


@needs_torch
@pytest.mark.parametrize("loss", ["sse", "mse"])
def test_loss_gradients_agree_with_torch(loss):
    import torch

    net = Sequential([Linear(4), Activation("tanh"), BatchNorm(training=True), Linear(2)], (3,))
    weights = net.random_weights(5)
    rng = np.random.default_rng(5)
    x, t = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    value, grads = ln.loss_gradients(net, x, t, loss=loss, weights=weights)
    p = {n: torch.tensor(v, requires_grad=True) for n, v in weights.items()}
    y = torch_forward(net.layers, net.shapes(), torch.tensor(x), p)
    ref = 0.5 * ((y - torch.tensor(t)) ** 2).sum() if loss == "sse" else torch.nn.functional.mse_loss(y, torch.tensor(t))
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    for name, tensor in p.items():
        close(grads[name], tensor.grad.numpy(), name)


def test_loss_must_be_known():
    net = Sequential([Linear(1)], (2,))
    with pytest.raises(SpecError, match="sse"):
        ln.loss_gradients(net, np.zeros((1, 2)), np.zeros((1, 1)), loss="hinge", weights=net.random_weights())


def test_embedding_rejects_ids_out_of_range():
    net = Sequential([Embedding(4, 2)], (3,))
    with pytest.raises(SpecError, match="0..3"):
        ln.forward(net, np.array([[0, 1, 4]]), net.random_weights())


def test_activation_parameters_and_unknown_names():
    net = Sequential([Activation("leaky_relu(alpha=0.5)")], (2,)).with_weights({})
    np.testing.assert_allclose(ln.forward(net, np.array([[-2.0, 3.0]])), [[-1.0, 3.0]])
    with pytest.raises(SpecError, match="no numeric layer pass"):
        ln.forward(Sequential([Activation("nonesuch")], (2,)).with_weights({}), np.zeros((1, 2)))


def test_layer_numeric_does_not_import_sympy():
    """The numeric reference is independent of the algebra: no SymPy import in its source.
    (symnet.errors itself reaches SymPy through the kernel package; that is not this module.)"""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(ln))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] == "sympy" for name in imported)
    assert not any(name.startswith(("symnet.kernel", "symnet.networks.activations")) for name in imported)
