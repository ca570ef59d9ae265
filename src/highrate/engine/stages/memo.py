"""Stage results of one chunk, remembered by content (docs/caching.md).

Each stage's result is keyed by the key of the events it saw and its own definition
(:class:`Definitions`): the skim's key starts from the chunk's (file identity, entry range,
metadata, versions), each object's from the skim's and the objects before it, the preselection's
from the last object's; quantities, weights, category cuts and histogram inputs hang off the
preselection's key. An edit therefore invalidates its stage and what follows, nothing before.
A result also remembers the files its stage read (corrections, golden JSON): it is used only
while they are unchanged, and their content joins the keys after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any, Generic, TypeVar

from highrate.base.inputs import Notices, digest, reads
from highrate.base.packing import Unpackable, pack, unpack
from highrate.base.store import Corrupt, Entry, Store
from highrate.devices.registry import Stage
from highrate.spec.analysis import Analysis
from highrate.spec.fingerprint import definition_key, stable_repr
from highrate.spec.steps import Cut, Weight

T = TypeVar("T")
KIND = "stages"


def combine(*parts: Any) -> str:
    """A key made of ``parts`` (strings, or anything :func:`stable_repr` describes)."""
    text = "\x1f".join(p if isinstance(p, str) else stable_repr(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


class Definitions:
    """The definition keys of an analysis' steps, each worked out once."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self._functions: dict[int, str] = {}

    def function(self, fn: Any) -> str:
        found = self._functions.get(id(fn))
        if found is None:
            found = self._functions[id(fn)] = (
                fn.key(definition_key) if isinstance(fn, Stage) else definition_key(fn))
        return found

    def cut(self, cut: Cut) -> str:
        return combine("cut", cut.name, cut.params, self.function(cut.function))

    def cuts(self, cuts: tuple[Cut, ...]) -> str:
        return combine(*(self.cut(c) for c in cuts))

    def weights(self, weights: tuple[Weight, ...]) -> str:
        return combine(*(combine(w.name, w.params, w.mc_only, w.varied, self.function(w.function)) for w in weights))


