"""Collapse of layer networks: affine stacks become one map ``x W' + b'``, checked.

An affine layer acts on the row of an example's entries (C order, PyTorch's flatten) as
``h_l = h_{l-1} M_l + c_l``.  :func:`collapse_layers`

* composes the layers' maps into ``W' = M_1 ... M_L`` and ``b'`` (numerically, when the
  network's weights are attached or drawn), and compares ``x W' + b'`` with the forward
  pass on seeded inputs;
* derives the collapse step by step, each step decided by the kernel: the general chain
  with a named map per layer, and the layer-specific facts, proved on their own:
  two convolutions are one convolution whose kernel is the convolution of the two
  (size ``k1 + k2 - 1``), batch norm at inference folds into the layer before
  (``W' = W diag(s)``, ``b' = (b - mu) (.) s + beta``, ``s = gamma / sqrt(var + eps)``),
  a linear residual block is ``x (I + W) + b``;
* for a network that is not affine, finds a witness ``F(t a + (1-t) b) != t F(a) + (1-t) F(b)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symnet.errors import SpecError
from symnet.kernel import Context
from symnet.kernel import terms as T
from symnet.networks import layer_numeric as LN
from symnet.networks.layers import (
    Attention,
    AvgPool1d,
    AvgPool2d,
    BatchNorm,
    Conv1d,
    Conv2d,
    Dropout,
    Flatten,
    Layer,
    Linear,
    Reshape,
    Residual,
    Sequential,
)
from symnet.notes.derivation import Chain, ChainBuilder, Derivation

#: ``max |x W' + b' - forward(x)| / max |forward(x)|`` at most this: the collapse holds.
REL_TOL = 1e-9
#: A witness's gap, relative to the size of the values, at least this (far above round-off).
WITNESS_GAP = 1e-6
#: The composed map of a collapse has at most this many entries (input size x widest layer).
MAX_COLLAPSED = 4_000_000
#: Explicit matrices (convolutions written out) larger than this many entries are not built.
MAX_EXPLICIT = 20_000


def _size(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# ---------------------------------------------------------------------------
# numeric maps


def layer_map(layer: Layer, in_shape: tuple, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(M, c)`` with ``flatten(layer(x)) = flatten(x) M + c`` for an affine layer, read
    off the layer's forward pass at 0 and at the unit vectors."""
    one = Sequential([layer], in_shape)
    names = list(one.parameters())
    weights = {n: params[n] for n in names}
    n_in = _size(in_shape)
    basis = np.concatenate([np.zeros((1, n_in)), np.eye(n_in)]).reshape((n_in + 1, *in_shape))
    out = LN.forward(one, basis, weights).reshape(n_in + 1, -1)
    return out[1:] - out[:1], out[0]


_PARAM = re.compile(r"^([A-Za-z]+)(\d+(?:_\d+)*)$")


def _rename(index: str, params: dict) -> dict:
    """The parameters of the layer at ``index`` (``3``, or ``3_1`` inside a residual block)
    under the names a one-layer network gives them (``W1``)."""
    out = {}
    for name, value in params.items():
        m = _PARAM.match(name)
        if m and m.group(2) == index:
            out[m.group(1) + "1"] = value
    return out


def _inside(index: str, params: dict) -> dict:
    """The parameters of the layers inside the residual block at ``index``, named as the
    block's own network names them (``W3_2`` -> ``W2``, ``W3_2_1`` -> ``W2_1``)."""
    out = {}
    for name, value in params.items():
        m = _PARAM.match(name)
        if m and m.group(2).startswith(index + "_"):
            out[m.group(1) + m.group(2)[len(index) + 1:]] = value
    return out


@dataclass(frozen=True)
class LayerWitness:
    """Weights, inputs ``a, b`` (batches, with the batch axis) and ``t`` with
    ``F(t a + (1-t) b) != t F(a) + (1-t) F(b)``."""

    weights: dict
    input_a: np.ndarray
    input_b: np.ndarray
    t: float
    lhs: np.ndarray
    rhs: np.ndarray
    gap: float

    def to_dict(self) -> dict:
        return {"weights": {k: np.asarray(v).tolist() for k, v in self.weights.items()},
                "input_a": self.input_a.tolist(), "input_b": self.input_b.tolist(), "t": self.t,
                "lhs": self.lhs.tolist(), "rhs": self.rhs.tolist(), "gap": self.gap}


