"""Split files into work items (entry ranges), aligned to cluster boundaries. Pure: no I/O."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from highrate.errors import ConfigError


@dataclass(frozen=True)
class WorkItem:
    """One chunk: an entry range of one file of one dataset."""

    dataset: str
    url: str
    tree: str
    start: int
    stop: int
    uuid: str = ""
    replicas: tuple[str, ...] = ()  # where to read it, best first; empty: ``url`` itself
    size: int | None = None  # bytes every replica must have (from the catalogue or the first replica)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.replicas or (self.url,)

    @property
    def entries(self) -> int:
        return self.stop - self.start

    def describe(self) -> str:
        return f"dataset {self.dataset!r}, file {self.url!r}, entries [{self.start}, {self.stop})"


def split_entries(entries: int, clusters: Sequence[int], chunk_size: int) -> list[tuple[int, int]]:
    """Entry ranges of about ``chunk_size`` entries, as equal as possible.

    Each boundary moves to the nearest cluster boundary when one lies within half a chunk,
    so no basket is decompressed by two chunks; ``clusters`` are sorted entry offsets.
    """
    if chunk_size <= 0:
        raise ConfigError(f"--chunk-size must be positive, got {chunk_size}.")
    if entries <= 0:
        return []
    n = max(1, math.ceil(entries / chunk_size))
    inner = [c for c in clusters if 0 < c < entries]
    bounds = [0]
    for k in range(1, n):
        target = round(k * entries / n)
        snapped = _nearest(inner, target)
        if snapped is not None and abs(snapped - target) <= chunk_size // 2 and snapped > bounds[-1]:
            target = snapped
        if target > bounds[-1]:
            bounds.append(target)
    bounds.append(entries)
    return list(pairwise(bounds))


def _nearest(sorted_values: Sequence[int], target: int) -> int | None:
    if not sorted_values:
        return None
    i = bisect_left(sorted_values, target)
    candidates = sorted_values[max(i - 1, 0) : i + 1]
    return min(candidates, key=lambda c: abs(c - target))
