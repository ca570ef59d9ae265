"""RNTuple pages: where a column's pages are, and their values decoded straight into the output.

A page holds consecutive elements of one column, compressed in ROOT compression blocks (the same
blocks as TTree baskets) and encoded by the column's type: little-endian values as they are, bits
packed eight to a byte, or *split* (all first bytes, then all second bytes, ...), after which
signed integers are zigzag-decoded and collection offsets (index columns) are delta-decoded.
Encodings apply within a page, so pages decode independently. Column types this module does not
decode (reduced-precision floats, switches) have no :class:`ColumnLayout`: uproot reads them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

from highrate.data.io.baskets import decompress_into


@dataclass(frozen=True)
class Encoding:
    """How one column type stores its values."""

    dtype: np.dtype  # of the decoded values (little-endian)
    split: bool = False
    zigzag: bool = False
    delta: bool = False
    bit: bool = False

    @property
    def plain(self) -> bool:
        """Stored as the values themselves: decompressed straight into the output."""
        return not (self.split or self.bit)


def _e(code: str, **kw: bool) -> Encoding:
    return Encoding(np.dtype(code), **kw)


# column types of the RNTuple binary format specification, by their on-disk code
ENCODINGS: dict[int, Encoding] = {
    0x00: _e("?", bit=True), 0x01: _e("u1"), 0x02: _e("u1"), 0x03: _e("i1"), 0x04: _e("u1"),
    0x05: _e("<i2"), 0x06: _e("<u2"), 0x07: _e("<i4"), 0x08: _e("<u4"), 0x09: _e("<i8"), 0x0A: _e("<u8"),
    0x0C: _e("<f4"), 0x0D: _e("<f8"), 0x0E: _e("<i4"), 0x0F: _e("<i8"),
    0x11: _e("<i2", split=True, zigzag=True), 0x12: _e("<u2", split=True),
    0x13: _e("<i4", split=True, zigzag=True), 0x14: _e("<u4", split=True),
    0x15: _e("<i8", split=True, zigzag=True), 0x16: _e("<u8", split=True),
    0x18: _e("<f4", split=True), 0x19: _e("<f8", split=True),
    0x1A: _e("<i4", split=True, delta=True), 0x1B: _e("<i8", split=True, delta=True),
}
INDEX_TYPES = frozenset({0x0E, 0x0F, 0x1A, 0x1B})  # offsets of collections, relative to their cluster


@dataclass(frozen=True)
class ColumnLayout:
    """Where one physical column's pages are, over the whole RNTuple.

    Element indices are global: a column's elements in cluster ``c`` are
    ``[clusters[c], clusters[c + 1])``. For the offsets of a top-level collection, as for any
    top-level field, element ``i`` belongs to entry ``i``.
    """

    column: int  # physical column id: a column shared by several fields is decoded once per chunk
    type: int  # the column type's on-disk code (a key of ENCODINGS)
    pages: np.ndarray  # first element of each page, then the column's length (P + 1)
    seeks: np.ndarray  # where each page starts in the file
    nbytes: np.ndarray  # each page's stored size, without its checksum
    checksum: np.ndarray  # whether an xxhash3 of the stored page follows it
    clusters: np.ndarray  # first element of each cluster, then the column's length (C + 1)

    @property
    def encoding(self) -> Encoding:
        return ENCODINGS[self.type]

    def span(self, lo: int, hi: int) -> tuple[int, int]:
        """First and one-past-last page holding elements of ``[lo, hi)``."""
        if hi <= lo:
            return 0, 0
        first = max(int(np.searchsorted(self.pages, lo, side="right")) - 1, 0)
        return first, int(np.searchsorted(self.pages, hi, side="left"))

    def ranges(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Byte ranges (with checksums) of the pages holding ``[lo, hi)``."""
        first, last = self.span(lo, hi)
        ends = self.seeks + self.nbytes + 8 * self.checksum
        return [(int(a), int(b)) for a, b in zip(self.seeks[first:last], ends[first:last], strict=True)]

    def stored_bytes(self, lo: int, hi: int) -> int:
        first, last = self.span(lo, hi)
        return int(self.nbytes[first:last].sum())


