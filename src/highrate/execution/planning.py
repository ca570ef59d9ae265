"""Before the chunks: every file described (by the workers, or from memory), the analysis traced
per dataset into a plan, files lacking a needed branch set aside, entry ranges cut into work items.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from highrate.data import credentials
from highrate.data.datasets import Dataset
from highrate.data.io.files import BranchInfo, FileInfo, remembered
from highrate.data.partition import WorkItem, split_entries
from highrate.data.replicas import FileLocations
from highrate.engine.events import EventSchema
from highrate.engine.plancache import cached_trace
from highrate.engine.tracesharing import SharedTraces
from highrate.engine.tracing import trace
from highrate.errors import (
    CredentialError,
    InputFileError,
    MissingBranchError,
    UnknownQuantityError,
    did_you_mean,
)
from highrate.execution.executors import Executor, supported_options
from highrate.execution.failures import SKIP_HINT, file_failure, sentence, strip_type
from highrate.execution.options import Progress, RunOptions
from highrate.execution.tasks import DatasetPlan
from highrate.execution.worker import (
    describe_file,
)
from highrate.spec.analysis import Analysis

log = logging.getLogger(__name__)


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



def describe_failures(files: dict[str, list[FileInfo]]) -> dict[str, dict[str, Any]]:
    """Replicas that failed while the files were described, for the report."""
    return {
        info.url: {"replica_failures": [dict(f, stage="open") for f in info.replica_failures]}
        for infos in files.values() for info in infos if info.replica_failures
    }



def remembered_here(ref: tuple[str, FileLocations, str, float | None, Any]) -> bool:
    """Whether describing this file is a lookup: one local replica, known from an earlier run."""
    _, where, tree, _, _ = ref
    return len(where.replicas) == 1 and where.adler32 is None and remembered(where.replicas[0], tree)



def describe_files(
    ex: Executor, datasets: Sequence[Dataset], refs: list[tuple[Any, ...]], known: list[tuple[str, str, Any]],
    options: RunOptions, failed: list[dict[str, Any]], report: Callable[[Progress], None],
) -> dict[str, list[FileInfo]]:
    """Every file's FileInfo by dataset: ``known`` (described already), the rest by the workers."""
    answered = {(dataset, name) for dataset, name, _ in known}
    rest = [ref for ref in refs if (ref[0], ref[1].name) not in answered]
    found: dict[tuple[str, str], Any] = {}
    extra = supported_options(ex, affinity=_file_of_ref, on_lost=_file_lost)
    described = ex.map_unordered(describe_file, rest, **extra) if rest else iter(())
    for i, (dataset, url, info) in enumerate(itertools.chain(known, described), 1):
        if isinstance(info, str):
            if not options.skip_bad_files:
                if info.startswith("CredentialError"):
                    raise CredentialError(f"dataset {dataset!r}: {sentence(strip_type(info))}")
                raise InputFileError(f"dataset {dataset!r}: {sentence(strip_type(info))} {SKIP_HINT}")
            failed.append(file_failure(dataset, url, info))
        found[(dataset, url)] = info
        report(Progress("files", i, len(refs)))
    return {
        d.name: [found[(d.name, u)] for u in d.files[: options.limit_files] if isinstance(found[(d.name, u)], FileInfo)]
        for d in datasets
    }



def shared_traces() -> SharedTraces:
    """For one run: the datasets that may share a trace get one (``engine/tracesharing.py``)."""
    return SharedTraces(lambda analysis, schema, meta: trace(analysis, schema, meta))


