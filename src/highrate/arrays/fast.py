"""numpy fast paths for the awkward operations analysis code uses most.

An analysis says ``(mu.pt > 15) & (abs(mu.eta) < 2.4)`` or ``ak.any(mask, axis=1)``. On the
arrays highrate builds (a packed list of numbers per event, or one number per event) each such
call is one numpy pass over the flat content; awkward's generic broadcasting costs ~0.5 ms of
dispatch per call on top, which at millions of events/s is most of the analysis. Field
arrays of the event record are therefore handed out as :class:`FastArray`: an ``ak.Array``
whose ufuncs, masks and a few reducers run on the content directly when the layout allows,
and take awkward's own path otherwise. Types, values and errors are awkward's; only the
speed differs.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import isgenerator
from typing import Any

import awkward as ak
import numpy as np

_Content = ak.contents.Content
_NUMERIC_KINDS = frozenset("biuf")


class FastArray(ak.Array):
    """A packed jagged or flat numeric ``ak.Array`` whose common operations run in numpy."""

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method == "__call__" and not kwargs and ufunc.nout == 1:
            out = _ufunc(ufunc, inputs, self.behavior, self.attrs)
            if out is not None:
                return out
        return super().__array_ufunc__(ufunc, method, *inputs, **kwargs)

    def __getitem__(self, where: Any) -> Any:
        out = _mask_select(self, where)
        return out if out is not None else super().__getitem__(where)

    def __awkward_function__(self, func: Callable[..., Any], array_likes: Any, args: tuple, kwargs: dict) -> Any:
        return fast_function(func, args, kwargs)


def fast(array: Any) -> Any:
    """``array`` as a :class:`FastArray` when it is a plain packed numeric array on the CPU."""
    if type(array) is ak.Array and _parts(array.layout) is not None:
        array.__class__ = FastArray
    return array


def fast_function(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """An ``ak.*`` call that reached ``__awkward_function__``: numpy when it applies, else awkward.

    awkward's own implementation is the undecorated generator behind ``func``; calling it
    directly does not dispatch back here, and errors still carry awkward's context because
    this runs inside the dispatching call.
    """
    impl = _FUNCTIONS.get(func.__name__)
    if impl is not None and args:
        out = impl(*args, **kwargs)
        if out is not None:
            return out
    steps = func.__wrapped__(*args, **kwargs)  # type: ignore[attr-defined]
    if not isgenerator(steps):
        return steps
    next(steps)  # the array-likes awkward would dispatch on
    try:
        next(steps)
    except StopIteration as done:
        return done.value
    raise AssertionError(f"ak.{func.__name__} yielded twice")


def list_offsets(layout: _Content) -> np.ndarray | None:
    """The offsets of a ListOffsetArray on the CPU, else None."""
    if isinstance(layout, ak.contents.ListOffsetArray):
        offsets = layout.offsets.data
        if isinstance(offsets, np.ndarray):
            return offsets
    return None


def _parts(layout: _Content) -> tuple[ak.index.Index | None, np.ndarray] | None:
    """(offsets or None, flat numbers) of a parameter-free packed numeric layout."""
    if layout.parameters:
        return None
    if isinstance(layout, ak.contents.NumpyArray):
        data = layout.data
        return (None, data) if isinstance(data, np.ndarray) and data.ndim == 1 else None
    if isinstance(layout, ak.contents.ListOffsetArray):
        content = layout.content
        if isinstance(content, ak.contents.NumpyArray) and not content.parameters:
            data = content.data
            offsets = layout.offsets.data
            if isinstance(data, np.ndarray) and data.ndim == 1 and isinstance(offsets, np.ndarray):
                return layout.offsets, data
    return None


def _wrap(offsets: ak.index.Index | None, data: np.ndarray, behavior: Any, attrs: Any = None) -> FastArray:
    layout: _Content = ak.contents.NumpyArray(data)
    if offsets is not None:
        layout = ak.contents.ListOffsetArray(offsets, layout)
    out = ak.Array(layout, behavior=behavior, attrs=attrs)
    out.__class__ = FastArray
    return out


def _same_lists(a: ak.index.Index, a_len: int, b: ak.index.Index, b_len: int) -> bool:
    return a_len == b_len and (a is b or (len(a) == len(b) and np.array_equal(a.data, b.data)))


def _plain_numbers(x: Any) -> bool:
    """A numpy array of numbers and nothing more (masked arrays keep awkward's path)."""
    return type(x) is np.ndarray and x.dtype.kind in _NUMERIC_KINDS


def _ufunc(ufunc: np.ufunc, inputs: tuple, behavior: Any, attrs: Any) -> FastArray | None:
    offsets: ak.index.Index | None = None
    size = 0
    args: list[Any] = []
    per_event: list[int] = []  # positions of one-value-per-event operands
    for x in inputs:
        if isinstance(x, ak.Array):
            parts = _parts(x.layout)
            if parts is None:
                return None
            off, data = parts
            if off is None:
                per_event.append(len(args))
            elif offsets is None:
                offsets, size = off, len(data)
            elif not _same_lists(offsets, size, off, len(data)):
                return None
            args.append(data)
        elif isinstance(x, (bool, int, float)) or (isinstance(x, np.generic) and x.dtype.kind in _NUMERIC_KINDS):
            args.append(x)
        elif _plain_numbers(x) and x.ndim <= 1:
            if x.ndim == 1:
                per_event.append(len(args))
            args.append(x)
        else:
            return None
    if per_event:
        n = len(args[per_event[0]]) if offsets is None else len(offsets) - 1
        if any(len(args[i]) != n for i in per_event):
            return None  # awkward raises the broadcasting error
        if offsets is not None:
            o = offsets.data
            if o[0] != 0 or o[-1] != size:
                return None
            owner = list_index(np.diff(o))
            for i in per_event:
                args[i] = args[i][owner]
    result = ufunc(*args)
    if not isinstance(result, np.ndarray) or result.dtype.kind not in _NUMERIC_KINDS:
        return None
    return _wrap(offsets, result, behavior, attrs)


def _mask_select(array: ak.Array, where: Any) -> FastArray | None:
    """``array[mask]`` for a boolean mask of the same structure."""
    if not isinstance(where, ak.Array) and type(where) is not np.ndarray:
        return None
    parts = _parts(array.layout)
    mparts = _parts(where.layout) if isinstance(where, ak.Array) else (None, where)
    if parts is None or mparts is None or mparts[1].dtype != np.bool_:
        return None
    (off, data), (moff, mask) = parts, mparts
    if off is None:
        return _wrap(None, np.compress(mask, data), array.behavior, array.attrs) if moff is None and len(mask) == len(data) else None
    if moff is None or not _same_lists(off, len(data), moff, len(mask)):
        return None
    new_offsets, keep = select_lists(off.data, mask)
    return _wrap(new_offsets, data.take(keep), array.behavior, array.attrs)


def select_lists(offsets: np.ndarray, mask: np.ndarray) -> tuple[ak.index.Index64, np.ndarray]:
    """(new offsets, positions kept) when a per-item ``mask`` is applied to lists at ``offsets``."""
    start, stop = int(offsets[0]), int(offsets[-1])
    flat = mask[start:stop]
    keep = np.flatnonzero(flat)
    if start:
        keep += start
    passed = np.zeros(len(flat) + 1, dtype=np.int64)
    np.cumsum(flat, out=passed[1:])
    return ak.index.Index64(passed[offsets - start]), keep


def list_positions(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Where the items of the lists ``[start, start + count)`` are in their flat content, list
    after list: ``np.repeat(starts - new_starts, counts) + np.arange(total)``, twice as fast.

    One cumulative sum over steps that are 1 inside a list and jump at each list's start
    (np.repeat costs ~7 ns per list)."""
    nonempty = np.flatnonzero(counts)
    if len(nonempty) < len(counts):
        starts, counts = starts[nonempty], counts[nonempty]
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts, dtype=np.int64)
    steps = np.ones(int(ends[-1]), dtype=np.int64)
    steps[0] = starts[0]
    steps[ends[:-1]] = starts[1:] - starts[:-1] - counts[:-1] + 1
    return np.cumsum(steps, out=steps)


def list_items(starts: np.ndarray, counts: np.ndarray) -> slice | np.ndarray:
    """:func:`list_positions`, or a slice when the lists lie back to back (no copy needed)."""
    total = int(counts.sum())
    first = int(starts[0]) if total else 0
    if not total or np.array_equal(starts[1:], starts[:-1] + counts[:-1]):
        return slice(first, first + total)
    return list_positions(starts, counts)


def list_index(counts: np.ndarray) -> np.ndarray:
    """The list each item belongs to: ``np.repeat(np.arange(len(counts)), counts)``, twice as fast."""
    ends = np.cumsum(counts, dtype=np.int64)
    total = int(ends[-1]) if len(ends) else 0
    if not total:
        return np.zeros(0, dtype=np.int64)
    # lists 1.. start where the previous ones end; counting starts at or before each item
    starts_before = np.bincount(ends[:-1], minlength=total + 1)[:total]
    return np.cumsum(starts_before, out=starts_before)


def is_packed(layout: _Content) -> bool:
    """Whether ``ak.to_packed`` would change nothing: lists from offset 0 over exactly their
    content, records whose fields have exactly their length, contiguous numbers."""
    if isinstance(layout, ak.contents.NumpyArray):
        data = layout.data
        return isinstance(data, np.ndarray) and data.ndim == 1 and data.flags.c_contiguous
    if isinstance(layout, ak.contents.RecordArray):
        return all(c.length == layout.length and is_packed(c) for c in layout.contents)
    if isinstance(layout, ak.contents.ListOffsetArray):
        offsets = layout.offsets.data
        return (isinstance(offsets, np.ndarray) and offsets[0] == 0 and offsets[-1] == layout.content.length
                and is_packed(layout.content))
    return False


def take_packed(layout: _Content, index: np.ndarray) -> _Content | None:
    """``layout`` at the rows ``index``, packed, for numbers, records and lists of them (numpy
    gathers; None for other layouts)."""
    if layout.parameters.get("__array__") is not None:
        return None
    if isinstance(layout, ak.contents.NumpyArray):
        return ak.contents.NumpyArray(layout.data.take(index), parameters=layout.parameters) if layout.data.ndim == 1 else None
    if isinstance(layout, ak.contents.RecordArray):
        contents = [take_packed(c, index) for c in layout.contents]
        if any(c is None for c in contents):
            return None
        fields = None if layout.is_tuple else layout.fields
        return ak.contents.RecordArray(contents, fields, length=len(index), parameters=layout.parameters)
    offsets = list_offsets(layout)
    if offsets is None:
        return None
    starts, counts = offsets[:-1][index], np.diff(offsets)[index]
    new_offsets = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    content = take_packed(layout.content, list_positions(starts, counts))
    if content is None:
        return None
    return ak.contents.ListOffsetArray(ak.index.Index64(new_offsets), content, parameters=layout.parameters)


# ---- ak.* functions ------------------------------------------------------------------------------
# Each takes the function's own arguments and returns None when the fast path does not apply
# (other options, other layouts), which hands the call to awkward.


def _defaults(kwargs: dict, **defaults: Any) -> bool:
    """Whether every option given is at its default (the defaults here are None/True/False)."""
    return all(k in defaults and v is defaults[k] for k, v in kwargs.items())


def _num(array: Any, axis: int = 1, **kwargs: Any) -> FastArray | None:
    if axis not in (1, -1) or not isinstance(array, ak.Array) or not _defaults(kwargs, highlevel=True, behavior=None,
                                                                               attrs=None):
        return None
    offsets = list_offsets(array.layout)
    if offsets is None or (axis == -1 and array.ndim != 2):
        return None
    return _wrap(None, np.diff(offsets), array.behavior, array.attrs)


def _per_list_nonzero(array: Any, axis: Any, kwargs: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(non-zero items, items) per list of a 2-level jagged array, for reducers along axis 1."""
    if axis not in (1, -1) or not isinstance(array, ak.Array):
        return None
    if not _defaults(kwargs, keepdims=False, mask_identity=False, highlevel=True, behavior=None, attrs=None):
        return None
    parts = _parts(array.layout)
    if parts is None or parts[0] is None:
        return None
    offsets, data = parts[0].data, parts[1]
    nonzero = data if data.dtype == np.bool_ else data != 0
    cumulative = np.zeros(len(nonzero) + 1, dtype=np.int64)
    np.cumsum(nonzero, out=cumulative[1:])
    return cumulative[offsets[1:]] - cumulative[offsets[:-1]], np.diff(offsets)


def _any(array: Any, axis: Any = None, **kwargs: Any) -> FastArray | None:
    found = _per_list_nonzero(array, axis, kwargs)
    return None if found is None else _wrap(None, found[0] > 0, array.behavior, array.attrs)


def _all(array: Any, axis: Any = None, **kwargs: Any) -> FastArray | None:
    found = _per_list_nonzero(array, axis, kwargs)
    return None if found is None else _wrap(None, found[0] == found[1], array.behavior, array.attrs)


def _count_nonzero(array: Any, axis: Any = None, **kwargs: Any) -> FastArray | None:
    found = _per_list_nonzero(array, axis, kwargs)
    return None if found is None else _wrap(None, found[0], array.behavior, array.attrs)


def _flatten(array: Any, axis: Any = 1, **kwargs: Any) -> FastArray | None:
    if axis != 1 or not isinstance(array, ak.Array) or not _defaults(kwargs, highlevel=True, behavior=None, attrs=None):
        return None
    parts = _parts(array.layout)
    if parts is None or parts[0] is None:
        return None
    offsets = parts[0].data
    return _wrap(None, parts[1][offsets[0] : offsets[-1]], array.behavior, array.attrs)


def _to_numpy(array: Any, allow_missing: bool = True, **kwargs: Any) -> np.ndarray | None:
    if kwargs or not isinstance(array, ak.Array):
        return None
    parts = _parts(array.layout)
    return parts[1] if parts is not None and parts[0] is None else None


def _values_astype(array: Any, to: Any, **kwargs: Any) -> FastArray | None:
    if not isinstance(array, ak.Array) or not _defaults(kwargs, including_unknown=False, highlevel=True,
                                                        behavior=None, attrs=None):
        return None
    parts = _parts(array.layout)
    dtype = np.dtype(to)
    if parts is None or dtype.kind not in _NUMERIC_KINDS:
        return None
    return _wrap(parts[0], parts[1].astype(dtype), array.behavior, array.attrs)


def _with_field(array: Any, what: Any, where: Any = None, **kwargs: Any) -> ak.Array | None:
    """A field set on the event record or on a packed collection, keeping its name and class."""
    if not isinstance(where, str) or not isinstance(array, ak.Array) or not _defaults(kwargs, highlevel=True,
                                                                                     behavior=None, attrs=None):
        return None
    layout = array.layout
    outer = layout if isinstance(layout, ak.contents.ListOffsetArray) else None
    record = layout.content if outer is not None else layout
    if not isinstance(record, ak.contents.RecordArray) or record.is_tuple:
        return None
    if _plain_numbers(what) and what.ndim == 1 and outer is None:
        value: _Content = ak.contents.NumpyArray(what)
    elif isinstance(what, ak.Array):
        value = what.layout
        if outer is not None:  # a jagged field of a collection: same lists, same item count
            parts = _parts(value)
            if parts is None or parts[0] is None or not _same_lists(parts[0], len(parts[1]), outer.offsets, record.length):
                return None
            value = value.content
    else:
        return None
    if value.length != record.length or value.backend is not record.backend:
        return None
    fields, contents = list(record.fields), list(record.contents)
    if where in fields:
        contents[fields.index(where)] = value
    else:
        fields.append(where)
        contents.append(value)
    out: _Content = ak.contents.RecordArray(contents, fields, length=record.length, parameters=record.parameters)
    if outer is not None:
        out = ak.contents.ListOffsetArray(outer.offsets, out, parameters=outer.parameters)
    result = ak.Array(out, behavior=array.behavior, attrs=array.attrs)
    if type(result) is ak.Array and not layout.parameters:  # a class handed out by field access (a Group) stays
        result.__class__ = type(array)
    return result


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "with_field": _with_field,
    "num": _num,
    "any": _any,
    "all": _all,
    "count_nonzero": _count_nonzero,
    "flatten": _flatten,
    "to_numpy": _to_numpy,
    "values_astype": _values_astype,
}
