"""Evaluating corrections on numpy, awkward (flat or jagged) and typetracer inputs."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any, Protocol

import awkward as ak
import numpy as np

from highrate.arrays.fast import list_index, list_items
from highrate.base.inputs import note_read
from highrate.corrections._dense import dense_of, lookup, lookup_each
from highrate.errors import CorrectionError, did_you_mean
from highrate.jagged import flat_parts, is_typetracer, unflatten


class Correction(Protocol):
    """What evaluation needs of a correction: :class:`highrate.corrections.Correction` (made by
    ``_load.load_correction``, which evaluates through this module) is one."""

    path: Path
    name: str
    inputs: tuple[Any, ...]
    output: Any
    _impl: Any

    def signature(self) -> str: ...


def _is_jagged(array: ak.Array) -> bool:
    return array.ndim == 2


def _gather(content: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The values of the listed objects, event after event, as one contiguous array."""
    return content[list_items(starts, counts)]


def _to_typetracer_result(correction: Correction, inputs: tuple[Any, ...]) -> ak.Array:
    arrays = [x for x in inputs if isinstance(x, ak.Array)]
    for x in arrays:
        ak.typetracer.touch_data(x)
    template = max(arrays, key=lambda a: a.ndim)
    dtype = np.int64 if correction.output.type == "int" else np.float64
    return ak.values_astype(ak.zeros_like(template), dtype)


def _flatten_inputs(correction: Correction, inputs: tuple[Any, ...]) -> tuple[list[Any], np.ndarray | None]:
    """Inputs as scalars and equal-length flat numpy arrays; the per-event counts if jagged."""
    counts: np.ndarray | None = None
    columns: list[Any] = []
    per_event: list[int] = []
    for i, x in enumerate(inputs):
        if isinstance(x, ak.Array):
            if _is_jagged(x):
                content, starts, n = flat_parts(x)
                if counts is not None and not np.array_equal(counts, n):
                    raise CorrectionError(
                        f"correction {correction.name!r} from {str(correction.path)!r}: jagged input {i} "
                        "has other numbers of objects per event than the jagged inputs before it."
                    )
                counts = np.asarray(n)
                columns.append(_gather(content, starts, n))
                continue
            try:
                x = ak.to_numpy(x)
            except ValueError as err:
                raise CorrectionError(
                    f"correction {correction.name!r}: input {i} ({x.type}) cannot be evaluated: {err}. "
                    "Fill missing values first (ak.fill_none) or pass one value per event or object."
                ) from err
        elif isinstance(x, (list, tuple)):
            x = np.asarray(x)
        if isinstance(x, np.ndarray) and x.ndim == 1:
            per_event.append(i)
        elif isinstance(x, np.ndarray) and x.ndim == 0:
            x = x.item()
        elif isinstance(x, np.ndarray):
            raise CorrectionError(
                f"correction {correction.name!r}: input {i} is a {x.ndim}-dimensional array; "
                "pass 1-d arrays, jagged awkward arrays or scalars."
            )
        columns.append(x)
    owner = list_index(counts) if counts is not None and per_event else None
    if counts is not None:
        for i in per_event:  # one value per event: repeat it for every object of the event
            if len(columns[i]) != len(counts):
                raise CorrectionError(
                    f"correction {correction.name!r}: input {i} has {len(columns[i])} values for "
                    f"{len(counts)} events."
                )
            columns[i] = columns[i][owner]
    lengths = {len(c) for c in columns if isinstance(c, np.ndarray)}
    if len(lengths) > 1:
        raise CorrectionError(
            f"correction {correction.name!r} from {str(correction.path)!r}: inputs have different "
            f"lengths {sorted(lengths)}."
        )
    for i, spec in enumerate(correction.inputs[: len(columns)]):
        c = columns[i]
        if np.ma.isMaskedArray(c):
            if np.ma.getmaskarray(c).any():
                raise CorrectionError(
                    f"correction {correction.name!r}: input {spec.name!r} has missing values (None); "
                    "fill them first (ak.fill_none) or select the events that have them."
                )
            c = columns[i] = np.ma.getdata(c)
        if isinstance(c, np.ndarray) and spec.type in ("real", "int"):
            columns[i] = c.astype(np.float64 if spec.type == "real" else np.int64, copy=False)
        elif spec.type == "real" and isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            columns[i] = float(c)
    return columns, counts


def evaluate(correction: Correction, *inputs: Any) -> Any:
    """Evaluate ``correction`` on its inputs, in the order of ``correction.inputs``.

    Inputs are scalars (a variation name such as ``"nominal"``), numpy arrays, flat awkward
    arrays (one value per event) or jagged awkward arrays (one value per object; all jagged
    inputs must have the same structure, and per-event inputs are repeated for every object).
    Returns a numpy array (a jagged awkward array for jagged inputs, a float for scalars only).
    """
    if getattr(correction, "path", None) is not None:
        note_read(correction.path)  # a cached stage result is kept only while this file is unchanged
    if getattr(correction, "_impl", None) is None:  # not a Correction of _load
        raise CorrectionError(
            f"evaluate() needs a Correction from load_correction(path, name), got {type(correction).__name__}."
        )
    if any(is_typetracer(x) for x in inputs):
        return _to_typetracer_result(correction, inputs)
    columns, counts = _flatten_inputs(correction, inputs)
    values = _call(correction, columns)
    if counts is None:
        return values
    return unflatten(values, counts)


