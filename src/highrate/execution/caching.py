"""Where a run keeps what it can reuse (docs/caching.md): decoded columns, stage results and
whole chunk results, in one bounded :class:`~highrate.base.store.Store` per machine.

Keys hold everything the content depends on: a chunk's file by its identity (ROOT UUID and size,
and the modification time of a local file), its entry range, the dataset's metadata, and the
versions of highrate, awkward and numpy. A result cache entry also lists the files the chunk's
stages read, checked before it is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from highrate._version import __version__
from highrate.base.cachedir import cache_root, caching_enabled, store_json
from highrate.base.inputs import digest
from highrate.base.store import Corrupt, Store, max_bytes_from_env
from highrate.data.partition import WorkItem
from highrate.engine.result import Result
from highrate.engine.stages.memo import Definitions, SeenMeta, StageMemo, combine
from highrate.spec.analysis import Analysis

VERSIONS = f"highrate {__version__}, awkward {ak.__version__}, numpy {np.__version__}"
FOLDER_ENV = "HIGHRATE_CACHE_DIR"
WORKER_ATTRIBUTE = "highrate_cache_folder"  # set on a Dask worker by its plugin: that worker's own folder
COLUMNS, RESULTS = "columns", "results"  # the store's kinds of entry (stage results: memo.KIND)
STATS = "stats.json"  # hit and miss totals over the runs, for `highrate cache info`


@dataclass(frozen=True)
class CacheSettings:
    """What travels with each task: the folder (None: the worker's own) and the size limit."""

    folder: str | None
    max_bytes: int

    def store(self) -> Store:
        return Store(self.folder or local_folder(), self.max_bytes)


def settings(enabled: bool | None, folder: str | None, max_bytes: int | None) -> CacheSettings | None:
    """The run's cache settings; None when caching is off (``enabled`` False, or None and
    ``HIGHRATE_CACHE=off``)."""
    if enabled is False or (enabled is None and not caching_enabled()):
        return None
    return CacheSettings(folder, max_bytes if max_bytes is not None else max_bytes_from_env())


def local_folder() -> str:
    """This machine's cache of chunks: in a Dask task, the folder its worker's plugin chose; else
    ``$HIGHRATE_CACHE_DIR``, or ``chunks`` in highrate's cache folder."""
    found = getattr(_dask_worker(), WORKER_ATTRIBUTE, None)
    return found or os.environ.get(FOLDER_ENV) or str(cache_root() / "chunks")


def _dask_worker() -> Any:
    """The Dask worker running this task, if any (a worker may share its process with the driver)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return distributed.get_worker()
    except ValueError:
        return None


def file_identity(item: WorkItem) -> str:
    """The chunk's file as its content: UUID and size, and for a local file its modification time
    (a file replaced under the same name is another file)."""
    stamp = ""
    if "://" not in item.url or item.url.startswith("file://"):
        with contextlib.suppress(OSError):
            stamp = str(os.stat(item.url.removeprefix("file://")).st_mtime_ns)
    return combine(item.uuid, item.size, stamp, item.url if not item.uuid else "")


def column_key(identity: str, item: WorkItem, branch: str) -> str:
    return combine("column", VERSIONS, identity, item.tree, branch, item.start, item.stop)


def chunk_base(identity: str, item: WorkItem, defaults: Mapping[str, Any]) -> str:
    """The key the first stage (the skim) starts from: the chunk and the values given to branches
    a file lacks. (The metadata keys a stage reads are kept with its result and compared.)"""
    return combine("chunk", VERSIONS, identity, item.tree, item.start, item.stop, dict(defaults))


def result_key(base: str, dataset: str, analysis_hash: str) -> str:
    """A whole chunk's result: the analysis as a whole (histograms included) on the chunk."""
    return combine("result", base, analysis_hash, dataset)



def load_result(store: Store, key: str, meta: Mapping[str, Any]) -> Result | None:
    """A chunk's cached result, if the files and metadata keys its stages read are unchanged, with
    its counts as the run that computed it found them (like a checkpoint's), and no time."""
    entry = store.get(RESULTS, key)
    if entry is None or not all(digest(p) == s for p, s in entry.header["files"].items()):
        return None
    if SeenMeta(meta).values_of(entry.header["meta"]) != entry.header["meta"]:
        return None
    try:
        result = pickle.loads(entry.arrays()[0].tobytes())
    except Exception:  # an entry of another highrate, or damaged past its checksum
        return None
    if not isinstance(result, Result):
        return None
    return replace(result, sources={}, timings={}, stages={}, inputs=dict(entry.header["files"]),
                   cache={RESULTS: {**_counts(), "hits": 1, "bytes_read": entry.nbytes}})


def save_result(store: Store, key: str, result: Result, files: dict[str, str | None], meta: dict[str, str]) -> int:
    kept = replace(result, timings={}, stages={}, cache={})
    blob = np.frombuffer(pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8)
    return store.put(RESULTS, key, {"files": files, "meta": meta}, [blob])



_definitions: list[tuple[Analysis, Definitions]] = []  # the latest few analyses' step keys


def definitions(analysis: Analysis) -> Definitions:
    for known, defs in _definitions:
        if known is analysis:
            return defs
    defs = Definitions(analysis)
    _definitions[:] = [(analysis, defs), *_definitions[:3]]
    return defs


class ChunkCache:
    """One chunk's view of the cache: its columns, its stage results (:meth:`memo`) and its whole
    result, with hit and miss counts for the report."""

    def __init__(self, settings: CacheSettings, item: WorkItem, meta: Mapping[str, Any],
                 defaults: Mapping[str, Any], analysis_hash: str) -> None:
        self.store = settings.store()
        self.item = item
        self.identity = file_identity(item)
        self.meta = SeenMeta(meta)
        self.base = chunk_base(self.identity, item, defaults)
        self.result_key = result_key(self.base, item.dataset, analysis_hash)
        self.columns = _counts()
        self.results_written = 0
        self._memo: StageMemo | None = None

    def memo(self, analysis: Analysis, behavior: Mapping[Any, Any] | None) -> StageMemo:
        self._memo = StageMemo(self.store, self.base, definitions(analysis), behavior, self.meta)
        return self._memo

    def cached_columns(self, branches: list[str]) -> dict[str, np.ndarray]:
        """The branches found in the cache (memory-mapped, decoded already)."""
        found = {}
        for branch in branches:
            entry = self.store.get(COLUMNS, column_key(self.identity, self.item, branch))
            try:
                if entry is not None:
                    found[branch] = entry.arrays()[0]
                    self.columns["hits"] += 1
                    self.columns["bytes_read"] += entry.nbytes
                    continue
            except Corrupt:
                pass
            self.columns["misses"] += 1
        return found

    def keep_columns(self, arrays: Mapping[str, np.ndarray]) -> None:
        for branch, values in arrays.items():
            self.columns["bytes_written"] += self.store.put(
                COLUMNS, column_key(self.identity, self.item, branch), {}, [values])

    def result(self) -> Result | None:
        """The chunk's whole result from an earlier run, marked as reused."""
        return load_result(self.store, self.result_key, self.meta)

    def keep_result(self, result: Result, read: Iterable[str] = ()) -> None:
        """Keep the chunk's result, with the files and metadata keys its stages read: those the
        cached stages found in their entries, and ``read`` (paths read while it ran)."""
        if self._memo is not None:
            memo = self._memo
            result.inputs = {**memo.files, **{path: digest(path) for path in read}}
            self.results_written = save_result(self.store, self.result_key, result, result.inputs,
                                               self.meta.values_of(memo.meta_read))

    def stats(self) -> dict[str, dict[str, int]]:
        found = {"columns": dict(self.columns),
                 "results": {**_counts(), "misses": 1, "bytes_written": self.results_written}}
        if self._memo is not None:
            found.update(self._memo.stats)
        return found



def _counts() -> dict[str, int]:
    return {"hits": 0, "misses": 0, "bytes_read": 0, "bytes_written": 0}



def record_run(settings: CacheSettings, counts: Mapping[str, Mapping[str, int]]) -> None:
    """Add a run's hits, misses and bytes per stage to the totals ``highrate cache info`` shows."""
    path = Path(settings.folder or local_folder()) / STATS
    try:
        totals = json.loads(path.read_text())
    except (OSError, ValueError):
        totals = {"runs": 0, "stages": {}}
    totals["runs"] = totals.get("runs", 0) + 1
    for stage, values in counts.items():
        mine = totals["stages"].setdefault(stage, {})
        for k, v in values.items():
            mine[k] = mine.get(k, 0) + int(v)
    totals["last_run"] = {stage: dict(values) for stage, values in counts.items()}
    store_json(path, totals)


def read_stats(folder: str | None) -> dict[str, Any]:
    try:
        return json.loads((Path(folder or local_folder()) / STATS).read_text())
    except (OSError, ValueError):
        return {"runs": 0, "stages": {}}
