"""Read the needed branches of one entry range of an RNTuple as flat numpy arrays.

The answer is the TTree reader's: flat branches as they are, a collection's values as its flat
content, counters as items per entry. Only the needed columns' pages holding the range are read
(one ``pread`` per run of adjacent pages locally, one batch of requests per chunk remotely),
each decompressed once, straight into the output where its encoding allows. A collection's
offsets column is decoded once per chunk however many branches share it (ROOT's importer
projects every ``Muon_*`` branch onto one). A collection counted by a separate integer field
(``nMuon`` beside ``Muon_pt``'s own offsets, as uproot writes them) is sized by that field
over whole clusters, its offsets unread, and its total checked, as the TTree reader does; a
chunk that cuts a cluster decodes the offsets and checks them entry by entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import awkward as ak
import numpy as np

from highrate.data.io.baskets import FetchStats, fetch_ranges
from highrate.data.io.deferred import Deferred
from highrate.data.io.files import OpenTree
from highrate.data.io.opening import remote_error
from highrate.data.io.pages import ColumnLayout, cluster_counts, decode, read_local
from highrate.data.io.rntuple import FieldLayout
from highrate.errors import InputFileError, MissingBranchError, did_you_mean


def read_ntuple(
    handle: OpenTree, branches: Sequence[str], start: int, stop: int, *, where: str, defer: Sequence[str] = ()
) -> tuple[dict[str, np.ndarray], int, FetchStats, Deferred]:
    """:func:`~highrate.data.io.reader.read_columns_costed` for an RNTuple: (arrays, compressed
    bytes of the pages read, what a remote fetch cost, the late branches of ``defer``)."""
    layouts: dict[str, FieldLayout] = handle.layouts
    missing = [b for b in branches if b not in layouts]
    if missing:
        raise MissingBranchError(
            f"{where}: branch {missing[0]!r} is not in the file"
            + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "." + did_you_mean(missing[0], list(layouts))
        )
    if stop <= start:
        return {b: np.empty(0, dtype=layouts[b].dtype) for b in branches}, 0, FetchStats(), Deferred(start, start, where)
    chunk = _Chunk(handle, start, stop, where)
    wanted = list(dict.fromkeys(branches))
    counters = {layouts[b].counter for b in wanted if layouts[b].counter}
    late = {b for b in defer if b in layouts and b not in counters and layouts[b].fast and layouts[b].kind != "counts"}
    slow = [b for b in wanted if not layouts[b].fast]
    # counters first: a collection counted by a separate field needs no offsets of its own
    fast = [b for b in dict.fromkeys([*(c for c in counters if layouts[c].fast), *wanted]) if layouts[b].fast]
    out = _read_with_uproot(handle.ttree, {b: layouts[b] for b in slow}, start, stop, where) if slow else {}
    chunk.prefetch([(layouts[b], _separate(layouts[b], layouts)) for b in fast])
    spans: dict[str, tuple[int, int]] = {}
    for name in fast:
        layout = layouts[name]
        if layout.kind == "counts":
            counts, _, _ = chunk.collection(name, layout.offsets)
            out[name] = counts.astype(layout.dtype, copy=False)
        else:
            spans[name] = chunk.value_range(name, layout, _separate(layout, layouts))
    chunk.fetch([(layouts[n].values, lo, hi) for n, (lo, hi) in spans.items()])  # what the offsets told
    deferred = Deferred(start, stop, where)
    for name, (lo, hi) in spans.items():
        layout = layouts[name]
        assert layout.values is not None
        if name in late:
            chunk.note(layout.values, lo, hi)
            raws = None if chunk.fetched is None else chunk.stored(layout.values, lo, hi)
            deferred.add(name, partial(_late, layout.values, raws, lo, hi), handle.fd if raws is None else None)
        else:
            out[name] = chunk.decoded(name, layout.values, lo, hi)
        if layout.kind == "jagged" and layout.counter in out:
            _check_counter(name, layout, chunk, out[layout.counter], hi - lo, layouts, where)
    return {b: out[b] for b in wanted if b not in deferred}, chunk.nbytes(), chunk.stats, deferred


class _Chunk:
    """One entry range of one file: its pages, fetched once, and its collections' counts."""

    def __init__(self, handle: OpenTree, start: int, stop: int, where: str) -> None:
        self.handle, self.start, self.stop, self.where = handle, start, stop, where
        self.fetched: dict[tuple[int, int], Any] | None = None if handle.fd is not None else {}
        self.stats = FetchStats()
        self._spans: dict[int, tuple[ColumnLayout, int, int]] = {}  # column -> its range read
        self._collections: dict[int, tuple[np.ndarray, int, int]] = {}

    def prefetch(self, layouts: list[tuple[FieldLayout, bool]]) -> None:
        """A remote file's pages of these branches (each with whether a separate field counts
        it) in one batch. A collection's values come too when the chunk's ends are cluster
        boundaries (else they wait for its offsets), and then its offsets only where nothing
        else counts it (see :meth:`value_range`)."""
        if self.fetched is None:
            return
        wanted = []
        for layout, separate in layouts:
            aligned = self._aligned(layout.offsets)
            if layout.offsets is not None and not (layout.kind == "jagged" and separate and aligned):
                wanted.append((layout.offsets, *self._offsets_range(layout.offsets)))
            if layout.kind == "flat":
                wanted.append((layout.values, self.start, self.stop))
            elif layout.kind == "jagged" and aligned:
                assert layout.offsets is not None and layout.values is not None
                c0, c1 = (int(np.searchsorted(layout.offsets.clusters, e)) for e in (self.start, self.stop))
                wanted.append((layout.values, int(layout.values.clusters[c0]), int(layout.values.clusters[c1])))
        self.fetch(wanted)

    def fetch(self, wanted: list[tuple[ColumnLayout | None, int, int]]) -> None:
        """A remote file's pages of these ranges not fetched yet, in one batch."""
        if self.fetched is None:
            return
        ranges = [r for column, lo, hi in wanted if column is not None for r in column.ranges(lo, hi)
                  if r not in self.fetched]
        if not ranges:
            return
        try:
            data, stats = fetch_ranges(self.handle.ttree.file.source, ranges)
        except Exception as err:
            raise remote_error(self.handle.url, err) from err
        self.fetched.update(data)
        self.stats = FetchStats(self.stats.bytes + stats.bytes, self.stats.requests + stats.requests)

    def stored(self, column: ColumnLayout, lo: int, hi: int) -> list[Any]:
        """The stored pages holding elements ``[lo, hi)`` of ``column`` (read or fetched now)."""
        self.note(column, lo, hi)
        if self.fetched is None:
            return read_local(column, self.handle.fd, lo, hi)
        self.fetch([(column, lo, hi)])
        return [self.fetched[r] for r in column.ranges(lo, hi)]

    def note(self, column: ColumnLayout, lo: int, hi: int) -> None:
        """Count the pages of ``[lo, hi)`` as read (each column's once)."""
        lo0, hi0 = self._spans.get(column.column, (column, lo, hi))[1:]
        self._spans[column.column] = (column, min(lo, lo0), max(hi, hi0))

    def decoded(self, name: str, column: ColumnLayout, lo: int, hi: int) -> np.ndarray:
        return _checked(name, self.where, lambda: decode(column, self.stored(column, lo, hi), lo, hi))

    def _aligned(self, offsets: ColumnLayout | None) -> bool:
        return offsets is not None and all(e in offsets.clusters for e in (self.start, self.stop))

    def _offsets_range(self, offsets: ColumnLayout) -> tuple[int, int]:
        """Entries whose offsets are decoded: the chunk's, and the one before it unless the
        chunk starts a cluster (offsets count from each cluster's start)."""
        if self.start in offsets.clusters:
            return self.start, self.stop
        return self.start - 1, self.stop

    def collection(self, name: str, offsets: ColumnLayout | None) -> tuple[np.ndarray, int, int]:
        """(items per entry of the chunk, items of the first entry's cluster before the chunk,
        that cluster's index) for a collection, from its offsets column, decoded once."""
        assert offsets is not None
        found = self._collections.get(offsets.column)
        if found is None:
            lo, hi = self._offsets_range(offsets)
            ends = self.decoded(name, offsets, lo, hi) if hi > lo else np.zeros(0, dtype=np.int64)
            counts = cluster_counts(ends, lo, offsets.clusters)
            before = int(ends[0]) if lo < self.start else 0
            cluster = int(np.searchsorted(offsets.clusters, self.start, side="right")) - 1
            found = self._collections[offsets.column] = (counts[self.start - lo :], before, cluster)
        return found

    def value_range(self, name: str, layout: FieldLayout, separate: bool) -> tuple[int, int]:
        """The elements of the branch's values column that hold the chunk. A chunk of whole
        clusters needs no offsets when a ``separate`` field counts the collection: the
        TTree reader trusts its counter the same way (both check the total)."""
        if layout.kind == "flat":
            return self.start, self.stop
        assert layout.values is not None and layout.offsets is not None
        if separate and self._aligned(layout.offsets) and layout.offsets.column not in self._collections:
            c0, c1 = (int(np.searchsorted(layout.offsets.clusters, e)) for e in (self.start, self.stop))
            return int(layout.values.clusters[c0]), int(layout.values.clusters[c1])
        counts, before, cluster = self.collection(name, layout.offsets)
        lo = int(layout.values.clusters[min(cluster, len(layout.values.clusters) - 1)]) + before
        hi = lo + int(counts.sum())
        if hi > int(layout.values.pages[-1]):
            raise InputFileError(f"{self.where}: branch {name!r}: its offsets point past its values "
                                 f"({hi} of {int(layout.values.pages[-1])}); the file is corrupt.")
        return lo, hi

    @property
    def decoded_collections(self) -> set[int]:
        return set(self._collections)

    def nbytes(self) -> int:
        return sum(column.stored_bytes(lo, hi) for column, lo, hi in self._spans.values())


