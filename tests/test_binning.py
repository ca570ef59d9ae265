"""Binning once and summing per weight variation gives exactly what boost-histogram's fill gives."""

from __future__ import annotations

import hist
import numpy as np
import pytest

from highrate.binning import fill_weighted, flat_bins

EDGE_CASES = np.array([60.0, 120.0, 59.999999999, 119.99999999999, 90.0, -np.inf, np.inf, np.nan, 0.0, 1e300])


def _values(rng, n, lo, hi, dtype):
    x = rng.uniform(lo - 10, hi + 10, n).astype(dtype)
    with np.errstate(over="ignore"):  # 1e300 becomes inf in float32, on purpose
        x[: len(EDGE_CASES)] = EDGE_CASES.astype(dtype)
    return x


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("axes", [
    [hist.axis.Regular(60, 60, 120)],
    [hist.axis.Regular(7, 0.1, 0.8)],  # edges that are not exact in binary
    [hist.axis.Variable([60, 70, 80.5, 91.1876, 100, 120])],
    [hist.axis.Regular(10, 60, 120), hist.axis.Variable([0, 1, 2.5, 7])],
])
def test_same_as_fill(axes, dtype):
    rng = np.random.default_rng(3)
    n = 20_000
    values = [_values(rng, n, a.edges[0], a.edges[-1], dtype) for a in axes]
    template = hist.Hist(*axes, storage=hist.storage.Weight())
    flat = flat_bins(template, values)
    for weights in (None, rng.normal(1, 0.3, n), rng.normal(1, 0.3, n).astype(np.float32)):
        expected = template.copy().fill(*values, weight=weights)
        got = fill_weighted(template, flat, weights)
        np.testing.assert_array_equal(got.view(flow=True).value, expected.view(flow=True).value)
        np.testing.assert_array_equal(got.view(flow=True).variance, expected.view(flow=True).variance)
    assert template.sum(flow=True).value == 0  # the template stays empty