@dataclass(frozen=True)
class LayerCollapseResult:
    """What :func:`collapse_layers` found; ``W``/``b`` are numeric (None when not affine)."""

    network: Sequential
    collapsible: bool
    W: np.ndarray | None
    b: np.ndarray | None
    derivation: Derivation
    witness: LayerWitness | None
    numeric_max_rel_error: float
    weights: dict = field(default_factory=dict, repr=False)
    #: beside each chain, the definitions it was checked with (for translating it)
    chain_definitions: tuple = field(default=(), repr=False)

    @property
    def verdict(self) -> str:
        return self.derivation.verdict

    @property
    def ok(self) -> bool:
        if self.collapsible:
            return self.derivation.ok and self.numeric_max_rel_error <= REL_TOL
        return self.witness is not None

    def function(self):
        """``f(x)`` for a batch ``x`` in the network's layout: the collapsed map's output,
        shaped as the network's output."""
        if not self.collapsible:
            raise SpecError("the network is not affine: there is no collapsed map to evaluate")
        W, b, shape = self.W, self.b, self.network.output_shape
        n_in = _size(self.network.input_shape)

        def collapsed(x):
            x = np.asarray(x, dtype=float)
            flat = x.reshape(x.shape[0], n_in)
            return (flat @ W + b).reshape((x.shape[0], *shape))

        return collapsed

    def to_dict(self) -> dict:
        from symnet.render.printing import derivation_dict

        return {"network": self.network.spec(), "input_shape": list(self.network.input_shape),
                "collapsible": self.collapsible, "verdict": self.verdict,
                "numeric_max_rel_error": self.numeric_max_rel_error,
                "W_shape": None if self.W is None else list(self.W.shape),
                "derivation": derivation_dict(self.derivation),
                "witness": None if self.witness is None else self.witness.to_dict()}

    def to_text(self) -> str:
        lines = [self.derivation.to_text()]
        if self.collapsible:
            lines.append(f"numeric check: x W' + b' reproduces the forward pass "
                         f"(relative error {self.numeric_max_rel_error:.1e})")
        elif self.witness is not None:
            w = self.witness
            lines.append(f"not affine: with t = {w.t:g}, F(t a + (1-t) b) and t F(a) + (1-t) F(b) "
                         f"differ by {w.gap:.3g} (inputs and weights in the JSON output)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _numeric_collapse(net: Sequential, weights: dict) -> tuple[np.ndarray, np.ndarray]:
    shapes = net.shapes()
    W = np.eye(_size(net.input_shape))
    b = np.zeros(_size(net.input_shape))
    for i, (layer, shape) in enumerate(zip(net.layers, shapes), 1):
        if isinstance(layer, Residual):
            M, c = _numeric_collapse(Sequential(layer.block, shape), _inside(str(i), weights))
            M = M + np.eye(M.shape[0])
        else:
            M, c = layer_map(layer, shape, _rename(str(i), weights))
        W, b = W @ M, b @ M + c
    return W, b


def _seeded_inputs(net: Sequential, seed: int, count: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, *net.input_shape))


def _witness(net: Sequential, weights: dict, seed: int) -> LayerWitness | None:
    """Inputs are batches (with the batch axis): one example, or four when a layer uses
    batch statistics (batch norm in training is affine on a batch of one)."""
    rng = np.random.default_rng(seed + 1)
    batch = 4 if any(isinstance(layer, BatchNorm) and layer.training for layer in _all_layers(net.layers)) else 1
    for trial in range(20):
        scale = 2.0 ** (trial % 4)
        a = scale * rng.normal(size=(batch, *net.input_shape))
        b = scale * rng.normal(size=(batch, *net.input_shape))
        t = 0.3
        lhs = LN.forward(net, t * a + (1 - t) * b, weights)
        rhs = t * LN.forward(net, a, weights) + (1 - t) * LN.forward(net, b, weights)
        size = max(1.0, float(np.max(np.abs(lhs))), float(np.max(np.abs(rhs))))
        gap = float(np.max(np.abs(lhs - rhs)))
        if gap > WITNESS_GAP * size:
            return LayerWitness(dict(weights), a, b, t, lhs, rhs, gap)
    return None


def _all_layers(layers) -> list:
    out = []
    for layer in layers:
        out.append(layer)
        if isinstance(layer, Residual):
            out.extend(_all_layers(layer.block))
    return out


