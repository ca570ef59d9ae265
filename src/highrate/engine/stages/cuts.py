"""Cuts: a user function's boolean mask, checked and named; the skim's and preselection's
selections, counted for the cutflow; events filtered lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import awkward as ak
import numpy as np

from highrate.engine.stages.recording import Recorder
from highrate.errors import ChunkError, ConfigError, UnknownQuantityError
from highrate.spec.steps import Cut


def is_tracing(array: Any) -> bool:
    return ak.backend(array) == "typetracer"



def both(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a & b



def guard(thunk: Any, where: str, events: ak.Array) -> Any:
    """Run a user function, turning a missing field into an error that names the stage."""
    try:
        return thunk()
    except (AttributeError, ak.errors.FieldNotFoundError) as err:  # events.Jet, events["Jet"]
        if "no field" in str(err):
            raise UnknownQuantityError(f"{where}: {err}. Event fields: {', '.join(events.fields)}.") from err
        raise
    except KeyError as err:
        key = err.args[0] if err.args else None
        meta = next((a for a in getattr(thunk, "args", ()) if isinstance(a, Mapping)), None)
        if isinstance(key, str) and meta is not None and key not in meta:
            raise ConfigError(
                f"{where}: the dataset's metadata has no {key!r} (it has {', '.join(sorted(meta))}); "
                f"add '{key}: ...' under the dataset's metadata in the datasets file."
            ) from err
        raise



def cut_mask(value: Any, where: str, n: int | None) -> Any:
    if isinstance(value, ak.Array):
        if value.ndim != 1:
            raise ChunkError(f"{where} returned a per-object mask ({value.type}); reduce it with ak.any/ak.all.")
        if is_tracing(value):
            return value
        value = ak.to_numpy(value)
    value = np.asarray(value)
    if value.dtype != np.bool_:
        raise ChunkError(f"{where} returned {value.dtype} values; a cut must return booleans.")
    if n is not None and value.shape != (n,):
        raise ChunkError(f"{where} returned {value.shape[0] if value.ndim else 'a scalar'} values for {n} events.")
    return value



def and_cuts(
    events: ak.Array, cuts: tuple[Cut, ...], meta: Mapping[str, Any], where: str, cache: dict[int, Any] | None = None
) -> Any:
    mask = None
    n = None if is_tracing(events) else len(events)
    cache = {} if cache is None else cache
    for cut in cuts:
        if id(cut) not in cache:
            label = f"{where} cut {cut.name!r}"
            cache[id(cut)] = cut_mask(guard(partial(cut, events, meta), label, events), label, n)
        mask = cache[id(cut)] if mask is None else mask & cache[id(cut)]
    return mask



def select(
    events: ak.Array, cuts: tuple[Cut, ...], stage: str, meta: Mapping[str, Any], recorder: Recorder | None,
    apply: Callable[[Any], ak.Array] | None = None, *, return_mask: bool = False,
) -> Any:
    """Apply the cuts (AND); the recorder, if any, counts events after each one.

    With ``return_mask``: (selected events, the mask or None for no cut)."""
    record = recorder.step if recorder is not None else lambda *a: None
    mask = None
    n = None if is_tracing(events) else len(events)
    for cut in cuts:
        where = f"{stage} cut {cut.name!r}"
        m = cut_mask(guard(lambda c=cut: c(events, meta), where, events), where, n)
        mask = m if mask is None else mask & m
        record(f"{stage}/{cut.name}", mask, None)
    if mask is None:
        record(stage, None, n)
        return (events, None) if return_mask else events
    record(stage, mask, None)
    selected = filter_events(events, mask) if apply is None else apply(mask)
    return (selected, mask) if return_mask else selected



def filter_events(events: ak.Array, mask: np.ndarray) -> ak.Array:
    """``events[mask]`` as a record of lazily filtered fields: each keeps an index into its
    values and is packed when first read (:class:`highrate.engine.collections.Events`), and adding a
    field to it stays cheap."""
    layout = events.layout
    if is_tracing(events) or not isinstance(layout, ak.contents.RecordArray) or layout.is_tuple:
        return events[mask]
    rows = np.flatnonzero(mask)
    contents = []
    for content in layout.contents:
        if content.is_option or content.is_union:
            return events[mask]
        if isinstance(content, ak.contents.IndexedArray):  # filtered before: one index for both
            contents.append(ak.contents.IndexedArray(ak.index.Index64(content.index.data[rows]), content.content))
        else:
            contents.append(ak.contents.IndexedArray(ak.index.Index64(rows), content))
    out = ak.contents.RecordArray(contents, layout.fields, length=len(rows), parameters=layout.parameters)
    return ak.Array(out, behavior=events.behavior, attrs=events.attrs)
