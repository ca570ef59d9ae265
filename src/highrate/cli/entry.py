"""The ``highrate`` console script (and ``python -m highrate``).

A command whose outputs are up to date (``cli/uptodate.py``) is answered here, with the standard
library only; a run or demo goes to a warm ``highrate serve`` when one is listening
(``cli/warm.py``); any other imports the command line's modules and runs it.
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
    # then a warm `highrate serve`, which forks the command (its client's socket modules: ~9 ms,
    # imported only past the check above, as the command's own modules are only past this one)
    from highrate.cli.warm import run_served

    served = run_served(sys.argv[1:])
    if served is not None:
        sys.exit(served)
    from highrate.cli.main import console_main as run_command

    run_command()
