"""highrate: high-rate, declarative columnar analysis of flat collision data (CMS NanoAOD)."""

from highrate._version import __version__
from highrate.data.datasets import Dataset, load_datasets
from highrate.engine.result import Result, accumulate
from highrate.errors import HighrateError
from highrate.execution.options import Progress, RunOptions, RunOutcome
from highrate.execution.runner import run
from highrate.interactive.session import Session
from highrate.spec.analysis import Analysis
from highrate.spec.histograms import Axis, Columns, Histogram
from highrate.spec.loading import load_analysis
from highrate.spec.steps import Cut, ShapeVariation, Weight

__all__ = [
    "Analysis",
    "Axis",
    "Columns",
    "Cut",
    "Dataset",
    "HighrateError",
    "Histogram",
    "Progress",
    "Result",
    "RunOptions",
    "RunOutcome",
    "Session",
    "ShapeVariation",
    "Weight",
    "__version__",
    "accumulate",
    "load_analysis",
    "load_datasets",
    "run",
]
