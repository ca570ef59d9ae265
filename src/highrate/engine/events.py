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
        counters = {info.counter for info in branches.values() if info.counter}
        coll_name = {c: (c[1:] if c.startswith("n") and len(c) > 1 else f"{c}_items") for c in counters}
        members: dict[str, list[tuple[str, str]]] = {c: [] for c in counters}
        flat: list[str] = []
        for name, info in branches.items():
            if info.counter:
                prefix = coll_name[info.counter] + "_"
                members[info.counter].append((name[len(prefix):] if name.startswith(prefix) else name, name))
            else:
                flat.append(name)
        taken = set(coll_name.values()) | {n for n in flat if "_" not in n}
        top: list[str] = []
        grouped: dict[str, list[tuple[str, str]]] = {}
        for name in flat:
            prefix, sep, rest = name.partition("_")
            if sep and prefix and rest and prefix not in taken:
                grouped.setdefault(prefix, []).append((rest, name))
            else:
                top.append(name)
        return cls(
            branches=dict(branches),
            top=tuple(top),
            groups=tuple(Group(k, tuple(v)) for k, v in grouped.items()),
            collections=tuple(Collection(coll_name[c], c, tuple(members[c])) for c in sorted(counters)),
        )

    def subset(self, names: Iterable[str]) -> EventSchema:
        """The schema of only these branches (plus the counters their collections need)."""
        keep = set(names)
        keep |= {self.branches[n].counter for n in keep if n in self.branches and self.branches[n].counter}
        return EventSchema.from_branches({n: i for n, i in self.branches.items() if n in keep})

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


def _primitive(dtype: str) -> str:
    return ak.types.numpytype.dtype_to_primitive(np.dtype(dtype))
