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
* batch norm with batch statistics (training), over the ``m`` rows each channel's
  statistics run over: ``dL/dX = (1/m) s (.) (m g - 1 1^T g - xhat (.) 1 1^T (g (.) xhat))``
  with ``g = delta (.) gamma`` and ``s = 1/sqrt(var + eps)``; ``dL/dgamma = 1^T (delta (.) xhat)``;
* layer norm, the same over each row's ``n`` features;
* attention through the row softmax: ``dP = delta V^T``, ``dS = P (.) (dP - (dP (.) P) 1 1^T)``,
  ``dL/dW_Q = X^T dS K / sqrt(d_k)``, ``dL/dW_K = X^T dS^T Q / sqrt(d_k)``,
  ``dL/dW_V = X^T P^T delta`` and ``dL/dX`` the sum of the three paths;
* max pooling: a window's maximum is a running maximum, ``max(a, b) = relu(b - a) + a``,
  so delta goes to ``b`` where ``b > a`` and to ``a`` otherwise (ties to the first, as
  PyTorch); a window of ``k`` is ``k - 1`` such steps;
* embedding: ``Y = O E`` with ``O`` the one-hot rows of the token ids, so
  ``dL/dE = O^T delta``: each token's delta added into its row.

* transposed convolution: its input gradient is an ordinary convolution of delta with the
  same kernel, stride and padding (``delta M^T = delta C``).

* a residual block of linear layers, convolutions, average pooling, batch norm at
  inference and activations: ``delta`` plus delta sent back through the block by each
  layer's rule.

A residual block with other layers inside (layer norm, attention) is differentiated
numerically (``layer_numeric.backward``, checked against PyTorch in the tests); its
note says so.
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
    tap_name,
)
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


def _convtranspose(ctx: Context, layer: ConvTranspose1d, in_shape: tuple, l: int) -> list[Chain]:
    """The input gradient of a transposed convolution is an ordinary convolution of delta
    with the same kernel (stride and padding alike): ``delta M^T = delta C``."""
    c_in, n = in_shape
    o_ch, m = layer.output_shape(in_shape)
    one = (c_in, o_ch) == (1, 1)

    def tap(c: int, o: int, j: int) -> T.Term:
        return T.scalar(tap_name(f"K{l}", j) if one else tap_name(f"K{l}", c, o, j))

    rows = [[T.num(0)] * (o_ch * m) for _ in range(c_in * n)]
    for c in range(c_in):
        for o in range(o_ch):
            for j in range(layer.k):
                for i in range(n):
                    t = i * layer.stride + j - layer.padding
                    if 0 <= t < m:
                        rows[c * n + i][o * m + t] = tap(c, o, j)
    M, C = T.matrix(f"M{l}", c_in * n, o_ch * m), T.matrix(f"C{l}", o_ch * m, c_in * n)
    ctx.define(M, T.explicit(rows))
    conv = Conv1d(k=layer.k, out_channels=c_in, stride=layer.stride, padding=layer.padding)
    ctx.define(C, conv_matrix(conv, (o_ch, m), f"K{l}", taps=lambda o, c, j: tap(o, c, j)))
    h, delta = T.matrix(f"h{l - 1}", 1, c_in * n), T.matrix(f"delta{l}", 1, o_ch * m)
    chain = ChainBuilder(ctx, T.grad(_local(delta, T.mul(h, M)), h),
                         title=f"Layer {l} ({layer.spec()}): the input gradient is a convolution of delta "
                               "with the same kernel")
    chain.step(T.mul(delta, T.transpose(M)), "chain rule")
    chain.step(T.mul(delta, C), f"definition of C{l}: conv1d(k={layer.k}, stride={layer.stride}, "
                                f"padding={layer.padding}) with kernel K{l}", uses=[M, C])
    return [chain.build()]


