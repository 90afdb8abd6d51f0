"""The ``symnet`` command line: exit 0 success, 1 a claim refuted or unproved, 2 bad input."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import SymnetError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"symnet: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .commands import COMMANDS

    parser = _Parser(prog="symnet", description="Derive, check and typeset the mathematics of neural networks.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"symnet.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"symnet.commands.{name}":
                continue  # not built yet
            raise
        module.register(subparsers)
    return parser


def write_output(text: str, path: str | None) -> None:
    """Write ``text`` to ``path`` (``-`` or None: stdout)."""
    if path in (None, "-"):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise SymnetError(f"cannot write {path}: {exc.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if argv is not None:
        argv = [os.fspath(a) for a in argv]
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
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


if __name__ == "__main__":
    sys.exit(main())
