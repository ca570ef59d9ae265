"""The named steps of an analysis: cuts, weights and shape variations, and how a user's
function of the events is called (``(events)``, ``(events, params)`` or ``(events, params, meta)``).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from highrate.devices.registry import is_stage_name
from highrate.errors import ConfigError


def positional_count(function: Callable[..., Any]) -> int:
    """How many positional arguments ``function`` takes (4 for ``*args``)."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 4
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])



def arity(function: Callable[..., Any], what: str) -> int:
    if not callable(function):
        raise ConfigError(f"{what}: expected a function of the events, got {type(function).__name__}.")
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 1
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 3
    if not 1 <= len(positional) <= 3:
        raise ConfigError(f"{what}: the function must take (events), (events, params) or (events, params, meta).")
    return len(positional)



def fill_arity(function: Any, what: str) -> None:
    """A histogram's fill must be called as ``fill(values, weights, histogram)``."""
    if not callable(function):
        raise ConfigError(f"{what}: {function!r} is neither a registered stage ('namespace::stage', e.g. "
                          "'highrate::fill') nor a function.")
    try:
        inspect.signature(function).bind(None, None, None)
    except TypeError:
        raise ConfigError(f"{what}: the function must take (values, weights, histogram).") from None
    except ValueError:  # not inspectable (a builtin): called as it is
        pass


def call_with(function: Callable[..., Any], nargs: int, events: Any, params: Any, meta: Any) -> Any:
    """Call a stage function with as many of (events, params, meta) as it takes."""
    if nargs == 1:
        return function(events)
    return function(events, params) if nargs == 2 else function(events, params, meta)



@dataclass(frozen=True)
class _Step:
    """A named function of the events with fixed parameters."""

    name: str
    function: Callable[..., Any] | str  # or a registered stage's name, resolved by the Analysis
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{type(self).__name__} needs a non-empty name, got {self.name!r}.")
        if is_stage_name(self.function):
            return  # the Analysis holding it puts the registered stage in its place
        object.__setattr__(self, "_nargs", arity(self.function, f"{type(self).__name__} {self.name!r}"))

    def __call__(self, events: Any, meta: Mapping[str, Any]) -> Any:
        if isinstance(self.function, str):
            raise unresolved(f"{type(self).__name__} {self.name!r}", self.function)
        return call_with(self.function, self._nargs, events, self.params, meta)  # type: ignore[attr-defined]


def unresolved(where: str, name: str) -> ConfigError:
    """A step naming a registered stage was called outside an Analysis, which resolves the name."""
    return ConfigError(f"{where} names the stage {name!r}: use it in an Analysis, which finds the stage.")



@dataclass(frozen=True)
class Cut(_Step):
    """A named selection: ``function`` returns a boolean mask per event."""



@dataclass(frozen=True)
class Weight(_Step):
    """A per-event weight factor (or a number, e.g. a normalisation); ``mc_only`` weights are 1
    for data. With ``varied=True`` the function returns ``(nominal, up, down)`` and histograms
    are also filled as ``{name}Up`` / ``{name}Down`` with that factor replaced."""

    mc_only: bool = True
    varied: bool = False



@dataclass(frozen=True)
class ShapeVariation:
    """A systematic shift of objects (jet energy scale, resolution, ...), up and down.

    ``function(events, direction)``, ``function(events, direction, meta)`` or
    ``function(events, direction, meta, shared)`` with direction ``"up"`` or ``"down"`` returns
    a mapping of event fields to replace, e.g. ``{"Jet": shifted_jets, "MET": shifted_met}``.
    Objects, preselection, quantities, categories and weights are then recomputed on the
    shifted events (objects only when they depend on a replaced field) and histograms filled as
    ``{name}Up`` / ``{name}Down``. ``shared`` is one dict per chunk for both directions: work
    they have in common (an uncertainty, smearing numbers) is computed once and kept there.
    """

    name: str
    function: Callable[..., Any] | str  # or a registered stage's name, resolved by the Analysis
    mc_only: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_]\w*", self.name or ""):
            raise ConfigError(f"shape variation name {self.name!r} must be a simple identifier.")
        if is_stage_name(self.function):
            return
        n = positional_count(self.function)
        if not callable(self.function) or not 2 <= n <= 4:
            raise ConfigError(
                f"shape variation {self.name!r}: the function takes (events, direction[, meta[, shared]])."
            )
        object.__setattr__(self, "_nargs", n)

    def __call__(
        self, events: Any, direction: str, meta: Mapping[str, Any], shared: dict[str, Any] | None = None
    ) -> Mapping[str, Any]:
        if isinstance(self.function, str):
            raise unresolved(f"shape variation {self.name!r}", self.function)
        args = (events, direction, meta, {} if shared is None else shared)[: self._nargs]  # type: ignore[attr-defined]
        return self.function(*args)
