"""Orchestration: datasets → file metadata → plans → work items → executor → accumulate."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from highrate import credentials
from highrate.allocator import keep_freed_memory
from highrate.analysis import Analysis
from highrate.checkpoint import CheckpointStore, chunk_key
from highrate.datasets import Dataset
from highrate.errors import (
    ConfigError,
    CredentialError,
    HighrateError,
    InputFileError,
    MissingBranchError,
    UnknownQuantityError,
    WorkerLostError,
    did_you_mean,
)
from highrate.events import EventSchema
from highrate.executors import Executor, make_executor
from highrate.io.files import BranchInfo, FileInfo, remembered
from highrate.partition import WorkItem, split_entries
from highrate.plancache import cached_trace
from highrate.replicas import FileLocations
from highrate.result import Result, accumulate, finished
from highrate.tracing import trace
from highrate.worker import (
    AnalysisPayload,
    DatasetPlan,
    Outcome,
    Task,
    describe_file,
    merge,
    process_indexed,
    summarize,
)
from highrate.worker import failure as chunk_failure

SKIP_HINT = "Pass --skip-bad-files to skip it; it is then listed in report.json's failed_chunks."


@dataclass(frozen=True)
class RunOptions:
    """How to run: executor, chunking, limits and the policy for bad input."""

    executor: str = "sequential"
    workers: int | None = None
    scheduler: str | None = None
    cluster: str | None = None
    chunk_size: int = 250_000
    limit_files: int | None = None
    limit_chunks: int | None = None
    skip_bad_files: bool = False
    retries: int = 2  # extra attempts for a failing chunk before it is reported
    checkpoint_dir: str | None = None  # store each chunk's result here as it completes
    resume: bool = False  # reuse the results already in checkpoint_dir
    chunk_timeout: float | None = None  # seconds a chunk's read (or a file's opening) may take
    columns_dir: str | None = None  # where Analysis.save_columns writes its Parquet files


@dataclass(frozen=True)
class Progress:
    """A progress update: ``stage`` is "files" or "chunks"; counts are cumulative.

    ``workers`` maps a worker (``host:pid``) to its ``chunks``, ``events`` and ``bytes_read``.
    """

    stage: str
    done: int
    total: int
    events: int = 0
    failed: int = 0
    skimmed: int = 0
    preselected: int = 0
    bytes_read: int = 0
    retried: int = 0
    elapsed_s: float = 0.0
    workers: dict[str, dict[str, int]] = field(default_factory=dict)

    def rate(self, amount: float) -> float:
        """``amount`` per second of elapsed time."""
        return amount / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _Tally:
    """Running totals for progress reports, overall and per worker."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.totals = {"events": 0, "skimmed": 0, "preselected": 0, "bytes_read": 0}
        self.workers: dict[str, dict[str, int]] = {}

    def add(self, result: Result, worker: str | None) -> None:
        mine = self.workers.setdefault(worker, {"chunks": 0, "events": 0, "bytes_read": 0}) if worker else None
        for c in result.counts.values():
            for key, source in (("events", "total"), ("skimmed", "skimmed"), ("preselected", "preselected"),
                                ("bytes_read", "bytes_read")):
                self.totals[key] += int(c.get(source, 0))
            if mine is not None:
                mine["chunks"] += 1
                mine["events"] += int(c.get("total", 0))
                mine["bytes_read"] += int(c.get("bytes_read", 0))

    def progress(self, done: int, total: int, failed: int, retried: int) -> Progress:
        return Progress("chunks", done, total, failed=failed, retried=retried,
                        elapsed_s=time.perf_counter() - self.start,
                        workers={k: dict(v) for k, v in self.workers.items()}, **self.totals)


@dataclass
class RunOutcome:
    """The merged result and what the report needs to describe the run."""

    result: Result
    wall_s: float
    plans: dict[str, DatasetPlan]
    files: dict[str, list[FileInfo]]
    chunks: int
    executor: str
    dashboard: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    chunk_counts: dict[str, Any] = field(default_factory=dict)  # computed, resumed, retried, workers


FAN_IN = 16  # results merged per node of the reduction tree


