"""Collapse: affine stacks become one affine map ``x W' + b'``; nonlinear ones get a witness.

Claims C1-C4.  The collapsed form is built from the layer recursion

    W'_k = a_k W'_{k-1} W_k,     b'_k = a_k (b'_{k-1} W_k + b_k) + c_k 1

(``a_k = 1, c_k = 0`` for the identity), never by expanding a nested
expression, so the work grows with the size of the result.  Every step of
the derivation is decided by the kernel.

* ``style="chain"``: the textbook chain, unfolding ``h_{L-1}, h_{L-2}, ...``
  from the output down (C1 reads exactly so for three layers);
* ``style="induction"``: one short chain per layer with named intermediates
  ``W'_k, b'_k`` (linear in depth), then the closed forms;
* ``style="auto"`` (default): the chain up to depth 6, induction beyond.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from symnet.errors import SpecError
from symnet.kernel import PROVED, Context
from symnet.networks.composer import Network, matadd, matmul
from symnet.networks.numeric import Evaluator
from symnet.notes.derivation import Chain, ChainBuilder, Derivation

#: ``style="auto"`` prints the full textbook chain up to this depth.
AUTO_CHAIN_MAX = 6
#: deepest affine run whose closed form ``b' = sum_k b_k W_{k+1} ... W_L`` is derived by
#: default (its size grows with the square of the depth; beyond this the named
#: intermediates ``W'_L, b'_L`` of the induction are the collapsed map)
CLOSED_FORM_MAX = 128
#: The numeric cross-check passes when ``max |x W' + b' - forward(x)| / max |forward(x)|``
#: is at most this (an absolute error means nothing at depth 100, where entries reach 1e40).
REL_TOL = 1e-8

Term = tuple[sp.Expr, tuple]  # (scalar coefficient, matrix factors)


def _term_expr(term: Term) -> sp.MatrixExpr:
    coeff, factors = term
    return matmul(*(() if coeff == 1 else (coeff,)), *factors)


def _plus_c(terms: list[Term], c: sp.Expr, width: Any) -> list[Term]:
    """``terms + c 1[1 x width]``, the constant of an affine activation (none when c = 0)."""
    return terms + ([(c, (sp.OneMatrix(1, width),))] if c != 0 else [])


def _sum_expr(terms: list[Term]) -> sp.MatrixExpr:
    kept = [_term_expr(t) for t in terms if t[0] != 0]
    if not kept and terms:  # every coefficient 0 (a zero-slope layer): the zero matrix
        return sp.ZeroMatrix(*_term_shape(terms[0]))
    return matadd(*kept)


def _term_shape(term: Term) -> tuple:
    mats = [f for f in term[1] if isinstance(f, sp.MatrixExpr)]
    return (mats[0].rows, mats[-1].cols)


@dataclass(frozen=True)
class Segment:
    """A maximal run of affine layers ``first..last`` (1-based, inclusive):
    ``h_last = h_{first-1} W + b``."""

    first: int
    last: int
    W: sp.MatrixExpr
    b: sp.MatrixExpr

    @property
    def layers(self) -> tuple[int, int]:
        return (self.first, self.last)


@dataclass(frozen=True)
class Witness:
    """Weights, inputs ``a, b`` and ``t`` with ``F(t a + (1-t) b) != t F(a) + (1-t) F(b)``."""

    weights: dict[str, np.ndarray]
    input_a: np.ndarray
    input_b: np.ndarray
    t: float
    lhs: np.ndarray
    rhs: np.ndarray
    gap: float
    confirmed_digits: int
    parameters: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "weights": {k: v.tolist() for k, v in self.weights.items()},
            "parameters": dict(self.parameters),
            "input_a": self.input_a.tolist(),
            "input_b": self.input_b.tolist(),
            "t": self.t,
            "lhs": self.lhs.tolist(),
            "rhs": self.rhs.tolist(),
            "gap": self.gap,
            "confirmed_digits": self.confirmed_digits,
        }

    # rich display (Jupyter): stacked LaTeX, HTML and Markdown with verdict marks
    def __repr__(self) -> str:
        from symnet.render.display import witness_repr

        return witness_repr(self)

    def _repr_html_(self) -> str:
        from symnet.render.display import witness_html

        return witness_html(self)

    def _repr_markdown_(self) -> str:
        from symnet.render.display import witness_markdown

        return witness_markdown(self)

    def _repr_latex_(self) -> str:
        from symnet.render.display import witness_latex

        return witness_latex(self)


@dataclass(frozen=True)
class CollapseResult:
    """What :func:`collapse` found.  ``W``/``b`` are None unless the whole network collapses."""

    network: Network
    collapsible: bool
    W: sp.MatrixExpr | None
    b: sp.MatrixExpr | None
    derivation: Derivation
    segments: tuple[Segment, ...]
    witness: Witness | None
    rank_bound: Any
    numeric_trials: int
    numeric_max_abs_error: float
    #: max over the trials of max |x W' + b' - forward(x)| / max |forward(x)|: what is judged
    numeric_max_rel_error: float = 0.0

    @property
    def numeric_ok(self) -> bool:
        """The collapsed map reproduced the forward pass (relative error at most REL_TOL)."""
        return not self.collapsible or (self.numeric_trials > 0 and self.numeric_max_rel_error <= REL_TOL)

    @property
    def verdict(self) -> str:
        return self.derivation.verdict

    @property
    def ok(self) -> bool:
        """Every step proved and, for a collapsible network, the numeric cross-check passed
        (relative error); for a nonlinear network, a witness found."""
        return self.derivation.ok and (self.numeric_ok if self.collapsible else self.witness is not None)

    def to_dict(self) -> dict:
        from symnet.render.printing import derivation_dict, sstr

        rank = self.rank_bound
        return {
            "network": {
                "widths": [str(w) for w in self.network.widths],
                "activations": [layer.activation.spec for layer in self.network.layers],
            },
            "collapsible": self.collapsible,
            "W": None if self.W is None else sstr(self.W),
            "b": None if self.b is None else sstr(self.b),
            "rank_bound": int(rank) if isinstance(rank, (int, sp.Integer)) else None,
            "rank_bound_expr": None if rank is None else str(rank),
            "segments": [
                {"layers": [s.first, s.last], "W": sstr(s.W), "b": sstr(s.b)} for s in self.segments
            ],
            "derivation": derivation_dict(self.derivation),
            "numeric": {"trials": self.numeric_trials, "max_abs_error": self.numeric_max_abs_error,
                        "max_rel_error": self.numeric_max_rel_error, "ok": self.numeric_ok},
            "notes": list(self.derivation.notes),
            "witness": None if self.witness is None else self.witness.to_dict(),
        }

    def to_text(self) -> str:
        from symnet.render.printing import collapse_text

        return collapse_text(self)

    def to_latex(self, standalone: bool = False) -> str:
        """The whole result in LaTeX (an ``align*`` fragment; ``standalone``: a document)."""
        from symnet.render.printing import collapse_latex

        return collapse_latex(self, standalone=standalone)

    def to_markdown(self) -> str:
        from symnet.render.printing import collapse_markdown

        return collapse_markdown(self)

    def __str__(self) -> str:
        return self.to_text()

    # rich display (Jupyter): stacked LaTeX, HTML and Markdown with verdict marks
    def __repr__(self) -> str:
        from symnet.render.display import collapse_repr

        return collapse_repr(self)

    def _repr_html_(self) -> str:
        from symnet.render.display import collapse_html

        return collapse_html(self)

    def _repr_markdown_(self) -> str:
        from symnet.render.display import collapse_markdown

        return collapse_markdown(self)

    def _repr_latex_(self) -> str:
        from symnet.render.display import collapse_latex

        return collapse_latex(self)


# ---------------------------------------------------------------------------


def _affine(net: Network, l: int) -> tuple[sp.Expr, sp.Expr]:
    coeffs = net.layer(l).activation.affine_coefficients
    assert coeffs is not None
    return coeffs


def _is_identity(net: Network, l: int) -> bool:
    return _affine(net, l) == (1, 0)


def segments_of(net: Network) -> list[tuple[int, int]]:
    """Maximal runs of affine layers, as 1-based inclusive ranges."""
    runs, start = [], None
    for l in range(1, net.depth + 1):
        if net.layer(l).activation.is_affine:
            start = l if start is None else start
        elif start is not None:
            runs.append((start, l - 1))
            start = None
    if start is not None:
        runs.append((start, net.depth))
    return runs


def closed_form(net: Network, first: int, last: int) -> tuple[list[Term], list[Term]]:
    """Terms of ``W'`` and ``b'`` for layers first..last, from the recursion."""
    w_terms: list[Term] = [(sp.S.One, ())]
    b_terms: list[Term] = []
    for k in range(first, last + 1):
        layer = net.layer(k)
        a, c = _affine(net, k)
        w_terms = [(a * co, f + (layer.W,)) for co, f in w_terms]
        b_terms = [(a * co, f + (layer.W,)) for co, f in b_terms] + [(a, (layer.b,))]
        if c != 0:
            b_terms.append((c, (sp.OneMatrix(1, layer.fan_out),)))
    return w_terms, b_terms


def _names(net: Network, first: int, last: int) -> tuple[str, str]:
    if (first, last) == (1, net.depth):
        return "W'", "b'"
    return f"W'_{{{first}..{last}}}", f"b'_{{{first}..{last}}}"


def _segment_title(net: Network, first: int, last: int) -> str:
    if (first, last) == (1, net.depth):
        return ""
    return f"Layer {first}" if first == last else f"Layers {first} to {last}"


def _textbook_chain(net: Network, ctx: Context, first: int, last: int, Wp, bp) -> Chain:
    """``h_last = ... = h_{first-1} W' + b'``, unfolding one layer at a time."""
    top = net.h(last)
    chain = ChainBuilder(ctx, top, title=_segment_title(net, first, last))
    inp = net.h(first - 1)
    # current expression: K * h_k * T + rest
    K, k, T, rest = sp.S.One, last, (), []

    def expr(inner: sp.MatrixExpr | None = None) -> sp.MatrixExpr:
        head = (K, (inner if inner is not None else net.h(k),) + T)
        return _sum_expr([head] + rest)

    while k >= first:
        layer = net.layer(k)
        a, c = _affine(net, k)
        z = net.z(k)
        if _is_identity(net, k):
            chain.step(expr(z), f"definition of {net.h(k).name}", uses=[net.h(k)])
        else:
            chain.step(expr(net.layer_expr(k)), f"definition of {net.h(k).name}", uses=[net.h(k)])
            form = _plus_c([(a, (z,))], c, layer.fan_out)
            affine_form = _sum_expr(form)
            chain.step(expr(affine_form), "affine activation f(z) = a z + c")
        new_rest = [(K * a, (layer.b,) + T)]
        if c != 0:
            new_rest.append((K * c, (sp.OneMatrix(1, layer.fan_out),) + T))
        K, T, rest = K * a, (layer.W,) + T, new_rest + rest
        k -= 1
        if expr() != chain.current:
            chain.step(expr(), "distributivity")
    chain.step(matadd(matmul(inp, Wp), bp), f"definition of {Wp.name}, {bp.name}", uses=[Wp, bp])
    chain.where.extend([(Wp, ctx.definitions[Wp]), (bp, ctx.definitions[bp])])
    return chain.build()


def _induction_chains(net: Network, ctx: Context, first: int, last: int, Wp, bp,
                      unfold: bool = True) -> list[Chain]:
    """One chain per layer with named ``W'_k, b'_k`` (linear in depth), then the closed forms
    (``unfold``) or the collapsed map in the named intermediates."""
    inp = net.h(first - 1)
    n_in = inp.cols
    chains = []
    prev_W = prev_b = None
    lemma = None
    for k in range(first, last + 1):
        layer = net.layer(k)
        a, c = _affine(net, k)
        Wk = sp.MatrixSymbol(f"W'_{{{k}}}", n_in, layer.fan_out)
        bk = sp.MatrixSymbol(f"b'_{{{k}}}", 1, layer.fan_out)
        if prev_W is None:
            w_def = _term_expr((a, (layer.W,)))
            b_parts = [(a, (layer.b,))]
        else:
            w_def = _term_expr((a, (prev_W, layer.W)))
            b_parts = [(a, (matadd(matmul(prev_b, layer.W), layer.b),))]
        ctx.define(Wk, w_def)
        ctx.define(bk, _sum_expr(_plus_c(b_parts, c, layer.fan_out)))
        chain = ChainBuilder(ctx, net.h(k), title=f"Layer {k}")
        hk_def = ctx.definitions[net.h(k)]
        chain.step(hk_def, f"definition of {net.h(k).name}", uses=[net.h(k)])
        cur_in = inp if lemma is None else matadd(matmul(inp, prev_W), prev_b)
        if lemma is not None:
            chain.step(net.layer_expr(k, cur_in), "induction hypothesis", uses=[lemma])
        z = net.z(k, cur_in)
        if not _is_identity(net, k):
            form = _plus_c([(a, (z,))], c, layer.fan_out)
            chain.step(_sum_expr(form), "affine activation f(z) = a z + c")
        if lemma is not None:
            dist = [(a, (inp, prev_W, layer.W)), (a, (prev_b, layer.W)), (a, (layer.b,))]
            chain.step(_sum_expr(_plus_c(dist, c, layer.fan_out)), "distributivity")
        target = matadd(matmul(inp, Wk), bk)
        chain.step(target, f"definition of {Wk.name}, {bk.name}", uses=[Wk, bk])
        chain.where.extend([(Wk, ctx.definitions[Wk]), (bk, ctx.definitions[bk])])
        built = chain.build()
        chains.append(built)
        # the next layer may cite h_k = x W'_k + b'_k only once it is proved
        lemma = ctx.lemma(net.h(k), target) if built.verdict == PROVED else None
        if lemma is None:
            break
        prev_W, prev_b = Wk, bk
    if lemma is None:  # an unproved layer: the closed form cannot be reached by induction
        return chains
    if not unfold:
        named = ChainBuilder(ctx, net.h(last), title="Collapsed map")
        named.step(matadd(matmul(inp, prev_W), prev_b),
                   f"the induction above: W' = {prev_W.name}, b' = {prev_b.name} (not unfolded into "
                   f"the closed form beyond {CLOSED_FORM_MAX} layers; --closed-form does)", uses=[lemma])
        chains.append(named.build())
        return chains
    # closed forms
    closed = ChainBuilder(ctx, net.h(last), title="Closed form")
    closed.step(matadd(matmul(inp, prev_W), prev_b), "the induction above", uses=[lemma])
    closed.step(matadd(matmul(inp, Wp), bp), f"unfolding the recursion: {Wp.name}, {bp.name}")
    closed.where.extend([(Wp, ctx.definitions[Wp]), (bp, ctx.definitions[bp])])
    chains.append(closed.build())
    return chains


def _rank_bound(net: Network) -> Any:
    """``min`` of the widths.  SymPy's ``Min`` compares every pair of symbols through the
    assumptions (80 ms for nine distinct widths) only to find it cannot order them: the
    least integer width and the distinct symbols are formed here, and ``Min`` gets those
    (a width symbol is a positive integer, so an integer width 1 is the minimum)."""
    numbers = [int(w) for w in net.widths if w.is_Integer]
    if numbers and min(numbers) <= 1:
        return sp.Integer(min(numbers))
    args = [sp.Integer(min(numbers))] if numbers else []
    args += sorted({w for w in net.widths if not w.is_Integer}, key=sp.default_sort_key)
    return args[0] if len(args) == 1 else sp.Min(*args, evaluate=False)


def _numeric_cross_check(net: Network, W: Any, b: Any, definitions: dict, trials: int,
                         seed: int) -> tuple[int, float, float]:
    """Compare ``x W' + b'`` with a plain NumPy forward pass on random instances:
    (trials evaluated, max abs error, max relative error); trials that overflow are skipped."""
    worst, worst_rel, done = 0.0, 0.0, 0
    for trial in range(trials):
        rng = np.random.default_rng([seed, 7919, trial])
        dims = {w: int(rng.integers(1, 6)) for w in net.widths if not w.is_Integer}
        size = [int(w) if w.is_Integer else dims[w] for w in net.widths]
        scalars = {s: float(rng.normal()) for s in net.scalar_parameters}
        values: dict = {net.x: rng.standard_normal((1, size[0]))}
        h = values[net.x]
        for layer, n_in, n_out in zip(net.layers, size, size[1:]):
            values[layer.W] = rng.standard_normal((n_in, n_out))
            values[layer.b] = rng.standard_normal((1, n_out))
            a, c = layer.activation.affine_coefficients
            a, c = float(a.xreplace(scalars)), float(c.xreplace(scalars))
            h = a * (h @ values[layer.W] + values[layer.b]) + c
        ev = Evaluator({**values, **scalars}, dims, definitions)
        with np.errstate(all="ignore"):
            collapsed = np.asarray(ev(matadd(matmul(net.x, W), b)), dtype=float)
            if not (np.all(np.isfinite(collapsed)) and np.all(np.isfinite(h))):
                continue
            err = float(np.max(np.abs(collapsed - h)))
            scale = float(np.max(np.abs(h)))
        worst = max(worst, err)
        worst_rel = max(worst_rel, err / scale if scale > 0 else err)
        done += 1
    return done, worst, worst_rel


def find_witness(net: Network, seed: int = 0, attempts: int = 200) -> Witness | None:
    """Search seeded random weights and inputs breaking the affine identity, confirmed at 50 digits."""
    if net.is_affine:
        return None
    # symbolic sizes become 2, symbolic activation parameters get values in [0.5, 1.5]
    rng = np.random.default_rng([seed, 104729])
    parameters = {s: sp.Rational(round(float(rng.uniform(0.5, 1.5)), 3)) for s in net.scalar_parameters}
    acts = []
    for layer in net.layers:
        act = layer.activation
        acts.append(act.record.bind(**{k: v.xreplace(parameters) for k, v in act.params}))
    widths = [int(w) if w.is_Integer else 2 for w in net.widths]
    concrete = Network.dense(widths, acts)
    for attempt in range(attempts):
        rng = np.random.default_rng([seed, attempt])
        scale = 1.0 if attempt < attempts // 2 else 0.3
        weights = concrete.random_weights(seed=int(rng.integers(2**31)), scale=scale)
        n0 = int(concrete.widths[0])
        a = rng.normal(0, 2, (1, n0))
        b = rng.normal(0, 2, (1, n0))
        t = float(rng.choice([0.5, 0.25, 0.75]))
        with np.errstate(all="ignore"):
            lhs = concrete.forward(t * a + (1 - t) * b, weights)
            rhs = t * concrete.forward(a, weights) + (1 - t) * concrete.forward(b, weights)
        if not (np.all(np.isfinite(lhs)) and np.all(np.isfinite(rhs))):
            continue
        gap = float(np.max(np.abs(lhs - rhs)))
        if gap <= 1e-3 * max(1.0, float(np.max(np.abs(lhs))), float(np.max(np.abs(rhs)))):
            continue
        digits = _confirm_witness(concrete, weights, a, b, t, gap)
        if digits:
            named = {s.name: float(v) for s, v in parameters.items()}
            return Witness(weights, a, b, t, lhs, rhs, gap, digits, named)
    return None


def _confirm_witness(net: Network, weights: dict, a: np.ndarray, b: np.ndarray, t: float, gap: float) -> int:
    """Recompute both sides from the SymPy formulas at 50 digits (an independent code path)."""
    values = {sp.MatrixSymbol(k, *v.shape): v for k, v in weights.items()}
    by_name = {m.name: m for m in net.parameters}
    values = {by_name[k.name]: v for k, v in values.items()}
    out = net.output

    def F(x: np.ndarray) -> np.ndarray:
        ev = Evaluator({**values, net.x: x}, {}, {}, precise=True)
        return ev(out)

    try:
        lhs = F(t * a + (1 - t) * b)
        rhs = t * F(a) + (1 - t) * F(b)
        diff = max(abs(float(x - y)) for x, y in zip(lhs.flat, rhs.flat))
    except Exception:  # noqa: BLE001 - no confirmation, no witness
        return 0
    return 50 if diff > gap / 2 else 0


def collapse(net: Network, style: str = "auto", trials: int = 3, seed: int = 0,
             unfold: bool | None = None) -> CollapseResult:
    """Collapse every maximal run of affine layers; for a nonlinear network, find a witness.

    ``style`` is ``"auto"``, ``"chain"`` or ``"induction"`` (see the module doc).
    ``unfold``: whether the induction style also derives the closed form of ``W'``
    and ``b'`` by unfolding the recursion (default: for runs of at most
    ``CLOSED_FORM_MAX`` layers; the closed form of ``b'`` has a number of factors that
    grows with the square of the depth). Without it the proved result is stated with the
    named intermediates, ``y = x W'_L + b'_L``; ``result.W``/``result.b`` are the closed
    forms either way, cross-checked numerically. A layer network
    (:class:`~symnet.networks.layers.Sequential`) is collapsed by
    :func:`symnet.networks.layer_algebra.collapse_layers`.
    """
    from symnet.networks.layers import Sequential

    if isinstance(net, Sequential):
        from symnet.networks.layer_algebra import collapse_layers

        return collapse_layers(net, seed=seed)
    if style not in ("auto", "chain", "induction"):
        raise SpecError(f"unknown collapse style {style!r} (auto, chain, induction)")
    ctx = Context(trials=trials, seed=seed)
    for sym, expr in net.definitions():
        ctx.define(sym, expr)
    chains: list[Chain] = []
    segments = []
    for first, last in segments_of(net):
        w_terms, b_terms = closed_form(net, first, last)
        W, b = _sum_expr(w_terms), _sum_expr(b_terms) if b_terms else sp.ZeroMatrix(1, net.widths[last])
        wname, bname = _names(net, first, last)
        Wp = ctx.define(sp.MatrixSymbol(wname, net.widths[first - 1], net.widths[last]), W)
        bp = ctx.define(sp.MatrixSymbol(bname, 1, net.widths[last]), b)
        use_chain = style == "chain" or (style == "auto" and last - first + 1 <= AUTO_CHAIN_MAX)
        if use_chain:
            chains.append(_textbook_chain(net, ctx, first, last, Wp, bp))
        else:
            deep = last - first + 1 > CLOSED_FORM_MAX
            chains.extend(_induction_chains(net, ctx, first, last, Wp, bp, not deep if unfold is None else unfold))
        segments.append(Segment(first, last, W, b))
    collapsible = net.is_affine
    notes = []
    witness = None
    if collapsible:
        W, b = segments[0].W, segments[0].b
        rank = _rank_bound(net)
        done, worst, rel = _numeric_cross_check(net, W, b, ctx.definitions, trials=5, seed=seed)
        from symnet.render.printing import text

        notes.append(f"rank W' <= {text(rank)} (min of the widths).")
    else:
        W = b = rank = None
        done, worst, rel = 0, 0.0, 0.0
        bad = [f"{l.index} ({l.activation.spec})" for l in net.layers if not l.activation.is_affine]
        listed = bad[0] if len(bad) == 1 else ", ".join(bad[:-1]) + " and " + bad[-1]
        notes.append(f"Not collapsible: nonlinear activation in layer{'s' if len(bad) > 1 else ''} {listed}.")
        witness = find_witness(net, seed=seed)
        if witness is None:
            notes.append("No witness found (unproved).")
    from symnet.render.printing import widths_label

    title = "Collapse of " + widths_label(net.widths) + " network"
    derivation = Derivation(title, tuple(chains), tuple(notes))
    return CollapseResult(net, collapsible, W, b, derivation, tuple(segments), witness, rank, done, worst, rel)


def induction(affine: bool = False, trials: int = 3, seed: int = 0) -> Derivation:
    """The general n-layer statement (C1, C2) by induction on depth, with symbolic sizes.

    Base: ``h_1 = x W'_1 + b'_1``.  Step: if ``h_k = x W'_k + b'_k`` then
    ``h_{k+1} = x W'_{k+1} + b'_{k+1}`` with ``W'_{k+1} = a W'_k W_{k+1}`` and
    ``b'_{k+1} = a (b'_k W_{k+1} + b_{k+1}) + c 1`` (``a = 1, c = 0`` without affine).
    """
    n0, n1, nk, nk1 = (sp.Symbol(n, integer=True, positive=True) for n in ("n_0", "n_1", "n_k", "n_{k+1}"))
    a = sp.Symbol("a", real=True) if affine else sp.S.One
    c = sp.Symbol("c", real=True) if affine else sp.S.Zero
    x = sp.MatrixSymbol("x", 1, n0)
    ctx = Context(trials=trials, seed=seed)

    def act(z, n):
        return _sum_expr(_plus_c([(a, (z,))], c, n))

    # base case
    W1, b1, h1 = sp.MatrixSymbol("W_1", n0, n1), sp.MatrixSymbol("b_1", 1, n1), sp.MatrixSymbol("h_1", 1, n1)
    Wp1, bp1 = sp.MatrixSymbol("W'_1", n0, n1), sp.MatrixSymbol("b'_1", 1, n1)
    ctx.define(h1, act(matadd(matmul(x, W1), b1), n1))
    ctx.define(Wp1, _term_expr((a, (W1,))))
    ctx.define(bp1, _sum_expr(_plus_c([(a, (b1,))], c, n1)))
    base = ChainBuilder(ctx, h1, title="Base case (one layer)")
    base.step(ctx.definitions[h1], "definition of h_1", uses=[h1])
    base.step(matadd(matmul(x, Wp1), bp1), "definition of W'_1, b'_1", uses=[Wp1, bp1])
    base.where.extend([(Wp1, ctx.definitions[Wp1]), (bp1, ctx.definitions[bp1])])

    # induction step: the hypothesis h_k = x W'_k + b'_k is taken as the meaning of h_k
    Wk, bk = sp.MatrixSymbol("W'_k", n0, nk), sp.MatrixSymbol("b'_k", 1, nk)
    hk = sp.MatrixSymbol("h_k", 1, nk)
    W, b = sp.MatrixSymbol("W_{k+1}", nk, nk1), sp.MatrixSymbol("b_{k+1}", 1, nk1)
    hk1 = sp.MatrixSymbol("h_{k+1}", 1, nk1)
    Wk1, bk1 = sp.MatrixSymbol("W'_{k+1}", n0, nk1), sp.MatrixSymbol("b'_{k+1}", 1, nk1)
    ctx.define(hk, matadd(matmul(x, Wk), bk))
    ctx.define(hk1, act(matadd(matmul(hk, W), b), nk1))
    ctx.define(Wk1, _term_expr((a, (Wk, W))))
    ctx.define(bk1, _sum_expr(_plus_c([(a, (matadd(matmul(bk, W), b),))], c, nk1)))
    step = ChainBuilder(ctx, hk1, title="Induction step: assume h_k = x W'_k + b'_k")
    step.step(ctx.definitions[hk1], "definition of h_{k+1}", uses=[hk1])
    step.step(act(matadd(matmul(matadd(matmul(x, Wk), bk), W), b), nk1), "induction hypothesis", uses=[hk])
    dist = _plus_c([(a, (x, Wk, W)), (a, (bk, W)), (a, (b,))], c, nk1)
    step.step(_sum_expr(dist), "distributivity")
    step.step(matadd(matmul(x, Wk1), bk1), "definition of W'_{k+1}, b'_{k+1}", uses=[Wk1, bk1])
    step.where.extend([(Wk1, ctx.definitions[Wk1]), (bk1, ctx.definitions[bk1])])
    kind = "affine activations f(z) = a z + c" if affine else "identity activations"
    notes = (
        f"By induction on the depth, a stack of any number of layers with {kind} computes "
        "y = x W' + b' with W', b' given by the recursion above.",
    )
    title = f"Any depth collapses ({kind}): proof by induction"
    return Derivation(title, (base.build(), step.build()), notes)
