"""``symnet activations``: the catalogue as a comparison table, as JSON, or as plots.

    symnet activations [NAME ...] [--format text|markdown|latex|json] [-o FILE]
                       [--plot DIR [--plot-format png|svg|pdf] [--dpi N] [--plot-size WxH]]

Each NAME is a catalogue name, an alias or a spec with parameters
(``"elu(alpha=2)"``); none means the whole catalogue.  Every column is derived
by :mod:`symnet.networks.properties`; this module only arranges what it returns.
SymPy, NumPy and matplotlib are imported when the command runs, not when the
parser is built.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

FORMATS = ("text", "markdown", "latex", "json")
PLOT_RANGE = (-4.0, 4.0)
MISSING_MATPLOTLIB = "matplotlib is not installed; pip install 'symnet[plot]'"

_HEADERS = (
    "name",
    "f(z)",
    "f'(z)",
    "f' in y = f(z)",
    "range",
    "C^k",
    "monotonic",
    "f' monotonic",
    "≈ id near 0",
    "bounded",
    "squashing",
)


def register(subparsers: Any) -> None:
    """Add the ``activations`` subcommand."""
    parser = subparsers.add_parser(
        "activations",
        help="the activation catalogue with derived properties",
        description=(
            "List activation functions with their derivative, range, continuity and "
            "monotonicity, all derived from the formulas."
        ),
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="catalogue names, aliases or specs such as 'elu(alpha=2)' (default: all)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="text", help="output format (default: text)"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument(
        "--plot",
        metavar="DIR",
        help="also write one plot per activation (f and f') to DIR, which must exist",
    )
    parser.add_argument(
        "--plot-format",
        choices=PLOT_FORMATS,
        default="png",
        help="file format of the plots (default: png)",
    )
    parser.add_argument(
        "--dpi", type=_dpi, default=PLOT_DPI, help=f"plot resolution (default: {PLOT_DPI})"
    )
    parser.add_argument(
        "--plot-size",
        type=_size,
        default=PLOT_SIZE,
        metavar="WxH",
        help="plot size in inches (default: 5x3.5, 500x350 pixels at 100 dpi)",
    )
    parser.set_defaults(func=run)


def _dpi(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of dots per inch, got {text!r}") from None
    if not 10 <= value <= 2400:
        raise argparse.ArgumentTypeError(f"dpi must be between 10 and 2400, got {value}")
    return value


def _size(text: str) -> tuple[float, float]:
    import math

    try:
        w, h = (float(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in inches such as 5x3.5, got {text!r}") from None
    if not all(math.isfinite(v) and 0.5 <= v <= 50 for v in (w, h)):
        raise argparse.ArgumentTypeError(f"width and height must be between 0.5 and 50 inches, got {text!r}")
    return (w, h)


def run(args: argparse.Namespace) -> int:
    from symnet.cli import write_output

    if args.plot:
        plot_directory(args.plot)  # refused before anything is written
    scalars, vectors = select(args.names)
    rendered = render(scalars, vectors, args.format)
    write_output(rendered, args.output)
    if args.plot:
        plot(scalars, args.plot, fmt=args.plot_format, dpi=args.dpi, size=args.plot_size)
    return 0


# ---------------------------------------------------------------------------
# Selection


def select(names: list[str]) -> tuple[list, list]:
    """Bound scalar activations and vector records named on the command line (all if none)."""
    from symnet.errors import SpecError
    from symnet.networks import activations as A

    if not names:
        return [A.parse_spec(n) for n in A.names()], list(A.VECTOR_RECORDS)
    scalars, vectors = [], []
    for name in names:
        if name.strip().lower() in A.VECTOR_CATALOGUE:
            vectors.append(A.lookup_vector(name))
            continue
        try:
            scalars.append(A.parse_spec(name))
        except SpecError as exc:
            if "unknown activation" in str(exc):
                known = ", ".join([*A.names(), *(r.name for r in A.VECTOR_RECORDS)])
                raise SpecError(f"unknown activation {name!r}; known: {known}") from None
            raise
    return scalars, vectors


# ---------------------------------------------------------------------------
# Views of the derived properties


def render(scalars: list, vectors: list, fmt: str) -> str:
    """The table (or JSON) for the given activations, in format ``fmt``."""
    from symnet.errors import SymnetError
    from symnet.networks import properties as P

    views = [_View(a, P.properties(a)) for a in scalars]
    vprops = [P.vector_properties(r) for r in vectors]
    if fmt == "json":
        data = [to_json(v.act, v.p) for v in views]
        data += [vector_to_json(r, v) for r, v in zip(vectors, vprops)]
        return json.dumps(data, indent=2, ensure_ascii=False)
    if fmt == "markdown":
        return _markdown(views, vprops)
    if fmt == "latex":
        return _latex(views, vprops)
    if fmt == "text":
        return _text(views, vprops)
    raise SymnetError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


# -- parameters shown by name ---------------------------------------------------

#: A parameter value that SymPy prints longer than this is shown by the parameter's
#: name (SELU's lambda and alpha: ``λα(e^z - 1)``), its value listed once in a note.
NAMED_LENGTH = 12

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eta": "η",
    "theta": "θ", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "omega": "ω",
}


def _latex_symbol(name: str) -> str:
    return "\\" + name if name in _GREEK else r"\mathrm{" + name + "}"


def _text_symbol(latex: str) -> str:
    """``\\lambda\\alpha`` -> ``λα``, ``\\mathrm{slope}`` -> ``slope``."""
    return re.sub(
        r"\\mathrm\{(\w+)\}|\\([a-z]+)", lambda m: m[1] or _GREEK.get(m[2], m[2]), latex
    )


class _View:
    """One scalar activation as the tables show it: its properties, with long parameter
    values (SELU's constants) replaced by the parameters' names."""

    def __init__(self, act: Any, p: Any):
        import sympy as sp

        self.act, self.p = act, p
        self.named = [
            (k, v)
            for k, v in act.params
            if v.is_number and (isinstance(v, sp.Float) or len(sp.sstr(v)) > NAMED_LENGTH)
        ]
        # symbols named by their LaTeX (a backslash sorts first: λz, not zλ); products of
        # two named values get one symbol, so λα keeps the order of the parameters
        items = [(v, _latex_symbol(k)) for k, v in self.named]
        self.symbols: dict = {}
        for i, (v, name) in enumerate(items):
            self.symbols[v] = sp.Symbol(name)
            for v2, name2 in items[i + 1 :]:
                self.symbols[v * v2] = sp.Symbol(name + name2)
        self.symbols.update({-v: -s for v, s in list(self.symbols.items())})

    def show(self, expr: Any) -> Any:
        """``expr`` with the named values replaced by their symbols (pieces factored)."""
        import sympy as sp

        if expr is None or not self.symbols:
            return expr
        out = expr.xreplace(self.symbols)
        if out == expr:
            return expr
        if isinstance(out, sp.Piecewise):
            return sp.Piecewise(*[(sp.factor_terms(e), c) for e, c in out.args])
        return sp.factor_terms(out)

    @property
    def formula(self) -> Any:
        return self.show(_display(self.p.formula))

    @property
    def derivative(self) -> Any:
        return self.show(self.p.derivative)

    @property
    def derivative_in_output(self) -> Any:
        return self.show(self.p.derivative_in_output)

    def range_text(self) -> str:
        r = self.p.range
        if r is None:
            return "depends"
        lower, upper = self.show(r.lower), self.show(r.upper)
        if (lower, upper) == (r.lower, r.upper):
            return str(r)
        left = "[" if r.lower_closed else "("
        right = "]" if r.upper_closed else ")"
        return f"{left}{_plain(lower)}, {_plain(upper)}{right}"

    def range_latex(self) -> str:
        import sympy as sp

        r = self.p.range
        lower, upper = (None, None) if r is None else (self.show(r.lower), self.show(r.upper))
        if r is None or (lower, upper) == (r.lower, r.upper) or isinstance(r.set, sp.FiniteSet):
            return _latex_range(r)
        left = "[" if r.lower_closed else "("
        right = "]" if r.upper_closed else ")"
        return f"{left}{sp.latex(lower)}, {sp.latex(upper)}{right}"

    def values_note(self, latex: bool = False) -> str | None:
        """``selu: λ = 1.0507..., α = 1.6732...`` (32 significant digits), or None."""
        import sympy as sp

        if not self.named:
            return None
        parts = []
        for k, v in self.named:
            value = sp.sstr(sp.Float(v, 32)) if not isinstance(v, sp.Float) else sp.sstr(v)
            name = _latex_symbol(k) if latex else _text_symbol(_latex_symbol(k))
            parts.append(f"${name} = {value}$" if latex else f"{name} = {value}")
        return ", ".join(parts)


def _sstr(expr: Any) -> str | None:
    import sympy as sp

    return None if expr is None else sp.sstr(expr)


def _continuity_json(k: Any) -> int | str | None:
    import sympy as sp

    if k is None:
        return None
    return "inf" if k == sp.oo else int(k)


def _range_json(r: Any) -> dict | None:
    if r is None:
        return None
    return {
        "lower": _sstr(r.lower),
        "upper": _sstr(r.upper),
        "lower_closed": r.lower_closed,
        "upper_closed": r.upper_closed,
        "set": _sstr(r.set),
        "text": str(r),
        "numeric": r.numeric,
    }


def to_json(act: Any, p: Any) -> dict:
    """The JSON object of one scalar activation."""
    import sympy as sp

    from symnet.networks import properties as P

    view = _View(act, p)
    defaults = {q.name: q.default for q in act.record.parameters}
    return {
        "name": act.name,
        "kind": "scalar",
        "spec": act.spec,
        "aliases": list(act.record.aliases),
        "expr": _sstr(p.formula),
        "derivative": _sstr(p.derivative),
        "derivative_in_output": _sstr(p.derivative_in_output),
        "output_symbol": "y",
        "parameters": [
            {"name": k, "value": _sstr(v), "default": _sstr(defaults.get(k))} for k, v in act.params
        ],
        "range": _range_json(p.range),
        "continuity": _continuity_json(p.continuity),
        "monotonic": p.monotonic,
        "derivative_monotonic": p.derivative_monotonic,
        "identity_near_origin": p.identity_near_origin,
        "bounded": p.bounded,
        "affine": p.affine,
        "squashing": p.squashing,
        "nondifferentiable": [
            {
                "point": _sstr(k.point),
                "derivative_used": _sstr(k.symnet),
                "left_derivative": _sstr(k.left),
                "right_derivative": _sstr(k.right),
                "jump": k.jump,
                "torch": _sstr(k.torch),
                "jax": _sstr(k.jax),
                "torch_rule": k.torch_source,
                "jax_rule": k.jax_source,
            }
            for k in P.kink_conventions(act)
        ],
        "subgradient": p.subgradient,
        "latex": {
            "name": act.latex_name,
            "expr": sp.latex(view.formula),
            "derivative": sp.latex(view.derivative),
            "derivative_in_output": None
            if p.derivative_in_output is None
            else sp.latex(view.derivative_in_output),
            "symbols": {k: _latex_symbol(k) for k, _ in view.named},
        },
        "numeric_methods": list(p.numeric),
        "doc": act.record.doc,
        "reference": act.record.reference,
    }


def vector_to_json(record: Any, v: Any) -> dict:
    """The JSON object of a vector activation (softmax): Jacobian entries in index form."""
    return {
        "name": record.name,
        "kind": "vector",
        "spec": record.name,
        "aliases": list(record.aliases),
        "expr": _sstr(v.formula),
        "derivative": _sstr(v.jacobian),
        "derivative_in_output": _sstr(v.jacobian_in_output),
        "output_symbol": "y",
        "jacobian_checked_for_n": list(v.checked_sizes),
        "parameters": [],
        "range": _range_json(v.range),
        "continuity": _continuity_json(v.continuity),
        "monotonic": None,
        "derivative_monotonic": None,
        "identity_near_origin": None,
        "bounded": None if v.range is None else v.range.bounded,
        "affine": v.affine,
        "squashing": None,
        "nondifferentiable": [],
        "subgradient": "",
        "doc": record.doc,
        "reference": record.reference,
    }


def _display(expr: Any) -> Any:
    """The formula as shown: Heaviside written out (SymPy prints it as theta), Piecewise folded."""
    import sympy as sp

    expr = expr.replace(lambda e: isinstance(e, sp.Heaviside), lambda e: e.rewrite(sp.Piecewise))
    if expr.has(sp.Piecewise) and not isinstance(expr, sp.Piecewise):
        expr = sp.piecewise_fold(expr)
    return expr


def _short_floats(expr: Any) -> Any:
    """Floats cut to 15 significant digits, for the human-readable views only."""
    import sympy as sp

    return expr.xreplace({f: sp.Float(f, 15) for f in expr.atoms(sp.Float)})


_TEXT_PRINTER: Any = None


def _tstr(expr: Any) -> str:
    """One-line plain text of a SymPy expression: ``e^z``, ``z^2``, ``λα(e^z - 1)``."""
    global _TEXT_PRINTER
    if _TEXT_PRINTER is None:
        from sympy.printing.str import StrPrinter

        class _TextPrinter(StrPrinter):
            def _print_exp(self, e: Any) -> str:
                arg = e.args[0]
                if arg.is_Symbol:
                    return f"e^{self._print(arg)}"
                if (-arg).is_Symbol:
                    return f"e^-{self._print(-arg)}"
                return f"e^({self._print(arg)})"

            def _print_Symbol(self, e: Any) -> str:
                return _text_symbol(e.name) if e.name.startswith("\\") else super()._print_Symbol(e)

        _TEXT_PRINTER = _TextPrinter()
    text = _TEXT_PRINTER.doprint(expr).replace("**", "^")
    greek = "[" + "".join(_GREEK.values()) + "]+"
    text = re.sub(rf"({greek})\*(?=\(|[yz]\b)", r"\1", text)  # λα(e^z - 1), λz
    return re.sub(rf"({greek})\*", r"\1 ", text)


def _plain(expr: Any) -> str:
    """A one-line plain-text formula: Piecewise as '{a for cond; b otherwise}'."""
    import sympy as sp

    if expr is None:
        return "-"
    expr = _short_floats(_display(expr))
    if isinstance(expr, sp.Piecewise):
        parts = []
        for value, cond in expr.args:
            if cond == sp.true:
                parts.append(f"{_plain(value)} otherwise")
            else:
                parts.append(f"{_plain(value)} for {_plain_condition(cond)}")
        return "{" + "; ".join(parts) + "}"
    return _tstr(expr)


def _plain_condition(cond: Any) -> str:
    import sympy as sp

    if isinstance(cond, sp.And) and len(cond.args) == 2:
        lows = [c for c in cond.args if isinstance(c, (sp.StrictGreaterThan, sp.GreaterThan))]
        highs = [c for c in cond.args if isinstance(c, (sp.StrictLessThan, sp.LessThan))]
        if len(lows) == 1 and len(highs) == 1 and lows[0].lhs == highs[0].lhs:
            lo, hi = lows[0], highs[0]
            left = "<" if isinstance(lo, sp.StrictGreaterThan) else "<="
            right = "<" if isinstance(hi, sp.StrictLessThan) else "<="
            return f"{_tstr(lo.rhs)} {left} {_tstr(lo.lhs)} {right} {_tstr(hi.rhs)}"
    if isinstance(cond, sp.Eq):
        return f"{_tstr(cond.lhs)} = {_tstr(cond.rhs)}"
    return sp.sstr(cond)


def _yes(value: bool | None) -> str:
    return "depends" if value is None else ("Y" if value else "N")


def _continuity_text(k: Any) -> str:
    import sympy as sp

    if k is None:
        return "depends"
    return "C^inf" if k == sp.oo else f"C^{int(k)}"


def _property_cells(p: Any) -> list[str]:
    return [
        _continuity_text(p.continuity),
        _yes(p.monotonic),
        _yes(p.derivative_monotonic),
        _yes(p.identity_near_origin),
        _yes(p.bounded),
        _yes(p.squashing),
    ]


def _vector_cells(v: Any) -> list[str]:
    return [
        "-" if v.range is None else str(v.range),
        _continuity_text(v.continuity),
        "-",
        "-",
        "-",
        "-" if v.range is None else _yes(v.range.bounded),
        "-",
    ]


def _rows(views: list, vprops: list) -> list[list[str]]:
    rows = []
    for v in views:
        rows.append(
            [
                v.p.spec,
                _plain(v.formula),
                _plain(v.derivative),
                _plain(v.derivative_in_output),
                v.range_text(),
                *_property_cells(v.p),
            ]
        )
    for v in vprops:
        rows.append(
            [
                v.name + " (vector)",
                _plain(v.formula),
                "d f_i/d z_j = " + _plain(v.jacobian),
                _plain(v.jacobian_in_output),
                *_vector_cells(v),
            ]
        )
    return rows


def _text(views: list, vprops: list) -> str:
    rows = [list(_HEADERS), *_rows(views, vprops)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADERS))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = _notes(views)
    return "\n".join(lines + ([""] + notes if notes else []))


def _kink_note(v: Any, k: Any) -> str:
    """``leaky_relu: kink at z = 0; f' there taken as 1 (PyTorch 1/100, JAX 1)``."""
    kind = "jump" if k.jump else "kink"
    note = f"{v.p.spec}: {kind} at z = {_plain(k.point)}; f' there taken as {_plain(v.show(k.symnet))}"
    others = [
        f"{label} {_plain(v.show(value))}"
        for label, value in (("PyTorch", k.torch), ("JAX", k.jax))
        if value is not None
    ]
    return note + (f" ({', '.join(others)})" if others else "")


def _notes(views: list) -> list[str]:
    """Footnotes: named parameter values, subgradient conventions (symnet's, PyTorch's and
    JAX's), and which facts rest on the numeric method."""
    from symnet.networks import properties as P

    notes = []
    for v in views:
        values = v.values_note()
        if values:
            notes.append(f"{v.p.spec}: {values}")
        for k in P.kink_conventions(v.act):
            notes.append(_kink_note(v, k))
    props = [v.p for v in views]
    numeric = [p.spec for p in props if p.range is not None and p.range.numeric]
    if numeric:
        notes.append(
            "range endpoints located numerically (30-digit mpmath, 15 digits shown): "
            + ", ".join(numeric)
        )
    if any(p.range is None for p in props):
        notes.append("depends: the answer depends on parameters left symbolic")
    return notes


def _md_cell(text: str) -> str:
    return text.replace("|", r"\|")


def _md_latex(expr: Any) -> str:
    """LaTeX that survives a Markdown table cell: no ``|`` (it would end the cell)."""
    import sympy as sp

    code = sp.latex(_short_floats(expr))
    code = code.replace(r"\left|", r"\left\lvert ").replace(r"\right|", r"\right\rvert ")
    return code.replace("|", r"\vert ")


def _md_condition(cond: Any) -> str:
    """``-3 < z < 3`` for ``z > -3 & z < 3``, else the condition's LaTeX."""
    import sympy as sp

    if isinstance(cond, sp.And) and len(cond.args) == 2:
        lows = [c for c in cond.args if isinstance(c, (sp.StrictGreaterThan, sp.GreaterThan))]
        highs = [c for c in cond.args if isinstance(c, (sp.StrictLessThan, sp.LessThan))]
        if len(lows) == 1 and len(highs) == 1 and lows[0].lhs == highs[0].lhs:
            lo, hi = lows[0], highs[0]
            left = "<" if isinstance(lo, sp.StrictGreaterThan) else r"\leq"
            right = "<" if isinstance(hi, sp.StrictLessThan) else r"\leq"
            return f"{_md_latex(lo.rhs)} {left} {_md_latex(lo.lhs)} {right} {_md_latex(hi.rhs)}"
    return _md_latex(cond)


def _md_math(expr: Any) -> str:
    """A formula cell: ``$...$``; a Piecewise as ``$a$ for $z < 0$; $b$ otherwise``
    (one line, none of the ``cases`` environment's ``\\\\``, which Markdown eats)."""
    import sympy as sp

    if expr is None:
        return "-"
    expr = _display(expr)
    if isinstance(expr, sp.Piecewise):
        parts = []
        for value, cond in expr.args:
            if cond == sp.true:
                parts.append(f"${_md_latex(value)}$ otherwise")
            else:
                parts.append(f"${_md_latex(value)}$ for ${_md_condition(cond)}$")
        return "; ".join(parts)
    return f"${_md_latex(expr)}$"


def _markdown(views: list, vprops: list) -> str:
    lines = ["| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
    for v in views:
        cells = [
            _md_cell(v.p.spec),
            _md_math(v.formula),
            _md_math(v.derivative),
            _md_math(v.derivative_in_output),
            _md_cell(v.range_text()),
            *_property_cells(v.p),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for v in vprops:
        jacobian = r"$\frac{\partial f_i}{\partial z_j} = " + _md_latex(v.jacobian) + "$"
        cells = [
            _md_cell(v.name + " (vector)"),
            _md_math(v.formula),
            jacobian,
            _md_math(v.jacobian_in_output) if v.jacobian_in_output is not None else "-",
            *[_md_cell(c) for c in _vector_cells(v)],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = _notes(views)
    if notes:
        lines.append("")
        lines += [f"- {_md_cell(n)}" for n in notes]
    return "\n".join(lines)


def _latex_range(r: Any) -> str:
    import sympy as sp

    if r is None:
        return r"\text{depends}"
    if isinstance(r.set, sp.FiniteSet):
        return r"\{" + ", ".join(sp.latex(v) for v in r.set) + r"\}"
    left = "[" if r.lower_closed else "("
    right = "]" if r.upper_closed else ")"
    lower = sp.latex(sp.Float(r.lower, 15)) if isinstance(r.lower, sp.Float) else sp.latex(r.lower)
    upper = sp.latex(sp.Float(r.upper, 15)) if isinstance(r.upper, sp.Float) else sp.latex(r.upper)
    return f"{left}{lower}, {upper}{right}"


def _latex(views: list, vprops: list) -> str:
    import sympy as sp

    def yes(v: bool | None) -> str:
        return r"\text{depends}" if v is None else (r"\text{Y}" if v else r"\text{N}")

    def cont(k: Any) -> str:
        if k is None:
            return r"\text{depends}"
        return r"C^{\infty}" if k == sp.oo else f"C^{{{int(k)}}}"

    head = [
        r"\text{name}",
        "f(z)",
        "f'(z)",
        "f'(y)",
        r"\text{range}",
        r"C^k",
        r"\text{mono}",
        r"f'\ \text{mono}",
        r"\approx\text{id}",
        r"\text{bounded}",
        r"\text{squashing}",
    ]
    rows = []
    for v in views:
        p = v.p
        y = (
            "-"
            if p.derivative_in_output is None
            else f"${sp.latex(_short_floats(v.derivative_in_output))}$"
        )
        name = p.spec.replace("_", r"\_")
        rows.append([
            rf"\texttt{{{name}}}",
            f"${sp.latex(_short_floats(v.formula))}$",
            f"${sp.latex(_short_floats(v.derivative))}$",
            y,
            f"${v.range_latex()}$",
            f"${cont(p.continuity)}$",
            f"${yes(p.monotonic)}$",
            f"${yes(p.derivative_monotonic)}$",
            f"${yes(p.identity_near_origin)}$",
            f"${yes(p.bounded)}$",
            f"${yes(p.squashing)}$",
        ])
    for v in vprops:
        rows.append([
            rf"\texttt{{{v.name}}}",
            f"${sp.latex(v.formula)}$",
            rf"$\frac{{\partial f_i}}{{\partial z_j}} = {sp.latex(v.jacobian)}$",
            f"${sp.latex(v.jacobian_in_output)}$",
            f"${_latex_range(v.range)}$",
            f"${cont(v.continuity)}$",
            "-",
            "-",
            "-",
            "-" if v.range is None else f"${yes(v.range.bounded)}$",
            "-",
        ])
    # two tables that each fit a page's text width: the formulas, then the properties
    lines = []
    for columns in (range(0, 4), [0] + list(range(4, len(head)))):
        lines += [
            r"{\small\setlength{\tabcolsep}{4pt}",
            r"\begin{tabular}{" + "l" * len(columns) + "}",
            r"\hline",
            " & ".join(f"${head[i]}$" for i in columns) + r" \\",
            r"\hline",
        ]
        lines += [" & ".join(row[i] for i in columns) + r" \\" for row in rows]
        lines.append(r"\hline")
        if columns[-1] == len(head) - 1:
            for v in views:  # the named parameter values, once
                values = v.values_note(latex=True)
                if values:
                    name = v.p.spec.replace("_", r"\_")
                    lines.append(rf"\multicolumn{{{len(columns)}}}{{l}}{{\texttt{{{name}}}: {values}}} \\")
        lines += [r"\end{tabular}}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Plots

PLOT_FORMATS = ("png", "svg", "pdf")
PLOT_SIZE = (5.0, 3.5)  # inches: 500 x 350 pixels at the default 100 dpi
PLOT_DPI = 100


def plot_directory(directory: str) -> str:
    """``directory`` if it is an existing directory; else a one-line error (exit 2).

    A missing directory is refused, not created, as ``-o`` refuses a missing parent."""
    from symnet.errors import SymnetError

    if not os.path.exists(directory):
        raise SymnetError(f"cannot write plots to {directory}: no such directory (create it first)")
    if not os.path.isdir(directory):
        raise SymnetError(f"cannot write plots to {directory}: not a directory")
    return directory


def plot(
    scalars: list,
    directory: str,
    fmt: str = "png",
    dpi: int = PLOT_DPI,
    size: tuple[float, float] = PLOT_SIZE,
) -> list[str]:
    """One file per activation in ``directory`` (which must exist): f (NumPy form) and f'
    (derived) on [-4, 4], as ``fmt`` (png, svg or pdf), ``size`` inches at ``dpi``.

    A jump of f or f' is drawn as a break in the curve with a closed dot at the value
    taken there and open dots at the one-sided limits.  Activations with symbolic
    parameters cannot be evaluated and are skipped (named on stderr).  File names are
    :func:`file_name` of the spec.  Returns the paths written.
    """
    import sys

    from symnet.errors import SymnetError

    if fmt not in PLOT_FORMATS:
        raise SymnetError(f"unknown plot format {fmt!r}; choose from {', '.join(PLOT_FORMATS)}")
    plot_directory(directory)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SymnetError(MISSING_MATPLOTLIB) from None
    import numpy as np
    import sympy as sp

    from symnet.networks import properties as P
    from symnet.networks.activations import Z, lambdify_numpy

    z = np.linspace(*PLOT_RANGE, 801)
    written = []
    for act in scalars:
        if any(not v.is_number for _, v in act.params):
            print(f"symnet: {act.spec}: not plotted (give its parameters numbers)", file=sys.stderr)
            continue
        p = P.properties(act)
        with np.errstate(all="ignore"):
            f = np.asarray(act.numpy(z), dtype=float)
            fprime = lambdify_numpy(Z, p.derivative)
            d = np.broadcast_to(np.asarray(fprime(z), dtype=float), z.shape)
        points = [float(k.point) for k in p.nondifferentiable]
        jumps = [float(k.point) for k in p.nondifferentiable if k.jump]
        fig, ax = plt.subplots(figsize=size, dpi=dpi)
        line_f = ax.plot(*_broken(z, f, jumps), label=f"f(z) = {act.text_name}(z)")[0]
        line_d = ax.plot(*_broken(z, d, points), "--", label="f'(z)")[0]
        for k in p.nondifferentiable:
            x = float(k.point)
            if not PLOT_RANGE[0] <= x <= PLOT_RANGE[1]:
                continue
            if k.jump:
                left, right = (float(sp.limit(act.body, Z, k.point, s)) for s in ("-", "+"))
                _dots(ax, x, float(act.body.subs(Z, k.point)), (left, right), line_f.get_color())
            limits = (float(k.left), float(k.right))
            if any(limit != float(k.value) for limit in limits):  # f' jumps here
                _dots(ax, x, float(k.value), limits, line_d.get_color())
        ax.axhline(0, color="0.8", linewidth=0.8)
        ax.axvline(0, color="0.8", linewidth=0.8)
        ax.set_xlim(*PLOT_RANGE)
        ax.set_xlabel("z")
        ax.set_title(act.spec)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        path = os.path.join(directory, f"{file_name(act)}.{fmt}")
        try:
            fig.savefig(path, format=fmt)
        except OSError as exc:
            raise SymnetError(f"cannot write {path}: {exc.strerror}") from None
        finally:
            plt.close(fig)
        written.append(path)
    return written


def _broken(z: Any, y: Any, points: list[float]) -> tuple[Any, Any]:
    """The curve with a gap (NaN) at each point, so no vertical segment joins a jump."""
    import numpy as np

    for x in sorted(points, reverse=True):
        at = int(np.searchsorted(z, x))
        hit = at < len(z) and z[at] == x  # the grid point at the jump belongs to neither side
        keep = np.ones(len(z), dtype=bool)
        if hit:
            keep[at] = False
        z, y = np.insert(z[keep], at, np.nan), np.insert(y[keep], at, np.nan)
    return z, y


def _dots(ax: Any, x: float, value: float, limits: tuple[float, float], color: str) -> None:
    """A closed dot at ``(x, value)``; an open dot at each one-sided limit that differs."""
    for limit in sorted(set(limits)):
        if limit != value:
            ax.plot([x], [limit], "o", markersize=5, markerfacecolor="white",
                     markeredgecolor=color, zorder=3)
    ax.plot([x], [value], "o", markersize=5, color=color, zorder=4)


def _number_for_file(v: Any) -> str:
    """``0.2`` for 1/5, ``1e-10``, ``-1``; ``1over3`` when no short decimal is exact."""
    from fractions import Fraction

    import sympy as sp

    if v.is_Integer:
        return str(int(v))
    if v.is_Rational:
        exact = Fraction(int(v.p), int(v.q))
        shortest = repr(float(exact))
        if Fraction(shortest) == exact:
            return shortest
        return f"{'-' if exact < 0 else ''}{abs(exact.numerator)}over{exact.denominator}"
    return sp.sstr(sp.Float(v, 15))


def file_name(act: Any) -> str:
    """The plot's file name (no extension): the name, then ``_key=value`` for each parameter
    that differs from its default, values as short exact decimals (``leaky_relu_alpha=0.2``
    for alpha = 1/5) or ``NoverM`` (``elu_alpha=1over3``).  Only letters, digits and
    ``_ = . -`` occur: portable on Linux, macOS and Windows."""
    defaults = {q.name: q.default for q in act.record.parameters}
    parts = [act.name]
    for k, v in act.params:
        if defaults.get(k) is None or v != defaults[k]:
            parts.append(f"{k}={_number_for_file(v)}")
    name = "_".join(parts)
    keep = [c if c.isascii() and (c.isalnum() or c in "-_.=") else "_" for c in name]
    return "".join(keep).strip("_") or "activation"
