"""Which device runs the registered stages: ``auto`` (the GPU when CuPy finds one), ``cpu``, ``gpu``.

Whether this machine has a GPU is a fact about the process (found once, then remembered); which
device a run asks for is not: it travels in the run's options (``RunOptions.device``) and is
resolved here, where the work runs, so a Dask worker with a GPU uses it and one without does not.
"""

from __future__ import annotations

import functools

from highrate.errors import ConfigError

DEVICES = ("cpu", "gpu")
CHOICES = ("auto", *DEVICES)


def check_choice(choice: str) -> str:
    """``choice`` if it is ``auto``, ``cpu`` or ``gpu``; else a ConfigError naming the choices."""
    if choice not in CHOICES:
        raise ConfigError(f"device {choice!r} is not one of {', '.join(CHOICES)}.")
    return choice


@functools.cache
def _found() -> tuple[int, str]:
    """(GPUs CuPy can use, why there are none): asked once per process, as each ask costs ~0.1 s."""
    try:
        import cupy
    except ImportError:
        return 0, "CuPy is not installed (pip install 'highrate[gpu]')"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as err:  # CuPy without a driver or a device raises CUDARuntimeError
        return 0, f"CuPy finds no usable CUDA device ({type(err).__name__}: {err})"
    return count, "" if count else "CuPy finds no CUDA device"


def gpu_count() -> int:
    """How many GPUs CuPy can use in this process (0 without CuPy or a driver)."""
    return _found()[0]


def no_gpu_reason() -> str | None:
    """Why this process has no GPU, in words; ``None`` when it has one."""
    count, reason = _found()
    return None if count else reason


def resolve(choice: str, *, gpus: int | None = None) -> str:
    """The device (``cpu`` or ``gpu``) that ``choice`` means here; ``gpus`` overrides detection.

    ``gpu`` without a GPU is an error, not a silent fall-back: a run asked for it, and a CPU run
    of a job sized for GPUs should not pass unnoticed."""
    check_choice(choice)
    if choice == "cpu":
        return "cpu"
    count = gpu_count() if gpus is None else gpus
    if choice == "gpu" and not count:
        reason = no_gpu_reason() if gpus is None else "no GPU was found"
        raise ConfigError(f"device 'gpu' was asked for, but {reason}. Use --device auto or cpu here, "
                          "or run on a machine (or Dask workers started with --resources GPU=1) that has one.")
    return "gpu" if count else "cpu"


def dask_resources(choice: str) -> dict[str, float] | None:
    """The Dask worker resources a chunk task needs: ``{"GPU": 1}`` for ``gpu``, else none (with
    ``auto`` a task runs anywhere and uses a GPU where its worker has one)."""
    return {"GPU": 1} if check_choice(choice) == "gpu" else None
