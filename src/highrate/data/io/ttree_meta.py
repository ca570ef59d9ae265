"""A local file's TTree metadata read by hand: entries, branches, counters and basket layouts.

uproot builds a Python model of every member of every branch and leaf: 12 ms for the synthetic
files' 25 branches, 0.3-0.6 s for a NanoAOD file's 1,250. Describing a file needs a few members
of each, so this reads them straight from the TTree's streamed bytes (TTree v20, TBranch v13,
the TLeaf classes of numbers and strings) and skips every other object by its byte count.

Anything else — another class version, a ``TBranchElement``, sub-branches, several leaves per
branch, baskets kept inside the TTree, a tree in a subdirectory — gives ``None``, and uproot
describes the file as before. ``tests/test_ttree_meta.py`` compares every answer with uproot's.
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from highrate.data.io.baskets import BranchLayout, decompress_into, read_branch

_BYTECOUNT, _VERSION_BYTECOUNT = 0x40000000, 0x4000
_CLASS_MASK, _NEW_CLASS, _MAP_OFFSET = 0x80000000, 0xFFFFFFFF, 2
_IS_REFERENCED = 1 << 4
_HEADER_SMALL = struct.Struct(">4siiiiiiiBiiiH16s")
_HEADER_BIG = struct.Struct(">4siiqqiiiBiqiH16s")
_DIRECTORY_SMALL, _DIRECTORY_BIG = struct.Struct(">hIIiiiii"), struct.Struct(">hIIiiqqq")
_KEY_SMALL, _KEY_BIG = struct.Struct(">ihiIhhii"), struct.Struct(">ihiIhhqq")
_TTREE_V20 = struct.Struct(">qqqqqdiiiiIqqqqqq")
_TBRANCH_V13_A, _TBRANCH_V13_B = struct.Struct(">iiiiq"), struct.Struct(">iIiqqqq")
_TLEAF_V2 = struct.Struct(">iii??")
# leaf class -> (signed dtype, unsigned dtype), as uproot interprets them; TLeafC: a string
_NUMBERS = {"TLeafO": ("?", "?"), "TLeafB": ("i1", "u1"), "TLeafS": ("i2", "u2"), "TLeafI": ("i4", "u4"),
            "TLeafL": ("i8", "u8"), "TLeafF": ("f4", "f4"), "TLeafD": ("f8", "f8")}


class Unsupported(Exception):
    """The bytes hold something this reader does not know: uproot describes the file."""


@dataclass
class _Leaf:
    dtype: str | None  # None: a string (TLeafC)
    length: int
    count: _Leaf | None


@dataclass
class _Branch:
    name: str
    entries: int
    write_basket: int
    leaf: _Leaf
    basket_bytes: np.ndarray
    basket_entry: np.ndarray
    basket_seek: np.ndarray


@dataclass
class TreeMeta:
    """What describing a TTree needs: its entries, cluster boundaries and, per branch, its type
    (``dtype`` as ``BranchInfo`` spells it, counter) or ``None`` (not a number), and its layout."""

    entries: int
    clusters: tuple[int, ...]
    branches: dict[str, tuple[str, str | None] | None] = field(default_factory=dict)
    layouts: dict[str, BranchLayout | None] = field(default_factory=dict)


class _Cursor:
    def __init__(self, data: bytes, origin: int) -> None:
        self.data, self.pos, self.origin = data, 0, origin  # origin: the key's length (ROOT's displacement)
        self.refs: dict[int, Any] = {}

    def unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        out = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return out

    def u32(self) -> int:
        return self.unpack(_U32)[0]

    def string(self) -> str:
        n = self.data[self.pos]
        self.pos += 1
        if n == 255:
            n = self.unpack(_I32)[0]
        out = self.data[self.pos:self.pos + n].decode(errors="surrogateescape")
        self.pos += n
        return out

    def header(self, versions: tuple[int, ...] | None = None) -> tuple[int, int]:
        """An object's byte count and version: (its version, where it ends)."""
        count, version = self.unpack(_COUNT_VERSION)
        if not count & _BYTECOUNT:
            raise Unsupported("an object without a byte count")
        end = self.pos - 2 + (count & ~_BYTECOUNT)
        if versions is not None and version not in versions:
            raise Unsupported(f"class version {version}")
        return version, end

    def skip_object(self) -> None:
        _, end = self.header()
        self.pos = end

    def tobject(self) -> None:
        version = self.unpack(_I16)[0]
        if version & _VERSION_BYTECOUNT:
            self.pos += 4
        _, bits = self.unpack(_U32U32)
        if bits & _IS_REFERENCED:
            self.pos += 2

    def array(self, n: int, dtype: str) -> np.ndarray:
        self.pos += 1  # ROOT's "speedbump" byte before a basic-type array
        out = np.frombuffer(self.data, dtype=dtype, count=n, offset=self.pos)
        self.pos += out.nbytes
        return out

    def any_object(self) -> Any:
        """TBufferFile::ReadObjectAny: a new object (of a new or known class), a reference to one
        read before, or null."""
        beg = self.pos + self.origin
        first = self.u32()
        counted = bool(first & _BYTECOUNT) and first != _NEW_CLASS
        tag = first
        if counted:
            start = self.pos + self.origin
            tag = self.u32()
            end = self.pos - 4 + (first & ~_BYTECOUNT)
        if not tag & _CLASS_MASK:  # null, or an object read before
            if tag == 0:
                return None
            if tag not in self.refs:
                raise Unsupported("a reference to an object not read")
            return self.refs[tag]
        if not counted:
            raise Unsupported("a new object without a byte count")
        if tag == _NEW_CLASS:
            stop = self.data.index(b"\0", self.pos)
            cls = self.data[self.pos:stop].decode()
            self.pos = stop + 1
            self.refs[start + _MAP_OFFSET] = cls
        else:
            cls = self.refs.get(tag & ~_CLASS_MASK)
            if not isinstance(cls, str):
                raise Unsupported("a reference to an unknown class")
        obj = _READERS[cls](self) if cls in _READERS else _unknown(cls)
        self.refs[beg + _MAP_OFFSET] = obj
        if self.pos != end:
            raise Unsupported(f"a {cls} of another length than its byte count")
        return obj

    def objarray(self) -> list[Any]:
        _, end = self.header()
        self.tobject()
        self.string()
        size, _ = self.unpack(_I32I32)
        out = [self.any_object() for _ in range(size)]
        if self.pos != end:
            raise Unsupported("a TObjArray of another length than its byte count")
        return out


