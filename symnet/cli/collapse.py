"""``symnet collapse``: collapse a dense network and print the checked derivation."""

from __future__ import annotations

import argparse

from symnet.cli.commands import seed

FORMATS = ("text", "latex", "markdown", "json")


def parse_layers(text: str) -> list[str]:
    """``"3,4,4,2"`` or ``"n0,n1,n2"`` -> widths (checked later by the composer)."""
    from symnet.errors import SpecError

    parts = [p.strip() for p in text.split(",")]
    if len(parts) < 2 or any(not p for p in parts):
        raise SpecError(f"--layers {text!r}: give at least two comma-separated widths, e.g. 3,4,4,2")
    return parts


def split_specs(text: str) -> list[str]:
    """Split ``"tanh,affine(a=2, c=1),relu"`` at the commas outside parentheses."""
    from symnet.errors import SpecError

    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SpecError(f"--activations {text!r}: unbalanced parentheses")
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise SpecError(f"--activations {text!r}: unbalanced parentheses")
    out.append("".join(cur).strip())
    if any(not s for s in out):
        raise SpecError(f"--activations {text!r}: empty activation spec")
    return out


def add_network_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--layers``, ``--activation``, ``--activations`` and ``--output-activation``,
    shared with other commands."""
    parser.add_argument("--layers", required=required, help="widths n0,n1,...,nL (integers or names)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--activation", default=None, help="one spec for every layer, e.g. tanh or affine(a=2, c=-1)")
    group.add_argument("--activations", default=None, help="one spec per layer, comma-separated")
    parser.add_argument("--output-activation", default=None, metavar="SPEC",
                        help="the output layer's activation (the other layers take --activation, "
                             "default identity), e.g. --activation relu --output-activation identity")


def network_from_args(args: argparse.Namespace):
    from symnet.errors import SpecError
    from symnet.networks.composer import Network

    widths = parse_layers(args.layers)
    output = getattr(args, "output_activation", None)
    if args.activations is not None:
        if output is not None:
            raise SpecError("--output-activation goes with --activation, not --activations "
                            "(the last of --activations is the output layer's)")
        return Network.dense(widths, split_specs(args.activations))
    hidden = args.activation or "identity"
    if output is None:
        return Network.dense(widths, hidden)
    if not output.strip():
        raise SpecError("--output-activation: empty activation spec")
    return Network.dense(widths, [hidden] * (len(widths) - 2) + [output.strip()])


def add_layer_network_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """``--net`` and ``--input-shape``: a layer network instead of ``--layers``."""
    parser.add_argument("--net", default=None, metavar="LAYERS",
                        help=f'a layer network instead of --layers, e.g. "{example}" (with --input-shape)')
    parser.add_argument("--input-shape", default=None, metavar="SHAPE",
                        help="with --net: one example's shape, channels first, e.g. 1x8 or 3x6x6")


def check_output_path(path: str | None, option: str = "-o") -> None:
    """Refuse, before any work, to write into a directory that does not exist (one line,
    exit 2): ``-o`` (or ``option``) never creates directories."""
    import os

    from symnet.errors import SymnetError

    if path in (None, "-"):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SymnetError(f"cannot write {path}: directory {os.path.dirname(path) or folder} does not exist "
                          f"({option} does not create directories)")
    if os.path.isdir(path):
        raise SymnetError(f"cannot write {path}: it is a directory")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "collapse",
        help="collapse a stack of layers into x W' + b', or show why it cannot",
        description="Collapse affine layer stacks to one affine map, step by checked step; "
        "for a nonlinear network, find a witness that no affine map computes it.",
    )
    add_network_arguments(p, required=False)
    add_layer_network_arguments(p, "conv1d(k=3) > batchnorm > conv1d(k=3) > flatten > linear(2)")
    p.add_argument("--picture", default=None, metavar="FILE.svg",
                   help="with --net: also draw the network (layers, shapes, skip connections) as SVG")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--convention", choices=("row", "column", "torch"), default="row",
                   help="print the derivation with row vectors (x W + b, default), column vectors "
                        "(W x + b, W out x in) or PyTorch's x W^T + b; every translated step re-proved")
    p.add_argument("--standalone", action="store_true",
                   help="with --format latex: a complete document (compiles with pdflatex) instead "
                        "of the align* fragment")
    p.add_argument("--style", choices=("auto", "chain", "induction"), default="auto",
                   help="textbook chain, per-layer induction, or auto (chain up to depth 6)")
    p.add_argument("--closed-form", action="store_true",
                   help="derive the closed form of W' and b' by unfolding the recursion however deep "
                        "(by default only up to 128 layers: b' has a number of factors that grows "
                        "with the square of the depth; beyond, the named W'_L, b'_L are the result)")
    p.add_argument("--general", action="store_true",
                   help="also print the general n-layer statement proved by induction")
    p.add_argument("--entries", action="store_true",
                   help="also write W' and b' out entry by entry (every weight a scalar symbol)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the numeric checks and the witness search")
    p.add_argument("-o", "--output", default=None,
                   help="write to FILE instead of stdout (its directory must exist)")
    p.set_defaults(func=run)


def check_standalone(args: argparse.Namespace) -> None:
    from symnet.errors import SpecError

    if getattr(args, "standalone", False) and args.format != "latex":
        raise SpecError(f"--standalone goes with --format latex (not {args.format})")


def run(args: argparse.Namespace) -> int:
    from symnet.cli import write_output
    from symnet.networks.collapse import collapse, induction
    from symnet.render.printing import (
        _tex_escape,
        collapse_heading,
        derivation_dict,
        latex_document,
        to_json,
    )

    check_standalone(args)
    check_output_path(args.output)
    if args.net is not None or args.layers is None:
        return run_layers(args)
    net = network_from_args(args)
    result = collapse(net, style=args.style, seed=args.seed, unfold=True if args.closed_form else None)
    if args.convention != "row":
        import dataclasses

        from symnet.networks.conventions import translate

        result = dataclasses.replace(result, derivation=translate(result, args.convention, dict(net.definitions())))
    general = induction(affine=not all(l.activation.affine_coefficients == (1, 0)
                                       for l in net.layers if l.activation.is_affine),
                        seed=args.seed) if args.general else None
    entries = None
    if args.entries:
        from symnet.networks.explicit import collapse_entries

        entries = collapse_entries(net, seed=args.seed)
    if args.format == "json":
        data = result.to_dict()
        if general is not None:
            data["general"] = derivation_dict(general)
        if entries is not None:
            data["entries"] = entries.to_dict()
        out = to_json(data)
    elif args.format == "latex":
        out = result.to_latex() + ("\n" + general.to_latex() + "\n" if general else "")
    elif args.format == "markdown":
        out = result.to_markdown() + ("\n" + general.to_markdown() if general else "")
    else:
        out = result.to_text() + ("\n" + general.to_text() if general else "")
    if entries is not None and args.format != "json":
        body = entries.latex() if args.format in ("latex", "markdown") else entries.text()
        if args.format == "markdown":  # $$ takes aligned, not align* (GitHub, KaTeX, MathJax)
            body = "$$\n" + body.replace("align*", "aligned") + "\n$$"
        out += "\n" + body + "\n"
    if args.format == "latex" and args.standalone:
        out = latex_document(_tex_escape(result.derivation.title),
                             _tex_escape(collapse_heading(result)) + "\n\n" + out)
    write_output(out, args.output)
    ok = result.ok and (general is None or general.ok) and (entries is None or entries.ok)
    return 0 if ok else 1


def layer_network_from_args(args: argparse.Namespace):
    """The layer network of ``--net`` and ``--input-shape`` (shared with ``symnet grad``)."""
    from symnet.errors import SpecError
    from symnet.networks.layer_spec import parse_layers as parse_net
    from symnet.networks.layer_spec import parse_shape
    from symnet.networks.layers import Sequential

    if args.net is None:
        raise SpecError("--layers (a dense network) or --net (a layer network) is required")
    if args.layers is not None:
        raise SpecError("--net and --layers describe two networks: give one")
    if args.input_shape is None:
        raise SpecError("--net needs --input-shape, e.g. --input-shape 1x8")
    try:
        layers = parse_net(args.net)
    except SpecError as exc:
        raise SpecError(f"--net: {exc}") from None
    return Sequential(layers, parse_shape(args.input_shape))


def run_layers(args: argparse.Namespace) -> int:
    """``symnet collapse --net "..." --input-shape 1x8``: a layer network."""
    from symnet.cli import write_output
    from symnet.networks.layer_algebra import collapse_layers
    from symnet.render.printing import _tex_escape, latex_document, to_json

    net = layer_network_from_args(args)
    if args.picture is not None:
        check_output_path(args.picture, "--picture")
        with open(args.picture, "w", encoding="utf-8") as f:
            f.write(net.to_svg())
    result = collapse_layers(net, seed=args.seed)
    if args.convention != "row":
        import dataclasses

        from symnet.networks.layer_algebra import translated

        result = dataclasses.replace(result, derivation=translated(result, args.convention))
    if args.format == "json":
        out = to_json(result.to_dict())
    elif args.format == "latex":
        out = _layers_latex(result.derivation, [result.to_text().splitlines()[-1]])
        if args.standalone:
            out = latex_document(_tex_escape(result.derivation.title), out)
    elif args.format == "markdown":
        out = result.derivation.to_markdown() + "\n" + "\n\n".join(result.derivation.notes) + "\n"
    else:
        out = result.to_text()
    write_output(out, args.output)
    return 0 if result.ok else 1


def _layers_latex(derivation, extra: list[str]) -> str:
    """The derivation's align* blocks, then its notes and verdict as paragraphs."""
    from symnet.render import printing

    out = [derivation.to_latex(), *(r"\noindent " + printing._tex_escape(n) for n in derivation.notes),
           *(r"\noindent " + printing._tex_escape(e) for e in extra),
           r"\noindent " + printing._tex_escape(printing._summary(derivation))]
    return "\n\n".join(out) + "\n"
