"""Certified-luminosity ("golden JSON") masks for collision data.

>>> from highrate.lumimask import LumiMask                               # doctest: +SKIP
>>> golden = LumiMask("corrections/golden.json")
>>> keep = golden.mask(events.run, events.luminosityBlock)            # numpy bool per event
>>> Cut("golden_json", LumiMask("corrections/golden.json"))           # as a skim cut (data only)

A golden JSON maps run numbers to inclusive lumi-section ranges, ``{"315252": [[1, 33], [46,
100]], ...}``. The mask is vectorised: every (run, lumi) is packed into one 64-bit key and
looked up in the sorted, merged ranges with :func:`numpy.searchsorted`. On awkward typetracers
(when highrate traces an analysis) it touches run and lumi and returns a boolean typetracer.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from highrate.base.inputs import note_read
from highrate.errors import ConfigError
from highrate.jagged import is_typetracer

__all__ = ["LumiMask", "LumiMaskError"]

_SHIFT = np.uint64(32)


class LumiMaskError(ConfigError):
    """A golden JSON file is missing or malformed, or the mask got unusable run/lumi arrays."""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LumiMaskError(f"golden JSON {str(path)!r} does not exist.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LumiMaskError(f"golden JSON {str(path)!r} cannot be read: {err}") from err


def _parse(path: Path, text: str) -> dict[int, list[tuple[int, int]]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise LumiMaskError(f"golden JSON {str(path)!r} is not valid JSON: {err}") from err
    expected = 'expected {"RUN": [[FIRST_LUMI, LAST_LUMI], ...], ...}'
    if not isinstance(document, dict):
        raise LumiMaskError(f"golden JSON {str(path)!r}: the top level is a {type(document).__name__}; {expected}.")
    runs: dict[int, list[tuple[int, int]]] = {}
    for key, ranges in document.items():
        try:
            run = int(key)
        except (TypeError, ValueError):
            raise LumiMaskError(f"golden JSON {str(path)!r}: key {key!r} is not a run number; {expected}.") from None
        if not 0 < run < 2**32:
            raise LumiMaskError(f"golden JSON {str(path)!r}: run {key!r} is out of range (1 .. 2^32-1).")
        if not isinstance(ranges, list):
            raise LumiMaskError(f"golden JSON {str(path)!r}: run {key} maps to {ranges!r}; {expected}.")
        parsed = []
        for r in ranges:
            if (not isinstance(r, list) or len(r) != 2
                    or not all(isinstance(x, int) and not isinstance(x, bool) for x in r)
                    or not 0 <= r[0] <= r[1] < 2**32):
                raise LumiMaskError(
                    f"golden JSON {str(path)!r}: run {key} has the lumi range {r!r}; each range must be "
                    f"[first, last] with integers 0 <= first <= last; {expected}."
                )
            parsed.append((r[0], r[1]))
        runs[run] = parsed
    return runs


class LumiMask:
    """The certified (run, luminosityBlock) pairs of a golden JSON file.

    ``mask(run, lumi)`` returns a numpy boolean array; calling the mask on events
    (``LumiMask(path)(events)``) uses ``events.run`` and ``events.luminosityBlock``, so it can be
    a :class:`~highrate.Cut` function directly.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        text = _read(self.path)
        runs = _parse(self.path, text)
        self.digest = hashlib.sha256(text.encode()).hexdigest()[:12]  # in repr: analysis hashes see edits
        starts: list[int] = []
        stops: list[int] = []
        for run, ranges in runs.items():
            merged: list[list[int]] = []
            for first, last in sorted(ranges):
                if merged and first <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], last)
                else:
                    merged.append([first, last])
            starts += [(run << 32) | first for first, _ in merged]
            stops += [(run << 32) | last for _, last in merged]
        order = np.argsort(np.asarray(starts, dtype=np.uint64), kind="stable")
        self._starts = np.asarray(starts, dtype=np.uint64)[order]
        self._stops = np.asarray(stops, dtype=np.uint64)[order]
        self.runs = frozenset(runs)

    def __repr__(self) -> str:
        return (f"LumiMask({str(self.path)!r}: {len(self.runs)} runs, {len(self._starts)} lumi ranges, "
                f"sha256 {self.digest})")

    def _numpy(self, values: Any, what: str) -> np.ndarray:
        if isinstance(values, ak.Array):
            if values.ndim != 1:
                raise LumiMaskError(f"LumiMask({str(self.path)!r}): {what} must have one value per event, "
                                    f"got type {values.type}.")
            values = ak.to_numpy(values)
        array = np.asarray(values)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise LumiMaskError(f"LumiMask({str(self.path)!r}): {what} must be a 1-d integer array, got "
                                f"{array.ndim}-d {array.dtype}.")
        return array

    def mask(self, run: Any, luminosityBlock: Any) -> Any:
        """True for events whose (run, luminosityBlock) is certified in the golden JSON."""
        note_read(self.path)
        if is_typetracer(run) or is_typetracer(luminosityBlock):
            for x in (run, luminosityBlock):
                if isinstance(x, ak.Array):
                    ak.typetracer.touch_data(x)
            template = run if is_typetracer(run) else luminosityBlock
            return ak.values_astype(ak.zeros_like(template), np.bool_)
        runs = self._numpy(run, "run")
        lumis = self._numpy(luminosityBlock, "luminosityBlock")
        if len(runs) != len(lumis):
            raise LumiMaskError(f"LumiMask({str(self.path)!r}): {len(runs)} runs but {len(lumis)} lumis.")
        if len(self._starts) == 0 or len(runs) == 0:
            return np.zeros(len(runs), dtype=bool)
        keys = (runs.astype(np.uint64) << _SHIFT) | lumis.astype(np.uint64)
        index = np.searchsorted(self._starts, keys, side="right") - 1
        inside = index >= 0
        out = np.zeros(len(keys), dtype=bool)
        out[inside] = keys[inside] <= self._stops[index[inside]]
        return out

    def __call__(self, events: Any) -> Any:
        return self.mask(events.run, events.luminosityBlock)
