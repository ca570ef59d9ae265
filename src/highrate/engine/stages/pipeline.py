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
from highrate.engine.stages.cuts import guard, is_tracing, select
from highrate.engine.stages.downstream import downstream
from highrate.engine.stages.objects import define_objects, recompute_objects, with_fields
from highrate.engine.stages.recording import NOMINAL, Dependencies, Recorder
from highrate.spec.analysis import Analysis
from highrate.spec.usercode import returned


def run_stages(
    analysis: Analysis,
    events: ak.Array,
    meta: Mapping[str, Any],
    recorder: Recorder,
    *,
    skim_filter: Callable[[np.ndarray], ak.Array] | None = None,
    deps: Dependencies | None = None,
    clock: StageClock = NO_CLOCK,
) -> None:
    """Run the analysis on one chunk of events, reporting counts and fills to ``recorder``.

    ``skim_filter(mask)`` builds the skimmed events directly from the read columns (packed);
    without it the events are filtered with awkward. The skim runs once; objects and everything
    after them run for the nominal and for each shape variation. With ``deps`` (found when
    tracing) a variation reuses the objects it does not change, and when the preselection reads
    nothing it changes, it runs on the preselected events only; without it every object is
    recomputed on the skimmed events. ``clock`` receives the seconds each stage kind took.
    """
    tracing = is_tracing(events)
    recorder.step("initial", None, None if tracing else len(events))
    with clock("skim"):
        skimmed = select(events, analysis.skim, "skim", meta, recorder, skim_filter)
    del events  # the caller hands them over: the full chunk's columns can go once they are skimmed
    with clock("objects"):
        nominal_objects = define_objects(analysis, skimmed, meta, recorder if tracing else None)
        skimmed_objects = with_fields(skimmed, nominal_objects)
    nominal = downstream(analysis, skimmed_objects, meta, recorder, NOMINAL, clock=clock)
    for variation in analysis.variations:
        if variation.mc_only and not meta.get("is_mc", False):
            continue
        fields = deps.variations.get(variation.name) if deps is not None else None
        preselected = fields is not None and not (nominal.presel_deps & deps.affected(analysis, fields))
        base = nominal.events if preselected else skimmed  # the preselected events carry the objects
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
            with clock("objects"):
                shifted = with_fields(base, replaced)
                changed = set(replaced)
                if preselected:
                    shifted, changed = recompute_objects(analysis, shifted, meta, changed, deps)
                else:  # when tracing, what the nominal pass found is enough to reuse the unchanged objects
                    known = deps.objects if deps is not None else recorder.object_deps if tracing else None
                    objects = define_objects(analysis, shifted, meta, None, reuse=nominal_objects, changed=changed,
                                             deps=known)
                    changed |= {name for name in objects if objects[name] is not nominal_objects[name]}
                    shifted = with_fields(shifted, objects)
            downstream(analysis, shifted, meta, recorder, f"{variation.name}{suffix}",
                       nominal=nominal, changed=changed, preselected=preselected, clock=clock)
            if tracing:  # down reads what up reads; traced through, the shifted objects' unused fields stay unread
                break
