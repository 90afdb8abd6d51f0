"""``symnet grad``: backpropagation's gradients, derived, checked, and evaluated at a seeded point."""

from __future__ import annotations

import argparse
from typing import Any

from symnet.cli.collapse import (
    add_layer_network_arguments,
    add_network_arguments,
    check_output_path,
    check_standalone,
    network_from_args,
)
from symnet.cli.commands import seed

FORMATS = ("text", "latex", "markdown", "json")
#: ``symnet.networks.losses.LOSSES`` and its aliases, here so that ``--help`` does not import SymPy
#: (tests/test_newuser.py checks that they agree).
LOSSES = ("sse", "mse", "xent", "bce", "hinge")
LOSS_ALIASES = {"cross_entropy": "xent", "crossentropy": "xent", "squared": "sse"}
#: Entries per parameter array checked by finite differences unless --max-entries says otherwise.
MAX_ENTRIES = 200


def _loss(text: str) -> str:
    key = text.strip().lower()
    return LOSS_ALIASES.get(key, key)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "grad",
        help="derive every parameter's gradient by backpropagation, checked by the kernel",
        description="Derive dL/dW_l and dL/db_l by the delta recursion, have every step proved "
        "by the kernel; with --at SEED also evaluate them at a reproducible random point and "
        "cross-check them numerically (kink-aware finite differences and a Taylor test).",
    )
    add_network_arguments(p, required=False)
    add_layer_network_arguments(p, "conv1d(k=3) > tanh > flatten > linear(2)")
    p.add_argument("--loss", type=_loss, default="sse", metavar="{" + ",".join(LOSSES) + "}",
                   help="sum of squared errors (sse, the default), mean squared error (mse), "
                        "softmax cross-entropy (xent), binary cross-entropy of sigmoid(y) (bce) "
                        "or the hinge loss (hinge)")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--convention", choices=("row", "column", "torch"), default="row",
                   help="print the derivation with row vectors (x W + b, default), column vectors "
                        "(W x + b, W out x in) or PyTorch's x W^T + b; every translated step re-proved")
    p.add_argument("--standalone", action="store_true",
                   help="with --format latex: a complete document (compiles with pdflatex) instead "
                        "of the align* fragment")
    p.add_argument("--at", type=seed, default=None, metavar="SEED",
                   help="evaluate the gradients at a random point drawn with this seed, and check them")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="with --at: N examples (gradients are summed over the batch; default 1)")
    p.add_argument("--max-entries", type=int, default=None, metavar="N",
                   help=f"with --at: check at most N entries of each parameter by finite differences, "
                        f"a seeded sample (default {MAX_ENTRIES}; 0: every entry)")
    p.add_argument("-o", "--output", default=None,
                   help="write to FILE instead of stdout (its directory must exist)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from symnet.cli import write_output
    from symnet.errors import SpecError
    from symnet.networks.backprop import gradients

    batch = getattr(args, "batch", None)
    max_entries = getattr(args, "max_entries", None)
    if args.at is None:  # options of the numeric check, which only --at runs
        given = [flag for flag, value in (("--batch", batch), ("--max-entries", max_entries))
                 if value is not None]
        if given:
            raise SpecError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --at SEED "
                            "(the random point the gradients are evaluated and checked at)")
    batch = 1 if batch is None else batch
    if batch < 1 or batch > 100_000:
        raise SpecError(f"--batch {batch}: give a batch size from 1 to 100000")
    if max_entries is not None and max_entries < 0:
        raise SpecError(f"--max-entries {max_entries}: give a number >= 0 (0: every entry)")
    max_entries = MAX_ENTRIES if max_entries is None else max_entries
    check_standalone(args)
    check_output_path(args.output)
    if args.net is not None or args.layers is None:
        return _run_layers(args)
    net = network_from_args(args)
    g = gradients(net, args.loss)
    if len(net.layers) > LONG_DEPTH:
        _progress(f"deriving and checking the gradients of {len(net.layers)} layers "
                  f"({3 * len(net.layers) + 2} kernel steps) ...")
    derivation = g.derivation
    if args.convention != "row":
        from symnet.networks.conventions import translate

        derivation = translate(g, args.convention, dict(g.definitions))
    if args.at is not None:
        entries = sum(min(int(w) * int(v), max_entries or int(w) * int(v)) + min(int(v), max_entries or int(v))
                      for w, v in zip(net.widths, net.widths[1:])) if not net.has_symbolic_widths else 0
        if entries > LONG_ENTRIES:
            _progress(f"checking {entries} gradient entries by finite differences ...")
    numbers = _evaluate(g, args.at, batch, max_entries or None) if args.at is not None else None
    out = {"text": _text, "latex": _latex, "markdown": _markdown, "json": _json}[args.format](
        g, derivation, numbers)
    if args.format == "latex" and getattr(args, "standalone", False):
        from symnet.render.printing import _tex_escape, latex_document

        out = latex_document(_tex_escape(derivation.title), out)
    write_output(out, args.output)
    ok = derivation.ok and (numbers is None or numbers["report"].ok)
    return 0 if ok else 1


