"""Loading an analysis file: executed under a private name with its folder's helper modules,
which travel to workers by value and are part of the definition hash.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import cloudpickle

from highrate.errors import ConfigError
from highrate.spec.analysis import Analysis
from highrate.spec.usercode import installed


def load_analysis(path: str | os.PathLike[str]) -> Analysis:
    """Import an analysis file and return its module-level ``analysis`` object.

    The module is executed under a private name (not in ``sys.modules``), so its functions travel
    to workers by value and the same file can be loaded twice without clashing.
    """
    path = Path(path)
    try:
        source = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read analysis file {str(path)!r}: {err.strerror or err}") from err
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"highrate_analysis_{digest}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    folder = path.parent.resolve()
    sys.path.insert(0, str(folder))  # let the analysis import its helper modules
    # re-import them, so that an edit is seen and a same-named module of another folder does not
    # shadow them; modules of the folder the analysis does not import are put back as they were
    # (the program that loads it may be one of them)
    set_aside = {}
    for name in [m.__name__ for m in _local_modules(folder)] + [f.stem for f in folder.glob("*.py")]:
        if name.split(".")[0] != "highrate" and name in sys.modules:
            set_aside[name] = sys.modules.pop(name)
    try:
        spec.loader.exec_module(module)
    except ConfigError as err:
        raise ConfigError(f"analysis file {str(path)!r}: {err}") from err
    except SyntaxError as err:
        raise ConfigError(f"analysis file {str(path)!r}, line {err.lineno}: syntax error: {err.msg}.") from err
    except Exception as err:  # an import or name error while executing the file
        line = _user_line(err, str(path))
        raise ConfigError(
            f"analysis file {str(path)!r}{line}: {type(err).__name__}: {err}. Run with --debug for the traceback."
        ) from err
    finally:
        sys.path.pop(0)
        helpers = _local_modules(folder)
        for name, previous in set_aside.items():
            sys.modules.setdefault(name, previous)
    for helper in helpers:  # workers need not have the analysis folder: ship its modules by value
        cloudpickle.register_pickle_by_value(helper)
    # the helpers' sources are part of the definition: editing one must not reuse checkpoints
    source += "".join(f"\n# module {m.__name__}\n{Path(m.__file__).read_text()}" for m in helpers)
    found = getattr(module, "analysis", None)
    if not isinstance(found, Analysis):
        names = [k for k, v in vars(module).items() if isinstance(v, Analysis)]
        hint = f" (found Analysis objects named {names}; rename one to 'analysis')" if names else ""
        raise ConfigError(f"analysis file {str(path)!r} must define 'analysis = Analysis(...)'{hint}.")

    return replace(found, source=source, name=found.name if found.name != "analysis" else path.stem)



def _local_modules(folder: Path) -> list[Any]:
    """Imported modules whose files lie below ``folder``: the analysis' own helper modules."""
    found = []
    for name, module in sorted(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name.split(".")[0] in ("highrate", "__main__") or "site-packages" in file:
            continue
        if file.startswith(installed()) and not str(folder).startswith(installed()):
            continue  # the standard library and installed packages (resolving their paths costs ~20 ms)
        if Path(file).resolve().is_relative_to(folder):
            found.append(module)
    return found



def _user_line(err: BaseException, filename: str) -> str:
    """', line N' of the innermost frame in the analysis file, or ''."""
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == filename]
    return f", line {frames[-1].lineno}" if frames else ""
