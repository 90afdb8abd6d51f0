"""``symnet activations``: the catalogue as a comparison table, as JSON, or as plots.

    symnet activations [NAME ...] [--format text|markdown|latex|json] [-o FILE] [--plot DIR]

Each NAME is a catalogue name, an alias or a spec with parameters
(``"elu(alpha=2)"``); none means the whole catalogue.  Every column is derived
by :mod:`symnet.properties`; this module only arranges what it returns.
SymPy, NumPy and matplotlib are imported when the command runs, not when the
parser is built.
"""

from __future__ import annotations

import argparse
import json
import os
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
        "--plot", metavar="DIR", help="also write one PNG per activation (f and f') to DIR"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cli import write_output

    scalars, vectors = select(args.names)
    rendered = render(scalars, vectors, args.format)
    write_output(rendered, args.output)
    if args.plot:
        plot(scalars, args.plot)
    return 0


# ---------------------------------------------------------------------------
# Selection


def select(names: list[str]) -> tuple[list, list]:
    """Bound scalar activations and vector records named on the command line (all if none)."""
    from .. import activations as A
    from ..errors import SpecError

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
    from .. import properties as P
    from ..errors import SymnetError

    props = [P.properties(a) for a in scalars]
    vprops = [P.vector_properties(r) for r in vectors]
    if fmt == "json":
        data = [to_json(a, p) for a, p in zip(scalars, props)]
        data += [vector_to_json(r, v) for r, v in zip(vectors, vprops)]
        return json.dumps(data, indent=2, ensure_ascii=False)
    if fmt == "markdown":
        return _markdown(props, vprops)
    if fmt == "latex":
        return _latex(props, vprops)
    if fmt == "text":
        return _text(props, vprops)
    raise SymnetError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


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
                "derivative_used": _sstr(k.value),
                "left_derivative": _sstr(k.left),
                "right_derivative": _sstr(k.right),
                "jump": k.jump,
            }
            for k in p.nondifferentiable
        ],
        "subgradient": p.subgradient,
        "latex": {
            "name": act.latex_name,
            "expr": sp.latex(_display(p.formula)),
            "derivative": sp.latex(p.derivative),
            "derivative_in_output": None
            if p.derivative_in_output is None
            else sp.latex(p.derivative_in_output),
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
    if expr.has(sp.Piecewise):
        return sp.sstr(expr)
    return sp.sstr(expr).replace("**", "^")


def _plain_condition(cond: Any) -> str:
    import sympy as sp

    if isinstance(cond, sp.And) and len(cond.args) == 2:
        lows = [c for c in cond.args if isinstance(c, (sp.StrictGreaterThan, sp.GreaterThan))]
        highs = [c for c in cond.args if isinstance(c, (sp.StrictLessThan, sp.LessThan))]
        if len(lows) == 1 and len(highs) == 1 and lows[0].lhs == highs[0].lhs:
            lo, hi = lows[0], highs[0]
            left = "<" if isinstance(lo, sp.StrictGreaterThan) else "<="
            right = "<" if isinstance(hi, sp.StrictLessThan) else "<="
            return f"{sp.sstr(lo.rhs)} {left} {sp.sstr(lo.lhs)} {right} {sp.sstr(hi.rhs)}"
    if isinstance(cond, sp.Eq):
        return f"{sp.sstr(cond.lhs)} = {sp.sstr(cond.rhs)}"
    return sp.sstr(cond)


def _yes(value: bool | None) -> str:
    return "depends" if value is None else ("Y" if value else "N")


def _continuity_text(k: Any) -> str:
    import sympy as sp

    if k is None:
        return "depends"
    return "C^inf" if k == sp.oo else f"C^{int(k)}"


def _rows(props: list, vprops: list) -> list[list[str]]:
    rows = []
    for p in props:
        rows.append(
            [
                p.spec,
                _plain(p.formula),
                _plain(p.derivative),
                _plain(p.derivative_in_output),
                "depends" if p.range is None else str(p.range),
                _continuity_text(p.continuity),
                _yes(p.monotonic),
                _yes(p.derivative_monotonic),
                _yes(p.identity_near_origin),
                _yes(p.bounded),
                _yes(p.squashing),
            ]
        )
    for v in vprops:
        rows.append(
            [
                v.name + " (vector)",
                _plain(v.formula),
                "d f_i/d z_j = " + _plain(v.jacobian),
                _plain(v.jacobian_in_output),
                "-" if v.range is None else str(v.range),
                _continuity_text(v.continuity),
                "-",
                "-",
                "-",
                "-" if v.range is None else _yes(v.range.bounded),
                "-",
            ]
        )
    return rows


def _text(props: list, vprops: list) -> str:
    rows = [list(_HEADERS), *_rows(props, vprops)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADERS))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = _notes(props)
    return "\n".join(lines + ([""] + notes if notes else []))