_U32, _I32, _I16 = struct.Struct(">I"), struct.Struct(">i"), struct.Struct(">h")
_U32U32, _I32I32, _COUNT_VERSION = struct.Struct(">II"), struct.Struct(">ii"), struct.Struct(">Ih")


def _unknown(cls: str) -> Any:
    raise Unsupported(f"class {cls}")


def _leaf(kind: str) -> Any:
    def read(c: _Cursor) -> _Leaf:
        _, end = c.header((1,))
        _, leaf_end = c.header((2,))
        c.skip_object()  # TNamed
        length, _, _, _, unsigned = c.unpack(_TLEAF_V2)
        count = c.any_object()
        if c.pos != leaf_end:
            raise Unsupported("a TLeaf of another length than its byte count")
        c.pos = end  # fMinimum, fMaximum
        if count is not None and not isinstance(count, _Leaf):
            raise Unsupported("a leaf counted by something else than a leaf")
        dtype = None if kind == "TLeafC" else _NUMBERS[kind][1 if unsigned else 0]
        return _Leaf(dtype, length, count)

    return read


def _tbranch(c: _Cursor) -> _Branch:
    _, end = c.header((13,))
    _, named_end = c.header()
    c.tobject()
    name = c.string()
    c.pos = named_end
    c.skip_object()  # TAttFill
    _, _, _, write_basket, _ = c.unpack(_TBRANCH_V13_A)
    c.skip_object()  # fIOFeatures
    _, max_baskets, _, entries, _, _, _ = c.unpack(_TBRANCH_V13_B)
    if c.objarray():
        raise Unsupported(f"branch {name!r} has sub-branches")
    leaves = c.objarray()
    if len(leaves) != 1 or not isinstance(leaves[0], _Leaf):
        raise Unsupported(f"branch {name!r} has {len(leaves)} leaves")
    if any(b is not None for b in c.objarray()):
        raise Unsupported(f"branch {name!r} keeps baskets in the TTree")
    basket_bytes = c.array(max_baskets, ">i4")
    basket_entry = c.array(max_baskets, ">i8")
    basket_seek = c.array(max_baskets, ">i8")
    c.pos = end  # fFileName
    return _Branch(name, int(entries), int(write_basket), leaves[0], basket_bytes, basket_entry, basket_seek)


