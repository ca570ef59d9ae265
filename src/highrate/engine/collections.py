"""Object collections (``events.Muon``, ``events.Jet``, ...) with a fast object selection.

``muons[muons.pt > 15]`` is the most common operation of an analysis and awkward's generic
jagged boolean slicing costs ~45 ms per million events for a collection of a few fields. When
both the collection and the mask are plain packed lists with the same offsets (as highrate
builds them), the same result is a few numpy gathers. Anything else takes awkward's path.
Fields of collections and of the event record come as :class:`highrate.arrays.fast.FastArray`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import awkward as ak
import numpy as np

from highrate.arrays.fast import fast, fast_function, list_offsets, select_lists, take_packed

COLLECTION = "highrate.Collection"
EVENTS = "highrate.Events"
_accessed: ContextVar[set[str] | None] = ContextVar("highrate_accessed_fields", default=None)


class Collection(ak.Array):
    """A jagged array of records, one list of objects per event; fields come as fast arrays."""

    def __getitem__(self, where: Any) -> Any:
        if isinstance(where, str):
            return fast(super().__getitem__(where))
        selected = select_objects(self, where)
        return selected if selected is not None else super().__getitem__(where)

    def __getattr__(self, name: str) -> Any:
        return fast(super().__getattr__(name))

    def __awkward_function__(self, func: Any, array_likes: Any, args: tuple, kwargs: dict) -> Any:
        return fast_function(func, args, kwargs)


class Group(ak.Array):
    """A record of flat branches sharing a prefix (``events.HLT``); fields come as fast arrays."""

    def __getitem__(self, where: Any) -> Any:
        return fast(super().__getitem__(where)) if isinstance(where, str) else super().__getitem__(where)

    def __getattr__(self, name: str) -> Any:
        return fast(super().__getattr__(name))

    def __awkward_function__(self, func: Any, array_likes: Any, args: tuple, kwargs: dict) -> Any:
        return fast_function(func, args, kwargs)


class Events(ak.Array):
    """The event record; notes which fields analysis code reads while a recording is active.

    After a selection the record is filtered lazily; a field is packed the first time it is
    read from such a record (once per record), so that it comes as a fast array.
    """

    def __getitem__(self, where: Any) -> Any:
        if isinstance(where, str):
            seen = _accessed.get()
            if seen is not None:
                seen.add(where)
            return self._packed(where, super().__getitem__(where))
        return super().__getitem__(where)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self.fields:
            return super().__getattr__(name)
        seen = _accessed.get()
        if seen is not None:
            seen.add(name)
        return self._packed(name, super().__getattr__(name))

    def __awkward_function__(self, func: Any, array_likes: Any, args: tuple, kwargs: dict) -> Any:
        return fast_function(func, args, kwargs)

    def _packed(self, name: str, value: Any) -> Any:
        layout = value.layout
        if isinstance(layout, ak.contents.IndexedArray) and isinstance(layout.index.data, np.ndarray):
            record, cache = self.__dict__.get("_packed_fields", (None, {}))
            if record is not self._layout:  # a field was assigned since: start again
                cache = {}
                self._packed_fields = (self._layout, cache)
            if name not in cache:
                packed = take_packed(layout.content, layout.index.data)
                cache[name] = ak.to_packed(value) if packed is None else ak.Array(packed, behavior=value.behavior)
            value = cache[name]
        return _field(value)


def _field(value: Any) -> Any:
    if type(value) is ak.Array and isinstance(value.layout, ak.contents.RecordArray) and not value.layout.parameters:
        value.__class__ = Group
        return value
    return fast(value)


@contextmanager
def recording_fields() -> Iterator[set[str]]:
    """Collect the top-level event fields read inside the block (used when tracing)."""
    seen: set[str] = set()
    token = _accessed.set(seen)
    try:
        yield seen
    finally:
        _accessed.reset(token)


behavior: dict[Any, Any] = {("*", COLLECTION): Collection, ("*", EVENTS): Events}


def select_objects(collection: ak.Array, mask: Any) -> ak.Array | None:
    """``collection[mask]`` for a per-object boolean mask via numpy, or None if not applicable."""
    if not isinstance(mask, ak.Array):
        return None
    lay, mlay = collection.layout, mask.layout
    offsets, moffsets = list_offsets(lay), list_offsets(mlay)
    if (
        offsets is None
        or moffsets is None
        or not isinstance(lay.content, ak.contents.RecordArray)
        or not isinstance(mlay.content, ak.contents.NumpyArray)
        or mlay.content.dtype != np.bool_
        or not all(isinstance(c, ak.contents.NumpyArray) and isinstance(c.data, np.ndarray) and c.data.ndim == 1
                   for c in lay.content.contents)
    ):
        return None
    if len(offsets) != len(moffsets):
        return None
    if offsets is not moffsets and not np.array_equal(offsets - offsets[0], moffsets - moffsets[0]):
        return None
    new_offsets, keep = select_lists(moffsets, mlay.content.data)
    keep += offsets[0] - moffsets[0]  # from the mask's content to the collection's
    record = lay.content
    fields = [ak.contents.NumpyArray(c.data.take(keep), parameters=c.parameters) for c in record.contents]
    names = None if record.is_tuple else record.fields
    packed = ak.contents.RecordArray(fields, names, length=len(keep), parameters=record.parameters)
    out = ak.contents.ListOffsetArray(new_offsets, packed, parameters=lay.parameters)
    return ak.Array(out, behavior=collection.behavior)
