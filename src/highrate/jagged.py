"""Fast access to jagged (per-object) arrays through their flat numpy contents.

awkward's generic broadcasting over option types costs about a millisecond per operation and
per 100k events; these helpers use one flatten and numpy index arithmetic instead. On
typetracers (when highrate traces an analysis for the branches it uses) they fall back to
the equivalent awkward expressions, which touch the same data.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from highrate.arrays.fast import fast


def is_typetracer(array: Any) -> bool:
    return isinstance(array, ak.Array) and ak.backend(array) == "typetracer"


def flat_parts(array: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat content, start of each event in it, count per event) of a jagged numeric array."""
    parts = _list_parts(array.layout) if isinstance(array, ak.Array) else None
    if parts is not None:
        return parts
    counts = ak.to_numpy(ak.num(array, axis=1))
    content = ak.to_numpy(ak.flatten(array, axis=1))
    starts = np.cumsum(counts) - counts
    return content, starts, counts


def _list_parts(layout: ak.contents.Content) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Zero-copy (content, starts, counts) of the layouts filtering and packing produce."""
    index = None
    if isinstance(layout, ak.contents.IndexedArray):  # a lazily filtered list
        index, layout = np.asarray(layout.index.data), layout.content
    if not isinstance(getattr(layout, "content", None), ak.contents.NumpyArray):
        return None
    if isinstance(layout, ak.contents.ListOffsetArray):
        offsets = np.asarray(layout.offsets.data)
        starts, stops = offsets[:-1], offsets[1:]
    elif isinstance(layout, ak.contents.ListArray):
        starts, stops = np.asarray(layout.starts.data), np.asarray(layout.stops.data)
    else:
        return None
    if index is not None:
        starts, stops = starts[index], stops[index]
    return np.asarray(layout.content.data), starts, stops - starts


def unflatten(values: Any, counts: Any) -> ak.Array:
    """Flat per-object ``values`` as a jagged array with ``counts`` objects per event.

    ``ak.unflatten`` for numpy inputs, with highrate's numpy fast paths for arithmetic on it."""
    values, counts = np.asarray(values), np.asarray(counts, dtype=np.int64)
    if len(values) != counts.sum():
        raise ValueError(f"{len(values)} values for {int(counts.sum())} objects")
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return fast(ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), ak.contents.NumpyArray(values))))


def nth_value(array: ak.Array, i: int, fill: Any = np.nan) -> Any:
    """Per event, the ``i``-th value of a jagged numeric array, ``fill`` where there is none.

    Returns a numpy array (float ``fill`` such as NaN promotes integer values to float).
    """
    if is_typetracer(array):
        return ak.fill_none(ak.firsts(array[:, i:], axis=1), fill)
    content, starts, counts = flat_parts(array)
    dtype = np.result_type(content.dtype, np.asarray(fill).dtype) if not isinstance(fill, bool) else content.dtype
    if not len(content):
        return np.full(len(counts), fill, dtype=dtype)
    # a gather for every event (clipped where there is no i-th value) and a select beat
    # gathering the present ones alone: boolean indexing costs more than the extra reads
    values = content.take(np.minimum(starts + i, len(content) - 1))
    return np.where(counts > i, values, np.asarray(fill, dtype=dtype))


def nth_present(array: ak.Array, i: int) -> tuple[Any, Any]:
    """(values of the ``i``-th object where present, indices of those events)."""
    if is_typetracer(array):
        has = ak.num(array, axis=1) > i
        return array[has][:, i], has
    content, starts, counts = flat_parts(array)
    events = np.flatnonzero(counts > i)
    return content[starts[events] + i], events
