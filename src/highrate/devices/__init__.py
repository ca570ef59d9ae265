"""CPU and GPU versions of a stage: registered by name (``@stage``, a stages YAML file), run on the
device a run asks for (``RunOptions.device``: ``auto``, ``cpu`` or ``gpu``), and the array-API
kernels (:mod:`highrate.devices.kernels`) that let one function serve numpy and CuPy.
"""

from __future__ import annotations

from highrate.devices.loading import load_stages
from highrate.devices.registry import Stage, StageTimes, stage
from highrate.devices.select import gpu_count, no_gpu_reason, resolve
from highrate.devices.transfer import flat, namespace, to_device, to_host

__all__ = [
    "Stage", "StageTimes", "flat", "gpu_count", "load_stages", "namespace", "no_gpu_reason", "resolve",
    "stage", "to_device", "to_host",
]