class SeenMeta(Mapping[str, Any]):
    """A dataset's metadata that tells the stages computing under :meth:`StageMemo._compute` which
    keys they read: a result is kept with those keys' values, and used while they are the same
    (a changed cross-section recomputes the weights that read it, not the skim)."""

    keys = Notices()  # ``SeenMeta.keys.collect()``: the keys read while the block runs

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self._meta = meta

    def _note(self, keys: Iterable[str]) -> None:
        self.keys.note(keys)

    def __getitem__(self, key: str) -> Any:
        self._note((key,))
        return self._meta[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._note((key,))
        return key in self._meta

    def __iter__(self) -> Iterator[str]:
        self._note(self._meta)
        return iter(self._meta)

    def __len__(self) -> int:
        self._note(self._meta)
        return len(self._meta)

    def values_of(self, keys: Iterable[str]) -> dict[str, str]:
        """The keys' values as the cache compares them (absent keys included: adding one counts)."""
        return {k: stable_repr(self._meta.get(k, _ABSENT)) for k in sorted(keys)}


_ABSENT = "<absent>"


class Later(Generic[T]):
    """A value worked out when first asked for: a stage result the cache holds is loaded only
    if a later stage needs it (a re-binned histogram loads its inputs, not the events')."""

    __slots__ = ("_make", "_value")

    def __init__(self, make: Callable[[], T] | None) -> None:
        self._make = make

    @classmethod
    def now(cls, value: T) -> Later[T]:
        done: Later[T] = cls(None)
        done._value = value
        return done

    def get(self) -> T:
        if self._make is not None:
            self._value = self._make()
            self._make = None
        return self._value

    def take(self) -> T:
        """The value, forgotten here (the caller is its last user: its memory can go with it)."""
        value = self.get()
        del self._value
        return value


class StageMemo:
    """Looks up and stores one chunk's stage results; counts hits, misses and bytes per stage.

    ``chain`` is the key of the events the next stage sees: :meth:`step` (skim, each object, the
    preselection) moves it on, :meth:`leaf` (quantities, weights, cuts, fill values) does not.
    A stage the cache lacks is computed at once (its key is needed, with the files it read); one
    it holds is loaded when first used.
    """

    def __init__(self, store: Store | None, base: str, definitions: Definitions | None,
                 behavior: Mapping[Any, Any] | None = None, meta: SeenMeta | None = None) -> None:
        self.store = store
        self.meta = meta if meta is not None else SeenMeta({})
        self.chain = base
        self.definitions = definitions
        self.behavior = behavior
        self.stats: dict[str, dict[str, int]] = {}
        self.last = base  # the key after the latest stage looked up (its files' content included)
        self.files: dict[str, str | None] = {}  # every file the stages read, with its digest
        self.meta_read: set[str] = set()  # every metadata key the stages read

    @property
    def active(self) -> bool:
        return self.store is not None

    def step(self, stage: str, parts: tuple[Any, ...], compute: Callable[[], T],
             encode: Callable[[T], Any] = lambda v: v, decode: Callable[[Any], T] = lambda v: v) -> Later[T]:
        if self.store is None:
            return Later.now(compute())
        value, self.chain = self._cached(stage, combine(self.chain, stage, *parts), compute, encode, decode)
        self.last = self.chain
        return value

    def leaf(self, stage: str, parts: tuple[Any, ...], compute: Callable[[], T],
             encode: Callable[[T], Any] = lambda v: v, decode: Callable[[Any], T] = lambda v: v) -> T:
        if self.store is None:
            return compute()
        value, self.last = self._cached(stage, combine(self.chain, stage, *parts), compute, encode, decode)
        return value.get()

    def _count(self, stage: str, what: str, amount: int = 1) -> None:
        counts = self.stats.setdefault(stage, {"hits": 0, "misses": 0, "bytes_read": 0, "bytes_written": 0})
        counts[what] += amount

    def _cached(self, stage: str, key: str, compute: Callable[[], T], encode: Callable[[T], Any],
                decode: Callable[[Any], T]) -> tuple[Later[T], str]:
        """(the value, the key of what follows it: ``key`` and the content of the files it read)."""
        assert self.store is not None
        entry = self.store.get(KIND, key)
        if entry is not None:
            files, meta = entry.header["files"], entry.header["meta"]
            if all(digest(path) == sha for path, sha in files.items()) and self.meta.values_of(meta) == meta:
                self._count(stage, "hits")
                self.files.update(files)
                self.meta_read.update(meta)
                return (Later(partial(self._load, stage, key, entry, compute, encode, decode)),
                        _after(key, files, meta))
        value, files, meta = self._compute(stage, key, compute, encode)
        return Later.now(value), _after(key, files, meta)

    def _load(self, stage: str, key: str, entry: Entry, compute: Callable[[], T], encode: Callable[[T], Any],
              decode: Callable[[Any], T]) -> T:
        try:
            arrays = entry.arrays()
        except Corrupt:  # deleted, with a warning: worked out again and stored anew
            return self._compute(stage, key, compute, encode)[0]  # (the same files and keys: the same key after)
        self._count(stage, "bytes_read", entry.nbytes)
        return decode(unpack(entry.header["value"], arrays, self.behavior))

    def _compute(self, stage: str, key: str, compute: Callable[[], T],
                 encode: Callable[[T], Any]) -> tuple[T, dict[str, str | None], dict[str, str]]:
        assert self.store is not None
        self._count(stage, "misses")
        with reads() as read, SeenMeta.keys.collect() as keys:
            value = compute()
        files = {path: digest(path) for path in sorted(read)}
        meta = self.meta.values_of(keys)
        self.files.update(files)
        self.meta_read.update(keys)
        try:
            tree, arrays = pack(encode(value))
        except Unpackable:
            return value, files, meta  # kept nowhere: computed again next time
        header = {"files": files, "meta": meta, "value": tree}
        self._count(stage, "bytes_written", self.store.put(KIND, key, header, arrays))
        return value, files, meta


def _after(key: str, files: Mapping[str, str | None], meta: Mapping[str, str]) -> str:
    """The key of what follows a stage: its own, and the files and metadata it read as they were."""
    if not files and not meta:
        return key
    return combine(key, *(f"{p}={s}" for p, s in files.items()), *(f"{k}:{v}" for k, v in meta.items()))


NO_MEMO = StageMemo(None, "", None)