# ---------------------------------------------------------------------------
# symbolic maps, checked by the kernel


def _row(name: str, n: int) -> T.Term:
    return T.matrix(name, 1, n)


def tap_name(kernel: str, *index: int) -> str:
    """The scalar name of a kernel entry: ``tap_name("K2", 0)`` is ``k_{2,0}`` (printed
    ``k_(2,0)`` as text, :math:`k_{2,0}` in LaTeX); channels first when there are several."""
    m = re.fullmatch(r"([A-Za-z]+)(\d*)", kernel)
    base, layer = (m.group(1).lower(), m.group(2)) if m else (kernel, "")
    return f"{base}_{{{','.join([layer, *map(str, index)] if layer else map(str, index))}}}"


def entry_name(base: str, i: int) -> str:
    """``x_{3}``: entry 3 of the row of an example's entries."""
    return f"{base}_{{{i}}}"


def conv_matrix(layer: Conv1d | Conv2d, in_shape: tuple, kernel: str, taps=None) -> T.Term:
    """The matrix of a convolution with symbolic kernel entries (``k_{l,o,c,j}``), acting on
    the row of the input's entries: entry ``[(c, t), (o, i)] = K[o, c, j]`` where
    ``t = i stride + j dilation - padding``.  ``taps(o, c, *j)``, if given, is the term of
    each kernel entry instead of its name."""
    n_in, n_out = _size(in_shape), _size(layer.output_shape(in_shape))
    if n_in * n_out > MAX_EXPLICIT:
        raise SpecError(f"{layer.spec()}: {n_in} x {n_out} is too large to write the convolution out")
    rows = [[T.num(0)] * n_out for _ in range(n_in)]
    for key, pairs in conv_taps(layer, in_shape).items():
        w = taps(*key) if taps else _tap(layer, in_shape, kernel, *key)
        for p, q in pairs:
            rows[q][p] = w
    return T.explicit(rows)


def conv_taps(layer, in_shape: tuple) -> dict:
    """Kernel entry ``(o, c, j)`` (``(o, c, p, q)`` in 2-D) -> the (output index, input index)
    pairs of the rows of entries it connects (stride, padding, dilation included)."""
    out = {}
    out_shape = layer.output_shape(in_shape)
    if isinstance(layer, Conv1d):
        c_in, n = in_shape
        o_ch, m = out_shape
        for o in range(o_ch):
            for c in range(c_in):
                for j in range(layer.k):
                    pairs = []
                    for i in range(m):
                        t = i * layer.stride + j * layer.dilation - layer.padding
                        if 0 <= t < n:
                            pairs.append((o * m + i, c * n + t))
                    out[(o, c, j)] = pairs
        return out
    c_in, hh, ww = in_shape
    o_ch, mh, mw = out_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = layer.k, layer.stride, layer.padding, layer.dilation
    for o in range(o_ch):
        for c in range(c_in):
            for p in range(kh):
                for q in range(kw):
                    pairs = []
                    for i in range(mh):
                        for j in range(mw):
                            y, x = i * sh + p * dh - ph, j * sw + q * dw - pw
                            if 0 <= y < hh and 0 <= x < ww:
                                pairs.append(((o * mh + i) * mw + j, (c * hh + y) * ww + x))
                    out[(o, c, p, q)] = pairs
    return out


def composed_kernel(first: Conv1d | Conv2d, second: Conv1d | Conv2d, in_shape: tuple,
                    k1: str, k2: str) -> tuple[Any, T.Term]:
    """The single convolution that two stride-1, unpadded, undilated convolutions make:
    kernel ``K[o, c, j] = sum_{p, i + l = j} K2[o, p, l] K1[p, c, i]`` of size ``k1 + k2 - 1``,
    and its matrix written out with those entries."""
    if isinstance(first, Conv1d):
        k = first.k + second.k - 1
        layer = Conv1d(k=k, out_channels=second.out_channels)
    else:
        k = (first.k[0] + second.k[0] - 1, first.k[1] + second.k[1] - 1)
        layer = Conv2d(k=k, out_channels=second.out_channels)
    mid = first.output_shape(in_shape)
    M1, M2 = conv_matrix(first, in_shape, k1), conv_matrix(second, mid, k2)
    # the composed matrix entry by entry: the kernel will decide whether it is M1 M2
    out_shape = layer.output_shape(in_shape)
    n_in, n_out = _size(in_shape), _size(out_shape)
    rows1 = [M1.args[i * M1.cols:(i + 1) * M1.cols] for i in range(M1.rows)]
    cols2 = [[M2.args[r * M2.cols + j] for r in range(M2.rows)] for j in range(M2.cols)]
    entries = []
    for i in range(n_in):
        row = []
        for j in range(n_out):
            products = [T.mul(a, b) for a, b in zip(rows1[i], cols2[j])
                        if not (a.op == "num" or b.op == "num")]
            row.append(T.add(*products) if len(products) > 1 else (products[0] if products else T.num(0)))
        entries.append(row)
    return layer, T.explicit(entries)


