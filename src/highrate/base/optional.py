"""Optional dependencies: imported when a feature needs them, with the extra to install if absent.

Plots need ``highrate[plot]``, fits ``highrate[fit]``, batch clusters ``highrate[batch]``, and so
on; without it the user gets one line naming the package and the ``pip install`` command instead
of a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from highrate.errors import MissingExtraError

# import names whose distribution on PyPI is named otherwise
_DISTRIBUTIONS = {
    "dask_jobqueue": "dask-jobqueue", "dask_kubernetes": "dask-kubernetes", "fsspec_xrootd": "fsspec-xrootd",
    "XRootD": "xrootd", "rucio": "rucio-clients", "pyXRootD": "xrootd", "htcondor2": "htcondor",
    "classad2": "htcondor", "kubernetes_validate": "kubernetes-validate",
    "ROOT": "root",
}


def distribution(module: str) -> str:
    """The PyPI name of the package that provides the top-level module of ``module``."""
    top = module.split(".")[0]
    return _DISTRIBUTIONS.get(top, top.replace("_", "-"))


def require(module: str, extra: str, *, purpose: str | None = None) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` with ``pip install 'highrate[EXTRA]'``.

    ``purpose`` says what needs it (``"highrate plot"``, ``"cluster profile 'slurm'"``). The package
    named is the one actually missing: ``mplhep`` installed without ``matplotlib`` names matplotlib.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = (err.name if err.name and err.name.split(".")[0] != module.split(".")[0] else module).split(".")[0]
        what = purpose or f"this feature of highrate (extra {extra!r})"
        raise MissingExtraError(
            f"{what} needs the Python package {distribution(missing)!r}, which is not installed: "
            f"pip install 'highrate[{extra}]'",
            name=missing,
        ) from err
