"""Binning once and summing per weight variation gives exactly what boost-histogram's fill gives."""

from __future__ import annotations

import numpy as np
import pytest

from highrate.engine.binning import (
    fill_cells,
    fill_variations,
    flat_bins,
    make_hist,
    upper_bound,
    with_squares,
)
from highrate.engine.result import Result, accumulate, finished
from highrate.spec.histograms import Axis, Histogram

EDGE_CASES = np.array([60.0, 120.0, 59.999999999, 119.99999999999, 90.0, -np.inf, np.inf, np.nan, 0.0, 1e300])


def _values(rng, n, lo, hi, dtype):
    x = rng.uniform(lo - 10, hi + 10, n).astype(dtype)
    with np.errstate(over="ignore"):  # 1e300 becomes inf in float32, on purpose
        x[: len(EDGE_CASES)] = EDGE_CASES.astype(dtype)
    return x


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("axes", [
    [Axis("x", 60, 60, 120)],
    [Axis("x", 7, 0.1, 0.8)],  # edges that are not exact in binary
    [Axis("x", edges=[60, 70, 80.5, 91.1876, 100, 120])],
    [Axis("x", 10, 60, 120), Axis("y", edges=[0, 1, 2.5, 7])],
])
def test_same_as_fill(axes, dtype):
    rng = np.random.default_rng(3)
    n = 20_000
    definition = Histogram("h", axes)
    template = make_hist(definition)
    values = [_values(rng, n, a.edges[0], a.edges[-1], dtype) for a in template.axes]
    flat = flat_bins(template, values)
    shape = tuple(a.size + 2 for a in template.axes)
    weights = [None, rng.normal(1, 0.3, n), rng.normal(1, 0.3, n).astype(np.float32), None, rng.exponential(1, n)]
    for w, binned in zip(weights, fill_variations(definition, shape, flat, [with_squares(w) for w in weights]), strict=True):
        expected = make_hist(definition).fill(*values, weight=w)
        got = binned.to_hist()
        np.testing.assert_array_equal(got.view(flow=True).value, expected.view(flow=True).value)
        np.testing.assert_array_equal(got.view(flow=True).variance, expected.view(flow=True).variance)
        assert got.axes == expected.axes
    (empty,) = fill_variations(definition, shape, flat[:0], [with_squares(np.ones(0))])
    assert empty.to_hist().sum(flow=True).value == 0


def test_cells_equal_separate_fills():
    """Filling several histograms in one pass gives each exactly its own fill."""
    rng = np.random.default_rng(8)
    n = 30_000
    definition = Histogram("h", [Axis("x", 10, 60, 120), Axis("y", edges=[0, 1, 2.5, 7])])
    template = make_hist(definition)
    values = [_values(rng, n, a.edges[0], a.edges[-1], np.float64) for a in template.axes]
    flat = flat_bins(template, values)
    shape = tuple(a.size + 2 for a in template.axes)
    cell = rng.integers(0, 4, n)
    weights = [with_squares(rng.normal(1, 0.3, n)), None, with_squares(rng.exponential(1, n))]
    together = fill_cells(definition, shape, flat, cell, 4, weights)
    for c in range(4):
        rows = cell == c
        alone = fill_variations(definition, shape, flat[rows], [None if p is None else (p[0][rows], p[1][rows])
                                                                for p in weights])
        for per_cell, single in zip(together, alone, strict=True):
            np.testing.assert_array_equal(per_cell[c].sums, single.sums)


def test_chunk_sums_merge_with_histograms():
    definition = Histogram("h", Axis("x", 4, 0, 4))
    template = make_hist(definition)
    shape = (6,)
    key = ("h", "ds", "baseline", "nominal")
    x = np.array([0.5, 1.5, 1.5, 3.5, 9.0])
    parts = [Result(histograms={key: b}) for b in fill_variations(definition, shape, flat_bins(template, [x]),
                                                                   [with_squares(np.full(5, 2.0)), None])]
    merged = finished(accumulate(parts))
    np.testing.assert_array_equal(merged.histograms[key].view(flow=True).value, [0, 3, 6, 0, 3, 3])
    np.testing.assert_array_equal(merged.histograms[key].view(flow=True).variance, [0, 5, 10, 0, 5, 5])
    again = finished(accumulate([merged, parts[0]]))  # a finished histogram plus a chunk's sums
    np.testing.assert_array_equal(again.histograms[key].view(flow=True).value, [0, 5, 10, 0, 5, 5])
    chunk = parts[0].histograms[key]
    np.testing.assert_array_equal(chunk.values(), chunk.to_hist().values())
    np.testing.assert_array_equal(chunk.variances(flow=True), chunk.to_hist().variances(flow=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("edges", [[0, 20, 30, 50.5, 80, 120], list(np.linspace(0, 100, 33)), [0.1, 0.2],
                                   list(np.linspace(-3, 3, 60))])
def test_upper_bound_is_searchsorted(dtype, edges):
    rng = np.random.default_rng(7)
    edges = np.asarray(edges, dtype=np.float64)
    x = rng.normal(50, 40, 5000)
    if dtype is not np.int32:
        x[::97], x[::89], x[::83] = np.nan, np.inf, -np.inf
    x = np.concatenate([x, edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)]).astype(dtype)
    np.testing.assert_array_equal(upper_bound(edges, x), np.searchsorted(edges, x, side="right"))
