"""The fast object selection equals awkward's jagged boolean slicing, and falls back when it must."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from highrate.engine.collections import COLLECTION, Collection, behavior, select_objects


def collection(seed: int, n: int = 2000) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2.5, n)
    total = counts.sum()
    offsets = np.concatenate([[0], np.cumsum(counts)])
    record = ak.contents.RecordArray(
        [ak.contents.NumpyArray(rng.exponential(30, total).astype(np.float32)),
         ak.contents.NumpyArray(rng.integers(-1, 2, total).astype(np.int32)),
         ak.contents.NumpyArray(rng.random(total) < 0.8)],
        ["pt", "charge", "tightId"],
    )
    layout = ak.contents.ListOffsetArray(ak.index.Index64(offsets), record, parameters={"__list__": COLLECTION})
    return ak.Array(layout, behavior=behavior)


def plain(array: ak.Array) -> ak.Array:
    return ak.Array(ak.with_parameter(array, "__list__", None, highlevel=False))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_selection_equals_awkward(seed):
    mu = collection(seed)
    assert isinstance(mu, Collection)
    mask = mu.tightId & (mu.pt > 20)
    fast = select_objects(mu, mask)
    assert fast is not None
    expected = plain(mu)[mask]
    assert ak.to_list(plain(fast)) == ak.to_list(expected)
    assert ak.to_list(mu[mask].pt) == ak.to_list(expected.pt)
    assert isinstance(fast, Collection)  # chained selections stay fast


def test_sliced_and_filtered_inputs():
    mu = collection(4)
    part = mu[100:700]  # offsets no longer start at 0
    mask = part.pt > 10
    assert ak.to_list(plain(part[mask])) == ak.to_list(plain(part)[mask])
    events_mask = ak.num(mu) > 1  # an event filter, not an object mask: awkward's path
    assert select_objects(mu, events_mask) is None
    assert ak.to_list(plain(mu[events_mask])) == ak.to_list(plain(mu)[events_mask])


def test_mismatched_mask_falls_back_to_awkward_and_its_error():
    mu = collection(5, n=10)
    other = collection(6, n=10)
    with pytest.raises(IndexError):  # awkward's own message: the lists do not line up
        mu[other.pt > 10]
