"""``highrate::fill``: the built-in histogram fill as a stage with a CPU and a GPU version.

A histogram names a fill stage (``Histogram("mll", Axis(...), fill="highrate::fill")``) to be
filled by it instead of by the engine's own binning. Every fill stage is called as
``fill(values, weights, histogram)``: ``values`` the histogram's axes' values (one float64
array per axis, the rows of one category), ``weights`` their weights (float64, or ``None`` when
unweighted) and ``histogram`` the definition, whose ``axes`` give ``bins, start, stop`` or
``edges``. It returns the sums of weights and of squared weights per flow bin, shape
``(bins_1 + 2, ..., 2)``. Both versions here run :func:`highrate.devices.kernels.fill`, on numpy
or on CuPy, and bin as boost-histogram does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import array_api_compat.numpy  # noqa: F401  # imported with the stage (~0.1 s), not in its first timed call
import numpy as np

from highrate.devices import kernels
from highrate.devices.registry import Stage
from highrate.devices.transfer import to_device


def _axes(histogram: Any, device: str) -> tuple[Any, ...]:
    """Each axis as the kernel takes it: ``(bins, start, stop)`` or its edges on ``device``."""
    return tuple(
        (a.bins, a.start, a.stop) if a.edges is None else to_device(np.asarray(a.edges, dtype=np.float64), device)
        for a in histogram.axes
    )


_latest = threading.local()  # per thread (Dask runs chunks in threads): the latest values moved


def _on(device: str, values: Sequence[Any], weights: Any | None, histogram: Any) -> Any:
    # the engine passes one category's values once per weight variation: they cross once
    moved = getattr(_latest, "moved", None)
    if moved is None or moved[0] is not values or moved[1] != device:
        moved = _latest.moved = (values, device, tuple(to_device(np.asarray(v, dtype=np.float64), device)
                                                       for v in values))
    w = None if weights is None else to_device(np.asarray(weights, dtype=np.float64), device)
    return kernels.fill(moved[2], w, _axes(histogram, device))


def fill_on_cpu(values: Sequence[Any], weights: Any | None, histogram: Any) -> Any:
    """The fill on the CPU (numpy)."""
    return _on("cpu", values, weights, histogram)


def fill_on_gpu(values: Sequence[Any], weights: Any | None, histogram: Any) -> Any:
    """The fill on the GPU (CuPy): the values cross once for all the calls that pass the same
    ``values`` tuple (one category's weight variations; its arrays are taken as unchanged), the
    weights once per call, and the sums come back."""
    return _on("gpu", values, weights, histogram)


FILL = Stage("highrate::fill", {"cpu": fill_on_cpu, "gpu": fill_on_gpu})
