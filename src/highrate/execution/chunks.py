"""Running the chunks: each task to success once (resumed from checkpoints, retried, or reported
failed), with progress, merged as results arrive in a reduction tree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from highrate._version import __version__
from highrate.devices.select import dask_resources
from highrate.engine.result import Result, accumulate
from highrate.execution.caching import ChunkCache, record_run, settings
from highrate.execution.checkpoint import CheckpointStore, chunk_key
from highrate.execution.executors import Executor, supported_options
from highrate.execution.failures import as_error, retryable, user_code
from highrate.execution.options import Progress, RunOptions
from highrate.execution.tasks import Task
from highrate.execution.worker import (
    Outcome,
    merge,
    process_indexed,
    summarize,
)
from highrate.execution.worker import failure as chunk_failure


class Tally:
    """Running totals for progress reports, overall and per worker, of the chunks computed in this
    run: chunks resumed from checkpoints are counted apart, so that rates mean this run's work."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.totals = {"events": 0, "skimmed": 0, "preselected": 0, "bytes_read": 0}
        self.resumed = {"events": 0, "skimmed": 0, "preselected": 0, "bytes_read": 0}
        self.workers: dict[str, dict[str, Any]] = {}
        self.cached = 0  # chunks whose whole result came from the cache

    def add(self, result: Result, worker: str | None, *, resumed: bool = False) -> None:
        self.cached += result.cache.get("results", {}).get("hits", 0)
        if resumed:
            for c in result.counts.values():
                for key, source in (("events", "total"), ("skimmed", "skimmed"), ("preselected", "preselected"),
                                    ("bytes_read", "bytes_read")):
                    self.resumed[key] += int(c.get(source, 0))
            return
        mine = self.workers.setdefault(worker, {"chunks": 0, "events": 0, "bytes_read": 0, "stages_s": {}}) \
            if worker else None
        if mine is not None:
            for stage, seconds in result.timings.items():
                mine["stages_s"][stage] = mine["stages_s"].get(stage, 0.0) + seconds
        for c in result.counts.values():
            for key, source in (("events", "total"), ("skimmed", "skimmed"), ("preselected", "preselected"),
                                ("bytes_read", "bytes_read")):
                self.totals[key] += int(c.get(source, 0))
            if mine is not None:
                mine["chunks"] += 1
                mine["events"] += int(c.get("total", 0))
                mine["bytes_read"] += int(c.get("bytes_read", 0))

    def progress(self, done: int, total: int, failed: int, retried: int) -> Progress:
        return Progress("chunks", done, total, failed=failed, retried=retried, cached=self.cached,
                        elapsed_s=time.perf_counter() - self.start,
                        workers={k: {n: v for n, v in w.items() if n != "stages_s"} for k, w in self.workers.items()},
                        **self.totals)



FAN_IN = 16  # results merged per node of the reduction tree



def run_chunks(
    ex: Executor, tasks: list[Task], options: RunOptions, report: Callable[[Progress], None],
    on_chunk: Callable[[Result], None] | None = None,
) -> tuple[Result, dict[str, Any]]:
    """Run every task once to success: resumed from checkpoints, retried, or reported failed.

    Each task index is accepted at most once, so nothing is double counted however often an
    executor or a retry runs it. Results are merged as they arrive in a tree of fan-in
    ``FAN_IN``: on the cluster for executors that keep results remote (Dask), else here.
    ``on_chunk`` receives each accepted chunk's result (fetched from the cluster if it stays
    there: for partial results while a run goes on, at the cost of that transfer).
    """
    store = CheckpointStore(options.checkpoint_dir) if options.checkpoint_dir else None
    version = __version__
    keys = [chunk_key(t.item, t.plan, t.analysis.hash, version) for t in tasks]
    tree = ReductionTree(ex)
    feed = InOrder(tree)
    accepted: set[int] = set()
    counts: dict[str, Any] = {"computed": 0, "resumed": 0, "retried": 0, "cached": 0}
    tally = Tally()

    def take(i: int, stored: Result) -> None:
        accepted.add(i)
        tally.add(stored, None, resumed=True)
        feed.add(i, stored)
        if on_chunk is not None:
            on_chunk(stored)

    if store is not None and options.resume:
        for i, key in enumerate(keys):
            stored = store.load(key)
            if stored is not None:
                take(i, replace(stored, timings={}, stages={}))  # its time was an earlier run's
        counts["resumed"] = len(accepted)
    caching = settings(options.cache, options.cache_dir, options.cache_size)
    if caching is not None:  # chunks whose result this machine's cache holds need no worker
        tasks = [replace(t, cache=caching) for t in tasks]
        for i, t in enumerate(tasks):
            if i not in accepted and (found := ChunkCache(caching, t.item, t.plan.meta, t.plan.defaults,
                                                          t.analysis.hash).result()) is not None:
                take(i, found)
                counts["cached"] += 1
    if store is not None:
        tasks = [replace(t, checkpoint=(str(store.directory), key)) for t, key in zip(tasks, keys, strict=True)]
    tasks = [replace(t, timeout=options.chunk_timeout, columns_dir=options.columns_dir, device=options.device)
             for t in tasks]
    pending = [i for i in range(len(tasks)) if i not in accepted]
    failures: dict[int, dict[str, Any]] = {}
    failed_files: dict[int, dict[str, Any]] = {}
    report(tally.progress(len(accepted), len(tasks), 0, 0))
    for attempt in range(options.retries + 1):
        if not pending:
            break
        if attempt:
            counts["retried"] += len(pending)
        for (i, r, worker), ref in _map_keep(ex, [(i, tasks[i]) for i in pending], dask_resources(options.device)):
            if i in accepted:
                continue
            if r.failed:
                failures[i] = {**r.failed[0], "attempts": attempt + 1}
                failed_files[i] = r.files  # the replicas it tried, for the report
                final = not retryable(r.failed[0]) or attempt == options.retries
                if final and (not options.skip_bad_files or user_code(failures[i])):
                    raise as_error(failures[i], tasks[i].analysis.get())
                if final:
                    feed.skip(i)
                continue
            failures.pop(i, None)
            accepted.add(i)
            counts["computed"] += 1
            tally.add(r, worker)
            feed.add(i, ref)
            if on_chunk is not None:
                outcome = ref if isinstance(ref, tuple) else ex.fetch(ref)  # type: ignore[attr-defined]
                on_chunk(outcome[1])
            report(tally.progress(len(accepted), len(tasks), len(failures), counts["retried"]))
        pending = [i for i in pending if i not in accepted and retryable(failures[i])]
    counts["workers"] = tally.workers
    counts["resumed_totals"] = dict(tally.resumed)
    lost = sorted(failures)
    feed.finish()
    merged = accumulate([tree.result(), Result(failed=[failures[i] for i in lost]),
                         *(Result(files=failed_files[i]) for i in lost)])
    counts["merge_s"] = tree.seconds  # the driver's share of merging (the cluster's runs in its tasks)
    if caching is not None:
        record_run(caching, merged.cache)
    return merged, counts