_BOUNDS = re.compile(r"(above|below) bounds in (?:Multi)?Binning for input argument (\d+) value: (\S+)")
_CATEGORY = re.compile(r"not available in Category for input argument (\d+) val(?:ue)?: (.*)")


def _call(correction: Correction, columns: list[Any]) -> Any:
    if len(columns) == len(correction.inputs) and any(isinstance(c, np.ndarray) for c in columns):
        dense = dense_of(correction.path, correction.name, [(i.name, i.type) for i in correction.inputs],
                         correction._impl)
        if dense is not None:
            values = lookup(dense, columns)
            if values is not None:
                return values
    try:
        return correction._impl.evaluate(*columns)
    except (RuntimeError, IndexError, ValueError, TypeError) as err:
        raise _translate(correction, columns, err) from err


def call_each(correction: Correction, columns: list[Any], position: int, keys: list[Any]) -> list[Any]:
    """``_call`` with each of ``keys`` in input ``position`` (a variation): the bins of the other
    inputs are found once when the correction is a table."""
    if len(columns) == len(correction.inputs) and any(isinstance(c, np.ndarray) for c in columns):
        dense = dense_of(correction.path, correction.name, [(i.name, i.type) for i in correction.inputs],
                         correction._impl)
        if dense is not None and dense.category == position:
            found = lookup_each(dense, columns, keys)
            if found is not None:
                return found
    return [_call(correction, [*columns[:position], key, *columns[position + 1:]]) for key in keys]


def _translate(correction: Correction, columns: list[Any], err: Exception) -> CorrectionError:
    where = f"correction {correction.name!r} from {str(correction.path)!r}"
    message = str(err)
    if m := _BOUNDS.search(message):
        index = int(m.group(2))
        spec = correction.inputs[index]
        values = np.asarray(columns[index], dtype=np.float64).ravel()
        bounds = _bounds(correction, spec.name)
        if bounds is not None:
            lo, hi = bounds
            bad = values[(values < lo) | (values >= hi) | np.isnan(values)]
            detail = (f"{len(bad)} of {len(values)} values of input {spec.name!r} lie outside "
                      f"[{lo:g}, {hi:g}), where it is defined (offending values from {np.nanmin(bad):g} "
                      f"to {np.nanmax(bad):g})" if np.isfinite(bad).any() else
                      f"input {spec.name!r} has {len(bad)} NaN values")
        else:
            detail = (f"input {spec.name!r} is {m.group(1)} the binned range (value {m.group(3)}; "
                      f"its values range from {np.nanmin(values):g} to {np.nanmax(values):g})")
        return CorrectionError(
            f"{where}: {detail}, and its flow policy is 'error'. Select objects inside the range "
            "first, or use a correction with flow 'clamp'."
        )
    if m := _CATEGORY.search(message):
        spec = correction.inputs[int(m.group(1))]
        keys = _category_keys(correction, spec.name)
        valid = f"; valid values: {', '.join(repr(k) for k in keys)}" if keys else ""
        value = m.group(2).strip()
        return CorrectionError(
            f"{where}: input {spec.name!r} has no entry for {value!r}{valid}." + did_you_mean(value, map(str, keys))
        )
    return CorrectionError(f"{where} takes {correction.signature()}: {message}")


def _data(correction: Correction) -> Any:
    path = str(correction.path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        document = json.load(f)
    for c in document.get("corrections", []):
        if c.get("name") == correction.name:
            return c.get("data")
    return None


def _nodes(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _edges(edges: Any) -> tuple[float, float]:
    if isinstance(edges, dict):  # uniform binning {n, low, high}
        return float(edges["low"]), float(edges["high"])
    return float(edges[0]), float(edges[-1])


def _bounds(correction: Correction, name: str) -> tuple[float, float] | None:
    """The range on which the ``flow: error`` binnings of input ``name`` are defined."""
    ranges = []
    for node in _nodes(_data(correction)):
        if node.get("flow") != "error":
            continue
        if node.get("nodetype") == "binning" and node.get("input") == name:
            ranges.append(_edges(node["edges"]))
        elif node.get("nodetype") == "multibinning" and name in node.get("inputs", []):
            ranges.append(_edges(node["edges"][node["inputs"].index(name)]))
    if not ranges:
        return None
    return max(r[0] for r in ranges), min(r[1] for r in ranges)


def _category_keys(correction: Correction, name: str) -> list[Any]:
    keys: list[Any] = []
    for node in _nodes(_data(correction)):
        if node.get("nodetype") == "category" and node.get("input") == name:
            keys += [item["key"] for item in node.get("content", []) if item.get("key") not in keys]
    return keys