def _windows(layer, in_shape: tuple) -> list[tuple[int, list[int]]]:
    """(output entry, the input entries of its window) on the rows of entries, 1-D or 2-D."""
    out_shape = layer.output_shape(in_shape)
    if isinstance(layer, AvgPool1d):
        (c_in, n), m = in_shape, out_shape[1]
        return [(c * m + i, [c * n + i * layer.stride + j for j in range(layer.k)])
                for c in range(c_in) for i in range(m)]
    (c_in, h, w), (_, mh, mw) = in_shape, out_shape
    (kh, kw), (sh, sw) = layer.k, layer.stride
    return [((c * mh + i) * mw + j, [(c * h + i * sh + p) * w + j * sw + q for p in range(kh) for q in range(kw)])
            for c in range(c_in) for i in range(mh) for j in range(mw)]


def _avgpool(ctx: Context, layer, in_shape: tuple, l: int) -> list[Chain]:
    n_in, n_out = _size(in_shape), _size(layer.output_shape(in_shape))
    windows = _windows(layer, in_shape)
    size = len(windows[0][1])
    delta = _explicit_row("delta", layer.output_shape(in_shape))
    P = [[T.num(0)] * n_out for _ in range(n_in)]
    row = [T.num(0)] * n_in
    for out, window in windows:
        part = T.div(T.scalar(entry_name("delta", out)), T.num(size))
        for t in window:
            P[t][out] = T.div(T.num(1), T.num(size))
            row[t] = part if row[t].op == "num" else T.add(row[t], part)
    pool = T.explicit(P)
    chain = ChainBuilder(ctx, T.transpose(T.mul(pool, T.transpose(delta))),
                         title=f"Layer {l} (average pooling): delta spread evenly over each window")
    chain.step(T.explicit([row]), f"each window's delta, divided by {size}")
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


def _residual_block(ctx: Context, block, in_shape: tuple, l: int) -> list[Chain]:
    """``h + F(h)`` with F a stack of linear layers, convolutions (written out as matrices),
    average pooling, batch norm at inference, activations and reshapes: the skip adds delta
    to the delta sent back through F by each layer's rule (``g W^T``, ``g T^T``,
    ``g (.) s``, ``g (.) f'(z)``), on the row of entries."""
    import sympy as sp

    from symnet.kernel import Grad
    from symnet.networks.activations import parse_spec
    from symnet.networks.composer import apply_elementwise, matadd, matmul

    n = _size(in_shape)
    h, delta = sp.MatrixSymbol(f"h{l - 1}", 1, n), sp.MatrixSymbol(f"delta{l}", 1, n)
    cur, steps = h, []
    shapes = Sequential(tuple(block), tuple(in_shape)).shapes()
    for i, (inner, shape) in enumerate(zip(block, shapes), 1):
        width, out = _size(shape), _size(inner.output_shape(shape))
        if isinstance(inner, Linear):
            W, b = sp.MatrixSymbol(f"W{l}_{i}", width, out), sp.MatrixSymbol(f"b{l}_{i}", 1, out)
            steps.append(("matrix", W))
            cur = matadd(matmul(cur, W), b)
        elif isinstance(inner, (Conv1d, Conv2d, AvgPool1d, AvgPool2d)):
            M = sp.MatrixSymbol(f"T{l}_{i}", width, out)
            if isinstance(inner, (Conv1d, Conv2d)):
                ctx.define(T.matrix(M.name, width, out), conv_matrix(inner, shape, f"K{l}_{i}"))
                cur = matadd(matmul(cur, M), sp.MatrixSymbol(f"c{l}_{i}", 1, out))
            else:
                P = [[T.num(0)] * out for _ in range(width)]
                for o, window in _windows(inner, shape):
                    for t in window:
                        P[t][o] = T.div(T.num(1), T.num(len(window)))
                ctx.define(T.matrix(M.name, width, out), T.explicit(P))
                cur = matmul(cur, M)
            steps.append(("matrix", M))
        elif isinstance(inner, BatchNorm) and not inner.training:
            s_, mu, beta = (sp.MatrixSymbol(f"{v}{l}_{i}", 1, width) for v in ("s", "mu", "beta"))
            steps.append(("scale", s_))
            cur = matadd(sp.HadamardProduct(matadd(cur, -mu), s_), beta)
        elif isinstance(inner, Activation):
            act = parse_spec(inner.name)
            steps.append(("activation", (act, cur)))
            cur = apply_elementwise(act, cur)
        elif isinstance(inner, (Flatten, Reshape, Dropout)):
            continue  # the row of entries is unchanged
        else:
            return []
    g = delta
    for kind, data in reversed(steps):
        if kind == "matrix":
            g = matmul(g, data.T)
        elif kind == "scale":
            g = sp.HadamardProduct(g, data)
        else:
            g = _times_derivative(g, *data)
    loss = sp.MatMul(matadd(h, cur), delta.T)
    chain = ChainBuilder(ctx, Grad(loss, h), title=f"Layer {l} (residual {' > '.join(x.spec() for x in block)}): "
                                                   "the skip adds delta to what the block sends back")
    chain.step(matadd(delta, g), "chain rule: delta, plus delta back through the block layer by layer")
    return [chain.build()]


