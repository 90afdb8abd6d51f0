"""``symnet grad``: backpropagation's gradients, derived, checked, and evaluated at a seeded point."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from .collapse import add_network_arguments, network_from_args

FORMATS = ("text", "latex", "markdown", "json")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "grad",
        help="derive every parameter's gradient by backpropagation, checked by the kernel",
        description="Derive dL/dW_l and dL/db_l by the delta recursion, have every step proved "
        "by the kernel; with --at SEED also evaluate them at a reproducible random point and "
        "cross-check them numerically (kink-aware finite differences and a Taylor test).",
    )
    add_network_arguments(p)
    p.add_argument("--loss", default="sse", help="sse (default), mse or xent")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--at", type=int, default=None, metavar="SEED",
                   help="evaluate the gradients at a random point drawn with this seed, and check them")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="with --at: N examples (gradients are summed over the batch)")
    p.add_argument("-o", "--output", default=None, help="write to FILE instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..backprop import gradients
    from ..cli import write_output
    from ..errors import SpecError

    if args.batch < 1 or args.batch > 100_000:
        raise SpecError(f"--batch {args.batch}: give a batch size from 1 to 100000")
    net = network_from_args(args)
    g = gradients(net, args.loss)
    derivation = g.derivation
    numbers = _evaluate(g, args.at, args.batch) if args.at is not None else None
    out = {"text": _text, "latex": _latex, "markdown": _markdown, "json": _json}[args.format](
        g, derivation, numbers)
    write_output(out, args.output)
    ok = derivation.ok and (numbers is None or numbers["report"].ok)
    return 0 if ok else 1


def _evaluate(g: Any, seed: int, batch: int) -> dict:
    """The seeded point, the compiled gradients there, and the numeric check."""
    from ..gradcheck import check_gradients

    point = g.random_point(seed, batch=batch)
    values = g.function()(**point)
    report = check_gradients(g, point, seed=seed)
    return {"seed": seed, "point": point, "values": values, "report": report}


def _tolist(a: Any) -> Any:
    return np.asarray(a, dtype=float).tolist() if isinstance(a, np.ndarray) else float(a)


def _array_text(a: Any) -> str:
    if not isinstance(a, np.ndarray):
        return f"{a:.6g}"
    return np.array2string(a, precision=6, suppress_small=False, separator=", ",
                           max_line_width=100).replace("\n", "\n      ")


def _gradient_lines(g: Any, printer: Any) -> list[tuple[str, str]]:
    from ..kernel import Grad

    return [(printer(Grad(g.L, p)), printer(g.expressions[p.name])) for p in g.net.parameters]


def _text(g, derivation, numbers) -> str:
    from .. import printing

    lines = [derivation.to_text(), "", "Gradients"]
    for lhs, rhs in _gradient_lines(g, printing.text):
        lines.append(f"  {lhs} = {rhs}")
    if numbers is not None:
        point, values, report = numbers["point"], numbers["values"], numbers["report"]
        lines += ["", f"At the random point drawn with seed {numbers['seed']}:"]
        for name, a in point.items():
            lines.append(f"  {name} = {_array_text(a)}")
        lines += ["", f"Loss L = {values['loss']:.12g}"]
        for p in g.parameters:
            lines.append(f"  dL/d{p} = {_array_text(values[p])}")
        lines += ["", str(report)]
    return "\n".join(lines) + "\n"


def _matrix_latex(a: Any) -> str:
    if not isinstance(a, np.ndarray):
        return f"{a:.6g}"
    rows = [" & ".join(f"{v:.6g}" for v in row) for row in np.atleast_2d(a)]
    return r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}"


def _values_latex(g, numbers) -> str:
    from ..printing import symbol_latex

    point, values = numbers["point"], numbers["values"]
    lines = [f"{symbol_latex(name)} &= {_matrix_latex(a)}" for name, a in point.items()]
    lines.append(f"L &= {values['loss']:.12g}")
    for p in g.parameters:
        lines.append(rf"\frac{{\partial L}}{{\partial {symbol_latex(p)}}} &= {_matrix_latex(values[p])}")
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}"


def _latex(g, derivation, numbers) -> str:
    from .. import printing

    body = " \\\\\n".join(f"{lhs} &= {rhs}" for lhs, rhs in _gradient_lines(g, printing.latex))
    out = [derivation.to_latex(), "\\begin{align*}\n" + body + "\n\\end{align*}"]
    if numbers is not None:
        out.append(f"% at the random point drawn with seed {numbers['seed']}")
        out.append(_values_latex(g, numbers))
        out.append("% " + str(numbers["report"]).replace("\n", "\n% "))
    return "\n".join(out) + "\n"


def _markdown(g, derivation, numbers) -> str:
    from .. import printing

    out = [derivation.to_markdown(), "### Gradients", "", "$$", "\\begin{aligned}"]
    out.append(" \\\\\n".join(f"{lhs} &= {rhs}" for lhs, rhs in _gradient_lines(g, printing.latex)))
    out += ["\\end{aligned}", "$$", ""]
    if numbers is not None:
        out += [f"### At the random point drawn with seed {numbers['seed']}", "", "$$",
                _values_latex(g, numbers).replace("align*", "aligned"), "$$", "",
                "```text", str(numbers["report"]), "```", ""]
    return "\n".join(out)


def _json(g, derivation, numbers) -> str:
    from .. import printing

    data: dict[str, Any] = {
        "network": {
            "widths": [str(w) for w in g.net.widths],
            "activations": [layer.activation.spec for layer in g.net.layers],
        },
        "loss": g.loss.name,
        "verdict": derivation.verdict,
        "gradients": {name: printing.sstr(e) for name, e in g.expressions.items()},
        "gradients_latex": {name: printing.latex(e) for name, e in g.expressions.items()},
        "definitions": {s.name: printing.sstr(e) for s, e in g.definitions.items()},
        "derivation": printing.derivation_dict(derivation),
    }
    if numbers is not None:
        report = numbers["report"]
        data["seed"] = numbers["seed"]
        data["point"] = {name: _tolist(a) for name, a in numbers["point"].items()}
        data["values"] = {p: _tolist(numbers["values"][p]) for p in g.parameters}
        data["loss_value"] = float(numbers["values"]["loss"])
        data["check"] = report.to_dict()
    return printing.to_json(data)
