"""``symnet check FILE...``: check every step of derivation files and Markdown notes.

Exit 0 when every step is proved, 1 when a step is refuted or unproved, 2 when
a file is malformed or unreadable (the other files are still checked and
reported).  Malformed files are also named on stderr, one line each.
"""

from __future__ import annotations

import argparse
import sys

from symnet.cli.commands import seed

DESCRIPTION = """\
Check derivation files (.deriv) and the ```symnet blocks of Markdown files.
Each step gets the kernel's verdict: proved, refuted (with a counterexample)
or unproved.  Exit status: 0 every step proved, 1 a step refuted or unproved,
2 a file malformed or unreadable."""


def _whole(text: str, least: int) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < least:
        raise argparse.ArgumentTypeError(f"expected a number >= {least}, got {n}")
    return n


def _positive(text: str) -> int:
    """A whole number >= 0 (``--jobs``: 0 is one per CPU)."""
    return _whole(text, 0)


def _integer(text: str) -> int:
    """A whole number; its range is checked when the command runs (``--trials``)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check the steps of .deriv files and Markdown notes",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="a .deriv file, a Markdown file, or a directory to search")
    parser.add_argument("--format", choices=("text", "json", "latex", "markdown"), default="text",
                        help="report format (default: text); latex is a fragment to \\input "
                             "unless --standalone")
    parser.add_argument("--standalone", action="store_true",
                        help="with --format latex: a whole document (\\documentclass ... \\end{document})")
    parser.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="write the report to FILE instead of stdout")
    parser.add_argument("--latex", metavar="OUT.tex", help="also write the checked derivations as a LaTeX document")
    parser.add_argument("--pdf", metavar="OUT.pdf", help="also compile them to PDF (needs pdflatex)")
    parser.add_argument("-j", "--jobs", type=_positive, default=1, metavar="N",
                        help="check files in N processes (0: one per CPU)")
    parser.add_argument("--trials", type=_integer, default=3, metavar="N",
                        help="random instances per step for the numeric second opinion (default 3)")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the random instances (default 0)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list proved steps too")
    parser.set_defaults(func=run)


def require_directory(path: str | None, option: str) -> None:
    """Refuse an output path whose directory does not exist: one line, exit 2 (nothing is created)."""
    import os

    from symnet.errors import SymnetError

    if path in (None, "-"):
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise SymnetError(f"{option} {path}: directory {os.path.dirname(path) or parent} does not exist")


def run(args: argparse.Namespace) -> int:
    # imported here, not at the top: building the command line (--help, --version) stays light
    from symnet.cli import write_output
    from symnet.errors import SymnetError
    from symnet.notes.checkfile import check_paths, compile_pdf

    if args.trials < 1:  # one message for 0 and for -1
        raise SymnetError(f"--trials {args.trials}: give at least 1 random instance per step")
    if args.standalone and args.format != "latex":
        raise SymnetError("--standalone goes with --format latex (--latex OUT.tex and --pdf OUT.pdf "
                          "always write a whole document)")
    for path, option in ((args.output, "-o"), (args.latex, "--latex"), (args.pdf, "--pdf")):
        require_directory(path, option)
    report = check_paths(args.files, jobs=args.jobs, trials=args.trials, seed=args.seed)
    if args.format == "json":
        write_output(report.to_json(), args.output)
    elif args.format == "latex":
        write_output(report.to_latex(standalone=args.standalone), args.output)
    elif args.format == "markdown":
        write_output(report.to_markdown(), args.output)
    elif args.output not in (None, "-"):
        write_output(report.to_text(verbose=args.verbose), args.output)
    else:
        sys.stdout.write(report.to_text(verbose=args.verbose))
    for result in report.files:
        if result.malformed:
            print(f"symnet: error: {result.error}", file=sys.stderr)
    if args.latex or args.pdf:
        document = report.to_latex(standalone=True)
        if args.latex:
            write_output(document, args.latex)
        if args.pdf:
            compile_pdf(document, args.pdf)
    return report.exit_code
