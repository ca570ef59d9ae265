"""Evaluate histogram quantities ("mll", "MET.pt", "JetGood.pt", "MuonGood.pt[0]", "nJetGood")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from highrate.arrays.fast import list_index
from highrate.errors import UnknownQuantityError, did_you_mean
from highrate.jagged import is_typetracer, nth_present
from highrate.spec.histograms import QUANTITY_PATTERN


@dataclass
class Filled:
    """Values to fill: ``values[i]`` belongs to event ``index[i]`` (``index`` None: one per event)."""

    values: Any
    index: Any = None
    nth: bool = False  # the n-th object: at most one value per event


def evaluate(
    events: ak.Array,
    quantity: str,
    computed: Mapping[str, Any],
    *,
    where: str,
) -> Filled:
    """Evaluate one quantity on the (preselected) events; works on typetracers too."""
    m = QUANTITY_PATTERN.match(quantity)
    assert m is not None
    base, field, index = m["base"], m["field"], m["index"]
    fields = events.fields
    if base in computed:
        value = computed[base]
    elif base in fields:
        value = events[base]
    elif base.startswith("n") and base[1:] in fields and field is None:
        value = ak.num(events[base[1:]], axis=1)
    else:
        known = [*computed, *fields, *(f"n{f}" for f in fields if _is_list(events[f]))]
        raise UnknownQuantityError(f"{where}: unknown quantity {base!r}." + did_you_mean(base, known))
    if field is not None:
        sub = ak.fields(value)
        if field not in sub:
            raise UnknownQuantityError(
                f"{where}: {base!r} has no field {field!r}; its fields: {', '.join(sub) or 'none'}."
                + did_you_mean(field, sub)
            )
        value = value[field]
    if not _is_list(value):
        if index is not None:
            raise UnknownQuantityError(f"{where}: {quantity!r} indexes a per-event quantity.")
        return Filled(value)
    if index is None:
        counts = ak.num(value, axis=1)
        return Filled(ak.flatten(value, axis=1), _event_index(counts))
    values, events_with = nth_present(value, int(index))
    if not is_typetracer(events_with) and len(events_with) == len(value):
        return Filled(values)  # every event has one: a per-event quantity, which fills share more
    return Filled(values, events_with, nth=True)


def _is_list(array: Any) -> bool:
    return isinstance(array, ak.Array) and array.ndim > 1


def _event_index(counts: Any) -> Any:
    if is_typetracer(counts):
        return counts
    return list_index(ak.to_numpy(counts))


def to_numpy(array: Any, *, where: str) -> np.ndarray:
    """A flat numpy array of a per-event or flattened quantity."""
    if isinstance(array, np.ndarray):
        return array
    try:
        return ak.to_numpy(array, allow_missing=False)
    except (ValueError, TypeError) as err:
        raise UnknownQuantityError(f"{where}: expected numbers, got type {ak.type(array)}.") from err

