"""One module per ``symnet`` subcommand, each with ``register(subparsers)``.

A module's ``register`` adds its parser and sets ``func`` to a function taking
the parsed arguments and returning the exit code.  The modules are imported
only when the command line is built, so start-up stays light.
"""

#: Subcommand modules, in the order ``symnet --help`` lists them.
COMMANDS = ("collapse", "grad", "activations", "check", "proofs")


def seed(text: str) -> int:
    """An argparse type for ``--seed``/``--at``: a whole number >= 0 (NumPy's seeds)."""
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"a seed is a whole number >= 0, got {n}")
    return n
