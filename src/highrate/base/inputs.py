"""The files a stage reads while it runs (correction and golden JSON files), and their content
digests: a cached stage result is valid only while the files it read are unchanged."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()
_digests: dict[tuple[str, int, int], str] = {}  # (path, mtime ns, size) → sha256


def note_read(path: str | os.PathLike[str]) -> None:
    """Tell the stages running in this thread that they read ``path``."""
    for found in getattr(_local, "stack", ()):
        found.add(os.path.abspath(os.fspath(path)))


@contextmanager
def reads() -> Iterator[set[str]]:
    """The files noted while the block runs (nested blocks see them too)."""
    stack = _local.__dict__.setdefault("stack", [])
    found: set[str] = set()
    stack.append(found)
    try:
        yield found
    finally:
        stack.remove(found)


def digest(path: str) -> str | None:
    """The sha256 of the file's content (worked out once per change of its mtime or size); None
    when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    stamp = (path, st.st_mtime_ns, st.st_size)
    found = _digests.get(stamp)
    if found is None:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return None
        found = _digests[stamp] = h.hexdigest()[:32]
    return found
