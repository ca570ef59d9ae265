"""A small registry of named plugins (executors, sources, ...), with entry-point fallback."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Generic, TypeVar

from highrate.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps short names to lazily imported factories.

    Built-ins are registered as ``"module:attribute"`` strings so that optional dependencies
    are imported only when chosen; third parties register through the entry-point group.
    """

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, str | T] = {}

    def register(self, name: str, target: str | T) -> None:
        self._items[name] = target

    def names(self) -> list[str]:
        found = set(self._items)
        found.update(ep.name for ep in entry_points(group=self.group))
        return sorted(found)

    def get(self, name: str) -> T:
        target = self._items.get(name)
        if target is None:
            for ep in entry_points(group=self.group):
                if ep.name == name:
                    return ep.load()
            raise ConfigError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}."
                + did_you_mean(name, self.names())
            )
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            loaded = getattr(__import__(module, fromlist=[attr]), attr)
            self._items[name] = loaded
            return loaded
        return target

