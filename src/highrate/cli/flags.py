"""Options shared by the verbs of the ``highrate`` command."""

from __future__ import annotations

import argparse


def add_debug(p: argparse.ArgumentParser) -> None:
    """``--debug`` on a verb, as well as before it."""
    # SUPPRESS keeps `highrate --debug run ...` working: a subcommand default would override it
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logging")
