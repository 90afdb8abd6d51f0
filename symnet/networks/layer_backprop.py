"""Backprop through each layer by its own rule, derived and checked by the kernel.

For a layer ``h_l = F(h_{l-1})`` and the error signal ``delta_l = dL/dh_l`` (a row), the
gradients are those of the local loss ``<delta_l, F(h_{l-1})>``; the kernel decides each
stated rule with its reverse mode and the judge by finite differences:

* linear: ``dL/dh = delta W^T``, ``dL/dW = h^T delta``, ``dL/db = delta``;
* convolution (written out at the network's sizes): the input gradient is the
  correlation of delta with the flipped kernel, ``dx_t = sum_(o,m) delta_(o, t+m-(k-1))
  Kflip_(o,c,m)``, and the kernel gradient the correlation of input and delta,
  ``dK_(o,c,j) = sum_i delta_(o,i) x_(c, i+j)``;
* average pooling: delta spread evenly over each window;
* batch norm at inference: ``dL/dh = delta (.) s``, ``dL/dbeta = delta``,
  ``dL/dgamma = delta (.) (h - mu) (.) s / gamma``-free form ``delta (.) xhat``;
* a residual block adds the skip: ``dL/dh = delta + delta W^T``;
* an activation: ``dL/dz = delta (.) f'(z)``;
* attention, for fixed scores ``S``: ``dL/dV = S^T delta``.

Max pooling, layer norm, batch norm with batch statistics and the softmax inside
attention are differentiated numerically only (``layer_numeric.backward``, checked
against PyTorch in the tests); their chains say so.
"""

from __future__ import annotations

from symnet.kernel import Context
from symnet.kernel import terms as T
from symnet.networks.layer_algebra import (
    MAX_EXPLICIT,
    _size,
    _tap,
    conv_matrix,
    conv_taps,
    entry_name,
)
from symnet.networks.layers import (
    Activation,
    Attention,
    AvgPool1d,
    BatchNorm,
    Conv1d,
    Conv2d,
    Linear,
    Residual,
    Sequential,
)
from symnet.notes.derivation import Chain, ChainBuilder, Derivation
from symnet.render.printing import text_name


def _local(delta: T.Term, out: T.Term) -> T.Term:
    """``<delta, out>`` for rows: the 1x1 ``out delta^T``."""
    return T.mul(out, T.transpose(delta))


def _linear(ctx: Context, layer: Linear, n: int, l: int) -> list[Chain]:
    h, W, b = T.matrix(f"h{l - 1}", 1, n), T.matrix(f"W{l}", n, layer.out), T.matrix(f"b{l}", 1, layer.out)
    delta = T.matrix(f"delta{l}", 1, layer.out)
    loss = _local(delta, T.add(T.mul(h, W), b))
    out = []
    for wrt, rule, why in [(W, T.mul(T.transpose(h), delta), "dL/dW = h^T delta"),
                           (b, delta, "dL/db = delta"),
                           (h, T.mul(delta, T.transpose(W)), "dL/dh = delta W^T")]:
        chain = ChainBuilder(ctx, T.grad(loss, wrt), title=f"Layer {l} (linear): {why}")
        chain.step(rule, "chain rule")
        out.append(chain.build())
    return out


def _explicit_row(name: str, shape: tuple) -> T.Term:
    """A row of scalar symbols ``name_i`` for the entries of an example of ``shape``."""
    n = _size(shape)
    return T.explicit([[T.scalar(entry_name(name, i)) for i in range(n)]])