def _run_chunks(
    ex: Executor, tasks: list[Task], options: RunOptions, report: Callable[[Progress], None]
) -> tuple[Result, dict[str, Any]]:
    """Run every task once to success: resumed from checkpoints, retried, or reported failed.

    Each task index is accepted at most once, so nothing is double counted however often an
    executor or a retry runs it. Results are merged as they arrive in a tree of fan-in
    ``FAN_IN``: on the cluster for executors that keep results remote (Dask), else here.
    """
    store = CheckpointStore(options.checkpoint_dir) if options.checkpoint_dir else None
    version = _highrate_version()
    keys = [chunk_key(t.item, t.plan, t.analysis.hash, version) for t in tasks]
    tree = _ReductionTree(ex)
    accepted: set[int] = set()
    counts: dict[str, Any] = {"computed": 0, "resumed": 0, "retried": 0}
    tally = _Tally()
    if store is not None and options.resume:
        for i, key in enumerate(keys):
            stored = store.load(key)
            if stored is not None:
                accepted.add(i)
                tally.add(stored, None)
                tree.add(stored)
        counts["resumed"] = len(accepted)
    if store is not None:
        tasks = [replace(t, checkpoint=(str(store.directory), key)) for t, key in zip(tasks, keys, strict=True)]
    tasks = [replace(t, timeout=options.chunk_timeout, columns_dir=options.columns_dir) for t in tasks]
    pending = [i for i in range(len(tasks)) if i not in accepted]
    failures: dict[int, dict[str, Any]] = {}
    failed_files: dict[int, dict[str, Any]] = {}
    report(tally.progress(len(accepted), len(tasks), 0, 0))
    for attempt in range(options.retries + 1):
        if not pending:
            break
        if attempt:
            counts["retried"] += len(pending)
        for (i, r, worker), ref in _map_keep(ex, [(i, tasks[i]) for i in pending]):
            if i in accepted:
                continue
            if r.failed:
                failures[i] = {**r.failed[0], "attempts": attempt + 1}
                failed_files[i] = r.files  # the replicas it tried, for the report
                final = not _retryable(r.failed[0]) or attempt == options.retries
                if final and not options.skip_bad_files:
                    raise _as_error(failures[i])
                continue
            failures.pop(i, None)
            accepted.add(i)
            counts["computed"] += 1
            tally.add(r, worker)
            tree.add(ref)
            report(tally.progress(len(accepted), len(tasks), len(failures), counts["retried"]))
        pending = [i for i in pending if i not in accepted and _retryable(failures[i])]
    counts["workers"] = tally.workers
    lost = sorted(failures)
    merged = accumulate([tree.result(), Result(failed=[failures[i] for i in lost]),
                         *(Result(files=failed_files[i]) for i in lost)])
    return merged, counts


def _map_keep(ex: Executor, jobs: list[tuple[int, Task]]) -> Iterator[tuple[Outcome, Any]]:
    """(outcome summary, reference to the full outcome) for each job, in completion order."""
    # a chunk goes where its file is open already; a chunk whose worker died is retried
    extra = _supported(ex, affinity=_file_of_job, on_lost=_chunk_lost)
    map_keep = getattr(ex, "map_keep", None)
    if map_keep is not None:
        yield from map_keep(process_indexed, jobs, summarize, **extra)
        return
    for outcome in ex.map_unordered(process_indexed, jobs, **extra):
        yield outcome, outcome


def _supported(ex: Executor, **options: Any) -> dict[str, Any]:
    """The optional keyword arguments this executor takes (its ``takes``)."""
    return {k: v for k, v in options.items() if k in getattr(ex, "takes", ())}


def _file_of_job(job: tuple[int, Task]) -> str:
    return job[1].item.url


def _chunk_lost(job: tuple[int, Task], err: Exception) -> Outcome:
    return job[0], chunk_failure(job[1].item, err), "lost"


def _file_of_ref(ref: tuple[Any, ...]) -> str:  # describe_file's (dataset, locations, tree, ...)
    return ref[1].name


def _file_lost(ref: tuple[Any, ...], err: Exception) -> tuple[str, str, str]:
    return ref[0], ref[1].name, f"{type(err).__name__}: {err}"


class _ReductionTree:
    """Merges results level by level as they arrive: FAN_IN results make one node above.

    Memory stays at about FAN_IN results per level, and the driver receives one result at the
    end. With an executor that can combine remotely, every node is a task on the cluster.
    """

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.levels: list[list[Any]] = []

    def add(self, ref: Any, level: int = 0) -> None:
        while len(self.levels) <= level:
            self.levels.append([])
        self.levels[level].append(ref)
        if len(self.levels[level]) == FAN_IN:
            parts, self.levels[level] = self.levels[level], []
            self.add(self._combine(parts), level + 1)

    def _combine(self, parts: list[Any]) -> Any:
        combine = getattr(self.ex, "combine", None)
        return combine(merge, parts) if combine is not None else merge(*parts)

    def result(self) -> Result:
        rest = [ref for level in self.levels for ref in level]
        if not rest:
            return Result()
        fetch = getattr(self.ex, "fetch", None)
        final = self._combine(rest)
        return fetch(final) if fetch is not None else final


def _retryable(failure: dict[str, Any]) -> bool:
    """Errors in the analysis itself fail the same way every time: no retry."""
    return not failure["error"].startswith(("UnknownQuantityError", "ConfigError", "ChunkError"))