_READERS: dict[str, Any] = {"TBranch": _tbranch, **{k: _leaf(k) for k in (*_NUMBERS, "TLeafC")}}


def _ttree(data: bytes, keylen: int) -> tuple[int, list[_Branch]]:
    c = _Cursor(data, keylen)
    c.header((20,))
    for _ in range(4):  # TNamed, TAttLine, TAttFill, TAttMarker
        c.skip_object()
    fields = c.unpack(_TTREE_V20)
    entries, n_ranges = int(fields[0]), int(fields[10])
    c.array(n_ranges, ">i8")
    c.array(n_ranges, ">i8")
    c.skip_object()  # fIOFeatures
    return entries, c.objarray()


def _from_file(fd: int, where: int, n: int) -> bytes:
    data = os.pread(fd, n, where)
    if len(data) != n:
        raise Unsupported("the file is shorter than its keys say")
    return data


def _find_key(fd: int, name: str) -> tuple[str, tuple[Any, ...]] | None:
    """(file UUID, the TKey of the highest cycle named ``name`` in the top directory)."""
    head = _from_file(fd, 0, _HEADER_BIG.size)
    if head[:4] != b"root":
        raise Unsupported("not a ROOT file")
    version = struct.unpack_from(">i", head, 4)[0]
    fields = (_HEADER_BIG if version >= 1000000 else _HEADER_SMALL).unpack_from(head)
    begin, name_bytes, file_uuid = fields[2], fields[7], str(uuid.UUID(bytes=fields[-1]))
    if os.fstat(fd).st_size < fields[3]:  # truncated: uproot's open names it
        raise Unsupported("the file is shorter than its header says")
    directory = _from_file(fd, begin + name_bytes, _DIRECTORY_BIG.size)
    dversion = struct.unpack_from(">h", directory)[0]
    seek_keys = (_DIRECTORY_BIG if dversion > 1000 else _DIRECTORY_SMALL).unpack_from(directory)[7]
    first = _from_file(fd, seek_keys, _KEY_SMALL.size)
    nbytes = struct.unpack_from(">i", first)[0]
    keys = _from_file(fd, seek_keys, nbytes)
    keylen = struct.unpack_from(">h", keys, 14)[0]
    pos = keylen
    (count,) = struct.unpack_from(">i", keys, pos)
    pos += 4
    best = None
    for _ in range(count):
        kversion = struct.unpack_from(">h", keys, pos + 4)[0]
        fmt = _KEY_BIG if kversion > 1000 else _KEY_SMALL
        key = fmt.unpack_from(keys, pos)
        c = _Cursor(keys, 0)
        c.pos = pos + fmt.size
        classname, keyname = c.string(), c.string()
        if keyname == name:
            if classname != "TTree":
                raise Unsupported(f"{name!r} is a {classname}")
            if best is None or key[5] > best[5]:
                best = key
        pos = pos + key[4]
    return file_uuid, best


def _tree_bytes(fd: int, key: tuple[Any, ...]) -> bytes:
    nbytes, _, objlen, _, keylen, _, seek, _ = key
    payload = _from_file(fd, seek + keylen, nbytes - keylen)
    if objlen == nbytes - keylen:
        return payload
    out = np.empty(objlen, dtype=np.uint8)
    decompress_into(payload, out)
    return out.tobytes()


def _layout(branch: _Branch, counter: str | None) -> BranchLayout | None:
    """As :func:`highrate.data.io.baskets.branch_layout` finds it from uproot's model."""
    n = 0
    for i, seek in enumerate(branch.basket_seek):
        if seek == 0 or i == branch.write_basket:
            break
        n += 1
    if len(branch.basket_entry) == n:
        raise Unsupported("a basket's entries are only in its header")
    seeks = branch.basket_seek[:n].astype(np.int64)
    nbytes = branch.basket_bytes[:n].astype(np.int64)
    entries = branch.basket_entry[: n + 1].astype(np.int64)
    if len(entries) != n + 1 or entries[-1] != branch.entries or (nbytes <= 0).any():
        raise Unsupported("baskets kept in the TTree")
    leaf = branch.leaf
    return BranchLayout(seeks, nbytes, entries, np.dtype(">" + (leaf.dtype or "u1")), leaf.count is not None, counter)


