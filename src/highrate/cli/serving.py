"""``highrate serve``: a process that keeps highrate and its libraries imported, and forks a child
per command (``cli/warm.py`` is the client).

The child is the command: it takes the client's stdin/stdout/stderr, working folder, environment
and arguments, runs :func:`highrate.cli.main.main` and sends its exit code back, so a command run
through the server prints, writes and fails exactly as a fresh process would, minus the
interpreter's start and ~0.5 s of imports. The server answers nothing once the code it imported
has changed on disk (it exits; the client runs the command itself), and exits after
``idle_timeout`` seconds without a command.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from highrate.cli.flags import add_debug
from highrate.cli.uptodate import environment, file_stat, module_files
from highrate.cli.warm import receive_message, send_message, socket_path

Main = Callable[[Sequence[str]], int]


def add_serve_parser(sub: argparse._SubParsersAction, run: Main) -> None:
    """The ``serve`` verb; ``run`` is what a child runs (:func:`highrate.cli.main.main`)."""
    serve = sub.add_parser("serve", help="keep highrate imported and run each run/demo command in a warm fork",
                           description="Keep numpy, awkward, uproot, hist and highrate imported; highrate run and "
                                       "demo commands on this machine are then forked from this process instead of "
                                       "starting an interpreter (HIGHRATE_SERVE=off runs a command without it).")
    serve.add_argument("--idle-timeout", type=float, default=3600.0, metavar="S",
                       help="exit after S seconds without a command (default: %(default)s)")
    serve.add_argument("--stop", action="store_true", help="stop the server of this installation and exit")
    add_debug(serve)
    serve.set_defaults(handler=functools.partial(_cmd_serve, run=run))


def _cmd_serve(args: argparse.Namespace, run: Main) -> int:
    from highrate.cli import console as consoles  # (as every verb: its layers when it runs)

    path = socket_path()
    if args.stop:
        stopped = stop(path)
        consoles.console.print("stopped the server" if stopped else "no server was running", highlight=False)
        return 0
    consoles.console.print(f"highrate serve: listening on {path} (stop: highrate serve --stop)", highlight=False)
    serve(path, run, idle_timeout=args.idle_timeout)
    return 0


def stop(path: Any) -> bool:
    """Ask the server listening on ``path`` to exit; whether one was there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2.0)
        sock.connect(str(path))
        send_message(sock, {"stop": True})
        receive_message(sock)
        return True
    except OSError:
        return False
    finally:
        sock.close()


# what every run imports, paid once by the server (imported here on purpose: that is its job)
PRELOAD = ("numpy", "awkward", "uproot", "hist", "highrate.cli.console", "highrate.execution.runner", "highrate.outputs.write",
           "highrate.spec.loading", "highrate.data.datasets", "highrate.execution.executors")


def serve(path: Any, run: Main, *, idle_timeout: float = 3600.0) -> None:
    """Listen on ``path`` until stopped, idle for ``idle_timeout`` s, or the code changes; each
    command is ``run(argv)`` in a child."""
    for name in PRELOAD:
        __import__(name)
    code = {p: file_stat(p) for p in module_files()}
    installed = environment()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)  # this user's commands only
    server.listen(16)
    server.settimeout(1.0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the system
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_timeout:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            last = time.monotonic()
            with conn:
                request, fds = receive_message(conn, max_fds=3)
                if request is None or request.get("stop"):
                    _close(fds)
                    if request is not None:
                        send_message(conn, {"stopped": True})
                        return
                    continue
                if (environment() != installed or any(file_stat(p) != s for p, s in code.items())
                        or request["env"].get("PYTHONPATH") != os.environ.get("PYTHONPATH")):
                    _close(fds)
                    send_message(conn, {"stale": True})  # the client runs it; a new server would load the new code
                    return
                pid = os.fork()
                if pid == 0:
                    server.close()
                    _child(conn, request, fds, run)  # never returns
                _close(fds)
                send_message(conn, {"pid": pid})
                print(f"highrate serve: {' '.join(request['argv'])} (pid {pid})", file=sys.stderr, flush=True)
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _child(conn: socket.socket, request: dict[str, Any], fds: list[int], run: Main) -> None:
    """Become the command: the client's descriptors, folder, environment and arguments."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the command's own workers are its to wait for
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        _close(fds)
        sys.stdin, sys.stdout, sys.stderr = (os.fdopen(i, mode, closefd=False) for i, mode in ((0, "r"), (1, "w"), (2, "w")))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["highrate", *request["argv"]]
        sys.modules["highrate.cli.console"].fresh()  # rich's consoles for this command's terminal, not the server's
        if "dask.config" in sys.modules:  # its configuration is read from the environment at import
            sys.modules["dask.config"].refresh()
        code = run(request["argv"])
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # a crash of the command itself: its traceback on its own stderr
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(Exception):
            send_message(conn, {"code": code})
        gc.freeze()
        os._exit(code)


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
