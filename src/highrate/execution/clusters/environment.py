"""Check that the workers run the same highrate as the driver, before any work is sent."""

from __future__ import annotations

from typing import Any

from highrate._version import __version__
from highrate.errors import ExecutorError


def highrate_version() -> str:
    """Runs on a worker (where unpickling it imports highrate): the worker's highrate version."""
    return __version__


def check_workers(client: Any, *, expected: str, hint: str) -> dict[str, str]:
    """Ask every connected worker for its highrate version; raise on a failure or a mismatch.

    Returns ``{worker name: version}``. ``hint`` says how to fix the workers' environment.
    """
    answers = client.run(highrate_version, on_error="return")
    info = client.scheduler_info(n_workers=-1).get("workers", {})
    versions: dict[str, str] = {}
    for address, answer in sorted(answers.items()):
        worker = _describe(address, info.get(address, {}))
        if isinstance(answer, OSError):  # the scheduler could not reach it: not a question of its software
            raise ExecutorError(
                f"the scheduler cannot connect to worker {worker} ({answer}): a firewall that lets workers "
                "connect out but not in? Run `highrate broker` and use broker:// addresses (docs/how-to/broker.md)."
            )
        if isinstance(answer, BaseException):
            raise ExecutorError(f"worker {worker} cannot import highrate ({answer}). {hint}")
        if answer != expected:
            raise ExecutorError(f"worker {worker} runs highrate {answer}, the driver {expected}. {hint}")
        versions[str(info.get(address, {}).get("name", address))] = answer
    return versions


def _describe(address: str, info: dict[str, Any]) -> str:
    name = info.get("name")
    host = info.get("host")
    parts = [repr(str(name)) if name is not None else None, f"at {address}", f"on host {host}" if host else None]
    return " ".join(p for p in parts if p)
