"""Exact comparison of two run results, shared by the tests."""

from __future__ import annotations

import numpy as np

import highrate


def assert_same_result(a: highrate.Result, b: highrate.Result) -> None:
    """Bit-identical histograms (values and variances), cutflows, counts and category yields."""
    assert a.histograms.keys() == b.histograms.keys()
    for k, h in a.histograms.items():
        np.testing.assert_array_equal(h.values(), b.histograms[k].values(), err_msg=str(k))
        np.testing.assert_array_equal(h.variances(), b.histograms[k].variances(), err_msg=str(k))
    assert a.cutflow == b.cutflow
    assert a.counts == b.counts
    assert a.categories == b.categories
