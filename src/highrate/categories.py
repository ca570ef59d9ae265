"""Category helpers: cartesian products of cut groups."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from highrate.errors import ConfigError
from highrate.spec.steps import Cut


def cartesian(groups: Mapping[str, Mapping[str, Sequence[Cut]]], *, sep: str = "_") -> dict[str, tuple[Cut, ...]]:
    """Every combination of one entry per group, e.g. ``{"nb": {"0b": [...], "1b": [...]},
    "flavour": {"mm": [...], "ee": [...]}}`` → ``0b_mm``, ``0b_ee``, ``1b_mm``, ``1b_ee``.

    Each cut is still evaluated once per chunk however many categories share it.
    """
    if not groups or any(not entries for entries in groups.values()):
        raise ConfigError("cartesian categories need at least one group, each with at least one entry.")
    out: dict[str, tuple[Cut, ...]] = {}
    for combo in itertools.product(*(entries.items() for entries in groups.values())):
        name = sep.join(label for label, _ in combo)
        out[name] = tuple(cut for _, cuts in combo for cut in cuts)
    return out
