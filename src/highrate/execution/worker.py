"""What runs on a worker for one chunk: read columns → build events → stages → a Result."""

from __future__ import annotations

import time
import traceback
from typing import Any

import awkward as ak
import numpy as np

from highrate.base.inputs import reads
from highrate.base.optional import require
from highrate.data.io.baskets import FetchStats
from highrate.data.io.deferred import Deferred
from highrate.data.io.files import describe, forget, opened
from highrate.data.io.reader import absent, read_columns_costed
from highrate.data.io.sources import AccessOptions, endpoint, server_checksum
from highrate.data.partition import WorkItem
from highrate.data.replicas import FileLocations, ReplicaMismatch, first_working, suspect
from highrate.devices.registry import StageTimes
from highrate.devices.select import resolve
from highrate.engine.collections import behavior
from highrate.engine.events import filter_arrays
from highrate.engine.result import Result, accumulate
from highrate.engine.stages.chunk_recorder import ChunkRecorder
from highrate.engine.stages.clock import StageClock
from highrate.engine.stages.memo import NO_MEMO, Later
from highrate.engine.stages.pipeline import run_stages
from highrate.errors import (
    HighrateError,
    InputFileError,
    MissingBranchError,
    UnknownQuantityError,
    UserCodeError,
)
from highrate.execution.allocator import keep_freed_memory
from highrate.execution.caching import ChunkCache
from highrate.execution.checkpoint import CheckpointStore
from highrate.execution.tasks import DatasetPlan, Task
from highrate.spec.analysis import Analysis


def process_chunk(task: Task) -> Result:
    """Process one chunk. Never raises: a failure comes back in ``Result.failed``."""
    item, plan = task.item, task.plan
    keep_freed_memory()  # workers not forked from the driver (forkserver, Dask) tune themselves
    replica_failures: list[dict[str, Any]] = []
    stage_times = StageTimes()
    clock = StageClock()
    cache = None
    try:
        if task.cache is not None:
            cache = ChunkCache(task.cache, item, plan.meta, plan.defaults, task.analysis.hash)
            reused = cache.result()
            if reused is not None:
                return reused
        # registered stages run in their version for the device the run asked for, as found here
        analysis = task.analysis.get().on_device(resolve(task.device), stage_times)
        # every file the chunk's stages read (not only those of the cached stages: with shape
        # variations, weights run outside the stage cache), which its cached result depends on
        with reads() as read_here:
            try:
                (recorder, nbytes, fetched), served, replica_failures = _run(analysis, item, plan, task.timeout,
                                                                             late=True, clock=clock, cache=cache)
            except UnknownQuantityError:
                if not plan.late:
                    raise
                # the skim read a branch tracing did not see it read: read everything before it
                clock = StageClock()
                (recorder, nbytes, fetched), served, replica_failures = _run(analysis, item, plan, task.timeout,
                                                                             late=False, clock=clock, cache=cache)
    except Exception as err:  # reported with its chunk; the runner decides to retry, skip or stop
        if not isinstance(err, HighrateError):
            for replica in item.sources:
                forget(replica)
        failed = failure(item, err)
        failed.files[item.url] = {"replica_failures": getattr(err, "failures", replica_failures)}
        return failed
    if recorder.tables and task.columns_dir:
        try:
            with clock("columns"):
                _write_columns(task.columns_dir, item, recorder.tables)
        except Exception as err:
            return failure(item, err)
    result = recorder.result
    result.timings = dict(clock.seconds)
    result.stages = stage_times.stages  # registered stages, per device: calls, seconds
    cutflow = result.cutflow[item.dataset]
    result.counts[item.dataset] = {
        "total": item.entries,
        "skimmed": cutflow.get("skim", item.entries),
        "preselected": cutflow.get("presel", item.entries),
        "bytes_read": nbytes,
        "chunks": 1,
    }
    result.files[item.url] = {"served_by": {served: 1}, "replica_failures": replica_failures}
    result.sources[endpoint(served)] = {
        "bytes": fetched.bytes or nbytes, "requests": fetched.requests, "chunks": 1, "events": item.entries,
    }
    if cache is not None:
        if not recorder.tables:  # (a chunk that saves columns writes its files each time)
            cache.keep_result(result, read_here)
        result.cache = cache.stats()
    return result


def _write_columns(folder: str, item: WorkItem, tables: list[tuple[str, dict[str, Any]]]) -> None:
    """``{folder}/{dataset}/{file uuid}_{start}_{stop}.parquet``: rewriting it on a retry is harmless."""
    import os
    from pathlib import Path

    require("pyarrow", "columns", purpose="saving columns (Analysis.save_columns)")
    stem = f"{item.uuid or Path(item.url).stem}_{item.start}_{item.stop}"
    for dataset, table in tables:
        target = Path(folder) / dataset / f"{stem}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        ak.to_parquet(ak.zip(table, depth_limit=1), tmp)
        tmp.replace(target)