def _activation(ctx: Context, layer: Activation, shape: tuple, l: int) -> list[Chain]:
    """``dL/dz = delta (.) f'(z)`` for any catalogue activation, entry by entry (the
    derivative the catalogue derives, with its convention at kinks)."""
    import sympy as sp

    from symnet.kernel import Grad
    from symnet.networks.activations import parse_spec
    from symnet.networks.composer import apply_elementwise

    act = parse_spec(layer.name)
    n = _size(shape)
    z, delta = sp.MatrixSymbol(f"z{l}", 1, n), sp.MatrixSymbol(f"delta{l}", 1, n)
    loss = sp.MatMul(apply_elementwise(act, z), delta.T)
    chain = ChainBuilder(ctx, Grad(loss, z), title=f"Layer {l} ({layer.name}): delta times the derivative")
    chain.step(_times_derivative(delta, act, z), f"chain rule, entry by entry: {layer.name}'(z)")
    return [chain.build()]


def _times_derivative(g, act, z):
    """``g (.) f'(z)`` for an activation (``c g`` when ``f'`` is a constant c, ``g`` when 1)."""
    import sympy as sp

    from symnet.kernel import elementwise_derivative
    from symnet.networks.composer import elementwise

    lam = elementwise_derivative(act.lam)
    (var,) = lam.variables
    if var in lam.expr.free_symbols:
        return sp.HadamardProduct(g, elementwise(lam, z))
    return g if lam.expr == 1 else sp.MatMul(lam.expr, g, evaluate=False)


def _attention(ctx: Context, layer: Attention, shape: tuple, l: int) -> list[Chain]:
    """Through the row softmax: every weight's gradient and the input's, from the local
    loss ``tr(delta^T P V)`` with ``P = softmax(Q K^T / sqrt(d_k))`` written out as
    ``exp(S) (.) ((exp(S) 1)^-1 1^T)``."""
    tokens, d = shape
    dk = layer.d_k or d
    X, WQ, WK, WV = (T.matrix(f"{v}{l}", *sh) for v, sh in [("X", (tokens, d)), ("W_Q", (d, dk)), ("W_K", (d, dk)),
                                                            ("W_V", (d, d))])
    delta = T.matrix(f"delta{l}", tokens, d)
    one = T.ones(tokens, 1)
    Q, K, V = T.matrix(f"Q{l}", tokens, dk), T.matrix(f"K{l}", tokens, dk), T.matrix(f"V{l}", tokens, d)
    S, P = T.matrix(f"S{l}", tokens, tokens), T.matrix(f"P{l}", tokens, tokens)
    scale = T.div(T.num(1), T.prim("sqrt", T.num(dk)))
    ctx.define(Q, T.mul(X, WQ))
    ctx.define(K, T.mul(X, WK))
    ctx.define(V, T.mul(X, WV))
    ctx.define(S, T.mul(scale, Q, T.transpose(K)))
    ctx.define(P, T.hadamard(T.prim("exp", S), T.mul(T.hadamard_power(T.mul(T.prim("exp", S), one), -1),
                                                     T.transpose(one))))
    loss = T.scalar(f"L{l}")
    ctx.define(loss, T.trace(T.mul(T.transpose(delta), P, V)))
    dP, dS = T.matrix(f"dP{l}", tokens, tokens), T.matrix(f"dS{l}", tokens, tokens)
    dQ, dK, dV = T.matrix(f"dQ{l}", tokens, dk), T.matrix(f"dK{l}", tokens, dk), T.matrix(f"dV{l}", tokens, d)
    ctx.define(dP, T.mul(delta, T.transpose(V)))
    ctx.define(dS, T.hadamard(P, T.sub(dP, T.mul(T.mul(T.hadamard(dP, P), one), T.transpose(one)))))
    ctx.define(dQ, T.mul(scale, dS, K))
    ctx.define(dK, T.mul(scale, T.transpose(dS), Q))
    ctx.define(dV, T.mul(T.transpose(P), delta))
    chains = []
    for wrt, rule, uses, why in [
            (WV, T.mul(T.transpose(X), dV), [dV], "the value weights' gradient"),
            (WQ, T.mul(T.transpose(X), dQ), [dQ, dS, dP], "the query weights' gradient, through the softmax"),
            (WK, T.mul(T.transpose(X), dK), [dK, dS, dP], "the key weights' gradient, through the softmax"),
            (X, T.add(T.mul(dQ, T.transpose(WQ)), T.mul(dK, T.transpose(WK)), T.mul(dV, T.transpose(WV))),
             [dQ, dK, dV, dS, dP], "the input's gradient: the query, key and value paths")]:
        chain = ChainBuilder(ctx, T.grad(loss, wrt), title=f"Layer {l} (attention): {why}")
        chain.step(rule, "chain rule through the row softmax", uses=uses)
        if not chains:  # the definitions, once
            chain.where.extend((v, ctx.term_definitions[v]) for v in (loss, Q, K, V, S, P, dP, dS, dQ, dK, dV))
        chains.append(chain.build())
    return chains


