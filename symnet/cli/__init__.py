"""The ``symnet`` command line: exit 0 success, 1 a claim refuted or unproved, 2 bad input."""

from __future__ import annotations

import argparse
import importlib
import os
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"symnet: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from symnet.cli.commands import COMMANDS

    parser = _Parser(prog="symnet", description="Derive, check and typeset the mathematics of neural networks.")
    parser.add_argument("--version", action="version", version=f"symnet {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"symnet.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"symnet.cli.{name}":
                continue  # not built yet
            raise
        module.register(subparsers)
    return parser


def version() -> str:
    """symnet's version: the installed distribution's, else the package's ``__version__``.

    Neither imports SymPy: ``symnet --version`` and ``symnet --help`` stay instant.
    """
    from symnet import __version__

    try:
        from importlib.metadata import PackageNotFoundError, distribution

        dist = distribution("symnet")
    except (ImportError, PackageNotFoundError):
        return __version__
    # an installed symnet that is this one (not a stale install shadowed by a clone)
    try:
        here = os.path.realpath(os.path.dirname(__file__))
        installed = os.path.realpath(str(dist.locate_file("symnet")))
    except (OSError, TypeError, NotImplementedError):
        return __version__
    return dist.version if here == installed else __version__


def write_output(text: str, path: str | None) -> None:
    """Write ``text`` to ``path`` (``-`` or None: stdout)."""
    if path in (None, "-"):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        from symnet.errors import SymnetError

        raise SymnetError(f"cannot write {path}: {exc.strerror}") from None


def entry() -> None:
    """The ``symnet`` command: :func:`main`, then the process ends without tearing the
    interpreter down.  Finalising SymPy's modules and caches costs a third of a second
    after a long run; by then every file symnet writes is closed (``with`` blocks) and
    the proof workers have been joined, so there is nothing left to clean up."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # the reader went away, or the stream is closed
        code = code or 1
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if argv is not None:
        argv = [os.fspath(a) for a in argv]
    args = parser.parse_args(argv)  # --help and --version end here, before SymPy is imported
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from symnet.errors import SymnetError

    try:
        return int(args.func(args) or 0)
    except SymnetError as exc:
        print(f"symnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symnet: interrupted", file=sys.stderr)
        return 130
    except RecursionError:
        print("symnet: error: input nested too deeply", file=sys.stderr)
        return 2

