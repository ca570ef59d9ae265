"""Bound a call that may hang (a read from a stuck file system or server) by a timeout."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def call_with_timeout(function: Callable[[], T], timeout: float | None, *, what: str) -> T:
    """``function()``, or ``TimeoutError`` naming ``what`` after ``timeout`` seconds.

    The call runs in a daemon thread: a read blocked in the kernel cannot be interrupted, so on
    timeout it is abandoned (it ends with the process) and the caller reports the chunk.
    """
    if timeout is None:
        return function()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = function()
        except BaseException as err:  # handed to the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target, name=f"highrate-read {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not finish within {timeout:g} s (per-chunk timeout)")
    if "error" in box:
        raise box["error"]
    return box["value"]
