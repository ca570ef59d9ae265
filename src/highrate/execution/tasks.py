"""What travels to a worker: the analysis (pickled once), each dataset's plan, one task per chunk."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from highrate.data.io.sources import AccessOptions
from highrate.data.partition import WorkItem
from highrate.engine.events import EventSchema
from highrate.engine.stages.recording import Dependencies
from highrate.errors import ConfigError
from highrate.execution.caching import CacheSettings
from highrate.spec.analysis import Analysis
from highrate.spec.pickling import dumps

_analyses: dict[str, Analysis] = {}
_lock = threading.Lock()


class AnalysisPayload:
    """The analysis as it travels to workers: pickled by value once, the first time it leaves
    this process (never for the sequential executor), and unpickled once per process."""

    def __init__(self, hash: str, blob: bytes | None = None, analysis: Analysis | None = None) -> None:
        self.hash = hash
        self._blob = blob
        self._analysis = analysis

    @classmethod
    def of(cls, analysis: Analysis) -> AnalysisPayload:
        payload = cls(analysis.hash(), analysis=analysis)
        with _lock:
            _analyses[payload.hash] = analysis  # the driver's latest definition wins
        return payload

    @property
    def blob(self) -> bytes:
        if self._blob is None:
            self._blob = dumps(self._analysis)
        return self._blob

    def check(self) -> None:
        """Pickle it now, in this thread: an analysis that cannot leave this process is a clear
        error here, before any worker holds a chunk (not a traceback from a queue's thread)."""
        try:
            self.blob  # noqa: B018 (pickled and kept)
        except (pickle.PicklingError, TypeError, AttributeError) as err:
            name = self._analysis.name if self._analysis is not None else self.hash
            raise ConfigError(
                f"analysis {name!r} cannot be sent to worker processes: {err}. Define the object in a module "
                "next to the analysis file, or run it with --executor sequential."
            ) from err

    def __reduce__(self) -> tuple[Any, ...]:
        return AnalysisPayload, (self.hash, self.blob)

    def get(self) -> Analysis:
        with _lock:
            found = _analyses.get(self.hash)
            if found is None:
                found = _analyses[self.hash] = cloudpickle.loads(self.blob)
            return found


@dataclass(frozen=True)
class DatasetPlan:
    """What every chunk of one dataset needs: its metadata and the branches to read."""

    dataset: str
    meta: Mapping[str, Any]
    schema: EventSchema
    branches: tuple[str, ...]
    deps: Dependencies | None = None  # what objects read and shape variations replace
    access: AccessOptions = field(default_factory=AccessOptions)  # how remote replicas are opened
    # branches only read after the skim: decoded for the skimmed events alone; the skim sees
    # the events of ``skim_schema`` (the other branches)
    late: tuple[str, ...] = ()
    skim_schema: EventSchema | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)  # values of branches some files lack

    @classmethod
    def of(cls, dataset: str, meta: Mapping[str, Any], schema: EventSchema, branches: tuple[str, ...],
           deps: Dependencies | None, access: AccessOptions, *, skim: bool,
           defaults: Mapping[str, Any] | None = None) -> DatasetPlan:
        """The plan; with a ``skim`` whose branches tracing found, the others are read late (never
        a branch with a default: a file may have to make it instead)."""
        defaults = dict(defaults or {})
        if not skim or deps is None or deps.skim is None:
            return cls(dataset, meta, schema, branches, deps, access, defaults=defaults)
        counters = {schema.branches[b].counter for b in branches if schema.branches[b].counter}
        counters |= {c.counter for c in schema.collections}  # a skim's nMuon beside each branch's nMuon_pt
        late = tuple(b for b in branches if b not in deps.skim and b not in counters and b not in defaults)
        if not late:
            return cls(dataset, meta, schema, branches, deps, access, defaults=defaults)
        early = [b for b in branches if b not in late]
        return cls(dataset, meta, schema, branches, deps, access, late, schema.subset(early), defaults)


@dataclass(frozen=True)
class Task:
    item: WorkItem
    plan: DatasetPlan
    analysis: AnalysisPayload
    timeout: float | None = None  # seconds a chunk's read may take before it is reported
    checkpoint: tuple[str, str] | None = None  # (folder, key): store the result there on success
    columns_dir: str | None = None  # where saved columns go, one Parquet file per chunk and dataset
    device: str = "auto"  # where registered stages run: auto | cpu | gpu
    cache: CacheSettings | None = None  # where columns and stage results are kept; None: nowhere
