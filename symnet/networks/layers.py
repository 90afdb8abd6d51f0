"""Layers beyond dense: convolution, pooling, normalisation, residual blocks, attention.

A :class:`Sequential` network is a list of layers applied to one example of a fixed
shape, PyTorch's layout without the batch axis: ``(n,)`` for a vector, ``(C, L)`` for a
1-D signal with C channels, ``(C, H, W)`` for an image, ``(T, d)`` for a sequence of T
tokens.  Each layer knows its output shape and its parameters' shapes; parameters are
named by the layer's position (``W1``, ``b1``, ``K2`` for a kernel, ``gamma3``, ...;
inside a residual block ``W3_1``).

Numeric passes (batched over the first axis) are in :mod:`symnet.networks.layer_numeric`,
the algebra (collapse, derivations checked by the kernel) in
:mod:`symnet.networks.layer_algebra`.  Nothing here imports SymPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from symnet.errors import ShapeError, SpecError

Shape = tuple


def _positive(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{what} must be a whole number >= {minimum}, got {value!r}")
    return value


def _pair(value: Any, what: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise SpecError(f"{what} must be one number or a pair, got {value!r}")
        return (_positive(value[0], what, minimum), _positive(value[1], what, minimum))
    v = _positive(value, what, minimum)
    return (v, v)


def _pair_text(v) -> str:
    """A pair as the grammar reads it: ``3`` for ``(3, 3)``, ``(2,3)`` otherwise."""
    if isinstance(v, tuple):
        return str(v[0]) if v[0] == v[1] else f"({v[0]},{v[1]})"
    return str(v)


def _spec(kind: str, k, bias: bool, **options: tuple) -> str:
    """``kind(k=..., name=value ...)`` in the grammar, naming only options off their default
    (``options``: name -> (value, default))."""
    extra = "".join(f", {n}={_pair_text(v)}" for n, (v, d) in options.items() if v != d)
    return f"{kind}(k={_pair_text(k)}{extra}" + ("" if bias else ", bias=false") + ")"


def _conv_length(n: int, k: int, stride: int, padding: int, dilation: int, what: str) -> int:
    out = (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    if out < 1:
        raise ShapeError(f"{what}: input length {n} is too short for kernel {k} "
                         f"(padding {padding}, dilation {dilation})")
    return out


class Layer:
    """One layer: ``output_shape(in_shape)``, ``parameter_shapes(in_shape)``, ``affine``."""

    #: prefix -> role, in the order parameters are listed
    kind: str = "layer"

    def output_shape(self, in_shape: Shape) -> Shape:
        raise NotImplementedError

    def parameter_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        """Parameter name stem (``W``, ``b`` ...) -> shape, for this input shape."""
        return {}

    @property
    def affine(self) -> bool:
        """Whether the layer is an affine map of its input (for every parameter value)."""
        return False

    def spec(self) -> str:
        """The layer in the command-line grammar (``conv1d(k=3)``)."""
        return self.kind


# ---- affine layers -------------------------------------------------------------------


@dataclass(frozen=True)
class Linear(Layer):
    """``y = x W + b`` on the last axis (row convention; W is in x out). ``out`` features."""

    out: int
    bias: bool = True
    kind = "linear"

    def __post_init__(self):
        _positive(self.out, "linear: out")

    def output_shape(self, in_shape):
        return tuple(in_shape[:-1]) + (self.out,)

    def parameter_shapes(self, in_shape):
        shapes = {"W": (in_shape[-1], self.out)}
        if self.bias:
            shapes["b"] = (self.out,)
        return shapes

    @property
    def affine(self):
        return True

    def spec(self):
        return f"linear({self.out}" + ("" if self.bias else ", bias=false") + ")"


@dataclass(frozen=True)
class Conv1d(Layer):
    """1-D convolution (PyTorch's cross-correlation): ``y[o, i] = b[o] + sum_{c,j}
    K[o, c, j] x[c, i*stride + j*dilation - padding]``; kernel K is out x in x k."""

    k: int
    out_channels: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    bias: bool = True
    kind = "conv1d"

    def __post_init__(self):
        _positive(self.k, "conv1d: k")
        _positive(self.out_channels, "conv1d: out_channels")
        _positive(self.stride, "conv1d: stride")
        _positive(self.padding, "conv1d: padding", 0)
        _positive(self.dilation, "conv1d: dilation")

    def _check(self, in_shape):
        if len(in_shape) != 2:
            raise ShapeError(f"conv1d needs input (channels, length), got {in_shape}")

    def output_shape(self, in_shape):
        self._check(in_shape)
        c, n = in_shape
        return (self.out_channels, _conv_length(n, self.k, self.stride, self.padding, self.dilation, "conv1d"))

    def parameter_shapes(self, in_shape):
        self._check(in_shape)
        shapes = {"K": (self.out_channels, in_shape[0], self.k)}
        if self.bias:
            shapes["b"] = (self.out_channels,)
        return shapes

    @property
    def affine(self):
        return True

    def spec(self):
        return _spec("conv1d", self.k, self.bias, out=(self.out_channels, 1), stride=(self.stride, 1),
                     padding=(self.padding, 0), dilation=(self.dilation, 1))


@dataclass(frozen=True)
class Conv2d(Layer):
    """2-D convolution: kernel K is out x in x kh x kw; stride, padding, dilation per axis."""

    k: Any
    out_channels: int = 1
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    bias: bool = True
    kind = "conv2d"

    def __post_init__(self):
        object.__setattr__(self, "k", _pair(self.k, "conv2d: k", 1))
        object.__setattr__(self, "stride", _pair(self.stride, "conv2d: stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "conv2d: padding", 0))
        object.__setattr__(self, "dilation", _pair(self.dilation, "conv2d: dilation", 1))
        _positive(self.out_channels, "conv2d: out_channels")

    def _check(self, in_shape):
        if len(in_shape) != 3:
            raise ShapeError(f"conv2d needs input (channels, height, width), got {in_shape}")

    def output_shape(self, in_shape):
        self._check(in_shape)
        _, h, w = in_shape
        return (self.out_channels,
                _conv_length(h, self.k[0], self.stride[0], self.padding[0], self.dilation[0], "conv2d"),
                _conv_length(w, self.k[1], self.stride[1], self.padding[1], self.dilation[1], "conv2d"))

    def parameter_shapes(self, in_shape):
        self._check(in_shape)
        shapes = {"K": (self.out_channels, in_shape[0], *self.k)}
        if self.bias:
            shapes["b"] = (self.out_channels,)
        return shapes

    @property
    def affine(self):
        return True

    def spec(self):
        return _spec("conv2d", self.k, self.bias, out=(self.out_channels, 1), stride=(self.stride, (1, 1)),
                     padding=(self.padding, (0, 0)), dilation=(self.dilation, (1, 1)))


@dataclass(frozen=True)
class ConvTranspose1d(Layer):
    """Transposed 1-D convolution (the adjoint of Conv1d): kernel K is in x out x k."""

    k: int
    out_channels: int = 1
    stride: int = 1
    padding: int = 0
    bias: bool = True
    kind = "convtranspose1d"

    def __post_init__(self):
        _positive(self.k, "convtranspose1d: k")
        _positive(self.out_channels, "convtranspose1d: out_channels")
        _positive(self.stride, "convtranspose1d: stride")
        _positive(self.padding, "convtranspose1d: padding", 0)

    def output_shape(self, in_shape):
        if len(in_shape) != 2:
            raise ShapeError(f"convtranspose1d needs input (channels, length), got {in_shape}")
        n = (in_shape[1] - 1) * self.stride - 2 * self.padding + self.k
        if n < 1:
            raise ShapeError("convtranspose1d: padding leaves no output")
        return (self.out_channels, n)

    def parameter_shapes(self, in_shape):
        shapes = {"K": (in_shape[0], self.out_channels, self.k)}
        if self.bias:
            shapes["b"] = (self.out_channels,)
        return shapes

    @property
    def affine(self):
        return True

    def spec(self):
        return _spec("convtranspose1d", self.k, self.bias, out=(self.out_channels, 1), stride=(self.stride, 1),
                     padding=(self.padding, 0))


@dataclass(frozen=True)
class _Pool1d(Layer):
    """Windows of ``k`` entries along the length, ``stride`` apart (default ``k``)."""

    k: int
    stride: int | None = None

    def __post_init__(self):
        _positive(self.k, f"{self.kind}: k")
        object.__setattr__(self, "stride", _positive(self.stride if self.stride is not None else self.k,
                                                     f"{self.kind}: stride"))

    def output_shape(self, in_shape):
        if len(in_shape) != 2:
            raise ShapeError(f"{self.kind} needs input (channels, length), got {in_shape}")
        return (in_shape[0], _conv_length(in_shape[1], self.k, self.stride, 0, 1, self.kind))

    def spec(self):
        return f"{self.kind}(k={self.k}" + (f", stride={self.stride}" if self.stride != self.k else "") + ")"


@dataclass(frozen=True)
class _Pool2d(Layer):
    """Windows of ``k = (kh, kw)`` entries, ``stride`` apart (default ``k``)."""

    k: Any
    stride: Any = None

    def __post_init__(self):
        object.__setattr__(self, "k", _pair(self.k, f"{self.kind}: k", 1))
        object.__setattr__(self, "stride", _pair(self.stride if self.stride is not None else self.k,
                                                 f"{self.kind}: stride", 1))

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ShapeError(f"{self.kind} needs input (channels, height, width), got {in_shape}")
        return (in_shape[0], _conv_length(in_shape[1], self.k[0], self.stride[0], 0, 1, self.kind),
                _conv_length(in_shape[2], self.k[1], self.stride[1], 0, 1, self.kind))

    def spec(self):
        stride = f", stride={_pair_text(self.stride)}" if self.stride != self.k else ""
        return f"{self.kind}(k={_pair_text(self.k)}{stride})"


@dataclass(frozen=True)
class AvgPool1d(_Pool1d):
    """Window means (affine)."""

    kind = "avgpool1d"

    @property
    def affine(self):
        return True


@dataclass(frozen=True)
class AvgPool2d(_Pool2d):
    kind = "avgpool2d"

    @property
    def affine(self):
        return True


@dataclass(frozen=True)
class MaxPool1d(_Pool1d):
    """Window maxima (not affine; the gradient goes to the first maximum)."""

    kind = "maxpool1d"


@dataclass(frozen=True)
class MaxPool2d(_Pool2d):
    kind = "maxpool2d"


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch normalisation over the channel axis (axis 0 of an example).

    Inference (``training=False``): ``y = (x - mu) * gamma / sqrt(var + eps) + beta`` with
    the running statistics mu, var, an affine map per channel.  Training: mu and var are
    the batch's statistics (biased variance), not affine."""

    eps: float = 1e-5
    training: bool = False
    kind = "batchnorm"

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def parameter_shapes(self, in_shape):
        c = (in_shape[0],)
        shapes = {"gamma": c, "beta": c}
        if not self.training:
            shapes.update({"mu": c, "var": c})
        return shapes

    @property
    def affine(self):
        return not self.training

    def spec(self):
        opts = (["training"] if self.training else []) + ([f"eps={self.eps!r}"] if self.eps != 1e-5 else [])
        return "batchnorm" + (f"({', '.join(opts)})" if opts else "")


@dataclass(frozen=True)
class Dropout(Layer):
    """Dropout at inference: the identity."""

    p: float = 0.5
    kind = "dropout"

    def output_shape(self, in_shape):
        return tuple(in_shape)

    @property
    def affine(self):
        return True


@dataclass(frozen=True)
class Flatten(Layer):
    """All axes of an example into one, in C order (PyTorch's ``flatten(1)``)."""

    kind = "flatten"

    def output_shape(self, in_shape):
        n = 1
        for d in in_shape:
            n *= d
        return (n,)

    @property
    def affine(self):
        return True


@dataclass(frozen=True)
class Reshape(Layer):
    shape: tuple = ()
    kind = "reshape"

    def output_shape(self, in_shape):
        n = m = 1
        for d in in_shape:
            n *= d
        for d in self.shape:
            m *= d
        if n != m:
            raise ShapeError(f"reshape: {in_shape} has {n} entries, {self.shape} has {m}")
        return tuple(self.shape)

    @property
    def affine(self):
        return True

    def spec(self):
        return f"reshape({','.join(map(str, self.shape))})"


@dataclass(frozen=True)
class Residual(Layer):
    """``h + F(h)``: a block of layers whose output has the input's shape."""

    block: tuple = ()
    kind = "residual"

    def __init__(self, block):
        layers = tuple(block)
        for layer in layers:
            if not isinstance(layer, Layer):
                raise SpecError(f"residual: {layer!r} is not a layer")
        if not layers:
            raise SpecError("residual: an empty block")
        object.__setattr__(self, "block", layers)

    def output_shape(self, in_shape):
        shape = tuple(in_shape)
        for layer in self.block:
            shape = layer.output_shape(shape)
        if shape != tuple(in_shape):
            raise ShapeError(f"residual: the block maps {tuple(in_shape)} to {shape}; h + F(h) needs the same shape")
        return shape

    @property
    def affine(self):
        return all(layer.affine for layer in self.block)

    def spec(self):
        return "residual(" + " > ".join(layer.spec() for layer in self.block) + ")"


# ---- nonlinear layers ----------------------------------------------------------------


@dataclass(frozen=True)
class Activation(Layer):
    """An entrywise activation from symnet's catalogue (``relu``, ``tanh``, ``sigmoid``...)."""

    name: str = "relu"
    kind = "activation"

    def output_shape(self, in_shape):
        return tuple(in_shape)

    @property
    def affine(self):
        return self.name == "identity"

    def spec(self):
        return self.name


def ReLU() -> Activation:
    return Activation("relu")


def Tanh() -> Activation:
    return Activation("tanh")


def Sigmoid() -> Activation:
    return Activation("sigmoid")


@dataclass(frozen=True)
class LayerNorm(Layer):
    """Normalisation over the last axis of an example: ``(x - mean) / sqrt(var + eps) *
    gamma + beta`` (biased variance, as PyTorch)."""

    eps: float = 1e-5
    kind = "layernorm"

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def parameter_shapes(self, in_shape):
        return {"gamma": (in_shape[-1],), "beta": (in_shape[-1],)}


@dataclass(frozen=True)
class Embedding(Layer):
    """Lookup: an example is a vector of T token ids, the output row t is ``E[ids[t]]``."""

    vocabulary: int
    dim: int
    kind = "embedding"

    def __post_init__(self):
        _positive(self.vocabulary, "embedding: vocabulary")
        _positive(self.dim, "embedding: dim")

    def output_shape(self, in_shape):
        if len(in_shape) != 1:
            raise ShapeError(f"embedding needs input (tokens,), got {in_shape}")
        return (in_shape[0], self.dim)

    def parameter_shapes(self, in_shape):
        return {"E": (self.vocabulary, self.dim)}

    def spec(self):
        return f"embedding({self.vocabulary}, {self.dim})"


@dataclass(frozen=True)
class Attention(Layer):
    """Single-head scaled dot-product self-attention on (T, d): ``softmax(Q K^T / sqrt(d_k)) V``
    with ``Q = X W_Q``, ``K = X W_K``, ``V = X W_V``; softmax along each row."""

    d_k: int | None = None
    kind = "attention"

    def output_shape(self, in_shape):
        if len(in_shape) != 2:
            raise ShapeError(f"attention needs input (tokens, features), got {in_shape}")
        return tuple(in_shape)

    def parameter_shapes(self, in_shape):
        d = in_shape[-1]
        dk = self.d_k or d
        return {"WQ": (d, dk), "WK": (d, dk), "WV": (d, d)}


# ---- the network ---------------------------------------------------------------------


@dataclass
class Sequential:
    """Layers applied in order to one example of ``input_shape`` (batched numerically).

    ``weights`` (name -> array) may be attached; without them parameters stay symbolic."""

    layers: tuple
    input_shape: tuple
    weights: dict | None = None
    convention: str = "row"
    names: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.layers = tuple(self.layers)
        if not self.layers:
            raise SpecError("a network needs at least one layer")
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise SpecError(f"{layer!r} is not a layer")
        if isinstance(self.input_shape, int):
            self.input_shape = (self.input_shape,)
        self.input_shape = tuple(int(_positive(d, "input_shape")) for d in self.input_shape)
        if self.convention not in ("row", "column", "torch"):
            raise SpecError(f"convention must be row, column or torch, got {self.convention!r}")
        self.shapes()  # shape errors now, naming the layer
        if self.weights is not None:
            self._check_weights(self.weights)

    def shapes(self) -> list[tuple]:
        """The example shape before the first layer and after each layer."""
        out = [self.input_shape]
        for i, layer in enumerate(self.layers, 1):
            try:
                out.append(tuple(layer.output_shape(out[-1])))
            except (ShapeError, SpecError) as exc:
                raise type(exc)(f"layer {i} ({layer.spec()}): {exc}") from None
        return out

    @property
    def output_shape(self) -> tuple:
        return self.shapes()[-1]

    def parameters(self) -> dict[str, tuple]:
        """Every parameter's name and shape, in layer order (``W1``, ``b1``, ``K2``...)."""
        out: dict[str, tuple] = {}
        for i, (layer, shape) in enumerate(zip(self.layers, self.shapes()), 1):
            _collect(layer, shape, str(i), out)
        return out

    @property
    def is_affine(self) -> bool:
        return all(layer.affine for layer in self.layers)

    def _check_weights(self, weights: dict) -> None:
        import numpy as np

        wanted = self.parameters()
        missing = [n for n in wanted if n not in weights]
        if missing:
            raise SpecError(f"weights: no value for {', '.join(missing)}")
        for name, shape in wanted.items():
            got = np.shape(weights[name])
            if tuple(got) != tuple(shape):
                raise ShapeError(f"weights: {name} has shape {tuple(got)}, the network needs {tuple(shape)}")

    def with_weights(self, weights: dict) -> Sequential:
        return Sequential(self.layers, self.input_shape, dict(weights), self.convention)

    def random_weights(self, seed: int = 0, scale: float = 1.0) -> dict:
        """Seeded normal weights (variances positive) for every parameter."""
        import numpy as np

        rng = np.random.default_rng(seed)
        out = {}
        for name, shape in self.parameters().items():
            if name.startswith("var"):
                out[name] = rng.uniform(0.5, 2.0, size=shape)
            else:
                out[name] = scale * rng.normal(size=shape) / max(1.0, np.sqrt(_fan_in(shape)))
        return out

    def spec(self) -> str:
        return " > ".join(layer.spec() for layer in self.layers)

    def to_svg(self) -> str:
        """A picture of the network: layers, shapes, skip connections (SVG)."""
        from symnet.render.picture import network_svg

        return network_svg(self)

    def __repr__(self) -> str:
        return f"Network({self.spec()!r}, input_shape={self.input_shape})"


def _fan_in(shape: tuple) -> int:
    n = 1
    for d in shape[:-1] if len(shape) > 1 else shape:
        n *= d
    return n


def _collect(layer: Layer, in_shape: tuple, index: str, out: dict) -> None:
    if isinstance(layer, Residual):
        shape = in_shape
        for j, inner in enumerate(layer.block, 1):
            _collect(inner, shape, f"{index}_{j}", out)
            shape = inner.output_shape(shape)
        return
    for stem, shape in layer.parameter_shapes(in_shape).items():
        out[f"{stem}{index}"] = tuple(shape)
