"""Kinematics helpers for analysis code, with one documented formula so results are reproducible.

Invariant mass of two objects given (pt, eta, phi, mass) in float32, as highrate computes it:
inputs are promoted to float64; ``px = pt*cos(phi)``, ``py = pt*sin(phi)``, ``pz = pt*sinh(eta)``,
``E = sqrt(px**2 + py**2 + pz**2 + mass**2)`` for each; then
``m**2 = (E1+E2)**2 - (px1+px2)**2 - (py1+py2)**2 - (pz1+pz2)**2`` and ``m = sqrt(max(m**2, 0))``,
all in float64 numpy operations in that order. Float64 keeps the result stable to ~1e-12 GeV,
so cuts and bin edges agree with any independent float64 computation of the same formula.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numba
import numpy as np

from highrate.jagged import flat_parts, is_typetracer


def nth(collection: ak.Array, i: int) -> ak.Array:
    """The ``i``-th object of each event (``None`` where there are not that many).

    General but slower than :func:`highrate.jagged.nth_value` for single fields.
    """
    return ak.firsts(collection[:, i:], axis=1)


def four_momentum(pt: Any, eta: Any, phi: Any, mass: Any) -> tuple[Any, Any, Any, Any]:
    """(E, px, py, pz) in float64 from pt, eta, phi, mass (numpy or awkward arrays)."""
    pt, eta, phi, mass = (_f64(x) for x in (pt, eta, phi, mass))
    px = pt * np.cos(phi)
    py = pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    return energy, px, py, pz


def pair_mass(a: tuple[Any, Any, Any, Any], b: tuple[Any, Any, Any, Any]) -> Any:
    """Invariant mass from two (pt, eta, phi, mass) tuples, with the documented formula."""
    ea, pxa, pya, pza = four_momentum(*a)
    eb, pxb, pyb, pzb = four_momentum(*b)
    m2 = (ea + eb) ** 2 - (pxa + pxb) ** 2 - (pya + pyb) ** 2 - (pza + pzb) ** 2
    return np.sqrt(np.maximum(m2, 0.0))


def invariant_mass(a: Any, b: Any) -> Any:
    """Invariant mass of two objects (records with pt, eta, phi, mass), per event."""
    return pair_mass((a.pt, a.eta, a.phi, a.mass), (b.pt, b.eta, b.phi, b.mass))


def leading_pair_mass(collection: ak.Array) -> Any:
    """Invariant mass of the two leading objects; NaN where there are fewer than two."""
    if is_typetracer(collection):
        return ak.fill_none(invariant_mass(nth(collection, 0), nth(collection, 1)), np.nan)
    parts = {f: flat_parts(collection[f]) for f in ("pt", "eta", "phi", "mass")}
    _, starts, counts = parts["pt"]
    has = counts >= 2
    first = starts[has]
    out = np.full(len(counts), np.nan)
    out[has] = pair_mass(
        tuple(parts[f][0][first] for f in ("pt", "eta", "phi", "mass")),  # type: ignore[arg-type]
        tuple(parts[f][0][first + 1] for f in ("pt", "eta", "phi", "mass")),  # type: ignore[arg-type]
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
    else:
        pt, starts, counts = flat_parts(objects.pt)
        phi = flat_parts(objects.phi)[0]
        scale = flat_parts(factor)[0] if isinstance(factor, ak.Array) else np.asarray(factor, dtype=np.float64)
        # numpy's float32 cos/sin (vectorised) so the sums match the documented numpy formula bit for bit
        cos, sin = np.cos(phi), np.sin(phi)
        new = np.empty(int(counts.sum()), dtype=np.float32)
        dpx, dpy = np.empty(len(counts)), np.empty(len(counts))
        _shift_sums(pt, cos, sin, starts, counts, np.atleast_1d(scale).astype(np.float64, copy=False), new, dpx, dpy)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        new_pt = ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), ak.contents.NumpyArray(new)))
        objects = ak.Array(ak.to_packed(objects), behavior=objects.behavior)
        met_pt, met_phi = np.asarray(ak.to_numpy(met.pt)), np.asarray(ak.to_numpy(met.phi))
        mex = met_pt * np.cos(met_phi) - dpx
        mey = met_pt * np.sin(met_phi) - dpy
        new_met = ak.zip({"pt": np.hypot(mex, mey).astype(np.float32), "phi": np.arctan2(mey, mex).astype(np.float32)})
        return ak.with_field(objects, new_pt, "pt"), new_met
    return ak.with_field(objects, new_pt, "pt"), new_met


@numba.njit(cache=True, nogil=True)
def _shift_sums(pt, cos, sin, starts, counts, scale, new, dpx, dpy):  # pragma: no cover - compiled
    """new = float32(pt * scale); per event dpx = Σ float64(new - pt) * cos, dpy likewise, in
    object order (the order ``np.bincount`` adds in)."""
    pos = 0
    one = scale.shape[0] == 1
    for e in range(starts.shape[0]):
        sx = 0.0
        sy = 0.0
        for k in range(counts[e]):
            j = starts[e] + k
            old = pt[j]
            value = np.float32(np.float64(old) * scale[0 if one else pos])
            new[pos] = value
            dpt = np.float64(value - old)
            sx += dpt * np.float64(cos[j])
            sy += dpt * np.float64(sin[j])
            pos += 1
        dpx[e] = sx
        dpy[e] = sy
