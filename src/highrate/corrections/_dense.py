"""A numpy fast path for the commonest correction shape: a table of numbers over bins.

Scale factors and pileup weights are almost always ``Category`` (on a variation name) over a
``Binning`` or ``MultiBinning`` with explicit edges and numbers as content. correctionlib walks
that tree per value; here it is compiled once into dense arrays and looked up with
``np.searchsorted`` (the same ``upper_bound`` rule), about 5x faster on a few hundred thousand
values. The numbers in the tables come from correctionlib itself, evaluated once at every bin
centre, so they are its doubles to the last bit (its JSON parser rounds some literals other
than Python's does). Anything else (formulas, uniform binnings, nested nodes, values out of range with
``flow: error``) returns ``None`` and correctionlib evaluates it, so results and errors are
correctionlib's own.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from highrate.arrays.search import upper_bound


@dataclass(frozen=True)
class Table:
    """Numbers on a grid: ``values[i0, i1, ...]`` for the bins of the inputs ``inputs``."""

    inputs: tuple[int, ...]  # positions of the binned inputs in the correction's signature
    edges: tuple[np.ndarray, ...]
    values: np.ndarray
    clamp: bool  # flow "clamp"; otherwise "error" (anything else is not compiled)


@dataclass(frozen=True)
class Dense:
    """A correction as tables: one per category key, or a single one (``category is None``)."""

    category: int | None
    tables: dict[Any, Table]


_compiled: dict[tuple[str, str], tuple[Any, Dense | None]] = {}  # (path, name) → (its correctionlib object, form)
_lock = threading.Lock()


def dense_of(path: Path, name: str, inputs: list[tuple[str, str]], impl: Any) -> Dense | None:
    """The compiled form of correction ``name`` of ``path`` (inputs as ``(name, type)``; ``impl``
    the correctionlib object), or None when it has another shape."""
    key = (str(path), name)
    with _lock:
        found = _compiled.get(key)
        if found is None or found[0] is not impl:  # a file changed on disk is loaded anew: compile it again
            found = _compiled[key] = (impl, _compile(path, name, inputs, impl))
        return found[1]


def lookup(dense: Dense, columns: list[Any]) -> np.ndarray | None:
    """The correction's values, or None where correctionlib must answer (unknown key, out of range)."""
    if dense.category is None:
        table = dense.tables[None]
    else:
        key = columns[dense.category]
        if isinstance(key, np.ndarray) or key not in dense.tables:
            return None
        table = dense.tables[key]
    index = 0
    for position, edges, size in zip(table.inputs, table.edges, table.values.shape, strict=True):
        x = columns[position]
        if not isinstance(x, np.ndarray):
            x = np.asarray([x], dtype=np.float64)
        i = upper_bound(edges, x) - 1  # as correctionlib
        if table.clamp:
            np.clip(i, 0, size - 1, out=i)
        elif len(i) and (i.min() < 0 or i.max() >= size):
            return None  # correctionlib raises its own error, with the offending value
        index = i if isinstance(index, int) else index * size + i
    return table.values.ravel()[index]


def lookup_each(dense: Dense, columns: list[Any], keys: list[Any]) -> list[np.ndarray] | None:
    """:func:`lookup` for each category key in ``keys`` (the category column is ignored);
    the bins are found once for all keys whose tables share their edges."""
    if dense.category is None or any(k not in dense.tables for k in keys):
        return None
    out, found = [], {}
    for key in keys:
        table = dense.tables[key]
        grid = (*(e.tobytes() for e in table.edges), table.inputs, table.clamp)
        if grid not in found:
            probe = Table(table.inputs, table.edges, np.arange(table.values.size).reshape(table.values.shape),
                          table.clamp)
            index = lookup(Dense(None, {None: probe}), columns)
            if index is None:
                return None
            found[grid] = index.astype(np.int64)
        out.append(table.values.ravel()[found[grid]])
    return out


def _compile(path: Path, name: str, inputs: list[tuple[str, str]], impl: Any) -> Dense | None:
    try:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt") as f:
            doc = json.load(f)
        (spec,) = [c for c in doc.get("corrections", []) if c.get("name") == name]
    except (OSError, ValueError, KeyError):
        return None
    names = [n for n, _ in inputs]
    node = spec.get("data")
    if not isinstance(node, dict):
        return None
    if node.get("nodetype") == "category":
        if node.get("default") is not None or node.get("input") not in names:
            return None
        category = names.index(node["input"])
        items = [(item.get("key"), item.get("value")) for item in node.get("content", [])]
    else:
        category, items = None, [(None, node)]
    tables = {}
    for key, sub in items:
        table = _table(sub, names)
        if table is None:
            return None
        values = _values_at_centres(table, inputs, category, key, impl)
        if values is None:
            return None
        tables[key] = Table(table.inputs, table.edges, values, table.clamp)
    return Dense(category, tables)


def _table(node: Any, names: list[str]) -> Table | None:
    """The grid of a binning node (its numbers filled in later), or None for any other node."""
    if not isinstance(node, dict) or node.get("flow") not in ("clamp", "error"):
        return None
    kind = node.get("nodetype")
    if kind == "binning":
        binned, edges = [node.get("input")], [node.get("edges")]
    elif kind == "multibinning":
        binned, edges = node.get("inputs"), node.get("edges")
    else:
        return None
    if not all(n in names for n in binned) or not all(isinstance(e, list) and len(e) >= 2 for e in edges):
        return None  # uniform binnings ({n, low, high}) compute bins with another formula
    content = node.get("content")
    if not isinstance(content, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in content):
        return None
    shape = tuple(len(e) - 1 for e in edges)
    if int(np.prod(shape)) != len(content):
        return None
    return Table(tuple(names.index(n) for n in binned), tuple(np.asarray(e, dtype=np.float64) for e in edges),
                 np.empty(shape), node["flow"] == "clamp")


def _values_at_centres(
    table: Table, inputs: list[tuple[str, str]], category: int | None, key: Any, impl: Any
) -> np.ndarray | None:
    """correctionlib's own value in every bin of ``table``."""
    centres = np.meshgrid(*[(e[:-1] + e[1:]) / 2 for e in table.edges], indexing="ij")
    columns: list[Any] = []
    for position, (_, kind) in enumerate(inputs):
        if position == category:
            columns.append(key)
        elif position in table.inputs:
            columns.append(centres[table.inputs.index(position)].ravel())
        elif kind in ("real", "int"):
            columns.append(0.0 if kind == "real" else 0)  # an input this table does not read
        else:
            return None
    try:
        return np.asarray(impl.evaluate(*columns), dtype=np.float64).reshape(table.values.shape)
    except Exception:
        return None
