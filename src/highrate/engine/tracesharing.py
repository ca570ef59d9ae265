"""One trace for the datasets of a run whose traces must come out the same.

Tracing runs the analysis on typetracers, once per dataset: 0.1-0.3 s each, before the first
chunk. Datasets with the same branches differ to the analysis only in their metadata, and most
of that (a cross-section, a sum of generator weights) only scales weights, which changes no
branch read. So the analysis is traced with a :class:`WatchedMeta`: it records every key the
analysis read and how, and a later dataset reuses the trace when it agrees on all of that:

* a string, bool, int, list or absent key read: the same value (``process == "wjets"``);
* a float read only in arithmetic (``xsec * lumi / sum_genweight``): any float. Such a value
  comes as a :class:`MetaFloat`, which turns into a plain float the moment anything looks at
  its value (a comparison, ``bool``, ``hash``, ``str``, numpy's conversion) and then counts as
  read exactly; mixed with arrays it gives its value and stays unseen (the arrays carry no
  values while tracing);
* iterating over the metadata, or copying it: every key and value.

A trace the watched metadata breaks (a ``MetaFloat`` where only a real float works) is done
again with the plain metadata and not shared. Only ``math`` functions read a float without
telling: ``if math.log(meta["xsec"]) > 2`` is not seen, and is documented as the one case an
analysis must not make its reads depend on.
"""

from __future__ import annotations

import logging
import numbers
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from highrate.engine.events import EventSchema
from highrate.engine.stages.recording import Dependencies
from highrate.spec.analysis import Analysis

log = logging.getLogger(__name__)

Traced = tuple[tuple[str, ...], Dependencies]
_ABSENT = object()


class WatchedMeta(Mapping[str, Any]):
    """A dataset's metadata that records which keys the analysis read, and whether it looked at
    the floats' values or only computed with them."""

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self._meta = dict(meta)
        self.exact: dict[str, Any] = {}  # key → the value a sharing dataset must have (_ABSENT: none)
        self.floats: set[str] = set()  # keys whose float values were only computed with
        self.everything = False

    def __getitem__(self, key: str) -> Any:
        if key not in self._meta:
            self.exact[key] = _ABSENT
            raise KeyError(key)
        value = self._meta[key]
        if type(value) is float and key not in self.exact:
            self.floats.add(key)
            return MetaFloat(value, self, frozenset((key,)))
        self.exact[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        self.everything = True
        return iter(self._meta)

    def __len__(self) -> int:
        self.everything = True
        return len(self._meta)

    @property
    def plain(self) -> Mapping[str, Any]:
        """The metadata itself, read without being recorded (for messages)."""
        return self._meta

    def looked(self, keys: frozenset[str]) -> None:
        """The analysis looked at the value computed from ``keys``: they must match exactly."""
        for key in keys:
            self.exact[key] = self._meta[key]

    def admits(self, meta: Mapping[str, Any]) -> bool:
        """Whether the analysis, given ``meta``, reads what it read given this metadata."""
        if self.everything:
            return set(meta) == set(self._meta) and all(_same(meta[k], v) for k, v in self._meta.items())
        if any(not _same(meta.get(k, _ABSENT), v) for k, v in self.exact.items()):
            return False
        return all(type(meta.get(k)) is float for k in self.floats)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # values that do not compare (arrays): not the same
        return False


def _plain(x: Any) -> Any:
    return float.__float__(x) if isinstance(x, MetaFloat) else x


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _arithmetic(op: Callable[[Any, Any], Any], reflected: bool = False) -> Callable[[MetaFloat, Any], Any]:
    def method(self: MetaFloat, other: Any) -> Any:
        a, b = (_plain(other), float.__float__(self)) if reflected else (float.__float__(self), _plain(other))
        if isinstance(other, MetaFloat) or _is_number(other):
            keys = self._keys | other._keys if isinstance(other, MetaFloat) else self._keys
            result = op(a, b)
            return MetaFloat(float(result), self._watch, keys) if isinstance(result, numbers.Real) else result
        if not hasattr(other, "__array_ufunc__") and not hasattr(other, "__array__"):
            self._look()  # something else (a string, a Decimal): its value goes where it cannot be followed
        return op(a, b)  # into an array: no values while tracing

    return method


def _looking(name: str) -> Callable[..., Any]:
    base = getattr(float, name)

    def method(self: MetaFloat, *args: Any) -> Any:
        self._look()
        return base(float.__float__(self), *(_plain(a) for a in args))

    return method


class MetaFloat(float):
    """A float of the metadata while tracing: arithmetic keeps it unseen, looking at it does not."""

    __array_ufunc__ = None  # numpy defers to the reflected operators below, or asks for __float__
    __slots__ = ("_keys", "_watch")

    def __new__(cls, value: float, watch: WatchedMeta, keys: frozenset[str]) -> MetaFloat:
        self = super().__new__(cls, value)
        self._watch, self._keys = watch, keys
        return self

    def _look(self) -> None:
        self._watch.looked(self._keys)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        self._look()
        return np.asarray(float.__float__(self), dtype=dtype)

    def __reduce__(self) -> tuple[Any, ...]:
        self._look()
        return float, (float.__float__(self),)

    def __neg__(self) -> MetaFloat:
        return MetaFloat(-float.__float__(self), self._watch, self._keys)

    def __pos__(self) -> MetaFloat:
        return self

    def __abs__(self) -> MetaFloat:
        return MetaFloat(abs(float.__float__(self)), self._watch, self._keys)

    __hash__ = _looking("__hash__")


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow"):
    setattr(MetaFloat, f"__{_name}__", _arithmetic(getattr(operator, _name)))
    setattr(MetaFloat, f"__r{_name}__", _arithmetic(getattr(operator, _name), reflected=True))

for _name in ("__bool__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__int__", "__float__",
              "__round__", "__trunc__", "__floor__", "__ceil__", "__str__", "__repr__", "__format__",
              "__divmod__", "__rdivmod__", "is_integer", "as_integer_ratio", "hex", "conjugate"):
    setattr(MetaFloat, _name, _looking(_name))


class SharedTraces:
    """``trace(analysis, schema, meta)`` for the datasets of one run, each answer reused for the
    datasets with the same branches whose metadata agree on what the analysis read."""

    def __init__(self, trace: Callable[[Analysis, EventSchema, Mapping[str, Any]], Traced]) -> None:
        self._trace = trace
        self._found: dict[tuple[Any, ...], list[tuple[WatchedMeta, Traced]]] = {}
        self.traced = 0
        self.shared = 0

    def __call__(self, analysis: Analysis, schema: EventSchema, meta: Mapping[str, Any]) -> Traced:
        key = (id(analysis), tuple(sorted((n, b.dtype, b.counter) for n, b in schema.branches.items())))
        for watched, traced in self._found.get(key, ()):
            if watched.admits(meta):
                self.shared += 1
                return traced
        self.traced += 1
        watched = WatchedMeta(meta)
        try:
            traced = self._trace(analysis, schema, watched)
        except Exception:  # a MetaFloat where only a float works, or a real error: the plain metadata says
            log.debug("dataset %r: traced again with its plain metadata", meta.get("dataset"), exc_info=True)
            return self._trace(analysis, schema, meta)
        self._found.setdefault(key, []).append((watched, traced))
        return traced
