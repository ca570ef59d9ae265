"""A stages file: each stage's versions by device, as ``module.function`` (or ``module:function``)::

    zmumu::muon_selection:
      cpu: my_module.my_stage
      gpu: my_module.my_stage_gpu

Every entry is resolved when the file is loaded: an unknown device, a module or function that
does not exist, a missing ``cpu`` version or a GPU version that takes other arguments than its
CPU twin is a ConfigError naming the file and the entry. Modules beside the file are found
there, and travel to workers by value (workers need not have the folder).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import yaml

from highrate.devices.registry import Stage, is_stage_name, register
from highrate.devices.select import DEVICES
from highrate.errors import ConfigError


def load_stages(path: str | os.PathLike[str], *, register_them: bool = True) -> dict[str, Stage]:
    """The stages of a YAML file, by name; with ``register_them`` they are also registered, so
    cuts made before the analysis (``Cut("two_muons", "zmumu::two_muons")``) find them."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read stages file {str(path)!r}: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"stages file {str(path)!r} is not valid YAML: {err}") from err
    if not isinstance(document, dict):
        raise ConfigError(f"stages file {str(path)!r} must map stage names to their versions "
                          "('zmumu::muon_selection: {cpu: module.function, gpu: module.function_gpu}').")
    folder = path.parent.resolve()
    found: dict[str, Stage] = {}
    sys.path.insert(0, str(folder))  # modules beside the file
    try:
        for name, versions in document.items():
            where = f"stages file {str(path)!r}, stage {name!r}"
            if not is_stage_name(name):
                raise ConfigError(f"{where}: a stage name reads 'namespace::stage'.")
            if not isinstance(versions, dict) or not versions:
                raise ConfigError(f"{where}: give its versions by device, e.g. {{cpu: module.function}}.")
            unknown = sorted(set(versions) - set(DEVICES))
            if unknown:
                raise ConfigError(f"{where}: unknown device {unknown[0]!r}; known: {', '.join(DEVICES)}.")
            if "cpu" not in versions:
                raise ConfigError(f"{where}: has no 'cpu' version; every stage must be able to run on the CPU.")
            functions = {device: _resolve(target, f"{where}, {device}") for device, target in versions.items()}
            try:
                found[name] = Stage(name, functions)
            except ConfigError as err:
                raise ConfigError(f"stages file {str(path)!r}: {err}") from None
    finally:
        sys.path.remove(str(folder))
    for value in found.values():  # the file's own modules travel by value; installed ones do not
        for function in value.implementations.values():
            module = sys.modules.get(getattr(function, "__module__", "") or "")
            file = getattr(module, "__file__", None)
            if (module is not None and file and "site-packages" not in file
                    and not module.__name__.startswith("highrate") and Path(file).resolve().is_relative_to(folder)):
                cloudpickle.register_pickle_by_value(module)
    if register_them:
        for value in found.values():
            register(value)
    return found


def _resolve(target: Any, where: str) -> Callable[..., Any]:
    """The function ``module.function`` or ``module:function`` names."""
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(f"{where}: expected 'module.function', got {target!r}.")
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{where}: {target!r} does not read 'module.function'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"{where}: cannot import module {module_name!r} ({err}).") from err
    except Exception as err:  # the module itself failed while importing
        raise ConfigError(f"{where}: importing {module_name!r} failed: {type(err).__name__}: {err}") from err
    function = module
    for part in attr.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise ConfigError(f"{where}: module {module_name!r} has no {attr!r}.")
    if not callable(function):
        raise ConfigError(f"{where}: {target!r} is a {type(function).__name__}, not a function.")
    return function
