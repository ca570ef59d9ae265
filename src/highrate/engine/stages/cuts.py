"""Cuts: a user function's boolean mask, checked and named; the skim's and preselection's
selections, counted for the cutflow; events filtered lazily.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import awkward as ak
import numpy as np

from highrate.engine.stages.memo import Later, StageMemo
from highrate.engine.stages.recording import Recorder
from highrate.errors import ConfigError, HighrateError, UnknownQuantityError
from highrate.spec.steps import Cut
from highrate.spec.usercode import raised, returned

STAGE_NAMES = {"presel": "preselection"}  # the cutflow's short name → the name in messages


def is_tracing(array: Any) -> bool:
    return ak.backend(array) == "typetracer"



def both(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a & b



def guard(thunk: Any, where: str, events: ak.Array) -> Any:
    """Run a user function: a missing field or metadata key becomes an error that names the stage
    and the fix, any other exception a :class:`UserCodeError` naming the stage and the user's line."""
    try:
        return thunk()
    except HighrateError:  # highrate's own helpers, called by the user's code, said what was wrong
        raise
    except (AttributeError, ak.errors.FieldNotFoundError) as err:  # events.Jet, events["Jet"]
        if "no field" in str(err):
            raise UnknownQuantityError(f"{where}: {err}.{field_help(str(err), events)}") from err
        raise raised(where, err, tracing=is_tracing(events)) from err
    except KeyError as err:
        key = err.args[0] if err.args else None
        meta = next((a for a in getattr(thunk, "args", ()) if isinstance(a, Mapping)), None)
        if isinstance(key, str) and meta is not None and key not in meta:
            raise ConfigError(
                f"{where}: the dataset's metadata has no {key!r} (it has {', '.join(sorted(meta))}); "
                f"add '{key}: ...' under the dataset's metadata in the datasets file."
            ) from err
        raise raised(where, err, tracing=is_tracing(events)) from err
    except MemoryError:  # the chunk was too big, not the code wrong
        raise
    except Exception as err:
        raise raised(where, err, tracing=is_tracing(events)) from err


def field_help(message: str, events: ak.Array) -> str:
    """The close names of a missing field and the collections, never every field: a NanoAOD file has
    thousands of branches, and an error must fit on a screen."""
    m = re.search(r"no field (?:named )?'([^']+)'", message)
    fields = list(events.fields)
    close = difflib.get_close_matches(m[1], fields, n=10, cutoff=0.6) if m else []
    text = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    layout = events.layout
    contents = layout.contents if layout.is_record else []
    # a lazily filtered field is an IndexedArray over the list
    collections = [f for f, c in zip(fields, contents, strict=False) if (c.content if c.is_indexed else c).is_list]
    if collections:
        shown = ", ".join(collections[:40]) + (f" and {len(collections) - 40} more" if len(collections) > 40 else "")
        text += f" Collections: {shown}."
    return text + f" ({len(fields)} event fields in all.)"


MUST = "A cut must return one boolean per event, e.g. ev.MET.pt > 50 or ak.num(ev.Muon) >= 2."


def cut_mask(value: Any, where: str, n: int | None, function: Any = None) -> Any:
    """The cut's mask as numpy booleans (a typetracer when tracing); ``function`` (the user's)
    is named when the value is not one boolean per event."""
    tracing = n is None  # the events' length is known on real arrays only

    def wrong(problem: str, hint: str = MUST) -> Exception:
        return returned(where, function, problem, hint, tracing=tracing)

    if isinstance(value, ak.Array):
        if value.ndim != 1:
            raise wrong(f"returned a per-object mask ({per_event_type(value)} per event)",
                        "A cut must return one boolean per event: reduce a per-object mask with "
                        "ak.any(mask, axis=1) or ak.all(mask, axis=1).")
        kind = _primitive(value.layout)
        if kind != "bool":
            raise wrong(f"returned {kind} values" if kind else f"returned {per_event_type(value)} per event")
        if is_tracing(value):
            return value
        value = ak.to_numpy(value)
    value = np.asarray(value)
    if value.ndim == 0:
        raise wrong(f"returned a single value ({value!r:.60}), not one per event")
    if value.dtype != np.bool_:
        raise wrong(f"returned {value.dtype} values")
    if n is not None and value.shape != (n,):
        raise wrong(f"returned {value.shape[0]} values for {n} events",
                    "A cut must return one boolean per event it is given: a mask, not the selected events.")
    return value


def per_event_type(array: ak.Array) -> str:
    """What an array holds per event ("var * bool"), whatever its length (unknown when tracing)."""
    return str(getattr(array.type, "content", array.type))


def _primitive(layout: Any) -> str | None:
    """The dtype name of a flat array's values (through options and indexes), or None (records, ...)."""
    while layout.is_option or layout.is_indexed:
        layout = layout.content
    return layout.dtype.name if isinstance(layout, ak.contents.NumpyArray) else None



def and_cuts(
    events: ak.Array, cuts: tuple[Cut, ...], meta: Mapping[str, Any], where: str, cache: dict[int, Any] | None = None
) -> Any:
    mask = None
    n = None if is_tracing(events) else len(events)
    cache = {} if cache is None else cache
    for cut in cuts:
        if id(cut) not in cache:
            label = f"{where} cut {cut.name!r}"
            cache[id(cut)] = cut_mask(guard(partial(cut, events, meta), label, events), label, n, cut.function)
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
        where = f"{STAGE_NAMES.get(stage, stage)} cut {cut.name!r}"
        m = cut_mask(guard(lambda c=cut: c(events, meta), where, events), where, n, cut.function)
        mask = m if mask is None else mask & m
        record(f"{stage}/{cut.name}", mask, None)
    if mask is None:
        record(stage, None, n)
        return (events, None) if return_mask else events
    record(stage, mask, None)
    selected = filter_events(events, mask) if apply is None else apply(mask)
    return (selected, mask) if return_mask else selected



def select_mask(
    memo: StageMemo, events: Later[ak.Array], cuts: tuple[Cut, ...], stage: str, meta: Mapping[str, Any],
    recorder: Recorder | None,
) -> Any:
    """The mask of :func:`select` (None: no cut) through the memo, which keeps it with the
    cutflow it recorded; the cutflow is reported either way."""
    assert memo.definitions is not None

    def compute() -> dict[str, Any]:
        steps: list[list[Any]] = []
        _, mask = select(events.get(), cuts, stage, meta, _Steps(steps), apply=lambda m: None, return_mask=True)
        return {"mask": mask, "steps": steps}

    found = memo.step(STAGE_NAMES.get(stage, stage), (memo.definitions.cuts(cuts),), compute).get()
    if recorder is not None:
        for name, n in found["steps"]:
            recorder.step(name, None, n)
    return found["mask"]


class _Steps:
    """Keeps a selection's cutflow as [step, events] pairs."""

    def __init__(self, steps: list[list[Any]]) -> None:
        self.steps = steps

    def step(self, name: str, mask: Any, n_events: int | None) -> None:
        self.steps.append([name, int(n_events if mask is None else np.count_nonzero(mask))])



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
