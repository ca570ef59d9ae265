"""Statistical model of a run's histograms: pyhf workspace, maximum-likelihood fit, Combine datacards.

>>> from highrate.outputs.statmodel import run_fit
>>> run_fit("out", histogram="mll", signal="DYJetsToLL", asimov=True)  # doctest: +SKIP
"""

from highrate.outputs.statmodel.datacard import read_datacard, write_datacards
from highrate.outputs.statmodel.fit import FitError, FitResult, fit, pulls
from highrate.outputs.statmodel.inputs import FitInputs, load_inputs
from highrate.outputs.statmodel.pipeline import run_fit
from highrate.outputs.statmodel.workspace import build_spec, build_workspace

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
