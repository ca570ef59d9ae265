"""An analysis, pickled by value for its workers, cached functions included.

cloudpickle sends the functions of an analysis file (run under a private name, see
``loading.py``) and of its helper modules by value. A ``functools.cache``/``lru_cache`` wrapper
pickles by reference, as ``module.name``, which a worker cannot import: here it travels as the
function it wraps, by value, and is wrapped again (with an empty cache) on the other side.
"""

from __future__ import annotations

import functools
import io
import pickle
import sys
from collections.abc import Callable
from typing import Any

import cloudpickle

_LRU = type(functools.lru_cache(maxsize=None)(lambda: None))


def cached(function: Callable[..., Any], maxsize: int | None, typed: bool) -> Callable[..., Any]:
    """``function`` wrapped in a new ``functools.lru_cache`` (what a cached function unpickles to)."""
    return functools.lru_cache(maxsize=maxsize, typed=typed)(function)


class _Pickler(cloudpickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LRU) and not _importable(obj):
            params = obj.cache_parameters()
            return cached, (obj.__wrapped__, params["maxsize"], params["typed"])
        return super().reducer_override(obj)


def _importable(obj: Any) -> bool:
    """Whether a worker finds the object where its module and name say (the library's own
    cached functions, not the analysis' or its helpers')."""
    name = getattr(obj, "__module__", None) or ""
    module = sys.modules.get(name)
    if module is None or name in cloudpickle.list_registry_pickle_by_value():
        return False
    found: Any = module
    for part in getattr(obj, "__qualname__", "").split("."):
        found = getattr(found, part, None)
    return found is obj


def dumps(obj: Any) -> bytes:
    """``cloudpickle.dumps``, with cached functions of the analysis sent as what they wrap."""
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return out.getvalue()
