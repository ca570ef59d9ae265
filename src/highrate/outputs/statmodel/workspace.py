"""The pyhf workspace (HistFactory JSON) of :class:`~highrate.outputs.statmodel.inputs.FitInputs`.

Per channel (category): the MC samples with ``normfactor`` ``mu`` on the signal, a ``staterror``
from the MC variances, a log-normal luminosity ``normsys`` ``lumi`` (matching Combine's ``lnN``),
and for every ``{s}Up``/``{s}Down`` pair of a sample a ``normsys`` + ``histosys`` named ``s``: the
change of the integral, and the shape of the varied templates scaled back to the nominal integral
(Combine's ``shape`` treats them the same way). Bins where the MC expects nothing are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from highrate.base.optional import require
from highrate.outputs.statmodel.inputs import NOMINAL, Channel, FitInputs

POI = "mu"
LUMI = "lumi"
MU_BOUNDS = (0.0, 10.0)
SCHEMA_VERSION = "1.0.0"


def kept_bins(channel: Channel) -> np.ndarray:
    """Mask of the bins where the nominal MC sum is positive (the others are left out of the model)."""
    return channel.total() > 0


def staterror_name(channel: str) -> str:
    return f"staterror_{channel}"


def build_spec(inputs: FitInputs, *, lumi_uncertainty: float = 0.025, split_norm: bool = True) -> dict[str, Any]:
    """The pyhf workspace specification (a JSON-ready dict) of ``inputs``."""
    channels, observations = [], []
    for ch in inputs.channels:
        keep = kept_bins(ch)
        samples = [_sample(ch, name, keep, inputs.signal, lumi_uncertainty, split_norm) for name in sorted(ch.samples)]
        channels.append({"name": ch.name, "samples": samples})
        observations.append({"name": ch.name, "data": _list(ch.data[keep])})
    poi = {"name": POI, "bounds": [list(MU_BOUNDS)], "inits": [1.0]}
    return {
        "version": SCHEMA_VERSION,
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": f"{inputs.histogram}_{inputs.signal}", "config": {"poi": POI, "parameters": [poi]}}],
    }


def build_workspace(inputs: FitInputs, *, lumi_uncertainty: float = 0.025, split_norm: bool = True) -> Any:
    """``pyhf.Workspace`` of :func:`build_spec` (validated against the pyhf schema)."""
    pyhf = require("pyhf", "fit", purpose="the pyhf workspace")
    return pyhf.Workspace(build_spec(inputs, lumi_uncertainty=lumi_uncertainty, split_norm=split_norm))


def _list(a: np.ndarray) -> list[float]:
    return [float(x) for x in a]


def _sample(ch: Channel, name: str, keep: np.ndarray, signal: str, lumi: float, split_norm: bool) -> dict[str, Any]:
    templates = ch.samples[name]
    nominal = templates[NOMINAL].values[keep]
    modifiers: list[dict[str, Any]] = []
    if name == signal:
        modifiers.append({"name": POI, "type": "normfactor", "data": None})
    if lumi > 0:
        modifiers.append({"name": LUMI, "type": "normsys", "data": {"hi": 1.0 + lumi, "lo": 1.0 / (1.0 + lumi)}})
    modifiers.append({"name": staterror_name(ch.name), "type": "staterror",
                      "data": _list(np.sqrt(np.clip(templates[NOMINAL].variances[keep], 0.0, None)))})
    for syst in ch.systematics(name):
        up, down = templates[f"{syst}Up"].values[keep], templates[f"{syst}Down"].values[keep]
        modifiers.extend(_systematic(syst, nominal, up, down, split_norm))
    return {"name": name, "data": _list(nominal), "modifiers": modifiers}


def _systematic(name: str, nominal: np.ndarray, up: np.ndarray, down: np.ndarray,
                split_norm: bool) -> list[dict[str, Any]]:
    total, total_up, total_down = nominal.sum(), up.sum(), down.sum()
    out: list[dict[str, Any]] = []
    if split_norm and min(total, total_up, total_down) > 0:
        hi, lo = total_up / total, total_down / total
        if not (np.isclose(hi, 1.0, rtol=0, atol=1e-9) and np.isclose(lo, 1.0, rtol=0, atol=1e-9)):
            out.append({"name": name, "type": "normsys", "data": {"hi": float(hi), "lo": float(lo)}})
        up, down = up / hi, down / lo
    if not (np.allclose(up, nominal, rtol=1e-9, atol=0) and np.allclose(down, nominal, rtol=1e-9, atol=0)):
        out.append({"name": name, "type": "histosys", "data": {"hi_data": _list(up), "lo_data": _list(down)}})
    return out