#: Work long enough to say what is happening on stderr (layers; gradient entries checked).
LONG_DEPTH = 16
LONG_ENTRIES = 2_000


def _progress(message: str) -> None:
    """One line on stderr about long work (stdout stays the result)."""
    import sys

    print(f"symnet: {message}", file=sys.stderr, flush=True)


def _evaluate(g: Any, seed: int, batch: int, max_entries: int | None = None) -> dict:
    """The seeded point, the compiled gradients there, and the numeric check
    (of at most ``max_entries`` entries per parameter, a seeded sample; None: all)."""
    import numpy as np

    from symnet.testing.gradcheck import check_gradients

    point = g.random_point(seed, batch=batch)
    values = g.function()(**point)
    report = check_gradients(g, point, seed=seed, max_entries=max_entries)
    sizes = {p: int(np.size(point[p])) for p in g.parameters}
    sampled = {p: min(n, max_entries) if max_entries else n for p, n in sizes.items()}
    return {"seed": seed, "point": point, "values": values, "report": report,
            "sizes": sizes, "sampled": sampled, "max_entries": max_entries}


def _sample_note(numbers: dict) -> str | None:
    """What the finite differences checked, when it is not every entry."""
    sizes, sampled = numbers["sizes"], numbers["sampled"]
    if sampled == sizes:
        return None
    total, checked = sum(sizes.values()), sum(sampled.values())
    parts = ", ".join(f"{p} {sampled[p]} of {sizes[p]}" for p in sizes if sampled[p] < sizes[p])
    return (f"Sampled: finite differences checked {checked} of {total} gradient entries "
            f"(at most {numbers['max_entries']} per parameter, drawn with seed {numbers['seed']}: "
            f"{parts}); --max-entries 0 checks every entry.")


def _tolist(a: Any) -> Any:
    import numpy as np

    return np.asarray(a, dtype=float).tolist() if isinstance(a, np.ndarray) else float(a)


def _array_text(a: Any) -> str:
    import numpy as np

    if not isinstance(a, np.ndarray):
        return f"{a:.6g}"
    return np.array2string(a, precision=6, suppress_small=False, separator=", ",
                           max_line_width=100).replace("\n", "\n      ")


def _gradient_lines(g: Any, printer: Any) -> list[tuple[str, str]]:
    from symnet.kernel import Grad

    return [(printer(Grad(g.L, p)), printer(g.expressions[p.name])) for p in g.net.parameters]


def _text(g, derivation, numbers) -> str:
    from symnet.render import printing

    translated = derivation is not g.derivation
    lines = [derivation.to_text(), "", "Gradients" + (" (as computed, row convention)" if translated else "")]
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
        note = _sample_note(numbers)
        if note:
            lines.append(note)
    return "\n".join(lines) + "\n"


