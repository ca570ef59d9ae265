"""Statistical model of a run's histograms: a cabinetry configuration and the pyhf workspace
cabinetry builds from it, the maximum-likelihood fit and ranking (cabinetry + pyhf), plots,
Combine datacards and a HEPData submission.

>>> from highrate.outputs.statmodel import run_fit
>>> run_fit("out", histogram="mll", signal="DYJetsToLL", asimov=True)  # doctest: +SKIP
>>> run_fit("out", regions={"4j1b": "HT", "4j2b": "m_bjj"}, signal="ttbar")  # doctest: +SKIP
"""

from highrate.outputs.statmodel.cabinetry_config import build_spec, build_workspace
from highrate.outputs.statmodel.datacard import read_datacard, write_datacards
from highrate.outputs.statmodel.fit import FitError, FitResult, fit, pulls
from highrate.outputs.statmodel.inputs import FitInputs, load_inputs
from highrate.outputs.statmodel.pipeline import run_fit

__all__ = [
    "FitError",
    "FitInputs",
    "FitResult",
    "build_spec",
    "build_workspace",
    "fit",
    "load_inputs",
    "pulls",
    "read_datacard",
    "run_fit",
    "write_datacards",
]
