"""The client side of ``highrate serve``: a command handed to a warm server, standard library only.

``highrate serve`` keeps a process with numpy, awkward, uproot, hist and highrate imported; for
each command it forks a child that runs the command exactly as a fresh process would (the
client's arguments, working folder, environment, and its own stdin/stdout/stderr, passed over a
Unix socket), so a command pays neither the interpreter's start nor the imports (~0.5 s). The
child sends its exit code back; Ctrl-C here is passed on to it. Without a server, with
``HIGHRATE_SERVE=off``, or if the server's code is not this installation's, the command runs here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path

from highrate.base.cachedir import cache_root

VERBS = ("run", "demo")  # the verbs a server runs: those that import the heavy libraries
_LENGTH = struct.Struct("!I")


def socket_path() -> Path:
    """Where this installation's server listens (short: a Unix socket path holds ~100 bytes)."""
    key = hashlib.sha256(f"{sys.prefix}|{cache_root()}|{os.getuid()}".encode()).hexdigest()[:16]
    return Path(os.environ.get("TMPDIR") or "/tmp") / f"highrate-{key}.sock"


def send_message(sock: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    """One JSON message, length first; ``fds`` go with it (SCM_RIGHTS)."""
    data = json.dumps(message).encode()
    payload = _LENGTH.pack(len(data)) + data
    if fds:
        socket.send_fds(sock, [payload], fds)
    else:
        sock.sendall(payload)


def receive_message(sock: socket.socket, *, max_fds: int = 0) -> tuple[dict | None, list[int]]:
    """The next message and the descriptors that came with it; (None, []) at the end."""
    head, fds, _, _ = socket.recv_fds(sock, _LENGTH.size, max_fds) if max_fds else (sock.recv(_LENGTH.size), [], 0, 0)
    while head and len(head) < _LENGTH.size:
        more = sock.recv(_LENGTH.size - len(head))
        if not more:
            break
        head += more
    if len(head) < _LENGTH.size:
        return None, fds
    (length,) = _LENGTH.unpack(head)
    data = b""
    while len(data) < length:
        more = sock.recv(length - len(data))
        if not more:
            return None, fds
        data += more
    return json.loads(data), fds


def run_served(argv: list[str]) -> int | None:
    """The exit code of ``argv`` run by the warm server; None when it must run here."""
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb not in VERBS or os.environ.get("HIGHRATE_SERVE", "").lower() in ("off", "0", "no", "false"):
        return None
    path = socket_path()
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2.0)
        sock.connect(str(path))
        send_message(sock, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}, [0, 1, 2])
        answer, _ = receive_message(sock)
        if not answer or "pid" not in answer:  # refused (stale code): run here
            return None
        sock.settimeout(None)
        return _wait(sock, int(answer["pid"]))
    except OSError:
        return None
    finally:
        sock.close()


def _wait(sock: socket.socket, pid: int) -> int:
    """The child's exit code; Ctrl-C and termination here are passed on to it."""
    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        done, _ = receive_message(sock)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return int(done["code"]) if done and "code" in done else 1