def _matrix_latex(a: Any) -> str:
    import numpy as np

    if not isinstance(a, np.ndarray):
        return f"{a:.6g}"
    rows = [" & ".join(f"{v:.6g}" for v in row) for row in np.atleast_2d(a)]
    return r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}"


def _values_latex(g, numbers) -> str:
    from symnet.render.printing import symbol_latex

    point, values = numbers["point"], numbers["values"]
    lines = [f"{symbol_latex(name)} &= {_matrix_latex(a)}" for name, a in point.items()]
    lines.append(f"L &= {values['loss']:.12g}")
    for p in g.parameters:
        lines.append(rf"\frac{{\partial L}}{{\partial {symbol_latex(p)}}} &= {_matrix_latex(values[p])}")
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}"


def _latex(g, derivation, numbers) -> str:
    """The derivation, its notes and verdict, the gradients and, with --at, the values and
    the numeric check: an ``align*`` fragment with text paragraphs (``--standalone`` wraps it)."""
    from symnet.render import printing

    body = " \\\\\n".join(f"{lhs} &= {rhs}" for lhs, rhs in _gradient_lines(g, printing.latex))
    out = [derivation.to_latex(), *(r"\noindent " + printing._tex_escape(n) for n in derivation.notes),
           r"\noindent " + printing._tex_escape(printing._summary(derivation)),
           r"\noindent Gradients:", "\\begin{align*}\n" + body + "\n\\end{align*}"]
    if numbers is not None:
        out.append(r"\noindent " + printing._tex_escape(
            f"At the random point drawn with seed {numbers['seed']}:"))
        out.append(_values_latex(g, numbers))
        report = str(numbers["report"])
        note = _sample_note(numbers)
        out.append("\\begin{verbatim}\n" + report + ("\n" + note if note else "") + "\n\\end{verbatim}")
    return "\n\n".join(out) + "\n"


def _markdown(g, derivation, numbers) -> str:
    from symnet.render import printing

    out = [derivation.to_markdown(), "### Gradients", "", "$$", "\\begin{aligned}"]
    out.append(" \\\\\n".join(f"{lhs} &= {rhs}" for lhs, rhs in _gradient_lines(g, printing.latex)))
    out += ["\\end{aligned}", "$$", ""]
    if numbers is not None:
        out += [f"### At the random point drawn with seed {numbers['seed']}", "", "$$",
                _values_latex(g, numbers).replace("align*", "aligned"), "$$", "",
                "```text", str(numbers["report"]), *filter(None, [_sample_note(numbers)]), "```", ""]
    return "\n".join(out)


def _json(g, derivation, numbers) -> str:
    from symnet.render import printing

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
        data["check"]["sampled"] = {p: {"checked": numbers["sampled"][p], "entries": numbers["sizes"][p]}
                                    for p in numbers["sizes"]}
        data["check"]["max_entries"] = numbers["max_entries"]
    return printing.to_json(data)


def _run_layers(args: argparse.Namespace) -> int:
    """``symnet grad --net "..." --input-shape 1x8``: each layer's backprop rule, checked."""
    from symnet.cli import write_output
    from symnet.cli.collapse import layer_network_from_args
    from symnet.errors import SpecError
    from symnet.networks.layer_backprop import derive_backprop
    from symnet.render.printing import _tex_escape, derivation_dict, latex_document, to_json

    if args.at is not None:
        raise SpecError("--at goes with --layers; a layer network's gradients are evaluated in Python "
                        "(symnet.networks.layer_numeric.backward)")
    derivation = derive_backprop(layer_network_from_args(args), getattr(args, "convention", "row"))
    if args.format == "json":
        out = to_json(derivation_dict(derivation))
    elif args.format == "latex":
        from symnet.cli.collapse import _layers_latex

        out = _layers_latex(derivation, [])
        if args.standalone:
            out = latex_document(_tex_escape(derivation.title), out)
    elif args.format == "markdown":
        out = derivation.to_markdown() + "\n" + "\n\n".join(derivation.notes) + "\n"
    else:
        out = derivation.to_text()
    write_output(out, args.output)
    return 0 if derivation.ok else 1