def _normalisation(ctx: Context, l: int, over_rows: bool, what: str) -> list[Chain]:
    """Batch norm with batch statistics (``over_rows``: each of the c columns' statistics
    over the m rows) or layer norm (each of the m rows' over its n columns), for any sizes:
    the gradient through the mean and the biased variance."""
    rows, cols = ("m", "c") if over_rows else ("m", "n")
    X, delta = T.matrix(f"X{l}", rows, cols), T.matrix(f"delta{l}", rows, cols)
    gamma, beta = T.matrix(f"gamma{l}", 1, cols), T.matrix(f"beta{l}", 1, cols)
    eps = T.scalar("epsilon", positive=True)
    o_r, o_c = T.ones(rows, 1), T.ones(cols, 1)
    count = T.dimension(rows if over_rows else cols)
    inv = T.div(T.num(1), count)
    stat = (1, cols) if over_rows else (rows, 1)
    mu, var, s = (T.matrix(f"{v}{l}", *stat) for v in ("mu", "var", "s"))
    C, xhat = T.matrix(f"C{l}", rows, cols), T.matrix(f"xhat{l}", rows, cols)

    def mean(E):  # the mean each statistic takes
        return T.mul(inv, T.transpose(o_r), E) if over_rows else T.mul(inv, E, o_c)

    def spread(v):  # a statistic repeated over what it was taken over
        return T.mul(o_r, v) if over_rows else T.mul(v, T.transpose(o_c))

    ctx.define(mu, mean(X))
    ctx.define(C, T.sub(X, spread(mu)))
    ctx.define(var, mean(T.hadamard(C, C)))
    ctx.define(s, T.hadamard_power(T.prim("sqrt", T.add(var, T.mul(eps, T.ones(*stat)))), -1))
    ctx.define(xhat, T.hadamard(C, spread(s)))
    loss = T.scalar(f"L{l}")
    ctx.define(loss, T.trace(T.mul(T.transpose(delta), T.add(T.hadamard(xhat, T.mul(o_r, gamma)), T.mul(o_r, beta)))))
    g = T.hadamard(delta, T.mul(o_r, gamma))
    dgamma, dbeta = T.mul(T.transpose(o_r), T.hadamard(delta, xhat)), T.mul(T.transpose(o_r), delta)
    if over_rows:  # the sums over the batch are dbeta and dgamma, scaled by gamma
        dX = T.mul(inv, T.hadamard(spread(s), T.sub(T.sub(T.mul(count, g), T.mul(o_r, T.hadamard(dbeta, gamma))),
                                                     T.hadamard(xhat, T.mul(o_r, T.hadamard(dgamma, gamma))))))
    else:  # the sums over each row's features
        def total(E):
            return T.mul(T.mul(E, o_c), T.transpose(o_c))

        dX = T.mul(inv, T.hadamard(spread(s), T.sub(T.sub(T.mul(count, g), total(g)),
                                                     T.hadamard(xhat, total(T.hadamard(g, xhat))))))
    chains = []
    for wrt, rule, text in [(X, dX, "the input's gradient"), (gamma, dgamma, "gamma's gradient"), (beta, dbeta, "beta's gradient")]:
        chain = ChainBuilder(ctx, T.grad(loss, wrt), title=f"Layer {l} ({what}): {text}")
        chain.step(rule, "chain rule through the mean and the variance", uses=[mu, C, var, s, xhat])
        if not chains:  # the definitions, once
            chain.where.extend((v, ctx.term_definitions[v]) for v in (loss, mu, C, var, s, xhat))
        chains.append(chain.build())
    return chains


