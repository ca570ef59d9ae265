"""The files a stage reads while it runs (correction and golden JSON files), and their content
digests: a cached stage result is valid only while the files it read are unchanged."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

_digests: dict[tuple[str, int, int], str] = {}  # (path, mtime ns, size) → sha256


class Notices:
    """What code running in this thread noted (files read, metadata keys), collected by each
    enclosing :meth:`collect` block."""

    def __init__(self) -> None:
        self._local = threading.local()

    def note(self, items: Iterable[str]) -> None:
        for found in getattr(self._local, "stack", ()):
            found.update(items)

    @contextmanager
    def collect(self) -> Iterator[set[str]]:
        """What is noted while the block runs (nested blocks see it too)."""
        stack = self._local.__dict__.setdefault("stack", [])
        found: set[str] = set()
        stack.append(found)
        try:
            yield found
        finally:  # by identity: an enclosing block may hold an equal set
            del stack[next(i for i in range(len(stack) - 1, -1, -1) if stack[i] is found)]


_files = Notices()
reads = _files.collect  # the files the block read


def note_read(path: str | os.PathLike[str]) -> None:
    """Tell the stages running in this thread that they read ``path``."""
    _files.note((os.path.abspath(os.fspath(path)),))


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
