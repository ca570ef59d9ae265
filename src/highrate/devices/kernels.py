"""Kernels of the hot stages, written once against the array API so the same code runs on numpy
(the CPU) and CuPy (the GPU): object selection masks, per-event counts, invariant masses and
angular distances, and weighted histogram filling with variances.

Every kernel takes arrays of one namespace (found with ``array_api_compat.array_namespace``)
and uses only what the array API standard (2023.12) offers; the tests run them under
``array-api-strict`` to hold that. Jagged collections enter as flat contents plus ``offsets``
(``n_events + 1`` int64 entries), as :func:`highrate.devices.transfer.flat` makes them.

The formulas are those of :mod:`highrate.kinematics` and :mod:`highrate.engine.binning`, in the
same float64 order, so the CPU twin and the GPU agree to rounding (1e-12 relative in practice).
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace


def object_mask(pt: Any, eta: Any, *, pt_min: float, abs_eta_max: float, also: tuple[Any, ...] = ()) -> Any:
    """``pt > pt_min & |eta| < abs_eta_max``, and every boolean array of ``also`` (an ID, an
    isolation cut): the mask of a typical object selection, per object."""
    xp = array_namespace(pt, eta, *also)
    mask = (pt > pt_min) & (xp.abs(eta) < abs_eta_max)
    for extra in also:
        mask = mask & extra
    return mask


def counts(offsets: Any) -> Any:
    """Objects per event from ``offsets``."""
    return offsets[1:] - offsets[:-1]


def masked_offsets(mask: Any, offsets: Any) -> Any:
    """The offsets of the objects ``mask`` keeps: a running count of kept objects, read at each
    event's start (so ``counts(masked_offsets(...))`` is the number kept per event)."""
    xp = array_namespace(mask, offsets)
    running = xp.cumulative_sum(xp.astype(mask, xp.int64), include_initial=True)
    return xp.take(running, offsets)


def compress(values: Any, mask: Any) -> Any:
    """The entries of a flat array that ``mask`` keeps (boolean indexing is in the standard, but
    its output size depends on the data, which some namespaces do not allow; ``take`` of the
    kept positions is the portable form)."""
    xp = array_namespace(values, mask)
    kept = xp.nonzero(mask)[0]
    return xp.take(values, kept)


def pair_mass(a: tuple[Any, Any, Any, Any], b: tuple[Any, Any, Any, Any]) -> Any:
    """Invariant mass of two (pt, eta, phi, mass) tuples: :mod:`highrate.kinematics`' formula."""
    xp = array_namespace(*a, *b)
    pt1, eta1, phi1, m1 = (xp.astype(x, xp.float64) for x in a)
    pt2, eta2, phi2, m2 = (xp.astype(x, xp.float64) for x in b)
    s1, s2 = xp.sinh(eta1), xp.sinh(eta2)
    e1 = xp.sqrt(pt1**2 * (1 + s1**2) + m1**2)
    e2 = xp.sqrt(pt2**2 * (1 + s2**2) + m2**2)
    dot = pt1 * pt2 * (xp.cos(phi1 - phi2) + s1 * s2)
    return xp.sqrt(xp.clip(m1**2 + m2**2 + 2 * (e1 * e2 - dot), min=0.0))


def leading_pair_mass(pt: Any, eta: Any, phi: Any, mass: Any, offsets: Any) -> Any:
    """Invariant mass of the first two objects of each event; NaN where there are fewer than two.
    Objects are in the order given (NanoAOD's: by decreasing pt)."""
    xp = array_namespace(pt, eta, phi, mass, offsets)
    n = counts(offsets)
    has = n >= 2
    size = pt.shape[0]
    # an event without two objects reads index 0 (any valid index): its answer is replaced by NaN
    first = xp.where(has, offsets[:-1], xp.zeros_like(offsets[:-1]))
    second = xp.where(has, first + 1, xp.zeros_like(first))
    if size == 0:
        return xp.full(n.shape, math.nan, dtype=xp.float64)
    fields = (pt, eta, phi, mass)
    m = pair_mass(tuple(xp.take(f, first) for f in fields), tuple(xp.take(f, second) for f in fields))
    return xp.where(has, m, xp.full_like(m, math.nan))


def delta_phi(phi1: Any, phi2: Any) -> Any:
    """``phi1 - phi2`` in [-pi, pi]: ``d - 2*pi*round(d / (2*pi))``, as :mod:`highrate.kinematics`."""
    xp = array_namespace(phi1, phi2)
    d = xp.astype(phi1, xp.float64) - xp.astype(phi2, xp.float64)
    return d - 2 * math.pi * xp.round(d / (2 * math.pi))


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """``sqrt(deta**2 + dphi**2)`` in float64."""
    xp = array_namespace(eta1, phi1, eta2, phi2)
    deta = xp.astype(eta1, xp.float64) - xp.astype(eta2, xp.float64)
    dphi = delta_phi(phi1, phi2)
    return xp.sqrt(deta * deta + dphi * dphi)


