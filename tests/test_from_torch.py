"""symnet.from_torch: PyTorch modules read through torch.fx as layer networks.

The imported network's forward and backward passes (symnet.networks.layer_numeric) agree with
the module's own forward and autograd, in float64; residual adds become residual blocks; an
unsupported operator is an error naming the fx node.
"""

from __future__ import annotations

import builtins
import copy

import numpy as np
import pytest

import symnet
from symnet.errors import SpecError
from symnet.networks import layer_numeric as ln
from symnet.networks.layers import (
    Activation,
    Attention,
    BatchNorm,
    Conv1d,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    Reshape,
    Residual,
    Sequential,
)
from symnet.networks.torch_import import from_torch


def test_without_torch_the_error_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("no torch here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(SpecError, match=r"from_torch needs PyTorch: pip install 'symnet\[torch\]'"):
        from_torch(object(), None)


def test_public_api_names_from_torch():
    assert "from_torch" in symnet.__all__
    assert symnet.from_torch is from_torch


try:
    import torch
except ImportError:  # the PyTorch comparisons skip; the finite-difference checks still run
    torch = None
HAVE_TORCH = torch is not None
TORCH_FREE = {"test_without_torch_the_error_says_how_to_install", "test_public_api_names_from_torch"}

if HAVE_TORCH:
    import torch.nn as nn
    import torch.nn.functional as F


@pytest.fixture(autouse=True)
def _float64_torch(request):
    """Skip without PyTorch; otherwise build modules in float64 (restoring the default after)."""
    if request.node.originalname in TORCH_FREE:
        yield
        return
    if not HAVE_TORCH:
        pytest.skip("PyTorch not installed (pip install 'symnet[torch]')")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def agree(module, example, dy_seed=0, check_input_grad=True):
    """Import the module and compare forward, dx and every parameter gradient with autograd.

    Every parameter and running statistic is first redrawn at random, so that no two are equal
    (the module's gradients are matched to symnet's names by value)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.running_mean is not None:
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    net = from_torch(module, example)
    x = example.detach().clone()
    if x.dtype.is_floating_point:
        x.requires_grad_(True)
    y = module(x)
    rng = np.random.default_rng(dy_seed)
    dy = rng.normal(size=tuple(y.shape))
    module.zero_grad()
    (y * torch.tensor(dy)).sum().backward()

    ours = ln.forward(net, example.detach().numpy())
    scale = max(1.0, float(np.max(np.abs(ours))))
    np.testing.assert_allclose(ours, y.detach().numpy(), rtol=1e-10, atol=1e-10 * scale)
    dx, grads = ln.backward(net, example.detach().numpy(), dy)
    if check_input_grad and x.requires_grad:
        np.testing.assert_allclose(dx, x.grad.numpy(), rtol=1e-9, atol=1e-10 * scale)
    expected = _torch_gradients(net, module)
    assert set(expected) == {n for n in net.weights if not n.startswith(("mu", "var"))}
    for name, want in expected.items():
        got = grads[name]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10 * max(1.0, float(np.max(np.abs(want)))),
                                   err_msg=name)
    return net, grads


def _torch_gradients(net, module):
    """The module's parameter gradients, matched to symnet's names by value (weights are
    distinct random numbers), transposed for Linear."""
    out = {}
    params = [p for p in module.parameters() if p.grad is not None]
    for name, value in net.weights.items():
        for p in params:
            arr = p.detach().numpy()
            if arr.shape == value.shape and np.array_equal(arr, value):
                out[name] = p.grad.numpy()
            elif arr.ndim == 2 and arr.T.shape == value.shape and np.array_equal(arr.T, value):
                out[name] = p.grad.numpy().T
    return out


def seeded(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


# ---- nn.Sequential stacks -------------------------------------------------------------


def _stacks():
    return [
        ("mlp", lambda: nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Sigmoid(), nn.Linear(3, 2)),
         (6, 4)),
        ("mlp-nobias", lambda: nn.Sequential(nn.Linear(3, 3, bias=False), nn.ReLU(), nn.Linear(3, 1)), (5, 3)),
        ("conv1d", lambda: nn.Sequential(
            nn.Conv1d(2, 3, 3, stride=2, padding=1, dilation=2), nn.GELU(), nn.AvgPool1d(2),
            nn.Conv1d(3, 2, 2, bias=False), nn.Flatten(), nn.Linear(4, 2)), (3, 2, 15)),
        ("conv1d-same", lambda: nn.Sequential(nn.Conv1d(1, 2, 3, padding="same"), nn.ELU(0.5),
                                              nn.MaxPool1d(3, stride=2), nn.Flatten()), (2, 1, 9)),
        ("conv2d", lambda: nn.Sequential(
            nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)), nn.LeakyReLU(0.1),
            nn.MaxPool2d(2), nn.Conv2d(3, 2, 1), nn.SiLU(), nn.AvgPool2d((1, 2)), nn.Flatten(),
            nn.Linear(4, 3)), (2, 2, 8, 9)),
        ("convtranspose", lambda: nn.Sequential(nn.ConvTranspose1d(2, 3, 4, stride=2, padding=1), nn.Softplus(),
                                                nn.ConvTranspose1d(3, 1, 3), nn.Flatten()), (2, 2, 5)),
        ("bn1d-eval", lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)),
         (5, 3)),
        ("bn2d-eval", lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, eps=1e-3), nn.Hardtanh(),
                                            nn.Flatten(), nn.Dropout(0.3), nn.Linear(8, 1)), (3, 1, 4, 4)),
        ("layernorm", lambda: nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Softsign(), nn.Linear(6, 2)),
         (3, 4)),
        ("layernorm-seq", lambda: nn.Sequential(nn.Conv1d(2, 3, 2), nn.LayerNorm(4, eps=1e-3), nn.Identity(),
                                                nn.Flatten(), nn.Linear(12, 2)), (2, 2, 5)),
    ]


STACK_NAMES = ["mlp", "mlp-nobias", "conv1d", "conv1d-same", "conv2d", "convtranspose", "bn1d-eval",
               "bn2d-eval", "layernorm", "layernorm-seq"]


@pytest.mark.parametrize("index", range(len(STACK_NAMES)), ids=STACK_NAMES)
def test_sequential_stacks_agree_with_autograd(index):
    seeded(index)
    name, build, shape = _stacks()[index]
    module = build()
    for m in module.modules():  # non-trivial running statistics for eval-mode batch norm
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    module.eval()
    net, _ = agree(module, torch.randn(*shape), index)
    assert net.input_shape == tuple(shape[1:])


def test_linear_weight_is_transposed_into_row_convention():
    seeded(1)
    lin = nn.Linear(3, 2)
    net = from_torch(nn.Sequential(lin), torch.randn(1, 3))
    assert net.layers == (Linear(2),)
    np.testing.assert_array_equal(net.weights["W1"], lin.weight.detach().numpy().T)
    assert net.weights["W1"].shape == (3, 2) and net.weights["W1"].dtype == np.float64


# ---- batch norm: inference and training ------------------------------------------------


def test_batchnorm_eval_uses_running_statistics():
    seeded(2)
    bn = nn.BatchNorm1d(3, eps=1e-4)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2)
    net = from_torch(nn.Sequential(bn).eval(), torch.randn(4, 3))
    assert net.layers == (BatchNorm(eps=1e-4, training=False),)
    np.testing.assert_array_equal(net.weights["mu1"], bn.running_mean.numpy())
    np.testing.assert_array_equal(net.weights["var1"], bn.running_var.numpy())
    assert net.is_affine


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_batchnorm_train_uses_batch_statistics_and_leaves_the_module_alone(shape):
    seeded(3)
    bn = nn.BatchNorm1d(3)
    bn.weight.data.normal_()
    bn.bias.data.normal_()
    module = nn.Sequential(nn.Identity(), bn, nn.Tanh(), nn.Flatten(), nn.Linear(3 * (shape[2] if len(shape) > 2 else 1), 2))
    module.train()
    before = bn.running_mean.clone()
    net = from_torch(module, torch.randn(*shape))
    torch.testing.assert_close(bn.running_mean, before)  # from_torch ran a copy
    assert net.layers[0] == BatchNorm(training=True)
    assert not net.is_affine and "mu1" not in net.weights
    agree(module, torch.randn(*shape))


def test_batchnorm2d_train():
    seeded(4)
    module = nn.Sequential(nn.Conv2d(2, 2, 2), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2)).train()
    agree(module, torch.randn(3, 2, 4, 4))


def test_dropout_in_training_mode_is_refused():
    module = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    with pytest.raises(SpecError, match=r"node '_1' \(call_module Dropout\).*eval"):
        from_torch(module, torch.randn(2, 2))


# ---- residual modules ------------------------------------------------------------------


if HAVE_TORCH:  # module classes need torch.nn at definition

    class SkipFirst(nn.Module):
        """``x + self.block(x)``."""

        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(3, 4)
            self.block = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4))
            self.out = nn.Linear(4, 2)

        def forward(self, x):
            x = F.relu(self.inp(x))
            x = x + self.block(x)
            return self.out(x)


    class SkipLast(nn.Module):
        """``out = self.f(x); return out + x``, convolutions, functional activations, a view."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv1d(2, 2, 3, padding=1)
            self.conv2 = nn.Conv1d(2, 2, 5, padding=4, dilation=2)
            self.bn = nn.BatchNorm1d(2)
            self.head = nn.Linear(14, 3)

        def forward(self, x):
            out = torch.tanh(self.conv1(x))
            out = self.bn(self.conv2(out))
            out = out + x
            out = torch.sigmoid(out)
            out = out.view(out.size(0), -1)
            return self.head(out)


    class Nested(nn.Module):
        """A residual block inside a residual block, and ``x.relu()``."""

        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)

        def forward(self, x):
            h = self.a(x).relu()
            h = h + self.b(h)
            return torch.add(x, h)


