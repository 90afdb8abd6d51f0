"""``symnet proofs check|build``: check the proof library, or typeset it as one document.

``check`` exits 0 when every claim is proved (or its evidence holds) and every
required claim has a proof, 1 otherwise.  ``build`` writes the LaTeX document
(and compiles it with pdflatex); it exits like ``check``, and 2 when LaTeX fails.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
The proof library (default: ./proofs, else the one shipped with symnet) holds
one proof per claim: .deriv derivation files, checked step by step by the
kernel, and Python proofs that build witnesses, run the kernel and gather
numeric evidence (always labelled as evidence).

  symnet proofs check [DIR] [--format text|json]
  symnet proofs build [DIR] --tex OUT.tex [--pdf OUT.pdf]

Exit status: 0 every claim holds, 1 a claim fails or a required claim has no
proof, 2 bad input or a LaTeX error."""


def _jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("expected a number >= 0 (0: one per CPU)")
    return n


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", nargs="?", default=None, metavar="DIR",
                   help="the proofs directory (default: ./proofs, else symnet's own)")
    p.add_argument("--require", default=None, metavar="CLAIMS",
                   help="claims that must have a proof, e.g. C1-C13 (default: C1-C13 for the "
                        "default directory, none for a directory given)")
    p.add_argument("--only", default=None, metavar="CLAIMS",
                   help="run only the proofs of these claims, e.g. C3,C8")
    p.add_argument("-j", "--jobs", type=_jobs, default=0, metavar="N",
                   help="run proof files in N processes (default 0: one per CPU; 1: in this process)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "proofs",
        help="check the proof library of every claim, or build it as a LaTeX/PDF document",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="proofs_command", metavar="ACTION", parser_class=type(parser))
    check = sub.add_parser("check", help="run every proof; exit 0 when every claim holds")
    _common(check)
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("-v", "--verbose", action="store_true", help="list every checked item")
    check.set_defaults(func=run_check)
    build = sub.add_parser("build", help="write the LaTeX document (and compile it to PDF)")
    _common(build)
    build.add_argument("--tex", metavar="OUT.tex", help="write the LaTeX source here")
    build.add_argument("--pdf", metavar="OUT.pdf", help="compile it with pdflatex to this PDF")
    build.set_defaults(func=run_build)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _report(args: argparse.Namespace):
    from symnet.notes.proofs import REQUIRED, check_directory, default_directory, parse_claims

    directory = args.directory if args.directory is not None else default_directory()
    if args.require is not None:
        require = parse_claims(args.require)
    else:
        require = REQUIRED if args.directory is None else ()
    only = parse_claims(args.only) if args.only else None
    if only is not None:
        _check_known(only, directory, require, default=args.directory is None)
    return check_directory(directory, require=require, jobs=args.jobs, only=only)


def _check_known(only, directory, require, default: bool) -> None:
    """``--only`` naming a claim the library does not know is bad input (exit 2), not a failure."""
    from symnet.errors import SymnetError
    from symnet.notes.proofs import CLAIMS, _claim_of_file, claim_number, discover

    known = {_claim_of_file(f) for f in discover(directory)} | set(require)
    if default:
        known |= set(CLAIMS)
    unknown = [c for c in only if c not in known]
    if unknown:
        ids = sorted((c for c in known if c[1:].isdigit()), key=claim_number)
        raise SymnetError(f"--only: no claim {', '.join(unknown)} in {directory}; "
                          f"the known claims are {_ranges(ids)}")


def _ranges(ids: list[str]) -> str:
    """``C1, C2, C3, C5`` -> ``C1-C3, C5``."""
    out: list[str] = []
    run: list[int] = []

    def flush() -> None:
        if run:
            out.append(f"C{run[0]}" if len(run) == 1 else f"C{run[0]}-C{run[-1]}")
            run.clear()

    for c in ids:
        if not c[1:].isdigit():
            flush()
            out.append(c)
            continue
        n = int(c[1:])
        if run and n != run[-1] + 1:
            flush()
        run.append(n)
    flush()
    return ", ".join(out)


def run_check(args: argparse.Namespace) -> int:
    from symnet.cli import write_output

    report = _report(args)
    if args.format == "json":
        write_output(report.to_json(), None)
    else:
        sys.stdout.write(report.to_text(verbose=args.verbose))
    return report.exit_code


def run_build(args: argparse.Namespace) -> int:
    from symnet.cli import write_output
    from symnet.errors import SymnetError
    from symnet.notes.proofs import compile_pdf

    if not args.tex and not args.pdf:
        raise SymnetError("proofs build: give --tex OUT.tex and/or --pdf OUT.pdf")
    from symnet.cli.check import require_directory

    require_directory(args.tex, "--tex")
    require_directory(args.pdf, "--pdf")
    report = _report(args)
    document = report.to_latex()
    if args.tex:
        write_output(document, args.tex)
    if args.pdf:
        compile_pdf(document, args.pdf)
    sys.stdout.write(report.to_text())
    for path in (args.tex, args.pdf):
        if path:
            print(f"wrote {path}")
    return report.exit_code
