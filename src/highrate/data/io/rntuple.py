"""An RNTuple described as the TTree it replaces: NanoAOD's fields as branches, and their pages.

A NanoAOD RNTuple (converted by ROOT's importer, written by uproot or by CMSSW) holds the
TTree's branches as top-level fields: ``run`` a number, ``Muon_pt`` a collection of numbers with
its own offsets, ``nMuon`` an integer or a cardinality (the count of a collection, with no data
of its own). Collections of records (``Muon`` with members ``pt``, ``eta``) and records of
numbers (``MET`` with ``pt``, ``phi``) read as ``Muon_pt`` and ``MET_pt``. A collection's
counter is the integer field ``nX`` for the longest prefix ``X`` of its name (``nMuon`` for
``Muon_pt``); a file without one gets a per-collection counter ``nMuon_pt`` (or ``nMuon`` for a
collection of records) computed from the offsets, as a TTree skim has per-branch counters.

uproot parses the header, footer and page lists; this module keeps, per branch, where its
columns' pages are (:class:`FieldLayout`), which is what the reader needs and what is
remembered between runs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from highrate.data.io.pages import ENCODINGS, INDEX_TYPES, ColumnLayout

LEAF, COLLECTION, RECORD = 0, 1, 2
# numeric column types read through uproot (reduced-precision floats): the dtype uproot gives
_OTHER_NUMERIC = {0x0B: np.dtype("f2"), 0x17: np.dtype("f2"), 0x1C: np.dtype("f4"), 0x1D: np.dtype("f4")}
COUNTER_DTYPE = np.dtype("i4")  # of counters computed from offsets, as in TTree skims


@dataclass(frozen=True)
class FieldLayout:
    """One branch of an RNTuple: its values and, for a collection, its offsets.

    ``kind`` is ``flat`` (one value per entry), ``jagged`` (a collection's values) or ``counts``
    (a counter: items per entry, from ``offsets``). A column the fast reader cannot decode is
    ``None``; the branch is then read through uproot by ``path``.
    """

    kind: str
    dtype: np.dtype
    path: str  # uproot's name of the field: "Muon_pt", "Muon.pt", "_collection0.Muon_pt"
    values: ColumnLayout | None = None
    offsets: ColumnLayout | None = None
    counter: str | None = None

    @property
    def fast(self) -> bool:
        """Whether the page reader reads it (else uproot does)."""
        if self.kind == "counts":
            return self.offsets is not None
        return self.values is not None and (self.kind == "flat" or self.offsets is not None)


@dataclass(frozen=True)
class Description:
    """What describing an RNTuple finds: like a TTree's, plus every branch's layout."""

    entries: int
    clusters: tuple[int, ...]  # entry boundaries of the clusters, 0 ... entries
    branches: dict[str, tuple[str, str | None]]  # name -> (dtype, counter)
    other: tuple[str, ...]  # fields of types the pipeline does not expose
    layouts: dict[str, FieldLayout] = field(default_factory=dict)


def is_rntuple(obj: Any) -> bool:
    """Whether uproot's object is an RNTuple: its class has uproot's RNTuple behaviour (by name,
    so that describing a remembered file never imports uproot)."""
    return any(c.__module__ == "uproot.behaviors.RNTuple" and c.__name__ == "RNTuple" for c in type(obj).__mro__)


def describe(ntuple: Any) -> Description:
    """The branches, clusters and layouts of uproot's parsed RNTuple."""
    return _Describer(ntuple).run()


class _Describer:
    def __init__(self, ntuple: Any) -> None:
        self.fields = ntuple.field_records
        self.columns = ntuple.column_records
        self.links = ntuple.page_link_list
        self.entries = int(ntuple.num_entries)
        summaries = ntuple.cluster_summaries
        self.clusters = (*(int(c.num_first_entry) for c in summaries), self.entries)
        for s in summaries:
            if int(getattr(s, "flags", 0)) & 0x01:
                raise ValueError("sharded clusters (a later RNTuple format) are not supported")
        self.children: dict[int, list[int]] = defaultdict(list)
        for i, f in enumerate(self.fields):
            if f.parent_field_id != i:
                self.children[f.parent_field_id].append(i)
        self.own: dict[int, list[Any]] = defaultdict(list)
        for c in self.columns:
            self.own[c.field_id].append(c)
        self.aliases: dict[int, list[int]] = defaultdict(list)
        for a in ntuple.alias_column_records:
            self.aliases[a.field_id].append(a.physical_id)
        self.top = {f.field_name for i, f in enumerate(self.fields) if f.parent_field_id == i}
        self._layouts: dict[int, ColumnLayout | None] = {}
        self.flat: dict[str, FieldLayout] = {}
        # in the file's order: (name, flat layout) or (name, collection layout without its
        # counter, the counter's name where the file has no nX)
        self.found: list[tuple[str, FieldLayout, str | None]] = []
        self.other: list[str] = []

    def run(self) -> Description:
        for i, f in enumerate(self.fields):
            if f.parent_field_id == i:
                self._top(i, f.field_name)
        layouts: dict[str, FieldLayout] = {}
        for name, layout, own in self.found:
            if own is None:
                layouts[name] = layout
                continue
            counter = self._counter_for(name)
            if counter is None:  # counted from its offsets, like a skim's per-branch counter
                counter = own
                existing = layouts.get(counter, self.flat.get(counter))
                if existing is None:
                    collection = layout.path.rpartition(".")[0] or layout.path
                    layouts[counter] = FieldLayout("counts", COUNTER_DTYPE, collection, offsets=layout.offsets)
                elif existing.kind != "counts":  # the name is taken by a field of another type
                    self.other.append(layout.path)
                    continue
            layouts[name] = FieldLayout(layout.kind, layout.dtype, layout.path, layout.values, layout.offsets, counter)
        branches = {n: (_dtype_name(lay.dtype), lay.counter) for n, lay in layouts.items()}
        return Description(self.entries, self.clusters, branches, tuple(self.other), layouts)

    # ---- fields

    def _top(self, fid: int, name: str) -> None:
        f = self.fields[fid]
        role = int(f.struct_role)
        if role == LEAF:
            if f.type_name.startswith("ROOT::RNTupleCardinality"):
                dtype = np.dtype("u8" if "64" in f.type_name else "u4")
                self._flat(name, FieldLayout("counts", dtype, name, offsets=self._single(fid, index=True)))
                return
            found = self._number(fid)
            if found is None:
                self.other.append(name)
            else:
                self._flat(name, FieldLayout("flat", found[0], name, values=found[1]))
            return
        if role == RECORD:  # a struct of numbers: MET.pt as MET_pt
            for kid in self.children[fid]:
                found = self._number(kid)
                member = self.fields[kid].field_name
                if found is None:
                    self.other.append(f"{name}.{member}")
                else:
                    self._flat(f"{name}_{member}", FieldLayout("flat", found[0], f"{name}.{member}", values=found[1]))
            return
        kids = self.children[fid]
        if role != COLLECTION or len(kids) != 1:
            self.other.append(name)
            return
        offsets = self._single(fid, index=True)
        item = kids[0]
        found = self._number(item)
        if found is not None:
            self.found.append((name, FieldLayout("jagged", found[0], name, found[1], offsets), f"n{name}"))
            return
        if int(self.fields[item].struct_role) != RECORD:
            self.other.append(name)
            return
        # a collection of records: CMSSW's Muon {pt, eta}; the importer's anonymous _collectionN,
        # whose members keep their branch names (and are also projected as top-level fields)
        anonymous = name.startswith("_")
        for member_id in self.children[item]:
            member = self.fields[member_id].field_name
            branch = member if anonymous else f"{name}_{member}"
            path = f"{name}.{member}"
            found = self._number(member_id)
            if found is None:
                self.other.append(path)
            elif not (anonymous and self._is_top(member)):
                counter = f"n{member}" if anonymous else f"n{name}"
                self.found.append((branch, FieldLayout("jagged", found[0], path, found[1], offsets), counter))

    def _flat(self, name: str, layout: FieldLayout) -> None:
        self.flat[name] = layout
        self.found.append((name, layout, None))

    def _is_top(self, name: str) -> bool:
        return name in self.top

    def _counter_for(self, name: str) -> str | None:
        """``nX`` for the longest prefix ``X`` of ``name`` where the file has an integer field ``nX``."""
        parts = name.split("_")
        for k in range(len(parts), 0, -1):
            candidate = "n" + "_".join(parts[:k])
            found = self.flat.get(candidate)
            if found is not None and found.dtype.kind in "iu":
                return candidate
        return None

    def _number(self, fid: int) -> tuple[np.dtype, ColumnLayout | None] | None:
        """A scalar numeric leaf: its dtype and its column (None: read through uproot)."""
        f = self.fields[fid]
        if int(f.struct_role) != LEAF or f.repetition or self.children.get(fid):
            return None
        ids = self._column_ids(fid)
        if ids is None or len(ids) != 1:
            return None
        kind = int(self.columns[ids[0]].type)
        if kind in ENCODINGS and kind not in INDEX_TYPES and kind != 0x02:
            return ENCODINGS[kind].dtype.newbyteorder("="), self._layout(ids[0])
        if kind in _OTHER_NUMERIC:
            return _OTHER_NUMERIC[kind], None
        return None

    def _single(self, fid: int, *, index: bool) -> ColumnLayout | None:
        ids = self._column_ids(fid)
        if ids is None or len(ids) != 1 or (index and int(self.columns[ids[0]].type) not in INDEX_TYPES):
            return None
        return self._layout(ids[0])

    def _column_ids(self, fid: int) -> list[int] | None:
        """The physical columns of a field (a projected field's are its aliases' targets);
        None where it has several representations, which the reader leaves to uproot."""
        own = self.own.get(fid, [])
        if any(c.repr_idx for c in own):
            return None
        if own:
            return [c.idx for c in own]
        return list(self.aliases.get(fid, [])) or None

    # ---- columns

    def _layout(self, cid: int) -> ColumnLayout | None:
        if cid not in self._layouts:
            self._layouts[cid] = self._column(cid)
        return self._layouts[cid]

    def _column(self, cid: int) -> ColumnLayout | None:
        record = self.columns[cid]
        if int(record.type) not in ENCODINGS or record.first_element_index:
            return None  # a column added mid-file (its first elements are implicit zeros): uproot
        firsts, seeks, nbytes, checksum, clusters = [], [], [], [], []
        total = 0
        for links in self.links:
            if cid >= len(links) or links[cid].suppressed:
                return None
            pages = links[cid]
            if int(pages.element_offset) != total:
                return None
            clusters.append(total)
            for page in pages.pages:
                firsts.append(total)
                seeks.append(int(page.locator.offset))
                nbytes.append(int(page.locator.num_bytes))
                checksum.append(bool(page.has_checksum))
                total += int(page.num_elements)
        return ColumnLayout(
            cid, int(record.type), np.asarray([*firsts, total], dtype=np.int64), np.asarray(seeks, dtype=np.int64),
            np.asarray(nbytes, dtype=np.int64), np.asarray(checksum, dtype=bool),
            np.asarray([*clusters, total], dtype=np.int64),
        )


def _dtype_name(dtype: np.dtype) -> str:
    return np.dtype(dtype).str.lstrip("<>|=")


# ---- remembered between runs (highrate.data.io.metacache)


def layout_doc(layout: FieldLayout) -> dict[str, Any]:
    """A layout as plain data."""
    return {"kind": layout.kind, "dtype": layout.dtype.str, "path": layout.path, "counter": layout.counter,
            "values": _column_doc(layout.values), "offsets": _column_doc(layout.offsets)}


def layout_from_doc(doc: dict[str, Any]) -> FieldLayout:
    return FieldLayout(doc["kind"], np.dtype(doc["dtype"]), doc["path"], _column_from(doc["values"]),
                       _column_from(doc["offsets"]), doc["counter"])


def _column_doc(column: ColumnLayout | None) -> dict[str, Any] | None:
    if column is None:
        return None
    return {"column": column.column, "type": column.type, "pages": column.pages.tolist(),
            "seeks": column.seeks.tolist(), "nbytes": column.nbytes.tolist(),
            "checksum": column.checksum.astype(int).tolist(), "clusters": column.clusters.tolist()}


def _column_from(doc: dict[str, Any] | None) -> ColumnLayout | None:
    if doc is None:
        return None
    return ColumnLayout(int(doc["column"]), int(doc["type"]), np.asarray(doc["pages"], dtype=np.int64),
                        np.asarray(doc["seeks"], dtype=np.int64), np.asarray(doc["nbytes"], dtype=np.int64),
                        np.asarray(doc["checksum"], dtype=bool), np.asarray(doc["clusters"], dtype=np.int64))
