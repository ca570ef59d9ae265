"""Kinematics helpers for analysis code, with one documented formula so results are reproducible.

Invariant mass of two objects given (pt, eta, phi, mass) in float32, as highrate computes it:
inputs are promoted to float64; ``s = sinh(eta)`` and ``E = sqrt(pt**2 * (1 + s**2) + mass**2)``
for each; ``dot = pt1 * pt2 * (cos(phi1 - phi2) + s1 * s2)`` (the product of the momenta); then
``m**2 = mass1**2 + mass2**2 + 2 * (E1 * E2 - dot)`` and ``m = sqrt(max(m**2, 0))``, all in
float64 numpy operations in that order. Three transcendental calls per pair instead of six for
the four-vector sum; float64 keeps the result stable to ~1e-12 GeV, so cuts and bin edges agree
with any independent float64 computation of the same formula.

Angular distances, also in float64: with ``d = phi1 - phi2``, ``delta_phi = d - 2*pi * rint(d /
(2*pi))``, in [-pi, pi] (a quarter of the cost of a modulo), and ``delta_r = sqrt(deta * deta +
delta_phi * delta_phi)`` with ``deta = eta1 - eta2``. :func:`nearest`,
:func:`delta_r_table` and :func:`clean` pair every object of one collection with every object of
another in the same event with numpy index arithmetic on the flat contents (no Python loop,
no awkward broadcasting); on typetracers they take the equivalent ``ak.cartesian`` path.
:func:`to_vector` hands a collection to scikit-hep ``vector`` for everything else (``.deltaR``,
``.mass``, ``a + b``, boosts).
"""

from __future__ import annotations

import weakref
from typing import Any

import awkward as ak
import numpy as np

from highrate.arrays.fast import fast, is_packed, list_index, list_items, list_positions
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


# ---- angular distances, matching and cleaning ---------------------------------------------------


def _coordinate(x: Any, name: str) -> Any:
    """``x.name`` for objects (records), ``x`` itself for values."""
    if isinstance(x, ak.Array) and x.fields:
        return x[name]
    return x


_TWO_PI = 2 * np.pi


def _wrapped(d: Any) -> Any:
    """An angle difference in [-pi, pi]."""
    return d - _TWO_PI * np.rint(d / _TWO_PI)


def delta_phi(a: Any, b: Any) -> Any:
    """phi(a) - phi(b) in [-pi, pi], in float64; objects (with ``phi``) or phi values, broadcast as
    awkward does (a collection against one object per event gives one value per object)."""
    return _wrapped(_f64(_coordinate(a, "phi")) - _f64(_coordinate(b, "phi")))


def delta_r(a: Any, b: Any) -> Any:
    """sqrt(delta_eta**2 + delta_phi**2) of objects with ``eta`` and ``phi``, in float64."""
    deta = _f64(a.eta) - _f64(b.eta)
    dphi = delta_phi(a, b)
    return np.sqrt(deta * deta + dphi * dphi)


