"""Where each chunk last ran on a Dask cluster: its worker holds the chunk's cached columns and
stage results, so the next run sends the chunk back there while that worker is alive."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from highrate.base.cachedir import store_json

MAX_KEYS = 200_000  # a remembered placement costs ~100 bytes; the oldest go first


class Homes:
    """Chunk key → the address of the worker that ran it last; kept in ``path`` (a file per
    scheduler) so that the next command on a long-lived cluster finds it too."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._homes: dict[str, str] = {}
        if path is not None:
            with contextlib.suppress(OSError, ValueError, TypeError):
                self._homes = dict(json.loads(path.read_text()))

    def of(self, key: str, alive: Iterable[str]) -> str | None:
        """The chunk's worker, if it is alive (else the chunk may go anywhere: its cache is gone)."""
        home = self._homes.get(key)
        return home if home is not None and home in set(alive) else None

    def note(self, ran: Mapping[str, str]) -> None:
        for key, worker in ran.items():
            self._homes.pop(key, None)  # most recent last: trimmed from the front
            self._homes[key] = worker
        if len(self._homes) > MAX_KEYS:
            self._homes = dict(list(self._homes.items())[-MAX_KEYS:])

    def save(self) -> None:
        if self.path is not None and self._homes:
            store_json(self.path, self._homes)