def plan_dataset(
    analysis: Analysis, dataset: Dataset, files: list[FileInfo], traces: SharedTraces | None = None
) -> DatasetPlan:
    """The dataset's plan: what to read, what its stages depend on. ``traces`` (one per run) lets
    datasets whose metadata differ only where the analysis does not look share one trace."""
    # the union of all files' branches, so that a file lacking one is named by check_branches
    # whatever its position, instead of failing the trace when it happens to come first
    union: dict[str, BranchInfo] = {}
    for info in files:
        for name, branch in info.branches.items():
            union.setdefault(name, branch)
    schema = EventSchema.from_branches(union)
    meta = {**dataset.metadata, "dataset": dataset.name, "sample": dataset.sample}
    sums = [f.gen_sumw for f in files]
    # for normalisation (xsec * lumi / sum_genweight); a value in the datasets file wins
    if dataset.is_mc and sums and all(x is not None for x in sums) and "sum_genweight" not in dataset.metadata:
        meta["sum_genweight"] = float(sum(sums))
        summed = [f.url for f in files if f.gen_sumw_from == "genWeight"]
        if summed:
            log.warning(
                "dataset %r: %d file(s) have no Runs tree (%s%s): sum_genweight counts their genWeight over the "
                "events they hold, which undercounts a file skimmed before; give sum_genweight in the dataset's "
                "metadata to override.", dataset.name, len(summed), summed[0], " and more" if len(summed) > 1 else "")
    try:
        branches, deps = cached_trace(analysis, schema, meta, traces or trace)
    except UnknownQuantityError as err:
        raise UnknownQuantityError(f"dataset {dataset.name!r}: {err}{_field_hint(err, schema, files)}") from err
    defaults = {b: v for b, v in analysis.column_defaults.items() if b in branches}
    return DatasetPlan.of(dataset.name, meta, schema.subset(branches), branches, deps, dataset.access,
                          skim=bool(analysis.skim), defaults=defaults)



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



def check_branches(
    dataset: Dataset, files: list[FileInfo], plan: DatasetPlan | None, options: RunOptions,
    failed: list[dict[str, Any]],
) -> list[FileInfo]:
    """The files that have every branch the analysis reads; the others fail together, all named."""
    if plan is None:
        return []
    good, lacking = [], []
    for info in files:
        missing = [b for b in plan.branches if b not in info.branches and b not in plan.defaults]
        if missing:
            lacking.append((info, missing))
        else:
            good.append(info)
    if lacking and not options.skip_bad_files:
        raise MissingBranchError(_lacking_message(dataset, files, lacking) + f" {SKIP_HINT}")
    for info, missing in lacking:
        message = (f"dataset {dataset.name!r}, file {info.url!r}: {_branches(missing)} needed by the analysis "
                   f"{'is' if len(missing) == 1 else 'are'} not in tree {info.tree!r}.")
        failed.append(file_failure(dataset.name, info.url, f"MissingBranchError: {message}", entries=info.entries))
    return good


def _branches(names: list[str]) -> str:
    return f"branch {names[0]!r}" + (f" (and {len(names) - 1} more)" if len(names) > 1 else "")


def _lacking_message(dataset: Dataset, files: list[FileInfo], lacking: list[tuple[FileInfo, list[str]]]) -> str:
    """Which files lack which branches, the first few of each: fits on a screen."""
    shown = "; ".join(f"{info.url!r} lacks {_branches(missing)}" for info, missing in lacking[:3])
    more = f"; and {len(lacking) - 3} more files" if len(lacking) > 3 else ""
    tree = lacking[0][0].tree
    return (f"dataset {dataset.name!r}: {len(lacking)} of its {len(files)} files lack branches the analysis "
            f"reads from tree {tree!r}: {shown}{more}. If these files are meant to lack them, give each a value "
            "for them: Analysis(columns={'BRANCH': VALUE}).")


def work_items(dataset: Dataset, files: list[FileInfo], options: RunOptions) -> list[WorkItem]:
    items = [
        WorkItem(dataset.name, info.url, info.tree, start, stop, info.uuid,
                 info.replicas if info.replicas != (info.url,) else (), info.size or None)
        for info in files
        for start, stop in split_entries(info.entries, info.clusters, options.chunk_size)
    ]
    return items[: options.limit_chunks]



def _file_of_ref(ref: tuple[Any, ...]) -> str:  # describe_file's (dataset, locations, tree, ...)
    return ref[1].name



def _file_lost(ref: tuple[Any, ...], err: Exception) -> tuple[str, str, str]:
    return ref[0], ref[1].name, f"{type(err).__name__}: {err}"