def _pairs(a: ak.Array, b: ak.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (object of ``a``, object of ``b``) of each event, ``a``'s objects in order and each
    one's partners in ``b``'s order: (count of ``a`` per event, partners per ``a`` object, delta R
    of each pair)."""
    eta_a, starts_a, counts_a = flat_parts(a.eta)
    phi_a = flat_parts(a.phi)[0]
    eta_b, starts_b, counts_b = flat_parts(b.eta)
    phi_b = flat_parts(b.phi)[0]
    if len(counts_a) != len(counts_b):
        raise ValueError(f"the collections have {len(counts_a)} and {len(counts_b)} events")
    items = list_positions(starts_a, counts_a)  # where a's objects are in their content
    event = list_index(counts_a)  # the event of each a object
    partners = counts_b[event]
    pair_b = list_positions(starts_b[event], partners)  # where each pair's b is in b's content
    owner = items[list_index(partners)]  # each pair's a, in a's content
    deta = eta_a[owner].astype(np.float64) - eta_b[pair_b].astype(np.float64)
    dphi = _wrapped(phi_a[owner].astype(np.float64) - phi_b[pair_b].astype(np.float64))
    return counts_a, partners, np.sqrt(deta * deta + dphi * dphi)


def _offsets(counts: np.ndarray) -> ak.index.Index64:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return ak.index.Index64(offsets)


def _closest(partners: np.ndarray, dr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per ``a`` object: the smallest delta R among its partners (inf without any) and that
    partner's place among them (the first on a tie; -1 without any).

    One pass per place among the partners, over the objects that have that many: objects have
    few partners, and this is several times faster than sorting or a segmented argmin."""
    best_dr = np.full(len(partners), np.inf)
    best = np.full(len(partners), -1, dtype=np.int64)
    first = np.cumsum(partners) - partners
    rows = np.flatnonzero(partners)
    best_dr[rows], best[rows] = dr[first[rows]], 0
    place = 1
    rows = rows[partners[rows] > place]
    while len(rows):
        candidate = dr[first[rows] + place]
        better = candidate < best_dr[rows]
        update = rows[better]
        best_dr[update], best[update] = candidate[better], place
        place += 1
        rows = rows[partners[rows] > place]
    return best_dr, best


def _traced_table(a: ak.Array, b: ak.Array) -> tuple[ak.Array, ak.Array]:
    """(b's objects per a object, their delta R), nested per a object: the awkward path."""
    pa, pb = ak.unzip(ak.cartesian([a, b], axis=1, nested=True))
    return pb, delta_r(pa, pb)


def delta_r_table(a: ak.Array, b: ak.Array) -> ak.Array:
    """delta R of every pair: per event, per object of ``a``, one value per object of ``b``
    (coffea's ``metric_table`` with delta R). ``a`` and ``b`` are collections of the same events."""
    if is_typetracer(a) or is_typetracer(b):
        return _traced_table(a, b)[1]
    counts_a, partners, dr = _pairs(a, b)
    inner = ak.contents.ListOffsetArray(_offsets(partners), ak.contents.NumpyArray(dr))
    return ak.Array(ak.contents.ListOffsetArray(_offsets(counts_a), inner))


def nearest(a: ak.Array, b: ak.Array, *, max_dr: float | None = None) -> tuple[ak.Array, ak.Array]:
    """For each object of ``a``, the object of ``b`` in the same event closest in delta R, and that
    delta R: two arrays shaped like ``a`` (coffea's ``nearest``).

    Where the event has no ``b`` (or, with ``max_dr``, none closer than ``max_dr``) the object is
    None; the delta R is inf without any ``b``, else the smallest one (also beyond ``max_dr``).
    ``match, dr = nearest(events.Jet, events.GenJet, max_dr=0.4)``.
    """
    if is_typetracer(a) or is_typetracer(b):
        pb, dr = _traced_table(a, b)
        best = ak.argmin(dr, axis=2, keepdims=True)
        distance = ak.fill_none(ak.firsts(dr[best], axis=2), np.inf)
        match = ak.firsts(pb[best], axis=2)
        return (match if max_dr is None else ak.mask(match, distance <= max_dr)), distance
    counts_a, partners, dr = _pairs(a, b)
    best_dr, best = _closest(partners, dr)
    if max_dr is not None:
        best[best_dr > max_dr] = -1
    counts_b = ak.to_numpy(ak.num(b, axis=1))
    event = list_index(counts_a)
    index = np.where(best >= 0, (np.cumsum(counts_b) - counts_b)[event] + best, -1)
    flat_b = ak.flatten(b, axis=1).layout  # b's objects, event after event: what ``index`` counts
    match = ak.contents.IndexedOptionArray.simplified(ak.index.Index64(index), flat_b)
    offsets = _offsets(counts_a)
    distance = fast(ak.Array(ak.contents.ListOffsetArray(offsets, ak.contents.NumpyArray(best_dr))))
    return ak.Array(ak.contents.ListOffsetArray(offsets, match), behavior=b.behavior), distance


def clean(a: ak.Array, b: ak.Array, dr: float = 0.4) -> ak.Array:
    """The objects of ``a`` farther than ``dr`` from every object of ``b`` in their event (delta R),
    e.g. jets cleaned of the selected leptons: ``clean(events.JetGood, events.MuonGood, 0.4)``."""
    if is_typetracer(a) or is_typetracer(b):
        return a[nearest(a, b)[1] > dr]
    counts_a, partners, pair_dr = _pairs(a, b)
    best_dr, _ = _closest(partners, pair_dr)
    return a[fast(ak.Array(ak.contents.ListOffsetArray(_offsets(counts_a), ak.contents.NumpyArray(best_dr > dr))))]


# ---- scikit-hep vector ---------------------------------------------------------------------------


_VECTOR_KINDS = (("Momentum4D", {"pt", "eta", "phi", "mass"}), ("Momentum3D", {"pt", "eta", "phi"}),
                 ("Momentum2D", {"pt", "phi"}))


def to_vector(objects: ak.Array) -> ak.Array:
    """``objects`` as scikit-hep ``vector`` records, all their fields kept: ``Momentum4D`` with
    ``pt``, ``eta``, ``phi``, ``mass`` (``.deltaR``, ``.mass``, ``a + b``, ``.boost``), else
    ``Momentum3D`` (``pt``, ``eta``, ``phi``) or ``Momentum2D`` (``pt``, ``phi``, e.g. ``MET``).

    No data is copied; vector's operations run through awkward (the helpers above are faster
    for what they do).
    """
    # vector costs ~20 ms to import: only analyses that use it pay
    import vector

    vector.register_awkward()  # also for records the user zips with_name="Momentum4D"
    fields = set(objects.fields)
    name = next((kind for kind, needs in _VECTOR_KINDS if needs <= fields), None)
    if name is None:
        raise ValueError(f"to_vector needs fields pt and phi (and eta, mass for 3D, 4D); got {sorted(fields)}")
    plain = ak.with_parameter(objects, "__list__", None) if objects.layout.parameter("__list__") else objects
    return ak.with_name(plain, name, behavior=vector.backends.awkward.behavior)
