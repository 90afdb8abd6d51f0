"""``python -m symnet.cli``: the command line."""

import sys

from symnet.cli import main

sys.exit(main())