def _late(column: ColumnLayout, raws: list[Any] | None, lo: int, hi: int, fd: int | None) -> np.ndarray:
    """A late branch's values; a local file's pages are read now."""
    if raws is None:
        assert fd is not None
        raws = read_local(column, fd, lo, hi)
    return decode(column, raws, lo, hi)


def _separate(layout: FieldLayout, layouts: dict[str, FieldLayout]) -> bool:
    """Whether a collection is counted by a field other than its own offsets (``nMuon`` beside
    ``Muon_pt``, as uproot writes them) rather than from them (ROOT's cardinality fields)."""
    counting = layouts.get(layout.counter or "")
    if counting is None or layout.offsets is None:
        return False
    return not (counting.kind == "counts" and counting.offsets is not None
                and counting.offsets.column == layout.offsets.column)


def _check_counter(name: str, layout: FieldLayout, chunk: _Chunk, counter: np.ndarray, items: int,
                   layouts: dict[str, FieldLayout], where: str) -> None:
    """A collection's own offsets must agree with the separate field that counts it: entry by
    entry where they were decoded, else in total."""
    if not _separate(layout, layouts):
        return  # both from the same offsets
    assert layout.offsets is not None
    if layout.offsets.column not in chunk.decoded_collections:
        total = int(counter.sum())
        if total != items:
            raise InputFileError(f"{where}: branch {name!r} has {items} values but its counter "
                                 f"{layout.counter!r} counts {total}; the file is inconsistent.")
        return
    own = chunk.collection(name, layout.offsets)[0]
    if not np.array_equal(own, counter):
        bad = int(np.flatnonzero(own != counter)[0])
        raise InputFileError(
            f"{where}: branch {name!r} has {int(own[bad])} values at entry {chunk.start + bad} but its counter "
            f"{layout.counter!r} says {int(counter[bad])}; the file is inconsistent."
        )


