"""One trace for the datasets of a run whose traces must come out the same.

Tracing runs the analysis on typetracers, once per dataset: 0.1-0.3 s each, before the first
chunk. Datasets with the same branches differ to the analysis only in their metadata, and most
of that (a cross-section, a sum of generator weights) only scales weights, which changes no
branch read. So the analysis is traced with a :class:`WatchedMeta`: it records every key the
analysis read and how, and a later dataset reuses the trace when it agrees on all of that:

* a string or a float read only in comparisons with constants (``process == "wjets"``,
  ``meta["year"] > 2016.5``): the same outcome of each comparison (a string read and never
  compared, passed to ``open()`` say, must be the same);
* a float read only in arithmetic (``xsec * lumi / sum_genweight``): any float;
* any other use of a string or a float (``hash``, ``str``, slicing, numpy's conversion, a
  comparison of a value computed from several keys), an int, bool, list or absent key: the same
  value;
* iterating over the metadata, or copying it: every key and value.

Strings and floats come as :class:`MetaStr` and :class:`MetaFloat`, which record how they are
used; mixed with arrays a float gives its value and stays unseen (the arrays carry no values
while tracing). A trace the watched metadata breaks (a ``MetaFloat`` where only a real float
works) is done again with the plain metadata and not shared. Only ``math`` functions read a
float without telling: ``if math.log(meta["xsec"]) > 2`` is not seen, and is documented as the
one case an analysis must not make its reads depend on.
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
    """A dataset's metadata that records which keys the analysis read, and how."""

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self._meta = dict(meta)
        self.exact: dict[str, Any] = {}  # key → the value a sharing dataset must have (_ABSENT: none)
        self.floats: set[str] = set()  # keys of floats read (computed with, or compared)
        self.strings: set[str] = set()  # keys of strings read (compared)
        self.compared: list[tuple[str, Callable[[Any, Any], Any], Any, Any]] = []  # (key, op, constant, outcome)
        self.everything = False

    def __getitem__(self, key: str) -> Any:
        if key not in self._meta:
            self.exact[key] = _ABSENT
            raise KeyError(key)
        value = self._meta[key]
        if key not in self.exact:
            if type(value) is float:
                self.floats.add(key)
                return MetaFloat(value, self, frozenset((key,)), key)
            if type(value) is str:
                self.strings.add(key)
                return MetaStr(value, self, key)
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
        if any(type(meta.get(k)) is not float for k in self.floats):
            return False
        if any(type(meta.get(k)) is not str for k in self.strings):
            return False
        # a string read but neither compared nor looked at went where its use cannot be seen
        # (open(), a C library): only the same string is safe
        compared = {k for k, *_ in self.compared}
        if any(not _same(meta[k], self._meta[k]) for k in self.strings - compared):
            return False
        return all(_same(op(meta[k], constant), outcome) for k, op, constant, outcome in self.compared)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # values that do not compare (arrays): not the same
        return False


def _plain(x: Any) -> Any:
    if isinstance(x, MetaFloat):
        return float.__float__(x)
    return str.__str__(x) if isinstance(x, MetaStr) else x


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


def _looking(base: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: MetaFloat | MetaStr, *args: Any, **kwargs: Any) -> Any:
        self._look()
        return base(_plain(self), *(_plain(a) for a in args), **kwargs)

    return method


def _comparing(op: Callable[[Any, Any], Any], kind: type) -> Callable[[Any, Any], Any]:
    def method(self: MetaFloat | MetaStr, other: Any) -> Any:
        outcome = op(_plain(self), _plain(other))
        constant = isinstance(other, kind) and not isinstance(other, (MetaFloat, MetaStr, bool))
        if self._key is not None and constant and outcome is not NotImplemented:
            self._watch.compared.append((self._key, op, _plain(other), outcome))
        else:  # a computed value, or compared with another key's value: both must match exactly
            self._look()
            if isinstance(other, (MetaFloat, MetaStr)):
                other._look()
        return outcome

    return method


class MetaFloat(float):
    """A float of the metadata while tracing: arithmetic and comparisons with constants are
    recorded as such, anything else looks at its value."""

    __array_ufunc__ = None  # numpy defers to the reflected operators below, or asks for __float__
    __slots__ = ("_key", "_keys", "_watch")

    def __new__(cls, value: float, watch: WatchedMeta, keys: frozenset[str], key: str | None = None) -> MetaFloat:
        self = super().__new__(cls, value)
        self._watch, self._keys, self._key = watch, keys, key  # _key: read as it is, not computed
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

    __hash__ = _looking(float.__hash__)


class MetaStr(str):
    """A string of the metadata while tracing: comparisons with constants are recorded, anything
    else (hashing, formatting, slicing, its methods) looks at its value."""

    __slots__ = ("_key", "_watch")

    def __new__(cls, value: str, watch: WatchedMeta, key: str) -> MetaStr:
        self = super().__new__(cls, value)
        self._watch, self._key = watch, key
        return self

    def _look(self) -> None:
        self._watch.looked(frozenset((self._key,)))

    def __reduce__(self) -> tuple[Any, ...]:
        self._look()
        return str, (str.__str__(self),)

    __hash__ = _looking(str.__hash__)


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow"):
    setattr(MetaFloat, f"__{_name}__", _arithmetic(getattr(operator, _name)))
    setattr(MetaFloat, f"__r{_name}__", _arithmetic(getattr(operator, _name), reflected=True))

for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(MetaFloat, f"__{_name}__", _comparing(getattr(operator, _name), numbers.Real))
    setattr(MetaStr, f"__{_name}__", _comparing(getattr(operator, _name), str))

for _name in ("__bool__", "__int__", "__float__", "__round__", "__trunc__", "__floor__", "__ceil__", "__str__",
              "__repr__", "__format__", "__divmod__", "__rdivmod__", "is_integer", "as_integer_ratio", "hex",
              "conjugate"):
    setattr(MetaFloat, _name, _looking(getattr(float, _name)))

for _name in dir(str):  # every method of a string, the operators (+, %, in, [ ]) included
    if _name not in {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__reduce__",
                     "__reduce_ex__", "__new__", "__init__", "__init_subclass__", "__subclasshook__", "__class__",
                     "__getattribute__", "__setattr__", "__delattr__", "__dir__", "__doc__", "__getnewargs__",
                     "__sizeof__", "__str__"} and callable(getattr(str, _name)):
        setattr(MetaStr, _name, _looking(getattr(str, _name)))
MetaStr.__str__ = _looking(str.__str__)  # type: ignore[method-assign]


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
