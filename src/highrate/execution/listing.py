"""What ``highrate datasets`` shows: each dataset's files, their replicas and sizes.

With ``check``, every file is opened through the same replica failover as a run (so a dead
replica shows up here first); with an analysis too, the compressed bytes of the branches it
needs are summed from the baskets' sizes, against the file's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from highrate.data.datasets import Dataset
from highrate.spec.analysis import Analysis

# The runner, the worker and file access (awkward, uproot) are imported only by ``--check``:
# a plain listing of the datasets stays quick.


@dataclass
class FileRow:
    """One logical file as listed."""

    dataset: str
    name: str
    replicas: tuple[str, ...]
    sites: tuple[str, ...]
    size: int | None
    entries: int | None = None
    served_by: str | None = None
    needed_bytes: int | None = None
    error: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)


def list_files(
    datasets: Sequence[Dataset], *, check: bool = False, analysis: Analysis | None = None
) -> list[FileRow]:
    """Rows for every file of ``datasets``; opened (and measured) when ``check``."""
    from highrate.execution.planning import with_credentials

    rows = []
    for d in with_credentials(datasets) if check else datasets:
        for name in d.files:
            where = d.where(name)
            row = FileRow(d.name, name, where.replicas, where.sites, where.size)
            if check:
                _check(row, d, analysis)
            rows.append(row)
    return rows


def _check(row: FileRow, dataset: Dataset, analysis: Analysis | None) -> None:
    from highrate.data.io.files import opened
    from highrate.data.io.reader import stored_bytes
    from highrate.data.replicas import first_working

    branches = _needed(analysis, dataset) if analysis is not None else None

    def attempt(replica: str) -> tuple[int, int, int | None]:
        with opened(replica, dataset.tree, dataset.access) as handle:
            needed = None if branches is None else stored_bytes(handle, branches)
            return int(handle.ttree.num_entries), handle.size, needed

    try:
        (entries, size, needed), served, failures = first_working(
            dataset.where(row.name).replicas, attempt, what=f"file {row.name!r}", timeout=dataset.access.timeout * 2
        )
    except Exception as err:
        row.error = f"{type(err).__name__}: {err}"
        row.failures = list(getattr(err, "failures", []))
        return
    row.entries, row.served_by, row.needed_bytes, row.failures = entries, served, needed, failures
    row.size = row.size or size


def _needed(analysis: Analysis, dataset: Dataset) -> tuple[str, ...]:
    """The branches the analysis reads from this dataset (traced on its first file)."""
    from highrate.execution.planning import plan_dataset
    from highrate.execution.worker import describe_file

    _, _, info = describe_file((dataset.name, dataset.where(dataset.files[0]), dataset.tree, None, dataset.access))
    if isinstance(info, str):
        return ()
    return plan_dataset(analysis, dataset, [info]).branches
