"""What an analysis fills and saves: histograms of named quantities, and per-event columns.

A quantity is a name of ``Analysis.quantities``, an event field (``MET.pt``), every object of a
collection (``JetGood.pt``), the n-th object (``MuonGood.pt[0]``) or a multiplicity (``nJetGood``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from highrate.errors import ConfigError, UnknownQuantityError, did_you_mean

QUANTITY_PATTERN = re.compile(r"^(?P<base>[A-Za-z_]\w*)(?:\.(?P<field>[A-Za-z_]\w*))?(?:\[(?P<index>\d+)\])?$")



@dataclass(frozen=True)
class Axis:
    """A histogram axis filled from a named quantity.

    ``quantity`` is one of: a quantity defined in ``Analysis.quantities`` (``"mll"``), an event
    field (``"genWeight"``, ``"MET.pt"``), every object of a collection (``"JetGood.pt"``), the
    n-th object (``"MuonGood.pt[0]"``; events without it do not fill), or a multiplicity
    (``"nJetGood"``).
    """

    quantity: str
    bins: int | None = None
    start: float | None = None
    stop: float | None = None
    edges: tuple[float, ...] | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if not QUANTITY_PATTERN.match(self.quantity):
            raise ConfigError(
                f"axis quantity {self.quantity!r} is not of the form 'name', 'Coll.field' or 'Coll.field[i]'."
            )
        if self.edges is None and (self.bins is None or self.start is None or self.stop is None):
            raise ConfigError(f"axis {self.quantity!r}: give bins, start, stop (regular) or edges (variable).")
        if self.edges is None and (self.bins <= 0 or not self.stop > self.start):  # type: ignore[operator]
            raise ConfigError(f"axis {self.quantity!r}: need bins > 0 and stop > start.")



@dataclass(frozen=True)
class Histogram:
    """A histogram with weighted storage; ``axes`` are filled from named quantities.

    It is filled in every category, or only in ``categories`` (names of
    ``Analysis.categories``) when given: ``Histogram("m_bjj", Axis(...), categories=["4j2b"])``.

    ``fill`` names a registered stage (``"highrate::fill"``, or one of the analysis' own, with a
    GPU version if it has one) or gives a function that fills it instead of the engine's binning:
    called as ``fill(values, weights, histogram)`` per category and weight variation, it returns
    the sums of weights and squared weights per flow bin (see :mod:`highrate.devices.fills`).
    """

    name: str
    axes: tuple[Axis, ...]
    categories: tuple[str, ...] | None = None  # None: every category
    fill: Any = None  # None: the engine's binning; else a stage name, a Stage or a function

    def __init__(self, name: str, axes: Sequence[Axis] | Axis, categories: Sequence[str] | str | None = None,
                 fill: Any = None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "fill", fill)
        if fill is not None and not (isinstance(fill, str) or callable(fill)):
            raise ConfigError(f"histogram {name!r}: fill must name a stage ('highrate::fill') or be a function, "
                              f"not a {type(fill).__name__}.")
        object.__setattr__(self, "axes", (axes,) if isinstance(axes, Axis) else tuple(axes))
        if not re.fullmatch(r"[A-Za-z_][\w\-]*", name):
            raise ConfigError(f"histogram name {name!r} must be a simple identifier (it becomes a ROOT path).")
        if not self.axes:
            raise ConfigError(f"histogram {name!r} has no axes.")
        if categories is not None:
            categories = (categories,) if isinstance(categories, str) else tuple(categories)
            if not categories or not all(isinstance(c, str) for c in categories):
                raise ConfigError(f"histogram {name!r}: categories must be a non-empty list of category names "
                                  "(leave it out to fill every category).")
        object.__setattr__(self, "categories", categories)

    def __repr__(self) -> str:  # as before categories existed when there are none: the analysis hash keeps
        restricted = "" if self.categories is None else f", categories={self.categories!r}"
        if self.fill is not None:  # by name: the analysis hash adds the fill's code
            restricted += f", fill={getattr(self.fill, 'name', None) or _label(self.fill)!r}"
        return f"Histogram(name={self.name!r}, axes={self.axes!r}{restricted})"

    def without_fill(self) -> Histogram:
        """This definition filled by the engine: what a filled histogram carries back to the client
        (no function travels with results)."""
        return self if self.fill is None else Histogram(self.name, self.axes, self.categories)

    def fills(self, category: str) -> bool:
        """Whether the histogram is filled in ``category``."""
        return self.categories is None or category in self.categories



@dataclass(frozen=True)
class Columns:
    """Per-event columns saved for the events of some categories, one Parquet file per chunk.

    ``fields`` maps an output column to a quantity (same names as histogram axes; a missing
    n-th object gives NaN, a whole collection a list). Each file also has ``weight`` (the
    nominal event weight) and one boolean ``category_{name}`` column per category.
    """

    fields: Mapping[str, str]
    categories: tuple[str, ...] | None = None  # None: every category

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", dict(self.fields))
        if self.categories is not None:
            object.__setattr__(self, "categories", tuple(self.categories))
        for name, quantity in self.fields.items():
            if not QUANTITY_PATTERN.match(quantity):
                raise ConfigError(f"column {name!r}: quantity {quantity!r} is not 'name', 'Coll.field' or 'Coll.field[i]'.")



def _label(function: Any) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', type(function).__name__)}"


def resolve_quantity_name(quantity: str, *, fields: Sequence[str], quantities: Sequence[str], where: str) -> None:
    """Check that ``quantity``'s base name exists; raise with close matches if not."""
    m = QUANTITY_PATTERN.match(quantity)
    assert m is not None
    base = m["base"]
    known = [*quantities, *fields, *(f"n{f}" for f in fields)]
    if base not in known:
        raise UnknownQuantityError(f"{where}: unknown quantity {base!r}." + did_you_mean(base, known))
