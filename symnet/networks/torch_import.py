"""A PyTorch module as a symnet layer network, read through ``torch.fx``.

``from_torch(module, example_input)`` traces the module symbolically, walks the graph and maps
each node to a layer of :mod:`symnet.networks.layers`.  A value is a chain of layers from the
input; an add of a value with an earlier value on its own chain (``x + self.block(x)``,
``out = self.f(x); return out + x``) is a residual block ``h + F(h)`` with F the chain between
them.  Anything else (two branches joined, concatenation, an operator without a layer) is an
error naming the fx node.

Read: ``nn.Linear`` (weight transposed into W, in x out), ``nn.Conv1d``/``nn.Conv2d`` (zero
padding, numeric or ``'valid'``/``'same'``, stride, dilation; groups 1), ``nn.ConvTranspose1d``
(stride, padding; no output_padding or dilation), ``nn.AvgPool1d/2d`` and ``nn.MaxPool1d/2d``
(no padding, dilation or ceil_mode), ``nn.BatchNorm1d/2d`` (eval: running statistics, an affine
map; train or without running statistics: batch statistics), ``nn.LayerNorm`` over the last
axis, ``nn.Dropout`` in eval mode, ``nn.Flatten``, ``flatten``/``view``/``reshape``,
``nn.Embedding`` (no max_norm; a padding_idx row is not frozen in symnet's gradient),
``nn.Identity``, ReLU, Tanh, Sigmoid, GELU (exact), SiLU, ELU, LeakyReLU, Softplus (beta 1),
Softsign, Hardtanh(-1, 1) as modules, ``F.relu``/``torch.relu``/``x.relu()`` and the like as
functions, the residual add, and ``F.scaled_dot_product_attention`` of bias-free ``nn.Linear``
query, key and value maps of one tensor (no mask, not causal).  Not read: anything else, e.g.
``nn.MultiheadAttention``, adaptive pooling, concatenation, two branches joined, tied weights
(a module used twice is imported as two layers with equal weights).

PyTorch is an optional dependency, imported only here and only when called.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symnet.errors import ShapeError, SpecError
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
    Layer,
    LayerNorm,
    Linear,
    MaxPool1d,
    MaxPool2d,
    Reshape,
    Residual,
    Sequential,
)

__all__ = ["from_torch"]


@dataclass(eq=False)
class _Entry:
    """One layer on a chain, the fx node it came from and its parameters (stem -> array)."""

    node: str
    layer: Layer | None  # None for a residual until its block is known
    params: dict = field(default_factory=dict)
    inner: tuple = ()


class _Unsupported(Exception):
    """A node that maps to no layer (the caller names the node)."""


def _np(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().double().numpy().copy()


def _single(value: Any) -> int:
    return value[0] if isinstance(value, (tuple, list)) else value


def _pair(value: Any) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _number(value: float) -> str:
    return repr(float(value))


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise _Unsupported(what)


def _conv_padding(mod: Any, nd: int) -> tuple:
    """Symmetric zero padding per axis (``'same'`` when the total is even, ``'valid'`` = 0)."""
    padding = mod.padding
    if padding == "valid":
        return (0,) * nd
    if padding == "same":
        out = []
        for k, d in zip(mod.kernel_size, mod.dilation):
            total = d * (k - 1)
            _require(total % 2 == 0, "padding='same' with an even kernel span pads unevenly; not supported")
            out.append(total // 2)
        return tuple(out)
    return tuple(padding)


def _module_layer(mod: Any, torch: Any, in_shape: tuple, out_shape: tuple) -> tuple[Layer | None, dict]:
    """The layer (None: the identity) and parameters of one ``call_module`` node."""
    nn = torch.nn
    bias = getattr(mod, "bias", None)

    def bias_of(params: dict) -> dict:
        if bias is not None:
            params["b"] = _np(bias)
        return params

    if isinstance(mod, nn.Linear):
        return Linear(mod.out_features, bias=bias is not None), bias_of({"W": _np(mod.weight).T.copy()})
    if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
        _require(mod.groups == 1, f"groups={mod.groups} is not supported")
        _require(mod.padding_mode == "zeros", f"padding_mode={mod.padding_mode!r} is not supported")
        if isinstance(mod, nn.Conv1d):
            layer = Conv1d(mod.kernel_size[0], mod.out_channels, mod.stride[0], _conv_padding(mod, 1)[0],
                           mod.dilation[0], bias=bias is not None)
        else:
            layer = Conv2d(tuple(mod.kernel_size), mod.out_channels, tuple(mod.stride), _conv_padding(mod, 2),
                           tuple(mod.dilation), bias=bias is not None)
        return layer, bias_of({"K": _np(mod.weight)})
    if isinstance(mod, nn.ConvTranspose1d):
        _require(mod.groups == 1, f"groups={mod.groups} is not supported")
        _require(mod.dilation[0] == 1, f"dilation={mod.dilation[0]} is not supported")
        _require(mod.output_padding[0] == 0, f"output_padding={mod.output_padding[0]} is not supported")
        layer = ConvTranspose1d(mod.kernel_size[0], mod.out_channels, mod.stride[0], mod.padding[0],
                                bias=bias is not None)
        return layer, bias_of({"K": _np(mod.weight)})
    if isinstance(mod, (nn.AvgPool1d, nn.AvgPool2d)):
        _require(not any(_pair(mod.padding)), "padding is not supported")
        _require(not mod.ceil_mode, "ceil_mode=True is not supported")
        _require(getattr(mod, "divisor_override", None) is None, "divisor_override is not supported")
        if isinstance(mod, nn.AvgPool1d):
            return AvgPool1d(_single(mod.kernel_size), _single(mod.stride)), {}
        return AvgPool2d(_pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size)), {}
    if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d)):
        _require(not any(_pair(mod.padding)), "padding is not supported")
        _require(all(d == 1 for d in _pair(mod.dilation)), "dilation is not supported")
        _require(not mod.ceil_mode, "ceil_mode=True is not supported")
        _require(not mod.return_indices, "return_indices=True is not supported")
        if isinstance(mod, nn.MaxPool1d):
            return MaxPool1d(_single(mod.kernel_size), _single(mod.stride or mod.kernel_size)), {}
        return MaxPool2d(_pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size)), {}
    if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
        c = mod.num_features
        params = {"gamma": _np(mod.weight) if mod.weight is not None else np.ones(c),
                  "beta": _np(mod.bias) if mod.bias is not None else np.zeros(c)}
        training = mod.training or mod.running_mean is None
        if not training:
            params.update({"mu": _np(mod.running_mean), "var": _np(mod.running_var)})
        return BatchNorm(eps=float(mod.eps), training=training), params
    if isinstance(mod, nn.LayerNorm):
        _require(tuple(mod.normalized_shape) == (in_shape[-1],),
                 f"normalized_shape={tuple(mod.normalized_shape)} (only the last axis is supported)")
        d = in_shape[-1]
        params = {"gamma": _np(mod.weight) if mod.weight is not None else np.ones(d),
                  "beta": _np(mod.bias) if getattr(mod, "bias", None) is not None else np.zeros(d)}
        return LayerNorm(eps=float(mod.eps)), params
    if isinstance(mod, nn.Dropout):
        _require(not mod.training or mod.p == 0, "dropout in training mode is random; call module.eval()")
        return Dropout(float(mod.p)), {}
    if isinstance(mod, nn.Flatten):
        return _reshape_layer(in_shape, out_shape), {}
    if isinstance(mod, nn.Embedding):
        _require(mod.max_norm is None, "max_norm (renormalising the weights) is not supported")
        return Embedding(mod.num_embeddings, mod.embedding_dim), {"E": _np(mod.weight)}
    if isinstance(mod, nn.Identity):
        return None, {}
    return _module_activation(mod, nn), {}


def _module_activation(mod: Any, nn: Any) -> Layer:
    if isinstance(mod, nn.ReLU):
        return Activation("relu")
    if isinstance(mod, nn.Tanh):
        return Activation("tanh")
    if isinstance(mod, nn.Sigmoid):
        return Activation("sigmoid")
    if isinstance(mod, nn.SiLU):
        return Activation("silu")
    if isinstance(mod, nn.Softsign):
        return Activation("softsign")
    if isinstance(mod, nn.GELU):
        _require(mod.approximate == "none", f"GELU(approximate={mod.approximate!r}) is not supported")
        return Activation("gelu")
    if isinstance(mod, nn.ELU):
        return Activation("elu" if mod.alpha == 1 else f"elu(alpha={_number(mod.alpha)})")
    if isinstance(mod, nn.LeakyReLU):
        return Activation(f"leaky_relu(alpha={_number(mod.negative_slope)})")
    if isinstance(mod, nn.Softplus):
        _require(mod.beta == 1, f"Softplus(beta={mod.beta}) is not supported")
        return Activation("softplus")
    if isinstance(mod, nn.Hardtanh) and not isinstance(mod, nn.ReLU6):
        _require(mod.min_val == -1 and mod.max_val == 1, "Hardtanh other than [-1, 1] is not supported")
        return Activation("hard_tanh")
    raise _Unsupported("")


def _reshape_layer(in_shape: tuple, out_shape: tuple) -> Layer:
    _require(len(out_shape) >= 1, "reshaping the batch axis away is not supported")
    return Flatten() if len(out_shape) == 1 else Reshape(tuple(out_shape))


def _option(node: Any, position: int, name: str, default: Any) -> Any:
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[position] if len(node.args) > position else default


def _function_layer(node: Any, torch: Any, in_shape: tuple, out_shape: tuple) -> tuple[Layer | None, bool]:
    """(layer, handled) for a call_function / call_method node with one tensor input."""
    F = torch.nn.functional
    target = node.target
    method = node.op == "call_method"
    simple = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}
    if method and target in simple:
        return Activation(simple[target]), True
    if method and target in ("contiguous", "clone", "detach"):
        return None, True
    if method and target in ("flatten", "view", "reshape") or target in (torch.flatten, torch.reshape):
        return (None if tuple(out_shape) == tuple(in_shape) else _reshape_layer(in_shape, out_shape)), True
    if method:
        return None, False
    if target in (F.relu, torch.relu):
        return Activation("relu"), True
    if target in (torch.tanh, F.tanh):
        return Activation("tanh"), True
    if target in (torch.sigmoid, F.sigmoid):
        return Activation("sigmoid"), True
    if target is F.silu:
        return Activation("silu"), True
    if target is F.gelu:
        approximate = _option(node, 1, "approximate", "none")
        _require(approximate == "none", f"gelu(approximate={approximate!r}) is not supported")
        return Activation("gelu"), True
    if target is F.elu:
        alpha = _option(node, 1, "alpha", 1.0)
        return Activation("elu" if alpha == 1 else f"elu(alpha={_number(alpha)})"), True
    if target is F.leaky_relu:
        return Activation(f"leaky_relu(alpha={_number(_option(node, 1, 'negative_slope', 0.01))})"), True
    if target is F.dropout:
        p, training = _option(node, 1, "p", 0.5), _option(node, 2, "training", True)
        _require(not training or p == 0, "dropout in training mode is random; call module.eval()")
        return Dropout(float(p)), True
    return None, False


def _describe(node: Any) -> str:
    target = node.target
    if node.op == "call_module":
        return f"call_module {type(node.graph.owning_module.get_submodule(target)).__name__}"
    if node.op == "call_function":
        return f"call_function {getattr(target, '__module__', '') or ''}.{getattr(target, '__name__', target)}".replace(
            "call_function .", "call_function ")
    return f"{node.op} {target}"


def _shape_of(node: Any) -> tuple | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _is_prefix(a: tuple, b: tuple) -> bool:
    return len(a) <= len(b) and all(x is y for x, y in zip(a, b))


def _weights(entries: tuple, prefix: str, out: dict) -> None:
    for i, entry in enumerate(entries, 1):
        index = f"{prefix}{i}"
        if entry.inner:
            _weights(entry.inner, f"{index}_", out)
        for stem, value in entry.params.items():
            out[f"{stem}{index}"] = value


def from_torch(module: Any, example_input: Any, weights: bool = True) -> Sequential:
    """The PyTorch module as a symnet layer network, through ``torch.fx`` symbolic tracing.

    Args:
        module: an ``nn.Module`` (``nn.Sequential``, or a module whose forward is a chain of
            supported layers with residual adds ``x + F(x)``).
        example_input: a tensor with a leading batch axis; it fixes the example shape
            (the batch axis is dropped).
        weights: attach the module's parameters as float64 NumPy arrays under symnet's names
            (``W1`` = ``linear.weight.T``, ``K2`` = ``conv.weight``, ``mu3`` = ``running_mean``...);
            with False the parameters stay symbolic (``net.weights`` is None).
    Raises:
        SpecError: PyTorch missing, or a node with no layer (the error names the node).
    """
    try:
        import torch
        import torch.fx
        from torch.fx.passes.shape_prop import ShapeProp
    except ImportError:
        raise SpecError("from_torch needs PyTorch: pip install 'symnet[torch]'") from None

    if not isinstance(module, torch.nn.Module):
        raise SpecError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    if isinstance(example_input, (tuple, list)):
        if len(example_input) != 1:
            raise SpecError("from_torch: the network takes one input tensor")
        example_input = example_input[0]
    example = torch.as_tensor(example_input)
    if example.dim() < 2:
        raise SpecError(f"from_torch: the example input needs a batch axis first, got shape {tuple(example.shape)}")
    input_shape = tuple(example.shape[1:])

    try:  # a copy, so that tracing and shape propagation leave the module's state alone
        module = copy.deepcopy(module)
    except Exception:  # noqa: BLE001 - an uncopyable module is traced as it is
        pass
    try:
        graph_module = torch.fx.symbolic_trace(module)
    except Exception as exc:  # noqa: BLE001 - any tracing failure is the user's module
        raise SpecError(f"from_torch: torch.fx could not trace {type(module).__name__}: {exc}") from None
    try:
        with torch.no_grad():
            expected = ShapeProp(graph_module).propagate(example)
    except Exception as exc:  # noqa: BLE001
        raise SpecError(f"from_torch: running {type(module).__name__} on the example input failed: {exc}") from None

    chains: dict[str, tuple] = {}
    scalars: set[str] = set()
    result: tuple | None = None
    placeholders = 0

    def chain_of(node: Any, arg: Any) -> tuple:
        if not isinstance(arg, torch.fx.Node) or arg.name not in chains:
            raise SpecError(f"from_torch: node {node.name!r} ({_describe(node)}) takes "
                            f"{getattr(arg, 'name', repr(arg))!r}, which is not a tensor on the chain from the input")
        return chains[arg.name]

    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            placeholders += 1
            if placeholders > 1:
                raise SpecError(f"from_torch: node {node.name!r}: the module takes more than one input")
            chains[node.name] = ()
            continue
        if node.op == "output":
            result = chain_of(node, node.args[0])
            continue
        unsupported = f"from_torch: node {node.name!r} ({_describe(node)}) is not supported"
        if _shape_of(node) is None:  # sizes and their arithmetic: only reshapes may use them
            if node.op == "call_method" and node.target in ("size", "dim") \
                    or node.op == "call_function" and node.target in _SIZE_FUNCTIONS:
                scalars.add(node.name)
                continue
            raise SpecError(unsupported + ": its value is not one tensor")
        tensor_args = [a for a in node.args if isinstance(a, torch.fx.Node) and a.name not in scalars]
        try:
            if node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add) \
                    or node.op == "call_method" and node.target in ("add", "add_"):
                chains[node.name] = _residual(node, tensor_args, chain_of, torch)
                continue
            if node.op == "call_function" and node.target is torch.nn.functional.scaled_dot_product_attention:
                chains[node.name] = _attention(node, tensor_args, chain_of)
                continue
            if node.op not in ("call_module", "call_function", "call_method") or len(tensor_args) != 1 \
                    or tensor_args[0] is not node.args[0]:
                raise SpecError(unsupported)
            source = tensor_args[0]
            base = chain_of(node, source)
            in_shape, out_shape = _shape_of(source)[1:], _shape_of(node)[1:]
            if node.op == "call_module":
                layer, params = _module_layer(graph_module.get_submodule(node.target), torch, in_shape, out_shape)
            else:
                layer, handled = _function_layer(node, torch, in_shape, out_shape)
                params = {}
                if not handled:
                    raise SpecError(unsupported)
        except _Unsupported as exc:
            raise SpecError(unsupported + (f": {exc}" if str(exc) else "")) from None
        chains[node.name] = base if layer is None else base + (_Entry(node.name, layer, params),)

    if result is None:  # pragma: no cover - fx always has an output node
        raise SpecError("from_torch: the traced graph has no output")
    entries = result or (_Entry("output", Activation("identity")),)
    try:
        net = Sequential([e.layer for e in entries], input_shape)
    except (ShapeError, SpecError) as exc:
        raise SpecError(f"from_torch: {exc}") from None
    values: dict[str, np.ndarray] = {}
    _weights(entries, "", values)
    _agree(net, values, example, expected, torch)
    return net.with_weights(values) if weights else net


def _attention(node: Any, tensor_args: list, chain_of: Any) -> tuple:
    """``F.scaled_dot_product_attention(q(h), k(h), v(h))`` with bias-free linear q, k, v of one h."""
    where = f"from_torch: node {node.name!r} (scaled_dot_product_attention)"
    if len(tensor_args) != 3 or len(node.args) != 3:
        raise SpecError(f"{where}: only (query, key, value) without a mask is supported")
    options = dict(node.kwargs)
    if options.pop("attn_mask", None) is not None or options.pop("dropout_p", 0.0) != 0 \
            or options.pop("is_causal", False) or options.pop("enable_gqa", False):
        raise SpecError(f"{where}: masks, causal attention and attention dropout are not supported")
    chains = [chain_of(node, arg) for arg in tensor_args]
    base = chains[0][:-1]
    if not all(c and _is_prefix(base, c) and len(c) == len(base) + 1 for c in chains) \
            or not all(isinstance(c[-1].layer, Linear) and not c[-1].layer.bias for c in chains):
        raise SpecError(f"{where}: query, key and value must be bias-free nn.Linear maps of one tensor")
    WQ, WK, WV = (c[-1].params["W"] for c in chains)
    d, dk = WQ.shape
    if WK.shape != (d, dk) or WV.shape != (d, d):
        raise SpecError(f"{where}: query and key need the same width, value the input's width {d}")
    scale = options.pop("scale", None)
    if options or (scale is not None and abs(scale * dk ** 0.5 - 1) > 1e-12):
        raise SpecError(f"{where}: only the default scale 1/sqrt(d_k) is supported")
    layer = Attention(d_k=None if dk == d else dk)
    return base + (_Entry(node.name, layer, {"WQ": WQ, "WK": WK, "WV": WV}),)


_SIZE_FUNCTIONS = (getattr, operator.getitem, operator.mul, operator.floordiv, operator.add, operator.sub)


def _residual(node: Any, tensor_args: list, chain_of: Any, torch: Any) -> tuple:
    """``a + b`` with one of them on the other's chain: ``h + F(h)``."""
    if len(tensor_args) != 2 or len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
        raise SpecError(f"from_torch: node {node.name!r} ({_describe(node)}) is not supported: "
                        "only the sum of two tensors on one chain (a skip connection)")
    a, b = (chain_of(node, arg) for arg in tensor_args)
    if _is_prefix(b, a):
        a, b = b, a
    if not _is_prefix(a, b):
        raise SpecError(f"from_torch: node {node.name!r} adds two branches that are not a skip connection "
                        "(only h + F(h) with F a chain of layers from h)")
    block = b[len(a):] or (_Entry(node.name, Activation("identity")),)
    try:
        layer = Residual([e.layer for e in block])
        in_shape = _shape_of(tensor_args[0])[1:]
        layer.output_shape(in_shape)
    except (ShapeError, SpecError) as exc:
        raise SpecError(f"from_torch: node {node.name!r}: {exc}") from None
    return a + (_Entry(node.name, layer, {}, tuple(block)),)


def _agree(net: Sequential, values: dict, example: Any, expected: Any, torch: Any) -> None:
    """The imported network computes what the module computed on the example (a safety net)."""
    from symnet.networks.layer_numeric import forward

    if not isinstance(expected, torch.Tensor):
        raise SpecError("from_torch: the module's output is not one tensor")
    x = example.detach().cpu().numpy()
    if x.dtype.kind == "f":
        x = x.astype(np.float64)
    got = forward(net, x, values)
    want = expected.detach().cpu().to(torch.float64).numpy()
    if got.shape != want.shape:
        raise SpecError(f"from_torch: the imported network gives shape {got.shape[1:]}, "
                        f"the module {want.shape[1:]}")
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    tolerance = (1e-7 if expected.dtype == torch.float64 else 1e-3) * scale
    error = float(np.max(np.abs(got - want))) if want.size else 0.0
    if not error <= tolerance:
        raise SpecError(f"from_torch: the imported network {net.spec()} differs from the module on the "
                        f"example input by {error:.3g}; some operator is not read as PyTorch computes it")
