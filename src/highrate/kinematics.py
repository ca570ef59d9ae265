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
import numpy as np


def nth(collection: ak.Array, i: int) -> ak.Array:
    """The ``i``-th object of each event (``None`` where there are not that many)."""
    return ak.firsts(collection[:, i:], axis=1)


def four_momentum(obj: Any) -> tuple[Any, Any, Any, Any]:
    """(E, px, py, pz) in float64 from pt, eta, phi, mass."""
    pt = ak.values_astype(obj.pt, np.float64)
    eta = ak.values_astype(obj.eta, np.float64)
    phi = ak.values_astype(obj.phi, np.float64)
    mass = ak.values_astype(obj.mass, np.float64)
    px = pt * np.cos(phi)
    py = pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    return energy, px, py, pz


def invariant_mass(a: Any, b: Any) -> Any:
    """Invariant mass of two objects (records with pt, eta, phi, mass), per event."""
    ea, pxa, pya, pza = four_momentum(a)
    eb, pxb, pyb, pzb = four_momentum(b)
    m2 = (ea + eb) ** 2 - (pxa + pxb) ** 2 - (pya + pyb) ** 2 - (pza + pzb) ** 2
    return np.sqrt(np.maximum(m2, 0.0))


def leading_pair_mass(collection: ak.Array) -> ak.Array:
    """Invariant mass of the two leading objects; NaN where there are fewer than two."""
    return ak.fill_none(invariant_mass(nth(collection, 0), nth(collection, 1)), np.nan)