def read_local(column: ColumnLayout, fd: int, lo: int, hi: int) -> list[Any]:
    """The stored pages holding ``[lo, hi)``: one ``pread`` per run of adjacent pages."""
    out: list[Any] = []
    spans = column.ranges(lo, hi)
    i = 0
    while i < len(spans):
        j = i + 1
        while j < len(spans) and spans[j][0] == spans[j - 1][1]:
            j += 1
        block = memoryview(os.pread(fd, spans[j - 1][1] - spans[i][0], spans[i][0]))
        base = spans[i][0]
        out += [block[a - base : b - base] for a, b in spans[i:j]]
        i = j
    return out


def decode(column: ColumnLayout, raws: Sequence[Any], lo: int, hi: int) -> np.ndarray:
    """Elements ``[lo, hi)`` of the column from its stored pages ``raws`` (as :meth:`ColumnLayout.ranges`
    lists them), in this machine's byte order. Index columns keep their cluster-relative values."""
    enc = column.encoding
    out = np.empty(max(hi - lo, 0), dtype=enc.dtype.newbyteorder("="))
    first, last = column.span(lo, hi)
    if len(raws) != last - first:
        raise ValueError(f"{len(raws)} pages given for elements [{lo}, {hi}), which span {last - first}")
    for p, raw in zip(range(first, last), raws, strict=True):
        a, b = int(column.pages[p]), int(column.pages[p + 1])
        s, e = max(lo, a), min(hi, b)
        try:
            stored = _verified(column, p, raw)
            if s == a and e == b:
                _decode_page(enc, stored, b - a, out[s - lo : e - lo])
            else:  # the chunk starts or ends inside this page
                whole = np.empty(b - a, dtype=out.dtype)
                _decode_page(enc, stored, b - a, whole)
                out[s - lo : e - lo] = whole[s - a : e - a]
        except Exception as err:
            raise ValueError(
                f"page {p} of column {column.column} (elements [{a}, {b}), {int(column.nbytes[p])} bytes at byte "
                f"{int(column.seeks[p])}) is corrupt: {err}"
            ) from err
    return out


def _verified(column: ColumnLayout, p: int, raw: Any) -> memoryview:
    """The stored page, its checksum checked where it has one."""
    n = int(column.nbytes[p])
    view = memoryview(raw)
    if len(view) < n + 8 * bool(column.checksum[p]):
        raise ValueError(f"truncated: {len(view)} of {n} bytes")
    if column.checksum[p] and xxhash.xxh3_64_intdigest(view[:n]) != int.from_bytes(view[n : n + 8], "little"):
        raise ValueError("its checksum does not match")
    return view[:n]


def _decode_page(enc: Encoding, stored: memoryview, n: int, out: np.ndarray) -> None:
    """The page's ``n`` elements into ``out`` (native byte order, ``n`` long)."""
    size = (n + 7) // 8 if enc.bit else n * enc.dtype.itemsize
    if enc.plain:
        _inflate(stored, out.view(np.uint8))
        return
    buffer = np.empty(size, dtype=np.uint8)
    _inflate(stored, buffer)
    if enc.bit:
        out[:] = np.unpackbits(buffer, count=n, bitorder="little").view(bool)
        return
    width = enc.dtype.itemsize
    planes = out.view(np.uint8)
    for k in range(width):  # byte k of every element is stored in plane k
        planes[k::width] = buffer[k * n : (k + 1) * n]
    if enc.zigzag:
        unsigned = out.view(f"u{width}")
        np.bitwise_xor(unsigned >> 1, -(unsigned & 1), out=unsigned)
    elif enc.delta:
        np.cumsum(out, out=out)


def _inflate(stored: memoryview, out: np.ndarray) -> None:
    if len(stored) == len(out):  # stored uncompressed
        out[:] = np.frombuffer(stored, dtype=np.uint8)
    else:
        decompress_into(stored, out)


def cluster_counts(ends: np.ndarray, first: int, clusters: np.ndarray) -> np.ndarray:
    """Items per entry from a collection's cluster-relative end offsets ``ends`` of entries
    ``first, first + 1, ...``: each cluster's first entry counts from zero."""
    counts = np.empty(len(ends), dtype=np.int64)
    if not len(ends):
        return counts
    counts[0] = ends[0]
    np.subtract(ends[1:], ends[:-1], out=counts[1:])
    starts = clusters[(clusters > first) & (clusters < first + len(ends))] - first
    counts[starts] = ends[starts]
    return counts