def _map_keep(ex: Executor, jobs: list[tuple[int, Task]], resources: dict[str, int] | None = None,
              ) -> Iterator[tuple[Outcome, Any]]:
    """(outcome summary, reference to the full outcome) for each job, in completion order."""
    # a chunk goes where its file is open already; a chunk whose worker died is retried; GPU
    # chunks go to workers that declare a GPU (Dask worker resources)
    extra = supported_options(ex, affinity=_file_of_job, on_lost=_chunk_lost, placement=_chunk_of_job,
                              **({"resources": resources} if resources else {}))
    map_keep = getattr(ex, "map_keep", None)
    if map_keep is not None:
        yield from map_keep(process_indexed, jobs, summarize, **extra)
        return
    for outcome in ex.map_unordered(process_indexed, jobs, **extra):
        yield outcome, outcome




def _file_of_job(job: tuple[int, Task]) -> str:
    return job[1].item.url



def _chunk_of_job(job: tuple[int, Task]) -> str:
    item = job[1].item
    return f"{item.uuid or item.url}:{item.start}:{item.stop}"



def _chunk_lost(job: tuple[int, Task], err: Exception) -> Outcome:
    return job[0], chunk_failure(job[1].item, err), "lost"



class InOrder:
    """Hands results to the reduction tree in task order, whatever order they arrive in: the
    floating-point sums then come out the same bit for bit however the chunks were scheduled, and
    whichever came from the cache. A result waits here for the ones before it (for executors that
    keep results remote, only a reference waits)."""

    def __init__(self, tree: ReductionTree) -> None:
        self.tree = tree
        self.next = 0
        self.waiting: dict[int, Any] = {}

    def add(self, index: int, ref: Any) -> None:
        self.waiting[index] = ref
        self._drain()

    def skip(self, index: int) -> None:
        """A task that will not deliver (its chunk failed for good)."""
        self.add(index, None)

    def finish(self) -> None:
        for index in sorted(self.waiting):
            if self.waiting[index] is not None:
                self.tree.add(self.waiting[index])
        self.waiting.clear()

    def _drain(self) -> None:
        while self.next in self.waiting:
            ref = self.waiting.pop(self.next)
            if ref is not None:
                self.tree.add(ref)
            self.next += 1



class ReductionTree:
    """Merges results level by level as they arrive: FAN_IN results make one node above.

    Memory stays at about FAN_IN results per level, and the driver receives one result at the
    end. With an executor that can combine remotely, every node is a task on the cluster.
    """

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.levels: list[list[Any]] = []
        self.seconds = 0.0  # spent here merging (or submitting merges) and fetching the last

    def add(self, ref: Any, level: int = 0) -> None:
        while len(self.levels) <= level:
            self.levels.append([])
        self.levels[level].append(ref)
        if len(self.levels[level]) == FAN_IN:
            parts, self.levels[level] = self.levels[level], []
            self.add(self._combine(parts), level + 1)

    def _combine(self, parts: list[Any]) -> Any:
        t0 = time.perf_counter()
        combine = getattr(self.ex, "combine", None)
        try:
            return combine(merge, parts) if combine is not None else merge(*parts)
        finally:
            self.seconds += time.perf_counter() - t0

    def result(self) -> Result:
        rest = [ref for level in self.levels for ref in level]
        if not rest:
            return Result()
        fetch = getattr(self.ex, "fetch", None)
        final = self._combine(rest)
        t0 = time.perf_counter()
        try:
            return fetch(final) if fetch is not None else final
        finally:
            self.seconds += time.perf_counter() - t0