def _conv(ctx: Context, layer, in_shape: tuple, l: int) -> list[Chain]:
    out_shape = layer.output_shape(in_shape)
    n_in, n_out = _size(in_shape), _size(out_shape)
    Tl = T.matrix(f"T{l}", n_in, n_out)
    Fl = T.matrix(f"F{l}", n_out, n_in)
    ctx.define(Tl, conv_matrix(layer, in_shape, f"K{l}"))
    ctx.define(Fl, _flipped_correlation(layer, in_shape, f"K{l}"))
    h, delta = T.matrix(f"h{l - 1}", 1, n_in), T.matrix(f"delta{l}", 1, n_out)
    chains = []
    # input gradient: the correlation of delta with the flipped kernel
    chain = ChainBuilder(ctx, T.grad(_local(delta, T.mul(h, Tl)), h),
                         title=f"Layer {l} ({layer.kind}): the input gradient is a correlation with the flipped kernel")
    chain.step(T.mul(delta, T.transpose(Tl)), "chain rule")
    chain.step(T.mul(delta, Fl), f"definition of F{l} (the flipped kernel)", uses=[Tl, Fl])
    chains.append(chain.build())
    # kernel gradient: the correlation of input and delta, tap by tap, on the entries
    x, d = T.matrix("x", 1, n_in), T.matrix("d", 1, n_out)
    ctx.define(x, _explicit_row("x", in_shape))
    ctx.define(d, _explicit_row("delta", out_shape))
    taps = conv_taps(layer, in_shape)

    def correlation(pairs) -> T.Term:
        terms = [T.mul(T.scalar(entry_name("delta", p)), T.scalar(entry_name("x", q))) for p, q in pairs]
        return T.add(*terms) if len(terms) > 1 else terms[0]

    weight = {tap: _tap(layer, in_shape, f"K{l}", *tap) for tap in taps}
    written = T.add(*[T.mul(weight[tap], correlation(pairs)) for tap, pairs in taps.items() if pairs])
    chain = ChainBuilder(ctx, T.trace(T.mul(x, Tl, T.transpose(d))),
                         title=f"Layer {l} ({layer.kind}): the local loss L{l} entry by entry")
    chain.step(written, f"T{l} written out", uses=[x, d, Tl])
    chains.append(chain.build())
    local = T.scalar(f"L{l}")
    ctx.define(local, written)
    for tap, pairs in list(taps.items())[:4]:
        if not pairs:
            continue
        w = weight[tap]
        chain = ChainBuilder(ctx, T.diff(local, w),
                             title=f"Layer {l} ({layer.kind}): dL/d{text_name(w.value)} is the correlation of x and delta")
        chain.step(correlation(pairs), "differentiate")
        chains.append(chain.build())
    return chains


def _flipped_correlation(layer, in_shape: tuple, kernel: str) -> T.Term:
    """The matrix taking delta (a row) to the input gradient, built from the flipped kernel:
    entry ``[(o, i), (c, t)] = Kflip[o, c, m]`` with ``Kflip_m = K_(k-1-m)`` where the window
    of output i starts at ``t + m - (k-1)`` (stride, padding, dilation included)."""
    out_shape = layer.output_shape(in_shape)
    n_in, n_out = _size(in_shape), _size(out_shape)
    zero = T.num(0)
    rows = [[zero] * n_in for _ in range(n_out)]
    if isinstance(layer, Conv1d):
        c_in, n = in_shape
        o_ch, m_out = out_shape
        k = layer.k
        for o in range(o_ch):
            for c in range(c_in):
                for m in range(k):
                    j = k - 1 - m  # the flipped tap
                    w = _tap(layer, in_shape, kernel, o, c, j)
                    for i in range(m_out):
                        t = i * layer.stride + j * layer.dilation - layer.padding
                        if 0 <= t < n:
                            rows[o * m_out + i][c * n + t] = w
    else:
        for key, pairs in conv_taps(layer, in_shape).items():
            w = _tap(layer, in_shape, kernel, *key)
            for p, q in pairs:
                rows[p][q] = w
    return T.explicit(rows)


def _avgpool(ctx: Context, layer: AvgPool1d, in_shape: tuple, l: int) -> list[Chain]:
    c_in, n = in_shape
    _, m = layer.output_shape(in_shape)
    x, delta = _explicit_row("x", in_shape), _explicit_row("delta", (c_in, m))
    P = [[T.num(0)] * (c_in * m) for _ in range(c_in * n)]
    for c in range(c_in):
        for i in range(m):
            for j in range(layer.k):
                P[c * n + i * layer.stride + j][c * m + i] = T.div(T.num(1), T.num(layer.k))
    pool = T.explicit(P)
    spread = [[T.num(0)] * (c_in * n)]
    row = spread[0]
    for c in range(c_in):
        for i in range(m):
            for j in range(layer.k):
                t = c * n + i * layer.stride + j
                part = T.div(T.scalar(entry_name("delta", c * m + i)), T.num(layer.k))
                row[t] = part if row[t].op == "num" else T.add(row[t], part)
    chain = ChainBuilder(ctx, T.transpose(T.mul(pool, T.transpose(delta))),
                         title=f"Layer {l} (average pooling): delta spread evenly over each window")
    chain.step(T.explicit(spread), f"each window's delta, divided by {layer.k}")
    del x
    return [chain.build()]


