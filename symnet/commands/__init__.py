"""One module per ``symnet`` subcommand, each with ``register(subparsers)``.

A module's ``register`` adds its parser and sets ``func`` to a function taking
the parsed arguments and returning the exit code.  The modules are imported
only when the command line is built, so start-up stays light.
"""

#: Subcommand modules, in the order ``symnet --help`` lists them.
COMMANDS = ("collapse", "grad", "activations", "check", "proofs")
