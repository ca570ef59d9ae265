"""The cutflow of an RDataFrame analysis on DistRDF, which books no ``Report``.

``build(df, dataset)`` gets a :class:`CountingFrame` in place of the distributed dataframe: it
passes every call through, and each named ``Filter`` also books a ``Count`` of the events that
pass it. The counts run in the same event loop as the histograms; read after it, they are the
cutflow ``Report`` would give (the filters in the order they were booked).
"""

from __future__ import annotations

from typing import Any


class FilterCount:
    """One named filter's count, shaped like a ``Report`` entry (``GetName``, ``GetPass``)."""

    def __init__(self, name: str, count: Any) -> None:
        self._name, self._count = name, count

    def GetName(self) -> str:  # ROOT's names: results.cutflow reads these and Report's alike
        return self._name

    def GetPass(self) -> int:
        return int(self._count.GetValue())


class CountingFrame:
    """A dataframe node whose named filters book their counts into ``counts``."""

    def __init__(self, node: Any, counts: list[FilterCount]) -> None:
        self._node, self._counts = node, counts

    def Filter(self, *args: Any, **kwargs: Any) -> CountingFrame:
        node = self._node.Filter(*args, **kwargs)
        name = kwargs.get("name") or (args[-1] if len(args) >= 2 and isinstance(args[-1], str) else "")
        if name:
            self._counts.append(FilterCount(name, node.Count()))
        return CountingFrame(node, self._counts)

    def __getattr__(self, attribute: str) -> Any:
        found = getattr(self._node, attribute)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            out = found(*args, **kwargs)  # a node (Define, Vary, ...) stays counted; results pass as they are
            return CountingFrame(out, self._counts) if hasattr(out, "Filter") else out

        return call


def counting(df: Any) -> tuple[CountingFrame, list[FilterCount]]:
    """``df`` wrapped, and the list its named filters' counts go to."""
    counts: list[FilterCount] = []
    return CountingFrame(df, counts), counts