_RELU = T.Fn("relu", formula=T.piecewise((T.var(), T.relation("gt", T.var(), T.num(0))),
                                         (T.num(0), T.logic("true"))))


def _above(u: T.Term) -> T.Term:
    """``[u > 0]``: 1 where u is positive, else 0."""
    return T.piecewise((T.num(1), T.relation("gt", u, T.num(0))), (T.num(0), T.logic("true")))


def _maxpool(ctx: Context, l: int) -> list[Chain]:
    """A window's maximum as a running maximum: the two-entry step ``max(a, b) =
    relu(b - a) + a`` routes delta to the larger entry (to the first on a tie)."""
    a, b, d = T.scalar(f"a{l}"), T.scalar(f"b{l}"), T.scalar(f"delta{l}")
    m = T.scalar(f"m{l}")
    ctx.define(m, T.add(T.apply(_RELU, T.sub(b, a)), a))
    loss = T.mul(d, m)
    chains = []
    for wrt, rule, why in [(b, T.mul(d, _above(T.sub(b, a))), "delta goes to b where b > a"),
                           (a, T.mul(d, T.sub(T.num(1), _above(T.sub(b, a)))), "and to a otherwise (ties: the first)")]:
        chain = ChainBuilder(ctx, T.diff(loss, wrt), title=f"Layer {l} (max pooling, max(a, b) = relu(b - a) + a): {why}")
        chain.step(rule, "chain rule, relu' = [u > 0]", uses=[m])
        chains.append(chain.build())
    return chains


def _embedding(ctx: Context, layer: Embedding, tokens: int, l: int) -> list[Chain]:
    O = T.matrix(f"O{l}", tokens, layer.vocabulary)
    E, delta = T.matrix(f"E{l}", layer.vocabulary, layer.dim), T.matrix(f"delta{l}", tokens, layer.dim)
    loss = T.trace(T.mul(T.transpose(delta), O, E))
    chain = ChainBuilder(ctx, T.grad(loss, E), title=f"Layer {l} (embedding, Y = O E with O the one-hot rows of the ids)")
    chain.step(T.mul(T.transpose(O), delta), "chain rule: each token's delta added into its row of E")
    return [chain.build()]


