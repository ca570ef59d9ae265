"""Counts and fills of real arrays into a chunk's :class:`~highrate.engine.result.Result`:
bins found once per pass, disjoint categories filled together, saved columns as tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import hist
import numpy as np

from highrate.engine.binning import Binned, binning_template, fill_cells, flat_bins, with_squares
from highrate.engine.quantities import Filled, to_numpy
from highrate.engine.result import Result
from highrate.errors import HighrateError, UnknownQuantityError
from highrate.spec.analysis import Analysis
from highrate.spec.histograms import Histogram
from highrate.spec.usercode import raised, returned


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
        self.tables.append((dataset or self.dataset, columns_table(values, masks, weights, n)))

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
        if histogram.fill is not None:
            self._fill_by_stage(histogram, masks, axes, weights, ds)
            return
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

    def _fill_by_stage(self, histogram: Histogram, masks: Mapping[str, Any], axes: list[Filled],
                       weights: Mapping[str, Any], ds: str) -> None:
        """Fill with the histogram's own fill (a registered stage, maybe on a GPU): one call per
        category and variation, with that category's values and weights."""
        plain = histogram.without_fill()
        where = f"histogram {histogram.name!r}, fill {fill_name(histogram.fill)},"
        shape = tuple((a.bins + 2) if a.edges is None else len(a.edges) + 1 for a in histogram.axes)
        values = [to_numpy(a.values, where=f"histogram {histogram.name!r}") for a in axes]
        for category, mask in masks.items():
            keep, selected = self._selection(mask, axes[0].index, weights)
            kept = tuple(v if keep is None else v.take(keep) for v in values)
            for variation, pair in zip(weights, selected, strict=True):
                try:
                    sums = histogram.fill(kept, None if pair is None else pair[0], plain)
                except (HighrateError, MemoryError):
                    raise
                except Exception as err:
                    raise raised(where, err) from err
                sums = np.asarray(sums, dtype=np.float64)
                if sums.shape != (*shape, 2):
                    raise returned(where, histogram.fill, f"returned an array of shape {sums.shape}",
                                   f"A fill returns the sums of weights and of squared weights per flow bin: "
                                   f"shape {(*shape, 2)} for this histogram.")
                self.result.histograms[(histogram.name, ds, category, variation)] = Binned(plain, sums)

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



def fill_name(fill: Any) -> str:
    """A fill stage by name (``'highrate::fill'``, also once bound to a device), a function by its own."""
    found = getattr(fill, "name", None) or getattr(fill, "stage_name", None) or getattr(fill, "__qualname__", None)
    return repr(found or type(fill).__name__)


def columns_table(values: Mapping[str, Filled], masks: Mapping[str, Any], weights: Any, n: int) -> dict[str, Any]:
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