def _run(
    analysis: Analysis, item: WorkItem, plan: DatasetPlan, timeout: float | None, *, late: bool,
    clock: StageClock, cache: ChunkCache | None = None,
) -> tuple[tuple[ChunkRecorder, int, FetchStats], str, list[dict[str, Any]]]:
    """Read the chunk and run the analysis on it: ((recorder, bytes read, fetch cost), replica,
    replica failures). With ``late``, the plan's late branches are decoded after the skim, for
    the skimmed events only. With a ``cache``, the chunk is read only if a stage the cache lacks
    needs the events, and then every branch is decoded (and kept) whole, so that a changed skim
    finds them."""
    deferring = late and bool(plan.late) and cache is None
    schema = plan.schema
    skim_schema = plan.skim_schema if deferring and plan.skim_schema is not None else schema
    recorder = ChunkRecorder(analysis, item.dataset)
    # the events and their columns are handed over, not kept here: the skim filter takes the
    # columns and run_stages lets the full events go once skimmed, so the chunk's later
    # arrays reuse that memory (a lower peak, and fewer fresh pages for a new worker)
    read: dict[str, Any] = {"nbytes": 0, "fetched": FetchStats(), "served": item.url, "failures": []}
    full: list[Any] = []

    def events() -> Any:
        with clock("read"):
            (arrays, read["nbytes"], read["fetched"], read["deferred"]), read["served"], read["failures"] = _read(
                item, plan, timeout, plan.late if deferring else (), cache)
            full.append(arrays)
            del arrays
            return skim_schema.build(full[0], item.entries, where=item.describe())  # the event record

    def skim_filter(mask: Any) -> Any:
        try:
            with clock("read"):  # the late branches, decoded for the kept events
                columns = filter_arrays(schema, full.pop(), mask, read["deferred"])
        except InputFileError:  # a late branch's baskets are corrupt: prefer another replica next time
            suspect(read["served"])
            raise
        return schema.build(columns, int(np.count_nonzero(mask)))

    # with a cache, the stages see the metadata through it (it keeps with each result the keys read)
    source, meta, memo = ((events(), plan.meta, NO_MEMO) if cache is None
                          else (Later(events), cache.meta, cache.memo(analysis, behavior)))
    try:
        run_stages(analysis, source, meta, recorder, n_events=item.entries, skim_filter=skim_filter, deps=plan.deps,
                   clock=clock, memo=memo)
    finally:
        if "deferred" in read:
            read["deferred"].close()
    return (recorder, read["nbytes"], read["fetched"]), read["served"], read["failures"]


def _read(
    item: WorkItem, plan: DatasetPlan, timeout: float | None, late: tuple[str, ...] = (),
    cache: ChunkCache | None = None,
) -> tuple[Any, str, list[dict[str, Any]]]:
    """The chunk's columns from the first replica that serves them: (columns, replica, failures);
    the branches of ``late`` are fetched, not decoded (:class:`~highrate.data.io.reader.Deferred`).
    With a ``cache``, the branches it holds are taken from it and the others kept there."""

    def attempt(replica: str) -> Any:
        with opened(replica, item.tree, plan.access) as handle:
            same_file(handle, item.uuid, item.size, replica)
            made = absent(handle, list(plan.defaults)) if plan.defaults else []
            branches = [b for b in plan.branches if b not in made]
            kept = cache.cached_columns(branches) if cache is not None else {}
            todo = [b for b in branches if b not in kept]
            if not todo:
                return _with_defaults(kept, made, plan, item), 0, FetchStats(), Deferred(item.start, item.stop, "")
            arrays, *rest = read_columns_costed(handle, todo, item.start, item.stop,
                                                where=_where(item, replica), defer=late)
            if cache is not None:
                cache.keep_columns(arrays)
            return (_with_defaults({**kept, **arrays}, made, plan, item), *rest)

    return first_working(item.sources, attempt, what=item.describe(), timeout=timeout, on_failure=forget)


def _with_defaults(arrays: dict[str, Any], made: list[str], plan: DatasetPlan, item: WorkItem) -> dict[str, Any]:
    """The branches this file lacks, made from the analysis' ``columns`` values: one per event, or
    one per object of the collection (counted by the file's own counter)."""
    if not made:
        return arrays
    arrays = dict(arrays)
    counted_by = {b: c.counter for c in plan.schema.collections for _, b in c.fields}
    for name in made:
        dtype = np.dtype(plan.schema.branches[name].dtype)
        counter = counted_by.get(name)
        if counter is not None and counter not in arrays:
            raise MissingBranchError(f"{item.describe()}: {counter!r}, which counts {name!r}, is not in the file, "
                                     f"so the value columns gives {name!r} cannot be spread over its objects.")
        n = item.stop - item.start if counter is None else int(arrays[counter].sum())
        arrays[name] = np.full(n, plan.defaults[name], dtype=dtype)
    return arrays


