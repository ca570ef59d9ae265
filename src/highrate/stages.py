"""The per-chunk pipeline: skim → objects → preselection → quantities → categories → weights → fill.

Stages are plain functions of the events; they know nothing of executors or file access. The
same code runs on real arrays and on awkward typetracers (to find the branches the analysis
uses), with a :class:`Recorder` deciding what "count" and "fill" mean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import awkward as ak
import hist
import numpy as np

from highrate.analysis import QUANTITY_PATTERN, Analysis, Cut, Histogram, _arity, call_with
from highrate.binning import Binned, fill_cells, flat_bins, with_squares
from highrate.collections import recording_fields
from highrate.errors import ChunkError, ConfigError, UnknownQuantityError
from highrate.fastarrays import is_packed
from highrate.quantities import Filled, evaluate, to_numpy
from highrate.result import Result
from highrate.weights import WeightSet, event_weights

NOMINAL = "nominal"


class Recorder(Protocol):
    def step(self, name: str, mask: Any, n_events: int | None) -> None: ...
    def category(self, name: str, mask: Any, weights: Any, *, dataset: str | None = None) -> None: ...
    def fill(self, histogram: Histogram, masks: Mapping[str, Any], axes: list[Filled],
             weights: Mapping[str, Any], *, dataset: str | None = None) -> None: ...
    def same(self, histogram: Histogram, category: str, source: str, variation: str, *,
             dataset: str | None = None) -> None: ...
    def columns(self, values: Mapping[str, Filled], masks: Mapping[str, Any], weights: Any, *,
                dataset: str | None = None) -> None: ...


@dataclass(frozen=True)
class Dependencies:
    """What tracing found out about the analysis: the event fields each object definition reads,
    the fields each shape variation replaces (variations use them to recompute only what they
    change), and the branches the skim reads (the others are decoded for skimmed events only)."""

    objects: Mapping[str, frozenset[str]] = field(default_factory=dict)
    variations: Mapping[str, frozenset[str]] = field(default_factory=dict)
    skim: frozenset[str] | None = None  # None: not known

    def affected(self, analysis: Analysis, fields: frozenset[str]) -> set[str]:
        """``fields`` and every object that reads them, directly or through another object."""
        changed = set(fields)
        for name in analysis.objects:
            if name not in self.objects or self.objects[name] & changed:
                changed.add(name)
        return changed


def run_stages(
    analysis: Analysis,
    events: ak.Array,
    meta: Mapping[str, Any],
    recorder: Recorder,
    *,
    skim_filter: Callable[[np.ndarray], ak.Array] | None = None,
    deps: Dependencies | None = None,
) -> None:
    """Run the analysis on one chunk of events, reporting counts and fills to ``recorder``.

    ``skim_filter(mask)`` builds the skimmed events directly from the read columns (packed);
    without it the events are filtered with awkward. The skim runs once; objects and everything
    after them run for the nominal and for each shape variation. With ``deps`` (found when
    tracing) a variation reuses the objects it does not change, and when the preselection reads
    nothing it changes, it runs on the preselected events only; without it every object is
    recomputed on the skimmed events.
    """
    tracing = _tracing(events)
    recorder.step("initial", None, None if tracing else len(events))
    skimmed = _select(events, analysis.skim, "skim", meta, recorder, skim_filter)
    del events  # the caller hands them over: the full chunk's columns can go once they are skimmed
    nominal_objects = _objects(analysis, skimmed, meta, recorder if tracing else None)
    nominal = _downstream(analysis, _with(skimmed, nominal_objects), meta, recorder, NOMINAL)
    for variation in analysis.variations:
        if variation.mc_only and not meta.get("is_mc", False):
            continue
        fields = deps.variations.get(variation.name) if deps is not None else None
        preselected = fields is not None and not (nominal.presel_deps & deps.affected(analysis, fields))
        base = nominal.events if preselected else skimmed  # the preselected events carry the objects
        shared: dict[str, Any] = {}  # what up and down have in common, computed once per chunk
        for direction, suffix in (("up", "Up"), ("down", "Down")):
            where = f"shape variation {variation.name!r} ({direction})"
            replaced = _guard(partial(variation, base, direction, meta, shared), where, base)
            if not isinstance(replaced, Mapping):
                raise ChunkError(f"{where} must return a mapping of event fields to replace, e.g. {{'Jet': jets}}.")
            if tracing:
                recorder.variation_fields[variation.name] = frozenset(replaced)
            shifted = _with(base, replaced)
            changed = set(replaced)
            if preselected:
                shifted, changed = _recompute_objects(analysis, shifted, meta, changed, deps)
            else:  # when tracing, what the nominal pass found is enough to reuse the unchanged objects
                known = deps.objects if deps is not None else recorder.object_deps if tracing else None
                objects = _objects(analysis, shifted, meta, None, reuse=nominal_objects, changed=changed, deps=known)
                changed |= {name for name in objects if objects[name] is not nominal_objects[name]}
                shifted = _with(shifted, objects)
            _downstream(analysis, shifted, meta, recorder, f"{variation.name}{suffix}",
                        nominal=nominal, changed=changed, preselected=preselected)
            if tracing:  # down reads what up reads; traced through, the shifted objects' unused fields stay unread
                break


def _recompute_objects(
    analysis: Analysis, events: ak.Array, meta: Mapping[str, Any], changed: set[str], deps: Dependencies
) -> tuple[ak.Array, set[str]]:
    """On events that carry every object already: redefine, in order, those reading a changed field."""
    changed = set(changed)
    for name, function in analysis.objects.items():
        if name in deps.objects and not (deps.objects[name] & changed):
            continue
        events = ak.with_field(events, _define(name, function, events, meta), name)
        changed.add(name)
    return events, changed


def _define(name: str, function: Any, events: ak.Array, meta: Mapping[str, Any]) -> Any:
    """One object of the analysis on ``events``, packed."""
    value = _guard(partial(call_with, function, _arity(function, name), events, {}, meta), f"object {name!r}", events)
    if isinstance(value, ak.Array) and not _tracing(value) and not is_packed(value.layout):
        value = ak.to_packed(value)  # one gather now; every later use of its fields is a view
    return value


def _with(events: ak.Array, fields: Mapping[str, Any]) -> ak.Array:
    for name, value in fields.items():
        events = ak.with_field(events, value, name)
    return events


def _objects(
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
                value = _define(name, function, events, meta)
            if tracer is not None:
                tracer.object_deps[name] = frozenset(seen)
            values[name] = value
            changed.add(name)
        events = ak.with_field(events, values[name], name)
    return values


@dataclass
class _Stage:
    """What one pass of ``_downstream`` computed, and the event fields each part read, so that a
    shape variation reuses whatever does not depend on the fields it changed."""

    events: Any = None  # the preselected events, objects included
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


def _downstream(
    analysis: Analysis, events: ak.Array, meta: Mapping[str, Any], recorder: Recorder, variation: str,
    *, nominal: _Stage | None = None, changed: set[str] | None = None, preselected: bool = False,
) -> _Stage:
    """Preselection, quantities, weights, categories and histograms for one shape variation.

    For a variation, ``nominal`` and ``changed`` (fields and objects it altered) allow reuse:
    when the preselection reads nothing changed, its mask is the nominal one, and then every
    quantity, weight, category cut and histogram input that reads nothing changed is reused.
    ``preselected``: the events are the nominal preselection's already.
    """
    is_nominal = nominal is None
    stage = _Stage()
    changed = set(changed or ())
    same_events = False
    if nominal is not None and (preselected or not (nominal.presel_deps & changed)):
        stage.presel_mask, same_events = nominal.presel_mask, True
        if not preselected and stage.presel_mask is not None:
            events = events[stage.presel_mask]
    else:
        with recording_fields() as seen:
            events, stage.presel_mask = _select(
                events, analysis.preselection, "presel", meta, recorder if is_nominal else None, return_mask=True
            )
        stage.presel_deps = frozenset(seen)
    stage.events = events

    def reusable(deps: frozenset[str]) -> bool:
        return nominal is not None and same_events and not (deps & changed)

    for name, fn in analysis.quantities.items():
        if reusable(nominal.computed_deps.get(name, frozenset()) if nominal else frozenset()):
            stage.computed[name] = nominal.computed[name]  # type: ignore[union-attr]
            continue
        with recording_fields() as seen:
            stage.computed[name] = _guard(partial(call_with, fn, _arity(fn, name), events, {}, meta),
                                          f"quantity {name!r}", events)
        stage.computed_deps[name] = frozenset(seen)
        changed.add(name)
    if nominal is not None and reusable(nominal.weight_deps):
        stage.weights = WeightSet(nominal=nominal.weights.nominal)  # type: ignore[union-attr]
    else:
        with recording_fields() as seen:
            stage.weights = event_weights(
                analysis.weights, events, meta, tracing=_tracing(events),
                call=lambda w: _guard(partial(w, events, meta), f"weight {w.name!r}", events),
            )
        stage.weight_deps = frozenset(seen)
    for h in analysis.histograms:
        bases = set().union(*(_base_fields(a.quantity) for a in h.axes))
        if nominal is not None and same_events and not (bases & changed):
            stage.filled[h.name] = nominal.filled[h.name]
        else:
            where = f"histogram {h.name!r}"
            stage.filled[h.name] = [_numpy(evaluate(events, a.quantity, stage.computed, where=where), where)
                                    for a in h.axes]

    def masks(cuts: tuple[Cut, ...], where: str) -> Any:
        for cut in cuts:
            if id(cut) in stage.cuts:
                continue
            if nominal is not None and id(cut) in nominal.cuts and reusable(nominal.cut_deps[id(cut)]):
                stage.cuts[id(cut)] = nominal.cuts[id(cut)]
                continue
            with recording_fields() as seen:
                _and_cuts(events, (cut,), meta, where, stage.cuts)
            stage.cut_deps[id(cut)] = frozenset(seen)
        return _and_cuts(events, cuts, meta, where, stage.cuts)

    weights = stage.weights
    filled = stage.filled
    parts = analysis.subsamples.get(meta.get("sample", ""), {})
    targets = [(f"{meta['dataset']}_{part}", masks(cuts, f"subsample {part!r}"))
               for part, cuts in parts.items()] or [(None, None)]
    stage.part_masks = dict(targets)
    cat_masks = stage.cat_masks
    for cat, cuts in analysis.categories.items():
        cat_masks[cat] = masks(cuts, f"category {cat!r}")
    # weight variations are taken on the nominal objects only
    fills = {variation: weights.nominal, **(weights.variations if is_nominal else {})}
    for dataset, part_mask in targets:
        cat_part = {cat: _and(cat_mask, part_mask) for cat, cat_mask in cat_masks.items()}
        if is_nominal:
            for cat, mask in cat_part.items():
                recorder.category(cat, mask, weights.nominal, dataset=dataset)
        same_weights = (nominal is not None and same_events and weights.nominal is nominal.weights.nominal
                        and part_mask is nominal.part_masks.get(dataset))
        unchanged = {cat for cat in cat_part if same_weights and cat_masks[cat] is nominal.cat_masks.get(cat)}
        for h in analysis.histograms:
            same_values = nominal is not None and filled[h.name] is nominal.filled[h.name]
            for cat in unchanged if same_values else ():
                recorder.same(h, cat, NOMINAL, variation, dataset=dataset)  # what the nominal filled
            todo = {cat: mask for cat, mask in cat_part.items() if not (same_values and cat in unchanged)}
            if todo:
                recorder.fill(h, todo, filled[h.name], fills, dataset=dataset)

    if is_nominal and analysis.save_columns is not None:
        spec = analysis.save_columns
        values = {name: evaluate(events, q, stage.computed, where=f"column {name!r}") for name, q in spec.fields.items()}
        chosen = {c: m for c, m in cat_masks.items() if spec.categories is None or c in spec.categories}
        for dataset, part_mask in targets:
            recorder.columns(values, {c: _and(m, part_mask) for c, m in chosen.items()}, weights.nominal,
                             dataset=dataset)
    return stage


def _numpy(filled: Filled, where: str) -> Filled:
    """Values as numpy once per pass, not once per category and variation."""
    if isinstance(filled.values, ak.Array) and _tracing(filled.values):
        return filled
    return Filled(to_numpy(filled.values, where=where), filled.index, filled.nth)


def _base_fields(quantity: str) -> set[str]:
    """The event fields or quantities a histogram axis may read (``nJetGood`` reads ``JetGood``)."""
    m = QUANTITY_PATTERN.match(quantity)
    assert m is not None
    base = m["base"]
    return {base, base[1:]} if base.startswith("n") else {base}


def _and(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a & b


def _tracing(array: Any) -> bool:
    return ak.backend(array) == "typetracer"


def _guard(thunk: Any, where: str, events: ak.Array) -> Any:
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


def _mask(value: Any, where: str, n: int | None) -> Any:
    if isinstance(value, ak.Array):
        if value.ndim != 1:
            raise ChunkError(f"{where} returned a per-object mask ({value.type}); reduce it with ak.any/ak.all.")
        if _tracing(value):
            return value
        value = ak.to_numpy(value)
    value = np.asarray(value)
    if value.dtype != np.bool_:
        raise ChunkError(f"{where} returned {value.dtype} values; a cut must return booleans.")
    if n is not None and value.shape != (n,):
        raise ChunkError(f"{where} returned {value.shape[0] if value.ndim else 'a scalar'} values for {n} events.")
    return value


def _and_cuts(
    events: ak.Array, cuts: tuple[Cut, ...], meta: Mapping[str, Any], where: str, cache: dict[int, Any] | None = None
) -> Any:
    mask = None
    n = None if _tracing(events) else len(events)
    cache = {} if cache is None else cache
    for cut in cuts:
        if id(cut) not in cache:
            label = f"{where} cut {cut.name!r}"
            cache[id(cut)] = _mask(_guard(partial(cut, events, meta), label, events), label, n)
        mask = cache[id(cut)] if mask is None else mask & cache[id(cut)]
    return mask


def _select(
    events: ak.Array, cuts: tuple[Cut, ...], stage: str, meta: Mapping[str, Any], recorder: Recorder | None,
    apply: Callable[[Any], ak.Array] | None = None, *, return_mask: bool = False,
) -> Any:
    """Apply the cuts (AND); the recorder, if any, counts events after each one.

    With ``return_mask``: (selected events, the mask or None for no cut)."""
    record = recorder.step if recorder is not None else lambda *a: None
    mask = None
    n = None if _tracing(events) else len(events)
    for cut in cuts:
        where = f"{stage} cut {cut.name!r}"
        m = _mask(_guard(lambda c=cut: c(events, meta), where, events), where, n)
        mask = m if mask is None else mask & m
        record(f"{stage}/{cut.name}", mask, None)
    if mask is None:
        record(stage, None, n)
        return (events, None) if return_mask else events
    record(stage, mask, None)
    selected = _filter(events, mask) if apply is None else apply(mask)
    return (selected, mask) if return_mask else selected


def _filter(events: ak.Array, mask: np.ndarray) -> ak.Array:
    """``events[mask]`` as a record of lazily filtered fields: each keeps an index into its
    values and is packed when first read (:class:`highrate.collections.Events`), and adding a
    field to it stays cheap."""
    layout = events.layout
    if _tracing(events) or not isinstance(layout, ak.contents.RecordArray) or layout.is_tuple:
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


class ChunkRecorder:
    """Counts and fills for real arrays, into a :class:`Result` for one dataset."""

    def __init__(self, analysis: Analysis, dataset: str) -> None:
        self.analysis = analysis
        self.dataset = dataset
        self.result = Result()
        self.cutflow: dict[str, int] = {}
        self.result.cutflow[dataset] = self.cutflow
        self.result.categories[dataset] = {}
        self.tables: list[tuple[str, dict[str, Any]]] = []  # saved columns, written by the worker
        self._templates: dict[str, hist.Hist] = {}  # an empty histogram per definition: its axes bin
        self._shapes: dict[str, tuple[int, ...]] = {}  # each histogram's bins, flow included
        self._binned: dict[str, tuple[list[Filled], np.ndarray]] = {}  # the latest pass's bins
        self._selections: list[tuple[Any, ...]] = []  # the latest few (mask, index, weights) selections
        self._latest_cells: list[tuple[list[Any], tuple[Any, list[str], Any]]] = []  # see _cells

    def step(self, name: str, mask: Any, n_events: int | None) -> None:
        self.cutflow[name] = int(n_events if mask is None else np.count_nonzero(mask))

    def columns(self, values: Mapping[str, Filled], masks: Mapping[str, Any], weights: Any, *,
                dataset: str | None = None) -> None:
        n = self.cutflow["presel"]
        self.tables.append((dataset or self.dataset, _columns_table(values, masks, weights, n)))

    def category(self, name: str, mask: Any, weights: Any, *, dataset: str | None = None) -> None:
        table = self.result.categories.setdefault(dataset or self.dataset, {})
        if weights is None:
            n = int(self._n_events() if mask is None else np.count_nonzero(mask))
            table[name] = [n, float(n), float(n)]
            return
        w = weights if mask is None else np.compress(mask, weights)
        table[name] = [len(w), float(w.sum()), float(np.square(w).sum())]

    def _n_events(self) -> int:
        return self.cutflow["presel"]

    def _bins(self, histogram: Histogram, axes: list[Filled], values: list[Any]) -> np.ndarray:
        """The bin of every value, found once per pass: each category then picks its rows.

        Only the latest pass's bins are kept per histogram (a pass hands the same ``Filled``
        objects to every category)."""
        cached = self._binned.get(histogram.name)
        if cached is not None and len(cached[0]) == len(axes) and all(
            a is b for a, b in zip(cached[0], axes, strict=True)
        ):
            return cached[1]
        template = self._templates.get(histogram.name)
        if template is None:
            template = self._templates[histogram.name] = binning_template(histogram)
            self._shapes[histogram.name] = tuple(a.size + 2 for a in template.axes)
        flat = flat_bins(template, [to_numpy(v, where=f"histogram {histogram.name!r}") for v in values])
        self._binned[histogram.name] = (list(axes), flat)
        return flat

    def fill(self, histogram: Histogram, masks: Mapping[str, Any], axes: list[Filled],
             weights: Mapping[str, Any], *, dataset: str | None = None) -> None:
        """Fill the histogram in each category of ``masks`` (``None``: every event), once per
        variation in ``weights``. Categories no event shares are filled together, with one pass
        per weight over all of them."""
        index = axes[0].index
        values = [a.values for a in axes]
        if any(a.index is not None and (index is None or len(a.values) != len(axes[0].values)) for a in axes[1:]):
            raise UnknownQuantityError(
                f"histogram {histogram.name!r}: its axes mix per-event and per-object quantities of different lengths."
            )
        ds = dataset or self.dataset
        flat = self._bins(histogram, axes, values)
        shape = self._shapes[histogram.name]
        cells, names, covered = self._cells(masks)
        done = set(names)
        if names:
            keep, selected = self._selection(covered, index, weights)
            cell = cells if index is None else cells.take(index)
            kept = flat if keep is None else flat.take(keep)
            filled = fill_cells(histogram, shape, kept, cell if keep is None else cell.take(keep), len(names) + 1, selected)
            # the cells hold every event: a category of all events is their sum (equal to its
            # own fill up to float64 rounding, at no cost)
            whole = [c for c, m in masks.items() if m is None] if covered is None else []
            done.update(whole)
            for variation, per_cell in zip(weights, filled, strict=True):
                for category, binned in zip(names, per_cell[1:], strict=True):
                    self.result.histograms[(histogram.name, ds, category, variation)] = binned
                for category in whole:
                    total = Binned(histogram, sum(b.sums for b in per_cell[1:]))
                    self.result.histograms[(histogram.name, ds, category, variation)] = total
        for category, mask in masks.items():
            if category in done:
                continue
            keep, selected = self._selection(mask, index, weights)
            kept = flat if keep is None else flat.take(keep)
            for variation, (binned,) in zip(weights, fill_cells(histogram, shape, kept, None, 1, selected),
                                            strict=True):
                self.result.histograms[(histogram.name, ds, category, variation)] = binned

    def _cells(self, masks: Mapping[str, Any]) -> tuple[Any, list[str], Any]:
        """Categories of ``masks`` that share no event, as (the cell of each event: 0 for none
        of them, 1 + k for the k-th of ``names``; names; the events in any of them, ``None`` for
        all). Found greedily in order; with fewer than two, no names. Kept for the latest two
        sets of masks: the histograms of a pass share them."""
        values = list(masks.values())
        for known, answer in self._latest_cells:
            if len(known) == len(values) and all(a is b for a, b in zip(known, values, strict=True)):
                return answer
        names: list[str] = []
        taken = None
        for category, mask in masks.items():
            if not isinstance(mask, np.ndarray):
                continue
            if taken is None:
                names, taken = [category], mask.copy()
            elif not np.any(taken & mask):
                names.append(category)
                taken |= mask
        answer: tuple[Any, list[str], Any] = (None, [], None)
        if len(names) >= 2:
            cells = np.zeros(len(taken), dtype=np.intp)
            for k, category in enumerate(names):
                cells += masks[category] * (k + 1)  # (np.add's where= is ~30x slower)
            answer = (cells, names, None if taken.all() else taken)
        self._latest_cells = [(values, answer), *self._latest_cells[:1]]
        return answer

    def same(self, histogram: Histogram, category: str, source: str, variation: str, *,
             dataset: str | None = None) -> None:
        """The histogram of ``variation`` is the one of ``source`` (same events, values, weights)."""
        ds = dataset or self.dataset
        self.result.histograms[(histogram.name, ds, category, variation)] = \
            self.result.histograms[(histogram.name, ds, category, source)].copy()

    def _selection(self, mask: Any, index: Any, weights: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        """(values kept, each variation's (w, w**2) for them): the same for every histogram of a
        category whose values are per event (or per the same objects), so kept for a few calls."""
        for entry in self._selections:
            if entry[0] is mask and entry[1] is index and entry[2] is weights:
                return entry[3], entry[4]
        keep = None if mask is None else np.flatnonzero(mask if index is None else mask[index])
        rows = keep if index is None else (index if keep is None else index.take(keep))  # event of each value
        selected = [with_squares(w if w is None or rows is None else w.take(rows)) for w in weights.values()]
        self._selections = [(mask, index, weights, keep, selected), *self._selections[:3]]
        return keep, selected


def _columns_table(values: Mapping[str, Filled], masks: Mapping[str, Any], weights: Any, n: int) -> dict[str, Any]:
    """Rows = events in any of the categories; per-event values, NaN for a missing n-th object."""
    keep = np.zeros(n, dtype=bool)
    for m in masks.values():
        keep |= np.ones(n, dtype=bool) if m is None else m
    rows = np.flatnonzero(keep)
    table: dict[str, Any] = {}
    for name, filled in values.items():
        if filled.index is None:
            table[name] = to_numpy(filled.values, where=f"column {name!r}")[rows]
        elif filled.nth:
            full = np.full(n, np.nan)
            full[filled.index] = to_numpy(filled.values, where=f"column {name!r}")
            table[name] = full[rows]
        else:  # every object of a collection: a list per event
            flat = to_numpy(filled.values, where=f"column {name!r}")
            counts = np.bincount(filled.index, minlength=n)
            table[name] = ak.unflatten(flat, counts)[rows]
    table["weight"] = np.ones(len(rows)) if weights is None else weights[rows]
    for cat, m in masks.items():
        table[f"category_{cat}"] = np.ones(len(rows), dtype=bool) if m is None else m[rows]
    return table


class TraceRecorder:
    """Touches what real counting and filling would read; used with typetracer events.

    Also collects ``object_deps`` (the event fields each object definition reads),
    ``variation_fields`` (the fields each shape variation replaces) and, given the typetracer
    ``report``, ``skim_touched`` (the buffers touched once the skim's mask is known).
    """

    def __init__(self, report: Any = None) -> None:
        self.object_deps: dict[str, frozenset[str]] = {}
        self.variation_fields: dict[str, frozenset[str]] = {}
        self.report = report
        self.skim_touched: frozenset[str] | None = None

    def columns(self, values: Mapping[str, Filled], masks: Mapping[str, Any], weights: Any, *,
                dataset: str | None = None) -> None:
        for x in (*(v.values for v in values.values()), *(v.index for v in values.values()), *masks.values(), weights):
            if isinstance(x, ak.Array):
                ak.typetracer.touch_data(x)

    def step(self, name: str, mask: Any, n_events: int | None) -> None:
        if mask is not None:
            ak.typetracer.touch_data(mask)
        if name == "skim" and self.report is not None:  # the skim's own record, after its cuts
            self.skim_touched = frozenset(self.report.data_touched) | frozenset(self.report.shape_touched)

    def category(self, name: str, mask: Any, weights: Any, *, dataset: str | None = None) -> None:
        for x in (mask, weights):
            if x is not None:
                ak.typetracer.touch_data(x)

    def same(self, histogram: Histogram, category: str, source: str, variation: str, *,
             dataset: str | None = None) -> None:
        pass

    def fill(self, histogram: Histogram, masks: Mapping[str, Any], axes: list[Filled],
             weights: Mapping[str, Any], *, dataset: str | None = None) -> None:
        for x in weights.values():
            if isinstance(x, ak.Array):
                ak.typetracer.touch_data(x)
        for a in axes:
            for x in (a.values, a.index):
                if isinstance(x, ak.Array):
                    ak.typetracer.touch_data(x)


_binning_templates: dict[int, tuple[Histogram, hist.Hist]] = {}


def binning_template(histogram: Histogram) -> hist.Hist:
    """An empty histogram of this definition, made once per process: its axes bin every chunk's
    values (~0.1 ms to make, per histogram and chunk otherwise). Never filled."""
    found = _binning_templates.get(id(histogram))
    if found is None or found[0] is not histogram:
        if len(_binning_templates) > 4096:  # definitions of many analyses in one process
            _binning_templates.clear()
        found = _binning_templates[id(histogram)] = (histogram, make_hist(histogram))
    return found[1]


def make_hist(histogram: Histogram) -> hist.Hist:
    """An empty ``hist.Hist`` with weighted storage for this histogram definition."""
    axes = []
    for a in histogram.axes:
        label = a.label or a.quantity
        if a.edges is not None:
            axes.append(hist.axis.Variable(a.edges, name=a.quantity, label=label))
        else:
            axes.append(hist.axis.Regular(a.bins, a.start, a.stop, name=a.quantity, label=label))
    return hist.Hist(*axes, storage=hist.storage.Weight(), name=histogram.name)
