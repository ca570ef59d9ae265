"""Event weights: the product of the weight factors, and that product with one factor varied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from highrate.engine.quantities import to_numpy
from highrate.errors import UnknownQuantityError
from highrate.spec.steps import Weight
from highrate.spec.usercode import returned


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
                raise returned(f"weight {w.name!r}", w.function, f"returned {_what(value)}",
                               "A varied weight (varied=True) must return (nominal, up, down).", tracing=tracing)
            nom, up, down = (_array(v, n, w, tracing) for v in value)
        else:
            nom, up, down = _array(value, n, w, tracing), None, None
        factors.append((w, nom, up, down))
    if not factors:
        return WeightSet()
    out = WeightSet(nominal=_product([f[1] for f in factors]))
    if tracing:  # what the weights read is known from their factors: one product per variation
        # would only cost typetracer work (half of a trace with many varied weights)
        out.variations = {f"{w.name}{side}": out.nominal for w, *_ in factors if w.varied for side in ("Up", "Down")}
        return out
    for k, (w, _, up, down) in enumerate(factors):
        if not w.varied:
            continue
        others = [f[1] for j, f in enumerate(factors) if j != k]
        out.variations[f"{w.name}Up"] = _product([*others, up])
        out.variations[f"{w.name}Down"] = _product([*others, down])
    return out


def _array(value: Any, n: int | None, w: Weight, tracing: bool) -> Any:
    if tracing:
        if isinstance(value, ak.Array) and value.ndim > 1:
            raise returned(f"weight {w.name!r}", w.function, f"returned {_what(value)}", MUST, tracing=True)
        return value
    if np.ndim(value) == 0 and not isinstance(value, ak.Array):
        return np.full(n, float(value))
    try:
        array = to_numpy(value, where=f"weight {w.name!r}").astype(np.float64, copy=False)
    except UnknownQuantityError as err:  # a jagged or record array
        raise returned(f"weight {w.name!r}", w.function, f"returned {_what(value)}", MUST) from err
    if array.shape != (n,):
        raise returned(f"weight {w.name!r}", w.function, f"returned {array.shape[0] if array.ndim else 'a scalar'} "
                       f"values for {n} events", MUST)
    return array


MUST = "A weight must return one number per event it is given (or one number for all of them)."


def _what(value: Any) -> str:
    if isinstance(value, ak.Array):
        return f"{getattr(value.type, 'content', value.type)} per event"
    return f"a {type(value).__name__}"


def _product(arrays: list[Any]) -> Any:
    total = arrays[0]
    for a in arrays[1:]:
        total = total * a
    return total
