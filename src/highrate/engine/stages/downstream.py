"""After the objects, for one shape variation: preselection → quantities → weights →
categories and subsamples → histogram fills and saved columns, reusing the nominal pass's
results that read nothing the variation changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import awkward as ak
import numpy as np

from highrate.engine.collections import recording_fields
from highrate.engine.quantities import Filled, evaluate, to_numpy
from highrate.engine.stages.clock import NO_CLOCK, StageClock
from highrate.engine.stages.cuts import (
    and_cuts,
    both,
    filter_events,
    guard,
    is_tracing,
    select,
    select_mask,
)
from highrate.engine.stages.memo import NO_MEMO, Later, StageMemo, combine
from highrate.engine.stages.objects import per_event, with_fields
from highrate.engine.stages.recording import NOMINAL, Recorder
from highrate.engine.weights import WeightSet, event_weights
from highrate.spec.analysis import Analysis
from highrate.spec.histograms import QUANTITY_PATTERN
from highrate.spec.steps import Cut, arity, call_with


@dataclass
class Pass:
    """What one pass of ``_downstream`` computed, and the event fields each part read, so that a
    shape variation reuses whatever does not depend on the fields it changed."""

    events: Any = None  # the preselected events, objects included (a Later: built when first used)
    cat_masks: dict[str, Any] = field(default_factory=dict)
    part_masks: dict[str | None, Any] = field(default_factory=dict)  # subsamples' masks (None: no subsamples)
    presel_mask: Any = None
    presel_deps: frozenset[str] = frozenset()
    computed: dict[str, Any] = field(default_factory=dict)
    computed_deps: dict[str, frozenset[str]] = field(default_factory=dict)
    weights: WeightSet | None = None
    weight_deps: frozenset[str] = frozenset()
    filled: dict[str, list[Filled]] = field(default_factory=dict)
    cuts: dict[int, Any] = field(default_factory=dict)
    cut_deps: dict[int, frozenset[str]] = field(default_factory=dict)



def downstream(
    analysis: Analysis, events: ak.Array | Later[ak.Array], meta: Mapping[str, Any], recorder: Recorder, variation: str,
    *, nominal: Pass | None = None, changed: set[str] | None = None, preselected: bool = False,
    clock: StageClock = NO_CLOCK, memo: StageMemo = NO_MEMO,
) -> Pass:
    """Preselection, quantities, weights, categories and histograms for one shape variation.

    For a variation, ``nominal`` and ``changed`` (fields and objects it altered) allow reuse:
    when the preselection reads nothing changed, its mask is the nominal one, and then every
    quantity, weight, category cut and histogram input that reads nothing changed is reused.
    ``preselected``: the events are the nominal preselection's already. ``memo`` (the nominal
    pass of an analysis without shape variations only: a variation's reuse needs what each part
    read) remembers the preselection, quantities, weights, category cuts and histogram inputs;
    with it, ``events`` (a :class:`Later`) are built only if a stage the memo lacks reads them.
    """
    defs = memo.definitions
    source = events if isinstance(events, Later) else Later.now(events)
    del events
    is_nominal = nominal is None
    stage = Pass()
    changed = set(changed or ())
    same_events = False
    with clock("preselection"):
        if nominal is not None and (preselected or not (nominal.presel_deps & changed)):
            stage.presel_mask, same_events = nominal.presel_mask, True
            events = source
            if not preselected and stage.presel_mask is not None:
                events = Later.now(source.get()[stage.presel_mask])
        else:
            with recording_fields() as seen:
                if memo.active:
                    stage.presel_mask = select_mask(memo, source, analysis.preselection, "presel", meta, recorder)
                    events = source if stage.presel_mask is None else Later(
                        partial(_filtered, source, stage.presel_mask))
                else:
                    selected, stage.presel_mask = select(
                        source.get(), analysis.preselection, "presel", meta, recorder if is_nominal else None,
                        return_mask=True,
                    )
                    events = Later.now(selected)
            stage.presel_deps = frozenset(seen)
    stage.events = events

    def reusable(deps: frozenset[str]) -> bool:
        return nominal is not None and same_events and not (deps & changed)

    quantity_keys: list[str] = []  # what weights, cuts and fills that read the quantities are keyed by
    with clock("quantities"):
        for name, fn in analysis.quantities.items():
            if reusable(nominal.computed_deps.get(name, frozenset()) if nominal else frozenset()):
                stage.computed[name] = nominal.computed[name]  # type: ignore[union-attr]
                continue
            with recording_fields() as seen:
                stage.computed[name] = memo.leaf(
                    "quantities", (name, defs.function(fn)) if defs is not None else (),
                    partial(_quantity, name, fn, events, meta))
                quantity_keys.append(memo.last)
            stage.computed_deps[name] = frozenset(seen)
            changed.add(name)
    after_quantities = combine(*quantity_keys) if memo.active else ""
    # weights and category cuts read the quantities as fields (ev.mll); histograms and saved columns
    # take them by name, from the events the quantities read, whose packed fields they share
    with clock("weights"):
        with_quantities = Later(partial(_with_quantities, events, stage.computed))
        if nominal is not None and reusable(nominal.weight_deps):
            stage.weights = WeightSet(nominal=nominal.weights.nominal)  # type: ignore[union-attr]
        else:
            with recording_fields() as seen:
                stage.weights = memo.leaf(
                    "weights", (after_quantities, defs.weights(analysis.weights)) if defs is not None else (),
                    partial(_weights, analysis, with_quantities, meta),
                    encode=lambda ws: {"nominal": ws.nominal, "variations": ws.variations},
                    decode=lambda d: WeightSet(d["nominal"], d["variations"]),
                )
            stage.weight_deps = frozenset(seen)
    with clock("fill"):
        for h in analysis.histograms:
            bases = set().union(*(_base_fields(a.quantity) for a in h.axes))
            if nominal is not None and same_events and not (bases & changed):
                stage.filled[h.name] = nominal.filled[h.name]
            else:
                where = f"histogram {h.name!r}"
                stage.filled[h.name] = [
                    memo.leaf("fill", (after_quantities, a.quantity),
                              partial(_fill_values, events, a.quantity, stage.computed, where),
                              encode=lambda f: {"values": f.values, "index": f.index, "nth": f.nth},
                              decode=lambda d: Filled(d["values"], d["index"], d["nth"]))
                    for a in h.axes]

    def masks(cuts: tuple[Cut, ...], where: str) -> Any:
        for cut in cuts:
            if id(cut) in stage.cuts:
                continue
            if nominal is not None and id(cut) in nominal.cuts and reusable(nominal.cut_deps[id(cut)]):
                stage.cuts[id(cut)] = nominal.cuts[id(cut)]
                continue
            with recording_fields() as seen:
                stage.cuts[id(cut)] = memo.leaf(
                    "categories", (after_quantities, defs.cut(cut)) if defs is not None else (),
                    partial(_cut_mask, with_quantities, cut, meta, where))
            stage.cut_deps[id(cut)] = frozenset(seen)
        mask = None
        for cut in cuts:
            mask = stage.cuts[id(cut)] if mask is None else mask & stage.cuts[id(cut)]
        return mask

    weights = stage.weights
    filled = stage.filled
    with clock("categories"):
        # read only when there are subsamples: datasets of different samples may share a trace
        parts = analysis.subsamples.get(meta.get("sample", ""), {}) if analysis.subsamples else {}
        targets = [(f"{meta['dataset']}_{part}", masks(cuts, f"subsample {part!r}"))
                   for part, cuts in parts.items()] or [(None, None)]
        stage.part_masks = dict(targets)
        cat_masks = stage.cat_masks
        for cat, cuts in analysis.categories.items():
            cat_masks[cat] = masks(cuts, f"category {cat!r}")
    # weight variations are taken on the nominal objects only
    fills = {variation: weights.nominal, **(weights.variations if is_nominal else {})}
    for dataset, part_mask in targets:
        cat_part = {cat: both(cat_mask, part_mask) for cat, cat_mask in cat_masks.items()}
        if is_nominal:
            with clock("categories"):
                for cat, mask in cat_part.items():
                    recorder.category(cat, mask, weights.nominal, dataset=dataset)
        same_weights = (nominal is not None and same_events and weights.nominal is nominal.weights.nominal
                        and part_mask is nominal.part_masks.get(dataset))
        unchanged = {cat for cat in cat_part if same_weights and cat_masks[cat] is nominal.cat_masks.get(cat)}
        with clock("fill"):
            for h in analysis.histograms:
                same_values = nominal is not None and filled[h.name] is nominal.filled[h.name]
                for cat in unchanged if same_values else ():
                    if h.fills(cat):
                        recorder.same(h, cat, NOMINAL, variation, dataset=dataset)  # what the nominal filled
                todo = {cat: mask for cat, mask in cat_part.items()
                        if h.fills(cat) and not (same_values and cat in unchanged)}
                if todo:
                    recorder.fill(h, todo, filled[h.name], fills, dataset=dataset)

    with clock("columns"):
        if is_nominal and analysis.save_columns is not None:
            spec = analysis.save_columns
            values = {name: evaluate(events.get(), q, stage.computed, where=f"column {name!r}")
                      for name, q in spec.fields.items()}
            chosen = {c: m for c, m in cat_masks.items() if spec.categories is None or c in spec.categories}
            for dataset, part_mask in targets:
                recorder.columns(values, {c: both(m, part_mask) for c, m in chosen.items()}, weights.nominal,
                                 dataset=dataset)
    return stage



def _filtered(events: Later[ak.Array], mask: Any) -> ak.Array:
    return filter_events(events.get(), mask)


def _weights(analysis: Analysis, events: Later[ak.Array], meta: Mapping[str, Any]) -> WeightSet:
    with_quantities = events.get()
    return event_weights(
        analysis.weights, with_quantities, meta, tracing=is_tracing(with_quantities),
        call=lambda w: guard(partial(w, with_quantities, meta), f"weight {w.name!r}", with_quantities),
    )


def _cut_mask(events: Later[ak.Array], cut: Cut, meta: Mapping[str, Any], where: str) -> Any:
    return and_cuts(events.get(), (cut,), meta, where)


def _with_quantities(events: Later[ak.Array], computed: Mapping[str, Any]) -> ak.Array:
    """The events with each quantity (a number or one value per event) as a field."""
    events = events.get()
    fields = {name: v for name, v in computed.items() if isinstance(v, ak.Array | np.ndarray | int | float)}
    return with_fields(events, fields) if fields else events


def _quantity(name: str, fn: Any, later: Later[ak.Array], meta: Mapping[str, Any]) -> Any:
    events = later.get()
    value = guard(partial(call_with, fn, arity(fn, name), events, {}, meta), f"quantity {name!r}", events)
    return per_event(value, events, f"quantity {name!r}", fn)


def _fill_values(events: Later[ak.Array], quantity: str, computed: Mapping[str, Any], where: str) -> Filled:
    return _numpy(evaluate(events.get(), quantity, computed, where=where), where)


def _numpy(filled: Filled, where: str) -> Filled:
    """Values as numpy once per pass, not once per category and variation."""
    if isinstance(filled.values, ak.Array) and is_tracing(filled.values):
        return filled
    return Filled(to_numpy(filled.values, where=where), filled.index, filled.nth)



def _base_fields(quantity: str) -> set[str]:
    """The event fields or quantities a histogram axis may read (``nJetGood`` reads ``JetGood``)."""
    m = QUANTITY_PATTERN.match(quantity)
    assert m is not None
    base = m["base"]
    return {base, base[1:]} if base.startswith("n") else {base}
