"""Kinematics helpers for analysis code, with one documented formula so results are reproducible.

Invariant mass of two objects given (pt, eta, phi, mass) in float32, as highrate computes it:
inputs are promoted to float64; ``s = sinh(eta)`` and ``E = sqrt(pt**2 * (1 + s**2) + mass**2)``
for each; ``dot = pt1 * pt2 * (cos(phi1 - phi2) + s1 * s2)`` (the product of the momenta); then
``m**2 = mass1**2 + mass2**2 + 2 * (E1 * E2 - dot)`` and ``m = sqrt(max(m**2, 0))``, all in
float64 numpy operations in that order. Three transcendental calls per pair instead of six for
the four-vector sum; float64 keeps the result stable to ~1e-12 GeV, so cuts and bin edges agree
with any independent float64 computation of the same formula.
"""

from __future__ import annotations

import weakref
from typing import Any

import awkward as ak
import numpy as np

from highrate.arrays.fast import is_packed, list_index, list_items
from highrate.jagged import flat_parts, is_typetracer, unflatten


def nth(collection: ak.Array, i: int) -> ak.Array:
    """The ``i``-th object of each event (``None`` where there are not that many).

    General but slower than :func:`highrate.jagged.nth_value` for single fields.
    """
    return ak.firsts(collection[:, i:], axis=1)


def pair_mass(a: tuple[Any, Any, Any, Any], b: tuple[Any, Any, Any, Any]) -> Any:
    """Invariant mass from two (pt, eta, phi, mass) tuples, with the documented formula."""
    pt1, eta1, phi1, m1 = (_f64(x) for x in a)
    pt2, eta2, phi2, m2 = (_f64(x) for x in b)
    s1, s2 = np.sinh(eta1), np.sinh(eta2)
    e1 = np.sqrt(pt1**2 * (1 + s1**2) + m1**2)
    e2 = np.sqrt(pt2**2 * (1 + s2**2) + m2**2)
    dot = pt1 * pt2 * (np.cos(phi1 - phi2) + s1 * s2)
    return np.sqrt(np.maximum(m1**2 + m2**2 + 2 * (e1 * e2 - dot), 0.0))


def invariant_mass(a: Any, b: Any) -> Any:
    """Invariant mass of two objects (records with pt, eta, phi, mass), per event."""
    return pair_mass((a.pt, a.eta, a.phi, a.mass), (b.pt, b.eta, b.phi, b.mass))


def leading_pair_mass(collection: ak.Array) -> Any:
    """Invariant mass of the two leading objects; NaN where there are fewer than two."""
    if is_typetracer(collection):
        return ak.fill_none(invariant_mass(nth(collection, 0), nth(collection, 1)), np.nan)
    parts = {f: flat_parts(collection[f]) for f in ("pt", "eta", "phi", "mass")}
    _, starts, counts = parts["pt"]
    has = np.flatnonzero(counts >= 2)
    first = starts.take(has)
    out = np.full(len(counts), np.nan)
    out[has] = pair_mass(
        tuple(parts[f][0].take(first) for f in ("pt", "eta", "phi", "mass")),  # type: ignore[arg-type]
        tuple(parts[f][0].take(first + 1) for f in ("pt", "eta", "phi", "mass")),  # type: ignore[arg-type]
    )
    return out


def _f64(x: Any) -> Any:
    if isinstance(x, ak.Array):
        return ak.values_astype(x, np.float64)
    return np.asarray(x, dtype=np.float64)


def scale_pt(objects: ak.Array, factor: Any, met: Any) -> tuple[ak.Array, ak.Array]:
    """Objects with ``pt`` multiplied by a per-object ``factor``, and MET corrected for the change.

    ``factor`` is jagged like ``objects.pt``; ``met`` a record with ``pt`` and ``phi``. The new
    pt is float32 as in NanoAOD; MET gets ``-Σ Δpx``, ``-Σ Δpy``. The usual propagation of a jet
    energy scale or resolution shift.
    """
    if is_typetracer(objects.pt):
        new_pt = ak.values_astype(objects.pt * factor, np.float32)
        dpt = new_pt - objects.pt
        dpx, dpy = ak.sum(dpt * np.cos(objects.phi), axis=1), ak.sum(dpt * np.sin(objects.phi), axis=1)
        mex = met.pt * np.cos(met.phi) - dpx
        mey = met.pt * np.sin(met.phi) - dpy
        new_met = ak.zip({"pt": ak.values_astype(np.hypot(mex, mey), np.float32),
                          "phi": ak.values_astype(np.arctan2(mey, mex), np.float32)})
        return ak.with_field(objects, new_pt, "pt"), new_met
    pt, starts, counts = flat_parts(objects.pt)
    scale = flat_parts(factor)[0] if isinstance(factor, ak.Array) else np.asarray(factor)
    index = list_items(starts, counts)
    old = pt[index]
    new = (old * scale).astype(np.float32)
    dpt = (new - old).astype(np.float64)
    phi_content = flat_parts(objects.phi)[0]
    offsets = getattr(getattr(objects.layout, "offsets", None), "data", None)
    event, cos_phi, sin_phi = _same_inputs.get((offsets, phi_content), lambda: _jet_geometry(counts, phi_content[index]))
    dpx = np.bincount(event, dpt * cos_phi, minlength=len(counts))
    dpy = np.bincount(event, dpt * sin_phi, minlength=len(counts))
    if not is_packed(objects.layout):
        objects = ak.Array(ak.to_packed(objects), behavior=objects.behavior)
    new_pt = unflatten(new, counts)
    met_pt, met_phi = ak.to_numpy(met.pt), ak.to_numpy(met.phi)  # numpy directly: no awkward dispatch
    mex, mey = _same_inputs.get((met_pt, met_phi), lambda: (met_pt * np.cos(met_phi), met_pt * np.sin(met_phi)))
    mex, mey = mex - dpx, mey - dpy
    # sqrt(x² + y²), not np.hypot (7x slower): in float64 and rounded to float32, the same
    new_met = ak.with_field(met, np.sqrt(mex * mex + mey * mey).astype(np.float32), "pt")  # other fields kept
    new_met = ak.with_field(new_met, np.arctan2(mey, mex).astype(np.float32), "phi")
    return ak.with_field(objects, new_pt, "pt"), new_met


def _jet_geometry(counts: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The event of each object, and cos and sin of its phi."""
    return list_index(counts), np.cos(phi), np.sin(phi)


class _Memo:
    """Values computed from some arrays, kept while those very arrays live. Each shape
    variation and direction shifts the same jets and MET (JES up, down, JER up, down), so what
    depends on them alone is computed once per chunk."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._entries: list[tuple[tuple[weakref.ref, ...], Any]] = []

    def get(self, keys: tuple[Any, ...], compute: Any) -> Any:
        if not all(isinstance(k, np.ndarray) for k in keys):
            return compute()
        for refs, value in self._entries:
            if all(r() is k for r, k in zip(refs, keys, strict=True)):
                return value
        value = compute()
        alive = [e for e in self._entries if all(r() is not None for r in e[0])]  # drop what died with its arrays
        self._entries = [(tuple(weakref.ref(k) for k in keys), value), *alive[: self.size - 1]]
        return value


_same_inputs = _Memo()
