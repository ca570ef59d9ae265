"""Jet identification that runs unchanged on Run-2 and Run-3 NanoAOD.

NanoAOD up to v14 stores the jet ID as bits of ``Jet_jetId`` (bit 1: tight, bit 2: tight
lepton veto). v15 dropped the branch: the JME recipe for AK4 PUPPI jets at 13.6 TeV recomputes
it from the energy fractions and multiplicities, by |η| region:

=================  ===============================================================
region             tight
=================  ===============================================================
|η| ≤ 2.6          neHEF < 0.99, neEmEF < 0.9, chMultiplicity + neMultiplicity > 1,
                   chHEF > 0.01, chMultiplicity > 0
2.6 < |η| ≤ 2.7    neHEF < 0.9, neEmEF < 0.99
2.7 < |η| ≤ 3.0    neHEF < 0.99
|η| > 3.0          neMultiplicity ≥ 2, neEmEF < 0.4
=================  ===============================================================

Tight lepton veto is tight and, for |η| ≤ 2.7, muEF < 0.8 and chEmEF < 0.8.

>>> from highrate.jetid import passes_jet_id                          # doctest: +SKIP
>>> good = jets[passes_jet_id(jets, "tight")]         # jetId bits where present, else the recipe

Where JME publishes the recipe as a correctionlib file (``jetid.json.gz``),
:func:`jet_id_from_correction` evaluates it instead, with its inputs taken from the jets by name.
"""

from __future__ import annotations

import os
from typing import Any

import awkward as ak
import numpy as np

from highrate.arrays.fast import list_positions
from highrate.corrections import evaluate, load_correction
from highrate.errors import ConfigError, did_you_mean
from highrate.jagged import flat_parts, is_typetracer, unflatten

__all__ = ["LEVELS", "jet_id_from_correction", "passes_jet_id", "tight", "tight_lepton_veto"]

LEVELS = ("tight", "tightLepVeto")
_RECIPE_FIELDS = ("eta", "neHEF", "neEmEF", "chHEF", "chEmEF", "muEF", "chMultiplicity", "neMultiplicity")
# tight reads no lepton fraction: a run that asks only for it reads (and has) only these
_TIGHT_FIELDS = tuple(f for f in _RECIPE_FIELDS if f not in ("chEmEF", "muEF"))
_BITS = {"tight": 2, "tightLepVeto": 4}


def tight(jets: ak.Array) -> ak.Array:
    """The Run-3 tight jet ID of each jet, from its energy fractions and multiplicities."""
    return _recipe(jets, lepton_veto=False)


def tight_lepton_veto(jets: ak.Array) -> ak.Array:
    """The Run-3 tight-lepton-veto jet ID of each jet (tight, and no muon- or electron-like jet
    within |η| ≤ 2.7)."""
    return _recipe(jets, lepton_veto=True)


def passes_jet_id(jets: ak.Array, level: str = "tight", meta: Any = None) -> ak.Array:
    """Whether each jet passes ``level`` (``"tight"`` or ``"tightLepVeto"``).

    The ``jetId`` bits where the jets carry them (NanoAOD up to v14), the recipe otherwise (v15).
    A dataset's metadata ``nanoaod_version: 15`` (or higher) forces the recipe even where a
    ``jetId`` field exists. The choice depends only on the dataset, so every chunk makes the same.
    """
    if level not in LEVELS:
        raise ConfigError(f"jet ID level {level!r} is unknown; use one of {', '.join(LEVELS)}." + did_you_mean(level, LEVELS))
    version = (meta or {}).get("nanoaod_version") if hasattr(meta, "get") else None
    if "jetId" in jets.fields and (version is None or int(version) < 15):
        return (jets.jetId & _BITS[level]) > 0
    missing = [f for f in (_RECIPE_FIELDS if level == "tightLepVeto" else _TIGHT_FIELDS) if f not in jets.fields]
    if missing:
        raise ConfigError(
            f"the jets have no jetId and lack {', '.join(missing)} for the Run-3 jet ID recipe; "
            "read them from the files (NanoAOD v12 or later has them)."
        )
    return _recipe(jets, lepton_veto=level == "tightLepVeto")


def jet_id_from_correction(jets: ak.Array, path: str | os.PathLike[str], name: str) -> ak.Array:
    """JME's correctionlib jet ID ``name`` (e.g. ``"AK4PUPPI_Tight"``) from the file ``path``.

    Each input of the correction is the jets' field of that name; ``multiplicity`` is
    ``chMultiplicity + neMultiplicity`` where the jets have no such field. A result above 0.5
    passes."""
    correction = load_correction(path, name)
    inputs = []
    for spec in correction.inputs:
        if spec.name in jets.fields:
            value = jets[spec.name]
        elif spec.name == "multiplicity" and {"chMultiplicity", "neMultiplicity"} <= set(jets.fields):
            value = jets.chMultiplicity + jets.neMultiplicity
        else:
            raise ConfigError(
                f"jet ID {name!r} of {os.fspath(path)!r} needs the input {spec.name!r}, which the jets do not have."
                + did_you_mean(spec.name, jets.fields)
            )
        inputs.append(ak.values_astype(value, np.int32) if spec.type == "int" else value)
    return evaluate(correction, *inputs) > 0.5


def _recipe(jets: ak.Array, *, lepton_veto: bool) -> ak.Array:
    # multiplicities are unsigned bytes in NanoAOD: widened before they are added
    names = _RECIPE_FIELDS if lepton_veto else _TIGHT_FIELDS
    if is_typetracer(jets.eta):  # tracing: the same fields, read through awkward
        traced = {f: jets[f] if "Multiplicity" not in f else ak.values_astype(jets[f], np.int32) for f in names}
        return _decide(*(traced.get(f) for f in _RECIPE_FIELDS), lepton_veto=lepton_veto)
    values = {}
    for name in names:
        content, starts, counts = flat_parts(jets[name])
        if not _contiguous(content, starts, counts):
            content = content.take(list_positions(starts, counts))  # a filtered view: its jets only
        # compared in double precision, as CMSSW's C++ compares a float with a double literal
        values[name] = content.astype(np.int32 if "Multiplicity" in name else np.float64)
    return unflatten(_decide(*(values.get(f) for f in _RECIPE_FIELDS), lepton_veto=lepton_veto), counts)


def _decide(eta: Any, ne_hef: Any, ne_em: Any, ch_hef: Any, ch_em: Any, mu: Any, n_ch: Any, n_ne: Any, *,
            lepton_veto: bool) -> Any:
    """The recipe's table, on flat numpy arrays (or on awkward ones, when tracing)."""
    aeta = abs(eta)
    central = (aeta <= 2.6) & (ne_hef < 0.99) & (ne_em < 0.9) & (n_ch + n_ne > 1) & (ch_hef > 0.01) & (n_ch > 0)
    edge = (aeta > 2.6) & (aeta <= 2.7) & (ne_hef < 0.9) & (ne_em < 0.99)
    transition = (aeta > 2.7) & (aeta <= 3.0) & (ne_hef < 0.99)
    forward = (aeta > 3.0) & (n_ne >= 2) & (ne_em < 0.4)
    passed = central | edge | transition | forward
    if lepton_veto:
        passed = passed & ((aeta > 2.7) | ((mu < 0.8) & (ch_em < 0.8)))
    return passed


def _contiguous(content: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> bool:
    """Whether the lists lie in ``content`` one after the other from its start, filling it."""
    if len(content) != counts.sum():
        return False
    return not len(starts) or (starts[0] == 0 and np.array_equal(starts[1:], starts[:-1] + counts[:-1]))
