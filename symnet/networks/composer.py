"""The composer: dense networks as SymPy matrix expressions.

Row-vector convention, as in the source: ``h_0 = x`` is ``1 x n_0``, layer l
computes ``z_l = h_{l-1} W_l + b_l`` and ``h_l = f_l(z_l)``, with ``W_l`` of
shape ``n_{l-1} x n_l`` and ``b_l`` of shape ``1 x n_l``; the output is
``y = h_L``.  Symbols are named exactly ``x``, ``W1..WL``, ``b1..bL``,
``h1..h_{L-1}``, ``y``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.sympify import _sympify
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from symnet.errors import ShapeError, SpecError
from symnet.networks.activations import BoundActivation, parse_spec

#: Widths above this are refused (symbolic work is fine, numeric checks are not).
MAX_WIDTH = 1024
#: Depths above this are refused.
MAX_DEPTH = 1000

_DIM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def dimension(value: Any, where: str = "width") -> sp.Expr:
    """A layer width: a positive integer, or a name for a symbolic dimension."""
    if isinstance(value, sp.Symbol):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        n = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip(), re.ASCII):
        n = int(value.strip())
    elif isinstance(value, str) and _DIM_NAME.match(value.strip()):
        return sp.Symbol(value.strip(), integer=True, positive=True)
    elif isinstance(value, sp.Integer):
        n = int(value)
    else:
        raise SpecError(f"{where} {value!r} is not a positive integer or a name")
    if n < 1:
        raise SpecError(f"{where} {n} must be at least 1")
    if n > MAX_WIDTH:
        raise SpecError(f"{where} {n} exceeds the limit of {MAX_WIDTH}")
    return sp.Integer(n)


def apply_elementwise(activation: BoundActivation, arg: sp.MatrixExpr) -> sp.MatrixExpr:
    """``f(arg)`` entry by entry, as a SymPy expression (identity returns ``arg``)."""
    if activation.name == "identity":
        return arg
    return elementwise(activation.lam, arg)


def elementwise(lam: sp.Lambda, arg: sp.MatrixExpr) -> sp.MatrixExpr:
    """``ElementwiseApplyFunction(lam, arg)`` without SymPy's 1x1 shortcut, which
    calls ``lam`` on the matrix itself (``Max(0, M)`` then raises)."""
    if not isinstance(arg, sp.MatrixExpr):
        raise ShapeError(f"elementwise function applied to a non-matrix {arg}")
    return sp.Basic.__new__(ElementwiseApplyFunction, lam, arg)


def matmul(*factors: Any) -> sp.MatrixExpr:
    """A product kept in the order given (no evaluation, one factor returns itself).

    Shapes of neighbouring matrix factors must agree (symbnet.errors.ShapeError)."""
    factors = [_sympify(f) for f in factors]
    factors = [f for f in factors if isinstance(f, sp.MatrixExpr) or f != 1]
    if len(factors) == 1:
        return factors[0]
    mats = [f for f in factors if isinstance(f, sp.MatrixExpr)]
    if not mats:
        raise ShapeError("a matrix product needs a matrix factor")
    for left, right in zip(mats, mats[1:]):
        if left.cols != right.rows:
            raise ShapeError(f"shapes {left.rows}x{left.cols} and {right.rows}x{right.cols} cannot be multiplied")
    return sp.MatMul._from_args(tuple(factors))


def matadd(*terms: Any) -> sp.MatrixExpr:
    """A sum kept in the order given: textbook order survives printing.

    All terms must have the same shape (symnet.errors.ShapeError)."""
    if not terms:
        raise ShapeError("an empty sum has no shape: give at least one term")
    if len(terms) == 1:
        return terms[0]
    first = terms[0]
    for t in terms[1:]:
        if t.shape != first.shape:
            raise ShapeError(f"shapes {first.rows}x{first.cols} and {t.rows}x{t.cols} cannot be added")
    return sp.MatAdd._from_args(tuple(terms))


@dataclass(frozen=True)
class Layer:
    """Layer ``l``: ``h_l = f_l(h_{l-1} W_l + b_l)``."""

    index: int
    W: sp.MatrixSymbol
    b: sp.MatrixSymbol
    activation: BoundActivation

    @property
    def fan_in(self) -> sp.Expr:
        return self.W.rows

    @property
    def fan_out(self) -> sp.Expr:
        return self.W.cols


class Network:
    """A dense network; build one with :meth:`Network.dense`.

    ``Network([Conv1d(k=3), BatchNorm(), ReLU(), Flatten(), Linear(4)], input_shape=(1, 8))``
    (a list of layers) builds a :class:`~symnet.networks.layers.Sequential` layer network."""

    def __new__(cls, *args: Any, **kwargs: Any):
        from symnet.networks.layers import Layer, Sequential

        first = args[0] if args else kwargs.get("layers")
        if isinstance(first, (list, tuple)) and first and all(isinstance(x, Layer) for x in first):
            return Sequential(*args, **kwargs)
        return super().__new__(cls)

    def __init__(self, widths: Sequence[sp.Expr], activations: Sequence[BoundActivation]):
        self.widths = tuple(widths)
        self.x = sp.MatrixSymbol("x", 1, self.widths[0])
        self.layers = tuple(
            Layer(
                l,
                sp.MatrixSymbol(f"W{l}", self.widths[l - 1], self.widths[l]),
                sp.MatrixSymbol(f"b{l}", 1, self.widths[l]),
                act,
            )
            for l, act in enumerate(activations, start=1)
        )
        self.y = sp.MatrixSymbol("y", 1, self.widths[-1])

    @classmethod
    def dense(
        cls,
        widths: Sequence[Any],
        activation: str | BoundActivation | Sequence[str | BoundActivation] = "identity",
    ) -> Network:
        """A fully connected network with the given widths ``n_0, ..., n_L``.

        ``activation`` is one spec for every layer or a list with one per layer;
        a spec is a catalogue name with optional parameters (``"affine(a=2, c=-1)"``).
        Widths are positive integers or names of symbolic dimensions.
        """
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Iterable):
            raise SpecError("widths must be a list such as [3, 4, 4, 2]")
        widths = list(widths)
        if len(widths) < 2:
            raise SpecError("a network needs at least two widths (input and output)")
        if len(widths) - 1 > MAX_DEPTH:
            raise SpecError(f"depth {len(widths) - 1} exceeds the limit of {MAX_DEPTH}")
        dims = [dimension(w, f"width {i}") for i, w in enumerate(widths)]
        depth = len(dims) - 1
        if isinstance(activation, (str, BoundActivation)):
            specs = [activation] * depth
        else:
            specs = list(activation)
            if len(specs) != depth:
                raise SpecError(
                    f"{len(specs)} activations given for {depth} layers; give one, or one per layer"
                )
        acts = []
        for l, spec in enumerate(specs, start=1):
            if isinstance(spec, BoundActivation):
                acts.append(spec)
            else:
                try:
                    acts.append(parse_spec(spec, layer=l))
                except SpecError as exc:
                    raise SpecError(f"layer {l}: {exc}") from None
        return cls(dims, acts)

    # -- structure ---------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.layers)

    def layer(self, l: int) -> Layer:
        """Layer ``l`` (1-based)."""
        if not 1 <= l <= self.depth:
            raise ShapeError(f"layer {l} does not exist (depth {self.depth})")
        return self.layers[l - 1]

    def h(self, l: int) -> sp.MatrixSymbol:
        """The symbol of ``h_l`` (``x`` for l = 0, ``y`` for l = L)."""
        if l == 0:
            return self.x
        if l == self.depth:
            return self.y
        return sp.MatrixSymbol(f"h{l}", 1, self.widths[l])

    def z(self, l: int, inp: sp.MatrixExpr | None = None) -> sp.MatrixExpr:
        """The pre-activation ``z_l = h_{l-1} W_l + b_l`` (``inp`` replaces ``h_{l-1}``)."""
        layer = self.layer(l)
        inp = self.h(l - 1) if inp is None else inp
        return matadd(matmul(inp, layer.W), layer.b)

    def layer_expr(self, l: int, inp: sp.MatrixExpr | None = None) -> sp.MatrixExpr:
        """``f_l(h_{l-1} W_l + b_l)``."""
        return apply_elementwise(self.layer(l).activation, self.z(l, inp))

    def definitions(self) -> list[tuple[sp.MatrixSymbol, sp.MatrixExpr]]:
        """``h_l := f_l(h_{l-1} W_l + b_l)`` for l = 1..L (``h_L`` is ``y``)."""
        return [(self.h(l), self.layer_expr(l)) for l in range(1, self.depth + 1)]

    @property
    def output(self) -> sp.MatrixExpr:
        """The whole network as one nested expression in ``x`` and the parameters."""
        out = self.x
        for l in range(1, self.depth + 1):
            out = self.layer_expr(l, out)
        return out

    @property
    def parameters(self) -> list[sp.MatrixSymbol]:
        """``W1, b1, W2, b2, ...``."""
        return [m for layer in self.layers for m in (layer.W, layer.b)]

    @property
    def scalar_parameters(self) -> list[sp.Symbol]:
        """Scalar symbols in the activations (``a1, c1, ...`` for bare affine)."""
        seen: dict[sp.Symbol, None] = {}
        for layer in self.layers:
            for _, v in layer.activation.params:
                for s in sorted(v.free_symbols, key=lambda s: s.name):
                    seen.setdefault(s, None)
        return list(seen)

    @property
    def is_affine(self) -> bool:
        return all(layer.activation.is_affine for layer in self.layers)

    @property
    def has_symbolic_widths(self) -> bool:
        return any(not w.is_Integer for w in self.widths)

    # -- numbers -----------------------------------------------------------
    def random_weights(self, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
        """Seeded standard-normal weights (times ``scale``), keyed ``W1, b1, ...``."""
        if self.has_symbolic_widths:
            raise ShapeError("numeric weights need integer widths")
        rng = np.random.default_rng(seed)
        out = {}
        for layer in self.layers:
            out[layer.W.name] = scale * rng.standard_normal((int(layer.fan_in), int(layer.fan_out)))
            out[layer.b.name] = scale * rng.standard_normal((1, int(layer.fan_out)))
        return out

    def forward(self, x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
        """NumPy forward pass on a batch ``x`` (N x n_0), with the catalogue's NumPy forms."""
        h = np.atleast_2d(np.asarray(x, dtype=float))
        for layer in self.layers:
            h = layer.activation.numpy(h @ weights[layer.W.name] + weights[layer.b.name])
        return h

    def __repr__(self) -> str:
        widths = ",".join(str(w) for w in self.widths)
        acts = ",".join(layer.activation.spec for layer in self.layers)
        return f"Network.dense([{widths}], [{acts}])"

    def _repr_html_(self) -> str:
        from symnet.render.display import network_html

        return network_html(self)

    def _repr_markdown_(self) -> str:
        from symnet.render.display import network_markdown

        return network_markdown(self)

    def _repr_latex_(self) -> str:
        from symnet.render.display import network_latex

        return network_latex(self)
