"""What a pass of the stages reports (counts, fills, saved columns), and what tracing learns.

The same stages run on real arrays and on awkward typetracers; a :class:`Recorder` decides
what "count" and "fill" mean for each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from highrate.engine.quantities import Filled
from highrate.spec.analysis import Analysis
from highrate.spec.histograms import Histogram

NOMINAL = "nominal"



class Recorder(Protocol):
    def step(self, name: str, mask: Any, n_events: int | None) -> None: ...
    def category(self, name: str, mask: Any, weights: Any, *, dataset: str | None = None) -> None: ...
    def fill(self, histogram: Histogram, masks: Mapping[str, Any], axes: list[Filled],
             weights: Mapping[str, Any], *, dataset: str | None = None) -> None: ...
    def same(self, histogram: Histogram, category: str, source: str, variation: str, *,
             dataset: str | None = None) -> None: ...
    def columns(self, values: Mapping[str, Filled], masks: Mapping[str, Any], weights: Any, *,
                dataset: str | None = None) -> None: ...



@dataclass(frozen=True)
class Dependencies:
    """What tracing found out about the analysis: the event fields each object definition reads,
    the fields each shape variation replaces (variations use them to recompute only what they
    change), and the branches the skim reads (the others are decoded for skimmed events only)."""

    objects: Mapping[str, frozenset[str]] = field(default_factory=dict)
    variations: Mapping[str, frozenset[str]] = field(default_factory=dict)
    skim: frozenset[str] | None = None  # None: not known

    def affected(self, analysis: Analysis, fields: frozenset[str]) -> set[str]:
        """``fields`` and every object that reads them, directly or through another object."""
        changed = set(fields)
        for name in analysis.objects:
            if name not in self.objects or self.objects[name] & changed:
                changed.add(name)
        return changed