def _highrate_version() -> str:
    from highrate import __version__

    return __version__


def run(
    analysis: Analysis,
    datasets: Sequence[Dataset],
    *,
    options: RunOptions = RunOptions(),
    executor: Executor | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> RunOutcome:
    """Run ``analysis`` over ``datasets`` and return the merged result."""
    if not datasets:
        raise ConfigError("no datasets to run on.")
    report = progress or (lambda p: None)
    t0 = time.perf_counter()
    keep_freed_memory()  # before the executor: forked workers inherit it
    datasets = with_credentials(datasets)
    refs = [
        (d.name, d.where(url), d.tree, options.chunk_timeout, d.access)
        for d in datasets for url in d.files[: options.limit_files]
    ]
    # Files remembered from an earlier run are described here, a lookup each: no worker has to
    # start and answer first. Like the analysis, they are in place before workers are forked,
    # which then inherit them instead of loading them again.
    known = [describe_file(ref) for ref in refs if _remembered(ref)]
    payload = AnalysisPayload.of(analysis)
    own = executor is None
    ex = executor or make_executor(
        options.executor, workers=options.workers, scheduler=options.scheduler, cluster=options.cluster
    )
    try:
        failed: list[dict[str, Any]] = []
        files = _describe_files(ex, datasets, refs, known, options, failed, report)
        t_meta = time.perf_counter()
        plans = {d.name: plan_dataset(analysis, d, files[d.name]) for d in datasets if files[d.name]}
        t_plan = time.perf_counter()
        items: list[WorkItem] = []
        for d in datasets:
            good = _check_branches(d, files[d.name], plans.get(d.name), options, failed)
            items += _items(d, good, options)
        tasks = [Task(item, plans[item.dataset], payload) for item in items]
        chunk_result, counts = _run_chunks(ex, tasks, options, report)
        merged = finished(accumulate([Result(failed=failed, files=_describe_failures(files)), chunk_result]))
        t_end = time.perf_counter()
        return RunOutcome(
            result=merged,
            wall_s=t_end - t0,
            plans=plans,
            files=files,
            chunks=len(tasks),
            executor=getattr(ex, "name", type(ex).__name__),
            dashboard=getattr(ex, "dashboard_link", None),
            timings={"metadata_s": t_meta - t0, "plan_s": t_plan - t_meta, "processing_s": t_end - t_meta},
            chunk_counts=counts,
        )
    finally:
        if own:
            ex.close()


def with_credentials(datasets: Sequence[Dataset]) -> list[Dataset]:
    """Datasets whose remote reads carry the user's grid credentials (checked for expiry here)."""
    remote = any(
        "://" in r and not r.startswith("file://") for d in datasets for f in d.files for r in d.where(f).replicas
    )
    if not remote:
        return list(datasets)
    found = credentials.discover()
    found.check()
    return [replace(d, access=replace(d.access, credentials=found)) for d in datasets]


def _describe_failures(files: dict[str, list[FileInfo]]) -> dict[str, dict[str, Any]]:
    """Replicas that failed while the files were described, for the report."""
    return {
        info.url: {"replica_failures": [dict(f, stage="open") for f in info.replica_failures]}
        for infos in files.values() for info in infos if info.replica_failures
    }


def _remembered(ref: tuple[str, FileLocations, str, float | None, Any]) -> bool:
    """Whether describing this file is a lookup: one local replica, known from an earlier run."""
    _, where, tree, _, _ = ref
    return len(where.replicas) == 1 and where.adler32 is None and remembered(where.replicas[0], tree)


def _describe_files(
    ex: Executor, datasets: Sequence[Dataset], refs: list[tuple[Any, ...]], known: list[tuple[str, str, Any]],
    options: RunOptions, failed: list[dict[str, Any]], report: Callable[[Progress], None],
) -> dict[str, list[FileInfo]]:
    """Every file's FileInfo by dataset: ``known`` (described already), the rest by the workers."""
    answered = {(dataset, name) for dataset, name, _ in known}
    rest = [ref for ref in refs if (ref[0], ref[1].name) not in answered]
    found: dict[tuple[str, str], Any] = {}
    extra = _supported(ex, affinity=_file_of_ref, on_lost=_file_lost)
    described = ex.map_unordered(describe_file, rest, **extra) if rest else iter(())
    for i, (dataset, url, info) in enumerate(itertools.chain(known, described), 1):
        if isinstance(info, str):
            if not options.skip_bad_files:
                if info.startswith("CredentialError"):
                    raise CredentialError(f"dataset {dataset!r}: {_sentence(_strip_type(info))}")
                raise InputFileError(f"dataset {dataset!r}: {_sentence(_strip_type(info))} {SKIP_HINT}")
            failed.append(_file_failure(dataset, url, info))
        found[(dataset, url)] = info
        report(Progress("files", i, len(refs)))
    return {
        d.name: [found[(d.name, u)] for u in d.files[: options.limit_files] if isinstance(found[(d.name, u)], FileInfo)]
        for d in datasets
    }


def plan_dataset(analysis: Analysis, dataset: Dataset, files: list[FileInfo]) -> DatasetPlan:
    # the union of all files' branches, so that a file lacking one is named by _check_branches
    # whatever its position, instead of failing the trace when it happens to come first
    union: dict[str, BranchInfo] = {}
    for info in files:
        for name, branch in info.branches.items():
            union.setdefault(name, branch)
    schema = EventSchema.from_branches(union)
    meta = {**dataset.metadata, "dataset": dataset.name, "sample": dataset.sample}
    sums = [f.gen_sumw for f in files]
    if dataset.is_mc and sums and all(x is not None for x in sums):
        meta["sum_genweight"] = float(sum(sums))  # for normalisation: xsec * lumi / sum_genweight
    try:
        branches, deps = cached_trace(analysis, schema, meta, trace)
    except UnknownQuantityError as err:
        raise UnknownQuantityError(f"dataset {dataset.name!r}: {err}{_field_hint(err, schema, files)}") from err
    return DatasetPlan.of(dataset.name, meta, schema.subset(branches), branches, deps, dataset.access,
                          skim=bool(analysis.skim))


def _field_hint(err: UnknownQuantityError, schema: EventSchema, files: list[FileInfo]) -> str:
    """For a missing field of a collection or group: the close names, or which files lack it."""
    m = re.search(r"no field (?:named )?'(\w+)'", str(err.__cause__ or ""))
    if m is None or "Did you mean" in str(err):
        return ""
    inner = sorted({f for part in (*schema.groups, *schema.collections) for f, _ in part.fields})
    hint = did_you_mean(m[1], inner)
    if hint:
        return hint
    more = f" and {len(files) - 1} more" if len(files) > 1 else ""
    return f" No branch of the dataset's files ({files[0].url!r}{more}) provides it."


def _check_branches(
    dataset: Dataset, files: list[FileInfo], plan: DatasetPlan | None, options: RunOptions,
    failed: list[dict[str, Any]],
) -> list[FileInfo]:
    if plan is None:
        return []
    good = []
    for info in files:
        missing = [b for b in plan.branches if b not in info.branches]
        if not missing:
            good.append(info)
            continue
        message = (
            f"dataset {dataset.name!r}, file {info.url!r}: branch {missing[0]!r} needed by the analysis "
            f"is not in tree {info.tree!r}" + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "") + "."
        )
        if not options.skip_bad_files:
            raise MissingBranchError(f"{message} {SKIP_HINT}")
        failed.append(_file_failure(dataset.name, info.url, f"MissingBranchError: {message}", entries=info.entries))
    return good


