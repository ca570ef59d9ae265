"""Branches of one entry range left to decode for the rows the skim keeps (TTree and RNTuple)."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable

import numpy as np

from highrate.data.io.baskets import native
from highrate.errors import InputFileError

Decoder = Callable[[int | None], np.ndarray]  # (a local file's descriptor or None) -> all the chunk's values


class Deferred:
    """Branches of one entry range left to decode for selected rows only.

    The analysis usually skims most events away before it reads most branches: decoding such a
    branch right before gathering the kept rows works on data still in the CPU's cache, and
    only the kept values are byte-swapped. A local file's baskets or pages are read then too,
    from a duplicate of its descriptor (valid however the open file is shared or closed
    meanwhile), so a chunk never holds more than one late branch's stored bytes.
    """

    def __init__(self, start: int, stop: int, where: str) -> None:
        self.start, self.stop, self.where = start, stop, where
        self._pending: dict[str, Decoder] = {}
        self._fd: int | None = None
        self._close: weakref.finalize | None = None

    def add(self, name: str, decode: Decoder, fd: int | None = None) -> None:
        """A branch to decode later with ``decode``, which reads from the local file ``fd``
        (duplicated now) or from bytes it already holds (``fd`` None)."""
        if fd is not None and self._fd is None:
            self._fd = os.dup(fd)
            self._close = weakref.finalize(self, os.close, self._fd)
        self._pending[name] = decode

    def __contains__(self, name: str) -> bool:
        return name in self._pending

    def take(self, name: str, index: np.ndarray) -> np.ndarray:
        """The values of branch ``name`` at ``index`` (positions in its flat content), native."""
        decode = self._pending.pop(name)  # decoded once: its stored bytes go now
        try:
            values = decode(self._fd)
        except InputFileError:
            raise
        except Exception as err:
            raise InputFileError(f"{self.where}: reading branch {name!r} failed: {type(err).__name__}: {err}") from err
        if not self._pending:
            self.close()
        return native(values.take(index))

    def close(self) -> None:
        """Release the file (also done when the last branch is taken, or on garbage collection)."""
        if self._close is not None:
            self._close()

