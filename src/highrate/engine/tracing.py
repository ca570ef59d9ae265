"""Find the branches an analysis reads by running it once on awkward typetracers (no data)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak

from highrate.engine.collections import behavior
from highrate.engine.events import EventSchema
from highrate.engine.stages.pipeline import run_stages
from highrate.engine.stages.recording import Dependencies
from highrate.engine.stages.trace_recorder import TraceRecorder
from highrate.errors import (
    ConfigError,
    HighrateError,
    UnknownQuantityError,
    UserCodeError,
    did_you_mean,
)
from highrate.spec.analysis import Analysis


def needed_branches(analysis: Analysis, schema: EventSchema, meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The branches the analysis touches for a dataset with this metadata, counters included."""
    return trace(analysis, schema, meta)[0]


def trace(analysis: Analysis, schema: EventSchema, meta: Mapping[str, Any]) -> tuple[tuple[str, ...], Dependencies]:
    """(branches the analysis reads, what its skim and objects read and its shape variations replace).

    The nominal pass is traced in full; of each shape variation only its function (up), since
    the objects and stages after it are the nominal pass's on the same fields.
    """
    layout, report = ak.typetracer.typetracer_with_report(schema.form())
    events = ak.Array(layout, behavior=behavior)
    recorder = TraceRecorder(report)
    try:
        run_stages(analysis, events, meta, recorder)
    except UserCodeError as err:  # the stage and the user's line are named; say which dataset
        err.at(dataset=meta.get("dataset"), tracing=True)
        raise
    except HighrateError:
        raise
    except Exception as err:
        raise ConfigError(
            f"analysis {analysis.name!r} could not be traced on dataset {meta.get('dataset')!r}: "
            f"{type(err).__name__}: {err}. Stage functions must be columnar (no Python loops or "
            "branching on data); list branches the tracer cannot see in Analysis(columns=[...])."
        ) from err
    # shape-only uses (ak.ones_like(events.run), len of a collection) still need the branch
    touched = _with_counters(schema, set(report.data_touched) | set(report.shape_touched))
    for name in analysis.columns:
        if name not in schema.branches:
            raise UnknownQuantityError(
                f"analysis {analysis.name!r}: columns lists {name!r}, which is not a branch of the files."
                + did_you_mean(name, schema.branches)
            )
        touched.add(name)
    skim = None
    if analysis.skim and recorder.skim_touched is not None:
        # the columns listed for code the tracer cannot see may be read by the skim too
        early = _with_counters(schema, set(recorder.skim_touched) | set(analysis.columns))
        skim = frozenset(b for b in early if b in schema.branches)
    deps = Dependencies(objects=recorder.object_deps, variations=recorder.variation_fields, skim=skim)
    return tuple(sorted(b for b in touched if b in schema.branches)), deps


def _with_counters(schema: EventSchema, touched: set[str]) -> set[str]:
    """``touched`` and the counter of every collection it reads from."""
    for c in schema.collections:
        if c.counter in touched or any(b in touched for _, b in c.fields):
            touched.add(c.counter)
    return touched
