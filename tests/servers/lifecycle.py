"""The ``with`` protocol shared by the test servers: start on entry, stop on exit."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class StartStop:
    """For classes with ``start() -> Self`` and ``stop()``."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