def read_tree(fd: int, tree: str) -> tuple[str, TreeMeta] | None:
    """(the file's UUID, the metadata of ``tree``); ``None`` when the top directory has nothing of
    that name. :class:`Unsupported` where uproot must be asked."""
    if "/" in tree:
        raise Unsupported("a tree in a subdirectory")
    try:
        file_uuid, key = _find_key(fd, tree)
        if key is None:
            return None
        entries, branches = _ttree(_tree_bytes(fd, key), key[4])
        owner = {id(b.leaf): b.name for b in branches if isinstance(b, _Branch)}
        meta = TreeMeta(entries=entries, clusters=())
        common: set[int] | None = None
        for branch in branches:
            if not isinstance(branch, _Branch):
                raise Unsupported("a branch of another class")
            leaf = branch.leaf
            counter = None if leaf.count is None else owner.get(id(leaf.count))
            if leaf.count is not None and counter is None:
                raise Unsupported("a counter leaf of no branch")
            layout = _layout(branch, counter)
            if leaf.dtype is None or leaf.length != 1:  # strings, fixed-size arrays: not exposed
                meta.branches[branch.name], meta.layouts[branch.name] = None, None
            else:
                meta.branches[branch.name] = (np.dtype(leaf.dtype).str.lstrip("<>|="), counter)
                meta.layouts[branch.name] = layout
            if layout is not None and len(layout.seeks):
                offsets = set(layout.entries.tolist())
                common = offsets if common is None else common & offsets
        meta.clusters = (0,) if common is None else tuple(sorted(common))
        return file_uuid, meta
    except (struct.error, ValueError, IndexError, KeyError, UnicodeDecodeError) as err:
        raise Unsupported(f"{type(err).__name__}: {err}") from err


def branch_sum(fd: int, meta: TreeMeta, name: str) -> float:
    """The sum of a flat numeric branch over the whole tree, read with the basket reader."""
    layout = meta.layouts[name]
    if layout is None or layout.jagged:
        raise Unsupported(f"{name!r} is not a flat number")
    return float(np.sum(read_branch(layout, fd, 0, meta.entries, None), dtype=np.float64))


@dataclass(frozen=True)
class Described:
    """A local file as ``files.describe`` describes it, and its branches' layouts."""

    entries: int
    uuid: str
    size: int
    clusters: tuple[int, ...]
    branches: dict[str, tuple[str, str | None]]  # numbers: (dtype, counter)
    other_branches: tuple[str, ...]
    gen_sumw: float | None
    gen_sumw_from: str | None
    layouts: dict[str, BranchLayout | None]


def describe_local(path: str, tree: str) -> Described | None:
    """The description of a local file's ``tree``; ``None`` where uproot must describe the file
    (another format, another class version, or no such tree: uproot says what is wrong). The
    generator-weight sum is read as ``files._gen_sumw`` reads it: ``Runs/genEventSumw``, else the
    events' ``genWeight``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        found = read_tree(fd, tree)
        if found is None:
            return None
        file_uuid, meta = found
        runs = read_tree(fd, "Runs")
        numbers = {k: v for k, v in meta.branches.items() if v is not None}
        if runs is not None and "genEventSumw" in runs[1].branches:
            if runs[1].branches["genEventSumw"] != ("f8", None) or runs[1].layouts["genEventSumw"] is None:
                return None
            gen_sumw, source = branch_sum(fd, runs[1], "genEventSumw"), "Runs"
        elif "genWeight" in numbers and numbers["genWeight"][1] is None:
            if meta.layouts["genWeight"] is None:
                return None
            gen_sumw, source = branch_sum(fd, meta, "genWeight"), "genWeight"
        else:
            gen_sumw, source = None, None
        return Described(meta.entries, file_uuid, os.fstat(fd).st_size, meta.clusters, numbers,
                         tuple(k for k, v in meta.branches.items() if v is None), gen_sumw, source, dict(meta.layouts))
    except Exception:  # Unsupported, or a damaged basket: uproot describes the file, or says what is wrong
        return None
    finally:
        os.close(fd)
