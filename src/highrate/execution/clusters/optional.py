"""Optional dependencies, imported only when a profile needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from highrate.errors import ConfigError


class MissingDependencyError(ConfigError, ImportError):
    """An optional dependency is not installed; the message has the pip command."""


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise with ``pip install 'highrate[EXTRA]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"{purpose} needs the Python package {module.split('.')[0].replace('_', '-')!r}, which is "
            f"not installed: pip install 'highrate[{extra}]'"
        ) from err