def _notes(props: list) -> list[str]:
    """Footnotes: subgradient conventions, and which facts rest on the numeric method."""
    notes = []
    for p in props:
        for k in p.nondifferentiable:
            kind = "jump" if k.jump else "kink"
            notes.append(
                f"{p.spec}: {kind} at z = {_plain(k.point)}; f' there taken as {_plain(k.value)}"
            )
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


def _markdown(props: list, vprops: list) -> str:
    lines = ["| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
    for r in _rows(props, vprops):
        cells = [
            f"`{_md_cell(c)}`" if 0 < i < 4 and c != "-" else _md_cell(c) for i, c in enumerate(r)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = _notes(props)
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


def _latex(props: list, vprops: list) -> str:
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
    lines = [
        r"\begin{tabular}{" + "l" * len(head) + "}",
        r"\hline",
        " & ".join(f"${h}$" for h in head) + r" \\",
        r"\hline",
    ]
    for p in props:
        y = (
            "-"
            if p.derivative_in_output is None
            else f"${sp.latex(_short_floats(p.derivative_in_output))}$"
        )
        name = p.spec.replace("_", r"\_")
        cells = [
            rf"\texttt{{{name}}}",
            f"${sp.latex(_short_floats(_display(p.formula)))}$",
            f"${sp.latex(_short_floats(p.derivative))}$",
            y,
            f"${_latex_range(p.range)}$",
            f"${cont(p.continuity)}$",
            f"${yes(p.monotonic)}$",
            f"${yes(p.derivative_monotonic)}$",
            f"${yes(p.identity_near_origin)}$",
            f"${yes(p.bounded)}$",
            f"${yes(p.squashing)}$",
        ]
        lines.append(" & ".join(cells) + r" \\")
    for v in vprops:
        cells = [
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
        ]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Plots


def plot(scalars: list, directory: str) -> list[str]:
    """One PNG per activation in ``directory``: f (NumPy form) and f' (derived) on [-4, 4].

    Activations with symbolic parameters cannot be evaluated and are skipped
    (named on stderr).  Returns the paths written.
    """
    import sys

    from ..errors import SymnetError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SymnetError(MISSING_MATPLOTLIB) from None
    import numpy as np
    import sympy as sp

    from .. import properties as P
    from ..activations import LAMBDIFY_NUMPY, Z

    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise SymnetError(f"cannot create {directory}: {exc.strerror}") from None
    z = np.linspace(*PLOT_RANGE, 801)
    written = []
    for act in scalars:
        if any(not v.is_number for _, v in act.params):
            print(f"symnet: {act.spec}: not plotted (give its parameters numbers)", file=sys.stderr)
            continue
        p = P.properties(act)
        f = act.numpy(z)
        fprime = sp.lambdify(Z, p.derivative, modules=[LAMBDIFY_NUMPY, "numpy"])
        with np.errstate(all="ignore"):
            d = np.broadcast_to(np.asarray(fprime(z), dtype=float), z.shape)
        zd, dd = z, d
        for k in p.nondifferentiable:  # break the f' curve on both sides of a jump
            x = float(k.point)
            for at in sorted(
                {int(np.searchsorted(zd, x, "left")), int(np.searchsorted(zd, x, "right"))},
                reverse=True,
            ):
                zd, dd = np.insert(zd, at, np.nan), np.insert(dd, at, np.nan)
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        ax.plot(z, f, label=f"f(z) = {act.text_name}(z)")
        ax.plot(zd, dd, "--", label="f'(z)")
        for k in p.nondifferentiable:
            x = float(k.point)
            if PLOT_RANGE[0] <= x <= PLOT_RANGE[1]:
                ax.plot([x], [float(k.value)], "o", color="C1", markersize=4)
        ax.axhline(0, color="0.8", linewidth=0.8)
        ax.axvline(0, color="0.8", linewidth=0.8)
        ax.set_xlim(*PLOT_RANGE)
        ax.set_xlabel("z")
        ax.set_title(act.spec)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        path = os.path.join(directory, f"{_file_name(act.spec)}.png")
        try:
            fig.savefig(path)
        except OSError as exc:
            raise SymnetError(f"cannot write {path}: {exc.strerror}") from None
        finally:
            plt.close(fig)
        written.append(path)
    return written


def _file_name(spec: str) -> str:
    keep = [c if c.isalnum() or c in "-_." else "_" for c in spec]
    return "".join(keep).strip("_") or "activation"
