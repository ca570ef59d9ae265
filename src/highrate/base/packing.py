"""Values as (a JSON tree, flat numpy arrays), for the cache's entries: numbers, strings, numpy
arrays, awkward arrays (as their buffers) and lists, tuples and string-keyed dicts of them.

Awkward arrays keep their form, length and parameters; their behaviour comes back from the
arrays' names as registered in the reading process (``behavior``) or awkward's global one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np


class Unpackable(TypeError):
    """A value the cache cannot store: the stage holding it is recomputed every time."""


def pack(value: Any) -> tuple[Any, list[np.ndarray]]:
    """(a JSON tree, the arrays it points to)."""
    arrays: list[np.ndarray] = []
    return _pack(value, arrays), arrays


def unpack(tree: Any, arrays: list[np.ndarray], behavior: Mapping[Any, Any] | None = None) -> Any:
    """The value :func:`pack` gave ``tree`` and ``arrays`` for."""
    if "n" in tree:
        return tree["n"]
    if "a" in tree:
        return arrays[tree["a"]]
    if "ak" in tree:
        buffers = {k: arrays[i] for k, i in tree["buffers"].items()}
        return ak.from_buffers(ak.forms.from_dict(tree["ak"]), tree["length"], buffers, behavior=behavior,
                               highlevel=True)
    if "d" in tree:
        return {k: unpack(v, arrays, behavior) for k, v in tree["d"].items()}
    items = [unpack(v, arrays, behavior) for v in tree["l"]]
    return tuple(items) if tree["t"] else items


def _pack(value: Any, arrays: list[np.ndarray]) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return {"n": value}
    if isinstance(value, np.generic):
        return {"n": value.item()}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise Unpackable("a numpy array of Python objects")
        arrays.append(value)
        return {"a": len(arrays) - 1}
    if isinstance(value, ak.Array):
        if ak.backend(value) != "cpu":
            raise Unpackable(f"an awkward array on the {ak.backend(value)} backend")
        form, length, container = ak.to_buffers(ak.to_packed(value))
        buffers = {}
        for name, buffer in container.items():
            arrays.append(np.asarray(buffer))
            buffers[name] = len(arrays) - 1
        return {"ak": form.to_dict(), "length": length, "buffers": buffers}
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {"d": {k: _pack(v, arrays) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"l": [_pack(v, arrays) for v in value], "t": isinstance(value, tuple)}
    raise Unpackable(f"a {type(value).__module__}.{type(value).__qualname__}")
