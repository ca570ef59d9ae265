"""The ``highrate`` console script (and ``python -m highrate``).

A command whose outputs are up to date (``cli/uptodate.py``) is answered here, with the standard
library only; any other imports the command line's modules and runs it.
"""

from __future__ import annotations

import sys

from highrate.cli.uptodate import check


def console_main() -> None:
    """Print the last run's summary when nothing changed, else run the command and exit."""
    summary = check(sys.argv[1:])
    if summary is not None:
        sys.stdout.write(summary)
        sys.exit(0)
    # the verbs' modules (argparse, logging, every verb's flags) only now: ~25 ms an answer above
    from highrate.cli.main import console_main as run_command

    run_command()
