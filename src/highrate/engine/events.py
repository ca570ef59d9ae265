"""Events as an awkward record array built from flat branches, zero-copy.

Naming follows coffea's NanoEvents: ``nMuon`` + ``Muon_pt`` become the collection ``Muon`` with
field ``pt`` (``events.Muon.pt``); flat branches sharing a prefix become a record
(``HLT_IsoMu24`` → ``events.HLT.IsoMu24``, ``MET_pt`` → ``events.MET.pt``); names without an
underscore stay top-level (``run``, ``genWeight``, ``nMuon``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import awkward as ak
import numpy as np

from highrate.arrays.fast import list_positions
from highrate.data.io.files import BranchInfo
from highrate.data.io.reader import Deferred
from highrate.engine.collections import COLLECTION, EVENTS, behavior
from highrate.errors import InputFileError


@dataclass(frozen=True)
class Collection:
    name: str
    counter: str
    fields: tuple[tuple[str, str], ...]  # (field, branch)


@dataclass(frozen=True)
class Group:
    name: str
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class EventSchema:
    """How branches map onto the event record; built once per dataset, used for every chunk."""

    branches: Mapping[str, BranchInfo]
    top: tuple[str, ...]
    groups: tuple[Group, ...]
    collections: tuple[Collection, ...]

    @classmethod
    def from_branches(cls, branches: Mapping[str, BranchInfo]) -> EventSchema:
        own = {name: info.counter for name, info in branches.items() if info.counter}
        members: dict[str, list[str]] = {}
        for name, counter in own.items():
            members.setdefault(_collection_of(name, counter, branches), []).append(name)
        counter_of = {coll: _shared_counter(coll, names, own, branches) for coll, names in members.items()}
        # the per-branch counters of ROOT and uproot skims (nMuon_pt beside Muon_pt) duplicate the
        # collection's: checked against it when read, not fields of the events
        duplicates = {c for c in own.values() if c not in counter_of.values()}
        duplicates |= {n for n in branches if any(n.startswith(f"n{coll}_") for coll in members)}
        flat = [n for n, info in branches.items() if not info.counter and n not in duplicates]
        taken = set(members) | {n for n in flat if "_" not in n}
        top: list[str] = []
        grouped: dict[str, list[tuple[str, str]]] = {}
        for name in flat:
            prefix, sep, rest = name.partition("_")
            if sep and prefix and rest and prefix not in taken:
                grouped.setdefault(prefix, []).append((rest, name))
            else:
                top.append(name)
        collections = [
            Collection(coll, counter_of[coll], tuple((_field_of(n, coll), n) for n in members[coll]))
            for coll in sorted(members, key=lambda coll: counter_of[coll])
        ]
        return cls(branches=dict(branches), top=tuple(top), groups=tuple(Group(k, tuple(v)) for k, v in grouped.items()),
                   collections=tuple(collections))

    def subset(self, names: Iterable[str]) -> EventSchema:
        """The schema of only these branches (plus the counters their collections need)."""
        keep = set(names)
        keep |= {self.branches[n].counter for n in keep if n in self.branches and self.branches[n].counter}
        keep |= {c.counter for c in self.collections if any(b in keep for _, b in c.fields)}
        schema = EventSchema.from_branches({n: i for n, i in self.branches.items() if n in keep})
        # a collection used only through its count (an object ``ev.Muon`` histogrammed as
        # ``nMuonAll``) keeps its place in the record, with no fields
        built = {c.name for c in schema.collections}
        counted = [Collection(c.name, c.counter, ()) for c in self.collections if c.counter in keep and c.name not in built]
        if not counted:
            return schema
        return EventSchema(schema.branches, schema.top, schema.groups, (*schema.collections, *counted))

    def field_names(self) -> list[str]:
        """Top-level field names of the event record."""
        return [*self.top, *(g.name for g in self.groups), *(c.name for c in self.collections)]

    def form(self) -> ak.forms.RecordForm:
        """An awkward form whose buffer keys are branch names, for tracing the analysis."""

        def leaf(branch: str) -> ak.forms.NumpyForm:
            return ak.forms.NumpyForm(_primitive(self.branches[branch].dtype), form_key=branch)

        contents: list[ak.forms.Form] = [leaf(b) for b in self.top]
        contents += [ak.forms.RecordForm([leaf(b) for _, b in g.fields], [f for f, _ in g.fields]) for g in self.groups]
        contents += [
            ak.forms.ListOffsetForm(
                "i64",
                ak.forms.RecordForm([leaf(b) for _, b in c.fields], [f for f, _ in c.fields]),
                form_key=c.counter,
                parameters={"__list__": COLLECTION},
            )
            for c in self.collections
        ]
        return ak.forms.RecordForm(contents, self.field_names(), parameters={"__record__": EVENTS})

    def build(self, arrays: Mapping[str, np.ndarray], length: int, *, where: str = "") -> ak.Array:
        """The event record from flat arrays (jagged branches as their flat contents)."""
        C = ak.contents
        contents: list[ak.contents.Content] = [C.NumpyArray(arrays[b]) for b in self.top]
        contents += [
            C.RecordArray([C.NumpyArray(arrays[b]) for _, b in g.fields], [f for f, _ in g.fields], length=length)
            for g in self.groups
        ]
        for c in self.collections:
            counts = arrays[c.counter]
            offsets = np.empty(length + 1, dtype=np.int64)
            offsets[0] = 0
            np.cumsum(counts, out=offsets[1:])
            total = int(offsets[-1])
            fields = []
            for _, b in c.fields:
                own = self.branches[b].counter
                if own != c.counter and own in arrays and not np.array_equal(arrays[own], counts):
                    raise InputFileError(_disagreement(where, b, own, c.counter, arrays[own], counts))
                if len(arrays[b]) != total:
                    raise InputFileError(
                        f"{where}: branch {b!r} has {len(arrays[b])} values but {c.counter!r} counts {total}."
                    )
                fields.append(C.NumpyArray(arrays[b]))
            record = C.RecordArray(fields, [f for f, _ in c.fields], length=total)
            contents.append(C.ListOffsetArray(ak.index.Index64(offsets), record, parameters={"__list__": COLLECTION}))
        record = C.RecordArray(contents, self.field_names(), length=length, parameters={"__record__": EVENTS})
        return ak.Array(record, behavior=behavior)


def filter_arrays(
    schema: EventSchema, arrays: Mapping[str, np.ndarray], mask: np.ndarray, deferred: Deferred | None = None
) -> dict[str, np.ndarray]:
    """The flat arrays of the events where ``mask`` is true, packed (plain numpy gathers).

    Cheaper than filtering the awkward record lazily, and everything downstream then works on
    contiguous ListOffsetArrays, awkward's fastest layout. Branches not in ``arrays`` are
    decoded from ``deferred`` for the kept events.
    """
    rows = np.flatnonzero(mask)

    def take(branch: str, index: np.ndarray) -> np.ndarray:
        if branch in arrays:
            return arrays[branch].take(index)
        if deferred is None:
            raise KeyError(branch)
        return deferred.take(branch, index)

    out = {b: take(b, rows) for b in schema.top}
    for g in schema.groups:
        for _, b in g.fields:
            out[b] = take(b, rows)
    for c in schema.collections:
        counts = arrays[c.counter]
        starts = np.cumsum(counts, dtype=np.int64) - counts
        kept = out[c.counter] = counts.take(rows)
        keep = list_positions(starts.take(rows), kept)  # indices once, then a cheap take per field
        for _, b in c.fields:
            out[b] = take(b, keep)
    return out


def _collection_of(branch: str, counter: str, branches: Mapping[str, BranchInfo]) -> str:
    """The collection a jagged branch belongs to.

    CMSSW NanoAOD: ``P`` of its counter ``nP`` when it is named ``P_field`` (``Muon_pt`` counted by
    ``nMuon``, ``Proton_multiRP_xi`` by ``nProton_multiRP``). ROOT and uproot skims give a branch a
    counter of its own (``Muon_pt`` counted by ``nMuon_pt``): then the longest prefix ``P`` with a
    flat ``nP`` in the file, else the part before the first underscore.
    """
    if counter == f"n{branch}" and "_" in branch:
        parts = branch.split("_")
        for k in range(len(parts) - 1, 0, -1):
            prefix = "_".join(parts[:k])
            if f"n{prefix}" in branches and not branches[f"n{prefix}"].counter:
                return prefix
        return parts[0]
    named = counter[1:] if counter.startswith("n") else ""
    return named or f"{counter}_items"


def _field_of(branch: str, collection: str) -> str:
    return branch[len(collection) + 1:] if branch.startswith(f"{collection}_") else branch


def _shared_counter(collection: str, names: list[str], own: Mapping[str, str], branches: Mapping[str, BranchInfo]) -> str:
    """The branch counting the collection's objects: ``nP`` where the file has it as a flat
    branch, else the first of its per-branch counters (all must agree: see ``build``). The first
    of all of them, so that a schema of some of the branches picks the one the full schema did."""
    named = f"n{collection}"
    if named in branches and not branches[named].counter:
        return named
    kept = {b for b in branches if b.startswith(f"{named}_") and not branches[b].counter}
    return min({own[n] for n in names} | kept)


def _disagreement(where: str, branch: str, own: str, shared: str, mine: np.ndarray, counts: np.ndarray) -> str:
    bad = np.flatnonzero(mine != counts)
    return (f"{where}: the counters of one collection disagree: {own!r} (counting {branch!r}) and {shared!r} "
            f"differ in {len(bad)} entries, the first at entry {int(bad[0])} of the chunk "
            f"({int(mine[bad[0]])} against {int(counts[bad[0]])}). The file is inconsistent; rewrite it or drop {branch!r}.")


def _primitive(dtype: str) -> str:
    return ak.types.numpytype.dtype_to_primitive(np.dtype(dtype))
