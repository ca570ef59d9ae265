"""highrate: high-rate, declarative columnar analysis of flat collision data (CMS NanoAOD).

The names below are imported when first used (PEP 562), so that a command that needs none of
them — ``highrate --help``, an up-to-date re-run — does not pay for numpy, awkward and uproot.
"""

import typing as _typing
from importlib import import_module as _import_module

from highrate._version import __version__

_WHERE = {
    "Analysis": "highrate.spec.analysis",
    "Axis": "highrate.spec.histograms",
    "Columns": "highrate.spec.histograms",
    "Cut": "highrate.spec.steps",
    "Dataset": "highrate.data.datasets",
    "HighrateError": "highrate.errors",
    "Histogram": "highrate.spec.histograms",
    "Progress": "highrate.execution.options",
    "Result": "highrate.engine.result",
    "RunOptions": "highrate.execution.options",
    "RunOutcome": "highrate.execution.options",
    "Session": "highrate.interactive.session",
    "ShapeVariation": "highrate.spec.steps",
    "Weight": "highrate.spec.steps",
    "accumulate": "highrate.engine.result",
    "load_analysis": "highrate.spec.loading",
    "load_datasets": "highrate.data.datasets",
    "run": "highrate.execution.runner",
}

__all__ = [
    "Analysis", "Axis", "Columns", "Cut", "Dataset", "HighrateError", "Histogram", "Progress", "Result",
    "RunOptions", "RunOutcome", "Session", "ShapeVariation", "Weight", "__version__", "accumulate",
    "load_analysis", "load_datasets", "run",
]


def __getattr__(name: str) -> _typing.Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'highrate' has no attribute {name!r}")
    value = getattr(_import_module(where), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


if _typing.TYPE_CHECKING:  # what type checkers and the API reference see
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