def _checked(name: str, where: str, step: Any) -> Any:
    """``step()``; a failure becomes an InputFileError naming the branch and the chunk."""
    try:
        return step()
    except InputFileError:
        raise
    except Exception as err:
        raise InputFileError(f"{where}: reading branch {name!r} failed: {type(err).__name__}: {err}") from err


def _read_with_uproot(ntuple: Any, layouts: dict[str, FieldLayout], start: int, stop: int,
                      where: str) -> dict[str, np.ndarray]:
    """Branches whose columns the page reader does not decode, through uproot."""
    out: dict[str, np.ndarray] = {}
    for name, layout in layouts.items():
        try:
            array = ntuple[layout.path].array(entry_start=start, entry_stop=stop)
        except Exception as err:
            raise InputFileError(f"{where}: reading branch {name!r} failed: {type(err).__name__}: {err}") from err
        if layout.kind == "counts":  # a collection (its counts), or a cardinality field
            counts = ak.num(array, axis=1) if array.ndim > 1 else array
            out[name] = ak.to_numpy(counts).astype(layout.dtype)
        elif layout.kind == "jagged":
            out[name] = ak.to_numpy(ak.flatten(array, axis=None)).astype(layout.dtype, copy=False)
        else:
            out[name] = ak.to_numpy(array).astype(layout.dtype, copy=False)
    return out


def ntuple_bytes(layouts: dict[str, FieldLayout], branches: Sequence[str]) -> int:
    """Compressed bytes of these branches' pages over the whole file (a shared column once)."""
    columns = {c.column: c for b in branches if b in layouts for c in (layouts[b].values, layouts[b].offsets)
               if c is not None}
    return sum(int(c.nbytes.sum()) for c in columns.values())
