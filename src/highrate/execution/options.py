"""What a run is told (:class:`RunOptions`), what it reports as it goes (:class:`Progress`) and what
it returns (:class:`RunOutcome`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from highrate.data.io.files import FileInfo
from highrate.devices.select import check_choice
from highrate.engine.result import Result
from highrate.errors import ConfigError
from highrate.execution.tasks import DatasetPlan


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
    # with skip_bad_files, the share of a dataset's input that may fail before the run fails (each
    # file counts as one, a failed chunk as its share of the file's entries); None: the run fails
    # only when some dataset processed nothing. The run raises RunFailedError, carrying the outcome.
    max_failed_fraction: float | None = None
    retries: int = 2  # extra attempts for a failing chunk before it is reported
    checkpoint_dir: str | None = None  # store each chunk's result here as it completes
    resume: bool = False  # reuse the results already in checkpoint_dir
    chunk_timeout: float | None = None  # seconds a chunk's read (or a file's opening) may take
    columns_dir: str | None = None  # where Analysis.save_columns writes its Parquet files
    # where registered stages with a GPU version run: "auto" (a GPU where the worker has one),
    # "cpu", or "gpu" (an error where there is none; on Dask, only workers with resources GPU=1)
    device: str = "auto"
    # the caches of columns, stage results and chunk results (docs/caching.md): None follows
    # HIGHRATE_CACHE (on unless "off"); cache_dir defaults to highrate's cache folder, cache_size
    # (bytes) to HIGHRATE_CACHE_SIZE or 10 GiB
    cache: bool | None = None
    cache_dir: str | None = None
    cache_size: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.device)
        f = self.max_failed_fraction
        if f is not None and not 0 <= f <= 1:
            raise ConfigError(f"max_failed_fraction (--max-failed-fraction) must be between 0 and 1, got {f}.")



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
    cached: int = 0  # chunks whose whole result came from the cache

    def rate(self, amount: float) -> float:
        """``amount`` per second of elapsed time."""
        return amount / self.elapsed_s if self.elapsed_s > 0 else 0.0



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
