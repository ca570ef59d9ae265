"""A run of an RDataFrame analysis over datasets, on highrate's executors, into highrate's outputs.

Sequential and processes: one task per file (:func:`highrate.rdf.engine.run_file`), results
merged with :func:`highrate.engine.result.accumulate`. Dask: one DistRDF dataframe per dataset
on highrate's Dask client, over the first replica of each file that opens here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from highrate.data.datasets import Dataset
from highrate.data.io.files import describe
from highrate.data.replicas import first_working
from highrate.engine.result import Result, accumulate, finished
from highrate.errors import ConfigError, InputFileError
from highrate.execution.executors import Executor, make_executor
from highrate.execution.failures import file_failure
from highrate.execution.options import RunOptions, RunOutcome
from highrate.outputs.histograms import write_pickle, write_root
from highrate.outputs.report import build_report, write_report
from highrate.rdf.counting import counting
from highrate.rdf.engine import (
    FileTask,
    book,
    collect,
    import_root,
    open_root_file,
    run_file,
    varied,
)
from highrate.rdf.loading import load_build, source_digest, uses_vary
from highrate.rdf.results import cutflow


@dataclass(frozen=True)
class RdfAnalysis:
    """What ``report.json`` says of the analysis: its name (the file's stem) and source hash."""

    name: str
    digest: str

    def hash(self) -> str:
        return self.digest


@dataclass(frozen=True)
class RdfPlan:
    """A dataset's entry in the report: its metadata (RDataFrame reads what the graph needs)."""

    meta: dict[str, Any]
    branches: tuple[str, ...] = field(default_factory=tuple)


def run_rdf(analysis: str | Path, datasets: Sequence[Dataset], options: RunOptions,
            executor: Executor | None = None) -> RunOutcome:
    """Run the RDataFrame analysis file over ``datasets``; the outcome ``write_rdf_outputs`` writes."""
    if not datasets:
        raise ConfigError("no datasets to run on.")
    path = str(Path(analysis).resolve())
    import_root()  # the missing extra named here, before any worker starts
    load_build(path)  # errors in the file itself, once, here
    described = [with_sum_genweight(d, options.limit_files, skip_bad=options.skip_bad_files) for d in datasets]
    datasets = [d for d, _ in described]
    seen = Result(files={name: {"served_by": {}, "replica_failures": failures}  # replicas that failed on the way
                         for _, found in described for name, failures in found.items() if failures})
    own = executor is None
    ex = executor or make_executor(options.executor, workers=options.workers, scheduler=options.scheduler,
                                   cluster=options.cluster)
    t0 = time.perf_counter()
    try:
        client = getattr(ex, "client", None)
        if client is not None:
            result, n_tasks = _run_distributed(path, datasets, options, client), len(datasets)
        else:
            tasks = [FileTask(path, d, f, options.skip_bad_files) for d in datasets for f in d.files[: options.limit_files]]
            result, n_tasks = accumulate(ex.map_unordered(run_file, tasks)), len(tasks)
    finally:
        if own:
            ex.close()
    wall = time.perf_counter() - t0
    plans = {d.name: RdfPlan({**d.metadata, "dataset": d.name, "sample": d.sample}) for d in datasets}
    return RunOutcome(result=finished(accumulate([seen, result])), wall_s=wall, plans=plans, files={}, chunks=n_tasks,  # type: ignore[arg-type]
                      executor=getattr(ex, "name", type(ex).__name__), dashboard=getattr(ex, "dashboard_link", None),
                      timings={"processing_s": wall}, chunk_counts={"computed": n_tasks})


def _run_distributed(path: str, datasets: Sequence[Dataset], options: RunOptions, client: Any) -> Result:
    """One DistRDF dataframe per dataset, all event loops started together."""
    root = import_root()
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    runs, skipped = [], []
    for d in datasets:
        urls, files = [], {}
        for name in d.files[: options.limit_files]:
            where = d.where(name)
            try:
                url, failures = _openable(root, where.replicas, d.tree, where.name)
            except InputFileError as err:
                if not options.skip_bad_files:
                    raise
                skipped.append(Result(failed=[file_failure(d.name, where.name, f"{type(err).__name__}: {err}")],
                                      files={where.name: {"served_by": {},
                                                          "replica_failures": getattr(err, "failures", [])}}))
                continue
            urls.append(url)
            files[where.name] = {"served_by": {url: 1}, "replica_failures": failures}
        if not urls:
            continue
        # a distributed dataframe: ROOT.RDataFrame given a Dask client as executor (ROOT >= 6.36)
        df = root.RDataFrame(d.tree, urls, executor=client, npartitions=max(len(urls), workers))
        count = df.Count()
        counted, filters = counting(df)  # DistRDF books no Report: each named filter counts itself
        booked = book(root, path, counted, d)
        handles = {k: varied(root, p) for k, p in booked.items()} if uses_vary(path) else booked
        runs.append((d, filters, count, handles, files))
    t0 = time.perf_counter()
    root.RDF.RunGraphs([count for _, _, count, _, _ in runs])
    loop_s = time.perf_counter() - t0
    results = []
    for d, filters, count, handles, files in runs:
        total = int(count.GetValue())
        steps, counts = cutflow(filters, total)
        results.append(Result(histograms=collect(handles, d.name, with_variations=uses_vary(path)), cutflow={d.name: steps},
                              counts={d.name: {**counts, "bytes_read": _size(files), "chunks": 1}},
                              files=files, timings={"event_loop": loop_s / len(runs)}))
    return accumulate([*results, *skipped])


def with_sum_genweight(dataset: Dataset, limit_files: int | None = None, *, skip_bad: bool = False,
                       ) -> tuple[Dataset, dict[str, list[dict[str, Any]]]]:
    """The dataset with ``sum_genweight`` in its metadata (the sum of ``Runs/genEventSumw`` over
    its files), as a columnar run gives its weights, for ``build`` to normalise the simulation;
    a value in the datasets file wins, and data or files without the sum leave it out. Also the
    replicas that failed on the way, by file (a later open skips them). With ``skip_bad``, a
    file that cannot be read is left out of the sum, as it is of the run (which reports it)."""
    if not dataset.is_mc or "sum_genweight" in dataset.metadata:
        return dataset, {}
    total, failed = 0.0, {}
    for name in dataset.files[:limit_files]:
        where = dataset.where(name)
        try:
            info, _, failed[where.name] = first_working(where.replicas,
                                                        lambda url: describe(url, dataset.tree, dataset.access),
                                                        what=f"reading the metadata of {where.name!r}")
        except InputFileError:
            if not skip_bad:
                raise
            continue
        if info.gen_sumw is None:
            return dataset, failed
        total += info.gen_sumw
    return replace(dataset, metadata={**dataset.metadata, "sum_genweight": total}), failed


def _size(files: dict[str, Any]) -> int:
    """Bytes of the files read (their sizes: DistRDF does not say what its workers read)."""
    total = 0
    for f in files.values():
        for url in f["served_by"]:
            local = Path(url)
            total += local.stat().st_size if local.exists() else 0
    return total


def _openable(root: Any, replicas: Sequence[str], tree: str, name: str) -> tuple[str, list[dict[str, Any]]]:
    def attempt(url: str) -> str:
        open_root_file(root, url, tree).Close()
        return url

    url, _, failures = first_working(replicas, attempt, what=f"opening {name!r}")
    return url, failures


def write_rdf_outputs(outdir: str | Path, outcome: RunOutcome, analysis: str | Path, options: RunOptions,
                      *, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``histograms.root``, ``histograms.pkl`` and ``report.json`` as a columnar run writes them."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    write_root(out / "histograms.root", outcome.result.histograms)
    write_pickle(out / "histograms.pkl", outcome.result.histograms)
    described = RdfAnalysis(Path(analysis).stem, source_digest(analysis))
    report = build_report(outcome, described, options)  # type: ignore[arg-type]
    report["engine"] = "rdataframe"
    if inputs is not None:
        report["inputs"] = inputs
    write_report(out / "report.json", report)
    return report
