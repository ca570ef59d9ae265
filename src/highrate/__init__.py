"""highrate: high-rate, declarative columnar analysis of flat collision data (CMS NanoAOD)."""

from __future__ import annotations

from highrate.analysis import (
    Analysis,
    Axis,
    Columns,
    Cut,
    Histogram,
    ShapeVariation,
    Weight,
    load_analysis,
)
from highrate.datasets import Dataset, load_datasets
from highrate.errors import HighrateError
from highrate.result import Result, accumulate
from highrate.runner import Progress, RunOptions, RunOutcome, run

__version__ = "0.1.0"

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
    "ShapeVariation",
    "Weight",
    "__version__",
    "accumulate",
    "load_analysis",
    "load_datasets",
    "run",
]
