"""Where a chunk's time goes: seconds per stage kind, each stage's own (nested stages excluded)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

STAGES = ("read", "skim", "objects", "variations", "preselection", "quantities", "weights", "categories", "fill",
          "columns")


class StageClock:
    """``with clock("skim"): ...`` adds the time spent to ``seconds["skim"]``. A stage entered inside
    another pauses it, so the stages' seconds add up to the time the chunk took, counted once."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._running: list[str] = []
        self._since = 0.0

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._running:
            self._add(self._running[-1], now)
        self._running.append(stage)
        self._since = now
        try:
            yield
        finally:
            now = time.perf_counter()
            self._add(self._running.pop(), now)
            self._since = now

    def _add(self, stage: str, now: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + (now - self._since)


class _NoClock(StageClock):
    """For tracing and callers that do not measure: nothing is kept."""

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        yield


NO_CLOCK = _NoClock()
