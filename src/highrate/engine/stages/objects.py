"""Object definitions (``Analysis.objects``): defined in order, packed, and reused by a shape
variation when they read nothing it changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import awkward as ak
import numpy as np

from highrate.arrays.fast import is_packed
from highrate.engine.collections import recording_fields
from highrate.engine.stages.cuts import guard, is_tracing
from highrate.engine.stages.memo import Later, StageMemo
from highrate.engine.stages.recording import Dependencies
from highrate.spec.analysis import Analysis
from highrate.spec.steps import arity, call_with
from highrate.spec.usercode import returned


def recompute_objects(
    analysis: Analysis, events: ak.Array, meta: Mapping[str, Any], changed: set[str], deps: Dependencies
) -> tuple[ak.Array, set[str]]:
    """On events that carry every object already: redefine, in order, those reading a changed field."""
    changed = set(changed)
    for name, function in analysis.objects.items():
        if name in deps.objects and not (deps.objects[name] & changed):
            continue
        events = ak.with_field(events, define(name, function, events, meta), name)
        changed.add(name)
    return events, changed



def define(name: str, function: Any, events: ak.Array, meta: Mapping[str, Any]) -> Any:
    """One object of the analysis on ``events``, packed."""
    value = per_event(guard(partial(call_with, function, arity(function, name), events, {}, meta),
                            f"object {name!r}", events), events, f"object {name!r}", function)
    if isinstance(value, ak.Array) and not is_tracing(value) and not is_packed(value.layout):
        value = ak.to_packed(value)  # one gather now; every later use of its fields is a view
    return value



def per_event(value: Any, events: ak.Array, where: str, function: Any) -> Any:
    """``value``, checked to hold one entry per event (an object or a quantity)."""
    if is_tracing(events) or not isinstance(value, ak.Array | np.ndarray) or not value.ndim:
        return value  # a number is broadcast to every event
    if len(value) != len(events):
        raise returned(where, function, f"returned {len(value)} entries for {len(events)} events",
                       "Objects and quantities must return one entry per event they are given (for a collection, "
                       "a list of objects per event): select objects within events (mu[mu.pt > 20]), never events "
                       "(ev[...]).")
    return value


def with_fields(events: ak.Array, fields: Mapping[str, Any]) -> ak.Array:
    for name, value in fields.items():
        events = ak.with_field(events, value, name)
    return events



def define_objects(
    analysis: Analysis, events: ak.Array, meta: Mapping[str, Any], tracer: Any, *,
    reuse: Mapping[str, Any] | None = None, changed: set[str] | None = None,
    deps: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, Any]:
    """Define the objects in order; with ``reuse``, keep those that read no ``changed`` field."""
    values: dict[str, Any] = {}
    changed = set(changed or ())
    for name, function in analysis.objects.items():
        if reuse is not None and deps is not None and name in deps and not (deps[name] & changed):
            values[name] = reuse[name]
        else:
            with recording_fields() as seen:
                value = define(name, function, events, meta)
            if tracer is not None:
                tracer.object_deps[name] = frozenset(seen)
            values[name] = value
            changed.add(name)
        events = ak.with_field(events, values[name], name)
    return values


def remembered_objects(
    analysis: Analysis, events: Later[ak.Array], meta: Mapping[str, Any], memo: StageMemo
) -> tuple[dict[str, Later[Any]], Later[ak.Array]]:
    """:func:`define_objects` through the memo, each object keyed by the objects before it:
    (each object, the events with every object as a field), worked out only when used."""
    assert memo.definitions is not None
    values: dict[str, Later[Any]] = {}
    for name, function in analysis.objects.items():
        values[name] = memo.step("objects", (name, memo.definitions.function(function)),
                                 partial(_define_on, name, function, events, meta))
        events = Later(partial(_with_field, events, values[name], name))
    return values, events


def _define_on(name: str, function: Any, events: Later[ak.Array], meta: Mapping[str, Any]) -> Any:
    return define(name, function, events.get(), meta)


def _with_field(events: Later[ak.Array], value: Later[Any], name: str) -> ak.Array:
    return ak.with_field(events.get(), value.get(), name)
