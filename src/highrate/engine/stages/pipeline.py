"""The per-chunk pipeline: skim → objects → preselection → quantities → categories → weights → fill.

Stages are plain functions of the events; they know nothing of executors or file access. The
same code runs on real arrays and on awkward typetracers (to find the branches the analysis
uses), with a :class:`~highrate.engine.stages.recording.Recorder` deciding what "count" and
"fill" mean. The skim runs once; everything after it runs for the nominal and each shape
variation (``downstream.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import awkward as ak
import numpy as np

from highrate.engine.stages.clock import NO_CLOCK, StageClock
from highrate.engine.stages.cuts import filter_events, guard, is_tracing, select, select_mask
from highrate.engine.stages.downstream import downstream
from highrate.engine.stages.memo import NO_MEMO, Later, StageMemo
from highrate.engine.stages.objects import (
    define_objects,
    recompute_objects,
    remembered_objects,
    with_fields,
)
from highrate.engine.stages.recording import NOMINAL, Dependencies, Recorder
from highrate.spec.analysis import Analysis
from highrate.spec.usercode import returned


def run_stages(
    analysis: Analysis,
    events: ak.Array | Later[ak.Array],
    meta: Mapping[str, Any],
    recorder: Recorder,
    *,
    n_events: int | None = None,
    skim_filter: Callable[[np.ndarray], ak.Array] | None = None,
    deps: Dependencies | None = None,
    clock: StageClock = NO_CLOCK,
    memo: StageMemo = NO_MEMO,
) -> None:
    """Run the analysis on one chunk of events, reporting counts and fills to ``recorder``.

    ``skim_filter(mask)`` builds the skimmed events directly from the read columns (packed);
    without it the events are filtered with awkward. The skim runs once; objects and everything
    after them run for the nominal and for each shape variation. With ``deps`` (found when
    tracing) a variation reuses the objects it does not change, and when the preselection reads
    nothing it changes, it runs on the preselected events only; without it every object is
    recomputed on the skimmed events. ``clock`` receives the seconds each stage kind took.
    ``memo`` remembers stage results (the skim's, each object's and, without shape variations, the
    preselection's onwards) and gives them back when nothing they depend on changed; then
    ``events`` may be a :class:`Later` (read only if a stage the memo lacks needs them), with
    their number in ``n_events``.
    """
    if isinstance(events, Later):
        source, tracing = events, False
    else:
        tracing = is_tracing(events)
        source, n_events = Later.now(events), None if tracing else len(events)
    del events  # the caller hands them over: the full chunk's columns can go once they are skimmed
    if tracing:
        memo = NO_MEMO
    recorder.step("initial", None, n_events)
    with clock("skim"):
        if memo.active:
            mask = select_mask(memo, source, analysis.skim, "skim", meta, recorder)
            skimmed = Later(partial(_skimmed, source, mask, skim_filter))
        else:
            skimmed = Later.now(select(source.take(), analysis.skim, "skim", meta, recorder, skim_filter))
    variations = [v for v in analysis.variations if not (v.mc_only and not meta.get("is_mc", False))]
    with clock("objects"):
        if memo.active:
            remembered, skimmed_objects = remembered_objects(analysis, skimmed, meta, memo)
            nominal_objects = {name: value.get() for name, value in remembered.items()} if variations else {}
        else:
            nominal_objects = define_objects(analysis, skimmed.get(), meta, recorder if tracing else None)
            skimmed_objects = Later.now(with_fields(skimmed.get(), nominal_objects))
    # a variation's pass reuses what the nominal pass's parts read, found as they are computed
    nominal = downstream(analysis, skimmed_objects, meta, recorder, NOMINAL, clock=clock,
                         memo=NO_MEMO if variations else memo)
    if variations:
        skimmed_events = skimmed.get()
    for variation in variations:
        fields = deps.variations.get(variation.name) if deps is not None else None
        preselected = fields is not None and not (nominal.presel_deps & deps.affected(analysis, fields))
        base = nominal.events.get() if preselected else skimmed_events  # the preselected events carry the objects
        shared: dict[str, Any] = {}  # what up and down have in common, computed once per chunk
        for direction, suffix in (("up", "Up"), ("down", "Down")):
            where = f"shape variation {variation.name!r} ({direction})"
            with clock("variations"):
                replaced = guard(partial(variation, base, direction, meta, shared), where, base)
            if not isinstance(replaced, Mapping):
                raise returned(where, variation.function, f"returned a {type(replaced).__name__}",
                               "A shape variation must return a mapping of the event fields it replaces, e.g. "
                               "{'Jet': jets}.", tracing=tracing)
            if tracing:
                recorder.variation_fields[variation.name] = frozenset(replaced)
                with_fields(base, replaced)  # the fields it returns must fit the events
                # Its objects and stages are the nominal pass's functions on the same fields, so
                # they read what the nominal pass and the variation read: tracing them again
                # (once cost ~40 % of a trace) would find nothing new.
                break
            with clock("objects"):
                shifted = with_fields(base, replaced)
                changed = set(replaced)
                if preselected:
                    shifted, changed = recompute_objects(analysis, shifted, meta, changed, deps)
                else:
                    objects = define_objects(analysis, shifted, meta, None, reuse=nominal_objects, changed=changed,
                                             deps=deps.objects if deps is not None else None)
                    changed |= {name for name in objects if objects[name] is not nominal_objects[name]}
                    shifted = with_fields(shifted, objects)
            downstream(analysis, shifted, meta, recorder, f"{variation.name}{suffix}",
                       nominal=nominal, changed=changed, preselected=preselected, clock=clock)


def _skimmed(events: Later[ak.Array], mask: Any, skim_filter: Callable[[np.ndarray], ak.Array] | None) -> ak.Array:
    full = events.take()
    return full if mask is None else skim_filter(mask) if skim_filter else filter_events(full, mask)
