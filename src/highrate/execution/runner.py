"""Orchestration: datasets → file metadata → plans → work items → executor → accumulate."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from highrate.data.datasets import Dataset
from highrate.data.partition import WorkItem
from highrate.engine.result import Result, accumulate, finished
from highrate.errors import ConfigError, RunFailedError
from highrate.execution.allocator import keep_freed_memory
from highrate.execution.chunks import run_chunks
from highrate.execution.executors import Executor, make_executor
from highrate.execution.failures import too_much_lost
from highrate.execution.options import Progress, RunOptions, RunOutcome
from highrate.execution.planning import (
    check_branches,
    describe_failures,
    describe_files,
    plan_dataset,
    remembered_here,
    shared_traces,
    with_credentials,
    work_items,
)
from highrate.execution.tasks import AnalysisPayload, Task
from highrate.execution.worker import (
    describe_file,
)
from highrate.spec.analysis import Analysis


def run(
    analysis: Analysis,
    datasets: Sequence[Dataset],
    *,
    options: RunOptions = RunOptions(),
    executor: Executor | None = None,
    progress: Callable[[Progress], None] | None = None,
    on_chunk: Callable[[Result], None] | None = None,
) -> RunOutcome:
    """Run ``analysis`` over ``datasets`` and return the merged result; ``on_chunk`` receives each
    chunk's result as it is accepted (partial results while the run goes on)."""
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
    known = [describe_file(ref) for ref in refs if remembered_here(ref)]
    payload = AnalysisPayload.of(analysis)
    own = executor is None
    ex = executor or make_executor(
        options.executor, workers=options.workers, scheduler=options.scheduler, cluster=options.cluster
    )
    try:
        if getattr(ex, "name", None) != "sequential":  # the analysis leaves this process
            payload.check()
        failed: list[dict[str, Any]] = []
        files = describe_files(ex, datasets, refs, known, options, failed, report)
        t_meta = time.perf_counter()
        traces = shared_traces()
        plans = {d.name: plan_dataset(analysis, d, files[d.name], traces) for d in datasets if files[d.name]}
        t_plan = time.perf_counter()
        items: list[WorkItem] = []
        for d in datasets:
            good = check_branches(d, files[d.name], plans.get(d.name), options, failed)
            items += work_items(d, good, options)
        tasks = [Task(item, plans[item.dataset], payload) for item in items]
        chunk_result, counts = run_chunks(ex, tasks, options, report, on_chunk)
        merged = finished(accumulate([Result(failed=failed, files=describe_failures(files)), chunk_result]))
        t_end = time.perf_counter()
        outcome = RunOutcome(
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
        if merged.failed:
            _judge(outcome, datasets, options)
        return outcome
    finally:
        if own:
            ex.close()



def _judge(outcome: RunOutcome, datasets: Sequence[Dataset], options: RunOptions) -> None:
    """Raise :class:`RunFailedError` (with the outcome, for its report) when the failures skipped
    cost a dataset everything, or more than ``options.max_failed_fraction`` of its input."""
    r = outcome.result
    problem = too_much_lost(
        r.failed, {d.name: len(d.files[: options.limit_files]) for d in datasets},
        {name: int(c.get("chunks", 0)) for name, c in r.counts.items()},
        {info.url: info.entries for infos in outcome.files.values() for info in infos}, options.max_failed_fraction,
    )
    if problem is not None:
        raise RunFailedError(problem, outcome)
