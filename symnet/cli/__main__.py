"""``python -m symnet.cli``: the command line."""

from symnet.cli import entry

entry()
