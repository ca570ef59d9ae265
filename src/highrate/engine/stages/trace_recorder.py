"""The recorder of a traced pass: touches what real counting and filling would read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak

from highrate.engine.quantities import Filled
from highrate.spec.histograms import Histogram


class TraceRecorder:
    """Touches what real counting and filling would read; used with typetracer events.

    Also collects ``object_deps`` (the event fields each object definition reads),
    ``variation_fields`` (the fields each shape variation replaces) and, given the typetracer
    ``report``, ``skim_touched`` (the buffers touched once the skim's mask is known).
    """

    def __init__(self, report: Any = None) -> None:
        self.object_deps: dict[str, frozenset[str]] = {}
        self.variation_fields: dict[str, frozenset[str]] = {}
        self.report = report
        self.skim_touched: frozenset[str] | None = None

    def columns(self, values: Mapping[str, Filled], masks: Mapping[str, Any], weights: Any, *,
                dataset: str | None = None) -> None:
        for x in (*(v.values for v in values.values()), *(v.index for v in values.values()), *masks.values(), weights):
            if isinstance(x, ak.Array):
                ak.typetracer.touch_data(x)

    def step(self, name: str, mask: Any, n_events: int | None) -> None:
        if mask is not None:
            ak.typetracer.touch_data(mask)
        if name == "skim" and self.report is not None:  # the skim's own record, after its cuts
            self.skim_touched = frozenset(self.report.data_touched) | frozenset(self.report.shape_touched)

    def category(self, name: str, mask: Any, weights: Any, *, dataset: str | None = None) -> None:
        for x in (mask, weights):
            if isinstance(x, ak.Array):  # weights of numbers alone are a plain number when traced
                ak.typetracer.touch_data(x)

    def same(self, histogram: Histogram, category: str, source: str, variation: str, *,
             dataset: str | None = None) -> None:
        pass

    def fill(self, histogram: Histogram, masks: Mapping[str, Any], axes: list[Filled],
             weights: Mapping[str, Any], *, dataset: str | None = None) -> None:
        for x in weights.values():
            if isinstance(x, ak.Array):
                ak.typetracer.touch_data(x)
        for a in axes:
            for x in (a.values, a.index):
                if isinstance(x, ak.Array):
                    ak.typetracer.touch_data(x)