def regular_bins(x: Any, bins: int, start: float, stop: float) -> Any:
    """Each value's bin in a regular axis' flow view: 0 underflow, ``bins + 1`` overflow and NaN,
    with :func:`highrate.engine.binning.axis_bins`' operations (boost-histogram's rule)."""
    xp = array_namespace(x)
    z = xp.floor((xp.astype(x, xp.float64) - start) / (stop - start) * bins)
    z = xp.where(xp.isnan(z), float(bins), xp.clip(z, min=-1.0, max=float(bins)))
    return xp.astype(z, xp.int64) + 1


def variable_bins(x: Any, edges: Any) -> Any:
    """Each value's bin in a variable axis' flow view (``edges`` on the same device): a value on
    an edge goes to the bin above it, NaN to overflow."""
    xp = array_namespace(x, edges)
    x = xp.astype(x, xp.float64)
    index = xp.searchsorted(edges, x, side="right")
    return xp.where(xp.isnan(x), xp.full_like(index, edges.shape[0]), index)


def bin_sums(index: Any, weights: Any | None, size: int) -> tuple[Any, Any]:
    """(sum of weights, sum of squared weights) per bin ``0 .. size-1`` of ``index``.

    The array API has no ``bincount`` (nor a scatter-add): where the namespace offers one (numpy,
    CuPy) it is used, summing in the order of the values as boost-histogram does; elsewhere the
    sums come from a stable sort by bin, a running sum of the sorted weights, and its differences
    at the bins' boundaries (``searchsorted``). That difference carries a rounding error of about
    1e-16 of the chunk's total weight, far below the 1e-6 the CPU and GPU twins must agree to.
    """
    xp = array_namespace(index) if weights is None else array_namespace(index, weights)
    w = xp.ones(index.shape, dtype=xp.float64) if weights is None else xp.astype(weights, xp.float64)
    native = getattr(xp, "bincount", None)
    if native is not None:
        return native(index, weights=w, minlength=size), native(index, weights=w * w, minlength=size)
    order = xp.argsort(index, stable=True)
    sorted_index = xp.take(index, order)
    bounds = xp.searchsorted(sorted_index, xp.arange(size + 1, dtype=sorted_index.dtype), side="left")
    out = []
    for values in (w, w * w):
        running = xp.cumulative_sum(xp.take(values, order), include_initial=True)
        out.append(xp.take(running, bounds[1:]) - xp.take(running, bounds[:-1]))
    return out[0], out[1]


def fill(values: tuple[Any, ...], weights: Any | None, axes: tuple[tuple[float, ...] | Any, ...]) -> Any:
    """A weighted fill of any number of axes: per axis, ``(bins, start, stop)`` for a regular axis
    or its edges (an array on the values' device) for a variable one. Returns the sums of weights
    and of squared weights per flow bin, shape ``(bins_1 + 2, ..., bins_n + 2, 2)`` (the layout of
    ``Binned.sums``); ``values`` are the axes' values of the same entries."""
    xp = array_namespace(*values) if weights is None else array_namespace(*values, weights)
    index, shape = None, []
    for x, axis in zip(values, axes, strict=True):
        if isinstance(axis, tuple):
            bins, start, stop = axis
            found, size = regular_bins(x, int(bins), float(start), float(stop)), int(bins) + 2
        else:
            found, size = variable_bins(x, axis), axis.shape[0] + 1
        index = found if index is None else index * size + found
        shape.append(size)
    total = math.prod(shape)
    if index is None:
        raise ValueError("a fill needs at least one axis")
    sumw, sumw2 = bin_sums(index, weights, total)
    return xp.reshape(xp.stack([sumw, sumw2], axis=-1), (*shape, 2))


def fill_regular(x: Any, weights: Any | None, bins: int, start: float, stop: float) -> Any:
    """A weighted fill of one regular axis: an array of shape ``(bins + 2, 2)`` holding, per flow
    bin, the sum of weights and of squared weights (the layout of ``Binned.sums``)."""
    xp = array_namespace(x) if weights is None else array_namespace(x, weights)
    sumw, sumw2 = bin_sums(regular_bins(x, bins, start, stop), weights, bins + 2)
    return xp.stack([sumw, sumw2], axis=-1)