def _items(dataset: Dataset, files: list[FileInfo], options: RunOptions) -> list[WorkItem]:
    items = [
        WorkItem(dataset.name, info.url, info.tree, start, stop, info.uuid,
                 info.replicas if info.replicas != (info.url,) else (), info.size or None)
        for info in files
        for start, stop in split_entries(info.entries, info.clusters, options.chunk_size)
    ]
    return items[: options.limit_chunks]


def _file_failure(dataset: str, url: str, error: str, *, entries: int | None = None) -> dict[str, Any]:
    return {
        "dataset": dataset, "file": url, "entry_start": 0 if entries is not None else None,
        "entry_stop": entries, "error": error, "traceback": "", "worker": "driver", "time": time.time(),
    }


def _sentence(message: str) -> str:
    return message if message.endswith((".", "?", "!")) else message + "."


def _strip_type(message: str) -> str:
    head, sep, rest = message.partition(": ")
    return rest if sep and head.endswith("Error") else message


def _as_error(failure: dict[str, Any]) -> HighrateError:
    text = _strip_type(failure["error"])
    if repr(failure["file"]) not in text:  # messages of the reader already say where
        text += (f" (dataset {failure['dataset']!r}, file {failure['file']!r}, "
                 f"entries [{failure['entry_start']}, {failure['entry_stop']}))")
    text = f"{_sentence(text)} {SKIP_HINT}"
    if failure["error"].startswith("MissingBranchError"):
        return MissingBranchError(text)
    if failure["error"].startswith(("UnknownQuantityError", "ConfigError", "ChunkError")):
        return ConfigError(text)
    if failure["error"].startswith("WorkerLostError"):
        return WorkerLostError(text)
    return InputFileError(text)

