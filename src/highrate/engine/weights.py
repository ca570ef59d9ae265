"""Event weights: the product of the weight factors, and that product with one factor varied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from highrate.engine.quantities import to_numpy
from highrate.errors import ChunkError
from highrate.spec.steps import Weight


@dataclass
class WeightSet:
    """``nominal`` (None: 1 for every event) and ``{"{name}Up": ..., "{name}Down": ...}``."""

    nominal: Any = None
    variations: dict[str, Any] = field(default_factory=dict)


def event_weights(weights: tuple[Weight, ...], events: ak.Array, meta: Mapping[str, Any], *, tracing: bool,
                  call: Any) -> WeightSet:
    """Evaluate the weight factors on ``events``; ``call(weight)`` runs the user function."""
    n = None if tracing else len(events)
    factors: list[tuple[Weight, Any, Any, Any]] = []
    for w in weights:
        if w.mc_only and not meta.get("is_mc", False):
            continue
        value = call(w)
        if w.varied:
            if not (isinstance(value, tuple | list) and len(value) == 3):
                raise ChunkError(f"weight {w.name!r} is varied: its function must return (nominal, up, down).")
            nom, up, down = (_array(v, n, w.name, tracing) for v in value)
        else:
            nom, up, down = _array(value, n, w.name, tracing), None, None
        factors.append((w, nom, up, down))
    if not factors:
        return WeightSet()
    out = WeightSet(nominal=_product([f[1] for f in factors]))
    for k, (w, _, up, down) in enumerate(factors):
        if not w.varied:
            continue
        others = [f[1] for j, f in enumerate(factors) if j != k]
        out.variations[f"{w.name}Up"] = _product([*others, up])
        out.variations[f"{w.name}Down"] = _product([*others, down])
    return out


def _array(value: Any, n: int | None, name: str, tracing: bool) -> Any:
    if tracing:
        return value
    if np.ndim(value) == 0 and not isinstance(value, ak.Array):
        return np.full(n, float(value))
    array = to_numpy(value, where=f"weight {name!r}").astype(np.float64, copy=False)
    if array.shape != (n,):
        raise ChunkError(f"weight {name!r} returned {array.shape[0] if array.ndim else 'a scalar'} values for {n} events.")
    return array


def _product(arrays: list[Any]) -> Any:
    total = arrays[0]
    for a in arrays[1:]:
        total = total * a
    return total