@pytest.mark.parametrize("name", ["SkipFirst", "SkipLast", "Nested"])
def test_residual_modules_agree_with_autograd(name):
    seeded(5)
    cls = globals()[name]
    module = cls().eval()
    example = torch.randn(3, 2, 7) if cls is SkipLast else torch.randn(4, 3)
    net, _ = agree(module, example)
    assert any(isinstance(layer, Residual) for layer in net.layers)


def test_residual_structure_and_names():
    seeded(6)
    net = from_torch(SkipFirst(), torch.randn(2, 3))
    assert net.layers == (Linear(4), Activation("relu"),
                          Residual([Linear(4), Activation("tanh"), Linear(4)]), Linear(2))
    assert list(net.weights) == ["W1", "b1", "W3_1", "b3_1", "W3_3", "b3_3", "W4", "b4"]
    nested = from_torch(Nested(), torch.randn(2, 3))
    assert nested.layers == (Residual([Linear(3), Activation("relu"), Residual([Linear(3)])]),)
    last = from_torch(SkipLast().eval(), torch.randn(2, 2, 7))
    assert isinstance(last.layers[-2], Flatten) and isinstance(last.layers[0], Residual)


def test_linear_residual_network_is_affine():
    seeded(7)

    class LinearSkip(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Linear(3, 3)

        def forward(self, x):
            return self.f(x) + x

    net = from_torch(LinearSkip(), torch.randn(2, 3))
    assert net.is_affine and net.layers == (Residual([Linear(3)]),)


# ---- other operators ------------------------------------------------------------------


def test_embedding_then_layers():
    seeded(8)
    module = nn.Sequential(nn.Embedding(6, 3), nn.LayerNorm(3), nn.Linear(3, 2), nn.Flatten(), nn.Linear(8, 1))
    ids = torch.randint(0, 6, (5, 4))
    net, grads = agree(module, ids)
    assert net.layers[0] == Embedding(6, 3) and net.input_shape == (4,)
    assert grads["E1"].shape == (6, 3)


def test_reshape_and_functional_flatten():
    seeded(9)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 6)

        def forward(self, x):
            h = torch.flatten(x, 1)
            h = self.lin(h).reshape(-1, 2, 3)
            return F.leaky_relu(h, 0.3)

    net, _ = agree(M(), torch.randn(3, 2, 3))
    assert net.layers == (Flatten(), Linear(6), Reshape((2, 3)), Activation("leaky_relu(alpha=0.3)"))


