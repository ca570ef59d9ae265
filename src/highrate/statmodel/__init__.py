"""Statistical model of a run's histograms: pyhf workspace, maximum-likelihood fit, Combine datacards.

>>> from highrate.statmodel import run_fit
>>> run_fit("out", histogram="mll", signal="DYJetsToLL", asimov=True)  # doctest: +SKIP
"""

from highrate.statmodel.datacard import read_datacard, write_datacards
from highrate.statmodel.fit import FitError, FitResult, fit, pulls
from highrate.statmodel.inputs import FitInputs, load_inputs
from highrate.statmodel.pipeline import run_fit
from highrate.statmodel.workspace import build_spec, build_workspace

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