def _conv_pair_chain(ctx: Context, first, second, in_shape: tuple, index: int) -> tuple[Chain, str]:
    """``x T1 T2 = x T`` with T the matrix of the composed convolution: checked entrywise."""
    mid = first.output_shape(in_shape)
    out = second.output_shape(mid)
    n0, n1, n2 = _size(in_shape), _size(mid), _size(out)
    k1, k2 = f"K{index}", f"K{index + 1}"
    T1 = T.matrix(f"T{index}", n0, n1)
    T2 = T.matrix(f"T{index + 1}", n1, n2)
    ctx.define(T1, conv_matrix(first, in_shape, k1))
    ctx.define(T2, conv_matrix(second, mid, k2))
    layer, composed = composed_kernel(first, second, in_shape, k1, k2)
    Tc = T.matrix(f"T{index}{index + 1}", n0, n2)
    ctx.define(Tc, composed)
    x = T.matrix(f"h{index - 1}" if index > 1 else "x", 1, n0)
    chain = ChainBuilder(ctx, T.mul(x, T1, T2),
                         title=f"Layers {index} and {index + 1}: two convolutions are one convolution")
    chain.step(T.mul(x, Tc), f"T{index} T{index + 1} is the matrix of one convolution with kernel "
               f"{k2} * {k1} (size {_kernel_size(layer)})", uses=[T1, T2, Tc])
    if isinstance(first, Conv1d):
        forms = (f"y_i = sum_j {k1}_j x_(i+j)", f"y_i = sum_j {k2}_j x_(i+j)",
                 f"({k2} * {k1})_j = sum_(i+l=j) {k2}_l {k1}_i")
    else:
        forms = (f"y_ij = sum_pq {k1}_pq x_(i+p, j+q)", f"y_ij = sum_pq {k2}_pq x_(i+p, j+q)",
                 f"({k2} * {k1})_pq = sum_(a+c=p, b+d=q) {k2}_cd {k1}_ab")
    note = (f"T{index}, T{index + 1}: the matrices of the convolutions {forms[0]} and {forms[1]} "
            f"(per channel pair) on the row of entries; T{index}{index + 1} that of the convolution with "
            f"kernel {forms[2]} (summed over the middle channels), size {_kernel_size(layer)}")
    return chain.build(), note


def _tap(layer, in_shape: tuple, kernel: str, o: int, c: int, *j: int) -> T.Term:
    one = (layer.out_channels, in_shape[0]) == (1, 1)
    return T.scalar(tap_name(kernel, *j) if one else tap_name(kernel, o, c, *j))


def _channel_row(name: str, channels: int, positions: int) -> T.Term:
    """A row with one named entry per channel, repeated over the channel's positions."""
    return T.explicit([[T.scalar(entry_name(name, o)) for o in range(channels) for _ in range(positions)]])


