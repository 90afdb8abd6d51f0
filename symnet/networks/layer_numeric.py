"""Batched NumPy forward and backward passes of a layer network (:class:`~symnet.networks.layers.Sequential`).

Every layer keeps its forward and backward side by side (``_FORWARD`` / ``_BACKWARD`` below, one
pair per layer class), each backward by the layer's own rule:

* convolution: the input gradient is the *full* correlation of the (stride-dilated) delta with
  the flipped kernel, the kernel gradient the correlation of the input with the delta;
* transposed convolution: the forward is that full correlation, the backward a strided
  correlation;
* average pooling spreads ``delta / k`` over each window, max pooling routes the delta to the
  window's argmax (ties: the first index, as PyTorch);
* batch norm in training differentiates through the batch statistics, at inference it is affine
  per channel; layer norm through the per-row statistics;
* attention through the row softmax (``dS = A * (dA - rowsum(dA * A))``);
* embedding scatter-adds the delta into the looked-up rows; a residual block adds the skip
  gradient to the block's.

Arrays carry a leading batch axis; an example has the network's ``input_shape`` (PyTorch's layout
without the batch axis).  Computation is in float64, or float32 when the input is float32.  No
SymPy here: this is the numeric reference the algebra is checked against.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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

__all__ = [
    "ACTIVATIONS",
    "backward",
    "compile",
    "forward",
    "forward_with_cache",
    "function",
    "loss_gradients",
]

# ---- activations: function and derivative side by side ---------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def _np_erf(z: np.ndarray) -> np.ndarray:
    return np.asarray(_erf(z), dtype=z.dtype)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def _phi(z: np.ndarray) -> np.ndarray:  # the standard normal density
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _Phi(z: np.ndarray) -> np.ndarray:  # its distribution function
    return 0.5 * (1.0 + _np_erf(z / math.sqrt(2.0)))


#: name -> (parameter defaults, f(z, **p), f'(z, **p)); derivatives at kinks as PyTorch's
#: autograd takes them (relu'(0) = 0, leaky_relu'(0) = alpha, elu'(0) = alpha, hard_tanh'(+-1) = 0).
ACTIVATIONS: dict[str, tuple[dict[str, float], Callable[..., np.ndarray], Callable[..., np.ndarray]]] = {
    "identity": ({}, lambda z: z, lambda z: np.ones_like(z)),
    "relu": ({}, lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype)),
    "leaky_relu": (
        {"alpha": 0.01},
        lambda z, alpha: np.where(z > 0, z, alpha * z),
        lambda z, alpha: np.where(z > 0, 1.0, alpha).astype(z.dtype),
    ),
    "elu": (
        {"alpha": 1.0},
        lambda z, alpha: np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0))),
        lambda z, alpha: np.where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0))).astype(z.dtype),
    ),
    "tanh": ({}, np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "sigmoid": ({}, _sigmoid, lambda z: _sigmoid(z) * (1 - _sigmoid(z))),
    "softplus": ({}, lambda z: np.logaddexp(0, z), _sigmoid),
    "silu": ({}, lambda z: z * _sigmoid(z), lambda z: _sigmoid(z) * (1 + z * (1 - _sigmoid(z)))),
    "gelu": ({}, lambda z: z * _Phi(z), lambda z: _Phi(z) + z * _phi(z)),
    "softsign": ({}, lambda z: z / (1 + np.abs(z)), lambda z: 1 / (1 + np.abs(z)) ** 2),
    "arctan": ({}, np.arctan, lambda z: 1 / (1 + z * z)),
    "sin": ({}, np.sin, np.cos),
    "gaussian": ({}, lambda z: np.exp(-z * z), lambda z: -2 * z * np.exp(-z * z)),
    "hard_tanh": (
        {},
        lambda z: np.clip(z, -1, 1),
        lambda z: ((z > -1) & (z < 1)).astype(z.dtype),
    ),
}
_ALIASES = {"swish": "silu", "linear": "identity"}
_SPEC = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?:\((.*)\))?\s*$")


def _activation(name: str) -> tuple[Callable, Callable]:
    """``relu`` or ``leaky_relu(alpha=0.1)`` -> (f, f') on arrays."""
    match = _SPEC.match(name)
    if not match:
        raise SpecError(f"activation {name!r}: expected NAME or NAME(key=value, ...)")
    key = _ALIASES.get(match.group(1), match.group(1))
    if key not in ACTIVATIONS:
        raise SpecError(f"activation {name!r} has no numeric layer pass; known: {', '.join(ACTIVATIONS)}")
    defaults, f, df = ACTIVATIONS[key]
    values = dict(defaults)
    for position, piece in enumerate(p for p in (match.group(2) or "").split(",") if p.strip()):
        k, eq, v = piece.partition("=")
        if not eq:
            if position >= len(defaults):
                raise SpecError(f"activation {name!r}: too many parameters")
            k, v = list(defaults)[position], piece
        k = k.strip()
        if k not in defaults:
            raise SpecError(f"activation {name!r}: no parameter {k!r}")
        try:
            values[k] = float(Fraction(v.strip()))
        except (ValueError, ZeroDivisionError):
            raise SpecError(f"activation {name!r}: {k} = {v.strip()!r} is not a number") from None
    return (lambda z: f(z, **values)), (lambda z: df(z, **values))


# ---- sliding windows -------------------------------------------------------------------


def _windows(x: np.ndarray, k: tuple, stride: tuple, dilation: tuple) -> np.ndarray:
    """View of x (B, C, *spatial) as (B, C, *out, *k): entry [.., i.., j..] = x[.., i*s + j*d ..]."""
    nd = len(k)
    spans = tuple(d * (kk - 1) + 1 for kk, d in zip(k, dilation))
    view = sliding_window_view(x, spans, axis=tuple(range(2, 2 + nd)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
    index += tuple(slice(None, None, d) for d in dilation)
    return view[index]


def _correlate(xp: np.ndarray, K: np.ndarray, stride: tuple, dilation: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Cross-correlation of padded xp (B, C, *n) with K (O, C, *k) -> ((B, O, *out), windows)."""
    nd = K.ndim - 2
    cols = _windows(xp, K.shape[2:], stride, dilation)
    y = np.tensordot(cols, K, axes=([1, *range(2 + nd, 2 + 2 * nd)], [1, *range(2, 2 + nd)]))
    return np.moveaxis(y, -1, 1), cols


def _pad(x: np.ndarray, pad: tuple) -> np.ndarray:
    if not any(pad):
        return x
    return np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])


def _full_correlation_flipped(delta: np.ndarray, K: np.ndarray, stride: tuple, dilation: tuple,
                              length: tuple) -> np.ndarray:
    """``g[c, m] = sum_{o, j} delta[o, l] K[o, c, j]`` over ``m = l*stride + j*dilation``.

    Computed as the full correlation of the stride-dilated delta (B, O, *out) with the flipped
    kernel (C, O, *k); ``length`` is the padded input's spatial shape the result fills (trailing
    positions no window reaches get 0)."""
    nd = K.ndim - 2
    k = K.shape[2:]
    b, o = delta.shape[:2]
    out = delta.shape[2:]
    up = np.zeros((b, o, *((n - 1) * s + 1 for n, s in zip(out, stride))), dtype=delta.dtype)
    up[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)] = delta
    full = np.pad(up, [(0, 0), (0, 0)] + [(d * (kk - 1),) * 2 for kk, d in zip(k, dilation)])
    flipped = np.swapaxes(K, 0, 1)[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    g, _ = _correlate(full, flipped, (1,) * nd, dilation)
    extra = [(0, n - m) for n, m in zip(length, g.shape[2:])]
    return np.pad(g, [(0, 0), (0, 0)] + extra) if any(e for _, e in extra) else g


def _crop(x: np.ndarray, pad: tuple) -> np.ndarray:
    return x[(slice(None), slice(None)) + tuple(slice(p, x.shape[2 + i] - p) for i, p in enumerate(pad))]


# ---- layers: forward (x, params) -> (y, cache); backward (cache, dy) -> (dx, grads) ---------


def _linear_fwd(layer: Linear, x, p):
    y = x @ p["W"]
    if layer.bias:
        y = y + p["b"]
    return y, x


def _linear_bwd(layer: Linear, x, p, dy):
    flat_x = x.reshape(-1, x.shape[-1])
    flat_dy = dy.reshape(-1, dy.shape[-1])
    grads = {"W": flat_x.T @ flat_dy}
    if layer.bias:
        grads["b"] = flat_dy.sum(axis=0)
    return dy @ p["W"].T, grads


def _conv_geometry(layer) -> tuple[tuple, tuple, tuple]:
    if isinstance(layer, Conv1d):
        return (layer.stride,), (layer.padding,), (layer.dilation,)
    return tuple(layer.stride), tuple(layer.padding), tuple(layer.dilation)


def _conv_fwd(layer, x, p):
    stride, pad, dilation = _conv_geometry(layer)
    xp = _pad(x, pad)
    y, cols = _correlate(xp, p["K"], stride, dilation)
    if layer.bias:
        y = y + p["b"].reshape((1, -1) + (1,) * len(stride))
    return y, (xp.shape, cols)


def _conv_bwd(layer, cache, p, dy):
    stride, pad, dilation = _conv_geometry(layer)
    shape, cols = cache
    nd = len(stride)
    axes = [0, *range(2, 2 + nd)]
    grads = {"K": np.tensordot(dy, cols, axes=(axes, axes))}  # correlation of input and delta
    if layer.bias:
        grads["b"] = dy.sum(axis=tuple(axes))
    dxp = _full_correlation_flipped(dy, p["K"], stride, dilation, shape[2:])
    return _crop(dxp, pad), grads


def _convT_fwd(layer: ConvTranspose1d, x, p):
    n = (x.shape[2] - 1) * layer.stride + layer.k
    y = _full_correlation_flipped(x, p["K"], (layer.stride,), (1,), (n,))
    y = _crop(y, (layer.padding,))
    if layer.bias:
        y = y + p["b"][None, :, None]
    return y, x


def _convT_bwd(layer: ConvTranspose1d, x, p, dy):
    dyp = _pad(dy, (layer.padding,))
    # dx[c, l] = sum_{o, j} dy_p[o, l*stride + j] K[c, o, j]: a strided correlation with K
    dx, cols = _correlate(dyp, p["K"], (layer.stride,), (1,))
    grads = {"K": np.tensordot(x, cols, axes=([0, 2], [0, 2]))}
    if layer.bias:
        grads["b"] = dy.sum(axis=(0, 2))
    return dx, grads


def _pool_geometry(layer) -> tuple[tuple, tuple]:
    if isinstance(layer, (AvgPool1d, MaxPool1d)):
        return (layer.k,), (layer.stride,)
    return tuple(layer.k), tuple(layer.stride)


def _spread(dx: np.ndarray, offset: tuple, stride: tuple, values: np.ndarray) -> None:
    """dx[.., j + i*s ..] += values[.., i ..] for one kernel offset j (all windows, all examples)."""
    index = (Ellipsis,) + tuple(slice(j, j + s * (n - 1) + 1, s)
                                for j, s, n in zip(offset, stride, values.shape[2:]))
    dx[index] += values


def _avgpool_fwd(layer, x, p):
    k, stride = _pool_geometry(layer)
    cols = _windows(x, k, stride, (1,) * len(k))
    return cols.mean(axis=tuple(range(-len(k), 0))), x.shape


def _avgpool_bwd(layer, shape, p, dy):
    k, stride = _pool_geometry(layer)
    dx = np.zeros(shape, dtype=dy.dtype)
    share = dy / math.prod(k)
    for offset in np.ndindex(*k):
        _spread(dx, offset, stride, share)
    return dx, {}


def _maxpool_fwd(layer, x, p):
    k, stride = _pool_geometry(layer)
    cols = _windows(x, k, stride, (1,) * len(k))
    flat = cols.reshape(cols.shape[: 2 + len(k)] + (-1,))
    arg = flat.argmax(axis=-1)  # the first maximum, as PyTorch
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    return y, (x.shape, arg)


def _maxpool_bwd(layer, cache, p, dy):
    k, stride = _pool_geometry(layer)
    shape, arg = cache
    dx = np.zeros(shape, dtype=dy.dtype)
    for position, offset in enumerate(np.ndindex(*k)):
        _spread(dx, offset, stride, np.where(arg == position, dy, 0))
    return dx, {}


def _channel_view(x: np.ndarray) -> tuple[tuple, tuple]:
    """Reduction axes (all but the channel axis 1) and the broadcast shape of a channel vector."""
    axes = (0,) + tuple(range(2, x.ndim))
    return axes, (1, -1) + (1,) * (x.ndim - 2)


def _batchnorm_fwd(layer: BatchNorm, x, p):
    axes, view = _channel_view(x)
    if layer.training:
        mu = x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)
    else:
        mu, var = p["mu"].reshape(view), p["var"].reshape(view)
    inv = 1 / np.sqrt(var + layer.eps)
    xhat = (x - mu) * inv
    return xhat * p["gamma"].reshape(view) + p["beta"].reshape(view), (xhat, inv)


def _batchnorm_bwd(layer: BatchNorm, cache, p, dy):
    xhat, inv = cache
    axes, view = _channel_view(dy)
    gamma = p["gamma"].reshape(view)
    grads = {"gamma": (dy * xhat).sum(axis=axes), "beta": dy.sum(axis=axes)}
    dxhat = dy * gamma
    if layer.training:  # through the batch mean and (biased) variance
        n = dy.size // dy.shape[1]
        dx = inv / n * (n * dxhat - dxhat.sum(axis=axes, keepdims=True)
                        - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
        return dx, grads
    grads["mu"] = -(dxhat * inv).sum(axis=axes)
    grads["var"] = -0.5 * (dxhat * xhat).sum(axis=axes) * inv.reshape(-1) ** 2
    return dxhat * inv, grads


def _layernorm_fwd(layer: LayerNorm, x, p):
    mu = x.mean(axis=-1, keepdims=True)
    inv = 1 / np.sqrt(x.var(axis=-1, keepdims=True) + layer.eps)
    xhat = (x - mu) * inv
    return xhat * p["gamma"] + p["beta"], (xhat, inv)


def _layernorm_bwd(layer: LayerNorm, cache, p, dy):
    xhat, inv = cache
    d = dy.shape[-1]
    rows = tuple(range(dy.ndim - 1))
    grads = {"gamma": (dy * xhat).sum(axis=rows), "beta": dy.sum(axis=rows)}
    dxhat = dy * p["gamma"]
    dx = inv / d * (d * dxhat - dxhat.sum(axis=-1, keepdims=True)
                    - xhat * (dxhat * xhat).sum(axis=-1, keepdims=True))
    return dx, grads


def _attention_fwd(layer: Attention, x, p):
    q, k, v = x @ p["WQ"], x @ p["WK"], x @ p["WV"]
    scale = 1 / math.sqrt(p["WQ"].shape[1])
    s = (q @ np.swapaxes(k, -1, -2)) * scale
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    a = e / e.sum(axis=-1, keepdims=True)
    return a @ v, (x, q, k, v, a, scale)


def _attention_bwd(layer: Attention, cache, p, dy):
    x, q, k, v, a, scale = cache
    dv = np.swapaxes(a, -1, -2) @ dy
    da = dy @ np.swapaxes(v, -1, -2)
    ds = a * (da - (da * a).sum(axis=-1, keepdims=True))  # through the row softmax
    dq = ds @ k * scale
    dk = np.swapaxes(ds, -1, -2) @ q * scale
    xt = np.swapaxes(x, -1, -2)
    grads = {"WQ": (xt @ dq).sum(axis=0), "WK": (xt @ dk).sum(axis=0), "WV": (xt @ dv).sum(axis=0)}
    dx = dq @ p["WQ"].T + dk @ p["WK"].T + dv @ p["WV"].T
    return dx, grads


def _embedding_fwd(layer: Embedding, x, p):
    ids = np.asarray(x)
    if ids.dtype.kind not in "iu":
        if not np.all(np.mod(ids, 1) == 0):
            raise SpecError("embedding: token ids must be whole numbers")
        ids = ids.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= layer.vocabulary):
        raise SpecError(f"embedding: token ids must lie in 0..{layer.vocabulary - 1}, "
                        f"got {ids.min()}..{ids.max()}")
    return p["E"][ids], ids


def _embedding_bwd(layer: Embedding, ids, p, dy):
    dE = np.zeros(p["E"].shape, dtype=dy.dtype)
    np.add.at(dE, ids, dy)  # scatter-add: each looked-up row collects its deltas
    return None, {"E": dE}


def _activation_fwd(layer: Activation, x, p):
    f, _ = _activation(layer.name)
    return f(x).astype(x.dtype, copy=False), x


def _activation_bwd(layer: Activation, x, p, dy):
    _, df = _activation(layer.name)
    return dy * df(x), {}


def _identity_fwd(layer, x, p):
    return x, None


def _identity_bwd(layer, cache, p, dy):
    return dy, {}


def _reshape_fwd(layer, x, p):
    shape = (-1,) if isinstance(layer, Flatten) else tuple(layer.shape)
    return x.reshape((x.shape[0], *shape)), x.shape


def _reshape_bwd(layer, shape, p, dy):
    return dy.reshape(shape), {}


_FORWARD: dict[type, Callable] = {
    Linear: _linear_fwd, Conv1d: _conv_fwd, Conv2d: _conv_fwd, ConvTranspose1d: _convT_fwd,
    AvgPool1d: _avgpool_fwd, AvgPool2d: _avgpool_fwd, MaxPool1d: _maxpool_fwd,
    MaxPool2d: _maxpool_fwd, BatchNorm: _batchnorm_fwd, LayerNorm: _layernorm_fwd,
    Attention: _attention_fwd, Embedding: _embedding_fwd, Activation: _activation_fwd,
    Dropout: _identity_fwd, Flatten: _reshape_fwd, Reshape: _reshape_fwd,
}
_BACKWARD: dict[type, Callable] = {
    Linear: _linear_bwd, Conv1d: _conv_bwd, Conv2d: _conv_bwd, ConvTranspose1d: _convT_bwd,
    AvgPool1d: _avgpool_bwd, AvgPool2d: _avgpool_bwd, MaxPool1d: _maxpool_bwd,
    MaxPool2d: _maxpool_bwd, BatchNorm: _batchnorm_bwd, LayerNorm: _layernorm_bwd,
    Attention: _attention_bwd, Embedding: _embedding_bwd, Activation: _activation_bwd,
    Dropout: _identity_bwd, Flatten: _reshape_bwd, Reshape: _reshape_bwd,
}


# ---- the network -----------------------------------------------------------------------


def _prepare(net: Sequential, x: Any, weights: Mapping | None) -> tuple[np.ndarray, dict, np.dtype]:
    if not isinstance(net, Sequential):
        raise SpecError(f"expected a layer network (Sequential), got {type(net).__name__}")
    weights = net.weights if weights is None else weights
    if weights is None:
        raise SpecError("the network has no weights attached: pass weights=... or use net.with_weights(...)")
    x = np.asarray(x)
    shape = tuple(net.input_shape)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise ShapeError(f"input has shape {tuple(x.shape)}; the network takes a batch of "
                         f"examples of shape {shape}, i.e. (batch, {', '.join(map(str, shape))})")
    dtype = np.dtype(np.float32) if x.dtype == np.float32 else np.dtype(np.float64)
    params = {}
    for name, want in net.parameters().items():
        if name not in weights:
            raise SpecError(f"weights: no value for {name}")
        value = np.asarray(weights[name], dtype=dtype)
        if value.shape != tuple(want):
            raise ShapeError(f"weights: {name} has shape {value.shape}, the network needs {tuple(want)}")
        params[name] = value
    if not isinstance(net.layers[0], Embedding):
        x = x.astype(dtype, copy=False)
    return x, params, dtype


def _stems(layer: Layer, in_shape: tuple, index: str, params: dict) -> dict:
    return {stem: params[f"{stem}{index}"] for stem in layer.parameter_shapes(in_shape)}


def _run(layers: tuple, shapes: list, prefix: str, x: np.ndarray, params: dict) -> tuple[np.ndarray, list]:
    caches = []
    for i, layer in enumerate(layers, 1):
        index = f"{prefix}{i}"
        if isinstance(layer, Residual):
            inner_shapes = [shapes[i - 1]]
            for inner in layer.block:
                inner_shapes.append(tuple(inner.output_shape(inner_shapes[-1])))
            h, inner_caches = _run(layer.block, inner_shapes, f"{index}_", x, params)
            caches.append((inner_shapes, inner_caches))
            x = x + h
            continue
        p = _stems(layer, shapes[i - 1], index, params)
        try:
            x, cache = _FORWARD[type(layer)](layer, x, p)
        except KeyError:
            raise SpecError(f"layer {index} ({layer.spec()}): no numeric pass for {type(layer).__name__}") from None
        caches.append(cache)
    return x, caches


def _back(layers: tuple, shapes: list, prefix: str, caches: list, params: dict, dy: np.ndarray,
          grads: dict) -> np.ndarray | None:
    for i in range(len(layers), 0, -1):
        layer, cache, index = layers[i - 1], caches[i - 1], f"{prefix}{i}"
        if isinstance(layer, Residual):
            inner_shapes, inner_caches = cache
            d_block = _back(layer.block, inner_shapes, f"{index}_", inner_caches, params, dy, grads)
            dy = dy + d_block  # the skip path's gradient plus the block's
            continue
        p = _stems(layer, shapes[i - 1], index, params)
        if dy is None:
            raise SpecError(f"layer {index} ({layer.spec()}): follows an embedding of its input; "
                            "token ids have no gradient")
        dy, g = _BACKWARD[type(layer)](layer, cache, p, dy)
        for stem, value in g.items():
            grads[f"{stem}{index}"] = value
    return dy


def forward_with_cache(net: Sequential, x: Any, weights: Mapping | None = None) -> tuple[np.ndarray, Any]:
    """The network's output on a batch, and what each layer keeps for :func:`backward`."""
    x, params, _ = _prepare(net, x, weights)
    y, caches = _run(net.layers, net.shapes(), "", x, params)
    return y, (params, caches)


def forward(net: Sequential, x: Any, weights: Mapping | None = None) -> np.ndarray:
    """``y = f_L(... f_1(x))`` on a batch x of shape (batch, *net.input_shape).

    ``weights`` (name -> array) default to ``net.weights``."""
    return forward_with_cache(net, x, weights)[0]


def backward(net: Sequential, x: Any, dy: Any, weights: Mapping | None = None,
             cache: Any = None) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Backprop: ``dx = (dy/dx)^T dy`` and ``dL/dtheta`` for every parameter, given ``dy = dL/dy``.

    Args:
        net: the layer network; x: the input batch; dy: the output delta (batch, *output_shape);
        weights: name -> array (default ``net.weights``); cache: from :func:`forward_with_cache`
            on the same x (recomputed when omitted).
    Returns:
        ``(dx, grads)``; dx is None when the network starts with an embedding (token ids).
    """
    if cache is None:
        _, cache = forward_with_cache(net, x, weights)
    params, caches = cache
    dtype = next(iter(params.values())).dtype if params else np.asarray(x).dtype
    dy = np.asarray(dy, dtype=np.float32 if dtype == np.float32 else np.float64)
    want = (np.shape(x)[0], *net.output_shape)
    if dy.shape != want:
        raise ShapeError(f"dy has shape {dy.shape}; the network's output batch has shape {want}")
    grads: dict[str, np.ndarray] = {}
    dx = _back(net.layers, net.shapes(), "", caches, params, dy, grads)
    return dx, {name: grads[name] for name in params}


def loss_gradients(net: Sequential, x: Any, t: Any, loss: str = "sse",
                   weights: Mapping | None = None) -> tuple[float, dict[str, np.ndarray]]:
    """The loss over the batch and its gradient for every parameter.

    ``sse``: ``L = 1/2 sum (y - t)^2``; ``mse``: ``L = mean (y - t)^2`` (PyTorch's MSELoss)."""
    y, cache = forward_with_cache(net, x, weights)
    r = y - np.asarray(t, dtype=y.dtype)
    if r.shape != y.shape:
        raise ShapeError(f"targets have shape {np.shape(t)}, the outputs {y.shape}")
    if loss == "sse":
        value, dy = 0.5 * float(np.sum(r * r)), r
    elif loss == "mse":
        value, dy = float(np.mean(r * r)), 2 * r / r.size
    else:
        raise SpecError(f"loss must be 'sse' or 'mse', got {loss!r}")
    _, grads = backward(net, x, dy, weights, cache=cache)
    return value, grads


def compile(net: Sequential, weights: Mapping | None = None) -> Callable[[Any], np.ndarray]:  # noqa: A001
    """The network as a callable ``f(x) -> y`` on batches, its weights bound now."""
    source = net.weights if weights is None else weights
    if source is None:
        raise SpecError("the network has no weights attached: pass weights=... or use net.with_weights(...)")
    bound = {name: np.array(value, copy=True) for name, value in source.items()}
    _prepare(net, np.zeros((1, *net.input_shape), dtype=np.int64 if isinstance(net.layers[0], Embedding)
                           else np.float64), bound)

    def f(x: Any) -> np.ndarray:
        return forward(net, x, bound)

    f.__doc__ = f"The network {net.spec()} on a batch of shape (batch, {', '.join(map(str, net.input_shape))})."
    return f


function = compile
