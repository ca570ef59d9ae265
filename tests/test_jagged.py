"""highrate.jagged's numpy helpers give what the equivalent awkward expressions give."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from highrate.jagged import nth_present, nth_value


def _arrays():
    rng = np.random.default_rng(11)
    counts = rng.poisson(1.3, 2000)
    pt = ak.unflatten(rng.exponential(20, counts.sum()).astype(np.float32), counts)
    charge = ak.unflatten(rng.choice(np.array([-1, 1], dtype=np.int32), counts.sum()), counts)
    tight = ak.unflatten(rng.random(counts.sum()) < 0.5, counts)
    keep = rng.random(len(counts)) < 0.6
    return [
        (pt, np.nan), (charge, 0), (tight, False),
        (pt[keep], -1.0),  # a lazily filtered list (IndexedArray)
        (ak.Array([[], [], []], with_name=None)[:, :0], np.nan),  # no values at all
    ]


@pytest.mark.parametrize("case", range(5))
@pytest.mark.parametrize("i", [0, 1, 3])
def test_nth_value_equals_awkward(case, i):
    array, fill = _arrays()[case]
    got = nth_value(array, i, fill=fill)
    expected = ak.to_numpy(ak.fill_none(ak.firsts(array[:, i:], axis=1), fill))
    assert isinstance(got, np.ndarray) and len(got) == len(array)
    assert got.dtype == [np.float64, np.int64, np.bool_, np.float64, np.float64][case]  # a float fill promotes
    np.testing.assert_array_equal(got, expected.astype(got.dtype))


@pytest.mark.parametrize("case", range(5))
def test_nth_present_equals_awkward(case):
    array, _ = _arrays()[case]
    values, events = nth_present(array, 1)
    has = ak.to_numpy(ak.num(array, axis=1) > 1)
    np.testing.assert_array_equal(events, np.flatnonzero(has))
    np.testing.assert_array_equal(values, ak.to_numpy(array[has][:, 1]))