def _conv_bn_chain(ctx: Context, conv, in_shape: tuple, index: int) -> tuple[Chain, str]:
    """Batch norm after a convolution: ``(x T + c - mu) S + beta = x T' + c'`` with
    ``T'`` the convolution with kernel ``s_o k_(o,c,j)`` and ``c'_o = (b_o - mu_o) s_o + beta_o``."""
    out = conv.output_shape(in_shape)
    o_ch, positions = out[0], _size(out) // out[0]
    n0, n1 = _size(in_shape), _size(out)
    k, l2 = f"K{index}", index + 1
    s = [T.scalar(entry_name(f"s{l2}", o)) for o in range(o_ch)]
    names = {}
    for name, term in [(f"T{index}", conv_matrix(conv, in_shape, k)),
                       (f"S{l2}", T.explicit([[s[i // positions] if i == j else T.num(0) for j in range(n1)]
                                              for i in range(n1)])),
                       (f"c{index}", _channel_row(f"b{index}", o_ch, positions)),
                       (f"mu{l2}", _channel_row(f"mu{l2}", o_ch, positions)),
                       (f"beta{l2}", _channel_row(f"beta{l2}", o_ch, positions)),
                       (f"T'{index}", conv_matrix(conv, in_shape, k, taps=lambda o, c, *j: T.mul(
                           s[o], _tap(conv, in_shape, k, o, c, *j)))),
                       (f"c'{index}", T.explicit([[T.add(T.mul(T.sub(T.scalar(entry_name(f"b{index}", o)),
                                                                     T.scalar(entry_name(f"mu{l2}", o))), s[o]),
                                                         T.scalar(entry_name(f"beta{l2}", o)))
                                                   for o in range(o_ch) for _ in range(positions)]]))]:
        shape = (term.rows, term.cols)
        names[name] = T.matrix(name, *shape)
        ctx.define(names[name], term)
    x = T.matrix("x" if index == 1 else f"h{index - 1}", 1, n0)
    Tm, S, c, mu, beta, Tp, cp = (names[n] for n in (f"T{index}", f"S{l2}", f"c{index}", f"mu{l2}",
                                                      f"beta{l2}", f"T'{index}", f"c'{index}"))
    chain = ChainBuilder(ctx, T.add(T.mul(T.sub(T.add(T.mul(x, Tm), c), mu), S), beta),
                         title=f"Batch norm (layer {l2}) folds into the convolution (layer {index})")
    chain.step(T.add(T.mul(x, Tm, S), T.mul(T.sub(c, mu), S), beta), "distributivity")
    chain.step(T.add(T.mul(x, Tp), cp), f"T{index} S{l2} is the convolution with kernel s_o k_(o,c,j); "
               f"c'{index} its bias", uses=[Tm, S, Tp, cp, c, mu, beta])
    note = (f"S{l2} = diag(s{l2}) repeated over each channel's positions, s{l2}_o = gamma{l2}_o / "
            f"sqrt(var{l2}_o + eps); T'{index} is the convolution with kernel k'_(o,c,j) = s{l2}_o k_(o,c,j) "
            f"and c'{index}_o = (b{index}_o - mu{l2}_o) s{l2}_o + beta{l2}_o")
    return chain.build(), note


def _conv_pool_chain(ctx: Context, conv: Conv1d, pool: AvgPool1d, in_shape: tuple, index: int) -> tuple[Chain, str]:
    """Average pooling after a stride-1 convolution is one strided convolution:
    kernel ``k''_j = (1/p) sum_(j-p < i <= j) k_i`` of size ``k + p - 1``, stride the pool's."""
    mid = conv.output_shape(in_shape)
    out = pool.output_shape(mid)
    n0, n1, n2 = _size(in_shape), _size(mid), _size(out)
    k = f"K{index}"
    one = Conv1d(k=conv.k + pool.k - 1, out_channels=conv.out_channels, stride=pool.stride)
    if one.output_shape(in_shape) != out:
        raise SpecError("the pooling windows do not tile the convolution's output")
    c_ch, m = mid
    P = [[T.num(0)] * n2 for _ in range(n1)]
    for ch in range(c_ch):
        for i in range(out[1]):
            for j in range(pool.k):
                P[ch * m + i * pool.stride + j][ch * out[1] + i] = T.div(T.num(1), T.num(pool.k))

    def tap(o, c, j):
        parts = [_tap(conv, in_shape, k, o, c, i) for i in range(max(0, j - pool.k + 1), min(conv.k, j + 1))]
        total = T.add(*parts) if len(parts) > 1 else parts[0]
        return T.div(total, T.num(pool.k))

    Tm, Pm, Tc = T.matrix(f"T{index}", n0, n1), T.matrix(f"P{index + 1}", n1, n2), T.matrix(f"T{index}{index + 1}", n0, n2)
    ctx.define(Tm, conv_matrix(conv, in_shape, k))
    ctx.define(Pm, T.explicit(P))
    ctx.define(Tc, conv_matrix(one, in_shape, k, taps=tap))
    x = T.matrix("x" if index == 1 else f"h{index - 1}", 1, n0)
    chain = ChainBuilder(ctx, T.mul(x, Tm, Pm),
                         title=f"Layers {index} and {index + 1}: average pooling after a convolution is one convolution")
    chain.step(T.mul(x, Tc), f"T{index} P{index + 1} is the convolution with kernel k''_j = "
               f"(1/{pool.k}) sum of {pool.k} neighbouring k_i (size {one.k}, stride {pool.stride})",
               uses=[Tm, Pm, Tc])
    note = (f"P{index + 1}: the matrix of average pooling over windows of {pool.k}; T{index}{index + 1}: the "
            f"convolution with kernel k''_j = (1/{pool.k}) sum_(j-{pool.k} < i <= j) k_i of size {one.k}, "
            f"stride {pool.stride}")
    return chain.build(), note


def _value_path_chain(ctx: Context, shape: tuple, l: int) -> Chain:
    """Attention with its scores ``S = softmax(Q K^T / sqrt(d_k))`` held fixed is linear in
    the values: ``S (a V1 + b V2) W = a S V1 W + b S V2 W`` (the whole layer is not affine:
    the scores depend on the input too, see the witness)."""
    tokens, d = shape
    S = T.matrix(f"S{l}", tokens, tokens)
    V1, V2 = T.matrix("V", tokens, d), T.matrix("U", tokens, d)
    a, b = T.scalar("a"), T.scalar("b")
    chain = ChainBuilder(ctx, T.mul(S, T.add(T.mul(a, V1), T.mul(b, V2))),
                         title=f"Layer {l} (attention): for fixed scores S{l}, the value path is linear")
    chain.step(T.add(T.mul(a, S, V1), T.mul(b, S, V2)), "distributivity")
    return chain.build()


def _kernel_size(layer) -> str:
    return str(layer.k) if isinstance(layer, Conv1d) else f"{layer.k[0]} x {layer.k[1]}"


def batchnorm_fold_chain(ctx: Context, n_in: Any = "n", n_out: Any = "m", index: int = 1) -> Chain:
    """Batch norm at inference after a linear layer: ``(x W + b - mu) (.) s + beta =
    x W' + b'`` with ``W' = W diag(s)``, ``b' = (b - mu) (.) s + beta``."""
    x = T.matrix("x" if index == 1 else f"h{index - 1}", 1, n_in)
    W, b = T.matrix(f"W{index}", n_in, n_out), _row(f"b{index}", n_out)
    mu, beta, s = _row(f"mu{index + 1}", n_out), _row(f"beta{index + 1}", n_out), _row(f"s{index + 1}", n_out)
    z = T.matrix(f"z{index}", 1, n_out)
    ctx.define(z, T.add(T.mul(x, W), b))
    Wp, bp = T.matrix("W'", n_in, n_out), _row("b'", n_out)
    ctx.define(Wp, T.mul(W, T.diag(s)))
    ctx.define(bp, T.add(T.hadamard(T.sub(b, mu), s), beta))
    y = T.matrix(f"h{index + 1}", 1, n_out)
    chain = ChainBuilder(ctx, y, title=f"Batch norm (layer {index + 1}) folds into layer {index}")
    ctx.define(y, T.add(T.hadamard(T.sub(z, mu), s), beta))
    chain.step(T.add(T.hadamard(T.sub(z, mu), s), beta),
               f"batch norm at inference, s{index + 1} = gamma{index + 1} / sqrt(var{index + 1} + eps)", uses=[y])
    chain.step(T.add(T.hadamard(T.sub(T.add(T.mul(x, W), b), mu), s), beta), f"definition of z{index}", uses=[z])
    chain.step(T.add(T.mul(x, W, T.diag(s)), T.hadamard(T.sub(b, mu), s), beta),
               "a row times diag(s) is its Hadamard product with s")
    chain.step(T.add(T.mul(x, Wp), bp), "definition of W', b'", uses=[Wp, bp])
    chain.where.extend([(Wp, ctx.term_definitions[Wp]), (bp, ctx.term_definitions[bp])])
    return chain.build()


def residual_chain(ctx: Context, n: Any = "n", index: int = 1) -> Chain:
    """A linear residual block: ``h + (h W + b) = h (I + W) + b``."""
    h = T.matrix("x" if index == 1 else f"h{index - 1}", 1, n)
    W, b = T.matrix(f"W{index}", n, n), _row(f"b{index}", n)
    y = T.matrix(f"h{index}", 1, n)
    ctx.define(y, T.add(h, T.add(T.mul(h, W), b)))
    chain = ChainBuilder(ctx, y, title=f"Layer {index}: a linear residual block")
    chain.step(T.add(h, T.add(T.mul(h, W), b)), f"definition of h{index} (skip connection)", uses=[y])
    chain.step(T.add(T.mul(h, T.add(T.eye(n), W)), b), "distributivity")
    return chain.build()


def _general_chain(ctx: Context, net: Sequential) -> Chain:
    """``y = h_{L-1} M_L + c_L = ... = x W' + b'`` with one named map per layer."""
    sizes = [_size(s) for s in net.shapes()]
    L = len(net.layers)
    hs = [T.matrix("x", 1, sizes[0])] + [T.matrix(f"h{l}", 1, sizes[l]) for l in range(1, L)]
    hs.append(T.matrix("y", 1, sizes[L]))
    Ms = [T.matrix(f"M{l}", sizes[l - 1], sizes[l]) for l in range(1, L + 1)]
    cs = [_row(f"c{l}", sizes[l]) for l in range(1, L + 1)]
    for l in range(1, L + 1):
        ctx.define(hs[l], T.add(T.mul(hs[l - 1], Ms[l - 1]), cs[l - 1]))
    chain = ChainBuilder(ctx, hs[L], title="Collapse: one affine map per layer, composed")
    # current: x_k-form  h_k P + r  where P = M_{k+1} ... M_L, r a list of terms
    P: list = []
    rest: list = []
    k = L
    while k >= 1:
        expr_in = T.add(T.mul(hs[k - 1], Ms[k - 1]), cs[k - 1])
        head = T.mul(expr_in, *P) if P else expr_in
        chain.step(T.add(head, *rest) if rest else head, f"definition of {'y' if k == L else f'h{k}'}",
                   uses=[hs[k]])
        if P:
            rest = [T.mul(cs[k - 1], *P)] + rest
            P = [Ms[k - 1]] + P
            chain.step(T.add(T.mul(hs[k - 1], *P), *rest), "distributivity")
        else:
            rest, P = [cs[k - 1]], [Ms[k - 1]]
        k -= 1
    Wp = T.matrix("W'", sizes[0], sizes[L])
    bp = _row("b'", sizes[L])
    ctx.define(Wp, T.mul(*Ms) if len(Ms) > 1 else Ms[0])
    ctx.define(bp, T.add(*rest) if len(rest) > 1 else rest[0])
    chain.step(T.add(T.mul(hs[0], Wp), bp), "definition of W', b'", uses=[Wp, bp])
    chain.where.extend([(Wp, ctx.term_definitions[Wp]), (bp, ctx.term_definitions[bp])])
    return chain.build()


def _map_note(layer: Layer, l: int) -> str:
    if isinstance(layer, Linear):
        return f"M{l} = W{l}, c{l} = b{l} (linear)"
    if isinstance(layer, (Conv1d, Conv2d)):
        return f"M{l} = T{l}, the matrix of the convolution with kernel K{l}; c{l} = b{l} repeated over positions"
    if isinstance(layer, BatchNorm):
        return (f"M{l} = diag(s{l}) (s{l} = gamma{l} / sqrt(var{l} + eps) per channel), "
                f"c{l} = beta{l} - mu{l} (.) s{l}")
    if isinstance(layer, (AvgPool1d, AvgPool2d)):
        return f"M{l}: averaging windows of {layer.k}, c{l} = 0"
    if isinstance(layer, Residual):
        return f"M{l} = I + (the block's map), c{l} = the block's offset (skip connection)"
    if isinstance(layer, (Flatten, Reshape, Dropout)):
        return f"M{l} = I, c{l} = 0 ({layer.kind}: the row of entries is unchanged)"
    return f"M{l}, c{l}: the map of {layer.spec()}"


def derive(net: Sequential) -> Derivation:
    """The checked derivation of an affine layer network's collapse."""
    return _derive(net)[0]


def _derive(net: Sequential) -> tuple[Derivation, tuple]:
    """The derivation, and beside each chain the definitions its steps were checked with."""
    ctx = Context()
    chains = [_general_chain(ctx, net)]
    contexts = [ctx]
    notes = [_map_note(layer, l) for l, layer in enumerate(net.layers, 1)]
    shapes = net.shapes()

    def add(chain: Chain, context: Context) -> None:
        chains.append(chain)
        contexts.append(context)

    for l, (a, b) in enumerate(zip(net.layers, net.layers[1:]), 1):
        if _plain_conv(a) and _plain_conv(b) and type(a) is type(b):
            try:
                chain, note = _conv_pair_chain(ctx, a, b, shapes[l - 1], l)
            except SpecError as exc:
                notes.append(f"layers {l}, {l + 1}: {exc}")
                continue
            add(chain, ctx)
            notes.append(note)
        if isinstance(a, Linear) and isinstance(b, BatchNorm) and len(shapes[l - 1]) == 1:
            own = Context()
            add(batchnorm_fold_chain(own, shapes[l - 1][0], a.out, l), own)
        extra, own = None, Context()
        try:
            if isinstance(a, (Conv1d, Conv2d)) and isinstance(b, BatchNorm) and not b.training:
                extra = _conv_bn_chain(own, a, shapes[l - 1], l)
            elif isinstance(a, Conv1d) and _plain_conv(a) and isinstance(b, AvgPool1d):
                extra = _conv_pool_chain(own, a, b, shapes[l - 1], l)
        except SpecError as exc:
            notes.append(f"layers {l}, {l + 1}: {exc}")
        if extra is not None:
            add(extra[0], own)
            notes.append(extra[1])
    for l, layer in enumerate(net.layers, 1):
        if isinstance(layer, Residual) and len(layer.block) == 1 and isinstance(layer.block[0], Linear) \
                and len(shapes[l - 1]) == 1:
            own = Context()
            add(residual_chain(own, shapes[l - 1][0], l), own)
    derivation = Derivation(f"Collapse of {net.spec()}", tuple(chains), tuple(notes))
    return derivation, tuple(dict(c.term_definitions) for c in contexts)


def translated(result: LayerCollapseResult, convention: str) -> Derivation:
    """The collapse derivation in the ``column`` or ``torch`` convention, each chain
    translated with the definitions it was checked with, every step re-proved."""
    from symnet.networks.conventions import translate

    if convention == "row" or not result.chain_definitions:
        return result.derivation
    d = result.derivation
    chains = [translate(Derivation("", (chain,)), convention, defs).chains[0]
              for chain, defs in zip(d.chains, result.chain_definitions)]
    note = translate(Derivation("", ()), convention).notes[0]
    return Derivation(f"{d.title} ({convention} convention)", tuple(chains), (note, *d.notes))


def _plain_conv(layer: Layer) -> bool:
    if isinstance(layer, Conv1d):
        return layer.stride == 1 and layer.padding == 0 and layer.dilation == 1
    if isinstance(layer, Conv2d):
        return layer.stride == (1, 1) and layer.padding == (0, 0) and layer.dilation == (1, 1)
    return False


def collapse_layers(net: Sequential, seed: int = 0) -> LayerCollapseResult:
    """Collapse an affine layer network (numerically with its weights, or seeded ones,
    and symbolically, checked), or find a witness that it is not affine."""
    weights = net.weights if net.weights is not None else net.random_weights(seed)
    if not net.is_affine:
        witness = _witness(net, weights, seed)
        chains = tuple(_value_path_chain(Context(), shape, l) for l, (layer, shape)
                       in enumerate(zip(net.layers, net.shapes()), 1) if isinstance(layer, Attention))
        derivation = Derivation(f"{net.spec()} is not affine", chains, tuple(
            f"layer {l} ({layer.spec()}) is not affine" for l, layer in enumerate(net.layers, 1)
            if not layer.affine))
        return LayerCollapseResult(net, False, None, None, derivation, witness, float("nan"), weights)
    sizes = [_size(s) for s in net.shapes()]
    if sizes[0] * max(sizes) > MAX_COLLAPSED:
        raise SpecError(f"the collapsed map of {net.spec()} would have {sizes[0]} x {max(sizes)} entries "
                        f"(more than {MAX_COLLAPSED:,}); give a smaller --input-shape")
    W, b = _numeric_collapse(net, weights)
    x = _seeded_inputs(net, seed)
    expected = LN.forward(net, x, weights).reshape(len(x), -1)
    got = x.reshape(len(x), -1) @ W + b
    rel = float(np.max(np.abs(got - expected)) / max(1e-300, float(np.max(np.abs(expected)))))
    derivation, definitions = _derive(net)
    return LayerCollapseResult(net, True, W, b, derivation, None, rel, weights, definitions)