def test_unsupported_module_names_the_node():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            return self.pool(self.conv(x))

    with pytest.raises(SpecError, match=r"^from_torch: node 'pool' \(call_module AdaptiveAvgPool2d\) is not supported$"):
        from_torch(M(), torch.randn(1, 1, 5, 5))


def test_unsupported_function_and_branches_name_the_node():
    class Cat(nn.Module):
        def forward(self, x):
            return torch.cat([x, x], dim=1)

    with pytest.raises(SpecError, match=r"node 'cat' \(call_function .*cat\) is not supported"):
        from_torch(Cat(), torch.randn(2, 3))

    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x) + self.b(x)

    with pytest.raises(SpecError, match=r"node 'add' adds two branches"):
        from_torch(Branches(), torch.randn(2, 3))

    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 3, groups=2)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(SpecError, match=r"node 'conv' \(call_module Conv1d\) is not supported: groups=2"):
        from_torch(Grouped(), torch.randn(1, 2, 5))


def test_attention_module_is_reported_unsupported():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 1, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    with pytest.raises(SpecError, match=r"node 'attn' \(call_module MultiheadAttention\) is not supported"):
        from_torch(M(), torch.randn(2, 3, 4))


if HAVE_TORCH:

    class SelfAttention(nn.Module):
        """Single-head self-attention in a residual block, then layer norm (a transformer block)."""

        def __init__(self, d=4, dk=3):
            super().__init__()
            self.q = nn.Linear(d, dk, bias=False)
            self.k = nn.Linear(d, dk, bias=False)
            self.v = nn.Linear(d, d, bias=False)
            self.norm = nn.LayerNorm(d)

        def forward(self, x):
            h = F.scaled_dot_product_attention(self.q(x), self.k(x), self.v(x))
            return self.norm(x + h)


