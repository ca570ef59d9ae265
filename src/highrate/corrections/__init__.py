"""correctionlib corrections (scale factors, pileup weights, uncertainties) for columnar analyses.

>>> from highrate.corrections import load_correction, evaluate, muon_sf   # doctest: +SKIP
>>> sf = load_correction("corrections/muon_sf.json", "muon_id_sf")
>>> evaluate(sf, abs(events.MuonGood.eta), events.MuonGood.pt, "nominal")  # jagged in, jagged out
>>> muon_sf(events.MuonGood, "corrections/muon_sf.json")                   # product per event

Correction files are loaded once per process and file (workers evaluate them on every chunk)
and reloaded only when the file changes. :func:`evaluate` takes numpy arrays, flat or jagged
awkward arrays and scalars; on awkward typetracers (when highrate traces an analysis for the
branches it reads) it touches its inputs and returns a typetracer of the result's type.
Every error is a :class:`CorrectionError` (a :class:`~highrate.errors.ConfigError`) naming the
file and the correction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import awkward as ak
import numpy as np

from highrate.corrections._evaluate import _gather, call_each, evaluate
from highrate.corrections._load import (
    Correction,
    CorrectionInput,
    clear_cache,
    load_correction,
    load_correction_set,
)
from highrate.errors import CorrectionError
from highrate.jagged import flat_parts, is_typetracer

__all__ = [
    "Correction",
    "CorrectionError",
    "CorrectionInput",
    "clear_cache",
    "evaluate",
    "jes_uncertainty",
    "load_correction",
    "load_correction_set",
    "muon_sf",
    "pileup_weight",
]


def pileup_weight(events: Any, path: str | os.PathLike[str], variation: str | Sequence[str] = "nominal", *,
                  name: str = "pileup") -> Any:
    """Per-event pileup weight from ``events.Pileup.nTrueInt`` (``nominal``, ``up`` or ``down``).

    With a sequence of variations: a tuple of weights, the events' bins found once for all."""
    correction = load_correction(path, name)
    n_true = events.Pileup.nTrueInt
    if isinstance(variation, str):
        return evaluate(correction, n_true, variation)
    if is_typetracer(n_true):
        return tuple(evaluate(correction, n_true, v) for v in variation)
    return tuple(call_each(correction, [ak.to_numpy(n_true).astype(np.float64), variation[0]], 1, list(variation)))


def muon_sf(muons: Any, path: str | os.PathLike[str], *, name: str = "muon_id_sf",
            variation: str | Sequence[str] = "nominal") -> Any:
    """Per-event product of the muons' scale factors ``name(|eta|, pt, variation)``; 1 without muons.

    ``variation`` is ``nominal``, ``systup`` or ``systdown``, or a sequence of them: then a tuple
    of per-event weights, one per variation, with the muons' bins found once for all.
    """
    correction = load_correction(path, name)
    several = not isinstance(variation, str)
    keys = list(variation) if several else [variation]
    if is_typetracer(muons.pt):
        found = [ak.prod(evaluate(correction, abs(muons.eta), muons.pt, k), axis=1) for k in keys]
        return tuple(found) if several else found[0]
    eta_content, eta_starts, counts = flat_parts(muons.eta)
    pt_content, pt_starts, pt_counts = flat_parts(muons.pt)
    eta = np.abs(_gather(eta_content, eta_starts, counts))
    pt = _gather(pt_content, pt_starts, pt_counts)
    columns = [eta.astype(np.float64), pt.astype(np.float64), keys[0]]
    nonempty = counts > 0
    starts = (np.cumsum(counts) - counts)[nonempty]
    out = []
    for sf in call_each(correction, columns, 2, keys):
        weight = np.ones(len(counts), dtype=np.float64)
        sf = np.asarray(sf)
        if sf.size:
            weight[nonempty] = np.multiply.reduceat(sf, starts)
        out.append(weight)
    return tuple(out) if several else out[0]


def jes_uncertainty(jets: Any, path: str | os.PathLike[str], *, name: str = "jes_uncertainty") -> Any:
    """Relative jet energy scale uncertainty of every jet, ``name(eta, pt)``, as a jagged array."""
    return evaluate(load_correction(path, name), jets.eta, jets.pt)