def _batchnorm(ctx: Context, n: int, l: int) -> list[Chain]:
    h, mu, s, beta = (T.matrix(f"{v}", 1, n) for v in (f"h{l - 1}", f"mu{l}", f"s{l}", f"beta{l}"))
    delta = T.matrix(f"delta{l}", 1, n)
    loss = _local(delta, T.add(T.hadamard(T.sub(h, mu), s), beta))
    chains = []
    for wrt, rule, why in [(h, T.hadamard(delta, s), "dL/dh = delta (.) s"),
                           (beta, delta, "dL/dbeta = delta"),
                           (s, T.hadamard(delta, T.sub(h, mu)), "dL/ds = delta (.) (h - mu)")]:
        chain = ChainBuilder(ctx, T.grad(loss, wrt), title=f"Layer {l} (batch norm, inference): {why}")
        chain.step(rule, "chain rule")
        chains.append(chain.build())
    return chains


def _residual(ctx: Context, n: int, l: int) -> list[Chain]:
    h, W, b = T.matrix(f"h{l - 1}", 1, n), T.matrix(f"W{l}", n, n), T.matrix(f"b{l}", 1, n)
    delta = T.matrix(f"delta{l}", 1, n)
    loss = _local(delta, T.add(h, T.add(T.mul(h, W), b)))
    chain = ChainBuilder(ctx, T.grad(loss, h), title=f"Layer {l} (residual): the skip adds delta")
    chain.step(T.add(delta, T.mul(delta, T.transpose(W))), "chain rule")
    return [chain.build()]


def _activation(ctx: Context, layer: Activation, n: int, l: int) -> list[Chain]:
    if layer.name not in ("tanh", "sigmoid"):
        return []
    z = T.matrix(f"z{l}", 1, n)
    delta = T.matrix(f"delta{l}", 1, n)
    f = T.prim(layer.name, z) if layer.name == "tanh" else None
    if f is None:
        return []
    loss = _local(delta, f)
    chain = ChainBuilder(ctx, T.grad(loss, z), title=f"Layer {l} ({layer.name}): delta times the derivative")
    chain.step(T.hadamard(delta, T.sub(T.ones(1, n), T.hadamard(f, f))), "chain rule, tanh' = 1 - tanh^2")
    return [chain.build()]


def _attention(ctx: Context, shape: tuple, l: int) -> list[Chain]:
    tokens, d = shape
    S, V, delta = T.matrix(f"S{l}", tokens, tokens), T.matrix(f"V{l}", tokens, d), T.matrix(f"delta{l}", tokens, d)
    loss = T.trace(T.mul(T.transpose(delta), S, V))
    chain = ChainBuilder(ctx, T.grad(loss, V), title=f"Layer {l} (attention, for fixed scores S): the value path")
    chain.step(T.mul(T.transpose(S), delta), "chain rule")
    return [chain.build()]


def derive_backprop(net: Sequential) -> Derivation:
    """Each layer's backprop rule, checked; numeric-only layers named in the notes."""
    ctx = Context()
    chains: list[Chain] = []
    notes = []
    for l, (layer, shape) in enumerate(zip(net.layers, net.shapes()), 1):
        n = _size(shape)
        if isinstance(layer, Linear) and len(shape) == 1:
            chains += _linear(ctx, layer, n, l)
        elif isinstance(layer, (Conv1d, Conv2d)):
            if n * _size(layer.output_shape(shape)) > MAX_EXPLICIT:
                notes.append(f"layer {l} ({layer.spec()}): too large to write out; differentiated numerically")
            else:
                chains += _conv(ctx, layer, shape, l)
                notes.append(f"layer {l}: T{l} is the matrix of the convolution y_i = sum_j k_j x_(i+j) on the row "
                             f"of entries; F{l} that of dx_t = sum_m delta_(t+m-(k-1)) kflip_m with the flipped "
                             f"kernel kflip_m = k_(k-1-m) (per channel pair, stride, padding and dilation "
                             f"included); dL/dk_j = sum_i delta_i x_(i+j) is the correlation of input and delta")
        elif isinstance(layer, AvgPool1d):
            chains += _avgpool(ctx, layer, shape, l)
        elif isinstance(layer, BatchNorm) and not layer.training:
            chains += _batchnorm(ctx, n, l)
        elif isinstance(layer, Residual) and len(layer.block) == 1 and isinstance(layer.block[0], Linear) \
                and len(shape) == 1:
            chains += _residual(ctx, n, l)
        elif isinstance(layer, Activation) and layer.name == "tanh":
            chains += _activation(ctx, layer, n, l)
        elif isinstance(layer, Attention):
            chains += _attention(ctx, shape, l)
            notes.append(f"layer {l} (attention): the gradient through the softmax scores is numeric "
                         "(layer_numeric.backward, checked against PyTorch)")
        else:
            notes.append(f"layer {l} ({layer.spec()}): differentiated numerically (layer_numeric.backward)")
    return Derivation(f"Backprop through {net.spec()}", tuple(chains), tuple(notes))
