"""Moving arrays between host and GPU: numpy ↔ CuPy, awkward's cpu ↔ cuda backends.

CuPy is imported only when an array goes to the GPU, so CPU-only installations never need it.
``namespace(device)`` is the array-API namespace (array-api-compat) of arrays on that device,
which the kernels of :mod:`highrate.devices.kernels` are written against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

from highrate.base.optional import require


def namespace(device: str) -> Any:
    """The array-API namespace of ``device``'s arrays: array-api-compat's numpy or cupy."""
    if device == "gpu":
        require("cupy", "gpu", purpose="running stages on a GPU")
        return require("array_api_compat.cupy", "gpu", purpose="running stages on a GPU")
    import array_api_compat.numpy as xp  # a core dependency: the kernels run on the CPU too

    return xp


def is_on_gpu(value: Any) -> bool:
    """A CuPy array, or an awkward array on the cuda backend (checked without importing CuPy)."""
    if isinstance(value, ak.Array):
        return ak.backend(value) == "cuda"
    return type(value).__module__.split(".")[0] == "cupy"


def to_device(value: Any, device: str) -> Any:
    """``value`` (numpy, awkward, a number) on ``device``: awkward through ``ak.to_backend``,
    numpy through ``cupy.asarray``. To the CPU it is :func:`to_host`."""
    if device != "gpu":
        return to_host(value)
    cupy = require("cupy", "gpu", purpose="running stages on a GPU")
    if isinstance(value, ak.Array):
        return ak.to_backend(value, "cuda")
    return cupy.asarray(value)


def to_host(value: Any) -> Any:
    """``value`` with every GPU array in it (also in tuples, lists and dicts) copied to the host."""
    if isinstance(value, ak.Array):
        return ak.to_backend(value, "cpu") if ak.backend(value) == "cuda" else value
    if is_on_gpu(value):
        return value.get()
    if isinstance(value, tuple | list):
        return type(value)(to_host(v) for v in value)
    if isinstance(value, Mapping):
        return {k: to_host(v) for k, v in value.items()}
    return value


def flat(array: ak.Array, device: str) -> tuple[Any, Any]:
    """(flat content, offsets) of a jagged numeric awkward array, on ``device``: what the kernels
    take. The flattening is done on the host, where awkward's kernels are complete; only two
    plain buffers cross to the GPU."""
    counts = np.asarray(ak.to_numpy(ak.num(array, axis=1)), dtype=np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    content = np.asarray(ak.to_numpy(ak.flatten(array, axis=1)))
    return to_device(content, device), to_device(offsets, device)