def derive_backprop(net: Sequential, convention: str = "row") -> Derivation:
    """Each layer's backprop rule, checked; numeric-only layers named in the notes.

    ``convention``: ``row`` (``x W + b``, as derived), ``column`` (``W x + b``, W out x in)
    or ``torch`` (``x W^T + b``, W of shape (out, in)); a translated derivation has every
    step re-proved (:func:`symnet.networks.conventions.translate`)."""
    ctx = Context()
    chains: list[Chain] = []
    notes = []

    def too_large(layer, shape, l: int) -> bool:
        """A layer whose matrix on the row of entries is too large to write out (noted)."""
        if _size(shape) * _size(layer.output_shape(shape)) <= MAX_EXPLICIT:
            return False
        notes.append(f"layer {l} ({layer.spec()}): too large to write out; differentiated numerically")
        return True
    for l, (layer, shape) in enumerate(zip(net.layers, net.shapes()), 1):
        n = _size(shape)
        if isinstance(layer, Linear) and len(shape) == 1:
            chains += _linear(ctx, layer, n, l)
        elif isinstance(layer, (Conv1d, Conv2d)):
            if not too_large(layer, shape, l):
                chains += _conv(ctx, layer, shape, l)
                notes.append(f"layer {l}: T{l} is the matrix of the convolution y_i = sum_j k_j x_(i+j) on the row "
                             f"of entries; F{l} that of dx_t = sum_m delta_(t+m-(k-1)) kflip_m with the flipped "
                             f"kernel kflip_m = k_(k-1-m) (per channel pair, stride, padding and dilation "
                             f"included); dL/dk_j = sum_i delta_i x_(i+j) is the correlation of input and delta")
        elif isinstance(layer, ConvTranspose1d):
            if not too_large(layer, shape, l):
                chains += _convtranspose(ctx, layer, shape, l)
                notes.append(f"layer {l}: M{l} is the matrix of the transposed convolution "
                             f"y_(o, i s + j - p) += x_(c, i) k_(c, o, j); C{l} that of the ordinary convolution "
                             "dx_(c, i) = sum_(o, j) k_(c, o, j) delta_(o, i s + j - p)")
        elif isinstance(layer, (AvgPool1d, AvgPool2d)):
            if not too_large(layer, shape, l):
                chains += _avgpool(ctx, layer, shape, l)
        elif isinstance(layer, BatchNorm) and not layer.training:
            chains += _batchnorm(ctx, n, l)
        elif isinstance(layer, BatchNorm):
            chains += _normalisation(ctx, l, True, "batch norm, batch statistics")
            notes.append(f"layer {l} (batch norm, training): derived for any sizes; here the c = {shape[0]} "
                         "channels' statistics run over the m = batch (x length) values of each; "
                         "s = 1/sqrt(var + epsilon)")
        elif isinstance(layer, LayerNorm):
            chains += _normalisation(ctx, l, False, "layer norm")
            notes.append(f"layer {l} (layer norm): derived for any sizes; here each of the m rows (examples, "
                         f"tokens) is normalised over its n = {shape[-1]} features; s = 1/sqrt(var + epsilon)")
        elif isinstance(layer, (MaxPool1d, MaxPool2d)):
            chains += _maxpool(ctx, l)
            notes.append(f"layer {l} ({layer.spec()}): each window's maximum is a running maximum of two-entry steps, "
                         "each routing delta as shown")
        elif isinstance(layer, Embedding):
            chains += _embedding(ctx, layer, shape[0], l)
        elif isinstance(layer, Residual) and n * n <= MAX_EXPLICIT and (
                chain := _residual_block(ctx, layer.block, shape, l)):
            chains += chain
            if any(isinstance(x, (Conv1d, Conv2d, AvgPool1d, AvgPool2d)) for x in layer.block):
                notes.append(f"layer {l}: T{l}_i is the matrix of the block's i-th layer on the row of entries "
                             f"(a convolution's with kernel K{l}_i, c{l}_i its bias repeated over positions)")
        elif isinstance(layer, Activation):
            chains += _activation(ctx, layer, shape, l)
        elif isinstance(layer, Attention):
            chains += _attention(ctx, layer, shape, l)
        elif isinstance(layer, (Flatten, Reshape, Dropout)):
            notes.append(f"layer {l} ({layer.spec()}): moves entries only (dropout at inference is the identity); "
                         "its delta is the next layer's, reshaped back")
        else:
            notes.append(f"layer {l} ({layer.spec()}): differentiated numerically (layer_numeric.backward, "
                         "checked against PyTorch in the tests)")
    derivation = Derivation(f"Backprop through {net.spec()}", tuple(chains), tuple(notes))
    if convention != "row":
        import dataclasses

        from symnet.networks.conventions import translate

        # the titles' formulas are the row convention's: keep only what they name
        plain = tuple(dataclasses.replace(c, title=c.title.split(": dL/d")[0]) for c in derivation.chains)
        return translate(dataclasses.replace(derivation, chains=plain), convention, dict(ctx.definitions))
    return derivation
