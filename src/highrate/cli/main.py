"""The ``highrate`` command: run, demo, generate, datasets, plot, fit, cluster, rerun-failed, broker, cache.

Each verb imports the layers it uses when it runs, so that ``highrate --help`` and the quick verbs
do not pay for numpy, awkward and uproot (~0.3 s).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence

from highrate._version import __version__
from highrate.cli.broker import add_broker_parser
from highrate.cli.caching import add_cache_parser
from highrate.cli.inspecting import add_cluster_parser, add_datasets_parser
from highrate.cli.results import add_fit_parser, add_plot_parser
from highrate.cli.running import add_running_parsers
from highrate.cli.serving import add_serve_parser
from highrate.cli.uptodate import stamp_path
from highrate.errors import HighrateError, UserCodeError


def console_main() -> None:
    """:func:`main`, then exit (the console script, after ``cli/entry.py``'s up-to-date check)."""
    code = main()
    # The process ends here. Frozen, the objects it leaves (every module numpy, awkward and hist
    # brought) are skipped by the interpreter's final garbage collection: ~50 ms less per command.
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: this process's arguments); returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.stamp = stamp_path(args.argv)  # where an up-to-date check would look (before the setdefault below)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # distributed logs at INFO by default (~30 lines a run): read by it, and by the workers it
    # starts, when it is imported; a user's own DASK_LOGGING__DISTRIBUTED wins
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "debug" if args.debug else "warning")
    try:
        return int(args.handler(args) or 0)
    except HighrateError as err:
        if args.debug and not isinstance(err, UserCodeError):
            raise
        from rich.markup import escape

        from highrate.cli.console import console

        if args.debug and isinstance(err, UserCodeError) and err.traceback:  # from wherever the analysis ran
            console.print(escape(err.traceback.rstrip()), highlight=False, soft_wrap=True)
        # escaped: file names, globs and entry ranges hold brackets that rich would take for markup
        console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of our output went away (`highrate datasets --json | head`)
        # stdout's last buffered bytes would fail again at exit: point it at nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="highrate", description="High-rate declarative columnar analysis.")
    parser.add_argument("--version", action="version", version=f"highrate {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_running_parsers(sub)
    add_plot_parser(sub)
    add_fit_parser(sub)
    add_cluster_parser(sub)
    add_datasets_parser(sub)
    add_broker_parser(sub)
    add_cache_parser(sub)
    add_serve_parser(sub, run=main)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
