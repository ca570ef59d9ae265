"""Reproducible random numbers keyed by event identity, for smearing (e.g. jet resolution).

The same (run, luminosityBlock, event, object index) always gives the same number, whatever
the chunking, executor or worker: a splitmix64 hash of the keys, turned into a normal deviate
with the Box-Muller transform.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser of ``x + golden``, on a copy (in place there: no temporaries)."""
    x = x.astype(np.uint64, copy=True)
    shifted = np.empty_like(x)
    with np.errstate(over="ignore"):
        x += _GOLDEN
        for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            np.right_shift(x, np.uint64(shift), out=shifted)
            x ^= shifted
            x *= np.uint64(factor)
        np.right_shift(x, np.uint64(31), out=shifted)
        x ^= shifted
    return x


def hash_keys(*keys: np.ndarray) -> np.ndarray:
    """A 64-bit hash of several integer arrays of the same length."""
    h = np.zeros(len(keys[0]), dtype=np.uint64)
    for k in keys:
        with np.errstate(over="ignore"):
            h = _mix(h ^ np.asarray(k).astype(np.uint64))
    return h


def normal_from_keys(*keys: np.ndarray) -> np.ndarray:
    """A standard normal deviate per element, determined by the keys alone."""
    h = hash_keys(*keys)
    u1 = ((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53  # (0, 1): log is finite
    u2 = (_mix(h) >> np.uint64(11)).astype(np.float64) / 2.0**53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
