"""The hot stages on a chosen device, for awkward events in and host arrays out: what a stage's
GPU version calls (``device="gpu"``) and what its CPU twin may call too (``device="cpu"``).

Each moves only the flat buffers its kernel needs (:func:`~highrate.devices.transfer.flat`),
runs the array-API kernel there and brings back the answer: a mask, a mass per event, a
histogram's sums. Selections gather the kept objects on the host, where awkward's record
handling is complete; the GPU does the arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

from highrate.devices import kernels
from highrate.devices.transfer import flat, to_device, to_host


def object_mask(collection: ak.Array, device: str, *, pt_min: float, abs_eta_max: float,
                flags: Sequence[str] = (), below: Mapping[str, float] | None = None) -> ak.Array:
    """Per object: ``pt > pt_min``, ``|eta| < abs_eta_max``, every boolean field of ``flags``
    true and every field of ``below`` under its value; computed on ``device``, jagged on the host."""
    pt, offsets = flat(collection.pt, device)
    eta, _ = flat(collection.eta, device)
    also = [flat(collection[f], device)[0] for f in flags]
    also += [flat(collection[f], device)[0] < limit for f, limit in (below or {}).items()]
    mask = kernels.object_mask(pt, eta, pt_min=pt_min, abs_eta_max=abs_eta_max, also=tuple(also))
    return ak.unflatten(to_host(mask), np.diff(to_host(offsets)))


def select_objects(collection: ak.Array, device: str, **cuts: Any) -> ak.Array:
    """The objects that pass :func:`object_mask` (same keyword arguments)."""
    return collection[object_mask(collection, device, **cuts)]


def leading_pair_mass(collection: ak.Array, device: str) -> np.ndarray:
    """Invariant mass of each event's first two objects (NaN with fewer), computed on ``device``:
    :func:`highrate.kinematics.leading_pair_mass`'s formula."""
    parts = [flat(collection[f], device) for f in ("pt", "eta", "phi", "mass")]
    offsets = parts[0][1]
    return np.asarray(to_host(kernels.leading_pair_mass(*(p[0] for p in parts), offsets)))


def fill_regular(values: Any, weights: Any | None, bins: int, start: float, stop: float, device: str) -> np.ndarray:
    """A weighted fill of one regular axis on ``device``: ``(bins + 2, 2)`` sums of weights and
    of squared weights per flow bin, on the host."""
    x = to_device(np.asarray(values, dtype=np.float64), device)
    w = None if weights is None else to_device(np.asarray(weights, dtype=np.float64), device)
    return np.asarray(to_host(kernels.fill_regular(x, w, bins, start, stop)))