def test_scaled_dot_product_attention_becomes_an_attention_layer():
    seeded(12)
    module = SelfAttention()
    net, grads = agree(module, torch.randn(2, 5, 4))
    assert net.layers == (Residual([Attention(d_k=3)]), LayerNorm())
    assert set(grads) == {"WQ1_1", "WK1_1", "WV1_1", "gamma2", "beta2"}
    np.testing.assert_array_equal(net.weights["WQ1_1"], module.q.weight.detach().numpy().T)


def test_attention_with_a_mask_is_refused():
    class Causal(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v = (nn.Linear(2, 2, bias=False) for _ in range(3))

        def forward(self, x):
            return F.scaled_dot_product_attention(self.q(x), self.k(x), self.v(x), is_causal=True)

    with pytest.raises(SpecError, match=r"node 'scaled_dot_product_attention'.*causal"):
        from_torch(Causal(), torch.randn(1, 3, 2))


def test_weights_false_leaves_parameters_symbolic():
    seeded(10)
    module = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6, 1))
    net = from_torch(module, torch.randn(2, 1, 5), weights=False)
    assert net.weights is None
    assert net.parameters() == {"K1": (2, 1, 3), "b1": (2,), "W4": (6, 1), "b4": (1,)}
    assert net.layers[0] == Conv1d(3, out_channels=2)
    with pytest.raises(SpecError, match="no weights"):
        ln.forward(net, np.zeros((1, 1, 5)))


def test_float32_module():
    torch.manual_seed(11)
    module = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).float()
    x = torch.randn(5, 3, dtype=torch.float32)
    net = from_torch(module, x)
    assert all(v.dtype == np.float64 for v in net.weights.values())
    y = ln.compile(net)(x.numpy())
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, module(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_imported_sequential_is_a_sequential():
    net = from_torch(nn.Sequential(nn.Identity()), torch.randn(1, 2))
    assert isinstance(net, Sequential) and net.layers == (Activation("identity"),)


# ---- seeded random PyTorch stacks ------------------------------------------------------


def _random_torch_stack(seed):
    """A random nn.Sequential on (C, L) or (C, H, W) signals ending in Flatten > Linear, and
    its example shape; batch norms are randomly in training or inference mode."""
    rng = np.random.default_rng(seed)
    two_d = bool(seed % 2)
    input_shape = [int(rng.integers(1, 4))] + [int(rng.integers(6, 10))] * (2 if two_d else 1)
    shape, modules = list(input_shape), []
    acts = [nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.Softplus, lambda: nn.LeakyReLU(0.2)]
    for _ in range(int(rng.integers(2, 7))):
        c = shape[0]
        choice = int(rng.integers(0, 6))
        if choice == 0:
            conv = nn.Conv2d if two_d else nn.Conv1d
            m = conv(c, int(rng.integers(1, 4)), int(rng.integers(1, 4)), stride=int(rng.integers(1, 3)),
                     padding=int(rng.integers(0, 2)), dilation=int(rng.integers(1, 3)),
                     bias=bool(rng.integers(0, 2)))
        elif choice == 1:
            pools = [nn.AvgPool2d, nn.MaxPool2d] if two_d else [nn.AvgPool1d, nn.MaxPool1d]
            m = pools[int(rng.integers(0, 2))](int(rng.integers(2, 4)), stride=int(rng.integers(1, 3)))
        elif choice == 2:
            m = (nn.BatchNorm2d if two_d else nn.BatchNorm1d)(c)
            m.train(bool(rng.integers(0, 2)))
        elif choice == 3 and not two_d:
            m = nn.ConvTranspose1d(c, int(rng.integers(1, 3)), int(rng.integers(2, 4)),
                                   stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, 2)))
        else:
            m = acts[int(rng.integers(0, len(acts)))]()
        try:
            with torch.no_grad():
                out = list(copy.deepcopy(m).eval()(torch.zeros(1, *shape)).shape[1:])
        except RuntimeError:  # too short for the kernel
            continue
        if np.prod(out) > 300:
            continue
        modules.append(m)
        shape = out
    modules += [nn.Flatten(), nn.Linear(int(np.prod(shape)), int(rng.integers(1, 4)))]
    return nn.Sequential(*modules), tuple(input_shape)


@pytest.mark.parametrize("seed", range(16))
def test_random_torch_stacks_agree_with_autograd(seed):
    seeded(100 + seed)
    module, shape = _random_torch_stack(seed)
    agree(module, torch.randn(3, *shape))
