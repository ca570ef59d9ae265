"""Logical files and their replicas, and reading from the first replica that works.

A dataset lists logical files; each has one or more replicas (copies on different storage),
best first. Every read goes through :func:`first_working`, which moves on to the next replica
when one cannot be opened or read, times out, or turns out to be a different file, and
returns what failed on the way so the report can name it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from highrate.base.timeouts import call_with_timeout
from highrate.errors import HighrateError, InputFileError, MissingBranchError, MissingExtraError

T = TypeVar("T")
SUSPECT_S = 300.0  # a replica that failed is tried last for this long (per process)


@dataclass(frozen=True)
class FileLocations:
    """One logical file: its name in reports and checkpoints, and its replicas, best first.

    ``size`` and ``adler32`` come from the catalogue (Rucio) when it knows them; a replica of
    another size is treated as broken. ``sites`` names the storage site of each replica.
    """

    name: str
    replicas: tuple[str, ...]
    size: int | None = None
    adler32: str | None = None
    sites: tuple[str, ...] = ()

    @classmethod
    def single(cls, url: str) -> FileLocations:
        return cls(url, (url,))


class ReplicasExhausted(InputFileError):
    """Every replica of a file failed; ``failures`` says how each did."""

    def __init__(self, message: str, failures: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.failures = failures


class ReplicaMismatch(InputFileError):
    """A replica is not the file the catalogue or the first replica described."""


_suspect: dict[str, float] = {}
_lock = threading.Lock()


def ordered(replicas: Sequence[str], now: float | None = None) -> list[str]:
    """``replicas`` with those that failed recently in this process moved to the end."""
    now = time.monotonic() if now is None else now
    with _lock:
        recent = {r for r in replicas if now - _suspect.get(r, -SUSPECT_S) < SUSPECT_S}
    return [r for r in replicas if r not in recent] + [r for r in replicas if r in recent]


def suspect(replica: str) -> None:
    """Note that ``replica`` failed outside :func:`first_working` (its data proved corrupt once
    read): the next attempts in this process try the other replicas first."""
    with _lock:
        _suspect[replica] = time.monotonic()


def first_working(
    replicas: Sequence[str],
    attempt: Callable[[str], T],
    *,
    what: str,
    timeout: float | None = None,
    on_failure: Callable[[str], None] = lambda replica: None,
) -> tuple[T, str, list[dict[str, Any]]]:
    """``(attempt(replica), replica, failures)`` for the first replica where ``attempt`` succeeds.

    ``timeout`` bounds each attempt. A single replica's error is raised as it is; with several,
    :class:`ReplicasExhausted` lists them all. A missing branch is the analysis's problem, not
    the replica's, and is raised at once.
    """
    failures: list[dict[str, Any]] = []
    candidates = ordered(replicas)
    for replica in candidates:
        try:
            value = call_with_timeout(partial(attempt, replica), timeout, what=f"{what} from {replica!r}")
        except (MissingBranchError, MissingExtraError):  # the same on every replica: not the replica's fault
            raise
        except Exception as err:
            on_failure(replica)
            suspect(replica)
            failures.append({"replica": replica, "error": f"{type(err).__name__}: {err}", "time": time.time()})
            if len(candidates) == 1:
                if isinstance(err, HighrateError):
                    raise
                raise InputFileError(f"{what}: {type(err).__name__}: {err}") from err
            continue
        with _lock:
            _suspect.pop(replica, None)
        return value, replica, failures
    listing = "; ".join(f"{f['replica']}: {f['error']}" for f in failures)
    raise ReplicasExhausted(f"{what}: all {len(failures)} replicas failed ({listing})", failures)