def _where(item: WorkItem, replica: str) -> str:
    return item.describe() if replica == item.url else f"{item.describe()} (replica {replica!r})"


def same_file(handle: Any, uuid: str | None, size: int | None, replica: str) -> None:
    """Raise :class:`ReplicaMismatch` when a replica (an open tree) is not the file it stands for."""
    found = handle.uuid
    if uuid and found != uuid:
        raise ReplicaMismatch(f"replica {replica!r} is another file (UUID {found}, expected {uuid}).")
    if size is not None and handle.size != size:
        raise ReplicaMismatch(f"replica {replica!r} has {handle.size:,} bytes, expected {size:,}.")


Outcome = tuple[int, Result, str]  # (task index, result, worker that ran it)


def process_indexed(job: tuple[int, Task]) -> Outcome:
    """``process_chunk`` tagged with the task's index and the worker; checkpointed on success.

    The checkpoint is written where the chunk ran (a shared folder on a cluster), so results
    never have to pass through the driver to be kept.
    """
    index, task = job
    result = process_chunk(task)
    if task.checkpoint is not None and not result.failed:
        folder, key = task.checkpoint
        CheckpointStore(folder).save(key, result)
    return index, result, _worker_name()


def summarize(outcome: Outcome) -> Outcome:
    """The outcome without its histograms: what the driver needs for bookkeeping and progress."""
    index, result, worker = outcome
    light = Result(counts=result.counts, cutflow=result.cutflow, categories=result.categories, failed=result.failed,
                   files=result.files if result.failed else {}, timings=result.timings, stages=result.stages,
                   cache=result.cache)
    return index, light, worker


def merge(*parts: Outcome | Result) -> Result:
    """Accumulate outcomes and partial sums: one node of the reduction tree."""
    return accumulate(p if isinstance(p, Result) else p[1] for p in parts)


def failure(item: WorkItem, err: BaseException) -> Result:
    """A Result that carries one failed chunk, with the reason and where it ran.

    An error in the analysis' code keeps its description under ``user_code`` (the stage, the
    user's line, the traceback as text), so that the driver raises it as it was, whatever ran it."""
    record: dict[str, Any] = {}
    if isinstance(err, UserCodeError):
        err = err.at(dataset=item.dataset, file=item.url, entries=(item.start, item.stop))
        record["user_code"] = {k: v for k, v in err.fields().items() if k != "traceback"}
    reason = f"{type(err).__name__}: {err}"
    trace = err.traceback if isinstance(err, UserCodeError) else "" if isinstance(err, HighrateError) else (
        traceback.format_exc(limit=8))
    return Result(
        failed=[
            {
                "dataset": item.dataset,
                "file": item.url,
                "entry_start": item.start,
                "entry_stop": item.stop,
                "error": reason,
                "traceback": trace,
                "worker": _worker_name(),
                "time": time.time(),
                **record,
            }
        ]
    )


def _worker_name() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def describe_file(ref: tuple[str, FileLocations, str, float | None, AccessOptions]) -> tuple[str, str, Any]:
    """Metadata of one file for the driver: ``(dataset, name, FileInfo or error message)``.

    The replicas are tried in order; the FileInfo lists the one that answered first, then the
    others, and the failures met on the way.
    """
    from dataclasses import replace as copy_with

    dataset, where, tree, timeout, access = ref

    def attempt(replica: str) -> Any:
        info = describe(replica, tree, access)
        if where.size is not None and info.size and info.size != where.size:
            forget(replica)
            raise ReplicaMismatch(f"replica {replica!r} has {info.size:,} bytes, the catalogue says {where.size:,}.")
        checksum = server_checksum(replica, access.timeout) if where.adler32 else None
        if checksum is not None and checksum != where.adler32:
            forget(replica)
            raise ReplicaMismatch(
                f"replica {replica!r} has adler32 {checksum} on its server, the catalogue says {where.adler32}."
            )
        return info

    try:
        info, served, failures = first_working(
            where.replicas, attempt, what=f"opening file {where.name!r}", timeout=timeout, on_failure=forget
        )
    except Exception as err:
        return dataset, where.name, f"{type(err).__name__}: {err}"
    rest = tuple(r for r in where.replicas if r != served)
    return dataset, where.name, copy_with(
        info, url=where.name, replicas=(served, *rest), replica_failures=tuple(failures),
        size=where.size or info.size,
    )
